"""Dataset.from_files over s3:// URLs opens the next object of the file order ahead
(issue 9): its first GET is in flight while the rows before it are read. The order
of the elements stays exactly that of local copies of the same files (interleave,
shuffle_files, shard, on_error="skip" with an object that fails when it is opened
ahead, iterator state at every kind of position), and closing the iterator cancels
the request made ahead (through the counting fault proxy)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import warnings

import numpy as np
import pytest

import tensorbridge as tb
from conftest import wait_threads
from tensorbridge.data import Dataset

SIZES = (5, 1, 9, 4, 7, 3, 6, 2)


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def rows(ds) -> list:
    return [np.asarray(e) for e in ds.as_numpy_iterator()]


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@pytest.fixture()
def copies(s3_server, s3_bucket, tmp_path):
    """The same shards locally and in the bucket (each row holds its shard and row
    number, so an element out of place cannot go unnoticed)."""
    local, remote = [], []
    for i, n in enumerate(SIZES):
        a = np.column_stack([np.full(n, i, np.int32), np.arange(n, dtype=np.int32)])
        data = npy_bytes(a)
        p = tmp_path / f"s-{i:02d}.npy"
        p.write_bytes(data)
        local.append(str(p))
        s3_server.client.put_object(Bucket=s3_bucket, Key=f"ahead/s-{i:02d}.npy", Body=data)
        remote.append(f"s3://{s3_bucket}/ahead/s-{i:02d}.npy")
    return local, remote, s3_server.storage_options


@pytest.mark.parametrize("kw", [
    {},
    {"cycle_length": 2},
    {"cycle_length": 3, "block_length": 2},
    {"shuffle_files": True, "seed": 11},
    {"shuffle_files": True, "seed": 4, "cycle_length": 2, "block_length": 3},
])
def test_order_equals_local_copies(copies, kw):
    local, remote, so = copies
    lds = Dataset.from_files(local, **kw)
    rds = Dataset.from_files(remote, storage_options=so, **kw)
    for _ in range(2):  # two epochs (a new file order each when shuffled)
        assert_same(rows(rds), rows(lds))
    for k in (0, 2):
        assert_same(rows(rds.shard(3, k)), rows(lds.shard(3, k)))
    assert_same(rows(rds.batch(4)), rows(lds.batch(4)))


@pytest.mark.parametrize("cycle", [1, 2])
def test_object_failing_when_opened_ahead_is_skipped_at_its_place(copies, s3_server, s3_bucket, cycle):
    """Objects deleted (or cut short) after the dataset was made fail when they are
    opened ahead: skipped at the same point of the order as the local file removed
    the same way, with a warning naming each."""
    local, remote, so = copies
    rds = Dataset.from_files(remote, storage_options=so, on_error="skip", cycle_length=cycle)
    lds = Dataset.from_files(local, on_error="skip", cycle_length=cycle)
    strict = Dataset.from_files(remote, storage_options=so, cycle_length=cycle)
    s3_server.client.delete_object(Bucket=s3_bucket, Key="ahead/s-03.npy")
    data = open(local[6], "rb").read()
    s3_server.client.put_object(Bucket=s3_bucket, Key="ahead/s-06.npy", Body=data[:-8])
    os.remove(local[3])
    open(local[6], "wb").write(data[:-8])
    with pytest.warns(RuntimeWarning) as rw:
        got = rows(rds)
    names = [str(w.message) for w in rw if "skipping" in str(w.message)]
    assert any("s-03.npy" in m for m in names) and any("s-06.npy" in m for m in names), names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = rows(lds)
    assert_same(got, want)
    assert {int(g[0]) for g in got} == set(range(len(SIZES))) - {3, 6}
    # Without skip: the error names the object, after the rows before it.
    it = strict.iterator()
    seen = []
    with pytest.raises(Exception, match="s-03.npy"):
        for e in it:
            seen.append(np.asarray(e))
    assert {int(g[0]) for g in seen} <= {0, 1, 2, 4}
    if cycle == 1:
        assert_same(seen, want[: sum(SIZES[:3])])


@pytest.mark.parametrize("kw", [{}, {"cycle_length": 2, "block_length": 2},
                                {"shuffle_files": True, "seed": 2}])
def test_state_saved_anywhere_resumes_like_local(copies, kw):
    """A state saved at every position (at object boundaries too, where an object is
    opened ahead but not yet started) resumes with exactly the rest."""
    local, remote, so = copies
    full = rows(Dataset.from_files(local, **kw))
    for k in range(0, len(full) + 1, 3):
        it = Dataset.from_files(remote, storage_options=so, **kw).iterator()
        for _ in range(k):
            next(it)
        state = json.loads(json.dumps(it.get_state()))
        it.close()
        rest = [np.asarray(e) for e in Dataset.from_files(remote, storage_options=so, **kw).iterator(state)]
        assert_same(rest, full[k:])


def test_closing_the_iterator_cancels_the_object_opened_ahead(s3_server, s3_bucket, s3_proxy):
    """The first rows of object a are read; object b's first GET (made ahead) is held
    by the proxy. Closing the iterator must cancel that request: once the proxy lets
    it through, the client has gone (the 8 MiB response is not read), and no thread
    is left."""
    base = threading.active_count()
    client = s3_server.client
    a = np.arange(40, dtype=np.float32).reshape(10, 4)
    b = np.ones((3 << 18, 4), np.float32)  # 12 MiB: its first read ahead asks for ~8 MiB
    client.put_object(Bucket=s3_bucket, Key="cancel/a.npy", Body=npy_bytes(a))
    client.put_object(Bucket=s3_bucket, Key="cancel/b.npy", Body=npy_bytes(b))
    so = dict(s3_proxy.storage_options, timeout="30s")
    ds = Dataset.from_files([f"s3://{s3_bucket}/cancel/a.npy", f"s3://{s3_bucket}/cancel/b.npy"],
                            storage_options=so)
    gate = threading.Event()
    asked = threading.Event()

    def hold(method, path, headers):
        if "b.npy" in path:
            asked.set()
            gate.wait(20)

    s3_proxy.on_request = hold
    try:
        it = ds.iterator()
        np.testing.assert_array_equal(np.asarray(next(it)), a[0])
        # b is opened ahead while a's rows are read.
        assert asked.wait(10)
        it.close()
        del it
        time.sleep(0.3)  # the cancelled request's connection is closed by now
        s3_proxy.reset_counts()
    finally:
        gate.set()
    time.sleep(1.0)  # the proxy relays what the server answers, as far as the client takes it
    assert s3_proxy.bytes_down < 4 << 20, s3_proxy.bytes_down
    s3_proxy.on_request = None
    assert wait_threads(base)
    # The same data set still reads whole (nothing left behind in a shared state).
    got = np.concatenate([np.asarray(x) for x in ds.batch(1 << 16).as_numpy_iterator()])
    np.testing.assert_array_equal(got[:10], a)
    np.testing.assert_array_equal(got[10:], b)


# The read-ahead budget of one from_files iterator (READ_AHEAD_BUDGET in
# crates/tensorbridge/src/data/remote_rows.rs) and its GETs' size (READ_AHEAD_GET).
BUDGET = 32 << 20
GET = 16 << 20
CHUNK = GET  # an open stream's current chunk (a GET body, or rows copied out)


@pytest.mark.parametrize("cycle", [1, 2])
def test_bytes_requested_stay_within_the_budget_across_objects(s3_server, s3_bucket, cycle):
    """Six 24 MiB objects: at every row, the bytes asked for by GETs exceed the bytes
    of the rows yielded by at most the budget, plus one GET of its own per stream
    (the open ones and the one opened ahead) and the chunk each open stream has
    copied out — never whole objects. And the budget is used: GETs of the next
    object go out before the current one's last row (bytes asked ahead at an object
    boundary)."""
    client, so = s3_server.client, s3_server.storage_options
    row = 1 << 16  # 64 KiB rows, 384 per object
    n_rows = 384
    urls = []
    for i in range(6):
        a = np.full((n_rows, row // 4), i, dtype=np.float32)
        a[:, 0] = np.arange(n_rows)
        client.put_object(Bucket=s3_bucket, Key=f"budget/o-{i}.npy", Body=npy_bytes(a))
        urls.append(f"s3://{s3_bucket}/budget/o-{i}.npy")
    ds = Dataset.from_files(urls, storage_options=so, cycle_length=cycle)
    tb._core.location_get_stats(reset=True)
    worst = 0
    at_boundary = []
    seen = 0
    for e in ds.as_numpy_iterator():
        seen += 1
        _, asked, _ = tb._core.location_get_stats()
        worst = max(worst, asked - seen * row)
        if cycle == 1 and seen % n_rows == n_rows - 1:
            at_boundary.append(asked - seen * row)
    assert seen == 6 * n_rows
    _, asked, largest = tb._core.location_get_stats()
    assert asked == 6 * n_rows * row  # each row's bytes asked for once, no header read
    assert largest <= GET
    bound = BUDGET + (cycle + 1) * GET + cycle * CHUNK
    assert worst <= bound, (worst >> 20, bound >> 20)
    if cycle == 1:
        # Before the last row of an object, the next one's GETs were out already.
        assert max(at_boundary[:-1]) > CHUNK, [b >> 20 for b in at_boundary]


def test_object_replaced_within_the_read_ahead_window_is_an_error(s3_server, s3_bucket):
    """An object replaced (same shape, other values) after the dataset was made but
    before its GETs go out: every GET asks for the ETag read with the header, so the
    iteration fails naming it (or skips it under on_error="skip"), never yielding
    rows of the new version."""
    client, so = s3_server.client, s3_server.storage_options
    arrs = [np.full((300, 1024), i, np.float32) for i in range(3)]  # 1.2 MiB each
    urls = []
    for i, a in enumerate(arrs):
        client.put_object(Bucket=s3_bucket, Key=f"replace/o-{i}.npy", Body=npy_bytes(a))
        urls.append(f"s3://{s3_bucket}/replace/o-{i}.npy")
    ds = Dataset.from_files(urls, storage_options=so)
    skip = Dataset.from_files(urls, storage_options=so, on_error="skip")
    client.put_object(Bucket=s3_bucket, Key="replace/o-1.npy", Body=npy_bytes(arrs[1] + 100))
    seen = []
    with pytest.raises(Exception, match="o-1.npy"):
        for e in ds.as_numpy_iterator():
            seen.append(e)
    assert len(seen) == 300 and all((s == 0).all() for s in seen)
    with pytest.warns(RuntimeWarning, match="o-1.npy"):
        got = np.stack(list(skip.as_numpy_iterator()))
    np.testing.assert_array_equal(got, np.concatenate([arrs[0], arrs[2]]))


def test_closing_cancels_every_get_in_flight(s3_server, s3_bucket, s3_proxy):
    """All GETs of the read-ahead window (the current object's and the next one's)
    are held by the proxy; closing the iterator cancels them all: once released,
    the client takes (almost) none of their bytes, and no thread is left."""
    base = threading.active_count()
    client = s3_server.client
    a = np.zeros((64, 1 << 14), np.float32)  # 4 MiB of rows
    b = np.ones((64, 1 << 14), np.float32)
    for k, x in (("a", a), ("b", b)):
        client.put_object(Bucket=s3_bucket, Key=f"cancelall/{k}.npy", Body=npy_bytes(x))
    so = dict(s3_proxy.storage_options, timeout="30s")
    ds = Dataset.from_files([f"s3://{s3_bucket}/cancelall/{k}.npy" for k in "ab"], storage_options=so)
    gate = threading.Event()
    held = []

    def hold(method, path, headers):
        if "cancelall/" in path:
            held.append(path)
            if len(held) > 1:  # the first GET (a's first rows) goes through
                gate.wait(20)

    s3_proxy.on_request = hold
    try:
        it = ds.iterator()
        np.testing.assert_array_equal(np.asarray(next(it)), a[0])
        deadline = time.time() + 10
        while not any("b.npy" in p for p in held) and time.time() < deadline:
            time.sleep(0.05)
        assert any("b.npy" in p for p in held), held
        it.close()
        del it
        time.sleep(0.3)
        s3_proxy.reset_counts()
    finally:
        gate.set()
    time.sleep(1.0)
    assert s3_proxy.bytes_down < 2 << 20, s3_proxy.bytes_down
    s3_proxy.on_request = None
    assert wait_threads(base)
