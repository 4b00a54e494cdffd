//! The sliding window the freshness report covers: ten buckets of a tenth of the window each,
//! and the 95% Wilson score interval of a ratio measured over them.

use std::collections::VecDeque;

/// Buckets per window.
const BUCKETS: u64 = 10;

/// 95% two-sided normal quantile.
const Z: f64 = 1.959_963_984_540_054;

/// The sample outcomes of one bucket (and, summed, of a window).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) verified: u64,
    pub(crate) stale: u64,
    pub(crate) discarded: u64,
    /// Of the stale: the longest and the summed age bound, in ms.
    pub(crate) stale_age_max_ms: u64,
    pub(crate) stale_age_sum_ms: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.verified += other.verified;
        self.stale += other.stale;
        self.discarded += other.discarded;
        self.stale_age_max_ms = self.stale_age_max_ms.max(other.stale_age_max_ms);
        self.stale_age_sum_ms += other.stale_age_sum_ms;
    }

    /// Stale over verified; 0 with nothing verified.
    pub(crate) fn ratio(&self) -> f64 {
        if self.verified == 0 {
            0.0
        } else {
            self.stale as f64 / self.verified as f64
        }
    }

    /// The 95% Wilson score interval of the ratio; `(0, 1)` with nothing verified.
    pub(crate) fn interval(&self) -> (f64, f64) {
        wilson(self.stale, self.verified)
    }
}

/// The 95% Wilson score interval of `k` successes in `n` trials.
pub(crate) fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = Z * Z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = Z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let low = if k == 0 {
        0.0
    } else {
        (center - half).max(0.0)
    };
    let high = if k as f64 == n {
        1.0
    } else {
        (center + half).min(1.0)
    };
    (low, high)
}

/// What a sample came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Fresh,
    /// Differed from its row read after the hit, and no invalidation came; the entry had been
    /// cached at most this long (ms).
    Stale {
        age_bound_ms: u64,
    },
    /// Differed from its row, and the key was written or invalidated since the hit.
    Discarded,
}

/// Buckets by clock time.
#[derive(Debug)]
pub(crate) struct Window {
    bucket_ms: u64,
    /// `(bucket start, counts)`, oldest first.
    buckets: VecDeque<(u64, Counts)>,
}

impl Window {
    pub(crate) fn new(window_ms: u64) -> Self {
        Self {
            bucket_ms: (window_ms / BUCKETS).max(1),
            buckets: VecDeque::new(),
        }
    }

    /// The length of one bucket: how often the budget is evaluated.
    pub(crate) fn bucket_ms(&self) -> u64 {
        self.bucket_ms
    }

    pub(crate) fn record(&mut self, now_ms: u64, outcome: Outcome) {
        let start = now_ms - now_ms % self.bucket_ms;
        if self.buckets.back().is_none_or(|(s, _)| *s != start) {
            self.buckets.push_back((start, Counts::default()));
        }
        self.trim(now_ms);
        let Some((_, counts)) = self.buckets.back_mut() else {
            return;
        };
        match outcome {
            Outcome::Fresh => counts.verified += 1,
            Outcome::Stale { age_bound_ms } => {
                counts.verified += 1;
                counts.stale += 1;
                counts.stale_age_max_ms = counts.stale_age_max_ms.max(age_bound_ms);
                counts.stale_age_sum_ms += age_bound_ms;
            }
            Outcome::Discarded => counts.discarded += 1,
        }
    }

    fn trim(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(self.bucket_ms * BUCKETS);
        while self
            .buckets
            .front()
            .is_some_and(|(s, _)| *s + self.bucket_ms <= oldest)
        {
            self.buckets.pop_front();
        }
    }

    /// The counts of the buckets within the window ending now.
    pub(crate) fn totals(&mut self, now_ms: u64) -> Counts {
        self.trim(now_ms);
        let mut total = Counts::default();
        for (_, counts) in &self.buckets {
            total.add(counts);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_holds_the_ratio_and_narrows() {
        let (lo, hi) = wilson(10, 1_000);
        assert!(lo < 0.01 && 0.01 < hi, "({lo}, {hi})");
        assert!((lo - 0.0054).abs() < 0.0005 && (hi - 0.0183).abs() < 0.0005);
        let (lo, hi) = wilson(0, 10_000);
        assert_eq!(lo, 0.0);
        assert!(hi < 0.0004, "{hi}");
        let (wide_lo, wide_hi) = wilson(1, 100);
        assert!(wide_hi - wide_lo > hi - lo);
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let mut window = Window::new(10_000);
        window.record(0, Outcome::Stale { age_bound_ms: 5 });
        window.record(5_000, Outcome::Fresh);
        window.record(9_999, Outcome::Discarded);
        let all = window.totals(9_999);
        assert_eq!((all.verified, all.stale, all.discarded), (2, 1, 1));
        assert_eq!(all.stale_age_max_ms, 5);
        // The first bucket, [0, 1000), leaves at 11,000.
        let later = window.totals(11_000);
        assert_eq!((later.verified, later.stale, later.discarded), (1, 0, 1));
        assert_eq!(window.totals(30_000), Counts::default());
    }
}
