//! A native TensorFlow op that pulls batches from a running pipeline
//! (`Dataset.to_tensorflow()`, issue 12).
//!
//! TensorFlow's wheel exports its C op/kernel API from
//! `libtensorflow_framework.so.2`. The Python side (`tensorbridge._tensorflow`)
//! passes that library's path to [`tf_install`], which looks the few functions
//! used here up (`dlsym` in the already loaded library) and registers two stateful
//! CPU ops:
//!
//! - `TensorbridgeIteratorGuard(id: int64) -> handle: int64`: the same id in a
//!   buffer of its own; when TensorFlow frees that buffer (the per-epoch inner
//!   `tf.data` dataset holding it is gone: exhausted, or its iterator dropped), the
//!   pipeline iterator `id` is closed (threads joined, buffers freed).
//! - `TensorbridgeNext(handle: int64) -> components: out_types` (attr `out_shapes`,
//!   see `kernels::decode_shapes`): the next element of iterator `handle`, each component
//!   handed over without a copy (`TF_NewTensor` over the batch buffer; the Rust
//!   tensor is released by the deallocator) after its dtype and shape are checked
//!   against the op's attrs (the Python side declares those shapes statically, so
//!   no `ensure_shape` runs per element). At the end the op fails with
//!   `OutOfRange`, which the `map` running it (with `preserve_cardinality=False`)
//!   takes as the end of the sequence; the iterator is closed right away.
//!
//! Iterators live in a registry keyed by id ([`tf_open`] starts one epoch). The
//! kernel waits for the pipeline without the GIL: Python map functions take it on
//! their own worker threads.
//!
//! [`c_api`]: the C functions looked up and the helpers over them; [`kernels`]: the
//! ops' kernels and their registration; here: the iterator registry and the Python
//! functions.

mod c_api;
mod kernels;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use tensorbridge::data::DatasetIter;
use tensorbridge::{Error, Tensor};

use crate::data::PyDataset;
use c_api::{cstring, resolve, Api, Fail, TF_INVALID_ARGUMENT, TF_UNKNOWN};
use kernels::register;

/// TensorFlow's C functions, once [`tf_install`] has looked them up.
static API: OnceLock<Api> = OnceLock::new();
/// The outcome of the one registration per process.
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// One pipeline epoch TensorFlow pulls from; `None` once it ended (or failed).
struct Entry {
    it: Mutex<Option<DatasetIter>>,
}

fn registry() -> &'static Mutex<HashMap<i64, Arc<Entry>>> {
    static R: OnceLock<Mutex<HashMap<i64, Arc<Entry>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

static NEXT_ID: AtomicI64 = AtomicI64::new(1);

/// Tensors TensorFlow holds now whose memory is a pipeline buffer (not a copy).
static SHARED: AtomicUsize = AtomicUsize::new(0);

/// Drop an iterator (stops and joins its threads), releasing the GIL first if this
/// thread holds it: a worker may be waiting for the GIL to finish a Python call.
fn close_iter(it: Option<DatasetIter>) {
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

fn fail_from(e: Error) -> Fail {
    let code = match e {
        Error::External(_) => TF_UNKNOWN,
        _ => TF_INVALID_ARGUMENT,
    };
    (code, format!("tensorbridge pipeline: {e}"))
}

/// The next element of iterator `id`: `Ok(None)` at its end.
fn pull(id: i64) -> Result<Option<Vec<Tensor>>, Fail> {
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

/// Register the ops with TensorFlow (once per process). `library`: the path of the
/// loaded `libtensorflow_framework.so.2`, whose C op/kernel API functions
/// (`c_api::SYMBOLS`) are looked up here. Raises RuntimeError saying what failed (a
/// failed lookup is not remembered: another path may be tried).
#[pyfunction]
fn tf_install(library: &str) -> PyResult<()> {
    // Looked up on every call (a few dlsym calls), so a wrong library is refused
    // even once the ops are installed.
    let a = resolve(library).map_err(PyRuntimeError::new_err)?;
    let result = INSTALLED.get_or_init(|| {
        // SAFETY: each address is the function of that name in TensorFlow's own
        // library (dlsym above), which stays loaded for the life of the process;
        // the field types follow TF 2.x's C headers (see `Api`).
        let api = API.get_or_init(|| unsafe { Api::from_addresses(&a) });
        register(api)
    });
    result.clone().map_err(PyRuntimeError::new_err)
}

/// Start one epoch of `ds` for the TensorFlow op; returns its handle.
#[pyfunction]
fn tf_open(py: Python<'_>, ds: PyRef<'_, PyDataset>) -> PyResult<i64> {
    if API.get().is_none() {
        return Err(PyValueError::new_err(
            "tf_open: the TensorFlow ops are not installed",
        ));
    }
    let d = ds.dataset().clone();
    let it = py.allow_threads(|| d.iter()).map_err(crate::to_py)?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    registry().lock().unwrap_or_else(|e| e.into_inner()).insert(
        id,
        Arc::new(Entry {
            it: Mutex::new(Some(it)),
        }),
    );
    Ok(id)
}

/// `(handles, iterators, shared)`: handles still registered (epochs TensorFlow still
/// holds), how many of them still run a pipeline iterator, and how many tensors
/// TensorFlow holds that share a pipeline buffer (not copies). For tests.
#[pyfunction]
fn tf_stats() -> (usize, usize, usize) {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let live = r
        .values()
        .filter(|e| e.it.lock().unwrap_or_else(|e| e.into_inner()).is_some())
        .count();
    (r.len(), live, SHARED.load(Ordering::Relaxed))
}

/// Add the TensorFlow bridge functions to `tensorbridge._core`.
pub fn register_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tf_install, m)?)?;
    m.add_function(wrap_pyfunction!(tf_open, m)?)?;
    m.add_function(wrap_pyfunction!(tf_stats, m)?)?;
    Ok(())
}
