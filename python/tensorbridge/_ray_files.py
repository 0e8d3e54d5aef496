"""File planning and block building for :mod:`tensorbridge.ray` (no Ray import here):
headers read on the driver, row ranges of files turned into Arrow blocks in the workers."""

from __future__ import annotations

import glob as _glob
import os
import zipfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

#: Target bytes per block when ``rows_per_block`` is not given.
DEFAULT_BLOCK_BYTES = 128 * 1024 * 1024

_META_KEY = b"tensorbridge.dtype"
_SUPPORTED = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64")


def _is_url(p: str) -> bool:
    return "://" in p


def storage_dict(storage_options: Any) -> Optional[Dict[str, str]]:
    """``storage_options`` as the plain ``{str: str}`` dict the read tasks carry."""
    if storage_options is None:
        return None
    if not isinstance(storage_options, dict):
        raise TypeError(f"storage_options must be a dict, not {type(storage_options).__name__}")
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in storage_options.items()}


def _expand(paths: Any, ext: str, storage_options: Optional[Dict[str, str]] = None) -> List[str]:
    """Local paths (absolute) and URLs: directories and globs expanded, sorted."""
    from . import _core

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ValueError("no paths given")
    out: List[str] = []
    for item in items:
        p = os.fspath(item)
        if _is_url(p):
            if p.endswith("/"):  # a "directory": the objects under the prefix
                found = _core.glob_urls(p + "*" + ext, storage_options)
                if not found:
                    raise FileNotFoundError(f"no {ext} objects under {p!r}")
                out.extend(found)
            elif _glob.has_magic(p):
                found = _core.glob_urls(p, storage_options)
                if not found:
                    raise FileNotFoundError(f"no objects match {p!r}")
                out.extend(found)
            else:
                out.append(p)  # its header read tells whether it exists
            continue
        if os.path.isdir(p):
            found = sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(ext))
            if not found:
                raise FileNotFoundError(f"no {ext} files in directory {p!r}")
            out.extend(found)
        elif _glob.has_magic(p):
            found = sorted(_glob.glob(p))
            if not found:
                raise FileNotFoundError(f"no files match {p!r}")
            out.extend(found)
        else:
            if not os.path.exists(p):
                raise FileNotFoundError(f"{p}: no such file")
            out.append(p)
    return [p if _is_url(p) else os.path.abspath(p) for p in out]


# ----------------------------------------------------------------- headers

def _header(f: Any, path: str, what: str) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dt = fmt.read_array_header_1_0(f)
        else:
            shape, fortran, dt = fmt.read_array_header_2_0(f) if version == (2, 0) else \
                fmt._read_array_header(f, version)  # type: ignore[attr-defined]  # 3.0: utf-8 header
    except Exception as e:  # noqa: BLE001 - re-raised naming the file
        raise ValueError(f"{path}: {what} is not a valid .npy header: {e}") from e
    return tuple(shape), bool(fortran), dt


class _Column:
    """One column's facts, from a header: row shape, dtype (as tensorbridge reads it)."""

    __slots__ = ("name", "row_shape", "npd", "bf16", "tag", "stored", "facts")

    def __init__(self, name: str, shape: Tuple[int, ...], dt: np.dtype, path: str, stored: bool,
                 facts: Optional[tuple] = None):
        if len(shape) == 0:
            raise ValueError(f"{path}: {name!r} is a 0-d array; rows need at least one dimension")
        self.name, self.row_shape, self.stored = name, tuple(shape[1:]), stored
        # A remote .npy object's header facts and ETag from the driver's header pass
        # (``_core.npy_headers``), or a remote stored .npz member's (``info()``'s
        # ``member_facts``): its read tasks make only their rows' ranged GETs.
        self.facts = facts
        self.bf16 = dt.kind == "V" and dt.itemsize == 2 and dt.fields is None
        if dt.kind == "c":
            raise TypeError(f"{path}: {name!r} is {dt.name}, which has no Arrow type "
                            "(complex columns are not supported by tb.ray)")
        if not self.bf16 and (dt.kind not in "biuf" or dt.newbyteorder("=").name not in _SUPPORTED):
            raise TypeError(f"{path}: {name!r} has dtype {dt.str!r}, which tensorbridge cannot read")
        self.npd = np.dtype(np.uint16) if self.bf16 else dt.newbyteorder("=")
        if dt.kind == "b":
            self.npd = np.dtype(np.uint8)  # NumPy bools are bytes 0/1: zero-copy as uint8
        self.tag = "bfloat16" if self.bf16 else ("bool" if dt.kind == "b" else None)

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.npd.itemsize

    def same(self, other: "_Column") -> bool:
        return (self.row_shape, self.npd, self.tag) == (other.row_shape, other.npd, other.tag)

    def describe(self) -> str:
        return f"row shape {self.row_shape}, dtype {self.tag or self.npd.name}"

    def field(self) -> Any:
        import pyarrow as pa

        value = pa.from_numpy_dtype(self.npd)
        typ = value if not self.row_shape else pa.fixed_shape_tensor(value, list(self.row_shape))
        meta = {_META_KEY: self.tag.encode()} if self.tag else None
        return pa.field(self.name, typ, nullable=False, metadata=meta)


def _npy_columns(path: str) -> Tuple[int, List[_Column]]:
    try:
        with open(path, "rb") as f:
            shape, _fortran, dt = _header(f, path, "the file")
    except OSError as e:
        raise OSError(f"{path}: cannot read the header: {e}") from e
    col = _Column("data", shape, dt, path, True)
    return shape[0], [col]


def _npz_columns(path: str, keys: Optional[List[str]]) -> Tuple[int, List[_Column]]:
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz archive: {e}") from e
    with zf:
        members = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i
                   for i in zf.infolist()}
        names = list(members) if keys is None else keys
        if not names:
            raise ValueError(f"{path}: the archive has no members")
        cols, n_rows = [], None
        for name in names:
            info = members.get(name)
            if info is None:
                raise KeyError(f"{path}: no member {name!r} (members: {sorted(members)})")
            with zf.open(info) as f:
                shape, _fortran, dt = _header(f, path, f"member {name!r}")
            col = _Column(name, shape, dt, path, info.compress_type == zipfile.ZIP_STORED)
            if n_rows is None:
                n_rows = shape[0]
            elif shape[0] != n_rows:
                raise ValueError(f"{path}: member {name!r} has {shape[0]} rows but "
                                 f"{names[0]!r} has {n_rows}; every column needs the same rows")
            cols.append(col)
    assert n_rows is not None  # names is not empty
    return int(n_rows), cols


def _remote_dtype(descr: str, url: str, what: str) -> np.dtype:
    try:
        return np.dtype(descr)
    except TypeError as e:
        raise TypeError(f"{url}: {what} has dtype {descr!r}, which tensorbridge cannot read") from e


def remote_npy_columns(urls: List[str], storage_options: Optional[Dict[str, str]]
                       ) -> List[Tuple[int, List[_Column]]]:
    """Row counts and columns of the ``.npy`` objects ``urls``: their headers only,
    fetched concurrently by the core (one small ranged read each). A Fortran-ordered
    array of 2+ dimensions is marked to be read whole (its rows lie apart). Each
    column keeps its object's header facts and ETag for the read tasks."""
    from . import _core

    out = []
    for url, facts in zip(urls, _core.npy_headers(urls, storage_options)):
        shape, descr, fortran = facts[0], facts[1], facts[2]
        shp = tuple(shape)
        col = _Column("data", shp, _remote_dtype(descr, url, "the object"), url,
                      not (fortran and len(shp) > 1), facts)
        out.append((shp[0], [col]))
    return out


def remote_npz_columns(urls: List[str], keys: Optional[List[str]],
                       storage_options: Optional[Dict[str, str]]) -> List[Tuple[int, List[_Column]]]:
    """Row counts and columns of the ``.npz`` objects ``urls``: each archive's central
    directory (one read of its end) and its members' headers, archives in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    from . import _core

    def one(url: str) -> Tuple[int, List[_Column]]:
        try:
            h = _core.NpzArchiveHandle(url, storage_options)
        except (ValueError, OSError) as e:
            if isinstance(e, (FileNotFoundError, PermissionError)):
                raise
            raise ValueError(f"{url}: not a readable .npz archive: {e}") from e
        members = h.keys()
        names = list(members) if keys is None else keys
        if not names:
            raise ValueError(f"{url}: the archive has no members")
        cols: List[_Column] = []
        n_rows: Optional[int] = None
        for name in names:
            if name not in members:
                raise KeyError(f"{url}: no member {name!r} (members: {sorted(members)})")
            info = h.info(name)
            if "shape" not in info:
                raise ValueError(f"{url}: member {name!r} is not a valid .npy header")
            shape = tuple(info["shape"])
            fortran = bool(info["fortran_order"]) and len(shape) > 1
            # A stored member's facts (where its image lies, its header, the archive's
            # ETag): its read tasks make only their rows' ranged GETs.
            col = _Column(name, shape, _remote_dtype(info["dtype"], url, f"member {name!r}"), url,
                          info["compression"] == "stored" and not fortran, info.get("member_facts"))
            if n_rows is None:
                n_rows = shape[0]
            elif shape[0] != n_rows:
                raise ValueError(f"{url}: member {name!r} has {shape[0]} rows but "
                                 f"{names[0]!r} has {n_rows}; every column needs the same rows")
            cols.append(col)
        assert n_rows is not None  # names is not empty
        return int(n_rows), cols

    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        return list(pool.map(one, urls))


# ----------------------------------------------------------------- reading

def _block(path: str, kind: str, cols: List[_Column], start: int, stop: int,
           storage_options: Optional[Dict[str, str]] = None) -> Any:
    """Runs in a Ray worker: rows ``start:stop`` of ``path`` as a ``pyarrow.Table``."""
    import pyarrow as pa

    import tensorbridge as tb
    from .arrow import ndarray_to_arrow

    try:
        arrays, fields = [], []
        if _is_url(path):
            sources = [(c, _remote_rows(tb, path, kind, c, start, stop, storage_options))
                       for c in cols]
            base = start
        elif kind == "npy":
            sources = [(cols[0], _load_npy(tb, path, cols[0]))]
            base = 0
        else:
            sources = [(c, _npz_member(tb, path, c)) for c in cols]
            base = 0
        for col, t in sources:
            if t.ndim == 0 or tuple(t.shape[1:]) != col.row_shape or t.shape[0] + base < stop:
                raise ValueError(f"changed since its header was read: now shape {tuple(t.shape)}, "
                                 f"expected rows ≥ {stop} of {col.describe()}")
            arr = t[start - base:stop - base].numpy()
            if col.tag:
                arr = arr.view(col.npd)  # bfloat16 → uint16 bits, bool → uint8 bytes
            arrays.append(ndarray_to_arrow(arr))
            fields.append(col.field())
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    except Exception as e:  # noqa: BLE001 - every error names the file and rows
        raise type(e)(f"{path} (rows {start}:{stop}): {e}") if _simple_ctor(e) else \
            RuntimeError(f"{path} (rows {start}:{stop}): {type(e).__name__}: {e}") from e


def _remote_rows(tb: Any, url: str, kind: str, col: _Column, start: int, stop: int,
                 storage_options: Optional[Dict[str, str]]) -> Any:
    """Rows ``start:stop`` of an object's column, by ranged reads of those rows only
    (a column marked to be read whole — deflated member, Fortran order — is read
    whole, once, and sliced). An ``.npy`` object's rows, and a stored ``.npz``
    member's, are its only requests: the driver's header facts travel with the task,
    and each GET asks for the driver's ETag, so an object replaced since the driver
    read it is an error."""
    from . import _core

    dtype = tb.bfloat16 if col.bf16 else None
    if kind == "npz":
        member = col.facts if col.stored else None  # no directory or header read
        return _core.load_npz_rows(url, col.name, start, stop, dtype, storage_options, member)
    if col.stored:
        # With the driver's facts: no HEAD, no header read; If-Match the driver's ETag.
        return _core.load_npy_rows(url, start, stop, dtype, storage_options, col.facts)
    whole = tb.load(url, dtype=dtype, storage_options=storage_options)
    return whole[start:stop]


def _simple_ctor(e: BaseException) -> bool:
    return type(e) in (ValueError, TypeError, OSError, KeyError, RuntimeError, FileNotFoundError)


def _load_npy(tb: Any, path: str, col: _Column) -> Any:
    dtype = tb.bfloat16 if col.bf16 else None
    try:
        return tb.load(path, mmap=True, dtype=dtype)
    except ValueError:
        # Not mappable as it lies (big-endian, Fortran order, unaligned): read with a copy.
        return tb.load(path, mmap=False, dtype=dtype)


def _npz_member(tb: Any, path: str, col: _Column) -> Any:
    dtype = tb.bfloat16 if col.bf16 else None
    with tb.load(path, mmap=True, dtype=dtype) as z:
        try:
            return z[col.name]
        except ValueError:
            pass  # stored unaligned (np.savez does not align members) or deflated
    with tb.load(path, mmap=False, dtype=dtype) as z:
        return z[col.name]  # read with one copy


# ----------------------------------------------------------------- datasource

def _tag(field: Any) -> Optional[str]:
    md = field.metadata or {}
    tag = md.get(_META_KEY)
    return None if tag is None else tag.decode()


def require_ray() -> Any:
    """Import Ray (with Ray Data), or an ImportError saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError(f'tensorbridge.ray needs Ray Data: pip install "ray[data]" ({e})') from e
    return ray
