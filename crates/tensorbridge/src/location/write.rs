//! Writing a location: [`ObjectWriter`] (a multipart upload that completes only on
//! commit and is aborted otherwise) and [`Sink`] (that, a local [`AtomicFile`], or a
//! spooled temporary file for writers that seek).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use super::config::store_for;
use super::errors::store_err;
use super::runtime::{block_on, enter};
use super::{Location, RemoteUrl};
use crate::error::{Error, Result};
use crate::format::AtomicFile;

/// Bytes per uploaded part (the last may be smaller).
const PART: usize = 8 << 20;
/// Parts uploading at once (memory: about this many parts).
const PARTS_IN_FLIGHT: usize = 4;

/// A new object written through a multipart upload: the object appears only when
/// [`ObjectWriter::commit`] completes the upload; dropping the writer before that
/// (an error, a panic) aborts the upload, so nothing is left behind. An object
/// smaller than one part is sent with one plain PUT at commit instead (atomic too).
pub struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: ObjPath,
    url: String,
    buf: Vec<u8>,
    upload: Option<WriteMultipart>,
    written: u64,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("url", &self.url)
            .field("written", &self.written)
            .finish()
    }
}

impl ObjectWriter {
    /// Start writing the object at `remote` (nothing is sent yet).
    pub fn create(remote: &RemoteUrl) -> Result<ObjectWriter> {
        let (store, path) = store_for(remote)?;
        Ok(Self::create_in(store, path, remote.as_str()))
    }

    /// Start writing the object at `path` of `store`, named `url` in errors.
    pub fn create_in(store: Arc<dyn ObjectStore>, path: ObjPath, url: &str) -> ObjectWriter {
        ObjectWriter {
            store,
            path,
            url: url.to_string(),
            buf: Vec::new(),
            upload: None,
            written: 0,
        }
    }

    /// The object's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, e: object_store::Error) -> Error {
        store_err(&self.url, e)
    }

    /// Hand buffered bytes to the multipart upload (started on first need), waiting
    /// while too many parts are in flight.
    fn push(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let up = block_on(self.store.put_multipart(&self.path))?.map_err(|e| self.err(e))?;
            self.upload = Some(WriteMultipart::new_with_chunk_size(up, PART));
        }
        let buf = std::mem::take(&mut self.buf);
        if let Some(up) = self.upload.as_mut() {
            block_on(up.wait_for_capacity(PARTS_IN_FLIGHT))?
                .map_err(|e| store_err(&self.url, e))?;
            let _guard = enter()?;
            up.write(&buf);
        }
        Ok(())
    }

    /// Complete the upload: the object appears, whole.
    pub fn commit(mut self) -> Result<()> {
        match self.upload.take() {
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.buf));
                block_on(self.store.put(&self.path, payload))?.map_err(|e| self.err(e))?;
            }
            Some(mut up) => {
                if !self.buf.is_empty() {
                    let _guard = enter()?;
                    up.write(&std::mem::take(&mut self.buf));
                }
                // Every part must be in before completing; `finish` returns a
                // failed part's error without aborting, so wait here and abort
                // ourselves (no parts left behind). `finish` aborts the upload
                // itself when completing fails.
                if let Err(e) = block_on(up.wait_for_capacity(0))? {
                    let _ = block_on(up.abort());
                    return Err(self.err(e));
                }
                block_on(up.finish())?.map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buf.len() >= PART {
            self.push().map_err(super::stream::to_io)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(up) = self.upload.take() {
            // Not committed: abort, so no parts are left behind.
            let _ = block_on(up.abort());
        }
    }
}

/// A temporary local file that is uploaded whole at commit (for writers that seek
/// back, as a zip writer does); removed in any case.
pub struct Spool {
    file: Option<io::BufWriter<File>>,
    tmp: PathBuf,
    dest: ObjectWriter,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("tmp", &self.tmp).finish()
    }
}

static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Spool {
    fn create(dest: ObjectWriter) -> Result<Spool> {
        let dir = std::env::temp_dir();
        let mut attempt = 0;
        loop {
            let n = SPOOL_COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(".tb-spool-{}-{n}.tmp", std::process::id()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(file) => {
                    return Ok(Spool {
                        file: Some(io::BufWriter::with_capacity(1 << 20, file)),
                        tmp,
                        dest,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => {
                    return Err(Error::Io {
                        path: tmp.display().to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    fn file(&mut self) -> io::Result<&mut io::BufWriter<File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("spool already closed"))
    }

    fn commit(mut self) -> Result<()> {
        let url = self.dest.url.clone();
        let io = |e| Error::Io {
            path: url.clone(),
            source: e,
        };
        let file = self
            .file
            .take()
            .ok_or_else(|| io(io::Error::other("closed")))?;
        let mut file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut dest =
            ObjectWriter::create_in(self.dest.store.clone(), self.dest.path.clone(), &url);
        let mut chunk = vec![0u8; PART];
        loop {
            let n = file.read(&mut chunk).map_err(io)?;
            if n == 0 {
                break;
            }
            dest.write_all(&chunk[..n])
                .map_err(|e| relabel_io(e, &url))?;
        }
        dest.commit()
    }
}

fn relabel_io(e: io::Error, url: &str) -> Error {
    crate::format::io::core_or_io(e, url)
}

impl Drop for Spool {
    fn drop(&mut self) {
        drop(self.file.take());
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Where a writer's bytes go: a local [`AtomicFile`], an [`ObjectWriter`], or a
/// [`Spool`]ed file uploaded at commit (when the writer needs to seek). In every case
/// the destination appears only at [`Sink::commit`], and dropping the sink before
/// that leaves nothing behind.
#[derive(Debug)]
pub enum Sink {
    /// A local file written under a temporary name and renamed at commit.
    File(AtomicFile),
    /// A multipart upload completed at commit.
    Object(ObjectWriter),
    /// A temporary file uploaded at commit.
    Spool(Spool),
}

impl Sink {
    /// A sink for `loc`. `seekable`: the writer seeks back (a zip writer), so a
    /// remote destination is spooled to a temporary file first.
    pub fn create(loc: &Location, seekable: bool) -> Result<Sink> {
        match loc {
            Location::Local(p) => Ok(Sink::File(AtomicFile::create(p)?)),
            Location::Remote(r) => {
                let w = ObjectWriter::create(r)?;
                if seekable {
                    Ok(Sink::Spool(Spool::create(w)?))
                } else {
                    Ok(Sink::Object(w))
                }
            }
        }
    }

    /// Make the destination appear, complete.
    pub fn commit(self) -> Result<()> {
        match self {
            Sink::File(f) => f.commit(),
            Sink::Object(w) => w.commit(),
            Sink::Spool(s) => s.commit(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Object(w) => w.write(buf),
            Sink::Spool(s) => s.file()?.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(buf),
            Sink::Object(w) => w.write_all(buf),
            Sink::Spool(s) => s.file()?.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Object(w) => w.flush(),
            Sink::Spool(s) => s.file()?.flush(),
        }
    }
}

impl Seek for Sink {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Sink::File(f) => f.seek(pos),
            Sink::Spool(s) => s.file()?.seek(pos),
            Sink::Object(w) => match pos {
                SeekFrom::Current(0) => Ok(w.written),
                _ => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "an upload cannot seek back",
                )),
            },
        }
    }
}
