//! Python bindings for tensorbridge (`tensorbridge._core`).
//!
//! This crate only translates: Python objects in, core calls with the GIL
//! released, core errors out as the right built-in exceptions. The user-facing API
//! (dtype objects, `convert_to_tensor`, ...) is the thin Python package above it.

use std::sync::Arc;

mod data;
mod dlpack;
mod formats;
mod tfio;

use pyo3::exceptions::{PyIndexError, PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyEllipsis, PyList, PySlice, PyTuple};

use tensorbridge::storage::Storage;
use tensorbridge::view::is_c_contiguous;
use tensorbridge::{ByteOrder, Casting, DType, Error, Index, Tensor, TensorView};

/// Map a core error to the Python exception its variant documents.
pub(crate) fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::UnknownDType(_) | Error::CastNotAllowed { .. } => PyTypeError::new_err(msg),
        Error::Index(_) => PyIndexError::new_err(msg),
        Error::Alloc(_) => PyMemoryError::new_err(msg),
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
impl<T> OrPy<T> for Result<T, Error> {
    fn or_py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Python-side hooks registered by `tensorbridge/__init__.py`: the dtype objects
/// (in `DType::ALL` order) and the `dtype()` parser.
struct Hooks {
    dtypes: Vec<PyObject>,
    parse: PyObject,
}
static HOOKS: GILOnceCell<Hooks> = GILOnceCell::new();

fn hooks(py: Python<'_>) -> PyResult<&Hooks> {
    HOOKS.get(py).ok_or_else(|| {
        PyTypeError::new_err("tensorbridge._core used before tensorbridge was imported")
    })
}

pub(crate) fn dtype_object(py: Python<'_>, d: DType) -> PyResult<PyObject> {
    Ok(hooks(py)?.dtypes[d as usize].clone_ref(py))
}

/// Any dtype-like Python value → `DType`, through the Python `dtype()` parser.
pub(crate) fn parse_dtype(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    let py = obj.py();
    // Fast path: one of our own dtype objects.
    if let Some(i) = hooks(py)?.dtypes.iter().position(|d| d.bind(py).is(obj)) {
        return Ok(DType::ALL[i]);
    }
    if let Ok(s) = obj.downcast::<pyo3::types::PyString>() {
        if let Ok((d, _)) = DType::parse(s.to_str()?) {
            return Ok(d);
        }
    }
    let parsed = hooks(py)?.parse.call1(py, (obj,))?;
    let name: String = parsed.getattr(py, "name")?.extract(py)?;
    DType::parse(&name).map(|(d, _)| d).or_py()
}

pub(crate) fn parse_casting(s: &str) -> PyResult<Casting> {
    s.parse().or_py()
}

/// Register the dtype objects and the `dtype()` parser (called once on import).
#[pyfunction]
fn _register(py: Python<'_>, dtypes: Vec<PyObject>, parse: PyObject) -> PyResult<()> {
    if dtypes.len() != DType::ALL.len() {
        return Err(PyValueError::new_err("expected one object per dtype"));
    }
    let _ = HOOKS.set(py, Hooks { dtypes, parse });
    Ok(())
}

/// Facts about a dtype: `(size, kind, alignment)`; kind is one of
/// `"b"`, `"u"`, `"i"`, `"f"`, `"c"`.
#[pyfunction]
fn dtype_info(name: &str) -> PyResult<(usize, &'static str, usize)> {
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
fn dtype_names() -> Vec<&'static str> {
    DType::ALL.iter().map(|d| d.name()).collect()
}

/// Parse a dtype string (`"float32"`, `">i8"`, `"f4"`) → `(name, byteorder)` where
/// byteorder is `"<"` or `">"`.
#[pyfunction]
fn parse_dtype_str(s: &str) -> PyResult<(&'static str, &'static str)> {
    let (d, o) = DType::parse(s).or_py()?;
    Ok((d.name(), if o == ByteOrder::Little { "<" } else { ">" }))
}

/// NumPy's `can_cast(from, to, casting)` as tensorbridge implements it.
#[pyfunction]
fn can_cast(from: &Bound<'_, PyAny>, to: &Bound<'_, PyAny>, casting: &str) -> PyResult<bool> {
    Ok(parse_dtype(from)?.can_cast(parse_dtype(to)?, parse_casting(casting)?))
}

/// Memory of a Python object exposing `__array_interface__`, kept alive by a
/// reference to the object.
pub(crate) struct Borrowed {
    storage: Arc<Storage>,
    dtype: DType,
    order: ByteOrder,
    shape: Vec<usize>,
    strides: Vec<isize>,
    offset: usize,
}

impl Borrowed {
    /// Read `obj.__array_interface__`. `dtype` and `order` come from the caller's
    /// reading of the object's dtype; the interface's item size must agree, so a
    /// wrong dtype can never make us read past the object's memory.
    fn new(obj: &Bound<'_, PyAny>, dtype: DType, order: ByteOrder) -> PyResult<Borrowed> {
        let ai = obj.getattr("__array_interface__")?;
        let ai = ai.downcast::<PyDict>()?;
        let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
            ai.get_item(k)?
                .ok_or_else(|| PyValueError::new_err(format!("__array_interface__ has no {k:?}")))
        };
        let typestr: String = get("typestr")?.extract()?;
        let itemsize: usize = typestr.get(2..).and_then(|s| s.parse().ok()).unwrap_or(0);
        if itemsize != dtype.size() {
            return Err(PyTypeError::new_err(format!(
                "array type {typestr:?} does not hold {dtype} elements"
            )));
        }
        let (ptr, _readonly): (usize, bool) = get("data")?.extract().map_err(|_| {
            PyTypeError::new_err("__array_interface__ 'data' must be a (pointer, readonly) tuple")
        })?;
        let shape: Vec<usize> = get("shape")?.extract()?;
        let strides: Vec<isize> = match ai.get_item("strides")? {
            Some(s) if !s.is_none() => s.extract()?,
            _ => tensorbridge::view::contiguous_strides(&shape, dtype.size()),
        };
        if strides.len() != shape.len() {
            return Err(PyValueError::new_err(
                "__array_interface__ shape and strides differ in length",
            ));
        }
        // The byte range the elements span, relative to `ptr`.
        let (lo, hi) = extent(&shape, &strides, dtype.size())?;
        let start = (ptr as i128 + lo) as usize;
        let owner: Py<PyAny> = obj.clone().unbind();
        // SAFETY: NumPy's array interface promises that `ptr` addresses the element
        // at index [0, ...] and that every element (shape/strides) is readable for
        // as long as the object lives; `owner` keeps it alive.
        let storage =
            unsafe { Storage::foreign(start as *const u8, (hi - lo) as usize, Box::new(owner)) };
        Ok(Borrowed {
            storage: Arc::new(storage),
            dtype,
            order,
            shape,
            strides,
            offset: (-lo) as usize,
        })
    }

    fn view(&self) -> PyResult<TensorView<'_>> {
        TensorView::new(
            self.storage.as_slice(),
            self.dtype,
            self.shape.clone(),
            self.strides.clone(),
            self.offset,
            self.order,
        )
        .or_py()
    }

    /// Why a zero-copy tensor of `target` over this memory is impossible, if it is.
    fn view_obstacle(&self, target: DType) -> Option<String> {
        let view = self.view().ok()?;
        if target != self.dtype {
            Some(format!("the dtype changes from {} to {target}", self.dtype))
        } else if self.order.is_swapped() && self.dtype.size() > 1 {
            Some("the data is byte-swapped (non-native byte order)".into())
        } else if !is_c_contiguous(&self.shape, &self.strides, self.dtype.size()) {
            Some(format!(
                "the data is not C-contiguous (strides {:?})",
                self.strides
            ))
        } else if !view.is_empty() && !view.is_aligned() {
            Some(format!(
                "the data is not aligned for {} elements",
                self.dtype
            ))
        } else {
            None
        }
    }
}

fn extent(shape: &[usize], strides: &[isize], itemsize: usize) -> PyResult<(i128, i128)> {
    tensorbridge::Layout::new(shape.to_vec(), strides.to_vec(), 0)
        .and_then(|l| l.byte_extent(itemsize))
        .or_py()
}

fn order_from(s: &str) -> PyResult<ByteOrder> {
    match s {
        "<" => Ok(ByteOrder::Little),
        ">" => Ok(ByteOrder::Big),
        "=" | "|" => Ok(ByteOrder::NATIVE),
        _ => Err(PyValueError::new_err(format!("unknown byte order {s:?}"))),
    }
}

/// A NumPy-like array → `Tensor`.
///
/// `dtype`/`byteorder` describe the array's elements; `target` is the wanted dtype
/// (default: the same). `copy`: `None` or `True` copy into a fresh aligned buffer
/// (casting on the way); `False` makes a zero-copy view or raises `ValueError`.
#[pyfunction]
#[pyo3(signature = (array, dtype, byteorder, target=None, copy=None, casting="unsafe"))]
fn from_array(
    py: Python<'_>,
    array: &Bound<'_, PyAny>,
    dtype: &str,
    byteorder: &str,
    target: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
    casting: &str,
) -> PyResult<PyTensor> {
    let (dtype, _) = DType::parse(dtype).or_py()?;
    let target = target.map(parse_dtype).transpose()?.unwrap_or(dtype);
    let casting = parse_casting(casting)?;
    dtype.check_cast(target, casting).or_py()?;
    let b = Borrowed::new(array, dtype, order_from(byteorder)?)?;
    if copy == Some(false) {
        if let Some(why) = b.view_obstacle(target) {
            return Err(PyValueError::new_err(format!(
                "copy=False but a zero-copy tensor is impossible: {why}"
            )));
        }
        let t = Tensor::from_storage(
            b.storage.clone(),
            dtype,
            b.shape.clone(),
            b.strides.clone(),
            b.offset,
            true,
        )
        .or_py()?;
        return Ok(PyTensor { inner: t });
    }
    let view = b.view()?;
    let t = py
        .allow_threads(|| tensorbridge::cast(&view, target, casting))
        .or_py()?;
    Ok(PyTensor { inner: t })
}

/// Stack arrays and tensors of one shape along a new axis.
///
/// `items`: tensors, or `(array, dtype_name, byteorder)` tuples for NumPy arrays.
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

/// Elements held for reading: a tensor, or a NumPy array's memory.
pub(crate) enum Held {
    /// A `tb.Tensor`.
    Tensor(Tensor),
    /// A NumPy-like array, kept alive.
    Array(Borrowed),
}

impl Held {
    /// A `PyTensor`, or an `(array, dtype_name, byteorder)` tuple as the Python package
    /// passes NumPy arrays; `what` names the argument in errors.
    pub(crate) fn extract(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Held> {
        if let Ok(t) = obj.downcast::<PyTensor>() {
            return Ok(Held::Tensor(t.get().inner.clone()));
        }
        let (arr, d, o): (Bound<'_, PyAny>, String, String) = obj
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("{what} is not an array or tensor")))?;
        let (d, _) = DType::parse(&d).or_py()?;
        Ok(Held::Array(Borrowed::new(&arr, d, order_from(&o)?)?))
    }

    /// A view of the elements.
    pub(crate) fn view(&self) -> PyResult<TensorView<'_>> {
        match self {
            Held::Tensor(t) => Ok(t.view()),
            Held::Array(b) => b.view(),
        }
    }
}

/// Keeps a tensor alive as the `base` of a NumPy array built from its memory.
#[pyclass(frozen, module = "tensorbridge._core")]
struct ArrayHolder {
    tensor: Tensor,
}

#[pymethods]
impl ArrayHolder {
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = &self.tensor;
        let d = PyDict::new(py);
        let typestr = match t.dtype() {
            // NumPy has no bfloat16; the Python side views these bytes as
            // ml_dtypes.bfloat16.
            DType::BFloat16 => "<u2".to_string(),
            other => other.typestr(),
        };
        d.set_item("version", 3)?;
        d.set_item("typestr", typestr)?;
        d.set_item("shape", PyTuple::new(py, t.shape())?)?;
        d.set_item("strides", PyTuple::new(py, t.strides())?)?;
        d.set_item("data", (t.data_ptr() as usize, true))?;
        Ok(d)
    }
}

/// An immutable n-dimensional array of one dtype.
///
/// Made by `tb.convert_to_tensor`, `tb.constant`, `tb.cast`, `tb.stack`.
#[pyclass(frozen, module = "tensorbridge", name = "Tensor")]
pub struct PyTensor {
    pub(crate) inner: Tensor,
}

fn parse_index(t: &Tensor, key: &Bound<'_, PyAny>) -> PyResult<Vec<Index>> {
    let items: Vec<Bound<'_, PyAny>> = match key.downcast::<PyTuple>() {
        Ok(tup) => tup.iter().collect(),
        Err(_) => vec![key.clone()],
    };
    let ellipsis = PyEllipsis::get(key.py()).to_owned();
    let is_ellipsis = |i: &Bound<'_, PyAny>| i.is(&ellipsis);
    let ellipses = items.iter().filter(|i| is_ellipsis(i)).count();
    if ellipses > 1 {
        return Err(PyIndexError::new_err(
            "an index can only have a single ellipsis ('...')",
        ));
    }
    let consumed = items
        .iter()
        .filter(|i| !i.is_none() && !is_ellipsis(i))
        .count();
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        if item.is_none() {
            out.push(Index::NewAxis);
        } else if is_ellipsis(item) {
            let fill = t.ndim().saturating_sub(consumed);
            out.extend(std::iter::repeat_n(Index::FULL, fill));
        } else if let Ok(s) = item.downcast::<PySlice>() {
            let get = |name: &str| -> PyResult<Option<isize>> { s.getattr(name)?.extract() };
            out.push(Index::Slice {
                start: get("start")?,
                stop: get("stop")?,
                step: get("step")?.unwrap_or(1),
            });
        } else if let Ok(i) = item
            .call_method0("__index__")
            .and_then(|i| i.extract::<isize>())
        {
            out.push(Index::At(i));
        } else {
            return Err(PyIndexError::new_err(format!(
                "only integers, slices (`:`), ellipsis (`...`) and None are valid indices, not {}",
                item.get_type().name()?
            )));
        }
    }
    Ok(out)
}

#[pymethods]
impl PyTensor {
    /// The dimensions, as a tuple of ints.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.shape())
    }

    /// The element type (a `tb.DType`).
    #[getter]
    fn dtype(&self, py: Python<'_>) -> PyResult<PyObject> {
        dtype_object(py, self.inner.dtype())
    }

    /// Number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.ndim()
    }

    /// Number of elements.
    #[getter]
    fn size(&self) -> usize {
        self.inner.len()
    }

    /// Bytes the elements occupy.
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }

    /// Whether the tensor is a zero-copy view of memory it shares (with a NumPy
    /// array, a file, or another tensor) rather than its own fresh buffer.
    #[getter]
    fn is_view(&self) -> bool {
        self.inner.is_view()
    }

    /// Byte strides (NumPy convention).
    #[getter]
    fn strides<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.strides())
    }

    /// Address of the first element (for identity checks and interop).
    #[getter]
    fn data_ptr(&self) -> usize {
        self.inner.data_ptr() as usize
    }

    fn __len__(&self) -> PyResult<usize> {
        self.inner
            .shape()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }

    /// An object whose `__array_interface__` describes this tensor's memory
    /// (read-only); used by `Tensor.numpy()`.
    fn _array_holder(&self) -> ArrayHolder {
        ArrayHolder {
            tensor: self.inner.clone(),
        }
    }

    /// Cast to `dtype` under `casting` (a new tensor).
    #[pyo3(signature = (dtype, casting="unsafe"))]
    fn astype(
        &self,
        py: Python<'_>,
        dtype: &Bound<'_, PyAny>,
        casting: &str,
    ) -> PyResult<PyTensor> {
        let to = parse_dtype(dtype)?;
        let casting = parse_casting(casting)?;
        let src = &self.inner;
        let t = py.allow_threads(|| src.cast(to, casting)).or_py()?;
        Ok(PyTensor { inner: t })
    }

    /// A fresh, independent, C-contiguous copy.
    fn copy(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let src = &self.inner;
        let t = py.allow_threads(|| src.deep_copy()).or_py()?;
        Ok(PyTensor { inner: t })
    }

    /// Reshape (one dimension may be -1). A view when the tensor is contiguous.
    #[pyo3(signature = (*shape))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims: Vec<isize> = if shape.len() == 1 {
            let only = shape.get_item(0)?;
            only.extract::<Vec<isize>>()
                .or_else(|_| only.extract::<isize>().map(|d| vec![d]))?
        } else {
            shape.extract()?
        };
        Ok(PyTensor {
            inner: self.inner.reshape(&dims).or_py()?,
        })
    }

    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let index = parse_index(&self.inner, key)?;
        Ok(PyTensor {
            inner: self.inner.index(&index).or_py()?,
        })
    }

    /// TensorFlow-style text with NumPy's number formatting, made by the core.
    fn _rust_str(&self) -> String {
        self.inner.to_string()
    }

    /// A read-only NumPy array over the tensor's memory (zero-copy; the array keeps
    /// the tensor's memory alive). bfloat16 tensors give `ml_dtypes.bfloat16` arrays.
    fn numpy(&self, py: Python<'_>) -> PyResult<PyObject> {
        let holder = Py::new(
            py,
            ArrayHolder {
                tensor: self.inner.clone(),
            },
        )?;
        let arr = py.import("numpy")?.call_method1("asarray", (holder,))?;
        let arr = if self.inner.dtype() == DType::BFloat16 {
            let bf16 = py.import("ml_dtypes")?.getattr("bfloat16")?;
            arr.call_method1("view", (bf16,))?
        } else {
            arr
        };
        Ok(arr.unbind())
    }

    /// NumPy's array protocol: `np.asarray(t)` is zero-copy and read-only.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__(
        &self,
        py: Python<'_>,
        dtype: Option<PyObject>,
        copy: Option<bool>,
    ) -> PyResult<PyObject> {
        let arr = self.numpy(py)?;
        let arr = arr.bind(py);
        let arr = match dtype {
            Some(d) if !d.is_none(py) => arr.call_method1("astype", (d,))?,
            _ if copy == Some(true) => arr.call_method0("copy")?,
            _ => arr.clone(),
        };
        Ok(arr.unbind())
    }

    fn __str__(&self, py: Python<'_>) -> PyResult<String> {
        // NumPy formats the values (so they print exactly as NumPy prints them);
        // the layout around them is TensorFlow's `str(tensor)`.
        let text: String = self.numpy(py)?.bind(py).str()?.extract()?;
        let sep = if text.contains('\n') { "\n" } else { "" };
        let shape = self.inner.shape();
        let shape = match shape.len() {
            1 => format!("({},)", shape[0]),
            _ => format!(
                "({})",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Ok(format!(
            "tb.Tensor({sep}{text}, shape={shape}, dtype={})",
            self.inner.dtype()
        ))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.__str__(py)
    }
}

/// The compiled core of tensorbridge.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTensor>()?;
    m.add_class::<ArrayHolder>()?;
    m.add_function(wrap_pyfunction!(_register, m)?)?;
    m.add_function(wrap_pyfunction!(dtype_info, m)?)?;
    m.add_function(wrap_pyfunction!(dtype_names, m)?)?;
    m.add_function(wrap_pyfunction!(parse_dtype_str, m)?)?;
    m.add_function(wrap_pyfunction!(can_cast, m)?)?;
    m.add_function(wrap_pyfunction!(from_array, m)?)?;
    m.add_function(wrap_pyfunction!(stack, m)?)?;
    data::register(m)?;
    formats::register(m)?;
    dlpack::register(m)?;
    tfio::register(m)?;
    Ok(())
}
