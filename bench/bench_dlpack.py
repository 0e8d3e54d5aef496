#!/usr/bin/env python
"""DLPack exchange: constant-time export+import, and ``to_tensorflow()`` vs a copy (issue 4).

A benchmark, not a test. It measures

1. **DLPack round trip** ``tb.from_dlpack(t.__dlpack__())`` (export a capsule,
   import it: zero-copy) on a 1 KiB and a 1 GiB float32 tensor, legacy and
   versioned capsules. Target: the 1 GiB round trip within 2x the 1 KiB one
   (constant time: nothing is copied or touched). Timed in batches of ``--batch``
   calls, 1 KiB and 1 GiB batches interleaved; the per-call time is the median
   over ``--rounds`` batches (many short batches: on a shared machine a batch is
   now and then 2-3x slower because another process takes the core, and the median
   of many batches is robust to that).
2. **To TensorFlow**: ``t.to_tensorflow()`` of the 1 GiB tensor (zero-copy: it is
   64-byte aligned and contiguous) vs ``tf.convert_to_tensor(np_array)`` of a 1 GiB
   NumPy array (a copy). Target: to_tensorflow at least 10x faster. Median of
   ``10 * --repeat`` and ``--repeat`` calls; every result is freed before the next
   call (plus ``gc.collect()`` after each 1 GiB copy).
3. For information: ``t.to_jax()`` vs ``jax.numpy.asarray(np_array)`` (1 GiB), and
   ``np.from_dlpack(t)``.

    python bench/bench_dlpack.py [--repeat R] [--rounds N] [--batch B] [--no-jax] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tensorbridge as tb  # noqa: E402

KIB = 1024
GIB = 1024**3
TARGET_CONSTANT = 2.0
TARGET_TF = 10.0


def per_call_batched(fns: dict, batch: int, repeat: int) -> dict:
    """{name: (median, min)} seconds per call of each of ``fns``, timed in batches of
    ``batch`` calls; the batches of the different functions are interleaved round by
    round, so that noise from other processes hits them alike."""
    for fn in fns.values():
        for _ in range(min(batch, 100)):
            fn()
    samples: dict = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(batch):
                fn()
            samples[name].append((time.perf_counter() - t0) / batch)
    return {k: (statistics.median(v), min(v)) for k, v in samples.items()}


def per_call_single(fn, repeat: int, collect: bool) -> tuple[float, float, list]:
    """(median, min, all) seconds of single calls; each result freed (``del``) before
    the next call, plus ``gc.collect()`` when ``collect`` (used after the 1 GiB copies;
    a full collection before each zero-copy call would make that call cold: ~120 µs
    instead of ~7 µs for ``to_tensorflow``)."""
    r = fn()
    del r
    gc.collect()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = fn()
        samples.append(time.perf_counter() - t0)
        del r
        if collect:
            gc.collect()
    return statistics.median(samples), min(samples), samples


def fmt(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=61, help="interleaved batches per size (round trips)")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    results: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "tensorbridge": tb.__version__,
        "cpus": os.cpu_count(),
    }

    small = tb.convert_to_tensor(np.arange(KIB // 4, dtype=np.float32))
    big_np = np.ones(GIB // 4, dtype=np.float32)
    big = tb.convert_to_tensor(big_np, copy=True)  # tensorbridge's own aligned buffer
    assert small.nbytes == KIB and big.nbytes == GIB
    assert big.data_ptr % 64 == 0

    # 1. DLPack round trip, constant time.
    rt_repeat = args.rounds
    print(f"DLPack export+import, per call (median of {rt_repeat} interleaved batches of {args.batch}):")
    rt = {}
    for label, kw in [("legacy", {}), ("versioned", {"max_version": (1, 0)})]:
        fns = {}
        for name, t in [("1 KiB", small), ("1 GiB", big)]:
            back = tb.from_dlpack(t.__dlpack__(**kw))
            assert back.data_ptr == t.data_ptr, "zero-copy"
            fns[name] = lambda t=t, kw=kw: tb.from_dlpack(t.__dlpack__(**kw))
        for name, (med, mn) in per_call_batched(fns, args.batch, rt_repeat).items():
            rt[(label, name)] = med
            print(f"  {label:9s} {name}: median {fmt(med)}  min {fmt(mn)}")
        ratio = rt[(label, "1 GiB")] / rt[(label, "1 KiB")]
        verdict = "met" if ratio <= TARGET_CONSTANT else "NOT met"
        print(f"  {label:9s} 1 GiB / 1 KiB = {ratio:.2f} (target <= {TARGET_CONSTANT}: {verdict})")
        results[f"roundtrip_{label}"] = {
            "1KiB_s": rt[(label, "1 KiB")], "1GiB_s": rt[(label, "1 GiB")], "ratio": ratio,
        }
    med_np, _ = per_call_batched({"np": lambda: np.from_dlpack(big)}, args.batch, rt_repeat)["np"]
    print(f"  np.from_dlpack(t) 1 GiB: median {fmt(med_np)}")
    results["np_from_dlpack_1GiB_s"] = med_np

    # 2. To TensorFlow: zero-copy vs TensorFlow's own conversion (a copy).
    x = big.to_tensorflow()
    cap = tf.experimental.dlpack.to_dlpack(x)
    assert tb.from_dlpack(cap).data_ptr == big.data_ptr, "to_tensorflow must share memory"
    del x, cap
    tf_repeat = max(3, args.repeat)
    med_tb, min_tb, _ = per_call_single(big.to_tensorflow, args.repeat * 10, collect=False)
    med_tf, min_tf, all_tf = per_call_single(lambda: tf.convert_to_tensor(big_np), tf_repeat, collect=True)
    ratio_tf = med_tf / med_tb
    print("1 GiB float32 into TensorFlow, per call:")
    print(f"  t.to_tensorflow():             median {fmt(med_tb)}  min {fmt(min_tb)}")
    print(f"  tf.convert_to_tensor(ndarray): median {fmt(med_tf)}  min {fmt(min_tf)}")
    verdict = "met" if ratio_tf >= TARGET_TF else "NOT met"
    print(f"  speed-up {ratio_tf:,.0f}x (target >= {TARGET_TF:.0f}x: {verdict})")
    results["tensorflow"] = {
        "to_tensorflow_s": med_tb, "convert_to_tensor_s": med_tf, "ratio": ratio_tf,
        "convert_to_tensor_all_s": all_tf,
    }

    # 3. JAX, for information.
    if not args.no_jax:
        import jax
        import jax.numpy as jnp

        j = big.to_jax()
        assert j.unsafe_buffer_pointer() == big.data_ptr
        del j
        med_j, _, _ = per_call_single(big.to_jax, args.repeat * 10, collect=False)
        med_jnp, _, _ = per_call_single(lambda: jnp.asarray(big_np).block_until_ready(), tf_repeat, collect=True)
        print("1 GiB float32 into JAX, per call:")
        print(f"  t.to_jax():                    median {fmt(med_j)}")
        print(f"  jnp.asarray(ndarray):          median {fmt(med_jnp)}  ({med_jnp / med_j:,.0f}x slower)")
        results["jax"] = {"to_jax_s": med_j, "asarray_s": med_jnp, "ratio": med_jnp / med_j,
                          "version": jax.__version__}

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    ok = all(results[f"roundtrip_{k}"]["ratio"] <= TARGET_CONSTANT for k in ("legacy", "versioned"))
    ok = ok and ratio_tf >= TARGET_TF
    print("all targets met" if ok else "some targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
