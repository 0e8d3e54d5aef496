//! Running a pipeline: one epoch's iterator per stage, built from the description.

use std::sync::atomic::Ordering;

use super::batch::Batch;
use super::comp::{materialize, Comp, It, Item};
use super::concat::Concat;
use super::enumerate::Enumerate;
use super::files::FileRows;
use super::filter::Filter;
use super::global::GlobalShuffleIter;
use super::map::{apply_fn, map_ops, ParallelMap};
use super::padded_batch::PaddedBatch;
use super::prefetch::{self, Prefetch};
use super::rng::{mix, SplitMix64};
use super::sample::{Interleave, Picker};
use super::shuffle::Shuffle;
use super::unbatch::Unbatch;
use super::warn::Warnings;
use super::zip::Zip;
use super::{Dataset, FileEntry, Node};
use crate::error::Result;
use crate::tensor::{Index, Tensor};

/// What the stages built for one epoch share.
#[derive(Clone)]
pub(crate) struct Ctx {
    /// A downstream stage holds elements for long (a shuffle buffer), so a file
    /// source copies its rows rather than keeping whole files mapped.
    keep: bool,
    /// Where this epoch's stages record warnings.
    warnings: Warnings,
}

impl Ctx {
    fn keeping(&self, keep: bool) -> Ctx {
        Ctx {
            keep,
            warnings: self.warnings.clone(),
        }
    }
}

impl Dataset {
    /// Start one epoch.
    pub fn iter(&self) -> Result<DatasetIter> {
        let warnings = Warnings::default();
        let ctx = Ctx {
            keep: false,
            warnings: warnings.clone(),
        };
        Ok(DatasetIter {
            inner: self.build_in(&ctx)?,
            warnings,
            failed: false,
        })
    }

    pub(super) fn build_in(&self, ctx: &Ctx) -> Result<It> {
        let keep = ctx.keep;
        Ok(match &*self.node {
            Node::Files {
                files,
                plan,
                shuffle_seed,
                epoch,
                ..
            } => {
                let mut order: Vec<FileEntry> = files.as_ref().clone();
                if let Some(seed) = shuffle_seed {
                    let e = epoch.fetch_add(1, Ordering::Relaxed);
                    SplitMix64::new(mix(*seed ^ 0x5EED_F11E_5EED_F11E, e)).shuffle(&mut order);
                }
                let rows = FileRows::new(order, plan.clone(), keep, ctx.warnings.clone());
                if keep {
                    // Rows are copied out: do that (and the page faults of reading
                    // the mapping) on a reader thread, ahead of the consumer.
                    Box::new(Prefetch::new(Box::new(rows), 256)?)
                } else {
                    Box::new(rows)
                }
            }
            Node::Slices { comps, len } => {
                let comps = comps.clone();
                Box::new((0..*len).map(move |i| {
                    comps
                        .iter()
                        .map(|t| t.index(&[Index::At(i as isize)]).map(Comp::Ready))
                        .collect::<Result<Item>>()
                }))
            }
            Node::Range { n } => Box::new(
                (0..*n).map(|i| Tensor::from_slice(&[i as i64], &[]).map(|t| vec![Comp::Ready(t)])),
            ),
            Node::MapOps { input, ops } => {
                let ops = ops.clone();
                Box::new(
                    input
                        .build_in(ctx)?
                        .map(move |r| r.and_then(|item| map_ops(item, &ops))),
                )
            }
            Node::MapFn { input, f, parallel } => {
                let up = input.build_in(ctx)?;
                if *parallel <= 1 {
                    let f = f.clone();
                    Box::new(up.map(move |r| r.and_then(|item| apply_fn(&f, item))))
                } else {
                    Box::new(ParallelMap::new(up, f.clone(), *parallel)?)
                }
            }
            Node::Shuffle {
                input,
                buffer,
                seed,
                reshuffle,
                epoch,
            } => {
                let e = if *reshuffle {
                    epoch.fetch_add(1, Ordering::Relaxed)
                } else {
                    0
                };
                Box::new(Shuffle::new(
                    input.build_in(&ctx.keeping(true))?,
                    *buffer,
                    mix(*seed, e),
                ))
            }
            Node::Batch {
                input,
                size,
                drop_remainder,
            } => Box::new(Batch::new(
                input.build_in(&ctx.keeping(false))?,
                *size,
                *drop_remainder,
            )),
            Node::Prefetch { input, n } => {
                let deep = ctx.keeping(keep || *n > prefetch::DEEP);
                Box::new(Prefetch::new(input.build_in(&deep)?, *n)?)
            }
            Node::Repeat { input, count } => Box::new(Repeat {
                input: input.clone(),
                ctx: ctx.clone(),
                current: None,
                left: *count,
                yielded: false,
            }),
            Node::Take { input, n } => match n {
                None => input.build_in(ctx)?,
                Some(n) => Box::new(input.build_in(ctx)?.take(*n as usize)),
            },
            Node::Skip { input, n } => match n {
                None => {
                    let mut up = input.build_in(ctx)?;
                    // Skip all: drain (errors still surface), yield nothing more.
                    Box::new(std::iter::from_fn(move || loop {
                        match up.next()? {
                            Err(e) => return Some(Err(e)),
                            Ok(_) => continue,
                        }
                    }))
                }
                Some(n) => Box::new(input.build_in(ctx)?.skip(*n as usize)),
            },
            Node::Shard { input, num, index } => {
                let (num, index) = (*num, *index);
                Box::new(
                    input
                        .build_in(ctx)?
                        .enumerate()
                        .filter(move |(i, _)| *i as u64 % num == index)
                        .map(|(_, r)| r),
                )
            }
            Node::GlobalShuffle { input, .. } => {
                let (_, perm) = self.global_shuffle_epoch().ok_or_else(|| {
                    crate::Error::InvalidArgument("global_shuffle: not a global shuffle".into())
                })?;
                Box::new(GlobalShuffleIter::new(input.clone(), perm, 0, 1))
            }
            Node::Zip { inputs } => Box::new(Zip::new(
                inputs
                    .iter()
                    .map(|d| d.build_in(ctx))
                    .collect::<Result<Vec<_>>>()?,
            )),
            Node::Concatenate { first, second } => Box::new(Concat::new(
                first.build_in(ctx)?,
                second.clone(),
                ctx.clone(),
            )),
            Node::Filter { input, pred } => {
                Box::new(Filter::new(input.build_in(ctx)?, pred.clone()))
            }
            Node::Enumerate { input, start } => {
                Box::new(Enumerate::new(input.build_in(ctx)?, *start))
            }
            Node::Unbatch { input } => Box::new(Unbatch::new(input.build_in(ctx)?)),
            Node::PaddedBatch {
                input,
                size,
                drop_remainder,
                shapes,
                values,
            } => Box::new(PaddedBatch::new(
                input.build_in(&ctx.keeping(false))?,
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
            } => Box::new(Interleave::new(
                inputs
                    .iter()
                    .map(|d| d.build_in(ctx))
                    .collect::<Result<Vec<_>>>()?,
                Picker::Weights(weights.clone(), SplitMix64::new(*seed)),
                *stop_on_empty,
            )),
            Node::Choose {
                inputs,
                choice,
                stop_on_empty,
            } => Box::new(Interleave::new(
                inputs
                    .iter()
                    .map(|d| d.build_in(ctx))
                    .collect::<Result<Vec<_>>>()?,
                Picker::Choice(choice.build_in(ctx)?),
                *stop_on_empty,
            )),
        })
    }
}

/// Re-runs its input `left` more times (forever for `None`).
struct Repeat {
    input: Dataset,
    ctx: Ctx,
    current: Option<It>,
    left: Option<u64>,
    yielded: bool,
}

impl Iterator for Repeat {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        loop {
            if let Some(it) = &mut self.current {
                match it.next() {
                    Some(r) => {
                        self.yielded = true;
                        return Some(r);
                    }
                    None => {
                        self.current = None;
                        if !self.yielded {
                            return None; // an empty epoch: repeating would spin forever
                        }
                    }
                }
            }
            match &mut self.left {
                Some(0) => return None,
                Some(k) => *k -= 1,
                None => {}
            }
            self.yielded = false;
            match self.input.build_in(&self.ctx) {
                Ok(it) => self.current = Some(it),
                Err(e) => {
                    self.left = Some(0);
                    return Some(Err(e));
                }
            }
        }
    }
}

/// One epoch of a [`Dataset`]: yields each element's components, or the first
/// error (after which it ends). Dropping it stops and joins its threads.
pub struct DatasetIter {
    inner: It,
    warnings: Warnings,
    failed: bool,
}

impl DatasetIter {
    /// The warnings this iterator's stages recorded since the last call (files
    /// skipped under [`super::OnError::Skip`]), oldest first. Only this iterator's:
    /// pipelines running at the same time never see each other's.
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings.take()
    }
}

impl Iterator for DatasetIter {
    type Item = Result<Vec<Tensor>>;
    fn next(&mut self) -> Option<Result<Vec<Tensor>>> {
        if self.failed {
            return None;
        }
        let r = self.inner.next()?.and_then(materialize);
        self.failed = r.is_err();
        Some(r)
    }
}
