"""zip, concatenate, filter, enumerate, unbatch, padded_batch, sample_from_datasets and
choose_from_datasets against tf.data (issue 11 item 4)."""

import numpy as np
import pytest

import tensorbridge as tb
from conftest import same

tf = pytest.importorskip("tensorflow")

D = tb.data.Dataset
TD = tf.data.Dataset


def to_np(x):
    """A tb or tf element (nested tuple/dict) as NumPy arrays."""
    if isinstance(x, tuple):
        return tuple(to_np(v) for v in x)
    if isinstance(x, dict):
        return {k: to_np(v) for k, v in x.items()}
    return np.asarray(x.numpy())


def elements(ds):
    return [to_np(e) for e in ds]


def spec(ds):
    """tb element_spec as nested (shape, dtype name)."""
    def conv(s):
        if isinstance(s, tuple) and len(s) == 2 and isinstance(s[1], tb.DType):
            return (tuple(s[0]), s[1].name)
        if isinstance(s, tuple):
            return tuple(conv(v) for v in s)
        return {k: conv(v) for k, v in s.items()}
    return conv(ds.element_spec)


def tf_spec(ds):
    def conv(s):
        if isinstance(s, tf.TensorSpec):
            return (tuple(s.shape.as_list()), s.dtype.name)
        if isinstance(s, tuple):
            return tuple(conv(v) for v in s)
        return {k: conv(v) for k, v in s.items()}
    return conv(ds.element_spec)


def check(ours, theirs):
    """Same elements in the same order, same cardinality and element_spec."""
    a, b = elements(ours), [to_np_tf(e) for e in theirs]
    assert len(a) == len(b)
    for x, y in zip(a, b):
        same(x, y)
    assert ours.cardinality() == int(theirs.cardinality())
    assert spec(ours) == tf_spec(theirs)


def to_np_tf(x):
    if isinstance(x, tuple):
        return tuple(to_np_tf(v) for v in x)
    if isinstance(x, dict):
        return {k: to_np_tf(v) for k, v in x.items()}
    return x.numpy()


X = np.arange(24, dtype=np.float32).reshape(6, 4)
Y = np.arange(6, dtype=np.int64)


def test_zip_keeps_structure_like_tf():
    check(D.zip((D.range(3), D.range(5).skip(1))), TD.zip((TD.range(3), TD.range(5).skip(1))))
    check(D.zip({"x": D.from_tensor_slices(X), "p": (D.range(4), D.from_tensor_slices(Y))}),
          TD.zip({"x": TD.from_tensor_slices(X), "p": (TD.range(4), TD.from_tensor_slices(Y))}))
    check(D.zip(D.range(2), D.from_tensor_slices((X, Y))),
          TD.zip(TD.range(2), TD.from_tensor_slices((X, Y))))
    check(D.zip(datasets=(D.range(3), D.range(3).repeat())),
          TD.zip(datasets=(TD.range(3), TD.range(3).repeat())))
    # structure known only once a Python map has run
    z = D.zip((D.range(3).map(lambda x: {"v": x.numpy() * 2}), D.range(3)))
    assert [(int(a["v"].numpy()), int(b.numpy())) for a, b in z] == [(0, 0), (2, 1), (4, 2)]
    assert D.zip((D.range(3).repeat(), D.range(2).repeat())).cardinality() == -1
    assert D.zip((D.range(3), D.range(9).filter(lambda x: True))).cardinality() == -2
    with pytest.raises(TypeError, match="Dataset"):
        D.zip((D.range(2), 3))


def test_concatenate_like_tf():
    check(D.range(3).concatenate(D.range(4)), TD.range(3).concatenate(TD.range(4)))
    a = np.zeros((3, 2, 4), np.float64)
    b = np.ones((2, 5, 4), np.float64)
    check(D.from_tensor_slices(a).concatenate(D.from_tensor_slices(b)),
          TD.from_tensor_slices(a).concatenate(TD.from_tensor_slices(b)))
    check(D.from_tensor_slices({"x": X, "y": Y}).concatenate(D.from_tensor_slices({"x": X, "y": Y}).take(2)),
          TD.from_tensor_slices({"x": X, "y": Y}).concatenate(TD.from_tensor_slices({"x": X, "y": Y}).take(2)))
    assert D.range(3).filter(lambda x: True).concatenate(D.range(2).repeat()).cardinality() == -1
    with pytest.raises(TypeError, match="incompatible"):
        D.range(3).concatenate(D.from_tensor_slices(np.zeros(3)))
    with pytest.raises(TypeError, match="incompatible"):
        D.range(3).concatenate(D.zip((D.range(3), D.range(3))))


def test_filter_like_tf():
    check(D.range(10).filter(lambda x: x.numpy() % 3 == 0),
          TD.range(10).filter(lambda x: x % 3 == 0))
    check(D.from_tensor_slices((X, Y)).filter(lambda x, y: bool(y.numpy() > 2)),
          TD.from_tensor_slices((X, Y)).filter(lambda x, y: y > 2))
    check(D.from_tensor_slices({"x": X, "y": Y}).filter(lambda d: d["y"].numpy() < 2),
          TD.from_tensor_slices({"x": X, "y": Y}).filter(lambda d: d["y"] < 2))
    assert D.range(3).repeat().filter(lambda x: True).cardinality() == -2
    # a 0-d bool tensor works as well as a bool
    assert elements(D.range(4).filter(lambda x: tb.constant(np.bool_(x.numpy() > 1)))) == [2, 3]
    with pytest.raises(TypeError, match="bool"):
        list(D.range(3).filter(lambda x: x))
    with pytest.raises(ZeroDivisionError):
        list(D.range(3).filter(lambda x: 1 / 0))


def test_enumerate_like_tf():
    check(D.from_tensor_slices((X, Y)).enumerate(), TD.from_tensor_slices((X, Y)).enumerate())
    check(D.range(4).enumerate(start=7), TD.range(4).enumerate(start=7))
    assert D.range(2).repeat().enumerate().cardinality() == -1


def test_unbatch_like_tf():
    check(D.range(10).batch(3).unbatch(), TD.range(10).batch(3).unbatch())
    check(D.range(10).batch(3, drop_remainder=True).unbatch(), TD.range(10).batch(3, drop_remainder=True).unbatch())
    check(D.from_tensor_slices({"x": X, "y": Y}).batch(4).unbatch(),
          TD.from_tensor_slices({"x": X, "y": Y}).batch(4).unbatch())
    check(D.from_tensor_slices(X).unbatch(), TD.from_tensor_slices(X).unbatch())
    with pytest.raises(ValueError, match="leading dimension"):
        D.from_tensor_slices((np.zeros((3, 2)), np.zeros((3, 3)))).unbatch()
    with pytest.raises(ValueError, match="leading dimension"):
        list(D.range(3).map(lambda x: (np.zeros(2), np.zeros(3))).unbatch())


def ragged(n):
    """Element i: i copies of i (int64), as both libraries make it."""
    return (D.range(n).map(lambda x: np.full(int(x.numpy()), int(x.numpy()), np.int64)),
            TD.range(n).map(lambda x: tf.fill([x], x)))


def test_padded_batch_like_tf():
    ours, theirs = ragged(7)
    # The Python map's output shape is unknown to tb until it runs: compare elements.
    for kw in [dict(), dict(drop_remainder=True), dict(padded_shapes=[8]),
               dict(padded_shapes=[None], padding_values=np.int64(-1))]:
        tkw = dict(kw)
        if "padding_values" in tkw:
            tkw["padding_values"] = tf.constant(-1, tf.int64)
        a = elements(ours.padded_batch(3, **kw))
        b = [to_np_tf(e) for e in theirs.padded_batch(3, **tkw)]
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    # known shapes: element_spec and cardinality too
    x3 = np.arange(30, dtype=np.float32).reshape(5, 2, 3)
    check(D.from_tensor_slices((x3, Y[:5])).padded_batch(2, padded_shapes=([4, None], []),
                                                          padding_values=(-1.5, 9)),
          TD.from_tensor_slices((x3, Y[:5])).padded_batch(
              2, padded_shapes=([4, None], []),
              padding_values=(tf.constant(-1.5, tf.float32), tf.constant(9, tf.int64))))
    check(D.from_tensor_slices({"a": x3}).padded_batch(2, drop_remainder=True),
          TD.from_tensor_slices({"a": x3}).padded_batch(2, drop_remainder=True))
    with pytest.raises(ValueError, match="not compatible"):
        D.from_tensor_slices(x3).padded_batch(2, padded_shapes=[1, 3])
    with pytest.raises(ValueError, match="smaller"):
        list(ours.padded_batch(2, padded_shapes=[2]))


def test_choose_from_datasets_like_tf():
    choice = np.array([0, 0, 0, 1, 1, 2, 1, 0], np.int64)
    for stop in (True, False):
        ours = D.choose_from_datasets([D.range(2), D.range(14).skip(10), D.range(21).skip(20)],
                                      D.from_tensor_slices(choice), stop_on_empty_dataset=stop)
        theirs = TD.choose_from_datasets([TD.range(2), TD.range(10, 14), TD.range(20, 21)],
                                         TD.from_tensor_slices(choice), stop_on_empty_dataset=stop)
        check(ours, theirs)
    with pytest.raises(ValueError, match="out of range"):
        list(D.choose_from_datasets([D.range(3)], D.from_tensor_slices(np.array([0, 4], np.int64))))
    with pytest.raises(TypeError, match="int64"):
        D.choose_from_datasets([D.range(3)], D.from_tensor_slices(np.array([0, 1], np.int32)))
    assert D.choose_from_datasets([D.range(2).repeat()], D.range(1)).cardinality() == -1


def test_sample_from_datasets_elements_cardinality_and_spec():
    ins = lambda mod: [mod.range(5), mod.range(108).skip(100), mod.range(203).skip(200)]  # noqa: E731
    ours = D.sample_from_datasets(ins(D), seed=1)
    theirs = TD.sample_from_datasets(ins(TD), seed=1)
    a = sorted(int(x) for x in elements(ours))
    b = sorted(int(x) for x in [e.numpy() for e in theirs])
    assert a == b
    assert ours.cardinality() == int(theirs.cardinality()) == -2
    assert spec(ours) == tf_spec(theirs)
    assert elements(ours) == elements(ours)  # same picks every epoch for a seed
    # order within each input is kept
    got = [int(x) for x in elements(ours)]
    for lo in (0, 100, 200):
        sub = [g for g in got if lo <= g < lo + 100]
        assert sub == sorted(sub)
    # stop_on_empty_dataset: ends at the first exhausted input
    stop = [int(x) for x in elements(D.sample_from_datasets(ins(D), seed=1, stop_on_empty_dataset=True))]
    assert len(stop) < 16 and stop == got[:len(stop)]
    inf = D.sample_from_datasets([D.range(3).repeat(), D.range(2)], seed=0)
    assert inf.cardinality() == int(TD.sample_from_datasets([TD.range(3).repeat(), TD.range(2)]).cardinality())
    with pytest.raises(ValueError, match="weights"):
        D.sample_from_datasets([D.range(2)], weights=[-1.0])
    with pytest.raises(TypeError, match="incompatible"):
        D.sample_from_datasets([D.range(2), D.from_tensor_slices(np.zeros(2, np.float32))])


def test_sample_from_datasets_proportions_within_sampling_error():
    w = np.array([0.5, 0.3, 0.2])
    n = 20_000
    counts = np.array([0, 0, 0])
    ds2 = D.sample_from_datasets([D.from_tensor_slices(np.full(1, k, np.int64)).repeat() for k in range(3)],
                                 weights=w, seed=123).take(n)
    for x in ds2:
        counts[int(x.numpy())] += 1
    expected = w * n
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert stat < 13.816, (counts, stat)  # chi-square, 2 degrees of freedom, p = 0.001
    # each proportion within 4 binomial standard deviations
    sd = np.sqrt(n * w * (1 - w))
    assert np.all(np.abs(counts - expected) < 4 * sd), counts
    # a wrong weighting fails the same check
    bad = np.array([1 / 3] * 3) * n
    assert float(((counts - bad) ** 2 / bad).sum()) > 13.816
    # exhausted inputs drop out and the rest keep their relative weights
    ds3 = D.sample_from_datasets([D.range(10), D.range(110).skip(100)], weights=[0.9, 0.1], seed=5)
    assert sorted(int(x.numpy()) for x in ds3) == list(range(10)) + list(range(100, 110))
