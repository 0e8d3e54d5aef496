"""``tb.ray``: tensorbridge's ``.npy``/``.npz`` reader as a Ray Data datasource, and
``from_ray`` to feed Ray data into a ``tb.data.Dataset``.

Imported only when used (``tb.ray``); without Ray an ``ImportError`` says
``pip install "ray[data]"``.

    >>> ds = tb.ray.read_npy("shards/*.npy")             # headers only, on the driver
    >>> ds.count(), ds.schema()                          # exact, no data read
    >>> for batch in ds.iter_batches(batch_size=256, batch_format="numpy"):
    ...     batch["data"]                                # (256, *row_shape) arrays

How it reads:

- The driver reads only the files' headers: exact row counts and byte sizes go into
  each read task's ``BlockMetadata`` and the Arrow schema into the task, so
  ``count()`` and ``schema()`` read no data.
- Each file is cut into row ranges of ``rows_per_block`` rows (default: blocks of about
  128 MiB), so one big file becomes many parallel read tasks. With ``rows_per_block``
  given, each range is its own read task; otherwise, with more ranges than Ray's
  requested parallelism, consecutive ranges share a task (one block each).
  ``override_num_blocks`` asks for exactly that many tasks (ranges are grouped, or
  halved when there are too few).
- A read task maps its file with tensorbridge (``tb.load(path, mmap=True)``; an
  ``.npz`` member is mapped when stored and aligned, else read/decompressed), slices
  its rows and returns a ``pyarrow.Table`` whose column is an ``arrow.fixed_shape_tensor``
  array built **zero-copy** over the mapped memory (the Arrow buffer keeps the mapping
  alive); Ray then serialises the block into its object store, as it does for every
  datasource. 1-d arrays give a primitive column. Columns: ``data`` for ``.npy`` (the
  name ``ray.data.read_numpy`` uses), the member names for ``.npz``.
- Types: ints, uints, float16/32/64 as themselves. Two dtypes travel as raw bytes,
  zero-copy, with the field metadata ``{b"tensorbridge.dtype": b"<name>"}``: **bool** as
  ``uint8`` 0/1 (Arrow packs bools into bits, and Ray/pyarrow cannot turn a bool
  ``fixed_shape_tensor`` into NumPy), and **bfloat16**, which has no Arrow type (NumPy
  writes it as ``'<V2'``; every 2-byte void ``.npy`` is taken as bfloat16), as its
  ``uint16`` bits. View such a batch with
  ``batch["data"].view(bool)`` / ``.view(ml_dtypes.bfloat16)``, or use :func:`from_ray`,
  which reads the metadata and gives bool / bfloat16 tensors. complex has no Arrow type
  and is refused with an error naming the file. Big-endian or Fortran-order files are
  converted while read (one copy).
- Every error names the file (and row range) it came from.

``paths``: a path, a directory (its ``*.npy`` / ``*.npz`` files, sorted), a glob, or a
list of those. URLs (``s3://...``) and ``storage_options`` need tensorbridge's
object-storage support, which has not landed: they raise ``NotImplementedError``.
"""

from __future__ import annotations

import glob as _glob
import os
import zipfile
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["read_npy", "read_npz", "from_ray", "TensorbridgeDatasource", "DEFAULT_BLOCK_BYTES"]

#: Target bytes per block when ``rows_per_block`` is not given.
DEFAULT_BLOCK_BYTES = 128 * 1024 * 1024

_META_KEY = b"tensorbridge.dtype"
_SUPPORTED = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64")


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError(f'tensorbridge.ray needs Ray Data: pip install "ray[data]" ({e})') from e
    return ray


# ----------------------------------------------------------------- paths

def _is_url(p: str) -> bool:
    return "://" in p


def _expand(paths: Any, ext: str) -> List[str]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ValueError("no paths given")
    out: List[str] = []
    for item in items:
        p = os.fspath(item)
        if _is_url(p):
            raise NotImplementedError(
                f"{p!r}: URLs need tensorbridge's object-storage support, which has not landed yet; "
                "tb.ray reads local paths (a path, a directory, a glob or a list)")
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
    return [os.path.abspath(p) for p in out]


# ----------------------------------------------------------------- headers

def _header(f: Any, path: str, what: str) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dt = fmt.read_array_header_1_0(f)
        else:
            shape, fortran, dt = fmt.read_array_header_2_0(f) if version == (2, 0) else \
                fmt._read_array_header(f, version)  # 3.0: utf-8 header
    except Exception as e:  # noqa: BLE001 - re-raised naming the file
        raise ValueError(f"{path}: {what} is not a valid .npy header: {e}") from e
    return tuple(shape), bool(fortran), dt


class _Column:
    """One column's facts, from a header: row shape, dtype (as tensorbridge reads it)."""

    __slots__ = ("name", "row_shape", "npd", "bf16", "tag", "stored")

    def __init__(self, name: str, shape: Tuple[int, ...], dt: np.dtype, path: str, stored: bool):
        if len(shape) == 0:
            raise ValueError(f"{path}: {name!r} is a 0-d array; rows need at least one dimension")
        self.name, self.row_shape, self.stored = name, tuple(shape[1:]), stored
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
    return int(n_rows), cols


# ----------------------------------------------------------------- reading

def _block(path: str, kind: str, cols: List[_Column], start: int, stop: int) -> Any:
    """Runs in a Ray worker: rows ``start:stop`` of ``path`` as a ``pyarrow.Table``."""
    import pyarrow as pa

    import tensorbridge as tb
    from .arrow import ndarray_to_arrow

    try:
        arrays, fields = [], []
        if kind == "npy":
            sources = [(cols[0], _load_npy(tb, path, cols[0]))]
        else:
            sources = [(c, _npz_member(tb, path, c)) for c in cols]
        for col, t in sources:
            if t.ndim == 0 or tuple(t.shape[1:]) != col.row_shape or t.shape[0] < stop:
                raise ValueError(f"changed since its header was read: now shape {tuple(t.shape)}, "
                                 f"expected rows ≥ {stop} of {col.describe()}")
            arr = t[start:stop].numpy()
            if col.tag:
                arr = arr.view(col.npd)  # bfloat16 → uint16 bits, bool → uint8 bytes
            arrays.append(ndarray_to_arrow(arr))
            fields.append(col.field())
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    except Exception as e:  # noqa: BLE001 - every error names the file and rows
        raise type(e)(f"{path} (rows {start}:{stop}): {e}") if _simple_ctor(e) else \
            RuntimeError(f"{path} (rows {start}:{stop}): {type(e).__name__}: {e}") from e


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

def _datasource_class() -> type:
    """The ``ray.data.Datasource`` subclass (importing Ray)."""
    _ray()
    from ._ray_source import TensorbridgeDatasource

    return TensorbridgeDatasource


def __getattr__(name: str) -> Any:
    if name == "TensorbridgeDatasource":
        return _datasource_class()
    raise AttributeError(f"module 'tensorbridge.ray' has no attribute {name!r}")


def _read(kind: str, paths: Any, keys: Any, storage_options: Optional[Dict[str, Any]],
          rows_per_block: Optional[int], shuffle_files: bool, seed: Optional[int],
          override_num_blocks: Optional[int], ray_remote_args: Optional[Dict[str, Any]]) -> Any:
    ray = _ray()
    if storage_options is not None:
        raise NotImplementedError("storage_options applies to URLs, which need tensorbridge's "
                                  "object-storage support (not landed yet); tb.ray reads local paths")
    cls = _datasource_class()
    source = cls(paths, kind, keys, rows_per_block, shuffle_files, seed, override_num_blocks)
    kwargs: Dict[str, Any] = {}
    if override_num_blocks is not None:
        kwargs["override_num_blocks"] = int(override_num_blocks)
    if ray_remote_args:
        kwargs["ray_remote_args"] = dict(ray_remote_args)
    return ray.data.read_datasource(source, **kwargs)


def read_npy(paths: Any, *, storage_options: Optional[Dict[str, Any]] = None,
             rows_per_block: Optional[int] = None, shuffle_files: bool = False,
             seed: Optional[int] = None, override_num_blocks: Optional[int] = None,
             ray_remote_args: Optional[Dict[str, Any]] = None) -> Any:
    """A ``ray.data.Dataset`` of the rows of ``.npy`` files (one column, ``data``).

    ``paths``: a path, directory, glob or list (local; URLs need object storage, not
    landed). ``rows_per_block``: rows per block (default: about 128 MiB per block).
    ``shuffle_files``: a seeded random file order. ``override_num_blocks`` and
    ``ray_remote_args`` are passed to ``ray.data.read_datasource``.
    """
    return _read("npy", paths, None, storage_options, rows_per_block, shuffle_files, seed,
                 override_num_blocks, ray_remote_args)


def read_npz(paths: Any, keys: Union[None, str, Sequence[str]] = None, *,
             storage_options: Optional[Dict[str, Any]] = None, rows_per_block: Optional[int] = None,
             shuffle_files: bool = False, seed: Optional[int] = None,
             override_num_blocks: Optional[int] = None,
             ray_remote_args: Optional[Dict[str, Any]] = None) -> Any:
    """A ``ray.data.Dataset`` of the rows of ``.npz`` archives: one column per member
    (``keys``: the members to read, default all; they need the same number of rows).
    Other arguments as :func:`read_npy`. Deflated members are one block per file."""
    return _read("npz", paths, keys, storage_options, rows_per_block, shuffle_files, seed,
                 override_num_blocks, ray_remote_args)


# ----------------------------------------------------------------- consuming side

def _tag(field: Any) -> Optional[str]:
    md = field.metadata or {}
    tag = md.get(_META_KEY)
    return None if tag is None else tag.decode()


def from_ray(source: Any, columns: Union[None, str, Sequence[str]] = None) -> Any:
    """A ``tb.data.Dataset`` whose elements are the rows of a ``ray.data.Dataset`` or of a
    ``ray.data.DataIterator`` (``streaming_split``, ``ray.train.get_dataset_shard``).

    Elements: a dict of tensors keyed by column, or a single tensor when ``columns`` is
    one name. Rows are zero-copy tensor views of the Arrow blocks Ray delivers
    (``fixed_shape_tensor``, fixed-size-list and primitive columns; bfloat16 columns
    written by :func:`read_npy` come back as bfloat16).

    The row count must be known up front (``tb.data`` datasets have exact cardinality):
    a ``Dataset`` is counted with ``count()`` (metadata only for :func:`read_npy`); a
    ``DataIterator`` is first ``materialize()``-d into Ray's object store (its blocks, not
    this process's memory). Each epoch of the tb dataset iterates the Ray data again;
    run one iteration of it at a time (the rows come through one Ray iterator).
    """
    ray = _ray()
    import pyarrow as pa

    from ._convert import convert_to_tensor
    from ._dtypes import dtype as _dtype
    from .arrow import from_arrow
    from .data import _LEAF, Dataset, _Struct

    if isinstance(source, ray.data.DataIterator):
        source = source.materialize()
    if not isinstance(source, ray.data.Dataset):
        raise TypeError(f"from_ray expects a ray.data.Dataset or DataIterator, not {type(source).__name__}")
    single = isinstance(columns, str)
    cols = None if columns is None else ([columns] if single else list(columns))
    if cols is not None and not cols:
        raise ValueError("from_ray: columns is empty")
    schema = source.schema()
    names = list(schema.names) if cols is None else cols
    missing = [c for c in names if c not in schema.names]
    if missing:
        raise ValueError(f"from_ray: no column(s) {missing} in the Ray data (columns: {list(schema.names)})")
    # Columns are picked from each block here: a select_columns() stage made Ray's own
    # iteration 2-3x slower when measured (Ray 2.60).
    base_schema = getattr(schema, "base_schema", schema)
    tags = {name: _tag(base_schema.field(name)) if isinstance(base_schema, pa.Schema) else None
            for name in names}
    n = source.count()

    state: Dict[str, Any] = {"it": None, "pos": 0, "block": None, "lo": 0, "hi": 0}

    def restart() -> None:
        state["it"] = iter(source.iter_batches(batch_size=None, batch_format="pyarrow"))
        state["pos"], state["block"], state["lo"], state["hi"] = 0, None, 0, 0

    def next_block() -> None:
        while True:
            table = next(state["it"])  # StopIteration: fewer rows than counted
            if table.num_rows:
                break
        block = []
        for name in names:
            col = table.column(name)
            t = from_arrow(col)
            tag = tags[name]
            if tag is not None:  # bfloat16 / bool columns written by read_npy/read_npz
                t = convert_to_tensor(t.numpy().view(_dtype(tag).as_numpy_dtype), copy=False)
            block.append(t)
        state["block"], state["lo"], state["hi"] = block, state["hi"], state["hi"] + table.num_rows

    def row(tensors: list) -> list:
        i = int(tensors[0].numpy())
        if state["it"] is None or i < state["pos"]:
            restart()
        while i >= state["hi"]:
            try:
                next_block()
            except StopIteration:
                raise RuntimeError(f"from_ray: the Ray data ended after {state['hi']} rows but "
                                   f"count() said {n}") from None
        state["pos"] = i + 1
        k = i - state["lo"]
        out = [t[k] for t in state["block"]]
        if i == n - 1:
            state["it"] = None  # the last row: let Ray's iterator finish and release its blocks
        return out

    struct = _LEAF if single else ("dict", {name: _LEAF for name in names})
    base = Dataset.range(n)
    return Dataset(base._ds.map_py(row, 1), _Struct(struct))
