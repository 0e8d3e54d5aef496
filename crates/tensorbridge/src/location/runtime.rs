//! The one small tokio runtime every remote request runs on, created lazily, and
//! the blocking facade over it.

use std::future::Future;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Worker threads of the shared runtime: requests are I/O-bound, so two suffice for
/// many requests in flight.
const WORKERS: usize = 2;

/// The shared runtime of this process. A child made by `fork` (multiprocessing,
/// DataLoader workers) has none of its parent's threads, so it gets a runtime of its
/// own (the parent's is left alone, never dropped).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return Ok(rt);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("tensorbridge-io")
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            path: "<object store runtime>".into(),
            source: e,
        })?;
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// Run `f` to completion on the shared runtime, blocking this (non-runtime) thread.
/// Dropping the future — an error elsewhere, the end of `f` — cancels its requests.
pub(crate) fn block_on<F: Future>(f: F) -> Result<F::Output> {
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::InvalidArgument(
            "blocking object-store I/O called from inside an async runtime".into(),
        ));
    }
    Ok(rt.block_on(f))
}

/// Spawn `f` on the shared runtime (read-ahead tasks).
pub(crate) fn spawn<F>(f: F) -> Result<tokio::task::JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(runtime()?.spawn(f))
}

/// Enter the runtime's context (for object_store calls that spawn tasks).
pub(crate) fn enter() -> Result<tokio::runtime::EnterGuard<'static>> {
    Ok(runtime()?.enter())
}
