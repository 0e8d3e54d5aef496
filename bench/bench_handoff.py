#!/usr/bin/env python
"""Hand-off throughput: a tb.data pipeline consumed by TensorFlow, JAX and PyTorch (issue 12).
A benchmark, not a test.

Data: ``--n`` uint8 images 64×64×3 + int64 labels (fixed seed). Pipeline:
``shuffle(1024) → cast float32 → scale 1/255 → batch(128) → prefetch(4)``, consumed as

* ``tb``: tensorbridge natively (``for x, y in ds``: ``tb.Tensor`` batches);
* ``tf_ds``: ``ds.to_tensorflow()`` (a ``tf.data.Dataset`` pulling batches through
  tensorbridge's native TensorFlow op) iterated eagerly;
* ``tf_const``: tf.data iterating already-made constant batches (``from_tensors`` of one
  128-image float32 batch, repeated; the short last batch too): the floor of tf.data's
  eager per-element cost, what any ``tf.data.Dataset`` source pays on this machine;
* ``tf_floor``: TensorFlow's own eager iteration floor: ``from_tensors`` of one batch of
  the same shapes/dtypes (float32 128×64×64×3 + int64 128), ``repeat(n // 128)`` (+ the
  short last batch), iterated like ``tf_ds``: what any ``tf.data.Dataset`` source costs per
  element here before producing anything (``tf_const`` is the same contender, its older name);
* ``limit``: the memory-bandwidth limit of the pipeline's output: the same float32 batches
  made from the uint8 images by NumPy at one core's streaming rate
  (``np.multiply(u8[i:i+128], 1/255, out=f32, casting="unsafe")`` over contiguous slices
  into one reused output buffer, labels copied): no shuffle gather, no allocation, no
  hand-off — the fastest any loader can produce these batches on one core;
* ``limit_tb``: tensorbridge's own cast of the whole uint8 array to float32 in one call
  (``tb.cast``; fresh output, so page faults included; no scale), timed per image;
* ``tf_iter``: ``ds.to_tensorflow(as_dataset=False)`` (``tf.Tensor`` batches over DLPack);
* ``tf``: tf.data natively (``from_tensor_slices → shuffle(1024) → map(cast, /255,
  AUTOTUNE) → batch(128) → prefetch(4)``);
* ``jax``: ``ds.to_jax()`` (single default CPU device, ``prefetch=2``), each batch's
  arrays waited for (``block_until_ready``) before the next;
* ``torch_w0`` / ``torch_w2``: ``DataLoader(ds.to_torch(), batch_size=None,
  num_workers=0 / 2)`` (torch tensors over DLPack; with 2 workers, persistent, each runs the
  pipeline and keeps its shard of the batches);
* ``td_w0`` / ``td_w2``: PyTorch natively: ``DataLoader(TensorDataset(uint8 images,
  labels), batch_size=128, shuffle=True, num_workers=0 / 2, persistent_workers when 2)``
  with a ``collate_fn``
  that stacks (``default_collate``) then casts to float32 and scales by 1/255;
* ``np_w0`` / ``np_w2``: ``DataLoader`` (same settings, default collate) over a
  map-style ``Dataset`` whose ``__getitem__`` casts/scales the NumPy image
  (``images[i].astype(float32) / 255``) and returns it with its label.

The loop only receives batches (images/s = n / epoch time). Each variant runs in its
own child process; the children alternate ``--rounds`` times, each timing ``--epochs``
epochs after one warm-up epoch. Reported: median / min / max images/s, the median CPU
time per batch of the whole child process (all its threads; the variants iterated by the
common loop) and ratios of medians against the targets (tf_ds ≥ 0.8× tb and ≥ 5× tf; jax ≥ 0.8× tb; torch_w0
≥ 5× the best of td_* / np_*).

    python bench/bench_handoff.py [--n 20000] [--rounds 3] [--epochs 3] [--only tb,tf_ds] [--json PATH]
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

VARIANTS = ("tb", "tf_ds", "tf_iter", "tf", "tf_floor", "tf_const", "limit", "limit_tb", "jax", "torch_w0", "torch_w2", "td_w0", "td_w2", "np_w0", "np_w2")
TORCH_NATIVE = ("td_w0", "td_w2", "np_w0", "np_w2")

# --- JAX + Grain contenders (issue 12, f and g) ---------------------------------
# jax8: ds.to_jax(NamedSharding over 8 host devices, PartitionSpec("data")) in a child
# started with XLA_FLAGS=--xla_force_host_platform_device_count=8. grain_*: Grain
# (grain==0.2.18) doing the same pipeline on NumPy (global shuffle, cast float32, scale
# 1/255, batch 128), each batch handed to JAX as a JAX user would (jax.device_put,
# then block_until_ready): grain_w0 / grain_w2 = MapDataset ... .to_iter_dataset()
# in-process / .mp_prefetch(2 worker processes); grain_dl0 / grain_dl2 = the older
# grain.DataLoader with worker_count 0 / 2. Grain streams epochs back to back (one
# iterator over epochs+1 epochs, so worker processes start once); an epoch is timed as
# the batches that make up n images.
JAX_GRAIN = ("jax8", "grain_w0", "grain_w2", "grain_dl0", "grain_dl2")
VARIANTS = VARIANTS + JAX_GRAIN


class _GrainSource:
    """Random access to (image, label) rows for Grain (pickled into its workers)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def _grain_cast_scale(elem):
    import numpy as np

    x, y = elem
    return x.astype(np.float32) * np.float32(1 / 255), y


def _grain_batches(kind: str, images, labels, epochs: int):
    """An iterator of NumPy (x, y) batches over epochs+1 epochs, Grain doing the work."""
    import grain
    from absl import flags

    if not flags.FLAGS.is_parsed():  # Grain's worker processes read absl flags
        flags.FLAGS(["bench_handoff"])
    src = _GrainSource(images, labels)
    workers = int(kind[-1])
    if kind.startswith("grain_dl"):
        class CastScale(grain.transforms.Map):
            def map(self, element):
                return _grain_cast_scale(element)

        # one epoch more: its batches run across epoch boundaries
        sampler = grain.samplers.IndexSampler(len(src), shuffle=True, num_epochs=epochs + 2, seed=0)
        return iter(grain.DataLoader(data_source=src, sampler=sampler,
                                     operations=[CastScale(), grain.transforms.Batch(batch_size=128)],
                                     worker_count=workers))
    ds = (grain.MapDataset.source(src).shuffle(seed=0).map(_grain_cast_scale).batch(128)
          .repeat(epochs + 1))  # a new shuffle each epoch (reseed_each_epoch)
    it = ds.to_iter_dataset()  # Grain's default ReadOptions: 16 reader threads
    if workers:
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(it)


def jax_grain_child(kind: str, images, labels, n: int, epochs: int) -> dict:
    """The JAX hand-off contenders: jax8 (to_jax sharded over 8 host devices) and Grain."""
    if kind == "jax8":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import numpy as np
    import jax

    if kind == "jax8":
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        import tensorbridge as tb

        devices = jax.devices()
        assert len(devices) == 8, devices
        sharding = NamedSharding(Mesh(np.array(devices), ("data",)), PartitionSpec("data"))
        ds = (tb.data.Dataset.from_tensor_slices((images, labels))
              .shuffle(1024)
              .map((tb.ops.cast(tb.float32), None))
              .map((tb.ops.scale(1 / 255, 0), None))
              .batch(128)
              .prefetch(4))
        epoch_iter = lambda: ds.to_jax(sharding)  # noqa: E731

        def stream():
            while True:
                yield from epoch_iter()

        batches = stream()
    else:
        batches = _grain_batches(kind, images, labels, epochs)
    rates = []
    for e in range(epochs + 1):
        t0 = time.perf_counter()
        seen = 0
        while seen < n:
            x, y = next(batches)
            if kind != "jax8":
                x, y = jax.device_put((x, y))
            x.block_until_ready()
            y.block_until_ready()
            seen += x.shape[0]
        dt = time.perf_counter() - t0
        if e:  # epoch 0 warms up (and starts Grain's workers)
            rates.append(seen / dt)
    return {"kind": kind, "rates": rates}
# --- end of the JAX + Grain contenders -------------------------------------------


def torch_native(kind: str, images, labels):
    """PyTorch's own DataLoader doing the pipeline's shuffle, cast/scale and batch."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset, TensorDataset
    from torch.utils.data._utils.collate import default_collate

    workers = int(kind[-1])
    if kind.startswith("td"):
        def collate(items):
            x, y = default_collate(items)
            return x.to(torch.float32).mul_(1 / 255), y

        data = TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
        return DataLoader(data, batch_size=128, shuffle=True, num_workers=workers, collate_fn=collate,
                          persistent_workers=workers > 0)

    class NumpyImages(Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i].astype(np.float32) * np.float32(1 / 255), labels[i]

    return DataLoader(NumpyImages(), batch_size=128, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0)


def limit_child(kind: str, images, labels, n: int, epochs: int) -> dict:
    """The bandwidth limit of producing the float32 batches from uint8 (no pipeline)."""
    import numpy as np

    rates = []
    if kind == "limit":
        out = np.empty((128,) + images.shape[1:], np.float32)
        lab = np.empty((128,), np.int64)
        scale = np.float32(1 / 255)
    else:
        import tensorbridge as tb

        src = tb.convert_to_tensor(images)
    for e in range(epochs + 1):
        t0 = time.perf_counter()
        if kind == "limit":
            for i in range(0, n, 128):
                k = min(128, n - i)
                np.multiply(images[i:i + k], scale, out=out[:k], casting="unsafe")
                lab[:k] = labels[i:i + k]
        else:
            f32 = tb.cast(src, tb.float32)
            assert f32.shape[0] == n
            del f32
        dt = time.perf_counter() - t0
        if e:
            rates.append(n / dt)
    return {"kind": kind, "rates": rates}


def child(kind: str, n: int, epochs: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.int64)
    if kind in JAX_GRAIN:
        return jax_grain_child(kind, images, labels, n, epochs)
    wait = None
    if kind == "tf":
        import tensorflow as tf

        ds = (tf.data.Dataset.from_tensor_slices((images, labels))
              .shuffle(1024)
              .map(lambda x, y: (tf.cast(x, tf.float32) / 255, y), num_parallel_calls=tf.data.AUTOTUNE)
              .batch(128)
              .prefetch(4))
        epoch = lambda: ds  # noqa: E731
    elif kind in ("limit", "limit_tb"):
        return limit_child(kind, images, labels, n, epochs)
    elif kind in ("tf_floor", "tf_const"):
        import tensorflow as tf

        def const(rows):
            return tf.data.Dataset.from_tensors((tf.zeros((rows, 64, 64, 3), tf.float32),
                                                 tf.zeros((rows,), tf.int64)))

        ds = const(128).repeat(n // 128)
        if n % 128:
            ds = ds.concatenate(const(n % 128))
        epoch = lambda: ds  # noqa: E731
    elif kind in TORCH_NATIVE:
        loader = torch_native(kind, images, labels)
        epoch = lambda: loader  # noqa: E731
    else:
        import tensorbridge as tb

        ds = (tb.data.Dataset.from_tensor_slices((images, labels))
              .shuffle(1024)
              .map((tb.ops.cast(tb.float32), None))
              .map((tb.ops.scale(1 / 255, 0), None))
              .batch(128)
              .prefetch(4))
        if kind == "tb":
            epoch = lambda: ds  # noqa: E731
        elif kind == "tf_ds":
            tfds = ds.to_tensorflow()
            epoch = lambda: tfds  # noqa: E731
        elif kind == "tf_iter":
            it = ds.to_tensorflow(as_dataset=False)
            epoch = lambda: it  # noqa: E731
        elif kind.startswith("torch"):
            from torch.utils.data import DataLoader

            loader = DataLoader(ds.to_torch(), batch_size=None, num_workers=int(kind[-1]),
                                persistent_workers=kind == "torch_w2")
            epoch = lambda: loader  # noqa: E731
        else:
            epoch = lambda: ds.to_jax()  # noqa: E731

            def wait(x, y):
                x.block_until_ready()
                y.block_until_ready()
    rates, cpu = [], []
    for e in range(epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        seen = batches = 0
        for x, y in epoch():
            if wait is not None:
                wait(x, y)
            seen += x.shape[0]
            batches += 1
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        assert seen == n, (seen, n)
        if e:  # epoch 0 warms up
            rates.append(n / dt)
            cpu.append(dc / batches * 1e3)
    return {"kind": kind, "rates": rates, "cpu_ms": cpu}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--only", default=",".join(VARIANTS))
    ap.add_argument("--json")
    ap.add_argument("--child", choices=VARIANTS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.n, a.epochs)))
        return
    kinds = [k for k in a.only.split(",") if k]
    rates: dict = {k: [] for k in kinds}
    cpu: dict = {k: [] for k in kinds}  # CPU ms per batch (whole process), where measured
    for r in range(a.rounds):
        for kind in kinds:
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--n", str(a.n),
                                  "--epochs", str(a.epochs)], capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{kind} failed:\n{out.stderr[-3000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rates[kind].extend(res["rates"])
            cpu[kind].extend(res.get("cpu_ms", []))
            print(f"round {r} {kind:8}: " + ", ".join(f"{x:,.0f}" for x in res["rates"]) + " images/s"
                  + ("; CPU ms/batch " + ", ".join(f"{x:.2f}" for x in res["cpu_ms"]) if "cpu_ms" in res else ""),
                  flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nn={a.n} images 64x64x3 uint8, {a.rounds} rounds x {a.epochs} epochs, cpus={os.cpu_count()}")
    print(f"{'':8} {'median img/s':>14} {'min':>10} {'max':>10} {'vs tb':>7} {'vs tf':>7} {'CPU ms/batch':>13}")
    for k in kinds:
        vs_tb = f"{med[k] / med['tb']:.2f}" if "tb" in med else "-"
        vs_tf = f"{med[k] / med['tf']:.2f}" if "tf" in med else "-"
        c = f"{statistics.median(cpu[k]):.2f}" if cpu[k] else "-"
        print(f"{k:8} {med[k]:>14,.0f} {min(rates[k]):>10,.0f} {max(rates[k]):>10,.0f} {vs_tb:>7} {vs_tf:>7} {c:>13}")
    targets = [("tf_ds", "tb", 0.8), ("tf_ds", "tf", 5.0), ("tf_const", "tb", 0.8), ("tf_floor", "tb", 0.8), ("tf_iter", "tb", 0.8), ("tf_iter", "tf", 5.0),
               ("jax", "tb", 0.8)]
    native = [k for k in TORCH_NATIVE if k in med]
    if native:
        best = max(native, key=med.get)
        med["torch_best_native"] = med[best]
        targets += [("torch_w0", "torch_best_native", 5.0), ("torch_w2", "torch_best_native", 5.0)]
        print(f"best PyTorch-native loader: {best} ({med[best]:,.0f} images/s)")
    grains = [k for k in JAX_GRAIN if k.startswith("grain") and k in med]
    if grains:  # JAX + Grain targets (issue 12, f and g)
        best = max(grains, key=med.get)
        med["grain_best"] = med[best]
        targets += [("jax", "grain_best", 5.0), ("jax8", "tb", 0.8), ("jax8", "grain_best", 5.0)]
        print(f"best Grain loader: {best} ({med[best]:,.0f} images/s)")
    elif "jax8" in med:
        targets += [("jax8", "tb", 0.8)]
    for k, base, want in targets:
        if k in med and base in med:
            got = med[k] / med[base]
            print(f"target {k} >= {want}x {base}: {got:.2f}  {'met' if got >= want else 'NOT met'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rates": rates, "cpu_ms": cpu, "medians": med, "n": a.n}, f, indent=1)


if __name__ == "__main__":
    main()
