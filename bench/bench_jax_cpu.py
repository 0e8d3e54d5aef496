#!/usr/bin/env python
"""CPU time per epoch of the issue-12 hand-off pipeline, consumed natively (``tb``),
through ``ds.to_jax()`` (``jax``) and through ``ds.to_jax(NamedSharding over 8 host
devices)`` (``jax8``). A benchmark, not a test.

On a shared machine wall-clock rates swing several-fold with other processes' load;
the CPU seconds a process spends per epoch (all its threads: the pipeline's, JAX's
and the loop's) move much less, so they show what a hand-off costs next to the
pipeline itself. Same data and pipeline as bench_handoff.py (20,000 uint8 images
64×64×3 + int64 labels, ``shuffle(1024) → cast float32 → scale 1/255 → batch(128) →
prefetch(4)``). Each kind runs in its own child process (``jax8`` needs XLA_FLAGS
before JAX starts); the kinds alternate ``--rounds`` times; each child times
``--epochs`` epochs after one warm-up epoch. Reported: medians of CPU ms and wall ms
per epoch, and each kind's cost relative to ``tb`` (tb CPU / kind CPU).

    python bench/bench_jax_cpu.py [--n 20000] [--rounds 3] [--epochs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

KINDS = ("tb", "jax", "jax8")


def child(kind: str, n: int, epochs: int) -> dict:
    if kind == "jax8":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import numpy as np

    import tensorbridge as tb

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.int64)
    ds = (tb.data.Dataset.from_tensor_slices((images, labels))
          .shuffle(1024)
          .map((tb.ops.cast(tb.float32), None))
          .map((tb.ops.scale(1 / 255, 0), None))
          .batch(128)
          .prefetch(4))
    sharding = None
    if kind == "jax8":
        import jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        assert len(jax.devices()) == 8
        sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data"))
    cpu, wall = [], []
    for e in range(epochs + 1):
        c0, t0 = time.process_time(), time.perf_counter()
        seen = 0
        for x, y in (ds if kind == "tb" else ds.to_jax(sharding)):
            if kind != "tb":
                x.block_until_ready()
                y.block_until_ready()
            seen += x.shape[0]
        c, t = time.process_time() - c0, time.perf_counter() - t0
        assert seen == n, (seen, n)
        if e:  # epoch 0 warms up
            cpu.append(c * 1e3)
            wall.append(t * 1e3)
    return {"kind": kind, "cpu_ms": cpu, "wall_ms": wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--child", choices=KINDS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.n, a.epochs)))
        return
    res: dict = {k: {"cpu_ms": [], "wall_ms": []} for k in KINDS}
    for r in range(a.rounds):
        for kind in KINDS:
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--n", str(a.n),
                                  "--epochs", str(a.epochs)], capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{kind} failed:\n{out.stderr[-3000:]}")
            got = json.loads(out.stdout.strip().splitlines()[-1])
            for key in ("cpu_ms", "wall_ms"):
                res[kind][key].extend(got[key])
            print(f"round {r} {kind:5}: cpu " + ", ".join(f"{c:.0f}" for c in got["cpu_ms"]) + " ms/epoch",
                  flush=True)
    med = {k: {key: statistics.median(v[key]) for key in v} for k, v in res.items()}
    print(f"\nn={a.n}, {a.rounds} rounds x {a.epochs} epochs, cpus={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':5} {'cpu ms/epoch':>13} {'wall ms/epoch':>14} {'tb cpu / cpu':>13}")
    for k in KINDS:
        print(f"{k:5} {med[k]['cpu_ms']:>13.0f} {med[k]['wall_ms']:>14.0f} "
              f"{med['tb']['cpu_ms'] / med[k]['cpu_ms']:>13.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": res, "medians": med, "n": a.n}, f, indent=1)


if __name__ == "__main__":
    main()
