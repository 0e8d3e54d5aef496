//! The protobuf wire format (the few pieces TensorFlow's messages need) and
//! `TensorProto`: the bytes `tf.io.serialize_tensor` makes, and their parsing
//! (including the typed repeated fields `tf.make_tensor_proto` uses).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::Elements;
use crate::tensor::Tensor;
use crate::view::{checked_numel, TensorView, MAX_NDIM};

use super::require_little_endian;

/// Most bytes [`parse_tensor`] produces by repeating values to fill a shape (the
/// input does not justify more).
pub const MAX_FILL_BYTES: usize = 16 << 20;

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

/// Protocol buffer wire format: the few pieces the TensorFlow messages need.
pub(crate) mod pb {
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

/// The bytes of a `TensorProto` that precede `tensor_content`'s payload.
pub(super) fn tensor_proto_prefix(dtype: DType, shape: &[usize], content_len: usize) -> Vec<u8> {
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
pub(super) fn each_scalar<'a>(
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
pub(super) fn store_part(dtype: DType, raw: u64, out: &mut [u8]) {
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

pub(super) fn parse_tensor_proto(bytes: &[u8]) -> std::result::Result<Tensor, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tfrecord::parse_example;

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
}
