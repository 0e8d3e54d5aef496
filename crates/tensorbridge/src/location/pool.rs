//! [`Pooled`]: GET bodies read into reused buffers.
//!
//! A ranged GET's body arrives in pieces of a few hundred KiB that must be joined
//! into one buffer (rows are cut out of it). A fresh buffer of several MiB per GET
//! costs the kernel a page fault and a zeroed page for every 4 KiB of it, and the
//! allocator hands large freed buffers back to the kernel (`madvise`) only to fault
//! them in again for the next GET: measured on a `from_files` read of 1 GiB from a
//! local S3 server, ~10 % of the I/O threads' time. Buffers are therefore taken
//! from a small process-wide pool and given back when the last `Bytes` cut out of
//! them is dropped (`Bytes::from_owner`), so a steady read touches the same few
//! buffers over and over.

use std::sync::Mutex;

use bytes::Bytes;

/// Bytes of buffers the pool keeps at most while no one uses them: a `from_files`
/// iterator's bodies in use at once (the one being read, the next object's, one
/// more), so that an idle process holds no more than that.
const KEPT_BYTES: usize = 48 << 20;
/// Buffers smaller than this are allocated as usual (not worth pooling).
const MIN_POOLED: usize = 1 << 20;
/// Buffers larger than this are never kept (a pool of huge idle buffers would be
/// memory no one asked for).
const MAX_POOLED: usize = 16 << 20;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for `len` bytes: a kept one that fits, else new.
pub(crate) fn take(len: usize) -> Vec<u8> {
    if (MIN_POOLED..=MAX_POOLED).contains(&len) {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = free.iter().position(|b| b.capacity() >= len) {
            let mut b = free.swap_remove(i);
            b.clear();
            return b;
        }
    }
    Vec::with_capacity(len)
}

/// A filled buffer as `Bytes`; the buffer goes back to the pool when the last
/// `Bytes` over it is dropped.
pub(crate) fn freeze(buf: Vec<u8>) -> Bytes {
    if buf.capacity() < MIN_POOLED {
        return Bytes::from(buf);
    }
    Bytes::from_owner(Pooled(buf))
}

/// A pooled buffer's owner (see [`freeze`]).
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() > MAX_POOLED {
            return;
        }
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if kept + buf.capacity() <= KEPT_BYTES {
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_body_is_reused() {
        let mut b = take(2 << 20);
        b.extend_from_slice(&vec![7u8; 2 << 20]);
        let bytes = freeze(b);
        let part = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(&part[..], &[7u8; 10]);
        drop(part); // the last handle: the buffer goes back
        let again = take(2 << 20);
        assert!(again.is_empty() && again.capacity() >= 2 << 20);
    }

    #[test]
    fn idle_buffers_stay_within_the_cap() {
        let bodies: Vec<Bytes> = (0..8)
            .map(|_| {
                let mut b = take(MAX_POOLED);
                b.resize(MAX_POOLED, 0);
                freeze(b)
            })
            .collect();
        drop(bodies);
        let free = FREE.lock().unwrap();
        assert!(free.iter().map(Vec::capacity).sum::<usize>() <= KEPT_BYTES);
    }

    #[test]
    fn small_and_huge_buffers_are_not_kept() {
        let small = freeze(vec![1u8; 100]);
        assert_eq!(&small[..], &[1u8; 100]);
        let huge = take(MAX_POOLED + 1);
        assert!(huge.capacity() > MAX_POOLED);
    }
}
