//! A native TensorFlow op that pulls batches from a running pipeline
//! (`Dataset.to_tensorflow()`, issue 12).
//!
//! TensorFlow's wheel exports its C op/kernel API from
//! `libtensorflow_framework.so.2`. The Python side (`tensorbridge._tensorflow`)
//! passes that library's path to [`tf_install`], which looks the few functions
//! used here up (`dlsym` in the already loaded library) and registers two stateful
//! CPU ops:
//!
//! - `TensorbridgeIteratorGuard(id: int64) -> handle: int64`: the same id in a
//!   buffer of its own; when TensorFlow frees that buffer (the per-epoch inner
//!   `tf.data` dataset holding it is gone: exhausted, or its iterator dropped), the
//!   pipeline iterator `id` is closed (threads joined, buffers freed).
//! - `TensorbridgeNext(handle: int64) -> components: out_types` (attr `out_shapes`,
//!   see [`decode_shapes`]): the next element of iterator `handle`, each component
//!   handed over without a copy (`TF_NewTensor` over the batch buffer; the Rust
//!   tensor is released by the deallocator) after its dtype and shape are checked
//!   against the op's attrs (the Python side declares those shapes statically, so
//!   no `ensure_shape` runs per element). At the end the op fails with
//!   `OutOfRange`, which the `map` running it (with `preserve_cardinality=False`)
//!   takes as the end of the sequence; the iterator is closed right away.
//!
//! Iterators live in a registry keyed by id ([`tf_open`] starts one epoch). The
//! kernel waits for the pipeline without the GIL: Python map functions take it on
//! their own worker threads.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use tensorbridge::data::DatasetIter;
use tensorbridge::{DType, Error, Tensor};

use crate::data::PyDataset;

type Status = c_void;
type Ctx = c_void;
type Construction = c_void;
type TfTensor = c_void;
type Builder = c_void;
type Dealloc = unsafe extern "C" fn(*mut c_void, usize, *mut c_void);

const TF_OK: c_int = 0;
const TF_UNKNOWN: c_int = 2;
const TF_INVALID_ARGUMENT: c_int = 3;
const TF_OUT_OF_RANGE: c_int = 11;
const TF_INTERNAL: c_int = 13;
const TF_INT64: c_int = 9;

/// The C functions of TensorFlow this module calls, resolved by the Python side.
struct Api {
    new_status: unsafe extern "C" fn() -> *mut Status,
    delete_status: unsafe extern "C" fn(*mut Status),
    set_status: unsafe extern "C" fn(*mut Status, c_int, *const c_char),
    get_code: unsafe extern "C" fn(*const Status) -> c_int,
    message: unsafe extern "C" fn(*const Status) -> *const c_char,
    new_op: unsafe extern "C" fn(*const c_char) -> *mut Builder,
    op_attr: unsafe extern "C" fn(*mut Builder, *const c_char),
    op_input: unsafe extern "C" fn(*mut Builder, *const c_char),
    op_output: unsafe extern "C" fn(*mut Builder, *const c_char),
    op_stateful: unsafe extern "C" fn(*mut Builder, bool),
    op_shape_fn: unsafe extern "C" fn(*mut Builder, unsafe extern "C" fn(*mut c_void, *mut Status)),
    register_op: unsafe extern "C" fn(*mut Builder, *mut Status),
    unknown_shape: unsafe extern "C" fn(*mut c_void, *mut Status),
    new_kernel: unsafe extern "C" fn(
        *const c_char,
        *const c_char,
        unsafe extern "C" fn(*mut Construction) -> *mut c_void,
        unsafe extern "C" fn(*mut c_void, *mut Ctx),
        unsafe extern "C" fn(*mut c_void),
    ) -> *mut Builder,
    register_kernel: unsafe extern "C" fn(*const c_char, *mut Builder, *mut Status),
    get_input: unsafe extern "C" fn(*mut Ctx, c_int, *mut *mut TfTensor, *mut Status),
    num_outputs: unsafe extern "C" fn(*mut Ctx) -> c_int,
    expected_output: unsafe extern "C" fn(*mut Ctx, c_int) -> c_int,
    set_output: unsafe extern "C" fn(*mut Ctx, c_int, *const TfTensor, *mut Status),
    failure: unsafe extern "C" fn(*mut Ctx, *mut Status),
    attr_size:
        unsafe extern "C" fn(*mut Construction, *const c_char, *mut i32, *mut i32, *mut Status),
    attr_i64_list:
        unsafe extern "C" fn(*mut Construction, *const c_char, *mut i64, c_int, *mut Status),
    construction_failure: unsafe extern "C" fn(*mut Construction, *mut Status),
    new_tensor: unsafe extern "C" fn(
        c_int,
        *const i64,
        c_int,
        *mut c_void,
        usize,
        Dealloc,
        *mut c_void,
    ) -> *mut TfTensor,
    tensor_data: unsafe extern "C" fn(*const TfTensor) -> *mut c_void,
    tensor_byte_size: unsafe extern "C" fn(*const TfTensor) -> usize,
    delete_tensor: unsafe extern "C" fn(*mut TfTensor),
}

/// How many C functions [`tf_install`] looks up.
const N_SYMBOLS: usize = 27;

/// The C functions [`tf_install`] looks up, in [`Api`]'s field order.
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
    unsafe fn from_addresses(a: &[usize; N_SYMBOLS]) -> Api {
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

static API: OnceLock<Api> = OnceLock::new();
/// The outcome of the one registration per process.
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// One pipeline epoch TensorFlow pulls from; `None` once it ended (or failed).
struct Entry {
    it: Mutex<Option<DatasetIter>>,
}

fn registry() -> &'static Mutex<HashMap<i64, Arc<Entry>>> {
    static R: OnceLock<Mutex<HashMap<i64, Arc<Entry>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

static NEXT_ID: AtomicI64 = AtomicI64::new(1);

/// Tensors TensorFlow holds now whose memory is a pipeline buffer (not a copy).
static SHARED: AtomicUsize = AtomicUsize::new(0);

/// Drop an iterator (stops and joins its threads), releasing the GIL first if this
/// thread holds it: a worker may be waiting for the GIL to finish a Python call.
fn close_iter(it: Option<DatasetIter>) {
    if it.is_none() {
        return;
    }
    // SAFETY: PyGILState_Check only reads the thread state; it is safe to call
    // from any thread once Python is initialised (it is: this module is loaded).
    if unsafe { pyo3::ffi::PyGILState_Check() } == 1 {
        Python::with_gil(|py| py.allow_threads(move || drop(it)));
    } else {
        drop(it);
    }
}

/// TensorFlow's dtype code of a tensorbridge dtype (the core's one table, shared with
/// the TFRecord tensor protos).
fn tf_code(d: DType) -> c_int {
    tensorbridge::format::tfrecord::tf_dtype_enum(d) as c_int
}

/// A failure to report through the kernel's status: (TF code, message).
type Fail = (c_int, String);

fn fail_from(e: Error) -> Fail {
    let code = match e {
        Error::External(_) => TF_UNKNOWN,
        _ => TF_INVALID_ARGUMENT,
    };
    (code, format!("tensorbridge pipeline: {e}"))
}

/// A status owned for the length of one call.
struct OwnedStatus<'a> {
    api: &'a Api,
    s: *mut Status,
}

impl<'a> OwnedStatus<'a> {
    fn new(api: &'a Api) -> Self {
        // SAFETY: TF_NewStatus has no preconditions.
        let s = unsafe { (api.new_status)() };
        OwnedStatus { api, s }
    }

    fn check(&self, what: &str) -> Result<(), Fail> {
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

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// Report `f` as the kernel's failure.
///
/// # Safety
/// `ctx` must be the context of the running compute call.
unsafe fn report(api: &Api, ctx: *mut Ctx, f: Fail) {
    let st = OwnedStatus::new(api);
    let msg = cstring(&f.1);
    // SAFETY: st.s is live, msg NUL-terminated; ctx is the running kernel's
    // context (our caller's contract). TF copies the status.
    unsafe {
        (api.set_status)(st.s, f.0, msg.as_ptr());
        (api.failure)(ctx, st.s);
    }
}

/// The 64-byte-aligned buffer of a guard's output (TensorFlow takes aligned
/// buffers without copying them, so the deallocator below runs when the last
/// tensor sharing it is gone).
#[repr(C, align(64))]
struct HandleBuf {
    id: i64,
}

unsafe extern "C" fn guard_dealloc(data: *mut c_void, _len: usize, _arg: *mut c_void) {
    // SAFETY: `data` is the Box<HandleBuf> leaked in `guard_compute` (TF calls the
    // deallocator once).
    let buf = unsafe { Box::from_raw(data.cast::<HandleBuf>()) };
    let entry = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&buf.id);
    if let Some(entry) = entry {
        let it = entry.it.lock().unwrap_or_else(|e| e.into_inner()).take();
        close_iter(it);
    }
}

unsafe extern "C" fn tensor_dealloc(_data: *mut c_void, _len: usize, arg: *mut c_void) {
    // SAFETY: `arg` is the Box<Tensor> leaked in `set_tensor`; TF calls the
    // deallocator once. Dropping a tensor only releases its storage.
    drop(unsafe { Box::from_raw(arg.cast::<Tensor>()) });
    SHARED.fetch_sub(1, Ordering::Relaxed);
}

unsafe extern "C" fn guard_create(_ctx: *mut Construction) -> *mut c_void {
    // A non-null, never dereferenced kernel state (the guard keeps none).
    std::ptr::NonNull::<u8>::dangling().as_ptr().cast()
}

unsafe extern "C" fn guard_delete(_kernel: *mut c_void) {}

/// The shape a component must have: `None` = any; else one entry per dimension,
/// `None` where any size goes (a partial last batch).
type Want = Option<Vec<Option<usize>>>;

/// The state of one `TensorbridgeNext` kernel: the shape of each component, from
/// its `out_shapes` attr (empty: none checked).
struct NextKernel {
    shapes: Vec<Want>,
}

/// The `out_shapes` attr of `TensorbridgeNext`, one shape after another: the rank
/// (`-1`: unknown, nothing follows), then that many dimensions (`-1`: unknown).
fn decode_shapes(flat: &[i64]) -> Result<Vec<Want>, String> {
    let mut out = Vec::new();
    let mut rest = flat;
    while let Some((&rank, tail)) = rest.split_first() {
        if rank < 0 {
            out.push(None);
            rest = tail;
            continue;
        }
        let rank = rank as usize;
        if tail.len() < rank {
            return Err(format!(
                "out_shapes {flat:?}: a shape of rank {rank} has only {} dimensions",
                tail.len()
            ));
        }
        let dims = tail[..rank]
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect();
        out.push(Some(dims));
        rest = &tail[rank..];
    }
    Ok(out)
}

/// A shape as TensorFlow prints it (`None` for an unknown dimension).
fn shape_str(want: &Want) -> String {
    match want {
        None => "<unknown>".into(),
        Some(dims) => {
            let d: Vec<String> = dims
                .iter()
                .map(|d| d.map_or_else(|| "None".into(), |d| d.to_string()))
                .collect();
            format!("({})", d.join(", "))
        }
    }
}

/// Whether `shape` is one that `want` allows.
fn shape_ok(shape: &[usize], want: &Want) -> bool {
    match want {
        None => true,
        Some(dims) => {
            dims.len() == shape.len()
                && dims
                    .iter()
                    .zip(shape)
                    .all(|(w, &d)| w.is_none_or(|w| w == d))
        }
    }
}

/// Read the `out_shapes` attr of the kernel being constructed.
///
/// # Safety
/// `ctx` must be the construction context TF passed to the create function.
unsafe fn read_shapes(api: &Api, ctx: *mut Construction) -> Result<Vec<Want>, String> {
    let st = OwnedStatus::new(api);
    let name = cstring("out_shapes");
    let (mut len, mut total) = (0i32, 0i32);
    // SAFETY: ctx is live (our contract), name NUL-terminated, len/total writable.
    unsafe { (api.attr_size)(ctx, name.as_ptr(), &mut len, &mut total, st.s) };
    st.check("reading attr out_shapes").map_err(|f| f.1)?;
    let mut flat = vec![0i64; usize::try_from(len).unwrap_or(0)];
    if !flat.is_empty() {
        // SAFETY: as above; `flat` has room for the `len` values asked for.
        unsafe {
            (api.attr_i64_list)(
                ctx,
                name.as_ptr(),
                flat.as_mut_ptr(),
                flat.len() as c_int,
                st.s,
            )
        };
        st.check("reading attr out_shapes").map_err(|f| f.1)?;
    }
    decode_shapes(&flat).map_err(|e| format!("tensorbridge: {e}"))
}

unsafe extern "C" fn next_create(ctx: *mut Construction) -> *mut c_void {
    let Some(api) = API.get() else {
        return std::ptr::null_mut();
    };
    // SAFETY: ctx is the construction context TF passed us.
    let run = || unsafe { read_shapes(api, ctx) };
    let shapes = std::panic::catch_unwind(run)
        .unwrap_or_else(|_| Err("tensorbridge: a panic reading out_shapes".into()));
    match shapes {
        Ok(shapes) => Box::into_raw(Box::new(NextKernel { shapes })).cast(),
        Err(msg) => {
            let st = OwnedStatus::new(api);
            let msg = cstring(&msg);
            // SAFETY: st.s is live, msg NUL-terminated, ctx the construction
            // context; TF copies the status and does not run this kernel.
            unsafe {
                (api.set_status)(st.s, TF_INVALID_ARGUMENT, msg.as_ptr());
                (api.construction_failure)(ctx, st.s);
            }
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn next_delete(kernel: *mut c_void) {
    if !kernel.is_null() {
        // SAFETY: a non-null state is the Box<NextKernel> made in next_create; TF
        // deletes each kernel once.
        drop(unsafe { Box::from_raw(kernel.cast::<NextKernel>()) });
    }
}

unsafe extern "C" fn shape_fn(ctx: *mut c_void, status: *mut Status) {
    if let Some(api) = API.get() {
        // SAFETY: ctx/status are the ones TF passed to this shape function.
        unsafe { (api.unknown_shape)(ctx, status) }
    }
}

/// Read the int64 id of input 0.
///
/// # Safety
/// `ctx` must be the context of the running compute call.
unsafe fn input_id(api: &Api, ctx: *mut Ctx) -> Result<i64, Fail> {
    let st = OwnedStatus::new(api);
    let mut t: *mut TfTensor = std::ptr::null_mut();
    // SAFETY: ctx is live (our contract); input 0 exists (both ops have one int64
    // input). The returned tensor is ours to delete.
    unsafe { (api.get_input)(ctx, 0, &mut t, st.s) };
    st.check("reading the iterator handle")?;
    // SAFETY: t is a live TF_Tensor; an int64 scalar holds 8 bytes, checked first.
    let id = unsafe {
        let id = ((api.tensor_byte_size)(t) >= 8)
            .then(|| ((api.tensor_data)(t) as *const i64).read_unaligned());
        (api.delete_tensor)(t);
        id
    };
    id.ok_or((
        TF_INVALID_ARGUMENT,
        "tensorbridge: the iterator handle is not an int64 scalar".into(),
    ))
}

unsafe extern "C" fn guard_compute(_kernel: *mut c_void, ctx: *mut Ctx) {
    let Some(api) = API.get() else { return };
    let run = || -> Result<(), Fail> {
        // SAFETY: ctx is the running kernel's context (TF's call).
        let id = unsafe { input_id(api, ctx) }?;
        let data = Box::into_raw(Box::new(HandleBuf { id }));
        let st = OwnedStatus::new(api);
        // SAFETY: `data` is 64-byte aligned and 8 bytes long; TF owns it from here
        // and gives it back to guard_dealloc once.
        unsafe {
            let t = (api.new_tensor)(
                TF_INT64,
                std::ptr::null(),
                0,
                data.cast(),
                8,
                guard_dealloc,
                std::ptr::null_mut(),
            );
            if t.is_null() {
                return Err((
                    TF_INTERNAL,
                    "tensorbridge: TF_NewTensor refused the handle".into(),
                ));
            }
            (api.set_output)(ctx, 0, t, st.s);
            (api.delete_tensor)(t);
        }
        st.check("setting the handle output")
    };
    if let Err(f) = std::panic::catch_unwind(run).unwrap_or_else(|_| {
        Err((
            TF_INTERNAL,
            "tensorbridge: a panic in the iterator guard".into(),
        ))
    }) {
        // SAFETY: ctx is the running kernel's context.
        unsafe { report(api, ctx, f) };
    }
}

/// The next element of iterator `id`: `Ok(None)` at its end.
fn pull(id: i64) -> Result<Option<Vec<Tensor>>, Fail> {
    let entry = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned()
        .ok_or_else(|| {
            (
                TF_INVALID_ARGUMENT,
                format!("tensorbridge: iterator {id} is not open"),
            )
        })?;
    let mut g = entry.it.lock().unwrap_or_else(|e| e.into_inner());
    let Some(it) = g.as_mut() else {
        return Ok(None);
    };
    // SAFETY: PyGILState_Check only reads the thread state (Python is initialised).
    let holds_gil = unsafe { pyo3::ffi::PyGILState_Check() } == 1;
    let (r, warnings) = if holds_gil {
        Python::with_gil(|py| py.allow_threads(|| (it.next(), it.take_warnings())))
    } else {
        (it.next(), it.take_warnings())
    };
    // At the end (or an error) the iterator is closed now, not when TF frees the guard.
    let ended = if matches!(r, Some(Ok(_))) {
        None
    } else {
        g.take()
    };
    drop(g); // never wait for the GIL while holding the entry (the guard may need it)
    close_iter(ended);
    if !warnings.is_empty() {
        Python::with_gil(|py| -> Result<(), Fail> {
            let cat = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
            for w in warnings {
                PyErr::warn(py, &cat, &cstring(&w), 1)
                    .map_err(|e| (TF_UNKNOWN, format!("tensorbridge pipeline: {e}")))?;
            }
            Ok(())
        })?;
    }
    match r {
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) => Err(fail_from(e)),
        None => Ok(None),
    }
}

/// Hand `t` to TF as output `i` (expected dtype `want`, shape `shape`) without a
/// copy.
///
/// # Safety
/// `ctx` must be the context of the running compute call.
unsafe fn set_tensor(
    api: &Api,
    ctx: *mut Ctx,
    i: c_int,
    want: c_int,
    shape: &Want,
    t: Tensor,
) -> Result<(), Fail> {
    let code = tf_code(t.dtype());
    if code != want {
        return Err((
            TF_INVALID_ARGUMENT,
            format!(
                "tensorbridge: component {} of an element is {} but the dataset's element_spec \
                 says TensorFlow dtype code {want}",
                i,
                t.dtype()
            ),
        ));
    }
    if !shape_ok(t.shape(), shape) {
        return Err((
            TF_INVALID_ARGUMENT,
            format!(
                "tensorbridge: component {i} of an element has shape {:?} but the dataset's \
                 element_spec says {}",
                t.shape(),
                shape_str(shape)
            ),
        ));
    }
    let t = if t.is_contiguous() {
        t
    } else {
        t.to_contiguous().map_err(fail_from)?
    };
    let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    let (ptr, len) = (t.data_ptr() as *mut c_void, t.nbytes());
    let arg = Box::into_raw(Box::new(t));
    SHARED.fetch_add(1, Ordering::Relaxed); // back down in tensor_dealloc (at once if TF copied)
    let st = OwnedStatus::new(api);
    // SAFETY: ptr/len are the contiguous elements of the tensor in `arg`, which
    // keeps them alive until TF calls tensor_dealloc (once; TF copies unaligned
    // buffers and calls it at once). TF does not write into buffers it does not own.
    unsafe {
        let out = (api.new_tensor)(
            want,
            dims.as_ptr(),
            dims.len() as c_int,
            ptr,
            len,
            tensor_dealloc,
            arg.cast(),
        );
        if out.is_null() {
            return Err((
                TF_INTERNAL,
                format!("tensorbridge: TF_NewTensor refused component {i}"),
            ));
        }
        (api.set_output)(ctx, i, out, st.s);
        (api.delete_tensor)(out);
    }
    st.check("setting an output")
}

unsafe extern "C" fn next_compute(kernel: *mut c_void, ctx: *mut Ctx) {
    let Some(api) = API.get() else { return };
    let run = || -> Result<(), Fail> {
        // SAFETY: a kernel whose construction failed is never run, so `kernel` is
        // the NextKernel made by next_create, alive until next_delete.
        let shapes = unsafe { &(*kernel.cast::<NextKernel>()).shapes };
        // SAFETY: ctx is the running kernel's context (TF's call), here and below.
        let id = unsafe { input_id(api, ctx) }?;
        // SAFETY: as above.
        let n = unsafe { (api.num_outputs)(ctx) };
        let Some(v) = pull(id)? else {
            // The `map` running this op (preserve_cardinality=False) ends the
            // sequence on OutOfRange.
            return Err((TF_OUT_OF_RANGE, "End of sequence".into()));
        };
        if v.len() != n as usize {
            return Err((
                TF_INVALID_ARGUMENT,
                format!(
                    "tensorbridge: an element has {} components, the op {n}",
                    v.len()
                ),
            ));
        }
        const ANY: Want = None;
        for (i, t) in (0..n).zip(v) {
            // SAFETY: as above; 0 <= i < n outputs.
            let want = unsafe { (api.expected_output)(ctx, i) };
            let shape = shapes.get(i as usize).unwrap_or(&ANY);
            // SAFETY: as above.
            unsafe { set_tensor(api, ctx, i, want, shape, t) }?;
        }
        Ok(())
    };
    if let Err(f) = std::panic::catch_unwind(run).unwrap_or_else(|_| {
        Err((
            TF_INTERNAL,
            "tensorbridge: a panic in the iterator op".into(),
        ))
    }) {
        // SAFETY: ctx is the running kernel's context.
        unsafe { report(api, ctx, f) };
    }
}

/// An op to register: name, attrs, inputs, outputs, CPU kernel (create, compute,
/// delete).
type OpSpec = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    unsafe extern "C" fn(*mut Construction) -> *mut c_void,
    unsafe extern "C" fn(*mut c_void, *mut Ctx),
    unsafe extern "C" fn(*mut c_void),
);

fn register(api: &Api) -> Result<(), String> {
    let st = OwnedStatus::new(api);
    let ops: [OpSpec; 2] = [
        (
            "TensorbridgeIteratorGuard",
            &[],
            &["id: int64"],
            &["handle: int64"],
            guard_create,
            guard_compute,
            guard_delete,
        ),
        (
            "TensorbridgeNext",
            &["out_types: list(type) >= 1", "out_shapes: list(int) = []"],
            &["handle: int64"],
            &["components: out_types"],
            next_create,
            next_compute,
            next_delete,
        ),
    ];
    for (name, attrs, inputs, outputs, create, compute, delete) in ops {
        let cname = cstring(name);
        // SAFETY: the builder from TF_NewOpDefinitionBuilder is consumed by
        // TF_RegisterOpDefinition; every string is NUL-terminated and copied by TF.
        unsafe {
            let b = (api.new_op)(cname.as_ptr());
            for a in attrs {
                (api.op_attr)(b, cstring(a).as_ptr());
            }
            for a in inputs {
                (api.op_input)(b, cstring(a).as_ptr());
            }
            for a in outputs {
                (api.op_output)(b, cstring(a).as_ptr());
            }
            (api.op_stateful)(b, true);
            (api.op_shape_fn)(b, shape_fn);
            (api.register_op)(b, st.s);
        }
        st.check(&format!("registering op {name}"))
            .map_err(|f| f.1)?;
        let cpu = cstring("CPU");
        // SAFETY: as above; TF_RegisterKernelBuilder takes the kernel builder.
        unsafe {
            let k = (api.new_kernel)(cname.as_ptr(), cpu.as_ptr(), create, compute, delete);
            (api.register_kernel)(cname.as_ptr(), k, st.s);
        }
        st.check(&format!("registering the CPU kernel of {name}"))
            .map_err(|f| f.1)?;
    }
    Ok(())
}

/// The address of each function in [`SYMBOLS`], looked up in the already loaded
/// library at `library` (TensorFlow's `libtensorflow_framework.so.2`). The
/// library is never unloaded: TensorFlow keeps it for the life of the process.
fn resolve(library: &str) -> Result<[usize; N_SYMBOLS], String> {
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

/// Register the ops with TensorFlow (once per process). `library`: the path of the
/// loaded `libtensorflow_framework.so.2`, whose C op/kernel API functions
/// ([`SYMBOLS`]) are looked up here. Raises RuntimeError saying what failed (a
/// failed lookup is not remembered: another path may be tried).
#[pyfunction]
fn tf_install(library: &str) -> PyResult<()> {
    // Looked up on every call (a few dlsym calls), so a wrong library is refused
    // even once the ops are installed.
    let a = resolve(library).map_err(PyRuntimeError::new_err)?;
    let result = INSTALLED.get_or_init(|| {
        // SAFETY: each address is the function of that name in TensorFlow's own
        // library (dlsym above), which stays loaded for the life of the process;
        // the field types follow TF 2.x's C headers (see `Api`).
        let api = API.get_or_init(|| unsafe { Api::from_addresses(&a) });
        register(api)
    });
    result.clone().map_err(PyRuntimeError::new_err)
}

/// Start one epoch of `ds` for the TensorFlow op; returns its handle.
#[pyfunction]
fn tf_open(py: Python<'_>, ds: PyRef<'_, PyDataset>) -> PyResult<i64> {
    if API.get().is_none() {
        return Err(PyValueError::new_err(
            "tf_open: the TensorFlow ops are not installed",
        ));
    }
    let d = ds.dataset().clone();
    let it = py.allow_threads(|| d.iter()).map_err(crate::to_py)?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    registry().lock().unwrap_or_else(|e| e.into_inner()).insert(
        id,
        Arc::new(Entry {
            it: Mutex::new(Some(it)),
        }),
    );
    Ok(id)
}

/// `(handles, iterators, shared)`: handles still registered (epochs TensorFlow still
/// holds), how many of them still run a pipeline iterator, and how many tensors
/// TensorFlow holds that share a pipeline buffer (not copies). For tests.
#[pyfunction]
fn tf_stats() -> (usize, usize, usize) {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let live = r
        .values()
        .filter(|e| e.it.lock().unwrap_or_else(|e| e.into_inner()).is_some())
        .count();
    (r.len(), live, SHARED.load(Ordering::Relaxed))
}

/// Add the TensorFlow bridge functions to `tensorbridge._core`.
pub fn register_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tf_install, m)?)?;
    m.add_function(wrap_pyfunction!(tf_open, m)?)?;
    m.add_function(wrap_pyfunction!(tf_stats, m)?)?;
    Ok(())
}
