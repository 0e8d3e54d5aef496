//! Reading `.npy` files: whole (mapped or copied, converted in one pass), from
//! bytes in memory, or streamed in chunks ([`NpyReader`]).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use crate::dtype::{Casting, DType};
use crate::error::{Error, Result};
use crate::format::io::{read_err, read_exact_at, read_full, read_full_at};
use crate::format::{format_err, io_err};
use crate::layout::Layout;
use crate::storage::Storage;
use crate::tensor::cast;
use crate::tensor::Tensor;
use crate::view::{TensorView, ViewObstacle};

use super::header::{preamble, NpyHeader};
use super::MMAP_THRESHOLD;

/// How to load an array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `Some(true)`: memory-map (zero-copy; an error if the bytes cannot be used as
    /// they lie); `Some(false)`: read into owned memory; `None`: map when the bytes can
    /// be used as they lie and the data is at least [`MMAP_THRESHOLD`] long (see the
    /// [module documentation](self)).
    pub mmap: Option<bool>,
    /// The dtype of the result. `None`: the file's. For a `'V2'` file it must be
    /// bfloat16 (what the two bytes are); for any other file a different dtype is a
    /// cast under [`LoadOptions::casting`], done in the same pass as the read.
    pub dtype: Option<DType>,
    /// Casting mode for a cast to [`LoadOptions::dtype`] (default: unsafe, as NumPy's
    /// `astype`).
    pub casting: Casting,
}

/// Read just the header of the `.npy` file at `path` (one or two small reads).
pub fn read_header(path: impl AsRef<Path>) -> Result<NpyHeader> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(io_err(&name))?;
    read_file_header(&file, &name)
}

/// Read and parse the header at the start of `file` with positional reads (usually
/// one: the first 512 bytes hold any header NumPy writes for up to ~20 dimensions).
fn read_file_header(file: &File, name: &str) -> Result<NpyHeader> {
    header_from_head(file, read_head(file, name)?, name)
}

/// The first bytes of `file` (up to 512: any header NumPy writes for up to ~20
/// dimensions, and enough to tell any format by; see `FileFormat::sniff`).
pub(crate) fn read_head(file: &File, name: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 512];
    let got = read_full_at(file, &mut buf, 0).map_err(io_err(name))?;
    buf.truncate(got);
    Ok(buf)
}

/// Parse the header of `file`, whose first bytes `buf` holds (more are read when
/// the header is longer).
fn header_from_head(file: &File, mut buf: Vec<u8>, name: &str) -> Result<NpyHeader> {
    let (_, data_offset) = preamble(&buf, name)?;
    if data_offset > buf.len() {
        // The length is bounded by `preamble` (at most 40 kB).
        let have = buf.len();
        buf.resize(data_offset, 0);
        let more = read_full_at(file, &mut buf[have..], have as u64).map_err(io_err(name))?;
        buf.truncate(have + more);
    }
    NpyHeader::parse(&buf, name)
}

/// Read and parse a header from the start of a stream, consuming exactly the header.
fn read_header_from(r: &mut impl Read, name: &str) -> Result<NpyHeader> {
    let mut buf = vec![0u8; 12];
    let got = read_full(r, &mut buf).map_err(read_err(name))?;
    buf.truncate(got);
    let (_, data_offset) = preamble(&buf, name)?;
    if data_offset > buf.len() {
        // The length is bounded by `preamble` (at most 40 kB).
        let have = buf.len();
        buf.resize(data_offset, 0);
        let more = read_full(r, &mut buf[have..]).map_err(read_err(name))?;
        buf.truncate(have + more);
    }
    NpyHeader::parse(&buf, name)
}

pub(crate) fn truncated_data(header: &NpyHeader, available: u64) -> String {
    format!(
        "truncated data: the header describes {} bytes of data (shape {:?} of '{}') \
         but only {available} follow it",
        header.data_len(),
        header.shape,
        header.descr
    )
}

/// Check the data fits in `total` bytes after the header; `Err` names the problem.
pub(crate) fn check_data_fits(header: &NpyHeader, total: u64, path: &str) -> Result<()> {
    let available = total.saturating_sub(header.data_offset as u64);
    if (header.data_len() as u64) > available {
        return Err(format_err(path, truncated_data(header, available)));
    }
    Ok(())
}

/// What stops the elements `header` describes, stored as `stored` at byte `offset`
/// of a buffer that starts at address `base`, from being used as they lie as a
/// `target` tensor — the core's one copy=False rule, [`ViewObstacle::find`] (any
/// order of strides may be mapped: a Fortran-order file maps as a strided view).
/// `None`: they can be mapped. For a whole mapped file `base` is 0, a mapping
/// starting on a page boundary.
pub(crate) fn obstacle(
    header: &NpyHeader,
    stored: DType,
    target: DType,
    base: usize,
    offset: usize,
) -> Result<Option<ViewObstacle>> {
    let layout = Layout::new(header.shape.clone(), header.strides(), offset)?;
    Ok(ViewObstacle::find(
        stored,
        header.byte_order,
        &layout,
        base,
        target,
        false,
    ))
}

/// The refusal of `mmap: Some(true)` in the file `name` when `obstacle` stops the
/// bytes from being used as they lie.
pub(crate) fn no_map_error(name: &str, obstacle: &ViewObstacle) -> Error {
    format_err(
        name,
        format!("cannot memory-map: {obstacle}; load with mmap disabled to get a converted copy"),
    )
}

/// Load the `.npy` file at `path` into a tensor (see the [module documentation](self)
/// for the mapping rule, conversions and refusals).
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Tensor> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(io_err(&name))?;
    load_opened(&file, &name, None, opts)
}

/// [`load`] of an opened file named `name`, whose first bytes `head` may hold
/// already (as [`read_head`] read them).
pub(crate) fn load_opened(
    file: &File,
    name: &str,
    head: Option<Vec<u8>>,
    opts: &LoadOptions,
) -> Result<Tensor> {
    let file_len = file.metadata().map_err(io_err(name))?.len();
    let header = match head {
        Some(head) => header_from_head(file, head, name)?,
        None => read_file_header(file, name)?,
    };
    let stored = header.resolve_dtype(opts.dtype, name)?;
    let target = opts.dtype.unwrap_or(stored);
    stored.check_cast(target, opts.casting)?;
    check_data_fits(&header, file_len, name)?;

    // A mapping starts on a page boundary: its base address counts as 0.
    let obstacle = obstacle(&header, stored, target, 0, header.data_offset)?;
    let as_is = obstacle.is_none();
    let map = match (opts.mmap, obstacle) {
        (Some(true), Some(obstacle)) => return Err(no_map_error(name, &obstacle)),
        (Some(m), _) => m,
        (None, _) => as_is && header.data_len() >= MMAP_THRESHOLD,
    };
    if map {
        let storage = Arc::new(Storage::map_file(file).map_err(io_err(name))?);
        return Tensor::from_storage(
            storage,
            stored,
            header.shape.clone(),
            header.strides(),
            header.data_offset,
            true,
        );
    }
    if as_is && !header.fortran_order {
        // The common case: one read straight into the tensor's buffer.
        return build_filled(stored, &header.shape, |buf| {
            read_exact_at(file, buf, header.data_offset as u64).map_err(io_err(name))
        });
    }
    // Byte-swapped, Fortran-ordered or cast: convert from a temporary mapping in one
    // pass; where the file cannot be mapped, from a buffer read first.
    match Storage::map_file(file) {
        Ok(storage) => convert_from(&header, storage.as_slice(), stored, target, opts),
        Err(_) => {
            let mut data = vec![0u8; header.data_len()];
            read_exact_at(file, &mut data, header.data_offset as u64).map_err(io_err(name))?;
            let mut h = header.clone();
            h.data_offset = 0;
            convert_from(&h, &data, stored, target, opts)
        }
    }
}

/// A new C-contiguous tensor whose every byte `fill` writes (a read that either fills
/// the whole buffer or fails), without zeroing the buffer first.
pub(crate) fn build_filled(
    dtype: DType,
    shape: &[usize],
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<Tensor> {
    // SAFETY: every caller passes a `fill` that returns `Ok` only after writing the
    // whole slice (`read_exact_at`, or `NpyReader::read_chunk` with a buffer of exactly
    // the remaining data, which errors on any short read); on `Err` the buffer is
    // dropped unread.
    unsafe { Tensor::build_overwrite(dtype, shape, fill) }
}

/// Cast the elements described by `header` in `bytes` to an owned C-contiguous tensor.
pub(crate) fn convert_from(
    header: &NpyHeader,
    bytes: &[u8],
    stored: DType,
    target: DType,
    opts: &LoadOptions,
) -> Result<Tensor> {
    let view = TensorView::new(
        bytes,
        stored,
        header.shape.clone(),
        header.strides(),
        header.data_offset,
        header.byte_order,
    )?;
    copy_as(&view, target, opts.casting)
}

/// `view` cast to an owned C-contiguous `target` tensor — except that bool to bool
/// copies the bytes as they are, as `np.load` does: a byte other than 0 or 1 stays
/// what it is (however the file is ordered and whether it is mapped or read).
pub(crate) fn copy_as(view: &TensorView<'_>, target: DType, casting: Casting) -> Result<Tensor> {
    if view.dtype() != DType::Bool || target != DType::Bool {
        return cast(view, target, casting);
    }
    let bytes = TensorView::new(
        view.bytes(),
        DType::UInt8,
        view.shape().to_vec(),
        view.strides().to_vec(),
        view.offset(),
        view.byte_order(),
    )?;
    let raw = cast(&bytes, DType::UInt8, Casting::Unsafe)?;
    Tensor::from_storage(
        raw.storage().clone(),
        DType::Bool,
        raw.shape().to_vec(),
        raw.strides().to_vec(),
        raw.offset(),
        false,
    )
}

/// Load an `.npy` image held in memory (such as an `.npz` member read elsewhere) into
/// an owned tensor. `name` labels errors. `mmap: Some(true)` is refused (there is no
/// file to map).
pub fn from_bytes(bytes: &[u8], name: &str, opts: &LoadOptions) -> Result<Tensor> {
    let header = NpyHeader::parse(bytes, name)?;
    if opts.mmap == Some(true) {
        return Err(format_err(
            name,
            "cannot memory-map bytes held in memory; load with mmap disabled",
        ));
    }
    let stored = header.resolve_dtype(opts.dtype, name)?;
    let target = opts.dtype.unwrap_or(stored);
    check_data_fits(&header, bytes.len() as u64, name)?;
    convert_from(&header, bytes, stored, target, opts)
}

/// Load an `.npy` array whose header and element data were read separately (such as
/// from a Python file object): `head` holds the whole header (as [`NpyHeader::parse`]
/// takes it), `data` the element bytes that follow it (extra bytes after them are
/// ignored). The result is owned; `mmap: Some(true)` is refused. `name` labels errors.
pub fn read_from_parts(head: &[u8], data: &[u8], name: &str, opts: &LoadOptions) -> Result<Tensor> {
    let mut header = NpyHeader::parse(head, name)?;
    if opts.mmap == Some(true) {
        return Err(format_err(
            name,
            "cannot memory-map a file object; load with mmap disabled",
        ));
    }
    let stored = header.resolve_dtype(opts.dtype, name)?;
    let target = opts.dtype.unwrap_or(stored);
    stored.check_cast(target, opts.casting)?;
    header.data_offset = 0;
    check_data_fits(&header, data.len() as u64, name)?;
    convert_from(&header, data, stored, target, opts)
}

/// A streaming reader of `.npy` data: the header first, then element bytes in chunks,
/// in file order (C or Fortran, per [`NpyHeader::fortran_order`]) and file byte order.
/// Memory use is the caller's chunk buffer.
pub struct NpyReader<R: Read> {
    header: NpyHeader,
    inner: R,
    remaining: usize,
    name: String,
}

impl<R: Read> NpyReader<R> {
    /// Read the header from the start of `inner`. `name` labels errors.
    pub fn new(mut inner: R, name: &str) -> Result<Self> {
        let header = read_header_from(&mut inner, name)?;
        Ok(NpyReader {
            remaining: header.data_len(),
            header,
            inner,
            name: name.to_string(),
        })
    }

    /// The header.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// Bytes of element data not yet read.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Fill `buf` with the next whole elements (at most `buf.len()` bytes, rounded
    /// down to whole elements but at least one element when `buf` holds one); returns
    /// the filled part, empty at the end. Data ending early is a
    /// [`Error::Format`] ("truncated data"). After the last element the rest of the
    /// stream is drained, so a checksumming stream (an `.npz` member) can verify itself.
    pub fn read_chunk<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        let item = self.header.itemsize();
        let want = (buf.len() / item * item).min(self.remaining);
        if want == 0 && self.remaining > 0 {
            return Err(Error::InvalidArgument(format!(
                "a chunk buffer of {} bytes holds no element of {} bytes",
                buf.len(),
                item
            )));
        }
        let got = read_full(&mut self.inner, &mut buf[..want]).map_err(read_err(&self.name))?;
        if got < want {
            let read = self.header.data_len() - self.remaining + got;
            return Err(format_err(
                &self.name,
                truncated_data(&self.header, read as u64),
            ));
        }
        self.remaining -= want;
        if self.remaining == 0 && want > 0 {
            io::copy(&mut self.inner, &mut io::sink()).map_err(read_err(&self.name))?;
        }
        Ok(&buf[..want])
    }
}

/// Open the `.npy` file at `path` for streaming; checks up front that the file holds
/// all the data the header describes.
pub fn open(path: impl AsRef<Path>) -> Result<NpyReader<io::BufReader<File>>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(io_err(&name))?;
    let len = file.metadata().map_err(io_err(&name))?.len();
    let reader = NpyReader::new(io::BufReader::with_capacity(1 << 16, file), &name)?;
    check_data_fits(&reader.header, len, &name)?;
    Ok(reader)
}
