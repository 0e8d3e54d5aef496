#!/usr/bin/env python
"""Casting throughput: tensorbridge vs NumPy vs TensorFlow (issue 2).

A benchmark, not a test. For each conversion pair it times, on ``--n`` elements
(default 64 Mi), ``--repeat`` runs (default 7) of

* tensorbridge: ``tb.cast(a, dtype)`` (one pass: read the NumPy array, write a new
  tensor); for the same-dtype copy ``tb.convert_to_tensor(a, copy=True)``;
* NumPy: ``a.astype(dtype)`` (bfloat16: ``ml_dtypes.bfloat16``); copy: ``a.copy()``;
* TensorFlow: ``tf.convert_to_tensor(a, dtype=...)``; where TensorFlow refuses a
  dtype change there, ``tf.cast(tf.convert_to_tensor(a), dtype)`` (labelled
  ``tf.cast`` in the table); copy: ``tf.convert_to_tensor(a)``.

It reports G elements/s (median of the repeats, and the min), the ratios
tb/numpy and tb/tf, and whether the issue's targets are met:
every pair tb/numpy >= 1.0, f32->f16 tb/numpy >= 3.0, every pair tb/tf >= 2.0.

The timed calls are interleaved (tb, numpy, tf, tb, numpy, tf, ...) so that noise
from other processes hits all three alike. Every result is freed (``del`` +
``gc.collect()``) before the next call, so memory stays bounded to the input plus
one result.

    python bench/bench_cast.py [--n N] [--repeat R] [--no-tf] [--json PATH]
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

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

import tensorbridge as tb  # noqa: E402

# (label, source NumPy dtype, target NumPy dtype, tensorbridge dtype, TF dtype name)
PAIRS = [
    ("f64->f32", np.float64, np.float32, tb.float32, "float32"),
    ("i64->f32", np.int64, np.float32, tb.float32, "float32"),
    ("u8->f32", np.uint8, np.float32, tb.float32, "float32"),
    ("f32->f16", np.float32, np.float16, tb.float16, "float16"),
    ("f32->bf16", np.float32, ml_dtypes.bfloat16, tb.bfloat16, "bfloat16"),
    ("f32->i32", np.float32, np.int32, tb.int32, "int32"),
    ("f32->f32 copy", np.float32, np.float32, None, "float32"),
]

TARGET_TB_NUMPY = 1.0
TARGET_F16_TB_NUMPY = 3.0
TARGET_TB_TF = 2.0


def make_input(src, n: int, rng: np.random.Generator) -> np.ndarray:
    """Values that fit every target (f32->i32: random * 1000)."""
    if src is np.uint8:
        return rng.integers(0, 256, size=n, dtype=np.uint8)
    if src is np.int64:
        return rng.integers(-(2**40), 2**40, size=n, dtype=np.int64)
    if src is np.float64:
        return rng.standard_normal(n) * 1000.0
    if src is np.float32:
        a = rng.random(n, dtype=np.float32)
        a *= 1000.0
        return a
    raise ValueError(src)


def time_ops(fns: dict, repeat: int) -> dict:
    """Seconds per call for each of ``fns``, interleaved round by round (so a burst of
    noise from other processes hits all libraries alike); one untimed warm-up call
    each; every result is freed before the next call."""
    for fn in fns.values():
        r = fn()
        del r
        gc.collect()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            r = fn()
            t1 = time.perf_counter()
            del r
            gc.collect()
            times[k].append(t1 - t0)
    return times


def rates(times: list[float], n: int) -> dict:
    return {
        "median_gps": n / statistics.median(times) / 1e9,
        "min_gps": n / max(times) / 1e9,  # slowest run
        "max_gps": n / min(times) / 1e9,  # fastest run
        "times_s": times,
    }


def machine_info() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=64 * 1024 * 1024, help="elements (default 64 Mi)")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (default 7)")
    p.add_argument("--no-tf", action="store_true", help="skip TensorFlow")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args()
    n, repeat = args.n, args.repeat

    tf = None
    if not args.no_tf:
        import tensorflow as tf  # noqa: F811

        tf.config.threading.set_intra_op_parallelism_threads(2)

    info = machine_info()
    versions = {
        "numpy": np.__version__,
        "ml_dtypes": ml_dtypes.__version__,
        "tensorflow": tf.__version__ if tf is not None else None,
        "tensorbridge": getattr(tb, "__version__", "unknown"),
    }
    print(f"date:    {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs "
          f"({info['usable_cpus']} usable), {info['platform']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)
          + f", python {info['python']}")
    print(f"n = {n} elements, repeat = {repeat} (median of repeats; min = slowest run)")
    if tf is not None:
        print("tf intra-op threads = 2")
    print(flush=True)

    rng = np.random.default_rng(0)
    results = []
    for label, src, dst, tb_dt, tf_name in PAIRS:
        a = make_input(src, n, rng)
        copy = tb_dt is None
        if copy:
            tb_fn = lambda: tb.convert_to_tensor(a, copy=True)  # noqa: E731
            np_fn = lambda: a.copy()  # noqa: E731
        else:
            tb_fn = lambda: tb.cast(a, tb_dt)  # noqa: E731
            np_fn = lambda: a.astype(dst)  # noqa: E731

        # Sanity: tensorbridge agrees with NumPy bit for bit on a prefix.
        k = min(n, 1 << 16)
        head = a[:k]
        t_head = (tb.convert_to_tensor(head, copy=True) if copy else tb.cast(head, tb_dt))
        ref = head.copy() if copy else head.astype(dst)
        agree = np.asarray(t_head).view(np.uint8).tobytes() == ref.view(np.uint8).tobytes()
        del t_head, ref

        row = {"pair": label, "src": np.dtype(src).name, "dst": np.dtype(dst).name,
               "tb_numpy_bitwise_equal_prefix": bool(agree)}
        fns = {"tb": tb_fn, "numpy": np_fn}

        if tf is not None:
            tf_dt = getattr(tf, tf_name)
            if copy:
                tf_fn = lambda: tf.convert_to_tensor(a)  # noqa: E731
                tf_how = "convert_to_tensor"
            else:
                try:
                    tf.convert_to_tensor(a[:16], dtype=tf_dt)
                    tf_fn = lambda: tf.convert_to_tensor(a, dtype=tf_dt)  # noqa: E731
                    tf_how = "convert_to_tensor"
                except (TypeError, ValueError):
                    tf_fn = lambda: tf.cast(tf.convert_to_tensor(a), tf_dt)  # noqa: E731
                    tf_how = "tf.cast"
            row["tf_how"] = tf_how
            fns["tf"] = tf_fn
        for k, ts in time_ops(fns, repeat).items():
            row[k] = rates(ts, n)
        if tf is not None:
            if copy:
                # Does TF share the NumPy buffer (zero copy) instead of copying?
                t = tf.convert_to_tensor(a)
                row["tf_shares_numpy_buffer"] = bool(np.shares_memory(t.numpy(), a))
                del t

        tbm = row["tb"]["median_gps"]
        row["tb_over_numpy"] = tbm / row["numpy"]["median_gps"]
        if tf is not None:
            row["tb_over_tf"] = tbm / row["tf"]["median_gps"]
        results.append(row)
        print(f"  {label:<14} tb {tbm:7.3f}  numpy {row['numpy']['median_gps']:7.3f}"
              + (f"  tf {row['tf']['median_gps']:7.3f} ({row['tf_how']})" if tf is not None else "")
              + ("" if agree else "  [tb != numpy on prefix!]"), flush=True)
        del a, tb_fn, np_fn, fns
        if tf is not None:
            del tf_fn
        gc.collect()

    # Table.
    print()
    print("G elements/s, median of repeats (min = slowest run in brackets)")
    hdr = f"{'pair':<14} | {'tb':>15} | {'numpy':>15} |"
    if tf is not None:
        hdr += f" {'tf':>15} | {'tf path':<17} |"
    hdr += f" {'tb/numpy':>8} |"
    if tf is not None:
        hdr += f" {'tb/tf':>6} |"
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        def cell(d):
            return f"{d['median_gps']:6.3f} ({d['min_gps']:6.3f})"
        line = f"{r['pair']:<14} | {cell(r['tb']):>15} | {cell(r['numpy']):>15} |"
        if tf is not None:
            line += f" {cell(r['tf']):>15} | {r['tf_how']:<17} |"
        line += f" {r['tb_over_numpy']:8.2f} |"
        if tf is not None:
            line += f" {r['tb_over_tf']:6.2f} |"
        print(line)
    for r in results:
        if r.get("tf_shares_numpy_buffer"):
            print(f"note: {r['pair']}: tf.convert_to_tensor shares the NumPy buffer (no copy made)")
        if not r["tb_numpy_bitwise_equal_prefix"]:
            print(f"note: {r['pair']}: tensorbridge result differs from NumPy's on the first elements")

    # Targets.
    print()
    print("targets:")
    targets = []

    def check(name, value, goal):
        ok = value >= goal
        targets.append({"target": name, "value": value, "goal": goal, "met": ok})
        print(f"  {'MET ' if ok else 'MISS'} {name}: {value:.2f} (>= {goal})")

    for r in results:
        check(f"{r['pair']} tb/numpy", r["tb_over_numpy"], TARGET_TB_NUMPY)
    f16 = next(r for r in results if r["pair"] == "f32->f16")
    check("f32->f16 tb/numpy (f16 target)", f16["tb_over_numpy"], TARGET_F16_TB_NUMPY)
    if tf is not None:
        for r in results:
            check(f"{r['pair']} tb/tf", r["tb_over_tf"], TARGET_TB_TF)
    else:
        print("  (tb/tf targets not checked: --no-tf)")
    met = all(t["met"] for t in targets)
    print(f"all targets met: {'yes' if met else 'no'}")

    if args.json:
        out = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "n": n,
            "repeat": repeat,
            "machine": info,
            "versions": versions,
            "results": results,
            "targets": targets,
            "all_targets_met": met,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
