"""Iterator state of global_shuffle and the combinators, and elastic sharding
(issue 11 items 2-4): stop after k elements, save the state through JSON, resume in a
pipeline built again (or in a fresh process), and the elements before plus after equal
the uninterrupted run; a sharded global shuffle resumed with another number of shards
yields every element of the epoch exactly once."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tensorbridge as tb
from conftest import same

D = tb.data.Dataset


def to_np(x):
    if isinstance(x, tuple):
        return tuple(to_np(v) for v in x)
    if isinstance(x, dict):
        return {k: to_np(v) for k, v in x.items()}
    return np.array(x.numpy(), copy=True)


def check_resume(make):
    it = make().iterator()
    states, elems = [json.dumps(it.get_state())], []
    for e in it:
        elems.append(to_np(e))
        states.append(json.dumps(it.get_state()))
    for k, s in enumerate(states):
        rest = [to_np(e) for e in make().iterator(json.loads(s))]
        assert len(rest) == len(elems) - k, (k, len(rest), len(elems))
        for a, b in zip(elems[k:], rest):
            same(a, b)
    return elems


@pytest.fixture
def shards(tmp_path):
    paths, start = [], 0
    for i, rows in enumerate([13, 0, 7, 21, 9]):
        a = np.arange(start, start + rows * 4, dtype=np.int32).reshape(rows, 4)
        start += rows * 4
        p = tmp_path / f"part{i}.npy"
        np.save(p, a)
        paths.append(str(p))
    return paths


def test_global_shuffle_and_combinators_resume(shards):
    X = np.arange(30, dtype=np.float32).reshape(10, 3)
    ragged = lambda x: np.full(int(x.numpy()) % 4, int(x.numpy()), np.int64)  # noqa: E731
    makes = [
        lambda: D.from_files(shards).global_shuffle(seed=5).map(tb.ops.cast(tb.float32)).batch(4).repeat(2),
        lambda: D.from_files(shards).global_shuffle().batch(5).prefetch(2),  # unseeded: the seed is in the state
        lambda: D.zip({"a": D.range(12), "b": (D.from_tensor_slices(X), D.range(5).repeat())}).batch(3),
        lambda: D.range(5).concatenate(D.range(4)).enumerate(start=3),
        lambda: D.range(20).filter(lambda x: x.numpy() % 3 != 1).map(lambda x: x.numpy() * 2, num_parallel_calls=2),
        lambda: D.range(11).batch(4).unbatch().batch(3),
        lambda: D.range(10).map(ragged).padded_batch(3, padding_values=-1),
        lambda: D.sample_from_datasets([D.range(6), D.range(8), D.range(3)], weights=[0.2, 0.5, 0.3], seed=4),
        lambda: D.choose_from_datasets([D.range(3), D.range(5)],
                                       D.from_tensor_slices(np.array([1, 0, 1, 1, 0, 0, 0, 1], np.int64)),
                                       stop_on_empty_dataset=False),
    ]
    for make in makes:
        assert len(check_resume(make)) > 0


def reshard(make, n_old, n_new, steps):
    """Each of ``n_old`` shards takes ``steps`` elements (in lockstep) and saves its
    state; shard 0's is restored into each of ``n_new`` shards, run to the end."""
    seen, states = [], set()
    for i in range(n_old):
        it = make(n_old, i).iterator()
        for _ in range(steps):
            seen.extend(np.asarray(next(it).numpy()).reshape(-1, 4)[:, 0].tolist())
        states.add(json.dumps(it.get_state(), sort_keys=True))
    assert len(states) == 1  # every shard saved the same global position
    state = json.loads(states.pop())
    for i in range(n_new):
        for b in make(n_new, i).iterator(state):
            seen.extend(np.asarray(b.numpy()).reshape(-1, 4)[:, 0].tolist())
    return seen


@pytest.mark.parametrize("n_old,n_new,steps", [(4, 2, 2), (2, 3, 3), (4, 2, 0), (3, 1, 1)])
def test_elastic_resharding_yields_every_element_once(shards, n_old, n_new, steps):
    def make(n, i):
        return D.from_files(shards).global_shuffle(seed=21).shard(n, i).map(tb.ops.cast(tb.int64)).batch(2)

    seen = reshard(make, n_old, n_new, steps)
    want = np.concatenate([np.load(p) for p in shards])[:, 0].tolist()
    assert sorted(seen) == sorted(want) and len(seen) == len(want) == 50


def test_state_is_small_whatever_the_size(shards):
    # (A prefetch after it would add the positions of the batches in flight: a
    # number per row in the prefetch buffer, whatever the data size.)
    for ds in [D.range(2**40).global_shuffle(seed=1).shard(8, 3).batch(1024),
               D.from_files(shards * 200).global_shuffle().batch(64)]:
        it = ds.iterator()
        for _ in range(3):
            next(it)
        text = json.dumps(it.get_state())
        assert len(text) < 1024, text
        it.close()


def test_a_changed_pipeline_is_refused(shards):
    it = D.from_files(shards).global_shuffle(seed=1).iterator()
    next(it)
    state = it.get_state()
    with pytest.raises(ValueError, match="global_shuffle"):
        D.from_files(shards).global_shuffle(seed=2).iterator(state)
    with pytest.raises(ValueError, match="different pipeline"):
        D.from_files(shards).shuffle(10).iterator(state)


def test_unseeded_global_shuffle_resumes_in_a_fresh_process(shards, tmp_path):
    make = f"tb.data.Dataset.from_files({shards!r}).global_shuffle().batch(4)"
    it = eval(make, {"tb": tb}).iterator()
    first = [to_np(next(it)) for _ in range(3)]
    rest_here = [to_np(b) for b in eval(make, {"tb": tb}).iterator(it.get_state())]
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(it.get_state()))
    out = tmp_path / "rest.npy"
    code = textwrap.dedent(f"""
        import json, numpy as np, tensorbridge as tb
        ds = {make}
        rest = [b.numpy() for b in ds.iterator(json.load(open({str(state_file)!r})))]
        np.save({str(out)!r}, np.concatenate(rest))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    there = np.load(out)
    np.testing.assert_array_equal(there, np.concatenate(rest_here))
    allrows = np.concatenate(first + rest_here)
    assert sorted(allrows[:, 0].tolist()) == sorted(np.concatenate([np.load(p) for p in shards])[:, 0].tolist())
