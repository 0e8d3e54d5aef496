//! The two ops' CPU kernels (create, compute, delete), their shape checks, and
//! their registration with TensorFlow ([`register`]).

use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;

use tensorbridge::{DType, Tensor};

use super::c_api::*;
use super::registry::{close_iter, fail_from, pull, registry, SHARED};

/// TensorFlow's dtype code of a tensorbridge dtype (the core's one table, shared with
/// the TFRecord tensor protos).
fn tf_code(d: DType) -> c_int {
    tensorbridge::format::tfrecord::tf_dtype_enum(d) as c_int
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

/// Register both ops and their CPU kernels with TensorFlow.
pub(super) fn register(api: &Api) -> Result<(), String> {
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
