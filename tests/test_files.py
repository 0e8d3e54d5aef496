"""tb.load / tb.save / tb.savez against NumPy's own files, both directions."""

import gc
import re
import os
import warnings

import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb
from conftest import NAMES, SHAPES, bits, np_dtype, sample, variants

@pytest.mark.parametrize("mmap", [None, True, False])
def test_numpy_files_read_identically(dtype_name, mmap, tmp_path):
    for label, a in variants(dtype_name):
        p = tmp_path / f"{label}.npy"
        np.save(p, a)
        kwargs = {"dtype": tb.bfloat16} if dtype_name == "bfloat16" else {}
        swapped = a.dtype.byteorder not in "=|" and a.dtype.byteorder != np.dtype("=f4").byteorder[0]
        if mmap and swapped:
            with pytest.raises(ValueError):
                tb.load(p, mmap=True, **kwargs)
            continue
        t = tb.load(p, mmap=mmap, **kwargs)
        assert t.shape == a.shape, label
        assert t.dtype == dtype_name
        expected = a.astype(a.dtype.newbyteorder("=")) if a.dtype.itemsize > 1 and dtype_name != "bfloat16" else a
        assert bits(t.numpy()) == bits(np.ascontiguousarray(expected)), label
        if mmap is True:
            assert t.is_view


def test_tensorbridge_files_read_identically_by_numpy(dtype_name, tmp_path):
    for label, a in variants(dtype_name):
        p = tmp_path / f"{label}.npy"
        tb.save(p, a)
        back = np.load(p)
        if dtype_name == "bfloat16":
            assert back.dtype == np.dtype("V2")
            back = back.view(ml_dtypes.bfloat16)
        assert back.shape == a.shape and back.dtype.newbyteorder("=") == a.dtype.newbyteorder("=")
        assert bits(back) == bits(a.astype(a.dtype.newbyteorder("=")) if a.dtype.itemsize > 1 and dtype_name != "bfloat16" else a), label
        t = tb.convert_to_tensor(a)
        tb.save(p, t)
        assert bits(np.load(p).view(a.dtype.newbyteorder("=")) if dtype_name != "bfloat16" else np.load(p).view(ml_dtypes.bfloat16)) == bits(t.numpy())


def test_mapped_tensor_outlives_file(tmp_path):
    a = np.arange(1 << 20, dtype=np.float32)
    p = tmp_path / "big.npy"
    np.save(p, a)
    t = tb.load(p, mmap=True)
    assert t.is_view
    os.remove(p)
    gc.collect()
    view = t[10:20]
    del t
    assert view.numpy().tolist() == list(range(10, 20))


def test_default_rule(tmp_path):
    small, big = tmp_path / "s.npy", tmp_path / "b.npy"
    np.save(small, np.arange(10, dtype=np.float32))
    np.save(big, np.arange(1 << 20, dtype=np.float32))
    assert not tb.load(small).is_view
    assert tb.load(big).is_view
    assert not tb.load(big, mmap=False).is_view


def test_npz_from_numpy_and_tensorbridge(tmp_path):
    arrays = {name: sample(name, (5, 3), seed=i) for i, name in enumerate(NAMES) if name != "bfloat16"}
    p_np, p_npc, p_tb, p_tbc = (tmp_path / n for n in ["np.npz", "npc.npz", "tb.npz", "tbc.npz"])
    np.savez(p_np, **arrays)
    np.savez_compressed(p_npc, **arrays)
    tb.savez(p_tb, **arrays)
    tb.savez(p_tbc, compress=True, **arrays)
    for p in (p_np, p_npc, p_tb, p_tbc):
        with tb.load(p) as z:
            assert sorted(z.keys()) == sorted(arrays) and len(z) == len(arrays)
            assert "float32" in z and "nope" not in z
            for name, a in arrays.items():
                t = z[name]
                assert t.dtype == a.dtype.name and bits(t.numpy()) == bits(a), (p, name)
                if p == p_tb:
                    assert t.is_view  # tensorbridge aligns stored members: zero-copy
                if p in (p_npc, p_tbc):
                    assert not t.is_view
            with pytest.raises(KeyError):
                z["nope"]
        with np.load(p) as z:
            for name, a in arrays.items():
                assert bits(z[name]) == bits(a)


def test_npz_bfloat16_round_trip(tmp_path):
    a = sample("bfloat16", (4, 4))
    p = tmp_path / "bf.npz"
    tb.savez(p, x=a)
    assert bits(np.load(p)["x"].view(ml_dtypes.bfloat16)) == bits(a)
    assert bits(tb.load(p, dtype=tb.bfloat16)["x"].numpy()) == bits(a)


def NPY(header: bytes) -> bytes:
    """A version-1.0 .npy prefix around ``header`` (padded like NumPy to 64 bytes)."""
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not an npy file at all", "magic|not a"),
        (NPY(b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }") + b"\0" * 8, "object|pickle"),
        (NPY(b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }") + b"\0" * 8, "exceed|larger|file|truncated"),
        (NPY(b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }"), "overflow|too large"),
        (NPY(b"{'descr': '<f4', 'fortran_order': False}"), "shape|missing"),
        (NPY(b"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }") + b"\0" * 4, "structured|record"),
        (NPY(b"__import__('os').system('true')"), "literal|dict"),
        (b"\x93NUMPY\x01\x00", "truncated|short|header"),
    ],
)
def test_hostile_npy_files(tmp_path, content, match):
    p = tmp_path / "bad.npy"
    p.write_bytes(content)
    with pytest.raises(ValueError) as e:
        tb.load(p)
    where, _, why = str(e.value).partition(": ")
    assert where.endswith("bad.npy")
    assert re.search(match, why), why


def test_object_and_structured_refused(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy"):
        tb.load(p)
    p = tmp_path / "rec.npy"
    np.save(p, np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]))
    with pytest.raises(ValueError, match="rec.npy"):
        tb.load(p)


def test_truncated_data_and_missing_file(tmp_path):
    p = tmp_path / "t.npy"
    np.save(p, np.arange(100, dtype=np.float64))
    p.write_bytes(p.read_bytes()[:-8])
    with pytest.raises(ValueError, match="t.npy"):
        tb.load(p)
    with pytest.raises(FileNotFoundError):
        tb.load(tmp_path / "missing.npy")


def test_failed_save_leaves_nothing(tmp_path):
    p = tmp_path / "out.npy"
    with pytest.raises(TypeError):
        tb.save(p, np.array(["strings are not supported"]))
    assert not p.exists() and os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Issue 8: detection, empty archives, CRCs, NpzFile as a mapping, odd bools.


def test_empty_npz_from_numpy_and_tensorbridge(tmp_path):
    """np.savez(path) with no arrays writes only an end-of-central-directory record."""
    p_np, p_tb = tmp_path / "np.npz", tmp_path / "tb.npz"
    np.savez(p_np)
    tb.savez(p_tb)
    for p in (p_np, p_tb):
        assert p.read_bytes()[:4] == b"PK\x05\x06"
        assert list(np.load(p).keys()) == []
        z = tb.load(p)
        assert isinstance(z, tb.NpzFile)
        assert z.keys() == [] and len(z) == 0 and list(z) == []
        assert z.get("a") is None
    # Detection is by content: the name does not matter.
    renamed = tmp_path / "archive.bin"
    renamed.write_bytes(p_np.read_bytes())
    assert isinstance(tb.load(renamed), tb.NpzFile)
    npy_named_bin = tmp_path / "array.bin"
    np.save(npy_named_bin, np.arange(3))  # np.save appends .npy
    os.rename(tmp_path / "array.bin.npy", npy_named_bin)
    assert tb.load(npy_named_bin).numpy().tolist() == [0, 1, 2]


def test_load_names_other_formats(tmp_path):
    p = tmp_path / "m.safetensors"
    tb.io.save_safetensors(p, {"a": np.zeros(2)})
    with pytest.raises(ValueError, match="m.safetensors.*safetensors file"):
        tb.load(p)
    with pytest.raises(FileNotFoundError):
        tb.load(tmp_path / "missing")


def _flip_last_data_byte(p, member):
    """Flip one bit of the last byte of a stored member's data (the CRC-32 stays)."""
    import zipfile

    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo(member + ".npy")
    data = bytearray(p.read_bytes())
    # Local header: 30 bytes + name + extra, then the member's bytes.
    n, e = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), int.from_bytes(
        data[info.header_offset + 28:info.header_offset + 30], "little"
    )
    end = info.header_offset + 30 + n + e + info.compress_size
    data[end - 1] ^= 0x01
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("writer", ["numpy", "tensorbridge"])
def test_stored_npz_member_copies_are_crc_checked(tmp_path, writer):
    a = np.arange(100, dtype=np.float64)
    p = tmp_path / "c.npz"
    (np.savez if writer == "numpy" else tb.savez)(p, x=a)
    _flip_last_data_byte(p, "x")
    with pytest.raises(Exception, match="CRC"):  # NumPy's own reader refuses it
        np.load(p)["x"]
    with pytest.raises(ValueError, match=r"c\.npz:x.*CRC-32 mismatch"):
        tb.load(p, mmap=False)["x"]
    with pytest.raises(ValueError, match="CRC-32"):
        tb.load(p, dtype=tb.float32)["x"]  # a cast is a copy too
    if writer == "tensorbridge":
        # Aligned: a zero-copy view, documented as unchecked (it shows the flip).
        t = tb.load(p)["x"]
        assert t.is_view and t.numpy()[-1] != a[-1]
    else:
        # np.savez places data unaligned: the default copies, and checks.
        with pytest.raises(ValueError, match="CRC-32"):
            tb.load(p)["x"]


def test_npzfile_is_a_mapping_and_says_when_closed(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, a=np.arange(3))
    z = tb.load(p)
    for key in [(1, 2), 1, None, b"a"]:
        with pytest.raises(KeyError):
            z[key]
        assert z.get(key) is None and z.get(key, 7) == 7
        assert key not in z
    assert z.get("a").numpy().tolist() == [0, 1, 2]
    with np.load(p) as nz:  # the same mapping behaviour as NumPy's NpzFile for str keys
        assert nz.get("zz") is None
    z.close()
    assert z.closed and z.path == str(p) and "closed" in repr(z)
    for access in (lambda: z["a"], lambda: "a" in z, lambda: z.keys(), lambda: len(z), lambda: list(z),
                   lambda: z.info("a"), lambda: z.get("a")):
        with pytest.raises(ValueError, match="closed"):
            access()
    with tb.load(p) as z2:
        t = z2["a"]
    assert t.numpy().tolist() == [0, 1, 2]  # loaded tensors outlive the handle
    with pytest.raises(ValueError, match="closed"):
        z2["a"]


@pytest.mark.parametrize("order", ["C", "F"])
def test_odd_bool_bytes_read_as_numpy_reads_them(tmp_path, order):
    """Bytes other than 0/1 in a bool .npy: np.load keeps them as they are; so does
    tb.load, mapped or not."""
    raw = np.frombuffer(bytes([0, 2, 1, 255, 0, 3]), np.uint8).view(bool).reshape(2, 3)
    a = np.asfortranarray(raw) if order == "F" else raw
    p = tmp_path / "b.npy"
    np.save(p, a)
    expected = np.load(p)
    assert expected.view(np.uint8).tolist() == raw.view(np.uint8).tolist()
    for mmap in (True, False, None):
        t = tb.load(p, mmap=mmap)
        got = t.numpy()
        assert got.dtype == bool
        assert got.view(np.uint8).tolist() == expected.view(np.uint8).tolist(), mmap
    for compress in (False, True):
        pz = tmp_path / f"b{compress}.npz"
        (np.savez_compressed if compress else np.savez)(pz, b=a)
        with np.load(pz) as nz:
            want = nz["b"].view(np.uint8).tolist()
        for mmap in (False, None):
            assert tb.load(pz, mmap=mmap)["b"].numpy().view(np.uint8).tolist() == want


# ---------------------------------------------------------------------------
# tb.convert_file: the CLI's converter, from Python; NumPy is the oracle.


@pytest.mark.parametrize("target", [None, "float16", "int32", "bool", "complex64"])
def test_convert_file_values_and_dtype(tmp_path, dtype_name, target):
    a = sample(dtype_name, (3, 4), seed=3)
    if dtype_name == "bfloat16":
        # NumPy writes it as '<V2' (raw bytes): copied as it is, never cast by guess.
        np.save(tmp_path / "h.npy", a)
        if target is None:
            tb.convert_file(tmp_path / "h.npy", tmp_path / "h2.npy")
            assert bits(np.load(tmp_path / "h2.npy").view(ml_dtypes.bfloat16)) == bits(a)
        else:
            with pytest.raises(ValueError, match="bfloat16"):
                tb.convert_file(tmp_path / "h.npy", tmp_path / "h2.npy", dtype=target)
        return
    variants = [("C", a), ("F", np.asfortranarray(a))]
    if a.dtype.itemsize > 1:
        variants.append(("swapped", a.astype(a.dtype.newbyteorder())))
    for order, arr in variants:
        src = tmp_path / f"{order}.npy"
        np.save(src, arr)
        for dst_name in (f"{order}-out.npy", f"{order}-out.npz"):
            dst = tmp_path / dst_name
            tb.convert_file(src, dst, dtype=target)
            if dst.suffix == ".npz":
                with np.load(dst) as z:
                    assert list(z.keys()) == [order]
                    got = z[order]
            else:
                got = np.load(dst)
            with warnings.catch_warnings():  # NumPy's own overflow / complex warnings
                warnings.simplefilter("ignore")
                want = arr.astype(np.dtype(target) if target else arr.dtype.newbyteorder("="))
            assert got.dtype == want.dtype and got.shape == want.shape
            assert bits(np.ascontiguousarray(got)) == bits(np.ascontiguousarray(want)), (order, dst_name)
            if order == "F":
                assert got.flags.f_contiguous  # Fortran order is kept


def test_convert_file_between_all_formats(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "c": np.array([-1, 0, 7], dtype=np.int64)}
    src = tmp_path / "src.npz"
    np.savez(src, **arrays)
    tb.convert_file(src, tmp_path / "x.safetensors")
    tb.convert_file(tmp_path / "x.safetensors", tmp_path / "x.tfrecord")
    tb.convert_file(tmp_path / "x.tfrecord", tmp_path / "back.npz", compress=True)
    with np.load(tmp_path / "back.npz") as z:
        assert sorted(z.keys()) == ["a", "c"]
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and bits(z[k]) == bits(v)
        assert all(i.compress_type == 8 for i in z.zip.infolist())  # deflated
    tb.convert_file(src, tmp_path / "c.npy", member="c", dtype=tb.float64)
    assert np.load(tmp_path / "c.npy").tolist() == [-1.0, 0.0, 7.0]
    # An empty archive converts to an empty archive.
    np.savez(tmp_path / "empty.npz")
    tb.convert_file(tmp_path / "empty.npz", tmp_path / "empty2.npz")
    assert list(np.load(tmp_path / "empty2.npz").keys()) == []


def test_convert_file_bfloat16_v2(tmp_path):
    a = sample("bfloat16", (5,))
    src = tmp_path / "h.npy"
    np.save(src, a)  # NumPy writes '<V2'
    tb.convert_file(src, tmp_path / "copy.npy")
    assert np.load(tmp_path / "copy.npy").dtype == np.dtype("V2")
    tb.convert_file(src, tmp_path / "bf.npy", dtype=tb.bfloat16)
    assert bits(np.load(tmp_path / "bf.npy").view(ml_dtypes.bfloat16)) == bits(a)
    with pytest.raises(ValueError, match=r"h\.npy.*two raw bytes.*bfloat16"):
        tb.convert_file(src, tmp_path / "bad.npy", dtype="float32")
    assert not (tmp_path / "bad.npy").exists()


def test_convert_file_errors_name_the_file_and_leave_nothing(tmp_path):
    a = np.arange(-3, 9, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "ab.npz", a=a, b=np.ones(2))
    before = sorted(os.listdir(tmp_path))
    out = tmp_path / "out.npy"
    # A checked cast fails where the values do not fit, with the index in the array.
    with pytest.raises(ValueError, match=r"a\.npy: checked cast .* index \[0, 0\]"):
        tb.convert_file(tmp_path / "a.npy", out, dtype="uint8", casting="checked")
    assert not np.can_cast(np.float32, np.int8, casting="safe")
    with pytest.raises(TypeError, match="cannot cast"):
        tb.convert_file(tmp_path / "a.npy", out, dtype="int8", casting="safe")
    with pytest.raises(ValueError, match="ab.npz.*member"):
        tb.convert_file(tmp_path / "ab.npz", out)
    with pytest.raises(ValueError, match='ab.npz: no array named "zz"'):
        tb.convert_file(tmp_path / "ab.npz", tmp_path / "out.npz", member="zz")
    with pytest.raises(ValueError, match="out.txt.*unknown file type"):
        tb.convert_file(tmp_path / "a.npy", tmp_path / "out.txt")
    with pytest.raises(FileNotFoundError):
        tb.convert_file(tmp_path / "missing.npy", out)
    with pytest.raises(ValueError, match="casting"):
        tb.convert_file(tmp_path / "a.npy", out, dtype="int8", casting="yolo")
    with pytest.raises(TypeError):
        tb.convert_file(tmp_path / "a.npy", out, dtype="float128")
    with pytest.raises(TypeError):
        tb.convert_file(tmp_path / "a.npy", out, casting=1)
    with pytest.raises(TypeError):
        tb.convert_file(tmp_path / "ab.npz", out, member=0)
    z = tmp_path / "z.npy"
    np.save(z, np.zeros(2, np.complex128))
    with pytest.raises(ValueError, match="z.safetensors.*complex128"):
        tb.convert_file(z, tmp_path / "z.safetensors")
    os.remove(z)
    assert sorted(os.listdir(tmp_path)) == before


def test_convert_file_checked_index_is_global_across_chunks(tmp_path):
    """The failing element lies past the first 8 MiB chunk: its index is the index in
    the whole array (C and Fortran order)."""
    a = np.zeros((3000, 1000), np.float32)  # 12 MB
    a[2500, 7] = -1.0
    for order in ("C", "F"):
        src = tmp_path / f"{order}.npy"
        np.save(src, np.asfortranarray(a) if order == "F" else a)
        with pytest.raises(ValueError, match=r"index \[2500, 7\].*-1"):
            tb.convert_file(src, tmp_path / "o.npy", dtype="uint8", casting="checked")
    assert not (tmp_path / "o.npy").exists()
