//! File formats, one module each:
//!
//! - [`npy`]: NumPy's one array per file — read (optionally memory-mapped,
//!   zero-copy), write, and stream in bounded memory;
//! - [`npz`]: a zip archive of `.npy` members — open (central directory only),
//!   load members zero-copy where the bytes allow it, write with 64-byte-aligned
//!   member data, and stream member by member;
//! - [`safetensors`]: Hugging Face's named arrays (with string metadata);
//! - [`tfrecord`]: TensorFlow's records of `tf.train.Example`s;
//! - [`convert`]: streaming conversion between any two of them (what the
//!   `tensorbridge convert` command and `tb.convert_file` run);
//! - [`detect()`]: which of them a file is.
//!
//! Shared pieces: [`io`] (reading until full, errors that name the file,
//! [`AtomicFile`]), [`gzip`] (a parallel gzip writer), and here the element-byte
//! helpers. Files are memory-mapped only through
//! [`Storage::map_file`](crate::storage::Storage::map_file).
//!
//! Writers never leave a half-written file under the final name: they write to a
//! temporary file in the same directory and rename it at the end ([`AtomicFile`]).

use std::borrow::Cow;
use std::path::Path;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::location::{Location, RemoteObject};
use crate::tensor::Tensor;
use crate::view::TensorView;

pub mod convert;
pub mod gzip;
pub mod io;
pub mod npy;
pub mod npz;
pub mod safetensors;
pub mod tfrecord;

pub use io::AtomicFile;
pub(crate) use io::{format_err, io_err};

// ---------------------------------------------------------------------------------
// Which format a file is.

/// A file format tensorbridge reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// NumPy `.npy`: one array.
    Npy,
    /// NumPy `.npz`: a zip archive of named arrays.
    Npz,
    /// Hugging Face `.safetensors`: named arrays.
    Safetensors,
    /// TFRecord of `tf.train.Example`s: record `i` holds row `i` of every array.
    Tfrecord,
}

impl FileFormat {
    /// Every format, in the order messages list them.
    pub const ALL: [FileFormat; 4] = [
        FileFormat::Npy,
        FileFormat::Npz,
        FileFormat::Safetensors,
        FileFormat::Tfrecord,
    ];

    /// Short name, also the file extension: `"npy"`, `"npz"`, `"safetensors"`,
    /// `"tfrecord"`.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Npy => "npy",
            FileFormat::Npz => "npz",
            FileFormat::Safetensors => "safetensors",
            FileFormat::Tfrecord => "tfrecord",
        }
    }

    /// The format a file name's extension says (case-insensitive), if any.
    pub fn from_extension(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        FileFormat::ALL.into_iter().find(|f| f.name() == ext)
    }

    /// The format of a file's first bytes (at least the first 12 are needed to tell
    /// a TFRecord file, 9 for safetensors), if they are one's:
    ///
    /// - `.npy`: the magic `\x93NUMPY`;
    /// - `.npz`: a zip local header `PK\x03\x04`, or — for an archive with no
    ///   members, as `np.savez(path)` writes — an end-of-central-directory record
    ///   `PK\x05\x06` (or its ZIP64 form `PK\x06\x06`);
    /// - TFRecord: the masked CRC32C of the first record's 8-byte length;
    /// - safetensors: an 8-byte header length followed by `{`.
    ///
    /// GZIP-compressed TFRecord files have no such sign (see [`detect()`]).
    pub fn sniff(head: &[u8]) -> Option<FileFormat> {
        if head.starts_with(npy::MAGIC) {
            return Some(FileFormat::Npy);
        }
        if [b"PK\x03\x04", b"PK\x05\x06", b"PK\x06\x06"]
            .iter()
            .any(|m| head.starts_with(*m))
        {
            return Some(FileFormat::Npz);
        }
        if let (Some(len), Some(crc)) = (head.get(..8), head.get(8..12)) {
            if tfrecord::masked_crc32c(len).to_le_bytes() == crc {
                return Some(FileFormat::Tfrecord);
            }
        }
        if head.len() > 8 && head[8] == b'{' {
            return Some(FileFormat::Safetensors);
        }
        None
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The refusal for a file whose format is unknown.
pub fn unknown_format(path: &Path) -> Error {
    unknown_format_label(&path.display().to_string())
}

/// [`unknown_format`] for a file (or URL) named `label`.
pub fn unknown_format_label(label: &str) -> Error {
    format_err(
        label,
        "unknown file type (expected a .npy, .npz, .safetensors or .tfrecord file)",
    )
}

/// The format of the file at `path`: by its first bytes where they tell
/// ([`FileFormat::sniff`]), else by its extension — a GZIP-compressed TFRecord
/// file, a file that does not exist or cannot be read (its reader then reports
/// why), or bytes that are no format's (the extension's reader then refuses them
/// with the reason). `None` when neither tells; [`unknown_format`] is the error to
/// give then.
///
/// The one detection rule of tensorbridge: `tb.load`, the `tensorbridge` command
/// and `Dataset.from_files` all use it. (An archive with no members, as
/// `np.savez(path)` writes, is an `.npz` by its end-of-central-directory record.)
pub fn detect(path: impl AsRef<Path>) -> Option<FileFormat> {
    let path = path.as_ref();
    let mut head = [0u8; 12];
    let got = std::fs::File::open(path)
        .and_then(|f| io::read_full_at(&f, &mut head, 0))
        .unwrap_or(0);
    FileFormat::sniff(&head[..got]).or_else(|| FileFormat::from_extension(path))
}

/// What [`load`] found: one array, or an archive of named arrays.
#[derive(Debug)]
pub enum Loaded {
    /// An `.npy` file's array.
    Array(Tensor),
    /// An `.npz` archive, opened (its directory read, no member loaded).
    Archive(npz::NpzArchive),
}

/// Load the NumPy file at `path` by its format ([`detect`]'s rule, from the same
/// first read that an `.npy` header needs — no extra I/O): an `.npy` array (see
/// [`npy::load`]), or an opened `.npz` archive. A safetensors or TFRecord file is
/// refused, naming its format. What `tb.load` runs.
pub fn load(path: impl AsRef<Path>, opts: &npy::LoadOptions) -> Result<Loaded> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(io_err(&name))?;
    let head = npy::read_head(&file, &name)?;
    match FileFormat::sniff(&head).or_else(|| FileFormat::from_extension(path)) {
        Some(FileFormat::Npz) => Ok(Loaded::Archive(npz::NpzArchive::from_file(&file, &name)?)),
        Some(f @ (FileFormat::Safetensors | FileFormat::Tfrecord)) => Err(format_err(
            &name,
            format!("a .{f} file, not .npy or .npz: read it with the {f} reader (tb.io)"),
        )),
        Some(FileFormat::Npy) | None => {
            npy::load_opened(&file, &name, Some(head), opts).map(Loaded::Array)
        }
    }
}

/// [`detect`] for a location: an object of a store by its first bytes (one small
/// ranged read), else its extension.
pub fn detect_location(loc: &Location) -> Option<FileFormat> {
    match loc {
        Location::Local(p) => detect(p),
        Location::Remote(r) => {
            let head = RemoteObject::open_reading(r, 12)
                .map(|(_, head)| head)
                .unwrap_or_default();
            FileFormat::sniff(&head).or_else(|| ext_format(loc))
        }
    }
}

pub(crate) fn ext_format(loc: &Location) -> Option<FileFormat> {
    let ext = loc.extension()?;
    FileFormat::ALL.into_iter().find(|f| f.name() == ext)
}

/// [`load`] of a location: a local path exactly as [`load`]; an object of a store
/// with one small ranged read that tells the format and holds an `.npy` header, then
/// the `.npy` data read by concurrent ranges into the tensor ([`npy::load_remote`]),
/// or an `.npz` archive opened by its central directory alone
/// ([`npz::NpzArchive::open_remote`]). `mmap: Some(true)` is refused for an object
/// (there is no local file to map).
pub fn load_location(loc: &Location, opts: &npy::LoadOptions) -> Result<Loaded> {
    let r = match loc {
        Location::Local(p) => return load(p, opts),
        Location::Remote(r) => r,
    };
    if opts.mmap == Some(true) {
        return Err(crate::location::no_mmap_remote(r.as_str()));
    }
    // An `.npy` name: the object is wanted whole (its rest in flight with the first read).
    let whole = ext_format(loc) == Some(FileFormat::Npy);
    let (obj, head, rest) = npy::open_for_load(r, whole)?;
    match FileFormat::sniff(&head).or_else(|| ext_format(loc)) {
        Some(FileFormat::Npz) => Ok(Loaded::Archive(npz::NpzArchive::open_remote(obj)?)),
        Some(f @ (FileFormat::Safetensors | FileFormat::Tfrecord)) => Err(format_err(
            r.as_str(),
            format!("a .{f} file, not .npy or .npz: read it with the {f} reader (tb.io)"),
        )),
        Some(FileFormat::Npy) | None => {
            npy::load_remote_with(&obj, head, rest, opts).map(Loaded::Array)
        }
    }
}

// ---------------------------------------------------------------------------------
// Element bytes.

/// Contiguous little-endian element bytes of a view: borrowed when possible, bools
/// normalised to 0/1.
pub(crate) enum Elements<'a> {
    Borrowed(&'a [u8]),
    Copied(Tensor),
    Owned(Vec<u8>),
}

impl Elements<'_> {
    pub(crate) fn of<'a>(view: &TensorView<'a>) -> Result<Elements<'a>> {
        let e = match view.contiguous_bytes() {
            Some(b) => Elements::Borrowed(b),
            None => Elements::Copied(Tensor::copy_of(view)?),
        };
        if view.dtype() == DType::Bool && e.bytes().iter().any(|&b| b > 1) {
            return Ok(Elements::Owned(
                e.bytes().iter().map(|&b| u8::from(b != 0)).collect(),
            ));
        }
        Ok(e)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Elements::Borrowed(b) => b,
            Elements::Copied(t) => t.as_bytes().unwrap_or(&[]),
            Elements::Owned(v) => v,
        }
    }
}

/// A view's elements as contiguous little-endian bytes (bools as 0/1), borrowed
/// when the view already is, else copied. Refused on big-endian hosts.
pub(crate) fn contiguous_le_bytes<'a>(view: &TensorView<'a>) -> Result<Cow<'a, [u8]>> {
    if cfg!(target_endian = "big") {
        return Err(Error::InvalidArgument(
            "file tensors are little-endian; big-endian hosts are not supported".into(),
        ));
    }
    Ok(match Elements::of(view)? {
        Elements::Borrowed(b) => Cow::Borrowed(b),
        other => Cow::Owned(other.bytes().to_vec()),
    })
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
mod remote_tests;

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
}
