"""The test harness for object storage itself: the moto server round-trips objects,
and the fault proxy counts and injects what the other tests rely on (checked with
boto3 and plain sockets, independently of tensorbridge)."""

import io
import socket
import threading
import time

import numpy as np
import pytest

from s3_server import boto3_client, list_keys, moto_auth_enabled


def test_server_round_trips_objects(s3_server, s3_bucket):
    client = s3_server.client
    a = np.arange(1000, dtype=np.float32)
    buf = io.BytesIO()
    np.save(buf, a)
    client.put_object(Bucket=s3_bucket, Key="dir/a.npy", Body=buf.getvalue())
    assert list_keys(client, s3_bucket) == ["dir/a.npy"]
    body = client.get_object(Bucket=s3_bucket, Key="dir/a.npy")["Body"].read()
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), a)
    part = client.get_object(Bucket=s3_bucket, Key="dir/a.npy", Range="bytes=0-5")["Body"].read()
    assert part == b"\x93NUMPY"


def test_buckets_are_fresh_per_test(s3_server, s3_bucket):
    assert list_keys(s3_server.client, s3_bucket) == []


def test_proxy_counts_requests_and_bytes(s3_server, s3_bucket, s3_proxy):
    client = boto3_client(s3_proxy.endpoint)
    payload = bytes(range(256)) * 4096  # 1 MiB
    client.put_object(Bucket=s3_bucket, Key="k", Body=payload)
    s3_proxy.reset_counts()
    got = client.get_object(Bucket=s3_bucket, Key="k", Range="bytes=100-1099")["Body"].read()
    assert got == payload[100:1100]
    assert s3_proxy.request_count == 1
    assert [r.method for r in s3_proxy.get_requests()] == ["GET"]
    assert 1000 < s3_proxy.bytes_down < 1000 + 4096  # the range and the response head
    s3_proxy.reset_counts()
    assert client.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == payload
    assert s3_proxy.bytes_down > len(payload)


@pytest.mark.parametrize("mode", ["503", "500", "reset"])
def test_proxy_fails_the_first_requests(s3_server, s3_bucket, s3_proxy, mode):
    from botocore.exceptions import BotoCoreError, ClientError

    s3_server.client.put_object(Bucket=s3_bucket, Key="k", Body=b"hello")
    client = boto3_client(s3_proxy.endpoint)  # retries off: every fault is seen
    s3_proxy.fail_next(2, mode)
    for _ in range(2):
        with pytest.raises((ClientError, BotoCoreError)) as e:
            client.get_object(Bucket=s3_bucket, Key="k")["Body"].read()
        if mode != "reset":
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == int(mode)
    assert client.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"hello"
    assert [r.fault for r in s3_proxy.get_requests()] == [mode, mode, None]


def test_proxy_cuts_a_response_mid_body(s3_server, s3_bucket, s3_proxy):
    from botocore.exceptions import BotoCoreError

    payload = b"x" * 100_000
    s3_server.client.put_object(Bucket=s3_bucket, Key="k", Body=payload)
    client = boto3_client(s3_proxy.endpoint)
    s3_proxy.cut_next(1, after=5000)
    with pytest.raises((BotoCoreError, OSError)):
        body = client.get_object(Bucket=s3_bucket, Key="k")["Body"].read()
        assert len(body) == len(payload)  # never reached: the read must fail
    assert client.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == payload
    assert s3_proxy.get_requests()[0].fault == "cut after 5000 body bytes"


def test_proxy_hangs_and_refuses(s3_proxy):
    s3_proxy.hang = True
    with socket.create_connection(("127.0.0.1", s3_proxy.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(10)
    s3_proxy.hang = False
    s3_proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", s3_proxy.port), timeout=2)
    s3_proxy.accept_again()
    socket.create_connection(("127.0.0.1", s3_proxy.port), timeout=2).close()


def test_proxy_stop_joins_its_threads(s3_server):
    from fault_proxy import FaultProxy

    before = threading.active_count()
    proxy = FaultProxy((s3_server.host, s3_server.port))
    client = boto3_client(proxy.endpoint)
    client.list_buckets()
    proxy.stop()
    end = time.time() + 5
    while threading.active_count() > before and time.time() < end:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_auth_can_be_switched_on(s3_server, s3_bucket):
    from botocore.exceptions import ClientError

    client = s3_server.client
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    with moto_auth_enabled():
        with pytest.raises(ClientError) as e:
            client.get_object(Bucket=s3_bucket, Key="k")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert client.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"
