//! `shuffle`: `tf.data`'s buffer shuffle with tensorbridge's own PRNG.
//!
//! A buffer of `buffer_size` elements; each output is drawn uniformly from it and
//! replaced by the next input. The buffer grows with the elements that arrive, so
//! a huge `buffer_size` costs only what the data needs.
//!
//! Size rule (`shuffle_buffer`), as `tf.data`: a positive size; or `-2`
//! (`UNKNOWN_CARDINALITY`), meaning the whole dataset (refused for an infinite
//! one); anything else (`0`, `-1`, ...) is refused.

use serde_json::{json, Map, Value};

use super::comp::Item;
use super::rng::{mix, SplitMix64};
use super::state::{
    bad, field_bool, field_provs, field_u64, materialize_all, provs_json, It, Prov, Stage,
};
use super::{Cardinality, Dataset};
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
///
/// State: `{"input": ..., "seed": s, "epoch": e, "rng": r, "exhausted": bool,
/// "buffer": "[p, ...]"}` — the buffered elements' provenances in buffer order, as
/// JSON text in a string (about `buffer_size` numbers once the buffer is full),
/// never their data.
pub(crate) struct Shuffle {
    upstream: It,
    buf: Vec<(Item, Prov)>,
    size: usize,
    seed: u64,
    epoch: u64,
    rng: SplitMix64,
    exhausted: bool,
}

impl Shuffle {
    /// Epoch `epoch` of a shuffle seeded `seed` (its PRNG starts at `mix(seed, epoch)`).
    pub(crate) fn new(upstream: It, size: usize, seed: u64, epoch: u64) -> Shuffle {
        Shuffle {
            upstream,
            buf: Vec::new(),
            size: size.max(1),
            seed,
            epoch,
            rng: SplitMix64::new(mix(seed, epoch)),
            exhausted: false,
        }
    }

    /// Restore from a state: the buffered elements are made again from `input`.
    pub(crate) fn restore(
        upstream: It,
        input: &Dataset,
        size: usize,
        o: &Map<String, Value>,
    ) -> Result<Shuffle> {
        let provs = field_provs(o, "buffer")?;
        if provs.len() > size.max(1) {
            return Err(bad(format!(
                "shuffle: the state buffers {} elements, more than buffer_size {size}",
                provs.len()
            )));
        }
        let items = materialize_all(input, &provs)?;
        let buf = items.into_iter().zip(provs).collect();
        Ok(Shuffle {
            upstream,
            buf,
            size: size.max(1),
            seed: field_u64(o, "seed")?,
            epoch: field_u64(o, "epoch")?,
            rng: SplitMix64::new(0).with_state(field_u64(o, "rng")?),
            exhausted: field_bool(o, "exhausted")?,
        })
    }

    /// The seed this shuffle was made with.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// The epoch whose order this is.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Stage for Shuffle {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
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

    fn state(&self) -> Result<Value> {
        Ok(json!({
            "input": self.upstream.state()?,
            "seed": self.seed,
            "epoch": self.epoch,
            "rng": self.rng.state(),
            "exhausted": self.exhausted,
            "buffer": provs_json(self.buf.iter().map(|(_, p)| p)),
        }))
    }
}
