"""Dataset.from_files over URLs (issue 9) through the moto server: rows equal NumPy's
reading of the same objects and tensorbridge's reading of the same files on a local
disk (order, interleave, shuffle_files, shard, on_error), and len() over many shards
reads their headers only (bytes counted by the fault proxy)."""

import io
import threading

import numpy as np
import pytest

import tensorbridge as tb
from conftest import wait_threads

Dataset = tb.data.Dataset
SIZES = (5, 1, 7, 3, 4)


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def rows(ds):
    return [np.asarray(x) for x in ds.as_numpy_iterator()]


def upload_shards(client, bucket, tmp_path, sizes=SIZES, prefix="train/", dtype=np.float32, fortran=False):
    """The same shards as objects and as local files: (arrays, local paths)."""
    rng = np.random.default_rng(0)
    arrs, paths = [], []
    for i, n in enumerate(sizes):
        a = (rng.standard_normal((n, 4, 3)) * 100).astype(dtype)
        if fortran:
            a = np.asfortranarray(a)
        raw = npy_bytes(a)
        client.put_object(Bucket=bucket, Key=f"{prefix}shard-{i:03d}.npy", Body=raw)
        p = tmp_path / f"shard-{i:03d}.npy"
        p.write_bytes(raw)
        arrs.append(np.load(io.BytesIO(raw)))
        paths.append(str(p))
    # Objects the pattern must not match.
    client.put_object(Bucket=bucket, Key=f"{prefix}notes.txt", Body=b"not an array")
    client.put_object(Bucket=bucket, Key="other/shard-999.npy", Body=npy_bytes(np.zeros((2, 4, 3), dtype)))
    return arrs, paths


def test_rows_equal_numpy_and_the_local_files(s3_server, s3_bucket, tmp_path):
    arrs, paths = upload_shards(s3_server.client, s3_bucket, tmp_path, fortran=True)
    url = f"s3://{s3_bucket}/train/shard-*.npy"
    ds = Dataset.from_files(url, storage_options=s3_server.storage_options)
    want = np.concatenate(arrs)
    assert len(ds) == len(want)
    got = rows(ds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    # A list of URLs keeps its order, as a list of paths does.
    urls = [f"s3://{s3_bucket}/train/shard-{i:03d}.npy" for i in range(len(SIZES))][::-1]
    rev = rows(Dataset.from_files(urls, storage_options=s3_server.storage_options))
    np.testing.assert_array_equal(np.stack(rev), np.concatenate(arrs[::-1]))


@pytest.mark.parametrize("kwargs", [
    {"cycle_length": 3, "block_length": 2},
    {"shuffle_files": True, "seed": 7},
    {"shuffle_files": True, "seed": 7, "cycle_length": 2},
])
def test_interleave_and_shuffle_files_as_for_local_files(s3_server, s3_bucket, tmp_path, kwargs):
    upload_shards(s3_server.client, s3_bucket, tmp_path)
    url = f"s3://{s3_bucket}/train/shard-*.npy"
    remote = Dataset.from_files(url, storage_options=s3_server.storage_options, **kwargs)
    local = Dataset.from_files(str(tmp_path / "shard-*.npy"), **kwargs)
    for _ in range(2):  # two epochs: a new file order each, the same on both sides
        np.testing.assert_array_equal(np.stack(rows(remote)), np.stack(rows(local)))
    np.testing.assert_array_equal(np.stack(rows(remote.shard(2, 1))), np.stack(rows(local.shard(2, 1))))


def test_configuration_from_the_environment(s3_env, s3_bucket, tmp_path):
    arrs, _ = upload_shards(s3_env.client, s3_bucket, tmp_path, dtype=np.int16)
    ds = Dataset.from_files(f"s3://{s3_bucket}/train/*.npy")
    np.testing.assert_array_equal(np.stack(rows(ds)), np.concatenate(arrs))


def test_npz_members_over_urls(s3_server, s3_bucket):
    client, so = s3_server.client, s3_server.storage_options
    xs, ys = [], []
    for i, n in enumerate((3, 5)):
        x = np.arange(n * 2, dtype=np.int64).reshape(n, 2) + 100 * i
        y = np.arange(n, dtype=np.float64) - i
        buf = io.BytesIO()
        (np.savez_compressed if i else np.savez)(buf, x=x, y=y)
        client.put_object(Bucket=s3_bucket, Key=f"z/{i}.npz", Body=buf.getvalue())
        xs.append(x)
        ys.append(y)
    ds = Dataset.from_files(f"s3://{s3_bucket}/z/*.npz", keys=["x", "y"], storage_options=so)
    got = list(ds.as_numpy_iterator())
    assert len(ds) == len(got) == 8
    np.testing.assert_array_equal(np.stack([g[0] for g in got]), np.concatenate(xs))
    np.testing.assert_array_equal(np.stack([g[1] for g in got]), np.concatenate(ys))


def test_errors_name_the_url(s3_server, s3_bucket, tmp_path):
    client, so = s3_server.client, s3_server.storage_options
    upload_shards(client, s3_bucket, tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        Dataset.from_files(f"s3://{s3_bucket}/nothing-here/*.npy", storage_options=so)
    missing = f"s3://{s3_bucket}/train/missing.npy"
    with pytest.raises(FileNotFoundError, match=missing):
        Dataset.from_files([f"s3://{s3_bucket}/train/shard-000.npy", missing], storage_options=so)
    with pytest.raises(ValueError, match=r"ftp.*s3"):
        Dataset.from_files("ftp://host/x/*.npy")


def test_object_replaced_mid_epoch(s3_server, s3_bucket, tmp_path):
    """Objects replaced after the headers were read: an error naming the object, or the
    new contents read whole; never rows mixing two versions of one object."""
    client, so = s3_server.client, s3_server.storage_options
    arrs, _ = upload_shards(client, s3_bucket, tmp_path)
    ds = Dataset.from_files(f"s3://{s3_bucket}/train/shard-*.npy", storage_options=so)
    it = iter(ds.as_numpy_iterator())
    first = next(it)
    np.testing.assert_array_equal(first, arrs[0][0])
    changed = {}
    for i in (2, 3):
        new = arrs[i] + 1000  # same shape: only the values tell the versions apart
        client.put_object(Bucket=s3_bucket, Key=f"train/shard-{i:03d}.npy", Body=npy_bytes(new))
        changed[i] = new
    try:
        got = [first] + list(it)
    except (OSError, ValueError) as e:
        assert "shard-00" in str(e)
        return
    # Read whole, each object in one version.
    start = 0
    for i, a in enumerate(arrs):
        block = np.stack(got[start:start + len(a)])
        assert (block == a).all() or (i in changed and (block == changed[i]).all()), i
        start += len(a)


def test_on_error_skip_over_urls(s3_server, s3_bucket, tmp_path):
    client, so = s3_server.client, s3_server.storage_options
    arrs, _ = upload_shards(client, s3_bucket, tmp_path)
    ds = Dataset.from_files([f"s3://{s3_bucket}/train/shard-000.npy", f"s3://{s3_bucket}/train/shard-002.npy"],
                            storage_options=so, on_error="skip")
    client.delete_object(Bucket=s3_bucket, Key="train/shard-002.npy")
    with pytest.warns(RuntimeWarning, match="shard-002"):
        got = rows(ds)
    np.testing.assert_array_equal(np.stack(got), arrs[0])


def test_len_over_many_shards_reads_headers_only(s3_server, s3_bucket, s3_proxy):
    """300 shards of 64 KiB of data each (19 MiB): len() reads the listing and one small
    range per object."""
    client = s3_server.client
    n = 300
    data = np.zeros((16, 1024), np.float32)  # 64 KiB per shard
    raw = npy_bytes(data)

    def put(i):
        client.put_object(Bucket=s3_bucket, Key=f"many/{i:04d}.npy", Body=raw)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(put, range(n)))
    base = threading.active_count()
    s3_proxy.reset_counts()
    ds = Dataset.from_files(f"s3://{s3_bucket}/many/*.npy", storage_options=s3_proxy.storage_options)
    assert len(ds) == n * 16
    gets = s3_proxy.get_requests("GET")
    assert len(gets) <= n + 5, len(gets)  # the listing page(s), one header read per object
    assert s3_proxy.bytes_down < n * 8 * 1024, s3_proxy.bytes_down  # ≪ 19 MiB of data
    del ds
    assert wait_threads(base)

