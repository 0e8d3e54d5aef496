//! Hostile `.npy` / `.npz` files: one generated file per refusal, each with the error it
//! must give, paths in errors, and the fuzz seed corpora (errors are fine, panics are not).

use std::path::Path;
use tensorbridge::format::npy::{self, LoadOptions, NpyHeader};
use tensorbridge::format::npz::NpzArchive;
use tensorbridge::{ByteOrder, DType, Error};

mod common;
use common::*;

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
