"""``Dataset.to_tensorflow``: a tensorbridge pipeline handed to TensorFlow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional

if TYPE_CHECKING:
    from ._convert import Tensor


class _TFBatches:
    """``Dataset.to_tensorflow(as_dataset=False)``: each ``iter()`` is one epoch of
    ``tf.Tensor``s sharing the tensors' memory (DLPack; copied only when not
    C-contiguous and 64-byte aligned, see ``Tensor.to_tensorflow``)."""

    __slots__ = ("_ds",)

    def __init__(self, ds: Any):
        self._ds = ds

    def __iter__(self) -> Iterator[Any]:
        import importlib

        from ._interop import TF_ALIGNMENT

        from_dlpack = importlib.import_module("tensorflow.experimental.dlpack").from_dlpack

        def convert(t: Tensor) -> Any:
            # As Tensor.to_tensorflow, resolved once per epoch: batch buffers are
            # aligned and contiguous, so _aligned_contiguous returns them as they are.
            return from_dlpack(t._aligned_contiguous(TF_ALIGNMENT).__dlpack__())

        return self._ds._flat_epoch(convert)

    def __len__(self) -> int:
        return len(self._ds)

    def __repr__(self) -> str:
        return f"<tf.Tensor batches of {self._ds!r}>"


# ------------------------------------------------------------------ the native op
#
# ``to_tensorflow()`` builds its tf.data.Dataset around two ops the compiled core
# registers with TensorFlow at first use (crates/tensorbridge-py/src/tf_bridge.rs),
# through TensorFlow's C op/kernel API, whose functions it looks up in the already
# loaded libtensorflow_framework named here (no compiler needed):
#
#   range(1).flat_map(epoch)                      one epoch per TF iterator
#     epoch: numpy_function(tf_open)              the only Python call: once per epoch
#            -> TensorbridgeIteratorGuard(id)     closes the pipeline iterator when the
#                                                 per-epoch dataset holding it is freed
#            -> from_tensors(handle).repeat(n)    (n = cardinality, or forever)
#               ._MapDataset(TensorbridgeNext,    components, zero-copy, shapes checked
#                  use_inter_op_parallelism=False,  by the op against the static shapes
#                  preserve_cardinality=False)      declared here; the op's OutOfRange at
#                                                   the pipeline's end ends the epoch
#
# The map runs its function inline on the thread pulling the element (one op, no
# inter-op thread pool hop) and there is no ensure_shape / take_while stage: the
# per-element cost is the op and tf.data's own iteration. So the pipeline iterator of
# an epoch is closed when the epoch ends (by the op, at its end or at an error) or,
# for an abandoned TF iterator, when TensorFlow frees it.

_UNTRIED = object()
_why_not: Any = _UNTRIED  # None once installed; else why the op cannot be used


def _framework_library(tf: Any) -> str:
    """The path of the loaded libtensorflow_framework (from TF's own link flags)."""
    import os

    lib_dir = tf.sysconfig.get_lib()
    for flag in tf.sysconfig.get_link_flags():
        if flag.startswith("-l:"):
            return os.path.join(lib_dir, flag[3:])
    raise RuntimeError(f"no libtensorflow_framework in tf.sysconfig.get_link_flags() "
                       f"{tf.sysconfig.get_link_flags()}")


def _install_native_ops(tf: Any) -> Optional[str]:
    """Register the ops (once per process): None when they are ready, else why not."""
    global _why_not
    if _why_not is not _UNTRIED:
        return _why_not
    from . import _core

    try:
        _map_dataset_class()  # the dataset class native_dataset builds on
        _core.tf_install(_framework_library(tf))
        _why_not = None
    except (OSError, RuntimeError, ValueError, TypeError, ImportError, AttributeError) as e:
        _why_not = f"{type(e).__name__}: {e}"
    return _why_not


def _map_dataset_class() -> Any:
    """tf.data's own map dataset class, whose constructor takes
    ``use_inter_op_parallelism`` and ``preserve_cardinality`` (``Dataset.map`` does not)."""
    import importlib

    return importlib.import_module("tensorflow.python.data.ops.map_op")._MapDataset


def _encode_shapes(shapes: list) -> list:
    """The ``out_shapes`` attr of ``TensorbridgeNext``: for each shape its rank (-1:
    unknown, nothing follows), then its dimensions (-1: unknown)."""
    out: list = []
    for s in shapes:
        if s.rank is None:
            out.append(-1)
        else:
            out.append(s.rank)
            out.extend(-1 if d is None else int(d) for d in s.as_list())
    return out


def native_dataset(ds: Any, tf: Any, flat: list) -> Optional[Any]:
    """``ds`` as a tf.data.Dataset pulling from the pipeline through the native op
    (structure, shapes and dtypes of ``flat``), or None when the op cannot be set up
    (after one RuntimeWarning saying why)."""
    why = _install_native_ops(tf)
    if why is not None:
        import warnings

        warnings.warn(f"Dataset.to_tensorflow(): the native TensorFlow op could not be set "
                      f"up ({why}); using the slower generator path", RuntimeWarning,
                      stacklevel=3)
        return None
    import importlib

    import numpy as np

    from . import _core
    from ._structure import _unflatten

    apply_op = importlib.import_module("tensorflow.python.framework.op_def_library")._apply_op_helper
    map_dataset = _map_dataset_class()
    plain = tf.autograph.experimental.do_not_convert  # graph code as written

    def _apply(op: str, **kw: Any) -> list:
        """Add op ``op`` to the graph being built; its outputs (a flat list)."""
        return list(apply_op(op, **kw)[3])

    core = ds._ds
    struct = ds._struct.value
    dtypes = [tf.as_dtype(d.name) for _, d in flat]
    shapes = [tf.TensorShape(s) for s, _ in flat]
    encoded = _encode_shapes(shapes)

    def open_epoch() -> Any:
        return np.int64(_core.tf_open(core))

    def next_element(handle: Any) -> Any:
        comps = _apply("TensorbridgeNext", handle=handle, out_types=dtypes, out_shapes=encoded)
        for c, s in zip(comps, shapes):
            c.set_shape(s)  # static shapes; the op checks each batch against them
        return _unflatten(struct, iter(comps))

    n = ds.cardinality()

    def epoch(_: Any) -> Any:
        opened = tf.numpy_function(open_epoch, [], tf.int64, stateful=True)
        (handle,) = _apply("TensorbridgeIteratorGuard", id=opened)
        handles = tf.data.Dataset.from_tensors(handle).repeat(n if n >= 0 else -1)
        return map_dataset(handles, plain(next_element), use_inter_op_parallelism=False,
                           preserve_cardinality=False)

    out = tf.data.Dataset.range(1).flat_map(plain(epoch))
    # Batches are already prefetched by the pipeline: a prefetch buffer TensorFlow
    # would inject (or a map it would parallelise) only holds more batches, which
    # keeps the pipeline from recycling its batch buffers (measured: ~0.6x).
    opts = tf.data.Options()
    opts.experimental_optimization.inject_prefetch = False
    opts.experimental_optimization.map_parallelization = False
    return out.with_options(opts)
