//! NumPy arrays in: memory read through the buffer protocol (never through an
//! object's self-reported `__array_interface__` pointer), kept alive by holding the
//! buffer until the last tensor using it is gone.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;

use tensorbridge::storage::Storage;
use tensorbridge::tensor::foreign_storage;
use tensorbridge::{ByteOrder, DType, Layout, Tensor, TensorView, ViewObstacle};

use crate::dtypes::from_numpy_dtype;
use crate::tensor::PyTensor;
use crate::OrPy;

/// A `Py_buffer` obtained from an exporter; released (with the GIL) on drop.
struct Buffer(Box<ffi::Py_buffer>);

// SAFETY: the buffer is only read (never written) through the raw view, and is
// released with the GIL held (`Drop`), as the buffer protocol requires.
unsafe impl Send for Buffer {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// Ask `obj` for a strided (read-only is fine) buffer, without a format string
    /// (the dtype is read from the array itself; NumPy cannot describe e.g.
    /// bfloat16 in a format string).
    fn get(obj: &Bound<'_, PyAny>) -> PyResult<Buffer> {
        // SAFETY: `Py_buffer` is a plain C struct; all-zero is its "empty" state,
        // which `PyObject_GetBuffer` fills in.
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `obj` is a live object, the GIL is held, `view` is writable.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_STRIDES) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Buffer(view))
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: `Py_IsInitialized` may be called at any time.
        if unsafe { ffi::Py_IsInitialized() } == 0 {
            return; // interpreter gone: nothing left to release to
        }
        Python::with_gil(|_| {
            // SAFETY: the buffer was filled by `PyObject_GetBuffer` and is released
            // exactly once, with the GIL held.
            unsafe { ffi::PyBuffer_Release(&mut *self.0) }
        });
    }
}

/// The memory of a NumPy array, kept alive (the buffer holds the array).
pub(crate) struct ArrayMemory {
    storage: Arc<Storage>,
    dtype: DType,
    order: ByteOrder,
    layout: Layout,
}

impl ArrayMemory {
    /// Read a `numpy.ndarray` (a `TypeError` for anything else).
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<ArrayMemory> {
        static NDARRAY: GILOnceCell<Py<PyType>> = GILOnceCell::new();
        if !obj.is_instance(NDARRAY.import(obj.py(), "numpy", "ndarray")?)? {
            return Err(PyTypeError::new_err(format!(
                "expected a numpy.ndarray, got {}",
                obj.get_type().name()?
            )));
        }
        let (dtype, order) = from_numpy_dtype(&obj.getattr("dtype")?)?;
        let buf = Buffer::get(obj)?;
        let v = &*buf.0;
        if v.itemsize != dtype.size() as isize {
            return Err(PyTypeError::new_err(format!(
                "the array's buffer has {}-byte items, which do not hold {dtype} elements",
                v.itemsize
            )));
        }
        let ndim = usize::try_from(v.ndim)
            .map_err(|_| PyValueError::new_err("buffer with a negative number of dimensions"))?;
        // SAFETY: with PyBUF_STRIDES the exporter fills `shape` and `strides` with
        // `ndim` entries each (NULL allowed only when ndim == 0), valid while the
        // buffer is held.
        let (shape, strides) = unsafe {
            if ndim == 0 || v.shape.is_null() || v.strides.is_null() {
                (&[][..], &[][..])
            } else {
                (
                    std::slice::from_raw_parts(v.shape, ndim),
                    std::slice::from_raw_parts(v.strides, ndim),
                )
            }
        };
        if ndim > 0 && shape.is_empty() {
            return Err(PyValueError::new_err("buffer without shape or strides"));
        }
        let shape = shape
            .iter()
            .map(|&n| usize::try_from(n).map_err(|_| PyValueError::new_err("negative dimension")))
            .collect::<PyResult<Vec<usize>>>()?;
        let layout = Layout::new(shape, strides.to_vec(), 0).or_py()?;
        let ptr = v.buf as *const u8;
        // SAFETY: the buffer protocol guarantees that every element described by
        // `buf`, `shape` and `strides` is readable while the buffer is held; the
        // storage owns the buffer.
        let (storage, layout) =
            unsafe { foreign_storage(ptr, &layout, dtype.size(), Box::new(buf)) }.or_py()?;
        Ok(ArrayMemory {
            storage: Arc::new(storage),
            dtype,
            order,
            layout,
        })
    }

    /// A view of the elements.
    pub(crate) fn view(&self) -> PyResult<TensorView<'_>> {
        TensorView::with_layout(
            self.storage.as_slice(),
            self.dtype,
            self.layout.clone(),
            self.order,
        )
        .or_py()
    }

    /// The stored dtype.
    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    /// A zero-copy tensor over this memory, or the obstacle's error
    /// (a `copy=False` conversion needs native order, C order and alignment).
    pub(crate) fn share(&self) -> PyResult<Tensor> {
        if let Some(o) = self.view()?.obstacle(self.dtype, true) {
            return Err(o.into_error()).or_py();
        }
        let owner = Box::new(self.storage.clone());
        // SAFETY: the elements lie in `storage` (checked when it was made), which
        // stays readable while `owner`, a reference to it, lives.
        unsafe {
            Tensor::from_foreign(
                self.storage.as_ptr(),
                self.dtype,
                self.layout.clone(),
                owner,
                Some(false),
            )
        }
        .or_py()
    }
}

/// Elements held for reading: a tensor, or a NumPy array's memory.
pub(crate) enum Held {
    /// A `tb.Tensor`.
    Tensor(Tensor),
    /// A NumPy array, kept alive.
    Array(ArrayMemory),
}

impl Held {
    /// A `tb.Tensor` or a `numpy.ndarray`; `what` names the argument in errors.
    pub(crate) fn extract(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Held> {
        if let Ok(t) = obj.downcast::<PyTensor>() {
            return Ok(Held::Tensor(t.get().inner.clone()));
        }
        ArrayMemory::new(obj).map(Held::Array).map_err(|e| {
            match e.is_instance_of::<PyTypeError>(obj.py()) {
                true => PyTypeError::new_err(format!("{what} is not an array or tensor: {e}")),
                false => e,
            }
        })
    }

    /// A view of the elements.
    pub(crate) fn view(&self) -> PyResult<TensorView<'_>> {
        match self {
            Held::Tensor(t) => Ok(t.view()),
            Held::Array(b) => b.view(),
        }
    }

    /// The stored dtype.
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Held::Tensor(t) => t.dtype(),
            Held::Array(b) => b.dtype(),
        }
    }

    /// Whether a zero-copy result is impossible, and why.
    pub(crate) fn obstacle(&self, target: DType) -> PyResult<Option<ViewObstacle>> {
        Ok(match self {
            Held::Tensor(t) if t.dtype() != target => Some(ViewObstacle::DTypeChanges {
                from: t.dtype(),
                to: target,
            }),
            Held::Tensor(_) => None,
            Held::Array(b) => b.view()?.obstacle(target, true),
        })
    }
}
