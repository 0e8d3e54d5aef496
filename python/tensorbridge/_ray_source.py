"""The Ray Data datasource class of :mod:`tensorbridge.ray` (imports Ray; kept apart so
that Ray workers unpickle it by reference)."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from . import _ray_files as _r
from ._ray_files import _Column

__all__ = ["TensorbridgeDatasource"]


class TensorbridgeDatasource(Datasource):
    """``.npy`` / ``.npz`` files read by tensorbridge; see the module docs."""

    def __init__(self, paths: Any, kind: str, keys: Optional[Sequence[str]] = None,
                 rows_per_block: Optional[int] = None, shuffle_files: bool = False,
                 seed: Optional[int] = None, override_num_blocks: Optional[int] = None,
                 storage_options: Optional[Dict[str, Any]] = None):
        super().__init__()
        ext = ".npy" if kind == "npy" else ".npz"
        so = _r.storage_dict(storage_options)
        self._storage_options = so
        files = _r._expand(paths, ext, so)
        if shuffle_files:
            order = np.random.default_rng(seed).permutation(len(files))
            files = [files[i] for i in order]
        key_list = None if keys is None else ([keys] if isinstance(keys, str) else list(keys))
        self._kind = kind
        self._files: List[Tuple[str, int, List[_Column]]] = []
        first: Optional[Tuple[str, List[_Column]]] = None
        urls = [f for f in files if _r._is_url(f)]
        if not urls:
            remote: Dict[str, Tuple[int, List[_Column]]] = {}
        elif kind == "npy":
            remote = dict(zip(urls, _r.remote_npy_columns(urls, so)))
        else:
            remote = dict(zip(urls, _r.remote_npz_columns(urls, key_list, so)))
        for f in files:
            if f in remote:
                n, cols = remote[f]
            else:
                n, cols = _r._npy_columns(f) if kind == "npy" else _r._npz_columns(f, key_list)
            if first is None:
                first = (f, cols)
            else:
                want = first[1]
                if [c.name for c in cols] != [c.name for c in want]:
                    raise ValueError(f"{f}: members {[c.name for c in cols]} differ from "
                                     f"{[c.name for c in want]} in {first[0]}")
                for c, w in zip(cols, want):
                    if not c.same(w):
                        raise ValueError(f"{f}: {c.name!r} has {c.describe()} but {first[0]} "
                                         f"has {w.describe()}")
            self._files.append((f, n, cols))
        if rows_per_block is not None and int(rows_per_block) <= 0:
            raise ValueError("rows_per_block must be positive")
        self._rows_per_block = None if rows_per_block is None else int(rows_per_block)
        self._override = override_num_blocks

    def _schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([c.field() for c in self._files[0][2]])

    def _units(self, want: int) -> List[Tuple[str, List[_Column], int, int]]:
        row_bytes = max(1, sum(c.row_bytes for c in self._files[0][2]))
        per = self._rows_per_block or max(1, _r.DEFAULT_BLOCK_BYTES // row_bytes)
        units = []
        for f, n, cols in self._files:
            step = per if all(c.stored for c in cols) else max(n, 1)  # deflated: one block
            for s in range(0, n, step):
                units.append((f, cols, s, min(n, s + step)))
        if self._override is not None and self._rows_per_block is None and len(units) < want:
            # The caller asked for more blocks: split the biggest ranges further.
            while len(units) < want:
                i = max(range(len(units)), key=lambda k: units[k][3] - units[k][2])
                f, cols, s, e = units[i]
                if e - s < 2:
                    break
                m = (s + e) // 2
                units[i:i + 1] = [(f, cols, s, m), (f, cols, m, e)]
        return units

    def estimate_inmemory_data_size(self) -> Optional[int]:
        return sum(n * sum(c.row_bytes for c in cols) for _f, n, cols in self._files)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: Optional[int] = None,
                       data_context: Any = None) -> List[Any]:
        units = self._units(max(1, parallelism))
        if not units:
            return []
        if self._override is None and self._rows_per_block is not None:
            groups = len(units)  # the caller chose the block size: one task per block
        else:
            groups = max(1, min(parallelism, len(units)))
        schema = self._schema()
        tasks = []
        bounds = np.linspace(0, len(units), groups + 1).astype(int)
        kind, so = self._kind, self._storage_options
        for g in range(groups):
            chunk = units[bounds[g]:bounds[g + 1]]
            if not chunk:
                continue
            rows = sum(e - s for _f, _c, s, e in chunk)
            size = sum((e - s) * sum(c.row_bytes for c in cols) for _f, cols, s, e in chunk)
            spec = [(f, cols, s, e) for f, cols, s, e in chunk]

            def read(spec: list = spec) -> Iterable[Any]:
                for f, cols, s, e in spec:
                    yield _r._block(f, kind, cols, s, e, so)

            meta = BlockMetadata(num_rows=rows, size_bytes=size,
                                 input_files=tuple(sorted({f for f, *_ in chunk})), exec_stats=None)
            tasks.append(ReadTask(read, meta, schema=schema, per_task_row_limit=per_task_row_limit))
        return tasks

    def get_name(self) -> str:
        return "TensorbridgeNpy" if self._kind == "npy" else "TensorbridgeNpz"
