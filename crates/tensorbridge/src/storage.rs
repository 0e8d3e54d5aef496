//! Bytes a tensor points at, and whoever keeps them alive.
//!
//! One of the few modules with `unsafe`: raw allocation, foreign memory and the
//! slices over them. Everything above this module works with `&[u8]`.

use std::alloc::{self, Layout};
use std::any::Any;
use std::fmt;
use std::ptr::NonNull;

use crate::error::{Error, Result};

/// Alignment of every buffer tensorbridge allocates: what TensorFlow requires of
/// memory it imports and what AVX-512 loads like.
pub const ALIGNMENT: usize = 64;

/// Buffers at least this large sit on a 2 MiB boundary and are advised to use
/// transparent huge pages: page faults dominate fresh large buffers otherwise (a
/// fault costs ~3 µs on this VM). All buffers come from the heap, which — like
/// NumPy's allocations — recycles memory that is already faulted in.
const HUGE_THRESHOLD: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

enum Owner {
    /// A heap allocation with this layout; freed on drop.
    Heap(Layout),
    /// A read-only file mapping; unmapped when dropped.
    File(#[allow(dead_code)] memmap2::Mmap),
    /// Memory that belongs to someone else, kept alive by holding this value.
    Foreign(#[allow(dead_code)] Box<dyn Any + Send + Sync>),
}

/// A contiguous run of bytes that stays valid as long as this value lives.
///
/// Tensors hold storage in an `Arc`; views share it. Storage is never written to
/// after it has been shared (tensors are immutable), except through
/// [`Storage::as_mut_slice`], which needs unique access.
pub struct Storage {
    ptr: NonNull<u8>,
    len: usize,
    owner: Owner,
    writable: bool,
}

// SAFETY: `Storage` owns its allocation or holds an owner that is `Send + Sync`;
// the bytes are only read through `&self`, and written only through `&mut self`.
unsafe impl Send for Storage {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for Storage {}

impl Storage {
    /// A new zero-filled buffer of `len` bytes, 64-byte aligned (2 MiB aligned and
    /// huge-page advised when large).
    pub fn zeroed(len: usize) -> Result<Storage> {
        Self::allocate(len, true)
    }

    /// A new buffer of `len` bytes whose contents are unspecified.
    ///
    /// # Safety
    /// The caller must overwrite every byte (through [`Storage::as_mut_slice`]) before
    /// any byte is read and before the storage is shared. Used by the cast kernels,
    /// which write each output element exactly once: skipping the zeroing pass is
    /// worth ~30% of a cast.
    pub(crate) unsafe fn uninit(len: usize) -> Result<Storage> {
        Self::allocate(len, false)
    }

    fn allocate(len: usize, zero: bool) -> Result<Storage> {
        let huge = len >= HUGE_THRESHOLD;
        let align = if huge { HUGE_PAGE } else { ALIGNMENT };
        let layout = Layout::from_size_align(len.max(1), align).map_err(|_| Error::Alloc(len))?;
        // SAFETY: the layout has non-zero size.
        let raw = unsafe {
            if zero {
                alloc::alloc_zeroed(layout)
            } else {
                alloc::alloc(layout)
            }
        };
        let ptr = NonNull::new(raw).ok_or(Error::Alloc(len))?;
        #[cfg(all(target_os = "linux", not(miri)))] // advice only; Miri cannot call madvise
        if huge {
            // SAFETY: advisory only, over memory we own; failure is harmless.
            unsafe { libc::madvise(raw as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        }
        Ok(Storage {
            ptr,
            len,
            owner: Owner::Heap(layout),
            writable: true,
        })
    }

    /// Storage over memory that someone else owns.
    ///
    /// # Safety
    /// `ptr .. ptr + len` must be readable for as long as `owner` is alive, and must
    /// not be freed or remapped while it is. Concurrent writes by the owner are the
    /// caller's responsibility (as with any NumPy view).
    pub unsafe fn foreign(
        ptr: *const u8,
        len: usize,
        owner: Box<dyn Any + Send + Sync>,
    ) -> Storage {
        Storage {
            ptr: NonNull::new(ptr as *mut u8).unwrap_or(NonNull::dangling()),
            len,
            owner: Owner::Foreign(owner),
            writable: false,
        }
    }

    /// Storage over a read-only file mapping, which it owns (and unmaps when the last
    /// tensor using it goes). The file may be closed or deleted meanwhile; as with any
    /// mapping, truncating the file underneath it is the one thing that stays unsafe.
    pub fn from_mmap(map: memmap2::Mmap) -> Storage {
        Storage {
            ptr: NonNull::new(map.as_ptr() as *mut u8).unwrap_or(NonNull::dangling()),
            len: map.len(),
            owner: Owner::File(map),
            writable: false,
        }
    }

    /// Whether the bytes are a file mapping.
    pub fn is_mapped_file(&self) -> bool {
        matches!(self.owner, Owner::File(_))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the storage holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of the first byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Whether tensorbridge allocated these bytes (as opposed to borrowing them).
    pub fn is_owned(&self) -> bool {
        !matches!(self.owner, Owner::Foreign(_) | Owner::File(_))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr .. ptr + len` is valid for reads while `self` lives (our own
        // zero-initialised allocation, or foreign memory kept alive by `owner`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable. `None` for foreign memory, which is never written.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        if !self.writable {
            return None;
        }
        if self.len == 0 {
            return Some(&mut []);
        }
        // SAFETY: our own allocation (initialised, or about to be fully overwritten
        // per `uninit`'s contract), and `&mut self`
        // guarantees no other reference into it exists.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        match &self.owner {
            // SAFETY: allocated by `alloc`/`alloc_zeroed` with exactly this layout.
            Owner::Heap(layout) => unsafe { alloc::dealloc(self.ptr.as_ptr(), *layout) },
            Owner::Foreign(_) | Owner::File(_) => {}
        }
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("owned", &self.is_owned())
            .finish()
    }
}

impl Storage {
    /// Map `file` read-only: the one place tensorbridge memory-maps a file. The
    /// storage owns the mapping and unmaps it when the last tensor using it goes;
    /// the file may be closed or deleted meanwhile. An empty file gives empty
    /// storage.
    ///
    /// As with any file mapping (and NumPy's `memmap`, `safetensors.safe_open`),
    /// another process truncating or rewriting the file in place while it is mapped
    /// is the one thing that stays unsafe: access past the new end faults, and
    /// rewritten bytes show through. tensorbridge's own writers replace files by
    /// renaming a new one into place, which leaves existing mappings intact.
    ///
    /// Errors are the operating system's; callers add the file's name.
    pub fn map_file(file: &std::fs::File) -> std::io::Result<Storage> {
        // SAFETY: a read-only, private mapping of a file the caller opened. Its bytes
        // are only ever read, through `as_slice`'s shared slice bounded by the
        // mapping's length; the mapping is owned by the returned storage, so it
        // outlives every slice and tensor over it. Concurrent truncation by another
        // process is documented above, not prevented (no file mapping can).
        let map = unsafe { memmap2::Mmap::map(file) }?;
        Ok(Storage::from_mmap(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        // Under Miri the huge size (4 MiB byte by byte) takes minutes; the small ones
        // cover the same code paths except the madvise, which Miri skips anyway.
        let huge = if cfg!(miri) { 8192 } else { HUGE_THRESHOLD + 3 };
        for len in [0, 1, 63, 4096, huge] {
            let mut s = Storage::zeroed(len).unwrap();
            assert_eq!(s.as_ptr() as usize % ALIGNMENT, 0);
            assert!(s.as_slice().iter().all(|&b| b == 0));
            s.as_mut_slice().unwrap().fill(7);
            assert_eq!(s.as_slice().len(), len);
        }
    }

    #[test]
    fn foreign_keeps_owner_alive() {
        let data = std::sync::Arc::new(vec![1u8, 2, 3]);
        let ptr = data.as_ptr();
        // SAFETY: the Arc'd Vec is kept alive by the storage and never mutated.
        let mut s = unsafe { Storage::foreign(ptr, 3, Box::new(data.clone())) };
        drop(data);
        assert_eq!(s.as_slice(), &[1, 2, 3]);
        assert!(s.as_mut_slice().is_none());
        assert!(!s.is_owned());
    }
}
