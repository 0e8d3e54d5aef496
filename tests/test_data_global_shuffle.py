"""``Dataset.global_shuffle`` and random access (``ds[i]``, ``len(ds)``): issue 11 item 2."""

import numpy as np
import pytest

import tensorbridge as tb
from conftest import same

D = tb.data.Dataset

# Chi-square critical values at p = 0.001.
CHI2_CRIT = {9: 27.877, 15: 37.697, 36: 67.985}


def chi_square(counts):
    counts = np.asarray(counts, dtype=np.float64)
    e = counts.sum() / len(counts)
    return float(((counts - e) ** 2 / e).sum())


def ints(ds):
    return [int(x.numpy()) for x in ds]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 16, 17, 31, 100, 1023, 1025, 10_007])
def test_is_a_permutation(n):
    ds = D.range(n).global_shuffle(seed=3)
    got = ints(ds)
    assert sorted(got) == list(range(n))
    assert len(ds) == n


def test_deterministic_per_seed_different_per_epoch_and_seed():
    ds = D.range(500).global_shuffle(seed=11)
    e0, e1 = ints(ds), ints(ds)
    assert e0 != e1 and e0 != list(range(500))
    again = D.range(500).global_shuffle(seed=11)
    assert ints(again) == e0 and ints(again) == e1
    assert ints(D.range(500).global_shuffle(seed=12)) != e0
    fixed = D.range(500).global_shuffle(seed=11, reshuffle_each_iteration=False)
    assert ints(fixed) == e0 and ints(fixed) == e0
    # repeat runs a new epoch each pass
    rep = ints(D.range(50).global_shuffle(seed=4).repeat(3))
    assert sorted(rep[:50]) == sorted(rep[50:100]) == list(range(50))
    assert rep[:50] != rep[50:100]
    # unseeded: a seed drawn at construction, still a permutation, differs per epoch
    un = D.range(300).global_shuffle()
    a, b = ints(un), ints(un)
    assert sorted(a) == sorted(b) == list(range(300)) and a != b


@pytest.mark.parametrize("n", [10, 16, 37])
def test_first_position_frequencies_pass_chi_square(n):
    trials = 4000
    counts = np.zeros(n, dtype=np.int64)
    base = D.range(n)
    for s in range(trials):
        counts[int(base.global_shuffle(seed=s)[0].numpy())] += 1
    stat = chi_square(counts)
    assert stat < CHI2_CRIT[n - 1], (stat, counts)


def test_chi_square_check_can_fail():
    counts = np.bincount(np.arange(4000) % 7, minlength=10)
    assert chi_square(counts) > CHI2_CRIT[9]


def write_npy(tmp_path, rows, width=3, dtype=np.float32):
    paths, arrays, start = [], [], 0
    for i, r in enumerate(rows):
        a = (np.arange(start, start + r * width).reshape(r, width)).astype(dtype)
        start += r * width
        p = tmp_path / f"s{i:02d}.npy"
        np.save(p, a)
        paths.append(str(p))
        arrays.append(a)
    return paths, np.concatenate(arrays)


def test_random_access_matches_iteration(tmp_path):
    paths, full = write_npy(tmp_path, [4, 0, 3, 5])
    z = tmp_path / "z.npz"
    np.savez(z, x=full[:6], y=np.arange(6))
    x = np.arange(24, dtype=np.int16).reshape(6, 4)
    cases = [
        D.from_tensor_slices((x, {"a": np.arange(6), "b": x * 2})),
        D.range(9),
        D.from_files(paths),
        D.from_files(paths, cycle_length=3, shuffle_files=True, seed=1),
        D.from_files([str(z)], keys=("x", "y")),
        D.from_files(paths).map(tb.ops.scale(2.0, 1.0)),
        D.from_tensor_slices(x).map(lambda t: {"v": t.numpy() + 1, "s": t.numpy().sum()}),
        D.from_files(paths).skip(2).take(7).shard(2, 1).batch(2),
        D.zip((D.range(5), D.from_files(paths))),
        D.range(3).concatenate(D.range(4)).enumerate(5),
        D.from_files(paths).global_shuffle(seed=0),
    ]
    for ds in cases:
        n = len(ds)
        # from_files with shuffle_files: random access reads the ORIGINAL file order
        if ds is cases[3]:
            want = list(D.from_files(paths))
        else:
            want = list(ds)
        assert len(want) == n
        got = [ds[i] for i in range(n)]
        assert len(got) == len(want)
        for w, g in zip(want, got):
            same(w, g)
        if n:
            same(ds[-1], want[-1])
            same(ds[-n], want[0])
        with pytest.raises(IndexError, match="out of range"):
            ds[n]
        with pytest.raises(IndexError):
            ds[-n - 1]
    np.testing.assert_array_equal(D.from_files(paths)[5].numpy(), full[5])
    np.testing.assert_array_equal(D.from_files(paths)[-1].numpy(), full[-1])


def test_no_random_access_names_the_op():
    with pytest.raises(TypeError, match="shuffle"):
        D.range(5).shuffle(3)[0]
    with pytest.raises(TypeError, match="filter"):
        D.range(5).filter(lambda x: True).map(tb.ops.scale(2.0))[0]
    with pytest.raises(TypeError, match="repeat"):
        D.range(5).repeat()[0]
    with pytest.raises(TypeError, match="integers"):
        D.range(5)["a"]
    with pytest.raises(ValueError, match="shuffle prevents it"):
        D.range(5).shuffle(3).global_shuffle()
    with pytest.raises(ValueError, match="unbatch"):
        D.range(6).batch(2).unbatch().global_shuffle()


def test_global_shuffle_over_files(tmp_path):
    paths, full = write_npy(tmp_path, [50, 7, 0, 33, 10], width=5, dtype=np.uint8)
    ds = D.from_files(paths).map(tb.ops.cast(tb.float32)).global_shuffle(seed=9)
    assert ds.element_spec == ((5,), tb.float32)
    epoch = np.stack([t.numpy() for t in ds])
    want = full.astype(np.float32)
    np.testing.assert_array_equal(epoch[np.lexsort(epoch.T[::-1])], want[np.lexsort(want.T[::-1])])
    assert not np.array_equal(epoch, full.astype(np.float32))
    b = list(ds.batch(16))
    assert [t.shape[0] for t in b] == [16] * 6 + [4]
    # the shuffled dataset has random access: epoch 0's order
    fixed = D.from_files(paths).global_shuffle(seed=2, reshuffle_each_iteration=False)
    np.testing.assert_array_equal(np.stack([fixed[i].numpy() for i in range(len(fixed))]),
                                  np.stack([t.numpy() for t in fixed]))


def test_a_file_changed_after_construction_is_named(tmp_path):
    paths, _ = write_npy(tmp_path, [3, 3])
    ds = D.from_files(paths)
    np.save(paths[1], np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="s01.npy.*changed"):
        ds[4]
