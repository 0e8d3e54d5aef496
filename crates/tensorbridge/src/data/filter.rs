//! `filter`: the elements a predicate keeps, in order. The predicate sees the
//! materialized element; its error (e.g. a Python exception, or a result that is
//! not a boolean) ends the epoch and reaches the consumer unchanged.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use super::comp::{materialize, Comp, Item};
use super::state::{It, Prov, Stage};
use super::threads::panic_error;
use super::{Dataset, Node, PredFn};

use crate::error::Result;

impl Dataset {
    /// The elements for which `predicate` returns true (cardinality unknown, as
    /// `tf.data` reports it).
    pub fn filter(&self, predicate: PredFn) -> Dataset {
        Self::wrap(Node::Filter {
            input: self.clone(),
            pred: predicate,
        })
    }
}

/// One epoch of a filter.
pub(crate) struct Filter {
    input: It,
    pred: PredFn,
}

impl Filter {
    pub(crate) fn new(input: It, pred: PredFn) -> Filter {
        Filter { input, pred }
    }
}

/// The state is the input's (nothing is held between outputs); provenance the
/// input's (a kept element is the input's element unchanged).
impl Stage for Filter {
    fn state(&self) -> Result<Value> {
        self.input.state()
    }

    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        loop {
            let (x, p) = match self.input.next()? {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            let tensors = match materialize(x) {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            let keep = match catch_unwind(AssertUnwindSafe(|| (self.pred)(&tensors))) {
                Ok(r) => r,
                Err(_) => Err(panic_error("a filter predicate")),
            };
            match keep {
                Ok(true) => return Some(Ok((tensors.into_iter().map(Comp::Ready).collect(), p))),
                Ok(false) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
