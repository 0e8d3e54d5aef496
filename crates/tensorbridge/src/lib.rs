//! # tensorbridge
//!
//! NumPy data into tensors: exact, fast and safe. This is the core crate — no
//! Python in it. It provides:
//!
//! - [`DType`]: the fifteen element types (every NumPy numeric dtype plus bfloat16),
//!   with NumPy's `can_cast` rules;
//! - [`Tensor`]: an immutable n-d array over 64-byte-aligned (or foreign, kept-alive)
//!   storage, with zero-copy slicing and reshaping;
//! - [`Layout`]: shape, byte strides and offset — the one vocabulary for where
//!   elements lie (byte extent, contiguity, alignment), shared by tensors, views,
//!   DLPack and the Python binding;
//! - [`TensorView`]: a borrowed view of elements in any layout (strided, negative
//!   strides, byte-swapped, unaligned) whose lifetime the compiler checks, and
//!   [`ViewObstacle`]: why memory cannot be used as it lies (`copy=False`);
//! - [`cast()`]: one pass from any view to a contiguous tensor of any dtype, bit-for-bit
//!   what NumPy's `astype` gives, plus `checked` and `saturate` modes (the kernels,
//!   [`cast_into`], write into a buffer they are given);
//! - [`Tensor::from_foreign`]: the one door for memory owned elsewhere (DLPack, NumPy);
//! - [`stack()`]: batch equally-shaped arrays, casting on the way;
//! - `Display` for tensors in TensorFlow's format with NumPy's number formatting.
//!
//! ```
//! use tensorbridge::{cast, Casting, DType, TensorView};
//!
//! let data = [1i64, 2, 3, 4, 5, 6];
//! let view = TensorView::from_slice(&data, &[2, 3])?;
//! let t = cast(&view, DType::Float32, Casting::Unsafe)?;
//! assert_eq!(t.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
//! assert_eq!(t.to_string(), "tb.Tensor(\n[[1. 2. 3.]\n [4. 5. 6.]], shape=(2, 3), dtype=float32)");
//! # Ok::<(), tensorbridge::Error>(())
//! ```
#![deny(missing_docs)]

pub mod cast;
pub mod data;
mod display;
pub mod dlpack;
pub mod dtype;
pub mod error;
pub mod format;
pub mod layout;
pub mod location;
pub mod shape;
mod stack;
pub mod storage;
pub mod tensor;
pub mod view;

pub use cast::cast_into;
pub use dtype::{Bool, ByteOrder, Casting, DType, DTypeError, Element, Kind};
pub use error::{Error, Result};
pub use layout::Layout;
pub use stack::stack;
pub use storage::Storage;
pub use tensor::{cast, Index, Tensor};
pub use view::{TensorView, ViewObstacle};

/// Re-exported element types for bfloat16, float16 and complex.
pub use half::{bf16, f16};
pub use num_complex::Complex;
