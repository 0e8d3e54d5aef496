//! `.npy` / `.npz` reading and writing: every dtype × byte order × order × shape
//! class, mapping rules, streaming, atomic writes. Hostile files: `hostile_files.rs`.
//!
//! Files in NumPy's exact byte layout are built here from headers; the Python tests
//! check the same against `np.save` / `np.load` themselves.

use std::io::Cursor;

use tensorbridge::format::npy::{self, LoadOptions, NpyHeader, NpyWriter};
use tensorbridge::format::npz::{self, Compression, NpzArchive, NpzWriter};
use tensorbridge::{cast, ByteOrder, Casting, DType, Error, Tensor, TensorView};

mod common;
use common::*;

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
