//! Unit tests of iterator state: stop after k elements for every k, save, restore
//! into a freshly made pipeline (as another process would), and the elements
//! before plus the elements after equal the uninterrupted run.

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::dtype::Casting;
use crate::format::npy;

/// An element as comparable bytes: per component dtype, shape and values.
type Sig = Vec<(DType, Vec<usize>, Vec<u8>)>;

fn sig(v: Vec<Tensor>) -> Sig {
    v.into_iter()
        .map(|t| {
            let c = t.deep_copy().unwrap();
            (
                c.dtype(),
                c.shape().to_vec(),
                c.as_bytes().unwrap().to_vec(),
            )
        })
        .collect()
}

/// Run one iterator of `make()` to its end, saving the state (as JSON text)
/// after every element; then, for each k, restore that state into a new
/// `make()` and check that what follows equals the rest of the run. Returns the
/// number of elements.
pub(super) fn check_resume(make: &dyn Fn() -> Dataset) -> usize {
    let ds = make();
    let mut it = ds.iter().unwrap();
    let mut states = vec![it.state_json().unwrap()];
    let mut all: Vec<Sig> = Vec::new();
    while let Some(e) = it.next() {
        all.push(sig(e.unwrap()));
        states.push(it.state_json().unwrap());
    }
    drop(it);
    for (k, s) in states.iter().enumerate() {
        let fresh = make();
        let it = fresh.iter_from_json(s).unwrap();
        assert_eq!(it.position(), k as u64);
        let rest: Vec<Sig> = it.map(|e| sig(e.unwrap())).collect();
        assert!(
            rest == all[k..],
            "resumed after {k} of {}: {} elements, expected {}",
            all.len(),
            rest.len(),
            all.len() - k
        );
    }
    all.len()
}

/// The provenances a state field holds (JSON text of a list).
fn positions(v: &serde_json::Value) -> Vec<state::Prov> {
    let mut o = serde_json::Map::new();
    o.insert("k".into(), v.clone());
    state::field_provs(&o, "k").unwrap()
}

#[test]
fn provenances_round_trip_through_their_json_text() {
    use state::Prov::*;
    let ps = vec![
        Index(0),
        Index(u64::MAX),
        List(vec![
            Index(7),
            Tagged(3, Box::new(List(vec![Index(10), Index(0)]))),
        ]),
        Tagged(0, Box::new(Index(42))),
        List(vec![]),
    ];
    let v = state::provs_json(ps.iter());
    assert_eq!(
        v.as_str().unwrap(),
        format!(
            "[0,{},[7,{{\"t\":3,\"p\":[10,0]}}],{{\"t\":0,\"p\":42}},[]]",
            u64::MAX
        )
    );
    assert_eq!(positions(&v), ps);
    // A hand-written array works too.
    assert_eq!(
        positions(&serde_json::json!([1, [2, 3]])),
        vec![Index(1), List(vec![Index(2), Index(3)])]
    );
}

fn ints_of(ds: &Dataset) -> Vec<i64> {
    ds.iter()
        .unwrap()
        .flat_map(|e| e.unwrap()[0].to_vec::<i64>().unwrap())
        .collect()
}

#[test]
fn sources_and_counters_resume_at_every_position() {
    assert_eq!(check_resume(&|| Dataset::range(7)), 7);
    assert_eq!(check_resume(&|| Dataset::range(0)), 0);
    let slices = || {
        let x =
            Tensor::from_slice(&(0..24).map(|v| v as f32).collect::<Vec<_>>(), &[6, 4]).unwrap();
        let y = Tensor::from_slice(&[5i64, 4, 3, 2, 1, 0], &[6]).unwrap();
        Dataset::from_tensor_slices(vec![x, y]).unwrap()
    };
    assert_eq!(check_resume(&slices), 6);
    let r = || Dataset::range(40);
    assert_eq!(
        check_resume(&|| r().skip(Some(3)).shard(3, 1).unwrap().take(Some(9))),
        9
    );
    assert_eq!(check_resume(&|| r().take(Some(5)).repeat(Some(3))), 15);
    assert_eq!(check_resume(&|| r().skip(None).repeat(Some(2))), 0);
    assert_eq!(
        check_resume(&|| r().take(Some(3)).repeat(None).take(Some(10))),
        10
    );
    assert_eq!(check_resume(&|| r().repeat(Some(0))), 0);
}

#[test]
fn batches_keep_their_boundaries_including_the_partial_last_one() {
    let make = || {
        Dataset::range(10)
            .map_ops(MapOps::All(vec![Op::Cast {
                dtype: DType::Float32,
                casting: Casting::Unsafe,
            }]))
            .batch(4, false)
            .unwrap()
            .repeat(Some(2))
    };
    assert_eq!(check_resume(&make), 6);
    let dropped = || {
        Dataset::range(10)
            .batch(4, true)
            .unwrap()
            .prefetch(3)
            .unwrap()
    };
    assert_eq!(check_resume(&dropped), 2);
}

#[test]
fn shuffles_resume_with_their_buffer_and_reshuffle_per_epoch() {
    let seeded = || {
        Dataset::range(30)
            .shuffle(8, Some(3), true)
            .unwrap()
            .batch(4, false)
            .unwrap()
            .repeat(Some(3))
    };
    assert_eq!(check_resume(&seeded), 24);
    // Unseeded: each make() draws its own seed; the state carries the one used,
    // so the restored iterator (in a pipeline with another seed) goes on alike.
    let unseeded = || {
        Dataset::range(20)
            .shuffle(6, None, true)
            .unwrap()
            .repeat(Some(3))
            .prefetch(2)
            .unwrap()
    };
    assert_eq!(check_resume(&unseeded), 60);
    let fixed = || {
        Dataset::range(12)
            .shuffle(5, None, false)
            .unwrap()
            .repeat(Some(2))
    };
    assert_eq!(check_resume(&fixed), 24);
    let whole = || {
        Dataset::range(9)
            .shuffle(shuffle::WHOLE_DATASET, Some(1), true)
            .unwrap()
    };
    assert_eq!(check_resume(&whole), 9);
    // The state holds the buffer's positions: about buffer_size numbers, no data.
    let ds = Dataset::range(1000).shuffle(100, Some(0), true).unwrap();
    let mut it = ds.iter().unwrap();
    it.next().unwrap().unwrap();
    let s = it.state().unwrap();
    let buf = positions(&s["state"]["buffer"]);
    assert_eq!(buf.len(), 99);
    assert!(buf
        .iter()
        .all(|p| matches!(p, state::Prov::Index(i) if *i < 1000)));
}

#[test]
fn epoch_counters_continue_after_a_restore() {
    // Epoch 1 of a reshuffling dataset, saved mid-way, restored into a fresh
    // dataset: that dataset's next epoch is epoch 2, as in the original.
    let make = || Dataset::range(10).shuffle(10, Some(9), true).unwrap();
    let a = make();
    let _ = ints_of(&a);
    let mut it = a.iter().unwrap();
    it.next().unwrap().unwrap();
    let s = it.state().unwrap();
    drop(it);
    let next_a = ints_of(&a);
    let b = make();
    let rest = b.iter_from_state(&s).unwrap().count();
    assert_eq!(rest, 9);
    assert_eq!(ints_of(&b), next_a);
}

fn doubler() -> MapFn {
    Arc::new(|v: Vec<Tensor>| {
        let x = v[0].to_vec::<i64>()?;
        let y: Vec<i64> = x.iter().map(|a| a * 2 + 1).collect();
        Ok(vec![Tensor::from_slice(&y, v[0].shape())?])
    })
}

#[test]
fn maps_and_prefetch_lose_nothing_in_flight() {
    for workers in [1, 4] {
        let make = || {
            Dataset::range(25)
                .shuffle(5, Some(1), true)
                .unwrap()
                .map(doubler(), Some(workers))
                .unwrap()
                .prefetch(8)
                .unwrap()
                .batch(3, false)
                .unwrap()
                .prefetch(2)
                .unwrap()
                .repeat(Some(2))
        };
        assert_eq!(check_resume(&make), 18);
    }
    // A state saved with a parallel map restores into a sequential one (the
    // number of workers is not part of the pipeline), and back.
    let make = |w: i64| Dataset::range(30).map(doubler(), Some(w)).unwrap();
    let a = make(6);
    let mut it = a.iter().unwrap();
    let first: Vec<i64> = (0..4)
        .map(|_| it.next().unwrap().unwrap()[0].to_vec::<i64>().unwrap()[0])
        .collect();
    let s = it.state().unwrap();
    assert!(!positions(&s["state"]["pending"]).is_empty());
    let rest = ints_of_iter(make(1).iter_from_state(&s).unwrap());
    let want: Vec<i64> = (0..30).map(|a| a * 2 + 1).collect();
    assert_eq!([first, rest].concat(), want);
}

fn ints_of_iter(it: DatasetIter) -> Vec<i64> {
    it.flat_map(|e| e.unwrap()[0].to_vec::<i64>().unwrap())
        .collect()
}

fn write_files(dir: &std::path::Path, sizes: &[usize]) -> Vec<PathBuf> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let vals: Vec<i32> = (0..n as i32 * 2).map(|v| 1000 * i as i32 + v).collect();
            let t = Tensor::from_slice(&vals, &[n, 2]).unwrap();
            let p = dir.join(format!("f{i:02}.npy"));
            npy::save(&p, &t.view()).unwrap();
            p
        })
        .collect()
}

#[test]
fn files_resume_in_interleave_order_with_shuffled_files_and_skipped_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = write_files(dir.path(), &[5, 3, 7, 1, 4, 6]);
    let bad = dir.path().join("bad.npy");
    std::fs::copy(&paths[2], &bad).unwrap();
    paths.insert(3, bad.clone());
    let make = |seed: Option<u64>, shuffle: bool, keep: bool| {
        let opts = FilesOptions {
            shuffle_files: true,
            seed,
            cycle_length: 3,
            block_length: 2,
            on_error: OnError::Skip,
            ..FilesOptions::default()
        };
        let (ds, w) = Dataset::from_files(paths.clone(), opts).unwrap();
        assert!(w.is_empty());
        let ds = if shuffle {
            ds.shuffle(4, Some(5), true).unwrap()
        } else {
            ds
        };
        let ds = if keep { ds.prefetch(100).unwrap() } else { ds };
        ds.repeat(Some(2))
    };
    // Corrupt after the headers were read: skipped (with a warning) mid-stream.
    let content = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &content[..content.len() - 8]).unwrap();
    for (seed, shuffle, keep) in [
        (Some(7), false, false),
        (Some(7), true, false),
        (None, false, true),
        (None, true, true),
    ] {
        assert_eq!(check_resume(&|| make(seed, shuffle, keep)), 52);
    }
    // Unshuffled, cycle_length 1: file after file (the corrupt one left out).
    let (plain, _) = Dataset::from_files(
        paths.clone(),
        FilesOptions {
            on_error: OnError::Skip,
            ..FilesOptions::default()
        },
    )
    .unwrap();
    assert_eq!(check_resume(&|| plain.clone().batch(4, false).unwrap()), 7);
}

#[test]
fn a_state_of_another_pipeline_is_refused_naming_the_stage() {
    let a = Dataset::range(10)
        .shuffle(4, Some(1), true)
        .unwrap()
        .batch(3, false)
        .unwrap();
    let s = a.iter().unwrap().state().unwrap();
    let b = Dataset::range(10)
        .shuffle(4, Some(1), true)
        .unwrap()
        .batch(4, false)
        .unwrap();
    let err = b.iter_from_state(&s).err().unwrap();
    assert!(matches!(err, Error::InvalidArgument(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("stage 2") && msg.contains("batch(4") && msg.contains("batch(3"),
        "{msg}"
    );
    let c = Dataset::range(11)
        .shuffle(4, Some(1), true)
        .unwrap()
        .batch(3, false)
        .unwrap();
    let msg = c.iter_from_state(&s).err().unwrap().to_string();
    assert!(
        msg.contains("range(11)") && msg.contains("range(10)"),
        "{msg}"
    );
    let msg = a
        .iter_from_json("{\"version\": 1}")
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("\"pipeline\""), "{msg}");
    let msg = a.iter_from_json("not json").err().unwrap().to_string();
    assert!(msg.contains("not valid JSON"), "{msg}");
    // A map that cannot resume refuses to save, saying why.
    let m = Dataset::range(3)
        .map_without_state(doubler(), Some(1), "rows come from elsewhere")
        .unwrap();
    let msg = m.iter().unwrap().state().err().unwrap().to_string();
    assert!(msg.contains("rows come from elsewhere"), "{msg}");
}

#[test]
fn prefetch_depth_may_change_between_save_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_files(dir.path(), &[4, 6, 5]);
    let make = |depth: i64| {
        let opts = FilesOptions {
            cycle_length: 2,
            ..FilesOptions::default()
        };
        let (ds, _) = Dataset::from_files(paths.clone(), opts).unwrap();
        ds.prefetch(depth).unwrap()
    };
    let want: Vec<Sig> = make(1).iter().unwrap().map(|e| sig(e.unwrap())).collect();
    for (a, b) in [(2, 100), (100, 2)] {
        // Depth > 64 reads rows ahead on a thread (its state holds rows in flight).
        for k in [0, 1, 7, 15] {
            let mut it = make(a).iter().unwrap();
            let before: Vec<Sig> = (0..k).map(|_| sig(it.next().unwrap().unwrap())).collect();
            let s = it.state().unwrap();
            let after: Vec<Sig> = make(b)
                .iter_from_state(&s)
                .unwrap()
                .map(|e| sig(e.unwrap()))
                .collect();
            assert!([before, after].concat() == want, "{a} -> {b} after {k}");
        }
    }
}

#[test]
fn an_open_file_that_went_bad_is_skipped_or_named_on_restore() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_files(dir.path(), &[4, 4]);
    let make = |on_error| {
        let opts = FilesOptions {
            on_error,
            ..FilesOptions::default()
        };
        Dataset::from_files(paths.clone(), opts).unwrap().0
    };
    let (raise, skip) = (make(OnError::Raise), make(OnError::Skip));
    let state_after_one = |ds: &Dataset| {
        let mut it = ds.iter().unwrap();
        it.next().unwrap().unwrap();
        it.state().unwrap()
    };
    let (sr, ss) = (state_after_one(&raise), state_after_one(&skip));
    std::fs::write(&paths[0], b"garbage").unwrap();
    let err = raise.iter_from_state(&sr).err().unwrap().to_string();
    assert!(err.contains("f00.npy"), "{err}");
    let it = skip.iter_from_state(&ss).unwrap();
    let warnings = it.take_warnings();
    assert!(
        warnings.len() == 1 && warnings[0].contains("f00.npy"),
        "{warnings:?}"
    );
    // The rest of the first file is gone; the second file follows.
    assert_eq!(it.count(), 4);
}
