"""``tb.data``: a streaming input pipeline in the model of ``tf.data``, run in Rust.

    >>> ds = (tb.data.Dataset.from_tensor_slices((images, labels))
    ...       .shuffle(1024, seed=0)
    ...       .map((tb.ops.cast(tb.float32), None))
    ...       .map((tb.ops.scale(1 / 255), None))
    ...       .batch(128)
    ...       .prefetch(2))
    >>> for x, y in ds: ...                     # tb.Tensor batches (zero-copy .numpy())
    >>> model.fit(ds.to_tensorflow())           # a tf.data.Dataset

Names and semantics follow ``tf.data``: same elements, order and batch shapes for the
same pipeline without shuffle. Slicing, built-in ops (:mod:`tensorbridge.ops`, fused
into one pass and written straight into the batch buffer), shuffling, batching and
prefetching run on Rust threads that never hold the GIL; iteration releases the GIL
while it waits. ``shuffle`` is tf.data's buffer shuffle with tensorbridge's own PRNG
(SplitMix64): deterministic for a given seed across runs and machines, a different
order each epoch unless ``reshuffle_each_iteration=False`` — not tf.data's order.

Any Python callable also works as a ``map`` function (the slower path: it runs with the
GIL, on ``num_parallel_calls`` worker threads, order kept); exceptions it raises
propagate to the loop as the same exception object, with its traceback. Warnings
(files skipped by ``from_files(..., on_error="skip")``) are raised by the iterator that
met them. Leaving a loop early, an exception, or
dropping an iterator stops and joins every worker thread and frees every buffer.

``iter(ds)`` and ``ds.iterator(state=None)`` give a :class:`DatasetIterator`: its
``get_state()`` (a small JSON-serialisable dict: counters, seeds, the source positions of
the elements in flight, no data) lets ``ds.iterator(state)`` — in this process or another —
resume with exactly the elements that would have come next (see ``tensorbridge._iterator``).

``from_tensor_slices`` keeps zero-copy views of NumPy arrays where it can (as
``tb.convert_to_tensor(x, copy=False)``): changing the array while a pipeline runs
changes what it yields.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional


from . import _core
from ._convert import Tensor, convert_to_tensor
from ._combine import _Combinators
from ._iterator import DatasetIterator
from .ops import Op
from ._structure import _LEAF, _Progress, _count, _flatten, _to_tensor, _unflatten

__all__ = ["Dataset", "DatasetIterator", "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY"]

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2

def _ops_per_leaf(spec: Any, struct: Any, path: str = "") -> list:
    """Match a structure of ops (``None`` = keep) against the element structure."""
    if spec is None:
        return [None] * _count(struct)
    if isinstance(spec, Op):
        return [spec._specs] * _count(struct)
    if struct is _LEAF:
        raise ValueError(f"map ops: expected a tb.ops op or None at {path or 'the top level'}, "
                         f"got {type(spec).__name__}")
    kind = struct[0]
    if kind in ("tuple", "namedtuple") and isinstance(spec, tuple):
        subs = struct[-1]
        if len(spec) != len(subs):
            raise ValueError(f"map ops{path}: the element has {len(subs)} components but "
                             f"{len(spec)} ops were given")
        out = []
        for i, (o, s) in enumerate(zip(spec, subs)):
            out.extend(_ops_per_leaf(o, s, f"{path}[{i}]"))
        return out
    if kind == "dict" and isinstance(spec, dict):
        extra = set(spec) - set(struct[1])
        if extra:
            raise ValueError(f"map ops{path}: keys {sorted(map(repr, extra))} are not in the element")
        out = []
        for k, s in struct[1].items():
            out.extend(_ops_per_leaf(spec.get(k), s, f"{path}[{k!r}]"))
        return out
    raise ValueError(f"map ops{path}: the structure of the ops does not match the element's")


def _is_op_structure(fn: Any) -> bool:
    if fn is None or isinstance(fn, Op):
        return True
    if isinstance(fn, tuple):
        return all(_is_op_structure(f) for f in fn)
    if isinstance(fn, dict):
        return all(_is_op_structure(f) for f in fn.values())
    return False


class _Struct:
    """An element structure, possibly known only once a Python map function has run."""

    __slots__ = ("value", "known")

    def __init__(self, value: Any = _LEAF, known: bool = True):
        self.value, self.known = value, known


# ----------------------------------------------------------------- Dataset

class Dataset(_Combinators):
    """A pipeline of stages; iterate it for ``tb.Tensor`` elements (or tuples/dicts)."""

    __slots__ = ("_ds", "_struct", "_progress", "_batched")

    def __init__(self, ds: Any, struct: _Struct, progress: Optional[str] = None,
                 batched: bool = False):
        self._ds, self._struct, self._progress, self._batched = ds, struct, progress, batched

    def _derive(self, ds: Any, struct: Optional[_Struct] = None, batched: Optional[bool] = None) -> "Dataset":
        return Dataset(ds, struct or self._struct, self._progress,
                       self._batched if batched is None else batched)

    # sources
    @staticmethod
    def from_tensor_slices(x: Any) -> "Dataset":
        """Elements are the axis-0 slices of ``x`` (an array/tensor, or a tuple or dict
        of them, all with the same leading dimension)."""
        struct, leaves = _flatten(x)
        names = [path for path, _ in leaves]
        tensors = [_to_tensor(v) for _, v in leaves]
        return Dataset(_core._Dataset.from_tensor_slices(tensors, names), _Struct(struct))

    @staticmethod
    def from_files(paths_or_glob: Any, keys: Any = None, *, shuffle_files: bool = False,
                   seed: Optional[int] = None, cycle_length: int = 1, block_length: int = 1,
                   on_error: str = "raise",
                   storage_options: Optional[Dict[str, str]] = None) -> "Dataset":
        """Elements are the rows (axis-0 slices) of many ``.npy`` files, or of chosen
        members of ``.npz`` files, read lazily.

        ``paths_or_glob``: a path, a glob pattern (``"shards/*.npy"``, expanded and
        sorted), or a list of paths (kept in the given order). ``keys``: for ``.npz``
        files, a member name (elements are single tensors) or a list/tuple of names
        (elements are tuples); ``None`` for ``.npy`` files (or ``.npz`` files holding a
        single array).

        Only the headers are read here, so ``len(ds)`` is known; files whose row shape
        or dtype disagree raise ``ValueError`` naming the file. While iterating, files
        are opened in order (``shuffle_files=True``: a seeded new order each epoch),
        ``cycle_length`` at a time and read round-robin ``block_length`` rows at a time
        (tf.data's ``interleave`` order), each memory-mapped when opened and released
        after its last row. A file missing, corrupt or changed mid-stream raises an
        error naming it; ``on_error="skip"`` skips it with a ``RuntimeWarning``
        instead (the cardinality then overstates the elements).

        Paths may be URLs of an object store (``"s3://bucket/train/*.npy"``;
        ``storage_options`` as for :func:`tensorbridge.load`): a pattern is matched
        over one listing of its prefix (sorted, like a local glob), the headers of all
        objects are read concurrently (at most 64 requests in flight; for ``.npz`` the
        central directory and the chosen members' headers). An ``.npy`` object's rows
        are streamed by ranged GETs of 8 MiB planned from its header (no request to
        open it), issued in the order the rows are needed, across object boundaries,
        within one read-ahead budget per iterator (32 MiB, plus one GET per open
        object); ``.npz`` members stream through ranged reads with read-ahead. Memory
        does not grow with an object's size. Rows come in the same order as from local copies; a restored
        iterator state starts an ``.npy`` object's stream at its row's byte offset (an
        ``.npz`` member is read again from its start up to that row). Fortran-ordered
        arrays of more than one dimension are read whole when opened.
        """
        import glob as _glob
        import os

        if isinstance(paths_or_glob, str) and "://" in paths_or_glob and not paths_or_glob.startswith("file://"):
            if _glob.has_magic(paths_or_glob):
                paths = _core.glob_urls(paths_or_glob, storage_options)
                if not paths:
                    raise FileNotFoundError(f"from_files: no objects match {paths_or_glob!r}")
            else:
                paths = [paths_or_glob]
        elif isinstance(paths_or_glob, (str, os.PathLike)):
            p = os.fspath(paths_or_glob)
            if _glob.has_magic(p):
                paths = sorted(_glob.glob(p))
                if not paths:
                    raise FileNotFoundError(f"from_files: no files match {p!r}")
            else:
                paths = [p]
        else:
            paths = [os.fspath(x) for x in paths_or_glob]
        if keys is None or isinstance(keys, str):
            key_list = None if keys is None else [keys]
            struct = _Struct()
        else:
            key_list = [str(k) for k in keys]
            struct = _Struct(("tuple", tuple(_LEAF for _ in key_list)))
        if seed is not None:
            seed = int(seed) & 0xFFFF_FFFF_FFFF_FFFF
        ds = _core._Dataset.from_files(paths, key_list, bool(shuffle_files), seed,
                                       int(cycle_length), int(block_length), str(on_error),
                                       storage_options)
        return Dataset(ds, struct)

    @staticmethod
    def range(n: int) -> "Dataset":
        """The int64 scalars ``0 .. n-1``."""
        return Dataset(_core._Dataset.range(int(n)), _Struct())

    # transforms
    def map(self, fn: Any, num_parallel_calls: Optional[int] = None) -> "Dataset":
        """Apply a built-in op (``tb.ops``), a tuple/dict of ops mirroring the element
        (``None`` keeps a component), or any Python callable (tuple elements are passed
        as positional arguments, like tf.data).

        A callable runs on ``num_parallel_calls`` threads (``None``/``AUTOTUNE``: one
        per core; more than ``max(64, cores)`` is clamped to that). An exception it
        raises reaches the loop as the same object, with its traceback."""
        if _is_op_structure(fn) and fn is not None:
            if isinstance(fn, Op):
                return self._derive(self._ds.map_ops("all", fn._specs))
            if not self._struct.known:
                raise ValueError("map with a structure of ops needs a known element structure; "
                                 "apply it before the Python map function")
            return self._derive(self._ds.map_ops("each", _ops_per_leaf(fn, self._struct.value)))
        if not callable(fn):
            raise TypeError(f"map() takes a tb.ops op, a tuple/dict of them, or a callable, "
                            f"not {type(fn).__name__}")
        n = None if num_parallel_calls is None else int(num_parallel_calls)
        in_struct, out_struct = self._struct, _Struct(known=False)

        def call(tensors: list) -> list:
            elem = _unflatten(in_struct.value, iter(tensors))
            out = fn(*elem) if isinstance(elem, tuple) else fn(elem)
            s, leaves = _flatten(out)
            if not out_struct.known:
                out_struct.value, out_struct.known = s, True
            return [_to_tensor(v) for _, v in leaves]

        return self._derive(self._ds.map_py(call, n), out_struct, batched=False)

    def shuffle(self, buffer_size: int, seed: Optional[int] = None,
                reshuffle_each_iteration: bool = True) -> "Dataset":
        """tf.data's buffer shuffle (tensorbridge's own seeded PRNG). ``buffer_size``
        > 0, or ``UNKNOWN_CARDINALITY`` (-2) to shuffle the whole (finite) dataset."""
        if seed is not None:
            seed = int(seed) & 0xFFFF_FFFF_FFFF_FFFF
        return self._derive(self._ds.shuffle(int(buffer_size), seed, bool(reshuffle_each_iteration)))

    def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        """Stack ``batch_size`` consecutive elements (``batch_size`` > 0; one larger
        than the data gives one short batch, as tf.data)."""
        return self._derive(self._ds.batch(int(batch_size), bool(drop_remainder)), batched=True)

    def prefetch(self, buffer_size: int = AUTOTUNE) -> "Dataset":
        """Produce up to ``buffer_size`` elements ahead on a background thread
        (``AUTOTUNE``: 2; ``0`` counts as 1; more than 4096 is clamped to 4096)."""
        n = AUTOTUNE if buffer_size is None else int(buffer_size)
        return self._derive(self._ds.prefetch(n))

    def repeat(self, count: Optional[int] = None) -> "Dataset":
        return self._derive(self._ds.repeat(-1 if count is None else int(count)))

    def take(self, count: int) -> "Dataset":
        return self._derive(self._ds.take(int(count)))

    def skip(self, count: int) -> "Dataset":
        return self._derive(self._ds.skip(int(count)))

    def shard(self, num_shards: int, index: int) -> "Dataset":
        return self._derive(self._ds.shard(int(num_shards), int(index)))

    def progress(self, desc: str = "") -> "Dataset":
        """The same dataset, printing a progress line on stderr while iterated."""
        return Dataset(self._ds, self._struct, desc, self._batched)

    # facts
    def cardinality(self) -> int:
        """Elements per epoch, or ``INFINITE_CARDINALITY`` (-1) / ``UNKNOWN_CARDINALITY`` (-2)."""
        return self._ds.cardinality()

    def __len__(self) -> int:
        n = self._ds.cardinality()
        if n == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if n == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return n

    def _flat_spec(self) -> list:
        """``[(shape, tb.DType), ...]`` per component; runs one element if a Python
        function decides it."""
        spec = self._ds.element_spec()
        if spec is not None:
            return [(tuple(s), d) for d, s in spec]
        it = self._ds.iterate()
        try:
            first = next(iter(it), None)
        finally:
            it.close()
        if first is None:
            raise ValueError("cannot infer the element spec of an empty dataset")
        batched = self._batched  # a batch after the Python function: leading dim varies
        return [((None,) + tuple(t.shape[1:]) if batched else tuple(t.shape), t.dtype) for t in first]

    @property
    def element_spec(self) -> Any:
        """The element structure with ``(shape, dtype)`` pairs (``None`` = unknown dim)."""
        flat = self._flat_spec()
        return _unflatten(self._struct.value, iter(flat))

    # iteration
    def __iter__(self) -> "DatasetIterator":
        """One epoch: a :class:`DatasetIterator` (``get_state``/``set_state``)."""
        return DatasetIterator(self)

    def iterator(self, state: Any = None) -> "DatasetIterator":
        """One epoch as a :class:`DatasetIterator`, started afresh or resumed from
        ``state`` (a dict from ``DatasetIterator.get_state()``, or its JSON text)
        saved by an iterator of a dataset built the same way — in this process or
        another. The resumed iterator yields exactly the elements the saved one
        would have yielded next (bit-identical, same batch boundaries). A state of a
        different pipeline raises ``ValueError`` naming the first stage that differs.
        Unseeded shuffles continue with the seed the state recorded."""
        return DatasetIterator(self, state)

    def as_numpy_iterator(self) -> Iterator[Any]:
        """Elements as NumPy arrays (zero-copy, read-only views of the tensors)."""
        for elem in self:
            s, leaves = _flatten(elem)
            yield _unflatten(s, iter([t.numpy() for _, t in leaves]))

    def _flat_epoch(self, convert: Any) -> Iterator[Any]:
        """One epoch, each element rebuilt in its structure from ``convert(tensor)``
        per component: no per-element Python beyond that (a batch is one element)."""
        it = self._ds.iterate()
        struct = self._struct
        try:
            for flat in it:
                yield _unflatten(struct.value, iter([convert(t) for t in flat]))
        finally:
            it.close()

    def to_tensorflow(self, as_dataset: bool = True) -> Any:
        """This dataset's elements as TensorFlow tensors.

        ``as_dataset=True`` (default): a ``tf.data.Dataset`` (this dataset's
        ``element_spec`` and cardinality) for ``model.fit``, ``tf.distribute``
        strategies and ``tf.function`` loops over a dataset. Each element (a whole
        batch after ``batch``) is pulled by a native TensorFlow op registered at
        first use (no Python per element; one Python call per epoch opens the
        pipeline) and handed over without a copy (batch buffers are 64-byte
        aligned); the op waits for the pipeline without the GIL. Each iteration of
        the returned dataset is a fresh epoch; the pipeline's threads stop when the
        epoch ends or TensorFlow frees an abandoned iterator. Where the op cannot be
        set up (a TensorFlow build without its C kernel API) a ``RuntimeWarning``
        says why and a slower ``from_generator`` source is used.

        ``as_dataset=False``: a re-iterable object (each ``iter()`` is one epoch)
        yielding ``tf.Tensor``s that share the batch buffers through DLPack: the
        fastest hand-off, for Python / custom ``tf.function`` training loops.
        """
        tf = _require("tensorflow", "Dataset.to_tensorflow")
        if not as_dataset:
            from ._tensorflow import _TFBatches

            return _TFBatches(self)
        from ._tensorflow import native_dataset

        flat = self._flat_spec()
        out = native_dataset(self, tf, flat)
        if out is None:  # the op could not be set up (warned): the generator path
            sig = _unflatten(self._struct.value,
                             iter([tf.TensorSpec(shape=s, dtype=tf.as_dtype(d.name)) for s, d in flat]))
            out = tf.data.Dataset.from_generator(lambda: self._flat_epoch(_np_view),
                                                 output_signature=sig)
        n = self.cardinality()
        if n >= 0:
            out = out.apply(tf.data.experimental.assert_cardinality(n))
        return out

    def to_jax(self, sharding: Any = None, prefetch: int = 2) -> Iterator[Any]:
        """One epoch of this dataset as ``jax.Array``s (structure kept).

        ``sharding`` (e.g. a ``jax.sharding.NamedSharding`` over a mesh): each
        component of each batch is laid out across its devices with one
        ``jax.device_put`` per batch (axis 0 split for data parallelism with
        ``PartitionSpec("data")``; on CPU devices each shard is a view of the batch
        buffer, not a copy). A component whose shape the sharding cannot
        divide (a short last batch: use ``batch(..., drop_remainder=True)``) raises
        ``ValueError`` once the batches before it have been yielded. ``None``: JAX's
        default device (on the CPU each tensor is imported through DLPack, sharing the
        batch buffer as ``Tensor.to_jax``, and nothing needs placing ahead). The next
        ``prefetch`` batches are already placed while the loop works on the current
        one (``0``: none).
        JAX turns 64-bit dtypes into 32-bit ones unless ``jax_enable_x64`` is on; for
        int64 and uint64 components tensorbridge does that cast itself, before the
        hand-off (the same values: wrap-around, as NumPy's ``astype``), which saves
        JAX a conversion per batch.
        """
        jax = _require("jax", "Dataset.to_jax")
        if prefetch < 0:
            raise ValueError(f"to_jax: prefetch must be >= 0, got {prefetch}")
        from ._jax import _jax_batches

        return _jax_batches(self, jax, sharding, int(prefetch))

    def to_torch(self, device: Any = None, pin_memory: bool = False) -> Any:
        """This dataset as a ``torch.utils.data.IterableDataset`` yielding torch
        tensors (structure kept) that share the tensors' memory through DLPack.

        Use it with ``DataLoader(ds.to_torch(), batch_size=None)``: tensorbridge
        batches, the loader passes batches through. Each epoch (each ``iter()``) is
        sharded so every element appears once per epoch: over the loader's
        ``num_workers`` (``get_worker_info``) and, when ``torch.distributed`` is
        initialised, over its ranks too (shard ``worker * world_size + rank`` of
        ``world_size * num_workers``).

        **Sharding at the source.** When the pipeline is a ``from_tensor_slices``,
        ``range`` or ``from_files`` (local files, ``shuffle_files=False``) source
        followed only by maps, ``shuffle``, ``global_shuffle``, ``batch``,
        ``padded_batch``, ``filter`` and ``prefetch``, each process reads only its own
        *source rows* (tf.data's advice: shard right after the source), so ``k``
        workers do ``1/k`` of the work each. Rows are dealt out in blocks of the
        batch size (block ``j`` to shard ``j % num``): without a ``filter``, the shards
        together yield as many batches as one process, rank ``r`` exactly ``len(ds.shard(world_size,
        r))`` of them (its ``len()``), one short batch in all (dropped under
        ``drop_remainder``). Without a shuffle the batches are the very batches of
        one process, in the same order through a DataLoader; with one, each process
        shuffles its own rows, so a batch holds rows of one worker's shard — the
        rows differ from a single-process run's batches (as with tf.data's ``shard``
        after the source, or any sharded PyTorch ``IterableDataset``); the epoch's
        union is still every element once. Other pipelines (``take``, ``skip``,
        ``repeat``, ``zip``, ``concatenate``, ``enumerate``, ``unbatch``, sampling,
        a shuffled or remote file list) are sharded by element (:meth:`shard`):
        every process runs the whole pipeline and keeps every ``num``-th element,
        so there ``num_workers=0`` is the fast choice (tensorbridge already runs
        the pipeline on its own threads) and a shuffle needs a seed shared by all
        ranks (forked workers inherit it).

        **Epochs.** Each epoch reshuffles, also with DataLoader workers that are
        forked afresh every epoch: a worker takes its epoch from the loader's
        per-epoch base seed (``get_worker_info().seed - id``, the same for the
        workers of one epoch and drawn from torch's RNG, so ``torch.manual_seed``
        reproduces a run); persistent workers count on. The returned dataset's
        ``set_epoch(epoch)`` (as ``DistributedSampler.set_epoch``; call it before
        each epoch) fixes the epoch instead, in the main process too: the same
        epoch gives the same order in every process. Under ``torch.distributed``
        with element sharding, workers keep the pipeline's own epoch counter unless
        ``set_epoch`` is called (ranks' base seeds differ, their orders must not).
        Iterated directly, elements keep their tuples; DataLoader's default
        ``collate_fn`` (``default_convert``) turns tuples into lists, as for any dataset.

        ``device`` (e.g. ``"cuda"``): each tensor is moved there
        (``non_blocking`` from pinned memory); ``pin_memory=True`` pins each tensor
        (a copy) when CUDA is available. Both are no-ops when CUDA is not there
        (``device`` ``None`` or ``"cpu"`` keeps the shared CPU memory). Torch
        tensors are writable: don't write to ones sharing tensorbridge memory.
        Asking for either without CUDA warns once, here (``RuntimeWarning``). Both
        apply only without DataLoader workers: in a worker process (forked, where
        CUDA cannot be used) they are ignored; use ``DataLoader(pin_memory=True)``
        and ``.to(device)`` in the loop there.

        DataLoader workers must be forked (Linux's default): the pipeline cannot
        be pickled, and pickling it (``spawn``/``forkserver``) raises ``TypeError``.
        """
        torch = _require("torch", "Dataset.to_torch")
        from ._torch import _torch_dataset_class

        out = _torch_dataset_class(torch)(self, device, pin_memory)
        if (pin_memory or (out.device is not None and out.device.type != "cpu")) \
                and not torch.cuda.is_available():
            import warnings

            warnings.warn(f"Dataset.to_torch: CUDA is not available, so device={device!r} and "
                          f"pin_memory={pin_memory!r} do nothing (tensors stay in CPU memory, "
                          f"shared with tensorbridge)", RuntimeWarning, stacklevel=2)
        return out

    @staticmethod
    def from_ray(dataset_or_iterator: Any, columns: Any = None) -> "Dataset":
        """Elements are the rows of a ``ray.data.Dataset`` or ``DataIterator`` (Ray is
        imported here, on first use); see :func:`tensorbridge._ray_consume._from_ray`."""
        from ._ray_consume import _from_ray

        ds, struct = _from_ray(dataset_or_iterator, columns)
        return Dataset(ds, _Struct(struct))

    def __repr__(self) -> str:
        try:
            spec = self.element_spec if self._ds.element_spec() is not None else "unknown until run"
        except Exception:  # noqa: BLE001 - repr must not raise
            spec = "?"
        return f"<tb.data.Dataset element_spec={spec} cardinality={self.cardinality()}>"


def _require(module: str, method: str) -> Any:
    """Import ``module`` (only now: ``import tensorbridge`` never imports frameworks),
    or raise ``ImportError`` saying what to install."""
    from ._interop import _require as require

    return require(module, method)


def _np_view(t: Tensor) -> Any:
    return t.numpy()
