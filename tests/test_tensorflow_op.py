"""``Dataset.to_tensorflow()``'s native TensorFlow op (issue 12, item 1).

The tf.data.Dataset pulls batches through an op registered with TensorFlow's C API
(crates/tensorbridge-py/src/tf_bridge/): these tests check that the op path is the
one used, that batches reach TensorFlow without a copy, that every epoch's pipeline
iterator is closed (at its end, at an error, or when TensorFlow drops an abandoned
iterator), and that values/dtypes/structure equal tensorbridge's own batches
(NumPy is the oracle). The generic hand-off tests (model.fit, tf.function loops,
MirroredStrategy) are in test_handoff.py.
"""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

import tensorbridge as tb
from tensorbridge import _core, _tensorflow
from tensorbridge.data import Dataset

tf = pytest.importorskip("tensorflow")

rng = np.random.default_rng(1212)


def _wait_closed(base_threads: int) -> tuple:
    """tf_stats() once every epoch is closed and the pipeline threads are gone
    (TensorFlow frees a dropped iterator's resources on its own threads), or the
    state after 30 s."""
    for _ in range(300):
        gc.collect()
        st = _core.tf_stats()
        if st[:2] == (0, 0) and _core.data_live_threads() <= base_threads:
            break
        time.sleep(0.1)
    return _core.tf_stats()[:2], _core.data_live_threads()


def _same(got, want):
    g = got.numpy()
    assert g.dtype == want.dtype, (g.dtype, want.dtype)
    np.testing.assert_array_equal(g, want)


def test_the_native_op_is_used_and_shares_batches():
    x = rng.standard_normal((100, 16)).astype(np.float32)
    y = np.arange(100, dtype=np.int64)
    ds = Dataset.from_tensor_slices((x, y)).map((tb.ops.scale(3.0, 1.0), None)).batch(32).prefetch(2)
    out = ds.to_tensorflow()
    assert _tensorflow._why_not is None, _tensorflow._why_not
    assert out.element_spec == (tf.TensorSpec((None, 16), tf.float32), tf.TensorSpec((None,), tf.int64))
    assert int(out.cardinality()) == 4
    want = list(ds.as_numpy_iterator())
    held = []
    for i, (xb, yb) in enumerate(out):
        handles, iterators, shared = _core.tf_stats()
        assert handles >= 1 and iterators >= 1  # this epoch's pipeline, registered by the op
        held.append((xb, yb))
        # Every batch TensorFlow holds is the pipeline's own buffer (no copy).
        assert shared >= 2 * len(held), (shared, len(held))
        _same(xb, want[i][0])
        _same(yb, want[i][1])
    assert len(held) == 4
    del held, xb, yb


def test_epoch_end_closes_the_pipeline():
    base = _core.data_live_threads()
    ds = Dataset.range(50).map(tb.ops.scale(2, 0)).batch(7).prefetch(3)
    out = ds.to_tensorflow()
    for epoch in range(3):  # a fresh pipeline iterator per epoch
        got = np.concatenate([t.numpy() for t in out])
        np.testing.assert_array_equal(got, np.arange(50) * 2)
    assert _wait_closed(base) == ((0, 0), base)
    two = np.concatenate([t.numpy() for t in out.repeat(2)])
    np.testing.assert_array_equal(two, np.concatenate([np.arange(50) * 2] * 2))
    assert _wait_closed(base) == ((0, 0), base)


def test_an_abandoned_tf_iterator_closes_the_pipeline():
    base = _core.data_live_threads()
    out = Dataset.range(10_000).batch(10).prefetch(4).to_tensorflow()
    it = iter(out)
    first = next(it)
    np.testing.assert_array_equal(first.numpy(), np.arange(10))
    assert _core.tf_stats()[1] == 1 and _core.data_live_threads() > base
    del it, first
    assert _wait_closed(base) == ((0, 0), base)
    # take() stops early too: the rest of the epoch is never pulled.
    got = [t.numpy() for t in out.take(3)]
    np.testing.assert_array_equal(np.concatenate(got), np.arange(30))
    assert _wait_closed(base) == ((0, 0), base)


@pytest.mark.parametrize("unknown_cardinality", [False, True])
def test_python_map_values_and_structure(unknown_cardinality):
    a = rng.standard_normal((30, 3)).astype(np.float64)
    b = rng.integers(0, 100, size=(30,), dtype=np.int32)
    ds = Dataset.from_tensor_slices({"a": a, "b": b}).map(
        lambda e: {"a": tb.convert_to_tensor(e["a"].numpy() * 2),
                   "b": (tb.convert_to_tensor(e["b"].numpy() + 1), e["a"])})
    if unknown_cardinality:
        ds = ds.filter(lambda e: bool(e["b"][0].numpy() % 3))
    ds = ds.batch(4)
    out = ds.to_tensorflow()
    assert int(out.cardinality()) == (tf.data.UNKNOWN_CARDINALITY if unknown_cardinality else 8)
    want = list(ds.as_numpy_iterator())
    assert len(want) > 1
    for _ in range(2):
        got = list(out)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert list(g) == ["a", "b"] and isinstance(g["b"], tuple)
            _same(g["a"], w["a"])
            _same(g["b"][0], w["b"][0])
            _same(g["b"][1], w["b"][1])


def test_a_python_exception_in_map_reaches_the_loop():
    base = _core.data_live_threads()

    def boom(x):
        if int(x.numpy()) == 13:
            raise ValueError("boom at element 13")
        return x

    out = Dataset.range(40).map(boom).batch(4).to_tensorflow()
    seen = []
    with pytest.raises(tf.errors.OpError, match=r"ValueError: boom at element 13"):
        for t in out:
            seen.append(t.numpy())
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(12))
    assert _wait_closed(base) == ((0, 0), base)


DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "bfloat16", "float32", "float64", "complex64", "complex128"]


@pytest.mark.parametrize("name", DTYPES)
def test_every_dtype(name):
    src = tb.convert_to_tensor(rng.standard_normal((9, 2, 3)) * 50, dtype=getattr(tb, name))
    ds = Dataset.from_tensor_slices(src).batch(4)
    out = ds.to_tensorflow()
    assert out.element_spec.dtype == tf.as_dtype(name)
    want = list(ds.as_numpy_iterator())
    got = list(out)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        assert g.dtype == tf.as_dtype(name)
        np.testing.assert_array_equal(g.numpy().view(np.uint8), np.asarray(w).view(np.uint8))


def test_unbatched_views_and_strided_elements():
    """Elements that are views of the source (unaligned or strided) are copied
    into TensorFlow's memory where they must be; values stay exact."""
    x = np.arange(5 * 7 * 3, dtype=np.int16).reshape(5, 7, 3)
    for arr in (x, x.transpose(1, 0, 2), x[:, ::2]):
        ds = Dataset.from_tensor_slices(arr)
        got = [t.numpy() for t in ds.to_tensorflow()]
        assert len(got) == len(arr)
        for g, w in zip(got, arr):
            np.testing.assert_array_equal(g, w)


def test_falls_back_to_the_generator_with_one_warning(monkeypatch):
    monkeypatch.setattr(_tensorflow, "_why_not", "RuntimeError: no kernel API here")
    ds = Dataset.range(10).batch(3)
    with pytest.warns(RuntimeWarning, match=r"native TensorFlow op could not be set up "
                                            r"\(RuntimeError: no kernel API here\).*generator"):
        out = ds.to_tensorflow()
    np.testing.assert_array_equal(np.concatenate([t.numpy() for t in out]), np.arange(10))
    assert int(out.cardinality()) == 4


def test_missing_symbol_is_a_reason_not_a_crash(monkeypatch):
    """A library without the C kernel API: the install step names the missing
    function instead of failing later (and a failed lookup is not remembered)."""
    import ctypes.util

    libc = ctypes.util.find_library("c")  # loaded in every process, no TF_ symbols
    monkeypatch.setattr(_tensorflow, "_why_not", _tensorflow._UNTRIED)
    monkeypatch.setattr(_tensorflow, "_framework_library", lambda tf: libc)
    why = _tensorflow._install_native_ops(tf)
    assert why is not None and "does not export TF_NewStatus" in why and libc in why


def test_library_not_loaded_is_a_reason(monkeypatch, tmp_path):
    """tf_install never loads a library itself: a path that is not loaded is refused."""
    monkeypatch.setattr(_tensorflow, "_why_not", _tensorflow._UNTRIED)
    monkeypatch.setattr(_tensorflow, "_framework_library", lambda tf: str(tmp_path / "libnothing.so"))
    why = _tensorflow._install_native_ops(tf)
    assert why is not None and "is not loaded in this process" in why


def test_static_shapes_and_the_op_checks_each_batch():
    """The shapes are declared statically (no ensure_shape stage); the op itself
    checks every element against them and names the component and both shapes."""
    x = rng.standard_normal((70, 5)).astype(np.float32)
    out = Dataset.from_tensor_slices(x).batch(32, drop_remainder=True).to_tensorflow()
    assert out.element_spec == tf.TensorSpec((32, 5), tf.float32)
    seen = []

    @tf.function
    def shapes_in_graph():
        for b in out:
            seen.append(b.shape.as_list())  # traced once: the static shape
        return 0

    shapes_in_graph()
    assert seen == [[32, 5]]
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in out]), x[:64])

    # A Python map whose elements change shape: the spec (from the first element)
    # says (1,); the second element has 2 values.
    base = _core.data_live_threads()
    ragged = Dataset.range(6).map(lambda i: tb.convert_to_tensor(np.arange(int(i.numpy()) % 2 + 1)))
    out = ragged.to_tensorflow()
    assert out.element_spec == tf.TensorSpec((1,), tf.int64)
    got = []
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"component 0 of an element has shape \[2\] but the dataset's "
                             r"element_spec says \(1\)"):
        for t in out:
            got.append(t.numpy())
    assert len(got) == 1
    assert _wait_closed(base) == ((0, 0), base)


def test_shape_attr_encoding():
    enc = _tensorflow._encode_shapes([tf.TensorShape(None), tf.TensorShape([]),
                                      tf.TensorShape([None, 64, 3]), tf.TensorShape([7])])
    assert enc == [-1, 0, 3, -1, 64, 3, 1, 7]
