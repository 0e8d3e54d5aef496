"""DLPack exchange with NumPy, TensorFlow, JAX (and PyTorch when installed).

NumPy is the oracle for values; zero-copy is proven with addresses: NumPy's
``ctypes.data`` / ``np.shares_memory``, JAX's ``unsafe_buffer_pointer()``, and for
TensorFlow the data pointer of a capsule from ``tf.experimental.dlpack.to_dlpack``
(``tf.Tensor.numpy()`` always copies, so it cannot show sharing).
"""

import ctypes
import gc
import os
import sys
import weakref

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

jax.config.update("jax_enable_x64", True)  # otherwise JAX turns 64-bit dtypes into 32-bit
import jax.numpy as jnp  # noqa: E402

import tensorbridge as tb  # noqa: E402
from conftest import NAMES, bits, np_dtype  # noqa: E402

# ---------------------------------------------------------------------------
# DLPack structs, read through ctypes to inspect capsules.


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("major", ctypes.c_uint32),
        ("minor", ctypes.c_uint32),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", DLTensor),
    ]


READ_ONLY, IS_COPIED = 1, 2

_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_is_valid.restype = ctypes.c_int
_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]


def capsule_name(cap):
    for name in (b"dltensor", b"dltensor_versioned", b"used_dltensor", b"used_dltensor_versioned"):
        if _is_valid(cap, name):
            return name.decode()
    return None


def managed(cap):
    """The managed tensor struct inside an unconsumed capsule."""
    name = capsule_name(cap)
    ptr = _get_pointer(cap, name.encode())
    if name == "dltensor":
        return DLManagedTensor.from_address(ptr)
    return DLManagedTensorVersioned.from_address(ptr)


def tf_address(x):
    """Address of a tf.Tensor's buffer, via a DLPack capsule that is then freed unconsumed."""
    cap = tf.experimental.dlpack.to_dlpack(x)
    return managed(cap).dl_tensor.data


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# ---------------------------------------------------------------------------
# Sample data: every dtype, with edge values.


def sample(name, shape=(3, 5)):
    n = int(np.prod(shape))
    dt = np_dtype(name)
    if name == "bool":
        a = (np.arange(n) % 3 == 1)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        base = np.array([0, 1, info.max, info.min, 7, info.max - 1], dtype=dt)
        a = np.resize(base, n)
    elif name in ("float16", "bfloat16", "float32", "float64"):
        base = np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan, 3e-3, 1000.0, 1e-8], dtype=np.float64)
        with np.errstate(over="ignore"):
            a = np.resize(base, n).astype(dt)
    else:
        a = np.empty(n, dtype=dt)
        a.real = np.resize(np.array([0.0, 1.5, -np.inf, np.nan, 2.0]), n)
        a.imag = np.resize(np.array([-1.0, 0.0, 3.25, np.inf, -0.0, 5.0]), n)
    return np.ascontiguousarray(a.reshape(shape))


def tf_dtype(name):
    return tf.dtypes.as_dtype(name)


def same(a, b, name):
    """Exact values and dtype (bit-for-bit, so NaN and -0.0 count)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == np_dtype(name), (a.dtype, name)
    assert b.dtype == np_dtype(name), (b.dtype, name)
    assert a.shape == b.shape
    assert bits(a) == bits(b)


# ---------------------------------------------------------------------------
# tb → NumPy / TensorFlow / JAX, and back, for every dtype.


def test_tb_to_numpy(dtype_name):
    a = sample(dtype_name)
    t = tb.convert_to_tensor(a)
    m = t.to_numpy()
    same(m, a, dtype_name)
    assert m.ctypes.data == t.data_ptr
    assert np.shares_memory(m, t.numpy())
    assert not m.flags.writeable, "tensors are immutable: the array must be read-only"
    if dtype_name != "bfloat16":
        m2 = np.from_dlpack(t)  # the versioned protocol, read-only flag
        same(m2, a, dtype_name)
        assert m2.ctypes.data == t.data_ptr and not m2.flags.writeable


def test_numpy_to_tb(dtype_name):
    a = sample(dtype_name)
    if dtype_name == "bfloat16":
        # NumPy 2.x cannot export ml_dtypes.bfloat16 through DLPack (its own limitation);
        # bfloat16 reaches tb from TF and JAX instead (tests below).
        with pytest.raises(BufferError):
            tb.from_dlpack(a)
        return
    t = tb.from_dlpack(a)
    assert t.dtype == tb.dtype(dtype_name)
    assert t.is_view
    assert t.data_ptr == a.ctypes.data
    assert np.shares_memory(t.numpy(), a)
    same(t.numpy(), a, dtype_name)
    # It really is the same memory: NumPy's writes show through.
    a[0, 0] = a[0, 1]
    same(t.numpy(), a, dtype_name)


def test_tb_to_tensorflow(dtype_name):
    a = sample(dtype_name)
    t = tb.convert_to_tensor(a)
    x = t.to_tensorflow()
    assert x.dtype == tf_dtype(dtype_name)
    same(x.numpy(), a, dtype_name)
    assert tf_address(x) == t.data_ptr, "zero-copy"
    # TF can compute on it (bool/complex/bf16 included).
    assert x.shape == a.shape
    assert tf.identity(x).dtype == x.dtype
    back = tb.from_dlpack(tf.experimental.dlpack.to_dlpack(x))
    assert back.data_ptr == t.data_ptr
    same(back.numpy(), a, dtype_name)


def test_tensorflow_to_tb(dtype_name):
    a = sample(dtype_name)
    x = tf.constant(a, dtype=tf_dtype(dtype_name))
    same(x.numpy(), a, dtype_name)
    # A raw capsule, as tf.experimental.dlpack.to_dlpack returns it.
    cap = tf.experimental.dlpack.to_dlpack(x)
    t = tb.from_dlpack(cap)
    assert capsule_name(cap) == "used_dltensor"
    assert t.dtype == tb.dtype(dtype_name)
    same(t.numpy(), a, dtype_name)
    assert t.data_ptr == tf_address(x), "zero-copy"
    # TF tensors also speak the __dlpack__ protocol.
    t2 = tb.from_dlpack(x)
    assert t2.data_ptr == t.data_ptr
    del x, cap
    gc.collect()
    same(t.numpy(), a, dtype_name)  # still valid: the tensor owns the TF buffer


def test_tb_to_jax(dtype_name):
    a = sample(dtype_name)
    t = tb.convert_to_tensor(a)
    j = t.to_jax()
    assert j.dtype == np_dtype(dtype_name)
    same(np.asarray(j), a, dtype_name)
    assert j.unsafe_buffer_pointer() == t.data_ptr, "zero-copy"
    back = tb.from_dlpack(j)
    assert back.data_ptr == t.data_ptr
    same(back.numpy(), a, dtype_name)


def test_jax_to_tb(dtype_name):
    a = sample(dtype_name)
    j = jnp.asarray(a)
    assert j.dtype == np_dtype(dtype_name)
    t = tb.from_dlpack(j)
    assert t.dtype == tb.dtype(dtype_name)
    assert t.data_ptr == j.unsafe_buffer_pointer(), "zero-copy"
    same(t.numpy(), a, dtype_name)
    del j
    gc.collect()
    same(t.numpy(), a, dtype_name)


@pytest.mark.parametrize("shape", [(), (0,), (4, 0, 2), (1,), (2, 1, 3)])
def test_odd_shapes_every_direction(shape):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t = tb.convert_to_tensor(a)
    for out in (t.to_numpy(), t.to_tensorflow().numpy(), np.asarray(t.to_jax()), tb.from_dlpack(a).numpy()):
        assert out.shape == shape
        np.testing.assert_array_equal(out, a)


# ---------------------------------------------------------------------------
# The protocol itself.


def test_dlpack_device():
    t = tb.constant([1.0, 2.0])
    assert t.__dlpack_device__() == (1, 0)


def test_capsule_kinds_and_flags():
    t = tb.convert_to_tensor(np.arange(12, dtype=np.int16).reshape(3, 4))
    legacy = t.__dlpack__()
    assert capsule_name(legacy) == "dltensor"
    assert capsule_name(t.__dlpack__(max_version=(0, 8))) == "dltensor"
    m = managed(legacy).dl_tensor
    assert m.data == t.data_ptr
    assert (m.device.device_type, m.device.device_id) == (1, 0)
    assert (m.dtype.code, m.dtype.bits, m.dtype.lanes) == (0, 16, 1)
    assert m.ndim == 2 and [m.shape[i] for i in range(2)] == [3, 4]
    assert [m.strides[i] for i in range(2)] == [4, 1], "strides are in elements"

    v = t.__dlpack__(max_version=(1, 0))
    assert capsule_name(v) == "dltensor_versioned"
    mv = managed(v)
    assert (mv.major, mv.minor) == (1, 1)
    assert mv.flags == READ_ONLY, "tensors are immutable"
    assert mv.dl_tensor.data == t.data_ptr
    assert capsule_name(t.__dlpack__(max_version=(2, 3))) == "dltensor_versioned"

    c = t.__dlpack__(max_version=(1, 0), copy=True)
    mc = managed(c)
    assert mc.flags == IS_COPIED, "a private copy is writable"
    assert mc.dl_tensor.data != t.data_ptr
    w = np.from_dlpack(t, copy=True)
    assert w.flags.writeable and w.ctypes.data != t.data_ptr


def test_dtype_codes():
    codes = {
        "bool": (6, 8), "int8": (0, 8), "int16": (0, 16), "int32": (0, 32), "int64": (0, 64),
        "uint8": (1, 8), "uint16": (1, 16), "uint32": (1, 32), "uint64": (1, 64),
        "float16": (2, 16), "bfloat16": (4, 16), "float32": (2, 32), "float64": (2, 64),
        "complex64": (5, 64), "complex128": (5, 128),
    }
    assert sorted(codes) == sorted(NAMES)
    for name, (code, nbits) in codes.items():
        d = managed(tb.convert_to_tensor(sample(name)).__dlpack__()).dl_tensor.dtype
        assert (d.code, d.bits, d.lanes) == (code, nbits, 1), name


def test_strided_views_are_shared_with_their_strides():
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    for view in (a[:, ::2], a[::-1], a.T, a[1:3, 2:]):
        t = tb.from_dlpack(view)
        assert t.data_ptr == view.ctypes.data
        assert t.strides == view.strides
        np.testing.assert_array_equal(t.numpy(), view)
        # and back out to NumPy with the same strides
        m = np.from_dlpack(t)
        assert m.strides == view.strides and np.shares_memory(m, a)


def test_capsule_is_consumed_once():
    t = tb.constant([1.0, 2.0, 3.0])
    cap = t.__dlpack__()
    t2 = tb.from_dlpack(cap)
    assert t2.data_ptr == t.data_ptr
    assert capsule_name(cap) == "used_dltensor"
    with pytest.raises(ValueError, match="already been consumed"):
        tb.from_dlpack(cap)
    with pytest.raises(Exception, match="dltensor"):  # TF's InvalidArgumentError
        tf.experimental.dlpack.from_dlpack(cap)

    cap = t.__dlpack__()
    x = tf.experimental.dlpack.from_dlpack(cap)
    assert capsule_name(cap) == "used_dltensor"
    with pytest.raises(ValueError, match="already been consumed"):
        tb.from_dlpack(cap)
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])

    vcap = t.__dlpack__(max_version=(1, 0))
    tb.from_dlpack(vcap)
    assert capsule_name(vcap) == "used_dltensor_versioned"
    with pytest.raises(ValueError, match="already been consumed"):
        tb.from_dlpack(vcap)


def _aligned_array(n, dtype=np.float32):
    """A NumPy array of ``n`` elements whose first byte is 64-byte aligned (so that
    TensorFlow and JAX can share it), and the buffer it is a view of."""
    itemsize = np.dtype(dtype).itemsize
    buf = np.zeros(n * itemsize + 64, dtype=np.uint8)
    off = (-buf.ctypes.data) % 64
    a = buf[off:off + n * itemsize].view(dtype)
    assert a.ctypes.data % 64 == 0
    return a, buf


def _owner_and_tensor(n=1000):
    """A zero-copy tensor over a NumPy buffer, and a weakref that shows when that
    buffer (the tensor's memory) is freed."""
    a, buf = _aligned_array(n)
    a[:] = np.arange(n, dtype=np.float32)
    t = tb.convert_to_tensor(a, copy=False)
    assert t.is_view and t.data_ptr == a.ctypes.data
    return weakref.ref(buf), t


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_unconsumed_capsule_frees_what_it_holds(max_version):
    w, t = _owner_and_tensor()
    cap = t.__dlpack__(max_version=max_version)
    del t
    gc.collect()
    assert w() is not None, "the capsule keeps the memory alive"
    del cap
    gc.collect()
    assert w() is None, "an unconsumed capsule releases the memory"


@pytest.mark.parametrize("consumer", ["tb", "tf", "tf_object", "jax", "numpy"])
def test_consumer_keeps_memory_until_it_releases(consumer):
    w, t = _owner_and_tensor()
    ptr = t.data_ptr
    if consumer == "tb":
        cap = t.__dlpack__()
        out = tb.from_dlpack(cap)
        read = lambda: out.numpy()  # noqa: E731
    elif consumer == "tf":
        cap = t.__dlpack__()
        out = tf.experimental.dlpack.from_dlpack(cap)
        read = out.numpy
    elif consumer == "tf_object":
        cap = None
        out = t.to_tensorflow()
        assert tf_address(out) == ptr
        read = out.numpy
    elif consumer == "jax":
        cap = None
        out = t.to_jax()
        assert out.unsafe_buffer_pointer() == ptr
        read = lambda: np.asarray(out)  # noqa: E731
    else:
        cap = None
        out = np.from_dlpack(t)
        assert out.ctypes.data == ptr
        read = lambda: out  # noqa: E731
    del t, cap
    gc.collect()
    assert w() is not None, "the consumer still uses the memory"
    np.testing.assert_array_equal(read(), np.arange(1000, dtype=np.float32))
    del out, read
    gc.collect()
    assert w() is None, "released once the consumer let go"


def test_many_round_trips_do_not_leak():
    """Fresh 8 MiB tensors through every path; a leak of any one of them would grow
    RSS by 8 MiB per iteration, 1,200 MiB over the 150 measured ones. The bound leaves
    room for allocator caches (glibc arenas, TensorFlow's and XLA's pools), which in
    the full suite, after hundreds of other tests, grew RSS by ~64 MiB here."""
    base = np.arange(2 * 1024 * 1024, dtype=np.float32)  # 8 MiB

    def once():
        t = tb.convert_to_tensor(base, copy=True)
        tb.from_dlpack(t.__dlpack__())  # tb → tb, legacy
        tb.from_dlpack(t.__dlpack__(max_version=(1, 0)))  # versioned
        t.__dlpack__()  # never consumed
        t.__dlpack__(max_version=(1, 0), copy=True)  # a copy, never consumed
        x = t.to_tensorflow()
        tb.from_dlpack(tf.experimental.dlpack.to_dlpack(x))
        j = t.to_jax()
        tb.from_dlpack(j)
        np.from_dlpack(t)
        tb.from_dlpack(np.from_dlpack(t))

    for _ in range(20):
        once()
    gc.collect()
    before = rss_bytes()
    for _ in range(150):
        once()
    gc.collect()
    grown = rss_bytes() - before
    assert grown < 320 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB over 150 round trips"


# ---------------------------------------------------------------------------
# TensorFlow and alignment.


def _unaligned_view(n=1000):
    """A float32 NumPy view whose first element is 4-byte aligned but not 64-byte aligned."""
    buf = np.zeros(4 * n + 64, dtype=np.uint8)
    off = next(o for o in range(4, 64, 4) if (buf.ctypes.data + o) % 64)
    v = buf[off:off + 4 * n].view(np.float32)
    v[:] = np.arange(n, dtype=np.float32)
    return v


def test_unaligned_view_is_copied_to_aligned_memory_for_tensorflow():
    v = _unaligned_view()
    t = tb.convert_to_tensor(v, copy=False)
    assert t.is_view and t.data_ptr == v.ctypes.data and t.data_ptr % 64 != 0
    x = t.to_tensorflow()
    addr = tf_address(x)
    assert addr % 64 == 0, "TensorFlow must only ever see 64-byte aligned memory"
    assert addr != t.data_ptr, "so this one was copied"
    assert float(tf.reduce_sum(x)) == float(v.sum())  # TF aborts here on unaligned memory
    np.testing.assert_array_equal(x.numpy(), v)


def test_aligned_contiguous_tensor_is_shared_with_tensorflow():
    t = tb.convert_to_tensor(np.arange(1000, dtype=np.float32))
    assert t.data_ptr % 64 == 0
    x = t.to_tensorflow()
    assert tf_address(x) == t.data_ptr
    assert float(tf.reduce_sum(x)) == float(np.arange(1000).sum())


@pytest.mark.parametrize("index", [np.s_[1:], np.s_[::2], np.s_[::-1]])
def test_slices_reach_tensorflow_aligned_and_contiguous(index):
    a = np.arange(999, dtype=np.float64)
    t = tb.convert_to_tensor(a)[index]
    x = t.to_tensorflow()
    assert tf_address(x) % 64 == 0
    np.testing.assert_array_equal(x.numpy(), a[index])
    assert float(tf.reduce_sum(x)) == float(a[index].sum())


def test_transposed_tensor_to_tensorflow_and_jax():
    a, _ = _aligned_array(64 * 64, np.int32)
    a[:] = np.arange(64 * 64)
    a = a.reshape(64, 64)
    tt = tb.from_dlpack(a.T)  # a transposed view
    assert tt.data_ptr == a.ctypes.data
    x = tt.to_tensorflow()  # TF wants C order: copied
    np.testing.assert_array_equal(x.numpy(), a.T)
    assert tf_address(x) % 64 == 0
    j = tt.to_jax()
    np.testing.assert_array_equal(np.asarray(j), a.T)
    assert j.unsafe_buffer_pointer() == a.ctypes.data, "JAX shares a transposition"
    t = tb.from_dlpack(a)
    np.testing.assert_array_equal(np.asarray(t[:, ::2].to_jax()), a[:, ::2])


def test_unaligned_view_to_jax_and_numpy():
    v = _unaligned_view()
    t = tb.convert_to_tensor(v, copy=False)
    np.testing.assert_array_equal(np.asarray(t.to_jax()), v)  # JAX copies by itself
    m = t.to_numpy()
    assert m.ctypes.data == t.data_ptr
    np.testing.assert_array_equal(m, v)


# ---------------------------------------------------------------------------
# from_dlpack options and errors.


def test_from_dlpack_tensor_and_copy():
    a = np.arange(10, dtype=np.int64)
    t = tb.convert_to_tensor(a)
    assert tb.from_dlpack(t).data_ptr == t.data_ptr
    c = tb.from_dlpack(t, copy=True)
    assert c.data_ptr != t.data_ptr and not c.is_view
    np.testing.assert_array_equal(c.numpy(), a)
    c = tb.from_dlpack(a, copy=True)
    assert c.data_ptr != a.ctypes.data and c.data_ptr % 64 == 0
    np.testing.assert_array_equal(c.numpy(), a)
    assert tb.from_dlpack(a, copy=False).data_ptr == a.ctypes.data
    assert tb.from_dlpack(a, device="cpu").data_ptr == a.ctypes.data
    assert tb.from_dlpack(a, device=(1, 0)).data_ptr == a.ctypes.data


def test_from_dlpack_unaligned_memory():
    buf = np.zeros(4 * 10 + 1, dtype=np.uint8)
    v = buf[1:].view(np.float32)  # misaligned for float32
    assert v.ctypes.data % 4 != 0
    with pytest.raises(ValueError, match="not aligned"):
        tb.from_dlpack(v, copy=False)
    t = tb.from_dlpack(v)  # copy=None: copies
    assert t.data_ptr % 64 == 0 and not t.is_view
    np.testing.assert_array_equal(t.numpy(), v)


def test_legacy_producer_without_max_version():
    a = np.arange(5, dtype=np.uint8)

    class Old:
        def __dlpack__(self, stream=None):
            return a.__dlpack__()

        def __dlpack_device__(self):
            return (1, 0)

    t = tb.from_dlpack(Old())
    assert t.data_ptr == a.ctypes.data
    np.testing.assert_array_equal(t.numpy(), a)


def test_non_cpu_devices_are_refused():
    class OnGpu:
        def __dlpack__(self, **kwargs):
            raise AssertionError("must not be called")

        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(BufferError, match="CUDA:0"):
        tb.from_dlpack(OnGpu())
    with pytest.raises(BufferError, match="cuda"):
        tb.from_dlpack(np.arange(3), device="cuda")

    # A raw capsule describing CUDA memory (made by hand; nothing is dereferenced).
    shape = (ctypes.c_int64 * 1)(4)
    m = DLManagedTensor()
    m.dl_tensor.data = 0x1000
    m.dl_tensor.device = DLDevice(2, 1)
    m.dl_tensor.ndim = 1
    m.dl_tensor.dtype = DLDataType(2, 32, 1)
    m.dl_tensor.shape = ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64))
    name = ctypes.create_string_buffer(b"dltensor")
    cap = _capsule_new(ctypes.addressof(m), ctypes.addressof(name), None)
    with pytest.raises(BufferError, match="CUDA:1"):
        tb.from_dlpack(cap)
    assert capsule_name(cap) == "dltensor", "a refused capsule is not consumed"
    del cap


def test_bad_inputs():
    with pytest.raises(TypeError, match="__dlpack__"):
        tb.from_dlpack([1, 2, 3])
    t = tb.constant([1, 2])
    with pytest.raises(BufferError, match="CUDA"):
        t.__dlpack__(dl_device=(2, 0))
    assert capsule_name(t.__dlpack__(dl_device=(1, 0))) == "dltensor"
    with pytest.raises(ValueError, match="stream"):
        t.__dlpack__(stream=7)
    with pytest.raises(TypeError):
        t.__dlpack__(max_version="1.0")
    with pytest.raises(TypeError):
        t.__dlpack__(None)  # keyword-only
    other = _capsule_new(ctypes.addressof(ctypes.c_int(0)), None, None)
    with pytest.raises(TypeError, match="not a DLPack capsule|without a name"):
        tb.from_dlpack(other)


def test_missing_frameworks_raise_import_error(monkeypatch):
    t = tb.constant([1.0])
    for module, method in [("torch", "to_torch"), ("tensorflow", "to_tensorflow"), ("jax", "to_jax")]:
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(ImportError, match=f"{method}\\(\\) needs {module}"):
            getattr(t, method)()


def test_bfloat16_and_float16_reach_tensorflow_and_jax():
    for name in ("bfloat16", "float16"):
        a = np.array([1.0, -2.5, 65504.0 if name == "float16" else 3.0e38, np.inf], dtype=np_dtype(name))
        t = tb.convert_to_tensor(a)
        x = t.to_tensorflow()
        assert x.dtype == tf_dtype(name)
        same(x.numpy(), a, name)
        assert float(tf.reduce_sum(tf.cast(x[:2], tf.float32))) == -1.5
        j = t.to_jax()
        assert j.dtype == np_dtype(name)
        same(np.asarray(j), a, name)
        assert float(jnp.sum(j[:2].astype(jnp.float32))) == -1.5


def test_bool_and_complex_compute_in_tensorflow():
    b = tb.convert_to_tensor(np.array([True, False, True]))
    assert bool(tf.reduce_any(b.to_tensorflow()))
    assert int(tf.reduce_sum(tf.cast(b.to_tensorflow(), tf.int32))) == 2
    c = tb.convert_to_tensor(np.array([1 + 2j, 3 - 1j], dtype=np.complex64))
    assert complex(tf.reduce_sum(c.to_tensorflow())) == 4 + 1j


# ---------------------------------------------------------------------------
# PyTorch (optional).


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is optional and not installed")


def test_tb_to_torch_and_back(dtype_name):
    torch = _torch()
    if getattr(torch, dtype_name, None) is None:
        pytest.skip(f"this PyTorch has no {dtype_name}")
    a = sample(dtype_name)
    t = tb.convert_to_tensor(a)
    try:
        p = t.to_torch()
    except (RuntimeError, BufferError, TypeError) as e:  # e.g. uint32 in older releases
        pytest.skip(f"this PyTorch cannot import {dtype_name} through DLPack: {e}")
    assert p.dtype == getattr(torch, dtype_name)
    assert p.data_ptr() == t.data_ptr, "zero-copy"
    back = tb.from_dlpack(p)
    assert back.data_ptr == t.data_ptr
    same(back.numpy(), a, dtype_name)


def test_torch_to_tb_bfloat16():
    torch = _torch()
    p = torch.tensor([1.0, -2.5, 3.0]).to(torch.bfloat16)
    t = tb.from_dlpack(p)
    assert t.dtype == tb.bfloat16 and t.data_ptr == p.data_ptr()
    same(t.numpy(), np.array([1.0, -2.5, 3.0], dtype=ml_dtypes.bfloat16), "bfloat16")

