import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tensorbridge as tb
from conftest import NAMES, bits, np_dtype


def test_attributes():
    a = np.random.rand(100, 100)
    t = tb.convert_to_tensor(a)
    assert t.shape == (100, 100) and t.ndim == 2 and t.size == 10_000 and len(t) == 100
    assert t.nbytes == a.nbytes == t.size * t.dtype.size  # the first article's formula
    with pytest.raises(TypeError, match="0-d"):
        len(tb.constant(1.0))


def test_numpy_is_zero_copy_and_read_only(dtype_name):
    t = tb.convert_to_tensor(np.ones((4, 5), np_dtype(dtype_name)))
    a = t.numpy()
    assert a.dtype == np_dtype(dtype_name) and a.shape == (4, 5)
    assert a.ctypes.data == t.data_ptr
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0] = 0
    b = np.asarray(t)
    assert np.shares_memory(a, b)
    assert a.ctypes.data % 64 == 0  # owned buffers are 64-byte aligned
    del t
    assert bits(a) == bits(np.ones((4, 5), np_dtype(dtype_name)))  # the array keeps the memory alive


def test_reshape():
    t = tb.convert_to_tensor(np.arange(12, dtype=np.int32))
    r = t.reshape((3, 4))
    assert r.shape == (3, 4) and r.is_view and np.shares_memory(r.numpy(), t.numpy())
    assert t.reshape(2, -1).shape == (2, 6)
    assert t.reshape([-1]).shape == (12,)
    with pytest.raises(ValueError, match="reshape"):
        t.reshape(5, 3)
    s = r[:, ::2].reshape(-1)  # non-contiguous: a copy
    assert s.numpy().tolist() == [0, 2, 4, 6, 8, 10]


index_item = st.one_of(
    st.integers(-6, 5),
    st.builds(slice, st.none() | st.integers(-8, 8), st.none() | st.integers(-8, 8), st.none() | st.integers(-3, 3).filter(bool)),
    st.just(None),
    st.just(Ellipsis),
)


@settings(max_examples=300, deadline=None)
@given(key=st.lists(index_item, max_size=4))
def test_basic_indexing_matches_numpy(key):
    a = np.arange(5 * 6 * 4, dtype=np.float32).reshape(5, 6, 4)
    t = tb.convert_to_tensor(a)
    key = tuple(key)
    try:
        expected = a[key]
    except IndexError:
        with pytest.raises(IndexError):
            t[key]
        return
    got = t[key]
    assert isinstance(got, tb.Tensor)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.numpy(), expected)
    if got.size:
        assert np.shares_memory(got.numpy(), t.numpy())  # a view, no copy


def test_index_errors():
    t = tb.convert_to_tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match="out of bounds"):
        t[2]
    with pytest.raises(IndexError, match="too many"):
        t[0, 0, 0]
    with pytest.raises(IndexError):
        t["a"]


@pytest.mark.parametrize(
    "value",
    [
        np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32), np.arange(3), np.array(2.5), np.array([]),
        np.arange(2000).reshape(2, 1000), np.linspace(0, 1, 30), np.array([1e10, 1.5]), np.array([np.nan, -np.inf, 1.0]),
        np.array([True, False]), np.array([1 + 2j, -3.5j]), np.arange(24).reshape(2, 3, 4).astype(np.float16),
    ],
)
def test_str_is_tensorflow_format_with_numpy_numbers(value):
    t = tb.convert_to_tensor(value)
    text = str(value)
    shape = "(" + ", ".join(map(str, value.shape)) + ("," if value.ndim == 1 else "") + ")"
    expected = f"tb.Tensor({chr(10) if chr(10) in text else ''}{text}, shape={shape}, dtype={t.dtype})"
    assert str(t) == repr(t) == expected


def test_str_example_from_issue():
    t = tb.convert_to_tensor(np.array([[1, 2, 3], [4, 5, 6]]), dtype=tb.float32)
    assert str(t) == "tb.Tensor(\n[[1. 2. 3.]\n [4. 5. 6.]], shape=(2, 3), dtype=float32)"


def test_astype_and_cast_agree():
    a = np.linspace(-3, 3, 13)
    t = tb.convert_to_tensor(a)
    for name in NAMES:
        assert bits(t.astype(name).numpy()) == bits(tb.cast(a, name).numpy())


def test_truthiness_follows_numpy():
    # Issue 8: bool() of any non-empty tensor used to be True.
    for value in ([False], [0.0], [True], [2], [[0]], 0, 1.5, 0j, 1j):
        assert bool(tb.constant(value)) == bool(np.array(value)), value
    assert not tb.constant([False]) and tb.constant([True])
    for value in ([1, 2], [[True, True]]):
        with pytest.raises(ValueError, match="ambiguous"):
            bool(tb.constant(value))
    with pytest.raises(ValueError, match="empty"):
        bool(tb.constant(np.zeros((0, 2))))
    assert bool(tb.constant(float("nan"))) is True  # as NumPy


def test_scalar_conversions_of_0d_tensors():
    assert int(tb.constant(7)) == 7 and float(tb.constant(2.5)) == 2.5
    assert int(tb.constant(-2.7)) == int(np.array(-2.7)) == -2
    assert int(tb.constant(np.uint64(2**64 - 1))) == 2**64 - 1
    assert int(tb.constant(np.int64(-(2**63)))) == -(2**63)
    assert float(tb.constant(np.float16(0.1))) == float(np.float16(0.1))
    assert float(tb.constant(True)) == 1.0 and int(tb.constant(False)) == 0
    assert float(tb.cast(1.5, tb.bfloat16)) == 1.5
    assert [10, 20, 30][tb.constant(np.int8(1))] == 20  # __index__
    import operator

    for bad in (tb.constant(1.0), tb.constant(True), tb.constant([1])):
        with pytest.raises(TypeError):
            operator.index(bad)
    for f in (int, float):
        with pytest.raises(TypeError, match="0-d"):
            f(tb.constant([1]))
        with pytest.raises(TypeError, match="complex"):
            f(tb.constant(1 + 2j))
    with pytest.raises(ValueError):
        int(tb.constant(float("nan")))
    with pytest.raises(OverflowError):
        int(tb.constant(float("inf")))


def test_str_is_the_core_formatter():
    t = tb.constant([[1.5, 2.0], [3.0, -0.0]])
    assert str(t) == repr(t) == "tb.Tensor(\n[[ 1.5  2. ]\n [ 3.  -0. ]], shape=(2, 2), dtype=float32)"
    assert str(tb.constant(3)) == "tb.Tensor(3, shape=(), dtype=int32)"
    assert not hasattr(t, "_rust_str")


def test_complex_of_0d_tensor_like_numpy():
    for a in (np.array(1.5 - 2j, np.complex64), np.array(3, np.int16), np.array(True)):
        assert complex(tb.convert_to_tensor(a)) == complex(a)
    with pytest.raises(TypeError):
        complex(tb.constant([1.0, 2.0]))
