"""A real S3-compatible server for the tests (moto's, in a thread, on 127.0.0.1 with a
free port), fixtures around it, and the fault proxy in front of it.

Fixtures (imported into conftest.py):

- ``s3_server``: session-scoped; ``.endpoint`` (``http://127.0.0.1:PORT``), ``.client``
  (a boto3 S3 client), ``.storage_options`` (object_store keys for the server);
- ``s3_bucket``: a fresh, empty bucket per test (its name);
- ``s3_env``: the same configuration through environment variables
  (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), for calls without
  ``storage_options``;
- ``s3_proxy``: a :class:`fault_proxy.FaultProxy` in front of the server, with
  ``.storage_options`` pointing at the proxy.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from fault_proxy import FaultProxy

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"

_ENV_VARS = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ALLOW_HTTP", "AWS_PROFILE",
    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
)


def storage_options_for(endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict:
    """object_store configuration for a local S3 server at ``endpoint``."""
    return {
        "aws_endpoint": endpoint,
        "aws_region": REGION,
        "aws_access_key_id": access_key,
        "aws_secret_access_key": secret_key,
        "aws_allow_http": "true",
    }


def boto3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


@dataclass
class S3Server:
    """A started moto server."""

    server: Any
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def storage_options(self) -> dict:
        return storage_options_for(self.endpoint)

    @property
    def client(self) -> Any:
        return boto3_client(self.endpoint)

    def stop(self) -> None:
        self.server.stop()


def start_moto() -> S3Server:
    """Start moto's S3 server in a thread on 127.0.0.1 with a free port."""
    # Moto reads these when it starts; no real AWS account is ever reached.
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port
    return S3Server(server, "127.0.0.1", port)


@contextlib.contextmanager
def moto_auth_enabled() -> Iterator[None]:
    """Make the moto server check credentials (it accepts any by default): with this
    on, keys that IAM does not know get 403 InvalidAccessKeyId."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    old = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    old_count = ActionAuthenticatorMixin.request_count
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = old
        ActionAuthenticatorMixin.request_count = old_count


_bucket_ids = itertools.count()


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object (and unfinished multipart upload) of ``bucket``, then it."""
    with contextlib.suppress(Exception):
        for up in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket)


def list_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every key in ``bucket`` under ``prefix``, sorted."""
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def pending_uploads(client: Any, bucket: str) -> list[str]:
    """Keys of multipart uploads started and neither completed nor aborted."""
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: Any) -> Iterator[str]:
    name = f"tb-{next(_bucket_ids)}-{os.getpid()}"
    client = s3_server.client
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        empty_bucket(client, name)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: Any) -> S3Server:
    """The server's configuration in the environment variables boto3 reads (and
    nothing else of AWS's: a developer's own profile must not leak in)."""
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    return s3_server


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy((s3_server.host, s3_server.port))
    proxy.storage_options = storage_options_for(proxy.endpoint)  # type: ignore[attr-defined]
    try:
        yield proxy
    finally:
        proxy.stop()


def upload_mostly_zeros(client: Any, path: str, bucket: str, key: str, part: int = 8 << 20) -> str:
    """Upload the local file ``path`` (large, mostly zeros) as ``key`` cheaply: a
    multipart upload whose all-zero parts are server-side copies of one zero object
    (UploadPartCopy), so only the parts holding data cross the wire. The object is
    byte-for-byte the file: the returned multipart ETag, computed here from the file's
    parts, is what the server must report for it."""
    import hashlib

    zero_key = f"{key}.zeros-part"
    client.put_object(Bucket=bucket, Key=zero_key, Body=bytes(part))
    up = client.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    digests = []
    try:
        with open(path, "rb") as f:
            n = 1
            while True:
                chunk = f.read(part)
                if not chunk:
                    break
                if len(chunk) == part and not any(chunk):  # all zeros (any() on bytes: fast)
                    r = client.upload_part_copy(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n,
                                                CopySource={"Bucket": bucket, "Key": zero_key})
                    etag = r["CopyPartResult"]["ETag"]
                else:
                    etag = client.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n,
                                              Body=chunk)["ETag"]
                parts.append({"ETag": etag, "PartNumber": n})
                digests.append(hashlib.md5(chunk).digest())
                n += 1
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                         MultipartUpload={"Parts": parts})
        return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"])
        raise
    finally:
        client.delete_object(Bucket=bucket, Key=zero_key)
