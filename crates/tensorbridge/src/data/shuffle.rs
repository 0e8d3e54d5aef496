//! `shuffle`: `tf.data`'s buffer shuffle with tensorbridge's own PRNG.
//!
//! A buffer of `buffer_size` elements; each output is drawn uniformly from it and
//! replaced by the next input. The buffer grows with the elements that arrive, so
//! a huge `buffer_size` costs only what the data needs.
//!
//! Size rule (`shuffle_buffer`), as `tf.data`: a positive size; or `-2`
//! (`UNKNOWN_CARDINALITY`), meaning the whole dataset (refused for an infinite
//! one); anything else (`0`, `-1`, ...) is refused.

use super::comp::{It, Item};
use super::rng::SplitMix64;
use super::Cardinality;
use crate::error::{Error, Result};

/// `tf.data.UNKNOWN_CARDINALITY` as a buffer size: shuffle the whole dataset.
pub const WHOLE_DATASET: i64 = -2;

/// The buffer size of `shuffle(buffer_size)` over an input of cardinality `input`:
/// see the module docs.
pub(crate) fn shuffle_buffer(buffer_size: i64, input: Cardinality) -> Result<usize> {
    match buffer_size {
        n if n > 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        WHOLE_DATASET if input == Cardinality::Infinite => Err(Error::InvalidArgument(
            "shuffle: buffer_size=UNKNOWN_CARDINALITY (-2) shuffles the whole dataset, which is infinite here".into(),
        )),
        WHOLE_DATASET => Ok(usize::MAX),
        n => Err(Error::InvalidArgument(format!(
            "shuffle buffer_size must be greater than zero or UNKNOWN_CARDINALITY (-2, the whole dataset), not {n}"
        ))),
    }
}

/// One epoch of a buffer shuffle.
pub(crate) struct Shuffle {
    upstream: It,
    buf: Vec<Item>,
    size: usize,
    rng: SplitMix64,
    exhausted: bool,
}

impl Shuffle {
    pub(crate) fn new(upstream: It, size: usize, seed: u64) -> Shuffle {
        Shuffle {
            upstream,
            buf: Vec::new(),
            size: size.max(1),
            rng: SplitMix64::new(seed),
            exhausted: false,
        }
    }
}

impl Iterator for Shuffle {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        while !self.exhausted && self.buf.len() < self.size {
            match self.upstream.next() {
                Some(Ok(x)) => self.buf.push(x),
                Some(Err(e)) => return Some(Err(e)),
                None => self.exhausted = true,
            }
        }
        if self.buf.is_empty() {
            return None;
        }
        let i = self.rng.below(self.buf.len());
        Some(Ok(self.buf.swap_remove(i)))
    }
}
