//! An element in flight: its components, each a tensor or a tensor with built-in
//! ops still to apply (see [`super::ops`]).

use super::ops::{execute, plan, Step};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;

/// One component of an element in flight: a tensor, or a tensor with built-in ops
/// still to apply (applied when the element is materialized — straight into the
/// batch buffer when a `batch` follows).
#[derive(Clone)]
pub(crate) enum Comp {
    Ready(Tensor),
    Lazy {
        src: Tensor,
        steps: Vec<Step>,
        dtype: DType,
        shape: Vec<usize>,
    },
}

impl Comp {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Comp::Ready(t) => t.dtype(),
            Comp::Lazy { dtype, .. } => *dtype,
        }
    }

    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Comp::Ready(t) => t.shape(),
            Comp::Lazy { shape, .. } => shape,
        }
    }

    /// Apply more built-in ops (planned now, executed later, all in one pass).
    pub(crate) fn then(self, ops: &[super::ops::Op]) -> Result<Comp> {
        if ops.is_empty() {
            return Ok(self);
        }
        let (src, mut steps, dtype, shape) = match self {
            Comp::Ready(t) => {
                let (d, s) = (t.dtype(), t.shape().to_vec());
                (t, Vec::new(), d, s)
            }
            Comp::Lazy {
                src,
                steps,
                dtype,
                shape,
            } => (src, steps, dtype, shape),
        };
        let (dtype, shape) = plan(dtype, &shape, ops, &mut steps)?;
        if steps.is_empty() && dtype == src.dtype() {
            // Only reshapes: a view, no data moves.
            let dims: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
            return Ok(Comp::Ready(src.reshape(&dims)?));
        }
        Ok(Comp::Lazy {
            src,
            steps,
            dtype,
            shape,
        })
    }

    /// Write the component's final values (C order) into `dst`.
    pub(crate) fn write_into(&self, dst: &mut [u8]) -> Result<()> {
        match self {
            Comp::Ready(t) => {
                crate::cast::cast_into(&t.view(), t.dtype(), crate::Casting::Unsafe, dst)
            }
            Comp::Lazy {
                src, steps, dtype, ..
            } => execute(src, steps, *dtype, dst),
        }
    }

    pub(crate) fn materialize(self) -> Result<Tensor> {
        match self {
            Comp::Ready(t) => Ok(t),
            Comp::Lazy { dtype, .. } => {
                let shape = self.shape().to_vec();
                // SAFETY: `write_into` writes all `len * size` bytes (every step
                // covers every element) or fails, and the buffer is then dropped.
                unsafe { Tensor::build_overwrite(dtype, &shape, |dst| self.write_into(dst)) }
            }
        }
    }
}

pub(crate) type Item = Vec<Comp>;

pub(crate) fn materialize(item: Item) -> Result<Vec<Tensor>> {
    item.into_iter().map(Comp::materialize).collect()
}

pub(crate) fn materialize_lazy(item: Item) -> Result<Item> {
    item.into_iter()
        .map(|c| match c {
            Comp::Ready(_) => Ok(c),
            lazy => lazy.materialize().map(Comp::Ready),
        })
        .collect()
}
