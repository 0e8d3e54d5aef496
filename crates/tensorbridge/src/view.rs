//! [`TensorView`]: a borrowed, possibly strided, byte-swapped or unaligned
//! description of elements in someone else's bytes — what casts read from.

use crate::dtype::{ByteOrder, DType};
use crate::error::{Error, Result};

/// Most dimensions a tensor may have (NumPy 2 allows 64).
pub const MAX_NDIM: usize = 64;

/// A read-only view of elements laid out in `bytes`, borrowed for `'a`.
///
/// The lifetime ties the view to the bytes, so a view can never outlive the memory
/// it reads — the aliasing bug of the source articles does not compile:
///
/// ```compile_fail
/// use tensorbridge::TensorView;
/// let view = {
///     let data = vec![1.0f32, 2.0, 3.0];
///     TensorView::from_slice(&data, &[3]).unwrap()
/// }; // `data` is dropped here while `view` still borrows it
/// println!("{:?}", view.shape());
/// ```
///
/// Strides are in bytes and may be negative or zero; elements may be unaligned or
/// in either byte order. Construction checks that every element lies inside `bytes`.
#[derive(Clone, Debug)]
pub struct TensorView<'a> {
    bytes: &'a [u8],
    dtype: DType,
    shape: Vec<usize>,
    strides: Vec<isize>,
    offset: usize,
    byte_order: ByteOrder,
}

/// Row-major strides in bytes for a contiguous array of `shape`.
pub fn contiguous_strides(shape: &[usize], itemsize: usize) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut acc = itemsize as isize;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(n.max(1) as isize);
    }
    strides
}

/// Number of elements in `shape`, or an error if it overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| {
            Error::Shape(format!(
                "shape {shape:?} has more elements than fit in memory"
            ))
        })
}

/// The byte range `[lo, hi)` touched by a strided layout starting at `offset`, or an
/// error when it overflows. Empty layouts touch nothing (`lo == hi == offset`).
pub fn byte_extent(
    shape: &[usize],
    strides: &[isize],
    offset: usize,
    itemsize: usize,
) -> Result<(i128, i128)> {
    let off = offset as i128;
    if shape.contains(&0) {
        return Ok((off, off));
    }
    let (mut lo, mut hi) = (off, off + itemsize as i128);
    for (&n, &s) in shape.iter().zip(strides) {
        let span = (n as i128 - 1) * s as i128;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    Ok((lo, hi))
}

impl<'a> TensorView<'a> {
    /// A view of `shape` elements of `dtype` at byte `offset` into `bytes`, with
    /// byte `strides`, stored in `byte_order`.
    pub fn new(
        bytes: &'a [u8],
        dtype: DType,
        shape: Vec<usize>,
        strides: Vec<isize>,
        offset: usize,
        byte_order: ByteOrder,
    ) -> Result<Self> {
        if shape.len() != strides.len() {
            return Err(Error::Layout(format!(
                "shape {shape:?} and strides {strides:?} have different lengths"
            )));
        }
        if shape.len() > MAX_NDIM {
            return Err(Error::Shape(format!(
                "{} dimensions; at most {MAX_NDIM} are supported",
                shape.len()
            )));
        }
        checked_numel(&shape)?;
        let (lo, hi) = byte_extent(&shape, &strides, offset, dtype.size())?;
        if lo < 0 || hi > bytes.len() as i128 {
            return Err(Error::Layout(format!(
                "a {dtype} view of shape {shape:?}, strides {strides:?} at offset {offset} reaches bytes [{lo}, {hi}) outside a buffer of {} bytes",
                bytes.len()
            )));
        }
        Ok(TensorView {
            bytes,
            dtype,
            shape,
            strides,
            offset,
            byte_order,
        })
    }

    /// A C-contiguous, native-order view of `bytes` (which must hold exactly the elements).
    pub fn contiguous(bytes: &'a [u8], dtype: DType, shape: &[usize]) -> Result<Self> {
        let n = checked_numel(shape)?;
        if n.checked_mul(dtype.size()) != Some(bytes.len()) {
            return Err(Error::Shape(format!(
                "{} bytes do not hold a {dtype} array of shape {shape:?}",
                bytes.len()
            )));
        }
        let strides = contiguous_strides(shape, dtype.size());
        Self::new(bytes, dtype, shape.to_vec(), strides, 0, ByteOrder::NATIVE)
    }

    /// A C-contiguous view of a typed slice.
    pub fn from_slice<T: crate::Element>(data: &'a [T], shape: &[usize]) -> Result<Self> {
        Self::contiguous(bytemuck::cast_slice(data), T::DTYPE, shape)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Byte strides, one per dimension.
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    /// Byte offset of the first element (index `[0, 0, ...]`) in the buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Byte order of the stored elements.
    pub fn byte_order(&self) -> ByteOrder {
        self.byte_order
    }

    /// The whole underlying buffer.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether elements are C-contiguous (row-major, no gaps).
    pub fn is_c_contiguous(&self) -> bool {
        is_c_contiguous(&self.shape, &self.strides, self.dtype.size())
    }

    /// Whether every element's address is a multiple of the dtype's alignment.
    pub fn is_aligned(&self) -> bool {
        let a = self.dtype.alignment();
        let base = self.bytes.as_ptr() as usize + self.offset;
        base % a == 0
            && self
                .strides
                .iter()
                .zip(&self.shape)
                .all(|(&s, &n)| n <= 1 || s.unsigned_abs() % a == 0)
    }

    /// The elements' bytes when the view is C-contiguous and native-order.
    pub fn contiguous_bytes(&self) -> Option<&'a [u8]> {
        if self.is_c_contiguous() && !self.byte_order.is_swapped() {
            let n = self.len() * self.dtype.size();
            Some(&self.bytes[self.offset..self.offset + n])
        } else {
            None
        }
    }

    /// The layout reduced to runs along the innermost dimension, for kernels.
    pub(crate) fn walk(&self) -> Walk {
        Walk::new(&self.shape, &self.strides, self.offset, self.dtype.size())
    }
}

/// The shape a reshape of `from` to `shape` gives: one entry of `shape` may be `-1`
/// (inferred); the element count must stay the same.
pub fn resolve_reshape(from: &[usize], shape: &[isize]) -> Result<Vec<usize>> {
    let n = checked_numel(from)?;
    let mut known = 1usize;
    let mut infer = None;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            -1 if infer.is_none() => infer = Some(i),
            -1 => {
                return Err(Error::Shape(
                    "can only specify one unknown dimension (-1)".into(),
                ))
            }
            d if d < 0 => {
                return Err(Error::Shape(format!(
                    "negative dimension {d} in shape {shape:?}"
                )))
            }
            d => {
                known = known
                    .checked_mul(d as usize)
                    .ok_or_else(|| Error::Shape(format!("shape {shape:?} is too large")))?
            }
        }
    }
    let mut out: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let bad = || {
        Error::Shape(format!(
            "cannot reshape {n} elements (shape {from:?}) into shape {shape:?}"
        ))
    };
    match infer {
        Some(_) if known == 0 || n % known != 0 => return Err(bad()),
        Some(i) => out[i] = n / known,
        None if known != n => return Err(bad()),
        None => {}
    }
    Ok(out)
}

/// Whether `strides` describe a C-contiguous layout of `shape`.
pub fn is_c_contiguous(shape: &[usize], strides: &[isize], itemsize: usize) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expected = itemsize as isize;
    for (&n, &s) in shape.iter().zip(strides).rev() {
        if n != 1 && s != expected {
            return false;
        }
        expected *= n as isize;
    }
    true
}

/// A layout flattened to `outer` rows of `inner_len` elements `inner_stride` apart,
/// visited in C order of the logical shape.
#[derive(Clone, Debug)]
pub(crate) struct Walk {
    base: isize,
    outer_shape: Vec<usize>,
    outer_strides: Vec<isize>,
    pub inner_len: usize,
    pub inner_stride: isize,
}

impl Walk {
    pub fn new(shape: &[usize], strides: &[isize], offset: usize, itemsize: usize) -> Walk {
        // Drop length-1 dimensions, then merge dimensions that are contiguous
        // with respect to each other.
        let mut dims: Vec<(usize, isize)> = Vec::with_capacity(shape.len());
        for (&n, &s) in shape.iter().zip(strides) {
            if n == 1 {
                continue;
            }
            if let Some(last) = dims.last_mut() {
                if n != 0 && last.0 != 0 && last.1 == s * n as isize {
                    last.0 *= n;
                    last.1 = s;
                    continue;
                }
            }
            dims.push((n, s));
        }
        let (inner_len, inner_stride) = dims.pop().unwrap_or((1, itemsize as isize));
        let inner_len = if shape.contains(&0) { 0 } else { inner_len };
        Walk {
            base: offset as isize,
            outer_shape: dims.iter().map(|d| d.0).collect(),
            outer_strides: dims.iter().map(|d| d.1).collect(),
            inner_len,
            inner_stride,
        }
    }

    /// Call `f(byte_offset, len)` for each run covering logical elements `[start, end)`.
    pub fn for_each_run(&self, start: usize, end: usize, mut f: impl FnMut(usize, usize)) {
        let l = self.inner_len;
        if l == 0 || start >= end {
            return;
        }
        let mut row = start / l;
        let mut j = start % l;
        // Multi-index of `row` in the outer dimensions.
        let nd = self.outer_shape.len();
        let mut idx = vec![0usize; nd];
        let mut row_off = self.base;
        for k in (0..nd).rev() {
            let n = self.outer_shape[k];
            idx[k] = row % n;
            row_off += idx[k] as isize * self.outer_strides[k];
            row /= n;
        }
        let mut pos = start;
        loop {
            let run = (l - j).min(end - pos);
            f((row_off + j as isize * self.inner_stride) as usize, run);
            pos += run;
            if pos >= end {
                return;
            }
            j = 0;
            for k in (0..nd).rev() {
                idx[k] += 1;
                row_off += self.outer_strides[k];
                if idx[k] < self.outer_shape[k] {
                    break;
                }
                row_off -= self.outer_strides[k] * self.outer_shape[k] as isize;
                idx[k] = 0;
            }
        }
    }
}

/// The multi-index (C order) of flat element `flat` in `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (i, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            idx[i] = flat % n;
            flat /= n;
        }
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(w: &Walk, n: usize, item: isize) -> Vec<usize> {
        let mut out = vec![];
        w.for_each_run(0, n, |off, len| {
            for k in 0..len {
                out.push((off as isize + k as isize * w.inner_stride) as usize / item as usize);
            }
        });
        out
    }

    #[test]
    fn walk_transposed_and_reversed() {
        // 2x3 array stored in Fortran order: element (i, j) at i + 2j.
        let w = Walk::new(&[2, 3], &[4, 8], 0, 4);
        assert_eq!(offsets(&w, 6, 4), vec![0, 2, 4, 1, 3, 5]);
        // Reversed 1-D of 4 elements starting at the last.
        let w = Walk::new(&[4], &[-4], 12, 4);
        assert_eq!(offsets(&w, 4, 4), vec![3, 2, 1, 0]);
        // Contiguous 2x3 merges into one run.
        let w = Walk::new(&[2, 3], &[12, 4], 0, 4);
        assert_eq!(w.inner_len, 6);
    }

    #[test]
    fn walk_partial_ranges() {
        let w = Walk::new(&[3, 2], &[4, 12], 0, 4);
        let all = offsets(&w, 6, 4);
        let mut parts = vec![];
        for (a, b) in [(0, 1), (1, 4), (4, 6)] {
            w.for_each_run(a, b, |off, len| {
                for k in 0..len {
                    parts.push((off as isize + k as isize * w.inner_stride) as usize / 4);
                }
            });
        }
        assert_eq!(all, parts);
    }

    #[test]
    fn rejects_out_of_bounds() {
        let buf = [0u8; 16];
        assert!(
            TensorView::new(&buf, DType::Float32, vec![5], vec![4], 0, ByteOrder::NATIVE).is_err()
        );
        assert!(TensorView::new(
            &buf,
            DType::Float32,
            vec![2],
            vec![-4],
            0,
            ByteOrder::NATIVE
        )
        .is_err());
        assert!(TensorView::new(
            &buf,
            DType::Float32,
            vec![0, 9],
            vec![4, 4],
            0,
            ByteOrder::NATIVE
        )
        .is_ok());
        assert!(TensorView::new(
            &buf,
            DType::Float32,
            vec![usize::MAX, 2],
            vec![0, 0],
            0,
            ByteOrder::NATIVE
        )
        .is_err());
    }
}
