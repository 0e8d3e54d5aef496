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
            recycler: Recycler::new(RECYCLE_PER_SIZE),
        }
    }
}

/// Batch buffers of one size a [`Batch`] keeps for re-use: enough for every buffer
/// that can be in flight behind a `prefetch(4)` (four queued, one being sent, the
/// one the loop holds, one a framework such as JAX has not let go of yet) plus the
/// one being filled.
const RECYCLE_PER_SIZE: usize = 8;

/// Most buffers a recycler keeps over all sizes (components of different sizes each
/// get [`RECYCLE_PER_SIZE`] up to this).
const RECYCLE_MAX_PER_CAP: usize = 16;

/// Batch buffers this iterator made recently. A buffer whose every other user is
/// gone (the consumer dropped the batch) is written again for a later batch instead
/// of allocating a fresh one: its pages are already faulted in, which on this kind
/// of VM is worth more than the writing itself. Holds at most `cap` buffers of each
/// size (each component of a batch has its own), and at most `16 * cap` in all;
/// a recycler only grows when no kept buffer is free, so it holds no more than were
/// in flight at once.
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
        let same = self.ring.iter().filter(|k| k.len() == s.len()).count();
        if same >= self.cap {
            // The oldest of this size: the likeliest to be free, so no longer needed
            // to cover the buffers in flight.
            if let Some(i) = self.ring.iter().position(|k| k.len() == s.len()) {
                self.ring.remove(i);
            }
        } else if self.ring.len() >= self.cap * RECYCLE_MAX_PER_CAP {
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

#[cfg(test)]
mod recycler_tests {
    use super::*;

    fn buf(len: usize) -> Arc<Storage> {
        Arc::new(Storage::zeroed(len).unwrap())
    }

    #[test]
    fn each_size_keeps_its_own_buffers() {
        // Two components (images, labels): many label buffers must not push the free
        // image buffer out (one ring shared by all sizes did: a fresh image buffer,
        // page faults and all, for most batches once a few were in flight).
        let mut r = Recycler::new(2);
        let image = buf(4096);
        let ptr = Arc::as_ptr(&image);
        r.keep(image);
        let held: Vec<_> = (0..5).map(|_| buf(64)).collect();
        for l in &held {
            r.keep(l.clone());
        }
        let again = r.take(4096).expect("the free image buffer is still kept");
        assert_eq!(Arc::as_ptr(&again), ptr);
        // Buffers of one size: at most `cap`, the oldest go first.
        assert_eq!(r.ring.iter().filter(|k| k.len() == 64).count(), 2);
        assert!(
            r.take(64).is_none(),
            "all kept label buffers are still held"
        );
        drop(held);
        assert!(r.take(64).is_some());
    }

    #[test]
    fn keeps_at_most_sixteen_caps_in_all() {
        let mut r = Recycler::new(1);
        for len in 1..=40 {
            r.keep(buf(len));
        }
        assert_eq!(r.ring.len(), RECYCLE_MAX_PER_CAP);
        assert!(r.take(40).is_some() && r.take(1).is_none());
        let mut none = Recycler::new(0);
        none.keep(buf(8));
        assert!(none.take(8).is_none());
    }
}
