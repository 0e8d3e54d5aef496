//! Writing `.npz` archives: whole ([`save`]) or member by member, chunk by chunk
//! ([`NpzWriter`]), stored members 64-byte aligned.

use std::collections::HashSet;
use std::io::{Seek, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::zip_err;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::io::relabel;
use crate::format::npy::{self, ElementSink, NpyHeader};
use crate::format::{io_err, AtomicFile};
use crate::location::{Location, Sink};
use crate::view::TensorView;

/// A streaming `.npz` writer: members one after another, each either whole
/// ([`NpzWriter::add`]) or in chunks ([`NpzWriter::start_member`], then
/// [`NpzWriter::write_chunk`] / [`NpzWriter::write_bytes`]); memory stays bounded
/// whatever the members' sizes. [`NpzWriter::finish`] writes the central directory.
pub struct NpzWriter<W: Write + Seek> {
    zip: ZipWriter<W>,
    compress: bool,
    current: Option<ElementSink>,
    names: HashSet<String>,
}

fn no_member() -> Error {
    Error::InvalidArgument("no member started".into())
}

/// Label for errors of archives that have no file name.
const STREAM: &str = "<npz stream>";

impl<W: Write + Seek> NpzWriter<W> {
    /// A writer of an archive to `w`; `compress` deflates every member
    /// (`np.savez_compressed`), else members are stored 64-byte aligned (`np.savez`).
    pub fn new(w: W, compress: bool) -> Self {
        NpzWriter {
            zip: ZipWriter::new(w),
            compress,
            current: None,
            names: HashSet::new(),
        }
    }

    fn end_member(&mut self) -> Result<()> {
        if let Some(sink) = self.current.take() {
            sink.check_complete()?;
        }
        Ok(())
    }

    /// Begin member `name` (stored as `name.npy`) of `dtype` and `shape` and write its
    /// header; elements follow in file order (C, or Fortran when `fortran_order`).
    /// The previous member must be complete.
    pub fn start_member(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        fortran_order: bool,
    ) -> Result<()> {
        self.end_member()?;
        if name.is_empty() {
            return Err(Error::InvalidArgument("empty member name".into()));
        }
        if !self.names.insert(name.to_string()) {
            return Err(Error::InvalidArgument(format!(
                "member {name:?} written twice"
            )));
        }
        let header = NpyHeader::new(dtype, shape, fortran_order)?;
        let total = (header.data_offset as u64).saturating_add(header.data_len() as u64);
        // Deflate can expand incompressible data slightly; leave room for it.
        let worst = if self.compress {
            total.saturating_add(total / 1000).saturating_add(1 << 16)
        } else {
            total
        };
        let large = worst >= zip::ZIP64_BYTES_THR;
        let options = if self.compress {
            SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
        } else {
            SimpleFileOptions::default()
                .compression_method(CompressionMethod::Stored)
                .with_alignment(64)
        }
        .large_file(large);
        self.zip
            .start_file(format!("{name}.npy"), options)
            .map_err(zip_err(STREAM, "cannot start member"))?;
        self.zip
            .write_all(&header.to_bytes())
            .map_err(io_err(STREAM))?;
        self.current = Some(ElementSink::new(dtype, shape));
        Ok(())
    }

    /// Append the elements of `chunk` (its C order, any layout and byte order, the
    /// member's dtype) to the current member.
    pub fn write_chunk(&mut self, chunk: &TensorView<'_>) -> Result<()> {
        let sink = self.current.as_mut().ok_or_else(no_member)?;
        sink.write_view(&mut self.zip, chunk, STREAM)
    }

    /// Append raw native-order element bytes to the current member.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let sink = self.current.as_mut().ok_or_else(no_member)?;
        sink.write_bytes(&mut self.zip, bytes, STREAM)
    }

    /// Write a whole array as member `name` (Fortran order when the view is
    /// Fortran-contiguous but not C-contiguous, as NumPy does).
    pub fn add(&mut self, name: &str, view: &TensorView<'_>) -> Result<()> {
        let (fortran, ordered) = npy::in_file_order(view)?;
        self.start_member(name, view.dtype(), view.shape(), fortran)?;
        self.write_chunk(&ordered)?;
        self.end_member()
    }

    /// Check the last member is complete, write the central directory, and return the
    /// inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.end_member()?;
        self.zip
            .finish()
            .map_err(zip_err(STREAM, "cannot finish archive"))
    }
}

/// Write `members` (name, array) to the `.npz` file `path`, deflated when `compress`,
/// atomically (a temporary file renamed at the end; nothing is left on error).
pub fn save(
    path: impl AsRef<Path>,
    members: &[(&str, TensorView<'_>)],
    compress: bool,
) -> Result<()> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = AtomicFile::create(path)?;
    let mut w = NpzWriter::new(file, compress);
    for (member, view) in members {
        w.add(member, view).map_err(|e| relabel(e, &name))?;
    }
    let file = w.finish().map_err(|e| relabel(e, &name))?;
    file.commit()
}

/// [`save`] to a location: a local path as [`save`] does; an object of a store is
/// written to a temporary local file (the zip writer seeks back) and uploaded with
/// a multipart upload at the end — aborted on error, so nothing is left behind.
pub fn save_location(
    loc: &Location,
    members: &[(&str, TensorView<'_>)],
    compress: bool,
) -> Result<()> {
    if let Location::Local(p) = loc {
        return save(p, members, compress);
    }
    let name = loc.display();
    let mut w = NpzWriter::new(Sink::create(loc, true)?, compress);
    for (member, view) in members {
        w.add(member, view).map_err(|e| relabel(e, &name))?;
    }
    let sink = w.finish().map_err(|e| relabel(e, &name))?;
    sink.commit()
}
