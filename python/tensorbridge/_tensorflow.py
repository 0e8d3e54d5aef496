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
# registers with TensorFlow at first use (crates/tensorbridge-py/src/tf_bridge/),
# through TensorFlow's C op/kernel API, whose functions it looks up in the already
# loaded libtensorflow_framework named here (no compiler needed):
#
#   FlatMap(range(1), epoch)                      one epoch per TF iterator
#     epoch: numpy_function(tf_open)              the only Python call: once per epoch
#            -> TensorbridgeIteratorGuard(id)     closes the pipeline iterator when the
#                                                 per-epoch dataset holding it is freed
#            -> from_tensors(handle).repeat(n)    (n = cardinality, or forever)
#            -> InlineMap(TensorbridgeNext)       components, zero-copy, each checked by
#                                                 the op against the static shapes
#                                                 declared here; the op's OutOfRange at
#                                                 the pipeline's end ends the epoch
#
# FlatMap / InlineMap (``_dataset_classes``) are tf.data's flat_map and map with
# single-device functions (no function optimisation pass per epoch), the map run
# inline on the thread pulling the element (no inter-op thread pool hop). There is
# no ensure_shape / take_while stage: per element, the op and tf.data's own
# iteration. The pipeline iterator of an epoch is closed when the epoch ends (by the
# op, at its end or at an error) or, for an abandoned TF iterator, when TensorFlow
# frees it.

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
        _dataset_classes()  # the dataset classes native_dataset builds on
        _core.tf_install(_framework_library(tf))
        _why_not = None
    except (OSError, RuntimeError, ValueError, TypeError, ImportError, AttributeError) as e:
        _why_not = f"{type(e).__name__}: {e}"
    return _why_not


_CLASSES: Optional[tuple] = None


def _dataset_classes() -> tuple:
    """``(FlatMap, InlineMap)``: tf.data's flat_map and map datasets built from
    TensorFlow's own (internal) dataset classes, differing from ``Dataset.flat_map``
    / ``Dataset.map`` in what those do not expose:

    - their functions are traced with ``experimental_ints_on_device`` (as tf.data's
      own ``prefetch_to_device`` does), which makes tf.data instantiate them as
      single-device functions: no grappler / MLIR function optimisation each time
      an iterator (an epoch) instantiates them (measured: ~7 ms CPU per epoch);
    - ``InlineMap`` runs its function inline on the thread pulling the element
      (``use_inter_op_parallelism=False``: one single-threaded executor call, no
      inter-op thread pool) and with ``preserve_cardinality=False``, so an
      ``OutOfRange`` from the function ends the sequence.

    Raises ImportError / AttributeError where a TensorFlow version lacks them."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    import importlib

    dataset_ops = importlib.import_module("tensorflow.python.data.ops.dataset_ops")
    wrapper = importlib.import_module("tensorflow.python.data.ops.structured_function") \
        .StructuredFunctionWrapper
    gen = importlib.import_module("tensorflow.python.ops.gen_dataset_ops")
    single_device = {"experimental_ints_on_device": True}

    class FlatMap(dataset_ops.UnaryDataset):  # type: ignore[misc, name-defined]
        """``input.flat_map(fn)``, ``fn`` a single-device function."""

        def __init__(self, input_dataset: Any, fn: Any):
            self._input_dataset = input_dataset
            self._map_func = wrapper(fn, "Dataset.flat_map()", dataset=input_dataset,
                                     defun_kwargs=dict(single_device))
            self._structure = self._map_func.output_structure._element_spec
            self._name = None
            variant = gen.flat_map_dataset(input_dataset._variant_tensor,
                                           self._map_func.function.captured_inputs,
                                           f=self._map_func.function, **self._common_args)
            super().__init__(input_dataset, variant)

        def _functions(self) -> list:
            return [self._map_func]

        @property
        def element_spec(self) -> Any:
            return self._structure

    class InlineMap(dataset_ops.UnaryDataset):  # type: ignore[misc, name-defined]
        """``input.map(fn)``, ``fn`` single-device and run inline; its OutOfRange
        ends the sequence."""

        def __init__(self, input_dataset: Any, fn: Any):
            self._input_dataset = input_dataset
            self._map_func = wrapper(fn, "Dataset.map()", dataset=input_dataset,
                                     defun_kwargs=dict(single_device))
            self._name = None
            variant = gen.map_dataset(input_dataset._variant_tensor,
                                      self._map_func.function.captured_inputs,
                                      f=self._map_func.function,
                                      use_inter_op_parallelism=False,
                                      preserve_cardinality=False, **self._common_args)
            super().__init__(input_dataset, variant)

        def _functions(self) -> list:
            return [self._map_func]

        @property
        def element_spec(self) -> Any:
            return self._map_func.output_structure

    _CLASSES = (FlatMap, InlineMap)
    return _CLASSES


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
    flat_map, inline_map = _dataset_classes()
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
        return inline_map(handles, plain(next_element))

    out = flat_map(tf.data.Dataset.range(1), plain(epoch))
    # Batches are already prefetched by the pipeline: a prefetch buffer TensorFlow
    # would inject (or a map it would parallelise) only holds more batches, which
    # keeps the pipeline from recycling its batch buffers (measured: ~0.6x).
    opts = tf.data.Options()
    opts.experimental_optimization.inject_prefetch = False
    opts.experimental_optimization.map_parallelization = False
    return out.with_options(opts)
