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
- A read task of a local file maps it with tensorbridge (``tb.load(path, mmap=True)``; an
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
list of those; each may be a URL of an object store (``s3://bucket/train/*.npy``, a URL
glob listed with one listing of its prefix; a URL ending in ``/``: the objects under it),
configured by ``storage_options`` (object_store keys, as for :func:`tensorbridge.load`;
a plain dict that travels with every read task) or the environment. Over URLs:

- the driver reads headers only, remotely: one small ranged read per ``.npy`` object
  (fetched concurrently), the central directory and the members' headers of an
  ``.npz``; a missing object raises ``FileNotFoundError`` and a corrupt one an error
  naming it, from ``read_npy``/``read_npz`` itself;
- a read task reads its row range by ranged GETs of exactly those rows' bytes,
  straight into the tensor the Arrow column is built over (no file, no mapping); a
  stored ``.npz`` member likewise, a deflated one is inflated once per task (only that
  member) and sliced, a Fortran-ordered array (2+ dimensions) is read whole once per
  task (its rows lie apart).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

from ._ray_files import DEFAULT_BLOCK_BYTES
from ._ray_files import require_ray as _ray
from .data import Dataset

__all__ = ["read_npy", "read_npz", "from_ray", "TensorbridgeDatasource", "DEFAULT_BLOCK_BYTES"]

#: ``tb.data.Dataset.from_ray``, here too (the consuming side of this module).
from_ray = Dataset.from_ray

# ----------------------------------------------------------------- paths

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
    cls = _datasource_class()
    source = cls(paths, kind, keys, rows_per_block, shuffle_files, seed, override_num_blocks,
                 storage_options)
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

    ``paths``: a path, directory, glob or list; URLs and URL globs too (``storage_options``:
    the object store's configuration, see the module docs). ``rows_per_block``: rows per block (default: about 128 MiB per block).
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
