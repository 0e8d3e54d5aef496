"""NumPy files: ``load``, ``save``, ``savez`` and :class:`NpzFile`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, BinaryIO, Dict, Iterator, Optional, Union

from . import _core
from ._convert import Tensor, _array_args, _as_array
from ._dtypes import dtype as _dtype

__all__ = ["load", "save", "savez", "NpzFile", "convert_file"]

PathLike = Union[str, "os.PathLike[str]"]
StorageOptions = Optional[Dict[str, str]]

_STORAGE_DOC = """
    ``path`` may also be a URL of an object store: ``s3://bucket/key``, ``gs://``,
    ``az://`` / ``abfs(s)://``, ``http(s)://`` (``file://`` is a local path).
    ``storage_options`` configures its store with object_store's keys (e.g.
    ``{"aws_endpoint": "http://127.0.0.1:9000", "aws_region": "us-east-1"}``), over
    the environment as boto3 reads it (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``...).
"""


def _path(path: PathLike) -> Any:
    """A path argument as the core takes it: a ``str`` (path or URL) stays one."""
    return path if isinstance(path, str) else os.fspath(path)


def _item(x: Any) -> Any:
    return x if isinstance(x, Tensor) else _array_args(_as_array(x))


def load(
    path: Union[PathLike, BinaryIO],
    *,
    mmap: Optional[bool] = None,
    dtype: Any = None,
    storage_options: StorageOptions = None,
) -> Union[Tensor, "NpzFile"]:
    """Load a ``.npy`` file as a :class:`Tensor`, or open a ``.npz`` archive as a lazy
    read-only :class:`NpzFile`.

    ``mmap=True`` maps the file: a read-only, zero-copy tensor (``is_view`` true) that
    opens in constant time and stays valid after the file is closed or deleted.
    ``mmap=False`` reads into owned memory. ``mmap=None`` maps when the data can be
    used as it lies (native byte order, aligned) and is at least 1 MiB, else reads.
    ``dtype`` casts on the way (one pass); it is required to read bfloat16 arrays
    that ``np.save`` wrote (NumPy stores them as 2-byte voids, ``'<V2'``).

    A URL (see below) is read with ranged requests: an ``.npy`` object's header with
    one small read, then its data with concurrent ranged reads into the tensor (in
    memory: ``mmap=True`` raises ``ValueError``); an ``.npz`` object by its central
    directory alone, each member read only when accessed. Errors name the URL:
    ``FileNotFoundError`` (no such object or bucket), ``PermissionError`` (refused
    credentials), ``ValueError`` (an unsupported scheme), ``OSError`` (a failure that
    outlasted the bounded retries, or an object replaced while it was read).

    ``path`` may also be a binary file object, as for ``np.load``: anything with
    ``read`` (``io.BytesIO``, an open file, an fsspec file), read from its current
    position. An ``.npy`` array is read into memory and the object is left just after
    it (so several arrays saved one after another load one after another); an
    ``.npz`` archive is read to the end and opened from memory. ``mmap=True`` is
    refused (ValueError), no data left raises ``EOFError``, other bytes ValueError.
    """
    target = None if dtype is None else _dtype(dtype)
    if hasattr(path, "read") and not isinstance(path, (str, bytes, os.PathLike)):
        return _load_fileobj(path, mmap, target)
    # The core's one detection rule (first bytes, else extension), in the same read
    # as an .npy header.
    loaded = _core.load(_path(path), mmap, target, storage_options)
    if isinstance(loaded, _core.NpzArchiveHandle):
        return NpzFile._from_handle(loaded, mmap=mmap, dtype=target)
    return loaded


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# The longest header the core accepts is far below this; a claimed length above it is
# left for the core to refuse without reading that much.
_MAX_HEADER_READ = 1 << 20


def _fileobj_name(f: Any) -> str:
    name = getattr(f, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        return os.fsdecode(name)
    return f"<{type(f).__name__} object>"


def _read_exactly(f: Any, n: int) -> bytes:
    """Up to ``n`` bytes from ``f``: fewer only at its end (``read`` may return short)."""
    data = f.read(n)
    if data is None:
        raise OSError(f"{_fileobj_name(f)}: read() returned None (a non-blocking stream?)")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{_fileobj_name(f)}: read() returned {type(data).__name__}, not bytes (open it in binary mode)")
    if len(data) >= n:
        return bytes(data)
    parts = [bytes(data)]
    got = len(data)
    while got < n:
        more = f.read(n - got)
        if not more:
            break
        parts.append(bytes(more))
        got += len(more)
    return b"".join(parts)


def _remaining(f: Any, default: int) -> int:
    """Bytes left in a seekable ``f`` (so a header claiming more than the file holds
    allocates nothing); ``default`` where that cannot be told."""
    try:
        if not f.seekable():
            return default
        pos = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(pos)
        return max(int(end) - int(pos), 0)
    except (AttributeError, OSError, ValueError):
        return default


def _zip_bytes(f: Any, head: bytes) -> bytes:
    """The bytes to open an archive from, ``head`` already read: the whole stream where
    it can seek (as ``zipfile``, so ``np.load``, sees it: an archive written mid-stream
    records offsets from the stream's start), else the rest of it."""
    try:
        seekable = bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        seekable = False
    if seekable:
        f.seek(0)
        return _read_rest(f)
    return head + _read_rest(f)


def _read_rest(f: Any) -> bytes:
    data = f.read()
    if data is None:
        raise OSError(f"{_fileobj_name(f)}: read() returned None (a non-blocking stream?)")
    return bytes(data)


def _load_fileobj(f: Any, mmap: Optional[bool], target: Any) -> Union[Tensor, "NpzFile"]:
    """``load`` of a binary file object (see :func:`load`)."""
    name = _fileobj_name(f)
    if mmap:
        raise ValueError(f"{name}: cannot memory-map a file object (mmap=True needs a local path); use mmap=None or False")
    head = _read_exactly(f, len(_NPY_MAGIC))
    if not head:
        raise EOFError(f"{name}: no data left in the file object")
    if head[:4] in _ZIP_MAGICS:
        handle = _core.npz_from_bytes(_zip_bytes(f, head), name)
        return NpzFile._from_handle(handle, mmap=mmap, dtype=target)
    if head != _NPY_MAGIC:
        raise ValueError(f"{name}: not a .npy or .npz file (its first bytes are {head!r}, not \\x93NUMPY or a zip header)")
    # Version (2 bytes), then the header length: 2 bytes (1.0) or 4 (2.0, 3.0).
    head += _read_exactly(f, 4)
    if head[6:7] != b"\x01":
        head += _read_exactly(f, 2)
    hlen = int.from_bytes(head[8:], "little")
    if hlen <= _MAX_HEADER_READ:
        head += _read_exactly(f, hlen)
    # The core checks everything (magic, version, length, dict) and says what is wrong.
    offset, data_len = _core.npy_header_extent(head, name)
    data = _read_exactly(f, min(data_len, _remaining(f, data_len)))
    return _core.load_npy_parts(head[:offset], data, name, mmap, target)


def save(path: PathLike, x: Any, *, storage_options: StorageOptions = None) -> None:
    """Write ``x`` to a ``.npy`` file (version 1.0 unless the header needs more).

    The file appears under its name only when complete (written to a temporary name,
    then renamed). bfloat16 is written as NumPy does (``'<V2'``): read it back with
    ``np.load(path).view(ml_dtypes.bfloat16)`` or ``tb.load(path, dtype=tb.bfloat16)``.

    To a URL the array is sent with a multipart upload: the object appears only when
    complete, and an error aborts the upload, leaving nothing behind.
    """
    _core.save_npy(_path(path), _item(x), storage_options)


def savez(
    path: PathLike,
    *,
    compress: bool = False,
    storage_options: StorageOptions = None,
    **named: Any,
) -> None:
    """Write named arrays to a ``.npz`` archive that ``np.load`` reads.

    Stored (uncompressed) members' data start on 64-byte boundaries, so
    :func:`load` maps them zero-copy. ``compress=True`` deflates every member.
    Written atomically (temporary name, then rename); to a URL, written to a
    temporary local file and uploaded at the end (a multipart upload, aborted on
    error). (``compress`` and ``storage_options`` cannot be member names.)
    """
    names = list(named)
    _core.save_npz(_path(path), names, [_item(named[n]) for n in names], compress, storage_options)


def convert_file(
    src: PathLike,
    dst: PathLike,
    *,
    dtype: Any = None,
    casting: str = "unsafe",
    member: Optional[str] = None,
    compress: bool = False,
    storage_options: StorageOptions = None,
) -> None:
    """Convert the array file ``src`` to ``dst``: between ``.npy``, ``.npz``,
    ``.safetensors`` and ``.tfrecord``, streaming — what the ``tensorbridge convert``
    command does, with the same messages.

    The source's format is found from its first bytes (else its extension), the
    destination's from its extension. ``.npy`` and ``.npz`` are converted in bounded
    memory (8 MiB at a time), whatever their size; ``.safetensors`` and ``.tfrecord``
    are held in memory. Fortran order is kept where the destination has it.

    ``dtype`` casts every array under ``casting`` (``"unsafe"`` as ``astype``,
    ``"same_kind"``, ``"safe"``, ``"checked"``, ``"saturate"``), in the same pass; a
    ``'<V2'`` array (NumPy's bfloat16) is copied as it is without ``dtype`` and read
    as bfloat16 with ``dtype=tb.bfloat16``. ``member`` converts only that array
    (needed for a ``.npy`` destination when the source holds several).
    ``compress=True`` deflates the members of a ``.npz`` destination.

    Everything that can be checked is checked before ``dst`` is created, and ``dst``
    appears only once complete (written under a temporary name, then renamed): an
    error leaves nothing behind. Errors name the file (and member): ``ValueError`` for
    bad files, missing members and failed checked casts (with the index in the whole
    array), ``TypeError`` for a cast the casting mode refuses, ``OSError`` for I/O.

    Either side may be a URL of an object store (``storage_options`` as for
    :func:`load`, used for both): the source is read with ranged requests, the
    destination written with a multipart upload completed only at the end.
    """
    target = None if dtype is None else _dtype(dtype)
    # Argument types and values are checked once, by the binding and the core.
    _core.convert_file(_path(src), _path(dst), target, casting, member, bool(compress), storage_options)


class NpzFile(Mapping):
    """A lazy, read-only mapping of an ``.npz`` archive's members to tensors.

    Members are read only when accessed. Stored members whose data is aligned are
    zero-copy views of one mapping of the file (``is_view`` true); others are read
    with one copy; deflated members are decompressed straight into the tensor.
    Supports ``keys()``, ``[name]``, ``get``, ``in``, ``len``, iteration and ``with``.

    Every member that is read (decompressed or copied) has its CRC-32 checked, as
    ``np.load`` does: a mismatch raises ``ValueError`` naming the member. A zero-copy
    view of a stored member is *not* checked — that would mean reading every byte of
    it; load with ``mmap=False`` to have it copied and checked.

    After :meth:`close`, reading members raises ``ValueError`` (tensors already
    loaded stay valid).

    ``path`` may be a URL of an object store (``storage_options`` as for
    :func:`load`): opening reads only the archive's central directory, and each
    member is read with ranged requests when accessed (deflated members inflate as
    they stream in).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        mmap: Optional[bool] = None,
        dtype: Any = None,
        storage_options: StorageOptions = None,
    ) -> None:
        self._init(_core.NpzArchiveHandle(_path(path), storage_options), mmap, dtype)

    @classmethod
    def _from_handle(cls, handle: Any, *, mmap: Optional[bool], dtype: Any) -> "NpzFile":
        self = cls.__new__(cls)
        self._init(handle, mmap, dtype)
        return self

    def _init(self, handle: Any, mmap: Optional[bool], dtype: Any) -> None:
        self._handle = handle
        self._path = handle.path
        self._mmap = mmap
        self._dtype = dtype
        self._keys = handle.keys()

    @property
    def path(self) -> str:
        """The archive's path."""
        return self._path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._handle is None

    def _open_handle(self) -> Any:
        if self._handle is None:
            raise ValueError(f"NpzFile {self._path!r} is closed")
        return self._handle

    def __getitem__(self, name: str) -> Tensor:
        handle = self._open_handle()
        if not isinstance(name, str):
            raise KeyError(name)
        return handle.load(name, self._mmap, self._dtype)

    def __contains__(self, name: object) -> bool:
        handle = self._open_handle()
        return isinstance(name, str) and name in handle

    def __iter__(self) -> Iterator[str]:
        self._open_handle()
        return iter(self._keys)

    def __len__(self) -> int:
        self._open_handle()
        return len(self._keys)

    def keys(self):  # type: ignore[override]
        """Member names, in archive order (without the ``.npy`` suffix)."""
        self._open_handle()
        return list(self._keys)

    def info(self, name: str) -> dict:
        """Compression, stored and compressed size, dtype, shape and order of a member."""
        handle = self._open_handle()
        if not isinstance(name, str):
            raise KeyError(name)
        return handle.info(name)

    def close(self) -> None:
        """Drop this handle. Tensors already loaded stay valid (they keep the mapping)."""
        self._handle = None  # type: ignore[assignment]

    def __enter__(self) -> "NpzFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._handle is None else ""
        return f"NpzFile({self._path!r}, keys={self._keys!r}{state})"
