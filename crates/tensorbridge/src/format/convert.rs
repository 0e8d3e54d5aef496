//! Streaming conversion between file formats: what the `tensorbridge convert`
//! command and Python's `tb.convert_file` run, and `tensorbridge inspect`'s listing.
//!
//! [`convert_file`] (or [`plan`] then [`Conversion::run`], for a progress report)
//! reads the source's arrays and writes them to the destination, by format:
//! the source's by [`detect`](super::detect) (its first bytes, else its extension),
//! the destination's by its extension. `.npy` and `.npz` stream in bounded memory
//! (8 MiB chunks), converting byte order and casting ([`ConvertOptions::dtype`]) on
//! the way; `.safetensors` and `.tfrecord` are held in memory (a safetensors input
//! is memory-mapped). Fortran order is kept where the destination has it (`.npy`,
//! `.npz`); other destinations get C order.
//!
//! Everything that can be checked is checked before any output exists (formats,
//! members, dtypes and casting, the destination's capacity); the destination is
//! written under a temporary name and renamed once complete, so an error leaves
//! nothing behind. Every error names its file (`file` or `file:member`): I/O errors
//! as [`Error::Io`], dtype and casting refusals as themselves, everything else as
//! [`Error::Format`] — a checked cast's failing index is the index in the whole
//! array, not in a chunk.

use std::io::Read;
use std::path::Path;

use crate::cast::cast_into;
use crate::dtype::{ByteOrder, Casting, DType};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::view::{contiguous_strides, unravel, TensorView};

use super::io::relabel;
use super::npy::{self, NpyHeader, NpyReader, NpyWriter};
use super::npz::{Compression, NpzArchive, NpzWriter};
use super::{safetensors, tfrecord, unknown_format_label, FileFormat};
use crate::location::{Location, RemoteObject, Sink};

/// Bytes of input elements per streaming step.
const CHUNK_BYTES: usize = 8 << 20;

/// How to convert.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Element type of the output (default: the input's). A `'<V2'` input (NumPy's
    /// bfloat16) is copied as it is without one, or read as bfloat16 with bfloat16.
    pub dtype: Option<DType>,
    /// Casting mode for [`ConvertOptions::dtype`] (default: unsafe, as `astype`).
    pub casting: Casting,
    /// Convert only this array (an `.npz` member, a safetensors tensor, a TFRecord
    /// feature); needed for a one-array destination (`.npy`) when the source has
    /// several.
    pub member: Option<String>,
    /// Deflate the members of an `.npz` destination (as `np.savez_compressed`).
    pub compress: bool,
    /// A `.tfrecord` source or destination in this many shard files
    /// (`out-00000-of-00004.tfrecord`, ...); 1 for the file itself.
    pub shards: usize,
    /// A `.tfrecord` source or destination is GZIP-compressed.
    pub gzip: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            dtype: None,
            casting: Casting::Unsafe,
            member: None,
            compress: false,
            shards: 1,
            gzip: false,
        }
    }
}

/// How many arrays a file of `fmt` holds: exactly this many, or any number (`None`).
pub fn arrays_per_file(fmt: FileFormat) -> Option<usize> {
    match fmt {
        FileFormat::Npy => Some(1),
        FileFormat::Npz | FileFormat::Safetensors | FileFormat::Tfrecord => None,
    }
}

/// An error of the array or file `label`, saying where: errors that name no file
/// become [`Error::Format`] for `label` — except dtype and casting refusals (a
/// `TypeError` in Python) and allocation failures, which keep their kind.
fn in_file(e: Error, label: &str) -> Error {
    match e {
        Error::Io { .. }
        | Error::Format { .. }
        | Error::CastNotAllowed { .. }
        | Error::UnknownDType(_)
        | Error::NotFound { .. }
        | Error::PermissionDenied { .. }
        | Error::ObjectChanged { .. }
        | Error::Remote { .. }
        | Error::UnsupportedScheme { .. }
        | Error::Interrupted
        | Error::Alloc(_) => e,
        e => Error::Format {
            path: label.to_string(),
            reason: e.to_string(),
        },
    }
}

/// One array to convert: what it is, the dtype its bytes are read as, and the
/// dtype written.
struct Planned {
    info: ArrayInfo,
    stored: DType,
    to: DType,
}

/// A checked conversion, ready to run: the source is open and every array's
/// conversion has been checked; nothing has been written.
pub struct Conversion {
    input: Box<dyn Input>,
    src: String,
    dst: Location,
    dst_format: FileFormat,
    opts: ConvertOptions,
    plan: Vec<Planned>,
}

impl std::fmt::Debug for Conversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversion")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("arrays", &self.plan.len())
            .finish()
    }
}

/// Open `src`, check everything about converting it to `dst` that can be checked
/// before writing (see the [module documentation](self)), and return the
/// conversion to run.
pub fn plan(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    opts: &ConvertOptions,
) -> Result<Conversion> {
    plan_locations(&Location::local(src), &Location::local(dst), opts)
}

/// [`plan`] for locations: either side may be an object of a store (the source read
/// by ranges, the destination written with a multipart upload completed at the end).
pub fn plan_locations(src: &Location, dst: &Location, opts: &ConvertOptions) -> Result<Conversion> {
    let src_label = src.display();
    let in_fmt = super::detect_location(src).ok_or_else(|| unknown_format_label(&src_label))?;
    let out_fmt = super::ext_format(dst).ok_or_else(|| unknown_format_label(&dst.display()))?;
    if opts.shards == 0 {
        return Err(Error::InvalidArgument("shards must be at least 1".into()));
    }
    if (opts.shards > 1 || opts.gzip)
        && in_fmt != FileFormat::Tfrecord
        && out_fmt != FileFormat::Tfrecord
    {
        return Err(Error::InvalidArgument(format!(
            "shards and gzip apply only to a .tfrecord source or destination, not .{in_fmt} → .{out_fmt}"
        )));
    }
    let (shards, gzip) = if in_fmt == FileFormat::Tfrecord {
        (opts.shards, opts.gzip)
    } else {
        (1, false)
    };
    let input = open_input(src, in_fmt, shards, gzip).map_err(|e| in_file(e, &src_label))?;
    let mut arrays = input.arrays().map_err(|e| in_file(e, &src_label))?;
    if let Some(m) = &opts.member {
        arrays.retain(|x| &x.name == m);
        if arrays.is_empty() {
            return Err(Error::Format {
                path: src_label,
                reason: format!("no array named {m:?}"),
            });
        }
    }
    let mut plan = Vec::with_capacity(arrays.len());
    for info in arrays {
        // A '<V2' array (NumPy's bfloat16) is two raw bytes: copied as they are (and
        // written as '<V2' again), or read as bfloat16 when bfloat16 is asked for.
        // Casting it to anything else would be a guess.
        let stored = match (info.header.dtype, opts.dtype) {
            (Some(d), _) => d,
            (None, None) | (None, Some(DType::BFloat16)) => DType::BFloat16,
            (None, Some(_)) => {
                return Err(Error::Format {
                    path: info.label.clone(),
                    reason: format!(
                        "descr '{}' is two raw bytes (how NumPy saves ml_dtypes.bfloat16): \
                         read it as bfloat16 with dtype bfloat16 (--dtype bfloat16 on the \
                         command line), or convert without a dtype to copy it as it is",
                        info.header.descr
                    ),
                })
            }
        };
        let to = opts.dtype.unwrap_or(stored);
        stored.check_cast(to, opts.casting)?;
        plan.push(Planned { info, stored, to });
    }
    if let Some(n) = arrays_per_file(out_fmt) {
        if plan.len() != n {
            return Err(Error::Format {
                path: src_label,
                reason: format!(
                    "has {} arrays but a .{out_fmt} file holds {n}; choose one with member \
                     (--member on the command line)",
                    plan.len(),
                ),
            });
        }
    }
    Ok(Conversion {
        input,
        src: src_label,
        dst: dst.clone(),
        dst_format: out_fmt,
        opts: opts.clone(),
        plan,
    })
}

impl Conversion {
    /// Bytes of element data to read from the source (for a progress report).
    pub fn total_bytes(&self) -> u64 {
        self.plan.iter().map(|p| p.info.bytes).sum()
    }

    /// The arrays to convert, in order.
    pub fn arrays(&self) -> impl Iterator<Item = &ArrayInfo> {
        self.plan.iter().map(|p| &p.info)
    }

    /// Write the destination, calling `progress` with the number of source bytes
    /// each step has converted. On error nothing is left under the destination's
    /// name (and an existing file there keeps its content).
    pub fn run(self, progress: &mut dyn FnMut(u64)) -> Result<()> {
        let dst_label = self.dst.display();
        let out_err = |e: Error| in_file(e, &dst_label);
        let mut output = create_output(&self.dst, self.dst_format, &self.opts).map_err(out_err)?;
        let mut inbuf = vec![0u64; CHUNK_BYTES / 8];
        let mut outbuf: Vec<u64> = Vec::new();
        for Planned { info, stored, to } in &self.plan {
            let (stored, to) = (*stored, *to);
            let header = &info.header;
            let in_err = |e: Error| in_file(e, &info.label);
            output
                .begin(&info.name, to, &header.shape, header.fortran_order)
                .map_err(out_err)?;
            let mut stream = self.input.stream(&info.name).map_err(in_err)?;
            let mut done = 0usize; // elements
            loop {
                let chunk = stream
                    .read_chunk(bytemuck::cast_slice_mut(&mut inbuf))
                    .map_err(in_err)?;
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len() / stored.size();
                if stored == to && !swapped(stored, header.byte_order) {
                    output.write(chunk).map_err(out_err)?;
                } else {
                    let view = TensorView::new(
                        chunk,
                        stored,
                        vec![n],
                        vec![stored.size() as isize],
                        0,
                        header.byte_order,
                    )
                    .map_err(in_err)?;
                    let need = n * to.size();
                    if outbuf.len() * 8 < need {
                        outbuf.resize(need.div_ceil(8), 0);
                    }
                    let dst = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut outbuf)[..need];
                    cast_into(&view, to, self.opts.casting, dst)
                        .map_err(|e| in_err(globalize(e, done, header)))?;
                    output.write(dst).map_err(out_err)?;
                }
                done += n;
                progress(chunk.len() as u64);
            }
        }
        output.commit().map_err(out_err)
    }
}

/// Convert the file `src` to `dst` (see the [module documentation](self)).
pub fn convert_file(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    opts: &ConvertOptions,
) -> Result<()> {
    plan(src, dst, opts)?.run(&mut |_| {})
}

/// [`convert_file`] for locations (see [`plan_locations`]).
pub fn convert_location(src: &Location, dst: &Location, opts: &ConvertOptions) -> Result<()> {
    plan_locations(src, dst, opts)?.run(&mut |_| {})
}

/// A checked-cast error on one chunk, with the index made the index in the whole
/// array (C or Fortran order, as the file stores it).
fn globalize(mut e: Error, done: usize, header: &NpyHeader) -> Error {
    if let Error::CastValue { index, .. } = &mut e {
        let flat = done + index.first().copied().unwrap_or(0);
        *index = if header.fortran_order {
            let rev: Vec<usize> = header.shape.iter().rev().copied().collect();
            let mut i = unravel(flat, &rev);
            i.reverse();
            i
        } else {
            unravel(flat, &header.shape)
        };
    }
    e
}

/// What `inspect` shows of one array, and what `convert` needs to stream it.
#[derive(Clone, Debug)]
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
    pub compression: Option<String>,
    /// For an `.npz` member: bytes it occupies in the archive.
    pub compressed_size: Option<u64>,
    /// Offset of the element data in the file, where it lies uncompressed in it.
    pub data_offset: Option<u64>,
    /// The parsed header (not shown as such).
    pub header: NpyHeader,
    /// How errors name the array: `file` or `file:name`.
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
trait ElementStream {
    /// The next whole elements into `buf`; empty at the end.
    fn read_chunk<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8]>;
}

impl<R: Read> ElementStream for NpyReader<R> {
    fn read_chunk<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        NpyReader::read_chunk(self, buf)
    }
}

/// An input file: its arrays, and a stream of each one's elements.
trait Input {
    /// The arrays, in file order (headers only).
    fn arrays(&self) -> Result<Vec<ArrayInfo>>;
    /// Stream the elements of array `name`.
    fn stream(&self, name: &str) -> Result<Box<dyn ElementStream + '_>>;
}

/// An output file being written: arrays one after another, then committed. Dropping
/// it uncommitted leaves nothing behind.
trait Output {
    /// Begin array `name`; its elements follow in file order (C, or Fortran).
    fn begin(&mut self, name: &str, dtype: DType, shape: &[usize], fortran: bool) -> Result<()>;
    /// Append native-order element bytes to the current array.
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
    /// Finish the file and move it to its name.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Open `path` (of format `fmt`) for reading (a `.tfrecord` input is read as
/// `shards` shards, gzipped if `gzip`). Headers are read now, so a bad file fails
/// before any output exists.
fn open_input(
    loc: &Location,
    fmt: FileFormat,
    shards: usize,
    gzip: bool,
) -> Result<Box<dyn Input>> {
    let label = loc.display();
    Ok(match fmt {
        FileFormat::Npy => {
            let (src, header) = match loc {
                Location::Local(p) => (NpySource::Local(p.clone()), npy::open(p)?.header().clone()),
                Location::Remote(r) => {
                    let obj = RemoteObject::open(r)?;
                    let header = npy::read_header_remote(&obj)?;
                    npy::check_data_fits(&header, obj.size(), obj.url())?;
                    (NpySource::Remote(obj), header)
                }
            };
            let file_name = match loc {
                Location::Local(p) => p.file_name().map(|s| s.to_string_lossy().into_owned()),
                Location::Remote(r) => Some(r.file_name().to_string()),
            };
            let stem = file_name
                .map(|n| match n.rsplit_once('.') {
                    Some((stem, _)) if !stem.is_empty() => stem.to_string(),
                    _ => n,
                })
                .unwrap_or_else(|| "arr_0".into());
            Box::new(NpyInput {
                src,
                info: ArrayInfo::from_header(stem, label, header),
            })
        }
        FileFormat::Npz => Box::new(NpzInput(NpzArchive::open_location(loc)?)),
        FileFormat::Safetensors => Box::new(LoadedInput::new(
            label,
            safetensors::load_safetensors_location(loc)?,
        )?),
        FileFormat::Tfrecord => {
            let locs = tfrecord::shard_locations(loc, shards.max(1))?;
            Box::new(LoadedInput::new(
                label,
                tfrecord::read_tfrecord_stacked_locations(&locs, gzip)?,
            )?)
        }
    })
}

/// Create `path` (of format `fmt`) for writing; nothing appears under its name
/// until commit.
fn create_output(
    loc: &Location,
    fmt: FileFormat,
    opts: &ConvertOptions,
) -> Result<Box<dyn Output>> {
    Ok(match fmt {
        FileFormat::Npy => Box::new(NpyOutput {
            file: Some(Sink::create(loc, false)?),
            writer: None,
            name: loc.display(),
        }),
        FileFormat::Npz => Box::new(NpzOutput {
            writer: NpzWriter::new(Sink::create(loc, true)?, opts.compress),
            name: loc.display(),
        }),
        FileFormat::Safetensors | FileFormat::Tfrecord => Box::new(CollectOutput {
            path: loc.clone(),
            format: fmt,
            shards: opts.shards.max(1),
            gzip: opts.gzip,
            arrays: Vec::new(),
        }),
    })
}

/// The format of `path` (see [`detect`](super::detect)) and its arrays, from
/// headers only (a `.safetensors` file is mapped, a `.tfrecord` file read whole).
/// Errors name the file.
pub fn inspect(path: impl AsRef<Path>) -> Result<(FileFormat, Vec<ArrayInfo>)> {
    inspect_location(&Location::local(path))
}

/// [`inspect`] of a location: for an object of a store, headers only (an `.npz`
/// archive's central directory and each member's header; a safetensors or TFRecord
/// object is read whole, as a local one is).
pub fn inspect_location(loc: &Location) -> Result<(FileFormat, Vec<ArrayInfo>)> {
    let label = loc.display();
    let fmt = super::detect_location(loc).ok_or_else(|| unknown_format_label(&label))?;
    let arrays = open_input(loc, fmt, 1, false)
        .and_then(|input| input.arrays())
        .map_err(|e| in_file(e, &label))?;
    Ok((fmt, arrays))
}

/// Where an `.npy` input is.
enum NpySource {
    Local(std::path::PathBuf),
    Remote(RemoteObject),
}

struct NpyInput {
    src: NpySource,
    info: ArrayInfo,
}

impl Input for NpyInput {
    fn arrays(&self) -> Result<Vec<ArrayInfo>> {
        Ok(vec![self.info.clone()])
    }
    fn stream(&self, _name: &str) -> Result<Box<dyn ElementStream + '_>> {
        Ok(match &self.src {
            NpySource::Local(p) => Box::new(npy::open(p)?),
            NpySource::Remote(obj) => Box::new(npy::open_remote(obj)?),
        })
    }
}

struct NpzInput(NpzArchive);

impl Input for NpzInput {
    fn arrays(&self) -> Result<Vec<ArrayInfo>> {
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
                // A remote member's data start is known only once its local header is read.
                let stored = m.compression == Compression::Stored && !z.is_remote();
                let mut info = ArrayInfo::from_header(m.name.clone(), label, header);
                info.data_offset = stored.then(|| m.data_start + info.header.data_offset as u64);
                info.compression = Some(m.compression.name().to_string());
                info.compressed_size = Some(m.compressed_size);
                Ok(info)
            })
            .collect()
    }
    fn stream(&self, name: &str) -> Result<Box<dyn ElementStream + '_>> {
        Ok(Box::new(self.0.reader(name)?))
    }
}

struct NpyOutput {
    file: Option<Sink>,
    writer: Option<NpyWriter<Sink>>,
    name: String,
}

impl Output for NpyOutput {
    fn begin(&mut self, _name: &str, dtype: DType, shape: &[usize], fortran: bool) -> Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::InvalidArgument("a .npy file holds one array".into()))?;
        self.writer =
            Some(NpyWriter::new(file, dtype, shape, fortran).map_err(|e| relabel(e, &self.name))?);
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("no array begun".into()))?;
        w.write_bytes(bytes).map_err(|e| relabel(e, &self.name))
    }
    fn commit(self: Box<Self>) -> Result<()> {
        let w = self
            .writer
            .ok_or_else(|| Error::InvalidArgument("no array written".into()))?;
        w.finish().map_err(|e| relabel(e, &self.name))?.commit()
    }
}

struct NpzOutput {
    writer: NpzWriter<Sink>,
    name: String,
}

impl Output for NpzOutput {
    fn begin(&mut self, name: &str, dtype: DType, shape: &[usize], fortran: bool) -> Result<()> {
        self.writer
            .start_member(name, dtype, shape, fortran)
            .map_err(|e| relabel(e, &self.name))
    }
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_bytes(bytes)
            .map_err(|e| relabel(e, &self.name))
    }
    fn commit(self: Box<Self>) -> Result<()> {
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
    fn new(path: String, tensors: Vec<(String, Tensor)>) -> Result<LoadedInput> {
        let tensors = tensors
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_contiguous()?)))
            .collect::<Result<_>>()?;
        Ok(LoadedInput { path, tensors })
    }
}

impl Input for LoadedInput {
    fn arrays(&self) -> Result<Vec<ArrayInfo>> {
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
    fn stream(&self, name: &str) -> Result<Box<dyn ElementStream + '_>> {
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
    fn read_chunk<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8]> {
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
    path: Location,
    format: FileFormat,
    shards: usize,
    gzip: bool,
    arrays: Vec<Collected>,
}

impl Output for CollectOutput {
    fn begin(&mut self, name: &str, dtype: DType, shape: &[usize], fortran: bool) -> Result<()> {
        if self.format == FileFormat::Safetensors {
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
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.arrays
            .last_mut()
            .ok_or_else(|| Error::InvalidArgument("no array begun".into()))?
            .bytes
            .extend_from_slice(bytes);
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<()> {
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
            .collect::<Result<Vec<_>>>()?;
        match self.format {
            FileFormat::Tfrecord => {
                tfrecord::write_tfrecord_location(&self.path, &views, self.shards, self.gzip)
                    .map(drop)
            }
            _ => safetensors::save_safetensors_location(&self.path, &views, None),
        }
    }
}

/// Whether elements in `order` must be byte-swapped (never for one-byte types).
fn swapped(dtype: DType, order: ByteOrder) -> bool {
    dtype.size() > 1 && order.is_swapped()
}
