//! `concatenate`: every element of one dataset, then every element of another
//! (same number of components and dtypes; shapes may differ, the spec keeps the
//! dimensions both agree on).

use super::comp::{It, Item};
use super::run::Ctx;
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
pub(crate) struct Concat {
    current: It,
    second: Option<(Dataset, Ctx)>,
    width: Option<usize>,
}

impl Concat {
    pub(crate) fn new(first: It, second: Dataset, ctx: Ctx) -> Concat {
        Concat {
            current: first,
            second: Some((second, ctx)),
            width: None,
        }
    }
}

impl Iterator for Concat {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        loop {
            match self.current.next() {
                Some(Ok(x)) => {
                    let w = *self.width.get_or_insert(x.len());
                    if w != x.len() {
                        return Some(Err(Error::InvalidArgument(format!(
                            "concatenate: incompatible elements: {w} components vs {}",
                            x.len()
                        ))));
                    }
                    return Some(Ok(x));
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    let (ds, ctx) = self.second.take()?;
                    match ds.build_in(&ctx) {
                        Ok(it) => self.current = it,
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        }
    }
}
