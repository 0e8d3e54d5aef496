//! Bit-level conversions for float16 and bfloat16 with NumPy's and ml_dtypes' exact
//! results, NaN payloads included.
//!
//! Written by hand rather than taken from `half` because the results must match
//! NumPy bit for bit where `half` (or the F16C instructions it uses) differ:
//! NumPy's software float16 conversions keep a NaN's payload without setting the
//! quiet bit, convert float64 directly (no double rounding through float32), and
//! ml_dtypes canonicalises NaN in bfloat16. `half`'s F16C slice conversion is still
//! used for the fast float32 → float16 path (see `elem::to_f16_slice`), with NaNs patched up.

/// float32 → float16 bits, round to nearest even. NaN keeps the top payload bits
/// (forced non-zero), as NumPy's `npy_floatbits_to_halfbits`.
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    let f = x.to_bits();
    let sign = ((f >> 16) & 0x8000) as u16;
    let abs = f & 0x7fff_ffff;
    if abs >= 0x7f80_0000 {
        if abs == 0x7f80_0000 {
            return sign | 0x7c00;
        }
        let payload = ((abs & 0x007f_ffff) >> 13) as u16;
        return sign | 0x7c00 | if payload == 0 { 1 } else { payload };
    }
    if abs >= 0x4780_0000 {
        // >= 65536: overflows even before rounding.
        return sign | 0x7c00;
    }
    if abs < 0x3880_0000 {
        // Below the smallest normal half (2^-14): subnormal or zero.
        if abs < 0x3300_0000 {
            // < 2^-25: rounds to zero (2^-25 itself is a tie with zero, handled below).
            return sign;
        }
        let exp = abs >> 23; // 102 ..= 112
        let mant = (abs & 0x007f_ffff) | 0x0080_0000;
        let shift = 126 - exp; // 14 ..= 24: mant >> shift is the half subnormal significand
        let mut h = mant >> shift;
        let rem = mant & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        if rem > half || (rem == half && (h & 1) == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    // Normal range: rebias the exponent and round the 13 dropped bits.
    let mut h = (abs - 0x3800_0000) >> 13;
    let rem = abs & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) {
        h += 1; // may carry into the exponent, up to infinity: correct
    }
    sign | h as u16
}

/// float64 → float16 bits, correctly rounded (no detour through float32), NaN as
/// NumPy's `npy_doublebits_to_halfbits`.
#[inline]
pub fn f64_to_f16(x: f64) -> u16 {
    let d = x.to_bits();
    let sign = ((d >> 48) & 0x8000) as u16;
    let abs = d & 0x7fff_ffff_ffff_ffff;
    if abs >= 0x7ff0_0000_0000_0000 {
        if abs == 0x7ff0_0000_0000_0000 {
            return sign | 0x7c00;
        }
        let payload = ((abs & 0x000f_ffff_ffff_ffff) >> 42) as u16;
        return sign | 0x7c00 | if payload == 0 { 1 } else { payload };
    }
    if abs >= 0x40f0_0000_0000_0000 {
        return sign | 0x7c00;
    }
    if abs < 0x3f10_0000_0000_0000 {
        if abs < 0x3e60_0000_0000_0000 {
            return sign;
        }
        let exp = abs >> 52; // 998 ..= 1008
        let mant = (abs & 0x000f_ffff_ffff_ffff) | 0x0010_0000_0000_0000;
        let shift = 1051 - exp; // 43 ..= 53
        let mut h = mant >> shift;
        let rem = mant & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        if rem > half || (rem == half && (h & 1) == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    let mut h = (abs - 0x3f00_0000_0000_0000) >> 42;
    let rem = abs & 0x3ff_ffff_ffff;
    let half = 0x200_0000_0000;
    if rem > half || (rem == half && (h & 1) == 1) {
        h += 1;
    }
    sign | h as u16
}

/// float16 bits → float32, exact; a NaN's payload is shifted over unchanged (no
/// quiet bit forced), as NumPy's `npy_halfbits_to_floatbits`.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let em = (h & 0x7fff) as u32;
    if em >= 0x7c00 {
        f32::from_bits(sign | 0x7f80_0000 | ((em & 0x3ff) << 13))
    } else if em >= 0x0400 {
        f32::from_bits(sign | ((em + 0x1_c000) << 13))
    } else {
        // Zero or subnormal: em × 2^-24 is exact in float32.
        f32::from_bits(sign | (em as f32 * (1.0 / 16_777_216.0)).to_bits())
    }
}

/// float16 bits → float64, exact, payload-preserving like [`f16_to_f32`].
#[inline]
pub fn f16_to_f64(h: u16) -> f64 {
    let sign = ((h & 0x8000) as u64) << 48;
    let em = (h & 0x7fff) as u64;
    if em >= 0x7c00 {
        f64::from_bits(sign | 0x7ff0_0000_0000_0000 | ((em & 0x3ff) << 42))
    } else {
        // Every non-NaN half is exact in float32, and float32 → float64 is exact.
        f64::from(f16_to_f32(h))
    }
}

/// float32 → bfloat16 bits, round to nearest even; NaN becomes the canonical quiet
/// NaN with the input's sign (ml_dtypes / Eigen behaviour).
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16 & 0x8000) | 0x7fc0;
    }
    let rounding = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(rounding) >> 16) as u16
}

/// bfloat16 bits → float32, exact (the payload of a NaN is kept).
#[inline]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// float32 → float16 for values ml_dtypes converts from bfloat16: NaN becomes the
/// canonical quiet NaN with its sign.
#[inline]
pub fn f32_to_f16_canonical_nan(x: f32) -> u16 {
    if x.is_nan() {
        ((x.to_bits() >> 16) as u16 & 0x8000) | 0x7e00
    } else {
        f32_to_f16(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trip_every_value() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            assert_eq!(f32_to_f16(f), h, "{h:#06x}");
            assert_eq!(f64_to_f16(f16_to_f64(h)), h, "{h:#06x}");
            if !f.is_nan() {
                assert_eq!(f16_to_f64(h), f as f64);
                // Agrees with the `half` crate on every non-NaN value.
                assert_eq!(half::f16::from_bits(h).to_f32(), f);
            }
        }
    }

    #[test]
    fn f16_rounding_matches_half_crate() {
        // Sweep float32 bit patterns with a stride that hits ties and subnormals.
        let mut b = 0u32;
        while b < 0x7f80_0000 {
            for x in [f32::from_bits(b), -f32::from_bits(b)] {
                assert_eq!(f32_to_f16(x), half::f16::from_f32(x).to_bits(), "{x:e}");
            }
            b += 0x0000_0fff;
        }
    }

    #[test]
    fn f64_direct_not_double_rounded() {
        // 1 + 2^-11 + 2^-40: a tie in float32 after its rounding, not in float64.
        let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        assert_eq!(f64_to_f16(x), 0x3c01);
        assert_eq!(f32_to_f16(x as f32), 0x3c00);
    }

    #[test]
    fn nan_payloads_like_numpy() {
        assert_eq!(f32_to_f16(f32::from_bits(0x7f80_0001)), 0x7c01);
        assert_eq!(f32_to_f16(f32::from_bits(0x7fa0_0000)), 0x7d00);
        assert_eq!(f32_to_f16(f32::from_bits(0xffc0_0001)), 0xfe00);
        assert_eq!(f16_to_f32(0x7c01).to_bits(), 0x7f80_2000);
        assert_eq!(f16_to_f64(0x7d00).to_bits(), 0x7ff4_0000_0000_0000);
        assert_eq!(f32_to_bf16(f32::from_bits(0xff80_0001)), 0xffc0);
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie, even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82); // tie, odd
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80);
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
    }
}
