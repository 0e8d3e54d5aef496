"""``Dataset.to_jax``: a tensorbridge pipeline handed to JAX (optionally sharded).

Where the time went (measured; BENCHMARKS.md, issue 12), and what is done about it:

- JAX's own conversion of 64-bit integer components to 32-bit ones (``x64`` off): an
  XLA computation per component per batch, several times the import itself. Those
  components are cast here, by tensorbridge, before JAX sees them — the same values
  (two's-complement wrap-around, as NumPy's ``astype`` and XLA's convert), so JAX
  imports them as they are.
- ``jax.dlpack.from_dlpack``'s Python layers (backend and device look-ups, a
  ``jnp.asarray`` that changes nothing for canonical dtypes): ~90 % of a call. On a
  CPU device, tensors whose dtype JAX keeps as it is go straight to jaxlib's DLPack
  import (the call ``from_dlpack`` ends in; same array, committed to CPU device 0,
  sharing memory). It is a private jaxlib entry point: it is looked up and checked
  on a small tensor once per epoch, and any failure (another jaxlib) falls back to
  ``jax.dlpack.from_dlpack``, as does every dtype JAX would convert (float64, ...).
- With a ``NamedSharding``, one ``jax.device_put`` per batch; on CPU devices it
  already aliases the (aligned) batch buffer — each device's shard is a view of it
  (checked by data pointers), so nothing is copied there.
- The rest was the pipeline's own: batch buffers that a slower consumer still held
  were allocated afresh (page faults); the batch stage now keeps enough of them per
  component to re-use one (``crates/tensorbridge/src/data/batch.rs``).
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator

from ._structure import _flatten, _unflatten

if TYPE_CHECKING:
    from ._convert import Tensor

#: 64-bit integer dtypes JAX stores as 32-bit ones unless ``jax_enable_x64``; casting
#: them is exact bit truncation, identical in tensorbridge and XLA. (float64 and
#: complex128 are left to JAX: XLA's CPU conversion flushes float32 subnormals.)
_NARROWED_INTS = ("int64", "uint64")


def _narrowing(jax: Any) -> Dict[str, Any]:
    """``{dtype name: tb dtype}`` for the integer dtypes JAX would narrow right now
    (empty when ``jax_enable_x64`` is on)."""
    import numpy as np

    from ._dtypes import dtype as tb_dtype

    out: Dict[str, Any] = {}
    for name in _NARROWED_INTS:
        canon = np.dtype(jax.dtypes.canonicalize_dtype(np.dtype(name)))
        if canon.name != name:
            out[name] = tb_dtype(canon.name)
    return out


def _narrow(convert: Callable[["Tensor"], Any], narrow: Dict[str, Any]) -> Callable[["Tensor"], Any]:
    """``convert`` applied after casting the components JAX would narrow itself."""
    if not narrow:
        return convert

    def cast_then_convert(t: "Tensor") -> Any:
        target = narrow.get(t.dtype.name)
        if target is not None:
            t = t.astype(target, "unsafe")
        return convert(t)

    return cast_then_convert


def _jaxlib_dlpack() -> tuple:
    """jaxlib's DLPack import (private), CPU device 0 and the extra arguments this
    jaxlib takes, as ``jax.dlpack.from_dlpack`` calls it."""
    from jax._src import xla_bridge
    from jax._src.lib import _jax as jaxlib_ext
    from jax._src.lib import jaxlib_extension_version

    device = xla_bridge.get_backend("cpu").device_from_local_hardware_id(0)
    # Newer jaxlibs take the DLPack device type too (kDLCPU = 1).
    extra: tuple = (1,) if jaxlib_extension_version >= 467 else ()
    return jaxlib_ext.dlpack_managed_tensor_to_buffer, device, extra


def _dlpack_import(jax: Any) -> Callable[["Tensor"], Any]:
    """``Tensor`` → ``jax.Array`` on JAX's CPU device 0 sharing memory: jaxlib's DLPack
    import directly for dtypes JAX keeps, ``Tensor.to_jax`` (``jax.dlpack.from_dlpack``)
    otherwise or when the direct import is not there or does not pass its check."""
    import numpy as np

    from ._convert import convert_to_tensor
    from ._interop import _is_compact, to_jax

    try:
        to_buffer, device, extra = _jaxlib_dlpack()
    except Exception:  # another jax/jaxlib layout: the public path
        return to_jax
    kept: Dict[str, bool] = {}  # dtype name -> whether JAX keeps it as it is

    def direct(t: "Tensor") -> Any:
        name = t.dtype.name
        keep = kept.get(name)
        if keep is None:
            npd = t.numpy().dtype
            keep = kept[name] = np.dtype(jax.dtypes.canonicalize_dtype(npd)) == npd
        if not keep:
            return to_jax(t)
        if not _is_compact(t):  # JAX refuses strided memory (as Tensor.to_jax)
            t = t.copy()
        return to_buffer(t.__dlpack__(stream=None), device, None, None, *extra)

    try:
        want = np.arange(6, dtype=np.float32).reshape(2, 3)
        probe = convert_to_tensor(want).copy()  # tensorbridge's own (aligned) memory
        got = direct(probe)
        ok = (isinstance(got, jax.Array) and got.shape == want.shape and got.dtype == want.dtype
              and got.unsafe_buffer_pointer() == probe.data_ptr
              and bool(np.array_equal(np.asarray(got), want)))
    except Exception:
        ok = False
    return direct if ok else to_jax


def _np_view(t: "Tensor") -> Any:
    return t.numpy()


def _jax_batches(ds: Any, jax: Any, sharding: Any, prefetch: int) -> Iterator[Any]:
    narrow = _narrowing(jax)
    if sharding is None and jax.default_backend() == "cpu":
        # Already where it goes: import each tensor through DLPack, sharing the
        # aligned batch buffer (as Tensor.to_jax). Holding batches back would only
        # keep more buffers alive (the pipeline re-uses the ones the loop let go).
        yield from ds._flat_epoch(_narrow(_dlpack_import(jax), narrow))
        return

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
        # One device_put for every component of the batch. On CPU devices it
        # aliases the (aligned) batch buffer: each device's shard is a view of it.
        return _unflatten(struct, iter(jax.device_put(arrays, sharding)))

    window: collections.deque = collections.deque()
    for elem in ds._flat_epoch(_narrow(_np_view, narrow)):
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
