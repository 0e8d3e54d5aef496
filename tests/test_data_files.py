"""tb.data.Dataset.from_files (issue 5): rows of many .npy / .npz files, read lazily.

Oracles: NumPy concatenation of the files and real tf.data (from_tensor_slices of the
concatenation; ``interleave`` over per-file datasets for cycle_length > 1).
"""

import gc
import os
import threading
import time
import warnings

import numpy as np
import pytest

import tensorbridge as tb
from conftest import wait_threads

tf = pytest.importorskip("tensorflow")
Dataset = tb.data.Dataset

SIZES = (5, 1, 7, 3, 4)



def write_shards(d, sizes=SIZES, shape=(4, 3), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    arrs, paths = [], []
    for i, n in enumerate(sizes):
        a = rng.integers(0, 256, size=(n, *shape)).astype(dtype)
        p = os.path.join(d, f"shard-{i:03d}.npy")
        np.save(p, a)
        arrs.append(a)
        paths.append(p)
    return arrs, paths


def rows(ds):
    return [np.asarray(x) for x in ds.as_numpy_iterator()]


def assert_rows_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


@pytest.fixture
def shards(tmp_path):
    arrs, paths = write_shards(str(tmp_path))
    return tmp_path, arrs, paths


# ------------------------------------------------------------------ equality

def test_rows_in_file_order_match_numpy_and_tf(shards):
    d, arrs, paths = shards
    ds = Dataset.from_files(str(d / "shard-*.npy"))
    full = np.concatenate(arrs)
    assert len(ds) == ds.cardinality() == full.shape[0]
    assert ds.element_spec == ((4, 3), tb.uint8)
    assert_rows_equal(rows(ds), list(full))
    tfds = tf.data.Dataset.from_tensor_slices(full)
    assert_rows_equal(rows(ds), list(tfds.as_numpy_iterator()))
    # Every epoch the same; a list keeps its order (no sorting).
    assert_rows_equal(rows(ds), list(full))
    rev = Dataset.from_files(paths[::-1])
    assert_rows_equal(rows(rev), list(np.concatenate(arrs[::-1])))


def test_composes_with_map_shuffle_batch_prefetch(shards):
    d, arrs, paths = shards
    full = np.concatenate(arrs)
    ds = (Dataset.from_files(paths).map(tb.ops.cast(tb.float32)).map(tb.ops.scale(1 / 255, 0))
          .batch(4).prefetch(2))
    tfds = (tf.data.Dataset.from_tensor_slices(full).map(lambda x: tf.cast(x, tf.float32) / 255)
            .batch(4).prefetch(2))
    got, want = rows(ds), list(tfds.as_numpy_iterator())
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    assert ds.cardinality() == int(tfds.cardinality())
    # A buffer shuffle over file rows is a permutation of all rows, seeded.
    sh = Dataset.from_files(paths).shuffle(6, seed=3)
    a = np.stack(rows(sh))
    key = lambda x: sorted(map(bytes, x))  # noqa: E731
    assert key(a) == key(full)
    again = np.stack(rows(Dataset.from_files(paths).shuffle(6, seed=3)))
    np.testing.assert_array_equal(a, again)
    # take / skip / repeat
    assert_rows_equal(rows(Dataset.from_files(paths).skip(3).take(6)), list(full[3:9]))
    assert_rows_equal(rows(Dataset.from_files(paths).repeat(2)), list(full) * 2)


def test_npz_keys_tuple_single_and_default(tmp_path):
    rng = np.random.default_rng(1)
    xs, ys = [], []
    for i, n in enumerate((3, 4, 2)):
        x = rng.standard_normal((n, 2, 2)).astype(np.float32)
        y = np.arange(n, dtype=np.int64) + 10 * i
        (np.savez_compressed if i == 1 else np.savez)(tmp_path / f"p{i}.npz", x=x, y=y)
        np.savez(tmp_path / f"one{i}.npz", only=x)
        xs.append(x)
        ys.append(y)
    X, Y = np.concatenate(xs), np.concatenate(ys)
    ds = Dataset.from_files(str(tmp_path / "p*.npz"), keys=["x", "y"])
    assert len(ds) == 9
    got = list(ds.as_numpy_iterator())
    want = list(tf.data.Dataset.from_tensor_slices((X, Y)).as_numpy_iterator())
    for (gx, gy), (wx, wy) in zip(got, want):
        np.testing.assert_array_equal(gx, wx)
        assert gy == wy and gy.dtype == np.int64
    assert_rows_equal(rows(Dataset.from_files(str(tmp_path / "p*.npz"), keys="y")), list(Y))
    assert_rows_equal(rows(Dataset.from_files(str(tmp_path / "one*.npz"))), list(X))
    with pytest.raises(ValueError, match="keys="):
        Dataset.from_files(str(tmp_path / "p*.npz"))
    with pytest.raises(ValueError, match=r"p0\.npz.*nope"):
        Dataset.from_files(str(tmp_path / "p*.npz"), keys=["x", "nope"])
    # Batching a tuple element works like tf.data.
    b = list(Dataset.from_files(str(tmp_path / "p*.npz"), keys=("x", "y")).batch(4))
    assert [tuple(t.shape for t in e) for e in b] == [((4, 2, 2), (4,))] * 2 + [((1, 2, 2), (1,))]


def test_fortran_and_big_endian_files_read_correctly(tmp_path):
    a = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(4, 6))
    b = np.arange(12, dtype=">f8").reshape(2, 6)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    ds = Dataset.from_files([tmp_path / "a.npy", tmp_path / "b.npy"])
    assert_rows_equal(rows(ds), list(np.concatenate([a, b.astype(np.float64)])))
    assert_rows_equal(rows(ds.shuffle(100, seed=0).batch(100)),
                      [np.stack(rows(ds.shuffle(100, seed=0)))])


# ------------------------------------------------------------------ interleave, shuffle, shard

@pytest.mark.parametrize("cycle,block", [(2, 1), (3, 2), (5, 1), (8, 3)])
def test_interleave_order_matches_tf(shards, cycle, block):
    _, arrs, paths = shards
    ds = Dataset.from_files(paths, cycle_length=cycle, block_length=block)
    tfds = tf.data.Dataset.from_tensor_slices(tf.range(len(arrs))).interleave(
        lambda i: tf.data.Dataset.from_tensor_slices(
            tf.gather(tf.ragged.constant([a.tolist() for a in arrs], dtype=tf.uint8), i).to_tensor()),
        cycle_length=cycle, block_length=block)
    assert_rows_equal(rows(ds), list(tfds.as_numpy_iterator()))
    assert len(ds) == sum(SIZES)


def _file_order(got, arrs):
    """Which file each run of rows came from (rows of a file stay together)."""
    order, i = [], 0
    while i < len(got):
        for k, a in enumerate(arrs):
            if len(a) and i + len(a) <= len(got) and all(
                    np.array_equal(got[i + j], a[j]) for j in range(len(a))):
                order.append(k)
                i += len(a)
                break
        else:
            raise AssertionError(f"row {i} starts no file")
    return order


def test_shuffle_files_is_seeded_and_reshuffles_each_epoch(tmp_path):
    arrs, paths = write_shards(str(tmp_path), sizes=(2,) * 12)
    ds = Dataset.from_files(paths, shuffle_files=True, seed=7)
    orders = [_file_order(rows(ds), arrs) for _ in range(3)]
    for o in orders:
        assert sorted(o) == list(range(12))
    assert orders[0] != orders[1] or orders[1] != orders[2]
    assert orders[0] != list(range(12))
    same = Dataset.from_files(paths, shuffle_files=True, seed=7)
    assert [_file_order(rows(same), arrs) for _ in range(3)] == orders
    other = Dataset.from_files(paths, shuffle_files=True, seed=8)
    assert _file_order(rows(other), arrs) != orders[0]
    # repeat runs a new file order per pass
    rep = np.stack(rows(Dataset.from_files(paths, shuffle_files=True, seed=7).repeat(2)))
    assert _file_order(list(rep), arrs) == orders[0] + orders[1]


@pytest.mark.parametrize("shuffle_files", [False, True])
def test_shard_disjoint_and_covering(shards, shuffle_files):
    _, arrs, paths = shards
    full = np.concatenate(arrs)
    n = 3
    parts = []
    for i in range(n):
        # Every worker builds the same dataset (same seed): the same file order,
        # so element shards are disjoint and together cover every row.
        ds = Dataset.from_files(paths, shuffle_files=shuffle_files, seed=11).shard(n, i)
        got = rows(ds)
        assert len(got) == len(ds)
        parts.append(got)
    allrows = sorted(bytes(r) for p in parts for r in p)
    assert allrows == sorted(bytes(r) for r in full)
    if not shuffle_files:
        want = list(tf.data.Dataset.from_tensor_slices(full).shard(n, 1).as_numpy_iterator())
        assert_rows_equal(parts[1], want)


# ------------------------------------------------------------------ errors

def test_mismatched_files_raise_naming_the_file(tmp_path):
    _, paths = write_shards(str(tmp_path), sizes=(2, 3, 2))
    np.save(paths[1], np.zeros((3, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"shard-001\.npy.*float32"):
        Dataset.from_files(paths)
    np.save(paths[1], np.zeros((3, 4, 2), np.uint8))
    with pytest.raises(ValueError, match=r"shard-001\.npy.*\[4, 2\]"):
        Dataset.from_files(paths)
    np.save(paths[1], np.zeros((), np.uint8))
    with pytest.raises(ValueError, match=r"shard-001\.npy.*0-d"):
        Dataset.from_files(paths)
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(ValueError, match=r"bad\.npz.*rows"):
        Dataset.from_files([tmp_path / "bad.npz"], keys=["x", "y"])
    with pytest.raises(FileNotFoundError, match=r"missing\.npy"):
        Dataset.from_files([paths[0], tmp_path / "missing.npy"])
    with pytest.raises(FileNotFoundError, match="no files match"):
        Dataset.from_files(str(tmp_path / "nothing-*.npy"))
    # skip: warn and leave the file out
    with pytest.warns(RuntimeWarning, match=r"missing\.npy"):
        ds = Dataset.from_files([paths[0], tmp_path / "missing.npy"], on_error="skip")
    assert len(ds) == 2
    with pytest.raises(ValueError, match="on_error"):
        Dataset.from_files(paths, on_error="ignore")


def test_missing_or_corrupt_file_mid_stream(tmp_path):
    arrs, paths = write_shards(str(tmp_path), sizes=(3, 2, 4))
    ds = Dataset.from_files(paths)
    it = iter(ds.as_numpy_iterator())
    first = [next(it) for _ in range(3)]
    assert_rows_equal(first, list(arrs[0]))
    os.remove(paths[1])  # gone after the headers were read, before it is opened
    with pytest.raises(FileNotFoundError, match=r"shard-001\.npy"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)
    # The same through batch + prefetch (the error crosses the prefetch thread).
    with pytest.raises(FileNotFoundError, match=r"shard-001\.npy"):
        list(ds.batch(2).prefetch(2))
    # skip: a warning, and the other files' rows
    skip = Dataset.from_files([paths[0], paths[2]] + [paths[0]], on_error="skip")
    assert len(skip) == 10
    os.remove(paths[2])
    with pytest.warns(RuntimeWarning, match=r"shard-002\.npy"):
        got = rows(skip)
    assert_rows_equal(got, list(arrs[0]) * 2)
    # corrupt: rewritten with a broken header
    arrs, paths = write_shards(str(tmp_path), sizes=(3, 2, 4), seed=5)
    ds = Dataset.from_files(paths)
    with open(paths[2], "r+b") as f:
        f.write(b"garbage!")
    with pytest.raises(ValueError, match=r"shard-002\.npy"):
        rows(ds)
    # changed shape after construction (same dtype, fewer rows)
    ds = Dataset.from_files(paths[:2])
    np.save(paths[1], arrs[1][:1])
    with pytest.raises(ValueError, match=r"shard-001\.npy.*changed"):
        rows(ds)


def test_early_stop_leaves_no_threads(tmp_path):
    gc.collect()
    base = threading.active_count()
    _, paths = write_shards(str(tmp_path), sizes=(50,) * 8, shape=(32, 32, 3))
    ds = (Dataset.from_files(paths, shuffle_files=True, seed=0, cycle_length=3).repeat()
          .shuffle(64).map(tb.ops.cast(tb.float32)).batch(8).prefetch(4))
    for i, _ in enumerate(ds):
        if i == 5:
            assert tb._core.data_live_threads() >= 1
            break
    assert wait_threads(base)
    it = iter(ds)
    next(it)
    del it
    assert wait_threads(base)
    # and after an error mid-stream
    bad = Dataset.from_files(paths[:2]).batch(4).prefetch(2)
    os.remove(paths[1])
    with pytest.raises(FileNotFoundError):
        for _ in bad:
            pass
    assert wait_threads(base)


def test_to_tensorflow_from_files(shards):
    _, arrs, paths = shards
    tfds = Dataset.from_files(paths).batch(4).to_tensorflow()
    got = np.concatenate([x.numpy() for x in tfds])
    np.testing.assert_array_equal(got, np.concatenate(arrs))


def test_npz_found_by_content_not_name(tmp_path):
    """from_files opens archives by the core's one detection rule (issue 8): an
    archive named without .npz is still an archive."""
    x = np.arange(12, dtype=np.int16).reshape(6, 2)
    for i, part in enumerate((x[:4], x[4:])):
        np.savez(tmp_path / f"part{i}.npz", only=part)
        os.rename(tmp_path / f"part{i}.npz", tmp_path / f"part{i}.bin")
    ds = Dataset.from_files([str(tmp_path / "part0.bin"), str(tmp_path / "part1.bin")])
    assert_rows_equal(rows(ds), list(x))
