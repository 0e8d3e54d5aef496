"""PyTorch hand-off (issue 12, item 2): ``Dataset.to_torch`` with DataLoader workers and
torch.distributed, and DLPack both ways for every dtype torch has.

tensorbridge's own batches and NumPy are the oracles: torch must see the same values
(bit-exact), dtypes and structure, and every element exactly once per epoch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb
from tensorbridge.data import Dataset

torch = pytest.importorskip("torch")  # pinned in requirements-dev.txt

from torch.utils.data import DataLoader  # noqa: E402

rng = np.random.default_rng(2)


def _bits(a: np.ndarray) -> np.ndarray:
    """``a``'s bytes as unsigned integers (bit-exact comparison, NaN included)."""
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.kind != "c" else a.view(f"u{a.dtype.itemsize // 2}")


def _torch_np(p) -> np.ndarray:
    """A torch CPU tensor as NumPy (bfloat16 through its bits)."""
    p = p.detach().cpu()
    if p.dtype == torch.bfloat16:
        return p.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    if p.dtype in (torch.uint16, torch.uint32, torch.uint64):
        signed = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}[p.dtype]
        return p.contiguous().view(signed).numpy().view(f"u{p.element_size()}")
    return p.numpy()


def _assert_same(got, want, tuple_type=tuple):
    """Same structure (tuples, dict keys), dtypes and bit-exact values. ``tuple_type``:
    ``list`` after DataLoader's default conversion (torch turns tuples into lists)."""
    if isinstance(want, tuple):
        assert type(got) is tuple_type and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w, tuple_type)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k], tuple_type)
    else:
        assert isinstance(got, torch.Tensor)
        g = _torch_np(got)
        assert g.dtype == want.dtype and g.shape == want.shape
        np.testing.assert_array_equal(_bits(g), _bits(want))


def _tuple_ds(n=50, drop=False):
    """The same data and shuffle seed on every call (each call's epoch 0 is the same)."""
    x = np.random.default_rng(n).integers(0, 256, size=(n, 6, 5, 3), dtype=np.uint8)
    y = np.arange(n, dtype=np.int64)  # the element's index: checks exactly-once
    return (Dataset.from_tensor_slices((x, y))
            .shuffle(16, seed=3)
            .map((tb.ops.cast(tb.float32), None))
            .map((tb.ops.scale(1 / 255, 0), None))
            .batch(8, drop_remainder=drop)
            .prefetch(2))


def _labels(loader) -> list:
    return sorted(int(v) for _, y in loader for v in y.reshape(-1))


# ------------------------------------------------------------------ to_torch


def test_to_torch_is_an_iterable_dataset_sharing_batches():
    ds = _tuple_ds()
    tds = ds.to_torch()
    assert isinstance(tds, torch.utils.data.IterableDataset)
    assert len(tds) == len(ds) == 7
    # Same seed, fresh datasets: both give their epoch 0.
    ds = _tuple_ds()
    want = list(ds.as_numpy_iterator())
    got = list(_tuple_ds().to_torch())
    assert len(got) == len(want) == 7
    for g, w in zip(got, want):
        _assert_same(g, w)


def test_to_torch_keeps_dict_structure_and_bfloat16():
    a = rng.standard_normal((21, 4)).astype(ml_dtypes.bfloat16)
    b = rng.integers(-5, 5, size=(21, 2, 2), dtype=np.int32)
    c = rng.standard_normal((21,)).astype(np.float16)
    ds = Dataset.from_tensor_slices({"a": a, "nested": ({"b": b}, c)}).batch(5)
    want = list(ds.as_numpy_iterator())
    for g, w in zip(list(ds.to_torch()), want):
        _assert_same(g, w)  # iterated directly: tuples stay tuples
    got = list(DataLoader(ds.to_torch(), batch_size=None))
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        _assert_same(g, w, list)  # DataLoader's default_convert makes tuples lists
    kept = list(DataLoader(ds.to_torch(), batch_size=None, collate_fn=lambda e: e, num_workers=2))
    for g, w in zip(kept, want):
        _assert_same(g, w)
    assert got[0]["a"].dtype == torch.bfloat16


def test_to_torch_shares_memory_without_workers():
    # Without batch, elements are zero-copy slices of the source: torch sees its memory.
    a = np.arange(12, dtype=np.float32).reshape(6, 2)
    got = list(Dataset.from_tensor_slices(a).to_torch())
    assert [p.data_ptr() for p in got] == [a.ctypes.data + 8 * i for i in range(6)]
    assert [p.tolist() for p in got] == a.tolist()


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("drop", [False, True])
def test_dataloader_workers_every_element_once(workers, drop):
    n = 50
    ds = _tuple_ds(n, drop)
    loader = DataLoader(ds.to_torch(), batch_size=None, num_workers=workers)
    labels = _labels(loader)
    expect = list(range(n)) if not drop else None
    if drop:
        # drop_remainder drops the last 2 shuffled elements: 48 distinct, each once.
        assert len(labels) == 48 and len(set(labels)) == 48 and set(labels) <= set(range(n))
        # the same set tensorbridge itself yields for this seed
        assert labels == sorted(int(v) for _, y in _tuple_ds(n, drop).as_numpy_iterator() for v in y)
    else:
        assert labels == expect
    # batches keep dtypes and shapes
    x, y = next(iter(loader))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (6, 5, 3)


def test_dataloader_workers_values_match_tensorbridge():
    ds = _tuple_ds(40)
    want = {int(y[0]): (x, y) for x, y in ds.as_numpy_iterator()}
    ds = _tuple_ds(40)  # epoch 0 again for the workers (same seed)
    got = list(DataLoader(ds.to_torch(), batch_size=None, num_workers=2))
    assert len(got) == len(want) == 5
    for x, y in got:
        _assert_same((x, y), want[int(y[0])])
        assert x.shape[0] == 8


def test_dataloader_persistent_workers_two_epochs():
    ds = _tuple_ds(50)
    loader = DataLoader(ds.to_torch(), batch_size=None, num_workers=2, persistent_workers=True)
    for _ in range(2):
        assert _labels(loader) == list(range(50))


@pytest.mark.parametrize("workers,persistent,reshuffled", [(0, False, True), (2, True, True), (2, False, False)])
def test_reshuffle_each_epoch_as_documented(workers, persistent, reshuffled):
    """Every epoch has every element once; it is reshuffled unless forked workers start
    afresh each epoch (they inherit the shuffle's epoch counter from the parent)."""
    ds = Dataset.from_tensor_slices(np.arange(40)).shuffle(40).batch(4)
    loader = DataLoader(ds.to_torch(), batch_size=None, num_workers=workers, persistent_workers=persistent)
    epochs = [[int(v) for b in loader for v in b] for _ in range(2)]
    assert all(sorted(e) == list(range(40)) for e in epochs)
    assert (epochs[0] != epochs[1]) == reshuffled


@pytest.mark.filterwarnings("ignore:Got pickle error")
def test_to_torch_cannot_be_pickled_for_spawned_workers():
    ds = Dataset.range(10).batch(2)
    with pytest.raises(TypeError, match="fork"):
        list(DataLoader(ds.to_torch(), batch_size=None, num_workers=1, multiprocessing_context="spawn"))


def test_device_and_pin_memory_are_noops_without_cuda():
    ds = Dataset.from_tensor_slices(np.arange(6, dtype=np.float32)).batch(3)
    cuda = torch.cuda.is_available()
    for device, pin in [("cuda", True), ("cuda", False), (None, True), ("cpu", False)]:
        if cuda or (device != "cuda" and not pin):
            tds = ds.to_torch(device=device, pin_memory=pin)
        else:
            with pytest.warns(RuntimeWarning, match="CUDA is not available"):
                tds = ds.to_torch(device=device, pin_memory=pin)
        out = list(DataLoader(tds, batch_size=None))
        assert [p.tolist() for p in out] == [[0, 1, 2], [3, 4, 5]]
        for p in out:
            if cuda and device == "cuda":
                assert p.device.type == "cuda"
            else:
                assert p.device.type == "cpu" and p.is_pinned() == (cuda and pin)


_DIST_CHILD = """
import json, sys, os
import numpy as np, torch, torch.distributed as dist
from torch.utils.data import DataLoader
import tensorbridge as tb
rank, world, initfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method="file://" + initfile, rank=rank, world_size=world)
x = np.arange(83 * 2, dtype=np.float32).reshape(83, 2)
y = np.arange(83, dtype=np.int64)
ds = tb.data.Dataset.from_tensor_slices((x, y)).shuffle(20, seed=5).batch(4).prefetch(2)
tds = ds.to_torch()
labels = []
for xb, yb in DataLoader(tds, batch_size=None, num_workers=2):
    assert torch.equal(xb[:, 0], yb.to(torch.float32) * 2)
    labels += yb.tolist()
gathered = [None] * world
dist.all_gather_object(gathered, labels)
n = len(tds)
dist.destroy_process_group()
print(json.dumps({"rank": rank, "labels": labels, "all": gathered, "len": n}))
"""


def test_distributed_gloo_two_ranks_two_workers(tmp_path):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo")
    initfile = str(tmp_path / "init")
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(_DIST_CHILD), str(r), "2", initfile],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for r in range(2)]
    res = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        res.append(json.loads(out.strip().splitlines()[-1]))
    a, b = (set(r["labels"]) for r in res)
    assert len(res[0]["labels"]) == len(a) and len(res[1]["labels"]) == len(b)
    assert not a & b and a and b, "each rank gets a disjoint, non-empty shard"
    assert sorted(a | b) == list(range(83))
    assert res[0]["all"] == res[1]["all"]
    # each rank's len() is its own shard's batch count (21 batches split 11/10)
    assert sorted(r["len"] for r in res) == [10, 11]


# ------------------------------------------------------------------ DLPack both ways

_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "bfloat16", "float32", "float64", "complex64", "complex128"]


def _np_dtype(name):
    return ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)


def _sample(name, shape=(3, 4)):
    n = int(np.prod(shape))
    if name == "bool":
        a = rng.integers(0, 2, n).astype(bool)
    elif name.startswith(("int", "uint")):
        info = np.iinfo(name)
        a = rng.integers(info.min, info.max, n, dtype=name, endpoint=True)
    elif name.startswith("complex"):
        a = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(name)
        if n:
            a[0] = complex(np.nan, np.inf)
    else:
        a = (rng.standard_normal(n) * 100).astype(_np_dtype(name))
        if n:
            a[0] = np.nan
    return a.reshape(shape)


@pytest.mark.parametrize("name", _DTYPES)
def test_every_dtype_both_ways_bit_exact(name):
    tdt = getattr(torch, name)
    for shape in [(3, 4), (), (0,), (2, 0, 3)]:
        a = _sample(name, shape)
        t = tb.convert_to_tensor(a)
        p = t.to_torch()
        assert p.dtype == tdt and tuple(p.shape) == shape
        if a.size:
            assert p.data_ptr() == t.data_ptr, "zero-copy"
        np.testing.assert_array_equal(_bits(_torch_np(p)), _bits(a))
        back = tb.from_dlpack(p)
        assert back.dtype.name == name and back.shape == shape
        np.testing.assert_array_equal(_bits(back.numpy()), _bits(a))
        # a torch-made tensor into tensorbridge
        q = p.clone()
        u = tb.from_dlpack(q)
        assert u.dtype.name == name
        if a.size:
            assert u.data_ptr == q.data_ptr()
        np.testing.assert_array_equal(_bits(u.numpy()), _bits(a))


@pytest.mark.parametrize("name", _DTYPES)
def test_strided_torch_tensors_both_ways(name):
    a = _sample(name, (4, 6))
    p = tb.convert_to_tensor(a).to_torch().clone()
    views = {"T": (p.t(), a.T), "step": (p[::2, 1::3], a[::2, 1::3]), "slice": (p[1:, 2:5], a[1:, 2:5]),
             "column": (p[:, 3], a[:, 3])}
    for key, (v, want) in views.items():
        assert not v.is_contiguous(), key
        t = tb.from_dlpack(v)
        assert t.shape == want.shape, key
        assert t.data_ptr == v.data_ptr(), key  # shared, strides kept
        np.testing.assert_array_equal(_bits(t.numpy()), _bits(want), err_msg=key)
        # and a strided tensorbridge view into torch
        s = tb.convert_to_tensor(a)[::2, 1::3]
        np.testing.assert_array_equal(_bits(_torch_np(s.to_torch())), _bits(a[::2, 1::3]))


# ------------------------------------------------------------------ training


_TRAIN_CHILD = """
import json
import numpy as np, torch
from torch.utils.data import DataLoader
from tensorbridge.data import Dataset
torch.manual_seed(0)
g = np.random.default_rng(0)
x = g.standard_normal((512, 8)).astype(np.float32)
w = g.standard_normal((8, 1)).astype(np.float32)
y = (x @ w + 0.01 * g.standard_normal((512, 1))).astype(np.float32)
ds = Dataset.from_tensor_slices((x, y)).shuffle(512, seed=1).batch(32).prefetch(2)
model = torch.nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
losses = []
for _ in range(5):
    total = 0.0
    for xb, yb in DataLoader(ds.to_torch(), batch_size=None):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * len(xb)
    losses.append(total / 512)
print(json.dumps(losses))
"""


def test_small_training_loop_learns():
    # In a child process: torch.optim imports triton, whose LLVM aborts the process
    # when TensorFlow's (loaded by other test files) is already there.
    out = subprocess.run([sys.executable, "-c", _TRAIN_CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    losses = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(losses) == 5 and losses[-1] < 0.05 * losses[0], losses
