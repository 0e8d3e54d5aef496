//! `batch`: stack consecutive elements, writing each straight into its slot of the
//! batch buffer (built-in ops applied on the way), buffers recycled when free.

use std::collections::VecDeque;
use std::sync::Arc;

use rayon::prelude::*;

use serde_json::Value;

use super::comp::{Comp, Item};
use super::state::{It, Prov, Stage};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;
use crate::view::contiguous_strides;

/// Bytes of a batch component above which its slots are filled on all cores.
const PARALLEL_BATCH_BYTES: usize = 256 << 10;

/// Rows reserved up front for one batch; more are added as they arrive.
const INITIAL_ROWS: usize = 1024;

/// The size of `batch(batch_size)`: positive, as `tf.data` requires. A size larger
/// than the data is fine (one short batch, or none with `drop_remainder`).
pub(crate) fn batch_size(batch_size: i64) -> Result<usize> {
    if batch_size <= 0 {
        return Err(Error::InvalidArgument(format!(
            "batch_size must be greater than zero, not {batch_size}"
        )));
    }
    Ok(usize::try_from(batch_size).unwrap_or(usize::MAX))
}

/// One epoch of `batch`: stacks `size` consecutive elements per component.
pub(crate) struct Batch {
    upstream: It,
    size: usize,
    drop_remainder: bool,
    done: bool,
    recycler: Recycler,
}

impl Batch {
    pub(crate) fn new(upstream: It, size: usize, drop_remainder: bool) -> Batch {
        Batch {
            upstream,
            size,
            drop_remainder,
            done: false,
            recycler: Recycler::new(4),
        }
    }
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

impl Stage for Batch {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        if self.done {
            return None;
        }
        // Room for the rows that actually arrive: `size` may be far more than the
        // data holds (`batch(2**40)` of ten elements is one batch of ten).
        let mut items = Vec::with_capacity(self.size.min(INITIAL_ROWS));
        let mut provs = Vec::with_capacity(self.size.min(INITIAL_ROWS));
        while items.len() < self.size {
            match self.upstream.next() {
                Some(Ok((x, p))) => {
                    items.push(x);
                    provs.push(p);
                }
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
                .map(|ts| (ts.into_iter().map(Comp::Ready).collect(), Prov::List(provs))),
        )
    }

    /// A batch is never half-built between outputs: the state is the input's.
    fn state(&self) -> Result<Value> {
        self.upstream.state()
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
