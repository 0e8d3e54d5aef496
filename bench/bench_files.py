"""NumPy files: tensorbridge vs NumPy side by side (issue 3).

    python bench/bench_files.py [--gib 1.0] [--small 10000] [--repeat 5]

Prints medians and ratios for: reading a large .npy with a warm page cache, a mapped
open of it, a stored 256 MiB member of an np.savez archive (NumPy-placed, unaligned)
and of a tb.savez archive (64-byte aligned: zero-copy), a deflate member, many small
.npy files, and `tensorbridge inspect` on the large archive (if the CLI is built).
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np

import tensorbridge as tb


def median_time(f, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def row(label, tb_s, np_s=None, unit_bytes=None):
    def fmt(s):
        if s is None:
            return "-"
        return f"{unit_bytes / s / 1e9:8.2f} GB/s" if unit_bytes else f"{s * 1e6:10.1f} µs"
    ratio = f"{np_s / tb_s:6.2f}x" if np_s else ""
    print(f"{label:44s} tb {fmt(tb_s):>14s}   numpy {fmt(np_s):>14s}   {ratio}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="tb_bench_files_")
    try:
        n = int(args.gib * (1 << 30)) // 4
        big = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        p = os.path.join(d, "big.npy")
        np.save(p, big)
        np.load(p)  # warm the page cache
        r = args.repeat
        row(f".npy {big.nbytes >> 20} MiB read (warm cache)", median_time(lambda: tb.load(p, mmap=False), r),
            median_time(lambda: np.load(p), r), big.nbytes)
        row(".npy mapped open", median_time(lambda: tb.load(p, mmap=True), 51),
            median_time(lambda: np.load(p, mmap_mode="r"), 51))
        del big
        member = np.random.default_rng(1).standard_normal(64 << 20, dtype=np.float32)  # 256 MiB
        pz, ptz = os.path.join(d, "np.npz"), os.path.join(d, "tb.npz")
        np.savez(pz, x=member)
        tb.savez(ptz, x=member)
        row("stored 256 MiB member, np.savez archive", median_time(lambda: tb.load(pz)["x"], r),
            median_time(lambda: np.load(pz)["x"], r), member.nbytes)
        t = tb.load(ptz)["x"]
        assert t.is_view
        row("stored 256 MiB member, tb.savez (zero-copy)", median_time(lambda: tb.load(ptz)["x"], 51),
            median_time(lambda: np.load(ptz)["x"], r))
        u8 = np.random.default_rng(2).integers(0, 255, 16 << 20, dtype=np.uint8)
        pc = os.path.join(d, "c.npz")
        np.savez_compressed(pc, x=u8)
        row("deflate member (16 MiB random u8)", median_time(lambda: tb.load(pc)["x"], r),
            median_time(lambda: np.load(pc)["x"], r), u8.nbytes)
        small_dir = os.path.join(d, "small")
        os.makedirs(small_dir)
        img = np.zeros((3, 64, 64), np.float32)
        files = [os.path.join(small_dir, f"{i:05d}.npy") for i in range(args.small)]
        for f in files:
            np.save(f, img)
        tb_s = median_time(lambda: [tb.load(f) for f in files], 3) / len(files)
        np_s = median_time(lambda: [np.load(f) for f in files], 3) / len(files)
        row(f"{args.small} small .npy files, per file", tb_s, np_s)
        cli = os.path.join(os.path.dirname(__file__), "..", "target", "release", "tensorbridge")
        if os.path.exists(cli):
            s = median_time(lambda: subprocess.run([cli, "inspect", pz], check=True, capture_output=True), 5)
            row("tensorbridge inspect (256 MiB .npz, process)", s)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
