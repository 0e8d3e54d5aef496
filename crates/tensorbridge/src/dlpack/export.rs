//! Export: a [`Tensor`] wrapped in a managed tensor that keeps it alive, and the
//! deleters that release it exactly once.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use super::abi::*;
use super::{ManagedTensor, Raw};
use crate::error::{Error, Result};
use crate::layout::contiguous_strides;
use crate::tensor::Tensor;

/// Runs the release of an exported tensor: it must call the closure it is given,
/// once, in whatever context the memory's owner needs (the Python binding takes the
/// GIL here, so that a Python object kept alive by the tensor is released at once
/// rather than queued).
pub type ReleaseHook = fn(&mut dyn FnMut());

/// How [`ManagedTensor::export`] exports.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportOptions {
    /// `DLManagedTensorVersioned` (DLPack 1.x) instead of the legacy `DLManagedTensor`.
    pub versioned: bool,
    /// Set `DLPACK_FLAG_BITMASK_READ_ONLY` (versioned only) unless the export is a
    /// fresh copy nobody else can see.
    pub read_only: bool,
    /// The array API's `copy`: `Some(true)` always exports a fresh copy,
    /// `Some(false)` never copies (an error if it would have to), `None` copies
    /// only when the layout cannot be expressed in DLPack.
    pub copy: Option<bool>,
    /// Called by the deleter to release the exported tensor (`None`: drop it directly).
    pub release_hook: Option<ReleaseHook>,
}

/// What an exported managed tensor owns: the tensor (and so its memory) and the
/// shape and strides arrays the `DLTensor` points into. (`Vec`, not `Box<[i64]>`:
/// moving a `Box` asserts unique access under Stacked Borrows and would invalidate
/// the raw pointers the `DLTensor` holds; moving a `Vec` does not touch its buffer.)
struct ExportCtx {
    _tensor: Tensor,
    _shape: Vec<i64>,
    _strides: Vec<i64>,
    release_hook: Option<ReleaseHook>,
}

/// Strides in elements, if every byte stride is a whole number of elements.
/// Dimensions of length 0 or 1 never need their stride, so they get the
/// contiguous one.
fn element_strides(t: &Tensor) -> Option<Vec<i64>> {
    let item = t.dtype().size() as isize;
    let contiguous = contiguous_strides(t.shape(), t.dtype().size());
    t.strides()
        .iter()
        .zip(t.shape())
        .zip(contiguous)
        .map(|((&s, &n), c)| {
            let s = if n <= 1 { c } else { s };
            (s % item == 0).then_some((s / item) as i64)
        })
        .collect()
}

/// Build the context and the `DLTensor` describing `t` (whose memory the context
/// keeps alive). Returns whether `t` had to be copied.
fn describe(
    t: &Tensor,
    copy: Option<bool>,
    release_hook: Option<ReleaseHook>,
) -> Result<(Box<ExportCtx>, DLTensor, bool)> {
    let expressible = element_strides(t);
    let must_copy = copy == Some(true) || expressible.is_none();
    if must_copy && copy == Some(false) {
        return Err(Error::Layout(format!(
            "copy=False but the strides {:?} of this {} tensor are not whole elements, \
             which DLPack cannot express",
            t.strides(),
            t.dtype()
        )));
    }
    let t = if must_copy { t.deep_copy()? } else { t.clone() };
    let strides = match element_strides(&t) {
        Some(s) => s,
        None => return Err(Error::Layout("a fresh copy is not contiguous".into())),
    };
    let mut shape: Vec<i64> = t.shape().iter().map(|&n| n as i64).collect();
    let mut strides: Vec<i64> = strides;
    let ndim = i32::try_from(t.ndim())
        .map_err(|_| Error::Shape(format!("{} dimensions are too many", t.ndim())))?;
    let dl = DLTensor {
        // DLPack has no const pointer; consumers are told not to write (read-only
        // flag, or the legacy convention that imported buffers are not mutated).
        data: t.data_ptr() as *mut c_void,
        device: DLDevice::CPU,
        ndim,
        dtype: dl_dtype(t.dtype()),
        shape: shape.as_mut_ptr(),
        strides: strides.as_mut_ptr(),
        byte_offset: 0,
    };
    let ctx = Box::new(ExportCtx {
        _tensor: t,
        _shape: shape,
        _strides: strides,
        release_hook,
    });
    Ok((ctx, dl, must_copy))
}

/// Drop an export context without letting a panic cross the C ABI.
///
/// # Safety
/// `ctx` is NULL or came from `Box::into_raw(Box<ExportCtx>)` and is not used again.
unsafe fn free_ctx(ctx: *mut c_void) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: per this function's contract the pointer is an unused `Box<ExportCtx>`.
    let ctx = unsafe { Box::from_raw(ctx as *mut ExportCtx) };
    // Dropping a tensor does not panic, nor should a hook; if either ever did, stop
    // the unwinding here rather than let it cross into C.
    let _ = catch_unwind(AssertUnwindSafe(move || match ctx.release_hook {
        Some(hook) => {
            let mut slot = Some(ctx);
            hook(&mut || drop(slot.take()));
            // A hook that did not call the closure still must not leak.
            drop(slot);
        }
        None => drop(ctx),
    }));
}

/// Deleter of every legacy managed tensor tensorbridge exports.
unsafe extern "C" fn delete_legacy(p: *mut DLManagedTensor) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from `Box::into_raw` in `ManagedTensor::export`, and DLPack
    // consumers call the deleter exactly once, after which nobody touches `p`.
    let managed = unsafe { Box::from_raw(p) };
    // SAFETY: `manager_ctx` is the `Box<ExportCtx>` that `export` leaked for it,
    // owned by this managed tensor alone.
    unsafe { free_ctx(managed.manager_ctx) };
}

/// Deleter of every versioned managed tensor tensorbridge exports.
unsafe extern "C" fn delete_versioned(p: *mut DLManagedTensorVersioned) {
    if p.is_null() {
        return;
    }
    // SAFETY: as in `delete_legacy`.
    let managed = unsafe { Box::from_raw(p) };
    // SAFETY: as in `delete_legacy`.
    unsafe { free_ctx(managed.manager_ctx) };
}

impl ManagedTensor {
    /// Wrap `t` for export. With the default options this is zero-copy and O(ndim):
    /// the managed tensor holds a clone of `t` (sharing its storage).
    pub fn export(t: &Tensor, opts: ExportOptions) -> Result<ManagedTensor> {
        let (ctx, dl_tensor, copied) = describe(t, opts.copy, opts.release_hook)?;
        let manager_ctx = Box::into_raw(ctx) as *mut c_void;
        let raw = if opts.versioned {
            let mut flags = 0;
            if copied {
                flags |= DLPACK_FLAG_BITMASK_IS_COPIED;
            } else if opts.read_only {
                flags |= DLPACK_FLAG_BITMASK_READ_ONLY;
            }
            let boxed = Box::new(DLManagedTensorVersioned {
                version: DLPackVersion::CURRENT,
                manager_ctx,
                deleter: Some(delete_versioned),
                flags,
                dl_tensor,
            });
            // SAFETY: `Box::into_raw` never returns NULL.
            Raw::Versioned(unsafe { NonNull::new_unchecked(Box::into_raw(boxed)) })
        } else {
            let boxed = Box::new(DLManagedTensor {
                dl_tensor,
                manager_ctx,
                deleter: Some(delete_legacy),
            });
            // SAFETY: `Box::into_raw` never returns NULL.
            Raw::Legacy(unsafe { NonNull::new_unchecked(Box::into_raw(boxed)) })
        };
        Ok(ManagedTensor { raw })
    }
}
