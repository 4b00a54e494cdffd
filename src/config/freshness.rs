//! [`FreshnessConfig`]: the staleness sampler's settings and the entity's inconsistency
//! budget (DESIGN G10), and [`OverBudget`], what the sampler does past the budget.

use std::time::Duration;

/// The shortest effective TTL when [`FreshnessConfig::min_ttl`] is left unset, for a TTL at least
/// this long (a shorter TTL is its own minimum).
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(1);

/// What the sampler does when the measured staleness ratio (the lower bound of its 95%
/// confidence interval) is over the entity's budget. Either way it logs a `tracing` warning
/// once per window and counts the breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OverBudget {
    /// Only warn and count.
    #[default]
    Warn,
    /// Also halve the entity's effective TTL at each evaluation found over budget (down to
    /// [`FreshnessConfig::min_ttl`]), and lengthen it again by a quarter at each one found
    /// within half the budget, up to the configured TTL.
    ShortenTtl,
}

impl OverBudget {
    /// In the order of `parse::OVER_BUDGET`.
    pub(crate) const ALL: [OverBudget; 2] = [OverBudget::Warn, OverBudget::ShortenTtl];

    /// The name used in configuration (`"warn"`, `"shorten_ttl"`).
    pub fn name(self) -> &'static str {
        match self {
            OverBudget::Warn => "warn",
            OverBudget::ShortenTtl => "shorten_ttl",
        }
    }
}

/// The staleness sampler of one entity: which hits it re-reads from the database, when, how
/// many at most, and the budget it holds the result to (DESIGN G10).
///
/// A sampled hit's row is read at once (off the hit path) and compared with the served value;
/// a mismatch whose key an invalidation reaches within `grace` after the read is discarded,
/// not counted (that write was in flight), any other is stale.
/// See [`Repository::freshness`](crate::Repository::freshness) for the report.
///
/// ```
/// use std::time::Duration;
/// use sea_orm_cache::{CacheConfig, FreshnessConfig, OverBudget};
/// let config = CacheConfig::default()
///     .freshness(FreshnessConfig::default().sample_rate(0.01).max_samples_per_sec(50))
///     // Shorthands for two of its settings (`freshness(..)` replaces all of them: set it first).
///     .staleness_budget(Some(0.0001)) // 0.01%: four nines fresh
///     .on_over_budget(OverBudget::ShortenTtl);
/// assert_eq!(config.freshness.budget, Some(0.0001));
/// assert_eq!(config.freshness.sample_rate, 0.01);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FreshnessConfig {
    /// Fraction of cache hits sampled, `0.0..=1.0`; 0 turns the sampler off. Default 0.001.
    pub sample_rate: f64,
    /// How long after its read a mismatch waits for an invalidation of the key before it
    /// counts as stale: a write through the layer (or through another instance's, or captured
    /// by triggers) invalidates within it. The row itself is read at once. Default 1 s.
    pub grace: Duration,
    /// Most sample reads per second, whatever the hit rate: past it samples are dropped
    /// (counted as `throttled`). At least 1. Default 100.
    pub max_samples_per_sec: u32,
    /// Most samples waiting for their database read (bounding how long after its hit a row is
    /// read); past it a sampled hit is dropped and counted, never waited for. A mismatch
    /// waiting out its grace delay holds no place. At least 1. Default 1,024.
    pub queue: usize,
    /// The sliding window the report and the budget cover. Default 10 minutes.
    pub window: Duration,
    /// The inconsistency budget: the staleness ratio the entity tolerates (`Some(0.0001)` is
    /// 0.01%, four nines). `None` (the default): measured and reported, never judged.
    pub budget: Option<f64>,
    /// What to do past the budget. Default [`OverBudget::Warn`].
    pub on_over_budget: OverBudget,
    /// The shortest effective TTL [`OverBudget::ShortenTtl`] goes down to. `None` (the
    /// default) follows the entity's TTL: 1 s, or the TTL itself when that is shorter (see
    /// [`min_ttl_for`](Self::min_ttl_for)). A value set must be longer than zero and at most
    /// the TTL.
    pub min_ttl: Option<Duration>,
    /// Compare this column only (a version or `updated_at` column the application bumps on
    /// every write) instead of the whole row. `None` (the default): every column.
    pub version_column: Option<String>,
}

impl Default for FreshnessConfig {
    fn default() -> Self {
        Self {
            sample_rate: 0.001,
            grace: Duration::from_secs(1),
            max_samples_per_sec: 100,
            queue: 1024,
            window: Duration::from_secs(600),
            budget: None,
            on_over_budget: OverBudget::Warn,
            min_ttl: None,
            version_column: None,
        }
    }
}

impl FreshnessConfig {
    /// Sets the fraction of hits sampled (`0.0` turns the sampler off).
    #[must_use]
    pub fn sample_rate(mut self, fraction: f64) -> Self {
        self.sample_rate = fraction;
        self
    }

    /// Sets the grace delay.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the ceiling on sample reads per second.
    #[must_use]
    pub fn max_samples_per_sec(mut self, per_sec: u32) -> Self {
        self.max_samples_per_sec = per_sec;
        self
    }

    /// Sets the bound on samples waiting.
    #[must_use]
    pub fn queue(mut self, samples: usize) -> Self {
        self.queue = samples;
        self
    }

    /// Sets the sliding window of the report and the budget.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets the inconsistency budget (a fraction: `0.0001` is 0.01%).
    #[must_use]
    pub fn budget(mut self, budget: Option<f64>) -> Self {
        self.budget = budget;
        self
    }

    /// Sets what happens past the budget.
    #[must_use]
    pub fn on_over_budget(mut self, action: OverBudget) -> Self {
        self.on_over_budget = action;
        self
    }

    /// Sets the shortest effective TTL (longer than zero and at most the entity's TTL, checked
    /// by [`CacheConfig::validate`](crate::CacheConfig::validate)).
    #[must_use]
    pub fn min_ttl(mut self, ttl: Duration) -> Self {
        self.min_ttl = Some(ttl);
        self
    }

    /// The shortest effective TTL for an entity whose TTL is `ttl`: the one set, or by default
    /// [`DEFAULT_MIN_TTL`] capped at `ttl`, so a short TTL never makes the default invalid.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sea_orm_cache::FreshnessConfig;
    /// let ms = Duration::from_millis;
    /// assert_eq!(FreshnessConfig::default().min_ttl_for(ms(200)), ms(200));
    /// assert_eq!(FreshnessConfig::default().min_ttl_for(ms(60_000)), ms(1_000));
    /// assert_eq!(FreshnessConfig::default().min_ttl(ms(5)).min_ttl_for(ms(200)), ms(5));
    /// ```
    pub fn min_ttl_for(&self, ttl: Duration) -> Duration {
        self.min_ttl.unwrap_or(DEFAULT_MIN_TTL.min(ttl))
    }

    /// Compares this column only instead of the whole row.
    #[must_use]
    pub fn version_column(mut self, column: Option<String>) -> Self {
        self.version_column = column;
        self
    }
}
