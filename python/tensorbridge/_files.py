"""NumPy files: ``load``, ``save``, ``savez`` and :class:`NpzFile`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Iterator, Optional, Union

from . import _core
from ._convert import Tensor, _array_args, _as_array
from ._dtypes import dtype as _dtype

__all__ = ["load", "save", "savez", "NpzFile"]

PathLike = Union[str, "os.PathLike[str]"]


def _item(x: Any) -> Any:
    return x if isinstance(x, Tensor) else _array_args(_as_array(x))


def _is_zip(path: PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def load(path: PathLike, *, mmap: Optional[bool] = None, dtype: Any = None) -> Union[Tensor, "NpzFile"]:
    """Load a ``.npy`` file as a :class:`Tensor`, or open a ``.npz`` archive as a lazy
    read-only :class:`NpzFile`.

    ``mmap=True`` maps the file: a read-only, zero-copy tensor (``is_view`` true) that
    opens in constant time and stays valid after the file is closed or deleted.
    ``mmap=False`` reads into owned memory. ``mmap=None`` maps when the data can be
    used as it lies (native byte order, aligned) and is at least 1 MiB, else reads.
    ``dtype`` casts on the way (one pass); it is required to read bfloat16 arrays
    that ``np.save`` wrote (NumPy stores them as 2-byte voids, ``'<V2'``).
    """
    target = None if dtype is None else _dtype(dtype)
    path = os.fspath(path)
    # Trust a .npy extension (sniffing costs an extra open per file); else sniff.
    if not path.endswith(".npy") and _is_zip(path):
        return NpzFile(path, mmap=mmap, dtype=target)
    return _core.load_npy(path, mmap, target)


def save(path: PathLike, x: Any) -> None:
    """Write ``x`` to a ``.npy`` file (version 1.0 unless the header needs more).

    The file appears under its name only when complete (written to a temporary name,
    then renamed). bfloat16 is written as NumPy does (``'<V2'``): read it back with
    ``np.load(path).view(ml_dtypes.bfloat16)`` or ``tb.load(path, dtype=tb.bfloat16)``.
    """
    _core.save_npy(os.fspath(path), _item(x))


def savez(path: PathLike, *, compress: bool = False, **named: Any) -> None:
    """Write named arrays to a ``.npz`` archive that ``np.load`` reads.

    Stored (uncompressed) members' data start on 64-byte boundaries, so
    :func:`load` maps them zero-copy. ``compress=True`` deflates every member.
    Written atomically (temporary name, then rename).
    """
    names = list(named)
    _core.save_npz(os.fspath(path), names, [_item(named[n]) for n in names], compress)


class NpzFile(Mapping):
    """A lazy, read-only mapping of an ``.npz`` archive's members to tensors.

    Members are read only when accessed. Stored members whose data is aligned are
    zero-copy views of one mapping of the file (``is_view`` true); others are read
    with one copy; deflated members are decompressed straight into the tensor.
    Supports ``keys()``, ``[name]``, ``in``, ``len``, iteration and ``with``.
    """

    def __init__(self, path: PathLike, *, mmap: Optional[bool] = None, dtype: Any = None) -> None:
        self._handle = _core.NpzArchiveHandle(os.fspath(path))
        self._mmap = mmap
        self._dtype = dtype
        self._keys = self._handle.keys()

    @property
    def path(self) -> str:
        """The archive's path."""
        return self._handle.path

    def __getitem__(self, name: str) -> Tensor:
        return self._handle.load(name, self._mmap, self._dtype)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._handle

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self):  # type: ignore[override]
        """Member names, in archive order (without the ``.npy`` suffix)."""
        return list(self._keys)

    def info(self, name: str) -> dict:
        """Compression, stored and compressed size, dtype, shape and order of a member."""
        return self._handle.info(name)

    def close(self) -> None:
        """Drop this handle. Tensors already loaded stay valid (they keep the mapping)."""
        self._handle = None  # type: ignore[assignment]

    def __enter__(self) -> "NpzFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NpzFile({self.path!r}, keys={self._keys!r})"
