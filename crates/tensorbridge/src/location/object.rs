//! [`RemoteObject`]: one object of a store, opened for ranged reads that all see
//! the same version of it.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::config::store_for;
use super::errors::{retryable, store_err};
use super::runtime::block_on;
use super::RemoteUrl;
use crate::error::{Error, Result};

/// Bytes per ranged GET when a large range is read concurrently.
pub const PIECE: usize = 8 << 20;
/// Ranged GETs in flight at once for one large read.
pub(crate) const IN_FLIGHT: usize = 8;
/// Attempts at a range whose body failed mid-way (object_store retries the
/// requests themselves).
const BODY_ATTEMPTS: usize = 3;

/// An object of a store, opened with one HEAD request: its size and ETag are
/// remembered, and every ranged read asks for that ETag (`If-Match`), so a read
/// never mixes two versions of the object. Cheap to clone (the store is shared).
#[derive(Clone)]
pub struct RemoteObject {
    store: Arc<dyn ObjectStore>,
    path: ObjPath,
    url: String,
    size: u64,
    etag: Option<String>,
}

impl std::fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteObject")
            .field("url", &self.url)
            .field("size", &self.size)
            .field("etag", &self.etag)
            .finish()
    }
}

/// An object found by a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its URL.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
}

impl RemoteObject {
    /// Open the object at `remote` (one HEAD request).
    pub fn open(remote: &RemoteUrl) -> Result<RemoteObject> {
        let (store, path) = store_for(remote)?;
        Self::open_in(store, path, remote.as_str())
    }

    /// Open the object at `path` of `store`, named `url` in errors (one HEAD request).
    pub fn open_in(store: Arc<dyn ObjectStore>, path: ObjPath, url: &str) -> Result<RemoteObject> {
        super::stats::record_head();
        let meta = block_on(store.head(&path))?.map_err(|e| store_err(url, e))?;
        Ok(RemoteObject {
            store,
            path,
            url: url.to_string(),
            size: meta.size,
            etag: meta.e_tag,
        })
    }

    /// The object at `remote` as an earlier reader saw it — `size` bytes, ETag
    /// `etag` — opened with no request at all: every read asks for that ETag
    /// (`If-Match`) and checks the size, so an object replaced since is an
    /// [`Error::ObjectChanged`], never bytes of another version. (What a distributed
    /// read task needs when its driver has already read the header.)
    pub fn known(remote: &RemoteUrl, size: u64, etag: Option<String>) -> Result<RemoteObject> {
        let (store, path) = store_for(remote)?;
        Ok(RemoteObject {
            store,
            path,
            url: remote.as_str().to_string(),
            size,
            etag,
        })
    }

    /// Open the object at `remote` with one ranged GET of its first `first` bytes
    /// (fewer for a smaller object), no HEAD: that response gives the object's size
    /// and ETag. Returns the object and those bytes. (A 0-byte object, whose range
    /// servers refuse, costs a HEAD after the refused GET.)
    pub fn open_reading(remote: &RemoteUrl, first: usize) -> Result<(RemoteObject, Bytes)> {
        block_on(Self::open_reading_async(remote, first))?
    }

    /// [`Self::open_reading`] as a future (for many objects opened concurrently).
    pub(crate) async fn open_reading_async(
        remote: &RemoteUrl,
        first: usize,
    ) -> Result<(RemoteObject, Bytes)> {
        let (obj, res) = Self::first_response(remote, first).await?;
        let head = obj.first_body(res, first).await?;
        Ok((obj, head))
    }

    /// Open the object at `remote` to read it whole: one ranged GET of its first
    /// `first` bytes, of whose body only the first `head` bytes (fewer for a smaller
    /// object) are awaited and returned; the rest of that body is left streaming in
    /// as a [`FirstBody`], for [`Self::fill_whole`] to write straight into its
    /// destination (dropping it cancels the request). No HEAD: the response gives
    /// the object's size and ETag.
    pub fn open_streaming(
        remote: &RemoteUrl,
        first: usize,
        head: usize,
    ) -> Result<(RemoteObject, Bytes, FirstBody)> {
        block_on(async {
            let (obj, res) = Self::first_response(remote, first).await?;
            let Some(res) = res else {
                return Ok((obj, Bytes::new(), FirstBody::done(0)));
            };
            let end = obj.size.min(first.max(1) as u64);
            let want = end.min(head.max(1) as u64);
            let mut stream = res.into_stream();
            let mut got = bytes::BytesMut::new();
            while (got.len() as u64) < want {
                match stream.next().await {
                    Some(Ok(chunk)) if got.len() as u64 + chunk.len() as u64 <= end => {
                        got.extend_from_slice(&chunk)
                    }
                    Some(Ok(_)) => return Err(obj.too_long(0..end)),
                    // A failed or short body: its first bytes again by range
                    // (If-Match); the rest of the first range is read by range too.
                    Some(Err(_)) | None => {
                        let bytes = obj.get_async(0..want).await?;
                        return Ok((obj, bytes, FirstBody::done(want)));
                    }
                }
            }
            let at = got.len() as u64;
            let body = FirstBody {
                stream: Some(stream),
                at,
                end,
            };
            Ok((obj, got.freeze(), body))
        })?
    }

    /// The first GET of `open_*` (bytes `0..first`), up to its response's headers:
    /// the object (size and ETag from them) and the response, whose body is still to
    /// be read (`None` for a 0-byte object).
    async fn first_response(
        remote: &RemoteUrl,
        first: usize,
    ) -> Result<(RemoteObject, Option<object_store::GetResult>)> {
        let (store, path) = store_for(remote)?;
        let url = remote.as_str();
        let first = first.max(1) as u64;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(0..first)),
            ..GetOptions::default()
        };
        super::stats::record(first);
        let got = store.get_opts(&path, opts).await;
        let make = |size: u64, etag: Option<String>| RemoteObject {
            store: store.clone(),
            path: path.clone(),
            url: url.to_string(),
            size,
            etag,
        };
        match got {
            Ok(res) => {
                let obj = make(res.meta.size, res.meta.e_tag.clone());
                Ok((obj, Some(res)))
            }
            Err(e) => {
                let refused = range_refused(&e);
                let err = store_err(url, e);
                if !refused {
                    return Err(err);
                }
                // A range of a 0-byte object is refused (HTTP 416): only a HEAD can
                // tell that object from a failure.
                super::stats::record_head();
                match store.head(&path).await {
                    Ok(meta) if meta.size == 0 => Ok((make(0, meta.e_tag), None)),
                    _ => Err(err),
                }
            }
        }
    }

    /// The body of the first response (`first` bytes asked for), checked; read
    /// again by range (with `If-Match`) when it fails mid-way.
    async fn first_body(
        &self,
        res: Option<object_store::GetResult>,
        first: usize,
    ) -> Result<Bytes> {
        let Some(res) = res else {
            return Ok(Bytes::new());
        };
        let want = self.size.min(first.max(1) as u64);
        match res.bytes().await {
            Ok(b) if b.len() as u64 == want => Ok(b),
            Ok(b) => Err(Error::Remote {
                url: self.url.clone(),
                reason: format!(
                    "a ranged read of bytes 0..{want} returned {} bytes",
                    b.len()
                ),
            }),
            Err(e) => {
                let err = store_err(&self.url, e);
                if !retryable(&err) {
                    return Err(err);
                }
                self.get_async(0..want).await
            }
        }
    }

    /// The object's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its size in bytes, as the first request saw it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its ETag, as the first request saw it.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    fn changed(&self, why: String) -> Error {
        Error::ObjectChanged {
            url: self.url.clone(),
            reason: why,
        }
    }

    /// An error: a ranged read of `range` returned more bytes than asked for.
    fn too_long(&self, range: Range<u64>) -> Error {
        Error::Remote {
            url: self.url.clone(),
            reason: format!(
                "a ranged read of bytes {}..{} returned more bytes than that",
                range.start, range.end
            ),
        }
    }

    /// An error: a ranged read of `range` returned `got` bytes.
    fn short(&self, range: Range<u64>, got: u64) -> Error {
        let want = range.end - range.start;
        Error::Remote {
            url: self.url.clone(),
            reason: format!(
                "a ranged read of bytes {}..{} returned {got} bytes instead of {want}",
                range.start, range.end
            ),
        }
    }

    /// One ranged GET of `range` (within the object) up to its response's headers,
    /// checked: the same ETag (asked for with `If-Match`) and size.
    async fn ranged_response(&self, range: Range<u64>) -> Result<object_store::GetResult> {
        let opts = GetOptions {
            if_match: self.etag.clone(),
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        super::stats::record(range.end - range.start);
        let res = self
            .store
            .get_opts(&self.path, opts)
            .await
            .map_err(|e| store_err(&self.url, e))?;
        if let (Some(want), Some(got)) = (&self.etag, &res.meta.e_tag) {
            if want != got {
                return Err(self.changed(format!("ETag {got} instead of {want}")));
            }
        }
        if res.meta.size != self.size {
            return Err(self.changed(format!("{} bytes instead of {}", res.meta.size, self.size)));
        }
        Ok(res)
    }

    /// One ranged GET of `range` (checked as [`Self::ranged_response`]), each piece of
    /// its body handed to `put` with its offset in the range as it arrives. `Ok` only
    /// when exactly the range's bytes came (never more are handed over).
    async fn each_piece(&self, range: Range<u64>, mut put: impl FnMut(usize, &[u8])) -> Result<()> {
        let len = (range.end - range.start) as usize;
        let res = self.ranged_response(range.clone()).await?;
        let mut stream = res.into_stream();
        let mut pos = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| store_err(&self.url, e))?;
            if pos + chunk.len() > len {
                return Err(self.too_long(range));
            }
            put(pos, &chunk);
            pos += chunk.len();
        }
        if pos != len {
            return Err(self.short(range, pos as u64));
        }
        Ok(())
    }

    /// One ranged GET of `range`, checked (see [`Self::ranged_response`]): exactly
    /// the bytes asked for.
    ///
    /// The body is joined in a reused buffer ([`super::pool`]).
    async fn get_once(&self, range: Range<u64>) -> Result<Bytes> {
        let mut buf = super::pool::take((range.end - range.start) as usize);
        self.each_piece(range, |_, piece| buf.extend_from_slice(piece))
            .await?;
        Ok(super::pool::freeze(buf))
    }

    /// One ranged GET of `range` (checked as [`Self::ranged_response`]), its body
    /// written into `dst` (as long as the range) chunk by chunk as it arrives: no
    /// buffer of the whole range. `Ok` only when every byte of `dst` was written.
    async fn get_into_once(&self, range: Range<u64>, dst: &mut [u8]) -> Result<()> {
        if dst.len() as u64 != range.end - range.start {
            return Err(Error::InvalidArgument(format!(
                "{}: a destination of {} bytes for bytes {}..{}",
                self.url,
                dst.len(),
                range.start,
                range.end
            )));
        }
        self.each_piece(range, |at, piece| {
            dst[at..at + piece.len()].copy_from_slice(piece)
        })
        .await
    }

    /// [`Self::get_into_once`], tried again when the body fails mid-way: each try
    /// restarts the range and writes all of `dst` again, so a partly written
    /// destination is never left as it is.
    async fn get_into(&self, range: Range<u64>, dst: &mut [u8]) -> Result<()> {
        self.check_within(&range)?;
        if range.start == range.end {
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            match self.get_into_once(range.clone(), dst).await {
                Err(e) if attempt < BODY_ATTEMPTS && retryable(&e) => attempt += 1,
                r => return r,
            }
        }
    }

    /// An error unless `range` lies within the object.
    fn check_within(&self, range: &Range<u64>) -> Result<()> {
        if range.end > self.size || range.start > range.end {
            return Err(Error::Remote {
                url: self.url.clone(),
                reason: format!(
                    "bytes {}..{} lie outside the object of {} bytes",
                    range.start, range.end, self.size
                ),
            });
        }
        Ok(())
    }

    /// [`Self::get_once`], tried again when the body fails mid-way.
    pub(crate) async fn get_async(&self, range: Range<u64>) -> Result<Bytes> {
        self.check_within(&range)?;
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        let mut attempt = 1;
        loop {
            match self.get_once(range.clone()).await {
                Err(e) if attempt < BODY_ATTEMPTS && retryable(&e) => attempt += 1,
                r => return r,
            }
        }
    }

    /// The bytes of `range` (one request).
    pub fn get_range(&self, range: Range<u64>) -> Result<Bytes> {
        block_on(self.get_async(range))?
    }

    /// Up to `len` bytes from `offset` (fewer at the end of the object).
    pub fn get_upto(&self, offset: u64, len: usize) -> Result<Bytes> {
        let end = offset.saturating_add(len as u64).min(self.size);
        self.get_range(offset.min(end)..end)
    }

    /// Fill `buf` with the object's bytes from `offset`: pieces of several MiB read
    /// concurrently (several in flight), each written into place chunk by chunk as
    /// its body arrives.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        block_on(self.read_into_async(offset, buf))?
    }

    /// [`Self::read_into`] as a future.
    async fn read_into_async(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut parts = Vec::new();
        let mut rest = buf;
        for r in split(offset..offset + rest.len() as u64) {
            let (part, after) = std::mem::take(&mut rest).split_at_mut((r.end - r.start) as usize);
            parts.push((r, part));
            rest = after;
        }
        futures::stream::iter(parts)
            .map(|(r, dst)| self.get_into(r, dst))
            .buffer_unordered(IN_FLIGHT)
            .try_for_each(|()| futures::future::ready(Ok(())))
            .await
    }

    /// Fill `buf` with the object's bytes from `offset`, for an object opened by
    /// [`Self::open_streaming`]: `head` (its first bytes) and `body` (the rest of
    /// that first GET, written into place as it streams in) where they reach, the
    /// rest by [`Self::read_into`]'s concurrent ranges, all at once. A first body
    /// that fails or ends early is read again by range, rewriting its whole part of
    /// `buf`. Every byte of `buf` is written, or an error.
    pub fn fill_whole(
        &self,
        head: &[u8],
        body: FirstBody,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let end = offset + buf.len() as u64;
        self.check_within(&(offset..end))?;
        let h = head.len() as u64;
        // `buf` in three parts: from `head`, from the first body, by range.
        let from_head = h.clamp(offset, end) - offset;
        let body_end = body.end.max(body.at).clamp(offset, end);
        let from_body = body_end - (offset + from_head).min(body_end);
        let (in_head, rest) = buf.split_at_mut(from_head as usize);
        let (in_body, by_range) = rest.split_at_mut(from_body as usize);
        let lo = offset.max(h);
        let from = offset.min(h) as usize;
        in_head.copy_from_slice(&head[from..from + from_head as usize]);
        block_on(async {
            let first = self.body_into(body, lo, in_body);
            let rest = self.read_into_async(lo + from_body, by_range);
            futures::try_join!(first, rest).map(|_| ())
        })?
    }

    /// Write the first body's bytes `lo..lo + dst.len()` into `dst` as they stream
    /// in; if the stream fails or ends early, read that whole range again by range.
    async fn body_into(&self, body: FirstBody, lo: u64, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let hi = lo + dst.len() as u64;
        if let Some(mut stream) = body.stream {
            let mut at = body.at;
            // A failed or ended stream leaves the loop: the range is read again whole.
            while let Some(Ok(chunk)) = stream.next().await {
                let c_end = at + chunk.len() as u64;
                let (a, b) = (at.max(lo), c_end.min(hi));
                if a < b {
                    dst[(a - lo) as usize..(b - lo) as usize]
                        .copy_from_slice(&chunk[(a - at) as usize..(b - at) as usize]);
                }
                at = c_end;
                if at >= hi {
                    return Ok(());
                }
            }
        }
        self.get_into(lo..hi, dst).await
    }

    /// The bytes of several ranges, fetched concurrently, in the order asked.
    pub fn get_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        block_on(
            futures::stream::iter(ranges.iter().cloned())
                .map(|r| self.get_async(r))
                .buffered(IN_FLIGHT)
                .try_collect(),
        )?
    }
}

/// Whether `e` is a store's refusal of a range (HTTP 416 Range Not Satisfiable;
/// the in-memory store's own message): what a range of a 0-byte object gets.
/// object_store keeps the status inside its error's text only.
fn range_refused(e: &object_store::Error) -> bool {
    let text = e.to_string();
    text.contains("416 Range Not Satisfiable")
        || text.contains("Wanted range starting at 0, but object was only 0 bytes long")
}

/// `range` cut into ranges of about [`PIECE`] bytes, of equal length (give or take
/// a byte), at most a quarter longer than a piece: a range a few bytes longer than
/// a piece stays one request.
pub(crate) fn split(range: Range<u64>) -> impl Iterator<Item = Range<u64>> {
    let len = range.end.saturating_sub(range.start);
    let n = len.div_ceil(PIECE as u64 + PIECE as u64 / 4).max(1);
    let (base, extra) = (len / n, len % n);
    let mut at = range.start;
    (0..n).filter(move |_| len > 0).map(move |i| {
        let r = at..at + base + u64::from(i < extra);
        at = r.end;
        r
    })
}

/// The rest of the body of an object's first GET ([`RemoteObject::open_streaming`]),
/// still streaming in: bytes `at..end` of the object. Dropping it cancels the request.
pub struct FirstBody {
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    at: u64,
    end: u64,
}

impl std::fmt::Debug for FirstBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstBody")
            .field("at", &self.at)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl FirstBody {
    /// A first body with nothing left after byte `at`.
    fn done(at: u64) -> FirstBody {
        FirstBody {
            stream: None,
            at,
            end: at,
        }
    }
}

/// The objects under the prefix `remote` (its path up to the last `/`, plus
/// whatever follows as a name prefix), sorted by URL.
pub fn list(remote: &RemoteUrl) -> Result<Vec<ObjectInfo>> {
    let (store, path) = store_for(remote)?;
    let text = remote.as_str();
    let full = path.as_ref();
    let (dir, stem) = if text.ends_with('/') {
        (full, "")
    } else {
        full.rsplit_once('/').unwrap_or(("", full))
    };
    let base = &remote.url()[..url::Position::BeforePath];
    let prefix = (!dir.is_empty()).then(|| ObjPath::from(dir));
    let metas: Vec<object_store::ObjectMeta> =
        block_on(store.list(prefix.as_ref()).try_collect::<Vec<_>>())?
            .map_err(|e| store_err(text, e))?;
    let mut out: Vec<ObjectInfo> = metas
        .into_iter()
        .filter(|m| {
            let loc = m.location.as_ref();
            let name = loc.strip_prefix(dir).unwrap_or(loc).trim_start_matches('/');
            name.starts_with(stem)
        })
        .map(|m| ObjectInfo {
            url: format!("{base}/{}", m.location.as_ref()),
            size: m.size,
        })
        .collect();
    out.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(out)
}
