//! The staleness sampler's running totals ([`SamplerCounters`]), counted by the hit path
//! (dropped samples) and the sampler task (everything else).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Totals since the layer started; every field is a relaxed atomic.
#[derive(Debug, Default)]
pub(crate) struct SamplerCounters {
    /// Hits picked for a sample.
    pub(crate) picked: AtomicU64,
    /// Picked samples dropped because the queue was full.
    pub(crate) dropped: AtomicU64,
    /// Samples dropped by the `max_samples_per_sec` ceiling.
    pub(crate) throttled: AtomicU64,
    /// Samples compared with their row: fresh or stale.
    pub(crate) verified: AtomicU64,
    /// Of the verified, those that differed from their row.
    pub(crate) stale: AtomicU64,
    /// Mismatched samples an invalidation of their key explained.
    pub(crate) discarded: AtomicU64,
    /// Samples whose database read failed.
    pub(crate) errors: AtomicU64,
    /// Database reads the sampler made.
    pub(crate) reads: AtomicU64,
    /// Windows found over budget (one warning each).
    pub(crate) breaches: AtomicU64,
}

/// A copy of the totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SamplerTotals {
    pub(crate) picked: u64,
    pub(crate) dropped: u64,
    pub(crate) throttled: u64,
    pub(crate) verified: u64,
    pub(crate) stale: u64,
    pub(crate) discarded: u64,
    pub(crate) errors: u64,
    pub(crate) reads: u64,
    pub(crate) breaches: u64,
}

impl SamplerCounters {
    pub(crate) fn totals(&self) -> SamplerTotals {
        SamplerTotals {
            picked: self.picked.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            verified: self.verified.load(Relaxed),
            stale: self.stale.load(Relaxed),
            discarded: self.discarded.load(Relaxed),
            errors: self.errors.load(Relaxed),
            reads: self.reads.load(Relaxed),
            breaches: self.breaches.load(Relaxed),
        }
    }
}
