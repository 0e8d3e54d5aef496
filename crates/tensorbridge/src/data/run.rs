//! Running a pipeline: one epoch's stages, built from the description — fresh, or
//! restored from a saved state (see [`super::state`]).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::batch::Batch;
use super::comp::{materialize, Item};
use super::files::FileRows;
use super::global::GlobalShuffleIter;
use super::map::{apply_fn, map_ops, ParallelMap};
use super::ops::MapOps;
use super::prefetch::{self, Prefetch};
use super::shuffle::Shuffle;
use super::state::{
    bad, check_top, field, field_bool, field_opt_u64, field_provs, field_u64, object, provs_json,
    top, It, Prov, Stage,
};
use super::warn::Warnings;
use super::{Dataset, MapFn, Node};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// What the stages built for one epoch share.
#[derive(Clone)]
pub(crate) struct Ctx {
    /// A downstream stage holds elements for long (a shuffle buffer), so a file
    /// source copies its rows rather than keeping whole files mapped.
    pub(crate) keep: bool,
    /// Where this epoch's stages record warnings.
    pub(crate) warnings: Warnings,
}

impl Ctx {
    pub(crate) fn keeping(&self, keep: bool) -> Ctx {
        Ctx {
            keep,
            warnings: self.warnings.clone(),
        }
    }
}

impl Dataset {
    /// Start one epoch.
    pub fn iter(&self) -> Result<DatasetIter> {
        self.start(None)
    }

    /// Resume an epoch where an iterator's [`DatasetIter::state`] left it: the
    /// iterator yields exactly the elements the saved one would have yielded next
    /// (bit-identical, same batch boundaries), in this process or another. A state
    /// saved from a different pipeline definition is refused with
    /// [`Error::InvalidArgument`] naming the first stage that differs.
    pub fn iter_from_state(&self, state: &Value) -> Result<DatasetIter> {
        self.start(Some(state))
    }

    /// [`Dataset::iter_from_state`] from the state's JSON text.
    pub fn iter_from_json(&self, state: &str) -> Result<DatasetIter> {
        let v: Value = serde_json::from_str(state)
            .map_err(|e| bad(format!("the state is not valid JSON: {e}")))?;
        self.iter_from_state(&v)
    }

    fn start(&self, state: Option<&Value>) -> Result<DatasetIter> {
        let warnings = Warnings::default();
        let ctx = Ctx {
            keep: false,
            warnings: warnings.clone(),
        };
        let (position, tree) = match state {
            None => (0, None),
            Some(s) => {
                let (p, t) = check_top(self, s)?;
                (p, Some(t))
            }
        };
        Ok(DatasetIter {
            inner: self.build_in(&ctx, tree)?,
            ds: self.clone(),
            position,
            warnings,
            failed: false,
        })
    }

    /// Build one epoch's stages: fresh (`state` `None`) or restored.
    pub(crate) fn build_in(&self, ctx: &Ctx, state: Option<&Value>) -> Result<It> {
        let keep = ctx.keep;
        Ok(match &*self.node {
            Node::Files {
                files,
                plan,
                shuffle,
                seed,
                epoch,
                ..
            } => {
                // Under a shuffle or a deep prefetch the rows are read ahead on a
                // thread (a prefetch stage, whose state holds the rows in flight).
                let ahead = state
                    .and_then(Value::as_object)
                    .filter(|o| o.contains_key("pending"));
                let wrap = keep || ahead.is_some();
                let (rows_state, pending) = match ahead {
                    Some(o) => (Some(field(o, "input")?), field_provs(o, "pending")?),
                    None => (state, Vec::new()),
                };
                let rows = match rows_state {
                    None => {
                        let e = if *shuffle {
                            epoch.fetch_add(1, Ordering::Relaxed)
                        } else {
                            0
                        };
                        let s = shuffle.then(|| seed.load(Ordering::Relaxed));
                        FileRows::new(
                            files.clone(),
                            plan.clone(),
                            s,
                            e,
                            keep,
                            ctx.warnings.clone(),
                        )
                    }
                    Some(st) => {
                        let rows = FileRows::restore(
                            files.clone(),
                            plan.clone(),
                            *shuffle,
                            keep,
                            ctx.warnings.clone(),
                            st,
                        )?;
                        if let Some(s) = rows.seed() {
                            seed.store(s, Ordering::Relaxed);
                            epoch.store(rows.epoch() + 1, Ordering::Relaxed);
                        }
                        rows
                    }
                };
                if wrap {
                    // Rows are copied out: do that (and the page faults of reading
                    // the mapping) on a reader thread, ahead of the consumer.
                    Box::new(Prefetch::new(Box::new(rows), self.clone(), 256, pending)?)
                } else {
                    Box::new(rows)
                }
            }
            Node::Slices { len, .. } => Box::new(Counter::new(self, *len as u64, state)?),
            Node::Range { n } => Box::new(Counter::new(self, *n, state)?),
            Node::MapOps { input, ops } => Box::new(OpsStage {
                input: input.build_in(ctx, state)?,
                ops: ops.clone(),
            }),
            Node::MapFn {
                input, f, parallel, ..
            } => {
                let (inner, pending) = match state {
                    None => (None, Vec::new()),
                    Some(s) => {
                        let o = object(s, "map")?;
                        (Some(field(o, "input")?), field_provs(o, "pending")?)
                    }
                };
                let up = input.build_in(ctx, inner)?;
                if *parallel <= 1 {
                    Box::new(SeqMap {
                        input: up,
                        input_ds: input.clone(),
                        f: f.clone(),
                        pending: pending.into(),
                    })
                } else {
                    Box::new(ParallelMap::new(
                        up,
                        input.clone(),
                        f.clone(),
                        *parallel,
                        pending,
                    )?)
                }
            }
            Node::Shuffle {
                input,
                buffer,
                seed,
                reshuffle,
                epoch,
                ..
            } => {
                let deep = ctx.keeping(true);
                match state {
                    None => {
                        let e = if *reshuffle {
                            epoch.fetch_add(1, Ordering::Relaxed)
                        } else {
                            0
                        };
                        let s = seed.load(Ordering::Relaxed);
                        Box::new(Shuffle::new(input.build_in(&deep, None)?, *buffer, s, e))
                    }
                    Some(st) => {
                        let o = object(st, "shuffle")?;
                        let up = input.build_in(&deep, Some(field(o, "input")?))?;
                        let sh = Shuffle::restore(up, input, *buffer, o)?;
                        seed.store(sh.seed(), Ordering::Relaxed);
                        if *reshuffle {
                            epoch.store(sh.epoch() + 1, Ordering::Relaxed);
                        }
                        Box::new(sh)
                    }
                }
            }
            Node::Batch {
                input,
                size,
                drop_remainder,
            } => Box::new(Batch::new(
                input.build_in(&ctx.keeping(false), state)?,
                *size,
                *drop_remainder,
            )),
            Node::Prefetch { input, n } => {
                let deep = ctx.keeping(keep || *n > prefetch::DEEP);
                let (inner, pending) = match state {
                    None => (None, Vec::new()),
                    Some(s) => {
                        let o = object(s, "prefetch")?;
                        (Some(field(o, "input")?), field_provs(o, "pending")?)
                    }
                };
                Box::new(Prefetch::new(
                    input.build_in(&deep, inner)?,
                    input.clone(),
                    *n,
                    pending,
                )?)
            }
            Node::Repeat { input, count } => Box::new(Repeat::new(input, ctx, *count, state)?),
            Node::Take { input, n } => match n {
                None => input.build_in(ctx, state)?,
                Some(n) => {
                    let (left, inner) = counted(state, "take", "left", *n)?;
                    Box::new(Take {
                        input: input.build_in(ctx, inner)?,
                        left,
                    })
                }
            },
            Node::Skip { input, n } => {
                let (left, inner) = counted(state, "skip", "left", n.unwrap_or(0))?;
                Box::new(Skip {
                    input: input.build_in(ctx, inner)?,
                    all: n.is_none(),
                    left,
                })
            }
            // Elastic sharding: each shard reads only its own elements of the
            // permutation and saves the global position (see `global.rs`).
            Node::Shard { input, num, index } if input.is_global_shuffle() => {
                Box::new(GlobalShuffleIter::build(input, *index, *num, state)?)
            }
            Node::Shard { input, num, index } => {
                let (seen, inner) = counted(state, "shard", "seen", 0)?;
                Box::new(Shard {
                    input: input.build_in(ctx, inner)?,
                    num: *num,
                    index: *index,
                    seen,
                })
            }
            Node::ShardRows { .. } => self.build_shard_rows(state)?,
            Node::GlobalShuffle { .. }
            | Node::Zip { .. }
            | Node::Concatenate { .. }
            | Node::Filter { .. }
            | Node::Enumerate { .. }
            | Node::Unbatch { .. }
            | Node::PaddedBatch { .. }
            | Node::Sample { .. }
            | Node::Choose { .. }
            | Node::AssertCardinality { .. } => self.build_combinator(ctx, state)?,
        })
    }

    /// Make the element with provenance `prov` again (as this dataset's stages
    /// would hand it on), walking the description down to the source.
    pub(crate) fn materialize(&self, prov: &Prov) -> Result<Item> {
        match &*self.node {
            Node::Files {
                files, plan, cache, ..
            } => super::files::read_row(files, plan, cache, prov.index()?),
            Node::Slices { comps, len } => {
                let i = prov.index()?;
                if i >= *len as u64 {
                    return Err(bad(format!("row {i} is out of range for {len} rows")));
                }
                comps
                    .iter()
                    .map(|t| {
                        t.index(&[crate::tensor::Index::At(i as isize)])
                            .map(super::comp::Comp::Ready)
                    })
                    .collect()
            }
            Node::Range { n } => {
                let i = prov.index()?;
                if i >= *n {
                    return Err(bad(format!("row {i} is out of range for range({n})")));
                }
                Ok(vec![super::comp::Comp::Ready(Tensor::from_slice(
                    &[i as i64],
                    &[],
                )?)])
            }
            Node::MapOps { input, ops } => map_ops(input.materialize(prov)?, ops),
            Node::MapFn { input, f, .. } => apply_fn(f, input.materialize(prov)?),
            Node::Batch { input, .. } => match prov {
                Prov::List(ps) if !ps.is_empty() => {
                    let items = ps
                        .iter()
                        .map(|p| input.materialize(p))
                        .collect::<Result<Vec<_>>>()?;
                    let mut recycler = super::batch::Recycler::new(0);
                    Ok(super::batch::assemble(&items, &mut recycler)?
                        .into_iter()
                        .map(super::comp::Comp::Ready)
                        .collect())
                }
                other => Err(bad(format!("a batch's position is malformed: {other:?}"))),
            },
            Node::Shuffle { input, .. }
            | Node::Prefetch { input, .. }
            | Node::Repeat { input, .. }
            | Node::Take { input, .. }
            | Node::Skip { input, .. }
            | Node::Shard { input, .. } => input.materialize(prov),
            // Its provenance is its own position, read by random access.
            Node::ShardRows { .. } => self.get_item(prov.index()?),
            Node::GlobalShuffle { .. }
            | Node::Zip { .. }
            | Node::Concatenate { .. }
            | Node::Filter { .. }
            | Node::Enumerate { .. }
            | Node::Unbatch { .. }
            | Node::PaddedBatch { .. }
            | Node::Sample { .. }
            | Node::Choose { .. }
            | Node::AssertCardinality { .. } => self.materialize_combinator(prov),
        }
    }
}

/// `(counter, input state)` of a stage with one counter: from its state, or
/// `fresh` and `None`.
fn counted<'a>(
    state: Option<&'a Value>,
    what: &str,
    key: &str,
    fresh: u64,
) -> Result<(u64, Option<&'a Value>)> {
    match state {
        None => Ok((fresh, None)),
        Some(s) => {
            let o = object(s, what)?;
            Ok((field_u64(o, key)?, Some(field(o, "input")?)))
        }
    }
}

/// A source of rows `0..end` (`from_tensor_slices`, `range`), made on demand.
struct Counter {
    ds: Dataset,
    next: u64,
    end: u64,
}

impl Counter {
    fn new(ds: &Dataset, end: u64, state: Option<&Value>) -> Result<Counter> {
        let next = match state {
            None => 0,
            Some(s) => field_u64(object(s, "a source")?, "next")?,
        };
        Ok(Counter {
            ds: ds.clone(),
            next,
            end,
        })
    }
}

impl Stage for Counter {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        if self.next >= self.end {
            return None;
        }
        let p = Prov::Index(self.next);
        self.next += 1;
        Some(self.ds.materialize(&p).map(|item| (item, p)))
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({ "next": self.next }))
    }
}

/// Built-in ops (planned per element; the state is the input's).
struct OpsStage {
    input: It,
    ops: Vec<MapOps>,
}

impl Stage for OpsStage {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        Some(
            self.input
                .next()?
                .and_then(|(item, p)| Ok((map_ops(item, &self.ops)?, p))),
        )
    }

    fn state(&self) -> Result<Value> {
        self.input.state()
    }
}

/// A map function on the consuming thread. Its state has the layout of a
/// parallel map's (so the number of workers may change between save and
/// restore): elements a parallel map had in flight come out first.
struct SeqMap {
    input: It,
    input_ds: Dataset,
    f: MapFn,
    pending: VecDeque<Prov>,
}

impl Stage for SeqMap {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        if let Some(p) = self.pending.pop_front() {
            let r = self
                .input_ds
                .materialize(&p)
                .and_then(|item| apply_fn(&self.f, item));
            return Some(r.map(|item| (item, p)));
        }
        Some(
            self.input
                .next()?
                .and_then(|(item, p)| Ok((apply_fn(&self.f, item)?, p))),
        )
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({
            "input": self.input.state()?,
            "pending": provs_json(self.pending.iter()),
        }))
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

impl Repeat {
    /// The first pass is built now, so its state (epoch counters included) is
    /// there before the first element.
    fn new(input: &Dataset, ctx: &Ctx, count: Option<u64>, state: Option<&Value>) -> Result<Self> {
        let mut me = Repeat {
            input: input.clone(),
            ctx: ctx.clone(),
            current: None,
            left: count,
            yielded: false,
        };
        match state {
            None => {
                if me.left != Some(0) {
                    me.left = me.left.map(|k| k - 1);
                    me.current = Some(input.build_in(ctx, None)?);
                }
            }
            Some(s) => {
                let o = object(s, "repeat")?;
                me.left = field_opt_u64(o, "left")?;
                me.yielded = field_bool(o, "yielded")?;
                me.current = match field(o, "inner")? {
                    Value::Null => None,
                    inner => Some(input.build_in(ctx, Some(inner))?),
                };
            }
        }
        Ok(me)
    }
}

impl Stage for Repeat {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        loop {
            if let Some(it) = &mut self.current {
                match it.next() {
                    Some(r) => {
                        self.yielded = true;
                        return Some(r);
                    }
                    None => {
                        if !self.yielded {
                            return None; // an empty epoch: repeating would spin forever
                        }
                        if self.left == Some(0) {
                            return None; // keep the last pass: its state says "done"
                        }
                        self.current = None;
                    }
                }
            }
            match &mut self.left {
                Some(0) => return None,
                Some(k) => *k -= 1,
                None => {}
            }
            self.yielded = false;
            match self.input.build_in(&self.ctx, None) {
                Ok(it) => self.current = Some(it),
                Err(e) => {
                    self.left = Some(0);
                    return Some(Err(e));
                }
            }
        }
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({
            "left": self.left,
            "yielded": self.yielded,
            "inner": match &self.current {
                Some(it) => it.state()?,
                None => Value::Null,
            },
        }))
    }
}

/// The first `left` elements.
struct Take {
    input: It,
    left: u64,
}

impl Stage for Take {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        if self.left == 0 {
            return None;
        }
        let r = self.input.next()?;
        self.left -= 1;
        Some(r)
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({ "left": self.left, "input": self.input.state()? }))
    }
}

/// All but the first `left` elements (`all`: none; errors still surface).
struct Skip {
    input: It,
    all: bool,
    left: u64,
}

impl Stage for Skip {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        loop {
            if !self.all && self.left == 0 {
                return self.input.next();
            }
            match self.input.next()? {
                Err(e) => return Some(Err(e)),
                Ok(_) => self.left = self.left.saturating_sub(1),
            }
        }
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({ "left": self.left, "input": self.input.state()? }))
    }
}

/// Elements `i` with `i % num == index`; `seen` counts the input's elements.
struct Shard {
    input: It,
    num: u64,
    index: u64,
    seen: u64,
}

impl Stage for Shard {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        loop {
            let r = self.input.next()?;
            let i = self.seen;
            self.seen += 1;
            if i % self.num == self.index {
                return Some(r);
            }
        }
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({ "seen": self.seen, "input": self.input.state()? }))
    }
}

/// One epoch of a [`Dataset`]: yields each element's components, or the first
/// error (after which it ends). Dropping it stops and joins its threads.
/// [`DatasetIter::state`] saves its place; [`Dataset::iter_from_state`] resumes.
pub struct DatasetIter {
    inner: It,
    ds: Dataset,
    position: u64,
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

    /// Elements yielded so far (counted on from the restored position).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// This iterator's place: `{"version": 1, "pipeline": [...], "position": n,
    /// "state": {...}}` — counters, PRNG states and the source positions of the
    /// elements in flight (never element data). Cheap: a walk over the stages.
    /// A pipeline that cannot resume (see [`Dataset::map_without_state`]) gives
    /// [`Error::InvalidArgument`] saying why.
    pub fn state(&self) -> Result<Value> {
        if let Some(why) = self.ds.no_state_reason() {
            return Err(Error::InvalidArgument(format!(
                "this iterator cannot save its state: {why}"
            )));
        }
        Ok(top(&self.ds, self.position, self.inner.state()?))
    }

    /// [`DatasetIter::state`] as JSON text.
    pub fn state_json(&self) -> Result<String> {
        Ok(self.state()?.to_string())
    }
}

impl Iterator for DatasetIter {
    type Item = Result<Vec<Tensor>>;
    fn next(&mut self) -> Option<Result<Vec<Tensor>>> {
        if self.failed {
            return None;
        }
        let r = self.inner.next()?.and_then(|(item, _)| materialize(item));
        self.failed = r.is_err();
        if !self.failed {
            self.position += 1;
        }
        Some(r)
    }
}
