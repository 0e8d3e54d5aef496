//! TFRecord files of `tf.train.Example` records, and the `TensorProto` bytes that
//! `tf.io.serialize_tensor` makes.
//!
//! # Layout written
//!
//! [`write_tfrecord`] writes one `tf.train.Example` per slice along axis 0 of its
//! arrays. Each named array is one feature: a `bytes_list` holding one value, the
//! serialized `TensorProto` of that slice exactly as `tf.io.serialize_tensor` makes
//! it — `dtype`, `tensor_shape` (always present, one `dim` per dimension, a zero
//! size left out as proto3 does) and `tensor_content` (the raw little-endian
//! elements, left out when empty). The tests compare these bytes with TensorFlow's
//! for every dtype, so TensorFlow reads the files with
//! `tf.data.TFRecordDataset` + `tf.io.parse_single_example` + `tf.io.parse_tensor`.
//!
//! Every record is framed as TFRecord frames it: the data length as a
//! little-endian `u64`, the masked CRC32C of those 8 bytes, the data, the masked
//! CRC32C of the data, where `mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8`.
//! With GZIP the whole file is one gzip member holding those frames, deflated at
//! zlib's default level (TensorFlow's too) on all cores (see `ParallelGz`).
//!
//! # Reading
//!
//! [`RecordReader`] checks both CRCs of every record; [`ExampleReader`] parses each
//! record's `Example` into `(name, Tensor)` pairs. Besides `bytes_list` features
//! holding a serialized tensor it accepts `float_list` and `int64_list` features
//! (as 1-d float32 / int64 tensors). [`parse_tensor`] reads any
//! `tf.io.serialize_tensor` output, and also the typed repeated fields
//! (`float_val`, `half_val`, `int_val`, ...) that `tf.make_tensor_proto` uses for
//! small tensors, including TensorFlow's rule that the last value repeats to fill
//! the shape.
//!
//! # Why the protobuf is encoded by hand
//!
//! Only three small, fixed message families are involved (`Example` → `Features` →
//! `Feature` → `BytesList`; `TensorProto`; `TensorShapeProto`). A protobuf crate
//! would bring code generation (a build script and `protoc`, or hand-kept
//! generated code) for what is a 30-line varint/length-delimited encoder and a
//! bounds-checked decoder of four wire types. Encoding by hand also lets the writer
//! compute each feature's message header once and stream the tensor bytes straight
//! from the array into the file, with no per-record message objects or copies.
//!
//! # Hostile input
//!
//! Nothing read from a file or from bytes is trusted: every length is checked
//! against what is left before it is used, varints longer than 10 bytes or
//! overflowing 64 bits are errors, a record length must fit in the rest of an
//! uncompressed file (and is read incrementally from a compressed one), and a
//! tensor is only allocated once its size is justified by the input — exactly
//! the bytes of `tensor_content`, or one element per value present. Filling a
//! shape from fewer values (TensorFlow's repeat-the-last-value rule) is limited to
//! [`MAX_FILL_BYTES`] of output. Errors never panic; they name the file and the
//! record (counted from 0).

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::dtype::{Casting, DType};
use crate::error::{Error, Result};
use crate::format::AtomicFile;
use crate::tensor::Tensor;
use crate::view::{checked_numel, TensorView, MAX_NDIM};

/// Most bytes [`parse_tensor`] produces by repeating values to fill a shape (the
/// input does not justify more).
pub const MAX_FILL_BYTES: usize = 16 << 20;

const MASK_DELTA: u32 = 0xa282_ead8;

/// TFRecord's masking of a CRC32C: `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// The inverse of [`mask_crc`].
pub fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(MASK_DELTA).rotate_left(15)
}

/// The masked CRC32C of `data`, as stored in a TFRecord frame.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask_crc(crc32c::crc32c(data))
}

/// TensorFlow's `DataType` enum value for a dtype (`DT_FLOAT` = 1, ...).
pub fn tf_dtype_enum(d: DType) -> u32 {
    match d {
        DType::Float32 => 1,
        DType::Float64 => 2,
        DType::Int32 => 3,
        DType::UInt8 => 4,
        DType::Int16 => 5,
        DType::Int8 => 6,
        DType::Complex64 => 8,
        DType::Int64 => 9,
        DType::Bool => 10,
        DType::BFloat16 => 14,
        DType::UInt16 => 17,
        DType::Complex128 => 18,
        DType::Float16 => 19,
        DType::UInt32 => 22,
        DType::UInt64 => 23,
    }
}

/// The dtype for a TensorFlow `DataType` enum value, or why there is none.
pub fn dtype_from_tf_enum(e: u64) -> std::result::Result<DType, String> {
    Ok(match e {
        1 => DType::Float32,
        2 => DType::Float64,
        3 => DType::Int32,
        4 => DType::UInt8,
        5 => DType::Int16,
        6 => DType::Int8,
        8 => DType::Complex64,
        9 => DType::Int64,
        10 => DType::Bool,
        14 => DType::BFloat16,
        17 => DType::UInt16,
        18 => DType::Complex128,
        19 => DType::Float16,
        22 => DType::UInt32,
        23 => DType::UInt64,
        0 => return Err("the TensorProto has no dtype (DT_INVALID)".into()),
        7 => return Err("string tensors (DT_STRING) are not supported".into()),
        11..=13 | 15 | 16 => return Err(format!("quantized dtype (enum {e}) is not supported")),
        20 | 21 => {
            return Err(format!(
                "resource/variant dtype (enum {e}) is not supported"
            ))
        }
        _ => return Err(format!("TensorFlow dtype enum {e} is not supported")),
    })
}

fn require_little_endian() -> Result<()> {
    if cfg!(target_endian = "big") {
        return Err(Error::InvalidArgument(
            "TFRecord tensors are little-endian; big-endian hosts are not supported".into(),
        ));
    }
    Ok(())
}

/// Protocol buffer wire format: the few pieces the TensorFlow messages need.
mod pb {
    pub const VARINT: u8 = 0;
    pub const FIXED64: u8 = 1;
    pub const LEN: u8 = 2;
    pub const FIXED32: u8 = 5;

    pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn varint_len(v: u64) -> usize {
        (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
    }

    pub fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
        put_varint(out, (u64::from(field) << 3) | u64::from(wire));
    }

    /// Tag and length of a length-delimited field whose payload follows.
    pub fn put_len_header(out: &mut Vec<u8>, field: u32, len: usize) {
        put_tag(out, field, LEN);
        put_varint(out, len as u64);
    }

    /// One field's value as it appears on the wire.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Value<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
        Fixed32(u32),
    }

    /// A bounds-checked reader of one message's fields.
    pub struct Decoder<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Decoder<'a> {
        pub fn new(buf: &'a [u8]) -> Self {
            Decoder { buf, pos: 0 }
        }

        pub fn at_end(&self) -> bool {
            self.pos >= self.buf.len()
        }

        pub fn varint(&mut self) -> Result<u64, String> {
            let mut v = 0u64;
            for i in 0..10 {
                let Some(&b) = self.buf.get(self.pos) else {
                    return Err("truncated varint".into());
                };
                self.pos += 1;
                if i == 9 && b > 1 {
                    return Err("varint overflows 64 bits".into());
                }
                v |= u64::from(b & 0x7f) << (7 * i);
                if b < 0x80 {
                    return Ok(v);
                }
            }
            Err("varint longer than 10 bytes".into())
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self
                .pos
                .checked_add(n)
                .filter(|&e| e <= self.buf.len())
                .ok_or_else(|| {
                    format!(
                        "field of {n} bytes at offset {} runs past the end of a {}-byte message",
                        self.pos,
                        self.buf.len()
                    )
                })?;
            let s = &self.buf[self.pos..end];
            self.pos = end;
            Ok(s)
        }

        /// The next `(field number, value)`, or `None` at the end of the message.
        pub fn field(&mut self) -> Result<Option<(u32, Value<'a>)>, String> {
            if self.at_end() {
                return Ok(None);
            }
            let tag = self.varint()?;
            let field = tag >> 3;
            if field == 0 || field > (1 << 29) - 1 {
                return Err(format!("invalid field number {field}"));
            }
            let value = match (tag & 7) as u8 {
                VARINT => Value::Varint(self.varint()?),
                FIXED64 => {
                    let b = self.take(8)?;
                    Value::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| "fixed64")?))
                }
                LEN => {
                    let n = self.varint()?;
                    let n = usize::try_from(n).map_err(|_| format!("length {n} is too large"))?;
                    Value::Bytes(self.take(n)?)
                }
                FIXED32 => {
                    let b = self.take(4)?;
                    Value::Fixed32(u32::from_le_bytes(b.try_into().map_err(|_| "fixed32")?))
                }
                w => return Err(format!("unsupported wire type {w} (field {field})")),
            };
            Ok(Some((field as u32, value)))
        }
    }
}

use pb::{Decoder, Value};

// ---------------------------------------------------------------------------
// TensorProto

/// The bytes of a `TensorProto` that precede `tensor_content`'s payload.
fn tensor_proto_prefix(dtype: DType, shape: &[usize], content_len: usize) -> Vec<u8> {
    let mut shape_msg = Vec::new();
    for &d in shape {
        if d == 0 {
            shape_msg.extend_from_slice(&[0x12, 0x00]);
        } else {
            pb::put_len_header(&mut shape_msg, 2, 1 + pb::varint_len(d as u64));
            pb::put_tag(&mut shape_msg, 1, pb::VARINT);
            pb::put_varint(&mut shape_msg, d as u64);
        }
    }
    let mut out = Vec::with_capacity(shape_msg.len() + 24);
    pb::put_tag(&mut out, 1, pb::VARINT);
    pb::put_varint(&mut out, u64::from(tf_dtype_enum(dtype)));
    pb::put_len_header(&mut out, 2, shape_msg.len());
    out.extend_from_slice(&shape_msg);
    if content_len > 0 {
        pb::put_len_header(&mut out, 4, content_len);
    }
    out
}

/// Contiguous little-endian element bytes of a view: borrowed when possible, bools
/// normalised to 0/1.
enum Elements<'a> {
    Borrowed(&'a [u8]),
    Copied(Tensor),
    Owned(Vec<u8>),
}

impl Elements<'_> {
    fn of<'a>(view: &TensorView<'a>) -> Result<Elements<'a>> {
        let e = match view.contiguous_bytes() {
            Some(b) => Elements::Borrowed(b),
            None => Elements::Copied(Tensor::copy_of(view)?),
        };
        if view.dtype() == DType::Bool && e.bytes().iter().any(|&b| b > 1) {
            return Ok(Elements::Owned(
                e.bytes().iter().map(|&b| u8::from(b != 0)).collect(),
            ));
        }
        Ok(e)
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Elements::Borrowed(b) => b,
            Elements::Copied(t) => t.as_bytes().unwrap_or(&[]),
            Elements::Owned(v) => v,
        }
    }
}

/// The bytes `tf.io.serialize_tensor` makes for this array (any layout).
pub fn serialize_tensor(view: &TensorView<'_>) -> Result<Vec<u8>> {
    require_little_endian()?;
    let elements = Elements::of(view)?;
    let content = elements.bytes();
    let mut out = tensor_proto_prefix(view.dtype(), view.shape(), content.len());
    out.extend_from_slice(content);
    Ok(out)
}

/// Parse the bytes of a `TensorProto` (`tf.io.serialize_tensor`'s output, or
/// `tf.make_tensor_proto(...).SerializeToString()`) into a tensor.
pub fn parse_tensor(bytes: &[u8]) -> Result<Tensor> {
    require_little_endian()?;
    parse_tensor_proto(bytes)
        .map_err(|reason| Error::InvalidArgument(format!("invalid serialized tensor: {reason}")))
}

/// Which typed repeated field holds a dtype's values, how each value is encoded,
/// and how many values make one element.
fn typed_field(dtype: DType) -> (u32, u8, usize) {
    match dtype {
        DType::Float32 => (5, pb::FIXED32, 1),
        DType::Float64 => (6, pb::FIXED64, 1),
        DType::Int8 | DType::Int16 | DType::Int32 | DType::UInt8 | DType::UInt16 => {
            (7, pb::VARINT, 1)
        }
        DType::Complex64 => (9, pb::FIXED32, 2),
        DType::Int64 => (10, pb::VARINT, 1),
        DType::Bool => (11, pb::VARINT, 1),
        DType::Complex128 => (12, pb::FIXED64, 2),
        DType::Float16 | DType::BFloat16 => (13, pb::VARINT, 1),
        DType::UInt32 => (16, pb::VARINT, 1),
        DType::UInt64 => (17, pb::VARINT, 1),
    }
}

/// Calls `f` with each scalar of a repeated field, whether packed or not.
fn each_scalar<'a>(
    occurrences: &[Value<'a>],
    wire: u8,
    mut f: impl FnMut(u64) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    for v in occurrences {
        match (*v, wire) {
            (Value::Varint(x), pb::VARINT) => f(x)?,
            (Value::Fixed32(x), pb::FIXED32) => f(u64::from(x))?,
            (Value::Fixed64(x), pb::FIXED64) => f(x)?,
            (Value::Bytes(b), pb::VARINT) => {
                let mut d = Decoder::new(b);
                while !d.at_end() {
                    f(d.varint()?)?;
                }
            }
            (Value::Bytes(b), pb::FIXED32) => {
                if b.len() % 4 != 0 {
                    return Err(format!("packed fixed32 field of {} bytes", b.len()));
                }
                for c in b.chunks_exact(4) {
                    f(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))?;
                }
            }
            (Value::Bytes(b), pb::FIXED64) => {
                if b.len() % 8 != 0 {
                    return Err(format!("packed fixed64 field of {} bytes", b.len()));
                }
                for c in b.chunks_exact(8) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f(u64::from_le_bytes(a))?;
                }
            }
            _ => return Err("typed value field has the wrong wire type".into()),
        }
    }
    Ok(())
}

/// Store one decoded value (a part of an element, for complex) as `out.len()`
/// little-endian bytes, with C++'s `static_cast` truncation for narrow integers.
fn store_part(dtype: DType, raw: u64, out: &mut [u8]) {
    if dtype == DType::Bool {
        if let Some(b) = out.first_mut() {
            *b = u8::from(raw != 0);
        }
        return;
    }
    let bytes = raw.to_le_bytes();
    let n = out.len().min(8);
    out[..n].copy_from_slice(&bytes[..n]);
}

fn parse_shape(msg: &[u8], dims: &mut Vec<usize>) -> std::result::Result<(), String> {
    let mut d = Decoder::new(msg);
    while let Some((field, value)) = d.field()? {
        match (field, value) {
            (2, Value::Bytes(dim)) => {
                if dims.len() >= MAX_NDIM {
                    return Err(format!("more than {MAX_NDIM} dimensions"));
                }
                let mut size = 0i64;
                let mut dd = Decoder::new(dim);
                while let Some((f, v)) = dd.field()? {
                    if let (1, Value::Varint(s)) = (f, v) {
                        size = s as i64;
                    }
                }
                let size = usize::try_from(size)
                    .map_err(|_| format!("dimension {} has unknown size {size}", dims.len()))?;
                dims.push(size);
            }
            (3, Value::Varint(v)) if v != 0 => {
                return Err("the shape has unknown rank".into());
            }
            (2, _) | (3, _) => return Err("malformed TensorShapeProto".into()),
            _ => {}
        }
    }
    Ok(())
}

fn parse_tensor_proto(bytes: &[u8]) -> std::result::Result<Tensor, String> {
    let mut dtype_enum = 0u64;
    let mut dims = Vec::new();
    let mut content: &[u8] = &[];
    // Occurrences of the typed value fields (5..=17), with their field numbers.
    let mut typed: Vec<(u32, Value<'_>)> = Vec::new();
    let mut d = Decoder::new(bytes);
    while let Some((field, value)) = d.field()? {
        match (field, value) {
            (1, Value::Varint(v)) => dtype_enum = v,
            (2, Value::Bytes(b)) => parse_shape(b, &mut dims)?,
            (4, Value::Bytes(b)) => content = b,
            (1, _) | (2, _) | (4, _) => {
                return Err(format!("field {field} has the wrong wire type"));
            }
            (5..=13 | 16 | 17, v) => typed.push((field, v)),
            _ => {}
        }
    }
    let dtype = dtype_from_tf_enum(dtype_enum)?;
    let numel = checked_numel(&dims).map_err(|e| e.to_string())?;
    let size = dtype.size();
    let nbytes = numel
        .checked_mul(size)
        .ok_or_else(|| format!("shape {dims:?} of {dtype} is too large"))?;

    if !content.is_empty() {
        if content.len() != nbytes {
            return Err(format!(
                "tensor_content has {} bytes but a {dtype} tensor of shape {dims:?} needs {nbytes}",
                content.len()
            ));
        }
        return Tensor::build(dtype, &dims, |dst| {
            dst.copy_from_slice(content);
            if dtype == DType::Bool {
                dst.iter_mut().for_each(|b| *b = u8::from(*b != 0));
            }
            Ok(())
        })
        .map_err(|e| e.to_string());
    }

    let (want, wire, parts) = typed_field(dtype);
    let values: Vec<Value<'_>> = typed
        .iter()
        .filter(|(f, _)| *f == want)
        .map(|(_, v)| *v)
        .collect();
    // Count (and validate) first, so nothing is allocated for a bad proto.
    let mut count = 0usize;
    each_scalar(&values, wire, |_| {
        count += 1;
        Ok(())
    })?;
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` is newer than the MSRV
    if count % parts != 0 {
        return Err(format!("{count} values do not make whole {dtype} elements"));
    }
    let n_in = count / parts;
    if n_in > numel {
        return Err(format!(
            "{n_in} values for a tensor of shape {dims:?} ({numel} elements)"
        ));
    }
    if n_in < numel && nbytes > MAX_FILL_BYTES {
        return Err(format!(
            "{n_in} values would be repeated into a {dtype} tensor of shape {dims:?} \
             ({nbytes} bytes); at most {MAX_FILL_BYTES} bytes are filled this way"
        ));
    }
    let part = size / parts;
    Tensor::build(dtype, &dims, |dst| {
        let mut i = 0usize;
        each_scalar(&values, wire, |raw| {
            if let Some(out) = dst.get_mut(i * part..(i + 1) * part) {
                store_part(dtype, raw, out);
            }
            i += 1;
            Ok(())
        })
        .map_err(Error::InvalidArgument)?;
        // TensorFlow repeats the last value to fill the shape; with no values the
        // elements stay zero.
        if n_in > 0 && n_in < numel {
            let (head, tail) = dst.split_at_mut(n_in * size);
            let last = &head[(n_in - 1) * size..];
            for chunk in tail.chunks_exact_mut(size) {
                chunk.copy_from_slice(last);
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Example

/// Parse a serialized `tf.train.Example` into `(name, tensor)` pairs, in the order
/// the features appear (a repeated name keeps its last value, as in protobuf).
pub fn parse_example(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    require_little_endian()?;
    parse_example_inner(bytes)
        .map_err(|reason| Error::InvalidArgument(format!("invalid tf.train.Example: {reason}")))
}

fn parse_example_inner(bytes: &[u8]) -> std::result::Result<Vec<(String, Tensor)>, String> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let mut d = Decoder::new(bytes);
    while let Some((field, value)) = d.field()? {
        let Value::Bytes(features) = value else {
            if field == 1 {
                return Err("malformed Example".into());
            }
            continue;
        };
        if field != 1 {
            continue;
        }
        let mut fd = Decoder::new(features);
        while let Some((field, value)) = fd.field()? {
            let (1, Value::Bytes(entry)) = (field, value) else {
                if field == 1 {
                    return Err("malformed Features".into());
                }
                continue;
            };
            let (name, tensor) = parse_feature_entry(entry)?;
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = tensor,
                None => out.push((name, tensor)),
            }
        }
    }
    Ok(out)
}

fn parse_feature_entry(entry: &[u8]) -> std::result::Result<(String, Tensor), String> {
    let mut key: &[u8] = &[];
    let mut feature: &[u8] = &[];
    let mut d = Decoder::new(entry);
    while let Some((field, value)) = d.field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => key = b,
            (2, Value::Bytes(b)) => feature = b,
            (1 | 2, _) => return Err("malformed feature map entry".into()),
            _ => {}
        }
    }
    let name = std::str::from_utf8(key)
        .map_err(|_| "a feature name is not UTF-8".to_string())?
        .to_string();
    let tensor = parse_feature(feature).map_err(|e| format!("feature {name:?}: {e}"))?;
    Ok((name, tensor))
}

fn parse_feature(feature: &[u8]) -> std::result::Result<Tensor, String> {
    let mut kind: Option<(u32, &[u8])> = None;
    let mut d = Decoder::new(feature);
    while let Some((field, value)) = d.field()? {
        match (field, value) {
            (1..=3, Value::Bytes(b)) => kind = Some((field, b)),
            (1..=3, _) => return Err("malformed Feature".into()),
            _ => {}
        }
    }
    let Some((kind, list)) = kind else {
        return Err("the feature has no value".into());
    };
    let mut values: Vec<Value<'_>> = Vec::new();
    let mut d = Decoder::new(list);
    while let Some((field, value)) = d.field()? {
        if field == 1 {
            values.push(value);
        }
    }
    match kind {
        1 => {
            let [Value::Bytes(b)] = values[..] else {
                return Err(format!(
                    "a bytes_list of {} values, not one serialized tensor",
                    values.len()
                ));
            };
            parse_tensor_proto(b)
        }
        2 => scalar_list(&values, pb::FIXED32, DType::Float32),
        _ => scalar_list(&values, pb::VARINT, DType::Int64),
    }
}

/// A `float_list` or `int64_list` as a 1-d tensor.
fn scalar_list(
    values: &[Value<'_>],
    wire: u8,
    dtype: DType,
) -> std::result::Result<Tensor, String> {
    let mut count = 0usize;
    each_scalar(values, wire, |_| {
        count += 1;
        Ok(())
    })?;
    let size = dtype.size();
    Tensor::build(dtype, &[count], |dst| {
        let mut i = 0usize;
        each_scalar(values, wire, |raw| {
            if let Some(out) = dst.get_mut(i * size..(i + 1) * size) {
                store_part(dtype, raw, out);
            }
            i += 1;
            Ok(())
        })
        .map_err(Error::InvalidArgument)
    })
    .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Reading

/// Reads the records of one TFRecord file, checking both CRCs of each.
///
/// Iterating yields each record's data; the first error ends the iteration.
pub struct RecordReader {
    path: String,
    reader: Box<dyn Read + Send>,
    /// Bytes left in an uncompressed file (record lengths are checked against it).
    remaining: Option<u64>,
    index: u64,
    offset: u64,
    gzip: bool,
    done: bool,
}

fn io_error(path: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => Error::Format {
            path: path.to_string(),
            reason: format!("corrupt compressed data: {e}"),
        },
        _ => Error::Io {
            path: path.to_string(),
            source: e,
        },
    }
}

impl RecordReader {
    /// Open a TFRecord file; `gzip` for files written with GZIP compression.
    pub fn open(path: impl AsRef<Path>, gzip: bool) -> Result<RecordReader> {
        let path_ref = path.as_ref();
        let name = path_ref.display().to_string();
        let file = File::open(path_ref).map_err(|e| io_error(&name, e))?;
        let len = file.metadata().map_err(|e| io_error(&name, e))?.len();
        let buffered = BufReader::with_capacity(1 << 16, file);
        let (reader, remaining): (Box<dyn Read + Send>, _) = if gzip {
            (Box::new(flate2::read::MultiGzDecoder::new(buffered)), None)
        } else {
            (Box::new(buffered), Some(len))
        };
        Ok(RecordReader {
            path: name,
            reader,
            remaining,
            index: 0,
            offset: 0,
            gzip,
            done: false,
        })
    }

    /// The file being read, as errors name it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Index (from 0) of the record the next call reads.
    pub fn record_index(&self) -> u64 {
        self.index
    }

    fn corrupt(&self, what: String) -> Error {
        let offset = if self.gzip {
            "uncompressed byte offset"
        } else {
            "byte offset"
        };
        Error::Format {
            path: self.path.clone(),
            reason: format!(
                "corrupt TFRecord: record {} ({offset} {}): {what}",
                self.index, self.offset
            ),
        }
    }

    /// Read up to `buf.len()` bytes; returns how many (fewer only at end of input).
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.path, e)),
            }
        }
        Ok(got)
    }

    /// The next record's data, `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        self.done = true; // until this record is read whole
        let mut header = [0u8; 12];
        let got = self.fill(&mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < 12 {
            return Err(self.corrupt(format!("truncated header ({got} of 12 bytes)")));
        }
        let len_bytes: [u8; 8] = header[..8].try_into().unwrap_or_default();
        let stored = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
        let computed = masked_crc32c(&len_bytes);
        if stored != computed {
            let hint = if self.index == 0 && !self.gzip && header[..2] == [0x1f, 0x8b] {
                " (the file looks GZIP-compressed: read it with GZIP compression)"
            } else {
                ""
            };
            return Err(self.corrupt(format!(
                "length CRC mismatch (stored {stored:#010x}, computed {computed:#010x}){hint}"
            )));
        }
        let len = u64::from_le_bytes(len_bytes);
        if let Some(rem) = self.remaining {
            let left = rem.saturating_sub(12);
            if len.checked_add(4).is_none_or(|need| need > left) {
                return Err(self.corrupt(format!(
                    "record of {len} bytes (+4 CRC bytes) but only {left} bytes are left in the file"
                )));
            }
        }
        let len_usize = usize::try_from(len)
            .map_err(|_| self.corrupt(format!("record length {len} is too large")))?;
        let data = if self.remaining.is_some() {
            // The file holds at least this many bytes (checked above).
            let mut data = vec![0u8; len_usize];
            let got = self.fill(&mut data)?;
            if got < len_usize {
                return Err(self.corrupt(format!("truncated data ({got} of {len} bytes)")));
            }
            data
        } else {
            // Compressed: grow with the data actually there, not with the claim.
            let mut data = Vec::with_capacity(len_usize.min(1 << 20));
            (&mut self.reader)
                .take(len)
                .read_to_end(&mut data)
                .map_err(|e| io_error(&self.path, e))?;
            if data.len() < len_usize {
                return Err(self.corrupt(format!("truncated data ({} of {len} bytes)", data.len())));
            }
            data
        };
        let mut crc = [0u8; 4];
        let got = self.fill(&mut crc)?;
        if got < 4 {
            return Err(self.corrupt("truncated data CRC".into()));
        }
        let stored = u32::from_le_bytes(crc);
        let computed = masked_crc32c(&data);
        if stored != computed {
            return Err(self.corrupt(format!(
                "data CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            )));
        }
        let total = len + 16;
        if let Some(rem) = self.remaining.as_mut() {
            *rem -= total;
        }
        self.offset += total;
        self.index += 1;
        self.done = false;
        Ok(Some(data))
    }
}

impl Iterator for RecordReader {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Reads a TFRecord file of `tf.train.Example` records: one `(name, tensor)` list
/// per record. Errors name the file and the record (from 0).
pub struct ExampleReader {
    records: RecordReader,
}

impl ExampleReader {
    /// The next record's features, `None` at the end of the file.
    pub fn next_example(&mut self) -> Result<Option<Vec<(String, Tensor)>>> {
        let index = self.records.index;
        let offset = self.records.offset;
        let Some(data) = self.records.next_record()? else {
            return Ok(None);
        };
        match parse_example_inner(&data) {
            Ok(features) => Ok(Some(features)),
            Err(reason) => {
                self.records.done = true;
                Err(Error::Format {
                    path: self.records.path.clone(),
                    reason: format!(
                        "record {index} (byte offset {offset}): invalid tf.train.Example: {reason}"
                    ),
                })
            }
        }
    }

    /// The file being read.
    pub fn path(&self) -> &str {
        self.records.path()
    }
}

impl Iterator for ExampleReader {
    type Item = Result<Vec<(String, Tensor)>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_example().transpose()
    }
}

/// Open a TFRecord file of `tf.train.Example` records for reading.
pub fn read_tfrecord(path: impl AsRef<Path>, gzip: bool) -> Result<ExampleReader> {
    require_little_endian()?;
    Ok(ExampleReader {
        records: RecordReader::open(path, gzip)?,
    })
}

/// Read every record of `paths` (in order) and stack each feature along a new
/// axis 0 — the inverse of [`write_tfrecord`]. Every record must have the same
/// features with the same dtypes and shapes.
pub fn read_tfrecord_stacked<P: AsRef<Path>>(
    paths: &[P],
    gzip: bool,
) -> Result<Vec<(String, Tensor)>> {
    let mut names: Vec<String> = Vec::new();
    let mut columns: Vec<Vec<Tensor>> = Vec::new();
    let mut first: Option<String> = None;
    for path in paths {
        let mut reader = read_tfrecord(path, gzip)?;
        loop {
            let index = reader.records.index;
            let Some(record) = reader.next_example()? else {
                break;
            };
            let mismatch = |reason: String| Error::Format {
                path: reader.path().to_string(),
                reason: format!("record {index}: {reason}"),
            };
            if first.is_none() {
                first = Some(format!("{} record {index}", reader.path()));
                names = record.iter().map(|(n, _)| n.clone()).collect();
                columns = record.into_iter().map(|(_, t)| vec![t]).collect();
                continue;
            }
            if record.len() != names.len() || record.iter().zip(&names).any(|((n, _), m)| n != m) {
                return Err(mismatch(format!(
                    "features {:?} differ from {:?} in {}",
                    record.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                    names,
                    first.as_deref().unwrap_or("the first record")
                )));
            }
            for ((name, t), column) in record.into_iter().zip(columns.iter_mut()) {
                let head = &column[0];
                if t.dtype() != head.dtype() || t.shape() != head.shape() {
                    return Err(mismatch(format!(
                        "feature {name:?} is {} of shape {:?}, but {} in {}",
                        t.dtype(),
                        t.shape(),
                        format_args!("{} of shape {:?}", head.dtype(), head.shape()),
                        first.as_deref().unwrap_or("the first record")
                    )));
                }
                column.push(t);
            }
        }
    }
    if first.is_none() {
        return Err(Error::Format {
            path: paths
                .iter()
                .map(|p| p.as_ref().display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            reason: "no records: the shapes of the features are unknown".into(),
        });
    }
    names
        .into_iter()
        .zip(columns)
        .map(|(name, column)| {
            let views: Vec<TensorView<'_>> = column.iter().map(Tensor::view).collect();
            Ok((name, crate::stack(&views, 0, None, Casting::Unsafe)?))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Writing

/// The files [`write_tfrecord`] writes for `path` and `shards`: `path` itself for
/// one shard, else `out-00000-of-00004.tfrecord` ... for `out.tfrecord` (the shard
/// suffix goes before the first `.` of the file name).
pub fn shard_paths(path: impl AsRef<Path>, shards: usize) -> Result<Vec<PathBuf>> {
    let path = path.as_ref();
    if shards == 0 {
        return Err(Error::InvalidArgument("shards must be at least 1".into()));
    }
    if shards == 1 {
        return Ok(vec![path.to_path_buf()]);
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: sharded output needs a file name in UTF-8",
                path.display()
            ))
        })?;
    let split = name
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == '.')
        .map_or(name.len(), |(i, _)| i);
    let (stem, ext) = name.split_at(split);
    Ok((0..shards)
        .map(|i| path.with_file_name(format!("{stem}-{i:05}-of-{shards:05}{ext}")))
        .collect())
}

/// One feature ready to stream: its message header (everything before the
/// tensor's bytes in the record) and the elements of all rows.
struct Column<'a> {
    header: Vec<u8>,
    elements: Elements<'a>,
    row: usize,
}

/// Input bytes compressed per task by [`ParallelGz`].
const GZ_CHUNK: usize = 1 << 20;

/// Raw-deflate `chunk` as a run of blocks ending in a sync flush (byte-aligned, not
/// final), so that such runs concatenate into one valid deflate stream.
fn deflate_chunk(chunk: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    let mut c = flate2::Compress::new(level, false);
    let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 64 + 64);
    loop {
        let done = usize::try_from(c.total_in()).unwrap_or(chunk.len());
        c.compress_vec(
            chunk.get(done..).unwrap_or(&[]),
            &mut out,
            flate2::FlushCompress::Sync,
        )
        .map_err(io::Error::other)?;
        // A sync flush is complete once it leaves room in the output.
        if c.total_in() as usize >= chunk.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// A GZIP writer that compresses on every core, as `pigz` does: input is cut into
/// 1 MiB chunks, each deflated independently (in parallel) and ended with a sync
/// flush; the pieces, in order, make one deflate stream inside one ordinary gzip
/// member (header, blocks, final empty block, CRC-32 and length). Any gzip reader
/// — TensorFlow's, zlib's, Python's — reads it. The ratio is within a fraction of a
/// percent of a single-threaded stream at the same level (each chunk starts with an
/// empty window).
struct ParallelGz<W: Write> {
    out: W,
    pending: Vec<u8>,
    batch: usize,
    level: flate2::Compression,
    crc: flate2::Crc,
}

impl<W: Write> ParallelGz<W> {
    fn new(mut out: W, level: flate2::Compression) -> io::Result<Self> {
        // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown, as flate2's GzEncoder.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        let batch = GZ_CHUNK * rayon::current_num_threads().clamp(2, 64);
        Ok(ParallelGz {
            out,
            pending: Vec::with_capacity(batch),
            batch,
            level,
            crc: flate2::Crc::new(),
        })
    }

    fn compress_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let level = self.level;
        let pieces: Vec<io::Result<Vec<u8>>> = self
            .pending
            .par_chunks(GZ_CHUNK)
            .map(|c| deflate_chunk(c, level))
            .collect();
        self.crc.update(&self.pending);
        for piece in pieces {
            self.out.write_all(&piece?)?;
        }
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.compress_pending()?;
        // An empty final fixed-Huffman block, then CRC-32 and length mod 2^32.
        self.out.write_all(&[0x03, 0x00])?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.batch - self.pending.len());
        self.pending.extend_from_slice(&data[..n]);
        if self.pending.len() == self.batch {
            self.compress_pending()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Write `f`'s output to a new [`AtomicFile`] for `dest`, GZIP-compressed or not;
/// the caller commits it.
fn write_file(
    dest: &Path,
    gzip: bool,
    f: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<AtomicFile> {
    let name = dest.display().to_string();
    let file = AtomicFile::create(dest)?;
    let io = |e| Error::Io {
        path: name.clone(),
        source: e,
    };
    if gzip {
        let mut w = ParallelGz::new(file, flate2::Compression::default()).map_err(io)?;
        f(&mut w).map_err(io)?;
        w.finish().map_err(io)
    } else {
        let mut w = file;
        f(&mut w).map_err(io)?;
        Ok(w)
    }
}

/// Write `features` (name → array; all arrays share their leading dimension `n`)
/// as TFRecord files of `n` `tf.train.Example` records — record `i` holds slice
/// `i` of every array, serialized as `tf.io.serialize_tensor` would.
///
/// With `shards > 1` the records are split into `shards` consecutive, nearly
/// equal runs, one file each, named by [`shard_paths`] (written in parallel).
/// `gzip` compresses each file as TensorFlow's `"GZIP"` option does (one gzip
/// member, deflate level 6), using every core. Files are
/// written to a temporary name and renamed into place once all are complete.
/// Returns the paths written.
pub fn write_tfrecord(
    path: impl AsRef<Path>,
    features: &[(&str, TensorView<'_>)],
    shards: usize,
    gzip: bool,
) -> Result<Vec<PathBuf>> {
    require_little_endian()?;
    let path = path.as_ref();
    let Some((first_name, first)) = features.first() else {
        return Err(Error::InvalidArgument(
            "write_tfrecord needs at least one feature".into(),
        ));
    };
    let n = *first.shape().first().ok_or_else(|| {
        Error::Shape(format!(
            "feature {first_name:?} is 0-d; records are slices along axis 0"
        ))
    })?;
    for (i, (name, view)) in features.iter().enumerate() {
        if features[..i].iter().any(|(m, _)| m == name) {
            return Err(Error::InvalidArgument(format!(
                "feature name {name:?} appears twice"
            )));
        }
        match view.shape().first() {
            None => {
                return Err(Error::Shape(format!(
                    "feature {name:?} is 0-d; records are slices along axis 0"
                )))
            }
            Some(&m) if m != n => {
                return Err(Error::Shape(format!(
                    "feature {name:?} has leading dimension {m} but feature {first_name:?} has {n}"
                )))
            }
            _ => {}
        }
    }
    if shards == 0 || shards > n.max(1) {
        return Err(Error::InvalidArgument(format!(
            "shards must be between 1 and the number of records ({n}), not {shards}"
        )));
    }
    let paths = shard_paths(path, shards)?;

    // Each record is: Example{ features(1): Features{ feature(1): entry* } } where
    // entry = { key(1): name, value(2): Feature{ bytes_list(1): BytesList{ value(1): TensorProto } } }.
    // All records have the same sizes, so every header is computed once.
    let mut columns = Vec::with_capacity(features.len());
    let mut features_len = 0usize;
    for (name, view) in features {
        let elements = Elements::of(view)?;
        let row_shape = &view.shape()[1..];
        let row = checked_numel(row_shape)?
            .checked_mul(view.dtype().size())
            .ok_or_else(|| Error::Shape(format!("feature {name:?} is too large")))?;
        let tensor = tensor_proto_prefix(view.dtype(), row_shape, row);
        let tensor_len = tensor.len() + row;
        let bytes_list_len = 1 + pb::varint_len(tensor_len as u64) + tensor_len;
        let feature_len = 1 + pb::varint_len(bytes_list_len as u64) + bytes_list_len;
        let entry_len = 1
            + pb::varint_len(name.len() as u64)
            + name.len()
            + 1
            + pb::varint_len(feature_len as u64)
            + feature_len;
        let mut header = Vec::with_capacity(entry_len - row);
        pb::put_len_header(&mut header, 1, entry_len);
        pb::put_len_header(&mut header, 1, name.len());
        header.extend_from_slice(name.as_bytes());
        pb::put_len_header(&mut header, 2, feature_len);
        pb::put_len_header(&mut header, 1, bytes_list_len);
        pb::put_len_header(&mut header, 1, tensor_len);
        header.extend_from_slice(&tensor);
        features_len += header.len() + row;
        columns.push(Column {
            header,
            elements,
            row,
        });
    }
    let mut prefix = Vec::new();
    pb::put_len_header(&mut prefix, 1, features_len);
    let record_len = (prefix.len() + features_len) as u64;
    let len_bytes = record_len.to_le_bytes();
    let len_crc = masked_crc32c(&len_bytes).to_le_bytes();

    let write_records = |w: &mut dyn Write, lo: usize, hi: usize| -> io::Result<()> {
        for i in lo..hi {
            w.write_all(&len_bytes)?;
            w.write_all(&len_crc)?;
            w.write_all(&prefix)?;
            let mut crc = crc32c::crc32c(&prefix);
            for c in &columns {
                let data = c
                    .elements
                    .bytes()
                    .get(i * c.row..(i + 1) * c.row)
                    .ok_or_else(|| io::Error::other("row outside the array"))?;
                crc = crc32c::crc32c_append(crc, &c.header);
                crc = crc32c::crc32c_append(crc, data);
                w.write_all(&c.header)?;
                w.write_all(data)?;
            }
            w.write_all(&mask_crc(crc).to_le_bytes())?;
        }
        Ok(())
    };

    // Every shard is complete before any is renamed into place; on an error the
    // dropped `AtomicFile`s remove their temporary files.
    let files: Vec<AtomicFile> = (0..shards)
        .into_par_iter()
        .map(|s| {
            let (lo, hi) = (s * n / shards, (s + 1) * n / shards);
            write_file(&paths[s], gzip, |w| write_records(w, lo, hi))
        })
        .collect::<Result<_>>()?;
    for file in files {
        file.commit()?;
    }
    Ok(paths)
}

/// The raw `Cow` of a view's contiguous little-endian bytes (shared with
/// `safetensors`): borrowed when the view already is, else copied.
pub(crate) fn contiguous_le_bytes<'a>(view: &TensorView<'a>) -> Result<Cow<'a, [u8]>> {
    require_little_endian()?;
    Ok(match Elements::of(view)? {
        Elements::Borrowed(b) => Cow::Borrowed(b),
        other => Cow::Owned(other.bytes().to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    #[allow(clippy::manual_rotate)] // the formula as TensorFlow's docs write it
    fn crc_mask_round_trip_and_known_values() {
        // CRC32C check value from RFC 3720.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        for c in [0u32, 1, 0xdead_beef, u32::MAX, 0xe306_9283] {
            assert_eq!(unmask_crc(mask_crc(c)), c);
            assert_eq!(
                mask_crc(c),
                ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8)
            );
        }
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            pb::put_varint(&mut b, v);
            assert_eq!(b.len(), pb::varint_len(v), "{v}");
            assert_eq!(Decoder::new(&b).varint().unwrap(), v);
        }
        let mut b = Vec::new();
        pb::put_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        // 10th byte > 1 overflows; 11 bytes is too long; truncated is an error.
        assert!(
            Decoder::new(&[0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>())
                .varint()
                .is_err()
        );
        assert!(Decoder::new(&[0x80; 11]).varint().is_err());
        assert!(Decoder::new(&[0x80, 0x80]).varint().is_err());
        // -1 as int32 in int_val is a 10-byte varint.
        let mut b = Vec::new();
        pb::put_varint(&mut b, -1i64 as u64);
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn tensor_bytes_match_tensorflow() {
        // From tf.io.serialize_tensor in TensorFlow 2.21.
        let t = TensorView::from_slice(&[1i32, 0, 3], &[1, 3]).unwrap();
        assert_eq!(
            serialize_tensor(&t).unwrap(),
            [
                0x08, 0x03, 0x12, 0x08, 0x12, 0x02, 0x08, 0x01, 0x12, 0x02, 0x08, 0x03, 0x22, 0x0c,
                1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0
            ]
        );
        let e = TensorView::from_slice::<f32>(&[], &[0, 3]).unwrap();
        assert_eq!(
            serialize_tensor(&e).unwrap(),
            [0x08, 0x01, 0x12, 0x06, 0x12, 0x00, 0x12, 0x02, 0x08, 0x03]
        );
        let s = TensorView::from_slice(&[1.0f64], &[]).unwrap();
        let b = serialize_tensor(&s).unwrap();
        assert_eq!(&b[..6], [0x08, 0x02, 0x12, 0x00, 0x22, 0x08]);
        let back = parse_tensor(&b).unwrap();
        assert_eq!(back.shape(), &[] as &[usize]);
        assert_eq!(back.to_vec::<f64>().unwrap(), vec![1.0]);
    }

    #[test]
    fn typed_fields_and_fill() {
        // tf.make_tensor_proto(1.0, dtype=tf.float16, shape=[3])
        let b = [
            0x08, 0x13, 0x12, 0x04, 0x12, 0x02, 0x08, 0x03, 0x6a, 0x02, 0x80, 0x78,
        ];
        let t = parse_tensor(&b).unwrap();
        assert_eq!(t.dtype(), DType::Float16);
        assert_eq!(t.to_vec::<half::f16>().unwrap(), vec![half::f16::ONE; 3]);
        // tf.make_tensor_proto([1+2j, 1+2j], dtype=tf.complex64)
        let mut b = vec![0x08, 0x08, 0x12, 0x04, 0x12, 0x02, 0x08, 0x02, 0x4a, 0x10];
        for v in [1f32, 2.0, 1.0, 2.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let t = parse_tensor(&b).unwrap();
        assert_eq!(
            t.to_vec::<num_complex::Complex<f32>>().unwrap(),
            vec![num_complex::Complex::new(1.0, 2.0); 2]
        );
        // int8 -1 from an (unpacked) int_val varint of 10 bytes.
        let mut b = vec![0x08, 0x06, 0x12, 0x00, 0x38];
        pb::put_varint(&mut b, -1i64 as u64);
        assert_eq!(parse_tensor(&b).unwrap().to_vec::<i8>().unwrap(), vec![-1]);
        // No values: zeros.
        let b = [0x08, 0x09, 0x12, 0x04, 0x12, 0x02, 0x08, 0x02];
        assert_eq!(
            parse_tensor(&b).unwrap().to_vec::<i64>().unwrap(),
            vec![0, 0]
        );
    }

    #[test]
    fn hostile_tensor_protos_are_errors() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],                                               // no dtype
            vec![0x08, 0x07, 0x12, 0x00],                         // string
            vec![0x08, 0x01, 0x12, 0x00, 0x22, 0x03, 1, 2, 3],    // wrong content size
            vec![0x08, 0x01, 0x12, 0x10],                         // shape runs past the end
            vec![0x08, 0x01, 0x22, 0xff, 0xff, 0xff, 0xff, 0x0f], // content length huge
            // shape [2^62, 4] with a few values: element count overflows
            {
                let mut b = vec![0x08, 0x01, 0x12, 0x10, 0x12, 0x0a, 0x08];
                pb::put_varint(&mut b, 1 << 62);
                b.extend_from_slice(&[0x12, 0x02, 0x08, 0x04]);
                b
            },
            // shape [2^40] from one value: a huge fill is refused, not allocated
            {
                let mut b = vec![0x08, 0x01, 0x12, 0x08, 0x12, 0x06, 0x08];
                pb::put_varint(&mut b, 1 << 40);
                b.extend_from_slice(&[0x2d, 0, 0, 0x80, 0x3f]);
                b
            },
            // more values than elements
            vec![0x08, 0x01, 0x12, 0x00, 0x2a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
            // packed fixed32 of 3 bytes
            vec![0x08, 0x01, 0x12, 0x00, 0x2a, 0x03, 0, 0, 0],
            // unknown rank
            vec![0x08, 0x01, 0x12, 0x02, 0x18, 0x01],
            // negative dimension (-1)
            {
                let mut b = vec![0x08, 0x01, 0x12, 0x0d, 0x12, 0x0b, 0x08];
                pb::put_varint(&mut b, -1i64 as u64);
                b
            },
            // group wire type
            vec![0x0b],
            // field number 0
            vec![0x00, 0x01],
        ];
        for (i, c) in cases.iter().enumerate() {
            assert!(parse_tensor(c).is_err(), "case {i} parsed: {c:?}");
        }
        // 65 dimensions
        let mut b = vec![0x08, 0x01, 0x12, 130, 1];
        for _ in 0..65 {
            b.extend_from_slice(&[0x12, 0x00]);
        }
        assert!(parse_tensor(&b)
            .unwrap_err()
            .to_string()
            .contains("dimensions"));
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let t = TensorView::from_slice(&[1u16, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
        let good = serialize_tensor(&t).unwrap();
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut rand = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..(rand() % 4 + 1) {
                let i = (rand() as usize) % b.len();
                b[i] = rand() as u8;
            }
            if rand() % 3 == 0 {
                b.truncate((rand() as usize) % b.len());
            }
            let _ = parse_tensor(&b);
            let _ = parse_example(&b);
            let n = (rand() % 40) as usize;
            let junk: Vec<u8> = (0..n).map(|_| rand() as u8).collect();
            let _ = parse_tensor(&junk);
            let _ = parse_example(&junk);
        }
    }

    fn sample() -> (Vec<u8>, Vec<i64>, Vec<f32>) {
        let images: Vec<u8> = (0..5 * 2 * 3).map(|i| i as u8).collect();
        let labels: Vec<i64> = (0..5).map(|i| i * 1000 - 2).collect();
        let weights: Vec<f32> = (0..5).map(|i| i as f32 / 4.0).collect();
        (images, labels, weights)
    }

    #[test]
    fn write_read_round_trip_plain_gzip_sharded() {
        let dir = tmpdir();
        let (images, labels, weights) = sample();
        let feats = [
            (
                "image",
                TensorView::from_slice(&images, &[5, 2, 3]).unwrap(),
            ),
            ("label", TensorView::from_slice(&labels, &[5]).unwrap()),
            ("weight", TensorView::from_slice(&weights, &[5, 1]).unwrap()),
        ];
        for (shards, gzip) in [(1, false), (1, true), (3, false), (5, true)] {
            let path = dir.path().join(format!("d{shards}{gzip}.tfrecord"));
            let paths = write_tfrecord(&path, &feats, shards, gzip).unwrap();
            assert_eq!(paths.len(), shards);
            if shards > 1 {
                assert!(paths[0]
                    .to_string_lossy()
                    .ends_with(&format!("-00000-of-{shards:05}.tfrecord")));
            }
            let mut k = 0;
            for p in &paths {
                for rec in read_tfrecord(p, gzip).unwrap() {
                    let rec = rec.unwrap();
                    let names: Vec<&str> = rec.iter().map(|(n, _)| n.as_str()).collect();
                    assert_eq!(names, ["image", "label", "weight"]);
                    assert_eq!(rec[0].1.shape(), &[2, 3]);
                    assert_eq!(rec[0].1.to_vec::<u8>().unwrap(), images[k * 6..k * 6 + 6]);
                    assert_eq!(rec[1].1.shape(), &[] as &[usize]);
                    assert_eq!(rec[1].1.to_vec::<i64>().unwrap(), vec![labels[k]]);
                    assert_eq!(rec[2].1.to_vec::<f32>().unwrap(), vec![weights[k]]);
                    k += 1;
                }
            }
            assert_eq!(k, 5);
            let stacked = read_tfrecord_stacked(&paths, gzip).unwrap();
            assert_eq!(stacked[0].1.shape(), &[5, 2, 3]);
            assert_eq!(stacked[0].1.to_vec::<u8>().unwrap(), images);
            assert_eq!(stacked[1].1.to_vec::<i64>().unwrap(), labels);
            // No temporary files left behind.
            let leftovers = std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with('.')
                })
                .count();
            assert_eq!(leftovers, 0);
        }
    }

    #[test]
    fn strided_input_and_bad_arguments() {
        let dir = tmpdir();
        let data: Vec<i16> = (0..12).collect();
        let t = Tensor::from_slice(&data, &[3, 4]).unwrap();
        let tt = t.permute(&[1, 0]).unwrap(); // shape [4, 3], not contiguous
        let path = dir.path().join("t.tfrecord");
        write_tfrecord(&path, &[("x", tt.view())], 1, false).unwrap();
        let rows: Vec<Vec<i16>> = read_tfrecord(&path, false)
            .unwrap()
            .map(|r| r.unwrap()[0].1.to_vec::<i16>().unwrap())
            .collect();
        assert_eq!(
            rows,
            vec![vec![0, 4, 8], vec![1, 5, 9], vec![2, 6, 10], vec![3, 7, 11]]
        );

        let a = TensorView::from_slice(&data, &[12]).unwrap();
        let b = TensorView::from_slice(&data, &[3, 4]).unwrap();
        let err = write_tfrecord(&path, &[("a", a.clone()), ("b", b)], 1, false).unwrap_err();
        assert!(
            err.to_string().contains("\"b\" has leading dimension 3"),
            "{err}"
        );
        assert!(write_tfrecord(&path, &[("a", a.clone())], 13, false).is_err());
        assert!(write_tfrecord(&path, &[("a", a.clone())], 0, false).is_err());
        assert!(write_tfrecord(&path, &[("a", a.clone()), ("a", a.clone())], 1, false).is_err());
        let s = TensorView::from_slice(&[1i16], &[]).unwrap();
        assert!(write_tfrecord(&path, &[("s", s)], 1, false).is_err());
        assert!(write_tfrecord(&path, &[], 1, false).is_err());
        let missing = dir.path().join("no/such/dir/x.tfrecord");
        assert!(matches!(
            write_tfrecord(&missing, &[("a", a)], 1, false),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn corrupt_records_name_file_and_record() {
        let dir = tmpdir();
        let (images, labels, _) = sample();
        let path = dir.path().join("c.tfrecord");
        let feats = [
            ("image", TensorView::from_slice(&images, &[5, 6]).unwrap()),
            ("label", TensorView::from_slice(&labels, &[5]).unwrap()),
        ];
        write_tfrecord(&path, &feats, 1, false).unwrap();
        let good = std::fs::read(&path).unwrap();
        let rec_len = good.len() / 5;
        let name = path.display().to_string();
        // Flip a data byte of record 3, then a length byte of record 2, then the data CRC.
        for (at, what) in [
            (3 * rec_len + 20, "data CRC mismatch"),
            (2 * rec_len + 1, "length CRC mismatch"),
            (2 * rec_len - 1, "data CRC mismatch"),
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let results: Vec<_> = read_tfrecord(&path, false).unwrap().collect();
            let err = results.last().unwrap().as_ref().unwrap_err().to_string();
            let record = at / rec_len;
            assert_eq!(results.len(), record + 1, "{err}");
            assert!(err.contains(&name), "{err}");
            assert!(err.contains(&format!("record {record} ")), "{err}");
            assert!(err.contains(what), "{err}");
        }
        // Truncated file, and a claimed length beyond the file.
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        let err = read_tfrecord(&path, false)
            .unwrap()
            .last()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("record 4"), "{err}");
        let mut huge = (u64::MAX - 3).to_le_bytes().to_vec();
        huge.extend_from_slice(&masked_crc32c(&huge).to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        let err = read_tfrecord(&path, false)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("bytes are left"), "{err}");
        // The same claim inside a gzip stream is read incrementally and found short.
        let gz = dir.path().join("h.tfrecord.gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(&huge).unwrap();
        enc.write_all(b"short").unwrap();
        enc.finish().unwrap();
        let err = read_tfrecord(&gz, true)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("truncated data (5 of"), "{err}");
        // A GZIP file read as plain gets a hint.
        let err = read_tfrecord(&gz, false)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("GZIP"), "{err}");
        // A valid frame around bytes that are not an Example.
        let mut frame = 3u64.to_le_bytes().to_vec();
        frame.extend_from_slice(&masked_crc32c(&frame).to_le_bytes());
        frame.extend_from_slice(&[0x0a, 0x05, 0x00]);
        frame.extend_from_slice(&masked_crc32c(&[0x0a, 0x05, 0x00]).to_le_bytes());
        std::fs::write(&path, &frame).unwrap();
        let err = read_tfrecord(&path, false)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("record 0"), "{err}");
        // Raw records of an empty file: none.
        std::fs::write(&path, b"").unwrap();
        assert_eq!(RecordReader::open(&path, false).unwrap().count(), 0);
    }

    #[test]
    fn mutated_files_never_panic() {
        let dir = tmpdir();
        let (images, labels, _) = sample();
        let feats = [
            ("image", TensorView::from_slice(&images, &[5, 6]).unwrap()),
            ("label", TensorView::from_slice(&labels, &[5]).unwrap()),
        ];
        let mut state = 99u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for gzip in [false, true] {
            let path = dir.path().join(format!("m{gzip}.tfrecord"));
            write_tfrecord(&path, &feats, 1, gzip).unwrap();
            let good = std::fs::read(&path).unwrap();
            for _ in 0..1000 {
                let mut bad = good.clone();
                for _ in 0..(rand() % 3 + 1) {
                    let i = (rand() as usize) % bad.len();
                    bad[i] = rand() as u8;
                }
                if rand() % 4 == 0 {
                    bad.truncate((rand() as usize) % bad.len());
                }
                std::fs::write(&path, &bad).unwrap();
                let results: Vec<_> = read_tfrecord(&path, gzip).unwrap().collect();
                // Only the last item can be an error.
                assert!(results.iter().rev().skip(1).all(|r| r.is_ok()));
            }
        }
    }

    #[test]
    fn float_and_int64_lists() {
        // Example{features{feature{key:"f" value{float_list{value:[1.5, 2]}}}
        //                  feature{key:"i" value{int64_list{value:[-3]}}}}}
        let mut fl = Vec::new();
        pb::put_len_header(&mut fl, 1, 8);
        fl.extend_from_slice(&1.5f32.to_le_bytes());
        fl.extend_from_slice(&2f32.to_le_bytes());
        let mut il = Vec::new();
        pb::put_tag(&mut il, 1, pb::VARINT);
        pb::put_varint(&mut il, -3i64 as u64);
        let entry = |name: &str, kind: u32, list: &[u8]| {
            let mut feature = Vec::new();
            pb::put_len_header(&mut feature, kind, list.len());
            feature.extend_from_slice(list);
            let mut e = Vec::new();
            pb::put_len_header(&mut e, 1, name.len());
            e.extend_from_slice(name.as_bytes());
            pb::put_len_header(&mut e, 2, feature.len());
            e.extend_from_slice(&feature);
            let mut out = Vec::new();
            pb::put_len_header(&mut out, 1, e.len());
            out.extend_from_slice(&e);
            out
        };
        let mut features = entry("f", 2, &fl);
        features.extend(entry("i", 3, &il));
        let mut ex = Vec::new();
        pb::put_len_header(&mut ex, 1, features.len());
        ex.extend_from_slice(&features);
        let parsed = parse_example(&ex).unwrap();
        assert_eq!(parsed[0].1.to_vec::<f32>().unwrap(), vec![1.5, 2.0]);
        assert_eq!(parsed[1].1.to_vec::<i64>().unwrap(), vec![-3]);
    }

    #[test]
    fn parallel_gzip_is_one_valid_member() {
        let mut state = 7u64;
        let data: Vec<u8> = (0..5_300_000u32)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 3 == 0 {
                    state as u8
                } else {
                    (i / 1000) as u8
                }
            })
            .collect();
        for len in [0, 1, GZ_CHUNK - 1, GZ_CHUNK + 1, data.len()] {
            let mut w = ParallelGz::new(Vec::new(), flate2::Compression::default()).unwrap();
            for piece in data[..len].chunks(77_777) {
                w.write_all(piece).unwrap();
            }
            let gz = w.finish().unwrap();
            // A single-member decoder (not MultiGzDecoder) reads it all, checking CRC and size.
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, &data[..len]);
        }
    }

    #[test]
    fn shard_names() {
        let p = shard_paths("/x/out.tfrecord.gz", 4).unwrap();
        assert_eq!(p[3], PathBuf::from("/x/out-00003-of-00004.tfrecord.gz"));
        let p = shard_paths("data", 2).unwrap();
        assert_eq!(p[0], PathBuf::from("data-00000-of-00002"));
        let p = shard_paths(".hidden", 2).unwrap();
        assert_eq!(p[1], PathBuf::from(".hidden-00001-of-00002"));
        assert_eq!(
            shard_paths("a.tfrecord", 1).unwrap(),
            [PathBuf::from("a.tfrecord")]
        );
    }
}
