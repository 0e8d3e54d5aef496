//! Python bindings for `.npy` / `.npz` files: `load`, `save`, `savez`, and `NpzFile`,
//! a lazy read-only mapping over an archive's members.

use std::sync::Arc;

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use tensorbridge::format::convert::{self, ConvertOptions};
use tensorbridge::format::npy::{self, LoadOptions};
use tensorbridge::format::npz::{self, NpzArchive};
use tensorbridge::format::{self, FileFormat};

use tensorbridge::location::{Location, RemoteObject, RemoteUrl};
use tensorbridge::tensor::Index;

use crate::{location, parse_casting, parse_dtype, Held, OrPy, PyTensor};

/// `storage_options`: object_store's configuration keys and values.
type Options = std::collections::BTreeMap<String, String>;

fn options(mmap: Option<bool>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<LoadOptions> {
    Ok(LoadOptions {
        mmap,
        dtype: dtype.map(parse_dtype).transpose()?,
        ..LoadOptions::default()
    })
}

/// Load a `.npy` file. `mmap`: `True` maps the file (zero-copy, read-only),
/// `False` reads it, `None` lets tensorbridge choose (see `tensorbridge.load`).
/// `path` may be a URL (`storage_options` configure its store).
#[pyfunction]
#[pyo3(signature = (path, mmap=None, dtype=None, storage_options=None))]
fn load_npy(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    mmap: Option<bool>,
    dtype: Option<&Bound<'_, PyAny>>,
    storage_options: Option<Options>,
) -> PyResult<PyTensor> {
    let opts = options(mmap, dtype)?;
    let loc = location(path, storage_options)?;
    let t = py
        .allow_threads(|| match &loc {
            Location::Local(p) => npy::load(p, &opts),
            Location::Remote(r) => npy::load_url(r, &opts),
        })
        .or_py()?;
    Ok(PyTensor { inner: t })
}

/// `tb.load`: the `.npy` file's tensor, or an `NpzArchiveHandle` for an `.npz`
/// archive — by the core's one detection rule (first bytes, else extension).
/// `path` may be a URL (`storage_options` configure its store).
#[pyfunction]
#[pyo3(signature = (path, mmap=None, dtype=None, storage_options=None))]
fn load(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    mmap: Option<bool>,
    dtype: Option<&Bound<'_, PyAny>>,
    storage_options: Option<Options>,
) -> PyResult<PyObject> {
    let opts = options(mmap, dtype)?;
    let loc = location(path, storage_options)?;
    match py
        .allow_threads(|| format::load_location(&loc, &opts))
        .or_py()?
    {
        format::Loaded::Array(t) => Ok(Py::new(py, PyTensor { inner: t })?.into_any()),
        format::Loaded::Archive(a) => Ok(Py::new(
            py,
            NpzArchiveHandle {
                archive: Arc::new(a),
            },
        )?
        .into_any()),
    }
}

/// Write one array to a `.npy` file (atomically: temporary name, then rename) or
/// object (a multipart upload, aborted on error).
#[pyfunction]
#[pyo3(signature = (path, item, storage_options=None))]
fn save_npy(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    item: &Bound<'_, PyAny>,
    storage_options: Option<Options>,
) -> PyResult<()> {
    let loc = location(path, storage_options)?;
    let held = Held::extract(item, "the array to save")?;
    let view = held.view()?;
    py.allow_threads(|| npy::save_location(&loc, &view)).or_py()
}

/// Write named arrays to a `.npz` archive (atomically). Stored members' data is
/// 64-byte aligned so they map zero-copy.
#[pyfunction]
#[pyo3(signature = (path, names, items, compress=false, storage_options=None))]
fn save_npz(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    names: Vec<String>,
    items: &Bound<'_, PyList>,
    compress: bool,
    storage_options: Option<Options>,
) -> PyResult<()> {
    let loc = location(path, storage_options)?;
    if names.len() != items.len() {
        return Err(PyValueError::new_err("one name per array"));
    }
    let held = items
        .iter()
        .zip(&names)
        .map(|(obj, name)| Held::extract(&obj, &format!("array {name:?}")))
        .collect::<PyResult<Vec<_>>>()?;
    let views = held.iter().map(Held::view).collect::<PyResult<Vec<_>>>()?;
    let members: Vec<(&str, _)> = names.iter().map(String::as_str).zip(views).collect();
    py.allow_threads(|| npz::save_location(&loc, &members, compress))
        .or_py()
}

/// An opened `.npz` archive: members are read only when accessed; stored members
/// with aligned data are zero-copy views of one shared mapping of the file.
#[pyclass(frozen, module = "tensorbridge._core")]
struct NpzArchiveHandle {
    archive: Arc<NpzArchive>,
}

#[pymethods]
impl NpzArchiveHandle {
    #[new]
    #[pyo3(signature = (path, storage_options=None))]
    fn open(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        storage_options: Option<Options>,
    ) -> PyResult<Self> {
        let loc = location(path, storage_options)?;
        let archive = py
            .allow_threads(|| NpzArchive::open_location(&loc))
            .or_py()?;
        Ok(NpzArchiveHandle {
            archive: Arc::new(archive),
        })
    }

    /// Member names, in archive order.
    fn keys(&self) -> Vec<String> {
        self.archive.names().map(str::to_string).collect()
    }

    fn __len__(&self) -> usize {
        self.archive.len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.archive.contains(name)
    }

    /// Load a member as a tensor (`mmap` and `dtype` as in `load_npy`).
    #[pyo3(signature = (name, mmap=None, dtype=None))]
    fn load(
        &self,
        py: Python<'_>,
        name: &str,
        mmap: Option<bool>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        if !self.archive.contains(name) {
            return Err(PyKeyError::new_err(format!(
                "{name:?} is not a member of {}",
                self.archive.path()
            )));
        }
        let opts = options(mmap, dtype)?;
        let archive = self.archive.clone();
        let t = py.allow_threads(|| archive.load(name, &opts)).or_py()?;
        Ok(PyTensor { inner: t })
    }

    /// What the archive says about a member: compression, sizes, dtype, shape, order.
    fn info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let m = self
            .archive
            .member(name)
            .ok_or_else(|| PyKeyError::new_err(name.to_string()))?;
        let d = PyDict::new(py);
        d.set_item("name", &m.name)?;
        d.set_item("compression", m.compression.name())?;
        d.set_item("compressed_size", m.compressed_size)?;
        d.set_item("size", m.size)?;
        // A remote archive reads the member's header over the network: never
        // with the GIL held (a server in this process could not answer).
        let archive = self.archive.clone();
        let name_owned = name.to_string();
        let read = py.allow_threads(move || -> tensorbridge::error::Result<_> {
            Ok(match archive.remote_stored_header(&name_owned)? {
                Some((obj, image, len, h)) => (h, Some((obj, image, len))),
                None => (archive.header(&name_owned)?, None),
            })
        });
        if let Ok((h, stored)) = read {
            d.set_item("dtype", h.dtype.map_or(h.descr.as_str(), |t| t.name()))?;
            d.set_item("shape", h.shape.clone())?;
            d.set_item("fortran_order", h.fortran_order)?;
            if let Some((obj, image, len)) = stored {
                // A stored member of a remote archive: what `load_npz_rows` needs to
                // read rows of it with no other request.
                let facts: NpyFacts = (
                    h.shape.clone(),
                    h.descr.clone(),
                    h.fortran_order,
                    h.data_offset,
                    obj.size(),
                    obj.etag().map(str::to_string),
                );
                d.set_item("member_facts", (image, len, facts))?;
            }
        }
        Ok(d)
    }

    /// The archive's path.
    #[getter]
    fn path(&self) -> String {
        self.archive.path().to_string()
    }
}

/// The format of the file at `path` (`"npy"`, `"npz"`, `"safetensors"`,
/// `"tfrecord"`), by its first bytes, else its extension; `None` if neither tells.
#[pyfunction]
#[pyo3(signature = (path, storage_options=None))]
fn detect_format(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    storage_options: Option<Options>,
) -> PyResult<Option<&'static str>> {
    let loc = location(path, storage_options)?;
    Ok(py
        .allow_threads(|| format::detect_location(&loc))
        .map(FileFormat::name))
}

/// Convert the file `src` to `dst` (formats by content and extension), streaming;
/// the core's `format::convert`, as the `tensorbridge convert` command runs it.
#[pyfunction]
#[pyo3(signature = (src, dst, dtype=None, casting="unsafe", member=None, compress=false, storage_options=None))]
#[allow(clippy::too_many_arguments)]
fn convert_file(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    casting: &str,
    member: Option<String>,
    compress: bool,
    storage_options: Option<Options>,
) -> PyResult<()> {
    let src = location(src, storage_options.clone())?;
    let dst = location(dst, storage_options)?;
    let opts = ConvertOptions {
        dtype: dtype.map(parse_dtype).transpose()?,
        casting: parse_casting(casting)?,
        member,
        compress,
        ..ConvertOptions::default()
    };
    py.allow_threads(|| convert::convert_location(&src, &dst, &opts))
        .or_py()
}

/// `(data_offset, data_len)` of the `.npy` header at the start of `head` (which must
/// hold the whole header): where the elements start and how many bytes they take.
/// For `tb.load(fileobj)`, which reads exactly the header and then the data.
#[pyfunction]
fn npy_header_extent(head: &[u8], name: &str) -> PyResult<(usize, usize)> {
    let h = npy::NpyHeader::parse(head, name).or_py()?;
    Ok((h.data_offset, h.data_len()))
}

/// Load an `.npy` array from its header bytes `head` and element bytes `data`, read
/// from a file object named `name` (`mmap` and `dtype` as in `load_npy`; `mmap=True`
/// is refused).
#[pyfunction]
#[pyo3(signature = (head, data, name, mmap=None, dtype=None))]
fn load_npy_parts(
    py: Python<'_>,
    head: &[u8],
    data: &[u8],
    name: &str,
    mmap: Option<bool>,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let opts = options(mmap, dtype)?;
    let t = py
        .allow_threads(|| npy::read_from_parts(head, data, name, &opts))
        .or_py()?;
    Ok(PyTensor { inner: t })
}

/// Open an `.npz` archive held in memory (the bytes of a file object named `name`).
#[pyfunction]
fn npz_from_bytes(py: Python<'_>, data: &[u8], name: &str) -> PyResult<NpzArchiveHandle> {
    let archive = py
        .allow_threads(|| NpzArchive::from_bytes(data, name))
        .or_py()?;
    Ok(NpzArchiveHandle {
        archive: Arc::new(archive),
    })
}

/// The URLs of the objects matching the glob `pattern` (a URL whose key holds `*`,
/// `?`, `[...]` or `**`), sorted: one listing of the pattern's literal prefix.
#[pyfunction]
#[pyo3(signature = (pattern, storage_options=None))]
fn glob_urls(
    py: Python<'_>,
    pattern: &str,
    storage_options: Option<Options>,
) -> PyResult<Vec<String>> {
    let loc = Location::parse(pattern, &storage_options.unwrap_or_default()).or_py()?;
    let Location::Remote(r) = loc else {
        return Err(PyValueError::new_err(format!("{pattern}: not a URL")));
    };
    let found = py
        .allow_threads(|| tensorbridge::location::glob(&r))
        .or_py()?;
    Ok(found.into_iter().map(|o| o.url).collect())
}

/// The URLs (`paths`) of `.npy` objects, as `RemoteUrl`s.
fn remote_urls(paths: &[String], storage_options: Option<Options>) -> PyResult<Vec<RemoteUrl>> {
    let opts = storage_options.unwrap_or_default();
    paths
        .iter()
        .map(|p| match Location::parse(p, &opts).or_py()? {
            Location::Remote(r) => Ok(r),
            Location::Local(_) => Err(PyValueError::new_err(format!("{p}: not a URL"))),
        })
        .collect()
}

/// What the driver of a distributed read knows of an `.npy` object from its header
/// pass: `(shape, descr, fortran_order, data_offset, size, etag)`.
type NpyFacts = (Vec<usize>, String, bool, usize, u64, Option<String>);

/// The `.npy` headers of the objects `urls`, fetched concurrently (one small ranged
/// read each): per object `(shape, descr, fortran_order, data_offset, size, etag)`.
/// The first failure (in the order given) is raised, naming its URL.
#[pyfunction]
#[pyo3(signature = (urls, storage_options=None))]
fn npy_headers(
    py: Python<'_>,
    urls: Vec<String>,
    storage_options: Option<Options>,
) -> PyResult<Vec<NpyFacts>> {
    let remotes = remote_urls(&urls, storage_options)?;
    let found = py
        .allow_threads(|| npy::read_headers_remote(&remotes))
        .or_py()?;
    found
        .into_iter()
        .map(|r| {
            let (obj, h) = r.or_py()?;
            let etag = obj.etag().map(str::to_string);
            Ok((
                h.shape,
                h.descr,
                h.fortran_order,
                h.data_offset,
                obj.size(),
                etag,
            ))
        })
        .collect()
}

/// Rows `start:stop` of the `.npy` object at the URL `path`, read by ranged GETs of
/// just those rows' bytes straight into the tensor. `header`: the object's facts as
/// `npy_headers` gave them — then the rows' GETs are the only requests, each asking
/// for that ETag (`If-Match`: an object replaced since is an error); without it the
/// object is opened (HEAD) and its header read first. `dtype` as in `load_npy`
/// (bfloat16 for a `'V2'` object).
#[pyfunction]
#[pyo3(signature = (path, start, stop, dtype=None, storage_options=None, header=None))]
fn load_npy_rows(
    py: Python<'_>,
    path: String,
    start: usize,
    stop: usize,
    dtype: Option<&Bound<'_, PyAny>>,
    storage_options: Option<Options>,
    header: Option<NpyFacts>,
) -> PyResult<PyTensor> {
    let opts = options(None, dtype)?;
    let url = remote_urls(&[path], storage_options)?.remove(0);
    let t = py
        .allow_threads(|| match header {
            Some((shape, descr, fortran, data_offset, size, etag)) => {
                let h = npy::header_from_parts(&descr, fortran, &shape, data_offset, url.as_str())?;
                let obj = RemoteObject::known(&url, size, etag)?;
                npy::load_rows_at(&obj, &h, 0, size, start, stop, &opts)
            }
            None => {
                let obj = RemoteObject::open(&url)?;
                npy::load_rows_remote(&obj, start, stop, &opts)
            }
        })
        .or_py()?;
    Ok(PyTensor { inner: t })
}

/// Where a stored member's `.npy` image lies in its archive object and that image's
/// facts: `(image start, image length, facts)`, as `NpzArchiveHandle.info` gives them
/// (`"member_facts"`).
type MemberFacts = (u64, u64, NpyFacts);

/// Rows `start:stop` of member `name` of the `.npz` archive at the URL `path`: the
/// archive's directory (one read of its end), then, for a stored member, ranged GETs
/// of just those rows' bytes; a deflated member is inflated as it streams (only
/// that member is read) and sliced. `dtype` as in `load_npy`. `member`: a stored
/// member's facts as the driver read them (`NpzArchiveHandle.info(name)
/// ["member_facts"]`) — then the rows' GETs are the only requests, each asking for
/// the archive's ETag then (an archive replaced since is an error).
#[pyfunction]
#[pyo3(signature = (path, name, start, stop, dtype=None, storage_options=None, member=None))]
#[allow(clippy::too_many_arguments)]
fn load_npz_rows(
    py: Python<'_>,
    path: String,
    name: String,
    start: usize,
    stop: usize,
    dtype: Option<&Bound<'_, PyAny>>,
    storage_options: Option<Options>,
    member: Option<MemberFacts>,
) -> PyResult<PyTensor> {
    let opts = options(None, dtype)?;
    let url = remote_urls(&[path], storage_options)?.remove(0);
    let t = py
        .allow_threads(
            || -> tensorbridge::error::Result<tensorbridge::tensor::Tensor> {
                if let Some((image, len, (shape, descr, fortran, data_offset, size, etag))) = member
                {
                    let label = format!("{}[{name}]", url.as_str());
                    let h = npy::header_from_parts(&descr, fortran, &shape, data_offset, &label)?;
                    let obj = RemoteObject::known(&url, size, etag)?;
                    return npy::load_rows_at(&obj, &h, image, len, start, stop, &opts);
                }
                let archive = NpzArchive::open_location(&Location::Remote(url))?;
                let label = format!("{}[{name}]", archive.path());
                if let Some((obj, image, len)) = archive.remote_stored_image(&name)? {
                    let h = npy::read_header_at(&obj, image, len, &label)?;
                    if !(h.fortran_order && h.shape.len() > 1) {
                        return npy::load_rows_at(&obj, &h, image, len, start, stop, &opts);
                    }
                }
                let whole = archive.load(&name, &opts)?;
                let rows = whole.shape().first().copied().unwrap_or(0);
                if start > stop || stop > rows {
                    return Err(tensorbridge::error::Error::InvalidArgument(format!(
                        "{label}: rows {start}:{stop} are out of range for {rows} rows"
                    )));
                }
                whole
                    .index(&[Index::Slice {
                        start: Some(start as isize),
                        stop: Some(stop as isize),
                        step: 1,
                    }])?
                    .to_contiguous()
            },
        )
        .or_py()?;
    Ok(PyTensor { inner: t })
}

/// Add this module's functions and classes to `tensorbridge._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert_file, m)?)?;
    m.add_function(wrap_pyfunction!(detect_format, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(glob_urls, m)?)?;
    m.add_function(wrap_pyfunction!(load_npy, m)?)?;
    m.add_function(wrap_pyfunction!(save_npy, m)?)?;
    m.add_function(wrap_pyfunction!(save_npz, m)?)?;
    m.add_function(wrap_pyfunction!(npy_header_extent, m)?)?;
    m.add_function(wrap_pyfunction!(load_npy_parts, m)?)?;
    m.add_function(wrap_pyfunction!(npz_from_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(npy_headers, m)?)?;
    m.add_function(wrap_pyfunction!(load_npy_rows, m)?)?;
    m.add_function(wrap_pyfunction!(load_npz_rows, m)?)?;
    m.add_class::<NpzArchiveHandle>()?;
    Ok(())
}
