"""Iterator state (issue 11): every op saves its place and resumes exactly.

Each check runs one iterator to its end, saving ``get_state()`` (through JSON text,
as a checkpoint would) after every element; then for each k it builds the pipeline
again (a new dataset object, as another process would) and resumes from state k:
the elements before plus the elements after must equal the uninterrupted run —
same structure, dtypes, shapes (batch boundaries) and bits. NumPy is the oracle for
what the uninterrupted run holds where that is cheap to say.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tensorbridge as tb
from conftest import same, wait_threads

Dataset = tb.data.Dataset


def to_np(x):
    if isinstance(x, tuple):
        return tuple(to_np(v) for v in x)
    if isinstance(x, dict):
        return {k: to_np(v) for k, v in x.items()}
    return np.array(x.numpy() if isinstance(x, tb.Tensor) else x, copy=True)


def run_saving_states(ds):
    it = ds.iterator()
    assert isinstance(it, tb.data.DatasetIterator)
    states = [json.dumps(it.get_state())]
    elems = []
    for e in it:
        elems.append(to_np(e))
        states.append(json.dumps(it.get_state()))
    return elems, states


def check_resume(make, ks=None):
    """See the module docstring; returns the uninterrupted run."""
    elems, states = run_saving_states(make())
    for k in (range(len(states)) if ks is None else ks):
        state = json.loads(states[k])
        assert state["position"] == k
        rest = [to_np(e) for e in make().iterator(state)]
        assert len(rest) == len(elems) - k, (k, len(rest), len(elems))
        for a, b in zip(elems[k:], rest):
            same(a, b)
    return elems


X = np.arange(60, dtype=np.float32).reshape(20, 3)
Y = np.arange(20, dtype=np.int64) * 7


def test_slices_and_range_with_structure():
    out = check_resume(lambda: Dataset.from_tensor_slices((X, {"y": Y})))
    assert len(out) == 20
    same(out[4], (X[4], {"y": Y[4]}))
    out = check_resume(lambda: Dataset.range(9))
    assert [int(v) for v in out] == list(range(9))


def test_built_in_map_batch_with_a_partial_last_batch():
    make = lambda: (Dataset.from_tensor_slices((X, Y))  # noqa: E731
                    .map((tb.ops.scale(0.5, 1.0), tb.ops.cast(tb.float32)))
                    .batch(6))
    out = check_resume(make)
    assert [b[0].shape[0] for b in out] == [6, 6, 6, 2]
    same(out[3][0], (X[18:] * 0.5 + 1.0).astype(np.float32))


def test_shuffle_seeded_and_unseeded_across_epochs():
    out = check_resume(lambda: Dataset.range(30).shuffle(8, seed=3).batch(4).repeat(3))
    ints = np.concatenate([b for b in out])
    for e in range(3):
        assert sorted(ints[30 * e:30 * (e + 1)].tolist()) == list(range(30))
    assert not np.array_equal(ints[:30], ints[30:60])  # reshuffled per epoch
    # Unseeded: each new dataset draws its own seed; the state carries the one used.
    check_resume(lambda: Dataset.range(25).shuffle(7).repeat(2).prefetch(3))
    check_resume(lambda: Dataset.range(12).shuffle(5, reshuffle_each_iteration=False).repeat(2))


def test_shuffle_state_holds_positions_not_data():
    it = Dataset.from_tensor_slices(np.zeros((5000, 64), np.float64)).shuffle(1000, seed=0).iterator()
    next(it)
    s = it.get_state()
    buf = json.loads(s["state"]["buffer"])  # the positions' JSON text, one string
    assert len(buf) == 999 and all(isinstance(p, int) and 0 <= p < 5000 for p in buf)
    assert len(set(buf)) == 999
    assert len(json.dumps(s)) < 12 * 1000  # ~ buffer_size numbers, no 64-float rows


def double(x):
    return x.numpy() * 2 + 1


def test_python_map_sequential_and_parallel_with_prefetch():
    for n in (1, 4):
        make = lambda: (Dataset.range(40).shuffle(6, seed=1)  # noqa: E731
                        .map(double, num_parallel_calls=n).prefetch(8).batch(3).prefetch(2).repeat(2))
        out = check_resume(make, ks=[0, 1, 2, 7, 13, 14, 15, 27, 28])
        vals = np.concatenate(out)
        assert sorted(vals[:40].tolist()) == [2 * i + 1 for i in range(40)]
    wait_threads(0)


def test_repeat_take_skip_shard():
    r = lambda: Dataset.range(50)  # noqa: E731
    out = check_resume(lambda: r().skip(3).shard(3, 1).take(9).repeat(2))
    assert [int(v) for v in out] == [4, 7, 10, 13, 16, 19, 22, 25, 28] * 2
    assert check_resume(lambda: r().take(4).repeat().take(10), ks=[0, 3, 4, 5, 9, 10])
    check_resume(lambda: r().skip(-1).repeat(2))


def test_set_state_on_a_running_iterator_and_state_after_the_end():
    ds = Dataset.range(10).shuffle(4, seed=2).batch(3)
    it = iter(ds)
    first = to_np(next(it))
    s = it.get_state()
    rest = [to_np(e) for e in it]
    end = it.get_state()
    it.set_state(s)  # back in time, on the same object
    again = [to_np(e) for e in it]
    assert len(again) == len(rest) == 3
    for a, b in zip(rest, again):
        same(a, b)
    assert list(ds.iterator(end)) == []
    it.set_state(json.dumps(s))  # JSON text works too
    same(to_np(next(it)), rest[0])
    it.close()
    with pytest.raises(ValueError, match="closed"):
        it.get_state()
    assert first.shape == (3,)


def test_a_state_of_another_pipeline_is_refused():
    s = iter(Dataset.range(10).shuffle(4, seed=1).batch(3)).get_state()
    with pytest.raises(ValueError, match=r"stage 2.*batch\(4.*batch\(3"):
        Dataset.range(10).shuffle(4, seed=1).batch(4).iterator(s)
    with pytest.raises(ValueError, match=r"range\(11\)"):
        Dataset.range(11).shuffle(4, seed=1).batch(3).iterator(s)
    with pytest.raises(ValueError, match="seed=2"):
        Dataset.range(10).shuffle(4, seed=2).batch(3).iterator(s)
    with pytest.raises(ValueError, match="version"):
        Dataset.range(10).shuffle(4, seed=1).batch(3).iterator(dict(s, version=99))
    with pytest.raises(TypeError, match="set_state"):
        Dataset.range(3).iterator(42)


def write_shards(d, sizes, row=(2,)):
    paths = []
    first = 0
    for i, n in enumerate(sizes):
        x = (np.arange(first, first + n, dtype=np.float32)[:, None] * np.ones(row, np.float32)).reshape(n, *row)
        y = np.arange(first, first + n, dtype=np.int64)
        p = d / f"shard-{i:02d}.npz"
        np.savez(p, x=x, y=y)
        paths.append(str(p))
        first += n
    return paths


def test_from_files_interleave_shuffle_files_and_a_skipped_corrupt_file(tmp_path):
    paths = write_shards(tmp_path, [7, 3, 9, 1, 5, 6, 4, 8])
    bad = paths[3]
    good_rows = sum(np.load(p)["y"].shape[0] for p in paths) - 1

    def make(seed):
        return (Dataset.from_files(paths, ("x", "y"), shuffle_files=True, seed=seed, cycle_length=3,
                                   block_length=2, on_error="skip")
                .map(lambda x, y: (x.numpy() + 0.5, y), num_parallel_calls=3)
                .batch(4).repeat(2))

    # Corrupted after the headers were read: skipped mid-stream, with a warning.
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="shard-03"):
        out = check_resume(lambda: make(5))
    ys = np.concatenate([b[1] for b in out])
    assert len(ys) == 2 * good_rows
    assert sorted(ys[:good_rows].tolist()) == sorted(set(range(good_rows + 1)) - {7 + 3 + 9})
    with pytest.warns(RuntimeWarning, match="shard-03"):
        check_resume(lambda: make(None).shuffle(10).prefetch(100), ks=[0, 1, 5, 9, 10, 11, 20])


def test_a_pipeline_that_cannot_resume_says_so():
    ds = Dataset.range(3)
    no = Dataset(ds._ds.map_py(lambda ts: ts, 1, "rows stream from elsewhere"), ds._struct)
    it = iter(no)
    next(it)
    with pytest.raises(ValueError, match="rows stream from elsewhere"):
        it.get_state()


def test_from_ray_cannot_resume(tmp_path):
    pytest.importorskip("ray")
    script = tmp_path / "ray_state.py"
    script.write_text(textwrap.dedent("""
        import logging, ray
        import tensorbridge as tb
        ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        it = iter(tb.data.Dataset.from_ray(ray.data.range(5)))
        print(int(next(it)["id"].numpy()))
        try:
            it.get_state()
        except ValueError as e:
            print("ValueError:", e, flush=True)
        print(len(list(it)))  # to the end: Ray's iterator finishes and lets go of its blocks
        del it
        ray.shutdown()
    """))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "ValueError:" in p.stdout and "from_ray" in p.stdout, p.stdout
    assert p.stdout.split()[-1] == "4", p.stdout


def test_checkpoint_recipes_store_the_state_beside_the_model(tmp_path):
    """The README's recipe: the state as JSON beside a model checkpoint (a file;
    the torch variant puts the dict inside the state_dict)."""
    make = lambda: Dataset.range(20).shuffle(5, seed=0).batch(3)  # noqa: E731
    it = make().iterator()
    seen = [to_np(next(it)) for _ in range(2)]
    (tmp_path / "data_state.json").write_text(json.dumps(it.get_state()))
    full = [to_np(e) for e in make()]
    it2 = make().iterator(json.loads((tmp_path / "data_state.json").read_text()))
    for a, b in zip(full, seen + [to_np(e) for e in it2]):
        same(a, b)
    torch = pytest.importorskip("torch")
    ckpt = {"model": {"w": torch.zeros(2)}, "data": it.get_state()}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    back = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    rest = [to_np(e) for e in make().iterator(back["data"])]
    for a, b in zip(full[2:], rest):
        same(a, b)
