//! [`ObjectStream`]: an object's bytes read in order, with read-ahead.

use std::io::{self, Read};
use std::ops::Range;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::object::RemoteObject;
use super::runtime::{block_on, spawn};
use crate::error::{Error, Result};

/// Bytes per ranged GET of a stream.
const CHUNK: u64 = 4 << 20;
/// Ranged GETs in flight ahead of the reader (with [`CHUNK`]: 16 MiB, besides the
/// chunk being read and one waiting).
const AHEAD: usize = 4;

/// A range of an object read in order (`Read`): ranged GETs of a few MiB run ahead
/// of the reader on the shared runtime (memory is bounded by a few chunks, whatever
/// the object's size). Dropping the stream cancels the requests in flight.
pub struct ObjectStream {
    rx: Option<mpsc::Receiver<Result<Bytes>>>,
    pending: Option<(RemoteObject, Vec<Range<u64>>)>,
    current: Bytes,
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
        let end = range.end.min(object.size());
        let start = range.start.min(end);
        let prefix = prefix.slice(..prefix.len().min((end - start) as usize));
        let mut chunks = vec![];
        let mut pos = start + prefix.len() as u64;
        while pos < end {
            let e = (pos + CHUNK).min(end);
            chunks.push(pos..e);
            pos = e;
        }
        Ok(ObjectStream {
            rx: None,
            pending: Some((object.clone(), chunks)),
            current: prefix,
            task: None,
            url: object.url().to_string(),
            finished: false,
        })
    }

    /// Start the read-ahead task (on the first read, so a stream made but never read
    /// sends no request).
    fn start(&mut self) -> io::Result<()> {
        let Some((obj, chunks)) = self.pending.take() else {
            return Ok(());
        };
        let (tx, rx) = mpsc::channel(1);
        let task = spawn(async move {
            let mut gets = futures::stream::iter(chunks)
                .map(|r| {
                    let obj = obj.clone();
                    async move { obj.get_async(r).await }
                })
                .buffered(AHEAD);
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

impl Read for ObjectStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.start()?;
        while self.current.is_empty() {
            if self.finished {
                return Ok(0);
            }
            let Some(rx) = self.rx.as_mut() else {
                return Ok(0);
            };
            match block_on(rx.recv()).map_err(to_io)? {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    self.finished = true;
                    return Err(to_io(e));
                }
                None => {
                    self.finished = true;
                    return Ok(0);
                }
            }
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
