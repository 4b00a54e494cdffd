//! [`Freshness`]: what [`Repository::freshness`](crate::Repository::freshness) reports.

use std::time::Duration;

/// One entity's measured freshness over the sampler's sliding window (DESIGN G10).
///
/// The staleness ratio is `stale / verified`: of the sampled cache hits compared with their
/// row (read at once after the hit), the share that served a value the database no longer
/// held and that no invalidation of the key explained (from the hit until the grace delay
/// after the read). It estimates the share of all hits that returned an older version of the
/// row than one committed before the read began, leaving out those an invalidation on its
/// way explains; a write no invalidation reports that commits between the hit and the
/// sample's read counts against the hit (the README's Freshness section has the details).
/// `interval` is its 95% confidence interval (Wilson score); the budget is judged by the
/// interval's lower bound, so a few unlucky samples do not trip it.
///
/// `verified`, `stale` and `discarded` cover the window; `dropped`, `throttled`, `errors`
/// and `reads` count since the layer started.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Freshness {
    /// The window the ratio covers.
    pub window: Duration,
    /// The fraction of hits sampled.
    pub sample_rate: f64,
    /// Samples compared with their row in the window.
    pub verified: u64,
    /// Of those, samples whose cached value differed from the row, with no invalidation of
    /// the key to explain it.
    pub stale: u64,
    /// Samples not counted: their value differed from the row and an invalidation of the key
    /// arrived since the hit (until the grace delay after the read), so the difference was a
    /// write in flight.
    pub discarded: u64,
    /// `stale / verified`; 0 when nothing was verified.
    pub ratio: f64,
    /// 95% confidence interval of the ratio; `(0.0, 1.0)` when nothing was verified.
    pub interval: (f64, f64),
    /// Of the stale samples in the window, the longest time one had been cached when it
    /// was served: an upper bound on how long it had been wrong (when its row changed is not
    /// known). `None` without stale samples.
    pub stale_age_max: Option<Duration>,
    /// The mean of the same bound over the stale samples.
    pub stale_age_mean: Option<Duration>,
    /// The inconsistency budget, if one is set.
    pub budget: Option<f64>,
    /// Whether the ratio's lower bound is over the budget now.
    pub over_budget: bool,
    /// Windows found over budget since start (one warning each).
    pub breaches: u64,
    /// The configured TTL.
    pub ttl: Duration,
    /// The TTL fills use now: shorter than `ttl` while
    /// [`OverBudget::ShortenTtl`](crate::OverBudget::ShortenTtl) holds it down.
    pub effective_ttl: Duration,
    /// Sampled hits dropped because the sampler's queue of reads was full (never waited for).
    pub dropped: u64,
    /// Samples dropped by the `max_samples_per_sec` ceiling.
    pub throttled: u64,
    /// Sample reads that failed.
    pub errors: u64,
    /// Database reads the sampler made.
    pub reads: u64,
}

impl Freshness {
    /// The ratio as nines of freshness: `-log10(ratio)`, so 0.1% stale is 3 nines (99.9%
    /// fresh). Infinite when no sample was stale.
    pub fn nines(&self) -> f64 {
        -self.ratio.log10()
    }

    /// The nines the samples vouch for at 95% confidence: from the interval's upper bound.
    /// 10,000 fresh samples and no stale one vouch for about 3.4 nines.
    pub fn nines_at_least(&self) -> f64 {
        -self.interval.1.log10()
    }
}
