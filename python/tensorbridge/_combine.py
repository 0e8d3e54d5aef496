"""The combinators of ``tb.data.Dataset`` (zip, concatenate, filter, enumerate,
unbatch, padded_batch, sample/choose_from_datasets), random access and
``global_shuffle``: structure handling in Python, the work in the core."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, cast

import numpy as np

from . import _core
from ._convert import Tensor
from ._structure import _LEAF, _count, _flatten, _to_tensor, _unflatten

if TYPE_CHECKING:  # for annotations only: data.py imports this module
    from .data import Dataset


class _LazyStruct:
    """An element structure built from other datasets' structures, known once all
    of them are (a Python ``map`` upstream decides its structure when it first runs)."""

    __slots__ = ("_parts", "_build")

    def __init__(self, parts: list, build: Any):
        self._parts, self._build = parts, build

    @property
    def known(self) -> bool:
        return all(p.known for p in self._parts)

    @property
    def value(self) -> Any:
        return self._build([p.value for p in self._parts])


def _graft(struct: Any, subs: Iterator) -> Any:
    """``struct`` with each leaf replaced by the next structure from ``subs``."""
    if struct is _LEAF:
        return next(subs)
    kind = struct[0]
    if kind == "tuple":
        return ("tuple", tuple(_graft(s, subs) for s in struct[1]))
    if kind == "namedtuple":
        return ("namedtuple", struct[1], tuple(_graft(s, subs) for s in struct[2]))
    return ("dict", {k: _graft(s, subs) for k, s in struct[1].items()})


def _describe(struct: Any) -> str:
    if struct is _LEAF:
        return "tensor"
    if struct[0] == "dict":
        return "{" + ", ".join(f"{k!r}: {_describe(s)}" for k, s in struct[1].items()) + "}"
    return "(" + ", ".join(_describe(s) for s in struct[-1]) + ")"


def _check_same(op: str, datasets: List["Dataset"]) -> None:
    """``TypeError`` unless the datasets' elements have the same structure and (where
    known) the same dtypes and ranks, as tf.data requires."""
    first = datasets[0]
    for other in datasets[1:]:
        if first._struct.known and other._struct.known and first._struct.value != other._struct.value:
            raise TypeError(f"{op}: incompatible dataset elements: {_describe(first._struct.value)} "
                            f"vs. {_describe(other._struct.value)}")
        a, b = first._ds.element_spec(), other._ds.element_spec()
        if a is not None and b is not None:
            sig_a = [(d.name, len(s)) for d, s in a]
            sig_b = [(d.name, len(s)) for d, s in b]
            if sig_a != sig_b:
                raise TypeError(f"{op}: incompatible dataset elements: dtypes and ranks "
                                f"{sig_a} vs. {sig_b}")


def _as_datasets(op: str, values: Any) -> List["Dataset"]:
    out = list(values)
    if not out:
        raise ValueError(f"{op}: no datasets given")
    for i, d in enumerate(out):
        if not isinstance(d, _Combinators):  # (Dataset's base class)
            raise TypeError(f"{op}: datasets[{i}] is a {type(d).__name__}, not a tb.data.Dataset")
    return out


def _getitem(ds: "Dataset", index: Any) -> Any:
    try:
        i = operator.index(index)
    except TypeError:
        raise TypeError(f"Dataset indices must be integers, not {type(index).__name__}") from None
    n = ds._ds.random_access_len()
    if n is None:
        raise TypeError(f"Dataset[{i}]: this dataset has no random access "
                        f"({ds._ds.random_access_blocker()} needs the elements before the one "
                        f"asked for); iterate it instead")
    j = i + n if i < 0 else i
    if not 0 <= j < n:
        raise IndexError(f"Dataset index {i} is out of range for {n} elements")
    flat = ds._ds.get(j)
    return _unflatten(ds._struct.value, iter(flat))


def _zip(args: tuple, datasets: Any) -> "Dataset":
    if datasets is None:
        if not args:
            raise TypeError("Dataset.zip: no datasets given")
        datasets = args[0] if len(args) == 1 else args
    elif args:
        raise TypeError("Dataset.zip: pass the datasets either positionally or as datasets=, not both")
    struct, leaves = _flatten(datasets)
    flat = _as_datasets("Dataset.zip", (d for _, d in leaves))
    parts = [d._struct for d in flat]
    lazy = _LazyStruct(parts, lambda values: _graft(struct, iter(values)))
    # The class of the inputs (tb.data.Dataset), without importing the module above this one.
    return type(flat[0])(_core._Dataset.zip([d._ds for d in flat]), lazy)  # type: ignore[arg-type]


def _concatenate(ds: "Dataset", other: "Dataset") -> "Dataset":
    _as_datasets("concatenate", [other])
    _check_same("concatenate", [ds, other])
    return ds._derive(ds._ds.concatenate(other._ds))


def _truth(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    name = getattr(dtype, "name", str(dtype))
    if name == "bool" and shape is not None and tuple(shape) == ():
        return bool(value)
    raise TypeError(f"filter: the predicate must return a bool or a 0-d bool tensor, not "
                    f"{type(value).__name__}" + (f" of dtype {name} and shape {tuple(shape)}"
                                                 if shape is not None else ""))


def _filter(ds: "Dataset", predicate: Any) -> "Dataset":
    if not callable(predicate):
        raise TypeError(f"filter() takes a callable, not {type(predicate).__name__}")
    struct = ds._struct

    def call(tensors: list) -> bool:
        elem = _unflatten(struct.value, iter(tensors))
        out = predicate(*elem) if isinstance(elem, tuple) else predicate(elem)
        return _truth(out)

    return ds._derive(ds._ds.filter_py(call))


def _enumerate(ds: "Dataset", start: int) -> "Dataset":
    lazy = _LazyStruct([ds._struct], lambda v: ("tuple", (_LEAF, v[0])))
    return ds._derive(ds._ds.enumerate(int(start)), lazy, batched=False)  # type: ignore[arg-type]


def _shape(value: Any, path: str) -> Optional[list]:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        value = [value]
    dims = getattr(value, "as_list", None)
    if callable(dims):  # a tf.TensorShape
        value = dims() if getattr(value, "rank", 0) is not None else None
        if value is None:
            return None
    out: list = []
    for d in value:
        if d is None or int(d) < 0:
            out.append(None)
        else:
            out.append(int(d))
    return out


def _per_leaf(spec: Any, struct: Any, leaf: Any, what: str, path: str = "") -> list:
    """Match ``spec`` (a structure like the element's, up to its leaves) against the
    element structure; ``leaf(value, path)`` converts each leaf."""
    if struct is _LEAF:
        return [leaf(spec, path)]
    if spec is None:
        return [leaf(None, path)] * _count(struct)
    kind = struct[0]
    if kind in ("tuple", "namedtuple") and isinstance(spec, (tuple, list)):
        subs = struct[-1]
        if len(spec) != len(subs):
            raise ValueError(f"padded_batch: {what}{path} has {len(spec)} entries but the element has "
                             f"{len(subs)}")
        out = []
        for i, (v, s) in enumerate(zip(spec, subs)):
            out.extend(_per_leaf(v, s, leaf, what, f"{path}[{i}]"))
        return out
    if kind == "dict" and isinstance(spec, dict):
        extra = set(spec) - set(struct[1])
        if extra:
            raise ValueError(f"padded_batch: {what}{path}: keys {sorted(map(repr, extra))} are not in "
                             f"the element")
        out = []
        for k, s in struct[1].items():
            out.extend(_per_leaf(spec.get(k), s, leaf, what, f"{path}[{k!r}]"))
        return out
    raise ValueError(f"padded_batch: the structure of {what}{path} does not match the element's")


def _pad_value(value: Any, path: str) -> Optional[Tensor]:
    if value is None:
        return None
    t = _to_tensor(value)
    if t.shape != ():
        raise ValueError(f"padded_batch: padding value{path} must be a scalar, not of shape {t.shape}")
    return t


def _padded_batch(ds: "Dataset", batch_size: int, padded_shapes: Any, padding_values: Any,
                 drop_remainder: bool) -> "Dataset":
    struct = ds._struct
    shapes = values = None
    if padding_values is not None and not isinstance(padding_values, (tuple, list, dict)):
        values = [_pad_value(padding_values, "")]  # a single scalar pads every component
        padding_values = None
    if padded_shapes is not None or padding_values is not None:
        if not struct.known:
            raise ValueError("padded_batch with padded_shapes or a structure of padding_values needs "
                             "a known element structure; apply it before the Python map function")
        if padded_shapes is not None:
            shapes = _per_leaf(padded_shapes, struct.value, _shape, "padded_shapes")
        if padding_values is not None:
            values = _per_leaf(padding_values, struct.value, _pad_value, "padding_values")
    return ds._derive(ds._ds.padded_batch(int(batch_size), shapes, values, bool(drop_remainder)),
                      batched=True)


def _sample_from_datasets(datasets: Any, weights: Any, seed: Optional[int],
                         stop_on_empty_dataset: bool) -> "Dataset":
    flat = _as_datasets("sample_from_datasets", datasets)
    _check_same("sample_from_datasets", flat)
    w = None if weights is None else [float(x) for x in np.asarray(weights, dtype=np.float64).ravel()]
    if seed is not None:
        seed = int(seed) & 0xFFFF_FFFF_FFFF_FFFF
    core = _core._Dataset.sample_from_datasets([d._ds for d in flat], w, seed, bool(stop_on_empty_dataset))
    return type(flat[0])(core, flat[0]._struct, None, flat[0]._batched)


def _choose_from_datasets(datasets: Any, choice_dataset: Any, stop_on_empty_dataset: bool) -> "Dataset":
    flat = _as_datasets("choose_from_datasets", datasets)
    (choice,) = _as_datasets("choose_from_datasets", [choice_dataset])
    spec = choice._ds.element_spec()
    if (choice._struct.known and choice._struct.value is not _LEAF) or (
            spec is not None and [(d.name, tuple(s)) for d, s in spec] != [("int64", ())]):
        raise TypeError("choose_from_datasets: choice_dataset must yield int64 scalars")
    _check_same("choose_from_datasets", flat)
    core = _core._Dataset.choose_from_datasets([d._ds for d in flat], choice._ds, bool(stop_on_empty_dataset))
    return type(flat[0])(core, flat[0]._struct, None, flat[0]._batched)


def _me(obj: Any) -> "Dataset":
    """A ``_Combinators`` method's ``self``: always a ``Dataset``."""
    return cast("Dataset", obj)


class _Combinators:
    """``tb.data.Dataset``'s random access, ``global_shuffle`` and combinators (a base
    class of ``Dataset``, kept here so ``data.py`` stays small)."""

    __slots__ = ()

    def __getitem__(self, index: int) -> Any:
        """Element ``index`` (negative counts from the end) without running the ones
        before it: for random-access datasets (see :meth:`global_shuffle`); others
        raise ``TypeError`` naming the op that prevents it."""
        return _getitem(_me(self), index)

    def global_shuffle(self, seed: Optional[int] = None,
                       reshuffle_each_iteration: bool = True) -> "Dataset":
        """Shuffle the whole dataset with no buffer (TF 2.17's name): epoch ``e`` yields
        the elements in the order of a seeded permutation of all indices (a Feistel
        network, O(1) memory), a new one each epoch unless
        ``reshuffle_each_iteration=False``; deterministic for a given seed.

        Needs random access (``ds[i]``): ``from_tensor_slices``, ``range``,
        ``from_files`` of ``.npy``/``.npz`` and ``map``/``take``/``skip``/``shard``/
        ``batch``/``zip``/``concatenate``/``enumerate`` of those; otherwise
        ``ValueError`` names the op that prevents it. Each element is read at its
        own position: one ``pread`` of the row from a local ``.npy`` file (cheap once
        the file is in the page cache). On object storage a read per row would be a
        round trip per element; use ``from_files(shuffle_files=True, cycle_length=k)``
        + ``shuffle(buffer)`` there (whole objects read, rows mixed within a window).
        The result has random access again (epoch 0's order).

        An iterator's state holds three numbers (epoch, seed, position), whatever the
        data size. **Elastic sharding**: ``global_shuffle(...).shard(n, i)`` (then
        ``map``/``batch`` as you like) reads only shard ``i``'s positions of the
        permutation and saves the *global* position (elements this shard consumed ×
        ``n``: all shards' together when they advance in lockstep, as data-parallel
        workers do). Its state restores into ``shard(n2, i2)`` with another ``n2``:
        the new shards continue at that position, so the old shards' elements plus
        the new shards' are every element of the epoch exactly once."""
        if seed is not None:
            seed = int(seed) & 0xFFFF_FFFF_FFFF_FFFF
        ds = _me(self)
        return ds._derive(ds._ds.global_shuffle(seed, bool(reshuffle_each_iteration)))

    @staticmethod
    def zip(*args: Any, datasets: Any = None) -> "Dataset":
        """Elements made of one element of each dataset, in the structure given: a
        tuple or dict of datasets (nested as you like, as tf.data), passed as one
        argument, as several, or as ``datasets=``. Ends with the shortest."""
        return _zip(args, datasets)

    def concatenate(self, dataset: "Dataset") -> "Dataset":
        """This dataset's elements, then ``dataset``'s (same structure and dtypes, else
        ``TypeError``; shapes may differ, ``element_spec`` keeps what they share)."""
        return _concatenate(_me(self), dataset)

    def filter(self, predicate: Any) -> "Dataset":
        """The elements for which ``predicate(element)`` (tuple elements as positional
        arguments) returns ``True``; it must return a ``bool`` or a 0-d bool
        tensor/array (else ``TypeError``). Cardinality becomes unknown."""
        return _filter(_me(self), predicate)

    def enumerate(self, start: int = 0) -> "Dataset":
        """``(index, element)`` pairs, the index an int64 scalar counted from ``start``."""
        return _enumerate(_me(self), start)

    def unbatch(self) -> "Dataset":
        """Split each element into its rows along the first dimension (which every
        component must share)."""
        ds = _me(self)
        return ds._derive(ds._ds.unbatch(), batched=False)

    def padded_batch(self, batch_size: int, padded_shapes: Any = None, padding_values: Any = None,
                     drop_remainder: bool = False) -> "Dataset":
        """Batch elements whose shapes differ: each component is padded to
        ``padded_shapes`` (a shape per component, structured like the element; ``None``
        or ``-1`` dims, or ``padded_shapes=None``: the batch's largest) with
        ``padding_values`` (scalars structured like the element, or one scalar for
        all; default 0). Too large an element raises ``ValueError`` when reached."""
        return _padded_batch(_me(self), batch_size, padded_shapes, padding_values, drop_remainder)

    @staticmethod
    def sample_from_datasets(datasets: Any, weights: Any = None, seed: Optional[int] = None,
                             stop_on_empty_dataset: bool = False) -> "Dataset":
        """Each element is the next one of ``datasets[k]``, ``k`` drawn with probability
        proportional to ``weights[k]`` (default: uniform) among those not yet
        exhausted (tensorbridge's seeded PRNG: the same picks every epoch for a given
        seed, not tf.data's). With ``stop_on_empty_dataset=True`` the first exhausted
        dataset ends it."""
        return _sample_from_datasets(datasets, weights, seed, stop_on_empty_dataset)

    @staticmethod
    def choose_from_datasets(datasets: Any, choice_dataset: "Dataset",
                             stop_on_empty_dataset: bool = True) -> "Dataset":
        """Each element is the next one of ``datasets[c]``, ``c`` the next int64 scalar
        of ``choice_dataset`` (out of range: an error when reached). An exhausted
        dataset ends it (``stop_on_empty_dataset=True``) or its choices are skipped."""
        return _choose_from_datasets(datasets, choice_dataset, stop_on_empty_dataset)
