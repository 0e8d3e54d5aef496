//! Python bindings for TFRecord and safetensors files (issue 4).
//!
//! The user-facing API (`tb.io.*`: dict handling, argument checks with names) is
//! `python/tensorbridge/io.py`; these functions take parallel lists of names and
//! tensors and release the GIL for all file work.

use std::collections::BTreeMap;
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use tensorbridge::format::{safetensors, tfrecord};
use tensorbridge::{Tensor, TensorView};

use tensorbridge::location::Location;

use crate::{location, OrPy, PyTensor};

fn tensors_of(tensors: &[Bound<'_, PyTensor>]) -> Vec<Tensor> {
    tensors.iter().map(|t| t.get().inner.clone()).collect()
}

fn named_views<'a>(names: &'a [String], tensors: &'a [Tensor]) -> Vec<(&'a str, TensorView<'a>)> {
    names
        .iter()
        .map(String::as_str)
        .zip(tensors.iter().map(Tensor::view))
        .collect()
}

fn check_lengths(names: &[String], tensors: &[Bound<'_, PyTensor>]) -> PyResult<()> {
    if names.len() != tensors.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{} names for {} tensors",
            names.len(),
            tensors.len()
        )));
    }
    Ok(())
}

/// Write TFRecord files of `tf.train.Example` records, one per slice along axis 0
/// of the tensors (which share their leading dimension). Returns the paths written.
#[pyfunction]
#[pyo3(signature = (path, names, tensors, shards=1, gzip=false, storage_options=None))]
fn write_tfrecord(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    names: Vec<String>,
    tensors: Vec<Bound<'_, PyTensor>>,
    shards: usize,
    gzip: bool,
    storage_options: Option<BTreeMap<String, String>>,
) -> PyResult<Vec<String>> {
    let loc = location(path, storage_options)?;
    check_lengths(&names, &tensors)?;
    let tensors = tensors_of(&tensors);
    let paths = py
        .allow_threads(|| {
            tfrecord::write_tfrecord_location(&loc, &named_views(&names, &tensors), shards, gzip)
        })
        .or_py()?;
    Ok(paths
        .into_iter()
        .map(|p| match p {
            Location::Local(p) => p.to_string_lossy().into_owned(),
            remote => remote.display(),
        })
        .collect())
}

/// Iterates over the records of one TFRecord file of `tf.train.Example`s, giving a
/// dict of name → Tensor per record. Both CRCs of every record are checked.
#[pyclass(module = "tensorbridge._core")]
struct TfRecordReader {
    // A Mutex makes the (Send-only) reader Sync, as pyclasses must be.
    inner: Mutex<tfrecord::ExampleReader>,
}

#[pymethods]
impl TfRecordReader {
    #[new]
    #[pyo3(signature = (path, gzip=false, storage_options=None))]
    fn new(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        gzip: bool,
        storage_options: Option<BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let loc = location(path, storage_options)?;
        let inner = py
            .allow_threads(|| tfrecord::read_tfrecord_location(&loc, gzip))
            .or_py()?;
        Ok(TfRecordReader {
            inner: Mutex::new(inner),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let next = py.allow_threads(|| {
            // A poisoned lock means an earlier call panicked mid-record: stop.
            self.inner
                .lock()
                .map_err(|_| PyRuntimeError::new_err("TFRecord reader is unusable"))
                .and_then(|mut r| r.next_example().or_py())
        });
        let Some(features) = next? else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        for (name, feature) in features {
            match feature {
                tfrecord::Feature::Tensor(t) => d.set_item(name, PyTensor { inner: t })?,
                tfrecord::Feature::Bytes(values) => {
                    let values: Vec<Bound<'py, PyBytes>> =
                        values.iter().map(|v| PyBytes::new(py, v)).collect();
                    d.set_item(name, values)?
                }
            }
        }
        Ok(Some(d))
    }

    /// The file being read.
    #[getter]
    fn path(&self) -> PyResult<String> {
        self.inner
            .lock()
            .map(|r| r.path().to_string())
            .map_err(|_| PyRuntimeError::new_err("TFRecord reader is unusable"))
    }
}

/// The tensor in the bytes of a `TensorProto` (what `tf.io.serialize_tensor` makes).
#[pyfunction]
fn parse_tensor(py: Python<'_>, data: &[u8]) -> PyResult<PyTensor> {
    let t = py.allow_threads(|| tfrecord::parse_tensor(data)).or_py()?;
    Ok(PyTensor { inner: t })
}

/// The bytes `tf.io.serialize_tensor` makes for a tensor.
#[pyfunction]
fn serialize_tensor<'py>(
    py: Python<'py>,
    tensor: &Bound<'py, PyTensor>,
) -> PyResult<Bound<'py, PyBytes>> {
    let t = tensor.get().inner.clone();
    let bytes = py
        .allow_threads(|| tfrecord::serialize_tensor(&t.view()))
        .or_py()?;
    Ok(PyBytes::new(py, &bytes))
}

/// Write named tensors to a safetensors file, with optional string metadata.
#[pyfunction]
#[pyo3(signature = (path, names, tensors, metadata=None, storage_options=None))]
fn save_safetensors(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    names: Vec<String>,
    tensors: Vec<Bound<'_, PyTensor>>,
    metadata: Option<BTreeMap<String, String>>,
    storage_options: Option<BTreeMap<String, String>>,
) -> PyResult<()> {
    let loc = location(path, storage_options)?;
    check_lengths(&names, &tensors)?;
    let tensors = tensors_of(&tensors);
    py.allow_threads(|| {
        safetensors::save_safetensors_location(
            &loc,
            &named_views(&names, &tensors),
            metadata.as_ref(),
        )
    })
    .or_py()
}

/// The `"__metadata__"` of a safetensors file (`None` when it has none).
#[pyfunction]
#[pyo3(signature = (path, storage_options=None))]
fn safetensors_metadata(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    storage_options: Option<BTreeMap<String, String>>,
) -> PyResult<Option<BTreeMap<String, String>>> {
    let loc = location(path, storage_options)?;
    py.allow_threads(|| safetensors::read_safetensors_metadata_location(&loc))
        .or_py()
}

/// Load a safetensors file (memory-mapped): `[(name, Tensor), ...]` in file order.
#[pyfunction]
#[pyo3(signature = (path, storage_options=None))]
fn load_safetensors(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    storage_options: Option<BTreeMap<String, String>>,
) -> PyResult<Vec<(String, PyTensor)>> {
    let loc = location(path, storage_options)?;
    let loaded = py
        .allow_threads(|| safetensors::load_safetensors_location(&loc))
        .or_py()?;
    Ok(loaded
        .into_iter()
        .map(|(n, t)| (n, PyTensor { inner: t }))
        .collect())
}

/// Add this module's functions to `tensorbridge._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TfRecordReader>()?;
    m.add_function(wrap_pyfunction!(write_tfrecord, m)?)?;
    m.add_function(wrap_pyfunction!(parse_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(serialize_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(save_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(load_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(safetensors_metadata, m)?)?;
    Ok(())
}
