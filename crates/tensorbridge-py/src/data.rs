//! Python bindings for the streaming pipeline (`tensorbridge.data`, issue 5).
//!
//! `_Dataset` wraps the core [`Dataset`]; the element structure (tuple/dict) lives
//! in the Python package. Every blocking `next()` runs with the GIL released; Python
//! map functions take the GIL on the worker threads. Closing or dropping an iterator
//! releases the GIL while it stops and joins its threads (a worker may be waiting
//! for the GIL to finish a Python call).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use tensorbridge::data::{
    live_threads, take_warnings, Dataset, DatasetIter, FilesOptions, MapFn, MapOps, Op,
};
use tensorbridge::{Error, Tensor};

use crate::{dtype_object, parse_casting, parse_dtype, to_py, OrPy, PyTensor};

/// Python exceptions raised by map functions, parked until the consumer's `next()`
/// re-raises them (with their traceback). Bounded: old entries are dropped.
static PARKED: Mutex<VecDeque<(u64, PyErr)>> = Mutex::new(VecDeque::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
const MARK: &str = "\u{1}tensorbridge-python-error#";

fn park(e: PyErr) -> Error {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut q = PARKED.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() >= 64 {
        q.pop_front();
    }
    q.push_back((id, e));
    Error::InvalidArgument(format!("{MARK}{id}"))
}

fn unpark(e: Error) -> PyErr {
    let msg = e.to_string();
    if let Some(id) = msg.strip_prefix(MARK).and_then(|s| s.parse::<u64>().ok()) {
        let mut q = PARKED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = q.iter().position(|(i, _)| *i == id) {
            if let Some((_, err)) = q.remove(pos) {
                return err;
            }
        }
        return PyValueError::new_err(
            "a Python map function raised (exception no longer available)",
        );
    }
    to_py(e)
}

/// Emit the pipeline's recorded warnings (skipped files) as Python `RuntimeWarning`s.
fn flush_warnings(py: Python<'_>) -> PyResult<()> {
    for w in take_warnings() {
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

fn wrap(inner: Dataset) -> PyDataset {
    PyDataset { inner }
}

#[pymethods]
impl PyDataset {
    #[staticmethod]
    fn from_tensor_slices(comps: Vec<Bound<'_, PyAny>>) -> PyResult<PyDataset> {
        let tensors = comps
            .iter()
            .map(|c| Ok(c.downcast::<PyTensor>()?.get().inner.clone()))
            .collect::<PyResult<Vec<Tensor>>>()?;
        Dataset::from_tensor_slices(tensors).map(wrap).or_py()
    }

    /// See `tensorbridge.data.Dataset.from_files`. Reads the headers with the GIL
    /// released.
    #[staticmethod]
    #[pyo3(signature = (paths, keys=None, shuffle_files=false, seed=None, cycle_length=1, block_length=1, on_error="raise"))]
    #[allow(clippy::too_many_arguments)]
    fn from_files(
        py: Python<'_>,
        paths: Vec<std::path::PathBuf>,
        keys: Option<Vec<String>>,
        shuffle_files: bool,
        seed: Option<u64>,
        cycle_length: usize,
        block_length: usize,
        on_error: &str,
    ) -> PyResult<PyDataset> {
        let skip_errors = match on_error {
            "raise" => false,
            "skip" => true,
            other => {
                return Err(PyValueError::new_err(format!(
                    "on_error must be 'raise' or 'skip', not {other:?}"
                )))
            }
        };
        let opts = FilesOptions {
            keys,
            shuffle_files,
            seed,
            cycle_length,
            block_length,
            skip_errors,
        };
        let r = py.allow_threads(|| Dataset::from_files(paths, opts));
        flush_warnings(py)?;
        r.map(wrap).or_py()
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
    #[pyo3(signature = (f, num_parallel_calls=None))]
    fn map_py(&self, f: PyObject, num_parallel_calls: Option<usize>) -> PyDataset {
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
                run().map_err(park)
            })
        });
        wrap(self.inner.map(func, num_parallel_calls))
    }

    #[pyo3(signature = (buffer_size, seed=None, reshuffle_each_iteration=true))]
    fn shuffle(
        &self,
        buffer_size: usize,
        seed: Option<u64>,
        reshuffle_each_iteration: bool,
    ) -> PyResult<PyDataset> {
        if buffer_size == 0 {
            return Err(PyValueError::new_err(
                "buffer_size must be greater than zero",
            ));
        }
        Ok(wrap(self.inner.shuffle(
            buffer_size,
            seed,
            reshuffle_each_iteration,
        )))
    }

    fn batch(&self, batch_size: i64, drop_remainder: bool) -> PyResult<PyDataset> {
        if batch_size <= 0 {
            return Err(PyValueError::new_err(
                "batch_size must be greater than zero",
            ));
        }
        self.inner
            .batch(batch_size as usize, drop_remainder)
            .map(wrap)
            .or_py()
    }

    fn prefetch(&self, buffer_size: usize) -> PyDataset {
        wrap(self.inner.prefetch(buffer_size))
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

    fn shard(&self, num_shards: u64, index: u64) -> PyResult<PyDataset> {
        self.inner.shard(num_shards, index).map(wrap).or_py()
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

    /// Start one epoch.
    fn iterate(&self, py: Python<'_>) -> PyResult<PyDatasetIter> {
        let ds = self.inner.clone();
        let it = py.allow_threads(|| ds.iter()).map_err(unpark)?;
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
        let r = py.allow_threads(|| {
            let mut g = self.it.lock().unwrap_or_else(|e| e.into_inner());
            g.as_mut().and_then(|it| it.next())
        });
        flush_warnings(py)?;
        match r {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(
                v.into_iter().map(|inner| PyTensor { inner }).collect(),
            )),
            Some(Err(e)) => Err(unpark(e)),
        }
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

/// Add this module's classes to `tensorbridge._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDataset>()?;
    m.add_class::<PyDatasetIter>()?;
    m.add_function(wrap_pyfunction!(data_live_threads, m)?)?;
    Ok(())
}
