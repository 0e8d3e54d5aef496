"""Every reader and writer through a real S3-compatible server (moto, started by the
test suite on 127.0.0.1; see s3_server.py): s3:// URLs with ``storage_options`` or
the AWS environment variables. Values are compared bit for bit with ``np.load`` of
the same bytes (downloaded or uploaded with boto3, independently of tensorbridge).

Faults, bytes on the wire and request counts: test_object_storage_faults.py."""

import io
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy

import tensorbridge as tb
from conftest import NAMES, SHAPES, bits, np_dtype, sample, variants
from s3_server import list_keys, moto_auth_enabled, pending_uploads

def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def native(a):
    """``a`` in native byte order (what tensorbridge gives back)."""
    return a.astype(a.dtype.newbyteorder("=")) if a.dtype.itemsize > 1 and a.dtype.kind != "V" else a


def as_numpy_reads(raw, name):
    a = np.load(io.BytesIO(raw))
    return a.view(ml_dtypes.bfloat16) if name == "bfloat16" else a


def get(client, bucket, key):
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def put(client, bucket, key, data):
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


# --- .npy ------------------------------------------------------------------------------


def test_load_npy_every_dtype_order_and_shape(s3_server, s3_bucket, dtype_name):
    client, so = s3_server.client, s3_server.storage_options
    kwargs = {"dtype": tb.bfloat16} if dtype_name == "bfloat16" else {}
    for label, a in variants(dtype_name):
        raw = npy_bytes(a)
        url = put(client, s3_bucket, f"{dtype_name}/{label}.npy", raw)
        t = tb.load(url, storage_options=so, **kwargs)
        assert isinstance(t, tb.Tensor), label
        expected = as_numpy_reads(raw, dtype_name)
        assert t.shape == expected.shape, label
        assert t.dtype == dtype_name, label
        assert bits(t.numpy()) == bits(native(expected)), label


def test_save_npy_every_dtype_read_by_numpy(s3_server, s3_bucket, dtype_name):
    client, so = s3_server.client, s3_server.storage_options
    for label, a in variants(dtype_name):
        key = f"{dtype_name}/{label}.npy"
        tb.save(f"s3://{s3_bucket}/{key}", a, storage_options=so)
        back = as_numpy_reads(get(client, s3_bucket, key), dtype_name)
        assert back.shape == a.shape, label
        assert bits(back) == bits(native(a)), label
        # and the tensorbridge reader gives the same back
        kwargs = {"dtype": tb.bfloat16} if dtype_name == "bfloat16" else {}
        t = tb.load(f"s3://{s3_bucket}/{key}", storage_options=so, **kwargs)
        assert bits(t.numpy()) == bits(native(a)), label


def test_load_npy_with_cast_and_large_object(s3_server, s3_bucket):
    """A cast on the way, and an object larger than one ranged read (several MiB)."""
    client, so = s3_server.client, s3_server.storage_options
    a = np.random.default_rng(1).standard_normal((3, 1 << 20)).astype(">f4")  # 12 MiB, big-endian
    raw = npy_bytes(a)
    url = put(client, s3_bucket, "big.npy", raw)
    t = tb.load(url, storage_options=so)
    assert bits(t.numpy()) == bits(native(np.load(io.BytesIO(raw))))
    t = tb.load(url, storage_options=so, dtype="float64")
    np.testing.assert_array_equal(t.numpy(), a.astype(np.float64))


def test_configuration_from_the_environment(s3_env, s3_bucket):
    client = s3_env.client
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    url = put(client, s3_bucket, "env.npy", npy_bytes(a))
    np.testing.assert_array_equal(tb.load(url).numpy(), a)
    tb.save(f"s3://{s3_bucket}/env-out.npy", a * 2)
    np.testing.assert_array_equal(np.load(io.BytesIO(get(client, s3_bucket, "env-out.npy"))), a * 2)


# --- .npz ------------------------------------------------------------------------------


def npz_arrays():
    arrays = {name: sample(name, (4, 3), seed=i) for i, name in enumerate(NAMES) if name != "bfloat16"}
    arrays["fortran"] = np.asfortranarray(sample("float64", (5, 6)))
    arrays["swapped"] = sample("int32", (7,)).astype(">i4")
    arrays["scalar"] = np.array(3.5)
    arrays["empty"] = np.zeros((0, 3), np.complex64)
    return arrays


@pytest.mark.parametrize("writer", [np.savez, np.savez_compressed])
def test_load_npz_written_by_numpy(s3_server, s3_bucket, writer):
    client, so = s3_server.client, s3_server.storage_options
    arrays = npz_arrays()
    buf = io.BytesIO()
    writer(buf, **arrays)
    raw = buf.getvalue()
    url = put(client, s3_bucket, "a.npz", raw)
    expected = np.load(io.BytesIO(raw))
    for z in (tb.load(url, storage_options=so), tb.NpzFile(url, storage_options=so)):
        assert isinstance(z, tb.NpzFile)
        assert z.keys() == list(expected.keys())
        for k in expected:
            want = expected[k]
            got = z[k].numpy()
            assert got.shape == want.shape, k
            assert bits(got) == bits(native(want)), k
        z.close()


@pytest.mark.parametrize("compress", [False, True])
def test_savez_read_by_numpy(s3_server, s3_bucket, compress):
    client, so = s3_server.client, s3_server.storage_options
    arrays = npz_arrays()
    arrays["bf16"] = sample("bfloat16", (3, 2))
    tb.savez(f"s3://{s3_bucket}/out.npz", compress=compress, storage_options=so, **arrays)
    back = np.load(io.BytesIO(get(client, s3_bucket, "out.npz")))
    assert list(back.keys()) == list(arrays)
    for k, a in arrays.items():
        got = back[k].view(ml_dtypes.bfloat16) if k == "bf16" else back[k]
        assert got.shape == a.shape, k
        assert bits(got) == bits(native(a)), k
    z = tb.load(f"s3://{s3_bucket}/out.npz", storage_options=so, dtype=None)
    assert bits(z["fortran"].numpy()) == bits(arrays["fortran"])


# --- TFRecord and safetensors ----------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "GZIP"])
def test_tfrecord_round_trip(s3_server, s3_bucket, tmp_path, compression):
    client, so = s3_server.client, s3_server.storage_options
    features = {
        "x": sample("float32", (6, 3)),
        "y": np.arange(6, dtype=np.int64),
        "z": sample("complex128", (6, 2, 2)),
        "h": sample("bfloat16", (6,)),
    }
    url = f"s3://{s3_bucket}/recs.tfrecord"
    written = tb.io.write_tfrecord(url, features, compression=compression, storage_options=so)
    assert written == [url]
    local = tmp_path / "recs.tfrecord"
    tb.io.write_tfrecord(local, features, compression=compression)
    remote_bytes = get(client, s3_bucket, "recs.tfrecord")
    if compression is None:
        assert remote_bytes == local.read_bytes()
    # The object, downloaded, reads as the local file does ...
    (tmp_path / "down.tfrecord").write_bytes(remote_bytes)
    want = list(tb.io.read_tfrecord(tmp_path / "down.tfrecord", compression=compression))
    assert len(want) == 6
    # ... and reads the same straight from the server, for a file written by either side.
    url2 = put(client, s3_bucket, "local.tfrecord", local.read_bytes())
    for u in (url, url2):
        got = list(tb.io.read_tfrecord(u, compression=compression, storage_options=so))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.keys() == w.keys()
            for k in w:
                assert bits(g[k].numpy()) == bits(w[k].numpy()), k
    for i, rec in enumerate(want):
        for k, a in features.items():
            assert bits(rec[k].numpy()) == bits(a[i]), k


def test_tfrecord_shards_to_a_prefix(s3_server, s3_bucket):
    so = s3_server.storage_options
    x = np.arange(10, dtype=np.float32)
    written = tb.io.write_tfrecord(f"s3://{s3_bucket}/d/out.tfrecord", {"x": x}, shards=2, storage_options=so)
    assert written == [f"s3://{s3_bucket}/d/out-0000{i}-of-00002.tfrecord" for i in range(2)]
    assert list_keys(s3_server.client, s3_bucket) == [w.split("/", 3)[3] for w in written]
    got = [r["x"].numpy()[()] for r in tb.io.read_tfrecord(written, storage_options=so)]
    assert got == list(x)


def test_safetensors_round_trip(s3_server, s3_bucket, tmp_path):
    client, so = s3_server.client, s3_server.storage_options
    named = {name: sample(name, (3, 4), seed=i) for i, name in enumerate(NAMES) if name != "complex128"}
    named["scalar"] = np.array(1.5, np.float32)
    named["empty"] = np.zeros((0, 5), np.int16)
    url = f"s3://{s3_bucket}/m.safetensors"
    tb.io.save_safetensors(url, named, metadata={"k": "v"}, storage_options=so)
    raw = get(client, s3_bucket, "m.safetensors")
    # The safetensors package reads it (NumPy has no bfloat16: that one is checked
    # through tensorbridge's local reader, itself tested against the package).
    url_np = f"s3://{s3_bucket}/np.safetensors"
    tb.io.save_safetensors(url_np, {k: v for k, v in named.items() if k != "bfloat16"}, storage_options=so)
    ref = safetensors.numpy.load(get(client, s3_bucket, "np.safetensors"))
    assert set(ref) == set(named) - {"bfloat16"}
    for k, a in ref.items():
        assert bits(a) == bits(named[k]), k
    local = tmp_path / "m.safetensors"
    local.write_bytes(raw)
    assert bits(tb.io.load_safetensors(local)["bfloat16"].numpy()) == bits(named["bfloat16"])
    # Read back, for a file written by either side.
    url2 = put(client, s3_bucket, "ref.safetensors", safetensors.numpy.save({k: v for k, v in named.items() if k != "bfloat16"}))
    got = tb.io.load_safetensors(url, storage_options=so)
    assert list(got) == list(named) or set(got) == set(named)
    for k, a in named.items():
        assert bits(got[k].numpy()) == bits(a), k
    got2 = tb.io.load_safetensors(url2, storage_options=so)
    for k, t in got2.items():
        assert bits(t.numpy()) == bits(named[k]), k
    assert tb.io.safetensors_metadata(url, storage_options=so) == {"k": "v"}


# --- convert and the CLI ---------------------------------------------------------------


def test_convert_file_either_side_remote(s3_server, s3_bucket, tmp_path):
    client, so = s3_server.client, s3_server.storage_options
    a = np.asfortranarray(sample("float32", (40, 30)))
    src = put(client, s3_bucket, "src.npy", npy_bytes(a))
    tb.convert_file(src, tmp_path / "a.npz", storage_options=so)
    with np.load(tmp_path / "a.npz") as z:
        assert list(z.keys()) == ["src"]  # an .npy's member is named after its file stem
        np.testing.assert_array_equal(z["src"], a)
    tb.convert_file(tmp_path / "a.npz", f"s3://{s3_bucket}/back.npy", dtype="float64", storage_options=so)
    back = np.load(io.BytesIO(get(client, s3_bucket, "back.npy")))
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, a.astype(np.float64))
    tb.convert_file(src, f"s3://{s3_bucket}/copy.safetensors", storage_options=so)
    ref = safetensors.numpy.load(get(client, s3_bucket, "copy.safetensors"))
    np.testing.assert_array_equal(next(iter(ref.values())), a)


def cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "tensorbridge._cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def aws_env(endpoint):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    return env


def test_cli_inspect_and_convert_remote(s3_server, s3_bucket, tmp_path):
    client = s3_server.client
    a = sample("int16", (8, 9))
    buf = io.BytesIO()
    np.savez_compressed(buf, first=a, second=a.T.copy())
    url = put(client, s3_bucket, "x.npz", buf.getvalue())
    env = aws_env(s3_server.endpoint)
    r = cli("inspect", url, "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert "first" in r.stdout and "second" in r.stdout and "int16" in r.stdout
    r = cli("convert", url, str(tmp_path / "first.npy"), "--member", "first", env=env)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "first.npy"), a)
    r = cli("convert", str(tmp_path / "first.npy"), f"s3://{s3_bucket}/up.npy", env=env)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(io.BytesIO(get(client, s3_bucket, "up.npy"))), a)
    r = cli("inspect", f"s3://{s3_bucket}/nope.npy", env=env)
    assert r.returncode != 0 and f"s3://{s3_bucket}/nope.npy" in r.stderr


# --- errors ----------------------------------------------------------------------------


def test_missing_object_and_bucket(s3_server, s3_bucket):
    so = s3_server.storage_options
    for url in (f"s3://{s3_bucket}/missing.npy", "s3://no-such-bucket-tb/x.npy", f"s3://{s3_bucket}/missing.npz"):
        with pytest.raises(FileNotFoundError, match=url.replace(".", r"\.")):
            tb.load(url, storage_options=so)


def test_missing_object_io(s3_server, s3_bucket):
    so = s3_server.storage_options
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        tb.io.load_safetensors(f"s3://{s3_bucket}/missing.safetensors", storage_options=so)
    with pytest.raises(FileNotFoundError, match="missing.tfrecord"):
        list(tb.io.read_tfrecord(f"s3://{s3_bucket}/missing.tfrecord", storage_options=so))


def test_wrong_credentials(s3_server, s3_bucket):
    client = s3_server.client
    url = put(client, s3_bucket, "k.npy", npy_bytes(np.arange(3)))
    bad = dict(s3_server.storage_options, aws_access_key_id="AKIAWRONGWRONGWRONG", aws_secret_access_key="nope")
    with moto_auth_enabled():
        with pytest.raises(PermissionError, match="k.npy"):
            tb.load(url, storage_options=bad)
        with pytest.raises(PermissionError, match="w.npy"):
            tb.save(f"s3://{s3_bucket}/w.npy", np.arange(3), storage_options=bad)
    assert list_keys(client, s3_bucket) == ["k.npy"]


def test_unsupported_scheme_and_mmap(s3_server, s3_bucket):
    so = s3_server.storage_options
    with pytest.raises(ValueError, match=r"ftp.*s3"):
        tb.load("ftp://host/x.npy")
    with pytest.raises(ValueError, match=r"ftp.*s3"):
        tb.save("ftp://host/x.npy", np.arange(3))
    url = put(s3_server.client, s3_bucket, "m.npy", npy_bytes(np.arange(3)))
    with pytest.raises(ValueError, match="mmap"):
        tb.load(url, mmap=True, storage_options=so)
    # mmap=False / None read into memory
    assert not tb.load(url, mmap=False, storage_options=so).is_view


def test_failed_write_leaves_nothing(s3_server, s3_bucket):
    """A writer whose source fails mid-way (an unconvertible item) leaves no object and no
    pending multipart upload."""
    client, so = s3_server.client, s3_server.storage_options
    tb.savez(f"s3://{s3_bucket}/good.npz", storage_options=so, a=np.arange(3))
    assert list_keys(client, s3_bucket) == ["good.npz"]
    client.delete_object(Bucket=s3_bucket, Key="good.npz")
    with pytest.raises((TypeError, ValueError)):
        tb.savez(f"s3://{s3_bucket}/bad.npz", storage_options=so, a=np.arange(3), b=object())
    with pytest.raises((TypeError, ValueError)):
        tb.io.save_safetensors(f"s3://{s3_bucket}/bad.safetensors", {"c": np.zeros(2, np.complex128)}, storage_options=so)
    assert list_keys(client, s3_bucket) == []
    assert pending_uploads(client, s3_bucket) == []


# --- tb.load(fileobj) over an fsspec (s3fs) file -----------------------------------------


def test_load_from_an_s3fs_file_object(s3_server, s3_bucket):
    import s3fs

    client = s3_server.client
    fs = s3fs.S3FileSystem(key="testing", secret="testing",
                           client_kwargs={"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"})
    a = np.asfortranarray(sample("float64", (30, 20))).astype(">f8")
    put(client, s3_bucket, "f.npy", npy_bytes(a))
    buf = io.BytesIO()
    np.savez_compressed(buf, a=a, b=np.arange(5, dtype=np.uint16))
    put(client, s3_bucket, "f.npz", buf.getvalue())
    with fs.open(f"{s3_bucket}/f.npy", "rb") as f:
        t = tb.load(f)
        assert f.tell() == len(npy_bytes(a))
    assert f"{s3_bucket}/f.npy" in f.path
    assert bits(t.numpy()) == bits(native(a))
    with fs.open(f"{s3_bucket}/f.npz", "rb") as f:
        z = tb.load(f)
    with np.load(io.BytesIO(buf.getvalue())) as want:
        for k in want:
            assert bits(z[k].numpy()) == bits(native(want[k])), k
    with fs.open(f"{s3_bucket}/f.npy", "rb") as f, pytest.raises(ValueError, match="mmap"):
        tb.load(f, mmap=True)
