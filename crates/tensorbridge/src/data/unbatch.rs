//! `unbatch`: split every element along its first dimension into rows (zero-copy
//! views); all components must share that dimension.

use super::comp::{materialize, Comp, It, Item};
use super::{Cardinality, ComponentSpec, Dataset, Node};
use crate::error::{Error, Result};
use crate::tensor::{Index, Tensor};

impl Dataset {
    /// The rows of every element (axis-0 slices of each component). A known element
    /// spec must give every component at least one dimension, with leading
    /// dimensions that agree where known.
    pub fn unbatch(&self) -> Result<Dataset> {
        if let Some(spec) = self.element_spec()? {
            leading(&spec)?;
        }
        Ok(Self::wrap(Node::Unbatch {
            input: self.clone(),
        }))
    }
}

/// The leading dimension every component shares, if known (`Err` if a component
/// is 0-d or two known ones differ).
fn leading(spec: &[ComponentSpec]) -> Result<Option<usize>> {
    let mut known: Option<usize> = None;
    let mut all_known = true;
    for (i, (_, s)) in spec.iter().enumerate() {
        match s.first() {
            None => {
                return Err(Error::InvalidArgument(format!(
                    "unbatch: component {i} is a scalar (0-d); every component needs a leading dimension"
                )))
            }
            Some(None) => all_known = false,
            Some(Some(d)) => match known {
                Some(k) if k != *d => {
                    return Err(Error::InvalidArgument(format!(
                        "unbatch needs components with a matching leading dimension, but they have both {k} and {d}"
                    )))
                }
                _ => known = Some(*d),
            },
        }
    }
    Ok(known.filter(|_| all_known))
}

/// `tf.data`'s rule: infinite stays infinite; `n × b` when every element is known
/// to hold `b` rows; else unknown.
pub(crate) fn cardinality(input: &Dataset) -> Cardinality {
    match input.cardinality() {
        Cardinality::Infinite => Cardinality::Infinite,
        Cardinality::Finite(n) => match input.element_spec().ok().flatten().map(|s| leading(&s)) {
            Some(Ok(Some(b))) => Cardinality::Finite(n.saturating_mul(b as u64)),
            _ => Cardinality::Unknown,
        },
        Cardinality::Unknown => Cardinality::Unknown,
    }
}

/// The input's spec without the leading dimension.
pub(crate) fn element_spec(input: &Dataset) -> Result<Option<Vec<ComponentSpec>>> {
    Ok(input.element_spec()?.map(|s| {
        s.into_iter()
            .map(|(d, dims)| (d, dims.get(1..).unwrap_or(&[]).to_vec()))
            .collect()
    }))
}

/// One epoch of an unbatch.
pub(crate) struct Unbatch {
    input: It,
    current: Vec<Tensor>,
    rows: usize,
    next: usize,
}

impl Unbatch {
    pub(crate) fn new(input: It) -> Unbatch {
        Unbatch {
            input,
            current: Vec::new(),
            rows: 0,
            next: 0,
        }
    }
}

/// The shared leading dimension of a materialized element.
fn rows_of(ts: &[Tensor]) -> Result<usize> {
    let mut rows = None;
    for (i, t) in ts.iter().enumerate() {
        let d = *t.shape().first().ok_or_else(|| {
            Error::Shape(format!(
                "unbatch: component {i} is a scalar (0-d); every component needs a leading dimension"
            ))
        })?;
        match rows {
            Some(r) if r != d => {
                return Err(Error::Shape(format!(
                    "unbatch needs components with a matching leading dimension, but they have both {r} and {d}"
                )))
            }
            _ => rows = Some(d),
        }
    }
    Ok(rows.unwrap_or(0))
}

impl Iterator for Unbatch {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        while self.next >= self.rows {
            let x = match self.input.next()? {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            match materialize(x).and_then(|ts| rows_of(&ts).map(|r| (ts, r))) {
                Ok((ts, r)) => {
                    self.current = ts;
                    self.rows = r;
                    self.next = 0;
                }
                Err(e) => return Some(Err(e)),
            }
        }
        let j = self.next;
        self.next += 1;
        Some(
            self.current
                .iter()
                .map(|t| t.index(&[Index::At(j as isize)]).map(Comp::Ready))
                .collect(),
        )
    }
}
