//! Contiguous-run kernels that beat the per-element rule, with run-time CPU dispatch.

use std::any::TypeId;

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::elem::Value;
use super::float16::f32_to_f16;

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
