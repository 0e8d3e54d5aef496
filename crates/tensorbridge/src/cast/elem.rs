//! Per-element conversion rules: what NumPy (and ml_dtypes for bfloat16) give for
//! each pair of dtypes on x86-64, plus the checked and saturating variants.
//!
//! A source type implements [`Value`] (how it converts *to* each kind of target); a
//! target type implements [`Dest`] (how it is built from any `Value`). Kernels are
//! generic over the pair and compile to tight, mostly vectorised loops.

use half::{bf16, f16};
use num_complex::Complex;

use std::any::TypeId;

use half::slice::HalfFloatSliceExt;

use super::float16::*;
use crate::dtype::{Bool, DType, Element};

/// A value widened without loss, for range checks and saturation.
#[derive(Clone, Copy, Debug)]
pub enum Wide {
    /// Bool or integer.
    Int(i128),
    /// Real float (exact in float64).
    Float(f64),
    /// Complex (exact in float64 parts).
    Complex(f64, f64),
}

impl std::fmt::Display for Wide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Wide::Int(i) => write!(f, "{i}"),
            Wide::Float(x) => write!(f, "{x:?}"),
            Wide::Complex(re, im) => write!(f, "({re:?}{im:+?}j)"),
        }
    }
}

// ---------------------------------------------------------------------------
// Float → integer exactly as NumPy's compiled C casts behave on x86-64.
//
// C leaves out-of-range float → int conversions undefined; on x86-64 NumPy's loops
// compile to `cvtt*2si` instructions, which give the "integer indefinite" value
// (the type's minimum) for NaN and out-of-range input. Narrow targets go through
// int32 and wrap; unsigned targets use the usual compiler sequence. We reproduce
// that, so even NumPy's undefined results match on x86-64 (checked by the tests).
// ---------------------------------------------------------------------------

// The in-range branches use `to_int_unchecked` (a plain `fptosi`) instead of `as`
// (saturating), because LLVM vectorises the former into `cvttps2dq`-style code and
// not the latter; the range check makes it exact.

#[inline]
fn cvtt32(x: f64) -> i32 {
    if x > -2_147_483_649.0 && x < 2_147_483_648.0 {
        // SAFETY: x is finite and trunc(x) lies in i32's range (checked above).
        unsafe { x.to_int_unchecked::<i32>() }
    } else {
        i32::MIN
    }
}

#[inline]
#[allow(clippy::manual_range_contains)] // two plain compares: NaN fails both, and it vectorises
fn cvtt64(x: f64) -> i64 {
    if x >= -9_223_372_036_854_775_808.0 && x < 9_223_372_036_854_775_808.0 {
        // SAFETY: x is finite and trunc(x) lies in i64's range (checked above).
        unsafe { x.to_int_unchecked::<i64>() }
    } else {
        i64::MIN
    }
}

/// An integer target type.
pub trait IntTarget: Copy {
    /// Smallest value.
    const MIN: i128;
    /// Largest value.
    const MAX: i128;
    /// Two's-complement truncation of a wider integer (C's cast).
    fn wrap(x: i64) -> Self;
    /// From float64 as NumPy's cast does on x86-64.
    fn from_f64_x86(x: f64) -> Self;
    /// From float32 as NumPy's cast does on x86-64 (same results as via float64).
    #[inline]
    fn from_f32_x86(x: f32) -> Self {
        Self::from_f64_x86(x as f64)
    }
    /// From float16 (given as its exact float32) as NumPy's cast does on x86-64.
    #[inline]
    fn from_f16_x86(x: f32) -> Self {
        Self::from_f32_x86(x)
    }
    /// From an exact integer, clamped.
    fn clamp_int(x: i128) -> Self;
}

macro_rules! int_target_narrow {
    ($($t:ty),*) => {$(
        impl IntTarget for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
            #[inline] fn wrap(x: i64) -> Self { x as $t }
            #[inline] fn from_f64_x86(x: f64) -> Self { cvtt32(x) as $t }
            #[inline] fn clamp_int(x: i128) -> Self { x.clamp(<Self as IntTarget>::MIN, <Self as IntTarget>::MAX) as $t }
        }
    )*};
}
int_target_narrow!(i8, u8, i16, u16);

impl IntTarget for i32 {
    const MIN: i128 = i32::MIN as i128;
    const MAX: i128 = i32::MAX as i128;
    #[inline]
    fn wrap(x: i64) -> Self {
        x as i32
    }
    #[inline]
    fn from_f64_x86(x: f64) -> Self {
        cvtt32(x)
    }
    #[inline]
    #[allow(clippy::manual_range_contains)] // two plain compares: NaN fails both, and it vectorises
    fn from_f32_x86(x: f32) -> Self {
        // Same result as via float64, written in float32 so it vectorises.
        if x >= -2_147_483_648.0 && x < 2_147_483_648.0 {
            // SAFETY: x is finite and trunc(x) lies in i32's range (checked above).
            unsafe { x.to_int_unchecked::<i32>() }
        } else {
            i32::MIN
        }
    }
    #[inline]
    fn clamp_int(x: i128) -> Self {
        x.clamp(<Self as IntTarget>::MIN, <Self as IntTarget>::MAX) as i32
    }
}

impl IntTarget for u32 {
    const MIN: i128 = 0;
    const MAX: i128 = u32::MAX as i128;
    #[inline]
    fn wrap(x: i64) -> Self {
        x as u32
    }
    #[inline]
    fn from_f64_x86(x: f64) -> Self {
        if x >= 2_147_483_648.0 {
            (cvtt32(x - 2_147_483_648.0) as u32) ^ 0x8000_0000
        } else {
            cvtt32(x) as u32
        }
    }
    #[inline]
    fn from_f16_x86(x: f32) -> Self {
        // NumPy's float16 loop converts through int64 here.
        cvtt64(x as f64) as u32
    }
    #[inline]
    fn clamp_int(x: i128) -> Self {
        x.clamp(<Self as IntTarget>::MIN, <Self as IntTarget>::MAX) as u32
    }
}

impl IntTarget for i64 {
    const MIN: i128 = i64::MIN as i128;
    const MAX: i128 = i64::MAX as i128;
    #[inline]
    fn wrap(x: i64) -> Self {
        x
    }
    #[inline]
    fn from_f64_x86(x: f64) -> Self {
        cvtt64(x)
    }
    #[inline]
    fn clamp_int(x: i128) -> Self {
        x.clamp(<Self as IntTarget>::MIN, <Self as IntTarget>::MAX) as i64
    }
}

impl IntTarget for u64 {
    const MIN: i128 = 0;
    const MAX: i128 = u64::MAX as i128;
    #[inline]
    fn wrap(x: i64) -> Self {
        x as u64
    }
    #[inline]
    fn from_f64_x86(x: f64) -> Self {
        if x >= 9_223_372_036_854_775_808.0 {
            (cvtt64(x - 9_223_372_036_854_775_808.0) as u64) ^ (1 << 63)
        } else {
            cvtt64(x) as u64
        }
    }
    #[inline]
    fn clamp_int(x: i128) -> Self {
        x.clamp(<Self as IntTarget>::MIN, <Self as IntTarget>::MAX) as u64
    }
}

/// How a source element converts to each kind of target (NumPy's `astype`).
pub trait Value: Element {
    /// `bool(x)`: non-zero (NaN is non-zero; a complex is non-zero if either part is).
    fn nonzero(self) -> bool;
    /// Whether the value is (or has a part that is) NaN.
    fn is_nan(self) -> bool;
    /// To float32 (real part of a complex).
    fn to_f32(self) -> f32;
    /// To float64 (real part of a complex).
    fn to_f64(self) -> f64;
    /// To float16 bits.
    fn to_f16(self) -> u16;
    /// To bfloat16 bits.
    fn to_bf16(self) -> u16;
    /// To an integer type.
    fn to_int<I: IntTarget>(self) -> I;
    /// The imaginary part as float32 (0 for reals).
    #[inline]
    fn imag_f32(self) -> f32 {
        0.0
    }
    /// The imaginary part as float64 (0 for reals).
    #[inline]
    fn imag_f64(self) -> f64 {
        0.0
    }
    /// The exact value, widened.
    fn wide(self) -> Wide;
}

impl Value for Bool {
    #[inline]
    fn nonzero(self) -> bool {
        self.0 != 0
    }
    #[inline]
    fn is_nan(self) -> bool {
        false
    }
    #[inline]
    fn to_f32(self) -> f32 {
        (self.0 != 0) as u8 as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        (self.0 != 0) as u8 as f64
    }
    #[inline]
    fn to_f16(self) -> u16 {
        if self.0 != 0 {
            0x3c00
        } else {
            0
        }
    }
    #[inline]
    fn to_bf16(self) -> u16 {
        if self.0 != 0 {
            0x3f80
        } else {
            0
        }
    }
    #[inline]
    fn to_int<I: IntTarget>(self) -> I {
        I::wrap((self.0 != 0) as i64)
    }
    #[inline]
    fn wide(self) -> Wide {
        Wide::Int((self.0 != 0) as i128)
    }
}

macro_rules! value_int {
    ($($t:ty),*) => {$(
        impl Value for $t {
            #[inline] fn nonzero(self) -> bool { self != 0 }
            #[inline] fn is_nan(self) -> bool { false }
            #[inline] fn to_f32(self) -> f32 { self as f32 }
            #[inline] fn to_f64(self) -> f64 { self as f64 }
            // NumPy: integer → float16 through double (exact below 2^53; larger
            // values overflow float16 either way).
            #[inline] fn to_f16(self) -> u16 { f64_to_f16(self as f64) }
            // ml_dtypes: integer → float32 → bfloat16 (two roundings, as measured).
            #[inline] fn to_bf16(self) -> u16 { f32_to_bf16(self as f32) }
            #[inline] fn to_int<I: IntTarget>(self) -> I { I::wrap(self as i64) }
            #[inline] fn wide(self) -> Wide { Wide::Int(self as i128) }
        }
    )*};
}
value_int!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Value for f16 {
    #[inline]
    fn nonzero(self) -> bool {
        self.to_bits() & 0x7fff != 0
    }
    #[inline]
    fn is_nan(self) -> bool {
        self.to_bits() & 0x7fff > 0x7c00
    }
    #[inline]
    fn to_f32(self) -> f32 {
        f16_to_f32(self.to_bits())
    }
    #[inline]
    fn to_f64(self) -> f64 {
        f16_to_f64(self.to_bits())
    }
    #[inline]
    fn to_f16(self) -> u16 {
        self.to_bits()
    }
    #[inline]
    fn to_bf16(self) -> u16 {
        f32_to_bf16(f16_to_f32(self.to_bits()))
    }
    #[inline]
    fn to_int<I: IntTarget>(self) -> I {
        I::from_f16_x86(f16_to_f32(self.to_bits()))
    }
    #[inline]
    fn wide(self) -> Wide {
        Wide::Float(f16_to_f64(self.to_bits()))
    }
}

impl Value for bf16 {
    #[inline]
    fn nonzero(self) -> bool {
        self.to_bits() & 0x7fff != 0
    }
    #[inline]
    fn is_nan(self) -> bool {
        self.to_bits() & 0x7fff > 0x7f80
    }
    #[inline]
    fn to_f32(self) -> f32 {
        bf16_to_f32(self.to_bits())
    }
    #[inline]
    fn to_f64(self) -> f64 {
        bf16_to_f32(self.to_bits()) as f64
    }
    #[inline]
    fn to_f16(self) -> u16 {
        f32_to_f16_canonical_nan(bf16_to_f32(self.to_bits()))
    }
    #[inline]
    fn to_bf16(self) -> u16 {
        self.to_bits()
    }
    #[inline]
    fn to_int<I: IntTarget>(self) -> I {
        I::from_f32_x86(bf16_to_f32(self.to_bits()))
    }
    #[inline]
    fn wide(self) -> Wide {
        Wide::Float(bf16_to_f32(self.to_bits()) as f64)
    }
}

impl Value for f32 {
    #[inline]
    fn nonzero(self) -> bool {
        self != 0.0
    }
    #[inline]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn to_f16(self) -> u16 {
        f32_to_f16(self)
    }
    #[inline]
    fn to_bf16(self) -> u16 {
        f32_to_bf16(self)
    }
    #[inline]
    fn to_int<I: IntTarget>(self) -> I {
        I::from_f32_x86(self)
    }
    #[inline]
    fn wide(self) -> Wide {
        Wide::Float(self as f64)
    }
}

impl Value for f64 {
    #[inline]
    fn nonzero(self) -> bool {
        self != 0.0
    }
    #[inline]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn to_f16(self) -> u16 {
        f64_to_f16(self)
    }
    // ml_dtypes: float64 → float32 → bfloat16 (two roundings, as measured).
    #[inline]
    fn to_bf16(self) -> u16 {
        f32_to_bf16(self as f32)
    }
    #[inline]
    fn to_int<I: IntTarget>(self) -> I {
        I::from_f64_x86(self)
    }
    #[inline]
    fn wide(self) -> Wide {
        Wide::Float(self)
    }
}

macro_rules! value_complex {
    ($t:ty) => {
        impl Value for Complex<$t> {
            #[inline]
            fn nonzero(self) -> bool {
                self.re != 0.0 || self.im != 0.0
            }
            #[inline]
            fn is_nan(self) -> bool {
                self.re.is_nan() || self.im.is_nan()
            }
            #[inline]
            fn to_f32(self) -> f32 {
                Value::to_f32(self.re)
            }
            #[inline]
            fn to_f64(self) -> f64 {
                Value::to_f64(self.re)
            }
            #[inline]
            fn to_f16(self) -> u16 {
                Value::to_f16(self.re)
            }
            #[inline]
            fn to_bf16(self) -> u16 {
                Value::to_bf16(self.re)
            }
            #[inline]
            fn to_int<I: IntTarget>(self) -> I {
                Value::to_int(self.re)
            }
            #[inline]
            fn imag_f32(self) -> f32 {
                Value::to_f32(self.im)
            }
            #[inline]
            fn imag_f64(self) -> f64 {
                Value::to_f64(self.im)
            }
            #[inline]
            fn wide(self) -> Wide {
                Wide::Complex(self.re as f64, self.im as f64)
            }
        }
    };
}
value_complex!(f32);
value_complex!(f64);

/// How a target element is built from any source value.
pub trait Dest: Element {
    /// NumPy's `astype` (unsafe casting).
    fn from_value<V: Value>(v: V) -> Self;
    /// Saturating: clamp to range, NaN → 0 for integer and bool targets, truncate
    /// toward zero; float targets clamp finite overflow to ±max and keep NaN/inf.
    fn saturating<V: Value>(v: V) -> Self;
    /// Convert a contiguous run. Kernels override this where a faster exact path
    /// exists; the default is the per-element rule.
    #[inline]
    fn convert_slice<V: Value>(src: &[V], dst: &mut [Self]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = Self::from_value(*s);
        }
    }
}

impl Dest for Bool {
    #[inline]
    fn from_value<V: Value>(v: V) -> Self {
        Bool(v.nonzero() as u8)
    }
    #[inline]
    fn saturating<V: Value>(v: V) -> Self {
        Bool((v.nonzero() && !v.is_nan()) as u8)
    }
}

fn saturate_int<I: IntTarget>(w: Wide) -> I {
    match w {
        Wide::Int(i) => I::clamp_int(i),
        Wide::Float(x) | Wide::Complex(x, _) => {
            if x.is_nan() {
                I::clamp_int(0)
            } else if x <= I::MIN as f64 {
                I::clamp_int(I::MIN)
            } else if x >= I::MAX as f64 {
                I::clamp_int(I::MAX)
            } else {
                I::clamp_int(x.trunc() as i128)
            }
        }
    }
}

macro_rules! dest_int {
    ($($t:ty),*) => {$(
        impl Dest for $t {
            #[inline] fn from_value<V: Value>(v: V) -> Self { v.to_int::<$t>() }
            #[inline] fn saturating<V: Value>(v: V) -> Self { saturate_int::<$t>(v.wide()) }
        }
    )*};
}
dest_int!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Dest for f16 {
    #[inline]
    fn from_value<V: Value>(v: V) -> Self {
        f16::from_bits(v.to_f16())
    }
    #[inline]
    fn saturating<V: Value>(v: V) -> Self {
        let r = Self::from_value(v);
        if r.is_infinite() && v.to_f64().is_finite() {
            f16::MAX.copysign(r)
        } else {
            r
        }
    }
    fn convert_slice<V: Value>(src: &[V], dst: &mut [Self]) {
        to_f16_slice(src, dst)
    }
}

// Contiguous-run kernel that beats the per-element rule, with run-time CPU
// dispatch (formerly `cast/kernels.rs`).

/// Contiguous `src` → float16.
///
/// float32 input uses `half`'s slice conversion, which runs the F16C instructions
/// when the CPU has them (detected at run time) and is correctly rounded. F16C
/// quiets NaNs where NumPy keeps the payload, so NaN lanes are redone in software.
pub fn to_f16_slice<V: Value>(src: &[V], dst: &mut [f16]) {
    if TypeId::of::<V>() == TypeId::of::<f32>() {
        let src: &[f32] = bytemuck::cast_slice(src);
        dst.convert_from_f32_slice(src);
        // NaN lanes: a cheap branch-free scan, then a rare fix-up.
        if src.iter().fold(false, |acc, x| acc | x.is_nan()) {
            for (d, s) in dst.iter_mut().zip(src) {
                if s.is_nan() {
                    *d = f16::from_bits(f32_to_f16(*s));
                }
            }
        }
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f16::from_bits(s.to_f16());
        }
    }
}

impl Dest for bf16 {
    #[inline]
    fn from_value<V: Value>(v: V) -> Self {
        bf16::from_bits(v.to_bf16())
    }
    #[inline]
    fn saturating<V: Value>(v: V) -> Self {
        let r = Self::from_value(v);
        if r.is_infinite() && v.to_f64().is_finite() {
            bf16::MAX.copysign(r)
        } else {
            r
        }
    }
}

impl Dest for f32 {
    #[inline]
    fn from_value<V: Value>(v: V) -> Self {
        v.to_f32()
    }
    #[inline]
    fn saturating<V: Value>(v: V) -> Self {
        clamp_f32(v.to_f32(), v.to_f64())
    }
}

impl Dest for f64 {
    #[inline]
    fn from_value<V: Value>(v: V) -> Self {
        v.to_f64()
    }
    #[inline]
    fn saturating<V: Value>(v: V) -> Self {
        v.to_f64()
    }
}

#[inline]
fn clamp_f32(r: f32, exact: f64) -> f32 {
    if r.is_infinite() && exact.is_finite() {
        f32::MAX.copysign(r)
    } else {
        r
    }
}

impl Dest for Complex<f32> {
    #[inline]
    fn from_value<V: Value>(v: V) -> Self {
        Complex::new(v.to_f32(), v.imag_f32())
    }
    #[inline]
    fn saturating<V: Value>(v: V) -> Self {
        Complex::new(
            clamp_f32(v.to_f32(), v.to_f64()),
            clamp_f32(v.imag_f32(), v.imag_f64()),
        )
    }
}

impl Dest for Complex<f64> {
    #[inline]
    fn from_value<V: Value>(v: V) -> Self {
        Complex::new(v.to_f64(), v.imag_f64())
    }
    #[inline]
    fn saturating<V: Value>(v: V) -> Self {
        Self::from_value(v)
    }
}

/// Why `v` does not survive a cast to `to`, or `None` if it does (the `checked` rule).
pub fn check_value(w: Wide, to: DType) -> Option<&'static str> {
    let (re, im) = match w {
        Wide::Int(i) => return check_int(i, to),
        Wide::Float(x) => (x, 0.0),
        Wide::Complex(re, im) => (re, im),
    };
    if to.is_complex() {
        return check_float_overflow(re, to).or_else(|| check_float_overflow(im, to));
    }
    if im != 0.0 {
        return Some("has a non-zero imaginary part");
    }
    match to {
        DType::Bool if re == 0.0 || re == 1.0 => None,
        DType::Bool => Some("is not 0 or 1"),
        d if d.is_floating() => check_float_overflow(re, d),
        d => {
            if re.is_nan() {
                Some("is NaN")
            } else if re.is_infinite() {
                Some("is infinite")
            } else if re.trunc() != re {
                Some("is not an integer")
            } else {
                let (lo, hi) = int_range(d);
                // `hi + 1` is a power of two, exact in float64.
                if re < lo as f64 || re >= (hi + 1) as f64 {
                    Some("is out of range")
                } else {
                    None
                }
            }
        }
    }
}

fn int_range(d: DType) -> (i128, i128) {
    match d {
        DType::Int8 => (i8::MIN as i128, i8::MAX as i128),
        DType::Int16 => (i16::MIN as i128, i16::MAX as i128),
        DType::Int32 => (i32::MIN as i128, i32::MAX as i128),
        DType::Int64 => (i64::MIN as i128, i64::MAX as i128),
        DType::UInt8 => (0, u8::MAX as i128),
        DType::UInt16 => (0, u16::MAX as i128),
        DType::UInt32 => (0, u32::MAX as i128),
        DType::UInt64 => (0, u64::MAX as i128),
        _ => (0, 1),
    }
}

fn check_int(i: i128, to: DType) -> Option<&'static str> {
    if to.is_integer() || to == DType::Bool {
        let (lo, hi) = int_range(to);
        return if i < lo || i > hi {
            Some(if to == DType::Bool {
                "is not 0 or 1"
            } else {
                "is out of range"
            })
        } else {
            None
        };
    }
    // Integers only overflow the half-precision floats.
    check_float_overflow(i as f64, to)
}

fn check_float_overflow(x: f64, to: DType) -> Option<&'static str> {
    if !x.is_finite() {
        return None;
    }
    let overflows = match to {
        DType::Float16 => f16::from_bits(f64_to_f16(x)).is_infinite(),
        DType::BFloat16 => f32_to_bf16(x as f32) & 0x7fff == 0x7f80,
        DType::Float32 | DType::Complex64 => (x as f32).is_infinite(),
        _ => false,
    };
    overflows.then_some("overflows the target type")
}
