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

use super::comp::Item;
use super::permute::Permutation;
use super::rng::{mix, random_seed};
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
        let seed = seed.unwrap_or_else(random_seed);
        Ok(Self::wrap(Node::GlobalShuffle {
            input: self.clone(),
            seed,
            reshuffle: reshuffle_each_iteration,
            epoch: AtomicU64::new(0),
            perm0: Permutation::new(n, mix(seed, 0)),
        }))
    }

    /// The epoch number the next iterator of a `global_shuffle` node uses (and
    /// advance it); the permutation of that epoch.
    pub(crate) fn global_shuffle_epoch(&self) -> Option<(u64, Permutation)> {
        if let Node::GlobalShuffle {
            seed,
            reshuffle,
            epoch,
            perm0,
            ..
        } = &*self.node
        {
            if !*reshuffle {
                return Some((0, perm0.clone()));
            }
            let e = epoch.fetch_add(1, Ordering::Relaxed);
            return Some((e, Permutation::new(perm0.len(), mix(*seed, e))));
        }
        None
    }
}

/// One epoch of a global shuffle: the input's elements at `perm(k)` for
/// `k = next, next + step, ...` (`step` > 1 when a `shard` reads every n-th).
pub(crate) struct GlobalShuffleIter {
    input: Dataset,
    perm: Permutation,
    next: u64,
    step: u64,
}

impl GlobalShuffleIter {
    pub(crate) fn new(input: Dataset, perm: Permutation, start: u64, step: u64) -> Self {
        GlobalShuffleIter {
            input,
            perm,
            next: start,
            step: step.max(1),
        }
    }
}

impl Iterator for GlobalShuffleIter {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        if self.next >= self.perm.len() {
            return None;
        }
        let k = self.next;
        self.next = self.next.saturating_add(self.step);
        Some(self.input.get_item(self.perm.apply(k)))
    }
}
