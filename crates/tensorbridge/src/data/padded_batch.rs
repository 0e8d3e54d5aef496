//! `padded_batch`: stack consecutive elements whose shapes may differ, padding
//! each component to a common shape — per dimension the size given in
//! `padded_shapes`, or (unknown there) the largest in the batch — with a padding
//! value (default 0).

use super::batch::batch_size;
use serde_json::Value;

use super::comp::{materialize, Comp, Item};
use super::ops::Op;
use super::state::{bad, It, Prov, Stage};
use super::{Cardinality, ComponentSpec, Dataset, Node};
use crate::dtype::{Casting, DType};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Per component: the padded shape (`None` dims: the batch's largest), or `None`
/// for "every dimension to the batch's largest".
pub type PaddedShapes = Vec<Option<Vec<Option<usize>>>>;

impl Dataset {
    /// Like [`Dataset::batch`], but components may differ in shape within the rank:
    /// each is padded to `padded_shapes` (one entry per component; `None`, or
    /// `None` dims, pad to the batch's largest; a list of `None` entries for
    /// every component when `padded_shapes` is `None`) with `padding_values` (one
    /// 0-d tensor or `None` = zero per component, or a single one for all,
    /// converted to the component's dtype). An element larger than its padded shape fails the epoch.
    pub fn padded_batch(
        &self,
        batch: i64,
        padded_shapes: Option<PaddedShapes>,
        padding_values: Option<Vec<Option<Tensor>>>,
        drop_remainder: bool,
    ) -> Result<Dataset> {
        let size = batch_size(batch)?;
        let spec = self.element_spec()?;
        let n = spec.as_ref().map(|s| s.len());
        for (what, len) in [
            ("padded_shapes", padded_shapes.as_ref().map(|v| v.len())),
            // A single padding value pads every component.
            (
                "padding_values",
                padding_values.as_ref().map(|v| v.len()).filter(|&l| l != 1),
            ),
        ] {
            if let (Some(n), Some(len)) = (n, len) {
                if n != len {
                    return Err(Error::InvalidArgument(format!(
                        "padded_batch: {what} has {len} entries but the element has {n} components"
                    )));
                }
            }
        }
        if let (Some(spec), Some(shapes)) = (&spec, &padded_shapes) {
            for ((_, have), want) in spec.iter().zip(shapes) {
                let Some(want) = want else { continue };
                let fits = have.len() == want.len()
                    && have.iter().zip(want).all(|(h, w)| match (h, w) {
                        (Some(h), Some(w)) => h <= w,
                        _ => true,
                    });
                if !fits {
                    return Err(Error::InvalidArgument(format!(
                        "padded_batch: the padded shape {} is not compatible with the shape {} of the corresponding input component",
                        dims(want),
                        dims(have)
                    )));
                }
            }
        }
        for v in padding_values.iter().flatten().flatten() {
            if !v.shape().is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "padded_batch: a padding value must be a scalar, not of shape {:?}",
                    v.shape()
                )));
            }
        }
        Ok(Self::wrap(Node::PaddedBatch {
            input: self.clone(),
            size,
            drop_remainder,
            shapes: padded_shapes,
            values: padding_values,
        }))
    }
}

fn dims(d: &[Option<usize>]) -> String {
    let parts: Vec<String> = d
        .iter()
        .map(|x| x.map_or("None".into(), |v| v.to_string()))
        .collect();
    format!("({})", parts.join(", "))
}

/// As `batch`'s.
pub(crate) fn cardinality(input: &Dataset, size: usize, drop_remainder: bool) -> Cardinality {
    match input.cardinality() {
        Cardinality::Finite(n) if drop_remainder => Cardinality::Finite(n / size as u64),
        Cardinality::Finite(n) => Cardinality::Finite(n.div_ceil(size as u64)),
        c => c,
    }
}

/// The batch dimension, then the padded shape (given dims, else the input's).
pub(crate) fn element_spec(
    input: &Dataset,
    size: usize,
    drop_remainder: bool,
    shapes: &Option<PaddedShapes>,
) -> Result<Option<Vec<ComponentSpec>>> {
    Ok(input.element_spec()?.map(|spec| {
        spec.into_iter()
            .enumerate()
            .map(|(i, (d, s))| {
                let mut full = vec![drop_remainder.then_some(size)];
                match shapes.as_ref().and_then(|v| v.get(i).cloned().flatten()) {
                    Some(want) => full.extend(want),
                    None => full.extend(s),
                }
                (d, full)
            })
            .collect()
    }))
}

/// One epoch of a padded batch.
pub(crate) struct PaddedBatch {
    input: It,
    size: usize,
    drop_remainder: bool,
    shapes: Option<PaddedShapes>,
    values: Option<Vec<Option<Tensor>>>,
    done: bool,
}

impl PaddedBatch {
    pub(crate) fn new(
        input: It,
        size: usize,
        drop_remainder: bool,
        shapes: Option<PaddedShapes>,
        values: Option<Vec<Option<Tensor>>>,
    ) -> PaddedBatch {
        PaddedBatch {
            input,
            size,
            drop_remainder,
            shapes,
            values,
            done: false,
        }
    }

    fn assemble(&self, items: Vec<Vec<Tensor>>) -> Result<Item> {
        assemble(&items, &self.shapes, &self.values)
    }
}

/// Element `prov` (a `List` of its rows' provenances) of a padded batch.
pub(crate) fn materialize_batch(
    input: &Dataset,
    shapes: &Option<PaddedShapes>,
    values: &Option<Vec<Option<Tensor>>>,
    prov: &Prov,
) -> Result<Item> {
    match prov {
        Prov::List(ps) if !ps.is_empty() => {
            let items = ps
                .iter()
                .map(|p| input.materialize(p).and_then(materialize))
                .collect::<Result<Vec<_>>>()?;
            assemble(&items, shapes, values)
        }
        other => Err(bad(format!(
            "a padded batch's position is malformed: {other:?}"
        ))),
    }
}

/// Pad and stack `items` (materialized elements).
fn assemble(
    items: &[Vec<Tensor>],
    shapes: &Option<PaddedShapes>,
    values: &Option<Vec<Option<Tensor>>>,
) -> Result<Item> {
    {
        let n = items[0].len();
        let mut out = Vec::with_capacity(n);
        for c in 0..n {
            let first = &items[0][c];
            let (dtype, rank) = (first.dtype(), first.shape().len());
            let mut target: Vec<usize> = vec![0; rank];
            for (j, item) in items.iter().enumerate() {
                let t = item.get(c).ok_or_else(|| {
                    Error::Shape(format!(
                        "padded_batch: element 0 has {n} components but element {j} has {}",
                        item.len()
                    ))
                })?;
                if t.dtype() != dtype || t.shape().len() != rank {
                    return Err(Error::Shape(format!(
                        "padded_batch: component {c} is {dtype} of rank {rank} in element 0 but {} of rank {} in element {j}",
                        t.dtype(),
                        t.shape().len()
                    )));
                }
                for (m, d) in target.iter_mut().zip(t.shape()) {
                    *m = (*m).max(*d);
                }
            }
            if let Some(want) = shapes.as_ref().and_then(|v| v.get(c).cloned().flatten()) {
                if want.len() != rank {
                    return Err(Error::Shape(format!(
                        "padded_batch: the padded shape {} of component {c} does not have the rank {rank} of its elements",
                        dims(&want)
                    )));
                }
                for (k, (m, w)) in target.iter_mut().zip(&want).enumerate() {
                    if let Some(w) = w {
                        if *m > *w {
                            return Err(Error::InvalidArgument(format!(
                                "padded_batch: an element of component {c} has {m} entries along dimension {k}, more than the padded shape {} allows (attempted to pad to a smaller size than the input element)",
                                dims(&want)
                            )));
                        }
                        *m = *w;
                    }
                }
            }
            let pad = pad_bytes(
                values
                    .as_ref()
                    .and_then(|v| v.get(if v.len() == 1 { 0 } else { c }).cloned().flatten()),
                dtype,
            )?;
            let mut full = vec![items.len()];
            full.extend_from_slice(&target);
            let per: usize = target.iter().product::<usize>() * dtype.size();
            let fill = |dst: &mut [u8]| -> Result<()> {
                for chunk in dst.chunks_mut(dtype.size().max(1)) {
                    chunk.copy_from_slice(&pad);
                }
                if per == 0 {
                    return Ok(());
                }
                for (slot, item) in dst.chunks_mut(per).zip(items) {
                    copy_padded(&item[c], slot, &target)?;
                }
                Ok(())
            };
            // SAFETY: `fill` writes every byte (the padding first, then each element).
            out.push(Comp::Ready(unsafe {
                Tensor::build_overwrite(dtype, &full, fill)
            }?));
        }
        Ok(out)
    }
}

/// The padding value's bytes in `dtype` (zero bytes for `None`). The value (a
/// scalar, checked when the stage is made) is cast into a tensor of its own, whose
/// storage is aligned for `dtype`: a plain `Vec<u8>` is only byte-aligned, and
/// casting into it worked only because the allocator happens to align small
/// blocks (Miri, which does not, found it).
fn pad_bytes(value: Option<Tensor>, dtype: DType) -> Result<Vec<u8>> {
    let Some(v) = value else {
        return Ok(vec![0u8; dtype.size()]);
    };
    let t = Comp::Ready(v)
        .then(&[Op::Cast {
            dtype,
            casting: Casting::Unsafe,
        }])?
        .materialize()?;
    match t.as_bytes() {
        Some(b) if b.len() == dtype.size() => Ok(b.to_vec()),
        _ => Err(Error::InvalidArgument(format!(
            "padded_batch: a padding value must be a scalar, not of shape {:?}",
            t.shape()
        ))),
    }
}

/// Copy `t` (C order) into the top-left corner of `dst`, a C-order block of
/// shape `target`.
fn copy_padded(t: &Tensor, dst: &mut [u8], target: &[usize]) -> Result<()> {
    let t = t.to_contiguous()?;
    let src = t.as_bytes().unwrap_or(&[]);
    let shape = t.shape();
    let size = t.dtype().size();
    if shape.contains(&0) {
        return Ok(());
    }
    let Some((&last, outer)) = shape.split_last() else {
        dst[..size].copy_from_slice(&src[..size]);
        return Ok(());
    };
    let run = last * size;
    // Strides (bytes) of the target block.
    let mut tstrides = vec![0usize; target.len()];
    let mut acc = size;
    for k in (0..target.len()).rev() {
        tstrides[k] = acc;
        acc *= target[k];
    }
    let mut idx = vec![0usize; outer.len()];
    let mut s = 0;
    loop {
        let off: usize = idx.iter().zip(&tstrides).map(|(i, st)| i * st).sum();
        dst[off..off + run].copy_from_slice(&src[s..s + run]);
        s += run;
        // Next outer index (odometer).
        let mut k = outer.len();
        loop {
            if k == 0 {
                return Ok(());
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < outer[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Provenance `List` of the rows'; state the input's (a batch is never
/// half-built between outputs).
impl Stage for PaddedBatch {
    fn state(&self) -> Result<Value> {
        self.input.state()
    }

    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        if self.done {
            return None;
        }
        let mut items = Vec::with_capacity(self.size.min(1024));
        let mut provs = Vec::with_capacity(self.size.min(1024));
        while items.len() < self.size {
            match self.input.next() {
                Some(Ok((x, p))) => match materialize(x) {
                    Ok(t) => {
                        items.push(t);
                        provs.push(p);
                    }
                    Err(e) => return Some(Err(e)),
                },
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        if items.is_empty() || (self.drop_remainder && items.len() < self.size) {
            self.done = true;
            return None;
        }
        Some(self.assemble(items).map(|item| (item, Prov::List(provs))))
    }
}
