//! Readers and writers on object-store locations (object_store's in-memory store,
//! `memory://`: the same code paths as S3), checked against the local readers of the
//! same bytes.

use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};

use super::npy::{self, LoadOptions, NpyHeader};
use super::npz::{self, Compression, NpzArchive};
use super::{load, load_location, Loaded};
use crate::dtype::{ByteOrder, DType};
use crate::error::Error;
use crate::location::{block_on_for_tests as block_on, memory_store, Location, StorageOptions};
use crate::tensor::Tensor;
use crate::view::TensorView;

fn loc(s: &str) -> Location {
    Location::parse(s, &StorageOptions::new()).unwrap()
}

fn put(key: &str, bytes: Vec<u8>) {
    block_on(memory_store().put(&ObjPath::from(key), PutPayload::from(bytes))).unwrap();
}

fn get(key: &str) -> Vec<u8> {
    let r = block_on(memory_store().get(&ObjPath::from(key))).unwrap();
    block_on(r.bytes()).unwrap().to_vec()
}

/// Load `bytes` both ways: from a local file and from the store.
fn both(key: &str, bytes: &[u8], opts: &LoadOptions) -> (Tensor, Tensor) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(key.rsplit('/').next().unwrap());
    std::fs::write(&p, bytes).unwrap();
    let local = match load(&p, opts).unwrap() {
        Loaded::Array(t) => t,
        Loaded::Archive(_) => panic!("archive"),
    };
    put(key, bytes.to_vec());
    let remote = match load_location(&loc(&format!("memory:///{key}")), opts).unwrap() {
        Loaded::Array(t) => t,
        Loaded::Archive(_) => panic!("archive"),
    };
    (local, remote)
}

fn same(a: &Tensor, b: &Tensor) {
    assert_eq!(a.dtype(), b.dtype());
    assert_eq!(a.shape(), b.shape());
    let ca = crate::cast(&a.view(), a.dtype(), crate::Casting::Unsafe).unwrap();
    let cb = crate::cast(&b.view(), b.dtype(), crate::Casting::Unsafe).unwrap();
    assert_eq!(ca.as_bytes().unwrap(), cb.as_bytes().unwrap());
}

#[test]
fn npy_round_trip_and_parity_with_local() {
    let data: Vec<f64> = (0..(3 << 20) / 8 + 5).map(|i| i as f64 * 0.25).collect();
    let view = TensorView::from_slice(&data, &[data.len()]).unwrap();
    let url = "memory:///fmt-tests/a.npy";
    npy::save_location(&loc(url), &view).unwrap();
    let bytes = get("fmt-tests/a.npy");
    let (l, r) = both("fmt-tests/a2.npy", &bytes, &LoadOptions::default());
    same(&l, &r);
    assert!(!r.is_view());
    assert_eq!(r.to_vec::<f64>().unwrap(), data);
    // A cast in the same pass.
    let opts = LoadOptions {
        dtype: Some(DType::Float32),
        ..Default::default()
    };
    let (l, r) = both("fmt-tests/a3.npy", &bytes, &opts);
    same(&l, &r);
    // mmap=True has no local file to map.
    let e = load_location(
        &loc(url),
        &LoadOptions {
            mmap: Some(true),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("local file"),
        "{e}"
    );
}

#[test]
fn npy_byte_swapped_fortran_zero_d_and_empty() {
    // Big-endian int32, Fortran order, 2x3.
    let mut h = NpyHeader::new(DType::Int32, &[2, 3], true).unwrap();
    h.descr = ">i4".into();
    h.byte_order = ByteOrder::Big;
    let mut bytes = h.to_bytes();
    for v in [1i32, 4, 2, 5, 3, 6] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    let (l, r) = both("fmt-tests/be.npy", &bytes, &LoadOptions::default());
    same(&l, &r);
    assert_eq!(r.to_vec::<i32>().unwrap(), vec![1, 2, 3, 4, 5, 6]);
    for shape in [vec![], vec![0, 3]] {
        let h = NpyHeader::new(DType::UInt16, &shape, false).unwrap();
        let mut bytes = h.to_bytes();
        if shape.is_empty() {
            bytes.extend_from_slice(&7u16.to_le_bytes());
        }
        let (l, r) = both("fmt-tests/small.npy", &bytes, &LoadOptions::default());
        same(&l, &r);
    }
    // A truncated object is refused as a local file is.
    let h = NpyHeader::new(DType::Int64, &[10], false).unwrap();
    put("fmt-tests/short.npy", h.to_bytes());
    let e = load_location(
        &loc("memory:///fmt-tests/short.npy"),
        &LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("truncated data") && e.contains("memory:///fmt-tests/short.npy"),
        "{e}"
    );
}

#[test]
fn npz_remote_reads_directory_then_members() {
    let a: Vec<f32> = (0..50_000).map(|i| i as f32).collect();
    let b: Vec<u8> = (0..255).collect();
    let va = TensorView::from_slice(&a, &[250, 200]).unwrap();
    let vb = TensorView::from_slice(&b, &[255]).unwrap();
    for compress in [false, true] {
        let url = format!("memory:///fmt-tests/z{compress}.npz");
        npz::save_location(
            &loc(&url),
            &[("a", va.clone()), ("b", vb.clone())],
            compress,
        )
        .unwrap();
        let bytes = get(&format!("fmt-tests/z{compress}.npz"));
        let local = NpzArchive::from_bytes(&bytes, "local.npz").unwrap();
        let remote = match load_location(&loc(&url), &LoadOptions::default()).unwrap() {
            Loaded::Archive(z) => z,
            Loaded::Array(_) => panic!("array"),
        };
        assert!(remote.is_remote());
        assert_eq!(remote.names().collect::<Vec<_>>(), vec!["a", "b"]);
        for (lm, rm) in local.members().iter().zip(remote.members()) {
            assert_eq!(
                (&lm.name, lm.size, lm.crc32, &lm.compression),
                (&rm.name, rm.size, rm.crc32, &rm.compression)
            );
        }
        let want = if compress {
            Compression::Deflated
        } else {
            Compression::Stored
        };
        assert_eq!(remote.member("a").unwrap().compression, want);
        for n in ["a", "b"] {
            assert_eq!(remote.header(n).unwrap(), local.header(n).unwrap());
            let l = local.load(n, &LoadOptions::default()).unwrap();
            let r = remote.load(n, &LoadOptions::default()).unwrap();
            same(&l, &r);
            let mut reader = remote.reader(n).unwrap();
            let mut buf = vec![0u8; 4096];
            let mut n_bytes = 0;
            loop {
                let c = reader.read_chunk(&mut buf).unwrap();
                if c.is_empty() {
                    break;
                }
                n_bytes += c.len();
            }
            assert_eq!(n_bytes, reader.header().data_len());
        }
        assert!(remote
            .load(
                "a",
                &LoadOptions {
                    mmap: Some(true),
                    ..Default::default()
                }
            )
            .is_err());
    }
}

#[test]
fn npz_remote_crc_mismatch_is_detected() {
    let a: Vec<i64> = (0..100).collect();
    let va = TensorView::from_slice(&a, &[100]).unwrap();
    let url = "memory:///fmt-tests/crc.npz";
    npz::save_location(&loc(url), &[("a", va)], false).unwrap();
    let mut bytes = get("fmt-tests/crc.npz");
    let z = NpzArchive::from_bytes(&bytes, "x").unwrap();
    let m = z.member("a").unwrap();
    bytes[(m.data_start + m.size - 1) as usize] ^= 1;
    put("fmt-tests/crc.npz", bytes);
    let z = NpzArchive::open_location(&loc(url)).unwrap();
    let e = z
        .load("a", &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("CRC-32 mismatch") && e.starts_with("memory:///fmt-tests/crc.npz:a"),
        "{e}"
    );
}
