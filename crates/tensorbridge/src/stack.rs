//! [`stack`]: join equally-shaped arrays along a new axis, casting on the way.

use rayon::prelude::*;

use crate::cast::cast_into;
use crate::dtype::{Casting, DType};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::view::TensorView;

/// Stack `items` (all of one shape) along a new dimension `axis` (negative counts
/// from the end, as in NumPy), converting to `dtype` (default: the first item's
/// dtype) under `casting`.
///
/// Every item is read once in its own layout and written straight into its slot of
/// the result; items are converted in parallel. For `axis != 0` the result is
/// assembled along axis 0 and then transposed into place (one more pass).
pub fn stack(
    items: &[TensorView<'_>],
    axis: isize,
    dtype: Option<DType>,
    casting: Casting,
) -> Result<Tensor> {
    let first = items
        .first()
        .ok_or_else(|| Error::InvalidArgument("stack needs at least one array".into()))?;
    let shape = first.shape();
    for (i, item) in items.iter().enumerate() {
        if item.shape() != shape {
            return Err(Error::Shape(format!(
                "all inputs to stack must have the same shape: item 0 has shape {:?} but item {i} has shape {:?}",
                shape,
                item.shape()
            )));
        }
    }
    let nd = shape.len() as isize + 1;
    if axis < -nd || axis >= nd {
        return Err(Error::Index(format!(
            "axis {axis} is out of bounds for a result of {nd} dimensions"
        )));
    }
    let axis = if axis < 0 { axis + nd } else { axis } as usize;
    let to = dtype.unwrap_or(first.dtype());
    for item in items {
        item.dtype().check_cast(to, casting)?;
    }
    let mut out_shape = vec![items.len()];
    out_shape.extend_from_slice(shape);
    let per_item = first.len() * to.size();
    // SAFETY: every item's slot (`per_item` bytes each, together the whole buffer)
    // is written by `cast_into`, or the build fails and the buffer is dropped unread.
    let stacked = unsafe {
        Tensor::build_overwrite(to, &out_shape, |dst| {
            if per_item == 0 {
                return Ok(());
            }
            dst.par_chunks_mut(per_item)
                .zip(items.par_iter())
                .try_for_each(|(d, item)| cast_into(item, to, casting, d))
        })
    }?;
    if axis == 0 {
        return Ok(stacked);
    }
    // Move the new leading dimension to `axis`.
    let mut axes: Vec<usize> = (1..=shape.len()).collect();
    axes.insert(axis, 0);
    stacked.permute(&axes)?.deep_copy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_and_cast() {
        let a = [1u8, 2, 3, 4];
        let b = [5u8, 6, 7, 8];
        let va = TensorView::from_slice(&a, &[2, 2]).unwrap();
        let vb = TensorView::from_slice(&b, &[2, 2]).unwrap();
        let t = stack(
            &[va.clone(), vb.clone()],
            0,
            Some(DType::Float32),
            Casting::Unsafe,
        )
        .unwrap();
        assert_eq!(t.shape(), &[2, 2, 2]);
        assert_eq!(
            t.to_vec::<f32>().unwrap(),
            vec![1., 2., 3., 4., 5., 6., 7., 8.]
        );
        let t = stack(&[va.clone(), vb.clone()], -1, None, Casting::Unsafe).unwrap();
        assert_eq!(t.shape(), &[2, 2, 2]);
        assert_eq!(t.to_vec::<u8>().unwrap(), vec![1, 5, 2, 6, 3, 7, 4, 8]);
        let c = [1u8, 2];
        let vc = TensorView::from_slice(&c, &[2]).unwrap();
        let err = stack(&[va, vc], 0, None, Casting::Unsafe)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("item 1") && err.contains("[2, 2]") && err.contains("[2]"),
            "{err}"
        );
    }
}
