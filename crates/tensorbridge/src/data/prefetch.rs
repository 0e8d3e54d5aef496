//! `prefetch`: run everything upstream on one thread, finished elements ahead.
//!
//! Size rule (`prefetch_depth`): `-1` (`AUTOTUNE`) means [`AUTOTUNE_DEPTH`]
//! elements; `0` and `1` both mean one element ahead; other negative values are
//! refused like `tf.data` does; depths above [`MAX_DEPTH`] are clamped to it (the
//! channel's slots are allocated up front, and more elements ahead than that buys
//! nothing but memory).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::comp::{materialize_lazy, It, Item};
use super::threads::{panic_error, spawn};
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
pub(crate) struct Prefetch {
    rx: Option<Receiver<Result<Item>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetch {
    /// `n` is clamped to `1..=MAX_DEPTH`.
    pub(crate) fn new(mut upstream: It, n: usize) -> Result<Prefetch> {
        let (tx, rx) = mpsc::sync_channel(n.clamp(1, MAX_DEPTH));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = spawn("tb-prefetch", move || {
            while !flag.load(Ordering::Relaxed) {
                let next = catch_unwind(AssertUnwindSafe(|| {
                    upstream.next().map(|r| r.and_then(materialize_lazy))
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
            // `upstream` (and any threads it owns) is dropped here, on this thread.
        })?;
        Ok(Prefetch {
            rx: Some(rx),
            stop,
            handle: Some(handle),
        })
    }
}

impl Iterator for Prefetch {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        self.rx.as_ref()?.recv().ok()
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
