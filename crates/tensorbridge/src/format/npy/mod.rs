//! NumPy's `.npy` format, as `numpy/lib/format.py` defines it.
//!
//! A file is a 6-byte magic string `\x93NUMPY`, a version (1.0, 2.0 or 3.0), the
//! header length (2 bytes little-endian in 1.0, 4 bytes in 2.0 and 3.0), the header
//! — a Python-literal dict `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`
//! in latin-1 (1.0, 2.0) or UTF-8 (3.0), padded with spaces and a newline so the data
//! starts on a 64-byte boundary — and then the raw elements in C or Fortran order.
//!
//! # Reading
//! [`load`] reads a file into a [`Tensor`](crate::Tensor); [`LoadOptions::mmap`] chooses between a
//! zero-copy memory mapping and an owned copy:
//!
//! - `Some(true)`: map the file. The tensor is a read-only view of the mapping
//!   ([`Tensor::is_view`](crate::Tensor::is_view) is true), opening costs the same for any size, and the
//!   mapping lives as long as the last tensor using it (the file may be closed or
//!   deleted meanwhile). A Fortran-order file maps as a Fortran-strided view (no
//!   copy). Refused when the bytes cannot be used as they lie — a cast to another
//!   dtype, non-native byte order, or data misaligned for its dtype — with the reason
//!   [`ViewObstacle`](crate::ViewObstacle) gives: the same rule as `copy=False`.
//! - `Some(false)`: read into an owned, 64-byte-aligned, C-contiguous tensor; big-endian
//!   data is converted and Fortran order transposed in the same single pass.
//! - `None` (default): map when the bytes can be used as they lie *and* the data is at
//!   least [`MMAP_THRESHOLD`] (1 MiB) long; otherwise read. (Below that size a read is
//!   as fast as setting up a mapping and gives an independent, writable-by-copy buffer.)
//!
//! Every element dtype of the core is read in every byte order (`<`, `>`, `|`, `=`);
//! 0-d arrays, empty arrays and zero-length dimensions work.
//!
//! # bfloat16
//! NumPy has no bfloat16; `np.save` of an `ml_dtypes.bfloat16` array writes the descr
//! `'<V2'` (two raw bytes). Such a file loads only when the caller says what the bytes
//! are, with `LoadOptions { dtype: Some(DType::BFloat16), .. }`; otherwise it is refused
//! with an error that says so. tensorbridge writes bfloat16 the same way (`'<V2'`), so
//! `np.load(path).view(ml_dtypes.bfloat16)` reads a tensorbridge file back exactly.
//!
//! # Refusals
//! Hostile or unsupported files are refused with [`Error::Format`](crate::Error::Format) naming the file and
//! the reason — never a panic, never an out-of-bounds read, and never an allocation
//! larger than the file justifies (the data size the header claims is checked against
//! the file size, with overflow-checked arithmetic, before anything is allocated):
//! object arrays (`'|O'`: pickles, never unpickled), structured/record and subarray
//! dtypes, other unsupported dtypes (strings, datetimes, `float128`, ...), bad magic,
//! unknown versions, headers longer than NumPy allows ([`MAX_HEADER_CHARS`]) or that
//! are not a Python-literal dict with exactly the keys `descr`, `fortran_order` and
//! `shape`, negative or overflowing shapes, more than 64 dimensions, and data shorter
//! than the shape says.
//!
//! # Writing
//! [`save`] / [`write()`] write version 1.0 (2.0 only if the header does not fit in 1.0),
//! byte-for-byte the header `np.save` writes for the same array, always in native byte
//! order. [`NpyWriter`] streams an array larger than memory: header first, then chunks.
//!
//! # Where things are
//!
//! [`header`] parses and writes the header, [`read`] loads and streams arrays,
//! [`write`](mod@write) saves and streams them; everything is re-exported here.

pub mod header;
pub mod read;
pub mod remote;
pub mod remote_range;
pub mod write;

pub use header::NpyHeader;
pub use read::{from_bytes, load, open, read_from_parts, read_header, LoadOptions, NpyReader};
pub use remote::{
    load_remote, load_remote_with, load_url, open_for_load, open_remote, read_header_remote,
    read_headers_remote,
};
pub use remote_range::{header_from_parts, load_rows_at, load_rows_remote, read_header_at};
pub use write::{save, save_location, write, NpyWriter};

pub(crate) use read::{
    build_filled, check_data_fits, convert_from, copy_as, load_opened, no_map_error, obstacle,
    read_head,
};
pub(crate) use write::{in_file_order, ElementSink};

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header NumPy reads by default, in characters (`max_header_size` in
/// `numpy.lib.format`); longer headers are refused.
pub const MAX_HEADER_CHARS: usize = 10_000;

/// With `mmap: None`, data at least this long (1 MiB) is mapped rather than read.
pub const MMAP_THRESHOLD: usize = 1 << 20;
