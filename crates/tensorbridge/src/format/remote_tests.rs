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

#[test]
fn safetensors_remote_round_trip_and_metadata() {
    use super::safetensors as st;
    let a: Vec<f32> = (0..1000).map(|i| i as f32 / 3.0).collect();
    let b = [1i64, -2, 3];
    let t = [
        ("a", TensorView::from_slice(&a, &[10, 100]).unwrap()),
        ("b", TensorView::from_slice(&b, &[3]).unwrap()),
    ];
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("k".to_string(), "v".to_string());
    let url = "memory:///fmt-tests/m.safetensors";
    st::save_safetensors_location(&loc(url), &t, Some(&meta)).unwrap();
    let bytes = get("fmt-tests/m.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    let local = st::load_safetensors(&p).unwrap();
    let remote = st::load_safetensors_location(&loc(url)).unwrap();
    assert_eq!(local.len(), remote.len());
    for ((ln, lt), (rn, rt)) in local.iter().zip(&remote) {
        assert_eq!(ln, rn);
        same(lt, rt);
    }
    assert_eq!(
        st::read_safetensors_metadata_location(&loc(url)).unwrap(),
        Some(meta)
    );
    put("fmt-tests/bad.safetensors", vec![255; 16]);
    let e = st::load_safetensors_location(&loc("memory:///fmt-tests/bad.safetensors")).unwrap_err();
    assert!(
        e.to_string()
            .contains("memory:///fmt-tests/bad.safetensors"),
        "{e}"
    );
}

#[test]
fn tfrecord_remote_plain_gzip_sharded() {
    use super::tfrecord as tf;
    let x: Vec<i32> = (0..600).collect();
    let feats = [("x", TensorView::from_slice(&x, &[200, 3]).unwrap())];
    for (shards, gzip) in [(1, false), (1, true), (3, true)] {
        let url = format!("memory:///fmt-tests/r{shards}{gzip}.tfrecord");
        let locs = tf::write_tfrecord_location(&loc(&url), &feats, shards, gzip).unwrap();
        assert_eq!(locs.len(), shards);
        let mut rows = vec![];
        for l in &locs {
            assert!(l.is_remote());
            for ex in tf::read_tfrecord_location(l, gzip).unwrap() {
                let ex = ex.unwrap();
                let t = ex[0].1.as_tensor().unwrap();
                rows.extend(t.to_vec::<i32>().unwrap());
            }
        }
        assert_eq!(rows, x);
        if shards > 1 {
            assert!(
                locs[1]
                    .display()
                    .ends_with("r3true-00001-of-00003.tfrecord"),
                "{}",
                locs[1].display()
            );
        }
    }
}

#[test]
fn convert_and_inspect_with_either_side_remote() {
    use super::convert::{convert_location, inspect_location, ConvertOptions};
    use super::FileFormat;
    let a: Vec<i16> = (0..300).collect();
    let va = TensorView::from_slice(&a, &[3, 100]).unwrap();
    npy::save_location(&loc("memory:///fmt-tests/c.npy"), &va).unwrap();
    let opts = ConvertOptions {
        dtype: Some(DType::Float64),
        ..Default::default()
    };
    // Remote → remote, remote → local, local → remote.
    convert_location(
        &loc("memory:///fmt-tests/c.npy"),
        &loc("memory:///fmt-tests/c.npz"),
        &opts,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("c.safetensors");
    convert_location(
        &loc("memory:///fmt-tests/c.npz"),
        &Location::local(&local),
        &ConvertOptions::default(),
    )
    .unwrap();
    convert_location(
        &Location::local(&local),
        &loc("memory:///fmt-tests/c2.npy"),
        &ConvertOptions::default(),
    )
    .unwrap();
    let back =
        match load_location(&loc("memory:///fmt-tests/c2.npy"), &LoadOptions::default()).unwrap() {
            Loaded::Array(t) => t,
            Loaded::Archive(_) => panic!(),
        };
    assert_eq!(back.dtype(), DType::Float64);
    assert_eq!(back.shape(), &[3, 100]);
    assert_eq!(
        back.to_vec::<f64>().unwrap(),
        a.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()
    );
    let (fmt, arrays) = inspect_location(&loc("memory:///fmt-tests/c.npz")).unwrap();
    assert_eq!(fmt, FileFormat::Npz);
    assert_eq!(arrays.len(), 1);
    assert_eq!(arrays[0].name, "c");
    assert_eq!(arrays[0].shape, vec![3, 100]);
    // Where a remote member's data lies is not known from the directory alone.
    assert_eq!(arrays[0].data_offset, None);
    // A missing source keeps its kind and names the URL.
    let e = convert_location(
        &loc("memory:///fmt-tests/none.npy"),
        &loc("memory:///fmt-tests/x.npz"),
        &opts,
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(
        e.to_string().contains("memory:///fmt-tests/none.npy"),
        "{e}"
    );
}

/// A store that counts the body bytes its GETs return (what a proxy would count).
#[derive(Debug)]
struct Counting {
    inner: std::sync::Arc<object_store::memory::InMemory>,
    bytes: std::sync::atomic::AtomicU64,
    gets: std::sync::atomic::AtomicU64,
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &ObjPath,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        use std::sync::atomic::Ordering::Relaxed;
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        if !head {
            self.bytes.fetch_add(r.range.end - r.range.start, Relaxed);
        }
        self.gets.fetch_add(1, Relaxed);
        Ok(r)
    }
    async fn delete(&self, location: &ObjPath) -> object_store::Result<()> {
        self.inner.delete(location).await
    }
    fn list(
        &self,
        prefix: Option<&ObjPath>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjPath>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &ObjPath, to: &ObjPath) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &ObjPath, to: &ObjPath) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[test]
fn remote_npz_reads_only_the_directory_and_the_member_asked_for() {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    // 64 members of 1 MiB (stored) and 1 deflated: a 65 MiB archive.
    let big: Vec<f32> = (0..(1 << 18)).map(|i| i as f32).collect();
    let view = TensorView::from_slice(&big, &[1 << 18]).unwrap();
    let names: Vec<String> = (0..64).map(|i| format!("m{i:02}")).collect();
    let mut members: Vec<(&str, TensorView<'_>)> =
        names.iter().map(|n| (n.as_str(), view.clone())).collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.npz");
    npz::save(&p, &members, false).unwrap();
    members.truncate(1);
    let z = dir.path().join("small.npz");
    npz::save(&z, &members, true).unwrap();
    let store = Arc::new(Counting {
        inner: Arc::new(object_store::memory::InMemory::new()),
        bytes: Default::default(),
        gets: Default::default(),
    });
    for (key, file) in [("big.npz", &p), ("small.npz", &z)] {
        let bytes = std::fs::read(file).unwrap();
        block_on(
            store
                .inner
                .put(&ObjPath::from(key), PutPayload::from(bytes)),
        )
        .unwrap();
    }
    let obj = crate::location::RemoteObject::open_in(
        store.clone(),
        ObjPath::from("big.npz"),
        "mem://big.npz",
    )
    .unwrap();
    let archive = NpzArchive::open_remote(obj).unwrap();
    assert_eq!(archive.len(), 64);
    let opened = store.bytes.load(Relaxed);
    assert!(opened < 64 << 10, "opening read {opened} bytes");
    // Every member's header: a small read each.
    for n in &names {
        assert_eq!(archive.header(n).unwrap().shape, vec![1 << 18]);
    }
    let headers = store.bytes.load(Relaxed) - opened;
    assert!(headers < 64 * 1024, "headers read {headers} bytes");
    let before = store.bytes.load(Relaxed);
    let t = archive.load("m37", &LoadOptions::default()).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), big);
    let member = store.bytes.load(Relaxed) - before;
    assert!(
        member < (1 << 20) + (16 << 10),
        "one 1 MiB member read {member} bytes"
    );
    // A deflated member's header without inflating (or fetching) the rest.
    let obj = crate::location::RemoteObject::open_in(
        store.clone(),
        ObjPath::from("small.npz"),
        "mem://small.npz",
    )
    .unwrap();
    let small = NpzArchive::open_remote(obj).unwrap();
    let before = store.bytes.load(Relaxed);
    assert_eq!(small.header("m00").unwrap().shape, vec![1 << 18]);
    let read = store.bytes.load(Relaxed) - before;
    assert!(read < 4096, "a deflated header read {read} bytes");
}

#[test]
fn many_headers_at_once() {
    let a = [1u8, 2, 3];
    for i in 0..100 {
        let v = TensorView::from_slice(&a[..i % 3 + 1], &[i % 3 + 1]).unwrap();
        npy::save_location(&loc(&format!("memory:///fmt-tests/h/{i:03}.npy")), &v).unwrap();
    }
    let mut urls: Vec<_> = (0..100)
        .map(
            |i| match loc(&format!("memory:///fmt-tests/h/{i:03}.npy")) {
                Location::Remote(r) => r,
                Location::Local(_) => panic!(),
            },
        )
        .collect();
    urls.push(match loc("memory:///fmt-tests/h/missing.npy") {
        Location::Remote(r) => r,
        Location::Local(_) => panic!(),
    });
    let got = npy::read_headers_remote(&urls).unwrap();
    for (i, r) in got[..100].iter().enumerate() {
        let (obj, h) = r.as_ref().unwrap();
        assert_eq!(h.shape, vec![i % 3 + 1]);
        assert!(obj.url().ends_with(&format!("{i:03}.npy")));
    }
    assert!(matches!(got[100], Err(Error::NotFound { .. })));
}
