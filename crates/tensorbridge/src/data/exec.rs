//! The running side of a pipeline: per-stage iterators, worker threads, batching.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::ops::{execute, plan, MapOps, Step};
use super::MapFn;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;
use crate::view::contiguous_strides;

/// One component of an element in flight: a tensor, or a tensor with built-in ops
/// still to apply (applied when the element is materialized — straight into the
/// batch buffer when a `batch` follows).
#[derive(Clone)]
pub(crate) enum Comp {
    Ready(Tensor),
    Lazy {
        src: Tensor,
        steps: Vec<Step>,
        dtype: DType,
        shape: Vec<usize>,
    },
}

impl Comp {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Comp::Ready(t) => t.dtype(),
            Comp::Lazy { dtype, .. } => *dtype,
        }
    }

    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Comp::Ready(t) => t.shape(),
            Comp::Lazy { shape, .. } => shape,
        }
    }

    /// Apply more built-in ops (planned now, executed later, all in one pass).
    pub(crate) fn then(self, ops: &[super::Op]) -> Result<Comp> {
        if ops.is_empty() {
            return Ok(self);
        }
        let (src, mut steps, dtype, shape) = match self {
            Comp::Ready(t) => {
                let (d, s) = (t.dtype(), t.shape().to_vec());
                (t, Vec::new(), d, s)
            }
            Comp::Lazy {
                src,
                steps,
                dtype,
                shape,
            } => (src, steps, dtype, shape),
        };
        let (dtype, shape) = plan(dtype, &shape, ops, &mut steps)?;
        if steps.is_empty() && dtype == src.dtype() {
            // Only reshapes: a view, no data moves.
            let dims: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
            return Ok(Comp::Ready(src.reshape(&dims)?));
        }
        Ok(Comp::Lazy {
            src,
            steps,
            dtype,
            shape,
        })
    }

    /// Write the component's final values (C order) into `dst`.
    pub(crate) fn write_into(&self, dst: &mut [u8]) -> Result<()> {
        match self {
            Comp::Ready(t) => {
                crate::cast::cast_into(&t.view(), t.dtype(), crate::Casting::Unsafe, dst)
            }
            Comp::Lazy {
                src, steps, dtype, ..
            } => execute(src, steps, *dtype, dst),
        }
    }

    pub(crate) fn materialize(self) -> Result<Tensor> {
        match self {
            Comp::Ready(t) => Ok(t),
            Comp::Lazy { dtype, .. } => {
                // SAFETY: `write_into` writes all `len * size` bytes (every step
                // covers every element) or fails, and the buffer is then dropped.
                let shape = self.shape().to_vec();
                unsafe { Tensor::build_overwrite(dtype, &shape, |dst| self.write_into(dst)) }
            }
        }
    }
}

pub(crate) type Item = Vec<Comp>;
pub(crate) type It = Box<dyn Iterator<Item = Result<Item>> + Send>;

pub(crate) fn materialize(item: Item) -> Result<Vec<Tensor>> {
    item.into_iter().map(Comp::materialize).collect()
}

pub(crate) fn materialize_lazy(item: Item) -> Result<Item> {
    item.into_iter()
        .map(|c| match c {
            Comp::Ready(_) => Ok(c),
            lazy => lazy.materialize().map(Comp::Ready),
        })
        .collect()
}

// ---------------------------------------------------------------- threads

static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Pipeline worker threads alive right now (prefetch and parallel-map workers of
/// every iterator in the process). Zero once every iterator has been dropped.
pub fn live_threads() -> usize {
    LIVE_THREADS.load(Ordering::SeqCst)
}

struct LiveGuard;
impl Drop for LiveGuard {
    fn drop(&mut self) {
        LIVE_THREADS.fetch_sub(1, Ordering::SeqCst);
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    LIVE_THREADS.fetch_add(1, Ordering::SeqCst);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _guard = LiveGuard;
            f()
        })
        .map_err(|e| {
            LIVE_THREADS.fetch_sub(1, Ordering::SeqCst);
            Error::InvalidArgument(format!("cannot start a pipeline thread: {e}"))
        })
}

fn panic_error(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "{what} panicked (a bug in tensorbridge or in the map function)"
    ))
}

// ---------------------------------------------------------------- prefetch

/// Runs the upstream iterator on its own thread, `n` finished elements ahead.
pub(crate) struct Prefetch {
    rx: Option<Receiver<Result<Item>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetch {
    pub(crate) fn new(mut upstream: It, n: usize) -> Result<Prefetch> {
        let (tx, rx) = mpsc::sync_channel(n.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = spawn("tb-prefetch", move || {
            while !flag.load(Ordering::Relaxed) {
                let next = catch_unwind(AssertUnwindSafe(|| {
                    upstream.next().map(|r| r.and_then(materialize_lazy))
                }));
                let r = match next {
                    Ok(None) => break,
                    Ok(Some(r)) => r,
                    Err(_) => Err(panic_error("a pipeline stage")),
                };
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    break;
                }
            }
            // `upstream` (and any threads it owns) is dropped here, on this thread.
        })?;
        Ok(Prefetch {
            rx: Some(rx),
            stop,
            handle: Some(handle),
        })
    }
}

impl Iterator for Prefetch {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx.take()); // unblocks a `send` on a full channel
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------- parallel map

type Job = (Item, SyncSender<Result<Item>>);

/// Applies a map function on `n` worker threads, yielding results in input order.
pub(crate) struct ParallelMap {
    upstream: It,
    jobs: Option<Sender<Job>>,
    inflight: VecDeque<Receiver<Result<Item>>>,
    workers: Vec<JoinHandle<()>>,
    max_inflight: usize,
    exhausted: bool,
}

pub(crate) fn apply_fn(f: &MapFn, item: Item) -> Result<Item> {
    let tensors = materialize(item)?;
    match catch_unwind(AssertUnwindSafe(|| f(tensors))) {
        Ok(r) => Ok(r?.into_iter().map(Comp::Ready).collect()),
        Err(_) => Err(panic_error("a map function")),
    }
}

impl ParallelMap {
    pub(crate) fn new(upstream: It, f: MapFn, n: usize) -> Result<ParallelMap> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut me = ParallelMap {
            upstream,
            jobs: Some(tx),
            inflight: VecDeque::new(),
            workers: Vec::new(),
            max_inflight: 2 * n,
            exhausted: false,
        };
        for _ in 0..n {
            let rx = rx.clone();
            let f = f.clone();
            // On error `me` is dropped, which stops and joins the workers so far.
            me.workers.push(spawn("tb-map", move || loop {
                let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((item, out)) = job else { break };
                let _ = out.send(apply_fn(&f, item));
            })?);
        }
        Ok(me)
    }
}

impl Iterator for ParallelMap {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        while !self.exhausted && self.inflight.len() < self.max_inflight {
            let (tx, rx) = mpsc::sync_channel(1);
            match self.upstream.next() {
                None => {
                    self.exhausted = true;
                    break;
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                }
                Some(Ok(item)) => {
                    let sent = self.jobs.as_ref().map(|j| j.send((item, tx)));
                    if !matches!(sent, Some(Ok(()))) {
                        return Some(Err(panic_error("a map worker")));
                    }
                }
            }
            self.inflight.push_back(rx);
        }
        let rx = self.inflight.pop_front()?;
        Some(
            rx.recv()
                .unwrap_or_else(|_| Err(panic_error("a map worker"))),
        )
    }
}

impl Drop for ParallelMap {
    fn drop(&mut self) {
        drop(self.jobs.take()); // workers finish their current job and exit
        self.inflight.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------- shuffle

/// SplitMix64: a tiny, well-mixed, fully specified PRNG (same stream on every
/// machine for a given seed).
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (Lemire's multiply-shift with rejection: exactly uniform).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as usize
    }
}

pub(crate) struct Shuffle {
    upstream: It,
    buf: Vec<Item>,
    size: usize,
    rng: SplitMix64,
    exhausted: bool,
}

impl Shuffle {
    pub(crate) fn new(upstream: It, size: usize, seed: u64) -> Shuffle {
        Shuffle {
            upstream,
            buf: Vec::new(),
            size: size.max(1),
            rng: SplitMix64::new(seed),
            exhausted: false,
        }
    }
}

impl Iterator for Shuffle {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        while !self.exhausted && self.buf.len() < self.size {
            match self.upstream.next() {
                Some(Ok(x)) => self.buf.push(x),
                Some(Err(e)) => return Some(Err(e)),
                None => self.exhausted = true,
            }
        }
        if self.buf.is_empty() {
            return None;
        }
        let i = self.rng.below(self.buf.len());
        Some(Ok(self.buf.swap_remove(i)))
    }
}

// ---------------------------------------------------------------- batch

/// Bytes of a batch component above which its slots are filled on all cores.
const PARALLEL_BATCH_BYTES: usize = 256 << 10;

pub(crate) struct Batch {
    pub(crate) upstream: It,
    pub(crate) size: usize,
    pub(crate) drop_remainder: bool,
    pub(crate) done: bool,
    pub(crate) recycler: Recycler,
}

/// Batch buffers this iterator made recently. A buffer whose every other user is
/// gone (the consumer dropped the batch) is written again for a later batch instead
/// of allocating a fresh one: its pages are already faulted in, which on this kind
/// of VM is worth more than the writing itself. Holds at most `cap` buffers.
pub(crate) struct Recycler {
    ring: VecDeque<Arc<Storage>>,
    cap: usize,
}

impl Recycler {
    pub(crate) fn new(cap: usize) -> Recycler {
        Recycler {
            ring: VecDeque::new(),
            cap,
        }
    }

    /// A buffer of exactly `nbytes` that nobody else holds, if there is one.
    fn take(&mut self, nbytes: usize) -> Option<Arc<Storage>> {
        let i = self.ring.iter().position(|s| {
            s.len() == nbytes && Arc::strong_count(s) == 1 && Arc::weak_count(s) == 0
        })?;
        self.ring.remove(i)
    }

    fn keep(&mut self, s: Arc<Storage>) {
        if self.cap == 0 {
            return;
        }
        if self.ring.len() >= self.cap {
            self.ring.pop_front();
        }
        self.ring.push_back(s);
    }
}

impl Iterator for Batch {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        if self.done {
            return None;
        }
        let mut items = Vec::with_capacity(self.size);
        while items.len() < self.size {
            match self.upstream.next() {
                Some(Ok(x)) => items.push(x),
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        if items.is_empty() || (self.drop_remainder && items.len() < self.size) {
            self.done = true;
            return None;
        }
        Some(
            assemble(&items, &mut self.recycler)
                .map(|ts| ts.into_iter().map(Comp::Ready).collect()),
        )
    }
}

/// Stack each component of `items` into one tensor, writing every element straight
/// into its slot of the batch buffer (built-in ops are applied on the way).
pub(crate) fn assemble(items: &[Item], recycler: &mut Recycler) -> Result<Vec<Tensor>> {
    let n = items[0].len();
    let mut out = Vec::with_capacity(n);
    for c in 0..n {
        let first = &items[0][c];
        let (dtype, shape) = (first.dtype(), first.shape().to_vec());
        for (j, item) in items.iter().enumerate() {
            if item.len() != n {
                return Err(Error::Shape(format!(
                    "cannot batch elements with different structures: element 0 has {n} components but element {j} has {}",
                    item.len()
                )));
            }
            let comp = &item[c];
            if comp.shape() != shape.as_slice() || comp.dtype() != dtype {
                return Err(Error::Shape(format!(
                    "cannot batch tensors with different shapes in component {c}: the first element has shape {shape:?} ({dtype}) and element {j} has shape {:?} ({})",
                    comp.shape(),
                    comp.dtype()
                )));
            }
        }
        let mut full = vec![items.len()];
        full.extend_from_slice(&shape);
        let per = shape.iter().product::<usize>() * dtype.size();
        let fill = |dst: &mut [u8]| -> Result<()> {
            if per == 0 {
                return Ok(());
            }
            if dst.len() >= PARALLEL_BATCH_BYTES {
                dst.par_chunks_mut(per)
                    .zip(items.par_iter())
                    .try_for_each(|(d, item)| item[c].write_into(d))
            } else {
                dst.chunks_mut(per)
                    .zip(items)
                    .try_for_each(|(d, item)| item[c].write_into(d))
            }
        };
        let nbytes = per * items.len();
        let t = match recycler.take(nbytes) {
            Some(mut storage) => {
                let dst = Arc::get_mut(&mut storage)
                    .and_then(|s| s.as_mut_slice())
                    .ok_or_else(|| Error::Layout("recycled batch buffer is shared".into()))?;
                fill(&mut dst[..nbytes])?;
                let strides = contiguous_strides(&full, dtype.size());
                Tensor::from_storage(storage, dtype, full, strides, 0, false)?
            }
            // SAFETY: the slots (`per` bytes each, one per item) tile the buffer, and
            // `write_into` writes every byte of its slot or fails (buffer then dropped).
            None => unsafe { Tensor::build_overwrite(dtype, &full, fill) }?,
        };
        recycler.keep(t.storage().clone());
        out.push(t);
    }
    Ok(out)
}

/// Apply built-in map ops to every element (planning only; data moves later).
pub(crate) fn map_ops(item: Item, ops: &[MapOps]) -> Result<Item> {
    let n = item.len();
    item.into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            for o in ops {
                c = c.then(o.for_component(i, n)?)?;
            }
            Ok(c)
        })
        .collect()
}

// ---------------------------------------------------------------- files

/// What one source file holds, from its header(s) read when the dataset was made.
#[derive(Clone, Debug)]
pub(crate) struct FileEntry {
    pub(crate) path: std::path::PathBuf,
    /// Rows (the leading dimension shared by every chosen array).
    pub(crate) rows: usize,
}

/// Where [`FileRows`] gets its arrays and how it checks them.
#[derive(Clone, Debug)]
pub(crate) struct FilesPlan {
    /// `.npz` member names (one component each); `None`: the files are `.npy`.
    pub(crate) keys: Option<Vec<String>>,
    /// Per component: dtype and row shape, which every file must match.
    pub(crate) spec: Vec<(DType, Vec<usize>)>,
    pub(crate) skip_errors: bool,
    pub(crate) cycle_length: usize,
    pub(crate) block_length: usize,
}

static WARNINGS: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Record a warning (a skipped file) for [`super::take_warnings`]; bounded.
pub(crate) fn warn(msg: String) {
    let mut q = WARNINGS.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() >= 1024 {
        q.pop_front();
    }
    q.push_back(msg);
}

pub(crate) fn take_warnings() -> Vec<String> {
    let mut q = WARNINGS.lock().unwrap_or_else(|e| e.into_inner());
    q.drain(..).collect()
}

fn label(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// Load the chosen arrays of one file (memory-mapped where the bytes allow) and
/// check them against the plan: dtype, row shape, and the row count its header had.
pub(crate) fn open_file(entry: &FileEntry, plan: &FilesPlan) -> Result<Vec<Tensor>> {
    use crate::format::npy::{self, LoadOptions};
    use crate::format::npz::NpzArchive;
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
        None => vec![load(&|o| npy::load(&entry.path, o))?],
        Some(keys) => {
            let archive = NpzArchive::open(&entry.path)?;
            keys.iter()
                .map(|k| load(&|o| archive.load(k, o)))
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

/// One open file: its arrays and the next row to yield.
struct OpenFile {
    comps: Vec<Tensor>,
    rows: usize,
    next: usize,
}

/// The rows of many files, `cycle_length` open at once, read round-robin
/// `block_length` rows at a time — `tf.data`'s `interleave` order (with
/// `cycle_length == 1`, simply file after file).
pub(crate) struct FileRows {
    files: Vec<FileEntry>,
    plan: Arc<FilesPlan>,
    /// Copy each row out of its file (for stages that keep rows a long time, like a
    /// shuffle buffer: a zero-copy row would keep its whole file mapped).
    copy_rows: bool,
    next_file: usize,
    slots: Vec<Option<OpenFile>>,
    num_open: usize,
    cycle: usize,
    block: usize,
    failed: bool,
}

impl FileRows {
    pub(crate) fn new(files: Vec<FileEntry>, plan: Arc<FilesPlan>, copy_rows: bool) -> FileRows {
        let n = plan.cycle_length.max(1);
        FileRows {
            files,
            plan,
            copy_rows,
            next_file: 0,
            slots: (0..n).map(|_| None).collect(),
            num_open: 0,
            cycle: 0,
            block: 0,
            failed: false,
        }
    }

    fn advance_cycle(&mut self) {
        self.block = 0;
        self.cycle = (self.cycle + 1) % self.slots.len();
    }
}

impl Iterator for FileRows {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        if self.failed {
            return None;
        }
        let end_of_input = |s: &Self| s.next_file >= s.files.len();
        while !end_of_input(self) || self.num_open > 0 {
            let c = self.cycle;
            let copy = self.copy_rows;
            if let Some(f) = &mut self.slots[c] {
                if f.next < f.rows {
                    let i = f.next;
                    f.next += 1;
                    let r = file_row(f, i, copy);
                    self.block += 1;
                    if self.block >= self.plan.block_length.max(1) {
                        self.advance_cycle();
                    }
                    if r.is_err() {
                        self.failed = true;
                    }
                    return Some(r);
                }
                // This file is done: unmap it (rows already yielded keep what they use).
                self.slots[c] = None;
                self.num_open -= 1;
                self.advance_cycle();
            } else if !end_of_input(self) {
                let entry = &self.files[self.next_file];
                self.next_file += 1;
                match open_file(entry, &self.plan) {
                    Ok(comps) => {
                        self.slots[c] = Some(OpenFile {
                            comps,
                            rows: entry.rows,
                            next: 0,
                        });
                        self.num_open += 1;
                    }
                    Err(e) if self.plan.skip_errors => {
                        warn(format!("skipping {}: {e}", label(&entry.path)));
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
}

fn file_row(f: &OpenFile, i: usize, copy: bool) -> Result<Item> {
    f.comps
        .iter()
        .map(|t| {
            let r = t.index(&[crate::tensor::Index::At(i as isize)])?;
            Ok(Comp::Ready(if copy { copy_row(&r)? } else { r }))
        })
        .collect()
}

/// An owned copy of a row: one `memcpy` when it is contiguous.
fn copy_row(r: &Tensor) -> Result<Tensor> {
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
