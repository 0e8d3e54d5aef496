"""Arrow interop (tensorbridge.arrow): round trips against pyarrow, zero-copy by addresses."""

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")

import tensorbridge as tb  # noqa: E402
from tensorbridge.arrow import to_arrow  # noqa: E402

from conftest import NAMES, np_dtype  # noqa: E402

ARROW_NAMES = [n for n in NAMES if not n.startswith("complex")]


def sample(name, shape, seed=0):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if name == "bool":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    if name in ("float16", "float32", "float64", "bfloat16"):
        return rng.standard_normal(n).astype(np.float32).astype(np_dtype(name)).reshape(shape)
    info = np.iinfo(name)
    return rng.integers(info.min, info.max, n, dtype=name, endpoint=True).reshape(shape)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


def value_address(arr):
    """Address of the first value of an Arrow array (through its storage), honouring offsets."""
    while isinstance(arr.type, pa.BaseExtensionType) or pa.types.is_fixed_size_list(arr.type):
        arr = arr.storage if isinstance(arr.type, pa.BaseExtensionType) else arr.flatten()
    return arr.buffers()[1].address + arr.offset * arr.type.bit_width // 8


def test_import_tensorbridge_does_not_import_pyarrow_or_ray():
    code = ("import sys, tensorbridge as tb; assert 'pyarrow' not in sys.modules, 'pyarrow'; "
            "assert 'ray' not in sys.modules, 'ray'; tb.from_arrow, tb.ray.read_npy, tb.data.Dataset.from_ray; "
            "assert 'ray' not in sys.modules and 'pyarrow' not in sys.modules, 'imported on access'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ARROW_NAMES)
@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 2, 3), (0, 2, 2)])
def test_round_trip_every_dtype(name, shape):
    a = sample(name, shape)
    t = tb.convert_to_tensor(a)
    arr = to_arrow(t)
    if len(shape) >= 2:
        assert isinstance(arr.type, pa.FixedShapeTensorType)
        assert list(arr.type.shape) == list(shape[1:])
        # pyarrow's own reading agrees with NumPy (its to_numpy_ndarray refuses bool)
        got = (arr.storage.flatten().to_numpy(zero_copy_only=False).reshape(shape) if name == "bool"
               else arr.to_numpy_ndarray())
        if name == "bfloat16":
            got = got.view(ml_dtypes.bfloat16)
        assert got.shape == a.shape and bits(got) == bits(a)
    else:
        got = arr.to_numpy(zero_copy_only=False)
        if name == "bfloat16":
            got = got.view(ml_dtypes.bfloat16)
        assert bits(got) == bits(a)
    back = tb.from_arrow(arr, dtype="bfloat16" if name == "bfloat16" else None)
    assert back.dtype == name and back.shape == a.shape
    assert bits(back.numpy()) == bits(a)
    if name != "bool" and a.size:
        # zero-copy both ways: the same memory throughout
        assert value_address(arr) == t.data_ptr
        assert back.data_ptr == t.data_ptr


@pytest.mark.parametrize("name", ARROW_NAMES)
def test_from_pyarrow_built_arrays(name):
    """Arrays that pyarrow builds itself (not from our memory)."""
    a = sample(name, (6, 2, 3), seed=1)
    store = a.view(np.uint16) if name == "bfloat16" else a
    prim = pa.array(store.reshape(-1))
    ext = pa.FixedShapeTensorArray.from_numpy_ndarray(store)
    fsl = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(prim, 3), 2)
    kw = {"dtype": "bfloat16"} if name == "bfloat16" else {}
    for arr, want in ((prim, a.reshape(-1)), (ext, a), (fsl, a)):
        t = tb.from_arrow(arr, **kw)
        assert t.shape == want.shape and t.dtype == name
        assert bits(t.numpy()) == bits(want)
        if name != "bool":
            assert t.data_ptr == value_address(arr)


@pytest.mark.parametrize("name", ["uint8", "float16", "int64", "bool"])
def test_sliced_arrays_honour_offsets(name):
    a = sample(name, (10, 4, 2), seed=2)
    ext = pa.FixedShapeTensorArray.from_numpy_ndarray(a)
    fsl = ext.storage
    prim = pa.array(a.reshape(-1))
    for arr, want in ((ext[3:8], a[3:8]), (fsl[2:9], a[2:9].reshape(7, 8)), (prim[5:31], a.reshape(-1)[5:31])):
        t = tb.from_arrow(arr)
        assert t.shape == want.shape
        assert bits(t.numpy()) == bits(want)
        if name != "bool":
            assert t.data_ptr == value_address(arr)  # still zero-copy at the offset
    # chunked arrays: one chunk is zero-copy, several are concatenated
    ch = pa.chunked_array([ext[0:3], ext[3:10]])
    assert bits(tb.from_arrow(ch).numpy()) == bits(a)
    one = pa.chunked_array([ext[2:5]])
    assert bits(tb.from_arrow(one).numpy()) == bits(a[2:5])


def test_nulls_are_refused():
    with pytest.raises(ValueError, match=r"1 null.*index 2.*fill_null"):
        tb.from_arrow(pa.array([1.0, 2.0, None, 4.0]))
    storage = pa.array([[1, 2], None, [5, 6]], type=pa.list_(pa.int32(), 2))
    with pytest.raises(ValueError, match="null"):
        tb.from_arrow(storage)
    with pytest.raises(ValueError, match="null"):
        tb.from_arrow(pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(pa.int32(), [2]), storage))
    inner_null = pa.FixedSizeListArray.from_arrays(pa.array([1, None, 3, 4], pa.int8()), 2)
    with pytest.raises(ValueError, match="null"):
        tb.from_arrow(inner_null)
    # a slice without the null is fine
    assert tb.from_arrow(pa.array([1.0, 2.0, None, 4.0])[:2]).numpy().tolist() == [1.0, 2.0]


def test_permuted_fixed_shape_tensor():
    # pyarrow builds a permuted type from a transposed array (shape = physical order)
    physical = sample("int32", (3, 2, 4, 5), seed=3)
    logical = physical.transpose(0, 2, 3, 1)
    arr = pa.FixedShapeTensorArray.from_numpy_ndarray(logical)
    assert list(arr.type.permutation) != [0, 1, 2]
    t = tb.from_arrow(arr)
    assert t.shape == logical.shape == (3, 4, 5, 2)
    assert np.array_equal(t.numpy(), logical)


def test_capsule_interface_and_errors():
    class Wrapped:
        def __init__(self, arr):
            self.arr = arr

        def __arrow_c_array__(self, requested_schema=None):
            return self.arr.__arrow_c_array__(requested_schema)

    a = np.arange(12, dtype=np.float32)
    arr = pa.array(a)
    t = tb.from_arrow(Wrapped(arr))
    assert np.array_equal(t.numpy(), a) and t.data_ptr == value_address(arr)
    with pytest.raises(TypeError, match="has no tensor dtype"):
        tb.from_arrow(pa.array(["a", "b"]))
    with pytest.raises(TypeError, match="complex"):
        to_arrow(tb.convert_to_tensor(np.ones((2, 2), np.complex64)))
    with pytest.raises(ValueError, match="0-d"):
        to_arrow(tb.convert_to_tensor(np.float32(1)))
    with pytest.raises(TypeError, match="pyarrow Array"):
        tb.from_arrow([1, 2, 3])


def test_to_arrow_keeps_tensor_alive_and_copies_strided():
    import gc

    t = tb.convert_to_tensor(np.arange(24, dtype=np.int16).reshape(6, 4))
    arr = to_arrow(t)
    ptr = t.data_ptr
    del t
    gc.collect()
    assert value_address(arr) == ptr
    assert arr.to_numpy_ndarray().tolist() == np.arange(24).reshape(6, 4).tolist()
    strided = tb.convert_to_tensor(np.arange(24, dtype=np.int16).reshape(6, 4))[:, ::2]
    assert to_arrow(strided).to_numpy_ndarray().tolist() == np.arange(24).reshape(6, 4)[:, ::2].tolist()


def test_tensor_to_arrow_method_is_the_module_function():
    t = tb.convert_to_tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    a = t.to_arrow()
    assert a.equals(to_arrow(t))
    np.testing.assert_array_equal(a.to_numpy_ndarray(), t.numpy())
