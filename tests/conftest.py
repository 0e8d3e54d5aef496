import threading
import time
import warnings

import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb

NAMES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
]


def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def np_astype(a, name):
    """NumPy's (and ml_dtypes') own cast, without its RuntimeWarnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return a.astype(np_dtype(name))


# Arrays in every shape, memory order and byte order NumPy can save (files, file
# objects and object storage test the same set).
SHAPES = [(), (0,), (3, 0, 2), (7,), (4, 5), (2, 3, 4)]


def sample(name, shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 50).astype(np_dtype(name))


def variants(name):
    """The array in every shape, memory order and byte order NumPy can save."""
    for shape in SHAPES:
        a = sample(name, shape)
        yield f"{shape}-C", a
        if a.ndim >= 2:
            yield f"{shape}-F", np.asfortranarray(a)
        if a.dtype.itemsize > 1 and name != "bfloat16":
            yield f"{shape}-swapped", a.astype(a.dtype.newbyteorder())


def bits(a):
    """The raw bytes of an array's elements in C order (bit-for-bit comparison)."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).tobytes() if a.size else b""


def same(a, b):
    """Elements equal: the same structure (tuples; dicts with the same keys in the same
    order), and at each leaf the same dtype, shape and bits."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (list(a), b)
        for k in a:
            same(a[k], b[k])
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
        assert bits(a) == bits(b), (a, b)


@pytest.fixture(params=NAMES)
def dtype_name(request):
    return request.param


def wait_threads(base, timeout=5.0):
    """Wait until no pipeline threads are alive and the Python thread count is back
    to ``base``; False if that does not happen within ``timeout`` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        if threading.active_count() <= base and tb._core.data_live_threads() == 0:
            return True
        time.sleep(0.01)
    return False


# A real S3-compatible server (moto, in a thread) and a fault proxy for the
# object-storage tests; see s3_server.py. Imported here so every test file can use them.
from s3_server import s3_bucket, s3_env, s3_proxy, s3_server  # noqa: E402, F401
