//! Python bindings for tensorbridge (`tensorbridge._core`).
//!
//! This crate only translates: Python objects in, core calls with the GIL
//! released, core errors out as the right built-in exceptions. The user-facing API
//! (dtype objects, `convert_to_tensor`, ...) is the thin Python package above it.

mod array;
mod cli;
mod data;
mod dlpack;
mod dtypes;
mod formats;
mod tensor;
mod tf_bridge;
mod tfio;

use pyo3::exceptions::{PyIndexError, PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use tensorbridge::location::Location;
use tensorbridge::{Casting, Error};

pub(crate) use array::Held;
pub(crate) use dtypes::{dtype_object, parse_dtype};
pub(crate) use tensor::PyTensor;

/// Map a core error to the Python exception its variant documents.
pub(crate) fn to_py(e: Error) -> PyErr {
    if let Error::External(inner) = e {
        return data::external_to_py(inner); // e.g. a map function's own exception
    }
    let msg = e.to_string();
    match e {
        Error::UnknownDType(_) | Error::CastNotAllowed { .. } => PyTypeError::new_err(msg),
        Error::Index(_) => PyIndexError::new_err(msg),
        Error::Alloc(_) => PyMemoryError::new_err(msg),
        // The KeyboardInterrupt the interrupt check took out, raised again.
        Error::Interrupted => Python::with_gil(PyErr::take)
            .unwrap_or_else(|| pyo3::exceptions::PyKeyboardInterrupt::new_err(msg)),
        Error::NotFound { .. } => pyo3::exceptions::PyFileNotFoundError::new_err(msg),
        Error::PermissionDenied { .. } => pyo3::exceptions::PyPermissionError::new_err(msg),
        Error::ObjectChanged { .. } | Error::Remote { .. } => {
            pyo3::exceptions::PyOSError::new_err(msg)
        }
        Error::Io { ref source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => pyo3::exceptions::PyFileNotFoundError::new_err(msg),
            std::io::ErrorKind::PermissionDenied => {
                pyo3::exceptions::PyPermissionError::new_err(msg)
            }
            _ => pyo3::exceptions::PyOSError::new_err(msg),
        },
        _ => PyValueError::new_err(msg),
    }
}

pub(crate) trait OrPy<T> {
    fn or_py(self) -> PyResult<T>;
}
impl<T, E: Into<Error>> OrPy<T> for Result<T, E> {
    fn or_py(self) -> PyResult<T> {
        self.map_err(|e| to_py(e.into()))
    }
}

/// A path argument → a location: a `str` is a local path or a URL (configured by
/// `storage_options`), any other path-like object a local path.
pub(crate) fn location(
    path: &Bound<'_, PyAny>,
    storage_options: Option<std::collections::BTreeMap<String, String>>,
) -> PyResult<Location> {
    let opts = storage_options.unwrap_or_default();
    if let Ok(s) = path.extract::<String>() {
        return Location::parse(&s, &opts).or_py();
    }
    Ok(Location::Local(path.extract::<std::path::PathBuf>()?))
}

/// A casting-mode name → `Casting` (the core's one parser and message).
pub(crate) fn parse_casting(s: &str) -> PyResult<Casting> {
    s.parse::<Casting>().or_py()
}

/// NumPy's `can_cast(from, to, casting)` as tensorbridge implements it.
#[pyfunction]
fn can_cast(from: &Bound<'_, PyAny>, to: &Bound<'_, PyAny>, casting: &str) -> PyResult<bool> {
    Ok(parse_dtype(from)?.can_cast(parse_dtype(to)?, parse_casting(casting)?))
}

/// A NumPy array or a tensor → `Tensor`.
///
/// `array`: a `numpy.ndarray` (read through the buffer protocol) or a `tb.Tensor`;
/// `target` is the wanted dtype (default: the same), reached by a cast under
/// `casting`. `copy`: `None` copies an array (a tensor of the right dtype is
/// returned itself), `True` always copies, `False` shares the memory or raises
/// `ValueError` naming the obstacle.
#[pyfunction]
#[pyo3(signature = (array, target=None, copy=None, casting="unsafe"))]
fn from_array(
    py: Python<'_>,
    array: &Bound<'_, PyAny>,
    target: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
    casting: &str,
) -> PyResult<PyObject> {
    let held = Held::extract(array, "the value")?;
    let dtype = held.dtype();
    let target = target.map(parse_dtype).transpose()?.unwrap_or(dtype);
    let casting = parse_casting(casting)?;
    dtype.check_cast(target, casting).or_py()?;
    if copy == Some(false) {
        if let Some(o) = held.obstacle(target)? {
            return Err(o.into_error()).or_py();
        }
    }
    let inner = match held {
        // Tensors are immutable: the same object will do.
        Held::Tensor(_) if target == dtype && copy != Some(true) => {
            return Ok(array.clone().unbind())
        }
        Held::Array(a) if copy == Some(false) => a.share()?,
        held => {
            let view = held.view()?;
            py.allow_threads(|| tensorbridge::cast(&view, target, casting))
                .or_py()?
        }
    };
    Ok(Py::new(py, PyTensor { inner })?.into_any())
}

/// Stack arrays and tensors of one shape along a new axis.
///
/// `items`: tensors or NumPy arrays.
#[pyfunction]
#[pyo3(signature = (items, axis=0, target=None, casting="unsafe"))]
fn stack(
    py: Python<'_>,
    items: &Bound<'_, PyList>,
    axis: isize,
    target: Option<&Bound<'_, PyAny>>,
    casting: &str,
) -> PyResult<PyTensor> {
    let target = target.map(parse_dtype).transpose()?;
    let casting = parse_casting(casting)?;
    let held = items
        .iter()
        .enumerate()
        .map(|(i, obj)| Held::extract(&obj, &format!("stack item {i}")))
        .collect::<PyResult<Vec<_>>>()?;
    let views = held.iter().map(Held::view).collect::<PyResult<Vec<_>>>()?;
    let t = py
        .allow_threads(|| tensorbridge::stack(&views, axis, target, casting))
        .or_py()?;
    Ok(PyTensor { inner: t })
}

/// The thread that imported the module (Python's main thread): the one where
/// signal handlers run.
static MAIN_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

/// Whether Ctrl-C is pending, for object-store I/O blocked on the main thread: runs
/// Python's signal handlers, and keeps the exception they raise (set as the thread's
/// current error) for `to_py` to raise again. Other threads never interrupt.
fn interrupt_pending() -> bool {
    if MAIN_THREAD.get() != Some(&std::thread::current().id()) {
        return false;
    }
    Python::with_gil(|py| match py.check_signals() {
        Ok(()) => false,
        Err(e) => {
            e.restore(py);
            true
        }
    })
}

/// The compiled core of tensorbridge.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = MAIN_THREAD.set(std::thread::current().id());
    tensorbridge::location::set_interrupt_check(interrupt_pending);
    m.add_class::<PyTensor>()?;
    m.add_class::<tensor::ArrayHolder>()?;
    dtypes::register(m)?;
    m.add_function(wrap_pyfunction!(can_cast, m)?)?;
    m.add_function(wrap_pyfunction!(from_array, m)?)?;
    m.add_function(wrap_pyfunction!(stack, m)?)?;
    data::register(m)?;
    formats::register(m)?;
    dlpack::register(m)?;
    tfio::register(m)?;
    tf_bridge::register_module(m)?;
    cli::register(m)?;
    Ok(())
}
