//! NumPy's Dragon4 (`numpy/_core/src/multiarray/dragon4.c`): the shortest (or exact)
//! decimal digits of a binary float, and the `FormatPositional` / `FormatScientific`
//! layouts around them.

use std::cmp::Ordering;

use super::bigint::BigUint;
use super::float::{Decomposed, Float};
use super::DRAGON4_BUFFER;

/// How trailing zeros are trimmed (NumPy's `TrimMode`; Python's `trim` letter).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Trim {
    /// `'k'`: keep trailing zeros (and pad to `min_digits`), keep the decimal point.
    None,
    /// `'.'`: trim trailing zeros, keep the decimal point.
    Zeros,
    /// `'0'`: trim trailing zeros but leave one after the decimal point.
    LeaveOneZero,
    /// `'-'`: trim trailing zeros and the decimal point.
    DptZeros,
}

/// Whether Dragon4 prints the shortest round-trip digits or the exact value's digits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum DigitMode {
    /// Shortest digits that uniquely identify the value in its format.
    Unique,
    /// Digits of the exact binary value.
    Exact,
}

/// What Dragon4's digit limits count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum CutoffMode {
    /// All significant digits.
    TotalLength,
    /// Digits after the decimal point.
    FractionLength,
}

/// Options of NumPy's `dragon4_positional` / `dragon4_scientific` in unique digit mode
/// (-1 means "not given").
#[derive(Clone, Copy, Debug)]
pub(super) struct Dragon4Options {
    /// Most digits after the decimal point.
    pub(super) precision: i32,
    /// Fewest digits after the decimal point.
    pub(super) min_digits: i32,
    /// Whether to print '+' for non-negative values.
    pub(super) sign: bool,
    /// Trailing-zero trimming.
    pub(super) trim: Trim,
    /// Pad with spaces to this many characters left of the decimal point.
    pub(super) pad_left: i32,
    /// Pad with spaces to this many characters right of the decimal point.
    pub(super) pad_right: i32,
    /// Pad the exponent with zeros to this many digits (at least 2 when -1).
    pub(super) exp_digits: i32,
}

impl Default for Dragon4Options {
    fn default() -> Self {
        Dragon4Options {
            precision: -1,
            min_digits: -1,
            sign: false,
            trim: Trim::None,
            pad_left: -1,
            pad_right: -1,
            exp_digits: -1,
        }
    }
}

/// The sign prefix of `x` under `options`: `"-"`, `"+"` or `""`.
pub(super) fn sign_prefix(x: Float, options: &Dragon4Options) -> &'static str {
    if x.is_sign_negative() {
        "-"
    } else if options.sign {
        "+"
    } else {
        ""
    }
}

/// `inf`, `-inf`, `+inf` or `nan` (NumPy's `PrintInfNan`: NaN never gets a sign).
pub(super) fn inf_nan_str(x: Float, options: &Dragon4Options) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else {
        format!("{}inf", sign_prefix(x, options))
    }
}

/// NumPy's `FormatPositional` in unique mode with fractional cutoffs: `ddd.ddd`.
pub(super) fn format_positional(x: Float, options: &Dragon4Options) -> String {
    let Some(parts) = x.decompose() else {
        return inf_nan_str(x, options);
    };
    let sign = sign_prefix(x, options);
    let has_sign = sign.len() as i32;
    let (digits, print_exp) = dragon4(
        &parts,
        DigitMode::Unique,
        CutoffMode::FractionLength,
        options.precision,
        options.min_digits,
    );
    let digits = String::from_utf8_lossy(&digits).into_owned();
    let num_digits = digits.len() as i32;

    let mut out = String::from(sign);
    let whole_digits;
    let mut fraction_digits;
    if print_exp >= 0 {
        whole_digits = print_exp + 1;
        if num_digits <= whole_digits {
            out.push_str(&digits);
            out.push_str(&"0".repeat((whole_digits - num_digits) as usize));
            fraction_digits = 0;
        } else {
            out.push_str(&digits[..whole_digits as usize]);
            out.push('.');
            out.push_str(&digits[whole_digits as usize..]);
            fraction_digits = num_digits - whole_digits;
        }
    } else {
        let zeros = -(print_exp + 1);
        out.push_str("0.");
        out.push_str(&"0".repeat(zeros as usize));
        out.push_str(&digits);
        whole_digits = 1;
        fraction_digits = zeros + num_digits;
    }

    // Always a decimal point, except in DptZeros mode.
    if options.trim != Trim::DptZeros && fraction_digits == 0 {
        out.push('.');
    }
    let wanted_fraction = options.min_digits.max(0);
    if options.trim == Trim::LeaveOneZero {
        if fraction_digits == 0 {
            out.push('0');
            fraction_digits = 1;
        }
    } else if options.trim == Trim::None && wanted_fraction > fraction_digits {
        out.push_str(&"0".repeat((wanted_fraction - fraction_digits) as usize));
        fraction_digits = wanted_fraction;
    }
    // Rounding may still leave trailing zeros.
    if options.trim != Trim::None && fraction_digits > 0 {
        while out.ends_with('0') {
            out.pop();
            fraction_digits -= 1;
        }
        if out.ends_with('.') {
            match options.trim {
                Trim::LeaveOneZero => {
                    out.push('0');
                    fraction_digits += 1;
                }
                Trim::DptZeros => {
                    out.pop();
                }
                _ => {}
            }
        }
    }

    if options.pad_right >= fraction_digits {
        if options.trim == Trim::DptZeros && fraction_digits == 0 {
            out.push(' ');
        }
        out.push_str(&" ".repeat((options.pad_right - fraction_digits) as usize));
    }
    if options.pad_left > whole_digits + has_sign {
        let pad = (options.pad_left - whole_digits - has_sign) as usize;
        out.insert_str(0, &" ".repeat(pad));
    }
    out
}

/// NumPy's `FormatScientific` in unique mode: `d.ddde+XX`.
pub(super) fn format_scientific(x: Float, options: &Dragon4Options) -> String {
    let Some(parts) = x.decompose() else {
        return inf_nan_str(x, options);
    };
    let sign = sign_prefix(x, options);
    let mut out = String::new();
    let left_chars = 1 + sign.len() as i32;
    if options.pad_left > left_chars {
        out.push_str(&" ".repeat((options.pad_left - left_chars) as usize));
    }
    out.push_str(sign);

    let plus_one = |n: i32| if n < 0 { -1 } else { n + 1 };
    let (digits, print_exp) = dragon4(
        &parts,
        DigitMode::Unique,
        CutoffMode::TotalLength,
        plus_one(options.precision),
        plus_one(options.min_digits),
    );
    let digits = String::from_utf8_lossy(&digits).into_owned();
    out.push_str(&digits[..1]);
    let mut fraction_digits = digits.len() as i32 - 1;
    if fraction_digits > 0 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    if options.trim != Trim::DptZeros && fraction_digits == 0 {
        out.push('.');
    }
    let wanted_fraction = options.min_digits.max(0);
    if options.trim == Trim::LeaveOneZero {
        if fraction_digits == 0 {
            out.push('0');
            fraction_digits = 1;
        }
    } else if options.trim == Trim::None && wanted_fraction > fraction_digits {
        out.push_str(&"0".repeat((wanted_fraction - fraction_digits) as usize));
    }
    if options.trim != Trim::None && fraction_digits > 0 {
        while out.ends_with('0') {
            out.pop();
        }
        if options.trim == Trim::LeaveOneZero && out.ends_with('.') {
            out.push('0');
        }
    }

    let exp_digits = match options.exp_digits {
        d if d < 0 => 2,
        d => d.min(5),
    } as usize;
    let exp_sign = if print_exp < 0 { '-' } else { '+' };
    out.push_str(&format!(
        "e{exp_sign}{:0exp_digits$}",
        print_exp.unsigned_abs()
    ));
    out
}

/// NumPy's `Dragon4`: the decimal digits of `value` (ASCII, no leading zeros unless the
/// value rounds below the cutoff) and the decimal exponent of the first digit.
///
/// In [`DigitMode::Unique`] mode, digits stop once they identify the value among its
/// neighbours (ties in the rounding interval go the IEEE round-half-even way), but not
/// before `cutoff_min` digits and never past `cutoff_max`; in [`DigitMode::Exact`] mode,
/// digits are the exact value's, rounded half to even at `cutoff_max`. Cutoffs count
/// total digits or fraction digits per `cutoff_mode`; -1 means none.
pub(super) fn dragon4(
    value: &Decomposed,
    digit_mode: DigitMode,
    cutoff_mode: CutoffMode,
    cutoff_max: i32,
    cutoff_min: i32,
) -> (Vec<u8>, i32) {
    if value.mantissa == 0 {
        return (vec![b'0'], 0);
    }
    let is_even = value.mantissa & 1 == 0;
    let exponent = value.exponent;
    let unequal = value.unequal_margins;

    // value = scaled_value / scale; the margins are half the gaps to the neighbours.
    let margin_factor: u32 = if unequal { 2 } else { 1 };
    let extra_shift: u32 = if unequal { 2 } else { 1 };
    let mut scaled_value = BigUint::from_u64(value.mantissa);
    let mut scale;
    let mut margin_low;
    if exponent > 0 {
        scaled_value.shl(exponent as u32 + extra_shift);
        scale = BigUint::from_u64(1 << extra_shift);
        margin_low = BigUint::pow2(exponent as u32);
    } else {
        scaled_value.shl(extra_shift);
        scale = BigUint::pow2((-exponent) as u32 + extra_shift);
        margin_low = BigUint::from_u64(1);
    }
    let margin_high = |low: &BigUint| {
        let mut high = low.clone();
        high.mul_small(margin_factor);
        high
    };

    // An estimate of floor(log10(value)) + 1 that is right or one too small.
    let log10_2 = std::f64::consts::LOG10_2;
    let mut digit_exponent =
        ((f64::from(value.mantissa_bit as i32 + exponent)) * log10_2 - 0.69).ceil() as i32;
    if cutoff_max >= 0 && cutoff_mode == CutoffMode::FractionLength && digit_exponent <= -cutoff_max
    {
        digit_exponent = -cutoff_max + 1;
    }
    if digit_exponent > 0 {
        scale.mul_pow10(digit_exponent as u32);
    } else if digit_exponent < 0 {
        scaled_value.mul_pow10((-digit_exponent) as u32);
        margin_low.mul_pow10((-digit_exponent) as u32);
    }
    if scaled_value.compare(&scale) != Ordering::Less {
        digit_exponent += 1;
    } else {
        scaled_value.mul_small(10);
        margin_low.mul_small(10);
    }

    let mut cutoff_max_exponent = digit_exponent - DRAGON4_BUFFER;
    if cutoff_max >= 0 {
        let desired = match cutoff_mode {
            CutoffMode::TotalLength => digit_exponent - cutoff_max,
            CutoffMode::FractionLength => -cutoff_max,
        };
        cutoff_max_exponent = cutoff_max_exponent.max(desired);
    }
    let mut cutoff_min_exponent = digit_exponent;
    if cutoff_min >= 0 {
        let desired = match cutoff_mode {
            CutoffMode::TotalLength => digit_exponent - cutoff_min,
            CutoffMode::FractionLength => -cutoff_min,
        };
        cutoff_min_exponent = cutoff_min_exponent.min(desired);
    }
    let mut out_exponent = digit_exponent - 1;

    let mut digits = Vec::new();
    let mut low = false;
    let mut high = false;
    let mut output_digit;
    loop {
        digit_exponent -= 1;
        output_digit = scaled_value.divide_digit(&scale);
        match digit_mode {
            DigitMode::Unique => {
                let value_high = scaled_value.add(&margin_high(&margin_low));
                let cmp_low = scaled_value.compare(&margin_low);
                low = if is_even {
                    cmp_low != Ordering::Greater
                } else {
                    cmp_low == Ordering::Less
                };
                let cmp_high = value_high.compare(&scale);
                high = if is_even {
                    cmp_high != Ordering::Less
                } else {
                    cmp_high == Ordering::Greater
                };
                if ((low || high) && digit_exponent <= cutoff_min_exponent)
                    || digit_exponent == cutoff_max_exponent
                {
                    break;
                }
            }
            DigitMode::Exact => {
                if scaled_value.is_zero() || digit_exponent == cutoff_max_exponent {
                    break;
                }
            }
        }
        digits.push(b'0' + output_digit as u8);
        scaled_value.mul_small(10);
        margin_low.mul_small(10);
    }

    // Round the final digit: down if only that stays in range, else to nearest.
    let mut round_down = low;
    if low == high {
        scaled_value.mul_small(2);
        round_down = match scaled_value.compare(&scale) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => output_digit & 1 == 0,
        };
    }
    if round_down {
        digits.push(b'0' + output_digit as u8);
    } else if output_digit == 9 {
        // Carry into the previous digits, dropping the nines.
        loop {
            match digits.pop() {
                None => {
                    digits.push(b'1');
                    out_exponent += 1;
                    break;
                }
                Some(b'9') => {}
                Some(d) => {
                    digits.push(d + 1);
                    break;
                }
            }
        }
    } else {
        digits.push(b'0' + output_digit as u8 + 1);
    }
    (digits, out_exponent)
}

#[cfg(test)]
mod tests {
    //! Expected texts are NumPy 2.4's `np.format_float_positional` /
    //! `np.format_float_scientific` with the same options.

    use half::f16;

    use super::{dragon4, format_positional, format_scientific, CutoffMode, DigitMode};
    use super::{Dragon4Options, Trim};
    use crate::display::float::Float;

    /// Options with `trim` and everything else unset.
    fn trim(trim: Trim) -> Dragon4Options {
        Dragon4Options {
            trim,
            ..Dragon4Options::default()
        }
    }

    #[test]
    fn shortest_digits_are_rusts_shortest_digits() {
        // Rust's `{:e}` prints the shortest round-trip digits too.
        let values = [
            0.1,
            1.0 / 3.0,
            2.0f64.powi(-1074),
            f64::MAX,
            f64::MIN_POSITIVE,
            123_456.789,
            1e22,
            5e-324,
            1e23,
            4.35,
            0.3,
        ];
        for x in values {
            let parts = Float::f64(x).decompose().unwrap();
            let (digits, exp10) =
                dragon4(&parts, DigitMode::Unique, CutoffMode::TotalLength, -1, -1);
            let rust = format!("{x:e}");
            let (mantissa, exponent) = rust.split_once('e').unwrap();
            assert_eq!(
                String::from_utf8(digits).unwrap(),
                mantissa.replace('.', "")
            );
            assert_eq!(exp10, exponent.parse::<i32>().unwrap(), "{x}");
        }
    }

    #[test]
    fn exact_digits_are_rounded_at_the_cutoff() {
        let parts = Float::f64(0.1).decompose().unwrap();
        let (digits, exp10) = dragon4(&parts, DigitMode::Exact, CutoffMode::TotalLength, 20, -1);
        // 0.1 is 0.1000000000000000055511151231257827...
        assert_eq!(String::from_utf8(digits).unwrap(), "10000000000000000555");
        assert_eq!(exp10, -1);
        let parts = Float::f64(9.9999996).decompose().unwrap();
        let (digits, exp10) = dragon4(&parts, DigitMode::Exact, CutoffMode::TotalLength, 6, -1);
        assert_eq!(
            (String::from_utf8(digits).unwrap().as_str(), exp10),
            ("1", 1)
        );
    }

    #[test]
    fn positional() {
        let one = Float::f64(1.0);
        assert_eq!(format_positional(one, &trim(Trim::Zeros)), "1.");
        assert_eq!(format_positional(one, &trim(Trim::DptZeros)), "1");
        assert_eq!(format_positional(one, &trim(Trim::LeaveOneZero)), "1.0");
        assert_eq!(format_positional(one, &trim(Trim::None)), "1.");
        let padded = Dragon4Options {
            pad_left: 3,
            pad_right: 3,
            ..trim(Trim::Zeros)
        };
        assert_eq!(format_positional(Float::f64(1.5), &padded), "  1.5  ");
        let padded = Dragon4Options {
            pad_left: 4,
            ..padded
        };
        assert_eq!(format_positional(Float::f64(-1.5), &padded), "  -1.5  ");
        let dpt = Dragon4Options {
            pad_right: 2,
            ..trim(Trim::DptZeros)
        };
        assert_eq!(format_positional(Float::f64(2.0), &dpt), "2   ");
        let eight = Dragon4Options {
            precision: 8,
            ..trim(Trim::Zeros)
        };
        assert_eq!(
            format_positional(Float::f64(2.0 / 3.0), &eight),
            "0.66666667"
        );
        assert_eq!(
            format_positional(Float::f32(2.0 / 3.0), &eight),
            "0.6666667"
        );
        assert_eq!(
            format_positional(Float::f16(f16::from_f64(2.0 / 3.0)), &eight),
            "0.6665"
        );
        assert_eq!(format_positional(Float::f64(0.999_999_999), &eight), "1.");
        let fixed = Dragon4Options {
            precision: 4,
            min_digits: 4,
            ..trim(Trim::None)
        };
        assert_eq!(format_positional(Float::f64(123.456), &fixed), "123.4560");
    }

    #[test]
    fn scientific() {
        let exp3 = Dragon4Options {
            exp_digits: 3,
            ..trim(Trim::None)
        };
        assert_eq!(format_scientific(Float::f64(1.5), &exp3), "1.5e+000");
        assert_eq!(
            format_scientific(Float::f64(1e-300), &trim(Trim::DptZeros)),
            "1e-300"
        );
        let two = Dragon4Options {
            precision: 2,
            ..trim(Trim::None)
        };
        assert_eq!(format_scientific(Float::f64(12345.678), &two), "1.23e+04");
        assert_eq!(format_scientific(Float::f64(9.9999), &two), "1.e+01");
        assert_eq!(
            format_scientific(Float::f64(5e-324), &trim(Trim::None)),
            "5.e-324"
        );
        assert_eq!(
            format_scientific(Float::f64(-0.0), &trim(Trim::None)),
            "-0.e+00"
        );
        let min3 = Dragon4Options {
            min_digits: 3,
            ..trim(Trim::None)
        };
        assert_eq!(format_scientific(Float::f64(1.0), &min3), "1.000e+00");
        let signed = Dragon4Options {
            sign: true,
            pad_left: 3,
            ..trim(Trim::None)
        };
        assert_eq!(format_scientific(Float::f64(1.25), &signed), " +1.25e+00");
        assert_eq!(
            format_scientific(Float::f64(65504.0), &trim(Trim::None)),
            "6.5504e+04"
        );
        assert_eq!(
            format_scientific(Float::f16(f16::from_f64(65504.0)), &trim(Trim::None)),
            "6.55e+04"
        );
    }

    #[test]
    fn non_finite() {
        let signed = Dragon4Options {
            sign: true,
            ..trim(Trim::Zeros)
        };
        assert_eq!(format_positional(Float::f64(1.0), &signed), "+1.");
        assert_eq!(
            format_positional(Float::f64(f64::INFINITY), &signed),
            "+inf"
        );
        assert_eq!(format_positional(Float::f64(-f64::NAN), &signed), "nan");
    }
}
