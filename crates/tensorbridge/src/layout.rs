//! [`Layout`]: where the elements of an n-d array lie in a buffer — shape, byte
//! strides and the byte offset of element `[0, ..., 0]` — and the rules about
//! layouts that every other module uses: the one byte extent, the one contiguity
//! test, the one alignment test, reshape resolution and C-order walks.
//!
//! A layout knows nothing of dtypes beyond an item size; [`crate::TensorView`],
//! [`crate::Tensor`], DLPack and the Python binding all describe memory with it.

use crate::error::{Error, Result};

/// Most dimensions a tensor may have (NumPy 2 allows 64).
pub const MAX_NDIM: usize = 64;

/// Shape, byte strides (one per dimension, any sign) and the byte offset of the
/// first element (index `[0, ..., 0]`) within some buffer.
///
/// Construction checks only what needs no buffer: as many strides as dimensions,
/// at most [`MAX_NDIM`] dimensions, and an element count that fits `usize`.
/// Whether the elements fit a particular buffer is [`Layout::check_within`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<isize>,
    offset: usize,
}

impl Layout {
    /// A layout of `shape` with byte `strides`, first element at byte `offset`.
    pub fn new(shape: Vec<usize>, strides: Vec<isize>, offset: usize) -> Result<Layout> {
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
        Ok(Layout {
            shape,
            strides,
            offset,
        })
    }

    /// The C-contiguous (row-major, no gaps) layout of `shape` for items of
    /// `itemsize` bytes, starting at byte 0.
    pub fn contiguous(shape: &[usize], itemsize: usize) -> Result<Layout> {
        Layout::new(shape.to_vec(), contiguous_strides(shape, itemsize), 0)
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Byte strides, one per dimension.
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    /// Byte offset of the first element.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.shape.contains(&0)
    }

    /// The same elements with the first one at byte `offset`.
    pub fn with_offset(mut self, offset: usize) -> Layout {
        self.offset = offset;
        self
    }

    /// Split into `(shape, strides, offset)`.
    pub fn into_parts(self) -> (Vec<usize>, Vec<isize>, usize) {
        (self.shape, self.strides, self.offset)
    }

    /// The byte range `[lo, hi)` the elements touch, counted from the start of the
    /// buffer (so `lo` is negative when a negative stride reaches before it). An
    /// empty layout touches nothing: `lo == hi == offset`. An error when the range
    /// is larger than any allocation can be (`isize::MAX` bytes).
    pub fn byte_extent(&self, itemsize: usize) -> Result<(i128, i128)> {
        let off = self.offset as i128;
        if self.is_empty() {
            return Ok((off, off));
        }
        let (mut lo, mut hi) = (off, off + itemsize as i128);
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            // |(n - 1) * s| < 2^127 and the sum of 64 of them is checked.
            let span = (n as i128 - 1) * s as i128;
            let side = if span < 0 { &mut lo } else { &mut hi };
            *side = side.checked_add(span).ok_or_else(|| self.too_large())?;
        }
        if hi - lo > isize::MAX as i128 {
            return Err(self.too_large());
        }
        Ok((lo, hi))
    }

    fn too_large(&self) -> Error {
        Error::Layout(format!(
            "shape {:?} with strides {:?} spans more memory than can exist",
            self.shape, self.strides
        ))
    }

    /// Check that every element of `itemsize` bytes lies inside a buffer of
    /// `buffer_len` bytes; `what` names the elements in the error (`"a float32 view"`).
    pub fn check_within(&self, itemsize: usize, buffer_len: usize, what: &str) -> Result<()> {
        let (lo, hi) = self.byte_extent(itemsize)?;
        if lo < 0 || hi > buffer_len as i128 {
            return Err(Error::Layout(format!(
                "{what} of shape {:?}, strides {:?} at offset {} reaches bytes [{lo}, {hi}) outside a buffer of {buffer_len} bytes",
                self.shape, self.strides, self.offset
            )));
        }
        Ok(())
    }

    /// Whether the elements are C-contiguous (row-major, no gaps).
    pub fn is_c_contiguous(&self, itemsize: usize) -> bool {
        is_c_contiguous(&self.shape, &self.strides, itemsize)
    }

    /// Whether every element is aligned to `align` bytes when the buffer starts at
    /// address `base`. Empty layouts read nothing and count as aligned; dimensions
    /// of length 1 never use their stride.
    pub fn is_aligned(&self, base: usize, align: usize) -> bool {
        self.is_empty()
            || (base.wrapping_add(self.offset) % align == 0
                && self
                    .strides
                    .iter()
                    .zip(&self.shape)
                    .all(|(&s, &n)| n <= 1 || s.unsigned_abs() % align == 0))
    }

    /// The layout reduced to runs along the innermost dimension, for kernels.
    pub(crate) fn walk(&self, itemsize: usize) -> Walk {
        Walk::new(&self.shape, &self.strides, self.offset, itemsize)
    }
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

/// Whether `strides` describe a C-contiguous layout of `shape` (the one
/// contiguity test; [`Layout::is_c_contiguous`] calls it).
pub fn is_c_contiguous(shape: &[usize], strides: &[isize], itemsize: usize) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expected = itemsize as isize;
    for (&n, &s) in shape.iter().zip(strides).rev() {
        if n != 1 && s != expected {
            return false;
        }
        expected = expected.wrapping_mul(n as isize);
    }
    true
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
    fn extent_contiguity_alignment() {
        let l = Layout::new(vec![2, 3], vec![12, -4], 8).unwrap();
        assert_eq!(l.byte_extent(4).unwrap(), (0, 24));
        assert!(!l.is_c_contiguous(4));
        assert!(l.check_within(4, 24, "x").is_ok());
        assert!(l.check_within(4, 23, "x").is_err());
        assert!(l.is_aligned(64, 4));
        assert!(!l.is_aligned(66, 4));
        let c = Layout::contiguous(&[2, 3], 4).unwrap();
        assert!(c.is_c_contiguous(4));
        assert_eq!(c.byte_extent(4).unwrap(), (0, 24));
        // Empty: touches nothing, aligned anywhere.
        let e = Layout::new(vec![0, 5], vec![3, 1], 7).unwrap();
        assert_eq!(e.byte_extent(8).unwrap(), (7, 7));
        assert!(e.is_aligned(1, 8));
        // Too large to exist.
        let big = Layout::new(vec![2, 2], vec![isize::MAX, isize::MAX], 0).unwrap();
        assert!(big.byte_extent(1).is_err());
        assert!(Layout::new(vec![1], vec![], 0).is_err());
        assert!(Layout::new(vec![usize::MAX, 2], vec![0, 0], 0).is_err());
    }
}
