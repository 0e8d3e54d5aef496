//! The one tokio runtime every remote request runs on, created lazily, and
//! the blocking facade over it.

use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::error::{Error, Result};

/// Worker threads of the shared runtime: `TENSORBRIDGE_IO_THREADS` when set (a
/// positive number, at most 256), else one per core, at least 4 and at most 16.
/// The workers receive every response body (and copy it out of the socket), so
/// several callers (Python threads, a `from_files` pipeline) reading at once need
/// more than two of them; on a busy machine each thread's share of the CPU counts.
fn workers() -> usize {
    if let Some(n) = std::env::var("TENSORBRIDGE_IO_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n.min(256);
    }
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(4, 16)
}

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
        .worker_threads(workers())
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

/// How often a blocked call asks the interrupt check.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

static INTERRUPT: OnceLock<fn() -> bool> = OnceLock::new();

/// Install the check for a pending interrupt (Ctrl-C) that an embedding provides
/// (the Python binding: a pending `KeyboardInterrupt` on the main thread). While a
/// call blocks on object-store I/O it asks the check every 100 ms; `true` drops the
/// I/O — cancelling every request in flight — and the call fails with
/// [`Error::Interrupted`]. Only the first check installed counts.
pub fn set_interrupt_check(check: fn() -> bool) {
    let _ = INTERRUPT.set(check);
}

/// Run `f` to completion on the shared runtime, blocking this (non-runtime) thread.
/// Dropping the future — an error elsewhere, an interrupt, the end of `f` — cancels
/// its requests.
pub(crate) fn block_on<F: Future>(f: F) -> Result<F::Output> {
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::InvalidArgument(
            "blocking object-store I/O called from inside an async runtime".into(),
        ));
    }
    let Some(check) = INTERRUPT.get().copied() else {
        return Ok(rt.block_on(f));
    };
    rt.block_on(async move {
        let work = std::pin::pin!(f);
        let watch = std::pin::pin!(async move {
            loop {
                tokio::time::sleep(INTERRUPT_POLL).await;
                if check() {
                    return;
                }
            }
        });
        match futures::future::select(work, watch).await {
            futures::future::Either::Left((out, _)) => Ok(out),
            futures::future::Either::Right(((), _)) => Err(Error::Interrupted),
        }
    })
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
