#!/usr/bin/env python
"""global_shuffle vs shuffle(10_000) over the same ``.npy`` shards (issue 11).
A benchmark, not a test.

Writes ``--gib`` GiB of uint8 rows (``--row`` bytes each, 3072 = a 32×32×3 image)
in ``--shards`` ``.npy`` files under ``--dir`` (deleted afterwards), reads them once
so they are in the page cache, then runs each contender in its own child process:

* ``global``:   ``from_files(shards).global_shuffle(seed=0).batch(256)``
* ``buffered``: ``from_files(shards, shuffle_files=True, seed=0).shuffle(10_000, seed=0).batch(256)``

each for one epoch (every row once), reporting rows/s, MiB/s and the child's peak
RSS (``VmHWM``: ``ru_maxrss`` would carry the parent's peak over fork + exec). It
also reports the JSON size of the iterator state when ``Dataset.iterator`` exists
(the resumable-iterator work of issue 11), else "n/a".

    python bench/global_shuffle.py [--gib 8] [--shards 64] [--row 3072] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, paths: list, batch: int) -> None:
    import tensorbridge as tb

    D = tb.data.Dataset
    if kind == "global":
        ds = D.from_files(paths).global_shuffle(seed=0).batch(batch)
    else:
        ds = D.from_files(paths, shuffle_files=True, seed=0).shuffle(10_000, seed=0).batch(batch)
    rows = nbytes = 0
    state_bytes = None
    t0 = time.perf_counter()
    it = iter(ds)
    for k, b in enumerate(it):
        rows += b.shape[0]
        nbytes += b.nbytes
        if k == 10 and hasattr(it, "get_state"):
            state_bytes = len(json.dumps(it.get_state()))
    dt = time.perf_counter() - t0
    print(json.dumps({"kind": kind, "rows": rows, "seconds": dt, "rows_per_s": rows / dt,
                      "mib_per_s": nbytes / dt / 2**20, "peak_rss_mib": peak_rss_mib(),
                      "state_json_bytes": state_bytes}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=8.0)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--row", type=int, default=3072)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--child", nargs=2)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], json.loads(a.child[1]), a.batch)
        return
    import numpy as np

    free = shutil.disk_usage(a.dir).free / 2**30
    gib = min(a.gib, max(0.25, free - 8))
    rows_per = int(gib * 2**30 / a.shards / a.row)
    root = tempfile.mkdtemp(prefix="tb_gshuf_", dir=a.dir)
    try:
        paths = []
        rng = np.random.default_rng(0)
        block = rng.integers(0, 256, size=(rows_per, a.row), dtype=np.uint8)
        for s in range(a.shards):
            p = os.path.join(root, f"shard{s:03d}.npy")
            block[:, :8] = s  # distinct shards, cheap to write
            np.save(p, block)
            paths.append(p)
        del block
        total = rows_per * a.shards * a.row / 2**30
        for p in paths:  # into the page cache
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass
        print(f"{a.shards} shards, {rows_per * a.shards:,} rows of {a.row} B = {total:.2f} GiB, "
              f"batch {a.batch}")
        results = {}
        for kind in ("buffered", "global"):
            out = subprocess.run([sys.executable, __file__, "--batch", str(a.batch), "--child", kind,
                                  json.dumps(paths)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[kind] = r
            print(f"{kind:9s} {r['rows_per_s']:>12,.0f} rows/s {r['mib_per_s']:>8,.0f} MiB/s "
                  f"peak RSS {r['peak_rss_mib']:>7,.0f} MiB  state JSON "
                  f"{r['state_json_bytes'] if r['state_json_bytes'] is not None else 'n/a'} B")
        ratio = results["global"]["rows_per_s"] / results["buffered"]["rows_per_s"]
        print(f"global / buffered throughput: {ratio:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
