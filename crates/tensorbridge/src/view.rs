//! [`TensorView`]: a borrowed, possibly strided, byte-swapped or unaligned
//! description of elements in someone else's bytes — what casts read from.

use std::fmt;

use crate::dtype::{ByteOrder, DType, Element};
use crate::error::{Error, Result};
use crate::layout::{Layout, Walk};

// Layout helpers, re-exported here where they used to live.
pub use crate::layout::{
    checked_numel, contiguous_strides, is_c_contiguous, resolve_reshape, unravel, MAX_NDIM,
};

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
    layout: Layout,
    byte_order: ByteOrder,
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
        Self::with_layout(
            bytes,
            dtype,
            Layout::new(shape, strides, offset)?,
            byte_order,
        )
    }

    /// A view of the elements `layout` places in `bytes`, stored in `byte_order`.
    /// Checks that every element lies inside `bytes`.
    pub fn with_layout(
        bytes: &'a [u8],
        dtype: DType,
        layout: Layout,
        byte_order: ByteOrder,
    ) -> Result<Self> {
        layout.check_within(dtype.size(), bytes.len(), &format!("a {dtype} view"))?;
        Ok(TensorView {
            bytes,
            dtype,
            layout,
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
        Self::with_layout(
            bytes,
            dtype,
            Layout::contiguous(shape, dtype.size())?,
            ByteOrder::NATIVE,
        )
    }

    /// A C-contiguous view of a typed slice.
    pub fn from_slice<T: Element>(data: &'a [T], shape: &[usize]) -> Result<Self> {
        Self::contiguous(bytemuck::cast_slice(data), T::DTYPE, shape)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }

    /// Where the elements lie in [`TensorView::bytes`].
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Byte strides, one per dimension.
    pub fn strides(&self) -> &[isize] {
        self.layout.strides()
    }

    /// Byte offset of the first element (index `[0, 0, ...]`) in the buffer.
    pub fn offset(&self) -> usize {
        self.layout.offset()
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
        self.layout.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether elements are C-contiguous (row-major, no gaps).
    pub fn is_c_contiguous(&self) -> bool {
        self.layout.is_c_contiguous(self.dtype.size())
    }

    /// Whether every element's address is a multiple of the dtype's alignment
    /// (always true for an empty view).
    pub fn is_aligned(&self) -> bool {
        self.layout
            .is_aligned(self.bytes.as_ptr() as usize, self.dtype.alignment())
    }

    /// Why these elements cannot be used as they lie as a tensor of `target`
    /// (C-contiguous if `require_contiguous`; see [`ViewObstacle::find`]); `None`
    /// when they can.
    pub fn obstacle(&self, target: DType, require_contiguous: bool) -> Option<ViewObstacle> {
        ViewObstacle::find(
            self.dtype,
            self.byte_order,
            &self.layout,
            self.bytes.as_ptr() as usize,
            target,
            require_contiguous,
        )
    }

    /// The elements' bytes when the view is C-contiguous and native-order.
    pub fn contiguous_bytes(&self) -> Option<&'a [u8]> {
        if self.is_c_contiguous() && !self.byte_order.is_swapped() {
            let n = self.len() * self.dtype.size();
            let off = self.layout.offset();
            Some(&self.bytes[off..off + n])
        } else {
            None
        }
    }

    /// The layout reduced to runs along the innermost dimension, for kernels.
    pub(crate) fn walk(&self) -> Walk {
        self.layout.walk(self.dtype.size())
    }
}

/// Why memory cannot be used as it lies (`copy=False`, a memory map, a zero-copy
/// import), in the order they are looked for. One message per obstacle
/// (`Display`); [`ViewObstacle::into_error`] words the `copy=False` refusal, and a
/// caller with another context wraps the message its own way (a file that cannot
/// be memory-mapped: `ViewObstacle::find(stored, order, &layout, 0, target, false)`
/// with the layout at the data offset, a mapping being page-aligned).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViewObstacle {
    /// A different dtype was asked for: a cast needs a copy.
    DTypeChanges {
        /// The stored dtype.
        from: DType,
        /// The dtype asked for.
        to: DType,
    },
    /// The elements are stored in the other byte order.
    ByteSwapped,
    /// The elements are not C-contiguous where a contiguous tensor is needed.
    NotContiguous {
        /// The byte strides found.
        strides: Vec<isize>,
    },
    /// Some element is not aligned for its dtype.
    Misaligned {
        /// The dtype whose alignment is missed.
        dtype: DType,
    },
}

impl ViewObstacle {
    /// The first obstacle to using elements of `stored` dtype in `order`, placed by
    /// `layout` in a buffer starting at address `base`, as a native tensor of
    /// `target`: a dtype change, a byte swap, (if `require_contiguous`) a
    /// non-C-contiguous layout, misalignment. `None` when there is none.
    pub fn find(
        stored: DType,
        order: ByteOrder,
        layout: &Layout,
        base: usize,
        target: DType,
        require_contiguous: bool,
    ) -> Option<ViewObstacle> {
        if target != stored {
            Some(ViewObstacle::DTypeChanges {
                from: stored,
                to: target,
            })
        } else if order.is_swapped() && stored.size() > 1 {
            Some(ViewObstacle::ByteSwapped)
        } else if require_contiguous && !layout.is_c_contiguous(stored.size()) {
            Some(ViewObstacle::NotContiguous {
                strides: layout.strides().to_vec(),
            })
        } else if !layout.is_aligned(base, stored.alignment()) {
            Some(ViewObstacle::Misaligned { dtype: stored })
        } else {
            None
        }
    }

    /// The error for `copy=False` meeting this obstacle.
    pub fn into_error(self) -> Error {
        Error::Layout(format!(
            "copy=False but a zero-copy tensor is impossible: {self}"
        ))
    }
}

impl fmt::Display for ViewObstacle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewObstacle::DTypeChanges { from, to } => {
                write!(
                    f,
                    "the dtype changes from {from} to {to} (a cast needs a copy)"
                )
            }
            ViewObstacle::ByteSwapped => {
                write!(f, "the data is byte-swapped (non-native byte order)")
            }
            ViewObstacle::NotContiguous { strides } => {
                write!(f, "the data is not C-contiguous (strides {strides:?})")
            }
            ViewObstacle::Misaligned { dtype } => write!(
                f,
                "the data is not aligned for {dtype} elements ({} bytes)",
                dtype.alignment()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obstacles_in_order() {
        let data = [1.0f32, 2.0, 3.0, 4.0];
        let v = TensorView::from_slice(&data, &[4]).unwrap();
        assert_eq!(v.obstacle(DType::Float32, true), None);
        assert_eq!(
            v.obstacle(DType::Float64, true),
            Some(ViewObstacle::DTypeChanges {
                from: DType::Float32,
                to: DType::Float64
            })
        );
        let bytes: &[u8] = bytemuck::cast_slice(&data);
        let strided = TensorView::new(
            bytes,
            DType::Float32,
            vec![2],
            vec![8],
            0,
            ByteOrder::NATIVE,
        )
        .unwrap();
        assert!(strided.obstacle(DType::Float32, false).is_none());
        let o = strided.obstacle(DType::Float32, true).unwrap();
        assert_eq!(o.to_string(), "the data is not C-contiguous (strides [8])");
        let odd = TensorView::new(
            bytes,
            DType::Float32,
            vec![2],
            vec![4],
            1,
            ByteOrder::NATIVE,
        )
        .unwrap();
        let err = odd
            .obstacle(DType::Float32, true)
            .unwrap()
            .into_error()
            .to_string();
        assert!(
            err.contains("copy=False") && err.contains("not aligned"),
            "{err}"
        );
        let swapped =
            TensorView::new(bytes, DType::Float32, vec![4], vec![4], 0, ByteOrder::Big).unwrap();
        assert_eq!(
            swapped.obstacle(DType::Float32, true),
            Some(ViewObstacle::ByteSwapped)
        );
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
