"""tb.load(fileobj) like np.load(fileobj): io.BytesIO, open files, fsspec files and
streams without seek; NumPy reads the same bytes and is the oracle."""

import io
import re

import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb
from conftest import NAMES, SHAPES, bits, np_dtype, sample, variants

def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def numpy_view(raw, name):
    """np.load of the same bytes, as the values tensorbridge must give (bfloat16 is
    stored by NumPy as '<V2')."""
    a = np.load(io.BytesIO(raw))
    if name == "bfloat16":
        a = a.view(ml_dtypes.bfloat16)
    return a


class Unseekable(io.RawIOBase):
    """A binary stream with only read (like a pipe or a socket file); each read
    returns at most ``step`` bytes, as a raw stream may."""

    def __init__(self, data, step=7):
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n

    def read(self, n=-1):
        if n is None or n < 0:
            out = bytes(self._data[self._pos:])
            self._pos = len(self._data)
            return out
        n = min(n, self._step)
        out = bytes(self._data[self._pos:self._pos + n])
        self._pos += len(out)
        return out


@pytest.mark.parametrize("mmap", [None, False])
def test_every_dtype_order_and_shape_matches_np_load(dtype_name, mmap):
    kwargs = {"dtype": tb.bfloat16} if dtype_name == "bfloat16" else {}
    for label, a in variants(dtype_name):
        raw = npy_bytes(a)
        expected = numpy_view(raw, dtype_name)
        t = tb.load(io.BytesIO(raw), mmap=mmap, **kwargs)
        assert isinstance(t, tb.Tensor), label
        assert t.shape == expected.shape, label
        assert t.dtype == dtype_name, label
        assert not t.is_view
        native = expected.astype(expected.dtype.newbyteorder("=")) if expected.dtype.itemsize > 1 else expected
        assert bits(t.numpy()) == bits(native), label


def test_open_file_and_unseekable_stream(tmp_path, dtype_name):
    kwargs = {"dtype": tb.bfloat16} if dtype_name == "bfloat16" else {}
    a = np.asfortranarray(sample(dtype_name, (5, 3), seed=3))
    p = tmp_path / "a.npy"
    np.save(p, a)
    expected = numpy_view(p.read_bytes(), dtype_name)
    with open(p, "rb") as f:
        t = tb.load(f, **kwargs)
        assert f.tell() == p.stat().st_size  # exactly the array was consumed
    assert bits(t.numpy()) == bits(expected)
    t = tb.load(Unseekable(p.read_bytes()), **kwargs)
    assert bits(t.numpy()) == bits(expected)


def test_mid_stream_and_consecutive_arrays_like_np_load():
    """Arrays saved one after another load one after another, from wherever the
    object stands; the position after each is where np.load leaves it."""
    arrays = [np.arange(6, dtype=np.int16).reshape(2, 3), np.float64(2.5), np.zeros((0, 4), np.uint8),
              np.asfortranarray(np.arange(12, dtype=">f4").reshape(3, 4))]
    buf = io.BytesIO()
    buf.write(b"some prefix that is not an array")
    start = buf.tell()
    for a in arrays:
        np.save(buf, a)
    ends = []
    buf.seek(start)
    for _ in arrays:
        np.load(buf)
        ends.append(buf.tell())
    buf.seek(start)
    for a, end in zip(arrays, ends):
        t = tb.load(buf)
        assert buf.tell() == end
        assert t.shape == a.shape
        np.testing.assert_array_equal(t.numpy(), a)
    with pytest.raises(EOFError):
        np.load(buf)
    with pytest.raises(EOFError, match="BytesIO"):
        tb.load(buf)
    # The same from a stream that cannot seek and returns short reads.
    stream = Unseekable(buf.getvalue()[start:], step=5)
    for a in arrays:
        np.testing.assert_array_equal(tb.load(stream).numpy(), a)


def test_npz_from_file_objects_like_np_load(tmp_path):
    arrays = {name: sample(name, (4, 3), seed=i) for i, name in enumerate(NAMES) if name != "bfloat16"}
    arrays["empty"] = np.zeros((0, 2), np.float32)
    arrays["scalar"] = np.array(7, dtype=np.int64)
    arrays["fortran"] = np.asfortranarray(np.arange(20, dtype=">i4").reshape(4, 5))
    for writer in (np.savez, np.savez_compressed):
        buf = io.BytesIO()
        buf.write(b"\0" * 13)  # the archive starts mid-stream
        writer(buf, **arrays)
        raw = buf.getvalue()
        at13 = io.BytesIO(raw)
        at13.seek(13)
        expected = np.load(at13)
        alone = io.BytesIO()
        writer(alone, **arrays)
        # Seekable: as zipfile sees it, offsets from the stream's start. Unseekable (np.load
        # cannot read it at all): an archive written on its own, after other bytes.
        for obj in (io.BytesIO(raw), Unseekable(b"\0" * 13 + alone.getvalue(), step=1000)):
            obj.read(13)
            z = tb.load(obj)
            assert isinstance(z, tb.NpzFile)
            assert z.keys() == list(expected.keys())
            for k in expected:
                want = expected[k]
                got = z[k].numpy()
                assert got.shape == want.shape, k
                native = want.astype(want.dtype.newbyteorder("=")) if want.dtype.itemsize > 1 else want
                assert bits(got) == bits(native), k
        p = tmp_path / "a.npz"
        p.write_bytes(alone.getvalue())
        with open(p, "rb") as f:
            z = tb.load(f)
        assert z.path.endswith("a.npz")
        np.testing.assert_array_equal(z["fortran"].numpy(), arrays["fortran"])


def test_npz_bfloat16_and_dtype_cast_from_file_object():
    a = sample("bfloat16", (3, 3))
    buf = io.BytesIO()
    np.savez(buf, b=a)
    buf.seek(0)
    z = tb.load(buf, dtype=tb.bfloat16)
    assert bits(z["b"].numpy()) == bits(a)
    raw = npy_bytes(np.arange(10, dtype=np.int32))
    t = tb.load(io.BytesIO(raw), dtype="float64")
    assert t.dtype == "float64"
    np.testing.assert_array_equal(t.numpy(), np.arange(10, dtype=np.float64))


def test_fsspec_file_object(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    a = np.arange(24, dtype="<c8").reshape(2, 3, 4)
    fs = fsspec.filesystem("memory")
    with fs.open("/tb-test/a.npy", "wb") as f:
        np.save(f, a)
    with fs.open("/tb-test/a.npy", "rb") as f:
        t = tb.load(f)
    np.testing.assert_array_equal(t.numpy(), a)
    fs.rm("/tb-test", recursive=True)


def test_errors_like_np_load(tmp_path):
    # Not an array file: ValueError (np.load: ValueError too, when pickles are off).
    with pytest.raises(ValueError):
        np.load(io.BytesIO(b"not an npy file at all"))
    with pytest.raises(ValueError, match=r"BytesIO.*not a \.npy or \.npz"):
        tb.load(io.BytesIO(b"not an npy file at all"))
    p = tmp_path / "junk.bin"
    p.write_bytes(b"definitely not numpy")
    with open(p, "rb") as f, pytest.raises(ValueError, match="junk.bin"):
        tb.load(f)
    # Empty: EOFError, as np.load.
    with pytest.raises(EOFError):
        np.load(io.BytesIO(b""))
    with pytest.raises(EOFError):
        tb.load(io.BytesIO(b""))
    # Truncated data and hostile headers: the core's ValueError, naming the object.
    raw = npy_bytes(np.arange(100, dtype=np.float64))
    p = tmp_path / "short.npy"
    p.write_bytes(raw[:-8])
    with open(p, "rb") as f, pytest.raises(ValueError, match="short.npy.*truncated"):
        tb.load(f)
    with pytest.raises(ValueError, match="truncated|short|header"):
        tb.load(io.BytesIO(b"\x93NUMPY\x01\x00"))
    huge = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"
    huge = b"\x93NUMPY\x01\x00" + len(huge).to_bytes(2, "little") + huge
    with pytest.raises(ValueError, match="truncated"):
        tb.load(io.BytesIO(huge + b"\0" * 8))
    with pytest.raises(ValueError, match="version"):
        tb.load(io.BytesIO(b"\x93NUMPY\x07\x00" + b"\0" * 40))
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    obj.seek(0)
    with pytest.raises(ValueError, match="object|pickle"):
        tb.load(obj)
    # A bad zip: ValueError naming the object.
    with pytest.raises(ValueError, match="BytesIO"):
        tb.load(io.BytesIO(b"PK\x03\x04" + b"\0" * 30))
    # V2 without dtype=bfloat16: the core's explanation.
    buf = io.BytesIO(npy_bytes(sample("bfloat16", (2,))))
    with pytest.raises(ValueError, match="bfloat16"):
        tb.load(buf)


def test_mmap_true_refused_and_text_mode_refused(tmp_path):
    raw = npy_bytes(np.arange(4))
    with pytest.raises(ValueError, match=re.escape("mmap")):
        tb.load(io.BytesIO(raw), mmap=True)
    p = tmp_path / "a.npy"
    p.write_bytes(raw)
    with open(p, "r", encoding="latin-1") as f, pytest.raises(TypeError, match="binary"):
        tb.load(f)
    # A path still loads as a path (mmap allowed).
    assert tb.load(p, mmap=True).is_view
