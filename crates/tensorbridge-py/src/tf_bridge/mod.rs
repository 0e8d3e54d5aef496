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
//! [`c_api`]: the C functions looked up and the helpers over them; [`registry`]: the
//! epochs TensorFlow pulls from; [`kernels`]: the ops' kernels and their
//! registration; here: the Python functions.

mod c_api;
mod kernels;
mod registry;

use std::sync::OnceLock;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::data::PyDataset;
use c_api::{resolve, Api, API};
use kernels::register;

/// The outcome of the one registration per process.
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

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
    let id = registry::open(it);
    Ok(id)
}

/// `(handles, iterators, shared)`: handles still registered (epochs TensorFlow still
/// holds), how many of them still run a pipeline iterator, and how many tensors
/// TensorFlow holds that share a pipeline buffer (not copies). For tests.
#[pyfunction]
fn tf_stats() -> (usize, usize, usize) {
    registry::stats()
}

/// Add the TensorFlow bridge functions to `tensorbridge._core`.
pub fn register_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tf_install, m)?)?;
    m.add_function(wrap_pyfunction!(tf_open, m)?)?;
    m.add_function(wrap_pyfunction!(tf_stats, m)?)?;
    Ok(())
}
