#!/usr/bin/env python
"""tb.ray.read_npy vs ray.data.read_numpy on a local 3-node Ray cluster (issue 10).
A benchmark, not a test.

Writes ``--gib`` GiB (default 2, the issue's size) of 64×64×3 uint8 rows in ``--shards``
(default 64) ``.npy`` files under ``--dir``
(deleted afterwards), starts ``ray.cluster_utils.Cluster`` (a head and two worker
nodes, 1 CPU each, as in the issue), reads every file once as a warm-up (page cache),
then, after a warm-up round, times ``--rounds - 1`` full passes per reader of
``ds.iter_batches(batch_size=256, batch_format="numpy")``:

* ``tb.ray.read_npy(files)`` (default ~128 MiB blocks),
* ``ray.data.read_numpy(files)`` (one block per file),
* the ceiling: a datasource that makes the same blocks (same rows per block, an
  ``arrow.fixed_shape_tensor`` column) from memory, no file reading at all,
* ``tb.data.Dataset.from_ray(tb.ray.read_npy(files), "data").batch(256)`` vs the same
  Ray dataset's own ``iter_batches`` into NumPy (the consuming side).

Reported per reader: rows/s and GB/s end to end, the read tasks' total wall time from
``ds.stats()`` (``Remote wall time ... total`` of the read operator), and peak memory:
the summed PSS (proportional set size: shared pages such as the object store and
mapped files counted once across processes) of this driver and every process it
started (GCS, raylets, workers), sampled every 0.1 s, and that peak minus the idle
cluster's PSS just before the pass ("above idle": what the read itself costs).

    python bench/bench_ray.py [--gib 2] [--shards 64] [--dir /tmp] [--rounds 4] [--s3-mib 256]
                              [--s3-shards 16] [--no-local] [--json out.json]

``--s3-mib``: also a run over URLs — the same kind of shards as objects of moto's S3
server (started in this process on 127.0.0.1): ``tb.ray.read_npy("s3://...")`` vs
``ray.data.read_numpy`` through ``pyarrow.fs.S3FileSystem`` at the same endpoint.
Medians over the timed rounds are printed last.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time

import numpy as np

ROW = (64, 64, 3)


def descendants(root: int) -> list:
    children: dict = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_total() -> int:
    total = 0
    for pid in descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


class PeakMemory:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, pss_total())
            self._stop.wait(0.1)

    def __enter__(self) -> "PeakMemory":
        self.base = pss_total()
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def read_task_seconds(stats: str) -> float:
    m = re.search(r"Remote wall time: .*?([\d.]+)(us|ms|s) total", stats)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def time_ray(ds, label: str, rows_expected: int) -> dict:
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        rows = 0
        for b in ds.iter_batches(batch_size=256, batch_format="numpy"):
            rows += len(b["data"])
        dt = time.perf_counter() - t0
    assert rows == rows_expected, (label, rows, rows_expected)
    row_bytes = int(np.prod(ROW))
    return {"reader": label, "rows": rows, "seconds": dt, "rows_per_s": rows / dt,
            "GB_per_s": rows * row_bytes / dt / 1e9, "read_task_s": read_task_seconds(ds.stats()),
            "peak_pss_GiB": mem.peak / 2**30, "base_pss_GiB": mem.base / 2**30}


def time_from_ray(tb, ds, rows_expected: int) -> dict:
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        rows = 0
        for b in tb.data.Dataset.from_ray(ds, "data").batch(256):
            rows += b.shape[0]
        dt = time.perf_counter() - t0
    assert rows == rows_expected
    return {"reader": "tb from_ray(read_npy).batch(256)", "rows": rows, "seconds": dt,
            "rows_per_s": rows / dt, "GB_per_s": rows * int(np.prod(ROW)) / dt / 1e9,
            "read_task_s": float("nan"), "peak_pss_GiB": mem.peak / 2**30, "base_pss_GiB": mem.base / 2**30}


def memory_source(n_rows: int, rows_per_block: int):
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class Memory(Datasource):
        def estimate_inmemory_data_size(self):
            return n_rows * int(np.prod(ROW))

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            typ = pa.fixed_shape_tensor(pa.uint8(), list(ROW))
            schema = pa.schema([pa.field("data", typ)])
            tasks = []
            for s in range(0, n_rows, rows_per_block):
                k = min(rows_per_block, n_rows - s)

                def read(k=k):
                    a = np.zeros((k, *ROW), np.uint8)
                    yield pa.table({"data": pa.FixedShapeTensorArray.from_numpy_ndarray(a)})

                tasks.append(ReadTask(read, BlockMetadata(num_rows=k, size_bytes=k * int(np.prod(ROW)),
                                                          input_files=None, exec_stats=None),
                                      schema=schema, per_task_row_limit=per_task_row_limit))
            return tasks

    return Memory()


def write_shards(args, row_bytes: int):
    per_shard = int(args.gib * 2**30 / args.shards / row_bytes)
    d = tempfile.mkdtemp(prefix="bench_ray_", dir=args.dir)
    rng = np.random.default_rng(0)
    files = []
    for i in range(args.shards):
        p = os.path.join(d, f"shard-{i:03d}.npy")
        np.save(p, rng.integers(0, 256, (per_shard, *ROW), dtype=np.uint8))
        files.append(p)
    for p in files:  # into the page cache
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    return d, files, per_shard * args.shards, per_shard


def local_rounds(args, tb, ray, files, total, per_shard) -> list:
    row_bytes = int(np.prod(ROW))
    rows_per_block = max(1, tb.ray.DEFAULT_BLOCK_BYTES // row_bytes)
    results = []
    for rnd in range(args.rounds):
        # round 0 is a warm-up of every reader (worker processes, imports, page cache)
        out = [time_ray(tb.ray.read_npy(files), "tb.ray.read_npy", total),
               time_ray(ray.data.read_numpy(files), "ray.data.read_numpy", total),
               time_ray(ray.data.read_datasource(memory_source(total, min(rows_per_block, per_shard))),
                        "ceiling: same blocks from memory", total),
               time_from_ray(tb, tb.ray.read_npy(files), total)]
        for r in out:
            r["round"] = rnd
            show(r)
        if rnd > 0 or args.rounds == 1:
            results.extend(out)
    return results


def show(r: dict) -> None:
    """One result line, as soon as it is measured (a long run can be read while it runs)."""
    print(f"{r['round']:5d} {r['reader']:45s} {r['rows_per_s']:10,.0f} {r['GB_per_s']:7.3f} "
          f"{r['read_task_s']:12.2f} {r['peak_pss_GiB']:12.2f} "
          f"{r['peak_pss_GiB'] - r['base_pss_GiB']:10.3f}", flush=True)


def s3_rounds(args, tb, ray) -> list:
    """The same kind of shards as objects of moto's S3 server (in this process, on
    127.0.0.1): tb.ray.read_npy over s3:// URLs vs ray.data.read_numpy through
    pyarrow's S3FileSystem at the same endpoint."""
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    import boto3
    import io
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="bench")
        row_bytes = int(np.prod(ROW))
        per_shard = int(args.s3_mib * 2**20 / args.s3_shards / row_bytes)
        rng = np.random.default_rng(1)
        keys = []
        for i in range(args.s3_shards):
            buf = io.BytesIO()
            np.save(buf, rng.integers(0, 256, (per_shard, *ROW), dtype=np.uint8))
            key = f"shards/shard-{i:03d}.npy"
            client.put_object(Bucket="bench", Key=key, Body=buf.getvalue())
            keys.append(key)
        total = per_shard * args.s3_shards
        so = {"aws_endpoint": endpoint, "aws_region": "us-east-1", "aws_access_key_id": "testing",
              "aws_secret_access_key": "testing", "aws_allow_http": "true"}
        fs = pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                               endpoint_override=endpoint, scheme="http")
        results = []
        for rnd in range(args.rounds):
            out = [time_ray(tb.ray.read_npy("s3://bench/shards/*.npy", storage_options=so),
                            "s3: tb.ray.read_npy(s3:// glob)", total),
                   time_ray(ray.data.read_numpy([f"bench/{k}" for k in keys], filesystem=fs),
                            "s3: ray.data.read_numpy(pyarrow S3FileSystem)", total)]
            for r in out:
                r["round"] = rnd
                show(r)
            if rnd > 0 or args.rounds == 1:
                results.extend(out)
        return results, total
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--rounds", type=int, default=4, help="the first is a warm-up")
    ap.add_argument("--s3-mib", type=float, default=0.0,
                    help="also read this many MiB from a moto S3 server through URLs (0: no)")
    ap.add_argument("--s3-shards", type=int, default=16)
    ap.add_argument("--no-local", action="store_true", help="only the S3 run")
    ap.add_argument("--json")
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    import tensorbridge as tb

    row_bytes = int(np.prod(ROW))
    results: list = []
    d = None
    try:
        if not args.no_local:
            d, files, total, per_shard = write_shards(args, row_bytes)
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        for _ in range(2):
            c.add_node(num_cpus=1)
        c.wait_for_nodes()
        ray.init(address=c.address, logging_level=logging.WARNING, log_to_driver=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        if not args.no_local:
            results += local_rounds(args, tb, ray, files, total, per_shard)
            print(f"local: {total} rows of {ROW} uint8 in {args.shards} shards "
                  f"({total * row_bytes / 2**30:.2f} GiB), 3-node local cluster, 1 CPU per node")
        if args.s3_mib > 0:
            s3_results, s3_total = s3_rounds(args, tb, ray)
            results += s3_results
            print(f"s3: {s3_total} rows in {args.s3_shards} objects "
                  f"({s3_total * row_bytes / 2**20:.0f} MiB) on moto's server")
        ray.shutdown()
        c.shutdown()
    finally:
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)

    print(f"{'round':5s} {'reader':45s} {'rows/s':>10s} {'GB/s':>7s} {'read tasks s':>12s} {'peak PSS GiB':>12s} {'above idle':>10s}")
    for r in results:
        print(f"{r['round']:5d} {r['reader']:45s} {r['rows_per_s']:10,.0f} {r['GB_per_s']:7.3f} {r['read_task_s']:12.2f} "
              f"{r['peak_pss_GiB']:12.2f} {r['peak_pss_GiB'] - r['base_pss_GiB']:10.3f}")
    print("medians over the timed rounds:")
    for reader in dict.fromkeys(r["reader"] for r in results):
        rs = [r for r in results if r["reader"] == reader]
        med = {k: float(np.median([r[k] for r in rs]))
               for k in ("rows_per_s", "GB_per_s", "read_task_s", "peak_pss_GiB")}
        above = float(np.median([r["peak_pss_GiB"] - r["base_pss_GiB"] for r in rs]))
        print(f"      {reader:45s} {med['rows_per_s']:10,.0f} {med['GB_per_s']:7.3f} {med['read_task_s']:12.2f} "
              f"{med['peak_pss_GiB']:12.2f} {above:10.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
