//! Issue 8: one format detection (content, then extension), empty `.npz`
//! archives, and bool bytes other than 0/1 read the same mapped or copied.

use tensorbridge::format::npy::{self, LoadOptions, NpyHeader};
use tensorbridge::format::npz::{self, NpzArchive, NpzWriter};
use tensorbridge::{cast, ByteOrder, Casting, DType, Tensor, TensorView};

fn opts(mmap: Option<bool>) -> LoadOptions {
    LoadOptions {
        mmap,
        ..Default::default()
    }
}

fn sample(dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 2.0).collect();
    Tensor::from_slice(&v, &[n])
        .unwrap()
        .cast(dtype, Casting::Unsafe)
        .unwrap()
        .reshape(&shape.iter().map(|&d| d as isize).collect::<Vec<_>>())
        .unwrap()
}

#[test]
fn empty_npz_archive_opens_and_is_detected() {
    use tensorbridge::format::{detect, FileFormat};
    let dir = tempfile::tempdir().unwrap();
    // What np.savez(path) writes: only an end-of-central-directory record.
    let numpy_empty = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    let ours = dir.path().join("ours.npz");
    npz::save(&ours, &[], false).unwrap();
    assert!(std::fs::read(&ours).unwrap().starts_with(b"PK\x05\x06"));
    for (name, bytes) in [
        ("np.npz", numpy_empty.clone()),
        ("no_extension", numpy_empty),
        ("ours.npz", std::fs::read(&ours).unwrap()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(detect(&p), Some(FileFormat::Npz), "{name}");
        let z = NpzArchive::open(&p).unwrap();
        assert!(z.is_empty() && z.names().next().is_none(), "{name}");
    }
}

#[test]
fn detection_by_content_then_extension() {
    use tensorbridge::format::{detect, FileFormat};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = sample(DType::Float32, &[2, 3]);
    // Content decides, whatever the name.
    npy::save(d.join("a.bin"), &t.view()).unwrap();
    npz::save(d.join("b.bin"), &[("t", t.view())], true).unwrap();
    tensorbridge::format::safetensors::save_safetensors(d.join("c.bin"), &[("t", t.view())])
        .unwrap();
    tensorbridge::format::tfrecord::write_tfrecord(d.join("d.bin"), &[("t", t.view())], 1, false)
        .unwrap();
    tensorbridge::format::tfrecord::write_tfrecord(
        d.join("e.tfrecord"),
        &[("t", t.view())],
        1,
        true,
    )
    .unwrap();
    for (name, want) in [
        ("a.bin", Some(FileFormat::Npy)),
        ("b.bin", Some(FileFormat::Npz)),
        ("c.bin", Some(FileFormat::Safetensors)),
        ("d.bin", Some(FileFormat::Tfrecord)),
        // GZIP TFRecord, missing files and garbage: by extension.
        ("e.tfrecord", Some(FileFormat::Tfrecord)),
        ("missing.NPZ", Some(FileFormat::Npz)),
        ("missing.txt", None),
    ] {
        assert_eq!(detect(d.join(name)), want, "{name}");
    }
    std::fs::write(d.join("garbage.npy"), b"\x00\x01 not numpy").unwrap();
    assert_eq!(detect(d.join("garbage.npy")), Some(FileFormat::Npy));
    std::fs::write(d.join("garbage"), b"\x00\x01 not numpy").unwrap();
    assert_eq!(detect(d.join("garbage")), None);
    let e = tensorbridge::format::unknown_format(&d.join("garbage")).to_string();
    assert!(
        e.contains("garbage") && e.contains("unknown file type"),
        "{e}"
    );
}

#[test]
fn odd_bool_bytes_read_the_same_mapped_or_copied() {
    // Bytes other than 0/1 in a bool array stay as they are, as np.load keeps them,
    // whatever the order and whether the file is mapped or read.
    let dir = tempfile::tempdir().unwrap();
    let raw = [0u8, 2, 1, 255, 0, 3];
    // The stored bytes in C order (a cast would turn them into 0/1).
    let bytes_of = |t: &Tensor| -> Vec<u8> {
        let v = TensorView::new(
            t.storage().as_slice(),
            DType::UInt8,
            t.shape().to_vec(),
            t.strides().to_vec(),
            t.offset(),
            ByteOrder::NATIVE,
        )
        .unwrap();
        cast(&v, DType::UInt8, Casting::Unsafe)
            .unwrap()
            .to_vec::<u8>()
            .unwrap()
    };
    for fortran in [false, true] {
        let h = NpyHeader::new(DType::Bool, &[2, 3], fortran).unwrap();
        let mut bytes = h.to_bytes();
        bytes.extend_from_slice(&raw);
        let p = dir.path().join(format!("b{fortran}.npy"));
        std::fs::write(&p, &bytes).unwrap();
        // File order -> C order of the logical array.
        let want: Vec<u8> = if fortran {
            vec![raw[0], raw[2], raw[4], raw[1], raw[3], raw[5]]
        } else {
            raw.to_vec()
        };
        for mmap in [Some(true), Some(false), None] {
            let t = npy::load(&p, &opts(mmap)).unwrap();
            assert_eq!(bytes_of(&t), want, "{fortran} {mmap:?}");
        }
        let t = npy::from_bytes(&bytes, "mem", &opts(None)).unwrap();
        assert_eq!(bytes_of(&t), want);
        for compress in [false, true] {
            let zp = dir.path().join(format!("b{fortran}{compress}.npz"));
            let mut w = NpzWriter::new(std::fs::File::create(&zp).unwrap(), compress);
            w.start_member("b", DType::Bool, &[2, 3], fortran).unwrap();
            w.write_bytes(&raw).unwrap();
            w.finish().unwrap();
            let z = NpzArchive::open(&zp).unwrap();
            for mmap in [Some(false), None] {
                let t = z.load("b", &opts(mmap)).unwrap();
                assert_eq!(bytes_of(&t), want, "{fortran} {compress} {mmap:?}");
            }
        }
    }
}

#[test]
fn load_opens_arrays_and_archives_by_content() {
    use tensorbridge::format::{load, Loaded};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = sample(DType::Int16, &[4]);
    npy::save(d.join("a.bin"), &t.view()).unwrap();
    npz::save(d.join("z.bin"), &[("t", t.view())], false).unwrap();
    npz::save(d.join("empty.npz"), &[], false).unwrap();
    tensorbridge::format::safetensors::save_safetensors(d.join("s.npy"), &[("t", t.view())])
        .unwrap();
    match load(d.join("a.bin"), &opts(None)).unwrap() {
        Loaded::Array(a) => assert_eq!(a.to_vec::<i16>().unwrap(), t.to_vec::<i16>().unwrap()),
        other => panic!("{other:?}"),
    }
    match load(d.join("z.bin"), &opts(None)).unwrap() {
        Loaded::Archive(z) => assert_eq!(z.names().collect::<Vec<_>>(), ["t"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        load(d.join("empty.npz"), &opts(None)).unwrap(),
        Loaded::Archive(z) if z.is_empty()
    ));
    let e = load(d.join("s.npy"), &opts(None)).unwrap_err().to_string();
    assert!(e.contains("s.npy") && e.contains("safetensors"), "{e}");
    std::fs::write(d.join("g.txt"), b"\x00 nothing").unwrap();
    let e = load(d.join("g.txt"), &opts(None)).unwrap_err().to_string();
    assert!(e.contains("bad magic"), "{e}");
    assert!(matches!(
        load(d.join("missing.npy"), &opts(None)),
        Err(tensorbridge::Error::Io { .. })
    ));
}
