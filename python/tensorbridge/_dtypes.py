"""The fifteen tensorbridge dtypes and :func:`dtype`, which reads any dtype-like value."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core

__all__ = ["DType", "dtype"]


class DType:
    """An element type, like ``tf.DType``: ``tb.float32``, ``tb.bfloat16``, ...

    Compares equal to anything :func:`dtype` reads as the same type
    (``tb.float32 == "float32" == np.float32``) and hashes by name.
    """

    __slots__ = ("_name", "_size", "_kind")

    def __init__(self, name: str) -> None:
        size, kind, _align = _core.dtype_info(name)
        self._name = name
        self._size = size
        self._kind = kind

    @property
    def name(self) -> str:
        """Canonical name, e.g. ``"float32"``."""
        return self._name

    @property
    def size(self) -> int:
        """Bytes per element (as ``tf.DType.size``)."""
        return self._size

    @property
    def itemsize(self) -> int:
        """Bytes per element (as ``np.dtype.itemsize``)."""
        return self._size

    @property
    def is_bool(self) -> bool:
        """True for ``bool``."""
        return self._kind == "b"

    @property
    def is_floating(self) -> bool:
        """True for float16, bfloat16, float32, float64."""
        return self._kind == "f"

    @property
    def is_integer(self) -> bool:
        """True for the signed and unsigned integer types (not bool)."""
        return self._kind in "iu"

    @property
    def is_unsigned(self) -> bool:
        """True for the unsigned integer types and bool (as ``tf.DType``)."""
        return self._kind in "ub"

    @property
    def is_complex(self) -> bool:
        """True for complex64 and complex128."""
        return self._kind == "c"

    @property
    def is_signed(self) -> bool:
        """True for types that hold negative values (signed ints, floats, complex)."""
        return self._kind in "ifc"

    @property
    def as_numpy_dtype(self) -> np.dtype:
        """The matching NumPy dtype (``ml_dtypes.bfloat16`` for bfloat16)."""
        return _numpy_dtype(self._name)

    @property
    def min(self) -> Any:
        """Smallest value: an int for integers, the most negative finite float for
        floats, ``False`` for bool. Complex types have no order: ``TypeError``."""
        return self._limit("min")

    @property
    def max(self) -> Any:
        """Largest value (see :attr:`min`)."""
        return self._limit("max")

    def _limit(self, which: str) -> Any:
        if self._kind == "b":
            return which == "max"
        if self._kind == "c":
            raise TypeError(f"{self._name} has no {which}imum: complex numbers are not ordered")
        npd = self.as_numpy_dtype
        info = np.iinfo(npd) if self._kind in "iu" else _finfo(npd)
        v = getattr(info, which)
        return int(v) if self._kind in "iu" else float(v)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return other is self
        try:
            return dtype(other) is self
        except TypeError:
            return False

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f"tb.{self._name}"

    def __str__(self) -> str:
        return self._name

    def __reduce__(self) -> tuple:
        return (dtype, (self._name,))


def _finfo(npd: np.dtype) -> Any:
    if npd.name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.finfo(npd)
    return np.finfo(npd)


_BY_NAME: dict[str, DType] = {n: DType(n) for n in _core.dtype_names()}


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


# The binding reads dtypes itself and answers with these objects.
_core._register([_BY_NAME[n] for n in _core.dtype_names()])


def dtype(x: Any) -> DType:
    """Read a dtype-like value: a ``tb`` dtype, a NumPy dtype or scalar type
    (``np.float32``, ``np.dtype('<f4')``, ``ml_dtypes.bfloat16``), a string
    (``'float32'``, ``'f4'``, ``'<f4'``, ``'>i8'``, ``'bfloat16'``) or a TensorFlow
    ``DType`` (through its ``.name``). Anything else raises ``TypeError``.

    The parsing is the compiled core's (one parser for Python and Rust).
    """
    if isinstance(x, DType):
        return x
    return _core.as_dtype(x)
