//! `from_files`: the rows of many `.npy` files (or chosen `.npz` members).
//!
//! [`plan_files`] reads every header up front (known cardinality, mismatched files
//! named); [`FileRows`] then opens at most `cycle_length` files at once, each
//! memory-mapped when opened (a remote object: streamed, see
//! [`super::remote_files::rows`]) and released after its last row, and reads them in
//! `tf.data`'s `interleave` order. Under [`OnError::Skip`] a file that cannot be
//! used is left out with a warning for the iterator (or the caller) that met it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::comp::{Comp, Item};
use super::remote_files::rows::Opening;
use super::rng::{mix, SplitMix64};
use super::state::{bad, field, field_bool, field_opt_u64, field_u64, object, Prov, Stage};
use super::warn::Warnings;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::location::Budget;
use crate::tensor::Tensor;

/// What to do with a file that is missing, corrupt or disagrees with the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// Fail (the iteration, or `from_files` itself) with an error naming the file.
    #[default]
    Raise,
    /// Leave the file out, with a warning naming it.
    Skip,
}

impl OnError {
    /// `"raise"` or `"skip"`.
    pub fn from_name(name: &str) -> Result<OnError> {
        match name {
            "raise" => Ok(OnError::Raise),
            "skip" => Ok(OnError::Skip),
            other => Err(Error::InvalidArgument(format!(
                "on_error must be 'raise' or 'skip', not {other:?}"
            ))),
        }
    }
}

/// Options of [`super::Dataset::from_files`].
#[derive(Clone, Debug)]
pub struct FilesOptions {
    /// `.npz` member names, one component each. `None`: the files are `.npy` (or
    /// `.npz` archives of exactly one member, which is used).
    pub keys: Option<Vec<String>>,
    /// Shuffle the file order (a new order each epoch).
    pub shuffle_files: bool,
    /// Seed of the file-order shuffle (`None`: random).
    pub seed: Option<u64>,
    /// Files open and read round-robin at once (`tf.data` `interleave`); at least 1.
    pub cycle_length: i64,
    /// Consecutive rows taken from one file before moving to the next open one; at
    /// least 1.
    pub block_length: i64,
    /// What to do with files that are missing, corrupt or disagree with the others.
    pub on_error: OnError,
    /// Configuration of the object store of paths given as URLs (`s3://...`).
    pub storage_options: crate::location::StorageOptions,
}

impl Default for FilesOptions {
    fn default() -> Self {
        FilesOptions {
            keys: None,
            shuffle_files: false,
            seed: None,
            cycle_length: 1,
            block_length: 1,
            on_error: OnError::Raise,
            storage_options: Default::default(),
        }
    }
}

/// Read and check the headers of `paths`: the files kept, the plan they share, and
/// a warning per file skipped under [`OnError::Skip`].
pub(crate) fn plan_files(
    paths: Vec<PathBuf>,
    opts: &FilesOptions,
) -> Result<(Vec<FileEntry>, FilesPlan, Vec<String>)> {
    use super::remote_files as rf;
    use crate::format::npy;
    let so = &opts.storage_options;
    if paths.is_empty() {
        return Err(Error::InvalidArgument("from_files: no files given".into()));
    }
    if opts.cycle_length <= 0 || opts.block_length <= 0 {
        return Err(Error::InvalidArgument(format!(
            "from_files: cycle_length and block_length must be positive, not {} and {}",
            opts.cycle_length, opts.block_length
        )));
    }
    let mut keys = opts.keys.clone();
    if let Some(k) = &keys {
        if k.is_empty() {
            return Err(Error::InvalidArgument("from_files: keys is empty".into()));
        }
    } else if rf::detect(&paths[0], so) == Some(crate::format::FileFormat::Npz) {
        let a = rf::open_npz(&paths[0], so)?;
        let names: Vec<String> = a.names().map(String::from).collect();
        if names.len() != 1 {
            return Err(Error::InvalidArgument(format!(
                "from_files: {} holds {} arrays {names:?}; choose them with keys=",
                paths[0].display(),
                names.len()
            )));
        }
        keys = Some(names);
    }
    // Per file: per component (dtype, full shape).
    type Heads = Vec<(DType, Vec<usize>)>;
    let interpret = |heads: Vec<(npy::NpyHeader, String)>| -> Result<Heads> {
        heads
                .into_iter()
                .map(|(h, what)| {
                    let d = h.resolve_dtype(None, &what)?;
                    if h.shape.is_empty() {
                        return Err(Error::Format {
                            path: what,
                            reason: "holds a 0-d array; from_files needs arrays with rows (at least one dimension)".into(),
                        });
                    }
                    Ok((d, h.shape))
                })
                .collect()
    };
    let heads: Vec<Result<(Heads, Option<rf::KnownObject>)>> =
        rf::headers(&paths, keys.as_deref(), so)
            .into_iter()
            .map(|h| h.and_then(|(h, known)| Ok((interpret(h)?, known))))
            .collect();
    let mut files = Vec::with_capacity(paths.len());
    let mut warnings = Vec::new();
    let mut spec: Option<(Heads, usize)> = None;
    let describe = |h: &Heads| {
        h.iter()
            .map(|(d, s)| format!("rows of shape {:?} ({d})", &s[1..]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, (p, h)) in paths.iter().zip(heads).enumerate() {
        let checked = h.map_err(|e| name_file(e, p)).and_then(|(h, known)| {
            let rows = h[0].1[0];
            if let Some((j, k)) = h.iter().enumerate().find(|(_, (_, s))| s[0] != rows) {
                return Err(Error::Format {
                    path: p.display().to_string(),
                    reason: format!(
                        "the arrays have different numbers of rows: {} has {rows} and {} has {}",
                        keys.as_ref().map_or("", |k| &k[0]),
                        keys.as_ref().map_or("", |k| &k[j]),
                        k.1[0]
                    ),
                });
            }
            let row_spec: Vec<(DType, Vec<usize>)> =
                h.iter().map(|(d, s)| (*d, s[1..].to_vec())).collect();
            match &spec {
                Some((want, first)) if *want != row_spec => Err(Error::Format {
                    path: p.display().to_string(),
                    reason: format!(
                        "holds {}, but {} holds {}",
                        describe(&h),
                        paths[*first].display(),
                        want.iter()
                            .map(|(d, s)| format!("rows of shape {s:?} ({d})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
                _ => Ok((rows, row_spec, known)),
            }
        });
        match checked {
            Ok((rows, row_spec, known)) => {
                if spec.is_none() {
                    spec = Some((row_spec, i));
                }
                files.push(FileEntry {
                    path: p.clone(),
                    rows,
                    known,
                });
            }
            Err(e) if opts.on_error == OnError::Skip => {
                warnings.push(format!("skipping {}: {e}", p.display()));
            }
            Err(e) => return Err(e),
        }
    }
    let (spec, _) = spec.ok_or_else(|| {
        Error::InvalidArgument("from_files: none of the files could be read".into())
    })?;
    let plan = FilesPlan {
        keys,
        spec,
        on_error: opts.on_error,
        storage_options: opts.storage_options.clone(),
        cycle_length: usize::try_from(opts.cycle_length).unwrap_or(usize::MAX),
        block_length: usize::try_from(opts.block_length).unwrap_or(usize::MAX),
    };
    Ok((files, plan, warnings))
}

/// What one source file holds, from its header(s) read when the dataset was made.
#[derive(Clone, Debug)]
pub(crate) struct FileEntry {
    pub(crate) path: std::path::PathBuf,
    /// Rows (the leading dimension shared by every chosen array).
    pub(crate) rows: usize,
    /// A remote `.npy` object: its size, ETag and header as read then.
    pub(crate) known: Option<super::remote_files::KnownObject>,
}

/// Where [`FileRows`] gets its arrays and how it checks them.
#[derive(Clone, Debug)]
pub(crate) struct FilesPlan {
    /// `.npz` member names (one component each); `None`: the files are `.npy`.
    pub(crate) keys: Option<Vec<String>>,
    /// Per component: dtype and row shape, which every file must match.
    pub(crate) spec: Vec<(DType, Vec<usize>)>,
    pub(crate) on_error: OnError,
    pub(crate) storage_options: crate::location::StorageOptions,
    pub(crate) cycle_length: usize,
    pub(crate) block_length: usize,
}

fn label(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// Load the chosen arrays of one file (memory-mapped where the bytes allow) and
/// check them against the plan: dtype, row shape, and the row count its header had.
pub(crate) fn open_file(entry: &FileEntry, plan: &FilesPlan) -> Result<Vec<Tensor>> {
    use super::remote_files as rf;
    use crate::format::npy::LoadOptions;
    let so = &plan.storage_options;
    let name = label(&entry.path);
    let load = |f: &dyn Fn(&LoadOptions) -> Result<Tensor>| -> Result<Tensor> {
        // Map when the bytes can be used as they lie; else a converted copy.
        let mapped = LoadOptions {
            mmap: Some(true),
            ..LoadOptions::default()
        };
        match f(&mapped) {
            Ok(t) => Ok(t),
            Err(Error::Format { .. }) => f(&LoadOptions {
                mmap: Some(false),
                ..LoadOptions::default()
            }),
            Err(e) => Err(e),
        }
    };
    let tensors = match &plan.keys {
        None => vec![load(&|o| rf::load_npy(&entry.path, so, o))?],
        Some(keys) => {
            let archive = rf::open_npz(&entry.path, so)?;
            keys.iter()
                .map(|k| load(&|o| archive.load(k, &rf::member_options(&archive, o))))
                .collect::<Result<Vec<_>>>()?
        }
    };
    for (i, (t, (dtype, row))) in tensors.iter().zip(&plan.spec).enumerate() {
        let what = match &plan.keys {
            Some(k) => format!("{name}:{}", k[i]),
            None => name.clone(),
        };
        let ok_shape = t.shape().first() == Some(&entry.rows) && &t.shape()[1..] == row.as_slice();
        if t.dtype() != *dtype || !ok_shape {
            return Err(Error::Format {
                path: what,
                reason: format!(
                    "changed since the dataset was made: it now holds shape {:?} ({}), expected {} rows of shape {row:?} ({dtype})",
                    t.shape(),
                    t.dtype(),
                    entry.rows
                ),
            });
        }
    }
    Ok(tensors)
}

/// Open a file for a slot whose next row is `start`: a remote one streamed (see
/// [`super::remote_files::rows`]), else its arrays loaded.
fn open_slot(
    entry: &FileEntry,
    plan: &FilesPlan,
    start: usize,
    ahead: Option<Opening>,
    budget: &Budget,
) -> Result<(Vec<Tensor>, Option<super::remote_files::rows::RemoteRows>)> {
    match super::remote_files::rows::RemoteRows::open(entry, plan, start, ahead, Some(budget))? {
        Some(s) => Ok((Vec::new(), Some(s))),
        None => Ok((open_file(entry, plan)?, None)),
    }
}

/// One open file: its arrays and the next row to yield.
struct OpenFile {
    /// Index in the dataset's (unshuffled) file list.
    index: usize,
    comps: Vec<Tensor>,
    /// A remote file's rows, streamed (then `comps` is empty).
    stream: Option<super::remote_files::rows::RemoteRows>,
    rows: usize,
    next: usize,
}

/// The rows of many files, `cycle_length` open at once, read round-robin
/// `block_length` rows at a time — `tf.data`'s `interleave` order (with
/// `cycle_length == 1`, simply file after file).
///
/// A remote `.npy` object is opened one file ahead of the order ([`Opening`]: its
/// stream started at once, its GETs in flight while the rows before it are consumed),
/// so no open stalls on a first request at an object boundary. The open objects and
/// the one opened ahead share one read-ahead budget (`READ_AHEAD_BUDGET` in
/// `remote_rows.rs`: bytes requested but not yet read stay within it, plus one GET
/// per stream); the object opened ahead is not part of the state (it is opened again
/// on restore).
///
/// State: `{"seed": s | null, "epoch": e, "next_file": k, "slots": [[file, row] |
/// null, ...], "cycle": c, "block": b, "failed": bool}` — the file order is made
/// again from the seed and epoch; open files are opened again.
pub(crate) struct FileRows {
    files: Arc<Vec<FileEntry>>,
    /// The epoch's file order (indices into `files`).
    order: Vec<usize>,
    /// Global index of each file's first row (files in their unshuffled order).
    offsets: Vec<u64>,
    seed: Option<u64>,
    epoch: u64,
    plan: Arc<FilesPlan>,
    /// Copy each row out of its file (for stages that keep rows a long time, like a
    /// shuffle buffer: a zero-copy row would keep its whole file mapped).
    copy_rows: bool,
    warnings: Warnings,
    next_file: usize,
    slots: Vec<Option<OpenFile>>,
    /// The position in `order` last opened ahead (tried once each), and its opening.
    ahead_for: Option<usize>,
    ahead: Option<Opening>,
    /// The read-ahead budget shared by the remote objects open and opened ahead.
    budget: Budget,
    num_open: usize,
    cycle: usize,
    block: usize,
    failed: bool,
}

fn offsets(files: &[FileEntry]) -> Vec<u64> {
    let mut acc = 0u64;
    files
        .iter()
        .map(|f| {
            let o = acc;
            acc += f.rows as u64;
            o
        })
        .collect()
}

impl FileRows {
    /// A fresh epoch: files in order, or shuffled with `seed` for epoch `epoch`.
    pub(crate) fn new(
        files: Arc<Vec<FileEntry>>,
        plan: Arc<FilesPlan>,
        seed: Option<u64>,
        epoch: u64,
        copy_rows: bool,
        warnings: Warnings,
    ) -> FileRows {
        // No more slots than files: a huge `cycle_length` costs nothing (extra empty
        // slots would only be skipped, so the order is the same).
        let n = plan.cycle_length.min(files.len()).max(1);
        FileRows {
            order: file_order(files.len(), seed, epoch),
            offsets: offsets(&files),
            files,
            seed,
            epoch,
            plan,
            copy_rows,
            warnings,
            next_file: 0,
            slots: (0..n).map(|_| None).collect(),
            ahead_for: None,
            ahead: None,
            budget: super::remote_files::rows::read_ahead_budget(),
            num_open: 0,
            cycle: 0,
            block: 0,
            failed: false,
        }
    }

    /// An epoch restored from [`Stage::state`]: open files are opened again (one
    /// that cannot be is skipped with a warning under [`OnError::Skip`]).
    pub(crate) fn restore(
        files: Arc<Vec<FileEntry>>,
        plan: Arc<FilesPlan>,
        shuffle: bool,
        copy_rows: bool,
        warnings: Warnings,
        state: &Value,
    ) -> Result<FileRows> {
        let o = object(state, "from_files")?;
        let seed = field_opt_u64(o, "seed")?;
        if seed.is_some() != shuffle {
            return Err(bad("from_files: shuffle_files differs"));
        }
        let mut me = FileRows::new(
            files,
            plan,
            seed,
            field_u64(o, "epoch")?,
            copy_rows,
            warnings,
        );
        let n = me.files.len();
        let small = |k: &str, below: usize| -> Result<usize> {
            let v = field_u64(o, k)?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v < below)
                .ok_or_else(|| bad(format!("from_files: {k} = {v} is out of range")))
        };
        me.next_file = small("next_file", n + 1)?;
        me.cycle = small("cycle", me.slots.len())?;
        me.block = small("block", me.plan.block_length.max(1))?;
        me.failed = field_bool(o, "failed")?;
        let slots = match field(o, "slots")? {
            Value::Array(a) if a.len() == me.slots.len() => a,
            v => return Err(bad(format!("from_files: slots do not fit: {v}"))),
        };
        for (c, s) in slots.iter().enumerate() {
            let (index, next) = match s {
                Value::Null => continue,
                Value::Array(p) if p.len() == 2 => match (p[0].as_u64(), p[1].as_u64()) {
                    (Some(i), Some(r)) if (i as usize) < n => (i as usize, r as usize),
                    _ => return Err(bad(format!("from_files: slot {s} is malformed"))),
                },
                _ => return Err(bad(format!("from_files: slot {s} is malformed"))),
            };
            let entry = &me.files[index];
            match open_slot(entry, &me.plan, next, None, &me.budget) {
                Ok((comps, stream)) => {
                    me.slots[c] = Some(OpenFile {
                        index,
                        comps,
                        stream,
                        rows: entry.rows,
                        next,
                    });
                    me.num_open += 1;
                }
                Err(e) if me.plan.on_error == OnError::Skip => {
                    me.warnings
                        .push(format!("skipping {}: {e}", label(&entry.path)));
                }
                Err(e) => return Err(name_file(e, &entry.path)),
            }
        }
        Ok(me)
    }

    /// The file-order seed (`None`: files in their given order).
    pub(crate) fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The epoch whose file order this is.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Open the next file of the order ahead (once per position; only remote
    /// `.npy` objects are, see [`Opening::start`]).
    fn open_ahead(&mut self) {
        let pos = self.next_file;
        if self.ahead_for == Some(pos) || pos >= self.order.len() {
            return;
        }
        self.ahead_for = Some(pos);
        self.ahead = Opening::start(&self.files[self.order[pos]], &self.plan, &self.budget);
    }

    fn advance_cycle(&mut self) {
        self.block = 0;
        self.cycle = (self.cycle + 1) % self.slots.len();
    }
}

impl Stage for FileRows {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        if self.failed {
            return None;
        }
        self.open_ahead();
        let end_of_input = |s: &Self| s.next_file >= s.order.len();
        while !end_of_input(self) || self.num_open > 0 {
            let c = self.cycle;
            let copy = self.copy_rows;
            if let Some(f) = &mut self.slots[c] {
                if f.next < f.rows {
                    let i = f.next;
                    f.next += 1;
                    let prov = Prov::Index(self.offsets[f.index] + i as u64);
                    let r = match &mut f.stream {
                        Some(s) => s
                            .row(i, copy)
                            .map_err(|e| name_file(e, &self.files[f.index].path)),
                        None => file_row(&f.comps, i, copy),
                    };
                    self.block += 1;
                    if self.block >= self.plan.block_length.max(1) {
                        self.advance_cycle();
                    }
                    if r.is_err() {
                        self.failed = true;
                    }
                    return Some(r.map(|item| (item, prov)));
                }
                // This file is done: unmap it (rows already yielded keep what they use).
                self.slots[c] = None;
                self.num_open -= 1;
                self.advance_cycle();
            } else if !end_of_input(self) {
                let index = self.order[self.next_file];
                let ahead = match self.ahead_for == Some(self.next_file) {
                    true => self.ahead.take(),
                    false => None,
                };
                self.next_file += 1;
                // The next file's first read goes out while this one's rows are read.
                self.open_ahead();
                let entry = &self.files[index];
                match open_slot(entry, &self.plan, 0, ahead, &self.budget) {
                    Ok((comps, stream)) => {
                        self.slots[c] = Some(OpenFile {
                            index,
                            comps,
                            stream,
                            rows: entry.rows,
                            next: 0,
                        });
                        self.num_open += 1;
                    }
                    Err(e) if self.plan.on_error == OnError::Skip => {
                        self.warnings
                            .push(format!("skipping {}: {e}", label(&entry.path)));
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(name_file(e, &entry.path)));
                    }
                }
            } else {
                self.advance_cycle();
            }
        }
        None
    }

    fn state(&self) -> Result<Value> {
        let slots: Vec<Value> = self
            .slots
            .iter()
            .map(|s| match s {
                Some(f) => json!([f.index, f.next]),
                None => Value::Null,
            })
            .collect();
        Ok(json!({
            "seed": self.seed,
            "epoch": self.epoch,
            "next_file": self.next_file,
            "slots": slots,
            "cycle": self.cycle,
            "block": self.block,
            "failed": self.failed,
        }))
    }
}

/// Files opened to make rows again ([`read_row`]): the few most recent.
#[derive(Default)]
pub(crate) struct RowCache {
    open: Vec<(usize, Vec<Tensor>)>,
}

/// Files a [`RowCache`] keeps open.
const CACHED_FILES: usize = 4;

/// Row `global` (counted over `files` in their unshuffled order) as an element,
/// copied out of its file (a re-made element may be kept long, e.g. in a shuffle
/// buffer). Used when a saved state is restored.
pub(crate) fn read_row(
    files: &[FileEntry],
    plan: &FilesPlan,
    cache: &Mutex<RowCache>,
    global: u64,
) -> Result<Item> {
    let mut acc = 0u64;
    let mut found = None;
    for (i, f) in files.iter().enumerate() {
        if global < acc + f.rows as u64 {
            found = Some((i, (global - acc) as usize));
            break;
        }
        acc += f.rows as u64;
    }
    let (index, row) = found.ok_or_else(|| {
        bad(format!(
            "from_files: row {global} is out of range ({acc} rows)"
        ))
    })?;
    // A remote row alone: one ranged read (no whole object in a cache).
    let entry = &files[index];
    if let Some(item) = super::remote_files::rows::read_one_row(entry, plan, row)
        .map_err(|e| name_file(e, &entry.path))?
    {
        return Ok(item);
    }
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    let pos = match c.open.iter().position(|(i, _)| *i == index) {
        Some(p) => p,
        None => {
            let comps =
                open_file(&files[index], plan).map_err(|e| name_file(e, &files[index].path))?;
            if c.open.len() >= CACHED_FILES {
                c.open.remove(0);
            }
            c.open.push((index, comps));
            c.open.len() - 1
        }
    };
    file_row(&c.open[pos].1, row, true)
}

fn file_row(comps: &[Tensor], i: usize, copy: bool) -> Result<Item> {
    comps
        .iter()
        .map(|t| {
            if t.shape()[1..].contains(&0) {
                // Rows of no elements: a fresh empty row (an index into a buffer of no
                // bytes is refused as out of bounds).
                return Ok(Comp::Ready(crate::format::npy::build_filled(
                    t.dtype(),
                    &t.shape()[1..],
                    |_| Ok(()),
                )?));
            }
            let r = t.index(&[crate::tensor::Index::At(i as isize)])?;
            Ok(Comp::Ready(if copy { copy_row(&r)? } else { r }))
        })
        .collect()
}

/// An owned copy of a row: one `memcpy` when it is contiguous.
pub(crate) fn copy_row(r: &Tensor) -> Result<Tensor> {
    match r.as_bytes() {
        // SAFETY: `copy_from_slice` writes every byte of the buffer (same length).
        Some(src) if r.is_contiguous() => unsafe {
            Tensor::build_overwrite(r.dtype(), r.shape(), |dst| {
                dst.copy_from_slice(src);
                Ok(())
            })
        },
        _ => r.deep_copy(),
    }
}

/// Make sure an error says which file it is about.
pub(crate) fn name_file(e: Error, path: &std::path::Path) -> Error {
    let name = label(path);
    if e.to_string().contains(&name) {
        e
    } else {
        Error::Format {
            path: name,
            reason: e.to_string(),
        }
    }
}

/// The file order of epoch `epoch` of a file source shuffled with `seed`.
pub(crate) fn file_order(n: usize, seed: Option<u64>, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(seed) = seed {
        SplitMix64::new(mix(seed ^ 0x5EED_F11E_5EED_F11E, epoch)).shuffle(&mut order);
    }
    order
}
