//! File formats, one module each. NumPy's:
//!
//! - [`npy`]: one array per file — read (optionally memory-mapped, zero-copy),
//!   write, and stream in bounded memory;
//! - [`npz`]: a zip archive of `.npy` members — open (central directory only),
//!   load members zero-copy where the bytes allow it, write with 64-byte-aligned
//!   member data, and stream member by member.
//!
//! Writers never leave a half-written file under the final name: they write to a
//! temporary file in the same directory and rename it at the end ([`AtomicFile`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::view::TensorView;

pub mod npy;
pub mod npz;

/// `Error::Io` for `path`.
pub(crate) fn io_err(path: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_string(),
        source,
    }
}

/// `Error::Format` for `path`.
pub(crate) fn format_err(path: &str, reason: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// A file written under a temporary name in the destination's directory and
/// renamed to the destination by [`AtomicFile::commit`].
///
/// Dropping it without committing (an error, a panic) removes the temporary file,
/// so the destination either keeps its old content or gets the complete new one —
/// never a partial file. (The rename is atomic for other readers; like NumPy, no
/// `fsync` is done, so durability across a power loss is the file system's.)
/// Writes are buffered.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    dest: PathBuf,
    name: String,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl AtomicFile {
    /// Create the temporary file for `dest`.
    pub fn create(dest: impl AsRef<Path>) -> Result<AtomicFile> {
        let dest = dest.as_ref();
        let name = dest.display().to_string();
        let file_name = dest
            .file_name()
            .ok_or_else(|| Error::Io {
                path: name.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
            })?
            .to_string_lossy()
            .into_owned();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut attempt = 0;
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(".{file_name}.{}-{n}.tb-tmp", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => {
                    return Ok(AtomicFile {
                        file: Some(BufWriter::with_capacity(1 << 20, f)),
                        tmp,
                        dest: dest.to_path_buf(),
                        name,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => {
                    return Err(Error::Io {
                        path: name,
                        source: e,
                    })
                }
            }
        }
    }

    /// The destination path, as given.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flush and rename the temporary file to the destination.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().ok_or_else(|| Error::Io {
            path: self.name.clone(),
            source: io::Error::other("file already closed"),
        })?;
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_err(&self.name))?;
        drop(file);
        fs::rename(&self.tmp, &self.dest).map_err(io_err(&self.name))?;
        // Nothing left to clean up: `Drop` sees `file == None` and a renamed temp.
        self.tmp = PathBuf::new();
        Ok(())
    }

    fn inner(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("file already closed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner()?.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner()?.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner()?.flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner()?.seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            drop(self.file.take());
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Call `f` on consecutive pieces of `view` that together cover its elements in C
/// order, each at most `max_elems` elements (but at least one innermost element).
/// Pieces are views of the same bytes: no copy.
pub(crate) fn for_each_piece<'a>(
    view: &TensorView<'a>,
    max_elems: usize,
    f: &mut dyn FnMut(&TensorView<'a>) -> Result<()>,
) -> Result<()> {
    let n = view.len();
    if n == 0 {
        return Ok(());
    }
    if n <= max_elems.max(1) || view.shape().is_empty() {
        return f(view);
    }
    let shape = view.shape();
    let strides = view.strides();
    let rows = shape[0];
    let row_elems = n / rows;
    let sub = |start: usize, count: usize, keep_axis: bool| -> Result<TensorView<'a>> {
        let off = view.offset() as isize + start as isize * strides[0];
        let (shp, std) = if keep_axis {
            let mut s = shape.to_vec();
            s[0] = count;
            (s, strides.to_vec())
        } else {
            (shape[1..].to_vec(), strides[1..].to_vec())
        };
        TensorView::new(
            view.bytes(),
            view.dtype(),
            shp,
            std,
            usize::try_from(off).map_err(|_| Error::Layout("negative offset".into()))?,
            view.byte_order(),
        )
    };
    if row_elems <= max_elems {
        let per = (max_elems / row_elems).max(1);
        let mut start = 0;
        while start < rows {
            let count = per.min(rows - start);
            f(&sub(start, count, true)?)?;
            start += count;
        }
    } else {
        for i in 0..rows {
            for_each_piece(&sub(i, 1, false)?, max_elems, f)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{ByteOrder, DType};

    #[test]
    fn pieces_cover_in_c_order() {
        let data: Vec<i32> = (0..60).collect();
        let bytes: &[u8] = bytemuck::cast_slice(&data);
        // A transposed 3x4x5 (strides reversed) view.
        let v = TensorView::new(
            bytes,
            DType::Int32,
            vec![5, 4, 3],
            vec![4, 20, 80],
            0,
            ByteOrder::NATIVE,
        )
        .unwrap();
        let whole = crate::cast(&v, DType::Int32, crate::Casting::Unsafe)
            .unwrap()
            .to_vec::<i32>()
            .unwrap();
        for max in [1, 2, 3, 7, 12, 13, 60, 100] {
            let mut got = vec![];
            for_each_piece(&v, max, &mut |p| {
                assert!(p.len() <= max.max(3));
                let t = crate::cast(p, DType::Int32, crate::Casting::Unsafe)?;
                got.extend(t.to_vec::<i32>()?);
                Ok(())
            })
            .unwrap();
            assert_eq!(got, whole, "max {max}");
        }
    }

    #[test]
    fn atomic_file_leaves_nothing_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.bin");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"done").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"done");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
pub mod safetensors;
pub mod tfrecord;
