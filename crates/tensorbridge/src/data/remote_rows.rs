//! The rows of one remote `from_files` file, streamed chunk by chunk.
//!
//! An opened remote file is never read whole: each component (the `.npy` object, or
//! each chosen `.npz` member) is an in-order stream of ranged GETs with read-ahead
//! ([`ObjectStream`]: the next few MiB in flight while the current chunk's rows are
//! consumed), cut into chunks of whole rows of about [`CHUNK_BYTES`].
//!
//! A remote `.npy` object whose header was read when the dataset was made is read
//! within one read-ahead budget per iterator ([`READ_AHEAD_BUDGET`], GETs of
//! [`READ_AHEAD_GET`]) shared by the objects open and the next one of the order,
//! opened ahead ([`Opening`]: its stream starts at once): bytes requested but not
//! yet read stay within the budget plus one GET per stream, across object
//! boundaries, whatever the objects' sizes. Its chunks are the GET bodies
//! themselves where they hold whole rows in native order (no copy).
//!
//! Restoring a slot at row `r` (iterator state): an `.npy` object's stream starts at
//! that row's byte offset (a ranged read from there), and so does a stored `.npz`
//! member's (its CRC-32 is then not checked: only part of it is read). A deflated
//! member has no random access, so its stream starts at the member's start again and
//! the rows before `r` are inflated and discarded.
//! [`read_one_row`] (re-making one row of a saved state) reads just that row's bytes
//! from an `.npy` object (one ranged read), and streams an `.npz` member up to it.
//!
//! Fortran-ordered arrays of more than one dimension keep a row's elements apart in
//! the file; [`RemoteRows::open`] declines them and the caller reads such a file
//! whole, as before.

use std::io::Read;

use super::location;
use crate::data::comp::{Comp, Item};
use crate::data::files::{FileEntry, FilesPlan};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::npy::{self, LoadOptions, NpyHeader, NpyReader};
use crate::format::npz::NpzArchive;
use crate::format::{format_err, FileFormat};
use std::ops::Range;

use crate::location::{Budget, Location, ObjectStream, RemoteObject};
use crate::tensor::{Index, Tensor};

/// Bytes of rows per chunk (rounded down to whole rows; at least one row). Unit
/// tests use tiny chunks, so that small files cross many chunk boundaries.
pub(crate) const CHUNK_BYTES: usize = if cfg!(test) { 64 } else { 8 << 20 };

/// Bytes of the first read of an opened `.npy` object: its header and its first
/// rows, in one request.
const OPEN_FIRST: usize = 1 << 20;

/// Bytes of element data one `from_files` iterator keeps requested ahead of the
/// rows it has read, across the objects it has open and the ones it opens ahead
/// (a [`Budget`] shared by their streams; GETs of [`READ_AHEAD_GET`]). 32 MiB: enough
/// to keep a local S3 server busy through
/// object boundaries (GETs of the next object go out while the current one's last
/// ones are read), little enough for peak memory to stay under a boto3 loop's. Each
/// stream may also hold one GET of its own beyond it (see [`Budget`]).
pub(crate) const READ_AHEAD_BUDGET: usize = 32 << 20;

/// Bytes of one GET of a `from_files` stream: 16 MiB, so a shard of up to 16 MiB is
/// one request (object stores bill and pay a fixed cost per request), and larger
/// objects are read in pieces at the upper end of the 8–16 MiB that S3 recommends
/// for ranged reads. Measured on a local Python S3 server (moto, BENCHMARKS.md
/// issue 9), whose cost per ranged GET grows with the object's size: 64 × 16 MiB
/// objects read at ~650 MB/s in 8 MiB GETs (its own limit for that pattern, 657–661
/// MB/s) and ~800 MB/s in 16 MiB ones; 4 MiB GETs ~400. With the 32 MiB budget,
/// the current object's GET and the next one's are in flight.
pub(crate) const READ_AHEAD_GET: usize = 16 << 20;

/// The read-ahead budget of one `from_files` iterator.
pub(crate) fn read_ahead_budget() -> Budget {
    Budget::new(READ_AHEAD_BUDGET, READ_AHEAD_GET)
}

/// The rows of a remote `.npy` object whose header was read when the dataset was
/// made ([`KnownObject`](crate::data::remote_files::KnownObject)) from row `start`: the object (no request made) and its
/// rows' byte range.
fn known_range(
    entry: &FileEntry,
    plan: &FilesPlan,
    url: &crate::location::RemoteUrl,
    start: usize,
) -> Result<Option<(RemoteObject, NpyHeader, Range<u64>)>> {
    let Some(k) = entry.known.as_ref().filter(|_| plan.keys.is_none()) else {
        return Ok(None);
    };
    let h = &k.header;
    let obj = RemoteObject::known(url, k.size, k.etag.clone())?;
    let row_bytes = h.itemsize() * h.shape[1..].iter().product::<usize>();
    let at = |r: usize| (h.data_offset + r * row_bytes) as u64;
    let range = at(start.min(entry.rows))..at(entry.rows);
    Ok(Some((obj, h.clone(), range)))
}

/// An `.npy` object of a `from_files` order opened ahead: the stream of its rows
/// started at once (its GETs going out as the iterator's read-ahead [`Budget`]
/// allows) while the rows before it are consumed. [`RemoteRows::open`] takes it over
/// when the object's turn comes (its errors surface then, exactly where an open
/// would have met them); dropping it cancels the requests.
pub(crate) struct Opening {
    stream: ObjectStream,
}

impl Opening {
    /// Start reading `entry` (from its first row) when it is a remote `.npy` object
    /// whose header is known and whose rows lie in order; `None` otherwise (those are
    /// opened when their turn comes, as before).
    pub(crate) fn start(entry: &FileEntry, plan: &FilesPlan, budget: &Budget) -> Option<Opening> {
        let Ok(Location::Remote(url)) = location(&entry.path, &plan.storage_options) else {
            return None;
        };
        let (obj, h, range) = known_range(entry, plan, &url, 0).ok()??;
        if rows_apart(&h) {
            return None;
        }
        let stream = ObjectStream::budgeted(&obj, range, budget).ok()?;
        Some(Opening { stream })
    }
}

/// A C-ordered tensor over a GET's body (no copy; the tensor keeps the body alive).
fn over_bytes(b: bytes::Bytes, dtype: DType, shape: &[usize]) -> Result<Tensor> {
    let strides = crate::layout::contiguous_strides(shape, dtype.size());
    // SAFETY: `Bytes` never moves or frees its memory while a handle lives, and the
    // storage owns this handle; the bytes are never written (tensors are immutable).
    let storage = unsafe { crate::storage::Storage::foreign(b.as_ptr(), b.len(), Box::new(b)) };
    Tensor::from_storage(
        std::sync::Arc::new(storage),
        dtype,
        shape.to_vec(),
        strides,
        0,
        true,
    )
}

/// A stream's `io::Error` as the core error it carries.
fn stream_err(e: std::io::Error, name: &str) -> Error {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => format_err(name, other.to_string()),
        },
        None => format_err(name, "truncated data (the object ended early)"),
    }
}

/// Where a component's element bytes come from.
enum Source {
    /// A whole `.npy` image whose header has been read (an `.npz` member: the reader
    /// checks the member's CRC-32 at its end).
    Image(NpyReader<Box<dyn Read + Send>>),
    /// Element bytes from a row's byte offset on (an `.npy` object).
    Raw(ObjectStream),
}

/// One component of a streamed file.
struct Stream {
    source: Source,
    name: String,
    header: NpyHeader,
    stored: DType,
    row_bytes: usize,
    /// Rows the file has.
    rows: usize,
    /// The next row the source yields.
    pos: usize,
    /// The current chunk and the row index of its first row.
    chunk: Option<(Tensor, usize)>,
}

impl Stream {
    fn new(source: Source, name: String, header: NpyHeader, stored: DType, pos: usize) -> Stream {
        let row_bytes = header.itemsize() * header.shape[1..].iter().product::<usize>();
        Stream {
            source,
            name,
            rows: header.shape[0],
            header,
            stored,
            row_bytes,
            pos,
            chunk: None,
        }
    }

    /// Read `buf.len()` bytes of element data (whole rows).
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        match &mut self.source {
            Source::Image(r) => {
                let got = r.read_chunk(buf)?.len();
                if got != buf.len() {
                    return Err(format_err(&self.name, "truncated data"));
                }
                Ok(())
            }
            Source::Raw(s) => s.read_exact(buf).map_err(|e| stream_err(e, &self.name)),
        }
    }

    /// The header of a run of `n` rows (its data at offset 0), and whether its bytes
    /// are usable as they are (native byte order, C order: no conversion).
    fn run_header(&self, n: usize) -> Result<(NpyHeader, bool)> {
        let mut h = self.header.clone();
        h.shape[0] = n;
        h.data_offset = 0;
        let as_is = npy::obstacle(&h, self.stored, self.stored, 0, 0)?.is_none();
        Ok((h, as_is))
    }

    /// The next `n` rows as one tensor (converted to native byte order).
    fn read_rows(&mut self, n: usize) -> Result<Tensor> {
        let (h, as_is) = self.run_header(n)?;
        let mut shape = h.shape;
        if as_is {
            if let Source::Raw(s) = &mut self.source {
                // The rows the GET body at hand holds whole, used where they lie.
                s.wait_ready().map_err(|e| stream_err(e, &self.name))?;
                let whole = (s.at_hand() / self.row_bytes).min(n);
                if whole > 0 {
                    let b = s
                        .take_at_hand(whole * self.row_bytes)
                        .map_err(|e| stream_err(e, &self.name))?;
                    shape[0] = whole;
                    let t = match over_bytes(b.clone(), self.stored, &shape) {
                        Ok(t) => t,
                        // Not aligned for the dtype: copied.
                        Err(_) => npy::build_filled(self.stored, &shape, |buf| {
                            buf.copy_from_slice(&b);
                            Ok(())
                        })?,
                    };
                    self.pos += whole;
                    return Ok(t);
                }
                // A row that straddles two GETs: copied alone (rows longer than a
                // GET: the chunk asked for).
                if self.row_bytes < s.get_bytes() as usize {
                    return self.read_rows_copied(1);
                }
            }
        }
        self.read_rows_copied(n)
    }

    /// [`Self::read_rows`], the rows copied out of the source.
    fn read_rows_copied(&mut self, n: usize) -> Result<Tensor> {
        let (h, as_is) = self.run_header(n)?;
        let t = if as_is {
            npy::build_filled(self.stored, &h.shape, |buf| self.fill(buf))?
        } else {
            let mut data = vec![0u8; n * self.row_bytes];
            self.fill(&mut data)?;
            npy::convert_from(&h, &data, self.stored, self.stored, &LoadOptions::default())?
        };
        self.pos += n;
        Ok(t)
    }

    /// Discard rows up to row `to` (an `.npz` member restored mid-way).
    fn skip_to(&mut self, to: usize) -> Result<()> {
        let mut buf = vec![0u8; chunk_rows(self.row_bytes) * self.row_bytes];
        while self.pos < to {
            let n = (to - self.pos).min(chunk_rows(self.row_bytes));
            self.fill(&mut buf[..n * self.row_bytes])?;
            self.pos += n;
        }
        Ok(())
    }

    /// Row `i` (the next one, or one of the current chunk).
    fn row(&mut self, i: usize) -> Result<Tensor> {
        if self.row_bytes == 0 {
            // Rows of no elements: nothing to read (and no chunk to index into).
            // (The buffer has no bytes: `build_filled`'s "fill writes it all" holds.)
            return npy::build_filled(self.stored, &self.header.shape[1..], |_| Ok(()));
        }
        let hit = |c: &Option<(Tensor, usize)>| {
            c.as_ref()
                .is_some_and(|(t, s)| i >= *s && i < s + t.shape()[0])
        };
        if !hit(&self.chunk) {
            if i != self.pos || i >= self.rows {
                return Err(Error::InvalidArgument(format!(
                    "{}: row {i} asked of a stream at row {}",
                    self.name, self.pos
                )));
            }
            self.chunk = None; // free the old chunk before the next one is read
            let n = chunk_rows(self.row_bytes).min(self.rows - i);
            self.chunk = Some((self.read_rows(n)?, i));
        }
        let (t, s) = self.chunk.as_ref().expect("a chunk holding row i");
        t.index(&[Index::At((i - s) as isize)])
    }
}

/// Rows per chunk for rows of `row_bytes` bytes.
fn chunk_rows(row_bytes: usize) -> usize {
    (CHUNK_BYTES / row_bytes.max(1)).max(1)
}

/// The rows of an opened remote file, read in order from a starting row.
pub(crate) struct RemoteRows {
    streams: Vec<Stream>,
}

/// Check a component's header against the plan; its stored dtype.
fn check(
    h: &NpyHeader,
    entry: &FileEntry,
    want: &(DType, Vec<usize>),
    what: &str,
) -> Result<DType> {
    let d = h.resolve_dtype(None, what)?;
    let ok = h.shape.first() == Some(&entry.rows) && h.shape[1..] == want.1[..];
    if d != want.0 || !ok {
        return Err(Error::Format {
            path: what.to_string(),
            reason: format!(
                "changed since the dataset was made: it now holds shape {:?} ({d}), expected {} rows of shape {:?} ({})",
                h.shape, entry.rows, want.1, want.0
            ),
        });
    }
    Ok(d)
}

/// Whether rows of `h` are not whole C-ordered runs of the file: Fortran order with
/// more than one dimension (even a single row of several dimensions is stored
/// column-major).
fn rows_apart(h: &NpyHeader) -> bool {
    h.fortran_order && h.shape.len() > 1
}

impl RemoteRows {
    /// Open `entry` for streaming from row `start`. `None`: it is a local file, or
    /// its rows lie apart in it (Fortran order): the caller reads it whole.
    /// `ahead`: the object opened ahead ([`Opening::start`]; used when `start` is 0).
    /// A remote `.npy` object whose header is known ([`KnownObject`](crate::data::remote_files::KnownObject)) is streamed
    /// within `budget` with no request to open it.
    pub(crate) fn open(
        entry: &FileEntry,
        plan: &FilesPlan,
        start: usize,
        ahead: Option<Opening>,
        budget: Option<&Budget>,
    ) -> Result<Option<Self>> {
        let so = &plan.storage_options;
        let loc = location(&entry.path, so)?;
        let Location::Remote(url) = &loc else {
            return Ok(None);
        };
        let name = url.as_str().to_string();
        let mut streams = Vec::with_capacity(plan.spec.len());
        if let (Some((obj, h, range)), Some(budget)) =
            (known_range(entry, plan, url, start)?, budget)
        {
            // The header was read when the dataset was made: no request to open it.
            let stored = check(&h, entry, &plan.spec[0], &name)?;
            if rows_apart(&h) {
                return Ok(None);
            }
            let mut s = match ahead {
                Some(a) if start == 0 => a.stream,
                _ => ObjectStream::budgeted(&obj, range, budget)?,
            };
            // Its first GET's answer: a missing or replaced object fails here, where
            // it is opened (and is skipped at its own place under on_error="skip").
            s.wait_ready().map_err(|e| stream_err(e, &name))?;
            streams.push(Stream::new(Source::Raw(s), name, h, stored, start));
            return Ok(Some(RemoteRows { streams }));
        }
        match &plan.keys {
            None => {
                // One GET: the header and the first rows (no HEAD).
                let (obj, head) = RemoteObject::open_reading(url, OPEN_FIRST)?;
                let mut parts = vec![head.clone()];
                let h = npy::remote::header_from_head(&obj, head.clone())?;
                npy::check_data_fits(&h, obj.size(), &name)?;
                let stored = check(&h, entry, &plan.spec[0], &name)?;
                if rows_apart(&h) {
                    return Ok(None);
                }
                let row_bytes = h.itemsize() * h.shape[1..].iter().product::<usize>();
                let at = |r: usize| (h.data_offset + r * row_bytes) as u64;
                let range = at(start.min(entry.rows))..at(entry.rows);
                let s = match head.get(range.start as usize..) {
                    // The rows from `start` begin inside the first read: stream on after it.
                    // (Bytes read ahead past the first read follow it.)
                    Some(rows) => {
                        parts[0] = head.slice_ref(rows);
                        ObjectStream::after_parts(&obj, parts, range)?
                    }
                    _ => ObjectStream::new(&obj, range)?,
                };
                streams.push(Stream::new(Source::Raw(s), name, h, stored, start));
            }
            Some(keys) => {
                if crate::format::detect_location(&loc) != Some(FileFormat::Npz) {
                    return Err(format_err(&name, "is not an .npz archive"));
                }
                let archive = NpzArchive::open_location(&loc)?;
                for (k, want) in keys.iter().zip(&plan.spec) {
                    let what = format!("{name}:{k}");
                    let start = start.min(entry.rows);
                    if start > 0 {
                        if let Some((obj, at, len)) = archive.remote_stored_image(k)? {
                            // A stored member restored mid-way: a ranged read from the row.
                            let h = archive.header(k)?;
                            npy::check_data_fits(&h, len, &what)?;
                            let stored = check(&h, entry, want, &what)?;
                            if rows_apart(&h) {
                                return Ok(None);
                            }
                            let rb = h.itemsize() * h.shape[1..].iter().product::<usize>();
                            let from = at + (h.data_offset + start * rb) as u64;
                            let to = at + (h.data_offset + entry.rows * rb) as u64;
                            let s = ObjectStream::new(&obj, from..to)?;
                            streams.push(Stream::new(Source::Raw(s), what, h, stored, start));
                            continue;
                        }
                    }
                    let reader = archive
                        .remote_reader(k)?
                        .ok_or_else(|| format_err(&what, "is not a remote archive"))?;
                    let h = reader.header().clone();
                    let stored = check(&h, entry, want, &what)?;
                    if rows_apart(&h) {
                        return Ok(None);
                    }
                    let mut s = Stream::new(Source::Image(reader), what, h, stored, 0);
                    s.skip_to(start)?;
                    streams.push(s);
                }
            }
        }
        Ok(Some(RemoteRows { streams }))
    }

    /// Row `i` (rows are asked for in order): one tensor per component, copied out
    /// of its chunk when `copy` (else a view that keeps the chunk alive).
    pub(crate) fn row(&mut self, i: usize, copy: bool) -> Result<Item> {
        self.streams
            .iter_mut()
            .map(|s| {
                let r = s.row(i)?;
                Ok(Comp::Ready(if copy {
                    crate::data::files::copy_row(&r)?
                } else {
                    r
                }))
            })
            .collect()
    }
}

/// Row `row` of the remote file `entry` alone, copied out (re-making one element of
/// a saved state): for an `.npy` object one ranged read of that row's bytes; for
/// `.npz` members a stream up to it. `None`: a local file or rows that lie apart
/// (the caller opens the file whole).
pub(crate) fn read_one_row(
    entry: &FileEntry,
    plan: &FilesPlan,
    row: usize,
) -> Result<Option<Item>> {
    let so = &plan.storage_options;
    let loc = location(&entry.path, so)?;
    let Location::Remote(url) = &loc else {
        return Ok(None);
    };
    if plan.keys.is_none() {
        let name = url.as_str();
        let (obj, head) = RemoteObject::open_reading(url, npy::remote::HEAD)?;
        let h = npy::remote::header_from_head(&obj, head)?;
        npy::check_data_fits(&h, obj.size(), name)?;
        let stored = check(&h, entry, &plan.spec[0], name)?;
        if rows_apart(&h) {
            return Ok(None);
        }
        let row_bytes = h.itemsize() * h.shape[1..].iter().product::<usize>();
        let at = (h.data_offset + row * row_bytes) as u64;
        let bytes = obj.get_range(at..at + row_bytes as u64)?;
        let mut one = h.clone();
        one.shape[0] = 1;
        one.data_offset = 0;
        let t = npy::convert_from(&one, &bytes, stored, stored, &LoadOptions::default())?;
        return Ok(Some(vec![Comp::Ready(t.index(&[Index::At(0)])?)]));
    }
    let Some(mut rows) = RemoteRows::open(entry, plan, row, None, None)? else {
        return Ok(None);
    };
    rows.row(row, true).map(Some)
}

#[cfg(test)]
#[path = "remote_rows_tests.rs"]
mod tests;
