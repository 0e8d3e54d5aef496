//! TensorFlow's C op/kernel API as this bridge uses it: the functions looked up in
//! the loaded `libtensorflow_framework.so.2` ([`resolve`], [`Api`]), and the small
//! safe helpers over them (an owned status, a kernel failure report).

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::OnceLock;

pub(super) type Status = c_void;
pub(super) type Ctx = c_void;
pub(super) type Construction = c_void;
pub(super) type TfTensor = c_void;
type Builder = c_void;
type Dealloc = unsafe extern "C" fn(*mut c_void, usize, *mut c_void);

const TF_OK: c_int = 0;
pub(super) const TF_UNKNOWN: c_int = 2;
pub(super) const TF_INVALID_ARGUMENT: c_int = 3;
pub(super) const TF_OUT_OF_RANGE: c_int = 11;
pub(super) const TF_INTERNAL: c_int = 13;
pub(super) const TF_INT64: c_int = 9;

/// The C functions of TensorFlow this module calls, resolved by the Python side.
pub(super) struct Api {
    pub(super) new_status: unsafe extern "C" fn() -> *mut Status,
    pub(super) delete_status: unsafe extern "C" fn(*mut Status),
    pub(super) set_status: unsafe extern "C" fn(*mut Status, c_int, *const c_char),
    pub(super) get_code: unsafe extern "C" fn(*const Status) -> c_int,
    pub(super) message: unsafe extern "C" fn(*const Status) -> *const c_char,
    pub(super) new_op: unsafe extern "C" fn(*const c_char) -> *mut Builder,
    pub(super) op_attr: unsafe extern "C" fn(*mut Builder, *const c_char),
    pub(super) op_input: unsafe extern "C" fn(*mut Builder, *const c_char),
    pub(super) op_output: unsafe extern "C" fn(*mut Builder, *const c_char),
    pub(super) op_stateful: unsafe extern "C" fn(*mut Builder, bool),
    pub(super) op_shape_fn:
        unsafe extern "C" fn(*mut Builder, unsafe extern "C" fn(*mut c_void, *mut Status)),
    pub(super) register_op: unsafe extern "C" fn(*mut Builder, *mut Status),
    pub(super) unknown_shape: unsafe extern "C" fn(*mut c_void, *mut Status),
    pub(super) new_kernel: unsafe extern "C" fn(
        *const c_char,
        *const c_char,
        unsafe extern "C" fn(*mut Construction) -> *mut c_void,
        unsafe extern "C" fn(*mut c_void, *mut Ctx),
        unsafe extern "C" fn(*mut c_void),
    ) -> *mut Builder,
    pub(super) register_kernel: unsafe extern "C" fn(*const c_char, *mut Builder, *mut Status),
    pub(super) get_input: unsafe extern "C" fn(*mut Ctx, c_int, *mut *mut TfTensor, *mut Status),
    pub(super) num_outputs: unsafe extern "C" fn(*mut Ctx) -> c_int,
    pub(super) expected_output: unsafe extern "C" fn(*mut Ctx, c_int) -> c_int,
    pub(super) set_output: unsafe extern "C" fn(*mut Ctx, c_int, *const TfTensor, *mut Status),
    pub(super) failure: unsafe extern "C" fn(*mut Ctx, *mut Status),
    pub(super) attr_size:
        unsafe extern "C" fn(*mut Construction, *const c_char, *mut i32, *mut i32, *mut Status),
    pub(super) attr_i64_list:
        unsafe extern "C" fn(*mut Construction, *const c_char, *mut i64, c_int, *mut Status),
    pub(super) construction_failure: unsafe extern "C" fn(*mut Construction, *mut Status),
    pub(super) new_tensor: unsafe extern "C" fn(
        c_int,
        *const i64,
        c_int,
        *mut c_void,
        usize,
        Dealloc,
        *mut c_void,
    ) -> *mut TfTensor,
    pub(super) tensor_data: unsafe extern "C" fn(*const TfTensor) -> *mut c_void,
    pub(super) tensor_byte_size: unsafe extern "C" fn(*const TfTensor) -> usize,
    pub(super) delete_tensor: unsafe extern "C" fn(*mut TfTensor),
}

/// TensorFlow's C functions, once `tf_install` has looked them up.
pub(super) static API: OnceLock<Api> = OnceLock::new();

/// How many C functions [`resolve`] looks up.
pub(super) const N_SYMBOLS: usize = 27;

/// The C functions [`resolve`] looks up, in [`Api`]'s field order.
const SYMBOLS: [&str; N_SYMBOLS] = [
    "TF_NewStatus",
    "TF_DeleteStatus",
    "TF_SetStatus",
    "TF_GetCode",
    "TF_Message",
    "TF_NewOpDefinitionBuilder",
    "TF_OpDefinitionBuilderAddAttr",
    "TF_OpDefinitionBuilderAddInput",
    "TF_OpDefinitionBuilderAddOutput",
    "TF_OpDefinitionBuilderSetIsStateful",
    "TF_OpDefinitionBuilderSetShapeInferenceFunction",
    "TF_RegisterOpDefinition",
    "TF_ShapeInferenceContextSetUnknownShape",
    "TF_NewKernelBuilder",
    "TF_RegisterKernelBuilder",
    "TF_GetInput",
    "TF_NumOutputs",
    "TF_ExpectedOutputDataType",
    "TF_SetOutput",
    "TF_OpKernelContext_Failure",
    "TF_OpKernelConstruction_GetAttrSize",
    "TF_OpKernelConstruction_GetAttrInt64List",
    "TF_OpKernelConstruction_Failure",
    "TF_NewTensor",
    "TF_TensorData",
    "TF_TensorByteSize",
    "TF_DeleteTensor",
];

/// The function pointer of type `F` at address `addr`.
///
/// # Safety
/// `F` must be an `extern "C"` function pointer type and `addr` the address of a
/// function with exactly that signature.
unsafe fn fn_at<F: Copy>(addr: usize) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    // SAFETY: same size (checked); the caller guarantees that `addr` is a function
    // of type F.
    unsafe { std::mem::transmute_copy::<usize, F>(&addr) }
}

impl Api {
    /// # Safety
    /// Each address must be the named function of TensorFlow's C API (the
    /// signatures of TF 2.x's `c/ops.h`, `c/kernels.h`, `c/tf_tensor.h`,
    /// `c/tf_status.h`), in a library that stays loaded.
    pub(super) unsafe fn from_addresses(a: &[usize; N_SYMBOLS]) -> Api {
        macro_rules! f {
            ($i:expr) => {
                // SAFETY: the caller guarantees that address $i is the function
                // SYMBOLS[$i] with the signature of the field it is stored in.
                unsafe { fn_at(a[$i]) }
            };
        }
        Api {
            new_status: f!(0),
            delete_status: f!(1),
            set_status: f!(2),
            get_code: f!(3),
            message: f!(4),
            new_op: f!(5),
            op_attr: f!(6),
            op_input: f!(7),
            op_output: f!(8),
            op_stateful: f!(9),
            op_shape_fn: f!(10),
            register_op: f!(11),
            unknown_shape: f!(12),
            new_kernel: f!(13),
            register_kernel: f!(14),
            get_input: f!(15),
            num_outputs: f!(16),
            expected_output: f!(17),
            set_output: f!(18),
            failure: f!(19),
            attr_size: f!(20),
            attr_i64_list: f!(21),
            construction_failure: f!(22),
            new_tensor: f!(23),
            tensor_data: f!(24),
            tensor_byte_size: f!(25),
            delete_tensor: f!(26),
        }
    }
}

/// A failure to report through the kernel's status: (TF code, message).
pub(super) type Fail = (c_int, String);

/// A status owned for the length of one call.
pub(super) struct OwnedStatus<'a> {
    api: &'a Api,
    pub(super) s: *mut Status,
}

impl<'a> OwnedStatus<'a> {
    pub(super) fn new(api: &'a Api) -> Self {
        // SAFETY: TF_NewStatus has no preconditions.
        let s = unsafe { (api.new_status)() };
        OwnedStatus { api, s }
    }

    pub(super) fn check(&self, what: &str) -> Result<(), Fail> {
        // SAFETY: self.s is a live status from TF_NewStatus; TF_Message returns a
        // NUL-terminated string owned by it, read before it changes.
        unsafe {
            let code = (self.api.get_code)(self.s);
            if code == TF_OK {
                return Ok(());
            }
            let msg = std::ffi::CStr::from_ptr((self.api.message)(self.s)).to_string_lossy();
            Err((code, format!("tensorbridge: {what}: {msg}")))
        }
    }
}

impl Drop for OwnedStatus<'_> {
    fn drop(&mut self) {
        // SAFETY: self.s came from TF_NewStatus and is deleted once.
        unsafe { (self.api.delete_status)(self.s) }
    }
}

pub(super) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// Report `f` as the kernel's failure.
///
/// # Safety
/// `ctx` must be the context of the running compute call.
pub(super) unsafe fn report(api: &Api, ctx: *mut Ctx, f: Fail) {
    let st = OwnedStatus::new(api);
    let msg = cstring(&f.1);
    // SAFETY: st.s is live, msg NUL-terminated; ctx is the running kernel's
    // context (our caller's contract). TF copies the status.
    unsafe {
        (api.set_status)(st.s, f.0, msg.as_ptr());
        (api.failure)(ctx, st.s);
    }
}

/// The address of each function in [`SYMBOLS`], looked up in the already loaded
/// library at `library` (TensorFlow's `libtensorflow_framework.so.2`). The
/// library is never unloaded: TensorFlow keeps it for the life of the process.
pub(super) fn resolve(library: &str) -> Result<[usize; N_SYMBOLS], String> {
    let path = CString::new(library).map_err(|_| format!("{library:?} contains a NUL byte"))?;
    // SAFETY: `path` is a NUL-terminated string; with RTLD_NOLOAD dlopen loads
    // nothing (so runs no initialiser): it only returns a handle to a library that
    // is already loaded, or null. The handle is deliberately never closed.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
    if handle.is_null() {
        return Err(format!(
            "{library} is not loaded in this process (import tensorflow first)"
        ));
    }
    let mut a = [0usize; N_SYMBOLS];
    for (slot, name) in a.iter_mut().zip(SYMBOLS) {
        let cname = CString::new(name).map_err(|_| format!("bad symbol name {name:?}"))?;
        // SAFETY: `handle` is a live dlopen handle and `cname` NUL-terminated.
        let p = unsafe { libc::dlsym(handle, cname.as_ptr()) };
        if p.is_null() {
            return Err(format!("{library} does not export {name}"));
        }
        *slot = p as usize;
    }
    Ok(a)
}
