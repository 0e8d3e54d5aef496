#!/usr/bin/env python
"""Pipelines from ``.npy`` shards: tb.data.Dataset.from_files vs tf.data (issue 5).
A benchmark, not a test.

``--mode shards`` (throughput, side by side): ``--n`` uint8 images 64×64×3 in 16
``.npy`` shards (in the page cache: written, then read once before timing).

* tensorbridge: ``from_files(shards) → map(tb.ops.cast(tb.float32))
  → map(tb.ops.scale(1/255, 0)) → batch(128) → prefetch(2)``;
* tf.data, exactly as /work/shared/anchors/numpy_tf_baseline.py (including its
  ``set_intra_op_parallelism_threads(2)``):
  ``from_tensor_slices(files) → map(numpy_function(np.load)) → unbatch()
  → map(cast float32 / 255, num_parallel_calls=AUTOTUNE) → batch(128)
  → prefetch(AUTOTUNE)``.

Each library runs in its own child process; children alternate tb, tf, ...
``--rounds`` times, each timing ``--epochs`` epochs after a warm-up epoch. Reported:
median/min/max images/s, ratio of medians, peak RSS (``VmHWM`` of the child).

``--mode memory``: write ``--gib`` GiB of 64×64×3 uint8 ``.npy`` shards
(``--shard-mib`` each) under ``--dir`` (checks free space first, scaling down when
less than 20 GB is free, and deletes them afterwards), then stream them once through
``from_files → shuffle(10000) → cast float32 / 255 → batch(256) → prefetch(4)`` in a
child process and report images/s and its peak RSS (target < 1.5 GiB).

    python bench/bench_data_files.py --mode shards [--n 16384] [--rounds 3] [--epochs 3]
    python bench/bench_data_files.py --mode memory [--gib 8] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

IMG = (64, 64, 3)


def peak_rss_mib() -> float:
    """Peak RSS of this process image (``VmHWM``; ``ru_maxrss`` would carry over the
    parent's peak across fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_shards(d: str, n: int, shards: int, seed: int = 0) -> list:
    import numpy as np

    rng = np.random.default_rng(seed)
    per = -(-n // shards)
    paths = []
    for i in range(shards):
        k = min(per, n - i * per)
        if k <= 0:
            break
        a = np.frombuffer(rng.bytes(k * 64 * 64 * 3), np.uint8).reshape(k, *IMG)
        p = os.path.join(d, f"s{i:03d}.npy")
        np.save(p, a)
        paths.append(p)
    return paths


def child_shards(lib: str, d: str, n: int, epochs: int) -> dict:
    import numpy as np

    files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".npy"))
    if lib == "tb":
        import tensorbridge as tb

        ds = (tb.data.Dataset.from_files(files)
              .map(tb.ops.cast(tb.float32))
              .map(tb.ops.scale(1 / 255, 0))
              .batch(128)
              .prefetch(2))
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(2)  # as the anchor script
        ds = (tf.data.Dataset.from_tensor_slices(files)
              .map(lambda f: tf.numpy_function(lambda p: np.load(p.decode()), [f], tf.uint8))
              .unbatch()
              .map(lambda x: tf.cast(x, tf.float32) / 255.0, num_parallel_calls=tf.data.AUTOTUNE)
              .batch(128)
              .prefetch(tf.data.AUTOTUNE))
    rates = []
    for e in range(epochs + 1):
        t0 = time.perf_counter()
        seen = 0
        for x in ds:
            seen += x.shape[0]
        dt = time.perf_counter() - t0
        assert seen == n, (seen, n)
        if e:
            rates.append(n / dt)
    return {"lib": lib, "rates": rates, "peak_rss_mib": peak_rss_mib()}


def child_memory(d: str) -> dict:
    import tensorbridge as tb

    src = tb.data.Dataset.from_files(os.path.join(d, "*.npy"))
    n = len(src)
    ds = (src.shuffle(10000, seed=0)
          .map(tb.ops.cast(tb.float32))
          .map(tb.ops.scale(1 / 255, 0))
          .batch(256)
          .prefetch(4))
    rss0 = peak_rss_mib()
    t0 = time.perf_counter()
    seen = 0
    for x in ds:
        seen += x.shape[0]
    dt = time.perf_counter() - t0
    assert seen == n, (seen, n)
    return {"images": n, "seconds": dt, "images_per_s": n / dt, "peak_rss_mib": peak_rss_mib(),
            "peak_rss_before_iter_mib": rss0, "live_threads_after": tb._core.data_live_threads()}


def run_child(args: list) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"child {args} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main_shards(a) -> None:
    d = tempfile.mkdtemp(prefix="tb-shards-", dir=a.dir)
    try:
        write_shards(d, a.n, 16)
        results: dict = {"tb": [], "tf": []}
        for r in range(a.rounds):
            for lib in ("tb", "tf"):
                res = run_child(["--child", lib, "--dir", d, "--n", str(a.n), "--epochs", str(a.epochs)])
                results[lib].append(res)
                print(f"round {r} {lib}: " + ", ".join(f"{x:,.0f}" for x in res["rates"])
                      + f" images/s, peak RSS {res['peak_rss_mib']:.0f} MiB", flush=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    summary = {}
    for lib, runs in results.items():
        rates = [x for run in runs for x in run["rates"]]
        summary[lib] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
                        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs)}
    ratio = summary["tb"]["median"] / summary["tf"]["median"]
    print(f"\nn={a.n} images 64x64x3 uint8 in 16 .npy shards, {a.rounds} rounds x {a.epochs} epochs, "
          f"cpus={os.cpu_count()}")
    print(f"{'':4} {'median img/s':>14} {'min':>12} {'max':>12} {'peak RSS MiB':>13}")
    for lib in ("tb", "tf"):
        s = summary[lib]
        print(f"{lib:4} {s['median']:>14,.0f} {s['min']:>12,.0f} {s['max']:>12,.0f} {s['peak_rss_mib']:>13,.0f}")
    print(f"ratio tb/tf (medians): {ratio:.2f}  (target >= 5)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "ratio": ratio, "runs": results, "n": a.n}, f, indent=1)


def main_memory(a) -> None:
    free_gb = shutil.disk_usage(a.dir).free / 1e9
    gib = a.gib
    if free_gb < 20:
        gib = max(0.5, min(gib, (free_gb - 4) / 2 / 1.074))
        print(f"only {free_gb:.1f} GB free under {a.dir}: scaled down to {gib:.2f} GiB", flush=True)
    per_img = 64 * 64 * 3
    n = int(gib * 2**30) // per_img
    shards = max(1, round(gib * 1024 / a.shard_mib))
    d = tempfile.mkdtemp(prefix="tb-mem-", dir=a.dir)
    try:
        t0 = time.perf_counter()
        write_shards(d, n, shards)
        print(f"wrote {n:,} images ({n * per_img / 2**30:.2f} GiB) in {shards} shards in "
              f"{time.perf_counter() - t0:.1f}s ({free_gb:.0f} GB were free)", flush=True)
        res = run_child(["--child", "memory", "--dir", d])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"streamed {res['images']:,} images through shuffle(10000) -> cast f32/255 -> batch(256) "
          f"-> prefetch(4): {res['images_per_s']:,.0f} images/s ({res['seconds']:.1f}s), "
          f"peak RSS {res['peak_rss_mib']:.0f} MiB (before iterating {res['peak_rss_before_iter_mib']:.0f} MiB; "
          f"target < 1536), pipeline threads left {res['live_threads_after']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({**res, "gib": gib, "shards": shards}, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["shards", "memory"], default="shards")
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--gib", type=float, default=8.0)
    ap.add_argument("--shard-mib", type=float, default=128.0)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--json")
    ap.add_argument("--child", choices=["tb", "tf", "memory"])
    a = ap.parse_args()
    if a.child == "memory":
        print(json.dumps(child_memory(a.dir)))
    elif a.child:
        print(json.dumps(child_shards(a.child, a.dir, a.n, a.epochs)))
    elif a.mode == "shards":
        main_shards(a)
    else:
        main_memory(a)


if __name__ == "__main__":
    main()
