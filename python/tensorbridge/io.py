"""Files that frameworks read natively: TFRecord (TensorFlow) and safetensors (Hugging Face)::

    import tensorbridge as tb
    tb.io.write_tfrecord("train.tfrecord", {"image": images, "label": labels}, shards=4)
    for record in tb.io.read_tfrecord(paths):      # one dict per record
        record["image"], record["label"]           # slice i of each array
    tb.io.save_safetensors("model.safetensors", {"w": w, "b": b}, metadata={"format": "np"})
    tb.io.load_safetensors("model.safetensors")["w"].is_view   # True: memory-mapped
    tb.io.safetensors_metadata("model.safetensors")            # {"format": "np"}

TFRecord files hold one ``tf.train.Example`` per slice along axis 0; each array is a
feature whose single ``bytes_list`` value is the slice serialized exactly as
``tf.io.serialize_tensor`` does, so TensorFlow reads them with
``tf.data.TFRecordDataset`` + ``tf.io.parse_single_example`` +
``tf.io.parse_tensor``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _core
from ._convert import Tensor, convert_to_tensor

__all__ = [
    "write_tfrecord", "read_tfrecord", "parse_tensor", "serialize_tensor",
    "save_safetensors", "load_safetensors", "safetensors_metadata",
]

PathLike = Union[str, "os.PathLike[str]"]


def _path(path: Any) -> Any:
    """A path argument as the core takes it: a ``str`` (a path or a URL) stays one."""
    return path if isinstance(path, str) else os.fspath(path)


def _tensor(value: Any) -> Tensor:
    """A tensor for ``value`` without copying when its memory can be used as is."""
    if isinstance(value, Tensor):
        return value
    try:
        return convert_to_tensor(value, copy=False)
    except ValueError:  # strided, byte-swapped, a Python list, ...: copy it
        return convert_to_tensor(value)


def _named(kind: str, named: Mapping[str, Any]) -> Tuple[List[str], List[Tensor]]:
    if not isinstance(named, Mapping):
        raise TypeError(f"{kind} must be a dict of name -> tensor or array, not {type(named).__name__}")
    names, tensors = [], []
    for name, value in named.items():
        if not isinstance(name, str):
            raise TypeError(f"{kind} names must be str, not {type(name).__name__} ({name!r})")
        names.append(name)
        tensors.append(_tensor(value))
    return names, tensors


def _gzip(compression: Optional[str]) -> bool:
    if compression is None or compression == "":
        return False
    if isinstance(compression, str) and compression.upper() == "GZIP":
        return True
    raise ValueError(f"compression must be None or 'GZIP', not {compression!r}")


def write_tfrecord(
    path: PathLike,
    features: Mapping[str, Any],
    *,
    shards: int = 1,
    compression: Optional[str] = None,
    storage_options: Optional[Dict[str, str]] = None,
) -> List[str]:
    """Write ``features`` (name → tensor or array, all with the same leading dimension
    ``n``) as ``n`` ``tf.train.Example`` records: record ``i`` holds slice ``i`` of
    every array, serialized as ``tf.io.serialize_tensor`` would.

    ``shards > 1`` splits the records into consecutive runs written (in parallel) to
    ``out-00000-of-00004.tfrecord`` ... for ``path="out.tfrecord"``.
    ``compression="GZIP"`` compresses like TensorFlow's ``"GZIP"`` option. Files
    appear only once complete (written under a temporary name, then renamed).
    Returns the paths written.

    ``path`` may be a URL of an object store (``s3://``, ``gs://``, ``az://``...;
    ``storage_options`` as for :func:`tensorbridge.load`): each shard is a multipart
    upload, completed only once every shard is written (an error aborts them all).
    """
    names, tensors = _named("features", features)
    if not names:
        raise ValueError("features is empty: nothing to write")
    lead = None
    for name, t in zip(names, tensors):
        if t.ndim == 0:
            raise ValueError(f"feature {name!r} is 0-d; records are slices along axis 0")
        if lead is None:
            lead = (name, t.shape[0])
        elif t.shape[0] != lead[1]:
            raise ValueError(
                f"feature {name!r} has leading dimension {t.shape[0]} but feature "
                f"{lead[0]!r} has {lead[1]}: all features need the same number of records"
            )
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise ValueError(f"shards must be a positive int, not {shards!r}")
    return _core.write_tfrecord(_path(path), names, tensors, shards, _gzip(compression), storage_options)


def read_tfrecord(
    path_or_paths: Union[PathLike, Sequence[PathLike]],
    compression: Optional[str] = None,
    *,
    storage_options: Optional[Dict[str, str]] = None,
) -> Iterator[Dict[str, Union[Tensor, List[bytes]]]]:
    """Yield one dict of name → feature per ``tf.train.Example`` record of the
    file(s), in order. A ``bytes_list`` holding one serialized tensor (what
    :func:`write_tfrecord` and ``tf.io.serialize_tensor`` write) comes back as that
    :class:`Tensor`; any other ``bytes_list`` (encoded images, strings) as a list of
    ``bytes``, one per value; ``float_list`` / ``int64_list`` features as 1-d float32
    / int64 tensors.

    Both CRCs of every record are checked; a corrupt record raises ``ValueError``
    naming the file and the record (counted from 0).

    URLs of an object store are streamed in order with read-ahead
    (``storage_options`` as for :func:`tensorbridge.load`).
    """
    gzip = _gzip(compression)
    if isinstance(path_or_paths, (str, bytes, os.PathLike)):
        paths = [path_or_paths]
    else:
        paths = list(path_or_paths)

    def records() -> Iterator[Dict[str, Union[Tensor, List[bytes]]]]:
        for p in paths:
            yield from _core.TfRecordReader(_path(p), gzip, storage_options)

    return records()


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    numpy = getattr(data, "numpy", None)  # a scalar tf.string tensor
    if callable(numpy):
        value = numpy()
        if isinstance(value, bytes):
            return value
    raise TypeError(f"expected bytes (a serialized TensorProto), not {type(data).__name__}")


def parse_tensor(data: Any) -> Tensor:
    """The tensor in ``data``: the bytes of a ``TensorProto``, as made by
    ``tf.io.serialize_tensor`` (a scalar ``tf.string`` tensor of them also works) or
    ``tf.make_tensor_proto(...).SerializeToString()``. Every dtype tensorbridge has."""
    return _core.parse_tensor(_as_bytes(data))


def serialize_tensor(x: Any) -> bytes:
    """The bytes ``tf.io.serialize_tensor`` makes for ``x`` (a tensor or array)."""
    return _core.serialize_tensor(_tensor(x))


def save_safetensors(
    path: PathLike,
    named: Mapping[str, Any],
    metadata: Optional[Mapping[str, str]] = None,
    *,
    storage_options: Optional[Dict[str, str]] = None,
) -> None:
    """Write ``named`` (name → tensor or array) to a safetensors file, readable by
    the ``safetensors`` package. Every dtype but complex128 (safetensors has none).

    ``metadata``: a dict of str → str stored in the header's ``"__metadata__"``, as
    ``safetensors.numpy.save_file(..., metadata=...)`` stores it; read it back with
    :func:`safetensors_metadata` (or ``safe_open(path, "np").metadata()``).

    To a URL of an object store (``storage_options`` as for :func:`tensorbridge.load`)
    the file is sent with a multipart upload, aborted on error.
    """
    names, tensors = _named("named", named)
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict of str -> str, not {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(
                    f"metadata must map str to str; got {type(k).__name__} -> {type(v).__name__} ({k!r}: {v!r})"
                )
        metadata = dict(metadata)
    _core.save_safetensors(_path(path), names, tensors, metadata, storage_options)


def safetensors_metadata(
    path: PathLike, *, storage_options: Optional[Dict[str, str]] = None
) -> Optional[Dict[str, str]]:
    """The ``"__metadata__"`` of a safetensors file as a dict of str → str, or
    ``None`` when the file has none — what ``safe_open(path, "np").metadata()``
    gives. Only the header is read (also of a URL)."""
    return _core.safetensors_metadata(_path(path), storage_options)


def load_safetensors(path: PathLike, *, storage_options: Optional[Dict[str, str]] = None) -> Dict[str, Tensor]:
    """Load a safetensors file: dict of name → :class:`Tensor` in file order. The file
    is memory-mapped and aligned tensors are zero-copy views of it (``is_view``).

    A URL of an object store (``storage_options`` as for :func:`tensorbridge.load`)
    is read header first, then its tensors' bytes with concurrent ranged reads."""
    return dict(_core.load_safetensors(_path(path), storage_options))
