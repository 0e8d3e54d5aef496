//! Reading `.npy` objects of a store. Loading a whole object: one ranged GET of its
//! first [`WHOLE_FIRST`] bytes (the header and the start of the data; no HEAD — the
//! response tells the object's size and ETag); as soon as the header has arrived,
//! the rest of the object in concurrent ranges. Every body is written into the
//! tensor's buffer chunk by chunk as it arrives (no buffer of a whole range): two
//! requests for a 16 MiB object, and little memory beyond the tensor. Reading a
//! header alone: one small ranged read (a second only when the header is longer).

use bytes::Bytes;

use super::header::{preamble, NpyHeader};
use super::read::{build_filled, check_data_fits, convert_from, obstacle};
use super::{LoadOptions, NpyReader};
use crate::error::Result;
use crate::location::{block_on, no_mmap_remote, FirstBody, ObjectStream, RemoteObject, RemoteUrl};
use crate::tensor::Tensor;
use futures::StreamExt;

/// Bytes of the first read: any header NumPy writes (up to ~100 dimensions), and
/// enough to tell any format by.
pub(crate) const HEAD: usize = 4096;

/// Bytes of the first read of an object loaded whole: one piece of the concurrent
/// read (the header and the start of the data).
pub const WHOLE_FIRST: usize = crate::location::PIECE;

/// The first bytes of `obj` (up to [`HEAD`]).
pub(crate) fn read_head(obj: &RemoteObject) -> Result<Bytes> {
    obj.get_upto(0, HEAD)
}

/// Open the object `r` for `tb.load`: `whole` (an `.npy` name: the object is wanted
/// whole) asks for its first [`WHOLE_FIRST`] bytes and waits for the first [`HEAD`]
/// of them, the rest of that body left streaming in
/// ([`RemoteObject::open_streaming`]; dropped unread when the object turns out to be
/// an archive); otherwise only its first [`HEAD`] bytes are read (enough to tell the
/// format and hold an `.npy` header; an `.npz` archive then reads its directory
/// alone). No HEAD request either way.
pub fn open_for_load(
    r: &RemoteUrl,
    whole: bool,
) -> Result<(RemoteObject, Bytes, Option<FirstBody>)> {
    if whole {
        let (obj, head, rest) = RemoteObject::open_streaming(r, WHOLE_FIRST, HEAD)?;
        Ok((obj, head, Some(rest)))
    } else {
        let (obj, head) = RemoteObject::open_reading(r, HEAD)?;
        Ok((obj, head, None))
    }
}

/// Load the `.npy` object at `r` into an owned tensor: two requests for an object
/// of up to two pieces (see the module documentation), no HEAD.
pub fn load_url(r: &RemoteUrl, opts: &LoadOptions) -> Result<Tensor> {
    if opts.mmap == Some(true) {
        return Err(no_mmap_remote(r.as_str()));
    }
    let (obj, head, rest) = open_for_load(r, true)?;
    load_remote_with(&obj, head, rest, opts)
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
/// [`HEADERS_IN_FLIGHT`] in flight: one small ranged read each, rarely two; no
/// HEAD), in the order given; each result names its URL on error. What a dataset over
/// thousands of objects needs to know its length in seconds.
pub fn read_headers_remote(urls: &[RemoteUrl]) -> Result<Vec<Result<(RemoteObject, NpyHeader)>>> {
    block_on(
        futures::stream::iter(urls)
            .map(|u| async move {
                let (obj, head) = RemoteObject::open_reading_async(u, HEAD).await?;
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
    if opts.mmap == Some(true) {
        return Err(no_mmap_remote(obj.url()));
    }
    let head = match head {
        Some(h) => h,
        None => read_head(obj)?,
    };
    load_remote_with(obj, head, None, opts)
}

/// [`load_remote`] of an object opened by [`open_for_load`]: `head` its first bytes,
/// `rest` the rest of its first GET, still streaming in (the data not in `head` or
/// `rest` is read by concurrent ranges), each body written straight into the tensor.
pub fn load_remote_with(
    obj: &RemoteObject,
    head: Bytes,
    rest: Option<FirstBody>,
    opts: &LoadOptions,
) -> Result<Tensor> {
    let name = obj.url();
    if opts.mmap == Some(true) {
        return Err(no_mmap_remote(name));
    }
    let header = header_from_head(obj, head.clone())?;
    let stored = header.resolve_dtype(opts.dtype, name)?;
    let target = opts.dtype.unwrap_or(stored);
    stored.check_cast(target, opts.casting)?;
    check_data_fits(&header, obj.size(), name)?;
    let start = header.data_offset as u64;
    let mut rest = rest;
    let mut fill = |buf: &mut [u8]| match rest.take() {
        Some(body) => obj.fill_whole(&head, body, start, buf),
        None => obj.read_into(start, buf),
    };
    // Read into a fresh (aligned) buffer: its address and offset count as 0.
    if obstacle(&header, stored, target, 0, 0)?.is_none() && !header.fortran_order {
        return build_filled(stored, &header.shape, fill);
    }
    let mut data = vec![0u8; header.data_len()];
    fill(&mut data)?;
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
