//! TFRecord framing: each record is its length (little-endian `u64`), the masked
//! CRC32C of those 8 bytes, the data, and the masked CRC32C of the data. Reading
//! checks both CRCs of every record; [`ExampleReader`] parses each record's
//! `tf.train.Example`.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::dtype::Casting;
use crate::error::{Error, Result};
use crate::format::io::{read_full, stream_err};
use crate::location::{Location, ObjectStream, RemoteObject};
use crate::tensor::Tensor;
use crate::view::TensorView;

use super::example::{parse_example_inner, Feature};
use super::require_little_endian;

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

/// A read error: corrupt compressed data is a format error, anything else I/O.
fn io_error(path: &str, e: io::Error) -> Error {
    stream_err(path, "corrupt compressed data: ", e)
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

    /// Open a TFRecord file or object: a URL is streamed in order with read-ahead
    /// (ranged GETs of a few MiB in flight ahead of the reader).
    pub fn open_location(loc: &Location, gzip: bool) -> Result<RecordReader> {
        let r = match loc {
            Location::Local(p) => return Self::open(p, gzip),
            Location::Remote(r) => r,
        };
        let obj = RemoteObject::open(r)?;
        let len = obj.size();
        let buffered = BufReader::with_capacity(1 << 16, ObjectStream::whole(&obj)?);
        let (reader, remaining): (Box<dyn Read + Send>, _) = if gzip {
            (Box::new(flate2::read::MultiGzDecoder::new(buffered)), None)
        } else {
            (Box::new(buffered), Some(len))
        };
        Ok(RecordReader {
            path: r.as_str().to_string(),
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
        read_full(&mut self.reader, buf).map_err(|e| io_error(&self.path, e))
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

/// Reads a TFRecord file of `tf.train.Example` records: one `(name, feature)` list
/// per record (see [`parse_example`](super::parse_example) for what a feature is). Errors name the file and the record (from 0).
pub struct ExampleReader {
    records: RecordReader,
}

impl ExampleReader {
    /// The next record's features, `None` at the end of the file.
    pub fn next_example(&mut self) -> Result<Option<Vec<(String, Feature)>>> {
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
    type Item = Result<Vec<(String, Feature)>>;
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

/// [`read_tfrecord`] of a location (a URL is streamed with read-ahead).
pub fn read_tfrecord_location(loc: &Location, gzip: bool) -> Result<ExampleReader> {
    require_little_endian()?;
    Ok(ExampleReader {
        records: RecordReader::open_location(loc, gzip)?,
    })
}

/// Read every record of `paths` (in order) and stack each feature along a new
/// axis 0 — the inverse of [`write_tfrecord`](super::write_tfrecord). Every record
/// must have the same features, all tensors (not raw `bytes_list`s), with the same
/// dtypes and shapes.
pub fn read_tfrecord_stacked<P: AsRef<Path>>(
    paths: &[P],
    gzip: bool,
) -> Result<Vec<(String, Tensor)>> {
    let locs: Vec<Location> = paths.iter().map(Location::local).collect();
    read_tfrecord_stacked_locations(&locs, gzip)
}

/// [`read_tfrecord_stacked`] of locations (URLs streamed with read-ahead).
pub fn read_tfrecord_stacked_locations(
    paths: &[Location],
    gzip: bool,
) -> Result<Vec<(String, Tensor)>> {
    let mut names: Vec<String> = Vec::new();
    let mut columns: Vec<Vec<Tensor>> = Vec::new();
    let mut first: Option<String> = None;
    for path in paths {
        let mut reader = read_tfrecord_location(path, gzip)?;
        loop {
            let index = reader.records.index;
            let Some(record) = reader.next_example()? else {
                break;
            };
            let mismatch = |reason: String| Error::Format {
                path: reader.path().to_string(),
                reason: format!("record {index}: {reason}"),
            };
            let record = record
                .into_iter()
                .map(|(name, f)| match f {
                    Feature::Tensor(t) => Ok((name, t)),
                    Feature::Bytes(_) => Err(mismatch(format!(
                        "feature {name:?} is a bytes_list of raw byte strings, not a tensor"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
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
                .map(|p| p.display())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tfrecord::{sample, write_tfrecord};
    use std::io::Write;

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
}
