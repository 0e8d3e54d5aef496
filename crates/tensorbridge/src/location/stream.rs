//! [`ObjectStream`]: an object's bytes read in order, with read-ahead.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::object::RemoteObject;
use super::runtime::{block_on, spawn};
use crate::error::{Error, Result};

/// Bytes per ranged GET of a stream.
const CHUNK: u64 = 4 << 20;
/// Ranged GETs in flight ahead of the reader (with [`CHUNK`]: 16 MiB, besides the
/// chunk being read and one waiting).
const AHEAD: usize = 4;

/// Ranged GETs a budgeted stream keeps in flight at most (the budget bounds them too).
const BUDGETED_AHEAD: usize = 8;

/// A read-ahead budget shared by several [`ObjectStream`]s of one reader (e.g. the
/// objects a `from_files` iterator has open and the ones it opens ahead): each GET
/// of a budgeted stream holds one unit (one GET of at most [`Budget::get_bytes`]) from the
/// moment it is issued until the reader has consumed its body, so the bytes
/// requested but not yet read stay within the budget, plus one GET per stream
/// (each stream may always have one GET of its own, so a stream read next never
/// waits for bytes held by a stream read later: no deadlock). Units are handed out
/// first come first served, i.e. roughly in the order the streams were started.
#[derive(Clone, Debug)]
pub struct Budget {
    shared: Arc<Semaphore>,
    get: u64,
}

impl Budget {
    /// A budget of `bytes` for GETs of `get_bytes` each (at least one GET).
    pub fn new(bytes: usize, get_bytes: usize) -> Budget {
        let get_bytes = get_bytes.max(1);
        Budget {
            shared: Arc::new(Semaphore::new((bytes / get_bytes).max(1))),
            get: get_bytes as u64,
        }
    }

    /// Bytes of one GET of a stream within this budget.
    pub fn get_bytes(&self) -> u64 {
        self.get
    }
}

/// A body and the budget unit it holds (`None`: an unbudgeted stream).
type Body = (Bytes, Option<OwnedSemaphorePermit>);

/// A range of an object read in order (`Read`): ranged GETs of a few MiB run ahead
/// of the reader on the shared runtime (memory is bounded by a few chunks, whatever
/// the object's size). Dropping the stream cancels the requests in flight.
pub struct ObjectStream {
    rx: Option<mpsc::Receiver<Result<Body>>>,
    pending: Option<(RemoteObject, Vec<Range<u64>>)>,
    current: Bytes,
    /// The budget unit `current`'s GET holds (released once it is read).
    current_unit: Option<OwnedSemaphorePermit>,
    budget: Option<Budget>,
    /// Bytes at hand that follow `current` (read before the stream's GETs).
    queued: std::collections::VecDeque<Bytes>,
    task: Option<tokio::task::JoinHandle<()>>,
    url: String,
    finished: bool,
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("url", &self.url)
            .finish()
    }
}

impl ObjectStream {
    /// Stream `range` of `object` (clamped to the object).
    pub fn new(object: &RemoteObject, range: Range<u64>) -> Result<ObjectStream> {
        let end = range.end.min(object.size());
        let start = range.start.min(end);
        // Small first chunks, so a reader that wants only the start (a header) waits
        // for little; then full chunks.
        let mut chunks = vec![];
        let mut pos = start;
        let mut size = 256 << 10;
        while pos < end {
            let e = (pos + size).min(end);
            chunks.push(pos..e);
            pos = e;
            size = (size * 4).min(CHUNK);
        }
        Ok(ObjectStream {
            rx: None,
            pending: Some((object.clone(), chunks)),
            current: Bytes::new(),
            current_unit: None,
            budget: None,
            queued: Default::default(),
            task: None,
            url: object.url().to_string(),
            finished: false,
        })
    }

    /// Stream `range` of `object` (clamped to the object) whose first bytes,
    /// `prefix`, are at hand already (read with the object's header): the stream
    /// yields them first, then reads on from `range.start + prefix.len()` in full
    /// chunks.
    pub fn after(object: &RemoteObject, prefix: Bytes, range: Range<u64>) -> Result<ObjectStream> {
        Self::after_parts(object, vec![prefix], range)
    }

    /// [`Self::after`] with the bytes at hand in consecutive parts (each yielded as
    /// it is, no copy into one buffer).
    pub fn after_parts(
        object: &RemoteObject,
        parts: Vec<Bytes>,
        range: Range<u64>,
    ) -> Result<ObjectStream> {
        let end = range.end.min(object.size());
        let start = range.start.min(end);
        let mut room = (end - start) as usize;
        let mut queued = std::collections::VecDeque::with_capacity(parts.len());
        for p in parts {
            let p = p.slice(..p.len().min(room));
            room -= p.len();
            if !p.is_empty() {
                queued.push_back(p);
            }
        }
        let have: usize = queued.iter().map(Bytes::len).sum();
        let mut chunks = vec![];
        let mut pos = start + have as u64;
        while pos < end {
            let e = (pos + CHUNK).min(end);
            chunks.push(pos..e);
            pos = e;
        }
        Ok(ObjectStream {
            rx: None,
            pending: Some((object.clone(), chunks)),
            current: Bytes::new(),
            current_unit: None,
            budget: None,
            queued,
            task: None,
            url: object.url().to_string(),
            finished: false,
        })
    }

    /// Stream `range` of `object` (clamped to the object) in GETs of
    /// [`Budget::get_bytes`] within `budget`, started at once: its GETs go out now
    /// (as far as the budget allows), not at the first read. For a reader that knows
    /// where the bytes it wants lie (an object whose header was read earlier).
    pub fn budgeted(
        object: &RemoteObject,
        range: Range<u64>,
        budget: &Budget,
    ) -> Result<ObjectStream> {
        let end = range.end.min(object.size());
        let mut pos = range.start.min(end);
        let mut chunks = vec![];
        while pos < end {
            let e = (pos + budget.get).min(end);
            chunks.push(pos..e);
            pos = e;
        }
        let mut s = Self::after_parts(object, vec![], range)?;
        s.pending = Some((object.clone(), chunks));
        s.budget = Some(budget.clone());
        s.start().map_err(|e| Error::Remote {
            url: s.url.clone(),
            reason: e.to_string(),
        })?;
        Ok(s)
    }

    /// Start the read-ahead task (on the first read, so a stream made but never read
    /// sends no request).
    fn start(&mut self) -> io::Result<()> {
        let Some((obj, chunks)) = self.pending.take() else {
            return Ok(());
        };
        let (tx, rx) = mpsc::channel(1);
        let budget = self.budget.clone();
        let ahead = if budget.is_some() {
            BUDGETED_AHEAD
        } else {
            AHEAD
        };
        // This stream's own unit (see [`Budget`]).
        let own = Arc::new(Semaphore::new(1));
        let task = spawn(async move {
            let mut gets = futures::stream::iter(chunks)
                .then(move |r| {
                    let obj = obj.clone();
                    let budget = budget.clone();
                    let own = own.clone();
                    async move {
                        // Units are taken in the order of the stream's GETs: the
                        // earliest GET not yet issued is the one that gets the next
                        // unit (so the stream's own unit, freed by the reader, always
                        // goes to the GET the reader waits for: no deadlock).
                        let unit = match budget {
                            None => None,
                            Some(b) => Some(acquire(own, b.shared).await?),
                        };
                        // Each GET its own task: it goes on reading its body while
                        // this task waits for the reader (a future inside `buffered`
                        // would make progress only while this task polls it).
                        Ok::<_, Error>(Detached(tokio::spawn(async move {
                            Ok((obj.get_async(r).await?, unit))
                        })))
                    }
                })
                .map(|get| async move { get?.await })
                .buffered(ahead)
                .boxed();
            while let Some(res) = gets.next().await {
                let stop = res.is_err();
                if tx.send(res).await.is_err() || stop {
                    break;
                }
            }
        })
        .map_err(to_io)?;
        self.rx = Some(rx);
        self.task = Some(task);
        Ok(())
    }

    /// Stream the whole object.
    pub fn whole(object: &RemoteObject) -> Result<ObjectStream> {
        Self::new(object, 0..object.size())
    }
}

/// A GET's task, aborted when dropped (a dropped stream cancels its GETs).
struct Detached(tokio::task::JoinHandle<Result<Body>>);

impl std::future::Future for Detached {
    type Output = Result<Body>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Body>> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|e| {
                Err(Error::InvalidArgument(format!(
                    "a read-ahead request stopped: {e}"
                )))
            })
        })
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A budget unit: the stream's own when it is free, else one of the shared ones,
/// whichever comes first.
async fn acquire(own: Arc<Semaphore>, shared: Arc<Semaphore>) -> Result<OwnedSemaphorePermit> {
    let own = Box::pin(own.acquire_owned());
    let shared = Box::pin(shared.acquire_owned());
    let unit = match futures::future::select(own, shared).await {
        futures::future::Either::Left((u, _)) => u,
        futures::future::Either::Right((u, _)) => u,
    };
    unit.map_err(|_| Error::InvalidArgument("the read-ahead budget was closed".into()))
}

/// A core error as an `io::Error` that keeps it (taken back out by
/// [`crate::format::io`]'s mappers through `into_inner`).
pub(crate) fn to_io(e: Error) -> io::Error {
    let kind = match &e {
        Error::NotFound { .. } => io::ErrorKind::NotFound,
        Error::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl ObjectStream {
    /// Wait until bytes are at hand (or the stream has ended): `Ok(false)` at its
    /// end. An error of the GET the next bytes come from surfaces here — e.g. right
    /// after a stream is made, so that a missing or replaced object fails where it is
    /// opened.
    pub fn wait_ready(&mut self) -> io::Result<bool> {
        self.start()?;
        while self.current.is_empty() {
            if let Some(b) = self.queued.pop_front() {
                self.current = b;
                continue;
            }
            if self.finished {
                return Ok(false);
            }
            let Some(rx) = self.rx.as_mut() else {
                return Ok(false);
            };
            // The unit of the body read up is free again.
            self.current_unit = None;
            match block_on(rx.recv()).map_err(to_io)? {
                Some(Ok((b, unit))) => {
                    self.current = b;
                    self.current_unit = unit;
                }
                Some(Err(e)) => {
                    self.finished = true;
                    return Err(to_io(e));
                }
                None => {
                    self.finished = true;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

impl ObjectStream {
    /// Bytes of this stream's GETs (each at most).
    pub fn get_bytes(&self) -> u64 {
        self.budget.as_ref().map_or(CHUNK, Budget::get_bytes)
    }

    /// Bytes at hand now without waiting (call [`Self::wait_ready`] first): the rest
    /// of the body being read.
    pub fn at_hand(&self) -> usize {
        self.current.len()
    }

    /// Up to `max` of the bytes at hand, as they lie (no copy: a slice of the GET's
    /// body, which it keeps alive); empty at the stream's end.
    pub fn take_at_hand(&mut self, max: usize) -> io::Result<Bytes> {
        if !self.wait_ready()? {
            return Ok(Bytes::new());
        }
        Ok(self.current.split_to(max.min(self.current.len())))
    }
}

impl Read for ObjectStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || !self.wait_ready()? {
            return Ok(0);
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

impl Drop for ObjectStream {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::path::Path as ObjPath;
    use object_store::{ObjectStore, PutPayload};

    use super::*;
    use crate::location::{memory_store, Location, StorageOptions};

    #[test]
    fn bytes_at_hand_in_parts_then_the_rest_streamed() {
        let data: Vec<u8> = (0..(9u32 << 20) + 77).map(|i| (i % 251) as u8).collect();
        block_on(memory_store().put(
            &ObjPath::from("stream-tests/parts"),
            PutPayload::from(data.clone()),
        ))
        .unwrap()
        .unwrap();
        let Location::Remote(url) =
            Location::parse("memory:///stream-tests/parts", &StorageOptions::new()).unwrap()
        else {
            panic!("not remote")
        };
        let obj = RemoteObject::open(&url).unwrap();
        // Parts from byte 100 (as a first read and a second one would give them),
        // the last reaching past the range's end (trimmed), then the rest streamed.
        for (parts, range) in [
            (vec![100..300, 300..5000], 100..(8 << 20)),
            (vec![100..100, 100..(1 << 20)], 100..(9 << 20) + 77),
            (vec![100..3000, 3000..6000], 100..4000),
        ] {
            let bytes = parts
                .iter()
                .map(|r| Bytes::copy_from_slice(&data[r.start..r.end]))
                .collect();
            let mut s = ObjectStream::after_parts(&obj, bytes, range.clone()).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            assert!(got == data[range.start as usize..range.end as usize]);
        }
    }
}
