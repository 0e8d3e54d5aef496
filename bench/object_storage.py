"""Object storage (issue 9): tensorbridge vs boto3 and s3fs against one local S3 server.

    python bench/object_storage.py [--objects 64] [--mib 16] [--repeat 3] [--headers 1000]
                                   [--server moto|mem|s3s] [--s3s-bin PATH]

Starts a local S3 server on 127.0.0.1 — moto's (a Python server, in this process; the
default); with ``--server mem``, bench/memory_s3.py (objects in memory, GET bodies
written straight from them: a server that costs little per request and per byte,
its own process); or, with ``--server s3s``, s3s-fs (a Rust S3 server over a temporary
directory, in its own process; install it with
``cargo install s3s-fs --version 0.14.1 --locked --features binary --root /work/s3s``
and give its binary with ``--s3s-bin`` or ``TB_S3S_FS``; default
``/work/s3s/bin/s3s-fs``) — uploads
``--objects`` × ``--mib`` MiB ``.npy`` objects, then, in the same run, reads them all
with each contender, each in its own subprocess (so its peak RSS, ``ru_maxrss``, is its
own), ``--repeat`` times, and prints medians and ratios:

- ``tb.load`` per object (sequential; concurrent ranges inside each object), and
  ``tb.load`` from 8 threads;
- ``Dataset.from_files("s3://…/*.npy")`` iterated (if this build has it);
- a boto3 loop: ``np.load(io.BytesIO(get_object(...)["Body"].read()))``;
- s3fs: ``np.load(fs.open(path))``;
- the server's own limit: a plain concurrent GET loop (boto3, 8 threads), no parsing
  (``--limit-threads 1,2,4`` adds it with fewer threads; ``--limit-ranges 4,8,16``
  adds ranged GETs of that many MiB, 4 threads: moto's cost per ranged GET grows with
  the object's size); ``--raw-threads 4,8`` adds whole-object GETs through
  ``http.client`` into one reused buffer (no SDK, unsigned: for ``--server mem``),
  what a Python client can pull with the least work of its own.

For each contender: seconds, MB/s, peak RSS, and CPU seconds of the contender's process
and of the server (moto runs in this process: its CPU while the child ran; an
own-process server's from /proc). For
``from_files`` also the time of making the dataset (listing + one header read per
object) apart from iterating it: moto reads an object's whole value for any ranged
GET, so 64 header reads of 16 MiB objects cost it as much as 64 × 256 KiB reads.

Then listing + headers of ``--headers`` small objects, through the counting proxy of
the tests (tests/fault_proxy.py): time and requests, for tensorbridge
(``Dataset.from_files`` ``len()``, if present), boto3 (list + a 128-byte ranged GET per
object, 16 threads) and s3fs (glob + a 128-byte read per object).

moto is a Python (werkzeug) server: a few ms of fixed cost per request and a ceiling
of a few hundred MB/s at best on one core; every figure here is bounded by it, which
is why the plain-GET line is printed as the reference. s3s-fs answers from files in
a directory (the page cache) with far less cost per request: the client's own costs
show.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

REGION = "us-east-1"
KEY_ID = SECRET = "testing"


def storage_options(endpoint: str) -> dict:
    return {
        "aws_endpoint": endpoint,
        "aws_region": REGION,
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "aws_allow_http": "true",
    }


def boto_client(endpoint: str, pool: int = 16):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool),
    )


def s3fs_fs(endpoint: str):
    import s3fs

    return s3fs.S3FileSystem(
        key=KEY_ID, secret=SECRET, client_kwargs={"endpoint_url": endpoint, "region_name": REGION},
        use_listings_cache=False,
    )


# --- contenders (each runs in a child process) --------------------------------------------


def rss_mib() -> float:
    """Peak RSS of this process so far, MiB. VmHWM, not ``ru_maxrss``: on Linux
    ``ru_maxrss`` survives ``exec`` and so counts the forking parent (this script, which
    holds the server's objects) for every child; VmHWM belongs to the new image."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(name: str, endpoint: str, bucket: str, keys: list[str]) -> dict:
    import numpy as np

    checks = []

    def check(a):  # touch the data: the first and last element
        flat = np.asarray(a).reshape(-1)
        checks.append(float(flat[0]) + float(flat[-1]))

    if name.startswith("tb"):
        import tensorbridge as tb

        so = storage_options(endpoint)
    if name == "s3fs":
        fs = s3fs_fs(endpoint)
    if name == "boto3" or name.startswith("get-"):
        client = boto_client(endpoint)
    base = rss_mib()
    cpu0 = os.times().user + os.times().system
    t0 = time.perf_counter()
    nbytes = 0
    setup = 0.0
    if name == "tb.load":
        for k in keys:
            t = tb.load(f"s3://{bucket}/{k}", storage_options=so)
            check(t.numpy())
            nbytes += t.nbytes
            del t
    elif name == "tb.load x8":
        def one(k):
            t = tb.load(f"s3://{bucket}/{k}", storage_options=so)
            check(t.numpy())
            return t.nbytes
        with ThreadPoolExecutor(8) as ex:
            nbytes = sum(ex.map(one, keys))
    elif name == "tb.from_files":
        ds = tb.data.Dataset.from_files(f"s3://{bucket}/bench/*.npy", storage_options=so).batch(64)
        setup = time.perf_counter() - t0  # listing + every object's header
        for batch in ds:
            b = batch[0] if isinstance(batch, (tuple, list)) else batch
            if isinstance(b, dict):
                b = next(iter(b.values()))
            check(b.numpy())
            nbytes += b.nbytes
    elif name == "boto3":
        for k in keys:
            body = client.get_object(Bucket=bucket, Key=k)["Body"].read()
            a = np.load(io.BytesIO(body))
            check(a)
            nbytes += a.nbytes
            del body, a
    elif name == "s3fs":
        for k in keys:
            with fs.open(f"{bucket}/{k}", "rb") as f:
                a = np.load(f)
            check(a)
            nbytes += a.nbytes
            del a
    elif name.startswith("get-ranges"):  # "get-ranges 8M x4": ranged GETs of 8 MiB, 4 threads
        piece = int(name.split()[1][:-1]) << 20
        threads = int(name.split(" x")[1])
        size = client.head_object(Bucket=bucket, Key=keys[0])["ContentLength"]
        jobs = [(k, a, min(a + piece, size) - 1) for k in keys for a in range(0, size, piece)]

        def get_range(job):
            k, a, b = job
            return len(client.get_object(Bucket=bucket, Key=k, Range=f"bytes={a}-{b}")["Body"].read())
        with ThreadPoolExecutor(threads) as ex:
            nbytes = sum(ex.map(get_range, jobs))
    elif name.startswith("get-raw"):  # "get-raw x8": whole-object GETs, http.client, no SDK
        import http.client
        import threading
        from urllib.parse import urlsplit

        threads = int(name.split(" x")[1])
        host = urlsplit(endpoint)
        local = threading.local()

        def get_raw(k):
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection(host.hostname, host.port)
                local.buf = bytearray(1 << 20)
            local.conn.request("GET", f"/{bucket}/{k}")
            resp = local.conn.getresponse()
            assert resp.status == 200, resp.status
            n = 0
            view = memoryview(local.buf)
            while (got := resp.readinto(view)) > 0:  # into one reused buffer
                n += got
            return n
        with ThreadPoolExecutor(threads) as ex:
            nbytes = sum(ex.map(get_raw, keys))
    elif name.startswith("get-limit"):
        threads = int(name.split(" x")[1]) if " x" in name else 8

        def get(k):
            return len(client.get_object(Bucket=bucket, Key=k)["Body"].read())
        with ThreadPoolExecutor(threads) as ex:
            nbytes = sum(ex.map(get, keys))
    else:
        raise SystemExit(f"unknown contender {name}")
    seconds = time.perf_counter() - t0
    cpu = os.times()
    return {"seconds": seconds, "bytes": nbytes, "peak_rss_mib": rss_mib(), "base_rss_mib": base,
            "cpu_s": cpu.user + cpu.system - cpu0, "setup_s": setup}


def headers_child(name: str, endpoint: str, bucket: str, prefix: str) -> dict:
    import numpy as np

    t0 = time.perf_counter()
    if name == "tb.from_files len":
        import tensorbridge as tb

        n = len(tb.data.Dataset.from_files(f"s3://{bucket}/{prefix}*.npy", storage_options=storage_options(endpoint)))
    elif name == "boto3":
        client = boto_client(endpoint)
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for o in page.get("Contents", [])]

        def header(k):
            raw = client.get_object(Bucket=bucket, Key=k, Range="bytes=0-127")["Body"].read()
            f = io.BytesIO(raw)
            np.lib.format.read_magic(f)
            shape, _, _ = np.lib.format.read_array_header_1_0(f)
            return shape[0]
        with ThreadPoolExecutor(16) as ex:
            n = sum(ex.map(header, sorted(keys)))
    elif name == "s3fs":
        fs = s3fs_fs(endpoint)
        paths = sorted(fs.glob(f"{bucket}/{prefix}*.npy"))
        n = 0
        for p in paths:
            with fs.open(p, "rb", block_size=128) as f:
                np.lib.format.read_magic(f)
                shape, _, _ = np.lib.format.read_array_header_1_0(f)
                n += shape[0]
    else:
        raise SystemExit(f"unknown contender {name}")
    return {"seconds": time.perf_counter() - t0, "rows": n}


# --- the parent: server, data, runs, report ---------------------------------------------


def run_child(args: list[str]) -> dict | None:
    r = subprocess.run([sys.executable, os.path.abspath(__file__), *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"   ({args[1]} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode})")
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def has_feature(endpoint: str, bucket: str, key: str) -> dict:
    """Which tensorbridge entry points take URLs in this build."""
    import tensorbridge as tb

    so = storage_options(endpoint)
    out = {"load": False, "from_files": False}
    try:
        tb.load(f"s3://{bucket}/{key}", storage_options=so)
        out["load"] = True
    except Exception as e:  # noqa: BLE001 - reported
        print(f"   tb.load(url) not available: {type(e).__name__}: {e}")
    try:
        tb.data.Dataset.from_files(f"s3://{bucket}/bench/*.npy", storage_options=so)
        out["from_files"] = True
    except Exception as e:  # noqa: BLE001 - reported
        print(f"   Dataset.from_files(url) not available: {type(e).__name__}: {e}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=64)
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--headers", type=int, default=1000)
    ap.add_argument("--server", choices=["moto", "s3s", "mem"], default="moto")
    ap.add_argument("--only", default="", help="comma-separated contenders (get-limit always runs)")
    ap.add_argument("--limit-threads", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                    help="also the plain GET loop with these thread counts, e.g. 1,2,4")
    ap.add_argument("--limit-ranges", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                    help="also plain GETs of ranges of these MiB (4 threads), e.g. 4,8,16")
    ap.add_argument("--raw-threads", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                    help="also plain GET loops with http.client (unsigned, no SDK) over this many threads, e.g. 4,8")
    ap.add_argument("--no-extras", action="store_true", help="skip the per-object and listing parts")
    ap.add_argument("--s3s-bin", default=os.environ.get("TB_S3S_FS", "/work/s3s/bin/s3s-fs"))
    ap.add_argument("--child", nargs=4, metavar=("NAME", "ENDPOINT", "BUCKET", "KEYS"))
    ap.add_argument("--headers-child", nargs=4, metavar=("NAME", "ENDPOINT", "BUCKET", "PREFIX"))
    args = ap.parse_args()
    if args.child:
        name, endpoint, bucket, keys = args.child
        print(json.dumps(child(name, endpoint, bucket, keys.split(","))))
        return
    if args.headers_child:
        print(json.dumps(headers_child(*args.headers_child)))
        return

    import numpy as np

    from fault_proxy import FaultProxy

    server = start_server(args)
    endpoint = f"http://127.0.0.1:{server.port}"
    print(f"{args.server} server at {endpoint}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    client = boto_client(endpoint)
    bucket = "bench"
    client.create_bucket(Bucket=bucket)

    # 64 × 16 MiB float32 objects, (rows, 4096) each.
    rows = (args.mib << 20) // (4096 * 4)
    keys = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.objects):
            a = np.full((rows, 4096), i, dtype=np.float32)
            p = os.path.join(d, "x.npy")
            np.save(p, a)
            key = f"bench/{i:04d}.npy"
            with open(p, "rb") as f:  # one PUT (upload_file would go multipart)
                client.put_object(Bucket=bucket, Key=key, Body=f)
            keys.append(key)
    total = args.objects * rows * 4096 * 4
    print(f"{args.objects} objects × {args.mib} MiB = {total / 2**20:.0f} MiB uploaded")

    feats = has_feature(endpoint, bucket, keys[0])
    contenders = ["get-limit", "boto3", "s3fs"]
    if feats["load"]:
        contenders += ["tb.load", "tb.load x8"]
    if feats["from_files"]:
        contenders += ["tb.from_files"]
    if args.only:
        contenders = [c for c in contenders if c in args.only.split(",") or c == "get-limit"]
    contenders += [f"get-limit x{n}" for n in args.limit_threads]
    contenders += [f"get-raw x{n}" for n in args.raw_threads]
    contenders += [f"get-ranges {m}M x4" for m in args.limit_ranges]
    results: dict[str, list[dict]] = {c: [] for c in contenders}
    for rep in range(args.repeat):
        for c in contenders:  # interleaved, so drift hits every contender alike
            before = server_cpu(server)
            r = run_child(["--child", c, endpoint, bucket, ",".join(keys)])
            after = server_cpu(server)
            if r is not None:
                r["server_cpu_s"] = after - before
                assert r["bytes"] >= total, (c, r)  # the GET loop counts the headers too
                results[c].append(r)

    print(f"\nReading {args.objects} × {args.mib} MiB .npy objects (median of {args.repeat}; each in its own process)")
    print(f"{'contender':22s} {'seconds':>8s} {'MB/s':>8s} {'peak RSS MiB':>13s} {'(above start)':>14s} "
          f"{'vs GET limit':>13s} {'vs boto3':>9s} {'CPU s client':>13s} {'server':>7s}")
    med = {}
    for c, rs in results.items():
        if not rs:
            continue
        s = statistics.median(r["seconds"] for r in rs)
        peak = statistics.median(r["peak_rss_mib"] for r in rs)
        above = statistics.median(r["peak_rss_mib"] - r["base_rss_mib"] for r in rs)
        med[c] = s
        lim = med.get("get-limit")
        boto = med.get("boto3")
        print(f"{c:22s} {s:8.2f} {total / s / 1e6:8.0f} {peak:13.0f} {above:14.0f} "
              f"{(lim / s if lim else float('nan')):12.0%} {(boto / s if boto else float('nan')):8.2f}x "
              f"{statistics.median(r['cpu_s'] for r in rs):13.2f} {statistics.median(r['server_cpu_s'] for r in rs):7.2f}")
    ff = results.get("tb.from_files")
    if ff:
        setup = statistics.median(r["setup_s"] for r in ff)
        it = statistics.median(r["seconds"] - r["setup_s"] for r in ff)
        lim, boto = med.get("get-limit"), med.get("boto3")
        print(f"  tb.from_files: making the dataset (listing + {args.objects} header reads) {setup:.2f} s; "
              f"iterating {it:.2f} s = {total / it / 1e6:.0f} MB/s"
              + (f", {lim / it:.0%} of the GET limit" if lim else "")
              + (f", {boto / it:.2f}x the boto3 loop" if boto else ""))
    if args.no_extras:
        server.stop()
        return

    # Requests and bytes for one object, through the counting proxy.
    proxy = FaultProxy(("127.0.0.1", server.port))
    print(f"\nOne {args.mib} MiB object through the counting proxy")
    print(f"{'contender':22s} {'requests':>9s} {'MiB down':>9s}")
    one = [c for c in contenders if c in ("boto3", "s3fs", "tb.load")]
    for c in one:
        proxy.reset_counts()
        r = run_child(["--child", c, proxy.endpoint, bucket, keys[0]])
        if r is not None:
            print(f"{c:22s} {proxy.request_count:9d} {proxy.bytes_down / 2**20:9.2f}")

    # Listing + headers of many small objects, through the counting proxy.
    prefix = "many/"
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: client.put_object(Bucket=bucket, Key=f"{prefix}{i:05d}.npy",
                                                Body=npy_bytes(np.arange(i % 7 + 1, dtype=np.int64))),
                    range(args.headers)))
    expected_rows = sum(i % 7 + 1 for i in range(args.headers))
    heads = ["boto3", "s3fs"] + (["tb.from_files len"] if feats["from_files"] else [])
    print(f"\nListing + headers of {args.headers} small .npy objects (median of {args.repeat}; requests through the proxy)")
    print(f"{'contender':22s} {'seconds':>8s} {'requests':>9s} {'KiB down':>9s}")
    for c in heads:
        times, reqs, down = [], [], []
        for _ in range(args.repeat):
            proxy.reset_counts()
            r = run_child(["--headers-child", c, proxy.endpoint, bucket, prefix])
            if r is None:
                break
            assert r["rows"] == expected_rows, (c, r)
            times.append(r["seconds"])
            reqs.append(proxy.request_count)
            down.append(proxy.bytes_down)
        if times:
            print(f"{c:22s} {statistics.median(times):8.2f} {int(statistics.median(reqs)):9d} "
                  f"{statistics.median(down) / 1024:9.0f}")
    proxy.stop()
    server.stop()


class Server:
    """A local S3 server: its port and how to stop it."""

    def __init__(self, port: int, stop, pid: int | None = None) -> None:
        self.port = port
        self.stop = stop
        self.pid = pid  # a server in its own process; None: in this one (moto)


def server_cpu(server: Server) -> float:
    """CPU seconds the server has used: moto's are this process's (it runs here),
    an own-process server's are read from /proc."""
    if server.pid is None:
        t = os.times()
        return t.user + t.system
    with open(f"/proc/{server.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(args) -> Server:
    if args.server == "moto":
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        return Server(moto._server.server_port, moto.stop)
    import shutil
    import socket

    if args.server == "mem":  # bench/memory_s3.py, its own process
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "memory_s3.py"), "--port", "0"],
                                stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise SystemExit(f"memory_s3.py did not start (exit code {proc.poll()})")

        def stop_mem() -> None:
            proc.terminate()
            proc.wait(10)

        return Server(int(line.split()[1]), stop_mem, proc.pid)
    if not os.access(args.s3s_bin, os.X_OK):
        raise SystemExit(f"--server s3s: no s3s-fs binary at {args.s3s_bin} (see the docstring)")
    root = tempfile.mkdtemp(prefix="tb-s3s-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [args.s3s_bin, "--host", "127.0.0.1", "--port", str(port),
         "--access-key", KEY_ID, "--secret-key", SECRET, root],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"s3s-fs did not start (exit code {proc.poll()})")
            time.sleep(0.1)

    def stop() -> None:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)

    return Server(port, stop, proc.pid)


def npy_bytes(a) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


if __name__ == "__main__":
    main()
