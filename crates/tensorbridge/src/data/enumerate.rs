//! `enumerate`: each element preceded by its int64 position (`start`, `start + 1`,
//! ...), as `tf.data`'s `zip((range(start, ...), ds))`.

use serde_json::{json, Value};

use super::comp::{Comp, Item};
use super::run::Ctx;
use super::state::{bad, field, object, It, Prov, Stage};
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

/// One epoch of an enumerate: provenance `Tagged(index, p)` (the index as its
/// two's-complement bits); state `{"next": index, "input": ...}`.
pub(crate) struct Enumerate {
    input: It,
    next: i64,
}

impl Enumerate {
    /// A fresh epoch counting from `start`, or one restored from `state`.
    pub(crate) fn build(
        input: &Dataset,
        ctx: &Ctx,
        start: i64,
        state: Option<&Value>,
    ) -> Result<Enumerate> {
        Ok(match state {
            None => Enumerate {
                input: input.build_in(ctx, None)?,
                next: start,
            },
            Some(s) => {
                let o = object(s, "enumerate")?;
                let v = field(o, "next")?;
                let next = v
                    .as_i64()
                    .ok_or_else(|| bad(format!("field \"next\" is not an integer: {v}")))?;
                Enumerate {
                    input: input.build_in(ctx, Some(field(o, "input")?))?,
                    next,
                }
            }
        })
    }
}

fn index_comp(i: i64) -> Result<Comp> {
    Tensor::from_slice(&[i], &[]).map(Comp::Ready)
}

/// Element `prov` of an enumerate.
pub(crate) fn materialize(input: &Dataset, prov: &Prov) -> Result<Item> {
    match prov {
        Prov::Tagged(i, p) => {
            let mut out = vec![index_comp(*i as i64)?];
            out.extend(input.materialize(p)?);
            Ok(out)
        }
        other => Err(bad(format!(
            "an enumerated element's position is malformed: {other:?}"
        ))),
    }
}

impl Stage for Enumerate {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        let (x, p) = match self.input.next()? {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let i = self.next;
        self.next = self.next.wrapping_add(1);
        Some(index_comp(i).map(|c| {
            let mut out = Vec::with_capacity(x.len() + 1);
            out.push(c);
            out.extend(x);
            (out, Prov::Tagged(i as u64, Box::new(p)))
        }))
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({ "next": self.next, "input": self.input.state()? }))
    }
}
