"""Element structures of ``tb.data`` (tuples, namedtuples and dicts of tensors, flattened
to a list of leaves and back), and the progress line: shared by ``data``, the combinators
and the iterator, below all of them."""

from __future__ import annotations

import sys
import time
from typing import Any, Iterator

from ._convert import Tensor, convert_to_tensor

_LEAF = None  # structure marker for a single tensor


# ----------------------------------------------------------------- structures


def _flatten(value: Any, path: str = "") -> tuple:
    """``value`` → ``(structure, [(path, leaf), ...])``; tuples and dicts nest."""
    if isinstance(value, tuple):
        items: list = []
        leaves: list = []
        for i, v in enumerate(value):
            s, l = _flatten(v, f"{path}[{i}]")
            items.append(s)
            leaves.extend(l)
        if hasattr(value, "_fields"):  # namedtuple
            return ("namedtuple", type(value), tuple(items)), leaves
        return ("tuple", tuple(items)), leaves
    if isinstance(value, dict):
        fields: dict = {}
        leaves = []
        for k, v in value.items():
            s, l = _flatten(v, f"{path}[{k!r}]")
            fields[k] = s
            leaves.extend(l)
        return ("dict", fields), leaves
    return _LEAF, [(path or "the input", value)]


def _unflatten(struct: Any, leaves: Iterator) -> Any:
    if struct is _LEAF:
        return next(leaves)
    kind = struct[0]
    if kind == "tuple":
        return tuple(_unflatten(s, leaves) for s in struct[1])
    if kind == "namedtuple":
        return struct[1](*(_unflatten(s, leaves) for s in struct[2]))
    return {k: _unflatten(s, leaves) for k, s in struct[1].items()}


def _count(struct: Any) -> int:
    if struct is _LEAF:
        return 1
    subs = struct[1].values() if struct[0] == "dict" else struct[-1]
    return sum(_count(s) for s in subs)


def _to_tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return convert_to_tensor(x, copy=False)
    except (ValueError, TypeError):
        return convert_to_tensor(x)



class _Progress:
    def __init__(self, desc: str, total: int):
        self.desc, self.total, self.n = desc, total, 0
        self.t0 = self.last = time.perf_counter()

    def step(self) -> None:
        self.n += 1
        now = time.perf_counter()
        if now - self.last >= 0.1:
            self.last = now
            self._print(now)

    def _print(self, now: float) -> None:
        rate = self.n / max(now - self.t0, 1e-9)
        total = f"/{self.total}" if self.total >= 0 else ""
        sys.stderr.write(f"\r{self.desc + ': ' if self.desc else ''}{self.n}{total} [{rate:,.1f}/s]")
        sys.stderr.flush()

    def close(self) -> None:
        self._print(time.perf_counter())
        sys.stderr.write("\n")
        sys.stderr.flush()
