//! The DLPack C ABI: `#[repr(C)]` structs that follow `dlpack.h` v1.1 field for
//! field, and the mapping between DLPack data types and tensorbridge dtypes.

use std::ffi::c_void;

use crate::dtype::DType;
use crate::error::{Error, Result};

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
