"""Built-in element ops for :meth:`tensorbridge.data.Dataset.map`, run in Rust.

    >>> ds.map((tb.ops.cast(tb.float32), None))      # cast images, keep labels
    >>> ds.map((tb.ops.scale(1 / 255), None))        # x * mul + add

A single op applies to every component of an element; a tuple (or dict) of ops
mirroring the element's structure applies each to its own component, ``None``
leaving a component as it is. Consecutive built-in maps fuse: they run as one pass
over each element, written straight into the batch buffer when a ``batch`` follows.
"""

from __future__ import annotations

from typing import Any, Sequence

from ._dtypes import dtype as _dtype

__all__ = ["Op", "cast", "scale", "reshape", "chain"]


class Op:
    """One or more built-in ops (applied left to right)."""

    __slots__ = ("_specs",)

    def __init__(self, specs: Sequence[tuple]):
        self._specs = list(specs)

    def __repr__(self) -> str:
        parts = []
        for s in self._specs:
            if s[0] == "cast":
                parts.append(f"cast({s[1].name}, casting={s[2]!r})")
            elif s[0] == "scale":
                parts.append(f"scale({s[1]!r}, {s[2]!r})")
            else:
                parts.append(f"reshape({tuple(s[1])!r})")
        return "tb.ops." + " >> ".join(parts)

    def __rshift__(self, other: "Op") -> "Op":
        """``a >> b``: apply ``a`` then ``b`` (one fused pass)."""
        return chain(self, other)


def cast(dtype: Any, casting: str = "unsafe") -> Op:
    """Convert to ``dtype`` with NumPy's values (``casting`` as in ``tb.cast``)."""
    return Op([("cast", _dtype(dtype), casting)])


def scale(mul: float, add: float = 0.0) -> Op:
    """``x * mul + add`` in the component's float dtype (integers become float32).

    Computed as a float32 multiply-add for float32 data, so ``scale(1 / 255)`` equals
    TensorFlow's ``x * (1 / 255)`` exactly and ``x / 255`` to within one ulp.
    """
    return Op([("scale", float(mul), float(add))])


def reshape(shape: Sequence[int]) -> Op:
    """Reshape each element's component (one entry may be -1); moves no data."""
    if isinstance(shape, int):
        shape = (shape,)
    return Op([("reshape", [int(d) for d in shape])])


def chain(*ops: Op) -> Op:
    """Several ops applied in order, fused into one pass."""
    specs: list = []
    for o in ops:
        if not isinstance(o, Op):
            raise TypeError(f"chain() takes tb.ops ops, not {type(o).__name__}")
        specs.extend(o._specs)
    return Op(specs)
