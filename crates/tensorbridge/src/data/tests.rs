//! Unit tests of the pipeline (stages against tf.data's semantics).

use super::*;
use crate::dtype::Casting;

fn ints(ds: &Dataset) -> Vec<i64> {
    ds.iter()
        .unwrap()
        .flat_map(|e| e.unwrap()[0].to_vec::<i64>().unwrap())
        .collect()
}

#[test]
fn basic_stages_match_tf_semantics() {
    let r = Dataset::range(10);
    assert_eq!(ints(&r.skip(Some(3)).take(Some(4))), vec![3, 4, 5, 6]);
    assert_eq!(ints(&r.shard(3, 1).unwrap()), vec![1, 4, 7]);
    assert_eq!(r.shard(3, 1).unwrap().cardinality(), Cardinality::Finite(3));
    assert_eq!(
        ints(&r.take(Some(3)).repeat(Some(2))),
        vec![0, 1, 2, 0, 1, 2]
    );
    assert_eq!(r.repeat(None).cardinality(), Cardinality::Infinite);
    assert_eq!(
        r.repeat(None).take(Some(25)).cardinality(),
        Cardinality::Finite(25)
    );
    assert_eq!(ints(&r.repeat(None).take(Some(25))).len(), 25);
    assert_eq!(ints(&r.skip(None)), Vec::<i64>::new());
    let b = r.batch(4, false).unwrap();
    assert_eq!(b.cardinality(), Cardinality::Finite(3));
    let shapes: Vec<Vec<usize>> = b
        .iter()
        .unwrap()
        .map(|e| e.unwrap()[0].shape().to_vec())
        .collect();
    assert_eq!(shapes, vec![vec![4], vec![4], vec![2]]);
    assert_eq!(r.batch(4, true).unwrap().iter().unwrap().count(), 2);
    assert_eq!(ints(&r.prefetch(2).unwrap()), (0..10).collect::<Vec<_>>());
}

#[test]
fn shuffle_is_a_seeded_permutation_that_changes_per_epoch() {
    let ds = Dataset::range(100).shuffle(16, Some(42), true).unwrap();
    let (a, b) = (ints(&ds), ints(&ds));
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_ne!(a, b);
    let again = Dataset::range(100).shuffle(16, Some(42), true).unwrap();
    assert_eq!(ints(&again), a);
    assert_eq!(ints(&again), b);
    let fixed = Dataset::range(100).shuffle(16, Some(42), false).unwrap();
    assert_eq!(ints(&fixed), ints(&fixed));
}

#[test]
fn parallel_map_keeps_order_and_stops_on_drop() {
    let f: MapFn = Arc::new(|v: Vec<Tensor>| {
        let x = v[0].to_vec::<i64>()?[0];
        Ok(vec![Tensor::from_slice(&[x * 2], &[])?])
    });
    let ds = Dataset::range(1000)
        .map(f.clone(), Some(4))
        .unwrap()
        .prefetch(3)
        .unwrap();
    assert_eq!(ints(&ds), (0..1000).map(|x| x * 2).collect::<Vec<_>>());
    let endless = Dataset::range(10)
        .repeat(None)
        .map(f, Some(3))
        .unwrap()
        .prefetch(2)
        .unwrap();
    let mut it = endless.iter().unwrap();
    for _ in 0..50 {
        it.next().unwrap().unwrap();
    }
    assert!(live_threads() >= 4);
    drop(it);
    // Other tests may run pipelines concurrently; ours are joined, so at most
    // theirs remain. Checked precisely from Python (single-threaded tests).
    let bad: MapFn = Arc::new(|_| Err(Error::InvalidArgument("boom".into())));
    let mut it = Dataset::range(5).map(bad, Some(2)).unwrap().iter().unwrap();
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn fused_ops_write_into_batches() {
    let img: Vec<u8> = (0..24).collect();
    let x = Tensor::from_slice(&img, &[4, 2, 3]).unwrap();
    let y = Tensor::from_slice(&[1i64, 2, 3, 4], &[4]).unwrap();
    let ds = Dataset::from_tensor_slices(vec![x, y])
        .unwrap()
        .map_ops(MapOps::Each(vec![
            Some(vec![Op::Cast {
                dtype: DType::Float32,
                casting: Casting::Unsafe,
            }]),
            None,
        ]))
        .map_ops(MapOps::Each(vec![
            Some(vec![
                Op::Scale { mul: 0.5, add: 1.0 },
                Op::Reshape(vec![-1]),
            ]),
            None,
        ]))
        .batch(3, false)
        .unwrap();
    let spec = ds.element_spec().unwrap().unwrap();
    assert_eq!(spec[0], (DType::Float32, vec![None, Some(6)]));
    let out: Vec<_> = ds.iter().unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(out[0][0].shape(), &[3, 6]);
    let want: Vec<f32> = (0..18).map(|v| v as f32 * 0.5 + 1.0).collect();
    assert_eq!(out[0][0].to_vec::<f32>().unwrap(), want);
    assert_eq!(out[1][1].to_vec::<i64>().unwrap(), vec![4]);
    let bad = Tensor::from_slice(&[1u8, 2], &[2]).unwrap();
    let z = Tensor::from_slice(&[1u8, 2, 3], &[3]).unwrap();
    let err = Dataset::from_tensor_slices(vec![bad, z])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("component 1 has 3"), "{err}");
}

#[test]
fn from_files_reads_rows_in_order_interleaves_and_names_bad_files() {
    use crate::format::npy;
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, n) in [3usize, 1, 2].iter().enumerate() {
        let vals: Vec<i64> = (0..*n as i64 * 2).map(|v| 100 * i as i64 + v).collect();
        let t = Tensor::from_slice(&vals, &[*n, 2]).unwrap();
        let p = dir.path().join(format!("f{i}.npy"));
        npy::save(&p, &t.view()).unwrap();
        paths.push(p);
    }
    let firsts = |ds: &Dataset| -> Vec<i64> {
        ds.iter()
            .unwrap()
            .map(|e| e.unwrap()[0].to_vec::<i64>().unwrap()[0])
            .collect()
    };
    let ds = Dataset::from_files(paths.clone(), FilesOptions::default())
        .unwrap()
        .0;
    assert_eq!(ds.cardinality(), Cardinality::Finite(6));
    assert_eq!(firsts(&ds), vec![0, 2, 4, 100, 200, 202]);
    let opts = FilesOptions {
        cycle_length: 2,
        ..FilesOptions::default()
    };
    let il = Dataset::from_files(paths.clone(), opts).unwrap().0;
    // tf.data interleave order: f0 f1 f0 (f1 ends) f0 f2 f2
    assert_eq!(firsts(&il), vec![0, 100, 2, 4, 200, 202]);
    assert_eq!(firsts(&ds.shuffle(4, Some(1), true).unwrap()).len(), 6);
    let bad = Tensor::from_slice(&[1.0f32, 2.0], &[1, 2]).unwrap();
    npy::save(&paths[1], &bad.view()).unwrap();
    let err = Dataset::from_files(paths.clone(), FilesOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("f1.npy") && err.contains("float32"), "{err}");
    // Changed after the headers were read: an error naming the file, mid-stream.
    let mut it = ds.iter().unwrap();
    for _ in 0..3 {
        it.next().unwrap().unwrap();
    }
    let err = it.next().unwrap().err().unwrap().to_string();
    assert!(err.contains("f1.npy"), "{err}");
    assert!(it.next().is_none());
}

#[test]
fn sizes_follow_tf_and_never_allocate_for_what_is_not_there() {
    let r = Dataset::range(10);
    for n in [1i64 << 40, 1 << 62, i64::MAX] {
        let b = r.batch(n, false).unwrap();
        assert_eq!(b.cardinality(), Cardinality::Finite(1));
        let got: Vec<Vec<usize>> = b
            .iter()
            .unwrap()
            .map(|e| e.unwrap()[0].shape().to_vec())
            .collect();
        assert_eq!(got, vec![vec![10]]);
        assert_eq!(r.batch(n, true).unwrap().iter().unwrap().count(), 0);
        assert_eq!(ints(&r.prefetch(n).unwrap()), (0..10).collect::<Vec<_>>());
        let mut s = ints(&r.shuffle(n, Some(1), true).unwrap());
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
    for bad in [0i64, -1, -5] {
        let e = r.batch(bad, false).err().unwrap().to_string();
        assert!(e.contains("batch_size must be greater than zero"), "{e}");
    }
    for bad in [0i64, -1, -3] {
        let e = r.shuffle(bad, None, true).err().unwrap().to_string();
        assert!(e.contains("buffer_size must be greater than zero"), "{e}");
    }
    // -2 (UNKNOWN_CARDINALITY): the whole dataset, as tf.data; refused when infinite.
    let mut all = ints(&r.shuffle(shuffle::WHOLE_DATASET, Some(2), true).unwrap());
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert!(r.repeat(None).shuffle(-2, None, true).is_err());
    assert!(r.prefetch(-2).is_err());
    assert_eq!(ints(&r.prefetch(0).unwrap()), (0..10).collect::<Vec<_>>());
    assert_eq!(ints(&r.prefetch(-1).unwrap()), (0..10).collect::<Vec<_>>());
    assert_eq!(
        prefetch::prefetch_depth(1 << 62).unwrap(),
        prefetch::MAX_DEPTH
    );
    assert_eq!(map::map_workers(Some(1 << 40)).unwrap(), max_workers());
    assert_eq!(map::map_workers(Some(3)).unwrap(), 3);
    assert_eq!(
        map::map_workers(Some(-1)).unwrap(),
        map::default_parallelism()
    );
    assert!(map::map_workers(Some(0)).is_err());
    assert!(r.shard(0, 0).is_err() && r.shard(2, -1).is_err() && r.shard(2, 2).is_err());
    assert!(OnError::from_name("ignore")
        .err()
        .unwrap()
        .to_string()
        .contains("on_error must be 'raise' or 'skip'"));
}

#[test]
fn a_map_functions_external_error_arrives_unchanged() {
    #[derive(Debug)]
    struct Mine(u32);
    impl std::fmt::Display for Mine {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "mine {}", self.0)
        }
    }
    impl std::error::Error for Mine {}
    for parallel in [1, 3] {
        let f: MapFn = Arc::new(|v: Vec<Tensor>| {
            let x = v[0].to_vec::<i64>()?[0];
            if x == 4 {
                return Err(Error::external(Mine(x as u32)));
            }
            Ok(v)
        });
        let ds = Dataset::range(10)
            .map(f, Some(parallel))
            .unwrap()
            .batch(2, false)
            .unwrap()
            .prefetch(2)
            .unwrap();
        let err = ds.iter().unwrap().find_map(|r| r.err()).unwrap();
        let Error::External(inner) = err else {
            panic!("not external: {err}")
        };
        assert_eq!(inner.downcast::<Mine>().unwrap().0, 4);
    }
}

#[test]
fn warnings_belong_to_their_iterator() {
    use crate::format::npy;
    let dir = tempfile::tempdir().unwrap();
    let make = |prefix: &str| -> Vec<std::path::PathBuf> {
        (0..3)
            .map(|i| {
                let p = dir.path().join(format!("{prefix}{i}.npy"));
                let t = Tensor::from_slice(&[i as i64, i as i64], &[2]).unwrap();
                npy::save(&p, &t.view()).unwrap();
                p
            })
            .collect()
    };
    let (a, b) = (make("a"), make("b"));
    let skip = || FilesOptions {
        on_error: OnError::Skip,
        ..FilesOptions::default()
    };
    let (da, w) = Dataset::from_files(a.clone(), skip()).unwrap();
    assert!(w.is_empty());
    let (db, _) = Dataset::from_files(b.clone(), skip()).unwrap();
    std::fs::write(&a[1], b"garbage").unwrap();
    std::fs::write(&b[2], b"garbage").unwrap();
    let (da, db) = (da.prefetch(4).unwrap(), db.prefetch(4).unwrap());
    let (mut ia, mut ib) = (da.iter().unwrap(), db.iter().unwrap());
    let (mut wa, mut wb) = (Vec::new(), Vec::new());
    loop {
        let (x, y) = (ia.next(), ib.next());
        wa.extend(ia.take_warnings());
        wb.extend(ib.take_warnings());
        if x.is_none() && y.is_none() {
            break;
        }
    }
    assert!(wa.len() == 1 && wa[0].contains("a1.npy"), "{wa:?}");
    assert!(wb.len() == 1 && wb[0].contains("b2.npy"), "{wb:?}");
    // Skipped while the headers are read: returned to the caller.
    let (_, w) = Dataset::from_files(vec![a[0].clone(), a[1].clone()], skip()).unwrap();
    assert!(w.len() == 1 && w[0].contains("a1.npy"), "{w:?}");
}
