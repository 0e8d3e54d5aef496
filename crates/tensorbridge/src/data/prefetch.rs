//! `prefetch`: run everything upstream on one thread, finished elements ahead.
//!
//! Size rule (`prefetch_depth`): `-1` (`AUTOTUNE`) means [`AUTOTUNE_DEPTH`]
//! elements; `0` and `1` both mean one element ahead; other negative values are
//! refused like `tf.data` does; depths above [`MAX_DEPTH`] are clamped to it (the
//! channel's slots are allocated up front, and more elements ahead than that buys
//! nothing but memory).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::comp::{materialize_lazy, Item};
use super::state::{provs_json, It, Prov, Stage};
use super::threads::{panic_error, spawn};
use super::Dataset;
use crate::error::{Error, Result};

/// Elements ahead for `prefetch(AUTOTUNE)`.
pub const AUTOTUNE_DEPTH: usize = 2;

/// The most elements a `prefetch` keeps ahead; larger requests are clamped.
pub const MAX_DEPTH: usize = 4096;

/// Prefetch depths above this copy file rows out of their mappings (a deep buffer
/// should not keep whole files mapped).
pub(crate) const DEEP: usize = 64;

/// The depth of `prefetch(buffer_size)`: see the module docs.
pub(crate) fn prefetch_depth(buffer_size: i64) -> Result<usize> {
    match buffer_size {
        -1 => Ok(AUTOTUNE_DEPTH),
        n if n < 0 => Err(Error::InvalidArgument(format!(
            "prefetch buffer_size must be >= 0 or AUTOTUNE (-1), not {n}"
        ))),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX).clamp(1, MAX_DEPTH)),
    }
}

/// Runs the upstream iterator on its own thread, `n` finished elements ahead.
///
/// State: `{"input": ..., "pending": "[p, ...]"}` — the upstream's state and the
/// elements taken from it but not yet delivered (in the channel or being made). A
/// restored prefetch makes those again first (from the input dataset), then goes
/// on with the upstream: nothing prefetched is lost.
///
/// The upstream sits behind one lock, which the reader thread holds around each
/// `next()` and while it records the element's provenance in `inflight` (a second
/// lock); [`Stage::state`] takes both, so it reads a consistent pair. The consumer
/// only ever takes the `inflight` lock (to drop a delivered element's provenance),
/// so it never waits for the element being made.
pub(crate) struct Prefetch {
    rx: Option<Receiver<Result<(Item, Prov)>>>,
    upstream: Arc<Mutex<It>>,
    inflight: Arc<Mutex<VecDeque<Prov>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Prefetch {
    /// `n` is clamped to `1..=MAX_DEPTH`. `pending` (from a saved state): elements
    /// of `input` (the dataset `upstream` runs) to make and deliver first.
    pub(crate) fn new(
        upstream: It,
        input: Dataset,
        n: usize,
        pending: Vec<Prov>,
    ) -> Result<Prefetch> {
        let (tx, rx) = mpsc::sync_channel(n.clamp(1, MAX_DEPTH));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let upstream = Arc::new(Mutex::new(upstream));
        let inflight = Arc::new(Mutex::new(pending.iter().cloned().collect::<VecDeque<_>>()));
        let (up, fl) = (upstream.clone(), inflight.clone());
        let handle = spawn("tb-prefetch", move || {
            let mut redo: VecDeque<Prov> = pending.into();
            while !flag.load(Ordering::Relaxed) {
                let next = catch_unwind(AssertUnwindSafe(|| {
                    let r = match redo.pop_front() {
                        Some(p) => Some(input.materialize(&p).map(|item| (item, p))),
                        None => {
                            let mut g = lock(&up);
                            let r = g.next();
                            if let Some(Ok((_, p))) = &r {
                                lock(&fl).push_back(p.clone());
                            }
                            r
                        }
                    };
                    r.map(|r| r.and_then(|(item, p)| Ok((materialize_lazy(item)?, p))))
                }));
                let r = match next {
                    Ok(None) => break,
                    Ok(Some(r)) => r,
                    Err(_) => Err(panic_error("a pipeline stage")),
                };
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    break;
                }
            }
            // The upstream (and any threads it owns) is dropped with the last
            // handle on it: by the consumer's `Drop`, after joining here.
        })?;
        Ok(Prefetch {
            rx: Some(rx),
            upstream,
            inflight,
            stop,
            handle: Some(handle),
        })
    }
}

impl Stage for Prefetch {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        let r = self.rx.as_ref()?.recv().ok()?;
        if r.is_ok() {
            lock(&self.inflight).pop_front();
        }
        Some(r)
    }

    fn state(&self) -> Result<Value> {
        let up = lock(&self.upstream);
        let fl = lock(&self.inflight);
        Ok(json!({
            "input": up.state()?,
            "pending": provs_json(fl.iter()),
        }))
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx.take()); // unblocks a `send` on a full channel
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
