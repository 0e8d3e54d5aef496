#!/usr/bin/env python
"""End-to-end training throughput with each loader (issue 12): a small Keras
``model.fit`` and a small torch training loop, the model small enough for the input
pipeline to matter. A benchmark, not a test.

Data: ``--n`` uint8 images 64×64×3 + int64 labels in 0..9 (fixed seed). Pipeline
(tensorbridge and tf.data alike): ``shuffle(1024) → cast float32 → scale 1/255 →
batch(128) → prefetch(4)``. Model (the same in both frameworks): ``Conv 3→8, 4×4
stride 4 → ReLU → Conv 8→16, 3×3 stride 2 → ReLU → global average pool → Dense 10``,
SGD (lr 0.01), sparse categorical cross-entropy. Images are NHWC; the torch model
permutes them to NCHW (a channels-last view, no copy) as its first step.

torch variants (each a training loop: forward, loss, backward, step per batch):

* ``model_only``: the loop over 8 batches made up front, cycled (no loader: the
  model's own ceiling);
* ``tb_w0`` / ``tb_w2``: ``DataLoader(ds.to_torch(), batch_size=None, num_workers=0 /
  2)`` (2: persistent workers, each reading its shard of the source rows);
* ``td_w0`` / ``td_w2``: ``DataLoader(TensorDataset(uint8 images, labels),
  batch_size=128, shuffle=True)``, cast/scale in the ``collate_fn``;
* ``np_w0`` / ``np_w2``: ``DataLoader`` over a NumPy map-style ``Dataset`` whose
  ``__getitem__`` casts/scales one image (as ``bench_handoff.py``).

Keras variants (``model.fit``, TensorFlow backend):

* ``keras_tb``: ``model.fit(ds.to_tensorflow())``;
* ``keras_tf``: ``model.fit(tf.data pipeline)``;
* ``keras_only``: ``model.fit`` on 8 batches made up front as a cached, repeated
  ``tf.data.Dataset`` (the model's own ceiling).

torch and TensorFlow never share a process (``torch.optim`` imports triton, whose LLVM
aborts next to TensorFlow's): every variant runs in its own child process, the
children alternate ``--rounds`` times, each timing ``--epochs`` whole training epochs
after one warm-up epoch. Reported: median / min / max images/s of the epochs. The torch
children run with ``--torch-threads`` intra-op threads (default 1, see ``torch_child``).

    python bench/bench_train.py [--n 20000] [--rounds 1] [--epochs 3] [--only tb_w0,td_w0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TORCH = ("model_only", "tb_w0", "tb_w2", "td_w0", "td_w2", "np_w0", "np_w2")
KERAS = ("keras_only", "keras_tb", "keras_tf")
VARIANTS = TORCH + KERAS
BATCH = 128


def data(n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.int64)
    return images, labels


def tb_pipeline(images, labels):
    import tensorbridge as tb

    return (tb.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(1024)
            .map((tb.ops.cast(tb.float32), None))
            .map((tb.ops.scale(1 / 255, 0), None))
            .batch(BATCH)
            .prefetch(4))


def torch_child(kind: str, n: int, epochs: int, threads: int = 1) -> list:
    import torch
    from torch.utils.data import DataLoader

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_handoff import torch_native

    images, labels = data(n)
    torch.manual_seed(0)
    # One intra-op thread: on the shared, overloaded 2-core VM the OpenMP barriers of
    # torch's conv kernels with 2 threads collapsed (~100 images/s vs ~800 with 1).
    torch.set_num_threads(threads)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    if kind == "model_only":
        fixed = [(torch.rand(BATCH, 64, 64, 3), torch.randint(0, 10, (BATCH,))) for _ in range(8)]
        steps = -(-n // BATCH)
        epoch = lambda: (fixed[i % 8] for i in range(steps))  # noqa: E731
    elif kind.startswith("tb"):
        w = int(kind[-1])
        loader = DataLoader(tb_pipeline(images, labels).to_torch(), batch_size=None, num_workers=w,
                            persistent_workers=w > 0)
        epoch = lambda: loader  # noqa: E731
    else:
        loader = torch_native(kind, images, labels)
        epoch = lambda: loader  # noqa: E731

    rates = []
    for e in range(epochs + 1):
        t0 = time.perf_counter()
        seen = 0
        for x, y in epoch():
            opt.zero_grad()
            loss = loss_fn(model(x.permute(0, 3, 1, 2)), y)
            loss.backward()
            opt.step()
            seen += x.shape[0]
        dt = time.perf_counter() - t0
        assert seen == n or kind == "model_only", (seen, n)
        if e:  # epoch 0 warms up
            rates.append(seen / dt)
    return rates


def keras_child(kind: str, n: int, epochs: int) -> list:
    import keras
    import numpy as np
    import tensorflow as tf

    images, labels = data(n)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(8, 4, strides=4, activation="relu"),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if kind == "keras_tb":
        ds = tb_pipeline(images, labels).to_tensorflow()
    elif kind == "keras_tf":
        ds = (tf.data.Dataset.from_tensor_slices((images, labels))
              .shuffle(1024)
              .map(lambda x, y: (tf.cast(x, tf.float32) / 255, y), num_parallel_calls=tf.data.AUTOTUNE)
              .batch(BATCH)
              .prefetch(4))
    else:
        g = np.random.default_rng(1)
        xs = g.random((8 * BATCH, 64, 64, 3), dtype=np.float32)
        ys = g.integers(0, 10, 8 * BATCH)
        steps = -(-n // BATCH)
        ds = tf.data.Dataset.from_tensor_slices((xs, ys)).batch(BATCH).cache().repeat().take(steps)

    times: list = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    model.fit(ds, epochs=epochs + 1, verbose=0, callbacks=[Clock()])
    seen = n if kind != "keras_only" else -(-n // BATCH) * BATCH
    return [seen / t for t in times[1:]]  # epoch 0 warms up (tracing)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--only", default=",".join(VARIANTS))
    ap.add_argument("--json")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads in the torch children")
    ap.add_argument("--child", choices=VARIANTS)
    a = ap.parse_args()
    if a.child:
        if a.child in TORCH:
            rates = torch_child(a.child, a.n, a.epochs, a.torch_threads)
        else:
            rates = keras_child(a.child, a.n, a.epochs)
        print(json.dumps({"kind": a.child, "rates": rates}))
        return
    kinds = [k for k in a.only.split(",") if k]
    rates: dict = {k: [] for k in kinds}
    for r in range(a.rounds):
        for kind in kinds:
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--n", str(a.n),
                                  "--epochs", str(a.epochs), "--torch-threads", str(a.torch_threads)],
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{kind} failed:\n{out.stderr[-3000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rates[kind].extend(res["rates"])
            print(f"round {r} {kind:10}: " + ", ".join(f"{x:,.0f}" for x in res["rates"]) + " images/s",
                  flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    load = os.getloadavg()
    print(f"\nn={a.n} images 64x64x3 uint8, {a.rounds} rounds x {a.epochs} epochs, cpus={os.cpu_count()}, "
          f"load average now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'':10} {'median img/s':>14} {'min':>10} {'max':>10}")
    for k in kinds:
        print(f"{k:10} {med[k]:>14,.0f} {min(rates[k]):>10,.0f} {max(rates[k]):>10,.0f}")
    pairs = [("tb_w0", "td_w0"), ("tb_w0", "np_w0"), ("tb_w2", "td_w2"), ("tb_w2", "np_w2"),
             ("tb_w0", "model_only"), ("keras_tb", "keras_tf"), ("keras_tb", "keras_only")]
    for k, base in pairs:
        if k in med and base in med:
            print(f"{k} / {base}: {med[k] / med[base]:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rates": rates, "medians": med, "n": a.n, "load": load}, f, indent=1)


if __name__ == "__main__":
    main()
