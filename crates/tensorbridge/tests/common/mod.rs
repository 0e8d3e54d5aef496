//! Helpers shared by the `.npy` / `.npz` integration tests: sample tensors, files in
//! NumPy's exact byte layout, error text.
#![allow(dead_code)] // each test crate uses a different subset

use std::io::{Cursor, Write};
use tensorbridge::format::npy::{LoadOptions, NpyHeader};
use tensorbridge::{ByteOrder, Casting, DType, Error, Tensor};

pub const SHAPES: &[&[usize]] = &[&[], &[0], &[5], &[2, 3], &[2, 0, 3], &[3, 1, 4], &[1]];

pub fn opts(mmap: Option<bool>) -> LoadOptions {
    LoadOptions {
        mmap,
        ..Default::default()
    }
}

/// A C-contiguous native tensor of `dtype` and `shape` with distinct values.
pub fn sample(dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 7 + 3) % 61) as f64 - 20.0 + 0.25 * (i % 3) as f64)
        .collect();
    let t = Tensor::from_slice(&v, &[n]).unwrap();
    t.cast(dtype, Casting::Unsafe)
        .unwrap()
        .reshape(&shape.iter().map(|&d| d as isize).collect::<Vec<_>>())
        .unwrap()
}

/// `.npy` bytes for `t` with the given descr byte order and memory order, laid out
/// exactly as NumPy lays them out.
pub fn npy_bytes(t: &Tensor, order: ByteOrder, fortran: bool) -> Vec<u8> {
    let mut h = NpyHeader::new(t.dtype(), t.shape(), fortran).unwrap();
    let size = t.dtype().size();
    if size > 1 {
        let code = &h.descr[1..];
        h.descr = format!(
            "{}{code}",
            if order == ByteOrder::Little { '<' } else { '>' }
        );
    }
    let mut out = h.to_bytes();
    // Elements in file order.
    let ordered = if fortran {
        let axes: Vec<usize> = (0..t.ndim()).rev().collect();
        t.permute(&axes).unwrap().deep_copy().unwrap()
    } else {
        t.clone()
    };
    let bytes = ordered.as_bytes().unwrap();
    if order.is_swapped() && size > 1 {
        // Complex numbers swap each part.
        let part = if t.dtype().is_complex() {
            size / 2
        } else {
            size
        };
        for e in bytes.chunks(part) {
            out.extend(e.iter().rev());
        }
    } else {
        out.extend_from_slice(bytes);
    }
    out
}

pub fn same(a: &Tensor, b: &Tensor) {
    assert_eq!(a.dtype(), b.dtype());
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.deep_copy().unwrap(), b.deep_copy().unwrap());
    assert_eq!(a.as_bytes().unwrap(), b.as_bytes().unwrap());
}

pub fn err_of(r: Result<Tensor, Error>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    }
}

/// An archive the way `np.savez` lays it out: members at whatever offset the local
/// headers leave (not aligned), optionally deflated.
pub fn numpy_like_npz(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    for (name, bytes) in members {
        let o = zip::write::SimpleFileOptions::default().compression_method(method);
        z.start_file(format!("{name}.npy"), o).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}
