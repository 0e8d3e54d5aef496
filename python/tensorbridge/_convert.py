"""Python values → tensors: ``convert_to_tensor``, ``constant``, ``cast``, ``stack``."""

from __future__ import annotations

import math
import operator
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from . import _core
from ._dtypes import DType, dtype as _dtype

Tensor = _core.Tensor

__all__ = ["convert_to_tensor", "constant", "cast", "stack", "Tensor"]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _path(p: tuple) -> str:
    return "".join(f"[{i}]" for i in p) or "(top level)"


def _infer_python(value: Any) -> np.ndarray:
    """Nested lists/tuples of Python scalars → a NumPy array, with TensorFlow's
    dtype inference: bool → bool; int → int32, or int64 if any value needs it;
    float (or ints mixed with floats) → float32; complex → complex128."""
    leaves: list = []
    shape: Optional[list] = None

    def walk(v: Any, path: tuple, depth: int, dims: list) -> None:
        nonlocal shape
        if isinstance(v, (list, tuple)):
            if len(dims) <= depth:
                if shape is not None and depth >= len(shape):
                    raise ValueError(
                        f"ragged nested sequence: element at {_path(path)} is a sequence "
                        f"but elements at the same depth elsewhere are scalars"
                    )
                dims.append(len(v))
            elif dims[depth] != len(v):
                raise ValueError(
                    f"ragged nested sequence: element at {_path(path)} has length {len(v)}, "
                    f"expected {dims[depth]} like the elements before it"
                )
            for i, item in enumerate(v):
                walk(item, path + (i,), depth + 1, dims)
            if shape is None and not v:
                shape = list(dims)
            return
        if shape is None:
            shape = list(dims[:depth])
        elif depth != len(shape):
            raise ValueError(
                f"ragged nested sequence: element at {_path(path)} is a scalar but "
                f"elements at the same depth elsewhere are sequences"
            )
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v[()]
        if not isinstance(v, (bool, np.bool_, numbers.Number)):
            raise TypeError(
                f"cannot convert element at {_path(path)} of type {type(v).__name__} to a tensor"
            )
        leaves.append(v)

    dims: list = []
    walk(value, (), 0, dims)
    if shape is None:
        shape = dims
    kinds = {_kind(v) for v in leaves}
    dt: type[np.generic]
    if not leaves:
        dt = np.float32
    elif kinds == {"b"}:
        dt = np.bool_
    elif "c" in kinds:
        dt = np.complex128
    elif "f" in kinds:
        dt = np.float32
    else:
        ints = [int(v) for v in leaves]
        lo, hi = min(ints), max(ints)
        if _INT32[0] <= lo and hi <= _INT32[1]:
            dt = np.int32
        elif _INT64[0] <= lo and hi <= _INT64[1]:
            dt = np.int64
        else:
            bad = next(i for i, v in enumerate(ints) if not _INT64[0] <= v <= _INT64[1])
            raise ValueError(f"integer {ints[bad]} does not fit in int64")
    if not leaves:
        return np.zeros(shape, dtype=dt)
    return np.array(leaves, dtype=dt).reshape(shape)


def _kind(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "b"
    if isinstance(v, numbers.Integral):
        return "i"
    if isinstance(v, numbers.Real):
        return "f"
    return "c"


def _as_array(value: Any) -> np.ndarray:
    """Anything array-like → a NumPy array (zero-copy where NumPy can view it)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    if isinstance(value, (list, tuple, bool, int, float, complex)):
        return _infer_python(value)
    if hasattr(value, "__array_interface__") or hasattr(value, "__array__"):
        return np.asarray(value)
    try:
        view = memoryview(value)
    except TypeError:
        raise TypeError(
            f"cannot convert a value of type {type(value).__name__} to a tensor: expected an "
            "array, a tensor, a Python scalar or nested list, or a buffer"
        ) from None
    return np.asarray(view)  # zero-copy; the array keeps the buffer's owner alive


def _array_args(arr: np.ndarray) -> np.ndarray:
    """What ``_core`` takes for a NumPy array: the array itself (the binding reads
    its dtype and memory through the buffer protocol)."""
    return arr


def convert_to_tensor(
    value: Any, dtype: Any = None, *, copy: Optional[bool] = None, casting: str = "unsafe"
) -> Tensor:
    """Convert ``value`` to a :class:`Tensor` (``tf.convert_to_tensor`` with NumPy's numbers).

    ``value``: a NumPy array in any layout, a NumPy or Python scalar, nested lists,
    any buffer or ``__array_interface__`` object, or a Tensor. ``dtype`` (default:
    keep NumPy's; infer like TensorFlow for Python values) is reached by a cast
    under ``casting`` (``"unsafe"``, ``"same_kind"``, ``"safe"``, ``"checked"``,
    ``"saturate"``).

    ``copy=None``: the tensor never changes when ``value`` is mutated later (a copy,
    except for an immutable Tensor of the right dtype). ``copy=True``: always a fresh
    buffer. ``copy=False``: a zero-copy view that keeps ``value`` alive, or
    ``ValueError`` saying why that is impossible.
    """
    target = None if dtype is None else _dtype(dtype)
    if isinstance(value, Tensor):
        # The copy=False rule (ViewObstacle) and the casting checks are the core's.
        return _core.from_array(value, target, copy, casting)
    if copy is False and isinstance(value, (list, tuple, bool, int, float, complex)):
        raise ValueError("copy=False but a zero-copy tensor is impossible: Python values have no array memory")
    arr = _as_array(value)
    return _core.from_array(arr, target, copy, casting)


def constant(value: Any, dtype: Any = None, shape: Optional[Sequence[int]] = None) -> Tensor:
    """An independent tensor from ``value`` (always a copy), like ``tf.constant``.

    ``shape`` reshapes (same number of elements) or fills from a single value.
    """
    t = convert_to_tensor(value, dtype, copy=True)
    if shape is None:
        return t
    shape = tuple(operator.index(d) for d in shape)  # TypeError for 3.5, like TensorFlow
    n = math.prod(shape)
    if t.size == n:
        return t.reshape(shape)
    if t.size == 1:
        filled = np.broadcast_to(t.numpy().reshape(()), shape)
        return convert_to_tensor(filled, copy=True)
    raise ValueError(f"cannot make a tensor of shape {shape} ({n} elements) from {t.size} elements")


def cast(x: Any, dtype: Any, casting: str = "unsafe") -> Tensor:
    """Cast ``x`` (array, tensor or Python value) to ``dtype`` under ``casting``."""
    target = _dtype(dtype)
    if isinstance(x, Tensor):
        return x.astype(target, casting)
    return convert_to_tensor(x, target, casting=casting)


def stack(values: Sequence[Any], axis: int = 0, dtype: Any = None, casting: str = "unsafe") -> Tensor:
    """Stack arrays/tensors of one shape along a new ``axis``, casting to ``dtype``
    on the way (each item is read once and written into its slot in parallel)."""
    items: list[Any] = []
    for v in values:
        if isinstance(v, Tensor):
            items.append(v)
        else:
            items.append(_as_array(v))
    target = None if dtype is None else _dtype(dtype)
    return _core.stack(items, axis, target, casting)
