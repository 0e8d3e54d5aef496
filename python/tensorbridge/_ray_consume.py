"""``Dataset.from_ray``: the rows of Ray Data as a tensorbridge pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Tuple

if TYPE_CHECKING:
    from ._convert import Tensor


def _from_ray(source: Any, columns: Any = None) -> Tuple[Any, Any]:
    """The core dataset (and its element structure) behind ``Dataset.from_ray``:
    a ``tb.data.Dataset`` whose elements are the rows of a ``ray.data.Dataset`` or of a
    ``ray.data.DataIterator`` (``streaming_split``, ``ray.train.get_dataset_shard``).

    Elements: a dict of tensors keyed by column, or a single tensor when ``columns`` is
    one name. Each Ray block crosses into the core once (its columns as tensors, one
    Python call per block) and its rows are split off in Rust (``unbatch``); rows are
    zero-copy tensor views of the Arrow blocks Ray delivers
    (``fixed_shape_tensor``, fixed-size-list and primitive columns; bfloat16 columns
    written by :func:`tensorbridge.ray.read_npy` come back as bfloat16).

    The row count must be known up front (``tb.data`` datasets have exact cardinality):
    a ``Dataset`` is counted with ``count()`` (metadata only for :func:`tensorbridge.ray.read_npy`); a
    ``DataIterator`` is first ``materialize()``-d into Ray's object store (its blocks, not
    this process's memory). Each epoch of the tb dataset iterates the Ray data again;
    run one iteration of it at a time (the rows come through one Ray iterator).
    """
    from ._ray_files import _tag, require_ray
    from ._structure import _LEAF
    from . import _core

    ray = require_ray()
    import pyarrow as pa

    from ._convert import convert_to_tensor
    from ._dtypes import dtype as _dtype
    from .arrow import from_arrow

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

    state: Dict[str, Any] = {"it": None, "rows": 0}

    def block(index: list) -> list:
        # Called once per Ray block (the unbatch below asks for the next block only
        # when the current one's rows are used up, and take(n) stops asking after the
        # n-th row): the block's columns cross into the core as tensors over Ray's
        # Arrow buffers, and its rows come out in Rust.
        if int(index[0].numpy()) == 0:  # a new epoch: iterate the Ray data again
            state["it"] = iter(source.iter_batches(batch_size=None, batch_format="pyarrow"))
            state["rows"] = 0
        while True:
            try:
                table = next(state["it"])
            except StopIteration:
                raise RuntimeError(f"from_ray: the Ray data ended after {state['rows']} rows but "
                                   f"count() said {n}") from None
            if table.num_rows:
                break
        state["rows"] += table.num_rows
        out = []
        for name in names:
            t = from_arrow(table.column(name))
            tag = tags[name]
            if tag is not None:  # bfloat16 / bool columns written by read_npy/read_npz
                t = convert_to_tensor(t.numpy().view(_dtype(tag).as_numpy_dtype), copy=False)
            out.append(t)
        if state["rows"] >= n:
            state["it"] = None  # the last block: let Ray's iterator finish and release
        return out

    struct = _LEAF if single else ("dict", {name: _LEAF for name in names})
    why = ("Dataset.from_ray streams rows from Ray, which cannot restart mid-stream at a given "
           "row, so its iterators cannot save or resume their position")
    # range(n) bounds the number of blocks (each holds at least one row).
    blocks = _core._Dataset.range(n).map_py(block, 1, why)
    return blocks.unbatch().take(n).assert_cardinality(n), struct
