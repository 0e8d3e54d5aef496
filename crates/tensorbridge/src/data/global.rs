//! `global_shuffle`: a uniformly random order over a random-access dataset with no
//! buffer — element `k` of epoch `e` is the input's element `perm_e(k)`, `perm_e` a
//! seeded [`Permutation`] (O(1) memory, evaluated one index at a time).
//!
//! Seeding, as `shuffle`'s: epoch `e` uses the permutation keyed by
//! `mix(seed, e)` when `reshuffle_each_iteration` (epoch 0's otherwise); without a
//! seed one is drawn when the stage is made. Random access through it reads
//! epoch 0's order: `get(i) == input.get(perm_0(i))`.
//!
//! **Cost.** Every element is one random read from its source. For `.npy` files on
//! local disk that is one `pread` of the row (page-cache speed once the files are
//! cached, a seek per row on a cold spinning disk). On object storage a ranged
//! GET per row would cost a round trip (~10-100 ms) per element: there, shuffle
//! coarsely instead — `from_files(shuffle_files=True, cycle_length=k)` followed by
//! `shuffle(buffer)` reads whole objects sequentially and mixes rows within a
//! window of `k` files — or copy the files to local disk first. When the input
//! reads files, a thread reads ahead (up to 256 elements, 64 at a time in
//! parallel on rayon's pool) so the reads overlap with each other and with the
//! consumer.
//!
//! **State**: `{"epoch", "seed", "position"}` — three numbers whatever the data
//! size (elements read ahead are read again after a restore, not saved).
//!
//! **Elastic sharding.** A `shard(n, i)` directly after a `global_shuffle` reads
//! only positions `i, i + n, ...` of the permutation (not every element), and its
//! state holds the *global* position — elements consumed by this shard × `n`,
//! i.e. by all shards together when they advance in lockstep, as data-parallel
//! training does (one batch per shard per step; a `batch` or `map` after the
//! shard is fine). The pipeline fingerprint records that stage as
//! `shard(elastic)`, so the state of shard `i` of `n` restores into shard `i'` of
//! `n'` ≠ `n`, which continues at that global position: what the old shards
//! consumed plus what the new ones yield is every element of the epoch exactly
//! once. (Shards that did not advance in lockstep would repeat or skip the
//! difference; the state of the slowest one repeats rather than skips.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::prelude::*;

use serde_json::{json, Value};

use super::comp::Item;
use super::permute::Permutation;
use super::rng::{mix, random_seed};
use super::state::{field_u64, object, Prov, Stage};
use super::threads::{panic_error, spawn};
use super::{Dataset, Node};
use crate::error::{Error, Result};

impl Dataset {
    /// Shuffle the whole dataset without a buffer (TF 2.17's name): epoch `e` yields
    /// the input's elements in the order of a seeded permutation of all indices,
    /// a new one each epoch unless `reshuffle_each_iteration` is false. Needs random
    /// access (see [`Dataset::random_access_len`]); otherwise
    /// [`Error::InvalidArgument`] names the stage that prevents it. The result
    /// has random access again (epoch 0's order).
    pub fn global_shuffle(
        &self,
        seed: Option<u64>,
        reshuffle_each_iteration: bool,
    ) -> Result<Dataset> {
        let n = self.random_access_len().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "global_shuffle needs a dataset with random access (from_tensor_slices, range, from_files of .npy/.npz, and maps, take, skip, shard, batch, zip, concatenate, enumerate of those), but {} prevents it; use shuffle(buffer_size) instead",
                self.random_access_blocker().unwrap_or("a stage")
            ))
        })?;
        Ok(Self::wrap(Node::GlobalShuffle {
            input: self.clone(),
            seed: AtomicU64::new(seed.unwrap_or_else(random_seed)),
            seeded: seed.is_some(),
            reshuffle: reshuffle_each_iteration,
            epoch: AtomicU64::new(0),
            n,
        }))
    }
}

/// The permutation of epoch `epoch` of a global shuffle of `n` seeded `seed`.
pub(crate) fn permutation(n: u64, seed: u64, epoch: u64) -> Permutation {
    Permutation::new(n, mix(seed, epoch))
}

/// One epoch of a global shuffle: the input's elements at `perm(k)` for
/// `k = offset + position, + step, ...`. Unsharded, `offset` is 0 and `step` 1;
/// under `shard(num, index)` (see [`GlobalShuffleIter::build`]) `offset` is the
/// shard index and `step` the number of shards, so each shard reads only its own
/// elements. `position` is the *global* position in the epoch's permutation:
/// after this shard has yielded `c` elements it is `c × step` — all shards
/// together have consumed that many, when they advance in lockstep (as in
/// data-parallel training, one batch per shard per step). A state restored into a
/// pipeline sharded another way continues from that global position.
pub(crate) struct GlobalShuffleIter {
    input: Dataset,
    perm: Arc<Permutation>,
    seed: u64,
    epoch: u64,
    position: u64,
    offset: u64,
    step: u64,
    /// Rows read ahead on a thread (file sources), started at the first `next`.
    ahead: Option<ReadAhead>,
    io: bool,
}

/// Elements read on a background thread, [`CHUNK`] at a time in parallel, in
/// order, at most [`AHEAD`] waiting. Only the consumer's position is state: the
/// elements read ahead are simply read again after a restore.
struct ReadAhead {
    rx: Option<Receiver<Result<(Item, u64)>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Elements read in parallel at once by a read-ahead thread.
const CHUNK: usize = 64;
/// Elements a read-ahead thread keeps waiting at most.
const AHEAD: usize = 256;

impl ReadAhead {
    fn start(
        input: Dataset,
        perm: Arc<Permutation>,
        mut position: u64,
        offset: u64,
        step: u64,
    ) -> Result<ReadAhead> {
        let (tx, rx) = sync_channel(AHEAD);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = spawn("tb-global-shuffle", move || {
            while !flag.load(Ordering::Relaxed) {
                let mut ks = Vec::with_capacity(CHUNK);
                while ks.len() < CHUNK {
                    match position.checked_add(offset) {
                        Some(k) if k < perm.len() => ks.push(perm.apply(k)),
                        _ => break,
                    }
                    position = position.saturating_add(step);
                }
                if ks.is_empty() {
                    break;
                }
                let read: Vec<Result<(Item, u64)>> = ks
                    .par_iter()
                    .map(|&j| {
                        catch_unwind(AssertUnwindSafe(|| input.get_item(j)))
                            .unwrap_or_else(|_| Err(panic_error("a global_shuffle read")))
                            .map(|item| (item, j))
                    })
                    .collect();
                for r in read {
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        return;
                    }
                }
            }
        })?;
        Ok(ReadAhead {
            rx: Some(rx),
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx.take()); // unblocks a `send` on a full channel
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl GlobalShuffleIter {
    /// Build (or restore from `state`) an epoch of the global shuffle `gs`, read
    /// every `step`-th element from `offset`.
    pub(crate) fn build(
        gs: &Dataset,
        offset: u64,
        step: u64,
        state: Option<&Value>,
    ) -> Result<GlobalShuffleIter> {
        let Node::GlobalShuffle {
            input,
            seed,
            reshuffle,
            epoch,
            n,
            ..
        } = &*gs.node
        else {
            return Err(Error::InvalidArgument(
                "global_shuffle: not a global shuffle stage".into(),
            ));
        };
        let (s, e, position) = match state {
            None => {
                let e = if *reshuffle {
                    epoch.fetch_add(1, Ordering::Relaxed)
                } else {
                    0
                };
                (seed.load(Ordering::Relaxed), e, 0)
            }
            Some(st) => {
                let o = object(st, "global_shuffle")?;
                let (s, e) = (field_u64(o, "seed")?, field_u64(o, "epoch")?);
                // Later epochs continue from the restored ones, with the seed used.
                seed.store(s, Ordering::Relaxed);
                if *reshuffle {
                    epoch.store(e + 1, Ordering::Relaxed);
                }
                (s, e, field_u64(o, "position")?)
            }
        };
        Ok(GlobalShuffleIter {
            io: input.reads_files(),
            ahead: None,
            input: input.clone(),
            perm: Arc::new(permutation(*n, s, e)),
            seed: s,
            epoch: e,
            position,
            offset,
            step: step.max(1),
        })
    }
}

impl Stage for GlobalShuffleIter {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        let k = self.position.checked_add(self.offset)?;
        if k >= self.perm.len() {
            return None;
        }
        if self.io {
            if self.ahead.is_none() {
                match ReadAhead::start(
                    self.input.clone(),
                    self.perm.clone(),
                    self.position,
                    self.offset,
                    self.step,
                ) {
                    Ok(a) => self.ahead = Some(a),
                    Err(e) => return Some(Err(e)),
                }
            }
            let r = self.ahead.as_ref()?.rx.as_ref()?.recv().ok()?;
            self.position = self.position.saturating_add(self.step);
            return Some(r.map(|(item, j)| (item, Prov::Index(j))));
        }
        self.position = self.position.saturating_add(self.step);
        let j = self.perm.apply(k);
        Some(self.input.get_item(j).map(|item| (item, Prov::Index(j))))
    }

    /// `{"epoch", "seed", "position"}`: three numbers, whatever the data size.
    fn state(&self) -> Result<Value> {
        Ok(json!({
            "epoch": self.epoch,
            "seed": self.seed,
            "position": self.position,
        }))
    }
}
