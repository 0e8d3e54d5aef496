import warnings

import numpy as np
import pytest

import tensorbridge as tb
from conftest import NAMES, np_dtype


@pytest.mark.parametrize("mode", ["safe", "same_kind"])
def test_can_cast_tables_match_numpy(mode):
    for a in NAMES:
        for b in NAMES:
            expected = np.can_cast(np_dtype(a), np_dtype(b), mode)
            src = np.zeros(2, np_dtype(a))
            if expected:
                assert tb.cast(src, b, casting=mode).dtype == b
            else:
                with pytest.raises(TypeError, match=f"{a}.*{b}"):
                    tb.cast(src, b, casting=mode)


def test_unknown_mode_lists_valid_ones():
    with pytest.raises(ValueError) as e:
        tb.cast(np.zeros(2), "float32", casting="yolo")
    for m in tb.CASTING_MODES:
        assert m in str(e.value)
    assert "yolo" in str(e.value)


@pytest.mark.parametrize(
    "src, dst, index, value",
    [
        (np.array([1, 2, 300], np.int32), "uint8", "[2]", "300"),
        (np.array([[1.0, 2.0], [np.nan, 1.0]]), "int64", r"\[1, 0\]", "NaN"),
        (np.array([0.0, np.inf]), "int32", r"\[1\]", "inf"),
        (np.array([1.0, 2.5]), "int16", r"\[1\]", "2.5"),
        (np.array([1e39]), "float32", r"\[0\]", "1e39"),
        (np.array([70000.0], np.float32), "float16", r"\[0\]", "70000"),
        (np.array([-1], np.int8), "uint64", r"\[0\]", "-1"),
        (np.array([2], np.int8), "bool", r"\[0\]", "2"),
        (np.array([1 + 1j]), "float64", r"\[0\]", "1"),
    ],
)
def test_checked_names_first_offender(src, dst, index, value):
    with pytest.raises(ValueError, match=index) as e:
        tb.cast(src, dst, casting="checked")
    assert value.lower() in str(e.value).lower()


def test_checked_passes_values_that_survive():
    out = tb.cast(np.array([1.0, 3.0, 255.0]), "uint8", casting="checked").numpy()
    assert out.tolist() == [1, 3, 255]
    # NaN and inf survive into floats; rounding is allowed.
    out = tb.cast(np.array([np.nan, np.inf, 0.1]), "float16", casting="checked").numpy()
    assert np.isnan(out[0]) and np.isinf(out[1])
    assert tb.cast(np.array([2**62]), "float32", casting="checked").numpy()[0] == np.float32(2**62)


@pytest.mark.parametrize("dst", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"])
def test_saturate_into_integers(dst):
    info = np.iinfo(dst)
    src = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 3.99, -3.99, 0.5, float(info.max), float(info.min)])
    got = tb.cast(src, dst, casting="saturate").numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = np.nan_to_num(np.trunc(src), nan=0.0, posinf=np.inf, neginf=-np.inf)
    expected = [int(info.max) if v >= info.max else int(info.min) if v <= info.min else int(v) for v in x]
    assert got.tolist() == expected
    ints = np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max])
    assert tb.cast(ints, dst, casting="saturate").numpy().tolist() == np.clip(ints.astype(object), info.min, info.max).tolist()


def test_saturate_into_floats():
    got = tb.cast(np.array([1e6, -1e6, np.inf, np.nan, 1.0]), "float16", casting="saturate").numpy()
    assert got[0] == np.float16(65504) and got[1] == -np.float16(65504) and np.isinf(got[2]) and np.isnan(got[3])
    assert tb.cast(np.array([1e300]), "float32", casting="saturate").numpy()[0] == np.finfo(np.float32).max
    assert tb.cast(np.array([np.nan, 2.0, 0.0]), "bool", casting="saturate").numpy().tolist() == [False, True, False]


def test_cast_prints_nothing(capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tb.cast(np.array([np.nan, np.inf, 1e20]), "int32")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
