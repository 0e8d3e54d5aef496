//! Building, restoring and re-making elements for the stages of issue 11's
//! random-access and combinator work (`global_shuffle`, `zip`, `concatenate`,
//! `filter`, `enumerate`, `unbatch`, `padded_batch`, `sample_from_datasets`,
//! `choose_from_datasets`), and their part of a pipeline's fingerprint. `run.rs`
//! and `state.rs` hand these nodes over here.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::comp::Item;
use super::concat::{self, Concat};
use super::enumerate::{self, Enumerate};
use super::filter::Filter;
use super::global::GlobalShuffleIter;
use super::padded_batch::{self, PaddedBatch};
use super::rng::SplitMix64;
use super::run::Ctx;
use super::sample::{self, Interleave, Picker};
use super::state::{It, Prov};
use super::unbatch::{self, Unbatch};
use super::zip::{self, Zip};
use super::{Dataset, Node};
use crate::error::{Error, Result};

fn not_mine() -> Error {
    Error::InvalidArgument("internal: not a combinator stage".into())
}

impl Dataset {
    /// Whether this is a `global_shuffle` stage (a `shard` right after it reads
    /// only its own elements and saves the global position: elastic sharding).
    pub(crate) fn is_global_shuffle(&self) -> bool {
        matches!(&*self.node, Node::GlobalShuffle { .. })
    }

    /// [`Dataset::build_in`] for the combinator stages.
    pub(crate) fn build_combinator(&self, ctx: &Ctx, state: Option<&Value>) -> Result<It> {
        Ok(match &*self.node {
            Node::GlobalShuffle { .. } => Box::new(GlobalShuffleIter::build(self, 0, 1, state)?),
            Node::Zip { inputs } => {
                let states = zip::input_states(state, inputs.len())?;
                Box::new(Zip::new(
                    inputs
                        .iter()
                        .zip(states)
                        .map(|(d, s)| d.build_in(ctx, s))
                        .collect::<Result<Vec<_>>>()?,
                ))
            }
            Node::Concatenate { first, second } => {
                Box::new(Concat::build(first, second, ctx, state)?)
            }
            Node::Filter { input, pred } => {
                Box::new(Filter::new(input.build_in(ctx, state)?, pred.clone()))
            }
            Node::Enumerate { input, start } => {
                Box::new(Enumerate::build(input, ctx, *start, state)?)
            }
            Node::Unbatch { input } => Box::new(Unbatch::build(input, ctx, state)?),
            Node::AssertCardinality { input, n } => Box::new(
                super::assert_card::AssertCardinality::build(input, ctx, *n, state)?,
            ),
            Node::PaddedBatch {
                input,
                size,
                drop_remainder,
                shapes,
                values,
            } => Box::new(PaddedBatch::new(
                input.build_in(&ctx.keeping(false), state)?,
                *size,
                *drop_remainder,
                shapes.clone(),
                values.clone(),
            )),
            Node::Sample {
                inputs,
                weights,
                seed,
                stop_on_empty,
            } => Box::new(Interleave::build(
                inputs,
                ctx,
                Picker::Weights(weights.clone(), SplitMix64::new(*seed)),
                None,
                *stop_on_empty,
                state,
            )?),
            Node::Choose {
                inputs,
                choice,
                stop_on_empty,
            } => {
                let picker = match state {
                    None => Picker::Choice(choice.build_in(ctx, None)?),
                    // Restored from the state by `Interleave::build`.
                    Some(_) => Picker::Choice(Box::new(Empty)),
                };
                Box::new(Interleave::build(
                    inputs,
                    ctx,
                    picker,
                    Some(choice),
                    *stop_on_empty,
                    state,
                )?)
            }
            _ => return Err(not_mine()),
        })
    }

    /// [`Dataset::materialize`] for the combinator stages.
    pub(crate) fn materialize_combinator(&self, prov: &Prov) -> Result<Item> {
        match &*self.node {
            Node::GlobalShuffle { input, .. } => input.get_item(prov.index()?),
            Node::Zip { inputs } => zip::materialize(inputs, prov),
            Node::Concatenate { first, second } => concat::materialize(first, second, prov),
            Node::Filter { input, .. } | Node::AssertCardinality { input, .. } => {
                input.materialize(prov)
            }
            Node::Enumerate { input, .. } => enumerate::materialize(input, prov),
            Node::Unbatch { input } => unbatch::materialize_row(input, prov),
            Node::PaddedBatch {
                input,
                shapes,
                values,
                ..
            } => padded_batch::materialize_batch(input, shapes, values, prov),
            Node::Sample { inputs, .. } | Node::Choose { inputs, .. } => {
                sample::materialize_tagged(inputs, prov)
            }
            _ => Err(not_mine()),
        }
    }

    /// [`Dataset::inputs`] for the combinator stages.
    pub(crate) fn combinator_inputs(&self) -> Vec<&Dataset> {
        match &*self.node {
            Node::GlobalShuffle { input, .. }
            | Node::Filter { input, .. }
            | Node::Enumerate { input, .. }
            | Node::Unbatch { input }
            | Node::PaddedBatch { input, .. }
            | Node::AssertCardinality { input, .. } => vec![input],
            Node::Zip { inputs } | Node::Sample { inputs, .. } => inputs.iter().collect(),
            Node::Concatenate { first, second } => vec![first, second],
            Node::Choose { inputs, choice, .. } => {
                let mut v: Vec<&Dataset> = inputs.iter().collect();
                v.push(choice);
                v
            }
            _ => Vec::new(),
        }
    }

    /// [`Dataset::describe`] for the combinator stages.
    pub(crate) fn describe_combinator(&self) -> String {
        match &*self.node {
            Node::GlobalShuffle {
                seed,
                seeded,
                reshuffle,
                ..
            } => format!(
                "global_shuffle(seed={}, reshuffle_each_iteration={reshuffle})",
                if *seeded {
                    seed.load(Ordering::Relaxed).to_string()
                } else {
                    "None".into()
                }
            ),
            Node::Zip { inputs } => format!("zip({} datasets)", inputs.len()),
            Node::Concatenate { .. } => "concatenate".into(),
            Node::Filter { .. } => "filter(fn)".into(),
            Node::Enumerate { start, .. } => format!("enumerate(start={start})"),
            Node::Unbatch { .. } => "unbatch".into(),
            Node::AssertCardinality { n, .. } => format!("assert_cardinality({n})"),
            Node::PaddedBatch {
                size,
                drop_remainder,
                shapes,
                values,
                ..
            } => format!(
                "padded_batch({size}, padded_shapes={shapes:?}, padding_values={}, drop_remainder={drop_remainder})",
                match values {
                    None => "None".to_string(),
                    Some(v) => format!(
                        "{:?}",
                        v.iter()
                            .map(|t| t.as_ref().map(|t| format!("{} {:?}", t.dtype(), t.as_bytes())))
                            .collect::<Vec<_>>()
                    ),
                }
            ),
            Node::Sample {
                inputs,
                weights,
                seed,
                stop_on_empty,
            } => format!(
                "sample_from_datasets({} datasets, weights={weights:?}, seed={seed}, stop_on_empty_dataset={stop_on_empty})",
                inputs.len()
            ),
            Node::Choose {
                inputs,
                stop_on_empty,
                ..
            } => format!(
                "choose_from_datasets({} datasets, stop_on_empty_dataset={stop_on_empty})",
                inputs.len()
            ),
            _ => String::new(),
        }
    }
}

/// A stage with no elements (a placeholder replaced on restore).
struct Empty;

impl super::state::Stage for Empty {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        None
    }

    fn state(&self) -> Result<Value> {
        Ok(Value::Null)
    }
}
