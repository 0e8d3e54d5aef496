//! DLPack: zero-copy exchange of tensors with other libraries (NumPy, TensorFlow,
//! JAX, PyTorch, CuPy, ...) through the [DLPack](https://dmlc.github.io/dlpack/latest/)
//! C ABI.
//!
//! - [`ManagedTensor::export`] wraps a [`Tensor`](crate::Tensor) in a `DLManagedTensor` (legacy,
//!   DLPack < 1.0) or a `DLManagedTensorVersioned` (DLPack 1.x). The managed tensor
//!   holds a clone of the tensor (so its memory stays alive) and the shape and
//!   strides arrays (in elements); its deleter frees all of it. Nothing is copied
//!   unless asked for or unless the layout cannot be expressed in DLPack (a stride
//!   that is not a whole number of elements).
//! - [`ManagedTensor::into_tensor`] imports a managed tensor somebody else made: the
//!   result is a [`Tensor`](crate::Tensor) whose storage owns the managed tensor and calls its
//!   deleter exactly once, when the last tensor using the memory is dropped. Only
//!   CPU memory can be imported; the layout (ndim, shape, strides, dtype, data
//!   pointer, byte offset) is validated first. `strides == NULL` means C-contiguous.
//!
//! ## Why a hand-written module and not the `dlpark` crate
//!
//! The ABI is four small `#[repr(C)]` structs and two deleter functions (about a
//! hundred lines), and what matters here is exactly the part a wrapper crate
//! decides for you: who owns what, when the deleter runs (once, from any thread),
//! how a view's byte strides and offset map to DLPack, and what is validated on
//! import. Writing it here keeps every `unsafe` block in this module with its
//! own `// SAFETY:` argument, keeps the core crate free of Python and of a second
//! PyO3 version (dlpark's Python support pins its own PyO3), adds no dependency,
//! and lets the unit tests (`tests.rs`) run under Miri. The structs follow
//! `dlpack.h` v1.1 field for field; layout tests check sizes and offsets.
//!
//! Capsule handling (`"dltensor"` / `"dltensor_versioned"` names, renaming to
//! `"used_..."` when consumed) is Python's business and lives in the binding crate.
//!
//! ## Miri
//!
//! The unit tests run under Miri (nightly, `rustup component add miri`):
//!
//! ```text
//! MIRIFLAGS=-Zmiri-permissive-provenance cargo +nightly miri test -p tensorbridge --lib dlpack -- --skip copying_
//! MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks" \
//!     cargo +nightly miri test -p tensorbridge --lib dlpack::tests::copying_
//! ```
//!
//! The first run (Stacked Borrows, leak checker on) covers everything that does not
//! copy elements. The `copying_` tests go through the cast kernels, which start
//! rayon's global thread pool even for tiny inputs; crossbeam-epoch (under rayon)
//! trips Stacked Borrows, and the pool's threads outlive `main`, so those run under
//! Tree Borrows without the leak checker.
//!
//! ## Files
//!
//! - `abi.rs`: the C structs and the dtype mapping;
//! - `export.rs`: [`ManagedTensor::export`] and the deleters of our exports;
//! - `import.rs`: validation of foreign tensors and [`ManagedTensor::into_tensor`];
//! - this file: [`ManagedTensor`], the owning handle both sides share;
//! - `tests.rs`: the unit tests (Miri-runnable, see above).

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::error::{Error, Result};

mod abi;
mod export;
mod import;
#[cfg(test)]
mod tests;

pub use abi::*;
pub use export::{ExportOptions, ReleaseHook};

/// The owning pointer inside a [`ManagedTensor`].
#[derive(Debug)]
enum Raw {
    Legacy(NonNull<DLManagedTensor>),
    Versioned(NonNull<DLManagedTensorVersioned>),
}

/// An owned DLPack managed tensor (legacy or versioned), ours or a foreign one.
///
/// Dropping it calls the managed tensor's deleter (once). [`ManagedTensor::into_raw`]
/// hands ownership to C (a consumer, or a Python capsule) instead.
#[derive(Debug)]
pub struct ManagedTensor {
    raw: Raw,
}

// SAFETY: a managed tensor is only read through `&self` (the `DLTensor` fields and
// the memory they describe) and freed once through its deleter. The DLPack Python
// specification requires deleters to be callable from any thread (a producer that
// needs the GIL acquires it in its deleter, as NumPy's does), and tensorbridge's own
// deleters only drop `Send + Sync` Rust values.
unsafe impl Send for ManagedTensor {}
// SAFETY: shared access never writes (see above).
unsafe impl Sync for ManagedTensor {}

impl Drop for ManagedTensor {
    fn drop(&mut self) {
        match self.raw {
            Raw::Legacy(p) => {
                // SAFETY: `p` is a valid managed tensor we own (constructor contracts);
                // its deleter runs once because `self` is being dropped and
                // `into_raw` forgets `self` instead of dropping it.
                unsafe {
                    if let Some(deleter) = (*p.as_ptr()).deleter {
                        deleter(p.as_ptr());
                    }
                }
            }
            Raw::Versioned(p) => {
                // SAFETY: as above.
                unsafe {
                    if let Some(deleter) = (*p.as_ptr()).deleter {
                        deleter(p.as_ptr());
                    }
                }
            }
        }
    }
}

impl ManagedTensor {
    /// Take ownership of a legacy managed tensor.
    ///
    /// # Safety
    /// `p` must be NULL or point to a valid `DLManagedTensor` whose `DLTensor`
    /// describes memory readable for as long as the managed tensor lives, with
    /// `shape`/`strides` arrays of `ndim` entries; nobody else may call its deleter
    /// (ownership moves here; dropping the result calls it).
    pub unsafe fn from_raw_legacy(p: *mut DLManagedTensor) -> Result<ManagedTensor> {
        let p = NonNull::new(p)
            .ok_or_else(|| Error::InvalidArgument("NULL DLManagedTensor pointer".into()))?;
        Ok(ManagedTensor {
            raw: Raw::Legacy(p),
        })
    }

    /// Take ownership of a versioned managed tensor.
    ///
    /// # Safety
    /// As [`ManagedTensor::from_raw_legacy`], for a `DLManagedTensorVersioned`
    /// (whose `version` and `deleter` fields at least must be valid; the rest is
    /// only read when the major version is 1).
    pub unsafe fn from_raw_versioned(p: *mut DLManagedTensorVersioned) -> Result<ManagedTensor> {
        let p = NonNull::new(p).ok_or_else(|| {
            Error::InvalidArgument("NULL DLManagedTensorVersioned pointer".into())
        })?;
        Ok(ManagedTensor {
            raw: Raw::Versioned(p),
        })
    }

    /// Give up ownership without calling the deleter: the pointer (to a
    /// `DLManagedTensor` or a `DLManagedTensorVersioned`, see
    /// [`ManagedTensor::is_versioned`]) now belongs to the caller.
    pub fn into_raw(self) -> *mut c_void {
        let this = ManuallyDrop::new(self);
        match this.raw {
            Raw::Legacy(p) => p.as_ptr() as *mut c_void,
            Raw::Versioned(p) => p.as_ptr() as *mut c_void,
        }
    }

    /// Whether this is a `DLManagedTensorVersioned`.
    pub fn is_versioned(&self) -> bool {
        matches!(self.raw, Raw::Versioned(_))
    }

    /// The struct version (`None` for a legacy managed tensor).
    pub fn version(&self) -> Option<DLPackVersion> {
        match self.raw {
            Raw::Legacy(_) => None,
            // SAFETY: the constructor's contract: a valid versioned managed tensor.
            Raw::Versioned(p) => Some(unsafe { (*p.as_ptr()).version }),
        }
    }

    /// The `DLPACK_FLAG_BITMASK_*` flags (0 for a legacy managed tensor).
    pub fn flags(&self) -> u64 {
        match self.raw {
            Raw::Legacy(_) => 0,
            // SAFETY: as in `version`. Only read when the major version is ours.
            Raw::Versioned(p) if self.version_ok().is_ok() => unsafe { (*p.as_ptr()).flags },
            Raw::Versioned(_) => 0,
        }
    }

    fn version_ok(&self) -> Result<()> {
        match self.version() {
            Some(v) if v.major != DLPACK_MAJOR_VERSION => Err(Error::InvalidArgument(format!(
                "DLPack version {}.{} is not supported (tensorbridge reads version {}.x)",
                v.major, v.minor, DLPACK_MAJOR_VERSION
            ))),
            _ => Ok(()),
        }
    }

    /// The array description (an error for a versioned struct of an unknown major
    /// version, whose layout may differ).
    pub fn dl_tensor(&self) -> Result<&DLTensor> {
        self.version_ok()?;
        // SAFETY: the constructor's contract: a valid managed tensor, alive while
        // `self` is; the returned borrow is tied to `self`.
        Ok(unsafe {
            match self.raw {
                Raw::Legacy(p) => &(*p.as_ptr()).dl_tensor,
                Raw::Versioned(p) => &(*p.as_ptr()).dl_tensor,
            }
        })
    }

    /// The device of the memory.
    pub fn device(&self) -> Result<DLDevice> {
        Ok(self.dl_tensor()?.device)
    }
}
