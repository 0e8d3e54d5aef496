//! `Display` for [`Tensor`]: exactly what TensorFlow's `str(tensor)` prints, with the
//! prefix `tb.Tensor(` instead of `tf.Tensor(`.
//!
//! TensorFlow prints `tf.Tensor(<text>, shape=<shape>, dtype=<name>)`, where `<text>` is
//! NumPy's `str()` of the tensor's value, preceded by a newline when it spans several
//! lines. This module ports the parts of NumPy 2.4 that produce `<text>` under the
//! default print options (precision 8, threshold 1000, edge items 3, line width 75,
//! `floatmode='maxprec'`, no suppression):
//!
//! - `numpy/_core/arrayprint.py`: `_formatArray` (layout, wrapping, summarisation) and
//!   the element formatters `FloatingFormat`, `IntegerFormat`, `BoolFormat` and
//!   `ComplexFloatingFormat`;
//! - `numpy/_core/src/multiarray/dragon4.c`: digit generation (`Dragon4`) and the
//!   `FormatPositional` / `FormatScientific` layouts;
//! - `numpy/_core/src/multiarray/scalartypes.c.src`: `str()` of a 0-d array, which is
//!   the `str()` of its scalar.
//!
//! bfloat16 (from `ml_dtypes`) is not a NumPy floating type: NumPy formats each element
//! with its `repr`, which `ml_dtypes` writes as C++ `std::ostream << float` does, that
//! is `printf("%g")` with six significant digits, without any alignment.

use std::cmp::Ordering;
use std::fmt;

use half::{bf16, f16};
use num_complex::Complex;

use crate::cast::float16::{bf16_to_f32, f16_to_f64, f64_to_f16};
use crate::cast::{Bool, Element};
use crate::dtype::DType;
use crate::tensor::Tensor;

/// NumPy's default `linewidth`.
const LINE_WIDTH: isize = 75;
/// NumPy's default `threshold`: arrays with more elements are summarised.
const THRESHOLD: usize = 1000;
/// NumPy's default `edgeitems`: items kept at each end of a summarised axis.
const EDGE_ITEMS: usize = 3;
/// NumPy's default `precision`: the most fraction digits a float element gets.
const PRECISION: i32 = 8;
/// Size of NumPy's Dragon4 output buffer, which bounds the digits of one number.
const DRAGON4_BUFFER: i32 = 16384;

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = numpy_str(self).unwrap_or_else(|e| format!("<unprintable: {e}>"));
        let newline = if text.contains('\n') { "\n" } else { "" };
        write!(
            f,
            "tb.Tensor({newline}{text}, shape={}, dtype={})",
            shape_tuple(self.shape()),
            self.dtype()
        )
    }
}

/// The shape as a Python tuple: `()`, `(3,)`, `(2, 3)`.
fn shape_tuple(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// NumPy's `str(array)` of the tensor's value.
fn numpy_str(tensor: &Tensor) -> Result<String, String> {
    let t = tensor.to_contiguous().map_err(|e| e.to_string())?;
    let shape = t.shape().to_vec();
    if shape.is_empty() {
        return scalar_str(&t).ok_or_else(|| "element type mismatch".to_string());
    }
    let size: usize = shape.iter().product();
    if size == 0 {
        return Ok("[]".to_string());
    }
    let summarise = size > THRESHOLD;
    let kept = kept_indices(&shape, summarise);
    let words = element_strings(&t, &kept).ok_or_else(|| "element type mismatch".to_string())?;
    let layout = ArrayLayout::new(&shape, summarise, |flat| {
        // `kept` is sorted (C order), and the layout asks only for kept elements.
        kept.binary_search(&flat)
            .map(|k| words[k].as_str())
            .unwrap_or("?")
    });
    Ok(layout.render())
}

/// Flat (C-order) indices of the elements NumPy looks at: all of them, or when
/// summarising, the corners `_leading_trailing` keeps (the first and last
/// [`EDGE_ITEMS`] of every axis longer than twice that). Sorted ascending.
fn kept_indices(shape: &[usize], summarise: bool) -> Vec<usize> {
    let mut flat = vec![0usize];
    for &n in shape {
        let along: Vec<usize> = if summarise && n > 2 * EDGE_ITEMS {
            (0..EDGE_ITEMS).chain(n - EDGE_ITEMS..n).collect()
        } else {
            (0..n).collect()
        };
        flat = flat
            .iter()
            .flat_map(|&base| along.iter().map(move |&i| base * n + i))
            .collect();
    }
    flat
}

/// The formatted text of the elements at the `kept` flat indices, each formatted by
/// the element format NumPy builds from exactly those elements. `None` if the
/// tensor's storage does not match its dtype.
fn element_strings(t: &Tensor, kept: &[usize]) -> Option<Vec<String>> {
    fn pick<T: Element>(t: &Tensor, kept: &[usize]) -> Option<Vec<T>> {
        let all = t.as_slice::<T>()?;
        Some(kept.iter().map(|&i| all[i]).collect())
    }
    fn ints<T: Element + Into<i128>>(t: &Tensor, kept: &[usize]) -> Option<Vec<String>> {
        let values: Vec<i128> = pick::<T>(t, kept)?.into_iter().map(Into::into).collect();
        let format = IntegerFormat::new(&values);
        Some(values.iter().map(|&v| format.format(v)).collect())
    }
    fn floats(values: Vec<Float>) -> Vec<String> {
        let format = FloatingFormat::new(&values, false);
        values.iter().map(|&v| format.format(v)).collect()
    }
    fn complexes(values: Vec<(Float, Float)>) -> Vec<String> {
        let format = ComplexFloatingFormat::new(&values);
        values
            .iter()
            .map(|&(re, im)| format.format(re, im))
            .collect()
    }

    Some(match t.dtype() {
        DType::Bool => pick::<Bool>(t, kept)?
            .into_iter()
            .map(|b| BoolFormat.format(b.0 != 0).to_string())
            .collect(),
        DType::Int8 => ints::<i8>(t, kept)?,
        DType::Int16 => ints::<i16>(t, kept)?,
        DType::Int32 => ints::<i32>(t, kept)?,
        DType::Int64 => ints::<i64>(t, kept)?,
        DType::UInt8 => ints::<u8>(t, kept)?,
        DType::UInt16 => ints::<u16>(t, kept)?,
        DType::UInt32 => ints::<u32>(t, kept)?,
        DType::UInt64 => ints::<u64>(t, kept)?,
        DType::Float16 => floats(pick::<f16>(t, kept)?.into_iter().map(Float::f16).collect()),
        DType::Float32 => floats(pick::<f32>(t, kept)?.into_iter().map(Float::f32).collect()),
        DType::Float64 => floats(pick::<f64>(t, kept)?.into_iter().map(Float::f64).collect()),
        DType::BFloat16 => pick::<bf16>(t, kept)?
            .into_iter()
            .map(|x| printf_g(bf16_to_f32(x.to_bits())))
            .collect(),
        DType::Complex64 => complexes(
            pick::<Complex<f32>>(t, kept)?
                .into_iter()
                .map(|z| (Float::f32(z.re), Float::f32(z.im)))
                .collect(),
        ),
        DType::Complex128 => complexes(
            pick::<Complex<f64>>(t, kept)?
                .into_iter()
                .map(|z| (Float::f64(z.re), Float::f64(z.im)))
                .collect(),
        ),
    })
}

/// `str()` of a 0-d tensor: NumPy prints its scalar's `str()`.
fn scalar_str(t: &Tensor) -> Option<String> {
    fn first<T: Element>(t: &Tensor) -> Option<T> {
        t.as_slice::<T>()?.first().copied()
    }
    Some(match t.dtype() {
        DType::Bool => if first::<Bool>(t)?.0 != 0 {
            "True"
        } else {
            "False"
        }
        .to_string(),
        DType::Int8 => first::<i8>(t)?.to_string(),
        DType::Int16 => first::<i16>(t)?.to_string(),
        DType::Int32 => first::<i32>(t)?.to_string(),
        DType::Int64 => first::<i64>(t)?.to_string(),
        DType::UInt8 => first::<u8>(t)?.to_string(),
        DType::UInt16 => first::<u16>(t)?.to_string(),
        DType::UInt32 => first::<u32>(t)?.to_string(),
        DType::UInt64 => first::<u64>(t)?.to_string(),
        DType::Float16 => float_scalar_str(Float::f16(first::<f16>(t)?)),
        DType::Float32 => float_scalar_str(Float::f32(first::<f32>(t)?)),
        DType::Float64 => float_scalar_str(Float::f64(first::<f64>(t)?)),
        DType::BFloat16 => printf_g(bf16_to_f32(first::<bf16>(t)?.to_bits())),
        DType::Complex64 => {
            let z = first::<Complex<f32>>(t)?;
            complex_scalar_str(Float::f32(z.re), Float::f32(z.im))
        }
        DType::Complex128 => {
            let z = first::<Complex<f64>>(t)?;
            complex_scalar_str(Float::f64(z.re), Float::f64(z.im))
        }
    })
}

// ---------------------------------------------------------------------------------
// Layout: `_formatArray`
// ---------------------------------------------------------------------------------

/// NumPy's `_formatArray` with separator `' '` and next-line prefix `' '`: nested
/// brackets, rows wrapped at [`LINE_WIDTH`], blank lines between blocks of 3-d and
/// higher arrays, and `...` in place of the middle of summarised axes.
struct ArrayLayout<'a, F: Fn(usize) -> &'a str> {
    /// The array's shape (at least one axis).
    shape: &'a [usize],
    /// C-order element strides of each axis.
    strides: Vec<usize>,
    /// Whether axes longer than `2 * EDGE_ITEMS` are summarised.
    summarise: bool,
    /// The formatted element at a flat index.
    element: F,
}

impl<'a, F: Fn(usize) -> &'a str> ArrayLayout<'a, F> {
    /// A layout of an array of `shape` whose elements `element` formats.
    fn new(shape: &'a [usize], summarise: bool, element: F) -> Self {
        let mut strides = vec![1usize; shape.len()];
        for axis in (0..shape.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * shape[axis + 1];
        }
        ArrayLayout {
            shape,
            strides,
            summarise,
            element,
        }
    }

    /// The whole array's text.
    fn render(&self) -> String {
        self.recurse(0, 0, 1, LINE_WIDTH)
    }

    /// The text of the sub-array at `axis` starting at flat index `offset`, whose
    /// continuation lines start with `hanging_indent` spaces and may use `width` columns
    /// (`recurser` in NumPy).
    fn recurse(&self, axis: usize, offset: usize, hanging_indent: usize, width: isize) -> String {
        if axis == self.shape.len() {
            return (self.element)(offset).to_string();
        }
        let len = self.shape[axis];
        let axes_left = self.shape.len() - axis;
        // Each nesting level adds a '[' on the left and a ']' on the right.
        let next_indent = hanging_indent + 1;
        let next_width = width - 1;
        // `None` stands for the '...' of a summarised axis.
        let items: Vec<Option<usize>> = if self.summarise && len > 2 * EDGE_ITEMS {
            (0..EDGE_ITEMS)
                .map(Some)
                .chain(std::iter::once(None))
                .chain((len - EDGE_ITEMS..len).map(Some))
                .collect()
        } else {
            (0..len).map(Some).collect()
        };
        let word = |item: &Option<usize>| match item {
            Some(i) => self.recurse(
                axis + 1,
                offset + i * self.strides[axis],
                next_indent,
                next_width,
            ),
            None => "...".to_string(),
        };
        let indent = " ".repeat(hanging_indent);
        let mut s = String::new();
        if axes_left == 1 {
            // A row: words separated by ' ', wrapped to leave room for the ']'.
            let elem_width = width - 1;
            let mut line = indent.clone();
            for (k, item) in items.iter().enumerate() {
                extend_line(&mut s, &mut line, &word(item), elem_width, &indent);
                if k + 1 < items.len() {
                    line.push(' ');
                }
            }
            s.push_str(&line);
        } else {
            // Sub-arrays one per line, with axes_left - 2 blank lines between them.
            let line_sep = "\n".repeat(axes_left - 1);
            for (k, item) in items.iter().enumerate() {
                s.push_str(&indent);
                s.push_str(&word(item));
                if k + 1 < items.len() {
                    s.push_str(&line_sep);
                }
            }
        }
        format!("[{}]", &s[hanging_indent..])
    }
}

/// NumPy's `_extendLine`: append `word` to `line`, first moving `line` into `s` and
/// starting a new line at `indent` if the word would pass `width` (unless the line holds
/// nothing but the indent, where wrapping would not help).
fn extend_line(s: &mut String, line: &mut String, word: &str, width: isize, indent: &str) {
    let needs_wrap = (line.len() + word.len()) as isize > width && line.len() > indent.len();
    if needs_wrap {
        s.push_str(line.trim_end_matches(' '));
        s.push('\n');
        line.clear();
        line.push_str(indent);
    }
    line.push_str(word);
}

// ---------------------------------------------------------------------------------
// Element formats: `BoolFormat`, `IntegerFormat`, `FloatingFormat`,
// `ComplexFloatingFormat`
// ---------------------------------------------------------------------------------

/// NumPy's `BoolFormat` for arrays of at least one dimension: `' True'` and `'False'`,
/// so that both have five characters.
struct BoolFormat;

impl BoolFormat {
    /// The text of one element.
    fn format(&self, value: bool) -> &'static str {
        if value {
            " True"
        } else {
            "False"
        }
    }
}

/// NumPy's `IntegerFormat`: decimal, right-justified to the width of the longest of
/// the minimum and maximum.
struct IntegerFormat {
    /// Characters per element.
    width: usize,
}

impl IntegerFormat {
    /// The format for `values` (not empty).
    fn new(values: &[i128]) -> Self {
        let max = values.iter().copied().max().unwrap_or(0);
        let min = values.iter().copied().min().unwrap_or(0);
        IntegerFormat {
            width: max.to_string().len().max(min.to_string().len()),
        }
    }

    /// The text of one element.
    fn format(&self, value: i128) -> String {
        format!("{value:>width$}", width = self.width)
    }
}

/// NumPy's `FloatingFormat` with `floatmode='maxprec'`, precision 8 and no suppression.
///
/// All elements share one notation: scientific if a non-zero finite magnitude is at
/// least `10**min(8, finfo.precision)`, below `1e-4`, or the largest is more than 1000
/// times the smallest; else positional. Each element gets its shortest round-trip
/// digits (at most 8 after the point), and padding aligns the decimal points.
struct FloatingFormat {
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
    fn new(data: &[Float], sign: bool) -> Self {
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
    fn format(&self, x: Float) -> String {
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
struct ComplexFloatingFormat {
    /// Format of the real parts.
    real: FloatingFormat,
    /// Format of the imaginary parts.
    imag: FloatingFormat,
}

impl ComplexFloatingFormat {
    /// The format for `data` (the elements NumPy looks at), as (real, imaginary) pairs.
    fn new(data: &[(Float, Float)]) -> Self {
        let re: Vec<Float> = data.iter().map(|z| z.0).collect();
        let im: Vec<Float> = data.iter().map(|z| z.1).collect();
        ComplexFloatingFormat {
            real: FloatingFormat::new(&re, false),
            imag: FloatingFormat::new(&im, true),
        }
    }

    /// The text of one element.
    fn format(&self, re: Float, im: Float) -> String {
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
fn float_scalar_str(x: Float) -> String {
    scalar_either(x, Trim::LeaveOneZero, Trim::DptZeros, false)
}

/// `str()` of a NumPy complex scalar: `2j` when the real part is +0, else `(1+2j)`,
/// with both parts trimmed of trailing zeros and decimal point.
fn complex_scalar_str(re: Float, im: Float) -> String {
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
fn scalar_either(x: Float, trim_pos: Trim, trim_sci: Trim, sign: bool) -> String {
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
fn printf_g(x: f32) -> String {
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

// ---------------------------------------------------------------------------------
// Floating-point values in their own precision
// ---------------------------------------------------------------------------------

/// An IEEE binary format NumPy prints with Dragon4.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FloatType {
    /// binary16 (`float16`).
    F16,
    /// binary32 (`float32`, parts of `complex64`).
    F32,
    /// binary64 (`float64`, parts of `complex128`).
    F64,
}

impl FloatType {
    /// Stored fraction bits.
    fn fraction_bits(self) -> u32 {
        match self {
            FloatType::F16 => 10,
            FloatType::F32 => 23,
            FloatType::F64 => 52,
        }
    }

    /// Exponent bits.
    fn exponent_bits(self) -> u32 {
        match self {
            FloatType::F16 => 5,
            FloatType::F32 => 8,
            FloatType::F64 => 11,
        }
    }

    /// `np.finfo(dtype).precision`: decimal digits the type holds.
    fn decimal_precision(self) -> i32 {
        match self {
            FloatType::F16 => 3,
            FloatType::F32 => 6,
            FloatType::F64 => 15,
        }
    }

    /// The smallest magnitude a scalar's `str()` prints in scientific notation.
    fn max_positional_scalar(self) -> f64 {
        match self {
            FloatType::F16 => 1e3,
            FloatType::F32 => 1e6,
            FloatType::F64 => 1e16,
        }
    }

    /// `x` rounded to the nearest value of this type (as arithmetic in the type gives).
    fn round(self, x: f64) -> f64 {
        match self {
            FloatType::F16 => f16_to_f64(f64_to_f16(x)),
            FloatType::F32 => f64::from(x as f32),
            FloatType::F64 => x,
        }
    }
}

/// A float in its own format, so that its digits are the shortest for that format.
#[derive(Clone, Copy, Debug)]
struct Float {
    /// The format.
    ty: FloatType,
    /// The bit pattern, in the low bits.
    bits: u64,
}

/// A finite float as `mantissa * 2**exponent`, with what Dragon4 needs about it.
#[derive(Clone, Copy, Debug)]
struct Decomposed {
    /// The integer significand (zero for zero).
    mantissa: u64,
    /// The power of two it is scaled by.
    exponent: i32,
    /// Index of the mantissa's highest set bit.
    mantissa_bit: u32,
    /// Whether the gap to the next value up is twice the gap down (an exact power of
    /// two above the smallest normal).
    unequal_margins: bool,
}

impl Float {
    /// A float16 value.
    fn f16(x: f16) -> Self {
        Float {
            ty: FloatType::F16,
            bits: u64::from(x.to_bits()),
        }
    }

    /// A float32 value.
    fn f32(x: f32) -> Self {
        Float {
            ty: FloatType::F32,
            bits: u64::from(x.to_bits()),
        }
    }

    /// A float64 value.
    fn f64(x: f64) -> Self {
        Float {
            ty: FloatType::F64,
            bits: x.to_bits(),
        }
    }

    /// The exact value as an f64.
    fn to_f64(self) -> f64 {
        match self.ty {
            FloatType::F16 => f16_to_f64(self.bits as u16),
            FloatType::F32 => f64::from(f32::from_bits(self.bits as u32)),
            FloatType::F64 => f64::from_bits(self.bits),
        }
    }

    /// The biased exponent field.
    fn biased_exponent(self) -> u64 {
        (self.bits >> self.ty.fraction_bits()) & ((1 << self.ty.exponent_bits()) - 1)
    }

    /// The fraction field.
    fn fraction(self) -> u64 {
        self.bits & ((1 << self.ty.fraction_bits()) - 1)
    }

    /// Whether the exponent field is all ones (infinity or NaN).
    fn is_special(self) -> bool {
        self.biased_exponent() == (1 << self.ty.exponent_bits()) - 1
    }

    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool {
        !self.is_special()
    }

    /// Whether the value is NaN.
    fn is_nan(self) -> bool {
        self.is_special() && self.fraction() != 0
    }

    /// Whether the value is an infinity.
    fn is_infinite(self) -> bool {
        self.is_special() && self.fraction() == 0
    }

    /// Whether the sign bit is set.
    fn is_sign_negative(self) -> bool {
        (self.bits >> (self.ty.fraction_bits() + self.ty.exponent_bits())) & 1 == 1
    }

    /// The magnitude as `mantissa * 2**exponent`, or `None` for infinities and NaN
    /// (as in NumPy's `Dragon4_PrintFloat_IEEE_binary*`).
    fn decompose(self) -> Option<Decomposed> {
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

// ---------------------------------------------------------------------------------
// Dragon4 (numpy/_core/src/multiarray/dragon4.c)
// ---------------------------------------------------------------------------------

/// How trailing zeros are trimmed (NumPy's `TrimMode`; Python's `trim` letter).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Trim {
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
enum DigitMode {
    /// Shortest digits that uniquely identify the value in its format.
    Unique,
    /// Digits of the exact binary value.
    Exact,
}

/// What Dragon4's digit limits count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CutoffMode {
    /// All significant digits.
    TotalLength,
    /// Digits after the decimal point.
    FractionLength,
}

/// Options of NumPy's `dragon4_positional` / `dragon4_scientific` in unique digit mode
/// (-1 means "not given").
#[derive(Clone, Copy, Debug)]
struct Dragon4Options {
    /// Most digits after the decimal point.
    precision: i32,
    /// Fewest digits after the decimal point.
    min_digits: i32,
    /// Whether to print '+' for non-negative values.
    sign: bool,
    /// Trailing-zero trimming.
    trim: Trim,
    /// Pad with spaces to this many characters left of the decimal point.
    pad_left: i32,
    /// Pad with spaces to this many characters right of the decimal point.
    pad_right: i32,
    /// Pad the exponent with zeros to this many digits (at least 2 when -1).
    exp_digits: i32,
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
fn sign_prefix(x: Float, options: &Dragon4Options) -> &'static str {
    if x.is_sign_negative() {
        "-"
    } else if options.sign {
        "+"
    } else {
        ""
    }
}

/// `inf`, `-inf`, `+inf` or `nan` (NumPy's `PrintInfNan`: NaN never gets a sign).
fn inf_nan_str(x: Float, options: &Dragon4Options) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else {
        format!("{}inf", sign_prefix(x, options))
    }
}

/// NumPy's `FormatPositional` in unique mode with fractional cutoffs: `ddd.ddd`.
fn format_positional(x: Float, options: &Dragon4Options) -> String {
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
fn format_scientific(x: Float, options: &Dragon4Options) -> String {
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
fn dragon4(
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

/// A minimal unsigned big integer for Dragon4: little-endian 32-bit limbs without
/// high zero limbs (zero has none).
#[derive(Clone, Debug)]
struct BigUint {
    /// The limbs, least significant first.
    limbs: Vec<u32>,
}

impl BigUint {
    /// The value `v`.
    fn from_u64(v: u64) -> Self {
        let mut n = BigUint {
            limbs: vec![v as u32, (v >> 32) as u32],
        };
        n.normalize();
        n
    }

    /// The value `2**exp`.
    fn pow2(exp: u32) -> Self {
        let mut limbs = vec![0; exp as usize / 32 + 1];
        limbs[exp as usize / 32] = 1 << (exp % 32);
        BigUint { limbs }
    }

    /// Drop high zero limbs.
    fn normalize(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    /// Whether the value is zero.
    fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    /// `self *= m`.
    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(m) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
        self.normalize();
    }

    /// `self *= 10**exp`.
    fn mul_pow10(&mut self, mut exp: u32) {
        while exp >= 9 {
            self.mul_small(1_000_000_000);
            exp -= 9;
        }
        if exp > 0 {
            self.mul_small(10u32.pow(exp));
        }
    }

    /// `self <<= bits`.
    fn shl(&mut self, bits: u32) {
        if self.is_zero() {
            return;
        }
        let (whole, part) = ((bits / 32) as usize, bits % 32);
        if part != 0 {
            let mut carry = 0u32;
            for limb in &mut self.limbs {
                let next = *limb >> (32 - part);
                *limb = (*limb << part) | carry;
                carry = next;
            }
            if carry != 0 {
                self.limbs.push(carry);
            }
        }
        self.limbs.splice(0..0, vec![0; whole]);
    }

    /// `self + other`.
    fn add(&self, other: &BigUint) -> BigUint {
        let (long, short) = if self.limbs.len() >= other.limbs.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut limbs = Vec::with_capacity(long.limbs.len() + 1);
        let mut carry = 0u64;
        for (i, &a) in long.limbs.iter().enumerate() {
            let sum = u64::from(a) + u64::from(*short.limbs.get(i).unwrap_or(&0)) + carry;
            limbs.push(sum as u32);
            carry = sum >> 32;
        }
        if carry != 0 {
            limbs.push(carry as u32);
        }
        BigUint { limbs }
    }

    /// `self -= other`, where `other <= self`.
    fn sub_assign(&mut self, other: &BigUint) {
        let mut borrow = 0i64;
        for (i, limb) in self.limbs.iter_mut().enumerate() {
            let diff = i64::from(*limb) - i64::from(*other.limbs.get(i).unwrap_or(&0)) - borrow;
            borrow = i64::from(diff < 0);
            *limb = diff.rem_euclid(1 << 32) as u32;
        }
        self.normalize();
    }

    /// Compare the values.
    fn compare(&self, other: &BigUint) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    /// Replace `self` by `self % divisor` and return `self / divisor`, which must be
    /// below 10.
    fn divide_digit(&mut self, divisor: &BigUint) -> u32 {
        let mut quotient = 0;
        while self.compare(divisor) != Ordering::Less {
            self.sub_assign(divisor);
            quotient += 1;
        }
        quotient
    }
}

#[cfg(test)]
mod tests {
    //! Every expected string below is what NumPy 2.4 (with ml_dtypes 0.6 for bfloat16)
    //! prints for the same array, run through TensorFlow's `tf.Tensor(...)` wrapping
    //! with the prefix changed to `tb.Tensor(`.

    use half::{bf16, f16};
    use num_complex::Complex;

    use crate::cast::{Bool, Element};
    use crate::tensor::Tensor;

    /// A tensor holding `data` with `shape`.
    fn tensor<T: Element>(data: &[T], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape).unwrap()
    }

    /// Assert that the tensor of `data` and `shape` displays as `expected`.
    fn check<T: Element>(data: &[T], shape: &[usize], expected: &str) {
        assert_eq!(tensor(data, shape).to_string(), expected);
    }

    #[test]
    fn int_matrix() {
        check(
            &[1i64, -20, 300, 4, 5, 6],
            &[2, 3],
            "tb.Tensor(\n[[  1 -20 300]\n [  4   5   6]], shape=(2, 3), dtype=int64)",
        );
    }

    #[test]
    fn float32_matrix() {
        check(
            &[1f32, 2., 3., 4., 5., 6.],
            &[2, 3],
            "tb.Tensor(\n[[1. 2. 3.]\n [4. 5. 6.]], shape=(2, 3), dtype=float32)",
        );
    }

    #[test]
    fn debug_is_display() {
        let t = tensor(&[1f32, 2., 3.], &[3]);
        assert_eq!(format!("{t:?}"), t.to_string());
    }

    #[test]
    fn mixed_width_floats() {
        check(
            &[1.5f64, 2.25, -10.125],
            &[3],
            "tb.Tensor([  1.5     2.25  -10.125], shape=(3,), dtype=float64)",
        );
    }

    #[test]
    fn shortest_digits_capped_at_precision() {
        check(
            &[0.1f32, 0.2, 0.3],
            &[3],
            "tb.Tensor([0.1 0.2 0.3], shape=(3,), dtype=float32)",
        );
        check(
            &[0.1f64, 0.123456789],
            &[2],
            "tb.Tensor([0.1        0.12345679], shape=(2,), dtype=float64)",
        );
    }

    #[test]
    fn scientific_notation() {
        check(
            &[1e10f64, 1.5],
            &[2],
            "tb.Tensor([1.0e+10 1.5e+00], shape=(2,), dtype=float64)",
        );
        check(
            &[1e-5f64, 1.],
            &[2],
            "tb.Tensor([1.e-05 1.e+00], shape=(2,), dtype=float64)",
        );
        // float32 switches at 1e6 (10 ** finfo(float32).precision).
        check(
            &[1e6f32, 1.5],
            &[2],
            "tb.Tensor([1.0e+06 1.5e+00], shape=(2,), dtype=float32)",
        );
    }

    #[test]
    fn non_finite_values() {
        check(
            &[f32::NAN, 1.5, f32::NEG_INFINITY, f32::INFINITY],
            &[4],
            "tb.Tensor([ nan  1.5 -inf  inf], shape=(4,), dtype=float32)",
        );
        check(
            &[f64::NAN, f64::NEG_INFINITY],
            &[2],
            "tb.Tensor([ nan -inf], shape=(2,), dtype=float64)",
        );
    }

    #[test]
    fn negative_zero() {
        check(
            &[-0.0f64, 1.0],
            &[2],
            "tb.Tensor([-0.  1.], shape=(2,), dtype=float64)",
        );
        check(&[-0.0f64], &[], "tb.Tensor(-0.0, shape=(), dtype=float64)");
    }

    #[test]
    fn float16_shortest_digits() {
        check(
            &[f16::from_f64(0.1), f16::from_f64(1.0 / 3.0)],
            &[2],
            "tb.Tensor([0.1    0.3333], shape=(2,), dtype=float16)",
        );
        check(
            &[f16::from_f64(1000.0)],
            &[],
            "tb.Tensor(1e+03, shape=(), dtype=float16)",
        );
    }

    #[test]
    fn bfloat16_as_printf_g() {
        let values = [0.1, 1.0 / 3.0, 100.0, -2.5, 1e6, 2f32.powi(-10)].map(bf16::from_f32);
        check(
            &values,
            &[6],
            "tb.Tensor([0.100098 0.333984 100 -2.5 999424 0.000976562], shape=(6,), dtype=bfloat16)",
        );
        check(
            &[bf16::from_f32(0.1)],
            &[],
            "tb.Tensor(0.100098, shape=(), dtype=bfloat16)",
        );
    }

    #[test]
    fn bools() {
        check(
            &[Bool(1), Bool(0)],
            &[2],
            "tb.Tensor([ True False], shape=(2,), dtype=bool)",
        );
        check(&[Bool(1)], &[], "tb.Tensor(True, shape=(), dtype=bool)");
    }

    #[test]
    fn integer_extremes() {
        check(
            &[0u64, u64::MAX],
            &[2],
            "tb.Tensor([                   0 18446744073709551615], shape=(2,), dtype=uint64)",
        );
        check(
            &[i64::MIN, 0, 1],
            &[3],
            "tb.Tensor([-9223372036854775808                    0                    1], shape=(3,), dtype=int64)",
        );
        check(&[-7i32], &[], "tb.Tensor(-7, shape=(), dtype=int32)");
    }

    #[test]
    fn complex_arrays() {
        check(
            &[Complex::new(1f32, 2.), Complex::new(-1.5, -0.25)],
            &[2],
            "tb.Tensor([ 1. +2.j   -1.5-0.25j], shape=(2,), dtype=complex64)",
        );
        check(
            &[
                Complex::new(1e10f64, 1.),
                Complex::new(-0.0, -1.),
                Complex::new(3.5, 0.),
            ],
            &[3],
            "tb.Tensor([ 1.0e+10+1.j -0.0e+00-1.j  3.5e+00+0.j], shape=(3,), dtype=complex128)",
        );
        check(
            &[
                Complex::new(1f64, f64::NAN),
                Complex::new(f64::INFINITY, -2.),
            ],
            &[2],
            "tb.Tensor([ 1.+nanj inf -2.j], shape=(2,), dtype=complex128)",
        );
    }

    #[test]
    fn scalars() {
        check(&[1.5f32], &[], "tb.Tensor(1.5, shape=(), dtype=float32)");
        check(&[1e16f64], &[], "tb.Tensor(1e+16, shape=(), dtype=float64)");
        check(
            &[1.5e-5f64],
            &[],
            "tb.Tensor(1.5e-05, shape=(), dtype=float64)",
        );
        check(
            &[Complex::new(1f32, 2.)],
            &[],
            "tb.Tensor((1+2j), shape=(), dtype=complex64)",
        );
        check(
            &[Complex::new(-0.0f64, -2.5)],
            &[],
            "tb.Tensor((-0-2.5j), shape=(), dtype=complex128)",
        );
        check(
            &[Complex::new(0.0f64, 2.)],
            &[],
            "tb.Tensor(2j, shape=(), dtype=complex128)",
        );
    }

    #[test]
    fn empty() {
        check::<f32>(&[], &[0], "tb.Tensor([], shape=(0,), dtype=float32)");
        check::<i32>(&[], &[2, 0], "tb.Tensor([], shape=(2, 0), dtype=int32)");
    }

    #[test]
    fn line_wrapping() {
        let data: Vec<f64> = (0..30).map(f64::from).collect();
        check(
            &data,
            &[30],
            "tb.Tensor(\n[ 0.  1.  2.  3.  4.  5.  6.  7.  8.  9. 10. 11. 12. 13. 14. 15. 16. 17.\n 18. 19. 20. 21. 22. 23. 24. 25. 26. 27. 28. 29.], shape=(30,), dtype=float64)",
        );
    }

    #[test]
    fn three_dimensions() {
        let data: Vec<i32> = (0..12).collect();
        check(
            &data,
            &[2, 2, 3],
            "tb.Tensor(\n[[[ 0  1  2]\n  [ 3  4  5]]\n\n [[ 6  7  8]\n  [ 9 10 11]]], shape=(2, 2, 3), dtype=int32)",
        );
        let data: Vec<f64> = (0..8).map(|i| f64::from(i) / 4.0).collect();
        check(
            &data,
            &[2, 2, 2],
            "tb.Tensor(\n[[[0.   0.25]\n  [0.5  0.75]]\n\n [[1.   1.25]\n  [1.5  1.75]]], shape=(2, 2, 2), dtype=float64)",
        );
    }

    #[test]
    fn summarised() {
        let data: Vec<i64> = (0..2000).collect();
        check(
            &data,
            &[2, 1000],
            "tb.Tensor(\n[[   0    1    2 ...  997  998  999]\n [1000 1001 1002 ... 1997 1998 1999]], shape=(2, 1000), dtype=int64)",
        );
        let data: Vec<f64> = (0..1001).map(f64::from).collect();
        check(
            &data,
            &[1001],
            "tb.Tensor([   0.    1.    2. ...  998.  999. 1000.], shape=(1001,), dtype=float64)",
        );
    }

    #[test]
    fn non_contiguous() {
        let t = tensor(&[0i16, 1, 2, 3, 4, 5], &[2, 3])
            .permute(&[1, 0])
            .unwrap();
        assert_eq!(
            t.to_string(),
            "tb.Tensor(\n[[0 3]\n [1 4]\n [2 5]], shape=(3, 2), dtype=int16)"
        );
    }
}
