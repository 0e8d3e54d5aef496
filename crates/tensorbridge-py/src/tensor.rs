//! `tb.Tensor` (`PyTensor`): every Python method of the tensor class, in one place.
//! Each method translates arguments, calls the core, and translates back.

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyComplex, PyDict, PyEllipsis, PyFloat, PySlice, PyTuple};

use tensorbridge::dlpack::DLDeviceType;
use tensorbridge::{Casting, Complex, DType, Element, Index, Kind, Tensor};

use crate::dtypes::{dtype_object, parse_dtype};
use crate::{dlpack, parse_casting, OrPy};

/// Keeps a tensor alive as the `base` of a NumPy array built from its memory.
#[pyclass(frozen, module = "tensorbridge._core")]
pub(crate) struct ArrayHolder {
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

    /// TensorFlow's `str(tensor)` layout with NumPy's number formatting, made by
    /// the core formatter.
    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        self.inner.to_string()
    }

    /// NumPy's truth value (see the core's `Tensor::truth`): the element of a
    /// one-element tensor; `ValueError` for empty tensors and for more than one
    /// element (ambiguous).
    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        let t = &self.inner;
        py.allow_threads(|| t.truth()).or_py()
    }

    /// `int(t)` for a 0-d tensor (floats truncate, as NumPy).
    fn __int__(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(match scalar_0d(&self.inner)? {
            Scalar::Bool(b) => (b as i64).into_pyobject(py)?.into_any().unbind(),
            Scalar::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
            Scalar::UInt(u) => u.into_pyobject(py)?.into_any().unbind(),
            Scalar::Float(x) => PyFloat::new(py, x).call_method0("__int__")?.unbind(),
            Scalar::Complex(_) => {
                return Err(PyTypeError::new_err(
                    "int() argument must not be a complex tensor",
                ))
            }
        })
    }

    /// `float(t)` for a 0-d tensor.
    fn __float__(&self) -> PyResult<f64> {
        Ok(match scalar_0d(&self.inner)? {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::UInt(u) => u as f64,
            Scalar::Float(x) => x,
            Scalar::Complex(_) => {
                return Err(PyTypeError::new_err(
                    "float() argument must not be a complex tensor",
                ))
            }
        })
    }

    /// `complex(t)` for a 0-d tensor (as NumPy).
    fn __complex__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyComplex>> {
        let (re, im) = match scalar_0d(&self.inner)? {
            Scalar::Bool(b) => (b as u8 as f64, 0.0),
            Scalar::Int(i) => (i as f64, 0.0),
            Scalar::UInt(u) => (u as f64, 0.0),
            Scalar::Float(x) => (x, 0.0),
            Scalar::Complex(z) => (z.re, z.im),
        };
        Ok(PyComplex::from_doubles(py, re, im))
    }

    /// `operator.index(t)` for a 0-d integer tensor (as NumPy).
    fn __index__(&self, py: Python<'_>) -> PyResult<PyObject> {
        let t = &self.inner;
        if t.ndim() != 0 || !matches!(t.dtype().kind(), Kind::Signed | Kind::Unsigned) {
            return Err(PyTypeError::new_err(
                "only integer scalar tensors can be converted to a scalar index",
            ));
        }
        self.__int__(py)
    }

    /// Export as a DLPack capsule (the Python array API's `__dlpack__`).
    ///
    /// `max_version` `None` or below `(1, 0)` gives a legacy `"dltensor"` capsule
    /// (what TensorFlow's `from_dlpack` accepts); `(1, 0)` or above a
    /// `"dltensor_versioned"` capsule flagged read-only (tensors are immutable). The
    /// capsule shares the tensor's memory and keeps it alive until the consumer
    /// releases it. `copy=True` exports a fresh (writable) copy; `copy=False` never
    /// copies. `stream` must be `None` (or -1) on the CPU; `dl_device` must be the
    /// CPU, `(1, 0)`, or `None` (`BufferError` otherwise).
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__(
        &self,
        py: Python<'_>,
        stream: Option<&Bound<'_, PyAny>>,
        max_version: Option<(i64, i64)>,
        dl_device: Option<&Bound<'_, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<PyObject> {
        dlpack::export(py, &self.inner, stream, max_version, dl_device, copy)
    }

    /// `(device_type, device_id)` in DLPack terms: always `(1, 0)`, the CPU.
    fn __dlpack_device__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, [DLDeviceType::CPU.0, 0])
    }

    /// `self` when C-contiguous with its first element on an `alignment`-byte
    /// boundary, else a contiguous copy in fresh (64-byte aligned) memory.
    #[pyo3(signature = (alignment=64))]
    fn _aligned_contiguous(&self, py: Python<'_>, alignment: usize) -> PyResult<PyTensor> {
        if alignment == 0
            || !alignment.is_power_of_two()
            || alignment > tensorbridge::storage::ALIGNMENT
        {
            return Err(PyValueError::new_err(format!(
                "alignment must be a power of two up to {}, got {alignment}",
                tensorbridge::storage::ALIGNMENT
            )));
        }
        let t = &self.inner;
        if t.is_contiguous() && t.data_ptr() as usize % alignment == 0 {
            return Ok(PyTensor { inner: t.clone() });
        }
        let inner = py.allow_threads(|| t.deep_copy()).or_py()?;
        Ok(PyTensor { inner })
    }
}

/// The one element of a one-element tensor, widened within its kind.
enum Scalar {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Complex(Complex<f64>),
}

/// The one element of a one-element tensor, cast to `T`.
fn one<T: Element>(t: &Tensor) -> PyResult<T> {
    let v = t
        .cast(T::DTYPE, Casting::Unsafe)
        .or_py()?
        .to_vec::<T>()
        .or_py()?;
    v.first()
        .copied()
        .ok_or_else(|| PyValueError::new_err("an empty tensor has no element"))
}

fn scalar(t: &Tensor) -> PyResult<Scalar> {
    Ok(match t.dtype().kind() {
        Kind::Bool => Scalar::Bool(one::<tensorbridge::Bool>(t)?.0 != 0),
        Kind::Signed => Scalar::Int(one(t)?),
        Kind::Unsigned => Scalar::UInt(one(t)?),
        Kind::Float => Scalar::Float(one(t)?),
        Kind::Complex => Scalar::Complex(one(t)?),
    })
}

/// The element of a 0-d tensor; `TypeError` otherwise (as NumPy 2).
fn scalar_0d(t: &Tensor) -> PyResult<Scalar> {
    if t.ndim() != 0 {
        return Err(PyTypeError::new_err(
            "only 0-dimensional tensors can be converted to Python scalars",
        ));
    }
    scalar(t)
}
