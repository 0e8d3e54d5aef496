//! A seeded bijection on `0..n` in O(1) memory: a Feistel network with
//! cycle-walking (what [`super::Dataset::global_shuffle`] draws its order from).
//!
//! The domain is `0..2^b`, `b` the bits of `n - 1` (the next power of two, so less
//! than `2n`). A value is split into a high half of `⌈b/2⌉` bits and a low half of
//! `⌊b/2⌋` bits; each of [`ROUNDS`] rounds XORs one half with a keyed hash of the
//! other (alternating halves), which is invertible whatever the hash, so the whole
//! network is a permutation of `0..2^b`. Values that land outside `0..n` are fed
//! through again (cycle-walking) until one lands inside; following the cycle of a
//! permutation restricted to `0..n` this way is again a permutation of `0..n`, and
//! takes fewer than 2 passes on average. The round keys come from
//! [`SplitMix64`] seeded with the seed.

use super::rng::SplitMix64;

/// Feistel rounds (each changes one half; 8 = 4 full Luby–Rackoff rounds).
pub(crate) const ROUNDS: usize = 8;

/// A seeded permutation of `0..n` evaluated one index at a time.
#[derive(Clone, Debug)]
pub(crate) struct Permutation {
    n: u64,
    lo_bits: u32,
    hi_bits: u32,
    keys: [u64; ROUNDS],
}

/// A keyed, well-mixed 64-bit hash (SplitMix64's finalizer of `x ^ key`).
fn round_hash(x: u64, key: u64) -> u64 {
    let mut z = (x ^ key).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

impl Permutation {
    /// The permutation of `0..n` keyed by `seed`.
    pub(crate) fn new(n: u64, seed: u64) -> Permutation {
        let bits = if n <= 1 {
            0
        } else {
            64 - (n - 1).leading_zeros()
        };
        let lo_bits = bits / 2;
        let mut rng = SplitMix64::new(seed);
        let mut keys = [0u64; ROUNDS];
        for k in &mut keys {
            *k = rng.next_u64();
        }
        Permutation {
            n,
            lo_bits,
            hi_bits: bits - lo_bits,
            keys,
        }
    }

    /// How many indices it permutes.
    pub(crate) fn len(&self) -> u64 {
        self.n
    }

    fn network(&self, x: u64) -> u64 {
        let (lo_mask, hi_mask) = (mask(self.lo_bits), mask(self.hi_bits));
        let mut lo = x & lo_mask;
        let mut hi = if self.lo_bits >= 64 {
            0
        } else {
            x >> self.lo_bits
        };
        for (r, key) in self.keys.iter().enumerate() {
            if r % 2 == 0 {
                hi ^= round_hash(lo, *key) & hi_mask;
            } else {
                lo ^= round_hash(hi, *key) & lo_mask;
            }
        }
        if self.lo_bits >= 64 {
            lo
        } else {
            (hi << self.lo_bits) | lo
        }
    }

    /// Where index `i` (`< n`) goes. Indices `>= n` are returned unchanged.
    pub(crate) fn apply(&self, i: u64) -> u64 {
        if i >= self.n {
            return i;
        }
        let mut x = self.network(i);
        while x >= self.n {
            x = self.network(x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::mix;

    fn is_permutation(n: u64, seed: u64) -> bool {
        let p = Permutation::new(n, seed);
        let mut seen = vec![false; n as usize];
        for i in 0..n {
            let j = p.apply(i);
            if j >= n || seen[j as usize] {
                return false;
            }
            seen[j as usize] = true;
        }
        true
    }

    #[test]
    fn is_a_permutation_for_many_sizes() {
        let mut sizes = vec![0u64, 1, 2, 3, 5, 7, 13, 97, 101, 65_521, 1_000_000];
        for k in [1u32, 2, 3, 4, 8, 10, 16] {
            let p = 1u64 << k;
            sizes.extend([p - 1, p, p + 1]);
        }
        for n in sizes {
            for seed in [0u64, 1, 42, u64::MAX] {
                assert!(is_permutation(n, seed), "n={n} seed={seed}");
            }
        }
    }

    #[test]
    fn deterministic_per_seed_and_different_per_seed_or_epoch() {
        let order = |seed: u64| -> Vec<u64> {
            let p = Permutation::new(1000, seed);
            (0..1000).map(|i| p.apply(i)).collect()
        };
        assert_eq!(order(7), order(7));
        assert_ne!(order(7), order(8));
        assert_ne!(order(mix(7, 0)), order(mix(7, 1)));
        assert_ne!(order(7), (0..1000).collect::<Vec<_>>());
    }

    /// Pearson's statistic of `counts` against a uniform expectation.
    fn chi_square(counts: &[u64]) -> f64 {
        let total: u64 = counts.iter().sum();
        let e = total as f64 / counts.len() as f64;
        counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum()
    }

    #[test]
    fn first_position_is_uniform_chi_square() {
        // Critical values of chi-square at p = 0.001 for the degrees of freedom used.
        for (n, critical) in [(10u64, 27.877), (16, 37.697), (37, 67.985)] {
            let mut counts = vec![0u64; n as usize];
            let trials = 20_000u64;
            for s in 0..trials {
                counts[Permutation::new(n, mix(12345, s)).apply(0) as usize] += 1;
            }
            let stat = chi_square(&counts);
            assert!(stat < critical, "n={n}: chi-square {stat} >= {critical}");
            // and the last position too (index n-1 → where)
            let mut counts = vec![0u64; n as usize];
            for s in 0..trials {
                counts[Permutation::new(n, mix(999, s)).apply(n - 1) as usize] += 1;
            }
            let stat = chi_square(&counts);
            assert!(stat < critical, "n={n}: last position chi-square {stat}");
        }
    }

    #[test]
    fn a_biased_sample_fails_the_chi_square_check() {
        // The check above can fail: an identity "permutation" is far from uniform.
        let mut counts = vec![0u64; 10];
        for s in 0..20_000u64 {
            counts[(s % 7) as usize] += 1;
        }
        assert!(chi_square(&counts) > 27.877);
    }
}
