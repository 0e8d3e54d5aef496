//! Writing `.npy` files: whole ([`save`], [`write()`]) or streamed ([`NpyWriter`]),
//! with the header `np.save` writes.

use std::io::Write;
use std::path::Path;

use crate::cast::cast_into;
use crate::dtype::{Casting, DType};
use crate::error::{Error, Result};
use crate::format::io::relabel;
use crate::format::{for_each_piece, io_err, AtomicFile};
use crate::location::{Location, Sink};
use crate::view::TensorView;

use super::header::NpyHeader;

/// Elements per conversion piece when writing a non-contiguous or byte-swapped view.
const WRITE_PIECE_BYTES: usize = 4 << 20;

/// Counts and converts the elements of one array being streamed out.
#[derive(Debug)]
pub(crate) struct ElementSink {
    dtype: DType,
    shape: Vec<usize>,
    expected: usize,
    written: usize,
    buf: Vec<u64>,
}

impl ElementSink {
    pub(crate) fn new(dtype: DType, shape: &[usize]) -> Self {
        ElementSink {
            dtype,
            shape: shape.to_vec(),
            expected: shape.iter().product(),
            written: 0,
            buf: Vec::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<()> {
        match self.written.checked_add(n) {
            Some(total) if total <= self.expected => {
                self.written = total;
                Ok(())
            }
            _ => Err(Error::Shape(format!(
                "{} more elements than the shape {:?} holds ({} written of {})",
                n, self.shape, self.written, self.expected
            ))),
        }
    }

    /// Append native-order element bytes.
    pub(crate) fn write_bytes(
        &mut self,
        w: &mut dyn Write,
        bytes: &[u8],
        name: &str,
    ) -> Result<()> {
        let size = self.dtype.size();
        #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` is newer than the MSRV
        if bytes.len() % size != 0 {
            return Err(Error::InvalidArgument(format!(
                "{} bytes are not whole elements of {}",
                bytes.len(),
                self.dtype
            )));
        }
        self.take(bytes.len() / size)?;
        w.write_all(bytes).map_err(io_err(name))
    }

    /// Append the elements of `chunk` in its C order, converted to native order.
    pub(crate) fn write_view(
        &mut self,
        w: &mut dyn Write,
        chunk: &TensorView<'_>,
        name: &str,
    ) -> Result<()> {
        if chunk.dtype() != self.dtype {
            return Err(Error::InvalidArgument(format!(
                "a {} chunk written to a {} array (cast it first)",
                chunk.dtype(),
                self.dtype
            )));
        }
        self.take(chunk.len())?;
        if let Some(bytes) = chunk.contiguous_bytes() {
            return w.write_all(bytes).map_err(io_err(name));
        }
        let size = self.dtype.size();
        let max = (WRITE_PIECE_BYTES / size).max(1);
        let buf = &mut self.buf;
        for_each_piece(chunk, max, &mut |piece| {
            let n = piece.len() * size;
            if buf.len() * 8 < n {
                buf.resize(n.div_ceil(8), 0);
            }
            let dst = &mut bytemuck::cast_slice_mut::<u64, u8>(buf)[..n];
            cast_into(piece, piece.dtype(), Casting::Unsafe, dst)?;
            w.write_all(dst).map_err(io_err(name))
        })
    }

    pub(crate) fn check_complete(&self) -> Result<()> {
        if self.written != self.expected {
            return Err(Error::Shape(format!(
                "array of shape {:?} finished after {} of its {} elements",
                self.shape, self.written, self.expected
            )));
        }
        Ok(())
    }
}

/// A streaming `.npy` writer: writes the header at once, then element chunks; checks
/// at [`NpyWriter::finish`] that exactly the shape's element count was written.
///
/// Elements go in file order: C order, or Fortran order when created with
/// `fortran_order: true`. Always native byte order.
#[derive(Debug)]
pub struct NpyWriter<W: Write> {
    w: W,
    sink: ElementSink,
}

/// Label for errors of streams that have no file name.
const STREAM: &str = "<npy stream>";

impl<W: Write> NpyWriter<W> {
    /// Write the header for an array of `dtype` and `shape` to `w`.
    pub fn new(mut w: W, dtype: DType, shape: &[usize], fortran_order: bool) -> Result<Self> {
        let header = NpyHeader::new(dtype, shape, fortran_order)?;
        w.write_all(&header.to_bytes()).map_err(io_err(STREAM))?;
        Ok(NpyWriter {
            w,
            sink: ElementSink::new(dtype, shape),
        })
    }

    /// Append the elements of `chunk` (in its C order; any layout and byte order; its
    /// dtype must be the writer's). More elements than the shape holds is an error.
    pub fn write_chunk(&mut self, chunk: &TensorView<'_>) -> Result<()> {
        self.sink.write_view(&mut self.w, chunk, STREAM)
    }

    /// Append raw native-order element bytes (whole elements).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.sink.write_bytes(&mut self.w, bytes, STREAM)
    }

    /// Check the element count, flush, and return the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.sink.check_complete()?;
        self.w.flush().map_err(io_err(STREAM))?;
        Ok(self.w)
    }
}

/// Write `view` as an `.npy` image to `w`: C order (Fortran order, as NumPy does, when
/// the view is Fortran-contiguous but not C-contiguous), native byte order.
pub fn write(w: &mut impl Write, view: &TensorView<'_>) -> Result<()> {
    let (fortran, ordered) = in_file_order(view)?;
    let mut writer = NpyWriter::new(w, view.dtype(), view.shape(), fortran)?;
    writer.write_chunk(&ordered)?;
    writer.finish()?;
    Ok(())
}

/// Whether to write `view` in Fortran order (it is Fortran- but not C-contiguous),
/// and a view whose C order is the file order.
pub(crate) fn in_file_order<'a>(view: &TensorView<'a>) -> Result<(bool, TensorView<'a>)> {
    if view.is_c_contiguous() || !is_f_contiguous(view) {
        return Ok((false, view.clone()));
    }
    // The reversed layout is C-contiguous: its C order is the bytes' memory order.
    let rev = TensorView::new(
        view.bytes(),
        view.dtype(),
        view.shape().iter().rev().copied().collect(),
        view.strides().iter().rev().copied().collect(),
        view.offset(),
        view.byte_order(),
    )?;
    Ok((true, rev))
}

fn is_f_contiguous(view: &TensorView<'_>) -> bool {
    let shape: Vec<usize> = view.shape().iter().rev().copied().collect();
    let strides: Vec<isize> = view.strides().iter().rev().copied().collect();
    crate::view::is_c_contiguous(&shape, &strides, view.dtype().size())
}

/// Write `view` to the `.npy` file `path` (see [`write()`]), atomically: a temporary
/// file in the same directory renamed at the end; nothing is left behind on error.
pub fn save(path: impl AsRef<Path>, view: &TensorView<'_>) -> Result<()> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let mut file = AtomicFile::create(path)?;
    write(&mut file, view).map_err(|e| relabel(e, &name))?;
    file.commit()
}

/// [`save`] to a location: a local path as [`save`] does; an object of a store with a
/// multipart upload that completes only at the end (aborted on error, so nothing
/// is left behind).
pub fn save_location(loc: &Location, view: &TensorView<'_>) -> Result<()> {
    if let Location::Local(p) = loc {
        return save(p, view);
    }
    let name = loc.display();
    let mut sink = Sink::create(loc, false)?;
    write(&mut sink, view).map_err(|e| relabel(e, &name))?;
    sink.commit()
}
