"""``Dataset.to_jax``: a tensorbridge pipeline handed to JAX (optionally sharded)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator

from ._structure import _flatten, _unflatten

if TYPE_CHECKING:
    from ._convert import Tensor


def _np_view(t: "Tensor") -> Any:
    return t.numpy()


def _jax_batches(ds: Any, jax: Any, sharding: Any, prefetch: int) -> Iterator[Any]:
    import collections

    def place(elem: Any) -> Any:
        struct, leaves = _flatten(elem)
        arrays = [a for _, a in leaves]
        if sharding is not None:
            for (path, a) in leaves:
                try:
                    sharding.shard_shape(a.shape)
                except ValueError as e:  # jax's IndivisibleError is one
                    raise ValueError(
                        f"to_jax: component {path} of shape {a.shape} cannot be split evenly by "
                        f"the sharding (a short last batch? use batch(..., drop_remainder=True)): "
                        f"{e}") from None
        return _unflatten(struct, iter(jax.device_put(arrays, sharding)))

    if sharding is None and jax.default_backend() == "cpu":
        # Already where it goes: import each tensor through DLPack, sharing the
        # aligned batch buffer (as Tensor.to_jax). Holding batches back would only
        # keep more buffers alive (the pipeline re-uses the ones the loop let go).
        from ._interop import to_jax

        yield from ds._flat_epoch(to_jax)
        return
    convert = _np_view
    window: collections.deque = collections.deque()
    for elem in ds._flat_epoch(convert):
        try:
            placed = place(elem)
        except ValueError:
            while window:  # the batches before the bad one still reach the loop
                yield window.popleft()
            raise
        window.append(placed)
        if len(window) > prefetch:
            yield window.popleft()
    while window:
        yield window.popleft()
