//! DLPack exchange (issue 4): capsules for `Tensor.__dlpack__` ([`export`]) and
//! `tb.from_dlpack`. The `to_tensorflow` / `to_jax` / `to_torch` / `to_numpy`
//! conveniences are Python, on top of `__dlpack__` (`tensorbridge/_interop.py`).
//!
//! Capsules follow the DLPack Python specification: a legacy `DLManagedTensor` is a
//! `"dltensor"` capsule, a `DLManagedTensorVersioned` a `"dltensor_versioned"` one.
//! A consumer renames the capsule to `"used_dltensor"` / `"used_dltensor_versioned"`
//! when it takes ownership, and from then on calls the deleter itself; the capsule's
//! destructor calls the deleter only when the capsule was never consumed. So each
//! exported tensor is released exactly once, whichever way it goes.

use std::ffi::{c_void, CStr};

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use tensorbridge::dlpack::{
    DLDevice, DLDeviceType, DLManagedTensor, DLManagedTensorVersioned, ExportOptions, ManagedTensor,
};

use tensorbridge::Tensor;

use crate::{OrPy, PyTensor};

const LEGACY: &CStr = c"dltensor";
const USED_LEGACY: &CStr = c"used_dltensor";
const VERSIONED: &CStr = c"dltensor_versioned";
const USED_VERSIONED: &CStr = c"used_dltensor_versioned";

/// The release hook of every export: drop the exported tensor with the GIL held
/// *as PyO3 sees it*. Consumers (TensorFlow, JAX, NumPy, a capsule destructor) call
/// the deleter from C, where PyO3 does not know whether the GIL is held; a tensor
/// that keeps a Python object alive (a zero-copy view of a NumPy array) would then
/// only queue that object's release until the next call into tensorbridge.
/// `with_gil` is reentrant, so this is cheap when the GIL is already held.
fn release_with_gil(release: &mut dyn FnMut()) {
    // SAFETY: `Py_IsInitialized` may be called at any time, GIL or not.
    if unsafe { ffi::Py_IsInitialized() } == 0 {
        // Interpreter gone (exit): plain Rust drop; Python references are queued.
        release();
        return;
    }
    Python::with_gil(|_| release());
}

/// Destructor shared by both kinds of capsule: release the managed tensor unless a
/// consumer took it (renamed the capsule).
///
/// # Safety
/// Called by CPython with the GIL held, on a capsule this module created.
unsafe fn release_unconsumed(capsule: *mut ffi::PyObject, name: &CStr, versioned: bool) {
    // SAFETY: `capsule` is a live capsule object (CPython calls destructors before
    // freeing); the name check does not set an exception.
    let live = unsafe { ffi::PyCapsule_IsValid(capsule, name.as_ptr()) } == 1;
    if !live {
        // Renamed to "used_...": the consumer owns the managed tensor now.
        return;
    }
    // The destructor may run while an exception is being raised; keep it intact.
    let mut ptype = std::ptr::null_mut();
    let mut pvalue = std::ptr::null_mut();
    let mut ptrace = std::ptr::null_mut();
    // SAFETY: plain CPython error-state calls with the GIL held.
    unsafe { ffi::PyErr_Fetch(&mut ptype, &mut pvalue, &mut ptrace) };
    // SAFETY: the name matched, so this returns the pointer we stored.
    let ptr = unsafe { ffi::PyCapsule_GetPointer(capsule, name.as_ptr()) };
    if ptr.is_null() {
        // SAFETY: reports the pending error as unraisable; GIL held.
        unsafe { ffi::PyErr_WriteUnraisable(capsule) };
    } else {
        // SAFETY: the capsule owns the managed tensor it was created with and
        // nobody consumed it; dropping the wrapper calls its deleter once (whose
        // release hook tells PyO3 that the GIL is held).
        let owned = unsafe {
            if versioned {
                ManagedTensor::from_raw_versioned(ptr as *mut DLManagedTensorVersioned)
            } else {
                ManagedTensor::from_raw_legacy(ptr as *mut DLManagedTensor)
            }
        };
        drop(owned);
    }
    // SAFETY: restores the state fetched above (reference ownership passes back).
    unsafe { ffi::PyErr_Restore(ptype, pvalue, ptrace) };
}

unsafe extern "C" fn legacy_capsule_destructor(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython calls this for our "dltensor" capsules with the GIL held.
    unsafe { release_unconsumed(capsule, LEGACY, false) }
}

unsafe extern "C" fn versioned_capsule_destructor(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython calls this for our "dltensor_versioned" capsules with the GIL held.
    unsafe { release_unconsumed(capsule, VERSIONED, true) }
}

/// Put a managed tensor into a new capsule that owns it.
fn into_capsule(py: Python<'_>, managed: ManagedTensor) -> PyResult<PyObject> {
    let versioned = managed.is_versioned();
    let (name, destructor): (&CStr, ffi::PyCapsule_Destructor) = if versioned {
        (VERSIONED, versioned_capsule_destructor)
    } else {
        (LEGACY, legacy_capsule_destructor)
    };
    let raw = managed.into_raw();
    // SAFETY: `raw` is non-NULL; the name is a static C string (capsules keep the
    // pointer); the destructor matches the kind of managed tensor.
    let cap = unsafe { ffi::PyCapsule_New(raw, name.as_ptr(), Some(destructor)) };
    if cap.is_null() {
        // Not wrapped: take it back so that it is released.
        // SAFETY: `raw` is the managed tensor `into_raw` just gave up.
        drop(unsafe { reclaim(raw, versioned) });
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `PyCapsule_New` returned a new reference.
    Ok(unsafe { PyObject::from_owned_ptr(py, cap) })
}

/// # Safety
/// `raw` must be an owned managed tensor of the given kind.
unsafe fn reclaim(raw: *mut c_void, versioned: bool) -> Option<ManagedTensor> {
    // SAFETY: forwarded contract.
    unsafe {
        if versioned {
            ManagedTensor::from_raw_versioned(raw as *mut DLManagedTensorVersioned)
        } else {
            ManagedTensor::from_raw_legacy(raw as *mut DLManagedTensor)
        }
    }
    .ok()
}

fn device_error(what: &str, dev: DLDevice) -> PyErr {
    PyBufferError::new_err(format!(
        "{what} is on device {dev}; tensorbridge can only import CPU memory \
         (device support is not implemented yet)"
    ))
}

/// Take the managed tensor out of a DLPack capsule and import it. The capsule is
/// marked used only once the import is certain to succeed; on any earlier error it
/// is left as it was (its own destructor will release it).
fn import_capsule(
    py: Python<'_>,
    cap: &Bound<'_, PyAny>,
    copy: Option<bool>,
) -> PyResult<PyTensor> {
    let obj = cap.as_ptr();
    // SAFETY: `obj` is a live object; the GIL is held.
    if unsafe { ffi::PyCapsule_CheckExact(obj) } == 0 {
        return Err(PyTypeError::new_err(format!(
            "expected a DLPack capsule, got {}",
            cap.get_type().name()?
        )));
    }
    // SAFETY: `obj` is a capsule. The returned name (maybe NULL) lives as long as
    // the capsule's name is unchanged, which it is while we look at it.
    let name_ptr = unsafe { ffi::PyCapsule_GetName(obj) };
    if name_ptr.is_null() {
        if let Some(e) = PyErr::take(py) {
            return Err(e);
        }
        return Err(PyTypeError::new_err(
            "a capsule without a name is not a DLPack capsule",
        ));
    }
    // SAFETY: non-NULL capsule names are NUL-terminated C strings.
    let name = unsafe { CStr::from_ptr(name_ptr) };
    let (versioned, used) = if name == LEGACY {
        (false, USED_LEGACY)
    } else if name == VERSIONED {
        (true, USED_VERSIONED)
    } else if name == USED_LEGACY || name == USED_VERSIONED {
        return Err(PyValueError::new_err(
            "this DLPack capsule has already been consumed (a capsule can be imported only once)",
        ));
    } else {
        return Err(PyTypeError::new_err(format!(
            "not a DLPack capsule: its name is {:?}, expected \"dltensor\" or \"dltensor_versioned\"",
            name.to_string_lossy()
        )));
    };
    // SAFETY: the name matched, so this is the capsule's pointer.
    let raw = unsafe { ffi::PyCapsule_GetPointer(obj, name.as_ptr()) };
    if raw.is_null() {
        return Err(PyErr::take(py)
            .unwrap_or_else(|| PyValueError::new_err("the DLPack capsule holds a NULL pointer")));
    }
    // SAFETY: a "dltensor(_versioned)" capsule holds a valid managed tensor of that
    // kind, owned by the capsule. We take ownership tentatively and hand it back
    // with `into_raw` on every path that leaves the capsule unconsumed.
    let managed = unsafe { reclaim(raw, versioned) }
        .ok_or_else(|| PyValueError::new_err("the DLPack capsule holds a NULL pointer"))?;
    match managed.device() {
        Ok(dev) if !dev.device_type.is_host() => {
            managed.into_raw();
            return Err(device_error("the DLPack tensor", dev));
        }
        _ => {}
    }
    if let Err(e) = managed.check_import(copy) {
        managed.into_raw();
        return Err(e).or_py();
    }
    // SAFETY: `obj` is our capsule and `used` a static C string; from here the
    // capsule's destructor leaves the managed tensor alone.
    if unsafe { ffi::PyCapsule_SetName(obj, used.as_ptr()) } != 0 {
        managed.into_raw();
        return Err(PyErr::fetch(py));
    }
    // Consumed: `managed` is ours; on error it is dropped (deleter called).
    let t = py
        .allow_threads(move || managed.into_tensor(copy))
        .or_py()?;
    Ok(PyTensor { inner: t })
}

/// A device argument in words: `CUDA:0 (DLPack device type 2)`, or its repr.
fn device_name(dev: &Bound<'_, PyAny>) -> String {
    match dev.extract::<(i32, i32)>() {
        Ok((t, id)) => DLDevice {
            device_type: DLDeviceType(t),
            device_id: id,
        }
        .to_string(),
        Err(_) => dev.repr().map(|r| r.to_string()).unwrap_or_default(),
    }
}

/// Import an array from another library through DLPack (zero-copy on CPU).
///
/// `x`: any object with `__dlpack__` (a NumPy, JAX, PyTorch or CuPy array, a
/// `tb.Tensor`) or a raw DLPack capsule (what `tf.experimental.dlpack.to_dlpack`
/// returns); a capsule can be imported only once. `copy`: `None` shares memory
/// when possible (a copy only when the elements are not aligned for their dtype),
/// `True` always copies, `False` never does (`ValueError` if it would have to).
/// `device`: `None`, `"cpu"` or `(1, 0)`. Memory on another device raises
/// `BufferError` naming it.
#[pyfunction]
#[pyo3(signature = (x, /, *, device=None, copy=None))]
fn from_dlpack(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    device: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
) -> PyResult<PyTensor> {
    if let Some(d) = device {
        let cpu = d.extract::<String>().map(|s| s == "cpu").unwrap_or(false)
            || d.extract::<(i32, i32)>()
                .map(|t| t == (1, 0))
                .unwrap_or(false);
        if !cpu {
            return Err(PyBufferError::new_err(format!(
                "from_dlpack: device {} is not supported; tensorbridge tensors live in CPU memory",
                device_name(d)
            )));
        }
    }
    if let Ok(t) = x.downcast::<PyTensor>() {
        let inner = &t.get().inner;
        let inner = if copy == Some(true) {
            py.allow_threads(|| inner.deep_copy()).or_py()?
        } else {
            inner.clone()
        };
        return Ok(PyTensor { inner });
    }
    // SAFETY: type check on a live object with the GIL held.
    if unsafe { ffi::PyCapsule_CheckExact(x.as_ptr()) } != 0 {
        return import_capsule(py, x, copy);
    }
    if !x.hasattr("__dlpack__")? {
        return Err(PyTypeError::new_err(format!(
            "from_dlpack needs an object with __dlpack__ or a DLPack capsule, not {}",
            x.get_type().name()?
        )));
    }
    if x.hasattr("__dlpack_device__")? {
        let dev = x.call_method0("__dlpack_device__")?;
        if let Ok((t, id)) = dev.extract::<(i32, i32)>() {
            let dev = DLDevice {
                device_type: DLDeviceType(t),
                device_id: id,
            };
            if !dev.device_type.is_host() {
                return Err(device_error(
                    &format!("the {} array", x.get_type().name()?),
                    dev,
                ));
            }
        }
    }
    // Ask for a versioned capsule; producers that predate DLPack 1.0 do not know
    // `max_version` and raise TypeError, so fall back to the legacy call.
    let kwargs = PyDict::new(py);
    kwargs.set_item("max_version", (1, 0))?;
    let cap = match x.call_method("__dlpack__", (), Some(&kwargs)) {
        Ok(c) => c,
        Err(e) if e.is_instance_of::<PyTypeError>(py) => x.call_method0("__dlpack__")?,
        Err(e) => return Err(e),
    };
    import_capsule(py, &cap, copy)
}

/// `Tensor.__dlpack__` (documented there): `inner` in a new capsule.
pub(crate) fn export(
    py: Python<'_>,
    inner: &Tensor,
    stream: Option<&Bound<'_, PyAny>>,
    max_version: Option<(i64, i64)>,
    dl_device: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
) -> PyResult<PyObject> {
    if let Some(s) = stream {
        if !s.is_none() && s.extract::<i64>().ok() != Some(-1) {
            return Err(PyValueError::new_err(format!(
                "stream must be None for CPU tensors, got {}",
                s.repr()?
            )));
        }
    }
    if let Some(d) = dl_device {
        if !d.is_none() && d.extract::<(i32, i32)>().ok() != Some((1, 0)) {
            return Err(PyBufferError::new_err(format!(
                "cannot export to device {}: tensorbridge tensors live in CPU memory \
                 (device (1, 0))",
                device_name(d)
            )));
        }
    }
    let versioned = matches!(max_version, Some((major, _)) if major >= 1);
    let opts = ExportOptions {
        versioned,
        read_only: true,
        copy,
        release_hook: Some(release_with_gil),
    };
    let managed = match copy {
        // A copy: release the GIL while it is made.
        Some(true) => py
            .allow_threads(|| ManagedTensor::export(inner, opts))
            .or_py()?,
        // The array API: a copy that would be needed with copy=False is a BufferError.
        Some(false) => {
            ManagedTensor::export(inner, opts).map_err(|e| PyBufferError::new_err(e.to_string()))?
        }
        // Copies only when the strides are not whole elements (rare; small or not,
        // it is one pass, done with the GIL released).
        None => py
            .allow_threads(|| ManagedTensor::export(inner, opts))
            .or_py()?,
    };
    into_capsule(py, managed)
}

/// Add this module's functions to `tensorbridge._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(from_dlpack, m)?)?;
    Ok(())
}
