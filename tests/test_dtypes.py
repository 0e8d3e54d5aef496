import pickle

import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb
from conftest import NAMES, np_dtype


def test_all_fifteen_exported():
    for name in NAMES:
        d = getattr(tb, name)
        assert d.name == name == str(d)
        assert d.size == d.itemsize == np_dtype(name).itemsize
        assert tb.dtype(d) is d
        assert hash(d) == hash(tb.dtype(name))
        assert pickle.loads(pickle.dumps(d)) is d


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.float32, tb.float32), (np.dtype("<f4"), tb.float32), (np.dtype(">i8"), tb.int64),
        (ml_dtypes.bfloat16, tb.bfloat16), (np.dtype(ml_dtypes.bfloat16), tb.bfloat16),
        ("float32", tb.float32), ("f4", tb.float32), ("<f4", tb.float32), (">i8", tb.int64),
        ("bfloat16", tb.bfloat16), ("bool", tb.bool), ("?", tb.bool), ("c16", tb.complex128),
        (np.bool_, tb.bool), (np.uint16, tb.uint16), (np.complex64, tb.complex64), (float, tb.float64),
    ],
)
def test_dtype_reads_dtype_likes(value, expected):
    assert tb.dtype(value) is expected


def test_dtype_reads_tensorflow_dtypes():
    tf = pytest.importorskip("tensorflow")
    for name in NAMES:
        assert tb.dtype(getattr(tf, name)) is getattr(tb, name)
    assert tb.float32 == tf.float32


@pytest.mark.parametrize("bad", ["float128", "object", "V2", "<float32", 3, None, object(), np.dtype("U3"), np.dtype("O"), np.dtype("M8[s]"), [1]])
def test_dtype_rejects_with_type_error_naming_value(bad):
    with pytest.raises(TypeError) as e:
        tb.dtype(bad)
    assert repr(bad)[:8] in str(e.value) or str(getattr(bad, "str", bad))[:3] in str(e.value)


def test_properties_match_numpy_and_tf():
    for name in NAMES:
        d, n = getattr(tb, name), np_dtype(name)
        assert d.is_floating == (n.kind == "f" or name == "bfloat16")
        assert d.is_complex == (n.kind == "c")
        assert d.is_integer == (n.kind in "iu")
        assert d.is_signed == (n.kind in "ifc" or name == "bfloat16")
        if n.kind in "iu":
            assert (d.min, d.max) == (int(np.iinfo(n).min), int(np.iinfo(n).max))
        elif d.is_floating:
            fi = ml_dtypes.finfo(n) if name == "bfloat16" else np.finfo(n)
            assert (d.min, d.max) == (float(fi.min), float(fi.max))
        elif d.is_complex:
            with pytest.raises(TypeError):
                d.min
    assert (tb.bool.min, tb.bool.max) == (False, True)


def test_equality():
    assert tb.float32 == "float32" and tb.float32 == np.float32 and tb.float32 == np.dtype("f4")
    assert tb.float32 != "float64" and tb.float32 != tb.float64
    assert tb.float32 != "not a dtype" and tb.float32 != 3
    assert len({tb.float32, tb.dtype("f4"), tb.dtype(np.float32)}) == 1
