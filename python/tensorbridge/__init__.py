"""tensorbridge: NumPy data into tensors — exact, fast and safe.

    >>> import numpy as np, tensorbridge as tb
    >>> t = tb.convert_to_tensor(np.array([[1, 2, 3], [4, 5, 6]]), dtype=tb.float32)
    >>> print(t)
    tb.Tensor(
    [[1. 2. 3.]
     [4. 5. 6.]], shape=(2, 3), dtype=float32)
"""

from __future__ import annotations

from . import _core
from ._convert import Tensor, cast, constant, convert_to_tensor, stack
from ._dtypes import DType, _BY_NAME, dtype
from . import data, ops  # noqa: E402 - tb.data pipeline and tb.ops (issue 5)
from . import io
from ._files import NpzFile, convert_file, load, save, savez
from ._interop import from_dlpack

bool = _BY_NAME["bool"]  # noqa: A001 - TensorFlow's name
int8 = _BY_NAME["int8"]
int16 = _BY_NAME["int16"]
int32 = _BY_NAME["int32"]
int64 = _BY_NAME["int64"]
uint8 = _BY_NAME["uint8"]
uint16 = _BY_NAME["uint16"]
uint32 = _BY_NAME["uint32"]
uint64 = _BY_NAME["uint64"]
float16 = _BY_NAME["float16"]
bfloat16 = _BY_NAME["bfloat16"]
float32 = _BY_NAME["float32"]
float64 = _BY_NAME["float64"]
complex64 = _BY_NAME["complex64"]
complex128 = _BY_NAME["complex128"]
half = float16
double = float64

CASTING_MODES = ("unsafe", "same_kind", "safe", "checked", "saturate")

def __getattr__(name: str):
    # Imported on first use, so `import tensorbridge` never imports ray or pyarrow.
    if name == "ray":
        import importlib

        return importlib.import_module(".ray", __name__)
    if name == "arrow":
        import importlib

        return importlib.import_module(".arrow", __name__)
    if name == "from_arrow":
        from .arrow import from_arrow

        return from_arrow
    raise AttributeError(f"module 'tensorbridge' has no attribute {name!r}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tensorbridge")  # set by maturin from Cargo.toml: the one version source
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


__version__ = _version()

__all__ = [
    "DType", "Tensor", "load", "save", "savez", "NpzFile", "convert_file", "dtype", "convert_to_tensor", "constant", "cast", "stack", "CASTING_MODES",
    "from_dlpack", "from_arrow",
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128", "half", "double",
]
