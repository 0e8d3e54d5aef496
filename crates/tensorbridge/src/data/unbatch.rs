//! `unbatch`: split every element along its first dimension into rows (zero-copy
//! views); all components must share that dimension.

use serde_json::{json, Value};

use super::comp::{materialize, Comp, Item};
use super::run::Ctx;
use super::state::{bad, field, field_provs, field_u64, object, provs_json, It, Prov, Stage};
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

/// One epoch of an unbatch: provenance `Tagged(row, batch provenance)`; state
/// `{"input": ..., "batch": [provenance of the current element] or [], "next": row}`
/// (the current element is made again from its provenance on restore).
pub(crate) struct Unbatch {
    input: It,
    current: Vec<Tensor>,
    batch: Option<Prov>,
    rows: usize,
    next: usize,
}

impl Unbatch {
    /// A fresh epoch, or one restored from `state`.
    pub(crate) fn build(input: &Dataset, ctx: &Ctx, state: Option<&Value>) -> Result<Unbatch> {
        let Some(s) = state else {
            return Ok(Unbatch {
                input: input.build_in(ctx, None)?,
                current: Vec::new(),
                batch: None,
                rows: 0,
                next: 0,
            });
        };
        let o = object(s, "unbatch")?;
        let mut me = Unbatch {
            input: input.build_in(ctx, Some(field(o, "input")?))?,
            current: Vec::new(),
            batch: None,
            rows: 0,
            next: field_u64(o, "next")? as usize,
        };
        if let Some(p) = field_provs(o, "batch")?.into_iter().next() {
            me.current = materialize(input.materialize(&p)?)?;
            me.rows = rows_of(&me.current)?;
            me.batch = Some(p);
        }
        Ok(me)
    }
}

/// Element `prov` of an unbatch: row `j` of the input element.
pub(crate) fn materialize_row(input: &Dataset, prov: &Prov) -> Result<Item> {
    match prov {
        Prov::Tagged(j, p) => {
            let ts = materialize(input.materialize(p)?)?;
            let rows = rows_of(&ts)?;
            if *j >= rows as u64 {
                return Err(bad(format!("row {j} of an element of {rows} rows")));
            }
            row(&ts, *j as usize)
        }
        other => Err(bad(format!(
            "an unbatched element's position is malformed: {other:?}"
        ))),
    }
}

fn row(ts: &[Tensor], j: usize) -> Result<Item> {
    ts.iter()
        .map(|t| t.index(&[Index::At(j as isize)]).map(Comp::Ready))
        .collect()
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

impl Stage for Unbatch {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        while self.next >= self.rows {
            let (x, p) = match self.input.next()? {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            match materialize(x).and_then(|ts| rows_of(&ts).map(|r| (ts, r))) {
                Ok((ts, r)) => {
                    self.current = ts;
                    self.rows = r;
                    self.next = 0;
                    self.batch = Some(p);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        let j = self.next;
        self.next += 1;
        let p = self.batch.clone().unwrap_or(Prov::List(Vec::new()));
        Some(row(&self.current, j).map(|item| (item, Prov::Tagged(j as u64, Box::new(p)))))
    }

    fn state(&self) -> Result<Value> {
        // Past the last row of the current element, it is not needed again.
        let current = self.batch.as_ref().filter(|_| self.next < self.rows);
        Ok(json!({
            "input": self.input.state()?,
            "batch": provs_json(current.into_iter()),
            "next": if current.is_none() { 0 } else { self.next },
        }))
    }
}
