//! Floating-point values in their own precision: float16, float32 and float64 as
//! bit patterns, so that Dragon4 finds the shortest digits of each in its own format.

use crate::cast::float16::{f16_to_f64, f64_to_f16};
use half::f16;

/// An IEEE binary format NumPy prints with Dragon4.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum FloatType {
    /// binary16 (`float16`).
    F16,
    /// binary32 (`float32`, parts of `complex64`).
    F32,
    /// binary64 (`float64`, parts of `complex128`).
    F64,
}

impl FloatType {
    /// Stored fraction bits.
    pub(super) fn fraction_bits(self) -> u32 {
        match self {
            FloatType::F16 => 10,
            FloatType::F32 => 23,
            FloatType::F64 => 52,
        }
    }

    /// Exponent bits.
    pub(super) fn exponent_bits(self) -> u32 {
        match self {
            FloatType::F16 => 5,
            FloatType::F32 => 8,
            FloatType::F64 => 11,
        }
    }

    /// `np.finfo(dtype).precision`: decimal digits the type holds.
    pub(super) fn decimal_precision(self) -> i32 {
        match self {
            FloatType::F16 => 3,
            FloatType::F32 => 6,
            FloatType::F64 => 15,
        }
    }

    /// The smallest magnitude a scalar's `str()` prints in scientific notation.
    pub(super) fn max_positional_scalar(self) -> f64 {
        match self {
            FloatType::F16 => 1e3,
            FloatType::F32 => 1e6,
            FloatType::F64 => 1e16,
        }
    }

    /// `x` rounded to the nearest value of this type (as arithmetic in the type gives).
    pub(super) fn round(self, x: f64) -> f64 {
        match self {
            FloatType::F16 => f16_to_f64(f64_to_f16(x)),
            FloatType::F32 => f64::from(x as f32),
            FloatType::F64 => x,
        }
    }
}

/// A float in its own format, so that its digits are the shortest for that format.
#[derive(Clone, Copy, Debug)]
pub(super) struct Float {
    /// The format.
    pub(super) ty: FloatType,
    /// The bit pattern, in the low bits.
    pub(super) bits: u64,
}

/// A finite float as `mantissa * 2**exponent`, with what Dragon4 needs about it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Decomposed {
    /// The integer significand (zero for zero).
    pub(super) mantissa: u64,
    /// The power of two it is scaled by.
    pub(super) exponent: i32,
    /// Index of the mantissa's highest set bit.
    pub(super) mantissa_bit: u32,
    /// Whether the gap to the next value up is twice the gap down (an exact power of
    /// two above the smallest normal).
    pub(super) unequal_margins: bool,
}

impl Float {
    /// A float16 value.
    pub(super) fn f16(x: f16) -> Self {
        Float {
            ty: FloatType::F16,
            bits: u64::from(x.to_bits()),
        }
    }

    /// A float32 value.
    pub(super) fn f32(x: f32) -> Self {
        Float {
            ty: FloatType::F32,
            bits: u64::from(x.to_bits()),
        }
    }

    /// A float64 value.
    pub(super) fn f64(x: f64) -> Self {
        Float {
            ty: FloatType::F64,
            bits: x.to_bits(),
        }
    }

    /// The exact value as an f64.
    pub(super) fn to_f64(self) -> f64 {
        match self.ty {
            FloatType::F16 => f16_to_f64(self.bits as u16),
            FloatType::F32 => f64::from(f32::from_bits(self.bits as u32)),
            FloatType::F64 => f64::from_bits(self.bits),
        }
    }

    /// The biased exponent field.
    pub(super) fn biased_exponent(self) -> u64 {
        (self.bits >> self.ty.fraction_bits()) & ((1 << self.ty.exponent_bits()) - 1)
    }

    /// The fraction field.
    pub(super) fn fraction(self) -> u64 {
        self.bits & ((1 << self.ty.fraction_bits()) - 1)
    }

    /// Whether the exponent field is all ones (infinity or NaN).
    pub(super) fn is_special(self) -> bool {
        self.biased_exponent() == (1 << self.ty.exponent_bits()) - 1
    }

    /// Whether the value is neither infinite nor NaN.
    pub(super) fn is_finite(self) -> bool {
        !self.is_special()
    }

    /// Whether the value is NaN.
    pub(super) fn is_nan(self) -> bool {
        self.is_special() && self.fraction() != 0
    }

    /// Whether the value is an infinity.
    pub(super) fn is_infinite(self) -> bool {
        self.is_special() && self.fraction() == 0
    }

    /// Whether the sign bit is set.
    pub(super) fn is_sign_negative(self) -> bool {
        (self.bits >> (self.ty.fraction_bits() + self.ty.exponent_bits())) & 1 == 1
    }

    /// The magnitude as `mantissa * 2**exponent`, or `None` for infinities and NaN
    /// (as in NumPy's `Dragon4_PrintFloat_IEEE_binary*`).
    pub(super) fn decompose(self) -> Option<Decomposed> {
        if self.is_special() {
            return None;
        }
        let fraction_bits = self.ty.fraction_bits();
        let bias = (1i32 << (self.ty.exponent_bits() - 1)) - 1;
        let biased = self.biased_exponent() as i32;
        let fraction = self.fraction();
        Some(if biased != 0 {
            Decomposed {
                mantissa: (1 << fraction_bits) | fraction,
                exponent: biased - bias - fraction_bits as i32,
                mantissa_bit: fraction_bits,
                unequal_margins: biased != 1 && fraction == 0,
            }
        } else {
            Decomposed {
                mantissa: fraction,
                exponent: 1 - bias - fraction_bits as i32,
                mantissa_bit: 63u32.saturating_sub(fraction.leading_zeros()),
                unequal_margins: false,
            }
        })
    }
}
