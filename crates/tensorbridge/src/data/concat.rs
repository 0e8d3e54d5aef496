//! `concatenate`: every element of one dataset, then every element of another
//! (same number of components and dtypes; shapes may differ, the spec keeps the
//! dimensions both agree on).

use serde_json::{json, Value};

use super::comp::Item;
use super::run::Ctx;
use super::state::{bad, field, field_u64, object, It, Prov, Stage};
use super::{Cardinality, ComponentSpec, Dataset, Node};
use crate::error::{Error, Result};

impl Dataset {
    /// This dataset's elements followed by `other`'s. Known element specs must have
    /// the same number of components with the same dtypes (and ranks).
    pub fn concatenate(&self, other: &Dataset) -> Result<Dataset> {
        if let (Some(a), Some(b)) = (self.element_spec()?, other.element_spec()?) {
            compatible(&a, &b, "concatenate")?;
        }
        Ok(Self::wrap(Node::Concatenate {
            first: self.clone(),
            second: other.clone(),
        }))
    }
}

/// `tf.data`'s rule: infinite if either input is; else unknown if either is;
/// else the sum.
pub(crate) fn cardinality(a: Cardinality, b: Cardinality) -> Cardinality {
    use Cardinality::*;
    match (a, b) {
        (Infinite, _) | (_, Infinite) => Infinite,
        (Unknown, _) | (_, Unknown) => Unknown,
        (Finite(x), Finite(y)) => Finite(x.saturating_add(y)),
    }
}

/// The most specific spec both `a` and `b` fit (dimensions that differ become
/// unknown), or an error naming what differs (`op` names the caller).
pub(crate) fn compatible(
    a: &[ComponentSpec],
    b: &[ComponentSpec],
    op: &str,
) -> Result<Vec<ComponentSpec>> {
    if a.len() != b.len() {
        return Err(Error::InvalidArgument(format!(
            "{op}: incompatible elements: {} components vs {}",
            a.len(),
            b.len()
        )));
    }
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, ((da, sa), (db, sb)))| {
            if da != db || sa.len() != sb.len() {
                return Err(Error::InvalidArgument(format!(
                    "{op}: incompatible elements: component {i} is {da} of rank {} in one and {db} of rank {} in the other",
                    sa.len(),
                    sb.len()
                )));
            }
            let dims = sa
                .iter()
                .zip(sb)
                .map(|(x, y)| if x == y { *x } else { None })
                .collect();
            Ok((*da, dims))
        })
        .collect()
}

/// Fold [`compatible`] over the specs of `inputs` (`None` if any is unknown).
pub(crate) fn common_spec(inputs: &[&Dataset], op: &str) -> Result<Option<Vec<ComponentSpec>>> {
    let mut out: Option<Vec<ComponentSpec>> = None;
    for d in inputs {
        let Some(s) = d.element_spec()? else {
            return Ok(None);
        };
        out = Some(match out {
            None => s,
            Some(prev) => compatible(&prev, &s, op)?,
        });
    }
    Ok(out)
}

/// One epoch of a concatenation: the second input starts when the first ends.
/// Provenance `Tagged(k, p)` (`k`: which input); state `{"which": k, "inner": ...}`.
pub(crate) struct Concat {
    current: It,
    which: u64,
    second: Option<(Dataset, Ctx)>,
    width: Option<usize>,
}

impl Concat {
    /// A fresh epoch, or one restored from `state`.
    pub(crate) fn build(
        first: &Dataset,
        second: &Dataset,
        ctx: &Ctx,
        state: Option<&Value>,
    ) -> Result<Concat> {
        let (which, inner) = match state {
            None => (0, None),
            Some(s) => {
                let o = object(s, "concatenate")?;
                (field_u64(o, "which")?, Some(field(o, "inner")?))
            }
        };
        Ok(match which {
            0 => Concat {
                current: first.build_in(ctx, inner)?,
                which,
                second: Some((second.clone(), ctx.clone())),
                width: None,
            },
            1 => Concat {
                current: second.build_in(ctx, inner)?,
                which,
                second: None,
                width: None,
            },
            k => return Err(bad(format!("concatenate has 2 inputs, not {}", k + 1))),
        })
    }
}

/// Element `prov` of a concatenation.
pub(crate) fn materialize(first: &Dataset, second: &Dataset, prov: &Prov) -> Result<Item> {
    match prov {
        Prov::Tagged(0, p) => first.materialize(p),
        Prov::Tagged(1, p) => second.materialize(p),
        other => Err(bad(format!(
            "a concatenated element's position is malformed: {other:?}"
        ))),
    }
}

impl Stage for Concat {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        loop {
            match self.current.next() {
                Some(Ok((x, p))) => {
                    let w = *self.width.get_or_insert(x.len());
                    if w != x.len() {
                        return Some(Err(Error::InvalidArgument(format!(
                            "concatenate: incompatible elements: {w} components vs {}",
                            x.len()
                        ))));
                    }
                    return Some(Ok((x, Prov::Tagged(self.which, Box::new(p)))));
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    let (ds, ctx) = self.second.take()?;
                    match ds.build_in(&ctx, None) {
                        Ok(it) => {
                            self.current = it;
                            self.which = 1;
                        }
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        }
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({ "which": self.which, "inner": self.current.state()? }))
    }
}
