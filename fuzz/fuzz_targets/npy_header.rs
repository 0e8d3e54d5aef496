//! Arbitrary bytes as an `.npy` file: header parsing, loading from memory (with and
//! without a requested dtype), and the streaming reader. Must never panic, read out
//! of bounds, or allocate more than the input justifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorbridge::format::npy::{self, LoadOptions, NpyHeader, NpyReader};
use tensorbridge::{Casting, DType};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = NpyHeader::parse(data, "fuzz.npy") {
        // Whatever parses must re-encode and parse back to the same array description.
        if let Some(d) = h.dtype {
            if let Ok(again) = NpyHeader::new(d, &h.shape, h.fortran_order) {
                let back = NpyHeader::parse(&again.to_bytes(), "re").expect("own header parses");
                assert_eq!(
                    (back.shape, back.fortran_order, back.dtype),
                    (h.shape.clone(), h.fortran_order, h.dtype)
                );
            }
        }
        let _ = (h.len(), h.data_len(), h.strides());
    }
    for opts in [
        LoadOptions::default(),
        LoadOptions {
            dtype: Some(DType::BFloat16),
            ..Default::default()
        },
        LoadOptions {
            dtype: Some(DType::Float32),
            casting: Casting::Checked,
            ..Default::default()
        },
    ] {
        if let Ok(t) = npy::from_bytes(data, "fuzz.npy", &opts) {
            assert!(t.nbytes() <= data.len() * 8);
        }
    }
    if let Ok(mut r) = NpyReader::new(data, "fuzz.npy") {
        let mut buf = [0u8; 48];
        while let Ok(c) = r.read_chunk(&mut buf) {
            if c.is_empty() {
                break;
            }
        }
    }
});
