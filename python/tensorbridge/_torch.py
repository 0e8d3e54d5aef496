"""``Dataset.to_torch``: a tensorbridge pipeline as a torch ``IterableDataset``.

Sharding (DataLoader workers x ``torch.distributed`` ranks, ``num`` shards in all,
shard ``worker * world_size + rank``): where the pipeline allows it (a
``from_tensor_slices``/``range``/local unshuffled ``from_files`` source followed by
maps, ``shuffle``, ``global_shuffle``, ``batch``, ``padded_batch``, ``filter``,
``prefetch``), the *source rows* are sharded right after the source, in blocks of
the batch size (``_core._Dataset.shard_source``): each process reads, shuffles and
batches only its own rows, so k workers do 1/k of the work each. Other pipelines
(``take``, ``repeat``, ``zip``, ``enumerate``, ... or a shuffled file list) keep
element sharding: every process runs the whole pipeline and keeps every
``num``-th element.

Epochs: each process's ``__iter__`` picks the epoch every reshuffling stage uses
(:meth:`TorchIterableDataset._epoch_for`), so forked workers agree on it and
successive epochs differ.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

_TORCH_CLASS: list = []

_M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64's finaliser, kept below 2**62 (an epoch number with room to count on)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return (x ^ (x >> 31)) >> 2


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
            self._epoch: Optional[int] = None
            # Per process (a forked worker starts from a copy): the pipeline for each
            # (num, index) sharding (None: it cannot shard at the source), and the
            # epochs this process has run per epoch base.
            self._sharded: Dict[Tuple[int, int], Any] = {}
            self._runs: Dict[Any, int] = {}

        def set_epoch(self, epoch: int) -> None:
            """Make the next ``iter()`` (in this process, and in DataLoader workers
            forked after this call) use epoch ``epoch``'s shuffle order, as
            ``DistributedSampler.set_epoch``: processes that set the same epoch
            agree on the order, for reproducible runs. Call it before each epoch.
            Persistent workers, forked once, count on from the epoch set when they
            were started."""
            epoch = int(epoch)
            if epoch < 0:
                raise ValueError(f"to_torch().set_epoch: the epoch must be >= 0, got {epoch}")
            self._epoch = epoch

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

        def _epoch_for(self, info: Any, world: int, at_source: bool) -> Optional[int]:
            """The epoch this ``iter()`` runs, or ``None``: the pipeline's own counters
            (each iterator the next epoch).

            - After ``set_epoch(e)``: ``e`` (plus the epochs this persistent worker
              already ran from it).
            - In a DataLoader worker: from the epoch's base seed (``seed - id``,
              shared by the workers of one epoch, drawn from torch's RNG, so
              ``torch.manual_seed`` makes it reproducible), plus the epochs this
              persistent worker already ran. Forked workers would otherwise all
              inherit the parent's counters and repeat one order every epoch.
              Except under torch.distributed with element sharding: ranks draw
              their base seeds apart but must agree on the order there, so the
              counters are kept (call ``set_epoch`` to reshuffle).
            - In the main process: the pipeline's counters (each epoch the next).
            """
            if self._epoch is not None:
                key: Any = ("set", self._epoch)
                base = self._epoch
            elif info is not None and (at_source or world == 1):
                seed = int(info.seed) - int(info.id)
                key, base = ("seed", seed), _mix(seed)
            else:
                return None
            if info is None:
                return base
            k = self._runs.get(key, 0)
            self._runs[key] = k + 1
            return base + k

        def _shard(self) -> Any:
            world, rank = self._world()
            info = torch.utils.data.get_worker_info()
            workers, wid = (1, 0) if info is None else (info.num_workers, info.id)
            num = world * workers
            index = wid * world + rank
            ds = self.dataset
            at_source = False
            if num > 1:
                if (num, index) not in self._sharded:
                    core = ds._ds.shard_source(num, index)
                    self._sharded[(num, index)] = None if core is None else ds._derive(core)
                sharded = self._sharded[(num, index)]
                at_source = sharded is not None
                ds = sharded if at_source else ds.shard(num, index)
            epoch = self._epoch_for(info, world, at_source)
            if epoch is not None:
                ds._ds.set_epoch(epoch)
            return ds

        def __iter__(self) -> Iterator[Any]:
            return self._shard()._flat_epoch(self._convert())

        def __len__(self) -> int:
            # Sharded at the source, the workers of a rank together yield exactly
            # the batches of shard(world, rank) (the blocks are whole batches).
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
