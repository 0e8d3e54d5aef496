//! Warnings of one iterator (files skipped under [`super::OnError::Skip`]).
//!
//! Each [`super::DatasetIter`] owns one [`Warnings`] sink, shared with the stages it
//! built (which may run on its threads); nothing is process-wide, so two pipelines
//! running at once never see each other's warnings.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Warnings kept per iterator before the oldest are dropped.
const MAX_KEPT: usize = 1024;

/// A shared, bounded queue of warning messages.
#[derive(Clone, Debug, Default)]
pub(crate) struct Warnings(Arc<Mutex<VecDeque<String>>>);

impl Warnings {
    /// Record one warning (the oldest is dropped beyond [`MAX_KEPT`]).
    pub(crate) fn push(&self, msg: String) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_KEPT {
            q.pop_front();
        }
        q.push_back(msg);
    }

    /// Every warning recorded since the last call, oldest first.
    pub(crate) fn take(&self) -> Vec<String> {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }
}
