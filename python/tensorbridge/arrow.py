"""Arrow interop: ``tb.from_arrow(array)`` and ``to_arrow(tensor)``, zero-copy where Arrow allows.

Imported only when used (``import tensorbridge`` never imports pyarrow).

- :func:`from_arrow` reads a ``pyarrow`` array, a ``ChunkedArray`` or any object with the
  Arrow PyCapsule interface (``__arrow_c_array__``): the canonical ``arrow.fixed_shape_tensor``
  extension type, (nested) ``FixedSizeList`` arrays and primitive arrays. Axis 0 is the
  array's rows; the row shape comes from the tensor type / list sizes. The tensor is a
  zero-copy view of the Arrow value buffer (it keeps the buffer alive), sliced arrays
  (non-zero offsets) included. Copies happen only where Arrow's memory cannot be a
  tensor: ``bool`` (Arrow packs it into bits), a ``ChunkedArray`` of several chunks
  (concatenated once), and a ``fixed_shape_tensor`` with a non-trivial ``permutation``.
  **Nulls are refused** with a ``ValueError`` (tensors have no missing values; fill
  them first, e.g. ``pyarrow.compute.fill_null``).
- :func:`to_arrow` gives a ``fixed_shape_tensor`` array (rows = axis 0) for a tensor of
  two or more dimensions, a primitive array for a 1-d tensor, over the tensor's own
  memory (the Arrow buffer keeps the tensor alive). A tensor that is not C-contiguous
  is copied first; ``bool`` is packed into bits (a copy).

Types: bool, int8..int64, uint8..uint64, float16, float32, float64 map to Arrow's own
types. **bfloat16** has no Arrow type: ``to_arrow`` stores its raw bits as ``uint16``
(zero-copy) and ``from_arrow(a, dtype=tb.bfloat16)`` reinterprets ``uint16`` bits as
bfloat16 (zero-copy). complex64/complex128 have no Arrow type and are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._convert import Tensor, convert_to_tensor
from ._dtypes import dtype as _dtype

__all__ = ["from_arrow", "to_arrow", "ndarray_to_arrow"]


def _pa() -> Any:
    try:
        import pyarrow
    except ImportError as e:  # pragma: no cover - exercised only without pyarrow
        raise ImportError(f"tensorbridge's Arrow interop needs pyarrow (pip install pyarrow): {e}") from e
    return pyarrow


def _arrow_type(pa: Any, npd: np.dtype) -> Any:
    if npd.kind == "c":
        raise TypeError(f"{npd.name} has no Arrow type: complex tensors cannot become Arrow arrays")
    if npd.name == "bfloat16":
        return pa.uint16()  # raw bits; see the module docs
    if npd.kind not in "biuf":
        raise TypeError(f"dtype {npd.str!r} has no Arrow equivalent")
    return pa.from_numpy_dtype(npd)


def _flat_values(pa: Any, flat: np.ndarray) -> Any:
    """A 1-d C-contiguous native array → a primitive Arrow array over its memory
    (bool: bit-packed copy)."""
    n = flat.shape[0]
    if flat.dtype == np.bool_:
        bits = np.packbits(flat.view(np.uint8), bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(bits)])
    if flat.dtype.name == "bfloat16":
        flat = flat.view(np.uint16)
    typ = _arrow_type(pa, flat.dtype)
    return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(flat)])


def ndarray_to_arrow(arr: np.ndarray) -> Any:
    """A NumPy array (axis 0 = rows) → an Arrow array over the same memory when it is
    C-contiguous and native-endian (else from one contiguous copy):
    ``fixed_shape_tensor`` for ``ndim >= 2``, a primitive array for ``ndim == 1``."""
    pa = _pa()
    if arr.ndim == 0:
        raise ValueError("a 0-d array has no rows: Arrow arrays need at least one dimension")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    values = _flat_values(pa, arr.reshape(-1))
    if arr.ndim == 1:
        return values
    row_shape = list(arr.shape[1:])
    row_size = int(np.prod(row_shape))
    storage = pa.FixedSizeListArray.from_arrays(values, row_size)
    return pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(values.type, row_shape), storage)


def to_arrow(t: Tensor) -> Any:
    """``t`` as an Arrow array over its memory (see the module docs)."""
    if not isinstance(t, Tensor):
        t = convert_to_tensor(t)
    return ndarray_to_arrow(t.numpy())


def _refuse_nulls(arr: Any, what: str) -> None:
    n = arr.null_count
    if n:
        first = next(i for i, ok in enumerate(arr.is_valid().to_pylist()) if not ok)
        raise ValueError(
            f"from_arrow: the {what} has {n} null(s) (first at index {first}); tensors have no "
            "missing values: fill them first (e.g. pyarrow.compute.fill_null)")


def _primitive_numpy(pa: Any, arr: Any) -> np.ndarray:
    typ = arr.type
    _refuse_nulls(arr, "array")
    if pa.types.is_boolean(typ):
        return arr.to_numpy(zero_copy_only=False)  # Arrow packs bools into bits: one copy
    if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
        raise TypeError(f"from_arrow: Arrow type {typ} has no tensor dtype (supported: bool, "
                        "integers, float16/32/64, fixed_size_list and fixed_shape_tensor of them)")
    npd = np.dtype(typ.to_pandas_dtype()) if not pa.types.is_float16(typ) else np.dtype(np.float16)
    n = len(arr)
    buf = arr.buffers()[1]
    if buf is None or n == 0:
        return np.empty(0, npd)
    # Honour the slice offset; the array keeps the Arrow buffer alive.
    return np.frombuffer(buf, dtype=npd, count=n, offset=arr.offset * npd.itemsize)


def _to_numpy(pa: Any, arr: Any) -> np.ndarray:
    """One Arrow array (not chunked) → a NumPy array, zero-copy where possible."""
    typ = arr.type
    if isinstance(typ, pa.FixedShapeTensorType):
        _refuse_nulls(arr, "fixed_shape_tensor array")
        shape = list(typ.shape)
        perm = typ.permutation
        inner = _to_numpy(pa, arr.storage)  # (n, prod(shape)) flat rows
        n = len(arr)
        if perm is None or list(perm) == list(range(len(shape))):
            return inner.reshape((n, *shape))
        # pyarrow's convention (FixedShapeTensorArray.from_numpy_ndarray): ``shape`` is the
        # physical (memory) order and the logical tensor is its transposition by argsort(perm).
        axes = [0] + [1 + int(i) for i in np.argsort(list(perm))]
        logical = inner.reshape((n, *shape)).transpose(axes)
        return np.ascontiguousarray(logical)
    if pa.types.is_fixed_size_list(typ):
        _refuse_nulls(arr, "fixed_size_list array")
        child = arr.flatten()  # honours the slice offset, zero-copy
        inner = _to_numpy(pa, child)
        return inner.reshape((len(arr), typ.list_size, *inner.shape[1:]))
    if isinstance(typ, pa.BaseExtensionType):
        raise TypeError(f"from_arrow: extension type {typ} is not supported "
                        "(only arrow.fixed_shape_tensor)")
    return _primitive_numpy(pa, arr)


def from_arrow(array: Any, dtype: Any = None) -> Tensor:
    """An Arrow array as a :class:`Tensor` (rows = axis 0), zero-copy where the buffer
    allows (see the module docs). ``dtype=tb.bfloat16`` reinterprets ``uint16`` bits."""
    pa = _pa()
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks == 1:
            out = _to_numpy(pa, array.chunk(0))
        else:
            out = _to_numpy(pa, array.combine_chunks())  # several chunks: one copy
    else:
        if not isinstance(array, pa.Array):
            if hasattr(array, "__arrow_c_array__"):
                array = pa.array(array)  # through the Arrow PyCapsule interface, zero-copy
            else:
                raise TypeError(f"from_arrow expects a pyarrow Array/ChunkedArray or an object with "
                                f"__arrow_c_array__, not {type(array).__name__}")
        out = _to_numpy(pa, array)
    if dtype is not None:
        target = _dtype(dtype)
        if target.name == "bfloat16":
            if out.dtype != np.uint16:
                raise TypeError(f"from_arrow(dtype=bfloat16) reinterprets uint16 bits; the array holds {out.dtype}")
            out = out.view(target.as_numpy_dtype)
        elif target != out.dtype:
            return convert_to_tensor(out, target)
    if not out.flags.c_contiguous or not out.flags.aligned:
        return convert_to_tensor(out)
    return convert_to_tensor(out, copy=False)
