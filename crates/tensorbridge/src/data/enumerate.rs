//! `enumerate`: each element preceded by its int64 position (`start`, `start + 1`,
//! ...), as `tf.data`'s `zip((range(start, ...), ds))`.

use super::comp::{Comp, It, Item};
use super::{Cardinality, ComponentSpec, Dataset, Node};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;

impl Dataset {
    /// Pair each element with its position, counted from `start`: elements become
    /// `(index, element...)` with the index an int64 scalar.
    pub fn enumerate(&self, start: i64) -> Dataset {
        Self::wrap(Node::Enumerate {
            input: self.clone(),
            start,
        })
    }
}

/// The input's (as `tf.data` reports it).
pub(crate) fn cardinality(input: &Dataset) -> Cardinality {
    input.cardinality()
}

/// An int64 scalar, then the input's components.
pub(crate) fn element_spec(input: &Dataset) -> Result<Option<Vec<ComponentSpec>>> {
    Ok(input.element_spec()?.map(|s| {
        let mut out = vec![(DType::Int64, vec![])];
        out.extend(s);
        out
    }))
}

/// One epoch of an enumerate.
pub(crate) struct Enumerate {
    input: It,
    next: i64,
}

impl Enumerate {
    pub(crate) fn new(input: It, start: i64) -> Enumerate {
        Enumerate { input, next: start }
    }
}

impl Iterator for Enumerate {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        let x = match self.input.next()? {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let i = self.next;
        self.next = self.next.wrapping_add(1);
        Some(Tensor::from_slice(&[i], &[]).map(|t| {
            let mut out = Vec::with_capacity(x.len() + 1);
            out.push(Comp::Ready(t));
            out.extend(x);
            out
        }))
    }
}
