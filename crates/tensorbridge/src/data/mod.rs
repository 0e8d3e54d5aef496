//! A streaming input pipeline in the model of `tf.data`, as a Rust iterator.
//!
//! A [`Dataset`] is an immutable description of stages (cheap to clone); each call
//! to [`Dataset::iter`] runs it once (one *epoch*) as an iterator of elements. An
//! element is a `Vec<Tensor>` of components (a tuple or dict of tensors on the
//! Python side keeps its structure there).
//!
//! ```
//! use tensorbridge::data::{Dataset, MapOps, Op};
//! use tensorbridge::{Casting, DType, Tensor};
//!
//! let images = Tensor::from_slice(&[0u8, 51, 102, 153, 204, 255], &[6, 1])?;
//! let labels = Tensor::from_slice(&[0i64, 1, 0, 1, 0, 1], &[6])?;
//! let ds = Dataset::from_tensor_slices(vec![images, labels])?
//!     .map_ops(MapOps::Each(vec![
//!         Some(vec![Op::Cast { dtype: DType::Float32, casting: Casting::Unsafe }]),
//!         None,
//!     ]))
//!     .map_ops(MapOps::Each(vec![Some(vec![Op::Scale { mul: 1.0 / 255.0, add: 0.0 }]), None]))
//!     .shuffle(4, Some(7), true)
//!     .batch(4, false)?
//!     .prefetch(2);
//! let batches: Vec<Vec<Tensor>> = ds.iter()?.collect::<Result<_, _>>()?;
//! assert_eq!(batches.len(), 2);
//! assert_eq!(batches[0][0].shape(), &[4, 1]);
//! assert_eq!(batches[1][1].shape(), &[2]);
//! # Ok::<(), tensorbridge::Error>(())
//! ```
//!
//! # What was chosen
//! - **Sources**: [`Dataset::from_tensor_slices`] yields zero-copy views (axis-0
//!   slices) of its tensors; [`Dataset::range`] yields int64 scalars;
//!   [`Dataset::from_files`] yields the rows of many `.npy` files (or chosen `.npz`
//!   members), headers read up front (known cardinality, mismatches named), at most
//!   `cycle_length` files mapped at once, in file order, a seeded file shuffle, or
//!   `tf.data`'s interleave order. Its rows are zero-copy views of the mapping,
//!   except under a stage that buffers many elements (a shuffle, a deep prefetch):
//!   there each row is copied out on a reader thread, so the buffer holds rows, not
//!   whole mapped files — memory stays bounded by the buffers asked for.
//! - **Built-in ops fuse.** [`Dataset::map_ops`] ([`Op::Cast`], [`Op::Scale`],
//!   [`Op::Reshape`], per component or for all) moves no data when it is reached:
//!   consecutive built-in maps are planned into one chain per component, and the
//!   chain runs in a single pass over the element (chunks of 4096 values go through
//!   every step in L1-resident scratch) when the element is *materialized* — by
//!   `batch`, straight into the element's slot of the batch buffer (slots filled on
//!   all cores with rayon), or else by `prefetch`'s thread or by the consumer.
//!   `u8 → float32 → x/255` therefore reads each image byte once and writes each
//!   float once.
//! - **Parallel map** of arbitrary functions ([`Dataset::map`]) runs on
//!   `num_parallel_calls` worker threads (default: all cores) and yields results in
//!   input order (deterministic), at most `2 × workers` elements in flight.
//! - **Shuffle** is `tf.data`'s buffer shuffle: a buffer of `buffer_size` elements,
//!   each output drawn uniformly from it and replaced by the next input. The PRNG is
//!   SplitMix64 with Lemire's unbiased bounded draw, so a given seed gives the same
//!   order on every run and machine (not `tf.data`'s order). Epoch `k` (the `k`-th
//!   iterator made from the same `Dataset` value, including each pass of a later
//!   `repeat`) uses seed `mix(seed, k)` when `reshuffle_each_iteration` is true, so
//!   every epoch differs; otherwise every epoch repeats epoch 0. Without a seed, a
//!   random one is drawn when the `shuffle` stage is made.
//! - **Prefetch** runs everything upstream on one thread, up to `n` finished
//!   elements ahead in a bounded channel.
//! - **repeat / take / skip / shard** follow `tf.data` (`take(-1)` takes all,
//!   `skip(-1)` skips all, `repeat(None)` repeats forever, shard `index` gets the
//!   elements `i` with `i % num_shards == index`). `repeat` of an empty epoch ends.
//! - **Cardinality** is tracked as in `tf.data` ([`Cardinality`]); functions never
//!   change it.
//! - **Stopping**: dropping an iterator at any point stops and joins every thread it
//!   started (the bounded channels are closed first, so no worker blocks) and frees
//!   every buffer; [`live_threads`] counts pipeline threads to prove it. A worker
//!   panic becomes an error, never a panic of the caller. After an error the
//!   iterator ends.

mod exec;
pub mod ops;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use exec::live_threads;

/// Warnings recorded since the last call (files skipped under
/// [`FilesOptions::skip_errors`]), oldest first; the queue is process-wide.
pub fn take_warnings() -> Vec<String> {
    exec::take_warnings()
}
pub use ops::{MapOps, Op};

use std::path::PathBuf;

use exec::{Comp, FileEntry, FileRows, FilesPlan, It, Item};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{Index, Tensor};

/// A map function over materialized elements (used for Python callables).
pub type MapFn = Arc<dyn Fn(Vec<Tensor>) -> Result<Vec<Tensor>> + Send + Sync>;

/// How many elements a dataset has, as `tf.data` tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cardinality {
    /// Exactly this many.
    Finite(u64),
    /// Never ends.
    Infinite,
    /// Not known without iterating.
    Unknown,
}

impl Cardinality {
    /// `tf.data`'s integer encoding: `n`, `-1` (infinite) or `-2` (unknown).
    pub fn as_i64(self) -> i64 {
        match self {
            Cardinality::Finite(n) => n as i64,
            Cardinality::Infinite => -1,
            Cardinality::Unknown => -2,
        }
    }
}

/// Static facts about one component: dtype and shape (`None` = unknown dimension).
pub type ComponentSpec = (DType, Vec<Option<usize>>);

/// Options of [`Dataset::from_files`].
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
    pub cycle_length: usize,
    /// Consecutive rows taken from one file before moving to the next open one.
    pub block_length: usize,
    /// Skip (with a warning, see [`take_warnings`]) files that are missing, corrupt
    /// or disagree with the others, instead of failing.
    pub skip_errors: bool,
}

impl Default for FilesOptions {
    fn default() -> Self {
        FilesOptions {
            keys: None,
            shuffle_files: false,
            seed: None,
            cycle_length: 1,
            block_length: 1,
            skip_errors: false,
        }
    }
}

enum Node {
    Files {
        files: Arc<Vec<FileEntry>>,
        plan: Arc<FilesPlan>,
        shuffle_seed: Option<u64>,
        epoch: AtomicU64,
    },
    Slices {
        comps: Vec<Tensor>,
        len: usize,
    },
    Range {
        n: u64,
    },
    MapOps {
        input: Dataset,
        ops: Vec<MapOps>,
    },
    MapFn {
        input: Dataset,
        f: MapFn,
        parallel: usize,
    },
    Shuffle {
        input: Dataset,
        buffer: usize,
        seed: u64,
        reshuffle: bool,
        epoch: AtomicU64,
    },
    Batch {
        input: Dataset,
        size: usize,
        drop_remainder: bool,
    },
    Prefetch {
        input: Dataset,
        n: usize,
    },
    Repeat {
        input: Dataset,
        count: Option<u64>,
    },
    Take {
        input: Dataset,
        n: Option<u64>,
    },
    Skip {
        input: Dataset,
        n: Option<u64>,
    },
    Shard {
        input: Dataset,
        num: u64,
        index: u64,
    },
}

/// An immutable pipeline description; [`Dataset::iter`] runs it. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Dataset {
    node: Arc<Node>,
}

fn mix(seed: u64, epoch: u64) -> u64 {
    let mut r = exec::SplitMix64::new(seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64()
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Dataset {
    fn wrap(node: Node) -> Dataset {
        Dataset {
            node: Arc::new(node),
        }
    }

    /// Elements are the axis-0 slices of `comps` (zero-copy views), which must share
    /// their leading dimension.
    pub fn from_tensor_slices(comps: Vec<Tensor>) -> Result<Dataset> {
        let first = comps.first().ok_or_else(|| {
            Error::InvalidArgument("from_tensor_slices needs at least one tensor".into())
        })?;
        let len = *first.shape().first().ok_or_else(|| {
            Error::Shape(
                "from_tensor_slices needs tensors with at least one dimension; component 0 is 0-d"
                    .into(),
            )
        })?;
        for (i, t) in comps.iter().enumerate() {
            let d = t.shape().first().copied();
            if d != Some(len) {
                return Err(Error::Shape(format!(
                    "from_tensor_slices: all components must have the same leading dimension, but component 0 has {len} and component {i} has {}",
                    d.map_or("none (0-d)".to_string(), |d| d.to_string())
                )));
            }
        }
        Ok(Self::wrap(Node::Slices { comps, len }))
    }

    /// The rows (axis-0 slices) of the arrays in many `.npy` files, or of chosen
    /// members of `.npz` files (one component per key), file after file.
    ///
    /// Only the headers are read here (so the cardinality is known); every file
    /// must hold arrays of the same dtype and row shape, and the keys of one file
    /// the same number of rows, else an error names the file. While iterating, at
    /// most `cycle_length` files are open, each memory-mapped when opened (`.npz`
    /// members: stored members are mapped, deflated ones decompressed) and unmapped
    /// when its last row has been read. A file that has gone missing, is corrupt or
    /// has changed fails the iteration with an error naming it, unless
    /// `skip_errors`. Rows are zero-copy views of the mapping unless a stage keeps
    /// rows for long (a shuffle buffer), in which case each row is copied out so the
    /// buffer does not keep whole files mapped.
    pub fn from_files(paths: Vec<PathBuf>, opts: FilesOptions) -> Result<Dataset> {
        use crate::format::{npy, npz::NpzArchive};
        use rayon::prelude::*;
        if paths.is_empty() {
            return Err(Error::InvalidArgument("from_files: no files given".into()));
        }
        if opts.cycle_length == 0 || opts.block_length == 0 {
            return Err(Error::InvalidArgument(
                "from_files: cycle_length and block_length must be positive".into(),
            ));
        }
        let mut keys = opts.keys.clone();
        if let Some(k) = &keys {
            if k.is_empty() {
                return Err(Error::InvalidArgument("from_files: keys is empty".into()));
            }
        } else if crate::format::detect(&paths[0]) == Some(crate::format::FileFormat::Npz) {
            let a = NpzArchive::open(&paths[0])?;
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
        let read = |p: &PathBuf| -> Result<Heads> {
            let name = p.display().to_string();
            let heads: Vec<(npy::NpyHeader, String)> = match &keys {
                None => vec![(npy::read_header(p)?, name.clone())],
                Some(keys) => {
                    let a = NpzArchive::open(p)?;
                    keys.iter()
                        .map(|k| Ok((a.header(k)?, format!("{name}:{k}"))))
                        .collect::<Result<_>>()?
                }
            };
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
        let heads: Vec<Result<Heads>> = paths.par_iter().map(read).collect();
        let mut files = Vec::with_capacity(paths.len());
        let mut spec: Option<(Heads, usize)> = None;
        let describe = |h: &Heads| {
            h.iter()
                .map(|(d, s)| format!("rows of shape {:?} ({d})", &s[1..]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (i, (p, h)) in paths.iter().zip(heads).enumerate() {
            let checked = h.map_err(|e| exec::name_file(e, p)).and_then(|h| {
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
                    _ => Ok((rows, row_spec)),
                }
            });
            match checked {
                Ok((rows, row_spec)) => {
                    if spec.is_none() {
                        spec = Some((row_spec, i));
                    }
                    files.push(FileEntry {
                        path: p.clone(),
                        rows,
                    });
                }
                Err(e) if opts.skip_errors => {
                    exec::warn(format!("skipping {}: {e}", p.display()));
                }
                Err(e) => return Err(e),
            }
        }
        let (spec, _) = spec.ok_or_else(|| {
            Error::InvalidArgument("from_files: none of the files could be read".into())
        })?;
        let shuffle_seed = opts.shuffle_files.then(|| {
            opts.seed
                .unwrap_or_else(|| RandomState::new().hash_one(std::time::SystemTime::now()))
        });
        Ok(Self::wrap(Node::Files {
            files: Arc::new(files),
            plan: Arc::new(FilesPlan {
                keys,
                spec,
                skip_errors: opts.skip_errors,
                cycle_length: opts.cycle_length,
                block_length: opts.block_length,
            }),
            shuffle_seed,
            epoch: AtomicU64::new(0),
        }))
    }

    /// The int64 scalars `0, 1, ..., n - 1`.
    pub fn range(n: u64) -> Dataset {
        Self::wrap(Node::Range { n })
    }

    /// Apply built-in ops; fuses with a directly preceding `map_ops`. Shape and dtype
    /// errors surface when the first element is reached.
    pub fn map_ops(&self, ops: MapOps) -> Dataset {
        if let Node::MapOps { input, ops: prev } = &*self.node {
            let mut all = prev.clone();
            all.push(ops);
            return Self::wrap(Node::MapOps {
                input: input.clone(),
                ops: all,
            });
        }
        Self::wrap(Node::MapOps {
            input: self.clone(),
            ops: vec![ops],
        })
    }

    /// Apply `f` to every element on `num_parallel_calls` threads (default: all
    /// cores; `1` runs it on the consuming thread), keeping the input order.
    pub fn map(&self, f: MapFn, num_parallel_calls: Option<usize>) -> Dataset {
        Self::wrap(Node::MapFn {
            input: self.clone(),
            f,
            parallel: num_parallel_calls
                .unwrap_or_else(default_parallelism)
                .max(1),
        })
    }

    /// `tf.data`'s buffer shuffle (see the module docs for the seeding rules).
    pub fn shuffle(
        &self,
        buffer_size: usize,
        seed: Option<u64>,
        reshuffle_each_iteration: bool,
    ) -> Dataset {
        let seed =
            seed.unwrap_or_else(|| RandomState::new().hash_one(std::time::SystemTime::now()));
        Self::wrap(Node::Shuffle {
            input: self.clone(),
            buffer: buffer_size.max(1),
            seed,
            reshuffle: reshuffle_each_iteration,
            epoch: AtomicU64::new(0),
        })
    }

    /// Stack `batch_size` consecutive elements (the last batch may be smaller
    /// unless `drop_remainder`).
    pub fn batch(&self, batch_size: usize, drop_remainder: bool) -> Result<Dataset> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument("batch_size must be positive".into()));
        }
        Ok(Self::wrap(Node::Batch {
            input: self.clone(),
            size: batch_size,
            drop_remainder,
        }))
    }

    /// Produce up to `n` elements ahead on a background thread.
    pub fn prefetch(&self, n: usize) -> Dataset {
        Self::wrap(Node::Prefetch {
            input: self.clone(),
            n: n.max(1),
        })
    }

    /// Repeat `count` times (`None`: forever).
    pub fn repeat(&self, count: Option<u64>) -> Dataset {
        Self::wrap(Node::Repeat {
            input: self.clone(),
            count,
        })
    }

    /// The first `n` elements (`None`: all).
    pub fn take(&self, n: Option<u64>) -> Dataset {
        Self::wrap(Node::Take {
            input: self.clone(),
            n,
        })
    }

    /// All but the first `n` elements (`None`: skip all).
    pub fn skip(&self, n: Option<u64>) -> Dataset {
        Self::wrap(Node::Skip {
            input: self.clone(),
            n,
        })
    }

    /// Elements `i` with `i % num_shards == index`.
    pub fn shard(&self, num_shards: u64, index: u64) -> Result<Dataset> {
        if num_shards == 0 || index >= num_shards {
            return Err(Error::InvalidArgument(format!(
                "shard index {index} is out of range for {num_shards} shards"
            )));
        }
        Ok(Self::wrap(Node::Shard {
            input: self.clone(),
            num: num_shards,
            index,
        }))
    }

    /// How many elements an epoch has.
    pub fn cardinality(&self) -> Cardinality {
        use Cardinality::*;
        match &*self.node {
            Node::Files { files, .. } => Finite(files.iter().map(|f| f.rows as u64).sum()),
            Node::Slices { len, .. } => Finite(*len as u64),
            Node::Range { n } => Finite(*n),
            Node::MapOps { input, .. }
            | Node::MapFn { input, .. }
            | Node::Shuffle { input, .. }
            | Node::Prefetch { input, .. } => input.cardinality(),
            Node::Batch {
                input,
                size,
                drop_remainder,
            } => match input.cardinality() {
                Finite(n) if *drop_remainder => Finite(n / *size as u64),
                Finite(n) => Finite(n.div_ceil(*size as u64)),
                c => c,
            },
            Node::Repeat { input, count } => match (input.cardinality(), count) {
                (Finite(0), _) => Finite(0),
                (_, Some(0)) => Finite(0),
                (Finite(n), Some(k)) => Finite(n * k),
                (Finite(_) | Infinite, None) => Infinite,
                (Infinite, Some(_)) => Infinite,
                (Unknown, _) => Unknown,
            },
            Node::Take { input, n } => match (input.cardinality(), n) {
                (c, None) => c,
                (Finite(m), Some(n)) => Finite(m.min(*n)),
                (Infinite, Some(n)) => Finite(*n),
                (Unknown, Some(_)) => Unknown,
            },
            Node::Skip { input, n } => match (input.cardinality(), n) {
                (Infinite, _) => Infinite,
                (Finite(_), None) => Finite(0),
                (Finite(m), Some(n)) => Finite(m.saturating_sub(*n)),
                (Unknown, _) => Unknown,
            },
            Node::Shard { input, num, index } => match input.cardinality() {
                Finite(n) => Finite(n / num + u64::from(index < &(n % num))),
                c => c,
            },
        }
    }

    /// Dtype and shape of each component, when known without running a function.
    pub fn element_spec(&self) -> Result<Option<Vec<ComponentSpec>>> {
        Ok(match &*self.node {
            Node::Files { plan, .. } => Some(
                plan.spec
                    .iter()
                    .map(|(d, s)| (*d, s.iter().map(|&x| Some(x)).collect()))
                    .collect(),
            ),
            Node::Slices { comps, .. } => Some(
                comps
                    .iter()
                    .map(|t| (t.dtype(), t.shape()[1..].iter().map(|&d| Some(d)).collect()))
                    .collect(),
            ),
            Node::Range { .. } => Some(vec![(DType::Int64, vec![])]),
            Node::MapOps { input, ops } => match input.element_spec()? {
                None => None,
                Some(spec) => {
                    let n = spec.len();
                    let mut out = Vec::with_capacity(n);
                    for (i, (mut d, mut s)) in spec.into_iter().enumerate() {
                        for o in ops {
                            (d, s) = ops::plan_spec(d, &s, o.for_component(i, n)?)?;
                        }
                        out.push((d, s));
                    }
                    Some(out)
                }
            },
            Node::MapFn { .. } => None,
            Node::Batch {
                input,
                size,
                drop_remainder,
            } => input.element_spec()?.map(|spec| {
                spec.into_iter()
                    .map(|(d, s)| {
                        let mut full = vec![drop_remainder.then_some(*size)];
                        full.extend(s);
                        (d, full)
                    })
                    .collect()
            }),
            Node::Shuffle { input, .. }
            | Node::Prefetch { input, .. }
            | Node::Repeat { input, .. }
            | Node::Take { input, .. }
            | Node::Skip { input, .. }
            | Node::Shard { input, .. } => input.element_spec()?,
        })
    }

    /// Start one epoch.
    pub fn iter(&self) -> Result<DatasetIter> {
        Ok(DatasetIter {
            inner: self.build()?,
            failed: false,
        })
    }

    fn build(&self) -> Result<It> {
        self.build_in(false)
    }

    /// `keep`: a downstream stage holds elements for long (a shuffle buffer), so a
    /// file source copies its rows rather than keeping whole files mapped.
    fn build_in(&self, keep: bool) -> Result<It> {
        Ok(match &*self.node {
            Node::Files {
                files,
                plan,
                shuffle_seed,
                epoch,
            } => {
                let mut order: Vec<FileEntry> = files.as_ref().clone();
                if let Some(seed) = shuffle_seed {
                    let e = epoch.fetch_add(1, Ordering::Relaxed);
                    let mut rng = exec::SplitMix64::new(mix(*seed ^ 0x5EED_F11E_5EED_F11E, e));
                    for i in (1..order.len()).rev() {
                        order.swap(i, rng.below(i + 1));
                    }
                }
                let rows = FileRows::new(order, plan.clone(), keep);
                if keep {
                    // Rows are copied out: do that (and the page faults of reading
                    // the mapping) on a reader thread, ahead of the consumer.
                    Box::new(exec::Prefetch::new(Box::new(rows), 256)?)
                } else {
                    Box::new(rows)
                }
            }
            Node::Slices { comps, len } => {
                let comps = comps.clone();
                Box::new((0..*len).map(move |i| {
                    comps
                        .iter()
                        .map(|t| t.index(&[Index::At(i as isize)]).map(Comp::Ready))
                        .collect::<Result<Item>>()
                }))
            }
            Node::Range { n } => Box::new(
                (0..*n).map(|i| Tensor::from_slice(&[i as i64], &[]).map(|t| vec![Comp::Ready(t)])),
            ),
            Node::MapOps { input, ops } => {
                let ops = ops.clone();
                Box::new(
                    input
                        .build_in(keep)?
                        .map(move |r| r.and_then(|item| exec::map_ops(item, &ops))),
                )
            }
            Node::MapFn { input, f, parallel } => {
                let up = input.build_in(keep)?;
                if *parallel <= 1 {
                    let f = f.clone();
                    Box::new(up.map(move |r| r.and_then(|item| exec::apply_fn(&f, item))))
                } else {
                    Box::new(exec::ParallelMap::new(up, f.clone(), *parallel)?)
                }
            }
            Node::Shuffle {
                input,
                buffer,
                seed,
                reshuffle,
                epoch,
            } => {
                let e = if *reshuffle {
                    epoch.fetch_add(1, Ordering::Relaxed)
                } else {
                    0
                };
                Box::new(exec::Shuffle::new(
                    input.build_in(true)?,
                    *buffer,
                    mix(*seed, e),
                ))
            }
            Node::Batch {
                input,
                size,
                drop_remainder,
            } => Box::new(exec::Batch {
                upstream: input.build_in(false)?,
                size: *size,
                drop_remainder: *drop_remainder,
                done: false,
                recycler: exec::Recycler::new(4),
            }),
            Node::Prefetch { input, n } => {
                Box::new(exec::Prefetch::new(input.build_in(keep || *n > 64)?, *n)?)
            }
            Node::Repeat { input, count } => Box::new(Repeat {
                input: input.clone(),
                keep,
                current: None,
                left: *count,
                yielded: false,
            }),
            Node::Take { input, n } => match n {
                None => input.build_in(keep)?,
                Some(n) => Box::new(input.build_in(keep)?.take(*n as usize)),
            },
            Node::Skip { input, n } => match n {
                None => {
                    let mut up = input.build_in(keep)?;
                    // Skip all: drain (errors still surface), yield nothing more.
                    Box::new(std::iter::from_fn(move || loop {
                        match up.next()? {
                            Err(e) => return Some(Err(e)),
                            Ok(_) => continue,
                        }
                    }))
                }
                Some(n) => Box::new(input.build_in(keep)?.skip(*n as usize)),
            },
            Node::Shard { input, num, index } => {
                let (num, index) = (*num, *index);
                Box::new(
                    input
                        .build_in(keep)?
                        .enumerate()
                        .filter(move |(i, _)| *i as u64 % num == index)
                        .map(|(_, r)| r),
                )
            }
        })
    }
}

/// Re-runs its input `left` more times (forever for `None`).
struct Repeat {
    input: Dataset,
    keep: bool,
    current: Option<It>,
    left: Option<u64>,
    yielded: bool,
}

impl Iterator for Repeat {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        loop {
            if let Some(it) = &mut self.current {
                match it.next() {
                    Some(r) => {
                        self.yielded = true;
                        return Some(r);
                    }
                    None => {
                        self.current = None;
                        if !self.yielded {
                            return None; // an empty epoch: repeating would spin forever
                        }
                    }
                }
            }
            match &mut self.left {
                Some(0) => return None,
                Some(k) => *k -= 1,
                None => {}
            }
            self.yielded = false;
            match self.input.build_in(self.keep) {
                Ok(it) => self.current = Some(it),
                Err(e) => {
                    self.left = Some(0);
                    return Some(Err(e));
                }
            }
        }
    }
}

/// One epoch of a [`Dataset`]: yields each element's components, or the first
/// error (after which it ends). Dropping it stops and joins its threads.
pub struct DatasetIter {
    inner: It,
    failed: bool,
}

impl Iterator for DatasetIter {
    type Item = Result<Vec<Tensor>>;
    fn next(&mut self) -> Option<Result<Vec<Tensor>>> {
        if self.failed {
            return None;
        }
        let r = self.inner.next()?.and_then(exec::materialize);
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Casting;

    fn ints(ds: &Dataset) -> Vec<i64> {
        ds.iter()
            .unwrap()
            .flat_map(|e| e.unwrap()[0].to_vec::<i64>().unwrap())
            .collect()
    }

    #[test]
    fn basic_stages_match_tf_semantics() {
        let r = Dataset::range(10);
        assert_eq!(ints(&r.skip(Some(3)).take(Some(4))), vec![3, 4, 5, 6]);
        assert_eq!(ints(&r.shard(3, 1).unwrap()), vec![1, 4, 7]);
        assert_eq!(r.shard(3, 1).unwrap().cardinality(), Cardinality::Finite(3));
        assert_eq!(
            ints(&r.take(Some(3)).repeat(Some(2))),
            vec![0, 1, 2, 0, 1, 2]
        );
        assert_eq!(r.repeat(None).cardinality(), Cardinality::Infinite);
        assert_eq!(
            r.repeat(None).take(Some(25)).cardinality(),
            Cardinality::Finite(25)
        );
        assert_eq!(ints(&r.repeat(None).take(Some(25))).len(), 25);
        assert_eq!(ints(&r.skip(None)), Vec::<i64>::new());
        let b = r.batch(4, false).unwrap();
        assert_eq!(b.cardinality(), Cardinality::Finite(3));
        let shapes: Vec<Vec<usize>> = b
            .iter()
            .unwrap()
            .map(|e| e.unwrap()[0].shape().to_vec())
            .collect();
        assert_eq!(shapes, vec![vec![4], vec![4], vec![2]]);
        assert_eq!(r.batch(4, true).unwrap().iter().unwrap().count(), 2);
        assert_eq!(ints(&r.prefetch(2)), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn shuffle_is_a_seeded_permutation_that_changes_per_epoch() {
        let ds = Dataset::range(100).shuffle(16, Some(42), true);
        let (a, b) = (ints(&ds), ints(&ds));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, b);
        let again = Dataset::range(100).shuffle(16, Some(42), true);
        assert_eq!(ints(&again), a);
        assert_eq!(ints(&again), b);
        let fixed = Dataset::range(100).shuffle(16, Some(42), false);
        assert_eq!(ints(&fixed), ints(&fixed));
    }

    #[test]
    fn parallel_map_keeps_order_and_stops_on_drop() {
        let f: MapFn = Arc::new(|v: Vec<Tensor>| {
            let x = v[0].to_vec::<i64>()?[0];
            Ok(vec![Tensor::from_slice(&[x * 2], &[])?])
        });
        let ds = Dataset::range(1000).map(f.clone(), Some(4)).prefetch(3);
        assert_eq!(ints(&ds), (0..1000).map(|x| x * 2).collect::<Vec<_>>());
        let endless = Dataset::range(10).repeat(None).map(f, Some(3)).prefetch(2);
        let mut it = endless.iter().unwrap();
        for _ in 0..50 {
            it.next().unwrap().unwrap();
        }
        assert!(live_threads() >= 4);
        drop(it);
        // Other tests may run pipelines concurrently; ours are joined, so at most
        // theirs remain. Checked precisely from Python (single-threaded tests).
        let bad: MapFn = Arc::new(|_| Err(Error::InvalidArgument("boom".into())));
        let mut it = Dataset::range(5).map(bad, Some(2)).iter().unwrap();
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn fused_ops_write_into_batches() {
        let img: Vec<u8> = (0..24).collect();
        let x = Tensor::from_slice(&img, &[4, 2, 3]).unwrap();
        let y = Tensor::from_slice(&[1i64, 2, 3, 4], &[4]).unwrap();
        let ds = Dataset::from_tensor_slices(vec![x, y])
            .unwrap()
            .map_ops(MapOps::Each(vec![
                Some(vec![Op::Cast {
                    dtype: DType::Float32,
                    casting: Casting::Unsafe,
                }]),
                None,
            ]))
            .map_ops(MapOps::Each(vec![
                Some(vec![
                    Op::Scale { mul: 0.5, add: 1.0 },
                    Op::Reshape(vec![-1]),
                ]),
                None,
            ]))
            .batch(3, false)
            .unwrap();
        let spec = ds.element_spec().unwrap().unwrap();
        assert_eq!(spec[0], (DType::Float32, vec![None, Some(6)]));
        let out: Vec<_> = ds.iter().unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(out[0][0].shape(), &[3, 6]);
        let want: Vec<f32> = (0..18).map(|v| v as f32 * 0.5 + 1.0).collect();
        assert_eq!(out[0][0].to_vec::<f32>().unwrap(), want);
        assert_eq!(out[1][1].to_vec::<i64>().unwrap(), vec![4]);
        let bad = Tensor::from_slice(&[1u8, 2], &[2]).unwrap();
        let z = Tensor::from_slice(&[1u8, 2, 3], &[3]).unwrap();
        let err = Dataset::from_tensor_slices(vec![bad, z])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("component 1 has 3"), "{err}");
    }

    #[test]
    fn from_files_reads_rows_in_order_interleaves_and_names_bad_files() {
        use crate::format::npy;
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (i, n) in [3usize, 1, 2].iter().enumerate() {
            let vals: Vec<i64> = (0..*n as i64 * 2).map(|v| 100 * i as i64 + v).collect();
            let t = Tensor::from_slice(&vals, &[*n, 2]).unwrap();
            let p = dir.path().join(format!("f{i}.npy"));
            npy::save(&p, &t.view()).unwrap();
            paths.push(p);
        }
        let firsts = |ds: &Dataset| -> Vec<i64> {
            ds.iter()
                .unwrap()
                .map(|e| e.unwrap()[0].to_vec::<i64>().unwrap()[0])
                .collect()
        };
        let ds = Dataset::from_files(paths.clone(), FilesOptions::default()).unwrap();
        assert_eq!(ds.cardinality(), Cardinality::Finite(6));
        assert_eq!(firsts(&ds), vec![0, 2, 4, 100, 200, 202]);
        let opts = FilesOptions {
            cycle_length: 2,
            ..FilesOptions::default()
        };
        let il = Dataset::from_files(paths.clone(), opts).unwrap();
        // tf.data interleave order: f0 f1 f0 (f1 ends) f0 f2 f2
        assert_eq!(firsts(&il), vec![0, 100, 2, 4, 200, 202]);
        assert_eq!(firsts(&ds.shuffle(4, Some(1), true)).len(), 6);
        let bad = Tensor::from_slice(&[1.0f32, 2.0], &[1, 2]).unwrap();
        npy::save(&paths[1], &bad.view()).unwrap();
        let err = Dataset::from_files(paths.clone(), FilesOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("f1.npy") && err.contains("float32"), "{err}");
        // Changed after the headers were read: an error naming the file, mid-stream.
        let mut it = ds.iter().unwrap();
        for _ in 0..3 {
            it.next().unwrap().unwrap();
        }
        let err = it.next().unwrap().err().unwrap().to_string();
        assert!(err.contains("f1.npy"), "{err}");
        assert!(it.next().is_none());
    }
}
