#!/usr/bin/env python
"""Iterator state (issue 11): what ``get_state()`` costs and how big the state is,
with ``shuffle(10_000)``. A benchmark, not a test.

Pipelines (rows: 16 float32 + an int64 label):

* ``slices``: ``from_tensor_slices((x, y)) → shuffle(10_000, seed=0) → batch(256) → prefetch(2)``;
* ``files``: ``from_files(8 .npz shards, ("x", "y"), shuffle_files=True, cycle_length=4)
  → shuffle(10_000, seed=0) → batch(256) → prefetch(2)`` (rows copied out of the mappings
  on a reader thread, which the state covers too).

For each: take ``--warm`` batches (the buffer is full), then ``--reps`` times take one
batch and time ``get_state()`` (the Python call: the core's walk + JSON text + ``json.loads``)
and, separately, the core's JSON text alone. Reported: median / p90 / max in ms, the JSON
size, and the time to resume (``ds.iterator(state)`` and its first batch: 10,000 rows made
again from their sources).

    python bench/state.py [--rows 200000] [--warm 50] [--reps 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import tensorbridge as tb


def stats(ts: list) -> dict:
    ts = sorted(ts)
    return {"median_ms": 1e3 * statistics.median(ts), "p90_ms": 1e3 * ts[int(0.9 * (len(ts) - 1))],
            "max_ms": 1e3 * ts[-1]}


def measure(name: str, make, warm: int, reps: int) -> dict:
    ds = make()
    it = ds.iterator()
    for _ in range(warm):
        next(it)
    py, core = [], []
    for _ in range(reps):
        next(it)
        t0 = time.perf_counter()
        state = it.get_state()
        t1 = time.perf_counter()
        text = it._it.get_state()
        t2 = time.perf_counter()
        py.append(t1 - t0)
        core.append(t2 - t1)
    size = len(json.dumps(state))
    buffered = len(json.loads(state["state"]["input"]["buffer"]))  # prefetch → shuffle
    t0 = time.perf_counter()
    it2 = make().iterator(state)
    first = next(it2)
    t_restore = time.perf_counter() - t0
    # The restored iterator goes on with the saved one's next batch.
    want = next(it)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, want))
    it.close()
    it2.close()
    out = {"pipeline": name, "get_state": stats(py), "core_json_text": stats(core),
           "json_bytes": size, "core_json_bytes": len(text), "buffered_positions": buffered,
           "restore_first_batch_ms": 1e3 * t_restore}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--warm", type=int, default=50)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--json")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.rows, 16)).astype(np.float32)
    y = np.arange(a.rows, dtype=np.int64)
    results = []

    def slices():
        return (tb.data.Dataset.from_tensor_slices((x, y)).shuffle(10_000, seed=0)
                .batch(256).prefetch(2))

    results.append(measure("slices", slices, a.warm, a.reps))
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, (xs, ys) in enumerate(zip(np.array_split(x, 8), np.array_split(y, 8))):
            p = os.path.join(d, f"shard-{i}.npz")
            np.savez(p, x=xs, y=ys)
            paths.append(p)

        def files():
            return (tb.data.Dataset.from_files(paths, ("x", "y"), shuffle_files=True, seed=0,
                                               cycle_length=4)
                    .shuffle(10_000, seed=0).batch(256).prefetch(2))

        results.append(measure("files", files, a.warm, a.reps))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
