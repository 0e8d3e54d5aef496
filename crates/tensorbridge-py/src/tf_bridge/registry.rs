//! The pipeline epochs TensorFlow pulls from, keyed by id: opened by `tf_open`,
//! pulled by the `TensorbridgeNext` kernel, closed at their end or when TensorFlow
//! frees the guard that holds them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;

use tensorbridge::data::DatasetIter;
use tensorbridge::{Error, Tensor};

use super::c_api::{cstring, Fail, TF_INVALID_ARGUMENT, TF_UNKNOWN};

/// One pipeline epoch TensorFlow pulls from; `None` once it ended (or failed).
pub(super) struct Entry {
    pub(super) it: Mutex<Option<DatasetIter>>,
}

/// The open epochs, by id.
pub(super) fn registry() -> &'static Mutex<HashMap<i64, Arc<Entry>>> {
    static R: OnceLock<Mutex<HashMap<i64, Arc<Entry>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

static NEXT_ID: AtomicI64 = AtomicI64::new(1);

/// Tensors TensorFlow holds now whose memory is a pipeline buffer (not a copy).
pub(super) static SHARED: AtomicUsize = AtomicUsize::new(0);

/// Drop an iterator (stops and joins its threads), releasing the GIL first if this
/// thread holds it: a worker may be waiting for the GIL to finish a Python call.
pub(super) fn close_iter(it: Option<DatasetIter>) {
    if it.is_none() {
        return;
    }
    // SAFETY: PyGILState_Check only reads the thread state; it is safe to call
    // from any thread once Python is initialised (it is: this module is loaded).
    if unsafe { pyo3::ffi::PyGILState_Check() } == 1 {
        Python::with_gil(|py| py.allow_threads(move || drop(it)));
    } else {
        drop(it);
    }
}

/// A pipeline error as the kernel's failure (an error from outside the core, e.g.
/// one a Python map function raised: `UNKNOWN`; any other: `INVALID_ARGUMENT`).
pub(super) fn fail_from(e: Error) -> Fail {
    let code = match e {
        Error::External(_) => TF_UNKNOWN,
        _ => TF_INVALID_ARGUMENT,
    };
    (code, format!("tensorbridge pipeline: {e}"))
}

/// The next element of iterator `id`: `Ok(None)` at its end.
pub(super) fn pull(id: i64) -> Result<Option<Vec<Tensor>>, Fail> {
    let entry = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned()
        .ok_or_else(|| {
            (
                TF_INVALID_ARGUMENT,
                format!("tensorbridge: iterator {id} is not open"),
            )
        })?;
    let mut g = entry.it.lock().unwrap_or_else(|e| e.into_inner());
    let Some(it) = g.as_mut() else {
        return Ok(None);
    };
    // SAFETY: PyGILState_Check only reads the thread state (Python is initialised).
    let holds_gil = unsafe { pyo3::ffi::PyGILState_Check() } == 1;
    let (r, warnings) = if holds_gil {
        Python::with_gil(|py| py.allow_threads(|| (it.next(), it.take_warnings())))
    } else {
        (it.next(), it.take_warnings())
    };
    // At the end (or an error) the iterator is closed now, not when TF frees the guard.
    let ended = if matches!(r, Some(Ok(_))) {
        None
    } else {
        g.take()
    };
    drop(g); // never wait for the GIL while holding the entry (the guard may need it)
    close_iter(ended);
    if !warnings.is_empty() {
        Python::with_gil(|py| -> Result<(), Fail> {
            let cat = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
            for w in warnings {
                PyErr::warn(py, &cat, &cstring(&w), 1)
                    .map_err(|e| (TF_UNKNOWN, format!("tensorbridge pipeline: {e}")))?;
            }
            Ok(())
        })?;
    }
    match r {
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) => Err(fail_from(e)),
        None => Ok(None),
    }
}

/// Register `it` as a new epoch; its id.
pub(super) fn open(it: DatasetIter) -> i64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    registry().lock().unwrap_or_else(|e| e.into_inner()).insert(
        id,
        Arc::new(Entry {
            it: Mutex::new(Some(it)),
        }),
    );
    id
}

/// `(handles, iterators, shared)`, as `tf_stats` reports them.
pub(super) fn stats() -> (usize, usize, usize) {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let live = r
        .values()
        .filter(|e| e.it.lock().unwrap_or_else(|e| e.into_inner()).is_some())
        .count();
    (r.len(), live, SHARED.load(Ordering::Relaxed))
}
