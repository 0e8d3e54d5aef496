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
