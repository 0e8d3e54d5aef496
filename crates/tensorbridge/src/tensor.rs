//! [`Tensor`]: an immutable n-d array of one dtype over shared, kept-alive storage.

use std::any::Any;
use std::sync::Arc;

use crate::cast as kernels;
use crate::dtype::{ByteOrder, Casting, DType, Element};
use crate::error::{Error, Result};
use crate::layout::{checked_numel, contiguous_strides, resolve_reshape, Layout};
use crate::storage::Storage;
use crate::view::{TensorView, ViewObstacle};

/// Cast `src` to `to` under `casting`, returning a new C-contiguous tensor.
///
/// `Safe` and `SameKind` refuse disallowed pairs before reading anything;
/// `Checked` scans every value first and returns nothing partial. The kernels
/// ([`crate::cast_into`]) write into the tensor's fresh buffer.
pub fn cast(src: &TensorView<'_>, to: DType, casting: Casting) -> Result<Tensor> {
    kernels::check(src, to, casting)?;
    // SAFETY: `convert` writes every element of `dst` (the runs of the walk cover
    // `0..len` exactly) or fails, in which case the buffer is dropped unread.
    unsafe {
        Tensor::build_overwrite(to, src.shape(), |dst| {
            kernels::convert(src, to, casting, dst)
        })
    }
}

/// Storage over foreign memory holding exactly the elements `layout` places
/// relative to `ptr` (element `[0, ..., 0]` at `ptr + layout.offset()`), and the
/// layout rebased onto that storage. Checks that the elements' byte range fits the
/// address space; `owner` keeps the memory alive.
///
/// # Safety
/// Every element of `itemsize` bytes that `layout` places relative to `ptr` must be
/// readable for as long as `owner` lives (nothing is read for an empty layout).
pub unsafe fn foreign_storage(
    ptr: *const u8,
    layout: &Layout,
    itemsize: usize,
    owner: Box<dyn Any + Send + Sync>,
) -> Result<(Storage, Layout)> {
    let (lo, hi) = layout.byte_extent(itemsize)?;
    let base = ptr as usize as i128;
    if base + lo < 0 || base + hi > usize::MAX as i128 {
        return Err(Error::Layout(format!(
            "shape {:?} with strides {:?} at offset {} reaches outside the address space",
            layout.shape(),
            layout.strides(),
            layout.offset()
        )));
    }
    // `lo` is within ±isize::MAX (checked by `byte_extent`); the pointer keeps the
    // provenance of `ptr` and is only dereferenced through `Storage`.
    let start = ptr.wrapping_offset(lo as isize);
    // SAFETY: `[start, start + (hi - lo))` is exactly the bytes the elements occupy,
    // readable while `owner` lives (our caller's contract).
    let storage = unsafe { Storage::foreign(start, (hi - lo) as usize, owner) };
    let rebased = layout
        .clone()
        .with_offset((layout.offset() as i128 - lo) as usize);
    Ok((storage, rebased))
}

/// An immutable tensor: shape, byte strides and an offset into [`Storage`] that it
/// keeps alive.
///
/// Elements are always native byte order and aligned for the dtype. Tensors made
/// by tensorbridge are C-contiguous in 64-byte-aligned memory; views (slices, or
/// tensors over foreign or mapped memory) may be strided. Cloning is cheap and
/// shares the storage.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    dtype: DType,
    layout: Layout,
    is_view: bool,
}

/// One entry of an indexing expression, as in NumPy basic indexing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// A single position (negative counts from the end); removes the dimension.
    At(isize),
    /// A Python slice `start:stop:step` (`None` for omitted bounds).
    Slice {
        /// First position (default: the beginning, or the end when `step < 0`).
        start: Option<isize>,
        /// Position to stop before (default: past the end in the step's direction).
        stop: Option<isize>,
        /// Step (non-zero).
        step: isize,
    },
    /// A new dimension of length 1 (`None` / `np.newaxis`).
    NewAxis,
}

impl Index {
    /// The whole dimension (`:`).
    pub const FULL: Index = Index::Slice {
        start: None,
        stop: None,
        step: 1,
    };
}

/// Resolve a slice against a dimension of length `len` like CPython's
/// `slice.indices`: returns `(start, step, count)`.
fn resolve_slice(
    start: Option<isize>,
    stop: Option<isize>,
    step: isize,
    len: usize,
) -> Result<(isize, isize, usize)> {
    if step == 0 {
        return Err(Error::InvalidArgument("slice step cannot be zero".into()));
    }
    let len = len as isize;
    let clamp = |v: Option<isize>, default: isize| -> isize {
        match v {
            None => default,
            Some(v) => {
                let v = if v < 0 { v + len } else { v };
                if step > 0 {
                    v.clamp(0, len)
                } else {
                    v.clamp(-1, len - 1)
                }
            }
        }
    };
    let (s, e) = if step > 0 {
        (clamp(start, 0), clamp(stop, len))
    } else {
        (clamp(start, len - 1), clamp(stop, -1))
    };
    let count = if step > 0 {
        if e > s {
            (e - s + step - 1) / step
        } else {
            0
        }
    } else if s > e {
        (s - e + (-step) - 1) / (-step)
    } else {
        0
    };
    Ok((s, step, count as usize))
}

impl Tensor {
    /// Allocate a zero-filled C-contiguous tensor and let `fill` write into it.
    pub(crate) fn build(
        dtype: DType,
        shape: &[usize],
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<Tensor> {
        let storage = Storage::zeroed(Self::nbytes_for(dtype, shape)?)?;
        Self::build_in(storage, dtype, shape, fill)
    }

    /// Like [`Tensor::build`] without zeroing first.
    ///
    /// # Safety
    /// `fill` must write every byte of the slice it is given when it returns `Ok`
    /// (on `Err` the buffer is dropped unread).
    pub(crate) unsafe fn build_overwrite(
        dtype: DType,
        shape: &[usize],
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<Tensor> {
        // SAFETY: forwarded to our caller: `fill` overwrites every byte.
        let storage = unsafe { Storage::uninit(Self::nbytes_for(dtype, shape)?)? };
        Self::build_in(storage, dtype, shape, fill)
    }

    fn nbytes_for(dtype: DType, shape: &[usize]) -> Result<usize> {
        checked_numel(shape)?
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::Shape(format!("shape {shape:?} of {dtype} is too large")))
    }

    fn build_in(
        mut storage: Storage,
        dtype: DType,
        shape: &[usize],
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<Tensor> {
        fill(
            storage
                .as_mut_slice()
                .ok_or_else(|| Error::Layout("fresh storage is not writable".into()))?,
        )?;
        Ok(Tensor {
            storage: Arc::new(storage),
            dtype,
            layout: Layout::contiguous(shape, dtype.size())?,
            is_view: false,
        })
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Tensor> {
        Self::build(dtype, shape, |_| Ok(()))
    }

    /// A tensor holding a copy of `data` with `shape`.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        let view = TensorView::from_slice(data, shape)?;
        Self::copy_of(&view)
    }

    /// A fresh, C-contiguous, aligned copy of a view (any layout and byte order).
    pub fn copy_of(view: &TensorView<'_>) -> Result<Tensor> {
        cast(view, view.dtype(), Casting::Unsafe)
    }

    /// A tensor over existing storage. Checks that every element lies inside the
    /// storage and is aligned; `is_view` says whether the bytes belong to something
    /// else (a NumPy array, a file mapping, another tensor).
    pub fn from_storage(
        storage: Arc<Storage>,
        dtype: DType,
        shape: Vec<usize>,
        strides: Vec<isize>,
        offset: usize,
        is_view: bool,
    ) -> Result<Tensor> {
        Self::with_layout(
            storage,
            dtype,
            Layout::new(shape, strides, offset)?,
            is_view,
        )
    }

    /// A tensor of the elements `layout` places in `storage` (see
    /// [`Tensor::from_storage`]).
    pub fn with_layout(
        storage: Arc<Storage>,
        dtype: DType,
        layout: Layout,
        is_view: bool,
    ) -> Result<Tensor> {
        layout.check_within(dtype.size(), storage.len(), &format!("a {dtype} view"))?;
        if !layout.is_aligned(storage.as_ptr() as usize, dtype.alignment()) {
            return Err(Error::Layout(format!(
                "memory at address {:#x} with strides {:?} is not aligned for {dtype} (needs {} bytes)",
                storage.as_ptr() as usize + layout.offset(),
                layout.strides(),
                dtype.alignment()
            )));
        }
        Ok(Tensor {
            storage,
            dtype,
            layout,
            is_view,
        })
    }

    /// The one constructor for memory owned outside tensorbridge (a DLPack
    /// producer, a NumPy array): `dtype` elements placed by `layout` relative to
    /// `ptr` (element `[0, ..., 0]` at `ptr + layout.offset()`), kept alive by `owner`.
    ///
    /// `copy`: `Some(false)` shares the memory or fails with the
    /// [`ViewObstacle`]; `None` shares it when the elements are aligned for `dtype`
    /// and copies otherwise; `Some(true)` always copies. After a copy `owner` is
    /// dropped before this returns; a shared tensor keeps it until the last tensor
    /// over the memory goes. Elements must be native-order.
    ///
    /// # Safety
    /// Every element `layout` places relative to `ptr` must be readable, and not
    /// written by anyone, for as long as `owner` lives.
    pub unsafe fn from_foreign(
        ptr: *const u8,
        dtype: DType,
        layout: Layout,
        owner: Box<dyn Any + Send + Sync>,
        copy: Option<bool>,
    ) -> Result<Tensor> {
        // SAFETY: forwarded to our caller.
        let (storage, layout) = unsafe { foreign_storage(ptr, &layout, dtype.size(), owner)? };
        let aligned = layout.is_aligned(storage.as_ptr() as usize, dtype.alignment());
        if !aligned && copy == Some(false) {
            return Err(ViewObstacle::Misaligned { dtype }.into_error());
        }
        if aligned && copy != Some(true) {
            return Self::with_layout(Arc::new(storage), dtype, layout, true);
        }
        let view = TensorView::with_layout(storage.as_slice(), dtype, layout, ByteOrder::NATIVE)?;
        Self::copy_of(&view)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }

    /// Where the elements lie in [`Tensor::storage`].
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Byte strides, one per dimension.
    pub fn strides(&self) -> &[isize] {
        self.layout.strides()
    }

    /// Byte offset of the first element within the storage.
    pub fn offset(&self) -> usize {
        self.layout.offset()
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.layout.ndim()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.layout.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the elements occupy (`len() * dtype().size()`).
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// Whether the tensor shares memory it did not allocate for itself: a zero-copy
    /// view of foreign or mapped memory, or a slice/reshape of another tensor.
    pub fn is_view(&self) -> bool {
        self.is_view
    }

    /// Whether the elements are C-contiguous.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_c_contiguous(self.dtype.size())
    }

    /// The shared storage.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// Address of the first element.
    pub fn data_ptr(&self) -> *const u8 {
        self.storage.as_ptr().wrapping_add(self.layout.offset())
    }

    /// A borrowed view for reading (and casting) the elements.
    pub fn view(&self) -> TensorView<'_> {
        // Tensors are only built over layouts checked to fit their storage, so
        // this cannot fail; an empty view stands in should it ever.
        TensorView::with_layout(
            self.storage.as_slice(),
            self.dtype,
            self.layout.clone(),
            ByteOrder::NATIVE,
        )
        .unwrap_or_else(|_| {
            TensorView::contiguous(&[], self.dtype, &[0]).expect("an empty view is valid")
        })
    }

    /// The elements' bytes, if C-contiguous.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        self.is_contiguous()
            .then(|| &self.storage.as_slice()[self.offset()..self.offset() + self.nbytes()])
    }

    /// The elements as a typed slice, if C-contiguous and `T` is the dtype.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        if T::DTYPE != self.dtype {
            return None;
        }
        bytemuck::try_cast_slice(self.as_bytes()?).ok()
    }

    /// The elements in C order as a `Vec<T>`; `T` must be the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(Error::InvalidArgument(format!(
                "to_vec::<{}> on a {} tensor",
                T::DTYPE,
                self.dtype
            )));
        }
        let c = self.to_contiguous()?;
        Ok(c.as_slice::<T>().map(|s| s.to_vec()).unwrap_or_default())
    }

    /// NumPy's truth value: whether the one element is non-zero (NaN counts as
    /// true; complex when either part is non-zero). Empty tensors and tensors of
    /// more than one element have none (an ambiguity error, as in NumPy).
    pub fn truth(&self) -> Result<bool> {
        match self.len() {
            0 => Err(Error::InvalidArgument(
                "The truth value of an empty tensor is ambiguous. Use `t.size > 0` to check that a tensor is not empty.".into(),
            )),
            1 => {
                let b = self.cast(DType::Bool, Casting::Unsafe)?;
                Ok(b.as_bytes().is_some_and(|bytes| bytes.iter().any(|&x| x != 0)))
            }
            _ => Err(Error::InvalidArgument(
                "The truth value of a tensor with more than one element is ambiguous. Use a.any() or a.all() (tf.reduce_any / tf.reduce_all).".into(),
            )),
        }
    }

    /// Cast to `to` under `casting` (always a new tensor).
    pub fn cast(&self, to: DType, casting: Casting) -> Result<Tensor> {
        cast(&self.view(), to, casting)
    }

    /// A fresh, independent, C-contiguous copy.
    pub fn deep_copy(&self) -> Result<Tensor> {
        Self::copy_of(&self.view())
    }

    /// `self` if already C-contiguous, else a contiguous copy.
    pub fn to_contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            Ok(self.clone())
        } else {
            self.deep_copy()
        }
    }

    /// A view of this tensor's storage; `layout` is within it by construction.
    fn derived(&self, shape: Vec<usize>, strides: Vec<isize>, offset: usize) -> Result<Tensor> {
        Ok(Tensor {
            storage: self.storage.clone(),
            dtype: self.dtype,
            layout: Layout::new(shape, strides, offset)?,
            is_view: true,
        })
    }

    /// Reshape to `shape` (one entry may be `-1`, inferred). A view when the tensor is
    /// C-contiguous, otherwise a copy.
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let new = resolve_reshape(self.shape(), shape)?;
        let base = self.to_contiguous()?;
        let strides = contiguous_strides(&new, self.dtype.size());
        let mut t = base.derived(new, strides, base.offset())?;
        t.is_view = base.is_view || self.is_contiguous();
        Ok(t)
    }

    /// Reorder dimensions (`axes` is a permutation of `0..ndim`); a view.
    pub fn permute(&self, axes: &[usize]) -> Result<Tensor> {
        let nd = self.ndim();
        let mut seen = vec![false; nd];
        if axes.len() != nd
            || axes
                .iter()
                .any(|&a| a >= nd || std::mem::replace(&mut seen[a], true))
        {
            return Err(Error::InvalidArgument(format!(
                "axes {axes:?} are not a permutation of 0..{nd}"
            )));
        }
        let shape = axes.iter().map(|&a| self.shape()[a]).collect();
        let strides = axes.iter().map(|&a| self.strides()[a]).collect();
        self.derived(shape, strides, self.offset())
    }

    /// NumPy basic indexing: integers, slices and new axes; dimensions not named
    /// are kept whole. Always a view.
    pub fn index(&self, items: &[Index]) -> Result<Tensor> {
        let consumed = items
            .iter()
            .filter(|i| !matches!(i, Index::NewAxis))
            .count();
        if consumed > self.ndim() {
            return Err(Error::Index(format!(
                "too many indices for tensor: tensor is {}-dimensional, but {consumed} were indexed",
                self.ndim()
            )));
        }
        let mut shape = Vec::new();
        let mut strides = Vec::new();
        let mut offset = self.offset() as isize;
        let mut dim = 0usize;
        for item in items
            .iter()
            .chain(std::iter::repeat_n(&Index::FULL, self.ndim() - consumed))
        {
            match *item {
                Index::NewAxis => {
                    shape.push(1);
                    strides.push(0);
                }
                Index::At(i) => {
                    let n = self.shape()[dim] as isize;
                    let j = if i < 0 { i + n } else { i };
                    if j < 0 || j >= n {
                        return Err(Error::Index(format!(
                            "index {i} is out of bounds for axis {dim} with size {n}"
                        )));
                    }
                    offset += j * self.strides()[dim];
                    dim += 1;
                }
                Index::Slice { start, stop, step } => {
                    let (s, st, count) = resolve_slice(start, stop, step, self.shape()[dim])?;
                    if count > 0 {
                        offset += s * self.strides()[dim];
                    }
                    shape.push(count);
                    strides.push(self.strides()[dim] * st);
                    dim += 1;
                }
            }
        }
        // Bounds follow from the checks above; re-validated for safety.
        let out = self.derived(shape, strides, offset.max(0) as usize)?;
        let fits = out
            .layout
            .check_within(self.dtype.size(), self.storage.len(), "an index");
        if offset < 0 || fits.is_err() {
            return Err(Error::Index("index out of bounds".into()));
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arange(n: usize) -> Tensor {
        let v: Vec<i64> = (0..n as i64).collect();
        Tensor::from_slice(&v, &[n]).unwrap()
    }

    #[test]
    fn slicing_like_python() {
        let t = arange(10);
        let s = |a, b, c| {
            t.index(&[Index::Slice {
                start: a,
                stop: b,
                step: c,
            }])
            .unwrap()
            .to_vec::<i64>()
            .unwrap()
        };
        assert_eq!(s(Some(2), Some(8), 3), vec![2, 5]);
        assert_eq!(s(None, None, -1), (0..10).rev().collect::<Vec<_>>());
        assert_eq!(s(Some(-3), None, 1), vec![7, 8, 9]);
        assert_eq!(s(Some(8), Some(2), -2), vec![8, 6, 4]);
        assert_eq!(s(Some(5), Some(5), 1), Vec::<i64>::new());
        assert!(t.index(&[Index::At(10)]).is_err());
        assert_eq!(
            t.index(&[Index::At(-1)]).unwrap().to_vec::<i64>().unwrap(),
            vec![9]
        );
    }

    #[test]
    fn reshape_views_and_copies() {
        let t = arange(12).reshape(&[3, 4]).unwrap();
        assert!(t.is_view());
        assert_eq!(t.shape(), &[3, 4]);
        let col = t.index(&[Index::FULL, Index::At(1)]).unwrap();
        assert_eq!(col.to_vec::<i64>().unwrap(), vec![1, 5, 9]);
        let r = col.reshape(&[-1, 1]).unwrap();
        assert_eq!(r.shape(), &[3, 1]);
        assert!(t.reshape(&[5, -1]).is_err());
        let tt = t.permute(&[1, 0]).unwrap();
        assert_eq!(
            tt.index(&[Index::At(0)]).unwrap().to_vec::<i64>().unwrap(),
            vec![0, 4, 8]
        );
    }

    #[test]
    fn truth_like_numpy() {
        let t = |v: &[f32], s: &[usize]| Tensor::from_slice(v, s).unwrap().truth();
        assert!(!t(&[0.0], &[1]).unwrap());
        assert!(!t(&[-0.0], &[]).unwrap());
        assert!(t(&[f32::NAN], &[1, 1]).unwrap());
        assert!(t(&[], &[0]).unwrap_err().to_string().contains("empty"));
        assert!(t(&[1.0, 2.0], &[2])
            .unwrap_err()
            .to_string()
            .contains("ambiguous"));
        let c = Tensor::from_slice(&[crate::Complex::new(0.0f32, 1.0)], &[]).unwrap();
        assert!(c.truth().unwrap());
    }

    #[test]
    fn from_foreign_shares_copies_or_refuses() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Owner(Arc<AtomicUsize>, #[allow(dead_code)] Vec<f32>);
        impl Drop for Owner {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let owner = || Box::new(Owner(drops.clone(), vec![0.0, 1.0, 2.0, 3.0]));
        // Reversed view of the owner's four floats: element 0 at byte 12.
        let layout = Layout::new(vec![4], vec![-4], 12).unwrap();
        let o = owner();
        let ptr = o.1.as_ptr() as *const u8;
        // SAFETY: the owner's vector holds the four floats the layout describes.
        let t =
            unsafe { Tensor::from_foreign(ptr, DType::Float32, layout.clone(), o, None) }.unwrap();
        assert!(t.is_view());
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![3.0, 2.0, 1.0, 0.0]);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "shared: the owner stays");
        drop(t);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let o = owner();
        let ptr = o.1.as_ptr() as *const u8;
        // SAFETY: as above.
        let t =
            unsafe { Tensor::from_foreign(ptr, DType::Float32, layout, o, Some(true)) }.unwrap();
        assert!(!t.is_view());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "copied: the owner went at once"
        );
        // Misaligned: byte offset 1 into the floats' bytes.
        let o = owner();
        let ptr = o.1.as_ptr() as *const u8;
        let odd = Layout::new(vec![2], vec![4], 1).unwrap();
        // SAFETY: bytes 1..9 of the 16 the owner holds.
        let err = unsafe { Tensor::from_foreign(ptr, DType::Float32, odd.clone(), o, Some(false)) }
            .unwrap_err()
            .to_string();
        assert!(err.contains("not aligned"), "{err}");
        let o = owner();
        let ptr = o.1.as_ptr() as *const u8;
        // SAFETY: as above.
        let t = unsafe { Tensor::from_foreign(ptr, DType::Float32, odd, o, None) }.unwrap();
        assert!(!t.is_view() && t.data_ptr() as usize % 64 == 0);
    }
}
