//! Python bindings for the streaming pipeline (`tensorbridge.data`, issue 5).
//!
//! `_Dataset` wraps the core [`Dataset`]; the element structure (tuple/dict) lives
//! in the Python package. Every blocking `next()` runs with the GIL released; Python
//! map functions take the GIL on the worker threads. Closing or dropping an iterator
//! releases the GIL while it stops and joins its threads (a worker may be waiting
//! for the GIL to finish a Python call).
//!
//! Only translation happens here: every size, count and mode is checked by the
//! core, with its message. An exception a Python map function raises crosses the
//! core inside `Error::External` and is re-raised as the same object; warnings
//! (skipped files) come from the iterator that met them.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use tensorbridge::data::{
    live_threads, Dataset, DatasetIter, FilesOptions, MapFn, MapOps, OnError, Op, PaddedShapes,
    PredFn,
};
use tensorbridge::{Error, Tensor};

use crate::{dtype_object, parse_casting, parse_dtype, OrPy, PyTensor};

/// A Python exception on its way through the core, inside [`Error::External`]:
/// [`external_to_py`] takes the very same exception object back out (same type,
/// same traceback). Its text is taken while the GIL is held, so formatting it in
/// the core never needs the GIL.
struct PyException {
    err: PyErr,
    text: String,
}

impl std::fmt::Display for PyException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for PyException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PyException({})", self.text)
    }
}

impl std::error::Error for PyException {}

/// Carry a Python exception through the core.
fn to_core(py: Python<'_>, err: PyErr) -> Error {
    let text = err.value(py).to_string();
    let name = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    Error::external(PyException {
        err,
        text: format!("{name}: {text}"),
    })
}

/// The Python exception an [`Error::External`] carries, as it was raised; any other
/// external error becomes a `RuntimeError`.
pub(crate) fn external_to_py(inner: Box<dyn std::error::Error + Send + Sync>) -> PyErr {
    match inner.downcast::<PyException>() {
        Ok(e) => e.err,
        Err(other) => PyRuntimeError::new_err(other.to_string()),
    }
}

/// Emit `warnings` (skipped files) as Python `RuntimeWarning`s.
fn emit_warnings(py: Python<'_>, warnings: Vec<String>) -> PyResult<()> {
    for w in warnings {
        let msg = std::ffi::CString::new(w.replace('\0', " "))
            .unwrap_or_else(|_| c"tensorbridge: a file was skipped".to_owned());
        let cat = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
        PyErr::warn(py, &cat, &msg, 1)?;
    }
    Ok(())
}

fn parse_op(obj: &Bound<'_, PyAny>) -> PyResult<Op> {
    let t = obj.downcast::<PyTuple>()?;
    let kind: String = t.get_item(0)?.extract()?;
    match kind.as_str() {
        "cast" => Ok(Op::Cast {
            dtype: parse_dtype(&t.get_item(1)?)?,
            casting: parse_casting(&t.get_item(2)?.extract::<String>()?)?,
        }),
        "scale" => Ok(Op::Scale {
            mul: t.get_item(1)?.extract()?,
            add: t.get_item(2)?.extract()?,
        }),
        "reshape" => Ok(Op::Reshape(t.get_item(1)?.extract()?)),
        other => Err(PyValueError::new_err(format!("unknown op {other:?}"))),
    }
}

fn parse_ops(list: &Bound<'_, PyAny>) -> PyResult<Vec<Op>> {
    list.try_iter()?.map(|o| parse_op(&o?)).collect()
}

/// `(dtype object, shape with None for unknown dims)` of one component.
type PySpec = (PyObject, Vec<Option<usize>>);

fn opt_count(n: i64) -> Option<u64> {
    (n >= 0).then_some(n as u64)
}

/// A pipeline description (see `tensorbridge.data.Dataset`).
#[pyclass(frozen, module = "tensorbridge._core", name = "_Dataset")]
pub struct PyDataset {
    inner: Dataset,
}

impl PyDataset {
    /// The core pipeline (for the TensorFlow op, `tf_bridge`).
    pub(crate) fn dataset(&self) -> &Dataset {
        &self.inner
    }
}

fn wrap(inner: Dataset) -> PyDataset {
    PyDataset { inner }
}

#[pymethods]
impl PyDataset {
    /// `names`: one per component, used in error messages (default "component i").
    #[staticmethod]
    #[pyo3(signature = (comps, names=None))]
    fn from_tensor_slices(
        comps: Vec<Bound<'_, PyAny>>,
        names: Option<Vec<String>>,
    ) -> PyResult<PyDataset> {
        let tensors = comps
            .iter()
            .map(|c| Ok(c.downcast::<PyTensor>()?.get().inner.clone()))
            .collect::<PyResult<Vec<Tensor>>>()?;
        let names = names.unwrap_or_else(|| {
            (0..tensors.len())
                .map(|i| format!("component {i}"))
                .collect()
        });
        if names.len() != tensors.len() {
            return Err(PyValueError::new_err("one name per component"));
        }
        Dataset::from_named_tensor_slices(names.into_iter().zip(tensors).collect())
            .map(wrap)
            .or_py()
    }

    /// See `tensorbridge.data.Dataset.from_files`. Reads the headers with the GIL
    /// released.
    #[staticmethod]
    #[pyo3(signature = (paths, keys=None, shuffle_files=false, seed=None, cycle_length=1, block_length=1, on_error="raise", storage_options=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_files(
        py: Python<'_>,
        paths: Vec<std::path::PathBuf>,
        keys: Option<Vec<String>>,
        shuffle_files: bool,
        seed: Option<u64>,
        cycle_length: i64,
        block_length: i64,
        on_error: &str,
        storage_options: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<PyDataset> {
        let opts = FilesOptions {
            keys,
            shuffle_files,
            seed,
            cycle_length,
            block_length,
            on_error: OnError::from_name(on_error).or_py()?,
            storage_options: storage_options.unwrap_or_default(),
        };
        let (ds, warnings) = py
            .allow_threads(|| Dataset::from_files(paths, opts))
            .or_py()?;
        emit_warnings(py, warnings)?;
        Ok(wrap(ds))
    }

    #[staticmethod]
    fn range(n: i64) -> PyDataset {
        wrap(Dataset::range(n.max(0) as u64))
    }

    /// `ops`: `("all", [op, ...])` or `("each", [None | [op, ...], ...])`, an op being
    /// `("cast", dtype, casting)`, `("scale", mul, add)` or `("reshape", [dims])`.
    fn map_ops(&self, mode: &str, ops: &Bound<'_, PyAny>) -> PyResult<PyDataset> {
        let ops = match mode {
            "all" => MapOps::All(parse_ops(ops)?),
            "each" => MapOps::Each(
                ops.try_iter()?
                    .map(|o| {
                        let o = o?;
                        if o.is_none() {
                            Ok(None)
                        } else {
                            parse_ops(&o).map(Some)
                        }
                    })
                    .collect::<PyResult<_>>()?,
            ),
            _ => return Err(PyValueError::new_err("mode must be 'all' or 'each'")),
        };
        // Check the ops against the known element spec now, like tf.data does.
        let ds = self.inner.map_ops(ops);
        ds.element_spec().or_py()?;
        Ok(wrap(ds))
    }

    /// `f(list_of_tensors) -> list_of_tensors`, called with the GIL on worker threads.
    /// `no_state`: why iterators through this map cannot save their state (their
    /// `get_state` raises `ValueError` saying so); `None`: they can.
    #[pyo3(signature = (f, num_parallel_calls=None, no_state=None))]
    fn map_py(
        &self,
        f: PyObject,
        num_parallel_calls: Option<i64>,
        no_state: Option<String>,
    ) -> PyResult<PyDataset> {
        let f = Arc::new(f);
        let func: MapFn = Arc::new(move |tensors: Vec<Tensor>| {
            Python::with_gil(|py| {
                let run = || -> PyResult<Vec<Tensor>> {
                    let args = tensors
                        .into_iter()
                        .map(|t| Py::new(py, PyTensor { inner: t }))
                        .collect::<PyResult<Vec<_>>>()?;
                    let out = f.call1(py, (PyList::new(py, args)?,))?;
                    out.bind(py)
                        .try_iter()?
                        .map(|o| {
                            let o = o?;
                            let t = o.downcast::<PyTensor>().map_err(|_| {
                                PyTypeError::new_err("map function output is not a tensor")
                            })?;
                            Ok(t.get().inner.clone())
                        })
                        .collect()
                };
                run().map_err(|e| to_core(py, e))
            })
        });
        match no_state {
            None => self.inner.map(func, num_parallel_calls),
            Some(why) => self.inner.map_without_state(func, num_parallel_calls, &why),
        }
        .map(wrap)
        .or_py()
    }

    #[pyo3(signature = (buffer_size, seed=None, reshuffle_each_iteration=true))]
    fn shuffle(
        &self,
        buffer_size: i64,
        seed: Option<u64>,
        reshuffle_each_iteration: bool,
    ) -> PyResult<PyDataset> {
        self.inner
            .shuffle(buffer_size, seed, reshuffle_each_iteration)
            .map(wrap)
            .or_py()
    }

    fn batch(&self, batch_size: i64, drop_remainder: bool) -> PyResult<PyDataset> {
        self.inner
            .batch(batch_size, drop_remainder)
            .map(wrap)
            .or_py()
    }

    fn prefetch(&self, buffer_size: i64) -> PyResult<PyDataset> {
        self.inner.prefetch(buffer_size).map(wrap).or_py()
    }

    fn repeat(&self, count: i64) -> PyDataset {
        wrap(self.inner.repeat(opt_count(count)))
    }

    fn take(&self, n: i64) -> PyDataset {
        wrap(self.inner.take(opt_count(n)))
    }

    fn skip(&self, n: i64) -> PyDataset {
        wrap(self.inner.skip(opt_count(n)))
    }

    fn shard(&self, num_shards: i64, index: i64) -> PyResult<PyDataset> {
        self.inner.shard(num_shards, index).map(wrap).or_py()
    }

    /// This pipeline with its source's rows sharded (blocks of the batch size),
    /// or None when it does not allow it (see the core's `shard_source`).
    fn shard_source(&self, num_shards: i64, index: i64) -> PyResult<Option<PyDataset>> {
        if num_shards <= 0 || index < 0 {
            return Err(PyValueError::new_err(format!(
                "shard index {index} is out of range for {num_shards} shards"
            )));
        }
        Ok(self
            .inner
            .shard_source(num_shards as u64, index as u64)
            .or_py()?
            .map(wrap))
    }

    /// Make the next epoch of every reshuffling stage use epoch `epoch`'s order.
    fn set_epoch(&self, epoch: u64) {
        self.inner.set_epoch(epoch)
    }

    /// Elements when `get` works (random access), else None.
    fn random_access_len(&self) -> Option<u64> {
        self.inner.random_access_len()
    }

    /// The stage that prevents random access, or None.
    fn random_access_blocker(&self) -> Option<&'static str> {
        self.inner.random_access_blocker()
    }

    /// Element `i` (0 <= i < random_access_len()), read with the GIL released.
    fn get(&self, py: Python<'_>, i: u64) -> PyResult<Vec<PyTensor>> {
        let ds = self.inner.clone();
        let v = py.allow_threads(|| ds.get(i)).or_py()?;
        Ok(v.into_iter().map(|inner| PyTensor { inner }).collect())
    }

    #[pyo3(signature = (seed=None, reshuffle_each_iteration=true))]
    fn global_shuffle(
        &self,
        seed: Option<u64>,
        reshuffle_each_iteration: bool,
    ) -> PyResult<PyDataset> {
        self.inner
            .global_shuffle(seed, reshuffle_each_iteration)
            .map(wrap)
            .or_py()
    }

    /// The components of every input side by side (flat; structure in Python).
    #[staticmethod]
    fn zip(datasets: Vec<PyRef<'_, PyDataset>>) -> PyResult<PyDataset> {
        Dataset::zip(datasets.iter().map(|d| d.inner.clone()).collect())
            .map(wrap)
            .or_py()
    }

    fn concatenate(&self, other: PyRef<'_, PyDataset>) -> PyResult<PyDataset> {
        self.inner.concatenate(&other.inner).map(wrap).or_py()
    }

    /// `f(list_of_tensors) -> bool` (anything else: TypeError), called with the GIL.
    fn filter_py(&self, f: PyObject) -> PyDataset {
        let f = Arc::new(f);
        let pred: PredFn = Arc::new(move |tensors: &[Tensor]| {
            Python::with_gil(|py| {
                let run = || -> PyResult<bool> {
                    let args = tensors
                        .iter()
                        .map(|t| Py::new(py, PyTensor { inner: t.clone() }))
                        .collect::<PyResult<Vec<_>>>()?;
                    let out = f.call1(py, (PyList::new(py, args)?,))?;
                    let out = out.bind(py);
                    out.downcast::<pyo3::types::PyBool>()
                        .map(|b| b.is_true())
                        .map_err(|_| {
                            PyTypeError::new_err(format!(
                                "filter: the predicate must return a bool, not {}",
                                out.get_type()
                                    .name()
                                    .map(|n| n.to_string())
                                    .unwrap_or_default()
                            ))
                        })
                };
                run().map_err(|e| to_core(py, e))
            })
        });
        wrap(self.inner.filter(pred))
    }

    fn enumerate(&self, start: i64) -> PyDataset {
        wrap(self.inner.enumerate(start))
    }

    fn unbatch(&self) -> PyResult<PyDataset> {
        self.inner.unbatch().map(wrap).or_py()
    }

    /// The same elements with the known cardinality `n` (each epoch checks it).
    fn assert_cardinality(&self, n: u64) -> PyDataset {
        wrap(self.inner.assert_cardinality(n))
    }

    /// `padded_shapes`: per component None or [dim | None, ...]; `padding_values`:
    /// per component None or a 0-d tensor.
    #[pyo3(signature = (batch_size, padded_shapes=None, padding_values=None, drop_remainder=false))]
    fn padded_batch(
        &self,
        batch_size: i64,
        padded_shapes: Option<PaddedShapes>,
        padding_values: Option<Vec<Option<PyRef<'_, PyTensor>>>>,
        drop_remainder: bool,
    ) -> PyResult<PyDataset> {
        let values =
            padding_values.map(|v| v.into_iter().map(|t| t.map(|t| t.inner.clone())).collect());
        self.inner
            .padded_batch(batch_size, padded_shapes, values, drop_remainder)
            .map(wrap)
            .or_py()
    }

    #[staticmethod]
    #[pyo3(signature = (datasets, weights=None, seed=None, stop_on_empty_dataset=false))]
    fn sample_from_datasets(
        datasets: Vec<PyRef<'_, PyDataset>>,
        weights: Option<Vec<f64>>,
        seed: Option<u64>,
        stop_on_empty_dataset: bool,
    ) -> PyResult<PyDataset> {
        Dataset::sample_from_datasets(
            datasets.iter().map(|d| d.inner.clone()).collect(),
            weights,
            seed,
            stop_on_empty_dataset,
        )
        .map(wrap)
        .or_py()
    }

    #[staticmethod]
    #[pyo3(signature = (datasets, choice_dataset, stop_on_empty_dataset=true))]
    fn choose_from_datasets(
        datasets: Vec<PyRef<'_, PyDataset>>,
        choice_dataset: PyRef<'_, PyDataset>,
        stop_on_empty_dataset: bool,
    ) -> PyResult<PyDataset> {
        Dataset::choose_from_datasets(
            datasets.iter().map(|d| d.inner.clone()).collect(),
            &choice_dataset.inner,
            stop_on_empty_dataset,
        )
        .map(wrap)
        .or_py()
    }

    /// `tf.data`'s encoding: n, -1 (infinite), -2 (unknown).
    fn cardinality(&self) -> i64 {
        self.inner.cardinality().as_i64()
    }

    /// `[(dtype, shape with None for unknown dims), ...]`, or None when a Python
    /// function decides it.
    fn element_spec(&self, py: Python<'_>) -> PyResult<Option<Vec<PySpec>>> {
        match self.inner.element_spec().or_py()? {
            None => Ok(None),
            Some(spec) => spec
                .into_iter()
                .map(|(d, s)| Ok((dtype_object(py, d)?, s)))
                .collect::<PyResult<Vec<_>>>()
                .map(Some),
        }
    }

    /// Start one epoch, or resume one from a state's JSON text (`get_state`); a
    /// state of another pipeline raises `ValueError` naming the stage that differs.
    #[pyo3(signature = (state=None))]
    fn iterate(&self, py: Python<'_>, state: Option<String>) -> PyResult<PyDatasetIter> {
        let ds = self.inner.clone();
        let it = py
            .allow_threads(|| match &state {
                None => ds.iter(),
                Some(s) => ds.iter_from_json(s),
            })
            .or_py()?;
        Ok(PyDatasetIter {
            it: Mutex::new(Some(it)),
        })
    }
}

/// One running epoch; yields lists of tensors.
#[pyclass(frozen, module = "tensorbridge._core", name = "_DatasetIterator")]
pub struct PyDatasetIter {
    it: Mutex<Option<DatasetIter>>,
}

#[pymethods]
impl PyDatasetIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Vec<PyTensor>>> {
        let (r, warnings) = py.allow_threads(|| {
            let mut g = self.it.lock().unwrap_or_else(|e| e.into_inner());
            match g.as_mut() {
                Some(it) => (it.next(), it.take_warnings()),
                None => (None, Vec::new()),
            }
        });
        emit_warnings(py, warnings)?;
        match r {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(
                v.into_iter().map(|inner| PyTensor { inner }).collect(),
            )),
            Some(Err(e)) => Err(e).or_py(),
        }
    }

    /// This iterator's place as JSON text (counters, PRNG states, source positions
    /// of the elements in flight; no element data). Taken with the GIL released (a
    /// prefetch thread may be inside a Python map function).
    fn get_state(&self, py: Python<'_>) -> PyResult<String> {
        py.allow_threads(|| {
            let g = self.it.lock().unwrap_or_else(|e| e.into_inner());
            match g.as_ref() {
                Some(it) => it.state_json().map_err(Some),
                None => Err(None),
            }
        })
        .map_err(|e| match e {
            Some(e) => crate::to_py(e),
            None => PyValueError::new_err("get_state: the iterator is closed"),
        })
    }

    /// Stop every thread of this iterator and free its buffers (idempotent).
    fn close(&self, py: Python<'_>) {
        let it = self.it.lock().unwrap_or_else(|e| e.into_inner()).take();
        py.allow_threads(move || drop(it));
    }
}

impl Drop for PyDatasetIter {
    fn drop(&mut self) {
        let it = self.it.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if it.is_some() {
            // Workers may need the GIL to finish a Python call: release it to join them.
            Python::with_gil(|py| py.allow_threads(move || drop(it)));
        }
    }
}

/// Pipeline worker threads alive now, in this process.
#[pyfunction]
fn data_live_threads() -> usize {
    live_threads()
}

/// Counters of the ranged GETs sent to object stores since the process started or
/// the last reset, as `(gets, bytes asked for, largest GET in bytes)` (for tests).
#[pyfunction]
#[pyo3(signature = (reset = false))]
fn location_get_stats(reset: bool) -> (u64, u64, u64) {
    let s = tensorbridge::location::get_stats();
    if reset {
        tensorbridge::location::reset_get_stats();
    }
    (s.gets, s.bytes, s.largest)
}

/// Add this module's classes to `tensorbridge._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDataset>()?;
    m.add_class::<PyDatasetIter>()?;
    m.add_function(wrap_pyfunction!(data_live_threads, m)?)?;
    m.add_function(wrap_pyfunction!(location_get_stats, m)?)?;
    Ok(())
}
