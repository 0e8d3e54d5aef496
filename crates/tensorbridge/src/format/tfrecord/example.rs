//! `tf.train.Example` records: features holding a serialized tensor, a
//! `float_list`, an `int64_list`, or raw bytes (a `bytes_list`).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

use super::proto::pb::{self, Decoder, Value};
use super::proto::{each_scalar, parse_tensor_proto, store_part};
use super::require_little_endian;

/// One feature of a `tf.train.Example`.
#[derive(Clone, Debug)]
pub enum Feature {
    /// A tensor: the one value of a `bytes_list` that is a serialized `TensorProto`
    /// (what [`write_tfrecord`](super::write_tfrecord) and `tf.io.serialize_tensor`
    /// write), or a `float_list` / `int64_list` as a 1-d float32 / int64 tensor.
    Tensor(Tensor),
    /// The values of any other `bytes_list` (encoded images, strings, ...), in order.
    Bytes(Vec<Vec<u8>>),
}

impl Feature {
    /// The tensor, if the feature is one.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Feature::Tensor(t) => Some(t),
            Feature::Bytes(_) => None,
        }
    }

    /// The tensor, if the feature is one.
    pub fn into_tensor(self) -> Option<Tensor> {
        match self {
            Feature::Tensor(t) => Some(t),
            Feature::Bytes(_) => None,
        }
    }

    /// The byte strings, if the feature is a `bytes_list` of them.
    pub fn as_bytes_list(&self) -> Option<&[Vec<u8>]> {
        match self {
            Feature::Tensor(_) => None,
            Feature::Bytes(b) => Some(b),
        }
    }
}

/// Parse a serialized `tf.train.Example` into `(name, feature)` pairs, in the order
/// the features appear (a repeated name keeps its last value, as in protobuf).
///
/// A `bytes_list` holding exactly one value that begins as a `TensorProto` does —
/// the `dtype` field, then the `tensor_shape` field, as `tf.io.serialize_tensor`
/// writes them — is parsed as that tensor (and an invalid one is an error); any
/// other `bytes_list` comes back as its byte strings ([`Feature::Bytes`]).
pub fn parse_example(bytes: &[u8]) -> Result<Vec<(String, Feature)>> {
    require_little_endian()?;
    parse_example_inner(bytes)
        .map_err(|reason| Error::InvalidArgument(format!("invalid tf.train.Example: {reason}")))
}

pub(super) fn parse_example_inner(
    bytes: &[u8],
) -> std::result::Result<Vec<(String, Feature)>, String> {
    let mut out: Vec<(String, Feature)> = Vec::new();
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
            let (name, feature) = parse_feature_entry(entry)?;
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = feature,
                None => out.push((name, feature)),
            }
        }
    }
    Ok(out)
}

fn parse_feature_entry(entry: &[u8]) -> std::result::Result<(String, Feature), String> {
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

fn parse_feature(feature: &[u8]) -> std::result::Result<Feature, String> {
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
            if let [Value::Bytes(b)] = values[..] {
                if begins_as_tensor_proto(b) {
                    return parse_tensor_proto(b).map(Feature::Tensor);
                }
            }
            values
                .iter()
                .map(|v| match v {
                    Value::Bytes(b) => Ok(b.to_vec()),
                    _ => Err("a bytes_list value is not length-delimited".to_string()),
                })
                .collect::<std::result::Result<_, _>>()
                .map(Feature::Bytes)
        }
        2 => scalar_list(&values, pb::FIXED32, DType::Float32).map(Feature::Tensor),
        _ => scalar_list(&values, pb::VARINT, DType::Int64).map(Feature::Tensor),
    }
}

/// Whether `b` starts as `tf.io.serialize_tensor` output does: field 1 (`dtype`, a
/// varint), then field 2 (`tensor_shape`, length-delimited). Encoded images and
/// text never do (a JPEG starts `\xff`, a PNG `\x89`, text with a letter).
fn begins_as_tensor_proto(b: &[u8]) -> bool {
    let mut d = Decoder::new(b);
    matches!(d.field(), Ok(Some((1, Value::Varint(_)))))
        && matches!(d.field(), Ok(Some((2, Value::Bytes(_)))))
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = |i: usize| parsed[i].1.as_tensor().unwrap().clone();
        assert_eq!(t(0).to_vec::<f32>().unwrap(), vec![1.5, 2.0]);
        assert_eq!(t(1).to_vec::<i64>().unwrap(), vec![-3]);
    }

    #[test]
    fn bytes_lists_are_bytes_unless_one_serialized_tensor() {
        let bytes_list = |values: &[&[u8]]| {
            let mut list = Vec::new();
            for v in values {
                pb::put_len_header(&mut list, 1, v.len());
                list.extend_from_slice(v);
            }
            let mut feature = Vec::new();
            pb::put_len_header(&mut feature, 1, list.len());
            feature.extend_from_slice(&list);
            feature
        };
        let jpeg: &[u8] = b"\xff\xd8\xff\xe0 not really a jpeg";
        for values in [vec![jpeg], vec![&b"cat"[..], b"", b"dog"], vec![]] {
            let f = parse_feature(&bytes_list(&values)).unwrap();
            let got: Vec<&[u8]> = f
                .as_bytes_list()
                .unwrap()
                .iter()
                .map(Vec::as_slice)
                .collect();
            assert_eq!(got, values);
        }
        let t = crate::view::TensorView::from_slice(&[1i32, 2], &[2]).unwrap();
        let proto = super::super::serialize_tensor(&t).unwrap();
        let f = parse_feature(&bytes_list(&[&proto])).unwrap();
        assert_eq!(f.into_tensor().unwrap().to_vec::<i32>().unwrap(), [1, 2]);
        // Two serialized tensors are two byte strings (as TensorFlow sees them).
        let f = parse_feature(&bytes_list(&[&proto, &proto])).unwrap();
        assert_eq!(f.as_bytes_list().unwrap().len(), 2);
        // A serialized tensor that is invalid stays an error.
        let bad = [0x08, 0x01, 0x12, 0x00, 0x22, 0x03, 1, 2, 3];
        assert!(parse_feature(&bytes_list(&[&bad])).is_err());
    }
}
