//! Unit tests of random access, `global_shuffle` and the combinators (zip,
//! concatenate, filter, enumerate, unbatch, padded_batch, sample/choose).

use super::*;
use crate::dtype::Casting;

fn ints(ds: &Dataset) -> Vec<i64> {
    ds.iter()
        .unwrap()
        .flat_map(|e| e.unwrap()[0].to_vec::<i64>().unwrap())
        .collect()
}

fn firsts(ds: &Dataset) -> Vec<Vec<i64>> {
    ds.iter()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .iter()
                .flat_map(|t| t.to_vec::<i64>().unwrap())
                .collect()
        })
        .collect()
}

fn npy_files(dir: &std::path::Path, rows: &[usize]) -> Vec<PathBuf> {
    use crate::format::npy;
    let mut paths = Vec::new();
    let mut next = 0i64;
    for (i, n) in rows.iter().enumerate() {
        let vals: Vec<i64> = (0..*n as i64 * 2).map(|v| next * 2 + v).collect();
        next += *n as i64;
        let t = Tensor::from_slice(&vals, &[*n, 2]).unwrap();
        let p = dir.join(format!("f{i}.npy"));
        npy::save(&p, &t.view()).unwrap();
        paths.push(p);
    }
    paths
}

#[test]
fn random_access_matches_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let paths = npy_files(dir.path(), &[3, 0, 1, 5, 2]);
    let files = Dataset::from_files(paths, FilesOptions::default())
        .unwrap()
        .0;
    let cases = vec![
        Dataset::range(7),
        files.clone(),
        files.map_ops(MapOps::All(vec![
            Op::Scale { mul: 2.0, add: 1.0 },
            Op::Cast {
                dtype: DType::Int64,
                casting: Casting::Unsafe,
            },
        ])),
        files.skip(Some(2)).take(Some(5)).shard(2, 1).unwrap(),
        files.batch(3, false).unwrap(),
        Dataset::range(5).repeat(Some(3)).prefetch(2).unwrap(),
        Dataset::zip(vec![Dataset::range(4), files.clone()]).unwrap(),
        Dataset::range(3)
            .concatenate(&Dataset::range(4))
            .unwrap()
            .enumerate(10),
        files.global_shuffle(Some(3), true).unwrap(),
    ];
    for ds in cases {
        let n = ds.random_access_len().unwrap();
        let want = firsts(&ds.global_shuffle(Some(1), false).unwrap());
        let it = firsts(&ds);
        assert_eq!(it.len() as u64, n);
        let got: Vec<Vec<i64>> = (0..n)
            .map(|i| {
                ds.get(i)
                    .unwrap()
                    .iter()
                    .flat_map(|t| t.to_vec::<i64>().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(got, it);
        // global_shuffle over it yields the same elements in another order
        let (mut a, mut b) = (want.clone(), it.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(matches!(ds.get(n), Err(Error::Index(_))));
    }
    let shuffled = Dataset::range(10).shuffle(4, Some(1), true).unwrap();
    assert_eq!(shuffled.random_access_blocker(), Some("shuffle"));
    assert_eq!(
        shuffled.map_ops(MapOps::All(vec![])).random_access_len(),
        None
    );
    let err = shuffled
        .global_shuffle(None, true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("shuffle prevents it"), "{err}");
    assert!(Dataset::range(3)
        .repeat(None)
        .global_shuffle(None, true)
        .is_err());
}

#[test]
fn a_file_changed_under_random_access_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let paths = npy_files(dir.path(), &[3, 3]);
    let ds = Dataset::from_files(paths.clone(), FilesOptions::default())
        .unwrap()
        .0;
    let t = Tensor::from_slice(&[1i32; 4], &[2, 2]).unwrap();
    crate::format::npy::save(&paths[1], &t.view()).unwrap();
    assert_eq!(ds.get(0).unwrap()[0].to_vec::<i64>().unwrap(), vec![0, 1]);
    let err = ds.get(4).unwrap_err().to_string();
    assert!(err.contains("f1.npy") && err.contains("changed"), "{err}");
}

#[test]
fn global_shuffle_is_a_seeded_permutation_per_epoch() {
    let ds = Dataset::range(1000).global_shuffle(Some(5), true).unwrap();
    let (a, b) = (ints(&ds), ints(&ds));
    let mut s = a.clone();
    s.sort();
    assert_eq!(s, (0..1000).collect::<Vec<_>>());
    assert_ne!(a, b);
    assert_ne!(a, (0..1000).collect::<Vec<_>>());
    let again = Dataset::range(1000).global_shuffle(Some(5), true).unwrap();
    assert_eq!((ints(&again), ints(&again)), (a.clone(), b));
    let fixed = Dataset::range(1000).global_shuffle(Some(5), false).unwrap();
    assert_eq!(ints(&fixed), a);
    assert_eq!(ints(&fixed), a);
    // get() reads epoch 0's order; repeat reshuffles each pass
    let got: Vec<i64> = (0..1000)
        .map(|i| fixed.get(i).unwrap()[0].to_vec::<i64>().unwrap()[0])
        .collect();
    assert_eq!(got, a);
    let rep = ints(
        &Dataset::range(50)
            .global_shuffle(Some(9), true)
            .unwrap()
            .repeat(Some(2)),
    );
    assert_ne!(rep[..50], rep[50..]);
}

#[test]
fn combinators_follow_tf_semantics() {
    let r = Dataset::range;
    let z = Dataset::zip(vec![r(3), r(5).skip(Some(1))]).unwrap();
    assert_eq!(z.cardinality(), Cardinality::Finite(3));
    assert_eq!(firsts(&z), vec![vec![0, 1], vec![1, 2], vec![2, 3]]);
    let c = r(2).concatenate(&r(3)).unwrap();
    assert_eq!(ints(&c), vec![0, 1, 0, 1, 2]);
    assert_eq!(c.cardinality(), Cardinality::Finite(5));
    let even: PredFn = Arc::new(|t: &[Tensor]| Ok(t[0].to_vec::<i64>()?[0] % 2 == 0));
    let f = r(7).filter(even);
    assert_eq!(ints(&f), vec![0, 2, 4, 6]);
    assert_eq!(f.cardinality(), Cardinality::Unknown);
    assert_eq!(firsts(&r(2).enumerate(5)), vec![vec![5, 0], vec![6, 1]]);
    let u = r(7).batch(3, false).unwrap().unbatch().unwrap();
    assert_eq!(ints(&u), (0..7).collect::<Vec<_>>());
    assert_eq!(u.cardinality(), Cardinality::Unknown);
    assert_eq!(
        r(7).batch(3, true)
            .unwrap()
            .unbatch()
            .unwrap()
            .cardinality(),
        Cardinality::Finite(6)
    );
    assert!(r(3).unbatch().is_err());
    let s = Dataset::sample_from_datasets(vec![r(3), r(4)], None, Some(1), false).unwrap();
    let mut got = ints(&s);
    got.sort();
    assert_eq!(got, vec![0, 0, 1, 1, 2, 2, 3]);
    let choice =
        Dataset::from_tensor_slices(vec![Tensor::from_slice(&[0i64, 0, 0, 1, 1], &[5]).unwrap()])
            .unwrap();
    let ch = Dataset::choose_from_datasets(vec![r(2), r(4)], &choice, false).unwrap();
    assert_eq!(ints(&ch), vec![0, 1, 0, 1]);
    let ch = Dataset::choose_from_datasets(vec![r(2), r(4)], &choice, true).unwrap();
    assert_eq!(ints(&ch), vec![0, 1]);
    let bad =
        Dataset::from_tensor_slices(vec![Tensor::from_slice(&[0i64, 5], &[2]).unwrap()]).unwrap();
    let ch = Dataset::choose_from_datasets(vec![r(2), r(4)], &bad, true).unwrap();
    let errs: Vec<_> = ch.iter().unwrap().collect();
    assert!(errs[1]
        .as_ref()
        .err()
        .unwrap()
        .to_string()
        .contains("out of range"));
}

#[test]
fn padded_batch_pads_to_the_largest_or_the_given_shape() {
    // element i: i copies of i
    let f: MapFn = Arc::new(|v: Vec<Tensor>| {
        let x = v[0].to_vec::<i64>()?[0];
        Ok(vec![Tensor::from_slice(
            &vec![x; x as usize],
            &[x as usize],
        )?])
    });
    let ds = Dataset::range(5).map(f, Some(1)).unwrap();
    let pb = ds
        .padded_batch(
            2,
            None,
            Some(vec![Some(Tensor::from_slice(&[-1i32], &[]).unwrap())]),
            false,
        )
        .unwrap();
    let out: Vec<(Vec<usize>, Vec<i64>)> = pb
        .iter()
        .unwrap()
        .map(|e| {
            let t = &e.unwrap()[0];
            (t.shape().to_vec(), t.to_vec::<i64>().unwrap())
        })
        .collect();
    assert_eq!(
        out,
        vec![
            (vec![2, 1], vec![-1, 1]),
            (vec![2, 3], vec![2, 2, -1, 3, 3, 3]),
            (vec![1, 4], vec![4, 4, 4, 4]),
        ]
    );
    let fixed = ds
        .padded_batch(2, Some(vec![Some(vec![Some(5)])]), None, true)
        .unwrap();
    assert_eq!(fixed.cardinality(), Cardinality::Finite(2));
    let shapes: Vec<Vec<usize>> = fixed
        .iter()
        .unwrap()
        .map(|e| e.unwrap()[0].shape().to_vec())
        .collect();
    assert_eq!(shapes, vec![vec![2, 5], vec![2, 5]]);
    let small = ds
        .padded_batch(2, Some(vec![Some(vec![Some(2)])]), None, false)
        .unwrap();
    let r: Vec<_> = small.iter().unwrap().collect();
    assert!(r[1].as_ref().err().unwrap().to_string().contains("smaller"));
    // a 2-d case: rows padded in both dimensions, C order kept
    let t = Tensor::from_slice(&(0..12i64).collect::<Vec<_>>(), &[2, 2, 3]).unwrap();
    let two = Dataset::from_tensor_slices(vec![t]).unwrap();
    let e = two
        .padded_batch(2, Some(vec![Some(vec![Some(3), None])]), None, false)
        .unwrap()
        .iter()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(e[0].shape(), &[2, 3, 3]);
    assert_eq!(
        e[0].to_vec::<i64>().unwrap(),
        vec![0, 1, 2, 3, 4, 5, 0, 0, 0, 6, 7, 8, 9, 10, 11, 0, 0, 0]
    );
    assert!(two
        .padded_batch(2, Some(vec![Some(vec![Some(1), None])]), None, false)
        .is_err());
}
