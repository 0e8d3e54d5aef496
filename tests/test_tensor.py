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
