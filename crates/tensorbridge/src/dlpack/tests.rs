//! Unit tests of the DLPack module (run under Miri too; see the module docs).

use super::*;
use crate::dtype::DType;
use crate::tensor::Tensor;
use crate::{bf16, f16, Complex, Index};
use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn struct_layouts_match_dlpack_h() {
    assert_eq!(size_of::<DLDevice>(), 8);
    assert_eq!(size_of::<DLDataType>(), 4);
    assert_eq!(size_of::<DLTensor>(), 48);
    assert_eq!(offset_of!(DLTensor, device), 8);
    assert_eq!(offset_of!(DLTensor, ndim), 16);
    assert_eq!(offset_of!(DLTensor, dtype), 20);
    assert_eq!(offset_of!(DLTensor, shape), 24);
    assert_eq!(offset_of!(DLTensor, strides), 32);
    assert_eq!(offset_of!(DLTensor, byte_offset), 40);
    assert_eq!(size_of::<DLManagedTensor>(), 64);
    assert_eq!(offset_of!(DLManagedTensor, manager_ctx), 48);
    assert_eq!(offset_of!(DLManagedTensor, deleter), 56);
    assert_eq!(size_of::<DLManagedTensorVersioned>(), 80);
    assert_eq!(offset_of!(DLManagedTensorVersioned, manager_ctx), 8);
    assert_eq!(offset_of!(DLManagedTensorVersioned, deleter), 16);
    assert_eq!(offset_of!(DLManagedTensorVersioned, flags), 24);
    assert_eq!(offset_of!(DLManagedTensorVersioned, dl_tensor), 32);
    assert_eq!(align_of::<DLManagedTensorVersioned>(), 8);
}

#[test]
fn dtype_mapping_round_trips() {
    for d in DType::ALL {
        let dl = dl_dtype(d);
        assert_eq!(dl.lanes, 1);
        assert_eq!(dl.bits as usize, d.size() * 8, "{d}");
        assert_eq!(dtype_from_dl(dl).unwrap(), d);
    }
    assert_eq!(
        dl_dtype(DType::Bool),
        DLDataType {
            code: 6,
            bits: 8,
            lanes: 1
        }
    );
    assert_eq!(dl_dtype(DType::BFloat16).code, 4);
    assert_eq!(dl_dtype(DType::Complex64).code, 5);
    for bad in [
        DLDataType {
            code: code::FLOAT,
            bits: 32,
            lanes: 4,
        },
        DLDataType {
            code: code::FLOAT,
            bits: 8,
            lanes: 1,
        },
        DLDataType {
            code: code::BOOL,
            bits: 1,
            lanes: 1,
        },
        DLDataType {
            code: code::OPAQUE_HANDLE,
            bits: 64,
            lanes: 1,
        },
        DLDataType {
            code: 10,
            bits: 8,
            lanes: 1,
        },
    ] {
        let e = dtype_from_dl(bad).unwrap_err().to_string();
        assert!(e.contains("DLPack dtype"), "{e}");
    }
    let e = dtype_from_dl(DLDataType {
        code: 10,
        bits: 8,
        lanes: 1,
    })
    .unwrap_err();
    assert!(e.to_string().contains("float8_e4m3fn"), "{e}");
}

/// A C-contiguous tensor holding `v` (built without the cast machinery, which
/// starts rayon's thread pool; see the Miri notes in the module docs).
fn tensor_of<T: crate::Element>(v: &[T], shape: &[usize]) -> Result<Tensor> {
    Tensor::build(T::DTYPE, shape, |b| {
        b.copy_from_slice(bytemuck::cast_slice(v));
        Ok(())
    })
}

/// The elements in C order, read through the strides (no cast machinery).
fn elems<T: crate::Element>(t: &Tensor) -> Vec<T> {
    assert_eq!(t.dtype(), T::DTYPE);
    let bytes = t.storage().as_slice();
    let size = std::mem::size_of::<T>();
    (0..t.len())
        .map(|i| {
            let idx = crate::view::unravel(i, t.shape());
            let off = idx
                .iter()
                .zip(t.strides())
                .fold(t.offset() as isize, |o, (&k, &s)| o + k as isize * s);
            bytemuck::pod_read_unaligned(&bytes[off as usize..off as usize + size])
        })
        .collect()
}

fn sample() -> Tensor {
    let v: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    tensor_of(&v, &[3, 4]).unwrap()
}

#[test]
fn legacy_export_describes_the_tensor() {
    let t = sample();
    let m = ManagedTensor::export(&t, ExportOptions::default()).unwrap();
    assert!(!m.is_versioned());
    assert_eq!(m.version(), None);
    assert_eq!(m.flags(), 0);
    assert_eq!(
        Arc::strong_count(t.storage()),
        2,
        "the export holds the memory"
    );
    let dl = m.dl_tensor().unwrap();
    assert_eq!(dl.data as *const u8, t.data_ptr());
    assert_eq!(dl.device, DLDevice::CPU);
    assert_eq!(dl.ndim, 2);
    assert_eq!(
        dl.dtype,
        DLDataType {
            code: 2,
            bits: 32,
            lanes: 1
        }
    );
    assert_eq!(dl.byte_offset, 0);
    // SAFETY: our export: two-element shape and strides arrays.
    let (shape, strides) = unsafe {
        (
            std::slice::from_raw_parts(dl.shape, 2),
            std::slice::from_raw_parts(dl.strides, 2),
        )
    };
    assert_eq!(shape, &[3, 4]);
    assert_eq!(strides, &[4, 1], "strides are in elements");
    drop(m);
    assert_eq!(Arc::strong_count(t.storage()), 1, "the deleter released it");
}

#[test]
fn round_trip_is_zero_copy_and_releases_once() {
    for versioned in [false, true] {
        let t = sample();
        let opts = ExportOptions {
            versioned,
            read_only: true,
            ..Default::default()
        };
        let m = ManagedTensor::export(&t, opts).unwrap();
        if versioned {
            assert_eq!(m.version(), Some(DLPackVersion { major: 1, minor: 1 }));
            assert_eq!(m.flags(), DLPACK_FLAG_BITMASK_READ_ONLY);
        }
        // Through C and back, as a consumer would see it.
        let raw = m.into_raw();
        // SAFETY: `raw` is the managed tensor we just exported and gave away.
        let m = unsafe {
            if versioned {
                ManagedTensor::from_raw_versioned(raw as *mut DLManagedTensorVersioned)
            } else {
                ManagedTensor::from_raw_legacy(raw as *mut DLManagedTensor)
            }
        }
        .unwrap();
        let back = m.into_tensor(None).unwrap();
        assert_eq!(back.data_ptr(), t.data_ptr(), "zero-copy");
        assert_eq!(back.dtype(), DType::Float32);
        assert_eq!(back.shape(), &[3, 4]);
        assert_eq!(elems::<f32>(&back), elems::<f32>(&t));
        assert!(back.is_view());
        assert_eq!(Arc::strong_count(t.storage()), 2);
        let slice = back.index(&[Index::At(1)]).unwrap();
        drop(back);
        assert_eq!(
            Arc::strong_count(t.storage()),
            2,
            "the slice keeps it alive"
        );
        assert_eq!(elems::<f32>(&slice), vec![2.0, 2.5, 3.0, 3.5]);
        drop(slice);
        assert_eq!(Arc::strong_count(t.storage()), 1);
    }
}

#[test]
fn every_dtype_round_trips() {
    fn check<T: crate::Element + PartialEq + std::fmt::Debug>(v: Vec<T>) {
        let t = tensor_of(&v, &[v.len()]).unwrap();
        for versioned in [false, true] {
            let opts = ExportOptions {
                versioned,
                ..Default::default()
            };
            let back = ManagedTensor::export(&t, opts)
                .unwrap()
                .into_tensor(None)
                .unwrap();
            assert_eq!(back.dtype(), T::DTYPE);
            assert_eq!(back.data_ptr(), t.data_ptr());
            assert_eq!(elems::<T>(&back), v);
        }
    }
    check(vec![crate::Bool(1), crate::Bool(0)]);
    check(vec![-1i8, 2]);
    check(vec![-1i16, 2]);
    check(vec![-1i32, 2]);
    check(vec![-1i64, 2]);
    check(vec![1u8, 255]);
    check(vec![1u16, 65535]);
    check(vec![1u32, u32::MAX]);
    check(vec![1u64, u64::MAX]);
    check(vec![f16::from_f32(1.5), f16::from_f32(-2.0)]);
    check(vec![bf16::from_f32(1.5), bf16::from_f32(-2.0)]);
    check(vec![1.5f32, -2.0]);
    check(vec![1.5f64, -2.0]);
    check(vec![Complex::new(1.0f32, -1.0), Complex::new(0.5, 2.0)]);
    check(vec![Complex::new(1.0f64, -1.0), Complex::new(0.5, 2.0)]);
}

#[test]
fn strided_views_export_their_strides() {
    let t = sample();
    // Column 1 reversed: shape [3], byte stride -16 → -4 elements.
    let col = t
        .index(&[
            Index::Slice {
                start: None,
                stop: None,
                step: -1,
            },
            Index::At(1),
        ])
        .unwrap();
    let tt = t.permute(&[1, 0]).unwrap();
    for (v, want_strides) in [(&col, vec![-4i64]), (&tt, vec![1, 4])] {
        let m = ManagedTensor::export(v, ExportOptions::default()).unwrap();
        let dl = m.dl_tensor().unwrap();
        assert_eq!(dl.data as *const u8, v.data_ptr());
        // SAFETY: our export, `ndim` strides.
        let s = unsafe { std::slice::from_raw_parts(dl.strides, dl.ndim as usize) };
        assert_eq!(s, &want_strides[..]);
        let back = m.into_tensor(Some(false)).unwrap();
        assert_eq!(back.data_ptr(), v.data_ptr());
        assert_eq!(elems::<f32>(&back), elems::<f32>(v));
    }
    assert_eq!(elems::<f32>(&col), vec![4.5, 2.5, 0.5]);
}

#[test]
fn copying_copy_option_on_export() {
    let t = sample();
    let opts = ExportOptions {
        versioned: true,
        read_only: true,
        copy: Some(true),
        ..Default::default()
    };
    let m = ManagedTensor::export(&t, opts).unwrap();
    assert_eq!(
        m.flags(),
        DLPACK_FLAG_BITMASK_IS_COPIED,
        "a private copy is writable"
    );
    assert_ne!(m.dl_tensor().unwrap().data as *const u8, t.data_ptr());
    assert_eq!(Arc::strong_count(t.storage()), 1);
    let back = m.into_tensor(None).unwrap();
    assert_eq!(elems::<f32>(&back), elems::<f32>(&t));
}

#[test]
fn copying_strides_that_are_not_whole_elements() {
    // complex64 aligns to 4 bytes, so a 4-byte stride is a valid view, but DLPack
    // strides count whole elements: the export is a contiguous copy.
    let floats: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let base = tensor_of(&floats, &[8]).unwrap();
    let v = Tensor::from_storage(
        base.storage().clone(),
        DType::Complex64,
        vec![3],
        vec![4],
        0,
        true,
    )
    .unwrap();
    let opts = ExportOptions {
        versioned: true,
        read_only: true,
        copy: Some(false),
        ..Default::default()
    };
    let e = ManagedTensor::export(&v, opts).unwrap_err().to_string();
    assert!(e.contains("copy=False"), "{e}");
    let opts = ExportOptions { copy: None, ..opts };
    let m = ManagedTensor::export(&v, opts).unwrap();
    assert_eq!(m.flags(), DLPACK_FLAG_BITMASK_IS_COPIED);
    assert_ne!(m.dl_tensor().unwrap().data as *const u8, v.data_ptr());
    let back = m.into_tensor(None).unwrap();
    let want: Vec<Complex<f32>> = (0..3)
        .map(|i| Complex::new(i as f32, i as f32 + 1.0))
        .collect();
    assert_eq!(elems::<Complex<f32>>(&back), want);
}

#[test]
fn zero_dim_and_empty() {
    let s = tensor_of(&[7i32], &[]).unwrap();
    let back = ManagedTensor::export(&s, ExportOptions::default())
        .unwrap()
        .into_tensor(None)
        .unwrap();
    assert_eq!(back.shape(), &[] as &[usize]);
    assert_eq!(elems::<i32>(&back), vec![7]);
    let e = Tensor::zeros(DType::Float64, &[0, 5]).unwrap();
    let back = ManagedTensor::export(&e, ExportOptions::default())
        .unwrap()
        .into_tensor(None)
        .unwrap();
    assert_eq!(back.shape(), &[0, 5]);
    assert!(back.is_empty());
}

/// A foreign producer written the way a C library would: its own buffer, shape
/// and strides arrays, and a deleter that counts its calls.
struct Foreign {
    data: Vec<u64>,
    shape: Vec<i64>,
    strides: Option<Vec<i64>>,
    calls: Arc<AtomicUsize>,
}

unsafe extern "C" fn foreign_deleter(p: *mut DLManagedTensor) {
    // SAFETY: `p` and its context were made by `foreign()` with Box::into_raw.
    let m = unsafe { Box::from_raw(p) };
    // SAFETY: as above.
    let ctx = unsafe { Box::from_raw(m.manager_ctx as *mut Foreign) };
    ctx.calls.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn foreign_deleter_v(p: *mut DLManagedTensorVersioned) {
    // SAFETY: as in `foreign_deleter`.
    let m = unsafe { Box::from_raw(p) };
    // SAFETY: as above.
    let ctx = unsafe { Box::from_raw(m.manager_ctx as *mut Foreign) };
    ctx.calls.fetch_add(1, Ordering::SeqCst);
}

/// `bytes` of storage (8-byte aligned), described as `dtype` with `shape`,
/// optional element `strides`, starting `byte_offset` bytes in.
fn foreign(
    bytes: &[u8],
    dtype: DLDataType,
    shape: &[i64],
    strides: Option<&[i64]>,
    byte_offset: u64,
    device: DLDevice,
) -> (*mut DLManagedTensor, Arc<AtomicUsize>) {
    let mut data = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut data)[..bytes.len()].copy_from_slice(bytes);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut ctx = Box::new(Foreign {
        data,
        shape: shape.to_vec(),
        strides: strides.map(|s| s.to_vec()),
        calls: calls.clone(),
    });
    let dl_tensor = DLTensor {
        data: ctx.data.as_mut_ptr() as *mut c_void,
        device,
        ndim: shape.len() as i32,
        dtype,
        shape: ctx.shape.as_mut_ptr(),
        strides: ctx
            .strides
            .as_mut()
            .map_or(std::ptr::null_mut(), |s| s.as_mut_ptr()),
        byte_offset,
    };
    let m = Box::new(DLManagedTensor {
        dl_tensor,
        manager_ctx: Box::into_raw(ctx) as *mut c_void,
        deleter: Some(foreign_deleter),
    });
    (Box::into_raw(m), calls)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

const F32: DLDataType = DLDataType {
    code: code::FLOAT,
    bits: 32,
    lanes: 1,
};

#[test]
fn foreign_import_calls_deleter_exactly_once() {
    let vals: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let (p, calls) = foreign(&f32_bytes(&vals), F32, &[2, 3], None, 0, DLDevice::CPU);
    // SAFETY: a valid managed tensor from `foreign`, handed over.
    let m = unsafe { ManagedTensor::from_raw_legacy(p) }.unwrap();
    let t = m.into_tensor(None).unwrap();
    assert_eq!(elems::<f32>(&t), vals, "NULL strides: C-contiguous");
    let copies: Vec<Tensor> = (0..4).map(|_| t.clone()).collect();
    let view = t.permute(&[1, 0]).unwrap();
    drop(t);
    drop(copies);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "still in use by the view");
    assert_eq!(elems::<f32>(&view), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    drop(view);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn foreign_versioned_import() {
    let vals = [1.0f32, 2.0, 3.0];
    let (p, calls) = foreign(&f32_bytes(&vals), F32, &[3], None, 0, DLDevice::CPU);
    // Re-wrap the legacy parts into a versioned struct.
    // SAFETY: `p` is a valid Box<DLManagedTensor> from `foreign`; we take it apart.
    let legacy = unsafe { Box::from_raw(p) };
    let v = Box::into_raw(Box::new(DLManagedTensorVersioned {
        version: DLPackVersion { major: 1, minor: 0 },
        manager_ctx: legacy.manager_ctx,
        deleter: Some(foreign_deleter_v),
        flags: DLPACK_FLAG_BITMASK_READ_ONLY,
        dl_tensor: DLTensor { ..legacy.dl_tensor },
    }));
    // SAFETY: a valid versioned managed tensor, handed over.
    let m = unsafe { ManagedTensor::from_raw_versioned(v) }.unwrap();
    assert_eq!(m.flags(), DLPACK_FLAG_BITMASK_READ_ONLY);
    let t = m.into_tensor(None).unwrap();
    assert_eq!(elems::<f32>(&t), vals);
    drop(t);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn unsupported_major_version_is_refused_without_reading_further() {
    let (p, calls) = foreign(&f32_bytes(&[1.0]), F32, &[1], None, 0, DLDevice::CPU);
    // SAFETY: taking apart our own box, as above.
    let legacy = unsafe { Box::from_raw(p) };
    let v = Box::into_raw(Box::new(DLManagedTensorVersioned {
        version: DLPackVersion { major: 2, minor: 0 },
        manager_ctx: legacy.manager_ctx,
        deleter: Some(foreign_deleter_v),
        flags: 0,
        dl_tensor: DLTensor { ..legacy.dl_tensor },
    }));
    // SAFETY: a valid versioned managed tensor, handed over.
    let m = unsafe { ManagedTensor::from_raw_versioned(v) }.unwrap();
    let e = m.check_import(None).unwrap_err().to_string();
    assert!(e.contains("version 2.0"), "{e}");
    let e = m.into_tensor(None).unwrap_err().to_string();
    assert!(e.contains("not supported"), "{e}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a failed import still releases it"
    );
}

#[test]
fn strides_and_byte_offset() {
    // Eight floats 0..8; element [0, 0] at index 2 (byte_offset 8), element
    // strides [3, -1]: [[2, 1], [5, 4]].
    let vals: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let (p, calls) = foreign(
        &f32_bytes(&vals),
        F32,
        &[2, 2],
        Some(&[3, -1]),
        8,
        DLDevice::CPU,
    );
    // SAFETY: a valid managed tensor from `foreign`, handed over.
    let t = unsafe { ManagedTensor::from_raw_legacy(p) }
        .unwrap()
        .into_tensor(Some(false))
        .unwrap();
    assert_eq!(t.strides(), &[12, -4]);
    assert_eq!(elems::<f32>(&t), vec![2.0, 1.0, 5.0, 4.0]);
    drop(t);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn copying_unaligned_data_is_copied_or_refused() {
    let vals: Vec<f32> = (0..4).map(|i| i as f32).collect();
    let mut bytes = vec![0u8];
    bytes.extend(f32_bytes(&vals));
    // byte_offset 1: float32 elements at odd addresses.
    let (p, calls) = foreign(&bytes, F32, &[4], None, 1, DLDevice::CPU);
    // SAFETY: a valid managed tensor from `foreign`, handed over.
    let m = unsafe { ManagedTensor::from_raw_legacy(p) }.unwrap();
    let e = m.check_import(Some(false)).unwrap_err().to_string();
    assert!(e.contains("not aligned"), "{e}");
    let t = m.into_tensor(None).unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "copied, then released at once"
    );
    assert_eq!(elems::<f32>(&t), vals);
    assert_eq!(t.data_ptr() as usize % crate::storage::ALIGNMENT, 0);

    let (p, calls) = foreign(&bytes, F32, &[4], None, 1, DLDevice::CPU);
    // SAFETY: as above.
    let m = unsafe { ManagedTensor::from_raw_legacy(p) }.unwrap();
    assert!(m.into_tensor(Some(false)).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn copying_copy_true_releases_immediately() {
    let vals = [1.0f32, 2.0];
    let (p, calls) = foreign(&f32_bytes(&vals), F32, &[2], None, 0, DLDevice::CPU);
    // SAFETY: a valid managed tensor from `foreign`, handed over.
    let t = unsafe { ManagedTensor::from_raw_legacy(p) }
        .unwrap()
        .into_tensor(Some(true))
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(elems::<f32>(&t), vals);
    assert!(!t.is_view());
}

#[test]
fn invalid_tensors_are_refused() {
    let cuda = DLDevice {
        device_type: DLDeviceType::CUDA,
        device_id: 1,
    };
    let bytes = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let cases: Vec<(*mut DLManagedTensor, Arc<AtomicUsize>, &str)> = vec![
        {
            let (p, c) = foreign(&bytes, F32, &[4], None, 0, cuda);
            (p, c, "CUDA:1")
        },
        {
            let (p, c) = foreign(
                &bytes,
                DLDataType {
                    code: 2,
                    bits: 32,
                    lanes: 2,
                },
                &[2],
                None,
                0,
                DLDevice::CPU,
            );
            (p, c, "2 lanes")
        },
        {
            let (p, c) = foreign(&bytes, F32, &[-1], None, 0, DLDevice::CPU);
            (p, c, "negative dimension")
        },
        {
            let (p, c) = foreign(&bytes, F32, &[4], None, 0, DLDevice::CPU);
            // SAFETY: our own fresh box from `foreign`.
            unsafe { (*p).dl_tensor.ndim = -2 };
            (p, c, "negative number of dimensions")
        },
        {
            let (p, c) = foreign(&bytes, F32, &[4], None, 0, DLDevice::CPU);
            // SAFETY: as above.
            unsafe { (*p).dl_tensor.ndim = 65 };
            (p, c, "at most 64")
        },
        {
            let (p, c) = foreign(&bytes, F32, &[4], None, 0, DLDevice::CPU);
            // SAFETY: as above (the shape array stays owned by the context).
            unsafe { (*p).dl_tensor.shape = std::ptr::null_mut() };
            (p, c, "shape is NULL")
        },
        {
            let (p, c) = foreign(&bytes, F32, &[4], None, 0, DLDevice::CPU);
            // SAFETY: as above (the data stays owned by the context).
            unsafe { (*p).dl_tensor.data = std::ptr::null_mut() };
            (p, c, "data is NULL")
        },
    ];
    for (p, calls, want) in cases {
        // SAFETY: a managed tensor from `foreign` (fields edited above, but
        // nothing invalid is dereferenced: validation refuses first).
        let m = unsafe { ManagedTensor::from_raw_legacy(p) }.unwrap();
        let e = m.check_import(None).unwrap_err().to_string();
        assert!(e.contains(want), "{want:?} not in {e:?}");
        // Not consumed: give it back, as a failed Python import does.
        let raw = m.into_raw();
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // SAFETY: taking it back to release it.
        drop(unsafe { ManagedTensor::from_raw_legacy(raw as *mut DLManagedTensor) });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
    // SAFETY: NULL is allowed and refused.
    assert!(unsafe { ManagedTensor::from_raw_legacy(std::ptr::null_mut()) }.is_err());
}

#[test]
fn empty_foreign_tensor_with_null_data() {
    let (p, calls) = foreign(&[], F32, &[0, 3], None, 0, DLDevice::CPU);
    // SAFETY: our own fresh box.
    unsafe { (*p).dl_tensor.data = std::ptr::null_mut() };
    // SAFETY: a valid managed tensor (empty: data is never read).
    let t = unsafe { ManagedTensor::from_raw_legacy(p) }
        .unwrap()
        .into_tensor(None)
        .unwrap();
    assert_eq!(t.shape(), &[0, 3]);
    drop(t);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

fn counting_hook(release: &mut dyn FnMut()) {
    HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
    release();
}

#[test]
fn release_hook_runs_the_release_once() {
    let t = sample();
    let opts = ExportOptions {
        release_hook: Some(counting_hook),
        ..Default::default()
    };
    let before = HOOK_CALLS.load(Ordering::SeqCst);
    let m = ManagedTensor::export(&t, opts).unwrap();
    assert_eq!(Arc::strong_count(t.storage()), 2);
    drop(m);
    assert_eq!(HOOK_CALLS.load(Ordering::SeqCst), before + 1);
    assert_eq!(Arc::strong_count(t.storage()), 1);
}

#[test]
fn export_from_another_thread_is_released_there() {
    let t = sample();
    let m = ManagedTensor::export(&t, ExportOptions::default()).unwrap();
    std::thread::spawn(move || drop(m)).join().unwrap();
    assert_eq!(Arc::strong_count(t.storage()), 1);
}
