//! NumPy's element formats (`numpy/_core/arrayprint.py`: `BoolFormat`,
//! `IntegerFormat`, `FloatingFormat`, `ComplexFloatingFormat`), `str()` of NumPy
//! scalars (`numpy/_core/src/multiarray/scalartypes.c.src`), and the `%g` that
//! `ml_dtypes` prints bfloat16 with.

use super::dragon4::{
    dragon4, format_positional, format_scientific, CutoffMode, DigitMode, Dragon4Options, Trim,
};
use super::float::Float;
use super::PRECISION;

/// NumPy's `BoolFormat` for arrays of at least one dimension: `' True'` and `'False'`,
/// so that both have five characters.
pub(super) struct BoolFormat;

impl BoolFormat {
    /// The text of one element.
    pub(super) fn format(&self, value: bool) -> &'static str {
        if value {
            " True"
        } else {
            "False"
        }
    }
}

/// NumPy's `IntegerFormat`: decimal, right-justified to the width of the longest of
/// the minimum and maximum.
pub(super) struct IntegerFormat {
    /// Characters per element.
    width: usize,
}

impl IntegerFormat {
    /// The format for `values` (not empty).
    pub(super) fn new(values: &[i128]) -> Self {
        let max = values.iter().copied().max().unwrap_or(0);
        let min = values.iter().copied().min().unwrap_or(0);
        IntegerFormat {
            width: max.to_string().len().max(min.to_string().len()),
        }
    }

    /// The text of one element.
    pub(super) fn format(&self, value: i128) -> String {
        format!("{value:>width$}", width = self.width)
    }
}

/// NumPy's `FloatingFormat` with `floatmode='maxprec'`, precision 8 and no suppression.
///
/// All elements share one notation: scientific if a non-zero finite magnitude is at
/// least `10**min(8, finfo.precision)`, below `1e-4`, or the largest is more than 1000
/// times the smallest; else positional. Each element gets its shortest round-trip
/// digits (at most 8 after the point), and padding aligns the decimal points.
pub(super) struct FloatingFormat {
    /// Whether elements print in scientific notation.
    exp_format: bool,
    /// Most fraction digits (Dragon4 `precision`).
    precision: i32,
    /// Fewest fraction digits (Dragon4 `min_digits`; -1 for none).
    min_digits: i32,
    /// Trailing-zero trimming.
    trim: Trim,
    /// Characters left of the decimal point, sign included.
    pad_left: i32,
    /// Characters right of the decimal point (in scientific notation: of the mantissa
    /// fraction, the 'e', the exponent sign and digits).
    pad_right: i32,
    /// Exponent digits in scientific notation (-1 in positional).
    exp_size: i32,
    /// Whether positive values get a '+' (NumPy's `sign='+'`, used for imaginary parts).
    sign: bool,
}

impl FloatingFormat {
    /// The format for `data` (the elements NumPy looks at); `sign` asks for a '+' on
    /// non-negative values (`fillFormat` in NumPy).
    pub(super) fn new(data: &[Float], sign: bool) -> Self {
        let finite: Vec<Float> = data.iter().copied().filter(|x| x.is_finite()).collect();
        let mut format = FloatingFormat {
            exp_format: false,
            precision: PRECISION,
            min_digits: -1,
            trim: Trim::Zeros,
            pad_left: 0,
            pad_right: 0,
            exp_size: -1,
            sign,
        };

        // The notation depends on the non-zero finite magnitudes.
        let magnitudes: Vec<f64> = finite
            .iter()
            .map(|x| x.to_f64().abs())
            .filter(|&m| m != 0.0)
            .collect();
        if let Some(ty) = finite.first().map(|x| x.ty) {
            if !magnitudes.is_empty() {
                let max = magnitudes.iter().copied().fold(f64::MIN, f64::max);
                let min = magnitudes.iter().copied().fold(f64::MAX, f64::min);
                let cutoff = 10f64.powi(ty.decimal_precision().min(8));
                // NumPy computes in the element type: `min_val < 0.0001` compares with
                // 0.0001 rounded to it, and `max_val / min_val` rounds to it.
                let ratio = ty.round(max / min);
                format.exp_format = max >= cutoff || min < ty.round(1e-4) || ratio > 1000.0;
            }
        }

        // A first pass of printing all finite values determines the widths.
        if finite.is_empty() {
            // Only NaN and infinities: nothing to align but their own width.
        } else if format.exp_format {
            let options = Dragon4Options {
                precision: PRECISION,
                trim: Trim::Zeros,
                sign,
                ..Dragon4Options::default()
            };
            let mut frac_len = 0;
            let mut int_len = 0;
            let mut exp_len = 0;
            for x in &finite {
                let s = format_scientific(*x, &options);
                let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, ""));
                let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
                int_len = int_len.max(int_part.len() as i32);
                frac_len = frac_len.max(frac_part.len() as i32);
                exp_len = exp_len.max(exponent.len() as i32);
            }
            format.exp_size = exp_len - 1;
            format.trim = Trim::None;
            format.precision = frac_len;
            format.min_digits = frac_len;
            format.pad_left = int_len;
            format.pad_right = format.exp_size + 2 + frac_len;
        } else {
            let options = Dragon4Options {
                precision: PRECISION,
                trim: Trim::Zeros,
                sign,
                ..Dragon4Options::default()
            };
            for x in &finite {
                let s = format_positional(*x, &options);
                let (int_part, frac_part) = s.split_once('.').unwrap_or((&s, ""));
                format.pad_left = format.pad_left.max(int_part.len() as i32);
                format.pad_right = format.pad_right.max(frac_part.len() as i32);
            }
            format.min_digits = 0;
        }

        // Non-finite values may need more room on the left.
        if finite.len() != data.len() {
            let neg_inf = sign || data.iter().any(|x| x.is_infinite() && x.is_sign_negative());
            let offset = format.pad_right + 1; // +1 for the decimal point
            format.pad_left = format
                .pad_left
                .max(3 - offset)
                .max(3 + i32::from(neg_inf) - offset);
        }
        format
    }

    /// The text of one element.
    pub(super) fn format(&self, x: Float) -> String {
        if !x.is_finite() {
            let text = if x.is_nan() {
                if self.sign {
                    "+nan"
                } else {
                    "nan"
                }
            } else if x.is_sign_negative() {
                "-inf"
            } else if self.sign {
                "+inf"
            } else {
                "inf"
            };
            let width = (self.pad_left + self.pad_right + 1).max(0) as usize;
            return format!("{text:>width$}");
        }
        let options = Dragon4Options {
            precision: self.precision,
            min_digits: self.min_digits,
            sign: self.sign,
            trim: self.trim,
            pad_left: self.pad_left,
            pad_right: self.pad_right,
            exp_digits: self.exp_size,
        };
        if self.exp_format {
            format_scientific(x, &options)
        } else {
            format_positional(x, &options)
        }
    }
}

/// NumPy's `ComplexFloatingFormat`: a [`FloatingFormat`] for the real parts and one,
/// with explicit signs, for the imaginary parts, which get a `j` before their padding.
pub(super) struct ComplexFloatingFormat {
    /// Format of the real parts.
    real: FloatingFormat,
    /// Format of the imaginary parts.
    imag: FloatingFormat,
}

impl ComplexFloatingFormat {
    /// The format for `data` (the elements NumPy looks at), as (real, imaginary) pairs.
    pub(super) fn new(data: &[(Float, Float)]) -> Self {
        let re: Vec<Float> = data.iter().map(|z| z.0).collect();
        let im: Vec<Float> = data.iter().map(|z| z.1).collect();
        ComplexFloatingFormat {
            real: FloatingFormat::new(&re, false),
            imag: FloatingFormat::new(&im, true),
        }
    }

    /// The text of one element.
    pub(super) fn format(&self, re: Float, im: Float) -> String {
        let r = self.real.format(re);
        let i = self.imag.format(im);
        let end = i.trim_end_matches(' ').len();
        format!("{r}{}j{}", &i[..end], &i[end..])
    }
}

/// `str()` of a NumPy float scalar (`@name@type_str`): shortest round-trip digits,
/// positional (`1.0`, `0.001`) for magnitudes in `[1e-4, max)` and zero, else
/// scientific (`1e+16`, `1.5e-05`); `max` is 1e3 for float16, 1e6 for float32, 1e16
/// for float64.
pub(super) fn float_scalar_str(x: Float) -> String {
    scalar_either(x, Trim::LeaveOneZero, Trim::DptZeros, false)
}

/// `str()` of a NumPy complex scalar: `2j` when the real part is +0, else `(1+2j)`,
/// with both parts trimmed of trailing zeros and decimal point.
pub(super) fn complex_scalar_str(re: Float, im: Float) -> String {
    let trim = Trim::DptZeros;
    if re.to_f64() == 0.0 && !re.is_sign_negative() {
        return format!("{}j", scalar_either(im, trim, trim, false));
    }
    let rstr = if re.is_finite() {
        scalar_either(re, trim, trim, false)
    } else if re.is_nan() {
        "nan".to_string()
    } else if re.is_sign_negative() {
        "-inf".to_string()
    } else {
        "inf".to_string()
    };
    let istr = if im.is_finite() {
        scalar_either(im, trim, trim, true)
    } else if im.is_nan() {
        "+nan".to_string()
    } else if im.is_sign_negative() {
        "-inf".to_string()
    } else {
        "+inf".to_string()
    };
    format!("({rstr}{istr}j)")
}

/// NumPy's `@name@type_@kind@_either`: a scalar in positional or scientific notation
/// depending on its magnitude.
pub(super) fn scalar_either(x: Float, trim_pos: Trim, trim_sci: Trim, sign: bool) -> String {
    let v = x.to_f64();
    let magnitude = v.abs();
    let positional =
        v.is_nan() || v == 0.0 || (magnitude < x.ty.max_positional_scalar() && magnitude >= 1e-4);
    let options = Dragon4Options {
        sign,
        ..Dragon4Options::default()
    };
    if positional {
        format_positional(
            x,
            &Dragon4Options {
                trim: trim_pos,
                ..options
            },
        )
    } else {
        format_scientific(
            x,
            &Dragon4Options {
                trim: trim_sci,
                ..options
            },
        )
    }
}

/// C's `printf("%g", x)` (six significant digits, trailing zeros removed): how
/// `ml_dtypes` prints a bfloat16 (through `std::ostream << float`). NaN prints as `nan`
/// whatever its sign, as `ml_dtypes` prints its absolute value.
pub(super) fn printf_g(x: f32) -> String {
    const SIGNIFICANT: i32 = 6;
    if x.is_nan() {
        return "nan".to_string();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_infinite() {
        return format!("{sign}inf");
    }
    let Some(parts) = Float::f64(f64::from(x)).decompose() else {
        return "nan".to_string();
    };
    // Correctly rounded (ties to even) to six significant digits, like glibc.
    let (digits, exp10) = dragon4(
        &parts,
        DigitMode::Exact,
        CutoffMode::TotalLength,
        SIGNIFICANT,
        -1,
    );
    let digits = String::from_utf8_lossy(&digits)
        .trim_end_matches('0')
        .to_string();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    if !(-4..SIGNIFICANT).contains(&exp10) {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp10 < 0 { '-' } else { '+' };
        format!("{sign}{first}{point}{rest}e{exp_sign}{:02}", exp10.abs())
    } else if exp10 >= 0 {
        let whole = exp10 as usize + 1;
        if digits.len() <= whole {
            format!("{sign}{digits}{}", "0".repeat(whole - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..whole], &digits[whole..])
        }
    } else {
        let zeros = "0".repeat((-exp10 - 1) as usize);
        format!("{sign}0.{zeros}{digits}")
    }
}

#[cfg(test)]
mod tests {
    use super::{printf_g, FloatingFormat, IntegerFormat};
    use crate::display::float::Float;

    #[test]
    fn printf_g_is_cs_percent_g() {
        // Python's `'%g' % float(np.float32(x))`.
        let cases: [(f32, &str); 18] = [
            (0.1, "0.1"),
            (1.0 / 3.0, "0.333333"),
            (100.0, "100"),
            (-2.5, "-2.5"),
            (1e6, "1e+06"),
            (999_999.5, "1e+06"),
            (0.000_976_562_5, "0.000976562"),
            (1e-5, "1e-05"),
            (123_456_789.0, "1.23457e+08"),
            (0.0001, "0.0001"),
            (9.999_999_6, "10"),
            (1.234_565e-5, "1.23457e-05"),
            (-0.0, "-0"),
            (f32::MAX, "3.40282e+38"),
            (1e-45, "1.4013e-45"),
            (0.5, "0.5"),
            (1_234_567.0, "1.23457e+06"),
            (0.000_123_456_79, "0.000123457"),
        ];
        for (x, text) in cases {
            assert_eq!(printf_g(x), text, "{x}");
        }
        assert_eq!(printf_g(-f32::NAN), "nan");
        assert_eq!(printf_g(f32::NEG_INFINITY), "-inf");
    }

    #[test]
    fn integers_share_the_widest_width() {
        let format = IntegerFormat::new(&[5, -120, 42]);
        assert_eq!(format.format(5), "   5");
        assert_eq!(format.format(-120), "-120");
    }

    #[test]
    fn non_finite_values_take_the_width_of_the_finite_ones() {
        // np.array([1.25, np.nan, -np.inf]): '[1.25  nan -inf]'.
        let data = [1.25, f64::NAN, f64::NEG_INFINITY].map(Float::f64);
        let format = FloatingFormat::new(&data, false);
        let words: Vec<String> = data.iter().map(|&x| format.format(x)).collect();
        assert_eq!(words, ["1.25", " nan", "-inf"]);
    }
}
