//! DLPack: zero-copy exchange of tensors with other libraries (NumPy, TensorFlow,
//! JAX, PyTorch, CuPy, ...) through the [DLPack](https://dmlc.github.io/dlpack/latest/)
//! C ABI.
//!
//! - [`ManagedTensor::export`] wraps a [`Tensor`] in a `DLManagedTensor` (legacy,
//!   DLPack < 1.0) or a `DLManagedTensorVersioned` (DLPack 1.x). The managed tensor
//!   holds a clone of the tensor (so its memory stays alive) and the shape and
//!   strides arrays (in elements); its deleter frees all of it. Nothing is copied
//!   unless asked for or unless the layout cannot be expressed in DLPack (a stride
//!   that is not a whole number of elements).
//! - [`ManagedTensor::into_tensor`] imports a managed tensor somebody else made: the
//!   result is a [`Tensor`] whose storage owns the managed tensor and calls its
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
//! import. Writing it here keeps every `unsafe` block in this one file with its
//! own `// SAFETY:` argument, keeps the core crate free of Python and of a second
//! PyO3 version (dlpark's Python support pins its own PyO3), adds no dependency,
//! and lets the unit tests below run under Miri. The structs follow
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

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::dtype::{ByteOrder, DType};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;
use crate::view::{contiguous_strides, TensorView, MAX_NDIM};

/// Major version of the DLPack ABI these structs follow.
pub const DLPACK_MAJOR_VERSION: u32 = 1;
/// Minor version of the DLPack ABI these structs follow.
pub const DLPACK_MINOR_VERSION: u32 = 1;

/// `DLManagedTensorVersioned::flags`: the consumer must not write to the data.
pub const DLPACK_FLAG_BITMASK_READ_ONLY: u64 = 1 << 0;
/// `DLManagedTensorVersioned::flags`: the producer copied the data for this export.
pub const DLPACK_FLAG_BITMASK_IS_COPIED: u64 = 1 << 1;
/// `DLManagedTensorVersioned::flags`: sub-byte elements are padded to a byte.
pub const DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED: u64 = 1 << 2;

/// `DLDeviceType`: where the memory lives. A C enum (an `int`), kept as a newtype so
/// that any value a foreign producer writes is a valid Rust value.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DLDeviceType(pub i32);

impl DLDeviceType {
    /// `kDLCPU`: host memory.
    pub const CPU: Self = Self(1);
    /// `kDLCUDA`: CUDA device memory.
    pub const CUDA: Self = Self(2);
    /// `kDLCUDAHost`: pinned host memory allocated by CUDA (readable by the CPU).
    pub const CUDA_HOST: Self = Self(3);
    /// `kDLOpenCL`.
    pub const OPENCL: Self = Self(4);
    /// `kDLVulkan`.
    pub const VULKAN: Self = Self(7);
    /// `kDLMetal`.
    pub const METAL: Self = Self(8);
    /// `kDLVPI`.
    pub const VPI: Self = Self(9);
    /// `kDLROCM`: ROCm device memory.
    pub const ROCM: Self = Self(10);
    /// `kDLROCMHost`: pinned host memory allocated by ROCm (readable by the CPU).
    pub const ROCM_HOST: Self = Self(11);
    /// `kDLExtDev`.
    pub const EXT_DEV: Self = Self(12);
    /// `kDLCUDAManaged`: CUDA unified memory.
    pub const CUDA_MANAGED: Self = Self(13);
    /// `kDLOneAPI`.
    pub const ONE_API: Self = Self(14);
    /// `kDLWebGPU`.
    pub const WEB_GPU: Self = Self(15);
    /// `kDLHexagon`.
    pub const HEXAGON: Self = Self(16);
    /// `kDLMAIA`.
    pub const MAIA: Self = Self(17);

    /// A readable name (`"CPU"`, `"CUDA"`, ...; `"unknown"` for values DLPack does not define).
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "CPU",
            2 => "CUDA",
            3 => "CUDAHost",
            4 => "OpenCL",
            7 => "Vulkan",
            8 => "Metal",
            9 => "VPI",
            10 => "ROCm",
            11 => "ROCmHost",
            12 => "ExtDev",
            13 => "CUDAManaged",
            14 => "OneAPI",
            15 => "WebGPU",
            16 => "Hexagon",
            17 => "MAIA",
            _ => "unknown",
        }
    }

    /// Whether the CPU can read this memory directly: `kDLCPU` and the pinned host
    /// memory of CUDA and ROCm.
    pub fn is_host(self) -> bool {
        matches!(self, Self::CPU | Self::CUDA_HOST | Self::ROCM_HOST)
    }
}

/// `DLDevice`: a device type and an index among devices of that type.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DLDevice {
    /// The kind of device.
    pub device_type: DLDeviceType,
    /// Index of the device (0 for the CPU).
    pub device_id: i32,
}

impl DLDevice {
    /// The CPU, `(kDLCPU, 0)`.
    pub const CPU: DLDevice = DLDevice {
        device_type: DLDeviceType::CPU,
        device_id: 0,
    };
}

impl std::fmt::Display for DLDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} (DLPack device type {})",
            self.device_type.name(),
            self.device_id,
            self.device_type.0
        )
    }
}

/// `DLDataTypeCode` values (`DLDataType::code`).
pub mod code {
    /// `kDLInt`: signed integer.
    pub const INT: u8 = 0;
    /// `kDLUInt`: unsigned integer.
    pub const UINT: u8 = 1;
    /// `kDLFloat`: IEEE floating point.
    pub const FLOAT: u8 = 2;
    /// `kDLOpaqueHandle`.
    pub const OPAQUE_HANDLE: u8 = 3;
    /// `kDLBfloat`: bfloat16.
    pub const BFLOAT: u8 = 4;
    /// `kDLComplex`: two floats (real, imaginary).
    pub const COMPLEX: u8 = 5;
    /// `kDLBool`: boolean (8 bits per element as exchanged here).
    pub const BOOL: u8 = 6;

    /// A readable name for a code (DLPack 1.1 adds float8/float6/float4 as 7–17).
    pub fn name(code: u8) -> &'static str {
        match code {
            INT => "int",
            UINT => "uint",
            FLOAT => "float",
            OPAQUE_HANDLE => "opaque handle",
            BFLOAT => "bfloat",
            COMPLEX => "complex",
            BOOL => "bool",
            7 => "float8_e3m4",
            8 => "float8_e4m3",
            9 => "float8_e4m3b11fnuz",
            10 => "float8_e4m3fn",
            11 => "float8_e4m3fnuz",
            12 => "float8_e5m2",
            13 => "float8_e5m2fnuz",
            14 => "float8_e8m0fnu",
            15 => "float6_e2m3fn",
            16 => "float6_e3m2fn",
            17 => "float4_e2m1fn",
            _ => "unknown",
        }
    }
}

/// `DLDataType`: type code, bits per lane, lanes per element.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DLDataType {
    /// A [`code`] value.
    pub code: u8,
    /// Bits per lane.
    pub bits: u8,
    /// Lanes per element (1 for everything tensorbridge exchanges).
    pub lanes: u16,
}

/// `DLTensor`: the plain description of an n-d array. Not owning.
#[repr(C)]
#[derive(Debug)]
pub struct DLTensor {
    /// Base address; element `[0, ..., 0]` is at `data + byte_offset`.
    pub data: *mut c_void,
    /// Where `data` lives.
    pub device: DLDevice,
    /// Number of dimensions.
    pub ndim: i32,
    /// Element type.
    pub dtype: DLDataType,
    /// `ndim` dimensions.
    pub shape: *mut i64,
    /// `ndim` strides **in elements**, or NULL for C-contiguous.
    pub strides: *mut i64,
    /// Bytes from `data` to the first element.
    pub byte_offset: u64,
}

/// `DLManagedTensor`: the legacy (pre-1.0) owning wrapper, exchanged in Python as a
/// `"dltensor"` capsule.
#[repr(C)]
#[derive(Debug)]
pub struct DLManagedTensor {
    /// The array.
    pub dl_tensor: DLTensor,
    /// The producer's private context.
    pub manager_ctx: *mut c_void,
    /// Frees everything; called once by the consumer (may be NULL).
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

/// `DLPackVersion`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DLPackVersion {
    /// Incompatible ABI changes.
    pub major: u32,
    /// Compatible additions (new dtype codes, devices, flags).
    pub minor: u32,
}

impl DLPackVersion {
    /// The version these structs follow.
    pub const CURRENT: DLPackVersion = DLPackVersion {
        major: DLPACK_MAJOR_VERSION,
        minor: DLPACK_MINOR_VERSION,
    };
}

/// `DLManagedTensorVersioned`: the DLPack 1.x owning wrapper with a version and
/// flags, exchanged in Python as a `"dltensor_versioned"` capsule.
#[repr(C)]
#[derive(Debug)]
pub struct DLManagedTensorVersioned {
    /// ABI version of this struct; consumers check the major version first.
    pub version: DLPackVersion,
    /// The producer's private context.
    pub manager_ctx: *mut c_void,
    /// Frees everything; called once by the consumer (may be NULL).
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    /// `DLPACK_FLAG_BITMASK_*` bits.
    pub flags: u64,
    /// The array.
    pub dl_tensor: DLTensor,
}

/// The DLPack type of a tensorbridge dtype.
///
/// bool is `kDLBool` with 8 bits, bfloat16 is `kDLBfloat` 16, complex is
/// `kDLComplex` with the bits of the whole element (64 or 128).
pub fn dl_dtype(d: DType) -> DLDataType {
    let (code, bits) = match d {
        DType::Bool => (code::BOOL, 8),
        DType::Int8 => (code::INT, 8),
        DType::Int16 => (code::INT, 16),
        DType::Int32 => (code::INT, 32),
        DType::Int64 => (code::INT, 64),
        DType::UInt8 => (code::UINT, 8),
        DType::UInt16 => (code::UINT, 16),
        DType::UInt32 => (code::UINT, 32),
        DType::UInt64 => (code::UINT, 64),
        DType::Float16 => (code::FLOAT, 16),
        DType::BFloat16 => (code::BFLOAT, 16),
        DType::Float32 => (code::FLOAT, 32),
        DType::Float64 => (code::FLOAT, 64),
        DType::Complex64 => (code::COMPLEX, 64),
        DType::Complex128 => (code::COMPLEX, 128),
    };
    DLDataType {
        code,
        bits,
        lanes: 1,
    }
}

/// The tensorbridge dtype of a DLPack type, or an error naming it.
pub fn dtype_from_dl(t: DLDataType) -> Result<DType> {
    let d = match (t.code, t.bits, t.lanes) {
        (code::BOOL, 8, 1) => DType::Bool,
        (code::INT, 8, 1) => DType::Int8,
        (code::INT, 16, 1) => DType::Int16,
        (code::INT, 32, 1) => DType::Int32,
        (code::INT, 64, 1) => DType::Int64,
        (code::UINT, 8, 1) => DType::UInt8,
        (code::UINT, 16, 1) => DType::UInt16,
        (code::UINT, 32, 1) => DType::UInt32,
        (code::UINT, 64, 1) => DType::UInt64,
        (code::FLOAT, 16, 1) => DType::Float16,
        (code::BFLOAT, 16, 1) => DType::BFloat16,
        (code::FLOAT, 32, 1) => DType::Float32,
        (code::FLOAT, 64, 1) => DType::Float64,
        (code::COMPLEX, 64, 1) => DType::Complex64,
        (code::COMPLEX, 128, 1) => DType::Complex128,
        _ => {
            return Err(Error::UnknownDType(format!(
                "DLPack dtype (code {} = {}, {} bits, {} lanes)",
                t.code,
                code::name(t.code),
                t.bits,
                t.lanes
            )))
        }
    };
    Ok(d)
}

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

/// Where the elements of an importable `DLTensor` are, in tensorbridge's terms.
struct Layout {
    dtype: DType,
    shape: Vec<usize>,
    /// Byte strides.
    strides: Vec<isize>,
    /// Lowest byte any element touches.
    start: *const u8,
    /// Bytes from `start` to the end of the highest element.
    len: usize,
    /// Bytes from `start` to element `[0, ..., 0]`.
    offset: usize,
    /// Whether every element is aligned for the dtype (a zero-copy `Tensor` is possible).
    aligned: bool,
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

    /// Validate the `DLTensor` and work out where its elements are.
    fn layout(&self) -> Result<Layout> {
        let dl = self.dl_tensor()?;
        let bad = |why: String| Error::InvalidArgument(format!("invalid DLPack tensor: {why}"));
        if !dl.device.device_type.is_host() {
            return Err(Error::InvalidArgument(format!(
                "the DLPack tensor is on device {}; tensorbridge can only import CPU memory \
                 (device support is not implemented yet)",
                dl.device
            )));
        }
        let dtype = dtype_from_dl(dl.dtype)?;
        let item = dtype.size();
        let ndim = usize::try_from(dl.ndim)
            .map_err(|_| bad(format!("negative number of dimensions {}", dl.ndim)))?;
        if ndim > MAX_NDIM {
            return Err(bad(format!(
                "{ndim} dimensions; at most {MAX_NDIM} are supported"
            )));
        }
        if ndim > 0 && dl.shape.is_null() {
            return Err(bad(format!("{ndim} dimensions but shape is NULL")));
        }
        // SAFETY: `shape` points to `ndim` readable `i64`s (constructor contract),
        // checked non-NULL above; for ndim == 0 nothing is read.
        let raw_shape: &[i64] = if ndim == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(dl.shape, ndim) }
        };
        let shape = raw_shape
            .iter()
            .map(|&n| usize::try_from(n).map_err(|_| bad(format!("negative dimension {n}"))))
            .collect::<Result<Vec<usize>>>()?;
        let numel = crate::view::checked_numel(&shape)?;
        numel
            .checked_mul(item)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| bad(format!("shape {shape:?} of {dtype} is too large")))?;
        let strides: Vec<isize> = if dl.strides.is_null() || ndim == 0 {
            contiguous_strides(&shape, item)
        } else {
            // SAFETY: non-NULL `strides` points to `ndim` readable `i64`s.
            let raw = unsafe { std::slice::from_raw_parts(dl.strides, ndim) };
            raw.iter()
                .map(|&s| {
                    (s as i128)
                        .checked_mul(item as i128)
                        .and_then(|b| isize::try_from(b).ok())
                        .ok_or_else(|| bad(format!("stride {s} is too large")))
                })
                .collect::<Result<Vec<isize>>>()?
        };
        if numel == 0 {
            // Nothing is read; any pointer (NULL included) will do.
            return Ok(Layout {
                dtype,
                shape,
                strides,
                start: dl.data as *const u8,
                len: 0,
                offset: 0,
                aligned: true,
            });
        }
        if dl.data.is_null() {
            return Err(bad(format!(
                "data is NULL but the tensor has {numel} elements"
            )));
        }
        // Address of element [0, ...] and the byte range [lo, hi) around it.
        let first = (dl.data as usize as u128)
            .checked_add(dl.byte_offset as u128)
            .filter(|&a| a <= usize::MAX as u128)
            .ok_or_else(|| bad(format!("byte_offset {} overflows", dl.byte_offset)))?
            as usize;
        let (mut lo, mut hi) = (0i128, item as i128);
        for (&n, &s) in shape.iter().zip(&strides) {
            let span = (n as i128 - 1) * s as i128;
            if span < 0 {
                lo += span;
            } else {
                hi += span;
            }
        }
        let start = first as i128 + lo;
        if start < 0 || first as i128 + hi > usize::MAX as i128 || hi - lo > isize::MAX as i128 {
            return Err(bad(format!(
                "shape {shape:?} with strides {strides:?} reaches outside the address space"
            )));
        }
        // From `data` to the lowest byte touched: `byte_offset + lo`.
        let delta = isize::try_from(dl.byte_offset as i128 + lo)
            .map_err(|_| bad(format!("byte_offset {} is too large", dl.byte_offset)))?;
        let align = dtype.alignment();
        let aligned = first % align == 0
            && strides
                .iter()
                .zip(&shape)
                .all(|(&s, &n)| n <= 1 || s.unsigned_abs() % align == 0);
        Ok(Layout {
            dtype,
            shape,
            strides,
            // Derived from `data` (keeping its provenance); inside the producer's
            // allocation by the DLPack contract. Only dereferenced through `Storage`.
            start: (dl.data as *const u8).wrapping_offset(delta),
            len: (hi - lo) as usize,
            offset: (-lo) as usize,
            aligned,
        })
    }

    /// Check, without consuming anything, that [`ManagedTensor::into_tensor`] with
    /// this `copy` would succeed (device, dtype, layout, alignment).
    pub fn check_import(&self, copy: Option<bool>) -> Result<()> {
        let layout = self.layout()?;
        if copy == Some(false) && !layout.aligned {
            return Err(Error::Layout(format!(
                "copy=False but the DLPack data at {:#x} (strides {:?}) is not aligned for {} \
                 elements, which a tensor requires",
                layout.start as usize + layout.offset,
                layout.strides,
                layout.dtype
            )));
        }
        Ok(())
    }

    /// Import as a [`Tensor`].
    ///
    /// Zero-copy when the elements are aligned for their dtype and `copy` is not
    /// `Some(true)`: the tensor's storage then owns this managed tensor and calls its
    /// deleter once, when the last tensor sharing the memory is dropped. Otherwise
    /// the elements are copied into a fresh aligned tensor and the deleter runs
    /// before this returns. `copy == Some(false)` with unaligned data is an error.
    /// On any error `self` is dropped, so the deleter has run.
    pub fn into_tensor(self, copy: Option<bool>) -> Result<Tensor> {
        self.check_import(copy)?;
        let l = self.layout()?;
        if copy == Some(true) || !l.aligned {
            let bytes: &[u8] = if l.len == 0 {
                &[]
            } else {
                // SAFETY: the constructor's contract: every element of the described
                // layout, i.e. `[start, start + len)`, is readable while `self` lives,
                // and `self` outlives this borrow (it is dropped after the copy).
                unsafe { std::slice::from_raw_parts(l.start, l.len) }
            };
            let view = TensorView::new(
                bytes,
                l.dtype,
                l.shape,
                l.strides,
                l.offset,
                ByteOrder::NATIVE,
            )?;
            let t = Tensor::copy_of(&view)?;
            drop(self);
            return Ok(t);
        }
        // SAFETY: `[start, start + len)` stays readable while the managed tensor is
        // alive (constructor contract), and the storage owns it (so it is alive as
        // long as any tensor over the storage). Tensors never write to foreign storage.
        let storage = unsafe { Storage::foreign(l.start, l.len, Box::new(self)) };
        Tensor::from_storage(
            Arc::new(storage),
            l.dtype,
            l.shape,
            l.strides,
            l.offset,
            true,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bf16, f16, Complex, Index};
    use std::mem::{align_of, offset_of, size_of};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn struct_layouts_match_dlpack_h() {
        assert_eq!(size_of::<DLDevice>(), 8);
        assert_eq!(size_of::<DLDataType>(), 4);
        assert_eq!(size_of::<DLTensor>(), 48);
        assert_eq!(offset_of!(DLTensor, device), 8);
        assert_eq!(offset_of!(DLTensor, ndim), 16);
        assert_eq!(offset_of!(DLTensor, dtype), 20);
        assert_eq!(offset_of!(DLTensor, shape), 24);
        assert_eq!(offset_of!(DLTensor, strides), 32);
        assert_eq!(offset_of!(DLTensor, byte_offset), 40);
        assert_eq!(size_of::<DLManagedTensor>(), 64);
        assert_eq!(offset_of!(DLManagedTensor, manager_ctx), 48);
        assert_eq!(offset_of!(DLManagedTensor, deleter), 56);
        assert_eq!(size_of::<DLManagedTensorVersioned>(), 80);
        assert_eq!(offset_of!(DLManagedTensorVersioned, manager_ctx), 8);
        assert_eq!(offset_of!(DLManagedTensorVersioned, deleter), 16);
        assert_eq!(offset_of!(DLManagedTensorVersioned, flags), 24);
        assert_eq!(offset_of!(DLManagedTensorVersioned, dl_tensor), 32);
        assert_eq!(align_of::<DLManagedTensorVersioned>(), 8);
    }

    #[test]
    fn dtype_mapping_round_trips() {
        for d in DType::ALL {
            let dl = dl_dtype(d);
            assert_eq!(dl.lanes, 1);
            assert_eq!(dl.bits as usize, d.size() * 8, "{d}");
            assert_eq!(dtype_from_dl(dl).unwrap(), d);
        }
        assert_eq!(
            dl_dtype(DType::Bool),
            DLDataType {
                code: 6,
                bits: 8,
                lanes: 1
            }
        );
        assert_eq!(dl_dtype(DType::BFloat16).code, 4);
        assert_eq!(dl_dtype(DType::Complex64).code, 5);
        for bad in [
            DLDataType {
                code: code::FLOAT,
                bits: 32,
                lanes: 4,
            },
            DLDataType {
                code: code::FLOAT,
                bits: 8,
                lanes: 1,
            },
            DLDataType {
                code: code::BOOL,
                bits: 1,
                lanes: 1,
            },
            DLDataType {
                code: code::OPAQUE_HANDLE,
                bits: 64,
                lanes: 1,
            },
            DLDataType {
                code: 10,
                bits: 8,
                lanes: 1,
            },
        ] {
            let e = dtype_from_dl(bad).unwrap_err().to_string();
            assert!(e.contains("DLPack dtype"), "{e}");
        }
        let e = dtype_from_dl(DLDataType {
            code: 10,
            bits: 8,
            lanes: 1,
        })
        .unwrap_err();
        assert!(e.to_string().contains("float8_e4m3fn"), "{e}");
    }

    /// A C-contiguous tensor holding `v` (built without the cast machinery, which
    /// starts rayon's thread pool; see the Miri notes in the module docs).
    fn tensor_of<T: crate::Element>(v: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::build(T::DTYPE, shape, |b| {
            b.copy_from_slice(bytemuck::cast_slice(v));
            Ok(())
        })
    }

    /// The elements in C order, read through the strides (no cast machinery).
    fn elems<T: crate::Element>(t: &Tensor) -> Vec<T> {
        assert_eq!(t.dtype(), T::DTYPE);
        let bytes = t.storage().as_slice();
        let size = std::mem::size_of::<T>();
        (0..t.len())
            .map(|i| {
                let idx = crate::view::unravel(i, t.shape());
                let off = idx
                    .iter()
                    .zip(t.strides())
                    .fold(t.offset() as isize, |o, (&k, &s)| o + k as isize * s);
                bytemuck::pod_read_unaligned(&bytes[off as usize..off as usize + size])
            })
            .collect()
    }

    fn sample() -> Tensor {
        let v: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        tensor_of(&v, &[3, 4]).unwrap()
    }

    #[test]
    fn legacy_export_describes_the_tensor() {
        let t = sample();
        let m = ManagedTensor::export(&t, ExportOptions::default()).unwrap();
        assert!(!m.is_versioned());
        assert_eq!(m.version(), None);
        assert_eq!(m.flags(), 0);
        assert_eq!(
            Arc::strong_count(t.storage()),
            2,
            "the export holds the memory"
        );
        let dl = m.dl_tensor().unwrap();
        assert_eq!(dl.data as *const u8, t.data_ptr());
        assert_eq!(dl.device, DLDevice::CPU);
        assert_eq!(dl.ndim, 2);
        assert_eq!(
            dl.dtype,
            DLDataType {
                code: 2,
                bits: 32,
                lanes: 1
            }
        );
        assert_eq!(dl.byte_offset, 0);
        // SAFETY: our export: two-element shape and strides arrays.
        let (shape, strides) = unsafe {
            (
                std::slice::from_raw_parts(dl.shape, 2),
                std::slice::from_raw_parts(dl.strides, 2),
            )
        };
        assert_eq!(shape, &[3, 4]);
        assert_eq!(strides, &[4, 1], "strides are in elements");
        drop(m);
        assert_eq!(Arc::strong_count(t.storage()), 1, "the deleter released it");
    }

    #[test]
    fn round_trip_is_zero_copy_and_releases_once() {
        for versioned in [false, true] {
            let t = sample();
            let opts = ExportOptions {
                versioned,
                read_only: true,
                ..Default::default()
            };
            let m = ManagedTensor::export(&t, opts).unwrap();
            if versioned {
                assert_eq!(m.version(), Some(DLPackVersion { major: 1, minor: 1 }));
                assert_eq!(m.flags(), DLPACK_FLAG_BITMASK_READ_ONLY);
            }
            // Through C and back, as a consumer would see it.
            let raw = m.into_raw();
            // SAFETY: `raw` is the managed tensor we just exported and gave away.
            let m = unsafe {
                if versioned {
                    ManagedTensor::from_raw_versioned(raw as *mut DLManagedTensorVersioned)
                } else {
                    ManagedTensor::from_raw_legacy(raw as *mut DLManagedTensor)
                }
            }
            .unwrap();
            let back = m.into_tensor(None).unwrap();
            assert_eq!(back.data_ptr(), t.data_ptr(), "zero-copy");
            assert_eq!(back.dtype(), DType::Float32);
            assert_eq!(back.shape(), &[3, 4]);
            assert_eq!(elems::<f32>(&back), elems::<f32>(&t));
            assert!(back.is_view());
            assert_eq!(Arc::strong_count(t.storage()), 2);
            let slice = back.index(&[Index::At(1)]).unwrap();
            drop(back);
            assert_eq!(
                Arc::strong_count(t.storage()),
                2,
                "the slice keeps it alive"
            );
            assert_eq!(elems::<f32>(&slice), vec![2.0, 2.5, 3.0, 3.5]);
            drop(slice);
            assert_eq!(Arc::strong_count(t.storage()), 1);
        }
    }

    #[test]
    fn every_dtype_round_trips() {
        fn check<T: crate::Element + PartialEq + std::fmt::Debug>(v: Vec<T>) {
            let t = tensor_of(&v, &[v.len()]).unwrap();
            for versioned in [false, true] {
                let opts = ExportOptions {
                    versioned,
                    ..Default::default()
                };
                let back = ManagedTensor::export(&t, opts)
                    .unwrap()
                    .into_tensor(None)
                    .unwrap();
                assert_eq!(back.dtype(), T::DTYPE);
                assert_eq!(back.data_ptr(), t.data_ptr());
                assert_eq!(elems::<T>(&back), v);
            }
        }
        check(vec![crate::Bool(1), crate::Bool(0)]);
        check(vec![-1i8, 2]);
        check(vec![-1i16, 2]);
        check(vec![-1i32, 2]);
        check(vec![-1i64, 2]);
        check(vec![1u8, 255]);
        check(vec![1u16, 65535]);
        check(vec![1u32, u32::MAX]);
        check(vec![1u64, u64::MAX]);
        check(vec![f16::from_f32(1.5), f16::from_f32(-2.0)]);
        check(vec![bf16::from_f32(1.5), bf16::from_f32(-2.0)]);
        check(vec![1.5f32, -2.0]);
        check(vec![1.5f64, -2.0]);
        check(vec![Complex::new(1.0f32, -1.0), Complex::new(0.5, 2.0)]);
        check(vec![Complex::new(1.0f64, -1.0), Complex::new(0.5, 2.0)]);
    }

    #[test]
    fn strided_views_export_their_strides() {
        let t = sample();
        // Column 1 reversed: shape [3], byte stride -16 → -4 elements.
        let col = t
            .index(&[
                Index::Slice {
                    start: None,
                    stop: None,
                    step: -1,
                },
                Index::At(1),
            ])
            .unwrap();
        let tt = t.permute(&[1, 0]).unwrap();
        for (v, want_strides) in [(&col, vec![-4i64]), (&tt, vec![1, 4])] {
            let m = ManagedTensor::export(v, ExportOptions::default()).unwrap();
            let dl = m.dl_tensor().unwrap();
            assert_eq!(dl.data as *const u8, v.data_ptr());
            // SAFETY: our export, `ndim` strides.
            let s = unsafe { std::slice::from_raw_parts(dl.strides, dl.ndim as usize) };
            assert_eq!(s, &want_strides[..]);
            let back = m.into_tensor(Some(false)).unwrap();
            assert_eq!(back.data_ptr(), v.data_ptr());
            assert_eq!(elems::<f32>(&back), elems::<f32>(v));
        }
        assert_eq!(elems::<f32>(&col), vec![4.5, 2.5, 0.5]);
    }

    #[test]
    fn copying_copy_option_on_export() {
        let t = sample();
        let opts = ExportOptions {
            versioned: true,
            read_only: true,
            copy: Some(true),
            ..Default::default()
        };
        let m = ManagedTensor::export(&t, opts).unwrap();
        assert_eq!(
            m.flags(),
            DLPACK_FLAG_BITMASK_IS_COPIED,
            "a private copy is writable"
        );
        assert_ne!(m.dl_tensor().unwrap().data as *const u8, t.data_ptr());
        assert_eq!(Arc::strong_count(t.storage()), 1);
        let back = m.into_tensor(None).unwrap();
        assert_eq!(elems::<f32>(&back), elems::<f32>(&t));
    }

    #[test]
    fn copying_strides_that_are_not_whole_elements() {
        // complex64 aligns to 4 bytes, so a 4-byte stride is a valid view, but DLPack
        // strides count whole elements: the export is a contiguous copy.
        let floats: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let base = tensor_of(&floats, &[8]).unwrap();
        let v = Tensor::from_storage(
            base.storage().clone(),
            DType::Complex64,
            vec![3],
            vec![4],
            0,
            true,
        )
        .unwrap();
        let opts = ExportOptions {
            versioned: true,
            read_only: true,
            copy: Some(false),
            ..Default::default()
        };
        let e = ManagedTensor::export(&v, opts).unwrap_err().to_string();
        assert!(e.contains("copy=False"), "{e}");
        let opts = ExportOptions { copy: None, ..opts };
        let m = ManagedTensor::export(&v, opts).unwrap();
        assert_eq!(m.flags(), DLPACK_FLAG_BITMASK_IS_COPIED);
        assert_ne!(m.dl_tensor().unwrap().data as *const u8, v.data_ptr());
        let back = m.into_tensor(None).unwrap();
        let want: Vec<Complex<f32>> = (0..3)
            .map(|i| Complex::new(i as f32, i as f32 + 1.0))
            .collect();
        assert_eq!(elems::<Complex<f32>>(&back), want);
    }

    #[test]
    fn zero_dim_and_empty() {
        let s = tensor_of(&[7i32], &[]).unwrap();
        let back = ManagedTensor::export(&s, ExportOptions::default())
            .unwrap()
            .into_tensor(None)
            .unwrap();
        assert_eq!(back.shape(), &[] as &[usize]);
        assert_eq!(elems::<i32>(&back), vec![7]);
        let e = Tensor::zeros(DType::Float64, &[0, 5]).unwrap();
        let back = ManagedTensor::export(&e, ExportOptions::default())
            .unwrap()
            .into_tensor(None)
            .unwrap();
        assert_eq!(back.shape(), &[0, 5]);
        assert!(back.is_empty());
    }

    /// A foreign producer written the way a C library would: its own buffer, shape
    /// and strides arrays, and a deleter that counts its calls.
    struct Foreign {
        data: Vec<u64>,
        shape: Vec<i64>,
        strides: Option<Vec<i64>>,
        calls: Arc<AtomicUsize>,
    }

    unsafe extern "C" fn foreign_deleter(p: *mut DLManagedTensor) {
        // SAFETY: `p` and its context were made by `foreign()` with Box::into_raw.
        let m = unsafe { Box::from_raw(p) };
        // SAFETY: as above.
        let ctx = unsafe { Box::from_raw(m.manager_ctx as *mut Foreign) };
        ctx.calls.fetch_add(1, Ordering::SeqCst);
    }

    unsafe extern "C" fn foreign_deleter_v(p: *mut DLManagedTensorVersioned) {
        // SAFETY: as in `foreign_deleter`.
        let m = unsafe { Box::from_raw(p) };
        // SAFETY: as above.
        let ctx = unsafe { Box::from_raw(m.manager_ctx as *mut Foreign) };
        ctx.calls.fetch_add(1, Ordering::SeqCst);
    }

    /// `bytes` of storage (8-byte aligned), described as `dtype` with `shape`,
    /// optional element `strides`, starting `byte_offset` bytes in.
    fn foreign(
        bytes: &[u8],
        dtype: DLDataType,
        shape: &[i64],
        strides: Option<&[i64]>,
        byte_offset: u64,
        device: DLDevice,
    ) -> (*mut DLManagedTensor, Arc<AtomicUsize>) {
        let mut data = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut data)[..bytes.len()].copy_from_slice(bytes);
        let calls = Arc::new(AtomicUsize::new(0));
        let mut ctx = Box::new(Foreign {
            data,
            shape: shape.to_vec(),
            strides: strides.map(|s| s.to_vec()),
            calls: calls.clone(),
        });
        let dl_tensor = DLTensor {
            data: ctx.data.as_mut_ptr() as *mut c_void,
            device,
            ndim: shape.len() as i32,
            dtype,
            shape: ctx.shape.as_mut_ptr(),
            strides: ctx
                .strides
                .as_mut()
                .map_or(std::ptr::null_mut(), |s| s.as_mut_ptr()),
            byte_offset,
        };
        let m = Box::new(DLManagedTensor {
            dl_tensor,
            manager_ctx: Box::into_raw(ctx) as *mut c_void,
            deleter: Some(foreign_deleter),
        });
        (Box::into_raw(m), calls)
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        bytemuck::cast_slice(v).to_vec()
    }

    const F32: DLDataType = DLDataType {
        code: code::FLOAT,
        bits: 32,
        lanes: 1,
    };

    #[test]
    fn foreign_import_calls_deleter_exactly_once() {
        let vals: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let (p, calls) = foreign(&f32_bytes(&vals), F32, &[2, 3], None, 0, DLDevice::CPU);
        // SAFETY: a valid managed tensor from `foreign`, handed over.
        let m = unsafe { ManagedTensor::from_raw_legacy(p) }.unwrap();
        let t = m.into_tensor(None).unwrap();
        assert_eq!(elems::<f32>(&t), vals, "NULL strides: C-contiguous");
        let copies: Vec<Tensor> = (0..4).map(|_| t.clone()).collect();
        let view = t.permute(&[1, 0]).unwrap();
        drop(t);
        drop(copies);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "still in use by the view");
        assert_eq!(elems::<f32>(&view), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        drop(view);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn foreign_versioned_import() {
        let vals = [1.0f32, 2.0, 3.0];
        let (p, calls) = foreign(&f32_bytes(&vals), F32, &[3], None, 0, DLDevice::CPU);
        // Re-wrap the legacy parts into a versioned struct.
        // SAFETY: `p` is a valid Box<DLManagedTensor> from `foreign`; we take it apart.
        let legacy = unsafe { Box::from_raw(p) };
        let v = Box::into_raw(Box::new(DLManagedTensorVersioned {
            version: DLPackVersion { major: 1, minor: 0 },
            manager_ctx: legacy.manager_ctx,
            deleter: Some(foreign_deleter_v),
            flags: DLPACK_FLAG_BITMASK_READ_ONLY,
            dl_tensor: DLTensor { ..legacy.dl_tensor },
        }));
        // SAFETY: a valid versioned managed tensor, handed over.
        let m = unsafe { ManagedTensor::from_raw_versioned(v) }.unwrap();
        assert_eq!(m.flags(), DLPACK_FLAG_BITMASK_READ_ONLY);
        let t = m.into_tensor(None).unwrap();
        assert_eq!(elems::<f32>(&t), vals);
        drop(t);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn unsupported_major_version_is_refused_without_reading_further() {
        let (p, calls) = foreign(&f32_bytes(&[1.0]), F32, &[1], None, 0, DLDevice::CPU);
        // SAFETY: taking apart our own box, as above.
        let legacy = unsafe { Box::from_raw(p) };
        let v = Box::into_raw(Box::new(DLManagedTensorVersioned {
            version: DLPackVersion { major: 2, minor: 0 },
            manager_ctx: legacy.manager_ctx,
            deleter: Some(foreign_deleter_v),
            flags: 0,
            dl_tensor: DLTensor { ..legacy.dl_tensor },
        }));
        // SAFETY: a valid versioned managed tensor, handed over.
        let m = unsafe { ManagedTensor::from_raw_versioned(v) }.unwrap();
        let e = m.check_import(None).unwrap_err().to_string();
        assert!(e.contains("version 2.0"), "{e}");
        let e = m.into_tensor(None).unwrap_err().to_string();
        assert!(e.contains("not supported"), "{e}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a failed import still releases it"
        );
    }

    #[test]
    fn strides_and_byte_offset() {
        // Eight floats 0..8; element [0, 0] at index 2 (byte_offset 8), element
        // strides [3, -1]: [[2, 1], [5, 4]].
        let vals: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let (p, calls) = foreign(
            &f32_bytes(&vals),
            F32,
            &[2, 2],
            Some(&[3, -1]),
            8,
            DLDevice::CPU,
        );
        // SAFETY: a valid managed tensor from `foreign`, handed over.
        let t = unsafe { ManagedTensor::from_raw_legacy(p) }
            .unwrap()
            .into_tensor(Some(false))
            .unwrap();
        assert_eq!(t.strides(), &[12, -4]);
        assert_eq!(elems::<f32>(&t), vec![2.0, 1.0, 5.0, 4.0]);
        drop(t);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn copying_unaligned_data_is_copied_or_refused() {
        let vals: Vec<f32> = (0..4).map(|i| i as f32).collect();
        let mut bytes = vec![0u8];
        bytes.extend(f32_bytes(&vals));
        // byte_offset 1: float32 elements at odd addresses.
        let (p, calls) = foreign(&bytes, F32, &[4], None, 1, DLDevice::CPU);
        // SAFETY: a valid managed tensor from `foreign`, handed over.
        let m = unsafe { ManagedTensor::from_raw_legacy(p) }.unwrap();
        let e = m.check_import(Some(false)).unwrap_err().to_string();
        assert!(e.contains("not aligned"), "{e}");
        let t = m.into_tensor(None).unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "copied, then released at once"
        );
        assert_eq!(elems::<f32>(&t), vals);
        assert_eq!(t.data_ptr() as usize % crate::storage::ALIGNMENT, 0);

        let (p, calls) = foreign(&bytes, F32, &[4], None, 1, DLDevice::CPU);
        // SAFETY: as above.
        let m = unsafe { ManagedTensor::from_raw_legacy(p) }.unwrap();
        assert!(m.into_tensor(Some(false)).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn copying_copy_true_releases_immediately() {
        let vals = [1.0f32, 2.0];
        let (p, calls) = foreign(&f32_bytes(&vals), F32, &[2], None, 0, DLDevice::CPU);
        // SAFETY: a valid managed tensor from `foreign`, handed over.
        let t = unsafe { ManagedTensor::from_raw_legacy(p) }
            .unwrap()
            .into_tensor(Some(true))
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(elems::<f32>(&t), vals);
        assert!(!t.is_view());
    }

    #[test]
    fn invalid_tensors_are_refused() {
        let cuda = DLDevice {
            device_type: DLDeviceType::CUDA,
            device_id: 1,
        };
        let bytes = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
        let cases: Vec<(*mut DLManagedTensor, Arc<AtomicUsize>, &str)> = vec![
            {
                let (p, c) = foreign(&bytes, F32, &[4], None, 0, cuda);
                (p, c, "CUDA:1")
            },
            {
                let (p, c) = foreign(
                    &bytes,
                    DLDataType {
                        code: 2,
                        bits: 32,
                        lanes: 2,
                    },
                    &[2],
                    None,
                    0,
                    DLDevice::CPU,
                );
                (p, c, "2 lanes")
            },
            {
                let (p, c) = foreign(&bytes, F32, &[-1], None, 0, DLDevice::CPU);
                (p, c, "negative dimension")
            },
            {
                let (p, c) = foreign(&bytes, F32, &[4], None, 0, DLDevice::CPU);
                // SAFETY: our own fresh box from `foreign`.
                unsafe { (*p).dl_tensor.ndim = -2 };
                (p, c, "negative number of dimensions")
            },
            {
                let (p, c) = foreign(&bytes, F32, &[4], None, 0, DLDevice::CPU);
                // SAFETY: as above.
                unsafe { (*p).dl_tensor.ndim = 65 };
                (p, c, "at most 64")
            },
            {
                let (p, c) = foreign(&bytes, F32, &[4], None, 0, DLDevice::CPU);
                // SAFETY: as above (the shape array stays owned by the context).
                unsafe { (*p).dl_tensor.shape = std::ptr::null_mut() };
                (p, c, "shape is NULL")
            },
            {
                let (p, c) = foreign(&bytes, F32, &[4], None, 0, DLDevice::CPU);
                // SAFETY: as above (the data stays owned by the context).
                unsafe { (*p).dl_tensor.data = std::ptr::null_mut() };
                (p, c, "data is NULL")
            },
        ];
        for (p, calls, want) in cases {
            // SAFETY: a managed tensor from `foreign` (fields edited above, but
            // nothing invalid is dereferenced: validation refuses first).
            let m = unsafe { ManagedTensor::from_raw_legacy(p) }.unwrap();
            let e = m.check_import(None).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
            // Not consumed: give it back, as a failed Python import does.
            let raw = m.into_raw();
            assert_eq!(calls.load(Ordering::SeqCst), 0);
            // SAFETY: taking it back to release it.
            drop(unsafe { ManagedTensor::from_raw_legacy(raw as *mut DLManagedTensor) });
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
        // SAFETY: NULL is allowed and refused.
        assert!(unsafe { ManagedTensor::from_raw_legacy(std::ptr::null_mut()) }.is_err());
    }

    #[test]
    fn empty_foreign_tensor_with_null_data() {
        let (p, calls) = foreign(&[], F32, &[0, 3], None, 0, DLDevice::CPU);
        // SAFETY: our own fresh box.
        unsafe { (*p).dl_tensor.data = std::ptr::null_mut() };
        // SAFETY: a valid managed tensor (empty: data is never read).
        let t = unsafe { ManagedTensor::from_raw_legacy(p) }
            .unwrap()
            .into_tensor(None)
            .unwrap();
        assert_eq!(t.shape(), &[0, 3]);
        drop(t);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

    fn counting_hook(release: &mut dyn FnMut()) {
        HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
        release();
    }

    #[test]
    fn release_hook_runs_the_release_once() {
        let t = sample();
        let opts = ExportOptions {
            release_hook: Some(counting_hook),
            ..Default::default()
        };
        let before = HOOK_CALLS.load(Ordering::SeqCst);
        let m = ManagedTensor::export(&t, opts).unwrap();
        assert_eq!(Arc::strong_count(t.storage()), 2);
        drop(m);
        assert_eq!(HOOK_CALLS.load(Ordering::SeqCst), before + 1);
        assert_eq!(Arc::strong_count(t.storage()), 1);
    }

    #[test]
    fn export_from_another_thread_is_released_there() {
        let t = sample();
        let m = ManagedTensor::export(&t, ExportOptions::default()).unwrap();
        std::thread::spawn(move || drop(m)).join().unwrap();
        assert_eq!(Arc::strong_count(t.storage()), 1);
    }
}
