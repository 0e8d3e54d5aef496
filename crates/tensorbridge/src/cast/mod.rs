//! Casting kernels: [`cast_into`] reads a [`TensorView`] in its own layout
//! (strided, byte-swapped, unaligned) and writes the elements, converted to the
//! target dtype, into a contiguous buffer it is given, in one pass and in parallel
//! for large inputs. Allocating the result is the caller's business
//! ([`crate::cast()`](crate::tensor::cast) makes a new tensor).

mod elem;
pub mod float16;

use std::any::TypeId;

use half::{bf16, f16};
use num_complex::Complex;
use rayon::prelude::*;

use elem::{check_value, Dest, Value, Wide};

use crate::dtype::{Casting, DType};
// Element types now live beside `DType`; re-exported for existing `cast::` paths.
pub use crate::dtype::{Bool, Element};
use crate::error::{Error, Result};
use crate::layout::{unravel, Walk};
use crate::view::TensorView;

/// Inputs at least this many bytes (source or result) are converted on all threads.
const PARALLEL_BYTES: usize = 1 << 20;
/// Elements per gather step for strided or byte-swapped runs.
const GATHER: usize = 256;

/// Run `$body` with `$T` bound to the Rust element type of `$dtype`.
macro_rules! with_element_type {
    ($dtype:expr, $T:ident, $body:expr) => {
        match $dtype {
            DType::Bool => {
                type $T = Bool;
                $body
            }
            DType::Int8 => {
                type $T = i8;
                $body
            }
            DType::Int16 => {
                type $T = i16;
                $body
            }
            DType::Int32 => {
                type $T = i32;
                $body
            }
            DType::Int64 => {
                type $T = i64;
                $body
            }
            DType::UInt8 => {
                type $T = u8;
                $body
            }
            DType::UInt16 => {
                type $T = u16;
                $body
            }
            DType::UInt32 => {
                type $T = u32;
                $body
            }
            DType::UInt64 => {
                type $T = u64;
                $body
            }
            DType::Float16 => {
                type $T = f16;
                $body
            }
            DType::BFloat16 => {
                type $T = bf16;
                $body
            }
            DType::Float32 => {
                type $T = f32;
                $body
            }
            DType::Float64 => {
                type $T = f64;
                $body
            }
            DType::Complex64 => {
                type $T = Complex<f32>;
                $body
            }
            DType::Complex128 => {
                type $T = Complex<f64>;
                $body
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use with_element_type;

/// Check that `src` may be cast to `to` under `casting`: the dtype pair for
/// `Safe`/`SameKind`, every value for `Checked`. Reads nothing otherwise.
pub fn check(src: &TensorView<'_>, to: DType, casting: Casting) -> Result<()> {
    src.dtype().check_cast(to, casting)?;
    if casting == Casting::Checked {
        check_values(src, to)?;
    }
    Ok(())
}

/// Cast `src` into `dst`, a C-contiguous buffer for exactly `src.len()` elements of
/// `to`, aligned for `to`. Every byte of `dst` is written when this returns `Ok`.
///
/// `Safe` and `SameKind` refuse disallowed pairs before reading anything;
/// `Checked` scans every value first and writes nothing on failure.
pub fn cast_into(src: &TensorView<'_>, to: DType, casting: Casting, dst: &mut [u8]) -> Result<()> {
    check(src, to, casting)?;
    convert(src, to, casting, dst)
}

/// Return the first element of `src` that does not survive a cast to `to`.
fn check_values(src: &TensorView<'_>, to: DType) -> Result<()> {
    if src.dtype().can_cast(to, Casting::Safe) && !(to == DType::Bool && src.dtype() != DType::Bool)
    {
        return Ok(()); // safe pairs cannot fail
    }
    with_element_type!(src.dtype(), S, first_bad::<S>(src, to))
}

fn first_bad<S: Value>(src: &TensorView<'_>, to: DType) -> Result<()> {
    let walk = src.walk();
    let swapped = src.byte_order().is_swapped();
    let bytes = src.bytes();
    let mut pos = 0usize;
    let mut found: Option<(usize, Wide, &'static str)> = None;
    walk.for_each_run(0, src.len(), |off, len| {
        if found.is_some() {
            return;
        }
        for k in 0..len {
            let v: S = read_elem(
                bytes,
                off as isize + k as isize * walk.inner_stride,
                swapped,
            );
            let w = v.wide();
            if let Some(reason) = check_value(w, to) {
                found = Some((pos + k, w, reason));
                return;
            }
        }
        pos += len;
    });
    match found {
        None => Ok(()),
        Some((flat, w, reason)) => Err(Error::CastValue {
            from: src.dtype(),
            to,
            index: unravel(flat, src.shape()),
            value: w.to_string(),
            reason,
        }),
    }
}

#[inline]
fn read_elem<S: Element>(bytes: &[u8], off: isize, swapped: bool) -> S {
    let off = off as usize;
    let v: S = bytemuck::pod_read_unaligned(&bytes[off..off + std::mem::size_of::<S>()]);
    if swapped {
        v.swap_bytes()
    } else {
        v
    }
}

/// Convert every element of `src` into `dst` (C order), without the checks of
/// [`check`]: `dst` must hold exactly `src.len()` elements of `to` (else an error);
/// every byte of it is written when this returns `Ok`.
pub(crate) fn convert(
    src: &TensorView<'_>,
    to: DType,
    casting: Casting,
    dst: &mut [u8],
) -> Result<()> {
    let n = src.len();
    if n.checked_mul(to.size()) != Some(dst.len()) {
        return Err(Error::Shape(format!(
            "destination of {} bytes does not hold {n} elements of {to}",
            dst.len()
        )));
    }
    if n == 0 {
        return Ok(());
    }
    let saturate = casting == Casting::Saturate;
    with_element_type!(src.dtype(), S, {
        with_element_type!(to, D, run::<S, D>(src, dst, saturate))
    })
}

fn run<S: Value, D: Dest>(src: &TensorView<'_>, dst: &mut [u8], saturate: bool) -> Result<()> {
    let dst: &mut [D] = bytemuck::try_cast_slice_mut(dst).map_err(|_| {
        Error::Layout(format!(
            "destination buffer is not aligned for {}",
            D::DTYPE
        ))
    })?;
    let n = dst.len();
    if n == 0 {
        return Ok(());
    }
    let walk = src.walk();
    let job = Job {
        bytes: src.bytes(),
        walk: &walk,
        swapped: src.byte_order().is_swapped(),
        saturate,
    };
    let big = n * std::mem::size_of::<S>().max(std::mem::size_of::<D>()) >= PARALLEL_BYTES;
    // Only large casts touch (and so start) the thread pool.
    let threads = if big { rayon::current_num_threads() } else { 1 };
    if threads > 1 {
        // A few chunks per thread balances load without much bookkeeping.
        let chunk = n.div_ceil(threads * 4).max(16 * 1024);
        dst.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, d)| job.fill::<S, D>(i * chunk, d));
    } else {
        job.fill::<S, D>(0, dst);
    }
    Ok(())
}

struct Job<'a> {
    bytes: &'a [u8],
    walk: &'a Walk,
    swapped: bool,
    saturate: bool,
}

impl Job<'_> {
    /// Fill `dst` with logical elements `start .. start + dst.len()`.
    fn fill<S: Value, D: Dest>(&self, start: usize, dst: &mut [D]) {
        let mut p = 0usize;
        let stride = self.walk.inner_stride;
        self.walk
            .for_each_run(start, start + dst.len(), |off, len| {
                self.run::<S, D>(off, len, stride, &mut dst[p..p + len]);
                p += len;
            });
    }

    fn run<S: Value, D: Dest>(&self, off: usize, len: usize, stride: isize, dst: &mut [D]) {
        let size = std::mem::size_of::<S>();
        if stride == size as isize && !self.swapped {
            let run_bytes = &self.bytes[off..off + len * size];
            if TypeId::of::<S>() == TypeId::of::<D>() && !self.saturate {
                bytemuck::cast_slice_mut::<D, u8>(dst).copy_from_slice(run_bytes);
                return;
            }
            if let Ok(s) = bytemuck::try_cast_slice::<u8, S>(run_bytes) {
                self.convert(s, dst);
                return;
            }
        }
        // Strided, byte-swapped or unaligned: gather into an aligned buffer first.
        let mut buf = [S::zeroed(); GATHER];
        let mut done = 0;
        while done < len {
            let m = (len - done).min(GATHER);
            for (k, b) in buf[..m].iter_mut().enumerate() {
                *b = read_elem(
                    self.bytes,
                    off as isize + (done + k) as isize * stride,
                    self.swapped,
                );
            }
            self.convert(&buf[..m], &mut dst[done..done + m]);
            done += m;
        }
    }

    #[inline]
    fn convert<S: Value, D: Dest>(&self, src: &[S], dst: &mut [D]) {
        if self.saturate {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = D::saturating(*s);
            }
        } else {
            D::convert_slice(src, dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::ByteOrder;
    use crate::tensor::cast;

    fn cast_vec<S: Element, D: Element>(src: &[S], casting: Casting) -> Result<Vec<D>> {
        let v = TensorView::from_slice(src, &[src.len()])?;
        Ok(cast(&v, D::DTYPE, casting)?.to_vec::<D>().unwrap())
    }

    #[test]
    fn float_to_int_like_numpy_x86() {
        let src = [
            f64::NAN,
            f64::INFINITY,
            -129.9,
            70000.0,
            -1.5,
            3e9,
            1e19,
            2e19,
        ];
        assert_eq!(
            cast_vec::<f64, i8>(&src, Casting::Unsafe).unwrap(),
            vec![0, 0, 127, 112, -1, 0, 0, 0]
        );
        assert_eq!(
            cast_vec::<f64, u32>(&src, Casting::Unsafe).unwrap(),
            vec![2147483648, 0, 4294967167, 70000, 4294967295, 3000000000, 0, 0]
        );
        assert_eq!(
            cast_vec::<f64, u64>(&src, Casting::Unsafe).unwrap(),
            vec![
                1 << 63,
                0,
                (-129i64) as u64,
                70000,
                u64::MAX,
                3000000000,
                10000000000000000000,
                0
            ]
        );
    }

    #[test]
    fn checked_reports_first_bad_index() {
        let err = cast_vec::<f32, u8>(&[1.0, 2.0, 2.5, 300.0], Casting::Checked).unwrap_err();
        match err {
            Error::CastValue { index, value, .. } => {
                assert_eq!(index, vec![2]);
                assert_eq!(value, "2.5");
            }
            e => panic!("{e}"),
        }
        assert!(cast_vec::<i64, i8>(&[1, 128], Casting::Checked).is_err());
        assert!(cast_vec::<f64, f32>(&[1e300], Casting::Checked).is_err());
        assert!(cast_vec::<f64, f32>(&[f64::NAN, 1e-300], Casting::Checked).is_ok());
    }

    #[test]
    fn saturate_clamps() {
        let src = [f32::NAN, -1e10, 1e10, 3.9, -3.9];
        assert_eq!(
            cast_vec::<f32, i16>(&src, Casting::Saturate).unwrap(),
            vec![0, -32768, 32767, 3, -3]
        );
        assert_eq!(
            cast_vec::<f32, u8>(&src, Casting::Saturate).unwrap(),
            vec![0, 0, 255, 3, 0]
        );
        let h = cast_vec::<f32, f16>(&[1e6, -1e6, f32::INFINITY], Casting::Saturate).unwrap();
        assert_eq!(h, vec![f16::MAX, f16::MIN, f16::INFINITY]);
    }

    #[test]
    fn strided_swapped_unaligned() {
        // Big-endian int32 [1, 2, 3] stored at offset 1 with stride 8 (every other slot).
        let mut bytes = vec![0u8; 1 + 4 * 6];
        for (k, v) in [1i32, 2, 3].iter().enumerate() {
            bytes[1 + 8 * k..1 + 8 * k + 4].copy_from_slice(&v.to_be_bytes());
        }
        let v = TensorView::new(&bytes, DType::Int32, vec![3], vec![8], 1, ByteOrder::Big).unwrap();
        let t = cast(&v, DType::Float64, Casting::Unsafe).unwrap();
        assert_eq!(t.to_vec::<f64>().unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn parallel_matches_serial() {
        let src: Vec<f64> = (0..600_000).map(|i| i as f64 * 0.37 - 1000.0).collect();
        let out = cast_vec::<f64, f32>(&src, Casting::Unsafe).unwrap();
        assert!(out.iter().zip(&src).all(|(a, b)| *a == *b as f32));
    }

    #[test]
    fn refuses_before_work() {
        let err = cast_vec::<f64, f32>(&[1.0], Casting::Safe)
            .unwrap_err()
            .to_string();
        assert!(err.contains("float64") && err.contains("float32"), "{err}");
    }
}
