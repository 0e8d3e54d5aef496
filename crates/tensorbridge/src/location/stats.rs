//! Process-wide counters of the ranged GETs sent to object stores: how many, how
//! many bytes they asked for, and the largest (and of the HEAD requests). For tests and diagnostics (e.g. that a
//! streamed read never holds a whole object).

use std::sync::atomic::{AtomicU64, Ordering};

static GETS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LARGEST: AtomicU64 = AtomicU64::new(0);
static HEADS: AtomicU64 = AtomicU64::new(0);

/// The counters of [`get_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetStats {
    /// Ranged GETs sent (each attempt counts).
    pub gets: u64,
    /// Bytes those GETs asked for.
    pub bytes: u64,
    /// The most bytes one GET asked for.
    pub largest: u64,
    /// HEAD requests sent (opening an object without a first read).
    pub heads: u64,
}

/// The counters since the process started or since [`reset_get_stats`].
pub fn get_stats() -> GetStats {
    GetStats {
        gets: GETS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
        largest: LARGEST.load(Ordering::Relaxed),
        heads: HEADS.load(Ordering::Relaxed),
    }
}

/// Set the counters to zero.
pub fn reset_get_stats() {
    GETS.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    HEADS.store(0, Ordering::Relaxed);
}

/// Count one GET of `len` bytes.
pub(crate) fn record(len: u64) {
    GETS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(len, Ordering::Relaxed);
    LARGEST.fetch_max(len, Ordering::Relaxed);
}

/// Count one HEAD request.
pub(crate) fn record_head() {
    HEADS.fetch_add(1, Ordering::Relaxed);
}
