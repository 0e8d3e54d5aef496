"""Issue 11's realistic pipeline, killed and resumed in a fresh process.

``from_files`` over 16 ``.npz`` shards (interleave, ``cycle_length=4``,
``shuffle_files``) → ``shuffle(1000)`` → a parallel Python ``map`` → ``batch`` →
``prefetch`` → ``repeat(2)``. A child process takes k elements, writes them and
``get_state()`` (JSON) to disk, then SIGKILLs itself; a fresh child restores the
state from the file and writes the rest. The elements before plus the elements
after must equal the uninterrupted run bit for bit, with the same batch boundaries.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent('''
    import glob, json, os, signal, sys
    import numpy as np
    import tensorbridge as tb

    shards, mode, k, state_path, out_path, seeded = sys.argv[1:7]
    k, seeded = int(k), seeded == "1"
    seed = 11 if seeded else None

    def f(x, y):
        return x.numpy() * 2.0 - 1.0, y

    def make():
        paths = sorted(glob.glob(os.path.join(shards, "*.npz")))
        return (tb.data.Dataset.from_files(paths, ("x", "y"), shuffle_files=True, seed=seed,
                                           cycle_length=4)
                .shuffle(1000, seed=seed)
                .map(f, num_parallel_calls=4)
                .batch(32)
                .prefetch(2)
                .repeat(2))

    def save(elems):
        arrays = {}
        for i, (x, y) in enumerate(elems):
            arrays[f"x{i}"], arrays[f"y{i}"] = x.numpy(), y.numpy()
        np.savez(out_path, n=np.array(len(elems)), **arrays)

    def write_state(it):
        with open(state_path, "w") as fh:
            json.dump(it.get_state(), fh)
            fh.flush()
            os.fsync(fh.fileno())

    if mode == "full":
        save(list(make()))
    elif mode == "resume":
        with open(state_path) as fh:
            state = json.load(fh)
        save(list(make().iterator(state)))
    else:  # "kill": k elements, the state, then SIGKILL; "kill_full": the whole run first
        it = make().iterator()
        elems = [next(it) for _ in range(k)]
        write_state(it)
        if mode == "kill_full":
            elems += list(it)
        save(elems)
        os.kill(os.getpid(), signal.SIGKILL)
''')


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("state_shards")
    rng = np.random.default_rng(0)
    first = 0
    for i in range(16):
        n = int(rng.integers(40, 90))
        x = rng.standard_normal((n, 4)).astype(np.float32)
        y = np.arange(first, first + n, dtype=np.int64)
        np.savez(d / f"shard-{i:02d}.npz", x=x, y=y)
        first += n
    script = d / "child.py"
    script.write_text(CHILD)
    return d, script, first


def child(setup, tmp, mode, k=0, seeded=True, tag=""):
    d, script, _ = setup
    state, out = tmp / f"state{tag}.json", tmp / f"out{tag}-{mode}.npz"
    p = subprocess.run([sys.executable, str(script), str(d), mode, str(k), str(state), str(out),
                        "1" if seeded else "0"], capture_output=True, text=True, timeout=300)
    if mode.startswith("kill"):
        assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-3000:])
    else:
        assert p.returncode == 0, p.stderr[-3000:]
    with np.load(out) as z:
        return [(z[f"x{i}"], z[f"y{i}"]) for i in range(int(z["n"]))]


def check_equal(a, b):
    assert len(a) == len(b)
    for (x1, y1), (x2, y2) in zip(a, b):
        assert x1.dtype == x2.dtype and x1.shape == x2.shape and y1.shape == y2.shape
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


def test_killed_and_resumed_in_a_fresh_process_equals_the_uninterrupted_run(setup, tmp_path):
    d, _, n = setup
    full = child(setup, tmp_path, "full")
    per_epoch = -(-n // 32)
    assert len(full) == 2 * per_epoch
    ys = np.concatenate([y for _, y in full])
    assert sorted(ys[:n].tolist()) == list(range(n)) and sorted(ys[n:].tolist()) == list(range(n))
    # The map ran (x * 2 - 1 of the stored rows).
    rows = {}
    for p in sorted(d.glob("*.npz")):
        with np.load(p) as z:
            rows.update({int(i): r for i, r in zip(z["y"], z["x"])})
    x0, y0 = full[0]
    assert np.array_equal(x0, np.stack([rows[int(i)] * np.float32(2) - np.float32(1) for i in y0]))
    for k in sorted({0, 1, 5, per_epoch - 1, per_epoch, per_epoch + 1, 2 * per_epoch - 1, 2 * per_epoch}):
        before = child(setup, tmp_path, "kill", k, tag=str(k))
        after = child(setup, tmp_path, "resume", tag=str(k))
        check_equal(before + after, full)


def test_unseeded_shuffles_resume_in_a_fresh_process(setup, tmp_path):
    d, _, n = setup
    per_epoch = -(-n // 32)
    k = per_epoch + 3
    full = child(setup, tmp_path, "kill_full", k, seeded=False, tag="u")
    state = json.loads((tmp_path / "stateu.json").read_text())
    assert state["position"] == k
    after = child(setup, tmp_path, "resume", seeded=False, tag="u")
    check_equal(full[:k] + after, full)
    os.remove(tmp_path / "stateu.json")
