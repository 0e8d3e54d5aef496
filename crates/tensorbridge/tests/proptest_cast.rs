//! Property tests of the cast engine's layout handling and float conversions.

use proptest::prelude::*;
use tensorbridge::{cast, ByteOrder, Casting, DType, TensorView};

proptest! {
    /// Any strided, reversed, byte-swapped or unaligned layout gives the same values as
    /// casting a contiguous copy of the same logical elements.
    #[test]
    fn layout_does_not_change_values(
        vals in prop::collection::vec(any::<i32>(), 1..200),
        step in 1usize..4,
        reverse in any::<bool>(),
        swap in any::<bool>(),
        pad in 0usize..4,
    ) {
        let n = vals.len();
        let mut bytes = vec![0u8; pad + n * 4 * step];
        for (k, v) in vals.iter().enumerate() {
            let pos = if reverse { n - 1 - k } else { k };
            let b = if swap { v.to_be_bytes() } else { v.to_le_bytes() };
            bytes[pad + pos * 4 * step..pad + pos * 4 * step + 4].copy_from_slice(&b);
        }
        let stride = (4 * step) as isize * if reverse { -1 } else { 1 };
        let offset = if reverse { pad + (n - 1) * 4 * step } else { pad };
        let order = if swap { ByteOrder::Big } else { ByteOrder::Little };
        let view = TensorView::new(&bytes, DType::Int32, vec![n], vec![stride], offset, order).unwrap();
        for to in [DType::Float64, DType::Int8, DType::Float16, DType::Int32] {
            let got = cast(&view, to, Casting::Unsafe).unwrap();
            let plain = TensorView::from_slice(&vals, &[n]).unwrap();
            let want = cast(&plain, to, Casting::Unsafe).unwrap();
            prop_assert_eq!(got.as_bytes().unwrap(), want.as_bytes().unwrap());
        }
    }

    /// float32 → float16 agrees with the `half` crate (IEEE round-to-nearest-even) on every
    /// non-NaN value, through both the F16C slice path and the scalar path.
    #[test]
    fn f32_to_f16_is_ieee(bits in prop::collection::vec(any::<u32>(), 1..300)) {
        let vals: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let view = TensorView::from_slice(&vals, &[vals.len()]).unwrap();
        let t = cast(&view, DType::Float16, Casting::Unsafe).unwrap();
        let out = t.to_vec::<half::f16>().unwrap();
        for (x, h) in vals.iter().zip(out) {
            if x.is_nan() {
                prop_assert!(h.is_nan());
            } else {
                prop_assert_eq!(h.to_bits(), half::f16::from_f32(*x).to_bits());
            }
        }
    }

    /// Checked casts succeed exactly when every value round-trips.
    #[test]
    fn checked_int_narrowing(vals in prop::collection::vec(any::<i64>(), 1..50)) {
        let view = TensorView::from_slice(&vals, &[vals.len()]).unwrap();
        let fits = vals.iter().all(|&v| i16::try_from(v).is_ok());
        prop_assert_eq!(cast(&view, DType::Int16, Casting::Checked).is_ok(), fits);
    }
}
