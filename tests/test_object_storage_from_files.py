"""Dataset.from_files over s3:// URLs (issue 9), against a real S3-compatible server
(moto's, on 127.0.0.1 with a free port): the same rows as over local copies of the
files (interleave, shuffle_files, shard, on_error="skip"), iterator state saved and
restored over remote objects, and bounded memory: an opened object is streamed by
ranged reads, never fetched whole (counted with tb._core.location_get_stats)."""

from __future__ import annotations

import io
import json
import boto3
import moto.server as moto_server
import numpy as np
import pytest

import tensorbridge as tb
from tensorbridge.data import Dataset

BUCKET = "fromfiles"


@pytest.fixture(scope="module")
def s3():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
        opts = {
            "aws_endpoint": endpoint,
            "aws_region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        yield client, opts
    finally:
        server.stop()


def put(client, key, data: bytes) -> str:
    client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return f"s3://{BUCKET}/{key}"


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def npz_bytes(compressed: bool, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def rows(ds):
    return [tuple(np.asarray(c) for c in e) if isinstance(e, tuple) else np.asarray(e)
            for e in ds.as_numpy_iterator()]


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, tuple):
            for gc, wc in zip(g, w):
                assert gc.dtype == wc.dtype
                np.testing.assert_array_equal(gc, wc)
        else:
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)


SIZES = (7, 1, 12, 5, 9, 3)


@pytest.fixture(scope="module")
def shards(s3, tmp_path_factory):
    """The same shards locally and in the bucket: .npy (big-endian float64 rows of
    (2, 3)) and .npz (int16 'x' rows of 4 and bool 'y' rows), stored and deflated."""
    client, opts = s3
    d = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    out = {"npy": ([], []), "npz": ([], []), "npzc": ([], [])}
    for i, n in enumerate(SIZES):
        a = rng.standard_normal((n, 2, 3)).astype(">f8")
        x = rng.integers(-1000, 1000, (n, 4)).astype(np.int16)
        y = rng.integers(0, 2, (n,)).astype(bool)
        for kind, data in (("npy", npy_bytes(a)), ("npz", npz_bytes(False, x=x, y=y)),
                           ("npzc", npz_bytes(True, x=x, y=y))):
            ext = "npy" if kind == "npy" else "npz"
            name = f"{kind}/shard-{i:03d}.{ext}"
            (d / kind).mkdir(exist_ok=True)
            (d / name).write_bytes(data)
            out[kind][0].append(str(d / name))
            out[kind][1].append(put(client, name, data))
    return out, opts


@pytest.mark.parametrize("kind", ["npy", "npz", "npzc"])
def test_rows_equal_local_copies(shards, kind):
    files, opts = shards
    local, remote = files[kind]
    keys = None if kind == "npy" else ["x", "y"]
    for kw in ({}, {"cycle_length": 3, "block_length": 2},
               {"shuffle_files": True, "seed": 5, "cycle_length": 2}):
        lds = Dataset.from_files(local, keys, **kw)
        rds = Dataset.from_files(remote, keys, storage_options=opts, **kw)
        assert len(rds) == len(lds) == sum(SIZES)
        assert_same(rows(rds), rows(lds))
        assert_same(rows(rds.shard(3, 1)), rows(lds.shard(3, 1)))
    # A URL glob: matched over a listing, sorted like a local glob.
    ext = "npy" if kind == "npy" else "npz"
    g = Dataset.from_files(f"s3://{BUCKET}/{kind}/shard-*.{ext}", keys, storage_options=opts,
                           cycle_length=2)
    assert_same(rows(g), rows(Dataset.from_files(local, keys, cycle_length=2)))


def test_on_error_skip_with_a_corrupt_object(shards, s3, tmp_path):
    client, _ = s3
    files, opts = shards
    local, remote = files["npy"]
    bad = put(client, "bad/corrupt.npy", b"\x93NUMPY garbage")
    with pytest.warns(RuntimeWarning, match="corrupt.npy"):
        ds = Dataset.from_files(remote[:2] + [bad] + remote[2:4], on_error="skip",
                                storage_options=opts, cycle_length=2)
    want = Dataset.from_files(local[:4], cycle_length=2)
    assert len(ds) == len(want)
    assert_same(rows(ds), rows(want))
    # Replaced by a truncated object after the headers were read: skipped when opened.
    victim = put(client, "bad/victim.npy", open(local[2], "rb").read())
    ds = Dataset.from_files([remote[0], victim, remote[3]], on_error="skip",
                            storage_options=opts, cycle_length=2)
    data = open(local[2], "rb").read()
    put(client, "bad/victim.npy", data[: len(data) - 24])
    with pytest.warns(RuntimeWarning, match="victim.npy"):
        got = rows(ds)
    assert_same(got, rows(Dataset.from_files([local[0], local[3]], cycle_length=2)))


@pytest.mark.parametrize("kind", ["npy", "npz", "npzc"])
def test_state_save_restore_over_remote_files(shards, kind):
    files, opts = shards
    _, remote = files[kind]
    keys = None if kind == "npy" else ["x", "y"]

    def make():
        return Dataset.from_files(remote, keys, storage_options=opts, shuffle_files=True,
                                  seed=3, cycle_length=3, block_length=2)

    full = rows(make())
    for k in (0, 1, 8, 20, len(full) - 1, len(full)):
        it = make().iterator()
        for _ in range(k):
            next(it)
        state = json.loads(json.dumps(it.get_state()))
        it.close()
        rest = [tuple(np.asarray(c) for c in e) if isinstance(e, tuple) else np.asarray(e)
                for e in make().iterator(state)]
        assert_same(rest, full[k:])


def test_opened_objects_are_streamed_not_fetched_whole(s3):
    """Three 64 MiB objects, cycle_length=2: at every point of the iteration the bytes
    asked for by ranged GETs exceed the bytes of the rows already yielded by at most
    a bounded read-ahead (a few chunks per open object) — never by whole objects,
    as reading each opened object into memory would (128 MiB before the first row)."""
    client, opts = s3
    row = 1 << 16  # 64 KiB rows, 1024 per object
    urls = []
    for i in range(3):
        a = np.full((1024, row // 4), i, dtype=np.float32)
        a[:, 0] = np.arange(1024)
        urls.append(put(client, f"big/obj-{i}.npy", npy_bytes(a)))
    ds = Dataset.from_files(urls, storage_options=opts, cycle_length=2)
    assert len(ds) == 3 * 1024
    tb._core.location_get_stats(reset=True)
    worst = 0
    largest = 0
    seen = 0
    for e in ds.as_numpy_iterator():
        seen += 1
        gets, asked, largest = tb._core.location_get_stats()
        worst = max(worst, asked - seen * row)
    assert seen == 3 * 1024
    gets, asked, largest = tb._core.location_get_stats()
    # Everything was fetched about once (headers and the stream's read-ahead).
    assert 3 * 1024 * row <= asked < 3 * 1024 * row + (1 << 20)
    assert largest <= 16 << 20  # READ_AHEAD_GET
    # Ahead of what was consumed: at most the 32 MiB read-ahead budget plus a GET
    # of their own for the two open objects and the one opened ahead, less than
    # the 2 x 64 MiB a whole-object read of the two open objects would be.
    assert worst <= (32 + 3 * 16) << 20, worst >> 20


def test_len_over_many_objects_reads_only_headers(s3):
    """len() of from_files over many objects: one small ranged GET per object (its
    header), never its data; the headers are fetched concurrently."""
    client, opts = s3
    n = 300
    a = np.arange(40_000, dtype=np.int64).reshape(1000, 40)  # 320 KB of data each
    data = npy_bytes(a)
    for i in range(n):
        put(client, f"many/s-{i:04d}.npy", data)
    tb._core.location_get_stats(reset=True)
    ds = Dataset.from_files(f"s3://{BUCKET}/many/s-*.npy", storage_options=opts)
    assert len(ds) == n * 1000
    gets, asked, largest = tb._core.location_get_stats()
    # One header read per object, plus a 12-byte read telling the first one's format.
    assert gets == n + 1
    assert largest <= 4096 and asked <= n * 4096 + 12
    first = next(iter(ds.as_numpy_iterator()))
    np.testing.assert_array_equal(first, a[0])


def test_fortran_order_and_empty_rows_equal_local(s3, tmp_path):
    """Fortran-ordered shards (read whole when opened: their rows lie apart) and
    rows of zero elements give the same rows as local copies."""
    client, opts = s3
    local, remote = [], []
    for i, a in enumerate([np.asfortranarray(np.arange(30, dtype=np.uint16).reshape(5, 6)),
                           np.asfortranarray(np.arange(12, dtype=np.uint16).reshape(2, 6) + 7),
                           np.asfortranarray(np.arange(30, dtype=np.uint16).reshape(5, 6) + 9)]):
        data = npy_bytes(a)
        (tmp_path / f"f{i}.npy").write_bytes(data)
        local.append(str(tmp_path / f"f{i}.npy"))
        remote.append(put(client, f"fortran/f{i}.npy", data))
    for kw in ({}, {"cycle_length": 2}):
        assert_same(rows(Dataset.from_files(remote, storage_options=opts, **kw)),
                    rows(Dataset.from_files(local, **kw)))
    # One row of several dimensions: stored column-major too.
    one = [np.asfortranarray(np.arange(24, dtype=np.float32).reshape(1, 4, 6) * k) for k in (1, 2)]
    one_local, one_remote = [], []
    for i, a in enumerate(one):
        (tmp_path / f"one{i}.npy").write_bytes(npy_bytes(a))
        one_local.append(str(tmp_path / f"one{i}.npy"))
        one_remote.append(put(client, f"fortran/one{i}.npy", npy_bytes(a)))
    got = rows(Dataset.from_files(one_remote, storage_options=opts))
    assert_same(got, [a[0] for a in one])
    assert_same(got, rows(Dataset.from_files(one_local)))
    e = npy_bytes(np.zeros((4, 0), dtype=np.float32))
    (tmp_path / "e.npy").write_bytes(e)
    got = rows(Dataset.from_files([put(client, "empty/e.npy", e)], storage_options=opts))
    assert_same(got, rows(Dataset.from_files([str(tmp_path / "e.npy")])))
