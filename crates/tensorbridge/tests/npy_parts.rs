//! `npy::read_from_parts`: an `.npy` array whose header and data were read separately
//! (what `tb.load(fileobj)` does) loads exactly as the whole image does.

use tensorbridge::format::npy::{self, LoadOptions, NpyHeader};
use tensorbridge::{ByteOrder, DType};

mod common;
use common::*;

#[test]
fn parts_load_as_the_whole_image_for_every_dtype_order_and_shape() {
    for dtype in DType::ALL {
        for shape in SHAPES {
            let t = sample(dtype, shape);
            for order in [ByteOrder::Little, ByteOrder::Big] {
                for fortran in [false, true] {
                    let ctx = format!("{dtype} {shape:?} {order:?} F={fortran}");
                    let bytes = npy_bytes(&t, order, fortran);
                    let h = NpyHeader::parse(&bytes, "mem").unwrap();
                    let (head, data) = bytes.split_at(h.data_offset);
                    assert_eq!(data.len(), h.data_len(), "{ctx}");
                    let bf = LoadOptions {
                        dtype: (dtype == DType::BFloat16).then_some(DType::BFloat16),
                        ..Default::default()
                    };
                    let r = npy::read_from_parts(head, data, "mem", &bf).unwrap();
                    assert!(!r.is_view() && r.is_contiguous(), "{ctx}");
                    same(&r, &t);
                    // Bytes after the data (the next array of a stream) are ignored.
                    let mut more = data.to_vec();
                    more.extend_from_slice(b"\x93NUMPY next");
                    same(&npy::read_from_parts(head, &more, "mem", &bf).unwrap(), &t);
                }
            }
        }
    }
}

#[test]
fn parts_refuse_mmap_short_data_and_bad_headers() {
    let t = sample(DType::Float64, &[4, 3]);
    let bytes = npy_bytes(&t, ByteOrder::Little, false);
    let h = NpyHeader::parse(&bytes, "f").unwrap();
    let (head, data) = bytes.split_at(h.data_offset);
    let e = err_of(npy::read_from_parts(head, data, "f", &opts(Some(true))));
    assert!(e.contains("f") && e.contains("memory-map"), "{e}");
    let e = err_of(npy::read_from_parts(
        head,
        &data[..data.len() - 8],
        "f",
        &opts(None),
    ));
    assert!(e.contains("truncated"), "{e}");
    let e = err_of(npy::read_from_parts(&head[..9], data, "f", &opts(None)));
    assert!(e.contains("f:"), "{e}");
    let e = err_of(npy::read_from_parts(
        b"not numpy at all",
        data,
        "f",
        &opts(None),
    ));
    assert!(e.contains("magic"), "{e}");
    // A cast on the way, in the same pass.
    let c = npy::read_from_parts(
        head,
        data,
        "f",
        &LoadOptions {
            dtype: Some(DType::Float32),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c.dtype(), DType::Float32);
}
