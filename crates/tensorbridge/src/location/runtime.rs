//! The one small tokio runtime every remote request runs on, created lazily, and
//! the blocking facade over it.

use std::future::Future;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Worker threads of the shared runtime: requests are I/O-bound, so two suffice for
/// many requests in flight.
const WORKERS: usize = 2;

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("tensorbridge-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Io {
        path: "<object store runtime>".into(),
        source: std::io::Error::other(e.clone()),
    })
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
