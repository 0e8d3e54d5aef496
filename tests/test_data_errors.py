"""tb.data: errors, warnings and size arguments (issue 8).

- a Python map function's exception arrives as the same object, with its traceback;
- warnings belong to the iterator that met them (two pipelines at once);
- no size argument aborts, panics or storms: each is clamped (documented) or refused
  with ValueError, following tf.data. Dangerous cases run in a child process, so an
  abort fails the test instead of killing pytest.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings

import numpy as np
import pytest

import tensorbridge as tb
from conftest import wait_threads

Dataset = tb.data.Dataset


# ------------------------------------------------------------------ exceptions

class MyError(Exception):
    """A user exception class the core knows nothing about."""


@pytest.mark.parametrize("parallel", [1, 3])
def test_map_exception_is_the_same_object_with_its_traceback(parallel):
    raised = []

    def failing_map_fn(x):
        if int(np.asarray(x)) == 7:
            err = MyError("seven")
            raised.append(err)
            raise err
        return x

    base = threading.active_count()
    ds = Dataset.range(50).map(failing_map_fn, num_parallel_calls=parallel).batch(2).prefetch(2)
    with pytest.raises(MyError) as info:
        for _ in ds:
            pass
    assert len(raised) == 1
    assert info.value is raised[0]
    assert type(info.value) is MyError
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "failing_map_fn" in frames, frames
    assert wait_threads(base)


def test_many_pending_map_exceptions_each_come_back():
    """Exceptions raised ahead of the consumer (on prefetch threads) wait in their
    own iterator, not in a bounded process-wide queue: each comes back as itself."""
    objs = {}

    def f(x):
        e = MyError(int(np.asarray(x)))
        objs[int(np.asarray(x))] = e
        raise e

    base = threading.active_count()
    # The Rust iterators themselves: their prefetch threads start at once.
    its = [Dataset.range(1).map(lambda x, i=i: f(np.asarray(x) + i),
                                num_parallel_calls=1).prefetch(1)._ds.iterate()
           for i in range(100)]
    deadline = time.time() + 10
    while len(objs) < 100 and time.time() < deadline:
        time.sleep(0.01)  # let every prefetch thread run its map function
    assert len(objs) == 100
    for i, it in enumerate(its):
        with pytest.raises(MyError) as info:
            next(it)
        assert info.value is objs[i]
    del its, info
    assert wait_threads(base)


# ------------------------------------------------------------------ warnings

def _shards(tmp_path, prefix):
    paths = []
    for i in range(3):
        p = tmp_path / f"{prefix}-{i}.npy"
        np.save(p, np.full((2, 3), i, np.int32))
        paths.append(p)
    return paths


def test_two_pipelines_at_once_see_only_their_own_warnings(tmp_path):
    a_paths = _shards(tmp_path, "alpha")
    b_paths = _shards(tmp_path, "beta")
    # prefetch(1): the reader thread reaches the corrupt file (after the 2 rows of
    # the first one) only once the consumer has taken the first row.
    a = Dataset.from_files(a_paths, on_error="skip").prefetch(1)
    b = Dataset.from_files(b_paths, on_error="skip").prefetch(1)
    # Corrupt one file of each after the headers were read: met while iterating.
    for p in (a_paths[1], b_paths[1]):
        p.write_bytes(b"garbage, not an npy file")
    seen = {"a": [], "b": []}
    ita, itb = iter(a), iter(b)

    def step(name, it):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            out = next(it, None)
        seen[name].extend(str(w.message) for w in rec if issubclass(w.category, RuntimeWarning))
        return out

    step("a", ita)
    time.sleep(0.3)  # a's reader thread is past its corrupt file now
    step("b", itb)  # a process-wide queue would hand a's warning to b here
    time.sleep(0.3)
    rows = {"a": 1, "b": 1}
    while True:
        progressed = False
        for name, it in (("b", itb), ("a", ita)):  # b first: it would drain a's warning
            if step(name, it) is not None:
                rows[name] += 1
                progressed = True
        if not progressed:
            break
    assert rows == {"a": 4, "b": 4}
    assert len(seen["a"]) == 1 and "alpha-1.npy" in seen["a"][0], seen
    assert len(seen["b"]) == 1 and "beta-1.npy" in seen["b"][0], seen


def test_from_files_construction_warning_goes_to_its_caller(tmp_path):
    paths = _shards(tmp_path, "gamma")
    with pytest.warns(RuntimeWarning, match=r"gamma-missing\.npy"):
        ds = Dataset.from_files([paths[0], tmp_path / "gamma-missing.npy"], on_error="skip")
    assert len(ds) == 2


# ------------------------------------------------------------------ sizes

def run_child(code, timeout=60):
    """Run ``code`` in a child interpreter; return its stdout (fails on any abort)."""
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def test_batch_larger_than_the_data_is_one_short_batch_like_tf():
    out = run_child("""
        import tensorbridge as tb
        for n in (2**40, 2**62, 2**63 - 1):
            bs = [b.numpy().tolist() for b in tb.data.Dataset.range(10).batch(n)]
            assert bs == [list(range(10))], bs
            assert len(tb.data.Dataset.range(10).batch(n)) == 1
            assert list(tb.data.Dataset.range(10).batch(n, drop_remainder=True)) == []
            assert len(tb.data.Dataset.range(10).batch(n, drop_remainder=True)) == 0
        print("ok")
    """)
    assert out.split() == ["ok"]


def test_prefetch_huge_is_clamped_not_a_panic():
    out = run_child("""
        import tensorbridge as tb
        for n in (2**40, 2**62, 2**63 - 1):
            got = [int(x.numpy()) for x in tb.data.Dataset.range(10).prefetch(n)]
            assert got == list(range(10)), got
        print("ok")
    """)
    assert out.split() == ["ok"]


def test_huge_num_parallel_calls_is_clamped_not_a_thread_storm():
    out = run_child("""
        import time, numpy as np, tensorbridge as tb
        seen = []
        t0 = time.perf_counter()
        ds = tb.data.Dataset.range(20).map(lambda x: np.asarray(x) * 2, num_parallel_calls=2**40)
        it = iter(ds)
        first = int(next(it).numpy())
        seen.append(tb._core.data_live_threads())
        rest = [int(x.numpy()) for x in it]
        print(first, rest == [2 * i for i in range(1, 20)], max(seen), round(time.perf_counter() - t0, 3))
    """)
    first, ok, threads, secs = out.split()
    assert first == "0" and ok == "True"
    cap = max(64, os.cpu_count() or 1)
    assert 1 <= int(threads) <= cap, threads
    assert float(secs) < 5, secs


def test_huge_cycle_length_is_harmless(tmp_path):
    """A file slot per cycle_length used to be allocated up front (abort)."""
    paths = _shards(tmp_path, "delta")
    out = run_child(f"""
        import numpy as np, tensorbridge as tb
        paths = {[str(p) for p in paths]!r}
        # tf.data's interleave order with every file open at once
        arrs = [np.load(p) for p in paths]
        want = [arrs[f][r].tolist() for r in range(2) for f in range(3)]
        rows = lambda n: [r.numpy().tolist() for r in tb.data.Dataset.from_files(paths, cycle_length=n)]
        assert rows(3) == want
        for n in (2**40, 2**62):
            assert rows(n) == want
        print("ok")
    """)
    assert out.split() == ["ok"]


@pytest.mark.parametrize("call, match", [
    (lambda d: d.shuffle(0), "buffer_size must be greater than zero"),
    (lambda d: d.shuffle(-1), r"buffer_size must be greater than zero.*not -1"),
    (lambda d: d.shuffle(-3), "buffer_size"),
    (lambda d: d.repeat().shuffle(-2), "infinite"),
    (lambda d: d.batch(0), "batch_size must be greater than zero"),
    (lambda d: d.batch(-1), "batch_size must be greater than zero"),
    (lambda d: d.prefetch(-2), "prefetch buffer_size"),
    (lambda d: d.map(lambda x: x, num_parallel_calls=0), "num_parallel_calls"),
    (lambda d: d.map(lambda x: x, num_parallel_calls=-2), "num_parallel_calls"),
    (lambda d: d.shard(0, 0), "out of range"),
    (lambda d: d.shard(2, -1), "out of range"),
    (lambda d: d.shard(2, 2), "out of range"),
])
def test_bad_sizes_are_value_errors_like_tf(call, match):
    with pytest.raises(ValueError, match=match):
        call(Dataset.range(10))


def test_sizes_tf_accepts():
    r = Dataset.range(10)
    # tf.data: shuffle(UNKNOWN_CARDINALITY) shuffles the whole dataset
    got = [int(x.numpy()) for x in r.shuffle(tb.data.UNKNOWN_CARDINALITY, seed=3)]
    assert sorted(got) == list(range(10))
    # prefetch(0) and prefetch(AUTOTUNE) are fine
    assert [int(x.numpy()) for x in r.prefetch(0)] == list(range(10))
    assert [int(x.numpy()) for x in r.prefetch(tb.data.AUTOTUNE)] == list(range(10))
    assert [int(x.numpy()) for x in r.map(lambda x: x, num_parallel_calls=tb.data.AUTOTUNE)] == list(range(10))


@pytest.mark.parametrize("kwargs, match", [
    ({"on_error": "ignore"}, "on_error must be 'raise' or 'skip'"),
    ({"cycle_length": 0}, "cycle_length and block_length must be positive"),
    ({"block_length": -1}, "cycle_length and block_length must be positive"),
    ({"keys": []}, "keys is empty"),
])
def test_from_files_arguments_checked_once(tmp_path, kwargs, match):
    paths = _shards(tmp_path, "eps")
    with pytest.raises(ValueError, match=match):
        Dataset.from_files(paths, **kwargs)


def test_from_files_no_files_and_from_tensor_slices_messages():
    with pytest.raises(ValueError, match="no files given"):
        Dataset.from_files([])
    with pytest.raises(ValueError, match=r"\[1\] is 0-d"):
        Dataset.from_tensor_slices((np.zeros(3), 5))
    with pytest.raises(ValueError, match=r"\['b'\] has 2"):
        Dataset.from_tensor_slices({"a": np.zeros(3), "b": np.zeros(2)})
    with pytest.raises(ValueError, match="at least one"):
        Dataset.from_tensor_slices(())
