//! Dtype-like Python values → [`DType`], entirely in Rust: tensorbridge's own dtype
//! objects, strings, NumPy dtypes and scalar types, Python's `bool`/`int`/`float`/
//! `complex`, and framework dtypes with a `.name` (TensorFlow, JAX, PyTorch).
//!
//! The Python package hands over its fifteen `tb.DType` objects once
//! (`_core._register`); the binding never calls back into the package.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyString, PyType};

use tensorbridge::{ByteOrder, DType};

use crate::OrPy;

/// The `tb.DType` objects, in `DType::ALL` order.
static DTYPES: GILOnceCell<Vec<PyObject>> = GILOnceCell::new();

fn registered(py: Python<'_>) -> PyResult<&Vec<PyObject>> {
    DTYPES.get(py).ok_or_else(|| {
        PyTypeError::new_err("tensorbridge._core used before tensorbridge was imported")
    })
}

/// The `tb.DType` object of `d`.
pub(crate) fn dtype_object(py: Python<'_>, d: DType) -> PyResult<PyObject> {
    Ok(registered(py)?[d as usize].clone_ref(py))
}

/// Register the dtype objects (called once on import, in `DType::ALL` order).
#[pyfunction]
pub(crate) fn _register(py: Python<'_>, dtypes: Vec<PyObject>) -> PyResult<()> {
    if dtypes.len() != DType::ALL.len() {
        return Err(PyValueError::new_err("expected one object per dtype"));
    }
    let _ = DTYPES.set(py, dtypes);
    Ok(())
}

/// What NumPy dtype kinds tensorbridge cannot hold are, in words.
fn kind_words(kind: &str) -> &'static str {
    match kind {
        "O" => "object (Python objects)",
        "U" => "string",
        "S" => "bytes",
        "V" => "structured/void",
        "M" => "datetime",
        "m" => "timedelta",
        _ => "unsupported",
    }
}

/// NumPy dtype objects already read (NumPy's dtypes of one type are mostly the same
/// object; reading their attributes costs microseconds). Holding them keeps the
/// identities valid; a few dozen at most.
static NUMPY_SEEN: GILOnceCell<std::sync::Mutex<Vec<(PyObject, DType, ByteOrder)>>> =
    GILOnceCell::new();
const NUMPY_SEEN_MAX: usize = 64;

/// A `numpy.dtype` → `(DType, byte order)`, or `TypeError` naming what is unsupported.
pub(crate) fn from_numpy_dtype(d: &Bound<'_, PyAny>) -> PyResult<(DType, ByteOrder)> {
    let py = d.py();
    let seen = NUMPY_SEEN.get_or_init(py, Default::default);
    if let Ok(seen) = seen.lock() {
        if let Some((_, dt, order)) = seen.iter().find(|(o, _, _)| o.bind(py).is(d)) {
            return Ok((*dt, *order));
        }
    }
    let found = read_numpy_dtype(d)?;
    if let Ok(mut seen) = seen.lock() {
        if seen.len() < NUMPY_SEEN_MAX {
            seen.push((d.clone().unbind(), found.0, found.1));
        }
    }
    Ok(found)
}

fn read_numpy_dtype(d: &Bound<'_, PyAny>) -> PyResult<(DType, ByteOrder)> {
    let name: String = d.getattr("name")?.extract()?;
    let order = match d.getattr("byteorder")?.extract::<String>()?.as_str() {
        "<" => ByteOrder::Little,
        ">" => ByteOrder::Big,
        _ => ByteOrder::NATIVE,
    };
    if name == "bfloat16" {
        return Ok((DType::BFloat16, order));
    }
    let kind: String = d.getattr("kind")?.extract()?;
    let plain = d.getattr("fields")?.is_none() && d.getattr("subdtype")?.is_none();
    if plain && "biufc".contains(kind.as_str()) && kind.len() == 1 {
        if let Ok((dt, _)) = DType::parse(&name) {
            return Ok((dt, order));
        }
    }
    let supported: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
    Err(PyTypeError::new_err(format!(
        "unsupported dtype {} ({}); tensorbridge supports {}",
        d.getattr("str")?.repr()?,
        kind_words(&kind),
        supported.join(", ")
    )))
}

/// Any dtype-like value → `DType` (`TypeError` naming the value otherwise).
pub(crate) fn parse_dtype(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    let py = obj.py();
    // Fast path: one of our own dtype objects.
    if let Some(i) = registered(py)?.iter().position(|d| d.bind(py).is(obj)) {
        return Ok(DType::ALL[i]);
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        return DType::parse(s.to_str()?).map(|(d, _)| d).map_err(|_| {
            PyTypeError::new_err(format!(
                "cannot interpret {} as a tensorbridge dtype",
                obj.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        });
    }
    static NP_DTYPE: GILOnceCell<Py<PyType>> = GILOnceCell::new();
    static NP_GENERIC: GILOnceCell<Py<PyType>> = GILOnceCell::new();
    let np_dtype = NP_DTYPE.import(py, "numpy", "dtype")?;
    if obj.is_instance(np_dtype)? {
        return from_numpy_dtype(obj).map(|(d, _)| d);
    }
    let builtins = py.import("builtins")?;
    let is_builtin_scalar = ["bool", "int", "float", "complex"]
        .iter()
        .any(|n| builtins.getattr(*n).map(|t| t.is(obj)).unwrap_or(false));
    if let Ok(t) = obj.downcast::<PyType>() {
        if is_builtin_scalar || t.is_subclass(NP_GENERIC.import(py, "numpy", "generic")?)? {
            return from_numpy_dtype(&np_dtype.call1((obj,))?).map(|(d, _)| d);
        }
    } else if let Ok(name) = obj.getattr("name") {
        // TensorFlow / JAX / torch dtypes expose a name.
        if let Ok(name) = name.extract::<String>() {
            if let Some(d) = DType::ALL.iter().find(|d| d.name() == name) {
                return Ok(*d);
            }
        }
    }
    Err(PyTypeError::new_err(format!(
        "cannot interpret {} (of type {}) as a tensorbridge dtype",
        obj.repr()?,
        obj.get_type().name()?
    )))
}

/// The `tb.DType` object for any dtype-like value (what `tb.dtype()` returns).
#[pyfunction]
pub(crate) fn as_dtype(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    dtype_object(py, parse_dtype(x)?)
}

/// Facts about a dtype: `(size, kind, alignment)`; kind is one of
/// `"b"`, `"u"`, `"i"`, `"f"`, `"c"`.
#[pyfunction]
pub(crate) fn dtype_info(name: &str) -> PyResult<(usize, &'static str, usize)> {
    let (d, _) = DType::parse(name).or_py()?;
    let kind = match d.kind() {
        tensorbridge::Kind::Bool => "b",
        tensorbridge::Kind::Unsigned => "u",
        tensorbridge::Kind::Signed => "i",
        tensorbridge::Kind::Float => "f",
        tensorbridge::Kind::Complex => "c",
    };
    Ok((d.size(), kind, d.alignment()))
}

/// Names of all dtypes in tensorbridge's fixed order.
#[pyfunction]
pub(crate) fn dtype_names() -> Vec<&'static str> {
    DType::ALL.iter().map(|d| d.name()).collect()
}

/// Parse a dtype string (`"float32"`, `">i8"`, `"f4"`) → `(name, byteorder)` where
/// byteorder is `"<"` or `">"`.
#[pyfunction]
pub(crate) fn parse_dtype_str(s: &str) -> PyResult<(&'static str, &'static str)> {
    let (d, o) = DType::parse(s).or_py()?;
    Ok((d.name(), if o == ByteOrder::Little { "<" } else { ">" }))
}

/// Add this module's functions to `tensorbridge._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_register, m)?)?;
    m.add_function(wrap_pyfunction!(as_dtype, m)?)?;
    m.add_function(wrap_pyfunction!(dtype_info, m)?)?;
    m.add_function(wrap_pyfunction!(dtype_names, m)?)?;
    m.add_function(wrap_pyfunction!(parse_dtype_str, m)?)?;
    Ok(())
}
