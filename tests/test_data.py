"""tb.data against real tf.data (issue 5)."""

import gc
import threading
import time

import numpy as np
import pytest

import tensorbridge as tb
from conftest import same, wait_threads

tf = pytest.importorskip("tensorflow")
Dataset = tb.data.Dataset


def to_np(x):
    if isinstance(x, tuple):
        return tuple(to_np(v) for v in x)
    if isinstance(x, dict):
        return {k: to_np(v) for k, v in x.items()}
    return np.asarray(x)


def tb_list(ds):
    return [to_np(e) for e in ds]


def tf_list(ds):
    return list(ds.as_numpy_iterator())


def check_same(tbds, tfds):
    a, b = tb_list(tbds), tf_list(tfds)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        same(x, y)
    assert tbds.cardinality() == int(tfds.cardinality())


rng = np.random.default_rng(0)
IMGS = rng.integers(0, 256, size=(23, 4, 5, 3), dtype=np.uint8)
LABELS = rng.integers(0, 10, size=(23,), dtype=np.int64)
W = rng.standard_normal((23, 2)).astype(np.float32)



# ------------------------------------------------------------------ equality with tf.data

@pytest.mark.parametrize("drop", [False, True])
def test_tuple_cast_scale_batch(drop):
    a = (Dataset.from_tensor_slices((IMGS, LABELS))
         .map((tb.ops.cast(tb.float32), None))
         .map((tb.ops.scale(1 / 255, 0.5), None))
         .batch(5, drop_remainder=drop)
         .prefetch(2))
    m, c = np.float32(1 / 255), np.float32(0.5)
    b = (tf.data.Dataset.from_tensor_slices((IMGS, LABELS))
         .map(lambda x, y: (tf.cast(x, tf.float32) * m + c, y))
         .batch(5, drop_remainder=drop))
    check_same(a, b)
    spec = a.element_spec
    assert spec[0] == ((5 if drop else None, 4, 5, 3), tb.float32)


def test_dict_and_single_op_for_all():
    a = Dataset.from_tensor_slices({"img": IMGS, "w": W}).map(tb.ops.cast(tb.float64)).batch(4)
    b = tf.data.Dataset.from_tensor_slices({"img": IMGS, "w": W}).map(
        lambda d: {k: tf.cast(v, tf.float64) for k, v in d.items()}).batch(4)
    check_same(a, b)
    a = Dataset.from_tensor_slices({"img": IMGS, "w": W}).map({"img": tb.ops.reshape([-1])})
    b = tf.data.Dataset.from_tensor_slices({"img": IMGS, "w": W}).map(
        lambda d: {"img": tf.reshape(d["img"], [-1]), "w": d["w"]})
    check_same(a, b)


def test_single_array_and_slices_are_views():
    a = Dataset.from_tensor_slices(W)
    first = next(iter(a))
    assert isinstance(first, tb.Tensor) and first.is_view
    check_same(a, tf.data.Dataset.from_tensor_slices(W))


def test_repeat_take_skip_shard():
    a = Dataset.from_tensor_slices((IMGS, LABELS))
    b = tf.data.Dataset.from_tensor_slices((IMGS, LABELS))
    check_same(a.repeat(2).skip(3).take(30), b.repeat(2).skip(3).take(30))
    check_same(a.shard(4, 1).batch(2), b.shard(4, 1).batch(2))
    check_same(a.skip(-1), b.skip(-1))
    check_same(a.take(-1).batch(7, True), b.take(-1).batch(7, True))
    r = Dataset.range(10)
    check_same(r.repeat(3).batch(4), tf.data.Dataset.range(10).repeat(3).batch(4))


def test_cardinality_and_len():
    a = Dataset.range(10)
    assert len(a) == 10 and len(a.batch(3)) == 4 and len(a.batch(3, True)) == 3
    assert a.repeat().cardinality() == tb.data.INFINITE_CARDINALITY
    assert len(a.repeat().take(7)) == 7
    with pytest.raises(TypeError, match="infinite"):
        len(a.repeat())
    with pytest.raises(ValueError, match=r"\[1\] has 3"):
        Dataset.from_tensor_slices((np.zeros(4), np.zeros(3)))


# ------------------------------------------------------------------ shuffle

def order(ds):
    return [int(np.asarray(x)) for x in ds]


def test_shuffle_permutation_determinism_and_epochs():
    ds = Dataset.range(200).shuffle(50, seed=7)
    e1, e2 = order(ds), order(ds)
    assert sorted(e1) == list(range(200)) and sorted(e2) == list(range(200))
    assert e1 != e2  # reshuffled each epoch
    again = Dataset.range(200).shuffle(50, seed=7)
    assert order(again) == e1 and order(again) == e2  # same seed, same epochs
    fixed = Dataset.range(200).shuffle(50, seed=7, reshuffle_each_iteration=False)
    assert order(fixed) == order(fixed)
    assert order(Dataset.range(200).shuffle(50, seed=8)) != e1
    # with repeat, each pass is a new epoch, like tf.data
    rep = order(Dataset.range(20).shuffle(20, seed=1).repeat(2))
    assert sorted(rep[:20]) == list(range(20)) and rep[:20] != rep[20:]


def test_shuffle_uniform_first_position():
    n, trials = 10, 4000
    counts = np.zeros(n)
    ds = Dataset.range(n).shuffle(n, seed=123)
    it_counts = 0
    for _ in range(trials):  # each iteration is a new epoch with a new order
        counts[next(iter(ds)).numpy()] += 1
        it_counts += 1
    expected = trials / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.88, (chi2, counts)  # p = 0.001 for 9 degrees of freedom


def test_shard_disjoint_and_covering():
    base = Dataset.range(103).shuffle(103, seed=3, reshuffle_each_iteration=False)
    parts = [set(order(base.shard(4, i))) for i in range(4)]
    assert sum(len(p) for p in parts) == 103
    assert set().union(*parts) == set(range(103))
    assert [len(Dataset.range(103).shard(4, i)) for i in range(4)] == [26, 26, 26, 25]


# ------------------------------------------------------------------ python map

def test_python_map_matches_tf_and_keeps_order():
    a = Dataset.from_tensor_slices((IMGS, LABELS)).map(
        lambda x, y: (np.asarray(x).sum(dtype=np.int64), np.asarray(y) * 2), num_parallel_calls=3).batch(4)
    b = tf.data.Dataset.from_tensor_slices((IMGS, LABELS)).map(
        lambda x, y: (tf.reduce_sum(tf.cast(x, tf.int64)), y * 2)).batch(4)
    check_same(a, b)


def test_python_map_exception_propagates_with_traceback():
    def boom(x):
        if int(np.asarray(x)) == 5:
            raise KeyError("element five")
        return x

    base = threading.active_count()
    with pytest.raises(KeyError, match="element five") as info:
        for _ in Dataset.range(100).map(boom, num_parallel_calls=2).prefetch(2):
            pass
    assert any(e.name == "boom" for e in info.traceback)
    assert wait_threads(base)


# ------------------------------------------------------------------ stopping

def test_early_break_and_drop_join_every_thread():
    gc.collect()
    base = threading.active_count()
    big = np.zeros((64, 256, 256), np.uint8)
    ds = (Dataset.from_tensor_slices(big).repeat()
          .map(tb.ops.cast(tb.float32)).map(lambda x: x, num_parallel_calls=2)
          .batch(8).prefetch(4))
    for i, _ in enumerate(ds):
        if i == 3:
            assert tb._core.data_live_threads() >= 3
            break
    assert wait_threads(base)
    it = iter(ds)
    next(it)
    assert tb._core.data_live_threads() >= 3
    del it
    assert wait_threads(base)
    raw = ds._ds.iterate()  # the Rust iterator itself, dropped without close()
    next(raw)
    del raw
    assert wait_threads(base)


# ------------------------------------------------------------------ outputs

def test_numpy_iterator_and_keras_fit():
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64)
    ds = Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(32).prefetch(2)
    first = next(ds.as_numpy_iterator())
    assert isinstance(first[0], np.ndarray) and first[0].shape == (32, 8)
    tfds = ds.to_tensorflow()
    assert tfds.element_spec[0].shape.as_list() == [None, 8]
    model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(2)])
    model.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(tfds, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    # A Python map function: spec from the first element
    pyds = Dataset.from_tensor_slices((x, y)).map(lambda a, b: (np.asarray(a) * 2, b)).batch(32)
    assert pyds.to_tensorflow().element_spec[0].shape.as_list() == [None, 8]


def test_ctrl_c_stops_every_thread(tmp_path):
    """SIGINT during iteration raises KeyboardInterrupt in the loop; leaving the loop
    stops and joins every pipeline thread (checked in a child process)."""
    import signal
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "loop.py"
    script.write_text(textwrap.dedent("""
        import gc, signal, sys, threading, numpy as np, tensorbridge as tb
        from tensorbridge import _core
        # A child of a shell's background job inherits SIGINT ignored, and Python then
        # installs no handler of its own: install it, as an interactive run has it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        x = np.zeros((4096, 32, 32, 3), np.uint8)
        ds = (tb.data.Dataset.from_tensor_slices(x).repeat().shuffle(512, seed=0)
              .map(tb.ops.cast(tb.float32)).batch(64).prefetch(4))
        try:
            for i, b in enumerate(ds):
                if i == 20:
                    print("running", flush=True)
        except KeyboardInterrupt:
            gc.collect()
            print("interrupted", _core.data_live_threads(), threading.active_count(), flush=True)
            sys.exit(0)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "running"
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:  # never leave a looping child behind
            p.kill()
            p.wait()
    assert p.returncode == 0, out
    assert out.split() == ["interrupted", "0", "1"], out
