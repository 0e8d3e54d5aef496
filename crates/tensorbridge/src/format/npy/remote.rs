//! Reading `.npy` objects of a store: one small ranged read for the header (a second
//! only when the header is longer), then the data read concurrently by ranges
//! straight into the tensor's buffer.

use bytes::Bytes;

use super::header::{preamble, NpyHeader};
use super::read::{build_filled, check_data_fits, convert_from, obstacle};
use super::{LoadOptions, NpyReader};
use crate::error::Result;
use crate::location::{block_on, no_mmap_remote, ObjectStream, RemoteObject, RemoteUrl};
use crate::tensor::Tensor;
use futures::StreamExt;

/// Bytes of the first read: any header NumPy writes (up to ~100 dimensions), and
/// enough to tell any format by.
pub(crate) const HEAD: usize = 4096;

/// The first bytes of `obj` (up to [`HEAD`]).
pub(crate) fn read_head(obj: &RemoteObject) -> Result<Bytes> {
    obj.get_upto(0, HEAD)
}

/// The header of `obj`, whose first bytes `head` holds (one more read when the
/// header is longer).
pub(crate) fn header_from_head(obj: &RemoteObject, head: Bytes) -> Result<NpyHeader> {
    let name = obj.url();
    let (_, data_offset) = preamble(&head, name)?;
    let bytes = if data_offset > head.len() && data_offset as u64 <= obj.size() {
        obj.get_range(0..data_offset as u64)?
    } else {
        head
    };
    NpyHeader::parse(&bytes, name)
}

/// Read just the header of the `.npy` object `obj`.
pub fn read_header_remote(obj: &RemoteObject) -> Result<NpyHeader> {
    header_from_head(obj, read_head(obj)?)
}

/// Headers fetched at once, at most this many objects in flight.
pub const HEADERS_IN_FLIGHT: usize = 64;

/// Open the `.npy` objects `urls` and read their headers concurrently (at most
/// [`HEADERS_IN_FLIGHT`] in flight: a HEAD and one small ranged read each, rarely
/// two), in the order given; each result names its URL on error. What a dataset over
/// thousands of objects needs to know its length in seconds.
pub fn read_headers_remote(urls: &[RemoteUrl]) -> Result<Vec<Result<(RemoteObject, NpyHeader)>>> {
    block_on(
        futures::stream::iter(urls)
            .map(|u| async move {
                let obj = RemoteObject::open_async(u).await?;
                let head = obj.get_async(0..obj.size().min(HEAD as u64)).await?;
                let (_, data_offset) = preamble(&head, obj.url())?;
                let bytes = if data_offset > head.len() && data_offset as u64 <= obj.size() {
                    obj.get_async(0..data_offset as u64).await?
                } else {
                    head
                };
                let header = NpyHeader::parse(&bytes, obj.url())?;
                check_data_fits(&header, obj.size(), obj.url())?;
                Ok((obj, header))
            })
            .buffered(HEADERS_IN_FLIGHT)
            .collect::<Vec<_>>(),
    )
}

/// Load the `.npy` object `obj` into an owned tensor; `head`: its first bytes, if
/// read already. Byte swapping, Fortran order and casts as for a local file read
/// without mapping; `mmap: Some(true)` is refused (there is no local file).
pub fn load_remote(obj: &RemoteObject, head: Option<Bytes>, opts: &LoadOptions) -> Result<Tensor> {
    let name = obj.url();
    if opts.mmap == Some(true) {
        return Err(no_mmap_remote(name));
    }
    let head = match head {
        Some(h) => h,
        None => read_head(obj)?,
    };
    let header = header_from_head(obj, head)?;
    let stored = header.resolve_dtype(opts.dtype, name)?;
    let target = opts.dtype.unwrap_or(stored);
    stored.check_cast(target, opts.casting)?;
    check_data_fits(&header, obj.size(), name)?;
    let start = header.data_offset as u64;
    // Read into a fresh (aligned) buffer: its address and offset count as 0.
    if obstacle(&header, stored, target, 0, 0)?.is_none() && !header.fortran_order {
        return build_filled(stored, &header.shape, |buf| obj.read_into(start, buf));
    }
    let mut data = vec![0u8; header.data_len()];
    obj.read_into(start, &mut data)?;
    let mut h = header;
    h.data_offset = 0;
    convert_from(&h, &data, stored, target, opts)
}

/// Open the `.npy` object `obj` for streaming (read-ahead); checks up front that the
/// object holds all the data the header describes.
pub fn open_remote(obj: &RemoteObject) -> Result<NpyReader<ObjectStream>> {
    let reader = NpyReader::new(ObjectStream::whole(obj)?, obj.url())?;
    check_data_fits(reader.header(), obj.size(), obj.url())?;
    Ok(reader)
}
