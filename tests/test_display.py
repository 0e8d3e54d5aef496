"""`str(tensor)` is the core formatter's text, checked against NumPy's own printing.

The expected text is TensorFlow's `str(tensor)` layout around NumPy's `str()` of the
values under the default print options (bfloat16: `str()` of an `ml_dtypes` array):

    tb.Tensor(<numpy text>, shape=<shape>, dtype=<name>)

with a newline after `tb.Tensor(` when the NumPy text spans several lines. NumPy is
the oracle: every value, shape and layout hypothesis finds must print the same.
"""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tensorbridge as tb

# NumPy's default print options (precision 8, threshold 1000, edge items 3, line width 75).
DEFAULTS = dict(
    precision=8, threshold=1000, edgeitems=3, linewidth=75, suppress=False, nanstr="nan",
    infstr="inf", sign="-", floatmode="maxprec", formatter=None, legacy=False,
)

INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOATS = ["float16", "float32", "float64"]
COMPLEX = {"complex64": "float32", "complex128": "float64"}

# Shapes: 0-d, empty, and up to four axes, rows long enough to wrap at 75 columns.
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6) | hnp.array_shapes(
    min_dims=1, max_dims=2, min_side=0, max_side=40
)

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def numpy_text(a, name):
    """TensorFlow's `str(tensor)` around NumPy's `str()` of `a` (the oracle)."""
    with np.printoptions(**DEFAULTS):
        text = str(a)
    shape = "(" + ", ".join(map(str, a.shape)) + ("," if a.ndim == 1 else "") + ")"
    newline = "\n" if "\n" in text else ""
    return f"tb.Tensor({newline}{text}, shape={shape}, dtype={name})"


def check(a, name):
    t = tb.convert_to_tensor(a)
    assert str(t.dtype) == name
    expected = numpy_text(a, name)
    assert str(t) == expected
    assert repr(t) == expected


def special_floats(name):
    """Edge values of a float dtype: NaN, infinities, signed zeros, the smallest
    subnormal and normal, the largest finite, the machine epsilon."""
    info = ml_dtypes.finfo(np_dtype(name)) if name == "bfloat16" else np.finfo(name)
    return [
        np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, float(info.smallest_subnormal),
        -float(info.smallest_subnormal), float(info.smallest_normal), float(info.max),
        -float(info.max), float(info.eps), 1.0, -1.0, 0.5, 0.1, 1e-4, 1e-5, 1e3, 1e6, 1e8,
        1e16, 1e-8, 0.0001, 999.9, 1000.0, 123456.789,
    ]


def float_elements(name):
    """Values of one float dtype: anything representable, edge values, short decimals
    (positional notation), and values of mixed magnitude (scientific notation)."""
    width = {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}[name]
    decimals = st.builds(
        lambda m, e: m / 10.0**e, st.integers(-(10**6), 10**6), st.integers(0, 8)
    )
    powers = st.builds(
        lambda m, e: m * 10.0**e, st.integers(-9, 9), st.integers(-12, 12)
    )
    return st.one_of(
        st.floats(width=width),
        st.sampled_from(special_floats(name)),
        decimals,
        powers,
    )


def float_arrays(name, shapes):
    """Arrays of a float dtype (values rounded to it from float64)."""
    return hnp.arrays(np.float64, shapes, elements=float_elements(name)).map(
        lambda a: _astype(a, name)
    )


def _astype(a, name):
    with np.errstate(over="ignore", invalid="ignore"):
        return a.astype(np_dtype(name))


@EXAMPLES
@given(st.data())
def test_bool(data):
    a = data.draw(hnp.arrays(np.bool_, SHAPES))
    check(a, "bool")


@EXAMPLES
@given(st.sampled_from(INTS), st.data())
def test_integers(name, data):
    dtype = np.dtype(name)
    info = np.iinfo(dtype)
    elements = st.one_of(
        st.integers(int(info.min), int(info.max)),
        st.sampled_from([int(info.min), int(info.max), 0, 1, -1 if info.min < 0 else 2]),
        st.integers(-100, 100).filter(lambda v: info.min <= v <= info.max),
    )
    a = data.draw(hnp.arrays(dtype, SHAPES, elements=elements))
    check(a, name)


@EXAMPLES
@given(st.sampled_from(FLOATS), st.data())
def test_floats(name, data):
    a = data.draw(float_arrays(name, SHAPES))
    check(a, name)


@EXAMPLES
@given(st.data())
def test_bfloat16(data):
    a = data.draw(float_arrays("bfloat16", SHAPES))
    check(a, "bfloat16")


@EXAMPLES
@given(st.sampled_from(sorted(COMPLEX)), st.data())
def test_complex(name, data):
    part = COMPLEX[name]
    shape = data.draw(SHAPES)
    re = data.draw(float_arrays(part, st.just(shape)))
    im = data.draw(float_arrays(part, st.just(shape)))
    a = np.empty(shape, name)
    a.real = re
    a.imag = im
    check(a, name)


def thresholds(name):
    """Values where NumPy's scalar `str()` and array notation change (1e-4, 1e3 for
    float16, 1e6 for float32, 1e8, 1e16 for float64) and their neighbours."""
    out = []
    for t in [1e-4, 1e3, 1e6, 1e8, 1e16]:
        x = _astype(np.array([t, -t]), name)
        out += [x[0], x[1]]
        if name != "bfloat16":
            out += [np.nextafter(x[0], np.inf), np.nextafter(x[0], -np.inf)]
    return [float(np.float64(v)) for v in out]


@EXAMPLES
@given(st.sampled_from([*FLOATS, "bfloat16", *COMPLEX]), st.data())
def test_zero_d(name, data):
    """A 0-d tensor prints like NumPy's scalar `str()`."""
    part = COMPLEX.get(name, name)
    elements = st.one_of(float_elements(part), st.sampled_from(thresholds(part)))
    if name in COMPLEX:
        a = np.empty((), name)
        a.real = _astype(np.array(data.draw(elements)), part)
        a.imag = _astype(np.array(data.draw(st.one_of(st.just(0.0), elements))), part)
    else:
        a = _astype(np.array(data.draw(elements)), name)
    check(a, name)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["bool", *INTS, *FLOATS, "bfloat16", *COMPLEX]),
    st.sampled_from([(1001,), (2, 501), (1, 1001), (3, 400), (1001, 1), (11, 10, 10), (2, 3, 4, 50)]),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8),
    st.integers(0, 2**32 - 1),
)
def test_summarised(name, shape, specials, seed):
    """More than 1000 elements: NumPy prints the first and last three of each axis."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    kind = rng.integers(3)
    if kind == 0:
        values = rng.standard_normal(size) * 10.0 ** rng.integers(-6, 7)
    elif kind == 1:
        values = rng.integers(-1000, 1000, size).astype(np.float64)
    else:
        values = np.round(rng.uniform(-50, 50, size), rng.integers(0, 4))
    # Sprinkle the edge values where summarisation looks (and elsewhere).
    where = rng.integers(0, size, len(specials) * 4)
    values[where] = np.resize(np.array(specials), len(where))
    values = values.reshape(shape)
    if name == "bool":
        a = values > 0
    elif name in INTS:
        info = np.iinfo(name)
        finite = np.nan_to_num(values, nan=0.0, posinf=info.max, neginf=info.min)
        with np.errstate(invalid="ignore"):
            a = np.clip(finite, info.min, info.max).astype(name)
    elif name in COMPLEX:
        a = np.empty(shape, name)
        a.real = _astype(values, COMPLEX[name])
        a.imag = _astype(np.roll(values, 1), COMPLEX[name])
    else:
        a = _astype(values, name)
    check(a, name)


@pytest.mark.parametrize("name", ["bool", *INTS, *FLOATS, "bfloat16", *COMPLEX])
def test_non_contiguous_tensors(name):
    """Transposed, strided and reversed tensors print their logical order."""
    values = np.arange(-12, 12).reshape(4, 6)
    if name == "bool":
        a = values % 3 == 0
    elif name in INTS:
        a = values.astype(name)
    else:
        a = _astype(values / 4, name)
    t = tb.convert_to_tensor(a, copy=False)
    check(a, name)
    for index in [(slice(None, None, 2), slice(None, None, -1)), (1,), (1, 2), (Ellipsis, None, 3)]:
        expected = numpy_text(np.asarray(a[index]), name)
        assert str(t[index]) == repr(t[index]) == expected
    # NumPy memory in any layout (here transposed) prints the same.
    assert str(tb.convert_to_tensor(a.T)) == numpy_text(a.T, name)


@pytest.mark.parametrize(
    "a, expected",
    [
        (np.array([[1, 2, 3], [4, 5, 6]], np.float32), "tb.Tensor(\n[[1. 2. 3.]\n [4. 5. 6.]], shape=(2, 3), dtype=float32)"),
        (np.array(2.5), "tb.Tensor(2.5, shape=(), dtype=float64)"),
        (np.zeros((2, 0), np.int32), "tb.Tensor([], shape=(2, 0), dtype=int32)"),
        (np.array([-0.0, 1.0]), "tb.Tensor([-0.  1.], shape=(2,), dtype=float64)"),
    ],
)
def test_examples(a, expected):
    """A few literal texts, so that the oracle itself is checked."""
    assert numpy_text(a, str(a.dtype)) == expected
    assert str(tb.convert_to_tensor(a)) == expected
