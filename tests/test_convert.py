import gc
import weakref

import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb
from conftest import NAMES, bits, np_dtype


def sample(name, shape=(3, 4)):
    rng = np.random.default_rng(1)
    return (rng.standard_normal(shape) * 100).astype(np_dtype(name))


def test_numpy_arrays_keep_dtype_and_values(dtype_name):
    a = sample(dtype_name)
    t = tb.convert_to_tensor(a)
    assert t.dtype == dtype_name and t.shape == a.shape
    assert bits(t.numpy()) == bits(a)
    assert t.numpy().dtype == a.dtype


@pytest.mark.parametrize(
    "value, dtype, shape",
    [
        (True, "bool", ()), ([True, False], "bool", (2,)), (1, "int32", ()), ([1, 2, 3], "int32", (3,)),
        ([[1, 2], [3, 2**31]], "int64", (2, 2)), ([-(2**31)], "int32", (1,)), (1.5, "float32", ()),
        ([1, 2.5], "float32", (2,)), (1j, "complex128", ()), ([1, 2j], "complex128", (2,)),
        ([], "float32", (0,)), ([[], []], "float32", (2, 0)), ((1, 2), "int32", (2,)),
        (np.float64(2.5), "float64", ()), (np.int16(3), "int16", ()), ([np.float64(1.5)], "float32", (1,)),
    ],
)
def test_python_values_follow_tensorflow_inference(value, dtype, shape):
    t = tb.convert_to_tensor(value)
    assert t.dtype == dtype and t.shape == shape
    np.testing.assert_array_equal(t.numpy(), np.array(value, dtype=np_dtype(dtype)))


def test_python_int_out_of_int64():
    with pytest.raises(ValueError, match="int64"):
        tb.convert_to_tensor([1, 2**64])


@pytest.mark.parametrize(
    "value, match",
    [
        ([[1, 2], [3]], r"\[1\].*length 1.*expected 2"),
        ([[1, 2], 3], r"\[1\]"),
        ([1, [2, 3]], r"\[1\]"),
        ([[[1], [2]], [[3], [4, 5]]], r"\[1\]\[1\]"),
    ],
)
def test_ragged_lists_name_the_path(value, match):
    with pytest.raises(ValueError, match=match):
        tb.convert_to_tensor(value)


@pytest.mark.parametrize(
    "arr, word",
    [
        (np.array([object()]), "object"), (np.array(["ab"]), "string"), (np.array([b"ab"]), "bytes"),
        (np.zeros(2, dtype=[("a", "i4"), ("b", "f4")]), "structured"), (np.array(["2020-01-01"], "M8[D]"), "datetime"),
        (np.array([1], "m8[s]"), "timedelta"),
    ],
)
def test_unsupported_arrays_raise_type_error_naming_dtype(arr, word):
    with pytest.raises(TypeError, match=word) as e:
        tb.convert_to_tensor(arr)
    assert arr.dtype.str in str(e.value)


def test_unsupported_python_objects():
    with pytest.raises(TypeError, match=r"\[1\].*str"):
        tb.convert_to_tensor([1, "a"])
    with pytest.raises(TypeError, match="dict"):
        tb.convert_to_tensor({"a": 1})


def test_default_copy_is_independent_of_source():
    a = np.arange(6, dtype=np.float32)
    t = tb.convert_to_tensor(a)
    a[0] = 100
    assert t.numpy()[0] == 0
    assert not t.is_view and not np.shares_memory(t.numpy(), a)


def test_copy_true_is_fresh_even_for_tensors():
    a = np.arange(6, dtype=np.float32)
    t = tb.convert_to_tensor(a, copy=False)
    c = tb.convert_to_tensor(t, copy=True)
    assert not c.is_view and not np.shares_memory(c.numpy(), a)
    assert tb.convert_to_tensor(t) is t  # tensors are immutable: no copy needed


def test_copy_false_is_a_view_that_keeps_the_source_alive():
    a = np.arange(1_000_000, dtype=np.float64)
    ref = weakref.ref(a)
    t = tb.convert_to_tensor(a, copy=False)
    assert t.is_view and np.shares_memory(t.numpy(), a)
    a[3] = -1
    assert t.numpy()[3] == -1
    del a
    gc.collect()
    assert ref() is not None  # kept alive by the tensor
    assert t.numpy()[3] == -1 and t.numpy()[999_999] == 999_999
    view = t[10:20]
    del t
    gc.collect()
    assert view.numpy()[0] == 10
    del view
    gc.collect()
    assert ref() is None  # released with the last tensor


def test_copy_false_from_buffers():
    buf = bytearray(np.arange(4, dtype=np.int32).tobytes())
    t = tb.convert_to_tensor(memoryview(buf).cast("i"), copy=False)
    assert t.dtype == tb.int32 and t.is_view
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3])


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda: np.arange(6.0), "dtype changes"),
        (lambda: np.arange(12.0, dtype=np.float32)[::2], "not C-contiguous"),
        (lambda: np.asfortranarray(np.ones((3, 4), np.float32)), "not C-contiguous"),
        (lambda: np.arange(6, dtype=">f4"), "byte-swapped"),
        (lambda: np.frombuffer(b"\0" * 25, np.float32, count=6, offset=1), "not aligned"),
        (lambda: [1.0, 2.0], "Python values"),
    ],
)
def test_copy_false_refuses_with_reason(make, why):
    dtype = tb.float64 if why == "dtype changes" else None
    if dtype is not None:
        dtype = tb.float32
    with pytest.raises(ValueError, match=why):
        tb.convert_to_tensor(make(), dtype=dtype, copy=False)


def test_layouts_and_rank_32():
    a = np.arange(2**5, dtype=np.int16).reshape((2,) * 5 + (1,) * 27)
    t = tb.convert_to_tensor(a)
    assert t.ndim == 32 and t.shape == a.shape
    for v in [a.T, a[::-1], np.array(3.5), np.zeros((0, 3)), np.arange(10, dtype=">i4")]:
        np.testing.assert_array_equal(tb.convert_to_tensor(v).numpy(), v)


def test_array_interface_and_buffer_objects():
    class Wrapped:
        def __init__(self, a):
            self.a = a
            self.__array_interface__ = a.__array_interface__

    a = np.arange(5, dtype=np.uint16)
    np.testing.assert_array_equal(tb.convert_to_tensor(Wrapped(a)).numpy(), a)
    assert tb.convert_to_tensor(b"\x01\x02").dtype == tb.uint8


def test_dtype_argument_casts_with_mode():
    assert tb.convert_to_tensor(np.array([1.7, -1.7]), dtype=tb.int32).numpy().tolist() == [1, -1]
    with pytest.raises(TypeError, match="float64.*int32"):
        tb.convert_to_tensor(np.array([1.5]), dtype="int32", casting="same_kind")
    with pytest.raises(ValueError, match="index"):
        tb.convert_to_tensor(np.array([1.5]), dtype="int32", casting="checked")


def test_constant():
    a = np.arange(6, dtype=np.int64)
    c = tb.constant(a, dtype=tb.float32)
    a[0] = 9
    assert c.numpy().tolist() == [0, 1, 2, 3, 4, 5] and c.dtype == tb.float32
    assert tb.constant(a, shape=(2, 3)).shape == (2, 3)
    f = tb.constant(7, shape=[2, 2])
    assert f.numpy().tolist() == [[7, 7], [7, 7]] and f.dtype == tb.int32
    with pytest.raises(ValueError, match="shape"):
        tb.constant([1, 2, 3], shape=(2, 2))
    assert not tb.constant(tb.convert_to_tensor(a, copy=False)).is_view


def test_constant_shape_must_be_integers():
    # Issue 8: shape=(3.5,) silently gave shape (3,); TensorFlow raises TypeError.
    with pytest.raises(TypeError):
        tb.constant(1.0, shape=(3.5,))
    with pytest.raises(TypeError):
        tb.constant([1.0, 2.0], shape=(2.0,))
    assert tb.constant(1.0, shape=(np.int64(3),)).shape == (3,)


def test_only_real_arrays_reach_the_binding():
    # The binding reads memory through the buffer protocol of a numpy.ndarray only.
    with pytest.raises(TypeError, match="numpy.ndarray"):
        tb._core.from_array([1, 2, 3])
    a = np.arange(6, dtype=np.float32)[::2]
    t = tb._core.from_array(a)
    np.testing.assert_array_equal(t.numpy(), a)
