"""``Dataset.to_jax``: tb.data pipelines handed to JAX (issue 12, item 3).

NumPy / tensorbridge's own batches are the oracle: JAX must see the same values,
dtypes (after JAX's own 64→32-bit rule when ``jax_enable_x64`` is off) and
structure. The 8-device set-up runs in a child process, since the number of host
devices is fixed when JAX initialises.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tensorbridge as tb
from tensorbridge.data import Dataset

jax = pytest.importorskip("jax")

rng = np.random.default_rng(12)

# Every 64-bit integer edge that narrowing to 32 bits can get wrong (wrap-around, sign).
INT64_EDGES = np.array([0, 1, -1, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32, 2**32 + 5,
                        -2**35 - 7, 2**40 + 123, 2**63 - 1, -2**63], dtype=np.int64)
UINT64_EDGES = np.array([0, 1, 2**31, 2**32 - 1, 2**32, 2**32 + 9, 2**40 + 77, 2**63, 2**64 - 1],
                        dtype=np.uint64)


@contextlib.contextmanager
def _x64(on: bool):
    """``jax_enable_x64`` set to ``on`` inside, restored after (other test modules,
    e.g. test_dlpack.py, turn it on for the whole process)."""
    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", on)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def _run_child(code: str, env_extra: dict | None = None, timeout: int = 300) -> dict:
    env = dict(os.environ, **(env_extra or {}))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _dict_ds():
    a = rng.standard_normal((21, 4)).astype(np.float64)
    b = rng.integers(-5, 5, size=(21, 2, 2), dtype=np.int32)
    c = rng.standard_normal((21,)).astype(np.float16)
    return Dataset.from_tensor_slices({"a": a, "nested": ({"b": b}, c)}).batch(5)


def _assert_same(got, want):
    """Same structure (tuple/dict nesting and keys), dtypes and values."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k])
    else:
        assert isinstance(got, jax.Array)
        g = np.asarray(got)
        assert g.dtype == want.dtype, (g.dtype, want.dtype)
        np.testing.assert_array_equal(g, want)


def _map(f, w):
    """``f`` on every array of ``w``, structure (and dict key order) kept; unlike
    ``jax.tree_util.tree_map``, which sorts dict keys."""
    if isinstance(w, tuple):
        return tuple(_map(f, v) for v in w)
    if isinstance(w, dict):
        return {k: _map(f, v) for k, v in w.items()}
    return f(w)


def _jax_dtype(a: np.ndarray) -> np.ndarray:
    """``a`` as JAX stores it (64-bit dtypes become 32-bit ones unless x64): NumPy's
    ``astype`` is the oracle for the values."""
    return a.astype(jax.dtypes.canonicalize_dtype(a.dtype))


def test_to_jax_default_device_equals_tb_batches():
    ds = _dict_ds()
    want = list(ds.as_numpy_iterator())
    for prefetch in (0, 2, 10):
        got = list(ds.to_jax(prefetch=prefetch))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, _map(_jax_dtype, w))
    with pytest.raises(ValueError, match="prefetch"):
        ds.to_jax(prefetch=-1)


def _int64_ds():
    """Labels with every narrowing edge, next to uint8 images and uint64 ids, through
    a shuffle (views of the source rows) and a batch (fresh buffers)."""
    n = len(INT64_EDGES) * 3
    x = rng.integers(0, 256, size=(n, 3, 2), dtype=np.uint8)
    y = np.resize(INT64_EDGES, n)
    ids = np.resize(UINT64_EDGES, n)
    return Dataset.from_tensor_slices((x, {"y": y, "ids": ids}))


@pytest.mark.parametrize("batched", [True, False])
def test_to_jax_narrows_64_bit_ints_like_jax(batched):
    ds = _int64_ds().shuffle(8, seed=1, reshuffle_each_iteration=False)
    if batched:
        ds = ds.batch(5)
    want = list(ds.as_numpy_iterator())
    with _x64(False):
        got = list(ds.to_jax())
        jnp_own = [{k: np.asarray(jax.numpy.asarray(wd[k])) for k in ("y", "ids")} for _, wd in want]
    assert len(got) == len(want)
    for (gx, gd), (wx, wd), own in zip(got, want, jnp_own):
        assert gd["y"].dtype == np.int32 and gd["ids"].dtype == np.uint32
        # NumPy's wrap-around is the oracle, and JAX's own conversion agrees with it
        for k in ("y", "ids"):
            np.testing.assert_array_equal(np.asarray(gd[k]), wd[k].astype(gd[k].dtype))
            np.testing.assert_array_equal(np.asarray(gd[k]), own[k])
            assert own[k].dtype == gd[k].dtype
        _assert_same(gx, wx)


def test_to_jax_keeps_64_bit_ints_with_x64():
    ds = _int64_ds().batch(7)
    want = list(ds.as_numpy_iterator())
    with _x64(True):
        got = list(ds.to_jax())
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
            assert g[1]["y"].dtype == np.int64 and g[1]["ids"].dtype == np.uint64


def test_to_jax_narrows_ints_after_a_python_map():
    # A Python map hides the element spec until it runs: narrowing is per tensor.
    ds = _int64_ds().map(lambda x, d: (x, {"y": d["y"], "ids": d["ids"]})).batch(4)
    want = list(ds.as_numpy_iterator())
    with _x64(False):
        got = list(ds.to_jax())
        want = [_map(_jax_dtype, w) for w in want]
    for g, w in zip(got, want):
        assert g[1]["y"].dtype == np.int32
        _assert_same(g, w)


ALL_DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
              "float16", "bfloat16", "float32", "float64", "complex64", "complex128"]


def _np_dtype(name):
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def _variants(a: np.ndarray) -> dict:
    """Tensors over ``a`` as a pipeline may yield them: batch-owned (aligned), a row
    slice (an unaligned start), strided (a column step), 0-d and empty."""
    t = tb.convert_to_tensor(a).copy()
    return {"owned": t, "rows": t[1:], "strided": t[:, ::2], "scalar": t[1, 1],
            "empty": t[:0]}


@pytest.mark.parametrize("name", ALL_DTYPES)
def test_direct_dlpack_import_equals_jax_from_dlpack(name):
    from tensorbridge._jax import _dlpack_import

    convert = _dlpack_import(jax)
    assert convert.__name__ == "direct", "jaxlib's DLPack import passes its check here"
    a = (rng.integers(-100, 100, size=(5, 6)) * 0.75).astype(_np_dtype(name))
    for kind, t in _variants(a).items():
        got, ref = convert(t), jax.dlpack.from_dlpack(t if kind != "strided" else t.copy())
        assert isinstance(got, jax.Array)
        assert got.dtype == ref.dtype and got.shape == ref.shape == t.shape, (kind, got.dtype)
        assert got.sharding == ref.sharding and got.committed == ref.committed
        np.testing.assert_array_equal(np.asarray(got), _jax_dtype(t.numpy()))
        if kind == "owned" and got.dtype == a.dtype:
            assert got.unsafe_buffer_pointer() == t.data_ptr  # shared, not copied


def _copying(*args):
    """A stand-in for jaxlib's DLPack import that copies (what the check must catch)."""
    import tensorbridge._jax as tbjax

    fn, _, _ = tbjax._jaxlib_dlpack()
    return jax.numpy.array(fn(*args), copy=True)


@pytest.mark.parametrize("entry", ["missing", "wrong_signature", "copies"])
def test_to_jax_falls_back_to_jax_from_dlpack(monkeypatch, entry):
    import tensorbridge._jax as tbjax

    real = tbjax._jaxlib_dlpack()

    def lookup():
        if entry == "missing":
            raise ImportError("cannot import name '_jax' from 'jax._src.lib'")
        if entry == "wrong_signature":
            return real[0], real[1], (1, 2, 3)  # TypeError when called
        return _copying, real[1], real[2]

    monkeypatch.setattr(tbjax, "_jaxlib_dlpack", lookup)
    assert tbjax._dlpack_import(jax).__name__ == "to_jax"
    ds = _dict_ds()
    for g, w in zip(ds.to_jax(), ds.as_numpy_iterator()):
        _assert_same(g, _map(_jax_dtype, w))


def test_to_jax_sharded_over_8_devices():
    res = _run_child("""
        import json
        import numpy as np
        import jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import tensorbridge as tb
        devs = jax.devices()
        mesh = Mesh(np.array(devs), ("data",))
        sharding = NamedSharding(mesh, P("data"))
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(100, 4, 16), dtype=np.uint8)
        y = rng.integers(-2**40, 2**40, size=(100,), dtype=np.int64)
        ds = (tb.data.Dataset.from_tensor_slices((x, {"y": y}))
              .shuffle(32, seed=0, reshuffle_each_iteration=False)
              .map((tb.ops.cast(tb.float32), None)).batch(16, drop_remainder=True))
        want = list(ds.as_numpy_iterator())
        res = {"n_dev": len(devs)}
        for x64 in (True, False):
            jax.config.update("jax_enable_x64", x64)
            got = list(ds.to_jax(sharding, prefetch=2))
            ok = len(got) == len(want) == 6
            aliased = True
            for (gx, gy), (wx, wy) in zip(got, want):
                # x64 off: int64 labels narrowed with NumPy's wrap-around
                wy = wy["y"] if x64 else wy["y"].astype(np.int32)
                for g, w in ((gx, wx), (gy["y"], wy)):
                    ok &= g.dtype == w.dtype and g.sharding == sharding
                    ok &= bool(np.array_equal(np.asarray(g), w))
                    shards = g.addressable_shards
                    ok &= sorted(s.device.id for s in shards) == sorted(d.id for d in devs)
                    for s in shards:
                        ok &= s.data.shape[0] == 2
                        ok &= bool(np.array_equal(np.asarray(s.data), w[s.index]))
                # the float32 images (rows of 256 bytes) are not copied: every shard
                # is a view of one batch buffer, at its rows' offset
                base = min(s.data.unsafe_buffer_pointer() for s in gx.addressable_shards)
                for s in gx.addressable_shards:
                    off = s.data.unsafe_buffer_pointer() - base
                    aliased &= off == s.index[0].start * 4 * 16 * 4
            res[f"ok_x64_{x64}"] = bool(ok)
            res[f"aliased_x64_{x64}"] = bool(aliased)
        # not divisible: the batches before it arrive, then a clear ValueError
        short = tb.data.Dataset.from_tensor_slices(x[:20]).batch(8)
        n_ok, msg = 0, ""
        try:
            for b in short.to_jax(sharding, prefetch=2):
                n_ok += 1
        except ValueError as e:
            msg = str(e)
        res.update(n_ok=n_ok, msg=msg)
        print(json.dumps(res))
    """, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"})
    assert res["n_dev"] == 8
    assert res["ok_x64_True"] and res["ok_x64_False"]
    assert res["aliased_x64_True"] and res["aliased_x64_False"]
    assert res["n_ok"] == 2
    assert "cannot be split evenly" in res["msg"] and "drop_remainder=True" in res["msg"]
