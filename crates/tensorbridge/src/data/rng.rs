//! The pipeline's PRNG and seeding rules (shuffle buffers, file-order shuffles).
//!
//! SplitMix64 with Lemire's unbiased bounded draw: a given seed gives the same
//! stream on every run and machine. Epoch `k` of a stage seeded `s` draws from
//! [`mix`]`(s, k)`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// SplitMix64: a tiny, well-mixed, fully specified PRNG (same stream on every
/// machine for a given seed).
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The generator's whole state (for a saved iterator state).
    pub(crate) fn state(&self) -> u64 {
        self.0
    }

    /// This generator moved to `state` (from [`SplitMix64::state`]).
    pub(crate) fn with_state(self, state: u64) -> Self {
        SplitMix64(state)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift with rejection: exactly uniform).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as usize
    }

    /// Fisher–Yates shuffle of `v` in place.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// The seed of epoch `epoch` of a stage seeded `seed`.
pub(crate) fn mix(seed: u64, epoch: u64) -> u64 {
    let mut r = SplitMix64::new(seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64()
}

/// A fresh random seed (for stages made without one).
pub(crate) fn random_seed() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}
