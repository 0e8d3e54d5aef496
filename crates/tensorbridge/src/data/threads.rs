//! Pipeline worker threads: every one is started through [`spawn`] and counted in
//! [`live_threads`], so tests can prove that dropping an iterator joins them all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Pipeline worker threads alive right now (prefetch and parallel-map workers of
/// every iterator in the process). Zero once every iterator has been dropped.
pub fn live_threads() -> usize {
    LIVE_THREADS.load(Ordering::SeqCst)
}

struct LiveGuard;
impl Drop for LiveGuard {
    fn drop(&mut self) {
        LIVE_THREADS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Start a counted pipeline thread named `name`.
pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    LIVE_THREADS.fetch_add(1, Ordering::SeqCst);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _guard = LiveGuard;
            f()
        })
        .map_err(|e| {
            LIVE_THREADS.fetch_sub(1, Ordering::SeqCst);
            Error::InvalidArgument(format!("cannot start a pipeline thread: {e}"))
        })
}

/// The error that replaces a panic caught on a pipeline thread.
pub(crate) fn panic_error(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "{what} panicked (a bug in tensorbridge or in the map function)"
    ))
}
