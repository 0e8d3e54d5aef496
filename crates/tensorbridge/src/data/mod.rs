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
//!     .shuffle(4, Some(7), true)?
//!     .batch(4, false)?
//!     .prefetch(2)?;
//! let batches: Vec<Vec<Tensor>> = ds.iter()?.collect::<Result<_, _>>()?;
//! assert_eq!(batches.len(), 2);
//! assert_eq!(batches[0][0].shape(), &[4, 1]);
//! assert_eq!(batches[1][1].shape(), &[2]);
//! # Ok::<(), tensorbridge::Error>(())
//! ```
//!
//! # What was chosen
//! Each rule lives in the file named after it: `files.rs`, `shuffle.rs`,
//! `batch.rs`, `prefetch.rs`, `map.rs` (and `ops.rs` for the built-in ops, `rng.rs`
//! for seeding, `run.rs` for building an epoch's iterators, `state.rs` for saving
//! and restoring them).
//!
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
//!   `num_parallel_calls` worker threads (default: all cores; clamped to
//!   [`max_workers`]) and yields results in input order (deterministic), at most
//!   `2 × workers` elements in flight. An error the function returns (e.g. an
//!   [`Error::External`] carrying a Python exception) reaches the consumer as it is.
//! - **Shuffle** is `tf.data`'s buffer shuffle: a buffer of `buffer_size` elements,
//!   each output drawn uniformly from it and replaced by the next input. The PRNG is
//!   SplitMix64 with Lemire's unbiased bounded draw, so a given seed gives the same
//!   order on every run and machine (not `tf.data`'s order). Epoch `k` (the `k`-th
//!   iterator made from the same `Dataset` value, including each pass of a later
//!   `repeat`) uses seed `mix(seed, k)` when `reshuffle_each_iteration` is true, so
//!   every epoch differs; otherwise every epoch repeats epoch 0. Without a seed, a
//!   random one is drawn when the `shuffle` stage is made.
//! - **Prefetch** runs everything upstream on one thread, up to `n` finished
//!   elements ahead in a bounded channel (`n` clamped to [`prefetch::MAX_DEPTH`]).
//! - **Sizes** follow `tf.data`'s rules, checked once, here: a batch size must be
//!   positive, and one larger than the data yields one short batch (room is made
//!   for the rows that arrive, not for `batch_size`); a shuffle buffer must be
//!   positive or [`shuffle::WHOLE_DATASET`]; `prefetch` takes `>= 0` or `-1`
//!   (`AUTOTUNE`); `num_parallel_calls` takes `>= 1` or `-1`. Nothing a caller
//!   passes allocates more than the data needs or panics.
//! - **Warnings** (files skipped under [`OnError::Skip`]) belong to the iterator
//!   that met them ([`DatasetIter::take_warnings`]) or, for files skipped while
//!   the headers are read, are returned by [`Dataset::from_files`].
//! - **repeat / take / skip / shard** follow `tf.data` (`take(-1)` takes all,
//!   `skip(-1)` skips all, `repeat(None)` repeats forever, shard `index` gets the
//!   elements `i` with `i % num_shards == index`). `repeat` of an empty epoch ends.
//! - **Cardinality** is tracked as in `tf.data` ([`Cardinality`]); functions never
//!   change it.
//! - **Resuming** ([`DatasetIter::state`], [`Dataset::iter_from_state`]): an
//!   iterator's place is a small JSON value — counters, PRNG states, the epoch
//!   numbers used, and the source positions (provenances, see `state.rs`) of the
//!   elements in flight (a shuffle buffer, a prefetch channel, a parallel map's
//!   jobs), never their data. A restored iterator makes those elements again from
//!   their sources and yields exactly what the saved one would have yielded next,
//!   in this process or another. A state from a different pipeline definition is
//!   refused, naming the first stage that differs.
//! - **Stopping**: dropping an iterator at any point stops and joins every thread it
//!   started (the bounded channels are closed first, so no worker blocks) and frees
//!   every buffer; [`live_threads`] counts pipeline threads to prove it. A worker
//!   panic becomes an error, never a panic of the caller. After an error the
//!   iterator ends.

mod access;
mod assert_card;
mod batch;
mod combine;
mod comp;
mod concat;
mod enumerate;
mod files;
mod filter;
mod global;
#[cfg(test)]
mod global_state_tests;
#[cfg(test)]
mod global_tests;
mod map;
pub mod ops;
mod padded_batch;
mod permute;
pub mod prefetch;
mod remote_files;
mod rng;
mod run;
mod sample;
mod shard_rows;
pub mod shuffle;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_state;
mod threads;
mod unbatch;
mod warn;
mod zip;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

pub use files::{FilesOptions, OnError};
pub use map::max_workers;
pub use ops::{MapOps, Op};
pub use padded_batch::PaddedShapes;
pub use run::DatasetIter;
pub use threads::live_threads;

use files::{FileEntry, FilesPlan};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A map function over materialized elements (used for Python callables). An error
/// it returns ends the epoch and reaches the consumer unchanged.
pub type MapFn = Arc<dyn Fn(Vec<Tensor>) -> Result<Vec<Tensor>> + Send + Sync>;

/// A predicate over materialized elements (`filter`; used for Python callables).
/// An error it returns ends the epoch and reaches the consumer unchanged.
pub type PredFn = Arc<dyn Fn(&[Tensor]) -> Result<bool> + Send + Sync>;

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

enum Node {
    Files {
        files: Arc<Vec<FileEntry>>,
        plan: Arc<FilesPlan>,
        /// Shuffle the file order each epoch (with `seed`, drawn when not given).
        shuffle: bool,
        seed: AtomicU64,
        seeded: bool,
        epoch: AtomicU64,
        /// Files opened to re-make rows of a restored state (a few, recent ones).
        cache: Mutex<files::RowCache>,
        /// Random access (`get`, `global_shuffle`): prefix sums and open files.
        index: access::FileIndex,
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
        /// Why an iterator through this map cannot save its state (`None`: it can).
        no_state: Option<Arc<str>>,
    },
    Shuffle {
        input: Dataset,
        buffer: usize,
        /// The seed given, or drawn when the stage was made (a restored state
        /// puts its own back, so a restore in another process goes on alike).
        seed: AtomicU64,
        seeded: bool,
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
    /// The rows of a random-access source dealt out in blocks of `block` to `num`
    /// shards: this is shard `index` (see `shard_rows.rs`).
    ShardRows {
        input: Dataset,
        num: u64,
        index: u64,
        block: u64,
    },
    GlobalShuffle {
        input: Dataset,
        seed: AtomicU64,
        seeded: bool,
        reshuffle: bool,
        epoch: AtomicU64,
        n: u64,
    },
    Zip {
        inputs: Vec<Dataset>,
    },
    Concatenate {
        first: Dataset,
        second: Dataset,
    },
    Filter {
        input: Dataset,
        pred: PredFn,
    },
    Enumerate {
        input: Dataset,
        start: i64,
    },
    Unbatch {
        input: Dataset,
    },
    PaddedBatch {
        input: Dataset,
        size: usize,
        drop_remainder: bool,
        shapes: Option<PaddedShapes>,
        values: Option<Vec<Option<Tensor>>>,
    },
    Sample {
        inputs: Vec<Dataset>,
        weights: Vec<f64>,
        seed: u64,
        stop_on_empty: bool,
    },
    Choose {
        inputs: Vec<Dataset>,
        choice: Dataset,
        stop_on_empty: bool,
    },
    AssertCardinality {
        input: Dataset,
        n: u64,
    },
}

/// An immutable pipeline description; [`Dataset::iter`] runs it. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Dataset {
    node: Arc<Node>,
}

impl Dataset {
    fn wrap(node: Node) -> Dataset {
        Dataset {
            node: Arc::new(node),
        }
    }

    /// Elements are the axis-0 slices of `comps` (zero-copy views), which must share
    /// their leading dimension. Errors call them "component 0", "component 1", ...
    pub fn from_tensor_slices(comps: Vec<Tensor>) -> Result<Dataset> {
        Self::from_named_tensor_slices(
            comps
                .into_iter()
                .enumerate()
                .map(|(i, t)| (format!("component {i}"), t))
                .collect(),
        )
    }

    /// [`Dataset::from_tensor_slices`] with a name per component for its errors
    /// (the Python package passes paths like `[1]` or `['image']`).
    pub fn from_named_tensor_slices(comps: Vec<(String, Tensor)>) -> Result<Dataset> {
        let (name0, first) = comps.first().ok_or_else(|| {
            Error::InvalidArgument("from_tensor_slices needs at least one tensor".into())
        })?;
        let leading = |name: &str, t: &Tensor| {
            t.shape().first().copied().ok_or_else(|| {
                Error::Shape(format!(
                    "from_tensor_slices: {name} is 0-d (a scalar); every component needs a leading dimension to slice"
                ))
            })
        };
        let len = leading(name0, first)?;
        for (name, t) in &comps[1..] {
            let d = leading(name, t)?;
            if d != len {
                return Err(Error::Shape(format!(
                    "from_tensor_slices: all components must have the same leading dimension, but {name0} has {len} and {name} has {d} (shapes {:?} and {:?})",
                    first.shape(),
                    t.shape()
                )));
            }
        }
        let comps = comps.into_iter().map(|(_, t)| t).collect();
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
    /// has changed fails the iteration with an error naming it, unless `on_error` is
    /// [`OnError::Skip`] (then it is skipped with a warning). Rows are zero-copy
    /// views of the mapping unless a stage keeps rows for long (a shuffle buffer), in
    /// which case each row is copied out so the buffer does not keep whole files
    /// mapped.
    ///
    /// Returns the dataset and one warning per file skipped under
    /// [`OnError::Skip`] while the headers were read (files skipped later are
    /// reported by the iterator that meets them).
    pub fn from_files(paths: Vec<PathBuf>, opts: FilesOptions) -> Result<(Dataset, Vec<String>)> {
        let (files, plan, warnings) = files::plan_files(paths, &opts)?;
        let index = access::FileIndex::new(&files);
        let ds = Self::wrap(Node::Files {
            index,
            files: Arc::new(files),
            plan: Arc::new(plan),
            shuffle: opts.shuffle_files,
            seed: AtomicU64::new(opts.seed.unwrap_or_else(rng::random_seed)),
            seeded: opts.seed.is_some(),
            epoch: AtomicU64::new(0),
            cache: Mutex::new(files::RowCache::default()),
        });
        Ok((ds, warnings))
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

    /// Apply `f` to every element on `num_parallel_calls` threads (`None` or `-1`,
    /// `AUTOTUNE`: one per core; `1` runs it on the consuming thread; more than
    /// [`max_workers`] is clamped to it), keeping the input order.
    pub fn map(&self, f: MapFn, num_parallel_calls: Option<i64>) -> Result<Dataset> {
        Ok(Self::wrap(Node::MapFn {
            input: self.clone(),
            f,
            parallel: map::map_workers(num_parallel_calls)?,
            no_state: None,
        }))
    }

    /// [`Dataset::map`] with a function whose results depend on more than its
    /// argument (e.g. rows streamed from another system), so iterators through it
    /// cannot save their state: [`DatasetIter::state`] refuses, saying `why`.
    pub fn map_without_state(
        &self,
        f: MapFn,
        num_parallel_calls: Option<i64>,
        why: &str,
    ) -> Result<Dataset> {
        Ok(Self::wrap(Node::MapFn {
            input: self.clone(),
            f,
            parallel: map::map_workers(num_parallel_calls)?,
            no_state: Some(why.into()),
        }))
    }

    /// `tf.data`'s buffer shuffle (see the module docs for the seeding rules and
    /// [`shuffle`] for the buffer size: positive, or [`shuffle::WHOLE_DATASET`]).
    pub fn shuffle(
        &self,
        buffer_size: i64,
        seed: Option<u64>,
        reshuffle_each_iteration: bool,
    ) -> Result<Dataset> {
        let buffer = shuffle::shuffle_buffer(buffer_size, self.cardinality())?;
        Ok(Self::wrap(Node::Shuffle {
            input: self.clone(),
            buffer,
            seed: AtomicU64::new(seed.unwrap_or_else(rng::random_seed)),
            seeded: seed.is_some(),
            reshuffle: reshuffle_each_iteration,
            epoch: AtomicU64::new(0),
        }))
    }

    /// Stack `batch_size` consecutive elements (the last batch may be smaller
    /// unless `drop_remainder`). `batch_size` must be positive; one larger than
    /// the data gives one short batch.
    pub fn batch(&self, batch_size: i64, drop_remainder: bool) -> Result<Dataset> {
        Ok(Self::wrap(Node::Batch {
            input: self.clone(),
            size: batch::batch_size(batch_size)?,
            drop_remainder,
        }))
    }

    /// Produce up to `buffer_size` elements ahead on a background thread (`-1`,
    /// `AUTOTUNE`: [`prefetch::AUTOTUNE_DEPTH`]; `0` counts as 1; clamped to
    /// [`prefetch::MAX_DEPTH`]; other negative values are refused).
    pub fn prefetch(&self, buffer_size: i64) -> Result<Dataset> {
        Ok(Self::wrap(Node::Prefetch {
            input: self.clone(),
            n: prefetch::prefetch_depth(buffer_size)?,
        }))
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

    /// Elements `i` with `i % num_shards == index`; `num_shards` positive and
    /// `0 <= index < num_shards`.
    pub fn shard(&self, num_shards: i64, index: i64) -> Result<Dataset> {
        if num_shards <= 0 || index < 0 || index >= num_shards {
            return Err(Error::InvalidArgument(format!(
                "shard index {index} is out of range for {num_shards} shards"
            )));
        }
        Ok(Self::wrap(Node::Shard {
            input: self.clone(),
            num: num_shards as u64,
            index: index as u64,
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
            Node::GlobalShuffle { input, .. } => input.cardinality(),
            Node::ShardRows {
                input,
                num,
                index,
                block,
            } => match input.cardinality() {
                Finite(n) => Finite(shard_rows::shard_len(n, *num, *index, *block)),
                c => c,
            },
            Node::Zip { inputs } => zip::cardinality(inputs),
            Node::Concatenate { first, second } => {
                concat::cardinality(first.cardinality(), second.cardinality())
            }
            Node::Filter { .. } => Unknown,
            Node::Enumerate { input, .. } => enumerate::cardinality(input),
            Node::Unbatch { input } => unbatch::cardinality(input),
            Node::PaddedBatch {
                input,
                size,
                drop_remainder,
                ..
            } => padded_batch::cardinality(input, *size, *drop_remainder),
            Node::Sample { inputs, .. } | Node::Choose { inputs, .. } => {
                sample::cardinality(inputs)
            }
            Node::AssertCardinality { n, .. } => Finite(*n),
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
            | Node::Shard { input, .. }
            | Node::ShardRows { input, .. }
            | Node::GlobalShuffle { input, .. }
            | Node::Filter { input, .. }
            | Node::AssertCardinality { input, .. } => input.element_spec()?,
            Node::Zip { inputs } => zip::element_spec(inputs)?,
            Node::Concatenate { first, second } => {
                concat::common_spec(&[first, second], "concatenate")?
            }
            Node::Enumerate { input, .. } => enumerate::element_spec(input)?,
            Node::Unbatch { input } => unbatch::element_spec(input)?,
            Node::PaddedBatch {
                input,
                size,
                drop_remainder,
                shapes,
                ..
            } => padded_batch::element_spec(input, *size, *drop_remainder, shapes)?,
            Node::Sample { inputs, .. } => sample::element_spec(inputs, "sample_from_datasets")?,
            Node::Choose { inputs, .. } => sample::element_spec(inputs, "choose_from_datasets")?,
        })
    }
}
