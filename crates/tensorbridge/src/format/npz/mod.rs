//! NumPy's `.npz` format: a zip archive of `.npy` members (`np.savez`,
//! `np.savez_compressed`).
//!
//! # Reading
//! [`NpzArchive::open`] maps the archive once and reads only the zip central directory
//! (and each member's local header, to find where its bytes start) — no member data.
//! [`NpzArchive::load`] then reads one member:
//!
//! - A *stored* (uncompressed) member whose array data is aligned for its dtype, in
//!   native byte order, is a zero-copy view into the archive's one shared mapping
//!   ([`Tensor::is_view`] true; the mapping lives as long as any tensor using it). A
//!   Fortran-order member maps as a Fortran-strided view. NumPy cannot do this.
//! - Other stored members (misaligned — `np.savez` places data at arbitrary offsets —,
//!   byte-swapped, or cast with [`LoadOptions::dtype`]) are converted with one fast,
//!   parallel copy out of the mapping.
//! - *Deflated* members are decompressed straight into the tensor's buffer.
//!
//! Every member that is copied or decompressed has its CRC-32 checked (as `np.load`
//! does); a mismatch is an [`Error::Format`] naming the member. Zero-copy views of
//! stored members are *not* checked — that would mean reading every byte, which is
//! what a view avoids; ask for `mmap: Some(false)` to have a member copied and
//! checked. [`NpzArchive::reader`] checks the CRC of both kinds.
//!
//! [`LoadOptions::mmap`] means what it means for `.npy` files: `Some(true)` insists on
//! a zero-copy view (an error when impossible, including for deflated members),
//! `Some(false)` always copies, `None` maps whenever possible.
//!
//! Member names are the zip names without the `.npy` suffix, as `np.load` gives them.
//! Hostile archives are refused with [`Error::Format`] naming the archive and member;
//! a deflated member may not claim more uncompressed bytes than deflate can produce
//! from its compressed bytes (1032:1), so nothing is allocated beyond what the file
//! justifies.
//!
//! # Writing
//! [`save`] and [`NpzWriter`] write members NumPy reads with `np.load`. Every stored
//! member's local header is padded (with a zip extra field, as `zipalign` does) so its
//! content starts on a 64-byte boundary; since the `.npy` header is itself a multiple
//! of 64 bytes, the array data is 64-byte aligned in the file and always maps
//! zero-copy. Members larger than 4 GiB and archives of more than 65,535 members use
//! ZIP64. Writing goes to a temporary file renamed at the end ([`super::AtomicFile`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use flate2::read::DeflateDecoder;
use zip::{CompressionMethod, ZipArchive};

use super::npy::{self, LoadOptions, NpyHeader, NpyReader};
use super::{format_err, io_err};
use crate::error::{Error, Result};
use crate::location::{Location, RemoteObject};
use crate::storage::Storage;
use crate::tensor::Tensor;
use crate::view::TensorView;

mod remote;
pub mod write;

pub use write::{save, save_location, NpzWriter};

/// The most uncompressed bytes deflate can produce per compressed byte.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// How a member is compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression (`np.savez`): can be mapped.
    Stored,
    /// Deflate (`np.savez_compressed`).
    Deflated,
    /// Another zip method (listed, but not loadable).
    Other(String),
}

impl Compression {
    /// `"stored"`, `"deflated"` or the zip method's name.
    pub fn name(&self) -> &str {
        match self {
            Compression::Stored => "stored",
            Compression::Deflated => "deflated",
            Compression::Other(s) => s,
        }
    }
}

/// What the central directory and local header say about one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpzMember {
    /// The array's name: the zip name without its `.npy` suffix.
    pub name: String,
    /// The name in the zip archive.
    pub file_name: String,
    /// How the member is compressed.
    pub compression: Compression,
    /// Bytes the member occupies in the archive.
    pub compressed_size: u64,
    /// Bytes of the member's `.npy` image (header and data).
    pub size: u64,
    /// Offset in the archive of the member's first byte (for a stored member, the
    /// start of its `.npy` header; the array data follows the header).
    pub data_start: u64,
    /// CRC-32 of the uncompressed member.
    pub crc32: u32,
    /// Whether the member is encrypted (never loadable).
    pub encrypted: bool,
}

/// An opened `.npz` archive: its member list, and one shared read-only mapping of
/// the archive that zero-copy members point into. Loading takes `&self`, so members
/// can be loaded from several threads.
pub struct NpzArchive {
    path: String,
    source: Source,
    members: Vec<NpzMember>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for NpzArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpzArchive")
            .field("path", &self.path)
            .field("members", &self.members)
            .finish()
    }
}

/// Where an archive's bytes are.
enum Source {
    /// One shared mapping (or buffer) of the whole archive.
    Mapped(Arc<Storage>),
    /// An object of a store, read by ranges when members are accessed (and an empty
    /// storage for [`NpzArchive::storage`]).
    Remote(RemoteObject, Arc<Storage>),
}

/// `Read + Seek` over shared storage, for the zip crate's directory reader.
struct StorageReader {
    storage: Arc<Storage>,
    pos: u64,
}

impl Read for StorageReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let bytes = self.storage.as_slice();
        let start = usize::try_from(self.pos)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for StorageReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let len = self.storage.len() as i128;
        let new = match pos {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => len + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the archive",
            ));
        }
        self.pos = u64::try_from(new).unwrap_or(u64::MAX);
        Ok(self.pos)
    }
}

/// Counts and checksums a member's uncompressed bytes; at the end of the stream,
/// checks both against the central directory.
struct CheckedReader<R> {
    inner: R,
    crc: flate2::Crc,
    count: u64,
    size: u64,
    crc32: u32,
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.count += n as u64;
        if self.count > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "member holds more than its declared {} bytes (corrupt archive)",
                    self.size
                ),
            ));
        }
        if n == 0 && !buf.is_empty() {
            if self.count != self.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "member ends after {} of its declared {} bytes (truncated)",
                        self.count, self.size
                    ),
                ));
            }
            if self.crc.sum() != self.crc32 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    crc_mismatch(self.crc.sum(), self.crc32),
                ));
            }
        }
        Ok(n)
    }
}

/// The refusal of a member whose bytes do not match the archive's CRC-32.
fn crc_mismatch(computed: u32, stored: u32) -> String {
    format!("CRC-32 mismatch: computed {computed:08x}, archive says {stored:08x} (corrupt data)")
}

pub(crate) fn zip_err<'a>(
    path: &'a str,
    what: &str,
) -> impl FnOnce(zip::result::ZipError) -> Error + 'a {
    let what = what.to_string();
    move |e| match e {
        zip::result::ZipError::Io(source) if source.kind() != io::ErrorKind::UnexpectedEof => {
            Error::Io {
                path: path.to_string(),
                source,
            }
        }
        e => format_err(path, format!("{what}: {e}")),
    }
}

impl NpzArchive {
    /// Open the archive at `path`: map it and read its directory (no member data).
    pub fn open(path: impl AsRef<Path>) -> Result<NpzArchive> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(io_err(&name))?;
        Self::from_file(&file, &name)
    }

    /// Open the archive in the opened `file`, named `name` in errors.
    pub(crate) fn from_file(file: &File, name: &str) -> Result<NpzArchive> {
        let storage = Storage::map_file(file).map_err(io_err(name))?;
        Self::from_storage(Arc::new(storage), name)
    }

    /// Open an archive held in memory (copied once into aligned storage). `name`
    /// labels errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<NpzArchive> {
        let mut storage = Storage::zeroed(bytes.len())?;
        storage
            .as_mut_slice()
            .ok_or_else(|| Error::Layout("fresh storage is not writable".into()))?
            .copy_from_slice(bytes);
        Self::from_storage(Arc::new(storage), name)
    }

    fn from_storage(storage: Arc<Storage>, path: &str) -> Result<NpzArchive> {
        let reader = StorageReader {
            storage: storage.clone(),
            pos: 0,
        };
        let mut zip =
            ZipArchive::new(reader).map_err(zip_err(path, "not a valid .npz (zip) archive"))?;
        let mut members = Vec::with_capacity(zip.len());
        let mut by_name = HashMap::with_capacity(zip.len());
        for i in 0..zip.len() {
            let label = format!("{path}:{}", zip.name_for_index(i).unwrap_or("<unnamed>"));
            let f = zip
                .by_index_raw(i)
                .map_err(zip_err(&label, "bad zip entry"))?;
            if f.is_dir() {
                continue;
            }
            let file_name = f.name().to_string();
            let name = file_name
                .strip_suffix(".npy")
                .unwrap_or(&file_name)
                .to_string();
            let compression = match f.compression() {
                CompressionMethod::Stored => Compression::Stored,
                CompressionMethod::Deflated => Compression::Deflated,
                m => Compression::Other(m.to_string()),
            };
            let member = NpzMember {
                name: name.clone(),
                file_name,
                compression,
                compressed_size: f.compressed_size(),
                size: f.size(),
                data_start: f.data_start(),
                crc32: f.crc32(),
                encrypted: f.encrypted(),
            };
            if by_name.contains_key(&name) {
                continue; // the first of duplicate names wins
            }
            by_name.insert(name, members.len());
            members.push(member);
        }
        Ok(NpzArchive {
            path: path.to_string(),
            source: Source::Mapped(storage),
            members,
            by_name,
        })
    }

    /// Open the archive at `loc`: a local file as [`NpzArchive::open`] does; an
    /// object of a store by reading only its end-of-central-directory record and
    /// central directory (a suffix read, rarely two or three) — no member data.
    pub fn open_location(loc: &Location) -> Result<NpzArchive> {
        match loc {
            Location::Local(p) => Self::open(p),
            Location::Remote(r) => Self::open_remote(RemoteObject::open(r)?),
        }
    }

    /// Open the archive in an opened object of a store (see
    /// [`NpzArchive::open_location`]). Its members' `data_start` is the offset of
    /// their local header: the data follows it, found when the member is read.
    pub fn open_remote(object: RemoteObject) -> Result<NpzArchive> {
        let path = object.url().to_string();
        let members = remote::read_directory(&object, &path)?;
        let mut by_name = HashMap::with_capacity(members.len());
        let mut unique = Vec::with_capacity(members.len());
        for m in members {
            if by_name.contains_key(&m.name) {
                continue; // the first of duplicate names wins
            }
            by_name.insert(m.name.clone(), unique.len());
            unique.push(m);
        }
        Ok(NpzArchive {
            path,
            source: Source::Remote(object, Arc::new(Storage::zeroed(0)?)),
            members: unique,
            by_name,
        })
    }

    /// Whether the archive is an object of a store (read by ranges).
    pub fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote(..))
    }

    /// The archive's path (or the name given to [`NpzArchive::from_bytes`]).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The members, in archive order.
    pub fn members(&self) -> &[NpzMember] {
        &self.members
    }

    /// The member names (without `.npy`), in archive order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.name.as_str())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the archive has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether a member of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&NpzMember> {
        self.by_name.get(name).map(|&i| &self.members[i])
    }

    /// The shared mapping (or buffer) of the whole archive; empty for an object of a
    /// store (its members are read by ranges, [`NpzArchive::is_remote`]).
    pub fn storage(&self) -> &Arc<Storage> {
        match &self.source {
            Source::Mapped(s) => s,
            Source::Remote(_, empty) => empty,
        }
    }

    /// The shared mapping, for the paths that only local archives take.
    fn mapped(&self) -> Result<&Arc<Storage>> {
        match &self.source {
            Source::Mapped(s) => Ok(s),
            Source::Remote(..) => Err(Error::InvalidArgument(format!(
                "{}: not a local archive",
                self.path
            ))),
        }
    }

    fn find(&self, name: &str) -> Result<(&NpzMember, String)> {
        let m = self.member(name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: no array named {name:?} in the archive",
                self.path
            ))
        })?;
        let label = format!("{}:{}", self.path, m.name);
        if m.encrypted {
            return Err(format_err(&label, "encrypted members are not supported"));
        }
        Ok((m, label))
    }

    /// The member's bytes in the archive (compressed, if it is).
    fn raw_bytes(&self, m: &NpzMember, label: &str) -> Result<&[u8]> {
        let bytes = self.mapped()?.as_slice();
        usize::try_from(m.data_start)
            .ok()
            .zip(usize::try_from(m.compressed_size).ok())
            .and_then(|(s, n)| Some(s..s.checked_add(n)?))
            .and_then(|r| bytes.get(r))
            .ok_or_else(|| {
                format_err(
                    label,
                    format!(
                        "member data ({} bytes at offset {}) lies outside the archive of {} bytes (truncated?)",
                        m.compressed_size,
                        m.data_start,
                        bytes.len()
                    ),
                )
            })
    }

    /// A checked, decompressing reader of the member's `.npy` image.
    fn member_stream<'s>(
        &'s self,
        m: &NpzMember,
        label: &str,
    ) -> Result<CheckedReader<Box<dyn Read + Send + 's>>> {
        let raw: Box<dyn Read + Send + 's> = match &self.source {
            Source::Mapped(_) => Box::new(self.raw_bytes(m, label)?),
            Source::Remote(obj, _) => remote::member_raw(obj, m, label)?,
        };
        checked_member(raw, m, label)
    }
}

/// A checked, decompressing reader of member `m`'s `.npy` image over its `raw` bytes.
fn checked_member<'s>(
    raw: Box<dyn Read + Send + 's>,
    m: &NpzMember,
    label: &str,
) -> Result<CheckedReader<Box<dyn Read + Send + 's>>> {
    let inner: Box<dyn Read + Send + 's> = match m.compression {
        Compression::Stored => {
            if m.size != m.compressed_size {
                return Err(format_err(
                    label,
                    format!(
                        "stored member declares {} bytes but occupies {}",
                        m.size, m.compressed_size
                    ),
                ));
            }
            Box::new(raw)
        }
        Compression::Deflated => {
            let limit = m
                .compressed_size
                .saturating_mul(DEFLATE_MAX_RATIO)
                .saturating_add(1024);
            if m.size > limit {
                return Err(format_err(
                    label,
                    format!(
                        "member declares {} uncompressed bytes, more than deflate can \
                             produce from its {} compressed bytes (corrupt archive)",
                        m.size, m.compressed_size
                    ),
                ));
            }
            Box::new(DeflateDecoder::new(raw))
        }
        Compression::Other(ref method) => {
            return Err(format_err(
                label,
                format!("compression method {method} is not supported (only stored and deflated)"),
            ))
        }
    };
    Ok(CheckedReader {
        inner,
        crc: flate2::Crc::new(),
        count: 0,
        size: m.size,
        crc32: m.crc32,
    })
}

impl NpzArchive {
    /// The `.npy` header of member `name` (for a deflated member, only the header is
    /// decompressed).
    pub fn header(&self, name: &str) -> Result<NpyHeader> {
        let (m, label) = self.find(name)?;
        if let Source::Remote(obj, _) = &self.source {
            return remote::member_header(obj, m, &label);
        }
        if m.compression == Compression::Stored {
            let raw = self.raw_bytes(m, &label)?;
            return NpyHeader::parse(raw, &label);
        }
        Ok(NpyReader::new(self.member_stream(m, &label)?, &label)?
            .header()
            .clone())
    }

    /// A streaming reader of member `name`: its header, then its element bytes in
    /// chunks (bounded memory, whatever the member's size). The CRC-32 and size are
    /// checked when the last element has been read.
    pub fn reader(&self, name: &str) -> Result<NpyReader<Box<dyn Read + Send + '_>>> {
        let (m, label) = self.find(name)?;
        let stream = self.member_stream(m, &label)?;
        let reader = NpyReader::new(Box::new(stream) as Box<dyn Read + Send + '_>, &label)?;
        npy::check_data_fits(reader.header(), m.size, &label)?;
        Ok(reader)
    }

    /// Load member `name` (see the [module documentation](self)).
    pub fn load(&self, name: &str, opts: &LoadOptions) -> Result<Tensor> {
        let (m, label) = self.find(name)?;
        match m.compression {
            Compression::Stored if !self.is_remote() => self.load_stored(m, &label, opts),
            _ => {
                if self.is_remote() && opts.mmap == Some(true) {
                    return Err(crate::location::no_mmap_remote(&label));
                }
                if opts.mmap == Some(true) {
                    return Err(format_err(
                        &label,
                        format!(
                            "cannot memory-map a {} member; load with mmap disabled",
                            m.compression.name()
                        ),
                    ));
                }
                self.load_streamed(m, &label, opts)
            }
        }
    }

    fn load_stored(&self, m: &NpzMember, label: &str, opts: &LoadOptions) -> Result<Tensor> {
        let raw = self.raw_bytes(m, label)?;
        if m.size != m.compressed_size {
            return Err(format_err(
                label,
                format!(
                    "stored member declares {} bytes but occupies {}",
                    m.size, m.compressed_size
                ),
            ));
        }
        let header = NpyHeader::parse(raw, label)?;
        let stored = header.resolve_dtype(opts.dtype, label)?;
        let target = opts.dtype.unwrap_or(stored);
        stored.check_cast(target, opts.casting)?;
        npy::check_data_fits(&header, raw.len() as u64, label)?;
        // In bounds: `raw` lies inside the storage and the data inside `raw`.
        let offset = m.data_start as usize + header.data_offset;
        let storage = self.mapped()?;
        let base = storage.as_ptr() as usize;
        let map = match (
            opts.mmap,
            npy::obstacle(&header, stored, target, base, offset)?,
        ) {
            (Some(true), Some(obstacle)) => return Err(npy::no_map_error(label, &obstacle)),
            (Some(map), _) => map,
            (None, obstacle) => obstacle.is_none(),
        };
        if map {
            return Tensor::from_storage(
                storage.clone(),
                stored,
                header.shape.clone(),
                header.strides(),
                offset,
                true,
            );
        }
        // A copy reads every byte anyway: check the CRC-32 first, as np.load does.
        let mut crc = flate2::Crc::new();
        crc.update(raw);
        if crc.sum() != m.crc32 {
            return Err(format_err(label, crc_mismatch(crc.sum(), m.crc32)));
        }
        let view = TensorView::new(
            storage.as_slice(),
            stored,
            header.shape.clone(),
            header.strides(),
            offset,
            header.byte_order,
        )?;
        npy::copy_as(&view, target, opts.casting)
    }

    /// A member read as a stream (deflated, or of a remote archive): decompressed
    /// and read straight into the tensor's buffer, its CRC-32 checked at the end.
    fn load_streamed(&self, m: &NpzMember, label: &str, opts: &LoadOptions) -> Result<Tensor> {
        let mut reader = NpyReader::new(self.member_stream(m, label)?, label)?;
        let header = reader.header().clone();
        let stored = header.resolve_dtype(opts.dtype, label)?;
        let target = opts.dtype.unwrap_or(stored);
        stored.check_cast(target, opts.casting)?;
        // The declared size is bounded by the compressed size, so this bounds memory.
        npy::check_data_fits(&header, m.size, label)?;
        // Read into a fresh (aligned) buffer: its address and offset count as 0.
        let as_is = npy::obstacle(&header, stored, target, 0, 0)?.is_none();
        if as_is && !header.fortran_order {
            return npy::build_filled(stored, &header.shape, |buf| {
                reader.read_chunk(buf).map(|_| ())
            });
        }
        let mut data = vec![0u8; header.data_len()];
        reader.read_chunk(&mut data)?;
        let mut h = header;
        h.data_offset = 0;
        npy::convert_from(&h, &data, stored, target, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use std::io::Cursor;

    fn sample() -> Vec<f32> {
        (0..24).map(|i| i as f32 * 0.5).collect()
    }

    #[test]
    fn round_trip_stored_is_aligned_and_zero_copy() {
        let data = sample();
        let a = TensorView::from_slice(&data, &[4, 6]).unwrap();
        let b = TensorView::from_slice(&[1u8, 2, 3], &[3]).unwrap();
        let mut w = NpzWriter::new(Cursor::new(Vec::new()), false);
        w.add("a", &a).unwrap();
        w.add("b", &b).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let z = NpzArchive::from_bytes(&bytes, "mem.npz").unwrap();
        assert_eq!(z.names().collect::<Vec<_>>(), vec!["a", "b"]);
        for m in z.members() {
            assert_eq!(m.compression, Compression::Stored);
            assert_eq!(m.data_start % 64, 0, "{m:?}");
        }
        let t = z.load("a", &LoadOptions::default()).unwrap();
        assert!(t.is_view());
        assert_eq!(t.to_vec::<f32>().unwrap(), data);
        assert_eq!(t.shape(), &[4, 6]);
        let t = z
            .load(
                "a",
                &LoadOptions {
                    mmap: Some(false),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(!t.is_view());
        assert_eq!(t.to_vec::<f32>().unwrap(), data);
        assert!(z.load("zz", &LoadOptions::default()).is_err());
    }

    #[test]
    fn round_trip_deflated_and_streamed() {
        let data = sample();
        let a = TensorView::from_slice(&data, &[2, 3, 4]).unwrap();
        let mut w = NpzWriter::new(Cursor::new(Vec::new()), true);
        w.start_member("x", DType::Float32, &[2, 3, 4], false)
            .unwrap();
        w.write_bytes(bytemuck::cast_slice(&data[..10])).unwrap();
        w.write_bytes(bytemuck::cast_slice(&data[10..])).unwrap();
        w.add("y", &a).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let z = NpzArchive::from_bytes(&bytes, "mem.npz").unwrap();
        for n in ["x", "y"] {
            assert_eq!(z.member(n).unwrap().compression, Compression::Deflated);
            let t = z.load(n, &LoadOptions::default()).unwrap();
            assert!(!t.is_view());
            assert_eq!(t.to_vec::<f32>().unwrap(), data);
            assert!(z
                .load(
                    n,
                    &LoadOptions {
                        mmap: Some(true),
                        ..Default::default()
                    }
                )
                .is_err());
            let mut r = z.reader(n).unwrap();
            let mut buf = vec![0u8; 40];
            let mut got = vec![];
            loop {
                let c = r.read_chunk(&mut buf).unwrap();
                if c.is_empty() {
                    break;
                }
                got.extend_from_slice(c);
            }
            assert_eq!(got, bytemuck::cast_slice::<f32, u8>(&data));
        }
    }

    #[test]
    fn incomplete_member_is_an_error() {
        let mut w = NpzWriter::new(Cursor::new(Vec::new()), false);
        w.start_member("x", DType::Int32, &[3], false).unwrap();
        w.write_bytes(&[0; 8]).unwrap();
        assert!(w.write_bytes(&[0; 8]).is_err());
        assert!(w.finish().unwrap_err().to_string().contains("2 of its 3"));
    }

    #[test]
    fn corrupt_deflate_crc_is_detected() {
        let data = sample();
        let a = TensorView::from_slice(&data, &[24]).unwrap();
        let mut w = NpzWriter::new(Cursor::new(Vec::new()), true);
        w.add("x", &a).unwrap();
        let mut bytes = w.finish().unwrap().into_inner();
        // Flip the CRC in the central directory (offset 16 of the "PK\1\2" record).
        let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        bytes[cd + 16] ^= 0xff;
        let z = NpzArchive::from_bytes(&bytes, "c.npz").unwrap();
        let e = z
            .load("x", &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CRC-32 mismatch") && e.starts_with("c.npz:x: "),
            "{e}"
        );
    }

    #[test]
    fn stored_member_copies_are_crc_checked_views_are_not() {
        let data = sample();
        let a = TensorView::from_slice(&data, &[24]).unwrap();
        let mut w = NpzWriter::new(Cursor::new(Vec::new()), false);
        w.add("x", &a).unwrap();
        let mut bytes = w.finish().unwrap().into_inner();
        let good = NpzArchive::from_bytes(&bytes, "s.npz").unwrap();
        let m = good.member("x").unwrap().clone();
        let copy = LoadOptions {
            mmap: Some(false),
            ..Default::default()
        };
        assert_eq!(
            good.load("x", &copy).unwrap().to_vec::<f32>().unwrap(),
            data
        );
        // Flip a bit of the last element.
        let last = (m.data_start + m.size - 1) as usize;
        bytes[last] ^= 0x01;
        let z = NpzArchive::from_bytes(&bytes, "s.npz").unwrap();
        let e = z.load("x", &copy).unwrap_err().to_string();
        assert!(
            e.contains("CRC-32 mismatch") && e.starts_with("s.npz:x: "),
            "{e}"
        );
        // A cast is a copy too.
        let cast_opts = LoadOptions {
            dtype: Some(DType::Float64),
            ..Default::default()
        };
        assert!(z.load("x", &cast_opts).is_err());
        // The zero-copy view is documented as unchecked: it shows the flipped bit.
        let v = z.load("x", &LoadOptions::default()).unwrap();
        assert!(v.is_view());
        assert_ne!(v.to_vec::<f32>().unwrap(), data);
    }
}
