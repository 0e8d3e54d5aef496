//! [`RemoteObject`]: one object of a store, opened for ranged reads that all see
//! the same version of it.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
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
    /// `first` bytes and, as soon as that response's headers give the object's
    /// size, the rest of it in ranges of several MiB, several in flight, while the
    /// first body streams in. Returns the object, its first bytes and the rest as
    /// [`Pieces`] (in the order they arrive). A 16 MiB object with `first` = 8 MiB
    /// costs two GETs, both in flight at once.
    pub fn open_whole(remote: &RemoteUrl, first: usize) -> Result<(RemoteObject, Bytes, Pieces)> {
        block_on(async {
            let (obj, res) = Self::first_response(remote, first).await?;
            let have = obj.size.min(first as u64);
            let pieces = Pieces::start(&obj, have..obj.size)?;
            let head = obj.first_body(res, first).await?;
            Ok((obj, head, pieces))
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

    /// One ranged GET of `range` (within the object), checked: the same ETag, and
    /// exactly the bytes asked for.
    async fn get_once(&self, range: Range<u64>) -> Result<Bytes> {
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
        let bytes = res.bytes().await.map_err(|e| store_err(&self.url, e))?;
        let want = (range.end - range.start) as usize;
        if bytes.len() != want {
            return Err(Error::Remote {
                url: self.url.clone(),
                reason: format!(
                    "a ranged read of bytes {}..{} returned {} bytes instead of {want}",
                    range.start,
                    range.end,
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }

    /// [`Self::get_once`], tried again when the body fails mid-way.
    pub(crate) async fn get_async(&self, range: Range<u64>) -> Result<Bytes> {
        if range.end > self.size || range.start > range.end {
            return Err(Error::Remote {
                url: self.url.clone(),
                reason: format!(
                    "bytes {}..{} lie outside the object of {} bytes",
                    range.start, range.end, self.size
                ),
            });
        }
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
    /// concurrently (several in flight), each copied into place as it arrives.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let pieces: Vec<(usize, Range<u64>)> = split(offset..offset + buf.len() as u64)
            .map(|r| ((r.start - offset) as usize, r))
            .collect();
        block_on(async {
            let mut results = futures::stream::iter(pieces)
                .map(|(s, r)| async move { (s, self.get_async(r).await) })
                .buffer_unordered(IN_FLIGHT);
            while let Some((s, bytes)) = results.next().await {
                let bytes = bytes?;
                buf[s..s + bytes.len()].copy_from_slice(&bytes);
            }
            Ok(())
        })?
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

/// The rest of an object opened by [`RemoteObject::open_whole`]: ranges of several
/// MiB fetched concurrently (several in flight) on the shared runtime, handed out in
/// the order they arrive. Dropping it cancels the requests in flight.
pub struct Pieces {
    rx: tokio::sync::mpsc::Receiver<(u64, Result<Bytes>)>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Pieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pieces").finish_non_exhaustive()
    }
}

impl Pieces {
    fn start(obj: &RemoteObject, range: Range<u64>) -> Result<Pieces> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let obj = obj.clone();
        let ranges: Vec<Range<u64>> = split(range).collect();
        let task = super::runtime::spawn(async move {
            let mut gets = futures::stream::iter(ranges)
                .map(|r| {
                    let obj = obj.clone();
                    async move { (r.start, obj.get_async(r).await) }
                })
                .buffer_unordered(IN_FLIGHT);
            while let Some((at, res)) = gets.next().await {
                let stop = res.is_err();
                if tx.send((at, res)).await.is_err() || stop {
                    break;
                }
            }
        })?;
        Ok(Pieces { rx, task })
    }

    /// The next piece to arrive: its offset in the object and its bytes; `None`
    /// when every piece has been handed out.
    pub fn next_piece(&mut self) -> Result<Option<(u64, Bytes)>> {
        match block_on(self.rx.recv())? {
            Some((at, res)) => res.map(|b| Some((at, b))),
            None => Ok(None),
        }
    }
}

impl Drop for Pieces {
    fn drop(&mut self) {
        self.task.abort();
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
