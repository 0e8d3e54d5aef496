"""tb.load of this build against an older one, in one run (same server, interleaved):
``python bench/object_storage_ab.py --old /path/to/site-packages-holding-old-tensorbridge
[--server moto|s3s] [--repeat 3] [--objects 64] [--contenders tb.load,tb.from_files]``. The old build is put first on
PYTHONPATH of its contenders' subprocesses; each contender is bench/object_storage.py's
child (own process, peak RSS = VmHWM). Prints MB/s and peak RSS, medians and rounds."""
import os, sys, statistics, tempfile, argparse
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE); sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
import numpy as np
import object_storage as ob
ap = argparse.ArgumentParser(); ap.add_argument("--server", default="moto"); ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--objects", type=int, default=64)
ap.add_argument("--contenders", default="tb.load,tb.load x8",
                help="comma-separated tensorbridge contenders run with both builds (e.g. tb.from_files)")
ap.add_argument("--old", required=True, help="a directory holding the old tensorbridge package")
a = ap.parse_args(); a.s3s_bin = os.environ.get("TB_S3S_FS", "/work/s3s/bin/s3s-fs")
server = ob.start_server(a)
ep = f"http://127.0.0.1:{server.port}"
c = ob.boto_client(ep); c.create_bucket(Bucket="bench")
keys = []
with tempfile.TemporaryDirectory() as d:
    for i in range(a.objects):
        p = os.path.join(d, "x.npy"); np.save(p, np.full((1024, 4096), i, np.float32))
        k = f"bench/{i:04d}.npy"; c.upload_file(p, "bench", k); keys.append(k)
total = a.objects * 16 << 20
runs = [("get-limit", None), ("boto3", None)]
for cn in a.contenders.split(","):
    runs += [(cn, a.old), (cn, None)]
res = {r: [] for r in runs}
for rep in range(a.repeat):
    for name, pp in runs:
        if pp: os.environ["PYTHONPATH"] = pp
        else: os.environ.pop("PYTHONPATH", None)
        r = ob.run_child(["--child", name, ep, "bench", ",".join(keys)])
        res[(name, pp)].append(r)
os.environ.pop("PYTHONPATH", None)
os.system("uptime")
for (name, pp), rs in res.items():
    s = statistics.median(r["seconds"] for r in rs); rss = statistics.median(r["peak_rss_mib"] for r in rs)
    print(f"{name:12s} {'old' if pp else 'new':4s} {total/s/1e6:8.0f} MB/s  peak RSS {rss:6.0f} MiB  rounds {[round(total/r['seconds']/1e6) for r in rs]}")
server.stop()
