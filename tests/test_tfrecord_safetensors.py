"""TFRecord and safetensors files against the real readers and writers: TensorFlow
(tf.data.TFRecordDataset, tf.io.parse_single_example, tf.io.parse_tensor,
tf.io.serialize_tensor, tf.io.TFRecordWriter) and the `safetensors` package."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import safetensors  # noqa: E402
import safetensors.numpy  # noqa: E402
import tensorflow as tf  # noqa: E402

import tensorbridge as tb  # noqa: E402

from conftest import NAMES, bits, np_dtype  # noqa: E402


def sample(name, shape, seed=0):
    """Values that exercise the whole range of a dtype (NaN, inf, extremes included)."""
    rng = np.random.default_rng(seed)
    dt = np_dtype(name)
    n = int(np.prod(shape))
    if name == "bool":
        a = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        a[: min(n, 2)] = [info.min, info.max][: min(n, 2)]
    elif dt.kind == "c":
        part = np.float32 if dt == np.complex64 else np.float64
        a = (rng.standard_normal(n) * 1e3).astype(part) + 1j * rng.standard_normal(n).astype(part)
        a = a.astype(dt)
        if n >= 2:
            a[1] = complex(np.inf, np.nan)
    else:
        a = (rng.standard_normal(n) * 100).astype(np.float32).astype(dt)
        special = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=np.float32).astype(dt)
        k = min(n, len(special))
        a[:k] = special[:k]
    return a.reshape(shape)


def tf_dtype(name):
    return tf.as_dtype(name)


def assert_same(got, expected):
    """Exact: same dtype, shape and bits (NaN payloads included)."""
    if isinstance(got, tb.Tensor):
        got = got.numpy()
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape
    assert bits(got) == bits(expected)


def spec(a, dtype=None):
    """A safetensors.TensorSpec for a contiguous array (the caller keeps `a` alive)."""
    return safetensors.TensorSpec(dtype=dtype or a.dtype.name, shape=list(a.shape),
                                  data_ptr=a.ctypes.data, data_len=a.nbytes)


# ---------------------------------------------------------------------------
# serialize_tensor / parse_tensor


SHAPES = [(), (0,), (0, 3), (7,), (2, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_serialize_tensor_is_tf_byte_for_byte(dtype_name, shape):
    a = sample(dtype_name, shape)
    ours = tb.io.serialize_tensor(a)
    theirs = tf.io.serialize_tensor(tf.constant(a, dtype=tf_dtype(dtype_name))).numpy()
    assert ours == theirs


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_parse_tensor_of_tf_serialize_tensor(dtype_name, shape):
    a = sample(dtype_name, shape, seed=1)
    data = tf.io.serialize_tensor(tf.constant(a, dtype=tf_dtype(dtype_name)))
    for given in (data.numpy(), data, bytearray(data.numpy()), memoryview(data.numpy())):
        t = tb.io.parse_tensor(given)
        assert isinstance(t, tb.Tensor)
        assert t.dtype == tb.dtype(dtype_name)
        assert_same(t, a)


def test_parse_tensor_of_python_scalars():
    for value, name in [(True, "bool"), (-7, "int32"), (2**40, "int64"), (1.5, "float32"),
                        (1.5 - 2j, "complex128")]:
        data = tf.io.serialize_tensor(tf.constant(value)).numpy()
        t = tb.io.parse_tensor(data)
        assert t.dtype == tb.dtype(name) and t.shape == ()
        assert t.numpy()[()] == value


@pytest.mark.parametrize("shape", [None, (), (3,), (2, 2)], ids=str)
def test_parse_tensor_of_typed_fields(dtype_name, shape):
    """tf.make_tensor_proto puts small values in float_val, half_val, int_val, ...
    and repeats the last value to fill the shape."""
    dt = tf_dtype(dtype_name)
    value = {"bool": True, "complex64": 1 - 2j, "complex128": -3 + 0.5j}.get(dtype_name, 3)
    if dtype_name.startswith("int"):
        value = -3
    for v in ([value], value) if shape is None else (value,):
        proto = tf.make_tensor_proto(v, dtype=dt, shape=shape)
        assert not proto.tensor_content, "expected typed fields"
        expected = tf.make_ndarray(proto)
        t = tb.io.parse_tensor(proto.SerializeToString())
        assert t.dtype == tb.dtype(dtype_name)
        assert_same(t, expected)


def test_parse_tensor_errors():
    with pytest.raises(ValueError, match="string tensors"):
        tb.io.parse_tensor(tf.io.serialize_tensor(tf.constant("text")).numpy())
    with pytest.raises(ValueError, match="invalid serialized tensor"):
        tb.io.parse_tensor(b"\x08\x01\x12\x00\x22\x03abc")
    with pytest.raises(ValueError):
        tb.io.parse_tensor(b"\xff" * 11)
    with pytest.raises(TypeError, match="bytes"):
        tb.io.parse_tensor(12)


def test_hostile_bytes_raise_value_error_never_panic():
    """Mutated and random bytes give ValueError (a Rust panic would surface as
    pyo3's PanicException, a BaseException, and fail this test)."""
    rng = np.random.default_rng(13)
    good = tb.io.serialize_tensor(np.arange(6, dtype=np.int16).reshape(2, 3))
    for _ in range(3000):
        b = bytearray(good)
        for i in rng.integers(0, len(b), rng.integers(1, 4)):
            b[i] = rng.integers(0, 256)
        if rng.integers(0, 3) == 0:
            b = b[: rng.integers(0, len(b))]
        for data in (bytes(b), rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8).tobytes()):
            try:
                t = tb.io.parse_tensor(data)
            except ValueError:
                continue
            assert t.nbytes <= 16 << 20


# ---------------------------------------------------------------------------
# TFRecord: TensorFlow reads what we write


def tf_read(paths, specs, compression=None):
    """Every record through tf.data + parse_single_example + parse_tensor."""
    desc = {name: tf.io.FixedLenFeature([], tf.string) for name in specs}
    out = []
    for rec in tf.data.TFRecordDataset(paths, compression_type=compression or ""):
        ex = tf.io.parse_single_example(rec, desc)
        out.append({name: tf.io.parse_tensor(ex[name], out_type=dt).numpy() for name, dt in specs.items()})
    return out


def test_tf_reads_our_tfrecord_every_dtype(tmp_path, dtype_name):
    x = sample(dtype_name, (5, 3, 2), seed=2)
    s = sample(dtype_name, (5,), seed=3)  # 0-d slices
    labels = np.arange(5, dtype=np.int64) * 10**12
    path = tmp_path / "d.tfrecord"
    assert tb.io.write_tfrecord(path, {"x": x, "s": s, "label": labels}) == [str(path)]
    records = tf_read([str(path)], {"x": tf_dtype(dtype_name), "s": tf_dtype(dtype_name), "label": tf.int64})
    assert len(records) == 5
    for i, r in enumerate(records):
        assert_same(r["x"], x[i])
        assert_same(r["s"], s[i])
        assert_same(r["label"], labels[i])
    # ... and so do we.
    ours = list(tb.io.read_tfrecord(path))
    assert [list(r) for r in ours] == [["x", "s", "label"]] * 5
    for i, r in enumerate(ours):
        assert_same(r["x"], x[i])
        assert_same(r["s"], s[i])
        assert r["label"].numpy()[()] == labels[i]


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("compression", [None, "GZIP"])
def test_tf_reads_gzip_and_shards(tmp_path, shards, compression):
    images = np.random.default_rng(4).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(10, dtype=np.int64) - 5
    bf = sample("bfloat16", (10, 4), seed=5)
    paths = tb.io.write_tfrecord(
        tmp_path / "out.tfrecord", {"image": images, "label": labels, "bf": tb.constant(bf)},
        shards=shards, compression=compression,
    )
    if shards == 1:
        assert paths == [str(tmp_path / "out.tfrecord")]
    else:
        assert paths == [str(tmp_path / f"out-{i:05d}-of-{shards:05d}.tfrecord") for i in range(shards)]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)  # no temp files
    with open(paths[0], "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == (compression == "GZIP")
    records = tf_read(paths, {"image": tf.uint8, "label": tf.int64, "bf": tf.bfloat16}, compression)
    assert len(records) == 10
    for i, r in enumerate(records):
        assert_same(r["image"], images[i])
        assert_same(r["label"], labels[i])
        assert_same(r["bf"], bf[i])
    ours = list(tb.io.read_tfrecord(paths, compression=compression))
    assert len(ours) == 10
    assert all(bits(r["image"]) == bits(images[i]) for i, r in enumerate(ours))


def test_strided_and_byteswapped_inputs(tmp_path):
    a = np.arange(24, dtype=">i4").reshape(4, 6)[:, ::2]  # big-endian and strided
    b = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(4, 3))
    path = tmp_path / "s.tfrecord"
    tb.io.write_tfrecord(path, {"a": a, "b": b, "c": [[1, 2], [3, 4], [5, 6], [7, 8]]})
    records = tf_read([str(path)], {"a": tf.int32, "b": tf.float64, "c": tf.int32})
    for i, r in enumerate(records):
        np.testing.assert_array_equal(r["a"], a[i])
        np.testing.assert_array_equal(r["b"], b[i])
        np.testing.assert_array_equal(r["c"], [2 * i + 1, 2 * i + 2])


def test_write_tfrecord_argument_errors(tmp_path):
    p = tmp_path / "e.tfrecord"
    with pytest.raises(ValueError, match="'label' has leading dimension 3 but feature 'image' has 4"):
        tb.io.write_tfrecord(p, {"image": np.zeros((4, 2)), "label": np.zeros(3)})
    with pytest.raises(ValueError, match="0-d"):
        tb.io.write_tfrecord(p, {"x": np.float32(1)})
    with pytest.raises(ValueError, match="empty"):
        tb.io.write_tfrecord(p, {})
    with pytest.raises(ValueError, match="compression"):
        tb.io.write_tfrecord(p, {"x": np.zeros(2)}, compression="ZSTD")
    with pytest.raises(ValueError, match="shards"):
        tb.io.write_tfrecord(p, {"x": np.zeros(2)}, shards=3)
    with pytest.raises(ValueError, match="shards"):
        tb.io.write_tfrecord(p, {"x": np.zeros(2)}, shards=0)
    with pytest.raises(TypeError):
        tb.io.write_tfrecord(p, [np.zeros(2)])
    with pytest.raises(FileNotFoundError):
        tb.io.write_tfrecord(tmp_path / "missing" / "x.tfrecord", {"x": np.zeros(2)})
    assert not p.exists()


# ---------------------------------------------------------------------------
# TFRecord: we read what TensorFlow writes


@pytest.mark.parametrize("compression", [None, "GZIP"])
def test_we_read_tf_written_records(tmp_path, dtype_name, compression):
    x = sample(dtype_name, (4, 2, 3), seed=6)
    path = str(tmp_path / "tf.tfrecord")
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    with tf.io.TFRecordWriter(path, options) as w:
        for i in range(len(x)):
            feature = {
                "x": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[tf.io.serialize_tensor(tf.constant(x[i], dtype=tf_dtype(dtype_name))).numpy()])),
                "scalar": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[tf.io.serialize_tensor(tf.constant(x[i, 0, 0], dtype=tf_dtype(dtype_name))).numpy()])),
                "floats": tf.train.Feature(float_list=tf.train.FloatList(value=[i, 0.5])),
                "ints": tf.train.Feature(int64_list=tf.train.Int64List(value=[-i, 2**40])),
            }
            w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    records = list(tb.io.read_tfrecord(path, compression=compression))
    assert len(records) == 4
    for i, r in enumerate(records):
        assert set(r) == {"x", "scalar", "floats", "ints"}
        assert_same(r["x"], x[i])
        assert_same(r["scalar"], x[i, 0, 0])
        assert_same(r["floats"], np.array([i, 0.5], dtype=np.float32))
        assert_same(r["ints"], np.array([-i, 2**40], dtype=np.int64))


def test_corrupt_record_names_file_and_record(tmp_path):
    x = np.arange(5 * 16, dtype=np.int32).reshape(5, 16)
    path = tmp_path / "c.tfrecord"
    tb.io.write_tfrecord(path, {"x": x})
    good = path.read_bytes()
    data = bytearray(good)
    rec = len(data) // 5
    data[2 * rec + 30] ^= 0x01  # a byte inside record 2's data
    path.write_bytes(bytes(data))
    it = tb.io.read_tfrecord(path)
    assert_same(next(it)["x"], x[0])
    assert_same(next(it)["x"], x[1])
    with pytest.raises(ValueError) as e:
        next(it)
    msg = str(e.value)
    assert str(path) in msg and "record 2 " in msg and "CRC" in msg, msg
    # TensorFlow rejects the same file.
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path)))
    # A flipped length byte, and a truncated file, are errors too.
    data = bytearray(good)
    data[3 * rec + 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="record 3 .*length CRC"):
        list(tb.io.read_tfrecord(path))
    path.write_bytes(good[: 3 * rec - 1])
    with pytest.raises(ValueError, match="record 2 "):
        list(tb.io.read_tfrecord(path))
    # GZIP data read as plain gets a hint.
    gz = tb.io.write_tfrecord(tmp_path / "g.tfrecord", {"x": x}, compression="GZIP")
    with pytest.raises(ValueError, match="GZIP"):
        list(tb.io.read_tfrecord(gz))


# ---------------------------------------------------------------------------
# safetensors


ST_NAMES = [n for n in NAMES if n not in ("bfloat16", "complex128")]  # what safetensors.numpy knows


@pytest.mark.parametrize("name", ST_NAMES)
def test_safetensors_numpy_reads_ours(tmp_path, name):
    arrays = {"a": sample(name, (3, 5), seed=7), "scalar": sample(name, (), seed=8),
              "empty": sample(name, (0, 2))}
    path = tmp_path / "m.safetensors"
    tb.io.save_safetensors(path, arrays)
    loaded = safetensors.numpy.load_file(str(path))
    assert set(loaded) == set(arrays)
    for k, a in arrays.items():
        assert_same(loaded[k], a)


@pytest.mark.parametrize("name", ST_NAMES)
def test_we_read_safetensors_numpy_zero_copy(tmp_path, name):
    arrays = {"a": sample(name, (4, 3), seed=9), "b": sample(name, (7,), seed=10),
              "u8": np.arange(3, dtype=np.uint8), "scalar": sample(name, (), seed=11)}
    path = tmp_path / "np.safetensors"
    safetensors.numpy.save_file(arrays, str(path))
    loaded = tb.io.load_safetensors(path)
    assert set(loaded) == set(arrays)
    for k, a in arrays.items():
        t = loaded[k]
        assert isinstance(t, tb.Tensor)
        assert t.dtype == tb.dtype(a.dtype.name)
        assert_same(t, a)
        assert t.is_view, k  # a view of the mapped file, not a copy
        assert t.data_ptr % a.dtype.alignment == 0


def test_bfloat16_safetensors_both_ways(tmp_path):
    """safetensors.numpy has no bfloat16; the package's raw (de)serializer does."""
    a = sample("bfloat16", (2, 3), seed=12)
    path = tmp_path / "bf.safetensors"
    tb.io.save_safetensors(path, {"w": a})
    [(name, info)] = safetensors.deserialize(path.read_bytes())
    assert (name, info["dtype"], list(info["shape"])) == ("w", "BF16", [2, 3])
    assert bytes(info["data"]) == bits(a)

    path2 = tmp_path / "bf2.safetensors"
    safetensors.serialize_file({"w": spec(a, "bfloat16")}, str(path2))
    t = tb.io.load_safetensors(path2)["w"]
    assert t.dtype == tb.bfloat16 and t.is_view
    assert_same(t, a)


def test_safetensors_refusals(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises((ValueError, TypeError), match="complex128"):
        tb.io.save_safetensors(path, {"z": np.zeros(2, np.complex128)})
    assert not path.exists()
    path.write_bytes(b"\x05\x00\x00")
    with pytest.raises(ValueError, match="x.safetensors"):
        tb.io.load_safetensors(path)
    with pytest.raises(FileNotFoundError):
        tb.io.load_safetensors(tmp_path / "missing.safetensors")
    # A dtype tensorbridge lacks (float8) is named.
    f8 = np.array([1, 2], np.uint8)
    safetensors.serialize_file({"f8": spec(f8, "float8_e4m3fn")}, str(path))
    with pytest.raises(ValueError, match="f8.*F8_E4M3"):
        tb.io.load_safetensors(path)


def test_safetensors_views_survive_overwrite(tmp_path):
    path = tmp_path / "o.safetensors"
    a = np.arange(1000, dtype=np.float32)
    tb.io.save_safetensors(path, {"a": a, "t": tb.constant([[1, 2], [3, 4]])})
    loaded = tb.io.load_safetensors(path)
    assert list(loaded) == ["a", "t"] and loaded["a"].is_view
    tb.io.save_safetensors(path, {"a": -a})  # replaced by rename: old mapping intact
    os.remove(path)
    np.testing.assert_array_equal(loaded["a"].numpy(), a)
    np.testing.assert_array_equal(loaded["t"].numpy(), [[1, 2], [3, 4]])


def test_misaligned_safetensors_member_is_copied(tmp_path):
    header = b'{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F64","shape":[2],"data_offsets":[3,19]}}'
    header += b" " * (-len(header) % 8)
    data = bytes([1, 2, 3]) + np.array([1.5, -2.25]).tobytes()
    path = tmp_path / "u.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    loaded = tb.io.load_safetensors(path)
    assert loaded["a"].is_view and not loaded["b"].is_view
    np.testing.assert_array_equal(loaded["b"].numpy(), [1.5, -2.25])
    # The safetensors package agrees on the values.
    np.testing.assert_array_equal(safetensors.numpy.load_file(str(path))["b"], [1.5, -2.25])


# ---------------------------------------------------------------------------
# bytes_list features and safetensors metadata (issue 8)


@pytest.mark.parametrize("compression", [None, "GZIP"])
def test_bytes_list_features_come_back_as_bytes(tmp_path, compression):
    """Real users' records hold encoded images and strings in bytes_list features:
    each comes back as a list of bytes (tf.train.Example written by TensorFlow)."""
    path = str(tmp_path / "img.tfrecord")
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    images = [tf.io.encode_png(tf.constant(np.full((2, 3, 1), i * 40, np.uint8))).numpy() for i in range(3)]
    jpeg = tf.io.encode_jpeg(tf.constant(np.zeros((4, 4, 3), np.uint8))).numpy()
    tensor = tf.io.serialize_tensor(tf.constant([1.5, -2.0], dtype=tf.float32)).numpy()
    with tf.io.TFRecordWriter(path, options) as w:
        for i, png in enumerate(images):
            feature = {
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                "jpeg": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                "words": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"cat", "ünï".encode(), b""][: i + 1])),
                "empty": tf.train.Feature(bytes_list=tf.train.BytesList(value=[])),
                "two_tensors": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tensor, tensor])),
                "tensor": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tensor])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
            }
            w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    records = list(tb.io.read_tfrecord(path, compression=compression))
    # TensorFlow's own parse of the same records is the oracle.
    tf_records = [
        tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path, compression_type=compression or "")
    ]
    assert len(records) == len(tf_records) == 3
    for i, (r, ex) in enumerate(zip(records, tf_records)):
        for name in ("image", "jpeg", "words", "empty", "two_tensors"):
            want = list(ex.features.feature[name].bytes_list.value)
            assert r[name] == want and all(type(b) is bytes for b in r[name]), name
        assert r["image"][0] == images[i]
        assert tf.io.decode_png(r["image"][0]).numpy().max() == i * 40
        assert_same(r["tensor"], np.array([1.5, -2.0], np.float32))
        assert_same(r["label"], np.array([i], np.int64))


def test_single_string_feature(tmp_path):
    path = str(tmp_path / "s.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        feature = {"s": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"text"]))}
        w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    assert list(tb.io.read_tfrecord(path)) == [{"s": [b"text"]}]


@pytest.mark.parametrize("metadata", [None, {}, {"format": "pt", "note": 'ünïcode "quoted"', "": "empty key"}])
def test_safetensors_metadata_both_ways(tmp_path, metadata):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    tb.io.save_safetensors(ours, {"a": a}, metadata=metadata)
    safetensors.numpy.save_file({"a": a}, str(theirs), metadata=metadata)
    for p in (ours, theirs):
        with safetensors.safe_open(str(p), framework="np") as f:
            expected = f.metadata()
            assert_same(f.get_tensor("a"), a)
        assert tb.io.safetensors_metadata(p) == expected
        assert_same(tb.io.load_safetensors(p)["a"], a)
    if metadata:
        assert tb.io.safetensors_metadata(ours) == metadata


def test_safetensors_metadata_must_be_str_to_str(tmp_path):
    p = tmp_path / "m.safetensors"
    for bad in ({"a": 1}, {1: "a"}, ["a", "b"], "text"):
        with pytest.raises(TypeError, match="metadata"):
            tb.io.save_safetensors(p, {"x": np.zeros(2)}, metadata=bad)
    assert not p.exists()
    with pytest.raises(FileNotFoundError):
        tb.io.safetensors_metadata(tmp_path / "missing.safetensors")
    p.write_bytes(b"1234")
    with pytest.raises(ValueError, match="m.safetensors"):
        tb.io.safetensors_metadata(p)
