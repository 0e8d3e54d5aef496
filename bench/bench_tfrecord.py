#!/usr/bin/env python
"""TFRecord writing throughput: tensorbridge vs TensorFlow's own writer loop (issue 4).

A benchmark, not a test. On the same data (default: 4096 images of 64x64x3 uint8
plus int64 labels) it times, ``--repeat`` times (default 7), interleaved:

* tensorbridge: ``tb.io.write_tfrecord(path, {"image": images, "label": labels})``;
* TensorFlow: the usual loop — for each record, ``tf.io.serialize_tensor`` of the
  image and of the label, a ``tf.train.Example`` of two ``bytes_list`` features,
  ``SerializeToString()`` and ``tf.io.TFRecordWriter.write``.

Both write the same layout (one Example per record, each feature the serialized
TensorProto of its slice), so both files hold the same records; the script checks
that TensorFlow's records and ours decode to the same tensors and reports whether
the uncompressed files are byte-identical (TensorFlow's warm-up file is written
with ``SerializeToString(deterministic=True)`` so that its feature map is in key
order, as ours is). Each variant is run without compression and with
``"GZIP"``. Throughput is MB/s (10^6 bytes) of the uncompressed records written
(file size without compression), median over the repeats; the ratio tb/tf should
be >= 2.

    python bench/bench_tfrecord.py [--n N] [--repeat R] [--dir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tensorbridge as tb  # noqa: E402

TARGET = 2.0


def write_tb(path, images, labels, compression):
    tb.io.write_tfrecord(path, {"image": images, "label": labels}, compression=compression)


def write_tf(tf, path, images, labels, compression, deterministic=False):
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    with tf.io.TFRecordWriter(path, options) as w:
        for i in range(len(images)):
            feature = {
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[tf.io.serialize_tensor(images[i]).numpy()])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[tf.io.serialize_tensor(labels[i]).numpy()])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            w.write(example.SerializeToString(deterministic=deterministic))


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4096, help="records (default 4096)")
    ap.add_argument("--size", type=int, default=64, help="image height = width (default 64)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(2)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, args.n, dtype=np.int64)

    workdir = tempfile.mkdtemp(prefix="bench_tfrecord_", dir=args.dir)
    print(f"tensorbridge {tb.__version__}, tensorflow {tf.__version__}, numpy {np.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs, writing to {workdir}")
    print(f"data: {args.n} images {args.size}x{args.size}x3 uint8 + int64 labels "
          f"({(images.nbytes + labels.nbytes) / 1e6:.1f} MB of array data)")

    results = {}
    for compression in (None, "GZIP"):
        label = compression or "none"
        p_tb = os.path.join(workdir, f"tb_{label}.tfrecord")
        p_tf = os.path.join(workdir, f"tf_{label}.tfrecord")
        # Warm-up (and correctness check) for both.
        write_tb(p_tb, images, labels, compression)
        # deterministic=True (only here, not in the timed loop) orders the feature map
        # by key; by default protobuf's map order varies from run to run.
        write_tf(tf, p_tf, images, labels, compression, deterministic=True)
        ours = list(tb.io.read_tfrecord(p_tb, compression=compression))
        theirs = list(tb.io.read_tfrecord(p_tf, compression=compression))
        assert len(ours) == len(theirs) == args.n
        for a, b in ((ours[0], theirs[0]), (ours[-1], theirs[-1])):
            assert a["image"].numpy().tobytes() == b["image"].numpy().tobytes()
            assert a["label"].numpy()[()] == b["label"].numpy()[()]
        identical = None
        if compression is None:
            with open(p_tb, "rb") as f1, open(p_tf, "rb") as f2:
                identical = f1.read() == f2.read()
            record_bytes = os.path.getsize(p_tb)
        t_tb, t_tf = [], []
        for _ in range(args.repeat):
            t_tb.append(timed(lambda: write_tb(p_tb, images, labels, compression)))
            t_tf.append(timed(lambda: write_tf(tf, p_tf, images, labels, compression)))
        mb = record_bytes / 1e6
        r = {
            "compression": label,
            "record_bytes": record_bytes,
            "file_bytes_tb": os.path.getsize(p_tb),
            "file_bytes_tf": os.path.getsize(p_tf),
            "tb_s": t_tb,
            "tf_s": t_tf,
            "tb_mb_s": mb / statistics.median(t_tb),
            "tf_mb_s": mb / statistics.median(t_tf),
            "tb_mb_s_min": mb / max(t_tb),
            "tf_mb_s_min": mb / max(t_tf),
            "byte_identical": identical,
        }
        r["ratio"] = r["tb_mb_s"] / r["tf_mb_s"]
        results[label] = r

    print()
    print(f"{'compression':<12}{'tb MB/s':>10}{'tf MB/s':>10}{'tb/tf':>8}  {'tb s':>7}{'tf s':>7}"
          f"  slowest tb / tf MB/s")
    for r in results.values():
        print(f"{r['compression']:<12}{r['tb_mb_s']:>10.1f}{r['tf_mb_s']:>10.1f}{r['ratio']:>8.1f}"
              f"  {statistics.median(r['tb_s']):>7.3f}{statistics.median(r['tf_s']):>7.3f}"
              f"  {r['tb_mb_s_min']:.1f} / {r['tf_mb_s_min']:.1f}")
    print()
    print(f"uncompressed files byte-identical to TensorFlow's: {results['none']['byte_identical']}")
    print(f"GZIP file sizes: tb {results['GZIP']['file_bytes_tb']:,} B, "
          f"tf {results['GZIP']['file_bytes_tf']:,} B")
    for r in results.values():
        verdict = "met" if r["ratio"] >= TARGET else "NOT met"
        print(f"target tb/tf >= {TARGET} ({r['compression']}): {verdict}")

    for name in os.listdir(workdir):
        os.remove(os.path.join(workdir, name))
    os.rmdir(workdir)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       "n": args.n, "size": args.size, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
