"""Object storage under faults, through the fault proxy (fault_proxy.py) between
tensorbridge and the moto server: failed and cut requests, a server that stops
answering or refuses connections, an object replaced while it is read, a writer that
fails mid-way; and the bytes and requests on the wire for a large remote archive."""

import io
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tensorbridge as tb
from conftest import bits, wait_threads
from s3_server import list_keys, pending_uploads, upload_mostly_zeros


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def put(client, bucket, key, data):
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def opts(proxy, **extra):
    """Storage options through the proxy, with short bounds so a fault ends quickly."""
    so = dict(proxy.storage_options, max_retries="3", retry_timeout="10", timeout="5s", connect_timeout="2s")
    so.update({k: str(v) for k, v in extra.items()})
    return so




def run_bounded(fn, limit=60.0):
    """Run ``fn`` in a thread; its result or exception, or AssertionError if it is still
    running after ``limit`` seconds (a hang, not a slow test: the bound is generous)."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"still running after {limit} s: hung"
    return out


# --- transient failures ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["503", "500", "reset"])
def test_first_requests_fail_then_success(s3_server, s3_bucket, s3_proxy, mode):
    a = np.arange(100_000, dtype=np.float64)
    url = put(s3_server.client, s3_bucket, "a.npy", npy_bytes(a))
    s3_proxy.fail_next(2, mode)
    t = tb.load(url, storage_options=opts(s3_proxy))
    assert bits(t.numpy()) == bits(a)
    faults = [r.fault for r in s3_proxy.get_requests()]
    assert faults[:2] == [mode, mode]  # both failed requests were made, then retried
    assert faults[2:] and all(f is None for f in faults[2:])


def test_retries_are_bounded(s3_server, s3_bucket, s3_proxy):
    url = put(s3_server.client, s3_bucket, "a.npy", npy_bytes(np.arange(10)))
    s3_proxy.fail_next(1000, "503")
    out = run_bounded(lambda: tb.load(url, storage_options=opts(s3_proxy, max_retries=2)))
    assert isinstance(out.get("error"), OSError), out
    assert url in str(out["error"])
    assert s3_proxy.request_count <= 3 * 2  # bounded: a header read at most, each tried 3 times
    s3_proxy.clear_faults()


def test_response_cut_mid_body_is_retried_or_a_clean_error(s3_server, s3_bucket, s3_proxy):
    a = np.random.default_rng(0).standard_normal(3 << 20).astype(np.float32)  # 12 MiB
    url = put(s3_server.client, s3_bucket, "cut.npy", npy_bytes(a))
    s3_proxy.match = lambda method, path, headers: method == "GET" and "range" in headers
    s3_proxy.cut_next(2, after=100_000)
    out = run_bounded(lambda: tb.load(url, storage_options=opts(s3_proxy)))
    assert any(r.fault and r.fault.startswith("cut") for r in s3_proxy.get_requests())
    if "error" in out:
        assert isinstance(out["error"], OSError) and url in str(out["error"]), out["error"]
    else:
        assert bits(out["value"].numpy()) == bits(a)  # every byte right, never a partial array


def test_npz_member_cut_mid_body(s3_server, s3_bucket, s3_proxy):
    arrays = {"a": np.arange(1 << 20, dtype=np.int32), "b": np.ones((300, 300))}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    url = put(s3_server.client, s3_bucket, "cut.npz", buf.getvalue())
    z = tb.load(url, storage_options=opts(s3_proxy))
    s3_proxy.cut_next(1, after=1000)
    out = run_bounded(lambda: z["a"])
    if "error" in out:
        assert isinstance(out["error"], OSError) and url in str(out["error"]), out["error"]
    else:
        assert bits(out["value"].numpy()) == bits(arrays["a"])
    np.testing.assert_array_equal(z["b"].numpy(), arrays["b"])


# --- a server that stops ---------------------------------------------------------------


def test_server_that_hangs_is_an_error_naming_the_url(s3_server, s3_bucket, s3_proxy):
    url = put(s3_server.client, s3_bucket, "h.npy", npy_bytes(np.arange(10)))
    base = threading.active_count()
    s3_proxy.hang = True
    out = run_bounded(lambda: tb.load(url, storage_options=opts(s3_proxy, timeout="1s", max_retries=1, retry_timeout=3)))
    s3_proxy.hang = False
    err = out.get("error")
    assert isinstance(err, OSError), out
    assert url in str(err)
    assert wait_threads(base + 0), "a thread was left behind"


def test_server_that_refuses_connections(s3_server, s3_bucket, s3_proxy):
    url = put(s3_server.client, s3_bucket, "r.npy", npy_bytes(np.arange(10)))
    so = opts(s3_proxy, max_retries=1, retry_timeout=3)
    np.testing.assert_array_equal(tb.load(url, storage_options=so).numpy(), np.arange(10))
    s3_proxy.refuse()
    out = run_bounded(lambda: tb.load(url, storage_options=so))
    assert isinstance(out.get("error"), OSError), out
    assert url in str(out["error"])
    out = run_bounded(lambda: tb.save(f"s3://{s3_bucket}/w.npy", np.arange(5), storage_options=so))
    assert isinstance(out.get("error"), OSError), out
    s3_proxy.accept_again()
    assert list_keys(s3_server.client, s3_bucket) == ["r.npy"]


def test_server_stops_mid_iteration_of_tfrecords(s3_server, s3_bucket, s3_proxy, tmp_path):
    x = np.random.default_rng(0).standard_normal((2000, 256)).astype(np.float32)
    local = tmp_path / "r.tfrecord"
    tb.io.write_tfrecord(local, {"x": x})
    url = put(s3_server.client, s3_bucket, "r.tfrecord", local.read_bytes())
    base = threading.active_count()
    it = tb.io.read_tfrecord(url, storage_options=opts(s3_proxy, timeout="1s", max_retries=1, retry_timeout=3))
    first = next(it)
    np.testing.assert_array_equal(first["x"].numpy(), x[0])
    s3_proxy.hang = True

    def drain():
        return sum(1 for _ in it)

    out = run_bounded(drain)
    s3_proxy.hang = False
    # Either the read-ahead already held everything, or the stop is an error naming the URL.
    if "error" in out:
        assert isinstance(out["error"], OSError) and url in str(out["error"]), out["error"]
    else:
        assert out["value"] == len(x) - 1
    del it
    assert wait_threads(base)


# --- consistency -----------------------------------------------------------------------


def test_object_replaced_mid_read_is_an_error_never_mixed_data(s3_server, s3_bucket, s3_proxy):
    client = s3_server.client
    # 12 MiB: more than one ranged read (an object of up to 8 MiB is one GET, whole).
    old = np.zeros(12 << 20, dtype=np.uint8)
    new = np.full(12 << 20, 255, dtype=np.uint8)
    url = put(client, s3_bucket, "v.npy", npy_bytes(old))
    gets = []

    def replace_after_first_get(method, path, headers):
        if method == "GET" and "v.npy" in path:
            gets.append(headers.get("range"))
            if len(gets) == 2:
                client.put_object(Bucket=s3_bucket, Key="v.npy", Body=npy_bytes(new))

    s3_proxy.on_request = replace_after_first_get
    out = run_bounded(lambda: tb.load(url, storage_options=opts(s3_proxy)))
    s3_proxy.on_request = None
    assert len(gets) >= 2  # the first piece, then the rest: the object changed in between
    err = out.get("error")
    assert err is not None, "a tensor was built from two versions of the object"
    assert isinstance(err, (OSError, ValueError)) and url in str(err)
    assert "changed" in str(err).lower() or "etag" in str(err).lower() or "modified" in str(err).lower()


def test_npz_replaced_after_open(s3_server, s3_bucket, s3_proxy):
    client = s3_server.client
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(1000), b=np.arange(10.0))
    url = put(client, s3_bucket, "z.npz", buf.getvalue())
    z = tb.load(url, storage_options=opts(s3_proxy))
    buf = io.BytesIO()
    np.savez(buf, a=-np.arange(1000), b=-np.arange(10.0))
    client.put_object(Bucket=s3_bucket, Key="z.npz", Body=buf.getvalue())
    with pytest.raises((OSError, ValueError), match="z.npz"):
        z["a"]


# --- atomic writes ---------------------------------------------------------------------


@pytest.mark.parametrize("size_mib", [1, 24])
def test_writer_failing_mid_way_leaves_nothing(s3_server, s3_bucket, s3_proxy, size_mib):
    """Uploads fail after the first part (single PUT or multipart): no object, and no
    multipart upload left open."""
    client = s3_server.client
    a = np.random.default_rng(0).integers(0, 255, size_mib << 20, dtype=np.uint8)
    puts = []

    def fail_parts(method, path, headers):
        if method == "PUT":
            puts.append(path)
            return len(puts) > 1 or size_mib == 1
        return False

    s3_proxy.match = fail_parts
    s3_proxy.fail_next(1000, "reset")
    url = f"s3://{s3_bucket}/w.npy"
    out = run_bounded(lambda: tb.save(url, a, storage_options=opts(s3_proxy, max_retries=1, retry_timeout=3)))
    s3_proxy.clear_faults()
    assert isinstance(out.get("error"), OSError), out
    assert url in str(out["error"])
    assert list_keys(client, s3_bucket) == []
    assert pending_uploads(client, s3_bucket) == []
    out = run_bounded(lambda: tb.savez(f"s3://{s3_bucket}/w.npz", storage_options=opts(s3_proxy), a=a))
    assert "error" not in out, out
    assert list_keys(client, s3_bucket) == ["w.npz"]


def test_cut_upload_response_leaves_nothing_or_the_whole_object(s3_server, s3_bucket, s3_proxy):
    """The answers to part uploads are cut (the upload's id is known, so it can be
    aborted; a cut answer to CreateMultipartUpload itself would leave an upload whose id
    the client never learnt)."""
    client = s3_server.client
    a = np.arange(6 << 20, dtype=np.int32)  # 24 MiB: three parts
    s3_proxy.match = lambda method, path, headers: method == "PUT"
    s3_proxy.cut_next(1000, after=0)
    url = f"s3://{s3_bucket}/c.npy"
    out = run_bounded(lambda: tb.save(url, a, storage_options=opts(s3_proxy, max_retries=1, retry_timeout=3)))
    s3_proxy.clear_faults()
    keys = list_keys(client, s3_bucket)
    if "error" in out:
        assert isinstance(out["error"], OSError), out
        # the server may have stored a complete object whose answer was cut
        if keys:
            assert keys == ["c.npy"]
            np.testing.assert_array_equal(np.load(io.BytesIO(client.get_object(Bucket=s3_bucket, Key="c.npy")["Body"].read())), a)
    else:
        assert keys == ["c.npy"]
    assert pending_uploads(client, s3_bucket) == []


# --- bytes on the wire -----------------------------------------------------------------


@pytest.fixture(scope="module")
def big_npz(s3_server, tmp_path_factory):
    """A 256 MiB stored .npz in its own bucket: 255 MiB of zeros, then a 1 MiB member."""
    client = s3_server.client
    bucket = "tb-big-npz"
    client.create_bucket(Bucket=bucket)
    p = tmp_path_factory.mktemp("big") / "big.npz"
    small = np.random.default_rng(0).standard_normal(1 << 17)  # 1 MiB of float64
    np.savez(p, zeros=np.zeros(255 << 20, dtype=np.uint8), small=small)
    assert p.stat().st_size > 256 << 20
    etag = upload_mostly_zeros(client, str(p), bucket, "big.npz")
    head = client.head_object(Bucket=bucket, Key="big.npz")
    assert head["ContentLength"] == p.stat().st_size and head["ETag"] == etag
    p.unlink()
    yield f"s3://{bucket}/big.npz", small
    client.delete_object(Bucket=bucket, Key="big.npz")
    client.delete_bucket(Bucket=bucket)


def test_one_member_of_a_large_remote_npz_transfers_little(big_npz, s3_proxy):
    url, small = big_npz
    s3_proxy.reset_counts()
    z = tb.load(url, storage_options=s3_proxy.storage_options)
    assert z.keys() == ["zeros", "small"]
    t = z["small"]
    assert bits(t.numpy()) == bits(small)
    assert s3_proxy.bytes_down < 2 << 20, s3_proxy.bytes_down


def test_cli_inspect_of_a_large_remote_npz_reads_headers_only(big_npz, s3_proxy):
    import os

    url, _ = big_npz
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=s3_proxy.endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    s3_proxy.reset_counts()
    r = subprocess.run([sys.executable, "-m", "tensorbridge._cli", "inspect", url], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "zeros" in r.stdout and "small" in r.stdout
    assert s3_proxy.bytes_down < 256 << 10, s3_proxy.bytes_down


def test_npz_info_of_a_remote_member_reads_its_header(s3_server, s3_bucket, s3_proxy):
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros((3, 4), ">f4"))
    np.savez_compressed(buf2 := io.BytesIO(), b=np.ones(7, np.int8))
    for key, raw, name, want in (("s.npz", buf.getvalue(), "a", ("float32", [3, 4])),
                                 ("d.npz", buf2.getvalue(), "b", ("int8", [7]))):
        url = put(s3_server.client, s3_bucket, key, raw)
        z = tb.load(url, storage_options=opts(s3_proxy, timeout="1s", max_retries=0))
        s3_proxy.reset_counts()
        info = run_bounded(lambda: z.info(name)).get("value", {})
        assert (info.get("dtype"), list(info.get("shape", []))) == want, info
        assert s3_proxy.bytes_down < 16 << 10  # the member's header, not its data


def test_no_thread_left_after_many_reads(s3_server, s3_bucket):
    base = threading.active_count()
    so = s3_server.storage_options
    url = put(s3_server.client, s3_bucket, "t.npy", npy_bytes(np.arange(1 << 20, dtype=np.float32)))
    for _ in range(5):
        tb.load(url, storage_options=so)
    time.sleep(0)
    # The core's runtime may keep a fixed pool of its own (not Python) threads; Python's
    # thread count must be back where it was.
    assert wait_threads(base)
