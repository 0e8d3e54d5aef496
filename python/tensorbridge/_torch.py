"""``Dataset.to_torch``: a tensorbridge pipeline as a torch ``IterableDataset``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator

if TYPE_CHECKING:
    from ._convert import Tensor


_TORCH_CLASS: list = []


def _torch_dataset_class(torch: Any) -> Any:
    """The ``IterableDataset`` subclass behind ``Dataset.to_torch`` (made once, on
    first use, so ``import tensorbridge`` never imports torch)."""
    if _TORCH_CLASS:
        return _TORCH_CLASS[0]

    class TorchIterable(torch.utils.data.IterableDataset):
        """``Dataset.to_torch``: a tensorbridge pipeline as torch tensors."""

        def __init__(self, ds: Any, device: Any, pin_memory: bool):
            super().__init__()
            self.dataset = ds
            self.device = None if device is None else torch.device(device)
            self.pin_memory = bool(pin_memory)

        def _convert(self) -> Any:
            from_dlpack = torch.from_dlpack
            # In a DataLoader worker (a forked process) CUDA must not be touched:
            # batches go to the main process through shared memory, where the
            # DataLoader's own pin_memory=True and the loop's .to(device) apply.
            cuda = torch.cuda.is_available() and torch.utils.data.get_worker_info() is None
            device = self.device if cuda and self.device is not None and self.device.type != "cpu" else None
            pin = self.pin_memory and cuda
            if device is None and not pin:
                return lambda t: from_dlpack(t)
            if device is None:
                return lambda t: from_dlpack(t).pin_memory()
            if pin:
                return lambda t: from_dlpack(t).pin_memory().to(device, non_blocking=True)
            return lambda t: from_dlpack(t).to(device)

        def _world(self) -> tuple:
            dist = torch.distributed
            if dist.is_available() and dist.is_initialized():
                return dist.get_world_size(), dist.get_rank()
            return 1, 0

        def _shard(self) -> Any:
            world, rank = self._world()
            info = torch.utils.data.get_worker_info()
            workers, wid = (1, 0) if info is None else (info.num_workers, info.id)
            num = world * workers
            if num == 1:
                return self.dataset
            return self.dataset.shard(num, wid * world + rank)

        def __iter__(self) -> Iterator[Any]:
            return self._shard()._flat_epoch(self._convert())

        def __len__(self) -> int:
            world, rank = self._world()
            ds = self.dataset if world == 1 else self.dataset.shard(world, rank)
            return len(ds)

        def __getstate__(self) -> Any:
            raise TypeError(
                "Dataset.to_torch(): a tensorbridge pipeline cannot be pickled, so DataLoader "
                "workers must be forked (multiprocessing_context='fork', Linux's default), or "
                "use num_workers=0 (tensorbridge runs the pipeline on its own threads)")

        def __repr__(self) -> str:
            return f"<torch IterableDataset of {self.dataset!r}>"

    TorchIterable.__name__ = TorchIterable.__qualname__ = "TorchIterableDataset"
    _TORCH_CLASS.append(TorchIterable)
    return TorchIterable
