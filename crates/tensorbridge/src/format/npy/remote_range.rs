//! A range of rows of a remote `.npy` image (a whole `.npy` object, or a stored
//! `.npz` member inside an archive object), read by ranged GETs straight into the
//! tensor: what one read task of a distributed reader (`tb.ray`) needs, without
//! reading the rest of the object.

use bytes::Bytes;

use super::header::{preamble, NpyHeader};
use super::read::{build_filled, check_data_fits, convert_from};
use super::remote::HEAD;
use super::LoadOptions;
use crate::error::{Error, Result};
use crate::format::format_err;
use crate::location::RemoteObject;
use crate::tensor::Tensor;

/// The header of the `.npy` image that starts at byte `image` of `obj` and is
/// `len` bytes long (one small ranged read; a second only for a longer header).
/// `name` names the image in errors.
pub fn read_header_at(obj: &RemoteObject, image: u64, len: u64, name: &str) -> Result<NpyHeader> {
    let first: Bytes = obj.get_upto(image, HEAD.min(len as usize))?;
    let (_, data_offset) = preamble(&first, name)?;
    let bytes = if data_offset > first.len() && data_offset as u64 <= len {
        obj.get_range(image..image + data_offset as u64)?
    } else {
        first
    };
    NpyHeader::parse(&bytes, name)
}

/// The header of an `.npy` image from facts read earlier (by [`NpyHeader::parse`]
/// elsewhere, e.g. a driver's header pass): its `descr`, `fortran_order`, `shape` and
/// `data_offset`. No request; checked as a parsed header is. `name` names the image
/// in errors.
pub fn header_from_parts(
    descr: &str,
    fortran_order: bool,
    shape: &[usize],
    data_offset: usize,
    name: &str,
) -> Result<NpyHeader> {
    if descr.contains(['\'', '"', '\\']) {
        return Err(format_err(
            name,
            format!("descr {descr:?} is not a plain type string"),
        ));
    }
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    let mut dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({dims}), }}",
        if fortran_order { "True" } else { "False" }
    );
    // Version 1.0 (as NumPy writes it), padded as NumPy pads it.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let len = u16::try_from(dict.len()).map_err(|_| format_err(name, "header too long"))?;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    let mut h = NpyHeader::parse(&bytes, name)?;
    h.data_offset = data_offset;
    Ok(h)
}

/// Rows `start..stop` of the `.npy` image at byte `image` of `obj` (`len` bytes long;
/// `header` is its header, `data_offset` counted from the image's start), as an
/// owned C-contiguous tensor: for native byte order and no cast, one buffer filled
/// by concurrent ranged reads of exactly those rows' bytes; otherwise the bytes are
/// read and then converted (byte swap, cast). `opts.dtype`: the dtype to load as
/// (bfloat16 for a `'V2'` image, or a cast target). Fortran-ordered images of more
/// than one dimension are refused (their rows do not lie together); `mmap` is
/// ignored (there is no local file).
pub fn load_rows_at(
    obj: &RemoteObject,
    header: &NpyHeader,
    image: u64,
    len: u64,
    start: usize,
    stop: usize,
    opts: &LoadOptions,
) -> Result<Tensor> {
    let name = obj.url();
    check_data_fits(header, len, name)?;
    let Some(&rows) = header.shape.first() else {
        return Err(format_err(name, "a 0-d array has no rows"));
    };
    if start > stop || stop > rows {
        return Err(Error::InvalidArgument(format!(
            "{name}: rows {start}:{stop} are out of range for {rows} rows"
        )));
    }
    if header.fortran_order && header.shape.len() > 1 {
        return Err(Error::InvalidArgument(format!(
            "{name}: a Fortran-ordered array keeps a row's elements apart; read it whole"
        )));
    }
    let stored = header.resolve_dtype(opts.dtype, name)?;
    let target = opts.dtype.unwrap_or(stored);
    stored.check_cast(target, opts.casting)?;
    let row_elems: usize = header.shape[1..].iter().product();
    let row_bytes = row_elems * header.itemsize();
    let at = image + (header.data_offset + start * row_bytes) as u64;
    let mut shape = header.shape.clone();
    shape[0] = stop - start;
    if !header.byte_order.is_swapped() && stored == target {
        return build_filled(stored, &shape, |buf| obj.read_into(at, buf));
    }
    let mut data = vec![0u8; (stop - start) * row_bytes];
    obj.read_into(at, &mut data)?;
    let mut part = header.clone();
    part.shape = shape;
    part.data_offset = 0;
    convert_from(&part, &data, stored, target, opts)
}

/// Rows `start..stop` of the `.npy` object `obj`: its header (one small read), then
/// [`load_rows_at`].
pub fn load_rows_remote(
    obj: &RemoteObject,
    start: usize,
    stop: usize,
    opts: &LoadOptions,
) -> Result<Tensor> {
    let header = read_header_at(obj, 0, obj.size(), obj.url())?;
    load_rows_at(obj, &header, 0, obj.size(), start, stop, opts)
}

#[cfg(test)]
mod tests {
    use object_store::path::Path as ObjPath;
    use object_store::{ObjectStore, PutPayload};

    use super::*;
    use crate::dtype::DType;
    use crate::location::{block_on_for_tests as block_on, memory_store, Location, StorageOptions};

    /// An `.npy` image of `descr`, `shape` (a version 1.0 header padded to 64 bytes).
    fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let mut dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({},), }}",
            if fortran { "True" } else { "False" },
            dims.join(", ")
        );
        while (10 + dict.len() + 1) % 64 != 0 {
            dict.push(' ');
        }
        dict.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn object(key: &str, bytes: Vec<u8>) -> RemoteObject {
        block_on(memory_store().put(&ObjPath::from(key), PutPayload::from(bytes))).unwrap();
        let loc = Location::parse(&format!("memory:///{key}"), &StorageOptions::new()).unwrap();
        loc.open_remote().unwrap().unwrap()
    }

    #[test]
    fn rows_of_native_and_byte_swapped_objects() {
        let values: Vec<i32> = (0..150).map(|i| i * 7 - 300).collect();
        let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        for (key, descr, data) in [("rr/le.npy", "<i4", le), ("rr/be.npy", ">i4", be)] {
            let obj = object(key, npy(descr, false, &[50, 3], &data));
            let t = load_rows_remote(&obj, 10, 20, &LoadOptions::default()).unwrap();
            assert_eq!(t.shape(), &[10, 3]);
            assert_eq!(t.dtype(), DType::Int32);
            assert_eq!(
                t.to_vec::<i32>().unwrap(),
                values[30..60].to_vec(),
                "{descr}"
            );
            let empty = load_rows_remote(&obj, 50, 50, &LoadOptions::default()).unwrap();
            assert_eq!(empty.shape(), &[0, 3]);
            let e = load_rows_remote(&obj, 40, 51, &LoadOptions::default()).unwrap_err();
            assert!(e.to_string().contains("out of range for 50 rows"), "{e}");
        }
    }

    #[test]
    fn rows_from_header_facts_make_no_header_read_and_refuse_a_replaced_object() {
        let values: Vec<i16> = (0..60).map(|i| i * 3 - 90).collect();
        let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let bytes = npy(">i2", false, &[20, 3], &be);
        let size = bytes.len() as u64;
        let obj = object("rr/facts.npy", bytes);
        let parsed = read_header_at(&obj, 0, size, "x").unwrap();
        let h = header_from_parts(">i2", false, &[20, 3], parsed.data_offset, "x").unwrap();
        assert_eq!(h, parsed);
        let Location::Remote(url) =
            Location::parse("memory:///rr/facts.npy", &StorageOptions::new()).unwrap()
        else {
            unreachable!("a memory:// URL is remote")
        };
        let known = RemoteObject::known(&url, size, obj.etag().map(str::to_string)).unwrap();
        let t = load_rows_at(&known, &h, 0, size, 5, 9, &LoadOptions::default()).unwrap();
        assert_eq!(t.to_vec::<i16>().unwrap(), values[15..27].to_vec());
        // Replaced since the facts were read (same size): an error, not new bytes.
        let mut other = be.clone();
        other.reverse();
        object("rr/facts.npy", npy(">i2", false, &[20, 3], &other));
        let e = load_rows_at(&known, &h, 0, size, 5, 9, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, Error::ObjectChanged { .. }), "{e:?}");
        assert!(header_from_parts("<f4'", false, &[1], 64, "q").is_err());
    }

    #[test]
    fn rows_lying_apart_or_missing_data_are_refused_naming_the_object() {
        let data = vec![0u8; 4 * 150];
        let obj = object("rr/f.npy", npy("<f4", true, &[50, 3], &data));
        let e = load_rows_remote(&obj, 0, 5, &LoadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("Fortran") && e.to_string().contains("rr/f.npy"));
        let obj = object("rr/short.npy", npy("<f4", false, &[50, 3], &data[..100]));
        let e = load_rows_remote(&obj, 0, 5, &LoadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("rr/short.npy"), "{e}");
    }
}
