//! Writing TFRecord files of `tf.train.Example` records, one per slice along axis 0,
//! each feature's slice serialized as `tf.io.serialize_tensor` would; sharded and
//! GZIP-compressed on request.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::gzip::ParallelGz;
use crate::format::Elements;
use crate::location::{Location, Sink};
use crate::view::{checked_numel, TensorView};

use super::proto::{pb, tensor_proto_prefix};
use super::record::{mask_crc, masked_crc32c};
use super::require_little_endian;

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

/// [`shard_paths`] for a location: for a URL, the same names beside the object.
pub fn shard_locations(loc: &Location, shards: usize) -> Result<Vec<Location>> {
    match loc {
        Location::Local(p) => Ok(shard_paths(p, shards)?
            .into_iter()
            .map(Location::Local)
            .collect()),
        Location::Remote(r) => {
            let names = shard_paths(Path::new(r.file_name()), shards)?;
            names
                .iter()
                .map(|n| {
                    let n = n.to_str().ok_or_else(|| {
                        Error::InvalidArgument(format!("{r}: shard name not in UTF-8"))
                    })?;
                    Ok(Location::Remote(r.sibling(n)?))
                })
                .collect()
        }
    }
}

/// One feature ready to stream: its message header (everything before the
/// tensor's bytes in the record) and the elements of all rows.
struct Column<'a> {
    header: Vec<u8>,
    elements: Elements<'a>,
    row: usize,
}

/// Write `f`'s output to a new [`Sink`] for `dest` (a local [`AtomicFile`](crate::format::AtomicFile)
/// or an upload), GZIP-compressed or not; the caller commits it.
fn write_file(
    dest: &Location,
    gzip: bool,
    f: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<Sink> {
    let name = dest.display();
    let file = Sink::create(dest, false)?;
    let io = |e| crate::format::io::core_or_io(e, &name);
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
    let locs = write_tfrecord_location(&Location::local(path), features, shards, gzip)?;
    Ok(locs
        .into_iter()
        .filter_map(|l| l.as_local().map(Path::to_path_buf))
        .collect())
}

/// [`write_tfrecord`] to a location: for a URL, every shard is a multipart upload,
/// all completed only once every shard is written (an error aborts them all).
/// Returns the locations written.
pub fn write_tfrecord_location(
    path: &Location,
    features: &[(&str, TensorView<'_>)],
    shards: usize,
    gzip: bool,
) -> Result<Vec<Location>> {
    require_little_endian()?;
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
    let paths = shard_locations(path, shards)?;

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
    // dropped sinks remove their temporary files (or abort their uploads).
    let files: Vec<Sink> = (0..shards)
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tfrecord::{read_tfrecord, read_tfrecord_stacked, sample};
    use crate::tensor::Tensor;

    fn tmpdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
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
                    let rec: Vec<(String, Tensor)> = rec
                        .unwrap()
                        .into_iter()
                        .map(|(n, f)| (n, f.into_tensor().unwrap()))
                        .collect();
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
            .map(|r| {
                r.unwrap()[0]
                    .1
                    .as_tensor()
                    .unwrap()
                    .to_vec::<i16>()
                    .unwrap()
            })
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
