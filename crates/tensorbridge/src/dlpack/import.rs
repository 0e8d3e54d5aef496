//! Import: validate a foreign `DLTensor` and make a [`Tensor`] over its memory
//! (through [`Tensor::from_foreign`]) or a copy of it.

use super::abi::*;
use super::ManagedTensor;
use crate::dtype::{ByteOrder, DType};
use crate::error::{Error, Result};
use crate::layout::{checked_numel, contiguous_strides, Layout, MAX_NDIM};
use crate::tensor::Tensor;
use crate::view::ViewObstacle;

/// Where the elements of an importable `DLTensor` are: `layout` (its offset is
/// `byte_offset`) relative to `data`.
struct Foreign {
    dtype: DType,
    data: *const u8,
    layout: Layout,
}

impl ManagedTensor {
    /// Validate the `DLTensor` and work out where its elements are.
    fn foreign(&self) -> Result<Foreign> {
        let dl = self.dl_tensor()?;
        let bad = |why: String| Error::InvalidArgument(format!("invalid DLPack tensor: {why}"));
        if !dl.device.device_type.is_host() {
            return Err(Error::InvalidArgument(format!(
                "the DLPack tensor is on device {}; tensorbridge can only import CPU memory \
                 (device support is not implemented yet)",
                dl.device
            )));
        }
        let dtype = dtype_from_dl(dl.dtype)?;
        let item = dtype.size();
        let ndim = usize::try_from(dl.ndim)
            .map_err(|_| bad(format!("negative number of dimensions {}", dl.ndim)))?;
        if ndim > MAX_NDIM {
            return Err(bad(format!(
                "{ndim} dimensions; at most {MAX_NDIM} are supported"
            )));
        }
        if ndim > 0 && dl.shape.is_null() {
            return Err(bad(format!("{ndim} dimensions but shape is NULL")));
        }
        let raw_shape: &[i64] = if ndim == 0 {
            &[]
        } else {
            // SAFETY: `shape` points to `ndim` readable `i64`s (constructor contract),
            // checked non-NULL above.
            unsafe { std::slice::from_raw_parts(dl.shape, ndim) }
        };
        let shape = raw_shape
            .iter()
            .map(|&n| usize::try_from(n).map_err(|_| bad(format!("negative dimension {n}"))))
            .collect::<Result<Vec<usize>>>()?;
        let numel = checked_numel(&shape)?;
        numel
            .checked_mul(item)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| bad(format!("shape {shape:?} of {dtype} is too large")))?;
        let strides: Vec<isize> = if dl.strides.is_null() || ndim == 0 {
            contiguous_strides(&shape, item)
        } else {
            // SAFETY: non-NULL `strides` points to `ndim` readable `i64`s.
            let raw = unsafe { std::slice::from_raw_parts(dl.strides, ndim) };
            raw.iter()
                .map(|&s| {
                    (s as i128)
                        .checked_mul(item as i128)
                        .and_then(|b| isize::try_from(b).ok())
                        .ok_or_else(|| bad(format!("stride {s} is too large")))
                })
                .collect::<Result<Vec<isize>>>()?
        };
        if numel > 0 && dl.data.is_null() {
            return Err(bad(format!(
                "data is NULL but the tensor has {numel} elements"
            )));
        }
        // Nothing is read from an empty tensor: any pointer and offset will do.
        let offset = if numel == 0 {
            0
        } else {
            usize::try_from(dl.byte_offset)
                .map_err(|_| bad(format!("byte_offset {} overflows", dl.byte_offset)))?
        };
        let layout = Layout::new(shape, strides, offset)?;
        // The elements' byte range, relative to `data`, must exist.
        let (lo, hi) = layout.byte_extent(item).map_err(|e| bad(e.to_string()))?;
        let base = dl.data as usize as i128;
        if numel > 0 && (base + lo < 0 || base + hi > usize::MAX as i128) {
            return Err(bad(format!(
                "shape {:?} with strides {:?} reaches outside the address space",
                layout.shape(),
                layout.strides()
            )));
        }
        Ok(Foreign {
            dtype,
            data: dl.data as *const u8,
            layout,
        })
    }

    /// Check, without consuming anything, that [`ManagedTensor::into_tensor`] with
    /// this `copy` would succeed (device, dtype, layout, alignment).
    pub fn check_import(&self, copy: Option<bool>) -> Result<()> {
        let f = self.foreign()?;
        if copy == Some(false) {
            // DLPack tensors may be strided: only alignment stands in the way.
            let obstacle = ViewObstacle::find(
                f.dtype,
                ByteOrder::NATIVE,
                &f.layout,
                f.data as usize,
                f.dtype,
                false,
            );
            if let Some(o) = obstacle {
                return Err(o.into_error());
            }
        }
        Ok(())
    }

    /// Import as a [`Tensor`].
    ///
    /// Zero-copy when the elements are aligned for their dtype and `copy` is not
    /// `Some(true)`: the tensor's storage then owns this managed tensor and calls its
    /// deleter once, when the last tensor sharing the memory is dropped. Otherwise
    /// the elements are copied into a fresh aligned tensor and the deleter runs
    /// before this returns. `copy == Some(false)` with unaligned data is an error.
    /// On any error `self` is dropped, so the deleter has run.
    pub fn into_tensor(self, copy: Option<bool>) -> Result<Tensor> {
        self.check_import(copy)?;
        let Foreign {
            dtype,
            data,
            layout,
        } = self.foreign()?;
        // SAFETY: the constructor's contract: every element the `DLTensor`
        // describes (`layout` relative to `data`) is readable while the managed
        // tensor lives, and `from_foreign` makes the storage own it (or drops it
        // after copying). Tensors never write to foreign storage.
        unsafe { Tensor::from_foreign(data, dtype, layout, Box::new(self), copy) }
    }
}
