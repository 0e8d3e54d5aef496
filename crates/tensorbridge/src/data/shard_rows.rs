//! Sharding a pipeline at its source (for data-parallel readers: DataLoader
//! workers, `torch.distributed` ranks), and setting its epoch.
//!
//! [`Dataset::shard`] at the end of a pipeline keeps every `num`-th element but
//! every shard still runs the whole pipeline. [`Dataset::shard_source`] instead
//! rebuilds the pipeline with a `shard_rows` stage right after its source (tf.data's
//! advice: shard early), so each shard reads, maps, shuffles and batches only its
//! own rows. The source's rows are dealt out in *blocks* of the pipeline's batch
//! size (the product of its `batch`/`padded_batch` sizes; 1 without one): block
//! `j` (rows `j*block .. (j+1)*block`) goes to shard `j % num`. So every shard but
//! the one holding the last, short block reads whole batches' worth of rows: the
//! shards together yield as many batches as the unsharded pipeline, and as many
//! as `shard(num, index)` of it per shard, with one short (or, under
//! `drop_remainder`, dropped) batch in all; without a shuffle the batches are the
//! very batches `shard(num, index)` yields. With a shuffle each shard shuffles its
//! own rows, so a batch holds rows of one shard only.
//!
//! The source must have random access and be cheap to read a row of at a time:
//! `from_tensor_slices` and `range`, and `from_files` of local files without
//! `shuffle_files` (one positioned read per row); the stages between it and the
//! end must keep one element per row or group them: built-in and Python `map`s,
//! `shuffle`, `global_shuffle`, `batch`, `padded_batch`, `filter`, `prefetch`.
//! Other pipelines get `None` (shard them with [`Dataset::shard`]).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::comp::Item;
use super::prefetch::Prefetch;
use super::state::{field, field_provs, field_u64, object, It, Prov, Stage};
use super::{Cardinality, Dataset, Node};
use crate::error::{Error, Result};

/// Rows read ahead on a thread when the source reads files.
const FILE_AHEAD: usize = 256;

/// The source row of position `j` of shard `index` of `num` (blocks of `block`).
pub(crate) fn row(j: u64, num: u64, index: u64, block: u64) -> u64 {
    ((j / block) * num + index) * block + j % block
}

/// Rows of shard `index` of `num` of `n` rows dealt out in blocks of `block`.
pub(crate) fn shard_len(n: u64, num: u64, index: u64, block: u64) -> u64 {
    let full = n / block;
    let tail = n % block;
    let mine = full / num + u64::from(index < full % num);
    mine * block
        + if tail > 0 && full % num == index {
            tail
        } else {
            0
        }
}

/// Whether a `from_files` path names an object store (`s3://...`), not a local file.
fn is_remote(path: &std::path::Path) -> bool {
    let s = path.to_string_lossy();
    s.contains("://") && !s.starts_with("file://")
}

impl Dataset {
    /// This pipeline with its source's rows sharded (see the [module docs](self)):
    /// shard `index` of `num` reads only its own blocks of rows, one block being the
    /// pipeline's batch size. `None` when the pipeline does not allow it (then use
    /// [`Dataset::shard`]). Shuffle seeds and epoch counters are copied: the new
    /// pipeline's epochs go on from this one's. [`Error::InvalidArgument`] unless
    /// `num > 0` and `index < num`.
    pub fn shard_source(&self, num: u64, index: u64) -> Result<Option<Dataset>> {
        if num == 0 || index >= num {
            return Err(Error::InvalidArgument(format!(
                "shard index {index} is out of range for {num} shards"
            )));
        }
        Ok(self.reshard(num, index, 1))
    }

    fn reshard(&self, num: u64, index: u64, block: u64) -> Option<Dataset> {
        let copy = |a: &AtomicU64| AtomicU64::new(a.load(Ordering::Relaxed));
        let node = match &*self.node {
            Node::Files { files, shuffle, .. }
                if *shuffle || files.iter().any(|f| is_remote(&f.path)) =>
            {
                return None
            }
            Node::Files { .. } | Node::Slices { .. } | Node::Range { .. } => Node::ShardRows {
                input: self.clone(),
                num,
                index,
                block,
            },
            Node::MapOps { input, ops } => Node::MapOps {
                input: input.reshard(num, index, block)?,
                ops: ops.clone(),
            },
            Node::MapFn {
                input,
                f,
                parallel,
                no_state,
            } => Node::MapFn {
                input: input.reshard(num, index, block)?,
                f: f.clone(),
                parallel: *parallel,
                no_state: no_state.clone(),
            },
            Node::Prefetch { input, n } => Node::Prefetch {
                input: input.reshard(num, index, block)?,
                n: *n,
            },
            Node::Filter { input, pred } => Node::Filter {
                input: input.reshard(num, index, block)?,
                pred: pred.clone(),
            },
            Node::Shuffle {
                input,
                buffer,
                seed,
                seeded,
                reshuffle,
                epoch,
            } => Node::Shuffle {
                input: input.reshard(num, index, block)?,
                buffer: *buffer,
                seed: copy(seed),
                seeded: *seeded,
                reshuffle: *reshuffle,
                epoch: copy(epoch),
            },
            Node::GlobalShuffle {
                input,
                seed,
                seeded,
                reshuffle,
                epoch,
                ..
            } => {
                let input = input.reshard(num, index, block)?;
                let n = input.random_access_len()?;
                Node::GlobalShuffle {
                    input,
                    seed: copy(seed),
                    seeded: *seeded,
                    reshuffle: *reshuffle,
                    epoch: copy(epoch),
                    n,
                }
            }
            Node::Batch {
                input,
                size,
                drop_remainder,
            } => Node::Batch {
                input: input.reshard(num, index, block.checked_mul(*size as u64)?)?,
                size: *size,
                drop_remainder: *drop_remainder,
            },
            Node::PaddedBatch {
                input,
                size,
                drop_remainder,
                shapes,
                values,
            } => Node::PaddedBatch {
                input: input.reshard(num, index, block.checked_mul(*size as u64)?)?,
                size: *size,
                drop_remainder: *drop_remainder,
                shapes: shapes.clone(),
                values: values.clone(),
            },
            _ => return None,
        };
        Some(Self::wrap(node))
    }

    /// Make the next iterator (the next epoch) of every reshuffling stage of this
    /// pipeline (`shuffle`, `global_shuffle`, `from_files(shuffle_files=True)`)
    /// use epoch `epoch`'s order, as the `epoch`-th iterator of a freshly built
    /// pipeline would (later iterators go on from there). For processes that
    /// each run a copy of a pipeline and must agree on an epoch's order, like
    /// `DistributedSampler.set_epoch`.
    pub fn set_epoch(&self, epoch: u64) {
        match &*self.node {
            Node::Files {
                epoch: e,
                shuffle: true,
                ..
            }
            | Node::Shuffle {
                epoch: e,
                reshuffle: true,
                ..
            }
            | Node::GlobalShuffle {
                epoch: e,
                reshuffle: true,
                ..
            } => e.store(epoch, Ordering::Relaxed),
            _ => {}
        }
        for input in self.inputs() {
            input.set_epoch(epoch);
        }
    }

    /// [`Dataset::build_in`] for a `shard_rows` stage.
    pub(crate) fn build_shard_rows(&self, state: Option<&Value>) -> Result<It> {
        let Node::ShardRows {
            input,
            num,
            index,
            block,
        } = &*self.node
        else {
            return Err(Error::InvalidArgument(
                "internal: not a shard_rows stage".into(),
            ));
        };
        // File rows are positioned reads: done on a reader thread, ahead of the
        // consumer (its state holds the rows in flight).
        let io = input.reads_files();
        let (inner, pending) = match state {
            Some(s) if io => {
                let o = object(s, "shard_rows")?;
                (Some(field(o, "input")?), field_provs(o, "pending")?)
            }
            s => (s, Vec::new()),
        };
        let next = match inner {
            None => 0,
            Some(s) => field_u64(object(s, "shard_rows")?, "next")?,
        };
        let end = match self.cardinality() {
            Cardinality::Finite(n) => n,
            _ => 0,
        };
        let rows = ShardRows {
            input: input.clone(),
            num: *num,
            index: *index,
            block: *block,
            next,
            end,
        };
        if io {
            Ok(Box::new(Prefetch::new(
                Box::new(rows),
                self.clone(),
                FILE_AHEAD,
                pending,
            )?))
        } else {
            Ok(Box::new(rows))
        }
    }
}

/// One epoch of a `shard_rows` stage: positions `next..end` of the shard, each read
/// from the input by random access. Its position `j` is the provenance.
struct ShardRows {
    input: Dataset,
    num: u64,
    index: u64,
    block: u64,
    next: u64,
    end: u64,
}

impl Stage for ShardRows {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        if self.next >= self.end {
            return None;
        }
        let j = self.next;
        self.next += 1;
        let i = row(j, self.num, self.index, self.block);
        Some(self.input.get_item(i).map(|item| (item, Prov::Index(j))))
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({ "next": self.next }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn ints(ds: &Dataset) -> Vec<Vec<i64>> {
        ds.iter()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                e[0].to_vec::<i64>().unwrap()
            })
            .collect()
    }

    #[test]
    fn rows_and_lengths_cover_every_row_once() {
        for n in [0u64, 1, 7, 16, 17, 50] {
            for num in 1..5u64 {
                for block in [1u64, 3, 8] {
                    let mut all = Vec::new();
                    for index in 0..num {
                        let len = shard_len(n, num, index, block);
                        all.extend((0..len).map(|j| row(j, num, index, block)));
                    }
                    all.sort_unstable();
                    assert_eq!(
                        all,
                        (0..n).collect::<Vec<_>>(),
                        "n={n} num={num} block={block}"
                    );
                }
            }
        }
    }

    #[test]
    fn unshuffled_batches_equal_shard_of_the_batches() {
        let x = Tensor::from_slice(&(0..23i64).collect::<Vec<_>>(), &[23]).unwrap();
        let ds = Dataset::from_tensor_slices(vec![x])
            .unwrap()
            .batch(4, false)
            .unwrap()
            .prefetch(2)
            .unwrap();
        for num in 1..4 {
            for index in 0..num {
                let src = ds.shard_source(num, index).unwrap().unwrap();
                let want = ds.shard(num as i64, index as i64).unwrap();
                assert_eq!(ints(&src), ints(&want));
                assert_eq!(src.cardinality(), want.cardinality());
            }
        }
    }

    #[test]
    fn shuffled_shards_are_disjoint_and_cover_everything() {
        let ds = Dataset::range(37)
            .shuffle(8, Some(3), true)
            .unwrap()
            .batch(5, true)
            .unwrap();
        let mut all: Vec<i64> = Vec::new();
        let mut batches = 0;
        for index in 0..3 {
            let s = ds.shard_source(3, index).unwrap().unwrap();
            let got = ints(&s);
            assert_eq!(got.len() as i64, s.cardinality().as_i64());
            batches += got.len();
            all.extend(got.into_iter().flatten());
        }
        // As many whole batches as unsharded (7), the 2 rows of the short block dropped.
        assert_eq!(batches, 7);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 35);
        assert!(all.iter().all(|&v| (0..37).contains(&v)));
    }

    #[test]
    fn pipelines_that_cannot_shard_at_the_source() {
        let r = Dataset::range(10);
        assert!(r.take(Some(5)).shard_source(2, 0).unwrap().is_none());
        assert!(r.enumerate(0).shard_source(2, 0).unwrap().is_none());
        assert!(r.repeat(Some(2)).shard_source(2, 0).unwrap().is_none());
        assert!(r.shard_source(2, 2).is_err());
        assert!(r.shard_source(0, 0).is_err());
    }

    #[test]
    fn set_epoch_repeats_a_fresh_pipelines_epoch() {
        let make = || {
            Dataset::range(30)
                .global_shuffle(Some(4), true)
                .unwrap()
                .shuffle(8, Some(9), true)
                .unwrap()
        };
        let fresh = make();
        let epochs: Vec<_> = (0..3).map(|_| ints(&fresh)).collect();
        assert_ne!(epochs[0], epochs[1]);
        let other = make();
        other.set_epoch(2);
        assert_eq!(ints(&other), epochs[2]);
        other.set_epoch(1);
        assert_eq!(ints(&other), epochs[1]);
        // A source-sharded copy goes on from the epoch set.
        other.set_epoch(1);
        let s = other.shard_source(1, 0).unwrap().unwrap();
        assert_eq!(ints(&s), epochs[1]);
    }
}
