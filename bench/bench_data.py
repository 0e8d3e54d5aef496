#!/usr/bin/env python
"""Input pipeline throughput: tb.data vs tf.data (issue 5). A benchmark, not a test.

Pipeline, on the same data (``--n`` uint8 images 64×64×3 + int64 labels, fixed seed):

* tensorbridge: ``from_tensor_slices((images, labels)) → shuffle(1024)
  → map((tb.ops.cast(tb.float32), None)) → map((tb.ops.scale(1/255, 0), None))
  → batch(128) → prefetch(2)``;
* tf.data: ``from_tensor_slices((images, labels)) → shuffle(1024)
  → map(lambda x, y: (tf.cast(x, tf.float32) / 255, y), num_parallel_calls=AUTOTUNE)
  → batch(128) → prefetch(AUTOTUNE)``.

Each epoch is one full pass; images/s = n / epoch time (the loop only receives
batches). Each library runs in its own child process (so peak RSS, ``ru_maxrss``,
is its own), the children alternate tb, tf, tb, tf, ... ``--rounds`` times, and each
child times ``--epochs`` epochs after one warm-up epoch. Reported: median and min of
images/s, the ratio of medians, peak RSS and the RSS the input arrays alone take.

    python bench/bench_data.py [--n 20000] [--rounds 3] [--epochs 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(lib: str, n: int, epochs: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.int64)
    if lib == "tb":
        import tensorbridge as tb

        ds = (tb.data.Dataset.from_tensor_slices((images, labels))
              .shuffle(1024)
              .map((tb.ops.cast(tb.float32), None))
              .map((tb.ops.scale(1 / 255, 0), None))
              .batch(128)
              .prefetch(2))
    else:
        import tensorflow as tf

        ds = (tf.data.Dataset.from_tensor_slices((images, labels))
              .shuffle(1024)
              .map(lambda x, y: (tf.cast(x, tf.float32) / 255, y), num_parallel_calls=tf.data.AUTOTUNE)
              .batch(128)
              .prefetch(tf.data.AUTOTUNE))
    base = rss_mib()
    rates = []
    for e in range(epochs + 1):
        t0 = time.perf_counter()
        seen = 0
        for x, y in ds:
            seen += x.shape[0]
        dt = time.perf_counter() - t0
        assert seen == n, (seen, n)
        if e:  # epoch 0 warms up
            rates.append(n / dt)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"lib": lib, "rates": rates, "peak_rss_mib": peak, "rss_after_setup_mib": base,
            "input_mib": (images.nbytes + labels.nbytes) / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--child", choices=["tb", "tf"])
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.n, a.epochs)))
        return
    results: dict = {"tb": [], "tf": []}
    for r in range(a.rounds):
        for lib in ("tb", "tf"):
            out = subprocess.run([sys.executable, __file__, "--child", lib, "--n", str(a.n),
                                  "--epochs", str(a.epochs)], capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[lib].append(res)
            print(f"round {r} {lib}: " + ", ".join(f"{x:,.0f}" for x in res["rates"])
                  + f" images/s, peak RSS {res['peak_rss_mib']:.0f} MiB", flush=True)
    summary = {}
    for lib, runs in results.items():
        rates = [x for run in runs for x in run["rates"]]
        summary[lib] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
                        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
                        "input_mib": runs[0]["input_mib"]}
    ratio = summary["tb"]["median"] / summary["tf"]["median"]
    print(f"\nn={a.n} images 64x64x3 uint8, {a.rounds} rounds x {a.epochs} epochs, cpus={os.cpu_count()}")
    print(f"{'':4} {'median img/s':>14} {'min':>12} {'max':>12} {'peak RSS MiB':>13} {'input MiB':>10}")
    for lib in ("tb", "tf"):
        s = summary[lib]
        print(f"{lib:4} {s['median']:>14,.0f} {s['min']:>12,.0f} {s['max']:>12,.0f} "
              f"{s['peak_rss_mib']:>13,.0f} {s['input_mib']:>10,.0f}")
    print(f"ratio tb/tf (medians): {ratio:.2f}  (target >= 5)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "ratio": ratio, "runs": results, "n": a.n}, f, indent=1)


if __name__ == "__main__":
    main()
