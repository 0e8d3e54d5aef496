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
//! window of `k` files — or copy the files to local disk first.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::comp::Item;
use super::permute::Permutation;
use super::rng::{mix, random_seed};
use super::state::{field_u64, object, Prov, Stage};
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
    perm: Permutation,
    seed: u64,
    epoch: u64,
    position: u64,
    offset: u64,
    step: u64,
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
            input: input.clone(),
            perm: permutation(*n, s, e),
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
