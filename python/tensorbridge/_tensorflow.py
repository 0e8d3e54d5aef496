"""``Dataset.to_tensorflow``: a tensorbridge pipeline handed to TensorFlow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator

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
