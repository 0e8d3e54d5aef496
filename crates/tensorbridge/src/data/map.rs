//! `map`: built-in ops (planned per element, executed later in one fused pass) and
//! arbitrary functions on worker threads, results in input order.
//!
//! Worker rule (`map_workers`): `None` or `-1` (`AUTOTUNE`) means one worker per
//! core; `1` runs the function on the consuming thread; other values below 1 are
//! refused like `tf.data` does; values above [`max_workers`] are clamped to it
//! (more threads than that only cost start-up time and memory: at most
//! `2 × workers` elements are in flight).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::comp::{materialize, Comp, Item};
use super::ops::MapOps;
use super::state::{provs_json, It, Prov, Stage};
use super::threads::{panic_error, spawn};
use super::{Dataset, MapFn};
use crate::error::{Error, Result};

/// Workers a parallel map never exceeds, whatever it is asked for: 64, or the
/// number of cores when that is larger.
pub fn max_workers() -> usize {
    default_parallelism().max(64)
}

/// One worker per core (`AUTOTUNE`).
pub(crate) fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The number of workers of `map(f, num_parallel_calls)`: see the module docs.
pub(crate) fn map_workers(num_parallel_calls: Option<i64>) -> Result<usize> {
    match num_parallel_calls {
        None | Some(-1) => Ok(default_parallelism()),
        Some(n) if n < 1 => Err(Error::InvalidArgument(format!(
            "num_parallel_calls must be positive or AUTOTUNE (-1), not {n}"
        ))),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(max_workers())),
    }
}

/// Apply built-in map ops to every component (planning only; data moves later).
pub(crate) fn map_ops(item: Item, ops: &[MapOps]) -> Result<Item> {
    let n = item.len();
    item.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            for o in ops {
                c = c.then(o.for_component(i, n)?)?;
            }
            Ok(c)
        })
        .collect()
}

/// Apply a map function to one element (a panic becomes an error; the function's
/// own error, e.g. [`Error::External`], passes through unchanged).
pub(crate) fn apply_fn(f: &MapFn, item: Item) -> Result<Item> {
    let tensors = materialize(item)?;
    match catch_unwind(AssertUnwindSafe(|| f(tensors))) {
        Ok(r) => Ok(r?.into_iter().map(Comp::Ready).collect()),
        Err(_) => Err(panic_error("a map function")),
    }
}

type Job = (Item, SyncSender<Result<Item>>);

/// Applies a map function on `n` worker threads, yielding results in input order.
///
/// State: `{"input": ..., "pending": "[p, ...]"}` — the upstream's state and the
/// elements taken from it whose results have not been delivered yet. A restored
/// map makes those elements again (from the input dataset) and applies the
/// function to them first.
pub(crate) struct ParallelMap {
    upstream: It,
    input: Dataset,
    /// From a restored state: input elements to make again and send first.
    redo: VecDeque<Prov>,
    jobs: Option<Sender<Job>>,
    inflight: VecDeque<(Receiver<Result<Item>>, Option<Prov>)>,
    workers: Vec<JoinHandle<()>>,
    max_inflight: usize,
    exhausted: bool,
}

impl ParallelMap {
    /// `n` workers (clamped to `1..=max_workers()`) over `upstream`, which runs
    /// `input`; `pending` (from a saved state) go first.
    pub(crate) fn new(
        upstream: It,
        input: Dataset,
        f: MapFn,
        n: usize,
        pending: Vec<Prov>,
    ) -> Result<ParallelMap> {
        let n = n.clamp(1, max_workers());
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut me = ParallelMap {
            upstream,
            input,
            redo: pending.into(),
            jobs: Some(tx),
            inflight: VecDeque::new(),
            workers: Vec::with_capacity(n),
            max_inflight: 2 * n,
            exhausted: false,
        };
        for _ in 0..n {
            let rx = rx.clone();
            let f = f.clone();
            // On error `me` is dropped, which stops and joins the workers so far.
            me.workers.push(spawn("tb-map", move || loop {
                let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((item, out)) = job else { break };
                let _ = out.send(apply_fn(&f, item));
            })?);
        }
        Ok(me)
    }
}

impl Stage for ParallelMap {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        while self.inflight.len() < self.max_inflight {
            let next = match self.redo.pop_front() {
                Some(p) => Some(self.input.materialize(&p).map(|item| (item, p))),
                None if self.exhausted => break,
                None => self.upstream.next(),
            };
            let (tx, rx) = mpsc::sync_channel(1);
            let prov = match next {
                None => {
                    self.exhausted = true;
                    break;
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    None
                }
                Some(Ok((item, p))) => {
                    let sent = self.jobs.as_ref().map(|j| j.send((item, tx)));
                    if !matches!(sent, Some(Ok(()))) {
                        return Some(Err(panic_error("a map worker")));
                    }
                    Some(p)
                }
            };
            self.inflight.push_back((rx, prov));
        }
        let (rx, prov) = self.inflight.pop_front()?;
        let r = rx
            .recv()
            .unwrap_or_else(|_| Err(panic_error("a map worker")));
        Some(r.and_then(|item| {
            let p = prov.ok_or_else(|| panic_error("a map worker"))?;
            Ok((item, p))
        }))
    }

    fn state(&self) -> Result<Value> {
        let provs = self
            .inflight
            .iter()
            .filter_map(|(_, p)| p.as_ref())
            .chain(self.redo.iter());
        Ok(json!({
            "input": self.upstream.state()?,
            "pending": provs_json(provs),
        }))
    }
}

impl Drop for ParallelMap {
    fn drop(&mut self) {
        drop(self.jobs.take()); // workers finish their current job and exit
        self.inflight.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}
