//! Arbitrary bytes as an `.npz` archive: open (zip central directory), then every
//! member's header, load (mapped-style view, copy, bfloat16) and streaming read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorbridge::format::npy::LoadOptions;
use tensorbridge::format::npz::NpzArchive;
use tensorbridge::DType;

fuzz_target!(|data: &[u8]| {
    let Ok(z) = NpzArchive::from_bytes(data, "fuzz.npz") else {
        return;
    };
    let names: Vec<String> = z.names().map(String::from).collect();
    for name in &names {
        let _ = z.header(name);
        for opts in [
            LoadOptions::default(),
            LoadOptions {
                mmap: Some(false),
                ..Default::default()
            },
            LoadOptions {
                mmap: Some(true),
                dtype: Some(DType::BFloat16),
                ..Default::default()
            },
        ] {
            let _ = z.load(name, &opts);
        }
        if let Ok(mut r) = z.reader(name) {
            let mut buf = [0u8; 64];
            while let Ok(c) = r.read_chunk(&mut buf) {
                if c.is_empty() {
                    break;
                }
            }
        }
    }
});
