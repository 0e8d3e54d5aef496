//! Built-in element ops (`cast`, `scale`, `reshape`) and their fused execution.
//!
//! A run of consecutive built-in ops on one component is planned once into a list of
//! pointwise `Step`s plus an output shape (a reshape moves no data), and executed
//! chunk by chunk: each chunk of `CHUNK` elements is read once from the source,
//! goes through every step in two small L1-resident scratch buffers, and is written
//! once to its destination — which is the batch buffer when a `batch` follows.

use half::{bf16, f16};

use crate::cast::cast_into;
use crate::dtype::{Casting, DType, Kind};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::view::TensorView;

/// Elements per fused chunk (16 KiB of float32: stays in L1/L2 between steps).
const CHUNK: usize = 4096;

/// One built-in op on a component.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Convert to `dtype` under `casting` (NumPy's `astype` values, as [`crate::cast()`]).
    Cast {
        /// Target dtype.
        dtype: DType,
        /// Casting mode.
        casting: Casting,
    },
    /// `x * mul + add`, computed in the component's float dtype (float16/bfloat16
    /// through float32, rounded once); integer and bool components become float32
    /// first. Complex components are refused.
    Scale {
        /// Multiplier.
        mul: f64,
        /// Addend.
        add: f64,
    },
    /// Reshape the component (one entry may be `-1`); moves no data.
    Reshape(Vec<isize>),
}

/// Which ops a map applies to which component of an element.
#[derive(Clone, Debug, PartialEq)]
pub enum MapOps {
    /// The same ops on every component.
    All(Vec<Op>),
    /// One entry per component; `None` leaves that component as it is.
    Each(Vec<Option<Vec<Op>>>),
}

impl MapOps {
    /// The ops for component `i` of `n`, or an error if the structure does not match.
    pub(crate) fn for_component(&self, i: usize, n: usize) -> Result<&[Op]> {
        match self {
            MapOps::All(ops) => Ok(ops),
            MapOps::Each(v) if v.len() == n => Ok(v[i].as_deref().unwrap_or(&[])),
            MapOps::Each(v) => Err(Error::InvalidArgument(format!(
                "map ops name {} components but the element has {n}",
                v.len()
            ))),
        }
    }
}

/// A pointwise step of a planned chain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Step {
    Cast(DType, Casting),
    Scale(f64, f64),
}

/// The dtype after a scale of `d`.
pub(crate) fn scaled_dtype(d: DType) -> Result<DType> {
    match d.kind() {
        Kind::Float => Ok(d),
        Kind::Complex => Err(Error::InvalidArgument(format!(
            "scale does not apply to {d} components"
        ))),
        _ => Ok(DType::Float32),
    }
}

/// Plan `ops` on a component of `dtype` and `shape`: append the pointwise steps to
/// `steps` and return the output dtype and shape. Cast modes are checked here;
/// `checked` value checks happen when the data is read.
pub(crate) fn plan(
    mut dtype: DType,
    shape: &[usize],
    ops: &[Op],
    steps: &mut Vec<Step>,
) -> Result<(DType, Vec<usize>)> {
    let mut shape = shape.to_vec();
    for op in ops {
        match op {
            Op::Cast { dtype: to, casting } => {
                dtype.check_cast(*to, *casting)?;
                if *to != dtype || *casting == Casting::Checked {
                    steps.push(Step::Cast(*to, *casting));
                }
                dtype = *to;
            }
            Op::Scale { mul, add } => {
                let to = scaled_dtype(dtype)?;
                if to != dtype {
                    steps.push(Step::Cast(to, Casting::Unsafe));
                    dtype = to;
                }
                steps.push(Step::Scale(*mul, *add));
            }
            Op::Reshape(s) => shape = crate::view::resolve_reshape(&shape, s)?,
        }
    }
    Ok((dtype, shape))
}

/// Static version of [`plan`] for element specs (dimensions may be unknown).
pub(crate) fn plan_spec(
    mut dtype: DType,
    shape: &[Option<usize>],
    ops: &[Op],
) -> Result<(DType, Vec<Option<usize>>)> {
    let mut shape = shape.to_vec();
    for op in ops {
        match op {
            Op::Cast { dtype: to, casting } => {
                dtype.check_cast(*to, *casting)?;
                dtype = *to;
            }
            Op::Scale { .. } => dtype = scaled_dtype(dtype)?,
            Op::Reshape(s) => {
                let known: Option<Vec<usize>> = shape.iter().copied().collect();
                shape = match known {
                    Some(k) => crate::view::resolve_reshape(&k, s)?
                        .into_iter()
                        .map(Some)
                        .collect(),
                    None => s.iter().map(|&d| (d >= 0).then_some(d as usize)).collect(),
                };
            }
        }
    }
    Ok((dtype, shape))
}

/// Run `steps` over the elements of `src` (any layout), writing the result (of
/// `out` dtype, C order) into `dst`: one read of the source, one write of `dst`.
pub(crate) fn execute(src: &Tensor, steps: &[Step], out: DType, dst: &mut [u8]) -> Result<()> {
    if steps.is_empty() {
        return cast_into(&src.view(), out, Casting::Unsafe, dst);
    }
    let src = src.to_contiguous()?;
    let n = src.len();
    let bytes = src.as_bytes().unwrap_or(&[]);
    if n.checked_mul(out.size()) != Some(dst.len()) {
        return Err(Error::Shape(format!(
            "destination of {} bytes does not hold {n} elements of {out}",
            dst.len()
        )));
    }
    if fused_int_to_f32(src.dtype(), bytes, steps, dst)? {
        return Ok(());
    }
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let (a, b) = &mut *scratch;
        a.resize(CHUNK * 2, 0);
        b.resize(CHUNK * 2, 0);
        let a_bytes: &mut [u8] = bytemuck::cast_slice_mut(a.as_mut_slice());
        let b_bytes: &mut [u8] = bytemuck::cast_slice_mut(b.as_mut_slice());
        let mut start = 0;
        while start < n {
            let m = CHUNK.min(n - start);
            let mut cur = src.dtype();
            // Where the current values are: 0 = source, 1 = a, 2 = b.
            let mut at = 0u8;
            for (k, step) in steps.iter().enumerate() {
                let last = k + 1 == steps.len();
                let to = match step {
                    Step::Cast(d, _) => *d,
                    Step::Scale(..) => cur,
                };
                let (ci, co) = (cur.size(), to.size());
                let (input, output): (&[u8], &mut [u8]) = match (at, last) {
                    (0, true) => (
                        &bytes[start * ci..(start + m) * ci],
                        &mut dst[start * co..(start + m) * co],
                    ),
                    (0, false) => (&bytes[start * ci..(start + m) * ci], &mut a_bytes[..m * co]),
                    (1, true) => (&a_bytes[..m * ci], &mut dst[start * co..(start + m) * co]),
                    (1, false) => (&a_bytes[..m * ci], &mut b_bytes[..m * co]),
                    (_, true) => (&b_bytes[..m * ci], &mut dst[start * co..(start + m) * co]),
                    (_, false) => (&b_bytes[..m * ci], &mut a_bytes[..m * co]),
                };
                match step {
                    Step::Cast(d, casting) => {
                        let v = TensorView::contiguous(input, cur, &[m])?;
                        cast_into(&v, *d, *casting, output)?;
                    }
                    Step::Scale(mul, add) => scale_into(input, output, cur, *mul, *add)?,
                }
                cur = to;
                at = if at == 1 { 2 } else { 1 };
            }
            start += m;
        }
        Ok(())
    })
}

thread_local! {
    /// Per-thread scratch for [`execute`]: two chunks of up to 16-byte elements.
    static SCRATCH: std::cell::RefCell<(Vec<u64>, Vec<u64>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The hot case as one loop: a small integer type → float32 → `x * mul + add`
/// (exact conversions, so bit-identical to the two steps). Returns false when
/// `steps` are not of that form.
fn fused_int_to_f32(from: DType, bytes: &[u8], steps: &[Step], dst: &mut [u8]) -> Result<bool> {
    let [Step::Cast(DType::Float32, _), Step::Scale(mul, add)] = steps else {
        return Ok(false);
    };
    let (m, a) = (*mul as f32, *add as f32);
    let d = typed_mut::<f32>(dst)?;
    macro_rules! go {
        ($T:ty) => {{
            for (d, s) in d.iter_mut().zip(typed::<$T>(bytes)?) {
                *d = *s as f32 * m + a;
            }
        }};
    }
    match from {
        DType::UInt8 => go!(u8),
        DType::Int8 => go!(i8),
        DType::UInt16 => go!(u16),
        DType::Int16 => go!(i16),
        _ => return Ok(false),
    }
    Ok(true)
}

fn typed<T: bytemuck::Pod>(b: &[u8]) -> Result<&[T]> {
    bytemuck::try_cast_slice(b).map_err(|_| Error::Layout("scale buffer is not aligned".into()))
}

fn typed_mut<T: bytemuck::Pod>(b: &mut [u8]) -> Result<&mut [T]> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::Layout("scale buffer is not aligned".into()))
}

/// `dst = src * mul + add` elementwise in `dtype` (a float dtype).
fn scale_into(src: &[u8], dst: &mut [u8], dtype: DType, mul: f64, add: f64) -> Result<()> {
    match dtype {
        DType::Float32 => {
            let (m, a) = (mul as f32, add as f32);
            for (d, s) in typed_mut::<f32>(dst)?.iter_mut().zip(typed::<f32>(src)?) {
                *d = *s * m + a;
            }
        }
        DType::Float64 => {
            for (d, s) in typed_mut::<f64>(dst)?.iter_mut().zip(typed::<f64>(src)?) {
                *d = *s * mul + add;
            }
        }
        DType::Float16 => {
            let (m, a) = (mul as f32, add as f32);
            for (d, s) in typed_mut::<f16>(dst)?.iter_mut().zip(typed::<f16>(src)?) {
                *d = f16::from_f32(s.to_f32() * m + a);
            }
        }
        DType::BFloat16 => {
            let (m, a) = (mul as f32, add as f32);
            for (d, s) in typed_mut::<bf16>(dst)?.iter_mut().zip(typed::<bf16>(src)?) {
                *d = bf16::from_f32(s.to_f32() * m + a);
            }
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "scale does not apply to {other} components"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_cast_scale_matches_two_passes() {
        let src: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let t = Tensor::from_slice(&src, &[100, 100]).unwrap();
        let ops = [
            Op::Cast {
                dtype: DType::Float32,
                casting: Casting::Unsafe,
            },
            Op::Scale {
                mul: 1.0 / 255.0,
                add: -0.5,
            },
            Op::Reshape(vec![-1]),
        ];
        let mut steps = vec![];
        let (d, shape) = plan(t.dtype(), t.shape(), &ops, &mut steps).unwrap();
        assert_eq!((d, shape.as_slice()), (DType::Float32, &[10_000usize][..]));
        let mut out = vec![0f32; 10_000];
        execute(&t, &steps, d, bytemuck::cast_slice_mut(&mut out)).unwrap();
        let m = (1.0f64 / 255.0) as f32;
        for (o, s) in out.iter().zip(&src) {
            assert_eq!(*o, *s as f32 * m - 0.5);
        }
        // scale alone on integers casts to float32 first
        let mut steps = vec![];
        let (d, _) = plan(DType::Int64, &[3], &ops[1..2], &mut steps).unwrap();
        assert_eq!(d, DType::Float32);
        assert!(plan(DType::Complex64, &[3], &ops[1..2], &mut steps).is_err());
        assert!(plan(
            DType::Float32,
            &[3, 4],
            &[Op::Reshape(vec![5, -1])],
            &mut steps
        )
        .is_err());
    }

    #[test]
    fn chunked_chain_over_many_chunks() {
        // int64 is not on the one-loop path: exercises the chunked steps (3+ chunks).
        let src: Vec<i64> = (0..10_000).map(|i| i * 3 - 7000).collect();
        let t = Tensor::from_slice(&src, &[10_000]).unwrap();
        let ops = [
            Op::Scale {
                mul: 0.25,
                add: 1.0,
            },
            Op::Cast {
                dtype: DType::Float64,
                casting: Casting::Safe,
            },
            Op::Scale { mul: 2.0, add: 0.0 },
            Op::Cast {
                dtype: DType::Int16,
                casting: Casting::Unsafe,
            },
        ];
        let mut steps = vec![];
        let (d, _) = plan(t.dtype(), t.shape(), &ops, &mut steps).unwrap();
        assert_eq!(d, DType::Int16);
        let mut out = vec![0i16; 10_000];
        execute(&t, &steps, d, bytemuck::cast_slice_mut(&mut out)).unwrap();
        for (o, s) in out.iter().zip(&src) {
            assert_eq!(*o, (((*s as f32 * 0.25 + 1.0) as f64) * 2.0) as i16);
        }
    }
}
