//! [`Element`]: the Rust type that stores one element of each [`DType`], and
//! [`Bool`], NumPy's one-byte boolean.

use half::{bf16, f16};
use num_complex::Complex;

use super::DType;

/// A Rust type that stores one element of a [`DType`].
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The dtype this type stores.
    const DTYPE: DType;
    /// The value with its bytes reversed (per component for complex).
    fn swap_bytes(self) -> Self;
}

/// One byte holding a NumPy `bool` (0 or 1; any non-zero byte reads as true).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Bool(pub u8);

macro_rules! element_int {
    ($($t:ty => $d:ident),*) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline] fn swap_bytes(self) -> Self { <$t>::swap_bytes(self) }
        }
    )*};
}
element_int!(i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64,
             u8 => UInt8, u16 => UInt16, u32 => UInt32, u64 => UInt64);

impl Element for Bool {
    const DTYPE: DType = DType::Bool;
    #[inline]
    fn swap_bytes(self) -> Self {
        self
    }
}
impl Element for f16 {
    const DTYPE: DType = DType::Float16;
    #[inline]
    fn swap_bytes(self) -> Self {
        f16::from_bits(self.to_bits().swap_bytes())
    }
}
impl Element for bf16 {
    const DTYPE: DType = DType::BFloat16;
    #[inline]
    fn swap_bytes(self) -> Self {
        bf16::from_bits(self.to_bits().swap_bytes())
    }
}
impl Element for f32 {
    const DTYPE: DType = DType::Float32;
    #[inline]
    fn swap_bytes(self) -> Self {
        f32::from_bits(self.to_bits().swap_bytes())
    }
}
impl Element for f64 {
    const DTYPE: DType = DType::Float64;
    #[inline]
    fn swap_bytes(self) -> Self {
        f64::from_bits(self.to_bits().swap_bytes())
    }
}
impl Element for Complex<f32> {
    const DTYPE: DType = DType::Complex64;
    #[inline]
    fn swap_bytes(self) -> Self {
        Complex::new(self.re.swap_bytes(), self.im.swap_bytes())
    }
}
impl Element for Complex<f64> {
    const DTYPE: DType = DType::Complex128;
    #[inline]
    fn swap_bytes(self) -> Self {
        Complex::new(self.re.swap_bytes(), self.im.swap_bytes())
    }
}
