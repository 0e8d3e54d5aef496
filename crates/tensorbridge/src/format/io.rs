//! File I/O shared by every format: reading until a buffer is full, positional
//! reads, the errors that name the file, and [`AtomicFile`] — writing under a
//! temporary name that is renamed into place once complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Large positional reads are split into pieces of this size and run on all threads.
const READ_PIECE: usize = 16 << 20;

/// `Error::Io` for `path`.
pub(crate) fn io_err(path: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| core_or_io(source, path)
}

/// The core error an `io::Error` carries (one a remote stream raised: a missing
/// object, a changed one), else `Error::Io` for `path`.
pub(crate) fn core_or_io(source: io::Error, path: &str) -> Error {
    if source.get_ref().is_some_and(|e| e.is::<Error>()) {
        if let Some(inner) = source.into_inner() {
            return match inner.downcast::<Error>() {
                Ok(e) => *e,
                Err(other) => Error::Io {
                    path: path.to_string(),
                    source: io::Error::other(other),
                },
            };
        }
        return Error::Io {
            path: path.to_string(),
            source: io::Error::other("I/O error"),
        };
    }
    Error::Io {
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

/// The error for a failed read of a stream that checks itself (a decompressor, a
/// checksumming reader): corrupt data (`InvalidData`/`InvalidInput`: a bad deflate
/// stream, a CRC mismatch) is a format error whose reason is `prefix` followed by the
/// error's text; anything else an I/O error.
pub(crate) fn stream_err(path: &str, prefix: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            format_err(path, format!("{prefix}{e}"))
        }
        _ => core_or_io(e, path),
    }
}

/// [`stream_err`] without a prefix, as a closure for `map_err`.
pub(crate) fn read_err(path: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| stream_err(path, "", e)
}

/// Put the real file name on I/O errors from writers that do not know it.
pub(crate) fn relabel(e: Error, name: &str) -> Error {
    match e {
        Error::Io { source, .. } => Error::Io {
            path: name.to_string(),
            source,
        },
        e => e,
    }
}

/// Read until `buf` is full or the stream ends; return the number of bytes read
/// (fewer than `buf.len()` only at the end of the stream). Interrupted reads are
/// retried.
pub(crate) fn read_full(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read up to `buf.len()` bytes of `file` at `offset`, without moving its cursor
/// where the platform allows; fewer only at the end of the file.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let mut n = 0;
        while n < buf.len() {
            match file.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
    #[cfg(not(unix))]
    {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        read_full(&mut f, buf)
    }
}

/// Read exactly `buf.len()` bytes of `file` at `offset`; large reads run in parallel
/// pieces.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        if buf.len() >= 4 * READ_PIECE && rayon::current_num_threads() > 1 {
            return buf
                .par_chunks_mut(READ_PIECE)
                .enumerate()
                .try_for_each(|(i, chunk)| {
                    file.read_exact_at(chunk, offset + (i * READ_PIECE) as u64)
                });
        }
        file.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        let got = read_full_at(file, buf, offset)?;
        if got < buf.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A reader that hands out one byte at a time and is interrupted in between.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.data.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_full_retries_and_stops_at_the_end() {
        let mut r = Trickle {
            data: b"hello",
            interrupt: false,
        };
        let mut buf = [0u8; 3];
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"lo");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        let f = File::open(&p).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(read_full_at(&f, &mut buf, 8).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
        read_exact_at(&f, &mut buf, 3).unwrap();
        assert_eq!(&buf, b"3456");
        assert!(read_exact_at(&f, &mut buf, 8).is_err());
    }
}
