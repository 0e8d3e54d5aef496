//! Iterator state of the combinators and `global_shuffle`, and elastic sharding:
//! stop after every k, restore into a freshly made pipeline, and the elements
//! before plus after equal the uninterrupted run; restore a sharded global
//! shuffle into another number of shards and every element comes once.

use super::*;
use crate::format::npy;

// The same check as the other state tests (stop after every k, restore, compare).
use super::tests_state::check_resume;

fn ints(it: impl Iterator<Item = Result<Vec<Tensor>>>) -> Vec<i64> {
    it.flat_map(|e| e.unwrap()[0].to_vec::<i64>().unwrap())
        .collect()
}

fn files(dir: &std::path::Path) -> Dataset {
    let mut paths = Vec::new();
    for (i, n) in [5usize, 0, 3, 7].iter().enumerate() {
        let vals: Vec<i64> = (0..*n as i64 * 2).map(|v| 1000 * i as i64 + v).collect();
        let p = dir.join(format!("g{i}.npy"));
        npy::save(&p, &Tensor::from_slice(&vals, &[*n, 2]).unwrap().view()).unwrap();
        paths.push(p);
    }
    Dataset::from_files(paths, FilesOptions::default())
        .unwrap()
        .0
}

#[test]
fn every_combinator_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let r = Dataset::range;
    let even: PredFn = Arc::new(|t: &[Tensor]| Ok(t[0].to_vec::<i64>()?[0] % 3 != 1));
    let ragged: MapFn = Arc::new(|v: Vec<Tensor>| {
        let x = v[0].to_vec::<i64>()?[0];
        Ok(vec![Tensor::from_slice(
            &vec![x; (x % 4) as usize],
            &[(x % 4) as usize],
        )?])
    });
    let choice = Dataset::from_tensor_slices(vec![Tensor::from_slice(
        &[0i64, 1, 1, 0, 2, 2, 2, 0, 1, 0, 0, 0],
        &[12],
    )
    .unwrap()])
    .unwrap();
    type Make<'a> = Box<dyn Fn() -> Dataset + 'a>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "zip",
            Box::new(|| Dataset::zip(vec![r(20), f.clone(), r(9).skip(Some(2))]).unwrap()),
        ),
        (
            "concatenate",
            Box::new(|| r(4).concatenate(&r(5)).unwrap().batch(3, false).unwrap()),
        ),
        (
            "filter",
            Box::new(|| r(20).filter(even.clone()).prefetch(3).unwrap()),
        ),
        ("enumerate", Box::new(|| f.enumerate(-2).repeat(Some(2)))),
        (
            "unbatch",
            Box::new(|| {
                r(11)
                    .batch(4, false)
                    .unwrap()
                    .unbatch()
                    .unwrap()
                    .batch(3, false)
                    .unwrap()
            }),
        ),
        (
            "padded_batch",
            Box::new(|| {
                r(10)
                    .map(ragged.clone(), Some(2))
                    .unwrap()
                    .padded_batch(3, None, None, false)
                    .unwrap()
            }),
        ),
        (
            "sample",
            Box::new(|| {
                Dataset::sample_from_datasets(
                    vec![f.take(Some(6)), f.clone(), f.skip(Some(11))],
                    Some(vec![0.5, 0.3, 0.2]),
                    Some(9),
                    false,
                )
                .unwrap()
            }),
        ),
        (
            "choose",
            Box::new(|| {
                Dataset::choose_from_datasets(vec![r(3), r(5), r(2)], &choice, false).unwrap()
            }),
        ),
        (
            "global_shuffle",
            Box::new(|| {
                f.global_shuffle(Some(4), true)
                    .unwrap()
                    .repeat(Some(2))
                    .batch(4, false)
                    .unwrap()
                    .prefetch(2)
                    .unwrap()
            }),
        ),
        (
            "global_shuffle unseeded",
            Box::new(|| r(30).global_shuffle(None, true).unwrap().repeat(Some(2))),
        ),
        (
            "sharded",
            Box::new(|| {
                r(30)
                    .global_shuffle(Some(1), true)
                    .unwrap()
                    .shard(3, 2)
                    .unwrap()
                    .batch(2, false)
                    .unwrap()
            }),
        ),
    ];
    for (name, make) in &cases {
        let n = check_resume(make.as_ref());
        assert!(n > 0, "{name}");
    }
}

/// Consume `per_shard` elements from each of `old` shards (in lockstep), save
/// shard 0's state, restore it into each of `new` shards and run them to the end.
fn reshard(n: u64, old: i64, new: i64, per_shard: usize, batch: i64) -> Vec<i64> {
    let make = |num: i64, i: i64| {
        Dataset::range(n)
            .global_shuffle(Some(77), true)
            .unwrap()
            .shard(num, i)
            .unwrap()
            .batch(batch, false)
            .unwrap()
    };
    let mut seen = Vec::new();
    let mut state = None;
    for i in 0..old {
        let ds = make(old, i);
        let mut it = ds.iter().unwrap();
        for _ in 0..per_shard {
            seen.extend(it.next().unwrap().unwrap()[0].to_vec::<i64>().unwrap());
        }
        let s = it.state_json().unwrap();
        // Every shard saves the same global position.
        assert!(state.as_ref().is_none_or(|p: &String| *p == s), "{s}");
        state = Some(s);
    }
    let state = state.unwrap();
    for i in 0..new {
        seen.extend(ints(make(new, i).iter_from_json(&state).unwrap()));
    }
    seen
}

#[test]
fn elastic_sharding_every_element_exactly_once() {
    for (n, old, new, per, batch) in [
        (103u64, 4, 2, 5, 2),
        (103, 2, 3, 7, 3),
        (1000, 4, 2, 1, 16),
        (50, 3, 5, 0, 1),
        (40, 2, 3, 10, 2), // everything consumed before the change
    ] {
        let mut seen = reshard(n, old, new, per, batch);
        assert_eq!(seen.len() as u64, n, "{n} {old}->{new}");
        seen.sort();
        assert_eq!(seen, (0..n as i64).collect::<Vec<_>>());
    }
    // The order continues the same permutation: 4 -> 1 shard yields the rest of
    // the unsharded epoch in order.
    let whole = ints(
        Dataset::range(64)
            .global_shuffle(Some(3), true)
            .unwrap()
            .iter()
            .unwrap(),
    );
    let sharded = |num: i64, i: i64| {
        Dataset::range(64)
            .global_shuffle(Some(3), true)
            .unwrap()
            .shard(num, i)
            .unwrap()
    };
    let mut it = sharded(4, 1).iter().unwrap();
    assert_eq!(
        ints(it.by_ref().take(3)),
        vec![whole[1], whole[5], whole[9]]
    );
    let rest = ints(
        sharded(1, 0)
            .iter_from_json(&it.state_json().unwrap())
            .unwrap(),
    );
    assert_eq!(rest, whole[12..]);
}

#[test]
fn global_shuffle_state_is_small_whatever_the_size() {
    let huge = Dataset::range(1 << 40)
        .global_shuffle(Some(1), true)
        .unwrap();
    let sharded = huge.shard(8, 3).unwrap().batch(1024, false).unwrap();
    for ds in [&huge, &sharded] {
        let mut it = ds.iter().unwrap();
        for _ in 0..5 {
            it.next().unwrap().unwrap();
        }
        let s = it.state_json().unwrap();
        assert!(s.len() < 1024, "{} bytes: {s}", s.len());
    }
    // A different pipeline is refused, naming the stage.
    let it = huge.iter().unwrap();
    let other = Dataset::range(1 << 40)
        .global_shuffle(Some(2), true)
        .unwrap();
    let err = other
        .iter_from_json(&it.state_json().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("global_shuffle(seed=2"), "{err}");
}
