//! `from_files` over object-store URLs: a path given as URL text (`s3://...`) is a
//! [`Location`] read through the location layer. [`headers`] reads the headers of all
//! objects concurrently (at most 64 requests in flight); an opened object is streamed
//! chunk by chunk with read-ahead ([`rows`]), never held whole (Fortran-ordered
//! arrays of more than one dimension excepted: those are read into memory when
//! opened). Local paths take exactly the code paths they took before.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[path = "remote_rows.rs"]
pub(crate) mod rows;

use crate::error::{Error, Result};
use crate::format::npy::{self, LoadOptions, NpyHeader};
use crate::format::npz::NpzArchive;
use crate::format::FileFormat;
use crate::location::{is_url, Location, RemoteUrl, StorageOptions};
use crate::tensor::Tensor;

/// The location of a `from_files` path: URL text is a remote object.
pub(crate) fn location(p: &Path, opts: &StorageOptions) -> Result<Location> {
    match p.to_str() {
        Some(s) if is_url(s) => Location::parse(s, opts),
        _ => Ok(Location::Local(p.to_path_buf())),
    }
}

/// [`crate::format::detect`] of a path or URL.
pub(crate) fn detect(p: &Path, opts: &StorageOptions) -> Option<FileFormat> {
    match location(p, opts) {
        Ok(Location::Local(p)) => crate::format::detect(p),
        Ok(loc) => crate::format::detect_location(&loc),
        Err(_) => None,
    }
}

/// A file's `.npy` headers, each with the label that names it.
pub(crate) type Heads = Vec<(NpyHeader, String)>;

/// A file's headers and, for a remote `.npy` object, what its header read found.
pub(crate) type Headed = (Heads, Option<KnownObject>);

/// A remote `.npy` object as its header read found it when the dataset was made:
/// size, ETag and header. With it every GET of the object's rows can be planned
/// (and issued) before any response: each asks for that ETag (`If-Match`), so an
/// object replaced since is an error, never rows of two versions.
#[derive(Clone, Debug)]
pub(crate) struct KnownObject {
    pub(crate) size: u64,
    pub(crate) etag: Option<String>,
    pub(crate) header: NpyHeader,
}

/// The `.npy` headers of each file of `paths` (with the label naming each: the file,
/// or `file:key` for the `keys` members of `.npz` archives), in order. Local files
/// are read in parallel as before; remote objects concurrently, at most
/// [`npy::remote::HEADERS_IN_FLIGHT`] in flight (`.npy`: a HEAD and one small ranged read
/// each; `.npz`: the central directory and the chosen members' headers), so the
/// length of a dataset over thousands of objects is known in seconds. A remote
/// `.npy` object comes with what its header read found ([`KnownObject`]).
pub(crate) fn headers(
    paths: &[PathBuf],
    keys: Option<&[String]>,
    so: &StorageOptions,
) -> Vec<Result<Headed>> {
    use rayon::prelude::*;
    let one = |p: &PathBuf| -> Result<Heads> {
        let name = p.display().to_string();
        match keys {
            None => Ok(vec![(npy_header(p, so)?, name)]),
            Some(keys) => {
                let a = open_npz(p, so)?;
                keys.iter()
                    .map(|k| Ok((a.header(k)?, format!("{name}:{k}"))))
                    .collect()
            }
        }
    };
    let locs: Vec<Result<Location>> = paths.iter().map(|p| location(p, so)).collect();
    let is_remote: Vec<bool> = locs
        .iter()
        .map(|l| matches!(l, Ok(Location::Remote(_))))
        .collect();
    let remote: Vec<usize> = (0..paths.len()).filter(|&i| is_remote[i]).collect();
    let mut out: Vec<Option<Result<Headed>>> = paths
        .par_iter()
        .enumerate()
        .map(|(i, p)| (!is_remote[i]).then(|| one(p).map(|h| (h, None))))
        .collect();
    if keys.is_none() {
        let urls: Vec<RemoteUrl> = remote
            .iter()
            .filter_map(|&i| match &locs[i] {
                Ok(Location::Remote(u)) => Some(u.clone()),
                _ => None,
            })
            .collect();
        match npy::read_headers_remote(&urls) {
            Ok(heads) => {
                for (&i, h) in remote.iter().zip(heads) {
                    out[i] = Some(h.map(|(obj, h)| {
                        let known = KnownObject {
                            size: obj.size(),
                            etag: obj.etag().map(String::from),
                            header: h.clone(),
                        };
                        (vec![(h, paths[i].display().to_string())], Some(known))
                    }));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for &i in &remote {
                    out[i] = Some(Err(Error::InvalidArgument(msg.clone())));
                }
            }
        }
    } else {
        // Blocking archive reads on a few threads (each waits on the shared I/O runtime).
        let next = AtomicUsize::new(0);
        let done = Mutex::new(Vec::with_capacity(remote.len()));
        let workers = remote.len().min(npy::remote::HEADERS_IN_FLIGHT);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = remote.get(k) else { break };
                    let r = one(&paths[i]).map(|h| (h, None));
                    done.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                });
            }
        });
        for (i, r) in done.into_inner().unwrap_or_else(|e| e.into_inner()) {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::InvalidArgument("no header read".into()))))
        .collect()
}

/// Open the `.npz` archive at a path or URL.
pub(crate) fn open_npz(p: &Path, opts: &StorageOptions) -> Result<NpzArchive> {
    NpzArchive::open_location(&location(p, opts)?)
}

/// The `.npy` header at a path or URL.
pub(crate) fn npy_header(p: &Path, opts: &StorageOptions) -> Result<NpyHeader> {
    match location(p, opts)? {
        Location::Local(p) => npy::read_header(p),
        Location::Remote(r) => {
            let (obj, head) = crate::location::RemoteObject::open_reading(&r, npy::remote::HEAD)?;
            npy::remote::header_from_head(&obj, head)
        }
    }
}

/// Load the `.npy` array at a path or URL (a URL into memory: `mmap` is ignored).
pub(crate) fn load_npy(p: &Path, opts: &StorageOptions, lo: &LoadOptions) -> Result<Tensor> {
    match location(p, opts)? {
        Location::Local(p) => npy::load(p, lo),
        Location::Remote(r) => npy::load_url(&r, &in_memory(lo)),
    }
}

/// The load options for a member of `archive`: a remote one is read into memory.
pub(crate) fn member_options(archive: &NpzArchive, lo: &LoadOptions) -> LoadOptions {
    if archive.is_remote() {
        in_memory(lo)
    } else {
        *lo
    }
}

fn in_memory(lo: &LoadOptions) -> LoadOptions {
    LoadOptions { mmap: None, ..*lo }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::data::{Cardinality, Dataset, FilesOptions};
    use crate::format::{npy, npz};
    use crate::location::{Location, StorageOptions};
    use crate::tensor::Tensor;

    fn loc(s: &str) -> Location {
        Location::parse(s, &StorageOptions::new()).unwrap()
    }

    #[test]
    fn from_files_over_urls_interleaves_like_local_files() {
        let mut urls = vec![];
        for (i, rows) in [3usize, 1, 2].into_iter().enumerate() {
            let v: Vec<i64> = (0..rows as i64 * 2).map(|x| x + 100 * i as i64).collect();
            let t = Tensor::from_slice(&v, &[rows, 2]).unwrap();
            let url = format!("memory:///data-tests/f{i}.npy");
            npy::save_location(&loc(&url), &t.view()).unwrap();
            let zurl = format!("memory:///data-tests/f{i}.npz");
            npz::save_location(&loc(&zurl), &[("x", t.view())], true).unwrap();
            urls.push((PathBuf::from(url), PathBuf::from(zurl)));
        }
        let firsts = |ds: &Dataset| -> Vec<i64> {
            ds.iter()
                .unwrap()
                .map(|e| e.unwrap()[0].to_vec::<i64>().unwrap()[0])
                .collect()
        };
        let npys: Vec<PathBuf> = urls.iter().map(|(a, _)| a.clone()).collect();
        let npzs: Vec<PathBuf> = urls.iter().map(|(_, b)| b.clone()).collect();
        for paths in [npys, npzs] {
            let ds = Dataset::from_files(paths.clone(), FilesOptions::default())
                .unwrap()
                .0;
            assert_eq!(ds.cardinality(), Cardinality::Finite(6));
            assert_eq!(firsts(&ds), vec![0, 2, 4, 100, 200, 202]);
            let opts = FilesOptions {
                cycle_length: 2,
                ..FilesOptions::default()
            };
            let il = Dataset::from_files(paths, opts).unwrap().0;
            assert_eq!(firsts(&il), vec![0, 100, 2, 4, 200, 202]);
        }
        let Err(e) = Dataset::from_files(
            vec![PathBuf::from("memory:///data-tests/missing.npy")],
            FilesOptions::default(),
        ) else {
            panic!("a missing object was accepted")
        };
        assert!(
            e.to_string().contains("memory:///data-tests/missing.npy"),
            "{e}"
        );
    }
}
