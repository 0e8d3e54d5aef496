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
pub(crate) const PIECE: usize = 8 << 20;
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
        let meta = block_on(store.head(&path))?.map_err(|e| store_err(url, e))?;
        Ok(RemoteObject {
            store,
            path,
            url: url.to_string(),
            size: meta.size,
            etag: meta.e_tag,
        })
    }

    /// [`Self::open`] as a future (for many objects opened concurrently).
    pub(crate) async fn open_async(remote: &RemoteUrl) -> Result<RemoteObject> {
        let (store, path) = store_for(remote)?;
        let url = remote.as_str();
        let meta = store.head(&path).await.map_err(|e| store_err(url, e))?;
        Ok(RemoteObject {
            store,
            path,
            url: url.to_string(),
            size: meta.size,
            etag: meta.e_tag,
        })
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
        let pieces: Vec<(usize, Range<u64>)> = (0..buf.len())
            .step_by(PIECE)
            .map(|s| {
                let e = (s + PIECE).min(buf.len());
                (s, offset + s as u64..offset + e as u64)
            })
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
