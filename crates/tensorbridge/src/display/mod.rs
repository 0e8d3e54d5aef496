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
//!
//! The module follows NumPy's seams:
//!
//! - this file: `str()` of a tensor, the elements NumPy looks at, and `str()` of a 0-d
//!   tensor;
//! - [`layout`]: `_formatArray` (nesting, line wrapping, summarisation);
//! - [`element`]: the element formats (`BoolFormat`, `IntegerFormat`,
//!   `FloatingFormat`, `ComplexFloatingFormat`, scalar `str()`, bfloat16's `%g`);
//! - [`float`]: IEEE values in their own precision (float16, float32, float64);
//! - [`dragon4`]: NumPy's Dragon4 digit generation and positional / scientific layout;
//! - [`bigint`]: the unsigned big integer Dragon4 computes with.

mod bigint;
mod dragon4;
mod element;
mod float;
mod layout;

use std::fmt;

use half::{bf16, f16};
use num_complex::Complex;

use crate::cast::float16::bf16_to_f32;
use crate::cast::{Bool, Element};
use crate::dtype::DType;
use crate::shape::ShapeDisplay;
use crate::tensor::Tensor;

use element::{
    complex_scalar_str, float_scalar_str, printf_g, BoolFormat, ComplexFloatingFormat,
    FloatingFormat, IntegerFormat,
};
use float::Float;
use layout::ArrayLayout;

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
            ShapeDisplay(self.shape()),
            self.dtype()
        )
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
