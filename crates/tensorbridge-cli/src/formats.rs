//! The one place that knows file formats: what an extension means, how to list the
//! arrays of an input, how to stream an input's elements, and how to write an output.
//!
//! Adding a format (`.safetensors`, `.tfrecord`, ...) means adding a [`Format`]
//! variant, its extension in [`Format::of`], and an [`Input`] and/or [`Output`]
//! implementation returned by [`open_input`] / [`create_output`].
//!
//! `.npy`/`.npz` stream in bounded memory; `.safetensors` and `.tfrecord` do not:
//! an input is loaded whole (a safetensors file memory-mapped) and an output holds
//! every array in memory until it is written at commit.

use std::io::Read;
use std::path::{Path, PathBuf};

use tensorbridge::format::npy::{self, NpyHeader, NpyReader, NpyWriter};
use tensorbridge::format::npz::{NpzArchive, NpzWriter};
use tensorbridge::format::{safetensors, tfrecord, AtomicFile};
use tensorbridge::view::contiguous_strides;
use tensorbridge::{ByteOrder, DType, Error, Tensor, TensorView};

use crate::CliError;

/// A file format, known by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// NumPy `.npy`: one array.
    Npy,
    /// NumPy `.npz`: a zip archive of named arrays.
    Npz,
    /// Hugging Face `.safetensors`: named arrays.
    Safetensors,
    /// TFRecord of `tf.train.Example`s: record `i` holds row `i` of every array.
    Tfrecord,
}

/// How to read or write a file, beyond its extension.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Deflate `.npz` members.
    pub compress: bool,
    /// `.tfrecord`: how many shard files (`out-00000-of-00004.tfrecord`, ...); 1 (or
    /// 0) for the file itself.
    pub shards: usize,
    /// `.tfrecord`: gzip-compressed files.
    pub gzip: bool,
}

impl Format {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<Format, CliError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("npy") => Ok(Format::Npy),
            Some("npz") => Ok(Format::Npz),
            Some("safetensors") => Ok(Format::Safetensors),
            Some("tfrecord") => Ok(Format::Tfrecord),
            _ => Err(CliError::new(
                path,
                "unknown file type (expected a .npy, .npz, .safetensors or .tfrecord extension)",
            )),
        }
    }

    /// How many arrays a file holds: exactly this many, or any number (`None`).
    pub fn arrays_per_file(self) -> Option<usize> {
        match self {
            Format::Npy => Some(1),
            Format::Npz | Format::Safetensors | Format::Tfrecord => None,
        }
    }

    /// Short name for output.
    pub fn name(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Safetensors => "safetensors",
            Format::Tfrecord => "tfrecord",
        }
    }
}

/// What `inspect` shows of one array, and what `convert` needs to stream it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ArrayInfo {
    /// The array's name (a member, tensor or feature name; the file stem for an `.npy`).
    pub name: String,
    /// The element type's name (`"float32"`), or the raw descr when it has none (`"V2"`).
    pub dtype: String,
    /// The dtype as the file spells it (`"<f4"`).
    pub descr: String,
    /// The dimensions.
    pub shape: Vec<usize>,
    /// `"C"` or `"F"`.
    pub order: &'static str,
    /// Bytes of element data.
    pub bytes: u64,
    /// For an `.npz` member: `"stored"` or `"deflated"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// For an `.npz` member: bytes it occupies in the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressed_size: Option<u64>,
    /// Offset of the element data in the file, where it lies uncompressed in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_offset: Option<u64>,
    /// The parsed header (not shown as such).
    #[serde(skip)]
    pub header: NpyHeader,
    /// How errors name the array: `file` or `file:name`.
    #[serde(skip)]
    pub label: String,
}

impl ArrayInfo {
    fn from_header(name: String, label: String, header: NpyHeader) -> ArrayInfo {
        ArrayInfo {
            label,
            name,
            dtype: header.dtype.map_or_else(
                || {
                    header
                        .descr
                        .trim_start_matches(['<', '>', '|', '='])
                        .to_string()
                },
                |d| d.name().to_string(),
            ),
            descr: header.descr.clone(),
            shape: header.shape.clone(),
            order: if header.fortran_order { "F" } else { "C" },
            bytes: header.data_len() as u64,
            compression: None,
            compressed_size: None,
            data_offset: Some(header.data_offset as u64),
            header,
        }
    }
}

/// A chunked reader of one array's element bytes, in file order and byte order.
pub trait ElementStream {
    /// The next whole elements into `buf`; empty at the end.
    fn read_chunk<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], Error>;
}

impl<R: Read> ElementStream for NpyReader<R> {
    fn read_chunk<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
        NpyReader::read_chunk(self, buf)
    }
}

/// An input file: its arrays, and a stream of each one's elements.
pub trait Input {
    /// The arrays, in file order (headers only).
    fn arrays(&self) -> Result<Vec<ArrayInfo>, Error>;
    /// Stream the elements of array `name`.
    fn stream(&self, name: &str) -> Result<Box<dyn ElementStream + '_>, Error>;
}

/// An output file being written: arrays one after another, then committed. Dropping
/// it uncommitted leaves nothing behind.
pub trait Output {
    /// Begin array `name`; its elements follow in file order (C, or Fortran).
    fn begin(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        fortran: bool,
    ) -> Result<(), Error>;
    /// Append native-order element bytes to the current array.
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error>;
    /// Finish the file and move it to its name.
    fn commit(self: Box<Self>) -> Result<(), Error>;
}

/// Open `path` for reading, as its extension says (a `.tfrecord` input is read as
/// `opts.shards` shards, gzipped if `opts.gzip`).
pub fn open_input(path: &Path, opts: Options) -> Result<Box<dyn Input>, CliError> {
    let fmt = Format::of(path)?;
    let label = |e: Error| CliError::from_error(e, path);
    Ok(match fmt {
        Format::Npy => {
            // Read the header now so a bad file fails before any output exists.
            let reader = npy::open(path).map_err(label)?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "arr_0".into());
            Box::new(NpyInput {
                path: path.to_path_buf(),
                info: ArrayInfo::from_header(
                    stem,
                    path.display().to_string(),
                    reader.header().clone(),
                ),
            })
        }
        Format::Npz => Box::new(NpzInput(NpzArchive::open(path).map_err(label)?)),
        Format::Safetensors => Box::new(LoadedInput::new(
            path,
            safetensors::load_safetensors(path).map_err(label)?,
        )?),
        Format::Tfrecord => {
            let paths = tfrecord::shard_paths(path, opts.shards.max(1)).map_err(label)?;
            Box::new(LoadedInput::new(
                path,
                tfrecord::read_tfrecord_stacked(&paths, opts.gzip).map_err(label)?,
            )?)
        }
    })
}

/// Create `path` for writing, as its extension says (nothing appears under its name
/// until commit).
pub fn create_output(path: &Path, opts: Options) -> Result<Box<dyn Output>, CliError> {
    let fmt = Format::of(path)?;
    let label = |e: Error| CliError::from_error(e, path);
    let file = || AtomicFile::create(path).map_err(label);
    Ok(match fmt {
        Format::Npy => Box::new(NpyOutput {
            file: Some(file()?),
            writer: None,
            name: path.display().to_string(),
        }),
        Format::Npz => Box::new(NpzOutput {
            writer: NpzWriter::new(file()?, opts.compress),
            name: path.display().to_string(),
        }),
        Format::Safetensors | Format::Tfrecord => Box::new(CollectOutput {
            path: path.to_path_buf(),
            format: fmt,
            opts,
            arrays: Vec::new(),
        }),
    })
}

/// The arrays of `path`, headers only.
pub fn inspect(path: &Path) -> Result<(Format, Vec<ArrayInfo>), CliError> {
    let fmt = Format::of(path)?;
    Ok((
        fmt,
        open_input(path, Options::default())?
            .arrays()
            .map_err(|e| CliError::from_error(e, path))?,
    ))
}

struct NpyInput {
    path: std::path::PathBuf,
    info: ArrayInfo,
}

impl Input for NpyInput {
    fn arrays(&self) -> Result<Vec<ArrayInfo>, Error> {
        Ok(vec![self.info.clone()])
    }
    fn stream(&self, _name: &str) -> Result<Box<dyn ElementStream + '_>, Error> {
        Ok(Box::new(npy::open(&self.path)?))
    }
}

struct NpzInput(NpzArchive);

impl Input for NpzInput {
    fn arrays(&self) -> Result<Vec<ArrayInfo>, Error> {
        let z = &self.0;
        z.members()
            .iter()
            .map(|m| {
                let label = format!("{}:{}", z.path(), m.name);
                let header = z.header(&m.name)?;
                if header.data_offset as u64 + header.data_len() as u64 > m.size {
                    return Err(Error::Format {
                        path: label,
                        reason: format!(
                            "truncated data: the header describes {} bytes of data but the member holds {}",
                            header.data_len(),
                            m.size.saturating_sub(header.data_offset as u64)
                        ),
                    });
                }
                let stored = m.compression == tensorbridge::format::npz::Compression::Stored;
                let mut info = ArrayInfo::from_header(m.name.clone(), label, header);
                info.data_offset = stored.then(|| m.data_start + info.header.data_offset as u64);
                info.compression = Some(m.compression.name().to_string());
                info.compressed_size = Some(m.compressed_size);
                Ok(info)
            })
            .collect()
    }
    fn stream(&self, name: &str) -> Result<Box<dyn ElementStream + '_>, Error> {
        Ok(Box::new(self.0.reader(name)?))
    }
}

struct NpyOutput {
    file: Option<AtomicFile>,
    writer: Option<NpyWriter<AtomicFile>>,
    name: String,
}

fn relabel(e: Error, name: &str) -> Error {
    match e {
        Error::Io { source, .. } => Error::Io {
            path: name.to_string(),
            source,
        },
        e => e,
    }
}

impl Output for NpyOutput {
    fn begin(
        &mut self,
        _name: &str,
        dtype: DType,
        shape: &[usize],
        fortran: bool,
    ) -> Result<(), Error> {
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::InvalidArgument("a .npy file holds one array".into()))?;
        self.writer =
            Some(NpyWriter::new(file, dtype, shape, fortran).map_err(|e| relabel(e, &self.name))?);
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("no array begun".into()))?;
        w.write_bytes(bytes).map_err(|e| relabel(e, &self.name))
    }
    fn commit(self: Box<Self>) -> Result<(), Error> {
        let w = self
            .writer
            .ok_or_else(|| Error::InvalidArgument("no array written".into()))?;
        w.finish().map_err(|e| relabel(e, &self.name))?.commit()
    }
}

struct NpzOutput {
    writer: NpzWriter<AtomicFile>,
    name: String,
}

impl Output for NpzOutput {
    fn begin(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        fortran: bool,
    ) -> Result<(), Error> {
        self.writer
            .start_member(name, dtype, shape, fortran)
            .map_err(|e| relabel(e, &self.name))
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.writer
            .write_bytes(bytes)
            .map_err(|e| relabel(e, &self.name))
    }
    fn commit(self: Box<Self>) -> Result<(), Error> {
        let name = self.name;
        self.writer
            .finish()
            .map_err(|e| relabel(e, &name))?
            .commit()
    }
}

/// A file loaded whole (`.safetensors`, `.tfrecord`): C-contiguous tensors.
struct LoadedInput {
    path: String,
    tensors: Vec<(String, Tensor)>,
}

impl LoadedInput {
    fn new(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<LoadedInput, CliError> {
        let tensors = tensors
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_contiguous()?)))
            .collect::<Result<_, Error>>()
            .map_err(|e| CliError::from_error(e, path))?;
        Ok(LoadedInput {
            path: path.display().to_string(),
            tensors,
        })
    }
}

impl Input for LoadedInput {
    fn arrays(&self) -> Result<Vec<ArrayInfo>, Error> {
        self.tensors
            .iter()
            .map(|(name, t)| {
                let label = format!("{}:{name}", self.path);
                let header = NpyHeader::new(t.dtype(), t.shape(), false)?;
                let mut info = ArrayInfo::from_header(name.clone(), label, header);
                info.data_offset = None;
                Ok(info)
            })
            .collect()
    }
    fn stream(&self, name: &str) -> Result<Box<dyn ElementStream + '_>, Error> {
        let (_, t) = self
            .tensors
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::Format {
                path: self.path.clone(),
                reason: format!("no array named {name:?}"),
            })?;
        Ok(Box::new(SliceStream {
            bytes: t.as_bytes().unwrap_or(&[]),
            itemsize: t.dtype().size(),
        }))
    }
}

/// The elements of an in-memory array, a chunk at a time.
struct SliceStream<'a> {
    bytes: &'a [u8],
    itemsize: usize,
}

impl ElementStream for SliceStream<'_> {
    fn read_chunk<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
        let n = self
            .bytes
            .len()
            .min(buf.len() / self.itemsize * self.itemsize);
        if n == 0 && !self.bytes.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "a {}-byte buffer cannot hold one element",
                buf.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        buf[..n].copy_from_slice(head);
        self.bytes = rest;
        Ok(&buf[..n])
    }
}

/// An array collected for a [`CollectOutput`].
struct Collected {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    fortran: bool,
    bytes: Vec<u8>,
}

/// A `.safetensors` or `.tfrecord` output: arrays gathered in memory, the file
/// written (atomically, by the core writers) at commit.
struct CollectOutput {
    path: PathBuf,
    format: Format,
    opts: Options,
    arrays: Vec<Collected>,
}

impl Output for CollectOutput {
    fn begin(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        fortran: bool,
    ) -> Result<(), Error> {
        if self.format == Format::Safetensors {
            // Fail before any data is read, not at commit.
            safetensors::safetensors_dtype(dtype).map_err(|e| {
                Error::InvalidArgument(format!("array {name:?} cannot be saved: {e}"))
            })?;
        }
        let len = NpyHeader::new(dtype, shape, fortran)?.data_len();
        self.arrays.push(Collected {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
            fortran,
            bytes: Vec::with_capacity(len),
        });
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.arrays
            .last_mut()
            .ok_or_else(|| Error::InvalidArgument("no array begun".into()))?
            .bytes
            .extend_from_slice(bytes);
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<(), Error> {
        // Fortran-order data gets Fortran strides; the writers copy it to C order.
        let views = self
            .arrays
            .iter()
            .map(|a| {
                let size = a.dtype.size();
                let strides = if a.fortran {
                    let rev: Vec<usize> = a.shape.iter().rev().copied().collect();
                    let mut s = contiguous_strides(&rev, size);
                    s.reverse();
                    s
                } else {
                    contiguous_strides(&a.shape, size)
                };
                let view = TensorView::new(
                    &a.bytes,
                    a.dtype,
                    a.shape.clone(),
                    strides,
                    0,
                    ByteOrder::NATIVE,
                )?;
                Ok((a.name.as_str(), view))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        match self.format {
            Format::Tfrecord => tfrecord::write_tfrecord(
                &self.path,
                &views,
                self.opts.shards.max(1),
                self.opts.gzip,
            )
            .map(drop),
            _ => safetensors::save_safetensors(&self.path, &views),
        }
    }
}

/// Whether elements in `order` must be byte-swapped (never for one-byte types).
pub fn swapped(dtype: DType, order: ByteOrder) -> bool {
    dtype.size() > 1 && order.is_swapped()
}
