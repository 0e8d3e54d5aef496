"""``tb.data.DatasetIterator``: one epoch of a ``tb.data.Dataset`` that can save its
place (``get_state``) and resume exactly (``set_state`` / ``ds.iterator(state)``).

The state is a small JSON-serialisable dict (ints, strings, lists, dicts; no
element data): counters, PRNG states, the epoch numbers used, and the source
positions of the elements in flight (a shuffle buffer, a prefetch channel, a
parallel map's jobs). A resumed iterator — in this process or another, built
from the same pipeline definition — yields exactly the elements the saved one
would have yielded next: bit-identical, same batch boundaries.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Optional

from ._structure import _Progress, _unflatten

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset

__all__ = ["DatasetIterator"]


def _state_text(state: Any) -> str:
    if isinstance(state, dict):
        try:
            return json.dumps(state)
        except (TypeError, ValueError) as e:
            raise ValueError(f"set_state: the state is not JSON-serialisable: {e}") from None
    if isinstance(state, (str, bytes, bytearray)):
        return state.decode() if isinstance(state, (bytes, bytearray)) else state
    raise TypeError(f"set_state: expected the dict get_state() returned (or its JSON text), "
                    f"not {type(state).__name__}")


class DatasetIterator:
    """One epoch of a :class:`tensorbridge.data.Dataset`: yields its elements
    (``tb.Tensor``\\ s in the dataset's tuple/dict structure), and saves and restores
    its place.

    Made by ``iter(ds)`` or ``ds.iterator(state=None)``. ``get_state()`` returns a
    JSON-serialisable dict (no element data; for ``shuffle(n)`` about ``n`` numbers,
    the source positions of the buffered elements); ``set_state(state)`` — or
    ``ds.iterator(state)`` on a dataset built the same way, in any process — goes on
    exactly where that state was taken. A state saved from a different pipeline
    definition raises ``ValueError`` naming the first stage that differs.
    Leaving a loop early, an exception, ``close()`` or dropping the iterator stops
    and joins its worker threads.
    """

    __slots__ = ("_dataset", "_it", "_final", "_bar", "_unflatten", "__weakref__")

    def __init__(self, dataset: "Dataset", state: Any = None):
        self._dataset = dataset
        self._it: Any = None
        self._final: Optional[str] = None
        self._bar: Any = None

        self._unflatten = _unflatten
        self._start(state)

    def _start(self, state: Any) -> None:
        ds = self._dataset
        text = None if state is None else _state_text(state)
        it = ds._ds.iterate(text)
        self.close()
        self._it, self._final = it, None
        if ds._progress is not None:

            self._bar = _Progress(ds._progress, ds._ds.cardinality())

    def __iter__(self) -> "DatasetIterator":
        return self

    def __next__(self) -> Any:
        it = self._it
        if it is None:
            raise StopIteration
        try:
            flat = next(it)
        except StopIteration:
            self._finish()
            raise
        except BaseException:
            self.close()
            raise
        if self._bar is not None:
            self._bar.step()
        return self._unflatten(self._dataset._struct.value, iter(flat))

    def _finish(self) -> None:
        """At the end: keep the final state (so ``get_state`` still works), then stop."""
        try:
            self._final = self._it.get_state()
        except ValueError:
            self._final = None
        self.close()

    def get_state(self) -> Dict[str, Any]:
        """This iterator's place: a JSON-serialisable dict (``json.dumps`` it beside
        a model checkpoint). Cheap (no element data is touched). Raises
        ``ValueError`` for a pipeline that cannot resume (``Dataset.from_ray``) or
        once the iterator has been closed before its end."""
        if self._it is None:
            if self._final is not None:
                return json.loads(self._final)
            raise ValueError("get_state: the iterator is closed (it was closed before its end, "
                             "or failed)")
        return json.loads(self._it.get_state())

    def set_state(self, state: Any) -> None:
        """Go on from ``state`` (a dict from ``get_state()``, or its JSON text), taken
        from an iterator of this dataset or of one built the same way; a state of
        another pipeline raises ``ValueError`` saying which stage differs. The
        elements this iterator had in flight are dropped."""
        self._start(state)

    def close(self) -> None:
        """Stop every worker thread of this iterator and free its buffers (idempotent)."""
        it, self._it = self._it, None
        if it is not None:
            it.close()
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

    def __repr__(self) -> str:
        return f"<tb.data.DatasetIterator of {self._dataset!r}>"
