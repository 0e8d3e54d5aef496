//! `from_files` over `memory://` objects, streamed chunk by chunk (64-byte chunks in
//! tests): the same rows, in the same order, as over local copies of the files, and
//! iterator state saved and restored at every position.

use std::path::{Path, PathBuf};

use crate::data::{Dataset, FilesOptions, OnError};
use crate::format::{npy, npz};
use crate::location::{Location, StorageOptions};
use crate::tensor::Tensor;

fn loc(s: &str) -> Location {
    Location::parse(s, &StorageOptions::new()).unwrap()
}

/// Elements as comparable bytes.
fn sig(ds: &Dataset) -> Vec<Vec<Vec<u8>>> {
    ds.iter()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .into_iter()
                .map(|t| t.deep_copy().unwrap().as_bytes().unwrap().to_vec())
                .collect()
        })
        .collect()
}

/// The same files locally (in `dir`) and at `memory:///<prefix>/`: `.npy` files of
/// int32 rows of 3 and `.npz` archives of those rows (`x`) and float64 rows of 2
/// (`y`), stored or deflated.
fn write_both(dir: &Path, prefix: &str, sizes: &[usize], compress: bool) -> [Vec<PathBuf>; 4] {
    let mut out: [Vec<PathBuf>; 4] = Default::default();
    for (i, &n) in sizes.iter().enumerate() {
        let x: Vec<i32> = (0..n as i32 * 3).map(|v| 1000 * i as i32 + v).collect();
        let x = Tensor::from_slice(&x, &[n, 3]).unwrap();
        let y: Vec<f64> = (0..n * 2).map(|v| v as f64 * 0.5 + i as f64).collect();
        let y = Tensor::from_slice(&y, &[n, 2]).unwrap();
        let members = [("x", x.view()), ("y", y.view())];
        let (lp, lz) = (dir.join(format!("f{i}.npy")), dir.join(format!("f{i}.npz")));
        npy::save(&lp, &x.view()).unwrap();
        npz::save_location(&Location::local(&lz), &members, compress).unwrap();
        let rp = format!("memory:///{prefix}/f{i}.npy");
        let rz = format!("memory:///{prefix}/f{i}.npz");
        npy::save_location(&loc(&rp), &x.view()).unwrap();
        npz::save_location(&loc(&rz), &members, compress).unwrap();
        out[0].push(lp);
        out[1].push(PathBuf::from(rp));
        out[2].push(lz);
        out[3].push(PathBuf::from(rz));
    }
    out
}

fn opts(keys: bool, shuffle: bool, cycle: i64, block: i64) -> FilesOptions {
    FilesOptions {
        keys: keys.then(|| vec!["x".to_string(), "y".to_string()]),
        shuffle_files: shuffle,
        seed: shuffle.then_some(11),
        cycle_length: cycle,
        block_length: block,
        ..FilesOptions::default()
    }
}

#[test]
fn streamed_rows_equal_local_rows_in_every_order() {
    let dir = tempfile::tempdir().unwrap();
    for compress in [false, true] {
        let prefix = format!("rows-equal-{compress}");
        // 12-byte rows, 5 to a 64-byte chunk: files of 1 to 13 rows cross boundaries.
        let [lnpy, rnpy, lnpz, rnpz] =
            write_both(dir.path(), &prefix, &[13, 1, 7, 5, 10], compress);
        for (local, remote, keys) in [(&lnpy, &rnpy, false), (&lnpz, &rnpz, true)] {
            for (shuffle, cycle, block) in
                [(false, 1, 1), (false, 2, 3), (true, 3, 2), (true, 9, 1)]
            {
                let o = opts(keys, shuffle, cycle, block);
                let l = Dataset::from_files(local.clone(), o.clone()).unwrap().0;
                let r = Dataset::from_files(remote.clone(), o).unwrap().0;
                let want = sig(&l);
                assert_eq!(want.len(), 36);
                assert_eq!(sig(&r), want, "keys {keys} shuffle {shuffle} cycle {cycle}");
                let (ls, rs) = (l.shard(2, 1).unwrap(), r.shard(2, 1).unwrap());
                assert_eq!(sig(&rs), sig(&ls));
                // Rows kept long (a shuffle buffer copies them out of their chunk).
                let (lb, rb) = (
                    l.shuffle(8, Some(3), false).unwrap(),
                    r.shuffle(8, Some(3), false).unwrap(),
                );
                assert_eq!(sig(&rb), sig(&lb));
            }
        }
    }
}

#[test]
fn streamed_files_resume_from_every_position() {
    let dir = tempfile::tempdir().unwrap();
    let [_, rnpy, _, rnpz] = write_both(dir.path(), "rows-resume", &[9, 2, 6, 11], true);
    let [_, _, _, stored] = write_both(dir.path(), "rows-resume-stored", &[9, 2, 6, 11], false);
    for (paths, keys) in [(rnpy, false), (rnpz, true), (stored, true)] {
        let make = || {
            Dataset::from_files(paths.clone(), opts(keys, true, 2, 2))
                .unwrap()
                .0
                .repeat(Some(2))
        };
        let ds = make();
        let mut it = ds.iter().unwrap();
        let mut states = vec![it.state_json().unwrap()];
        let mut all = vec![];
        while let Some(e) = it.next() {
            all.push(
                e.unwrap()
                    .into_iter()
                    .map(|t| t.deep_copy().unwrap().as_bytes().unwrap().to_vec())
                    .collect::<Vec<_>>(),
            );
            states.push(it.state_json().unwrap());
        }
        assert_eq!(all.len(), 56);
        for (k, s) in states.iter().enumerate() {
            let rest: Vec<_> = make()
                .iter_from_json(s)
                .unwrap()
                .map(|e| {
                    e.unwrap()
                        .into_iter()
                        .map(|t| t.deep_copy().unwrap().as_bytes().unwrap().to_vec())
                        .collect::<Vec<_>>()
                })
                .collect();
            assert!(rest == all[k..], "keys {keys}: resumed after {k}");
        }
        // A shuffle buffer's rows are re-made one by one (materialize).
        let sh = || make().shuffle(5, Some(1), true).unwrap();
        let mut it = sh().iter().unwrap();
        let first: Vec<_> = (&mut it).take(7).map(|e| e.unwrap()).collect();
        assert_eq!(first.len(), 7);
        let s = it.state_json().unwrap();
        let want: Vec<_> = it.map(|e| e.unwrap()[0].to_vec::<i32>().unwrap()).collect();
        let got: Vec<_> = sh()
            .iter_from_json(&s)
            .unwrap()
            .map(|e| e.unwrap()[0].to_vec::<i32>().unwrap())
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn a_corrupt_object_is_skipped_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let [_, rnpy, _, rnpz] = write_both(dir.path(), "rows-skip", &[4, 6, 3], true);
    for (paths, keys) in [(rnpy, false), (rnpz, true)] {
        let o = FilesOptions {
            on_error: OnError::Skip,
            ..opts(keys, false, 2, 1)
        };
        let ds = Dataset::from_files(paths.clone(), o).unwrap().0;
        // Replace the second object after the headers were read: truncated data.
        let l = loc(paths[1].to_str().unwrap());
        let short = Tensor::from_slice(&[1i32, 2, 3], &[1, 3]).unwrap();
        if keys {
            npz::save_location(&l, &[("x", short.view()), ("y", short.view())], true).unwrap();
        } else {
            npy::save_location(&l, &short.view()).unwrap();
        }
        let mut it = ds.iter().unwrap();
        let n = (&mut it).inspect(|e| assert!(e.is_ok(), "{e:?}")).count();
        assert_eq!(n, 7);
        let w = it.take_warnings();
        assert!(
            w.iter().any(|m| m.contains(paths[1].to_str().unwrap())),
            "{w:?}"
        );
    }
}

#[test]
fn rows_of_zero_elements() {
    let t = Tensor::from_slice::<f32>(&[], &[4, 0]).unwrap();
    let url = "memory:///rows-empty/e.npy";
    npy::save_location(&loc(url), &t.view()).unwrap();
    let ds = Dataset::from_files(vec![PathBuf::from(url)], FilesOptions::default())
        .unwrap()
        .0;
    let got: Vec<Vec<usize>> = ds
        .iter()
        .unwrap()
        .map(|e| e.unwrap()[0].shape().to_vec())
        .collect();
    assert_eq!(got, vec![vec![0usize]; 4]);
}

#[test]
fn local_rows_of_zero_elements() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.npy");
    npy::save(
        &p,
        &Tensor::from_slice::<f32>(&[], &[3, 2, 0]).unwrap().view(),
    )
    .unwrap();
    let ds = Dataset::from_files(vec![p], FilesOptions::default())
        .unwrap()
        .0;
    let got: Vec<Vec<usize>> = ds
        .iter()
        .unwrap()
        .map(|e| e.unwrap()[0].shape().to_vec())
        .collect();
    assert_eq!(got, vec![vec![2usize, 0]; 3]);
}

#[test]
fn a_fortran_ordered_single_row_is_read_in_its_order() {
    // One row of shape (2, 3), stored column-major: [[0, 1, 2], [3, 4, 5]].
    let url = "memory:///rows-fortran/one.npy";
    let mut bytes = npy::NpyHeader::new(crate::dtype::DType::Int32, &[1, 2, 3], true)
        .unwrap()
        .to_bytes();
    for v in [0i32, 3, 1, 4, 2, 5] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let store = crate::location::memory_store();
    use object_store::ObjectStore;
    crate::location::block_on_for_tests(store.put(
        &object_store::path::Path::from("rows-fortran/one.npy"),
        object_store::PutPayload::from(bytes),
    ))
    .unwrap();
    let ds = Dataset::from_files(vec![PathBuf::from(url)], FilesOptions::default())
        .unwrap()
        .0;
    let got: Vec<Vec<i32>> = ds
        .iter()
        .unwrap()
        .map(|e| e.unwrap()[0].to_vec::<i32>().unwrap())
        .collect();
    assert_eq!(got, vec![vec![0, 1, 2, 3, 4, 5]]);
}
