"""Zero-copy exchange with TensorFlow, JAX, PyTorch and NumPy through DLPack.

``tb.from_dlpack(x)`` imports from any object with ``__dlpack__`` (NumPy, JAX,
PyTorch, CuPy, a ``tb.Tensor``) or from a raw DLPack capsule such as
``tf.experimental.dlpack.to_dlpack(t)`` returns; on the CPU it shares memory.
``Tensor.__dlpack__`` / ``__dlpack_device__`` let other libraries import tensors
(``np.from_dlpack(t)``, ``jax.dlpack.from_dlpack(t)``, ``torch.from_dlpack(t)``).

The ``Tensor.to_*`` conveniences (the functions here, attached to ``Tensor`` on
import; they use only ``__dlpack__`` and public tensor methods) import each
framework only when called and raise ``ImportError`` naming the package to
install when it is absent:

- ``t.to_tensorflow()``: a ``tf.Tensor`` over the same memory. TensorFlow 2.21
  accepts any DLPack memory but aborts the process (``Check failed: IsAligned()``)
  in the first op that touches memory not aligned to 64 bytes, and it refuses
  non-contiguous strides. So a tensor that is not C-contiguous, or whose first
  element is not 64-byte aligned (a ``copy=False`` view of a NumPy array usually
  is not; nor is a slice ``t[1:]``), is first **copied** into fresh aligned memory;
  every other tensor is shared. bool, float16, bfloat16 and complex go through as
  themselves.
- ``t.to_jax()``: a ``jax.Array`` over the same memory. JAX refuses strided
  memory (a step or reversed slice), so such a tensor is copied to a contiguous one
  first; a transposition is shared. JAX itself copies memory it cannot use in
  place (not aligned). JAX turns 64-bit dtypes
  into 32-bit ones unless ``jax_enable_x64`` is on, exactly as for NumPy input.
- ``t.to_torch()``: a ``torch.Tensor`` over the same memory. PyTorch tensors are
  writable; writing to one would change an (immutable) tensorbridge tensor, so
  don't, or ``.clone()`` it first.
- ``t.to_numpy()``: a read-only NumPy array over the same memory (bfloat16 as
  ``ml_dtypes.bfloat16``, which NumPy's DLPack import cannot express).
"""

from __future__ import annotations

import importlib
from typing import Any

from . import _core

__all__ = ["from_dlpack", "to_tensorflow", "to_jax", "to_torch", "to_numpy", "TF_ALIGNMENT"]

from_dlpack = _core.from_dlpack

#: Alignment (bytes) TensorFlow requires of memory it imports.
TF_ALIGNMENT = 64

_PIP_NAMES = {"tensorflow": "tensorflow (or tensorflow-cpu)", "jax": "jax", "torch": "torch"}


def _require(module: str, method: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        where = method if "." in method else f"Tensor.{method}"
        raise ImportError(
            f"{where}() needs {module}, which is not installed "
            f"(pip install {_PIP_NAMES.get(module, module)}): {e}"
        ) from e


def to_tensorflow(t: _core.Tensor) -> Any:
    """``t`` as a ``tf.Tensor``, sharing memory when it is C-contiguous and 64-byte
    aligned, else from an aligned contiguous copy (see the module docs)."""
    _require("tensorflow", "to_tensorflow")
    dlpack = importlib.import_module("tensorflow.experimental.dlpack")
    ready = t._aligned_contiguous(TF_ALIGNMENT)
    # TensorFlow accepts only legacy "dltensor" capsules (no max_version).
    return dlpack.from_dlpack(ready.__dlpack__())


def _is_compact(t: _core.Tensor) -> bool:
    """Whether the elements fill their memory without gaps in some dimension order
    (C-contiguous, or a transposition of it): what JAX and PyTorch can share."""
    if 0 in t.shape:
        return True
    expect = t.dtype.itemsize
    for stride, n in sorted((s, n) for s, n in zip(t.strides, t.shape) if n != 1):
        if stride != expect:
            return False
        expect *= n
    return True


def to_jax(t: _core.Tensor) -> Any:
    """``t`` as a ``jax.Array`` sharing memory. JAX refuses strided (sliced with a
    step, reversed) memory; such tensors are copied to a contiguous one first. JAX
    itself copies memory it cannot use in place (e.g. not aligned)."""
    _require("jax", "to_jax")
    dlpack = importlib.import_module("jax.dlpack")
    if not _is_compact(t):
        t = t.copy()
    return dlpack.from_dlpack(t)


def to_torch(t: _core.Tensor) -> Any:
    """``t`` as a ``torch.Tensor`` sharing memory (do not write to it)."""
    torch = _require("torch", "to_torch")
    return torch.from_dlpack(t)


def to_numpy(t: _core.Tensor) -> Any:
    """``t`` as a read-only NumPy array sharing memory."""
    np = _require("numpy", "to_numpy")
    if t.dtype.name == "bfloat16":
        # NumPy's from_dlpack has no bfloat16; the array interface + ml_dtypes does.
        return t.numpy()
    return np.from_dlpack(t)


def to_arrow(t: _core.Tensor) -> Any:
    """``t`` as a pyarrow array over its memory: ``arrow.fixed_shape_tensor`` for 2-d and
    more, a primitive array for 1-d (see ``tensorbridge.arrow``)."""
    _require("pyarrow", "to_arrow")
    from .arrow import to_arrow as _to_arrow

    return _to_arrow(t)


def _attach() -> None:
    """Make the conveniences methods of ``Tensor`` (the class is compiled; these
    are Python on top of its ``__dlpack__``)."""
    for f in (to_tensorflow, to_jax, to_torch, to_numpy, to_arrow):
        setattr(_core.Tensor, f.__name__, f)


_attach()
