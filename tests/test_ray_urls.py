"""tb.ray over URLs: ``read_npy`` / ``read_npz`` of objects on a real S3-compatible
server (moto's, on 127.0.0.1; tests/s3_server.py), read by a real local Ray cluster
(a head and two worker nodes with 1 CPU each; the workers reach the server over HTTP).

NumPy (``np.load`` of the same bytes) is the oracle. Headers-only on the driver is
shown by the requests a fault proxy in front of the server sees."""

from __future__ import annotations

import io
import logging

import ml_dtypes
import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")

import tensorbridge as tb  # noqa: E402
from tensorbridge import _core  # noqa: E402

ROW = (4, 3)
N_OBJECTS = 32


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level=logging.WARNING, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = True
    yield c
    ray.shutdown()
    c.shutdown()


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def npz_bytes(compressed: bool, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def make_rows(first_id, n, dtype=np.float32):
    """Rows of shape ROW whose [0, 0] element is a unique id (exact in float32)."""
    a = np.random.default_rng(first_id).standard_normal((n, *ROW)).astype(dtype)
    a[:, 0, 0] = np.arange(first_id, first_id + n)
    return a


def put(server, bucket, key, data: bytes) -> str:
    server.client.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def put_shards(server, bucket, prefix="shards"):
    """32 .npy objects (one of them empty) of rows with unique ids; the rows in order."""
    rng = np.random.default_rng(0)
    arrays, first = [], 0
    for i in range(N_OBJECTS):
        n = 0 if i == 7 else int(rng.integers(5, 40))
        a = make_rows(first, n)
        put(server, bucket, f"{prefix}/shard-{i:03d}.npy", npy_bytes(a))
        arrays.append(a)
        first += n
    return np.concatenate(arrays)


def collect(ds, column="data"):
    return np.concatenate([b[column] for b in ds.iter_batches(batch_size=50, batch_format="numpy")])


def ids(rows):
    return rows[:, 0, 0].astype(np.int64)


# ----------------------------------------------------------------- .npy objects

def test_32_objects_every_row_once_equal_to_np_load(cluster, s3_server, s3_bucket):
    want = put_shards(s3_server, s3_bucket)
    so = s3_server.storage_options
    urls = [f"s3://{s3_bucket}/shards/shard-{i:03d}.npy" for i in range(N_OBJECTS)]
    for paths in (f"s3://{s3_bucket}/shards/*.npy", urls, f"s3://{s3_bucket}/shards/"):
        ds = tb.ray.read_npy(paths, storage_options=so)
        assert ds.count() == len(want)
        got = collect(ds)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert sorted(ids(got)) == list(range(len(want)))  # every row exactly once
        np.testing.assert_array_equal(got[np.argsort(ids(got))], want)


DTYPE_CASES = {
    "uint8": np.arange(60, dtype=np.uint8).reshape(5, 4, 3),
    "int16": (np.arange(60, dtype=np.int16) - 30).reshape(5, 4, 3),
    "float16": np.linspace(-2, 2, 60).astype(np.float16).reshape(5, 4, 3),
    "float64": np.linspace(-2, 2, 60).reshape(5, 12),
    "int64-1d": np.arange(9, dtype=np.int64) * -7,
    "big-endian": np.arange(60, dtype=">i4").reshape(5, 4, 3),
    "fortran": np.asfortranarray(np.arange(60, dtype=np.float32).reshape(5, 12)),
    "bool": (np.arange(60) % 3 == 0).reshape(5, 4, 3),
    "bfloat16": np.linspace(-1, 1, 60).astype(ml_dtypes.bfloat16).reshape(5, 4, 3),
}


def test_dtypes_and_layouts_match_np_load(cluster, s3_server, s3_bucket):
    so = s3_server.storage_options
    for name, a in DTYPE_CASES.items():
        url = put(s3_server, s3_bucket, f"{name}.npy", npy_bytes(a))
        want = np.load(io.BytesIO(npy_bytes(a)))
        if name == "bfloat16":
            want = want.view(ml_dtypes.bfloat16)  # np.load gives the raw '<V2' bytes
        ds = tb.ray.read_npy(url, storage_options=so, rows_per_block=2)  # several blocks
        got = collect(ds)
        if name == "bool":
            got = got.view(bool)  # travels as uint8 0/1 (see tb.ray's docs)
        if name == "bfloat16":
            got = got.view(ml_dtypes.bfloat16)
        assert got.dtype == want.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got, want, err_msg=name)
        # and through from_ray, which restores bool / bfloat16 itself
        rows = [r.numpy() for r in tb.data.Dataset.from_ray(ds, "data")]
        np.testing.assert_array_equal(np.stack(rows), want, err_msg=name)


def test_blocks_split_inside_a_big_object_read_only_their_rows(cluster, s3_server, s3_bucket, s3_proxy):
    a = make_rows(0, 1000)
    put(s3_server, s3_bucket, "big.npy", npy_bytes(a))
    url = f"s3://{s3_bucket}/big.npy"
    ds = tb.ray.read_npy(url, storage_options=s3_server.storage_options, rows_per_block=100)
    src = tb.ray._datasource_class()(url, "npy", None, 100, False, None, None,
                                     s3_server.storage_options)
    tasks = src.get_read_tasks(4)
    assert len(tasks) == 10
    assert all(t.metadata.num_rows == 100 and t.metadata.input_files == (url,) for t in tasks)
    got = collect(ds)
    np.testing.assert_array_equal(got, a)
    assert ds.materialize().num_blocks() == 10
    # One read task's rows: ranged reads of just those bytes (through the proxy).
    s3_proxy.reset_counts()
    t = _core.load_npy_rows(url, 300, 400, None, s3_proxy.storage_options)
    np.testing.assert_array_equal(t.numpy(), a[300:400])
    assert s3_proxy.bytes_down < 100 * a[0].nbytes + 16 * 1024, s3_proxy.bytes_down
    for bad in ((5, 1001), (7, 3)):
        with pytest.raises(ValueError, match="out of range"):
            _core.load_npy_rows(url, *bad, None, s3_server.storage_options)


def test_read_tasks_make_only_their_rows_gets_no_head(cluster, s3_server, s3_bucket, s3_proxy):
    """The driver's header facts and ETag travel with each read task: a task makes no
    HEAD and reads no header, only one ranged GET of its rows (If-Match the ETag)."""
    a = make_rows(0, 1000)
    url = put(s3_server, s3_bucket, "tasks.npy", npy_bytes(a))
    ds = tb.ray.read_npy(url, storage_options=s3_proxy.storage_options, rows_per_block=100)
    s3_proxy.reset_counts()
    np.testing.assert_array_equal(collect(ds), a)
    reqs = s3_proxy.get_requests()
    assert [r.method for r in reqs] == ["GET"] * 10, [(r.method, r.headers) for r in reqs]
    assert all(r.headers.get("if-match") for r in reqs), [r.headers for r in reqs]
    starts = sorted(int(r.headers["range"].split("=")[1].split("-")[0]) for r in reqs)
    offset = len(npy_bytes(a)) - a.nbytes  # the header: never read by a task
    assert starts == [offset + i * 100 * a[0].nbytes for i in range(10)], starts


def test_object_replaced_after_planning_is_an_error_not_other_rows(cluster, s3_server, s3_bucket):
    """An object replaced (same size, other rows) after the driver read its header:
    the tasks' GETs ask for the driver's ETag, so the read fails naming the object;
    it never yields the new rows."""
    so = s3_server.storage_options
    url = put(s3_server, s3_bucket, "replaced.npy", npy_bytes(make_rows(0, 50)))
    ds = tb.ray.read_npy(url, storage_options=so)
    put(s3_server, s3_bucket, "replaced.npy", npy_bytes(make_rows(1000, 50)))
    with pytest.raises(Exception, match="replaced.npy") as info:
        collect(ds)
    assert "changed while it was being read" in str(info.value)


def test_count_and_schema_read_headers_only(cluster, s3_server, s3_bucket, s3_proxy):
    want = put_shards(s3_server, s3_bucket)
    so = s3_proxy.storage_options
    s3_proxy.reset_counts()
    ds = tb.ray.read_npy(f"s3://{s3_bucket}/shards/*.npy", storage_options=so)
    # the driver: one listing, then a small ranged read per object (headers only)
    gets = s3_proxy.get_requests("GET")
    ranged = [r for r in gets if "range" in {k.lower() for k in r.headers}]
    assert len(ranged) == N_OBJECTS
    assert s3_proxy.bytes_down < N_OBJECTS * 8192 + 64 * 1024, s3_proxy.bytes_down
    s3_proxy.reset_counts()
    assert ds.count() == len(want)
    schema = ds.schema()
    assert schema.names == ["data"]
    assert s3_proxy.request_count == 0  # count() and schema() read nothing
    arrow = schema.base_schema.field("data").type
    assert isinstance(arrow, pa.FixedShapeTensorType) and list(arrow.shape) == list(ROW)


# ----------------------------------------------------------------- .npz objects

@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_npz_objects_several_keys(cluster, s3_server, s3_bucket, compressed):
    so = s3_server.storage_options
    xs, ys, zs, first = [], [], [], 0
    for i in range(4):
        n = 20 + 7 * i
        x, y = make_rows(first, n), np.arange(first, first + n, dtype=np.int64)
        z = np.linspace(0, 1, n * 2).astype(np.float16).reshape(n, 2)
        put(s3_server, s3_bucket, f"arch/a{i}.npz", npz_bytes(compressed, x=x, y=y, z=z))
        xs.append(x), ys.append(y), zs.append(z)
        first += n
    pattern = f"s3://{s3_bucket}/arch/*.npz"
    ds = tb.ray.read_npz(pattern, storage_options=so, rows_per_block=8)
    assert ds.count() == first
    assert ds.schema().names == ["x", "y", "z"]
    batches = list(ds.iter_batches(batch_size=32, batch_format="numpy"))
    for key, want in (("x", xs), ("y", ys), ("z", zs)):
        got = np.concatenate([b[key] for b in batches])
        assert got.dtype == want[0].dtype
        np.testing.assert_array_equal(got, np.concatenate(want))
    sub = tb.ray.read_npz(pattern, keys=["y"], storage_options=so)
    assert sub.schema().names == ["y"]
    np.testing.assert_array_equal(collect(sub, "y"), np.concatenate(ys))
    if not compressed:  # a stored member's rows: ranged reads of just those rows
        url = f"s3://{s3_bucket}/arch/a3.npz"
        t = _core.load_npz_rows(url, "x", 5, 17, None, so)
        np.testing.assert_array_equal(t.numpy(), xs[3][5:17])


def test_npz_read_tasks_make_only_their_rows_gets(cluster, s3_server, s3_bucket, s3_proxy):
    """The driver's facts of each stored member (where its image lies, its header, the
    archive's ETag) travel with the read tasks: a task reads no directory and no
    header, only one ranged GET per column of its rows (If-Match the ETag)."""
    x, y = make_rows(0, 300), np.arange(300, dtype=np.int64)
    data = npz_bytes(False, x=x, y=y)
    url = put(s3_server, s3_bucket, "tasks.npz", data)
    ds = tb.ray.read_npz(url, storage_options=s3_proxy.storage_options, rows_per_block=100)
    s3_proxy.reset_counts()
    batches = list(ds.iter_batches(batch_size=300, batch_format="numpy"))
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in batches]), y)
    reqs = s3_proxy.get_requests()
    assert [r.method for r in reqs] == ["GET"] * 6, [(r.method, r.headers) for r in reqs]
    assert all(r.headers.get("if-match") for r in reqs), [r.headers for r in reqs]
    # Each GET is exactly one block's rows of one member: where NumPy put them.
    with np.load(io.BytesIO(data)) as z:
        spans = {k: (z.zip.getinfo(f"{k}.npy").header_offset, a) for k, a in (("x", x), ("y", y))}
    got = sorted(tuple(int(v) for v in r.headers["range"].split("=")[1].split("-")) for r in reqs)
    want = []
    for key, (local, a) in spans.items():
        # the member's data: after its local zip header (30 bytes, name, extra field)
        # and its .npy header
        name_len, extra_len = np.frombuffer(data[local + 26:local + 30], "<u2")
        image = local + 30 + int(name_len) + int(extra_len)
        offset = image + len(npy_bytes(a)) - a.nbytes
        rb = a[0].nbytes
        want += [(offset + i * 100 * rb, offset + (i + 1) * 100 * rb - 1) for i in range(3)]
    assert got == sorted(want), (got, sorted(want))


def test_npz_replaced_after_planning_is_an_error_not_other_rows(cluster, s3_server, s3_bucket):
    so = s3_server.storage_options
    url = put(s3_server, s3_bucket, "replaced.npz", npz_bytes(False, x=make_rows(0, 50)))
    ds = tb.ray.read_npz(url, storage_options=so)
    put(s3_server, s3_bucket, "replaced.npz", npz_bytes(False, x=make_rows(1000, 50)))
    with pytest.raises(Exception, match="replaced.npz") as info:
        collect(ds, "x")
    assert "changed while it was being read" in str(info.value)


# ----------------------------------------------------------------- errors

def test_missing_and_corrupt_objects_are_named(cluster, s3_server, s3_bucket):
    so = s3_server.storage_options
    good = put(s3_server, s3_bucket, "good.npy", npy_bytes(make_rows(0, 10)))
    missing = f"s3://{s3_bucket}/nope.npy"
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        tb.ray.read_npy([good, missing], storage_options=so)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        tb.ray.read_npy(f"s3://{s3_bucket}/nothing-here/*.npy", storage_options=so)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        tb.ray.read_npz(f"s3://{s3_bucket}/nope.npz", storage_options=so)
    # corrupt: garbage instead of a header, or data cut short → at read_npy() time
    bad = put(s3_server, s3_bucket, "bad.npy", b"this is not an npy file at all" * 10)
    with pytest.raises(ValueError, match="bad.npy"):
        tb.ray.read_npy([good, bad], storage_options=so)
    short = put(s3_server, s3_bucket, "short.npy", npy_bytes(make_rows(0, 10))[:-100])
    with pytest.raises(ValueError, match="short.npy"):
        tb.ray.read_npy(short, storage_options=so)
    badz = put(s3_server, s3_bucket, "bad.npz", b"PK\x03\x04 not really a zip" * 10)
    with pytest.raises(ValueError, match="bad.npz"):
        tb.ray.read_npz(badz, storage_options=so)


def test_object_corrupted_after_planning_is_named_at_the_driver(cluster, s3_server, s3_bucket):
    so = s3_server.storage_options
    a = make_rows(0, 50)
    url = put(s3_server, s3_bucket, "later.npy", npy_bytes(a))
    ds = tb.ray.read_npy(url, storage_options=so)  # headers read: fine
    put(s3_server, s3_bucket, "later.npy", npy_bytes(a)[:200])  # now cut short
    with pytest.raises(Exception, match="later.npy") as info:
        collect(ds)
    assert "rows 0:50" in str(info.value)


def test_storage_options_must_be_a_dict(cluster, tmp_path):
    np.save(tmp_path / "a.npy", make_rows(0, 3))
    with pytest.raises(TypeError, match="storage_options must be a dict"):
        tb.ray.read_npy(str(tmp_path / "a.npy"), storage_options=["anon"])
