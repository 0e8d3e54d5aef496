"""Smoke test of the object-store location layer against a real S3-compatible server
(moto's, on 127.0.0.1 with a free port): tb.save / tb.load of one array via s3://.
The full matrix (every reader and writer, faults, bytes on the wire) is in the
object-storage test files; this one checks the path end to end."""

from __future__ import annotations

import io

import boto3
import moto.server as moto_server
import numpy as np
import pytest

import tensorbridge as tb


@pytest.fixture(scope="module")
def s3():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        port = server._server.server_port
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket="smoke")
        opts = {
            "aws_endpoint": endpoint,
            "aws_region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        yield client, opts
    finally:
        server.stop()


def test_save_load_round_trip_via_s3(s3):
    client, opts = s3
    a = np.arange(24, dtype=np.float32).reshape(4, 6) * 0.5
    tb.save("s3://smoke/dir/a.npy", a, storage_options=opts)
    # The object is what np.save writes, byte for byte.
    raw = client.get_object(Bucket="smoke", Key="dir/a.npy")["Body"].read()
    buf = io.BytesIO()
    np.save(buf, a)
    assert raw == buf.getvalue()
    t = tb.load("s3://smoke/dir/a.npy", storage_options=opts)
    np.testing.assert_array_equal(t.numpy(), a)
    assert t.numpy().dtype == a.dtype


def test_missing_object_and_mmap(s3):
    _, opts = s3
    with pytest.raises(FileNotFoundError, match="s3://smoke/nope.npy"):
        tb.load("s3://smoke/nope.npy", storage_options=opts)
    tb.save("s3://smoke/b.npy", np.zeros(3, np.int16), storage_options=opts)
    with pytest.raises(ValueError, match="local file"):
        tb.load("s3://smoke/b.npy", mmap=True, storage_options=opts)
    with pytest.raises(ValueError, match="s3://"):
        tb.load("ftp://host/x.npy")


def test_load_from_file_objects(tmp_path):
    a = np.arange(12, dtype=">i4").reshape(3, 4)
    buf = io.BytesIO()
    np.save(buf, a)
    buf.seek(0)
    t = tb.load(buf)
    np.testing.assert_array_equal(t.numpy(), a)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=a, y=np.ones(2, np.float16))
    buf.seek(0)
    z = tb.load(buf)
    assert sorted(z.keys()) == ["x", "y"]
    np.testing.assert_array_equal(z["x"].numpy(), a)
    p = tmp_path / "f.npy"
    np.save(p, a)
    with open(p, "rb") as f:
        np.testing.assert_array_equal(tb.load(f).numpy(), np.load(p))
    with open(p, "rb") as f, pytest.raises(ValueError, match="mmap"):
        tb.load(f, mmap=True)


def _child_load(url, opts, q):
    q.put(tb.load(url, storage_options=opts).numpy().tolist())


def test_forked_child_reads_after_the_parent(s3):
    # The parent's I/O runtime threads do not exist in a forked child: the child
    # must get its own rather than hang.
    import multiprocessing as mp

    _, opts = s3
    tb.save("s3://smoke/fork.npy", np.arange(4, dtype=np.int32), storage_options=opts)
    assert tb.load("s3://smoke/fork.npy", storage_options=opts).numpy().tolist() == [0, 1, 2, 3]
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_load, args=("s3://smoke/fork.npy", opts, q))
    p.start()
    try:
        assert q.get(timeout=60) == [0, 1, 2, 3]
    finally:
        p.join(timeout=60)
    assert p.exitcode == 0


def test_ctrl_c_cancels_a_blocked_read():
    # A server that accepts connections and never answers: the read blocks until
    # Ctrl-C (simulated on the main thread), which must raise KeyboardInterrupt
    # instead of waiting for the request timeout.
    import _thread
    import signal
    import socket
    import threading
    import time

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    opts = {
        "aws_endpoint": f"http://127.0.0.1:{port}",
        "aws_region": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "timeout": "120s",
        "max_retries": "0",
    }
    # interrupt_main() does nothing while SIGINT is ignored (as in a shell's
    # background job, whose children inherit it): use Python's handler here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            tb.load("s3://stalled/x.npy", storage_options=opts)
        assert time.monotonic() - t0 < 60, "Ctrl-C waited for the request timeout"
    finally:
        timer.cancel()
        srv.close()
        signal.signal(signal.SIGINT, previous)


def test_from_files_over_an_s3_glob(s3):
    _, opts = s3
    for i in range(3):
        tb.save(f"s3://smoke/shards/{i}.npy", np.full((i + 1, 2), i, np.int32), storage_options=opts)
    tb.save("s3://smoke/shards/other.txt.npy.bak", np.zeros(1), storage_options=opts)
    ds = tb.data.Dataset.from_files("s3://smoke/shards/*.npy", storage_options=opts)
    assert len(ds) == 6
    rows = [r.numpy().tolist() for r in ds]
    assert rows == [[0, 0], [1, 1], [1, 1], [2, 2], [2, 2], [2, 2]]
    with pytest.raises(FileNotFoundError, match="s3://smoke/none/"):
        tb.data.Dataset.from_files("s3://smoke/none/*.npy", storage_options=opts)
