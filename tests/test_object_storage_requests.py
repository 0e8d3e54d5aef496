"""Requests per object, counted by the proxy (tests/fault_proxy.py) between tensorbridge
and the moto server: tb.load of a 16 MiB .npy object is two ranged GETs and no HEAD
(the first GET's response tells the object's size and ETag; the rest is asked for as
soon as that response's headers arrive); small objects, objects shorter than the first
read, 0-byte objects and .npz archives open without a HEAD too."""

import io

import numpy as np
import pytest

import tensorbridge as tb
from conftest import bits


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def put(client, bucket, key, data):
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def methods(proxy):
    return [r.method for r in proxy.get_requests()]


def test_load_of_a_16_mib_npy_is_two_gets_and_no_head(s3_server, s3_bucket, s3_proxy):
    a = np.random.default_rng(1).standard_normal((1024, 4096)).astype(np.float32)  # 16 MiB
    url = put(s3_server.client, s3_bucket, "big.npy", npy_bytes(a))
    s3_proxy.reset_counts()
    tb._core.location_get_stats(reset=True)
    t = tb.load(url, storage_options=s3_proxy.storage_options)
    assert bits(t.numpy()) == bits(a)
    assert methods(s3_proxy) == ["GET", "GET"], s3_proxy.get_requests()
    ranges = sorted(r.headers.get("range") for r in s3_proxy.get_requests())
    assert all(ranges), ranges  # both ranged
    gets, asked, largest = tb._core.location_get_stats()
    assert gets == 2
    # Every byte asked for once (the first read asks for one 8 MiB piece).
    assert asked == len(npy_bytes(a)) and largest <= (8 << 20) + 4096


@pytest.mark.parametrize("n", [0, 1, 1000, (2 << 20) + 5, (3 << 20) + 1])
def test_load_of_objects_up_to_one_piece_is_one_get(s3_server, s3_bucket, s3_proxy, n):
    """An object no longer than the first read (8 MiB): one GET, even though it asks
    for more bytes than the object has (the server answers with what there is)."""
    a = np.arange(n, dtype=np.uint16)
    url = put(s3_server.client, s3_bucket, f"s{n}.npy", npy_bytes(a))
    s3_proxy.reset_counts()
    t = tb.load(url, storage_options=s3_proxy.storage_options)
    assert bits(t.numpy()) == bits(a)
    assert methods(s3_proxy) == ["GET"], s3_proxy.get_requests()


def test_load_of_a_0_byte_object_is_a_clean_error(s3_server, s3_bucket, s3_proxy):
    """A range of an empty object is refused (HTTP 416): one HEAD then tells it is
    empty, and the load fails as a format error naming the URL (not a retry loop)."""
    url = put(s3_server.client, s3_bucket, "empty.npy", b"")
    s3_proxy.reset_counts()
    with pytest.raises(ValueError, match="empty.npy"):
        tb.load(url, storage_options=s3_proxy.storage_options)
    assert methods(s3_proxy) == ["GET", "HEAD"], s3_proxy.get_requests()


def test_load_of_an_npz_makes_no_head(s3_server, s3_bucket, s3_proxy):
    arrays = {"a": np.arange(1000), "b": np.ones((3, 4), dtype=np.float32)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    url = put(s3_server.client, s3_bucket, "z.npz", buf.getvalue())
    s3_proxy.reset_counts()
    z = tb.load(url, storage_options=s3_proxy.storage_options)
    assert "HEAD" not in methods(s3_proxy)
    for k, v in arrays.items():
        assert bits(z[k].numpy()) == bits(v)
    assert "HEAD" not in methods(s3_proxy)


def test_an_npz_named_npy_is_still_an_archive(s3_server, s3_bucket, s3_proxy):
    """The whole-object read starts by name (.npy); the first bytes still decide."""
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(10))
    url = put(s3_server.client, s3_bucket, "really-an-npz.npy", buf.getvalue())
    z = tb.load(url, storage_options=s3_proxy.storage_options)
    np.testing.assert_array_equal(z["x"].numpy(), np.arange(10))


def test_load_with_cast_and_byte_swap_over_two_pieces(s3_server, s3_bucket, s3_proxy):
    """The slow path (byte swap, cast) fills its buffer from the same two GETs."""
    a = np.arange(3 << 20, dtype=">i4")  # 12 MiB, big-endian
    url = put(s3_server.client, s3_bucket, "swap.npy", npy_bytes(a))
    s3_proxy.reset_counts()
    t = tb.load(url, storage_options=s3_proxy.storage_options)
    assert bits(t.numpy()) == bits(a.astype("<i4"))
    t = tb.load(url, dtype="float64", storage_options=s3_proxy.storage_options)
    np.testing.assert_array_equal(t.numpy(), a.astype(np.float64))
    assert "HEAD" not in methods(s3_proxy)


def test_load_releases_the_gil_for_the_whole_read(s3_server, s3_bucket, s3_proxy):
    """While tb.load reads an object through a slowed proxy (each request held back
    0.4 s: the read lasts ≥ 0.8 s), a Python thread of the same process keeps
    counting: the GIL is released for the whole read (requests, header, copies). The
    load runs in a child process, so a held GIL cannot stall the server or proxy of
    this one (it would show as a count that does not move)."""
    import subprocess
    import sys
    import time

    a = np.random.default_rng(5).standard_normal(3 << 20).astype(np.float32)  # 12 MiB
    url = put(s3_server.client, s3_bucket, "gil.npy", npy_bytes(a))
    s3_proxy.on_request = lambda method, path, headers: time.sleep(0.4)
    script = f"""
import threading, numpy as np, tensorbridge as tb
count, stop = [0], threading.Event()
def counter():
    while not stop.is_set():
        count[0] += 1
t = threading.Thread(target=counter)
t.start()
before = count[0]
out = tb.load({url!r}, storage_options={s3_proxy.storage_options!r})
during = count[0] - before
stop.set()
t.join()
print(during, float(np.asarray(out.numpy(), dtype=np.float64).sum()))
"""
    try:
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    finally:
        s3_proxy.on_request = None
    assert r.returncode == 0, r.stderr
    during, total = r.stdout.split()
    assert float(total) == float(a.astype(np.float64).sum())
    assert methods(s3_proxy) == ["GET", "GET"]
    # A held GIL would leave the counter where it was for the whole read.
    assert int(during) > 1000, r.stdout


def test_a_response_cut_mid_body_is_rewritten_whole(s3_server, s3_bucket, s3_proxy):
    """Bodies are written into the tensor as they arrive: when one is cut after part
    of it was written, the retry reads that whole range again and rewrites it (the
    tensor equals np.load bit for bit; the cut request is seen)."""
    from conftest import bits as _bits

    a = np.random.default_rng(6).standard_normal((1024, 4096)).astype(np.float32)  # 16 MiB
    url = put(s3_server.client, s3_bucket, "cut-rewrite.npy", npy_bytes(a))
    for rng_start in ("bytes=0-", "bytes=8"):  # the first GET's body, then the rest's
        s3_proxy.reset_counts()
        s3_proxy.match = lambda method, path, headers, s=rng_start: (
            method == "GET" and headers.get("range", "").startswith(s))
        s3_proxy.cut_next(1, after=3 << 20)
        try:
            t = tb.load(url, storage_options=s3_proxy.storage_options)
        finally:
            s3_proxy.clear_faults()
            s3_proxy.match = lambda method, path, headers: True
        assert any(r.fault and r.fault.startswith("cut") for r in s3_proxy.get_requests())
        assert _bits(t.numpy()) == _bits(a)
        assert len(s3_proxy.get_requests("HEAD")) == 0
