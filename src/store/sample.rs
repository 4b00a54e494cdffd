//! The hit path's side of the staleness sampler: which hits are sampled ([`picks`],
//! one multiplication and one comparison) and handing a sample to the sampler task without
//! waiting ([`SampleQueue::offer`]). The task itself is `freshness::sampler`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::fence::Ticket;
use crate::sampler_counters::SamplerCounters;
use crate::stats::bump;

/// The golden-ratio multiplier: consecutive hit counts times it, modulo 2^64, are spread
/// evenly over the range (a Weyl sequence), so comparing the product with a threshold picks
/// a steady fraction of hits with no clustering and no random-number state.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Whether the hit that found a hit counter at `count` is sampled, for a queue's
/// [`threshold`](SampleQueue::threshold) (0: never). Counted from 1: the first hit is not
/// picked at every rate.
#[inline]
pub(crate) fn picks(count: u64, threshold: u64) -> bool {
    count.wrapping_add(1).wrapping_mul(SPREAD) < threshold
}

/// One sampled hit: what was served, and what the sampler needs to judge it.
#[derive(Debug)]
pub(crate) struct Sample<K, M> {
    pub(crate) key: K,
    /// The cached answer served: a row, or "no such row".
    pub(crate) value: Option<Arc<M>>,
    /// The store's fence state at the hit: a later write or invalidation of the key shows.
    pub(crate) ticket: Ticket,
    /// Clock time of the hit.
    pub(crate) hit_ms: u64,
    /// The entry was filled no earlier than this (its expiry minus its full lifetime).
    pub(crate) filled_after_ms: u64,
}

/// What the sampler task receives.
#[derive(Debug)]
pub(crate) enum SamplerMessage<K, M> {
    Sample(Sample<K, M>),
    /// Answer once every sample sent before is due later than now or done.
    Settle(oneshot::Sender<()>),
}

/// The sampler's queue as the store holds it.
#[derive(Debug)]
pub(crate) struct SampleQueue<K, M> {
    threshold: u64,
    capacity: usize,
    per_sec: u64,
    /// Samples admitted in the current clock second: `second << 32 | count`. A hit past
    /// `per_sec` in one second is throttled here, before it costs a clone or a send (the
    /// task's token bucket then smooths what passes).
    admitted: AtomicU64,
    tx: mpsc::Sender<SamplerMessage<K, M>>,
    /// Samples accepted and not yet read (a mismatch waiting out its grace delay is not
    /// counted).
    waiting: Arc<AtomicUsize>,
    counters: Arc<SamplerCounters>,
}

impl<K, M> SampleQueue<K, M> {
    /// A queue picking `rate` (`0.0..=1.0`) of hits, holding at most `capacity` samples.
    pub(crate) fn new(
        rate: f64,
        capacity: usize,
        per_sec: u32,
        tx: mpsc::Sender<SamplerMessage<K, M>>,
        waiting: Arc<AtomicUsize>,
        counters: Arc<SamplerCounters>,
    ) -> Self {
        let threshold = if rate >= 1.0 {
            u64::MAX
        } else {
            (rate * u64::MAX as f64) as u64
        };
        Self {
            threshold,
            capacity,
            per_sec: u64::from(per_sec),
            admitted: AtomicU64::new(0),
            tx,
            waiting,
            counters,
        }
    }

    /// The pick threshold: [`picks`] compares with it.
    pub(crate) fn threshold(&self) -> u64 {
        self.threshold
    }

    /// Whether a picked hit at clock time `now_ms` is within this second's ceiling; counts
    /// it as picked, and as throttled when it is not.
    pub(crate) fn admit(&self, now_ms: u64) -> bool {
        bump(&self.counters.picked);
        let second = (now_ms / 1_000) & 0xffff_ffff;
        let mut current = self.admitted.load(Ordering::Relaxed);
        loop {
            let next = if current >> 32 == second {
                if current & 0xffff_ffff >= self.per_sec {
                    bump(&self.counters.throttled);
                    return false;
                }
                current + 1
            } else {
                (second << 32) | 1
            };
            match self.admitted.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// Hands an admitted `sample` to the sampler task, or drops and counts it if the queue
    /// is full. Never waits.
    pub(crate) fn offer(&self, sample: Sample<K, M>) {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            bump(&self.counters.dropped);
            return;
        }
        if self.tx.try_send(SamplerMessage::Sample(sample)).is_err() {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            bump(&self.counters.dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(rate: f64) -> SampleQueue<u8, u8> {
        let (tx, _rx) = mpsc::channel(1);
        SampleQueue::new(rate, 1, 10, tx, Arc::default(), Arc::default())
    }

    #[test]
    fn picks_the_configured_fraction_of_consecutive_counts() {
        for (rate, expected) in [(0.0, 0), (0.001, 1_000), (0.01, 10_000), (1.0, 1_000_000)] {
            let queue = queue(rate);
            let picked = (0..1_000_000u64)
                .filter(|&n| picks(n, queue.threshold()))
                .count();
            assert!(
                picked.abs_diff(expected) <= 1,
                "rate {rate}: {picked} of 1,000,000"
            );
        }
    }

    #[test]
    fn admits_at_most_the_ceiling_per_second() {
        let queue = queue(1.0);
        let admitted = |at_ms: u64| (0..50).filter(|_| queue.admit(at_ms)).count();
        assert_eq!(admitted(0), 10);
        assert_eq!(admitted(999), 0);
        assert_eq!(admitted(1_000), 10);
        let totals = queue.counters.totals();
        assert_eq!((totals.picked, totals.throttled), (150, 130));
    }

    #[test]
    fn picks_are_spread_out() {
        // At 1%, no two picks among consecutive counts are closer than a handful apart.
        let queue = queue(0.01);
        let picks: Vec<u64> = (0..100_000u64)
            .filter(|&n| picks(n, queue.threshold()))
            .collect();
        let closest = picks.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(0);
        assert!(closest >= 30, "two picks {closest} hits apart");
    }
}
