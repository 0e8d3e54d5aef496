//! `.npy` / `.npz` reading and writing: every dtype × byte order × order × shape
//! class, mapping rules, streaming, atomic writes, and one generated hostile file per
//! refusal (each with the error it must give).
//!
//! Files in NumPy's exact byte layout are built here from headers; the Python tests
//! check the same against `np.save` / `np.load` themselves.

use std::io::{Cursor, Write};
use std::path::Path;

use tensorbridge::format::npy::{self, LoadOptions, NpyHeader, NpyWriter};
use tensorbridge::format::npz::{self, Compression, NpzArchive, NpzWriter};
use tensorbridge::{cast, ByteOrder, Casting, DType, Error, Tensor, TensorView};

const SHAPES: &[&[usize]] = &[&[], &[0], &[5], &[2, 3], &[2, 0, 3], &[3, 1, 4], &[1]];

fn opts(mmap: Option<bool>) -> LoadOptions {
    LoadOptions {
        mmap,
        ..Default::default()
    }
}

/// A C-contiguous native tensor of `dtype` and `shape` with distinct values.
fn sample(dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 7 + 3) % 61) as f64 - 20.0 + 0.25 * (i % 3) as f64)
        .collect();
    let t = Tensor::from_slice(&v, &[n]).unwrap();
    t.cast(dtype, Casting::Unsafe)
        .unwrap()
        .reshape(&shape.iter().map(|&d| d as isize).collect::<Vec<_>>())
        .unwrap()
}

/// `.npy` bytes for `t` with the given descr byte order and memory order, laid out
/// exactly as NumPy lays them out.
fn npy_bytes(t: &Tensor, order: ByteOrder, fortran: bool) -> Vec<u8> {
    let mut h = NpyHeader::new(t.dtype(), t.shape(), fortran).unwrap();
    let size = t.dtype().size();
    if size > 1 {
        let code = &h.descr[1..];
        h.descr = format!(
            "{}{code}",
            if order == ByteOrder::Little { '<' } else { '>' }
        );
    }
    let mut out = h.to_bytes();
    // Elements in file order.
    let ordered = if fortran {
        let axes: Vec<usize> = (0..t.ndim()).rev().collect();
        t.permute(&axes).unwrap().deep_copy().unwrap()
    } else {
        t.clone()
    };
    let bytes = ordered.as_bytes().unwrap();
    if order.is_swapped() && size > 1 {
        // Complex numbers swap each part.
        let part = if t.dtype().is_complex() {
            size / 2
        } else {
            size
        };
        for e in bytes.chunks(part) {
            out.extend(e.iter().rev());
        }
    } else {
        out.extend_from_slice(bytes);
    }
    out
}

fn same(a: &Tensor, b: &Tensor) {
    assert_eq!(a.dtype(), b.dtype());
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.deep_copy().unwrap(), b.deep_copy().unwrap());
    assert_eq!(a.as_bytes().unwrap(), b.as_bytes().unwrap());
}

fn err_of(r: Result<Tensor, Error>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_dtype_order_layout_and_shape_loads() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in DType::ALL {
        for shape in SHAPES {
            let t = sample(dtype, shape);
            for order in [ByteOrder::Little, ByteOrder::Big] {
                for fortran in [false, true] {
                    let path = dir.path().join("a.npy");
                    std::fs::write(&path, npy_bytes(&t, order, fortran)).unwrap();
                    let bf = LoadOptions {
                        dtype: (dtype == DType::BFloat16).then_some(DType::BFloat16),
                        ..Default::default()
                    };
                    let ctx = format!("{dtype} {shape:?} {order:?} F={fortran}");
                    // Read: always C-contiguous and owned.
                    let r = npy::load(
                        &path,
                        &LoadOptions {
                            mmap: Some(false),
                            ..bf
                        },
                    )
                    .unwrap();
                    assert!(!r.is_view() && r.is_contiguous(), "{ctx}");
                    same(&r, &t);
                    // Default: small files are read.
                    same(&npy::load(&path, &bf).unwrap(), &t);
                    // Map: zero-copy where the bytes can be used as they lie.
                    let m = npy::load(
                        &path,
                        &LoadOptions {
                            mmap: Some(true),
                            ..bf
                        },
                    );
                    if order.is_swapped() && dtype.size() > 1 {
                        let e = err_of(m);
                        assert!(e.contains("cannot memory-map"), "{ctx}: {e}");
                    } else {
                        let m = m.unwrap();
                        assert!(m.is_view() && m.storage().is_mapped_file(), "{ctx}");
                        same(&m, &t);
                    }
                    // From memory.
                    let bytes = std::fs::read(&path).unwrap();
                    same(&npy::from_bytes(&bytes, "mem", &bf).unwrap(), &t);
                    let h = npy::read_header(&path).unwrap();
                    assert_eq!(h.shape, *shape);
                    assert_eq!(h.fortran_order, fortran);
                }
            }
        }
    }
}

#[test]
fn fortran_maps_as_fortran_strided_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.npy");
    let t = sample(DType::Float64, &[3, 4]);
    std::fs::write(&path, npy_bytes(&t, ByteOrder::NATIVE, true)).unwrap();
    let m = npy::load(&path, &opts(Some(true))).unwrap();
    assert_eq!(m.strides(), &[8, 24]);
    assert!(!m.is_contiguous());
    same(&m, &t);
}

#[test]
fn save_writes_numpy_layout_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in DType::ALL {
        for shape in SHAPES {
            let t = sample(dtype, shape);
            let path = dir.path().join("s.npy");
            npy::save(&path, &t.view()).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                bytes,
                npy_bytes(&t, ByteOrder::NATIVE, false),
                "{dtype} {shape:?}"
            );
            let h = NpyHeader::parse(&bytes, "s").unwrap();
            assert_eq!(h.data_offset % 64, 0);
            assert_eq!(h.version, (1, 0));
        }
    }
    // A transposed (Fortran-contiguous) tensor is written in Fortran order, like NumPy.
    let t = sample(DType::Int32, &[3, 5]).permute(&[1, 0]).unwrap();
    let path = dir.path().join("t.npy");
    npy::save(&path, &t.view()).unwrap();
    let h = npy::read_header(&path).unwrap();
    assert!(h.fortran_order);
    assert_eq!(h.shape, vec![5, 3]);
    same(&npy::load(&path, &opts(Some(false))).unwrap(), &t);
    // A strided, byte-swapped view is written C-ordered and native.
    let raw: Vec<u8> = (0..48u8).collect();
    let v = TensorView::new(
        &raw,
        DType::UInt16,
        vec![3, 2],
        vec![-16, 6],
        32,
        ByteOrder::Big,
    )
    .unwrap();
    npy::save(&path, &v).unwrap();
    let back = npy::load(&path, &LoadOptions::default()).unwrap();
    same(&back, &cast(&v, DType::UInt16, Casting::Unsafe).unwrap());
}

#[test]
fn bfloat16_is_written_and_read_as_v2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.npy");
    let t = sample(DType::BFloat16, &[4]);
    npy::save(&path, &t.view()).unwrap();
    let h = npy::read_header(&path).unwrap();
    assert_eq!(h.descr, "<V2");
    assert_eq!(h.dtype, None);
    let e = err_of(npy::load(&path, &LoadOptions::default()));
    assert!(e.contains("'<V2'") && e.contains("bfloat16"), "{e}");
    let e = err_of(npy::load(
        &path,
        &LoadOptions {
            dtype: Some(DType::Float16),
            ..Default::default()
        },
    ));
    assert!(e.contains("bfloat16"), "{e}");
    let b = npy::load(
        &path,
        &LoadOptions {
            dtype: Some(DType::BFloat16),
            ..Default::default()
        },
    )
    .unwrap();
    same(&b, &t);
}

#[test]
fn dtype_option_casts_in_the_same_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.npy");
    let t = sample(DType::Float64, &[2, 3]);
    std::fs::write(&path, npy_bytes(&t, ByteOrder::Big, true)).unwrap();
    let want = t.cast(DType::Int16, Casting::Unsafe).unwrap();
    let o = LoadOptions {
        dtype: Some(DType::Int16),
        ..Default::default()
    };
    same(&npy::load(&path, &o).unwrap(), &want);
    let e = err_of(npy::load(
        &path,
        &LoadOptions {
            casting: Casting::Safe,
            ..o
        },
    ));
    assert!(e.contains("cannot cast"), "{e}");
    let e = err_of(npy::load(
        &path,
        &LoadOptions {
            mmap: Some(true),
            ..o
        },
    ));
    assert!(e.contains("cannot memory-map") && e.contains("cast"), "{e}");
}

#[test]
fn default_maps_large_native_files_and_mapping_outlives_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.npy");
    let t = sample(DType::Float32, &[512, 1024]); // 2 MiB
    npy::save(&path, &t.view()).unwrap();
    let m = npy::load(&path, &LoadOptions::default()).unwrap();
    assert!(m.is_view() && m.storage().is_mapped_file());
    std::fs::remove_file(&path).unwrap();
    same(&m, &t);
    let m2 = m.index(&[tensorbridge::Index::At(3)]).unwrap();
    drop(m);
    assert_eq!(m2.shape(), &[1024]);
}

#[test]
fn streaming_writer_checks_the_element_count() {
    let t = sample(DType::Int64, &[4, 3]);
    let data = t.as_bytes().unwrap();
    let mut w = NpyWriter::new(Vec::new(), DType::Int64, &[4, 3], false).unwrap();
    w.write_bytes(&data[..24]).unwrap();
    let rest = TensorView::contiguous(&data[24..], DType::Int64, &[9]).unwrap();
    w.write_chunk(&rest).unwrap();
    let bytes = w.finish().unwrap();
    same(
        &npy::from_bytes(&bytes, "w", &LoadOptions::default()).unwrap(),
        &t,
    );

    let mut w = NpyWriter::new(Vec::new(), DType::Int64, &[4, 3], false).unwrap();
    w.write_bytes(&data[..16]).unwrap();
    assert!(w.finish().unwrap_err().to_string().contains("2 of its 12"));
    let mut w = NpyWriter::new(Vec::new(), DType::Int64, &[1], false).unwrap();
    assert!(w.write_bytes(&data[..16]).is_err());
    let mut w = NpyWriter::new(Vec::new(), DType::Int64, &[1], false).unwrap();
    assert!(w.write_bytes(&data[..5]).is_err());
    let f = TensorView::from_slice(&[1.0f32], &[1]).unwrap();
    assert!(w.write_chunk(&f).is_err());
}

#[test]
fn streaming_reader_reads_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.npy");
    let t = sample(DType::Complex64, &[7, 3]);
    npy::save(&path, &t.view()).unwrap();
    let mut r = npy::open(&path).unwrap();
    assert_eq!(r.header().shape, vec![7, 3]);
    let mut buf = vec![0u8; 20]; // two and a half elements of 8 bytes: two per chunk
    let mut got = vec![];
    loop {
        let c = r.read_chunk(&mut buf).unwrap();
        if c.is_empty() {
            break;
        }
        assert!(c.len() == 16 || r.remaining() == 0, "{}", c.len());
        got.extend_from_slice(c);
    }
    assert_eq!(got, t.as_bytes().unwrap());
}

#[test]
fn atomic_save_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.npy");
    std::fs::write(&path, b"old").unwrap();
    // A failing write (a view of too many dimensions cannot be created, so fail in
    // the archive writer instead: a duplicate member name).
    let t = sample(DType::UInt8, &[3]);
    let e = npz::save(&path, &[("a", t.view()), ("a", t.view())], false).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // A directory that does not exist.
    let e = npy::save(dir.path().join("no/such/x.npy"), &t.view()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

// --- .npz -------------------------------------------------------------------------

/// An archive the way `np.savez` lays it out: members at whatever offset the local
/// headers leave (not aligned), optionally deflated.
fn numpy_like_npz(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    for (name, bytes) in members {
        let o = zip::write::SimpleFileOptions::default().compression_method(method);
        z.start_file(format!("{name}.npy"), o).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

#[test]
fn npz_members_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample(DType::Float32, &[6, 5]);
    let b = sample(DType::Int16, &[4]);
    let c = sample(DType::Complex128, &[2, 2]);
    for deflate in [false, true] {
        let bytes = numpy_like_npz(
            &[
                ("a", npy_bytes(&a, ByteOrder::NATIVE, false)),
                ("b", npy_bytes(&b, ByteOrder::Big, false)),
                ("c", npy_bytes(&c, ByteOrder::NATIVE, true)),
                (
                    "e",
                    npy_bytes(&sample(DType::Bool, &[0, 3]), ByteOrder::NATIVE, false),
                ),
            ],
            deflate,
        );
        let path = dir.path().join("n.npz");
        std::fs::write(&path, &bytes).unwrap();
        let z = NpzArchive::open(&path).unwrap();
        assert_eq!(z.names().collect::<Vec<_>>(), vec!["a", "b", "c", "e"]);
        assert_eq!(z.header("c").unwrap().shape, vec![2, 2]);
        let kind = if deflate {
            Compression::Deflated
        } else {
            Compression::Stored
        };
        assert!(z.members().iter().all(|m| m.compression == kind));
        for (n, t) in [("a", &a), ("b", &b), ("c", &c)] {
            let l = z.load(n, &LoadOptions::default()).unwrap();
            same(&l, t);
            let copy = z.load(n, &opts(Some(false))).unwrap();
            assert!(!copy.is_view());
            same(&copy, t);
            // `np.savez` offsets are unaligned: copies (unless a 1-byte type).
            #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` is newer than the MSRV
            if l.is_view() {
                assert!(!deflate && l.data_ptr() as usize % 4 == 0);
            }
        }
        assert_eq!(
            z.load("e", &LoadOptions::default()).unwrap().shape(),
            &[0, 3]
        );
        // The same from memory.
        let zm = NpzArchive::from_bytes(&bytes, "m.npz").unwrap();
        same(&zm.load("a", &LoadOptions::default()).unwrap(), &a);
    }
}

/// `mmap: Some(true)` refusals give the core's one copy=False reason (`ViewObstacle`)
/// in the `.npy` file's or `.npz` member's words, and the same zero-copy decision.
#[test]
fn map_refusals_name_the_obstacle() {
    let dir = tempfile::tempdir().unwrap();
    let t = sample(DType::Float32, &[3, 4]);
    let path = dir.path().join("o.npy");
    let cases = [
        (
            ByteOrder::Big,
            Some(DType::Float64),
            "dtype changes from float32 to float64",
        ),
        (ByteOrder::Big, None, "byte-swapped"),
    ];
    for (order, dtype, why) in cases {
        std::fs::write(&path, npy_bytes(&t, order, false)).unwrap();
        let o = LoadOptions {
            mmap: Some(true),
            dtype,
            ..Default::default()
        };
        let e = err_of(npy::load(&path, &o));
        assert!(
            e.contains("cannot memory-map: ") && e.contains(why) && e.contains("mmap disabled"),
            "{e}"
        );
    }
    // `np.savez` leaves member data at odd offsets: stored members are misaligned.
    let bytes = numpy_like_npz(&[("a", npy_bytes(&t, ByteOrder::NATIVE, false))], false);
    let path = dir.path().join("o.npz");
    std::fs::write(&path, &bytes).unwrap();
    let z = NpzArchive::open(&path).unwrap();
    let e = err_of(z.load("a", &opts(Some(true))));
    assert!(
        e.contains("cannot memory-map: ") && e.contains("not aligned for float32"),
        "{e}"
    );
    let copy = z.load("a", &opts(None)).unwrap();
    assert!(!copy.is_view());
    same(&copy, &t);
    // A one-byte type has no alignment to miss: mapped.
    let u = sample(DType::UInt8, &[3, 4]);
    let bytes = numpy_like_npz(&[("u", npy_bytes(&u, ByteOrder::Big, true))], false);
    std::fs::write(&path, &bytes).unwrap();
    let z = NpzArchive::open(&path).unwrap();
    let m = z.load("u", &opts(Some(true))).unwrap();
    assert!(m.is_view());
    same(&m, &u);
}

#[test]
fn npz_written_by_tensorbridge_maps_zero_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tb.npz");
    let tensors: Vec<(String, Tensor)> = DType::ALL
        .iter()
        .map(|&d| (d.name().to_string(), sample(d, &[3, 5])))
        .collect();
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.view()))
        .collect();
    npz::save(&path, &views, false).unwrap();
    let z = NpzArchive::open(&path).unwrap();
    for (n, t) in &tensors {
        let o = LoadOptions {
            mmap: Some(true),
            dtype: (t.dtype() == DType::BFloat16).then_some(DType::BFloat16),
            ..Default::default()
        };
        let l = z.load(n, &o).unwrap();
        assert!(l.is_view(), "{n}");
        assert_eq!(l.data_ptr() as usize % 64, 0, "{n}");
        assert!(std::sync::Arc::ptr_eq(l.storage(), z.storage()));
        same(&l, t);
    }
    drop(z);
    // Compressed.
    npz::save(&path, &views, true).unwrap();
    let z = NpzArchive::open(&path).unwrap();
    assert!(z
        .members()
        .iter()
        .all(|m| m.compression == Compression::Deflated));
    let l = z.load("float64", &LoadOptions::default()).unwrap();
    same(&l, &tensors[12].1);
}

#[test]
fn npz_zip64_for_many_members() {
    let mut w = NpzWriter::new(Cursor::new(Vec::new()), false);
    let one = [7u8];
    let v = TensorView::from_slice(&one, &[1]).unwrap();
    for i in 0..65_540 {
        w.add(&format!("m{i}"), &v).unwrap();
    }
    let bytes = w.finish().unwrap().into_inner();
    // A ZIP64 end of central directory record is there.
    assert!(bytes.windows(4).any(|w| w == b"PK\x06\x06"));
    let z = NpzArchive::from_bytes(&bytes, "many.npz").unwrap();
    assert_eq!(z.len(), 65_540);
    let t = z.load("m65539", &LoadOptions::default()).unwrap();
    assert_eq!(t.to_vec::<u8>().unwrap(), vec![7]);
}

/// Writes a member over 4 GiB (stored, zeros). Slow and needs ~4.3 GB of disk: run
/// with `cargo test -- --ignored`.
#[test]
#[ignore]
fn npz_zip64_for_a_member_over_4_gib() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.npz");
    let n = (1usize << 32) + 64;
    let file = tensorbridge::format::AtomicFile::create(&path).unwrap();
    let mut w = NpzWriter::new(file, false);
    w.start_member("z", DType::UInt8, &[n], false).unwrap();
    let chunk = vec![1u8; 1 << 24];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        w.write_bytes(&chunk[..k]).unwrap();
        left -= k;
    }
    w.add("after", &TensorView::from_slice(&[5i32], &[1]).unwrap())
        .unwrap();
    w.finish().unwrap().commit().unwrap();
    let z = NpzArchive::open(&path).unwrap();
    assert_eq!(z.member("z").unwrap().size, n as u64 + 128);
    let t = z.load("z", &opts(Some(true))).unwrap();
    assert_eq!(t.shape(), &[n]);
    assert_eq!(
        z.load("after", &LoadOptions::default())
            .unwrap()
            .to_vec::<i32>()
            .unwrap(),
        vec![5]
    );
}

// --- Hostile files ----------------------------------------------------------------

fn raw_header(version: u8, dict: &str) -> Vec<u8> {
    let mut v = b"\x93NUMPY".to_vec();
    v.extend_from_slice(&[version, 0]);
    if version == 1 {
        v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        v.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    v.extend_from_slice(dict.as_bytes());
    v
}

fn with_data(mut header: Vec<u8>, n: usize) -> Vec<u8> {
    header.extend(std::iter::repeat_n(0u8, n));
    header
}

/// One hostile file per refusal, with the substring its error must contain.
fn hostile_files() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let dict = |descr: &str, shape: &str| {
        format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}")
    };
    vec![
        (
            "object",
            with_data(raw_header(1, &dict("'|O'", "(2,)")), 64),
            "never unpickles",
        ),
        (
            "structured",
            with_data(
                raw_header(1, &dict("[('x', '<f4'), ('y', '<i4')]", "(2,)")),
                16,
            ),
            "structured (record) dtypes are not supported",
        ),
        (
            "subarray",
            with_data(raw_header(1, &dict("('<f4', (2,))", "(2,)")), 16),
            "subarray dtypes are not supported",
        ),
        (
            "unicode",
            with_data(raw_header(1, &dict("'<U3'", "(2,)")), 24),
            "unsupported dtype '<U3'",
        ),
        (
            "datetime",
            with_data(raw_header(1, &dict("'<M8[ns]'", "(2,)")), 16),
            "unsupported dtype '<M8[ns]'",
        ),
        (
            "longdouble",
            with_data(raw_header(1, &dict("'<f16'", "(1,)")), 16),
            "unsupported dtype '<f16'",
        ),
        (
            "truncated_data",
            with_data(raw_header(1, &dict("'<f8'", "(10,)")), 79),
            "truncated data",
        ),
        (
            "shape_exceeds_file",
            with_data(raw_header(1, &dict("'<f8'", "(1099511627776,)")), 8),
            "truncated data",
        ),
        (
            "shape_overflows",
            raw_header(1, &dict("'<f8'", "(4294967296, 4294967296)")),
            "overflows",
        ),
        (
            "negative_dim",
            raw_header(1, &dict("'<f8'", "(-3,)")),
            "negative dimension",
        ),
        (
            "header_too_long",
            with_data(
                raw_header(
                    1,
                    &format!("{}{}", dict("'<f8'", "(1,)"), " ".repeat(12_000)),
                ),
                8,
            ),
            "longer than NumPy allows",
        ),
        (
            "header_length_huge",
            {
                let mut v = b"\x93NUMPY\x02\x00".to_vec();
                v.extend_from_slice(&u32::MAX.to_le_bytes());
                v
            },
            "longer than NumPy allows",
        ),
        (
            "not_a_literal",
            raw_header(
                1,
                "{'descr': eval('<f8'), 'fortran_order': False, 'shape': (1,)}",
            ),
            "not a valid Python literal",
        ),
        (
            "not_a_dict",
            raw_header(1, "('<f8', False, (1,))"),
            "header is not a dict",
        ),
        (
            "missing_key",
            raw_header(1, "{'descr': '<f8', 'shape': (1,)}"),
            "missing key \"fortran_order\"",
        ),
        (
            "extra_key",
            raw_header(
                1,
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'evil': 1}",
            ),
            "unexpected key \"evil\"",
        ),
        (
            "bad_magic",
            b"\x93NUMPZ\x01\x00\x10\x00{}              ".to_vec(),
            "bad magic",
        ),
        (
            "zip_not_npy",
            b"PK\x03\x04 this is not an npy".to_vec(),
            "bad magic",
        ),
        (
            "bad_version",
            raw_header(9, &dict("'<f8'", "(1,)")),
            "unsupported .npy format version 9.0",
        ),
        (
            "truncated_header",
            raw_header(1, &dict("'<f8'", "(1,)"))[..40].to_vec(),
            "truncated header",
        ),
        ("empty", Vec::new(), "truncated header"),
        (
            "garbage",
            (0..300u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            "bad magic",
        ),
        (
            "bad_utf8_v3",
            raw_header(3, "{'descr': '\u{ff}'}")
                .into_iter()
                .map(|b| if b == 0xc3 { 0xff } else { b })
                .collect(),
            "UTF-8",
        ),
        (
            "deep_nesting",
            raw_header(1, &"[".repeat(3000)),
            "nesting too deep",
        ),
    ]
}

#[test]
fn hostile_npy_files_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, want) in hostile_files() {
        let path = dir.path().join(format!("{name}.npy"));
        std::fs::write(&path, &bytes).unwrap();
        let shown = path.display().to_string();
        for mmap in [None, Some(true), Some(false)] {
            let e = err_of(npy::load(&path, &opts(mmap)));
            assert!(e.contains(want), "{name} (mmap {mmap:?}): {e}");
            assert!(e.starts_with(&shown), "{name}: {e}");
        }
        let e = err_of(npy::from_bytes(&bytes, "mem.npy", &LoadOptions::default()));
        assert!(
            e.contains(want) && e.starts_with("mem.npy: "),
            "{name}: {e}"
        );
        if !want.contains("truncated data") {
            let e = npy::read_header(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{name}: {e}");
        }
        assert!(matches!(
            npy::load(&path, &LoadOptions::default()),
            Err(Error::Format { .. })
        ));
        // The same bytes as a member of an archive, stored and deflated.
        for deflate in [false, true] {
            let z = numpy_like_npz(&[("x", bytes.clone())], deflate);
            let z = NpzArchive::from_bytes(&z, "a.npz").unwrap();
            let e = err_of(z.load("x", &LoadOptions::default()));
            assert!(
                e.contains(want) && e.starts_with("a.npz:x: "),
                "{name} in npz: {e}"
            );
        }
    }
}

#[test]
fn hostile_npz_archives_are_refused() {
    let good = numpy_like_npz(
        &[(
            "x",
            npy_bytes(&sample(DType::Int32, &[5]), ByteOrder::NATIVE, false),
        )],
        false,
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "not a valid .npz (zip) archive"),
        ("garbage", vec![0x42; 500], "not a valid .npz (zip) archive"),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not a valid .npz (zip) archive",
        ),
        (
            "npy_not_zip",
            npy_bytes(&sample(DType::Int8, &[3]), ByteOrder::NATIVE, false),
            "not a valid .npz (zip) archive",
        ),
    ];
    for (name, bytes, want) in cases {
        let e = NpzArchive::from_bytes(&bytes, "h.npz")
            .unwrap_err()
            .to_string();
        assert!(e.contains(want) && e.starts_with("h.npz"), "{name}: {e}");
    }
    // A stored member whose declared size is larger than the data that is there.
    let mut bad = good.clone();
    let cd = bad.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    for off in [20, 24] {
        bad[cd + off..cd + off + 4].copy_from_slice(&100_000u32.to_le_bytes());
    }
    match NpzArchive::from_bytes(&bad, "h.npz") {
        Err(e) => assert!(e.to_string().starts_with("h.npz"), "{e}"),
        Ok(z) => {
            let e = err_of(z.load("x", &LoadOptions::default()));
            assert!(e.contains("outside the archive"), "{e}");
        }
    }
    // A deflated member claiming far more than its compressed bytes can hold.
    let d = numpy_like_npz(
        &[(
            "x",
            npy_bytes(&sample(DType::Int32, &[5]), ByteOrder::NATIVE, false),
        )],
        true,
    );
    let mut bomb = d.clone();
    let cd = bomb.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bomb[cd + 24..cd + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    if let Ok(z) = NpzArchive::from_bytes(&bomb, "h.npz") {
        let e = err_of(z.load("x", &LoadOptions::default()));
        assert!(e.contains("more than deflate can produce"), "{e}");
    }
    // An unsupported compression method (bzip2 = 12) and an encrypted member: listed
    // (or refused at open), never loaded.
    for (off_local, off_cd, value, want) in [
        (8usize, 10usize, 12u16, "not supported"),
        (6, 8, 1, "encrypted"),
    ] {
        let mut b = good.clone();
        b[off_local..off_local + 2].copy_from_slice(&value.to_le_bytes());
        let cd = b.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        b[cd + off_cd..cd + off_cd + 2].copy_from_slice(&value.to_le_bytes());
        match NpzArchive::from_bytes(&b, "h.npz") {
            Err(e) => assert!(e.to_string().starts_with("h.npz"), "{e}"),
            Ok(z) => {
                let e = err_of(z.load("x", &LoadOptions::default()));
                assert!(e.contains(want) && e.starts_with("h.npz:x: "), "{e}");
                assert!(z.header("x").is_err() && z.reader("x").is_err());
            }
        }
    }
    // Corrupt deflate data.
    let mut corrupt = d.clone();
    let m = NpzArchive::from_bytes(&d, "h.npz")
        .unwrap()
        .member("x")
        .unwrap()
        .clone();
    for b in &mut corrupt[m.data_start as usize + 2..m.data_start as usize + 12] {
        *b ^= 0x5a;
    }
    let z = NpzArchive::from_bytes(&corrupt, "h.npz").unwrap();
    let e = err_of(z.load("x", &LoadOptions::default()));
    assert!(e.starts_with("h.npz:x: "), "{e}");
}

#[test]
fn paths_in_errors() {
    let e = err_of(npy::load(
        Path::new("/no/such/file.npy"),
        &LoadOptions::default(),
    ));
    assert!(e.starts_with("/no/such/file.npy"), "{e}");
    let e = NpzArchive::open("/no/such/file.npz")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/no/such/file.npz"), "{e}");
}

/// Every file of the fuzz seed corpora (and of the directories in `TB_EXTRA_CORPUS`,
/// `:`-separated, such as a fuzzing run's output) through the fuzz targets' entry
/// points: errors are fine, panics are not.
#[test]
fn fuzz_corpora_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut dirs = vec![root.join("npy_header"), root.join("npz_open")];
    if let Ok(extra) = std::env::var("TB_EXTRA_CORPUS") {
        dirs.extend(extra.split(':').map(std::path::PathBuf::from));
    }
    let mut n = 0;
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            n += 1;
            let _ = NpyHeader::parse(&bytes, "c");
            for o in [
                LoadOptions::default(),
                LoadOptions {
                    dtype: Some(DType::BFloat16),
                    ..Default::default()
                },
            ] {
                let _ = npy::from_bytes(&bytes, "c", &o);
            }
            if let Ok(z) = NpzArchive::from_bytes(&bytes, "c") {
                let names: Vec<String> = z.names().map(String::from).collect();
                for name in &names {
                    let _ = z.header(name);
                    let _ = z.load(name, &LoadOptions::default());
                    let _ = z.load(name, &opts(Some(false)));
                }
            }
        }
    }
    assert!(n >= 10, "seed corpus missing ({n} files)");
}
