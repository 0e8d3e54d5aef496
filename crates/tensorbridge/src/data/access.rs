//! Random access: element `i` of an epoch without running the ones before it.
//!
//! Sources that know where their rows lie support it (`from_tensor_slices`,
//! `range`, `from_files`), and so do the stages that map an index to their
//! input's indices without looking at the data: built-in and Python `map`s,
//! `prefetch`, `take`, `skip`, `shard`, a finite `repeat`, `batch`,
//! `global_shuffle`, `zip`, `concatenate` and `enumerate`. Anything that needs
//! the elements before `i` to know element `i` (`shuffle`, `filter`, `unbatch`,
//! `padded_batch`, sampling) does not; [`Dataset::random_access_blocker`] names
//! the first such stage.
//!
//! `from_files` maps a global row (over the files in their original order, as
//! passed to `from_files`) to a file and a row by binary search over prefix sums.
//! An `.npy` file in C order and native byte order is read with one positioned
//! read (`pread`) of exactly the row's bytes through a cached file handle: no
//! mapping, so reading rows at random all over many large files keeps the
//! resident memory at the rows asked for (pages of a mapping read at random would
//! all count as the process's memory). Other files (`.npz` members, Fortran
//! order, swapped bytes) are loaded as `from_files` iteration loads them (mapped
//! where possible) and kept in a small cache of [`MAX_LOADED`] files.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use super::batch::{assemble, Recycler};
use super::comp::{materialize, Comp, Item};
use super::files::{name_file, open_file, FileEntry, FilesPlan};
use super::map::{apply_fn, map_ops};
use super::{Cardinality, Dataset, Node};
use crate::error::{Error, Result};
use crate::tensor::{Index, Tensor};

/// Files kept loaded (mapped or decompressed) for random access at once.
const MAX_LOADED: usize = 4;
/// File handles kept open for positioned reads at once.
const MAX_HANDLES: usize = 256;

/// How the rows of one file are read at random.
enum RowSource {
    /// Positioned reads of `row_bytes` at `offset + i * row_bytes`.
    #[cfg(unix)]
    Pread {
        file: std::fs::File,
        offset: u64,
        row_bytes: usize,
    },
    /// The whole file's arrays, loaded.
    Loaded(Vec<Tensor>),
}

/// The random-access index of a `from_files` source: where each file's rows start
/// and a small cache of open files.
pub(crate) struct FileIndex {
    /// `starts[k]` = global row of file `k`'s first row; one more entry at the end.
    starts: Vec<u64>,
    /// Open files by index: at most [`MAX_HANDLES`], of which at most
    /// [`MAX_LOADED`] loaded (an arbitrary one is closed to make room).
    cache: RwLock<HashMap<usize, Arc<RowSource>>>,
}

impl FileIndex {
    pub(crate) fn new(files: &[FileEntry]) -> FileIndex {
        let mut starts = Vec::with_capacity(files.len() + 1);
        let mut total = 0u64;
        starts.push(0);
        for f in files {
            total += f.rows as u64;
            starts.push(total);
        }
        FileIndex {
            starts,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The file holding global row `i` and the row within it.
    pub(crate) fn locate(&self, i: u64) -> Option<(usize, usize)> {
        if i >= *self.starts.last()? {
            return None;
        }
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        Some((k, (i - self.starts[k]) as usize))
    }

    fn source(&self, k: usize, entry: &FileEntry, plan: &FilesPlan) -> Result<Arc<RowSource>> {
        // The common case (a handle already open) takes only the read lock: readers
        // on several threads do not wait for each other.
        if let Some(s) = self.read_cache().get(&k) {
            return Ok(s.clone());
        }
        // Opened without the lock: other threads keep reading meanwhile.
        let src = Arc::new(open_source(entry, plan).map_err(|e| name_file(e, &entry.path))?);
        let mut c = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let loaded = |s: &RowSource| matches!(s, RowSource::Loaded(_));
        if loaded(&src) {
            let held: Vec<usize> = c
                .iter()
                .filter(|(_, s)| loaded(s))
                .map(|(j, _)| *j)
                .collect();
            if held.len() >= MAX_LOADED {
                c.remove(&held[0]);
            }
        }
        if c.len() >= MAX_HANDLES {
            if let Some(j) = c.keys().next().copied() {
                c.remove(&j);
            }
        }
        c.insert(k, src.clone());
        Ok(src)
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<usize, Arc<RowSource>>> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Global row `i` of `files` (the original file list).
    pub(crate) fn row(&self, i: u64, files: &[FileEntry], plan: &FilesPlan) -> Result<Item> {
        let (k, r) = self
            .locate(i)
            .ok_or_else(|| out_of_range(i, self.starts[files.len()]))?;
        let entry = &files[k];
        match &*self.source(k, entry, plan)? {
            #[cfg(unix)]
            RowSource::Pread {
                file,
                offset,
                row_bytes,
            } => {
                use std::os::unix::fs::FileExt;
                let (dtype, shape) = &plan.spec[0];
                let at = offset + (r as u64) * (*row_bytes as u64);
                // SAFETY: `read_exact_at` fills every byte of the buffer or fails
                // (then the buffer is dropped).
                let t = unsafe {
                    Tensor::build_overwrite(*dtype, shape, |dst| {
                        file.read_exact_at(dst, at).map_err(|e| Error::Io {
                            path: entry.path.display().to_string(),
                            source: e,
                        })
                    })
                }?;
                Ok(vec![Comp::Ready(t)])
            }
            RowSource::Loaded(comps) => comps
                .iter()
                .map(|t| t.index(&[Index::At(r as isize)]).map(Comp::Ready))
                .collect(),
        }
    }
}

/// Open one file for random access: positioned reads where the bytes allow.
fn open_source(entry: &FileEntry, plan: &FilesPlan) -> Result<RowSource> {
    #[cfg(unix)]
    if plan.keys.is_none() {
        use crate::dtype::ByteOrder;
        use crate::format::npy;
        let name = entry.path.display().to_string();
        let h = npy::read_header(&entry.path)?;
        let (dtype, row) = &plan.spec[0];
        let d = h.resolve_dtype(None, &name)?;
        let native = h.byte_order == ByteOrder::NATIVE || d.size() == 1;
        let same = d == *dtype
            && h.shape.first() == Some(&entry.rows)
            && h.shape.get(1..) == Some(row.as_slice());
        if !same {
            return Err(Error::Format {
                path: name,
                reason: format!(
                    "changed since the dataset was made: it now holds shape {:?} ({d}), expected {} rows of shape {row:?} ({dtype})",
                    h.shape, entry.rows
                ),
            });
        }
        if native && !h.fortran_order {
            let file = std::fs::File::open(&entry.path).map_err(|e| Error::Io {
                path: name.clone(),
                source: e,
            })?;
            let row_bytes = row.iter().product::<usize>() * dtype.size();
            let need = h.data_offset as u64 + (entry.rows * row_bytes) as u64;
            let have = file.metadata().map(|m| m.len()).unwrap_or(0);
            if have < need {
                return Err(Error::Format {
                    path: name,
                    reason: format!("is truncated: {have} bytes, the header needs {need}"),
                });
            }
            return Ok(RowSource::Pread {
                file,
                offset: h.data_offset as u64,
                row_bytes,
            });
        }
    }
    Ok(RowSource::Loaded(open_file(entry, plan)?))
}

fn out_of_range(i: u64, n: u64) -> Error {
    Error::Index(format!(
        "index {i} is out of range for a dataset of {n} elements"
    ))
}

impl Dataset {
    /// The name of the first stage (from the end) that prevents random access, or
    /// `None` when [`Dataset::get`] works (see [`Dataset::random_access_len`]).
    pub fn random_access_blocker(&self) -> Option<&'static str> {
        match &*self.node {
            Node::Files { .. } | Node::Slices { .. } | Node::Range { .. } => None,
            Node::MapOps { input, .. }
            | Node::MapFn { input, .. }
            | Node::Prefetch { input, .. }
            | Node::Take { input, .. }
            | Node::Skip { input, .. }
            | Node::Shard { input, .. }
            | Node::ShardRows { input, .. }
            | Node::Batch { input, .. }
            | Node::GlobalShuffle { input, .. }
            | Node::Enumerate { input, .. }
            | Node::AssertCardinality { input, .. } => input.random_access_blocker(),
            Node::Repeat { input, count } => match count {
                None => Some("repeat"),
                Some(_) => input.random_access_blocker(),
            },
            Node::Zip { inputs } => inputs.iter().find_map(|d| d.random_access_blocker()),
            Node::Concatenate { first, second } => first
                .random_access_blocker()
                .or_else(|| second.random_access_blocker()),
            Node::Shuffle { .. } => Some("shuffle"),
            Node::Filter { .. } => Some("filter"),
            Node::Unbatch { .. } => Some("unbatch"),
            Node::PaddedBatch { .. } => Some("padded_batch"),
            Node::Sample { .. } => Some("sample_from_datasets"),
            Node::Choose { .. } => Some("choose_from_datasets"),
        }
        .or_else(|| match self.cardinality() {
            Cardinality::Finite(_) => None,
            Cardinality::Infinite => Some("an infinite dataset"),
            Cardinality::Unknown => Some("a dataset of unknown length"),
        })
    }

    /// Whether random access reads files (then a global shuffle reads ahead on
    /// threads).
    pub(crate) fn reads_files(&self) -> bool {
        matches!(&*self.node, Node::Files { .. })
            || self.inputs().into_iter().any(Dataset::reads_files)
    }

    /// The number of elements when element `i` can be read directly with
    /// [`Dataset::get`]; `None` when a stage needs the elements before it (see
    /// [`Dataset::random_access_blocker`]).
    pub fn random_access_len(&self) -> Option<u64> {
        match (self.random_access_blocker(), self.cardinality()) {
            (None, Cardinality::Finite(n)) => Some(n),
            _ => None,
        }
    }

    /// Element `i` of an epoch (epoch 0's order for a `global_shuffle`), as
    /// iterating would yield it. [`Error::Index`] when `i` is out of range,
    /// [`Error::InvalidArgument`] naming the stage when the dataset has no random
    /// access.
    pub fn get(&self, i: u64) -> Result<Vec<Tensor>> {
        if let Some(op) = self.random_access_blocker() {
            return Err(Error::InvalidArgument(format!(
                "this dataset has no random access: {op} needs the elements before the one asked for"
            )));
        }
        materialize(self.get_item(i)?)
    }

    /// [`Dataset::get`] with built-in ops still pending (they fuse downstream).
    pub(crate) fn get_item(&self, i: u64) -> Result<Item> {
        let n = match self.cardinality() {
            Cardinality::Finite(n) => n,
            _ => u64::MAX,
        };
        if i >= n {
            return Err(out_of_range(i, n));
        }
        match &*self.node {
            Node::Files {
                files, plan, index, ..
            } => index.row(i, files, plan),
            Node::Slices { comps, .. } => comps
                .iter()
                .map(|t| t.index(&[Index::At(i as isize)]).map(Comp::Ready))
                .collect(),
            Node::Range { .. } => Ok(vec![Comp::Ready(Tensor::from_slice(&[i as i64], &[])?)]),
            Node::MapOps { input, ops } => map_ops(input.get_item(i)?, ops),
            Node::MapFn { input, f, .. } => apply_fn(f, input.get_item(i)?),
            Node::Prefetch { input, .. }
            | Node::Take { input, .. }
            | Node::AssertCardinality { input, .. } => input.get_item(i),
            Node::Skip { input, n } => input.get_item(i + n.unwrap_or(0)),
            Node::Shard { input, num, index } => input.get_item(i * num + index),
            Node::ShardRows {
                input,
                num,
                index,
                block,
            } => input.get_item(super::shard_rows::row(i, *num, *index, *block)),
            Node::Repeat { input, .. } => match input.cardinality() {
                Cardinality::Finite(m) if m > 0 => input.get_item(i % m),
                _ => Err(out_of_range(i, 0)),
            },
            Node::Batch { input, size, .. } => {
                let m = match input.cardinality() {
                    Cardinality::Finite(m) => m,
                    _ => u64::MAX,
                };
                let lo = i * *size as u64;
                let hi = (lo + *size as u64).min(m);
                let rows = (lo..hi)
                    .map(|j| input.get_item(j))
                    .collect::<Result<Vec<_>>>()?;
                let ts = assemble(&rows, &mut Recycler::new(0))?;
                Ok(ts.into_iter().map(Comp::Ready).collect())
            }
            Node::GlobalShuffle { input, seed, n, .. } => {
                let perm = super::global::permutation(*n, seed.load(Ordering::Relaxed), 0);
                input.get_item(perm.apply(i))
            }
            Node::Zip { inputs } => {
                let mut out = Vec::new();
                for d in inputs {
                    out.extend(d.get_item(i)?);
                }
                Ok(out)
            }
            Node::Concatenate { first, second } => match first.cardinality() {
                Cardinality::Finite(m) if i >= m => second.get_item(i - m),
                _ => first.get_item(i),
            },
            Node::Enumerate { input, start } => {
                let mut out = vec![Comp::Ready(Tensor::from_slice(
                    &[start.wrapping_add(i as i64)],
                    &[],
                )?)];
                out.extend(input.get_item(i)?);
                Ok(out)
            }
            Node::Shuffle { .. }
            | Node::Filter { .. }
            | Node::Unbatch { .. }
            | Node::PaddedBatch { .. }
            | Node::Sample { .. }
            | Node::Choose { .. } => Err(Error::InvalidArgument(format!(
                "this dataset has no random access: {} needs the elements before the one asked for",
                self.random_access_blocker().unwrap_or("a stage")
            ))),
        }
    }
}
