//! The `tensorbridge` binary: inspect and convert, and how it fails on bad input
//! (exit code 1, one stderr line naming the file, no output left behind).

use std::path::Path;
use std::process::{Command, Output};

use tensorbridge::format::npy::{self, LoadOptions};
use tensorbridge::format::npz::{self, Compression, NpzArchive};
use tensorbridge::{Casting, DType, Tensor};

fn tb(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensorbridge"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tensorbridge")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "failed: {}", stderr(o));
    assert!(stderr(o).is_empty(), "unexpected stderr: {}", stderr(o));
}

/// Exit code 1 and exactly one stderr line containing every `needle`.
fn fails_with(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(o));
    let e = stderr(o);
    assert_eq!(e.lines().count(), 1, "not one line: {e:?}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {e:?}");
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn arange(dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|i| i as f64 * 1.5 - 3.0).collect();
    Tensor::from_slice(&v, &[n])
        .unwrap()
        .cast(dtype, Casting::Unsafe)
        .unwrap()
        .reshape(&shape.iter().map(|&d| d as isize).collect::<Vec<_>>())
        .unwrap()
}

fn setup() -> (tempfile::TempDir, Tensor, Tensor) {
    let dir = tempfile::tempdir().unwrap();
    let a = arange(DType::Float32, &[3, 4]);
    let b = arange(DType::Int64, &[5]);
    npy::save(dir.path().join("a.npy"), &a.view()).unwrap();
    npz::save(
        dir.path().join("ab.npz"),
        &[("a", a.view()), ("b", b.view())],
        false,
    )
    .unwrap();
    npz::save(
        dir.path().join("abz.npz"),
        &[("a", a.view()), ("b", b.view())],
        true,
    )
    .unwrap();
    (dir, a, b)
}

fn same(x: &Tensor, y: &Tensor) {
    assert_eq!(x.dtype(), y.dtype());
    assert_eq!(x.shape(), y.shape());
    assert_eq!(
        x.deep_copy().unwrap().as_bytes(),
        y.deep_copy().unwrap().as_bytes()
    );
}

#[test]
fn inspect_table_and_json() {
    let (dir, _, _) = setup();
    let o = tb(&["inspect", "a.npy", "ab.npz", "abz.npz"], dir.path());
    ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.contains("a.npy") && out.contains("float32") && out.contains("(3, 4)"),
        "{out}"
    );
    assert!(
        out.contains("ab.npz:b") && out.contains("int64") && out.contains("(5,)"),
        "{out}"
    );
    assert!(out.contains("deflated") && out.contains("stored"), "{out}");

    let o = tb(&["inspect", "--json", "a.npy", "abz.npz"], dir.path());
    ok(&o);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["format"], "npy");
    let a = &files[0]["arrays"][0];
    assert_eq!(a["dtype"], "float32");
    assert_eq!(a["shape"], serde_json::json!([3, 4]));
    assert_eq!(a["order"], "C");
    assert_eq!(a["bytes"], 48);
    let b = &files[1]["arrays"][1];
    assert_eq!(b["name"], "b");
    assert_eq!(b["compression"], "deflated");
    assert!(b["compressed_size"].as_u64().unwrap() > 0);
}

#[test]
fn convert_between_npy_and_npz() {
    let (dir, a, b) = setup();
    let d = dir.path();
    ok(&tb(&["convert", "a.npy", "a.npz"], d));
    let z = NpzArchive::open(d.join("a.npz")).unwrap();
    assert_eq!(z.names().collect::<Vec<_>>(), vec!["a"]);
    let t = z.load("a", &LoadOptions::default()).unwrap();
    assert!(t.is_view(), "tensorbridge-written members map zero-copy");
    same(&t, &a);

    ok(&tb(&["convert", "ab.npz", "b.npy", "--member", "b"], d));
    same(
        &npy::load(d.join("b.npy"), &LoadOptions::default()).unwrap(),
        &b,
    );

    ok(&tb(
        &["convert", "abz.npz", "ab2.npz", "--compress", "--quiet"],
        d,
    ));
    let z = NpzArchive::open(d.join("ab2.npz")).unwrap();
    assert!(z
        .members()
        .iter()
        .all(|m| m.compression == Compression::Deflated));
    same(&z.load("a", &LoadOptions::default()).unwrap(), &a);
    same(&z.load("b", &LoadOptions::default()).unwrap(), &b);

    ok(&tb(
        &["convert", "ab.npz", "ab16.npz", "--dtype", "float16"],
        d,
    ));
    let z = NpzArchive::open(d.join("ab16.npz")).unwrap();
    same(
        &z.load("b", &LoadOptions::default()).unwrap(),
        &b.cast(DType::Float16, Casting::Unsafe).unwrap(),
    );

    // Fortran order is kept.
    let f = arange(DType::UInt16, &[3, 5]).permute(&[1, 0]).unwrap();
    npy::save(d.join("f.npy"), &f.view()).unwrap();
    ok(&tb(&["convert", "f.npy", "f.npz", "--dtype", "int32"], d));
    let z = NpzArchive::open(d.join("f.npz")).unwrap();
    assert!(z.header("f").unwrap().fortran_order);
    same(
        &z.load("f", &LoadOptions::default()).unwrap(),
        &f.cast(DType::Int32, Casting::Unsafe).unwrap(),
    );
}

#[test]
fn bfloat16_v2_is_copied_as_is_or_read_with_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = arange(DType::BFloat16, &[4]);
    npy::save(d.join("h.npy"), &t.view()).unwrap();
    ok(&tb(&["convert", "h.npy", "h.npz"], d));
    let z = NpzArchive::open(d.join("h.npz")).unwrap();
    assert_eq!(z.header("h").unwrap().descr, "<V2");
    let o = tb(&["convert", "h.npy", "h32.npy", "--dtype", "float32"], d);
    fails_with(&o, &["h.npy", "--dtype bfloat16"]);
    assert!(!d.join("h32.npy").exists());
    let o = tb(&["inspect", "h.npy"], d);
    ok(&o);
    assert!(stdout(&o).contains("V2"));
}

#[test]
fn bad_input_fails_with_one_line_and_leaves_nothing() {
    let (dir, _, _) = setup();
    let d = dir.path();
    std::fs::write(d.join("garbage.npy"), b"\x00\x01 not numpy at all").unwrap();
    std::fs::write(d.join("garbage.npz"), vec![0x55u8; 300]).unwrap();
    let dict = b"{'descr': '|O', 'fortran_order': False, 'shape': (3,), }          \n";
    let mut obj = b"\x93NUMPY\x01\x00".to_vec();
    obj.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    obj.extend_from_slice(dict);
    obj.extend_from_slice(b"\x80\x04cos\nsystem\n"); // the start of a pickle
    std::fs::write(d.join("obj.npy"), &obj).unwrap();
    let mut trunc = std::fs::read(d.join("a.npy")).unwrap();
    trunc.truncate(trunc.len() - 5);
    std::fs::write(d.join("trunc.npy"), &trunc).unwrap();
    let before = files_in(d);

    for (args, needles) in [
        (
            vec!["inspect", "garbage.npy"],
            vec!["garbage.npy", "bad magic"],
        ),
        (vec!["inspect", "garbage.npz"], vec!["garbage.npz", "zip"]),
        (vec!["inspect", "obj.npy"], vec!["obj.npy", "object arrays"]),
        (
            vec!["inspect", "trunc.npy"],
            vec!["trunc.npy", "truncated data"],
        ),
        (vec!["inspect", "missing.npy"], vec!["missing.npy"]),
        (vec!["inspect", "a.txt"], vec!["a.txt", "unknown file type"]),
        (
            vec!["convert", "garbage.npy", "out.npz"],
            vec!["garbage.npy", "bad magic"],
        ),
        (
            vec!["convert", "obj.npy", "out.npy"],
            vec!["obj.npy", "never unpickles"],
        ),
        (
            vec!["convert", "trunc.npy", "out.npz"],
            vec!["trunc.npy", "truncated data"],
        ),
        (
            vec!["convert", "a.npy", "out.txt"],
            vec!["out.txt", "unknown file type"],
        ),
        (
            vec!["convert", "ab.npz", "out.npy"],
            vec!["ab.npz", "--member"],
        ),
        (
            vec!["convert", "ab.npz", "out.npz", "--member", "zz"],
            vec!["ab.npz", "zz"],
        ),
        (
            vec![
                "convert",
                "a.npy",
                "out.npy",
                "--dtype",
                "uint8",
                "--casting",
                "checked",
            ],
            vec!["a.npy", "index [0, 0]", "-3"],
        ),
        (
            vec![
                "convert",
                "a.npy",
                "out.npy",
                "--dtype",
                "int8",
                "--casting",
                "safe",
            ],
            vec!["a.npy", "cannot cast"],
        ),
        (
            vec!["convert", "a.npy", "out.npy", "--dtype", "float128"],
            vec!["--dtype", "float128"],
        ),
        (
            vec!["convert", "a.npy", "out.npy", "--casting", "yolo"],
            vec!["--casting", "yolo"],
        ),
        (
            vec!["convert", "a.npy", "no/such/dir/out.npy"],
            vec!["no/such/dir/out.npy"],
        ),
    ] {
        let o = tb(&args, d);
        fails_with(&o, &needles);
        assert_eq!(files_in(d), before, "{args:?} left files behind");
    }
    // One bad file among good ones: the good ones are still shown.
    let o = tb(&["inspect", "a.npy", "garbage.npy"], d);
    fails_with(&o, &["garbage.npy"]);
    assert!(stdout(&o).contains("float32"));
}

#[test]
fn truncated_deflated_member_midway_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = arange(DType::Float64, &[300_000]);
    npz::save(d.join("z.npz"), &[("x", big.view())], true).unwrap();
    // Corrupt the compressed stream near its end: the failure comes after output
    // has been written to the temporary file.
    let mut bytes = std::fs::read(d.join("z.npz")).unwrap();
    let m = NpzArchive::open(d.join("z.npz"))
        .unwrap()
        .member("x")
        .unwrap()
        .clone();
    let end = (m.data_start + m.compressed_size) as usize;
    for b in &mut bytes[end - 40..end - 20] {
        *b ^= 0xa5;
    }
    std::fs::write(d.join("z.npz"), &bytes).unwrap();
    let o = tb(&["convert", "z.npz", "out.npy"], d);
    fails_with(&o, &["z.npz:x"]);
    assert_eq!(files_in(d), vec!["z.npz"]);
}

/// Arrays sharing leading dimension 3; `f` is stored in Fortran order.
fn rows_npz(d: &Path) -> Vec<(&'static str, Tensor)> {
    let arrays = vec![
        ("a", arange(DType::Float32, &[3, 4])),
        ("c", arange(DType::Int64, &[3])),
        (
            "f",
            arange(DType::UInt16, &[5, 3]).permute(&[1, 0]).unwrap(),
        ),
    ];
    let views: Vec<_> = arrays.iter().map(|(n, t)| (*n, t.view())).collect();
    npz::save(d.join("rows.npz"), &views, false).unwrap();
    assert!(
        NpzArchive::open(d.join("rows.npz"))
            .unwrap()
            .header("f")
            .unwrap()
            .fortran_order
    );
    arrays
}

/// The arrays of `path`, in any order (safetensors orders tensors by alignment).
fn check_npz(path: &Path, expected: &[(&str, Tensor)]) {
    let z = NpzArchive::open(path).unwrap();
    let mut names: Vec<_> = z.names().collect();
    names.sort();
    assert_eq!(names, expected.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    for (n, t) in expected {
        same(&z.load(n, &LoadOptions::default()).unwrap(), t);
    }
}

#[test]
fn npz_tfrecord_npz_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = rows_npz(d);

    ok(&tb(&["convert", "rows.npz", "r.tfrecord"], d));
    ok(&tb(&["convert", "r.tfrecord", "back.npz"], d));
    check_npz(&d.join("back.npz"), &rows);

    ok(&tb(
        &[
            "convert",
            "rows.npz",
            "s.tfrecord",
            "--shards",
            "2",
            "--gzip",
        ],
        d,
    ));
    assert!(d.join("s-00000-of-00002.tfrecord").exists());
    assert!(d.join("s-00001-of-00002.tfrecord").exists());
    assert!(!d.join("s.tfrecord").exists());
    ok(&tb(
        &[
            "convert",
            "s.tfrecord",
            "back2.npz",
            "--shards",
            "2",
            "--gzip",
        ],
        d,
    ));
    check_npz(&d.join("back2.npz"), &rows);
}

#[test]
fn tfrecord_needs_a_shared_leading_dimension() {
    let (dir, _, _) = setup();
    let d = dir.path();
    // a is (3, 4), b is (5,).
    let o = tb(&["convert", "ab.npz", "ab.tfrecord"], d);
    fails_with(&o, &["ab.tfrecord", "leading dimension"]);
    assert_eq!(files_in(d), ["a.npy", "ab.npz", "abz.npz"]);
}

#[test]
fn npz_safetensors_npz_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = rows_npz(d);
    ok(&tb(&["convert", "rows.npz", "r.safetensors"], d));
    ok(&tb(&["convert", "r.safetensors", "back.npz"], d));
    check_npz(&d.join("back.npz"), &rows);

    let o = tb(&["inspect", "r.safetensors"], d);
    ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("r.safetensors:a") && out.contains("float32") && out.contains("(3, 4)"),
        "{out}"
    );
    assert!(
        out.contains("r.safetensors:f") && out.contains("uint16") && out.contains("(3, 5)"),
        "{out}"
    );
    let o = tb(&["inspect", "--json", "r.safetensors"], d);
    ok(&o);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["files"][0]["format"], "safetensors");
    assert_eq!(doc["files"][0]["arrays"].as_array().unwrap().len(), 3);

    // safetensors has no complex128: refused before anything is written.
    npy::save(d.join("z.npy"), &arange(DType::Complex128, &[2]).view()).unwrap();
    let o = tb(&["convert", "z.npy", "z.safetensors"], d);
    fails_with(&o, &["z.safetensors", "complex128"]);
    assert!(!d.join("z.safetensors").exists());
}

#[test]
fn shards_and_gzip_need_a_tfrecord() {
    let (dir, _, _) = setup();
    let d = dir.path();
    let o = tb(&["convert", "ab.npz", "x.npz", "--gzip"], d);
    fails_with(&o, &["--gzip", ".tfrecord"]);
    let o = tb(&["convert", "ab.npz", "x.safetensors", "--shards", "2"], d);
    fails_with(&o, &["--shards", ".tfrecord"]);
    let o = tb(&["convert", "ab.npz", "x.tfrecord", "--shards", "0"], d);
    fails_with(&o, &["--shards"]);
    assert_eq!(files_in(d), ["a.npy", "ab.npz", "abz.npz"]);
}

#[test]
fn empty_and_renamed_archives_are_found_by_content() {
    let (dir, a, _) = setup();
    let d = dir.path();
    // What np.savez(path) writes with no arrays: only an end-of-central-directory record.
    std::fs::write(
        d.join("empty.npz"),
        b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    )
    .unwrap();
    let o = tb(&["inspect", "--json", "empty.npz"], d);
    ok(&o);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["files"][0]["format"], "npz");
    assert_eq!(doc["files"][0]["arrays"].as_array().unwrap().len(), 0);
    ok(&tb(&["convert", "empty.npz", "empty2.npz"], d));
    assert!(NpzArchive::open(d.join("empty2.npz")).unwrap().is_empty());
    // An archive and an array under names that say nothing.
    std::fs::copy(d.join("ab.npz"), d.join("ab.data")).unwrap();
    std::fs::copy(d.join("a.npy"), d.join("a.data")).unwrap();
    let o = tb(&["inspect", "ab.data", "a.data"], d);
    ok(&o);
    assert!(stdout(&o).contains("ab.data:b"), "{}", stdout(&o));
    ok(&tb(&["convert", "ab.data", "a2.npy", "--member", "a"], d));
    same(
        &npy::load(d.join("a2.npy"), &LoadOptions::default()).unwrap(),
        &a,
    );
}
