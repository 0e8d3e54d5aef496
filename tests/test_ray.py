"""tb.ray on a real local Ray cluster: a head and two worker nodes with 1 CPU each.

NumPy (``np.load``) is the oracle. The node-removal test runs last (it changes the cluster).
"""

import logging
import os
import time

import ml_dtypes
import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")

import tensorbridge as tb  # noqa: E402

ROW = (4, 3)
N_FILES = 32


# ----------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False,
        "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                           "health_check_failure_threshold": 4},
    })
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level=logging.WARNING, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # Row order across blocks is otherwise up to Ray; tests that compare whole arrays
    # (no id column) rely on it. Tests with ids sort by id either way.
    ctx.execution_options.preserve_order = True
    c.test_workers = workers
    yield c
    ray.shutdown()
    c.shutdown()


def make_rows(first_id, n, dtype=np.float32, seed=0):
    """Rows of shape ROW whose [0, 0] element is a unique id (exact in float32)."""
    rng = np.random.default_rng(seed + first_id)
    a = rng.standard_normal((n, *ROW)).astype(dtype)
    a[:, 0, 0] = np.arange(first_id, first_id + n)
    return a


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    first = 0
    for i in range(N_FILES):
        n = 0 if i == 7 else int(rng.integers(5, 60))  # one empty shard
        np.save(d / f"shard-{i:03d}.npy", make_rows(first, n))
        first += n
    return d, first


def ids(rows):
    return rows[:, 0, 0].astype(np.int64)


def all_rows(d):
    return np.concatenate([np.load(p) for p in sorted(d.glob("*.npy"))])


def collect(ds, column="data"):
    return np.concatenate([b[column] for b in ds.iter_batches(batch_size=50, batch_format="numpy")])


def by_id(rows):
    return rows[np.argsort(ids(rows), kind="stable")]


# ----------------------------------------------------------------- reading

def test_every_row_once_equal_to_np_load(cluster, shards):
    d, total = shards
    ds = tb.ray.read_npy(str(d))
    assert ds.count() == total
    got = collect(ds)
    want = all_rows(d)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert sorted(ids(got).tolist()) == list(range(total))  # every row exactly once
    np.testing.assert_array_equal(by_id(got), want)
    # glob and list forms read the same files
    assert tb.ray.read_npy(str(d / "shard-00*.npy")).count() == sum(
        len(np.load(p)) for p in sorted(d.glob("shard-00*.npy")))
    files = sorted(str(p) for p in d.glob("*.npy"))[:3]
    assert tb.ray.read_npy(files).count() == sum(len(np.load(p)) for p in files)


def test_shuffle_files_and_override_num_blocks(cluster, shards):
    d, total = shards
    ds = tb.ray.read_npy(str(d), shuffle_files=True, seed=7, override_num_blocks=5)
    got = collect(ds)
    assert sorted(ids(got).tolist()) == list(range(total))
    np.testing.assert_array_equal(by_id(got), all_rows(d))


@pytest.mark.parametrize("name", ["bool", "int8", "uint16", "int64", "float16", "float64", "bfloat16"])
def test_dtypes_match_np_load(cluster, tmp_path, name):
    rng = np.random.default_rng(1)
    if name == "bool":
        a = rng.integers(0, 2, (37, 2, 5)).astype(bool)
    elif name == "bfloat16":
        a = rng.standard_normal((37, 2, 5)).astype(ml_dtypes.bfloat16)
    elif name.startswith("float"):
        a = rng.standard_normal((37, 2, 5)).astype(name)
    else:
        info = np.iinfo(name)
        a = rng.integers(info.min, info.max, (37, 2, 5), dtype=name, endpoint=True)
    np.save(tmp_path / "a.npy", a)
    ds = tb.ray.read_npy(str(tmp_path / "a.npy"), rows_per_block=10)
    got = collect(ds)
    raw = np.load(tmp_path / "a.npy")  # bfloat16: '<V2' as NumPy writes it
    if name in ("bool", "bfloat16"):
        # raw bytes, tagged in the field metadata (documented)
        assert ds.schema().base_schema.field("data").metadata == {b"tensorbridge.dtype": name.encode()}
        got = got.view(a.dtype)
    assert got.dtype == a.dtype and got.shape == a.shape
    assert got.tobytes() == np.ascontiguousarray(raw).tobytes()
    # from_ray gives tensors of the real dtype
    rows = [t.numpy() for t in tb.data.Dataset.from_ray(ds, "data")]
    assert rows[0].dtype == a.dtype
    assert np.stack(rows).tobytes() == a.tobytes()


@pytest.mark.parametrize("layout", ["big-endian", "fortran"])
def test_non_native_layouts_are_converted(cluster, tmp_path, layout):
    a = np.arange(60 * 6, dtype=np.int32).reshape(60, 2, 3)
    a = a.astype(">i4") if layout == "big-endian" else np.asfortranarray(a.astype(np.float64))
    np.save(tmp_path / "a.npy", a)
    got = collect(tb.ray.read_npy(str(tmp_path / "a.npy"), rows_per_block=25))
    want = np.load(tmp_path / "a.npy")
    assert got.dtype == want.dtype.newbyteorder("=")
    np.testing.assert_array_equal(by_id(got), want)


def test_npz_several_keys(cluster, tmp_path):
    parts, first = [], 0
    for i, save in enumerate([np.savez, np.savez_compressed, lambda p, **kw: tb.savez(p, **kw)]):
        n = 20 + 7 * i
        x = make_rows(first, n)
        y = np.arange(first, first + n, dtype=np.int64)
        z = np.full((n, 5), i, np.uint8)
        save(str(tmp_path / f"part{i}.npz"), x=x, y=y, z=z)
        parts.append((x, y, z))
        first += n
    ds = tb.ray.read_npz(str(tmp_path), rows_per_block=8)
    assert ds.count() == first
    assert ds.schema().names == ["x", "y", "z"]
    batches = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
    x = np.concatenate([b["x"] for b in batches])
    y = np.concatenate([b["y"] for b in batches])
    z = np.concatenate([b["z"] for b in batches])
    order = np.argsort(y)
    np.testing.assert_array_equal(x[order], np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(y[order], np.arange(first))
    np.testing.assert_array_equal(z[order], np.concatenate([p[2] for p in parts]))
    assert ids(x).tolist() == y.tolist()  # the columns of a row stay together
    # chosen keys only
    sub = tb.ray.read_npz(str(tmp_path / "part*.npz"), keys=["y"])
    assert sub.schema().names == ["y"]
    assert sorted(sub.to_pandas()["y"].tolist()) == list(range(first))
    with pytest.raises(KeyError, match=r"part0\.npz.*no member 'nope'"):
        tb.ray.read_npz(str(tmp_path / "part0.npz"), keys=["nope"])


def test_npz_bfloat16_and_bool_members(cluster, tmp_path):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((30, 3, 2)).astype(ml_dtypes.bfloat16)
    m = rng.integers(0, 2, (30, 7)).astype(bool)
    np.savez(tmp_path / "a.npz", w=w, m=m)  # bfloat16 stored as '<V2', unaligned
    ds = tb.ray.read_npz(str(tmp_path / "a.npz"), rows_per_block=8)
    rows = list(tb.data.Dataset.from_ray(ds))
    assert rows[0]["w"].dtype == tb.bfloat16 and rows[0]["m"].dtype == tb.bool
    assert np.stack([r["w"].numpy() for r in rows]).tobytes() == w.tobytes()
    assert np.array_equal(np.stack([r["m"].numpy() for r in rows]), m)


def test_types_without_arrow_equivalent_are_refused_naming_the_file(cluster, tmp_path):
    np.save(tmp_path / "c.npy", np.ones((3, 2), np.complex64))
    with pytest.raises(TypeError, match=r"c\.npy.*complex64.*no Arrow type"):
        tb.ray.read_npy(str(tmp_path / "c.npy"))
    np.save(tmp_path / "s.npy", np.array([["a", "b"]]))
    with pytest.raises(TypeError, match=r"s\.npy.*cannot read"):
        tb.ray.read_npy(str(tmp_path / "s.npy"))


def _mapped_ranges(path):
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith(str(path)):
                lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
                out.append((lo, hi))
    return out


def test_blocks_split_inside_big_files_zero_copy(cluster, tmp_path):
    a = make_rows(0, 1000)
    path = tmp_path / "big.npy"
    np.save(path, a)
    src = tb.ray._datasource_class()(str(path), "npy", None, 100, False, None, None)
    tasks = src.get_read_tasks(4)
    assert len(tasks) == 10  # one file, ten read tasks
    row_bytes = a[0].nbytes
    for task in tasks:
        assert task.metadata.num_rows == 100 and task.metadata.size_bytes == 100 * row_bytes
        assert task.metadata.input_files == (str(path),)
    assert src.estimate_inmemory_data_size() == a.nbytes
    # run the read tasks here: each block is its row range, over the file's mapping
    for i, task in enumerate(tasks):
        (table,) = list(task())
        col = table.column("data").chunk(0)
        assert isinstance(col.type, pa.FixedShapeTensorType)
        np.testing.assert_array_equal(col.to_numpy_ndarray(), a[i * 100:(i + 1) * 100])
        addr = col.storage.flatten().buffers()[1].address
        assert any(lo <= addr < hi for lo, hi in _mapped_ranges(path)), "block is not over the file mapping"
    # override_num_blocks: exactly that many tasks, grouping or halving ranges
    for want in (3, 16):
        src2 = src.__class__(str(path), "npy", None, None, False, None, want)
        tasks = src2.get_read_tasks(want)
        assert len(tasks) == want and sum(t.metadata.num_rows for t in tasks) == 1000
    # through Ray: ten blocks, every row once
    ds = tb.ray.read_npy(str(path), rows_per_block=100)
    got = collect(ds)
    np.testing.assert_array_equal(by_id(got), a)
    # default block size: about DEFAULT_BLOCK_BYTES per block
    assert len(src.__class__(str(path), "npy", None, None, False, None, None).get_read_tasks(4)) == 1
    import tensorbridge._ray_files as ray_files  # where the datasource reads it

    assert ray_files.DEFAULT_BLOCK_BYTES == tb.ray.DEFAULT_BLOCK_BYTES
    old = ray_files.DEFAULT_BLOCK_BYTES
    try:
        ray_files.DEFAULT_BLOCK_BYTES = 250 * row_bytes
        tasks = src.__class__(str(path), "npy", None, None, False, None, None).get_read_tasks(100)
        assert [t.metadata.num_rows for t in tasks] == [250] * 4
    finally:
        ray_files.DEFAULT_BLOCK_BYTES = old


def test_count_and_schema_read_no_data(cluster, tmp_path):
    """Headers are read when the dataset is made; afterwards the data is destroyed
    (files truncated to their headers), so any data read would fail."""
    lengths = []
    for i in range(4):
        a = make_rows(100 * i, 10 + i)
        np.save(tmp_path / f"p{i}.npy", a)
        lengths.append(a.nbytes)
    ds = tb.ray.read_npy(str(tmp_path))
    for i, nbytes in enumerate(lengths):
        p = tmp_path / f"p{i}.npy"
        os.truncate(p, os.path.getsize(p) - nbytes)
    assert ds.count() == 10 + 11 + 12 + 13
    schema = ds.schema()
    assert schema.names == ["data"]
    assert schema.base_schema.field("data").type == pa.fixed_shape_tensor(pa.float32(), list(ROW))
    with pytest.raises(Exception, match=r"p\d\.npy") as e:
        ds.take_all()
    assert "tensorbridge" in str(e.value) or ".npy" in str(e.value)


def test_corrupt_file_error_names_it(cluster, tmp_path):
    np.save(tmp_path / "good.npy", make_rows(0, 10))
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY\x01\x00garbage-header" + b"\0" * 100)
    with pytest.raises(ValueError, match=r"bad\.npy.*not a valid \.npy header"):
        tb.ray.read_npy(str(tmp_path))
    # a header that promises more rows than the file holds: found in a Ray worker
    np.save(bad, make_rows(10, 50))
    os.truncate(bad, os.path.getsize(bad) - 100)
    ds = tb.ray.read_npy(str(tmp_path))
    with pytest.raises(Exception, match=r"bad\.npy") as e:
        collect(ds)
    assert "good.npy" not in str(e.value)


def test_missing_files_and_mismatched_rows_are_named(cluster, tmp_path):
    # (URLs and storage_options: tests/test_ray_urls.py, against a real S3 server)
    np.save(tmp_path / "a.npy", make_rows(0, 3))
    with pytest.raises(FileNotFoundError, match="no files match"):
        tb.ray.read_npy(str(tmp_path / "nothing-*.npy"))
    np.save(tmp_path / "b.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"b\.npy.*row shape \(5,\).*a\.npy"):
        tb.ray.read_npy(str(tmp_path))


# ----------------------------------------------------------------- consuming side

def test_from_ray_dataset_elements_and_epochs(cluster, shards):
    d, total = shards
    ds = tb.ray.read_npy(str(d))
    tds = tb.data.Dataset.from_ray(ds)
    assert len(tds) == total
    first = next(iter(tds))
    assert set(first) == {"data"} and first["data"].shape == ROW and first["data"].dtype == tb.float32
    batches = list(tb.data.Dataset.from_ray(ds, "data").map(tb.ops.cast(tb.float64)).batch(64))
    got = np.concatenate([b.numpy() for b in batches])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(by_id(got), all_rows(d).astype(np.float64))
    # two epochs (repeat re-reads the Ray data)
    two = np.concatenate([b.numpy() for b in tb.data.Dataset.from_ray(ds, "data").repeat(2).batch(100)])
    assert sorted(ids(two).tolist()) == sorted(list(range(total)) * 2)
    with pytest.raises(ValueError, match=r"no column\(s\) \['nope'\].*'data'"):
        tb.data.Dataset.from_ray(ds, ["nope"])
    with pytest.raises(TypeError, match="ray.data.Dataset or DataIterator"):
        tb.data.Dataset.from_ray([1, 2, 3])


def test_from_ray_takes_each_block_once_as_zero_copy_tensors(cluster, shards, monkeypatch):
    """Each Ray block crosses into tensorbridge once (one from_arrow per column and
    block, not per row); the rows are views of the block's Arrow buffer."""
    import tensorbridge.arrow as tb_arrow

    d, total = shards
    ds = tb.ray.read_npy(str(d), rows_per_block=64).materialize()
    n_blocks = ds.num_blocks()
    real, seen = tb_arrow.from_arrow, []

    def counting(col):
        t = real(col)
        seen.append((t.data_ptr, t.nbytes))
        return t

    monkeypatch.setattr(tb_arrow, "from_arrow", counting)
    rows = list(tb.data.Dataset.from_ray(ds, "data"))
    assert len(rows) == total
    assert len(seen) <= n_blocks  # once per (non-empty) block, however many rows
    assert all(any(lo <= r.data_ptr < lo + n for lo, n in seen) for r in rows)
    np.testing.assert_array_equal(by_id(np.stack([r.numpy() for r in rows])), all_rows(d))


def test_from_ray_rows_fewer_than_counted_is_an_error(cluster, monkeypatch):
    four = ray.data.range(10).limit(4).materialize()
    tds = tb.data.Dataset.from_ray(four, "id")
    assert len(tds) == 4
    assert [int(x.numpy()) for x in tds] == [0, 1, 2, 3]
    # A Ray dataset whose count() promises more rows than its blocks hold.
    monkeypatch.setattr(type(four), "count", lambda self: 6)
    short = tb.data.Dataset.from_ray(four, "id")
    assert len(short) == 6
    with pytest.raises(RuntimeError, match=r"ended after 4 rows but count\(\) said 6"):
        list(short)


@ray.remote(num_cpus=0)
class Trainer:
    def consume(self, it):
        import tensorbridge as tb

        seen = []
        for batch in tb.data.Dataset.from_ray(it, "data").batch(16):
            seen.extend(batch.numpy()[:, 0, 0].astype(int).tolist())
        return seen


def test_streaming_split_two_actors(cluster, shards):
    d, total = shards
    ds = tb.ray.read_npy(str(d))
    its = ds.streaming_split(2, equal=False)
    trainers = [Trainer.remote() for _ in its]
    parts = ray.get([t.consume.remote(it) for t, it in zip(trainers, its)], timeout=120)
    assert all(parts)  # both trainers got rows
    assert sorted(parts[0] + parts[1]) == list(range(total))  # the union: every row once


def test_without_ray_the_error_says_what_to_install():
    import subprocess
    import sys

    code = ("import sys; sys.modules['ray'] = None; import tensorbridge as tb\n"
            "try:\n    tb.ray.read_npy('x.npy')\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert 'pip install "ray[data]"' in out


# ----------------------------------------------------------------- faults (last)

def test_worker_node_removed_mid_read(cluster, tmp_path):
    total, first = 0, 0
    for i in range(24):
        np.save(tmp_path / f"f{i:02d}.npy", make_rows(first, 40))
        first += 40
    total = first

    def slow(batch):
        import ray

        time.sleep(0.15)
        node = ray.get_runtime_context().get_node_id()
        return {"data": batch["data"], "node": np.array([node] * len(batch["data"]))}

    victim = cluster.test_workers[0]
    ds = tb.ray.read_npy(str(tmp_path), rows_per_block=20).map_batches(slow, batch_size=None)
    seen, nodes, removed = [], set(), False
    for batch in ds.iter_batches(batch_size=20, batch_format="numpy"):
        seen.extend(ids(batch["data"]).tolist())
        nodes.update(batch["node"].tolist())
        if not removed and len(seen) >= 100:
            cluster.remove_node(victim, allow_graceful=False)
            removed = True
    assert removed
    assert victim.node_id in nodes  # the removed node was doing read tasks
    assert len(nodes) >= 2
    assert sorted(seen) == list(range(total))  # every row exactly once despite the lost node

