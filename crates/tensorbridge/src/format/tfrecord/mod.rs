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
//! record's `Example` into `(name, Feature)` pairs: a `bytes_list` holding one
//! serialized tensor is that tensor, any other `bytes_list` (encoded images,
//! strings) its list of byte strings, and `float_list` / `int64_list` features 1-d
//! float32 / int64 tensors (see [`Feature`]). [`parse_tensor`] reads any
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
//!
//! # Where things are
//!
//! - [`proto`]: the protobuf wire format and `TensorProto` ([`serialize_tensor`],
//!   [`parse_tensor`]);
//! - [`example`]: `tf.train.Example` parsing ([`parse_example`], [`Feature`]);
//! - [`record`]: record framing and CRCs, [`RecordReader`], [`ExampleReader`],
//!   [`read_tfrecord`], [`read_tfrecord_stacked`];
//! - [`write`](mod@write): [`write_tfrecord`] and [`shard_paths`] (GZIP through
//!   `format::gzip`).

use crate::error::{Error, Result};

pub mod example;
pub mod proto;
pub mod record;
pub mod write;

pub use example::{parse_example, Feature};
pub use proto::{
    dtype_from_tf_enum, parse_tensor, serialize_tensor, tf_dtype_enum, MAX_FILL_BYTES,
};
pub use record::{
    mask_crc, masked_crc32c, read_tfrecord, read_tfrecord_location, read_tfrecord_stacked,
    read_tfrecord_stacked_locations, unmask_crc, ExampleReader, RecordReader,
};
pub use write::{shard_locations, shard_paths, write_tfrecord, write_tfrecord_location};

pub(crate) fn require_little_endian() -> Result<()> {
    if cfg!(target_endian = "big") {
        return Err(Error::InvalidArgument(
            "TFRecord tensors are little-endian; big-endian hosts are not supported".into(),
        ));
    }
    Ok(())
}

/// Test data shared by the reader and writer tests: 5 records of an image, a
/// label and a weight.
#[cfg(test)]
pub(crate) fn sample() -> (Vec<u8>, Vec<i64>, Vec<f32>) {
    let images: Vec<u8> = (0..5 * 2 * 3).map(|i| i as u8).collect();
    let labels: Vec<i64> = (0..5).map(|i| i * 1000 - 2).collect();
    let weights: Vec<f32> = (0..5).map(|i| i as f32 / 4.0).collect();
    (images, labels, weights)
}
