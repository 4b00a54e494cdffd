//! Per-entity configuration: the [`Policy`] and its [`CacheConfig`], built with chained setters,
//! declared with `#[derive(Cached)]`, or read from a config file with serde (`deserialize.rs`).
//! The setters take any value; [`CacheConfig::validate`] (run by
//! [`CacheLayerBuilder::build`](crate::CacheLayerBuilder::build)) refuses the ones that make
//! no sense (`validate.rs`).

mod capture;
mod deserialize;
mod freshness;
mod validate;

pub use capture::Capture;
pub use freshness::{DEFAULT_MIN_TTL, FreshnessConfig, OverBudget};

use std::time::Duration;

/// Attempts before a failing outbox row moves to the dead-letter table: the default of
/// [`WriteBehindConfig::max_attempts`].
pub const MAX_ATTEMPTS: u32 = 10;

/// How long the save hooks keep a key written inside a plain `DatabaseTransaction` from being
/// filled: the default of [`CacheConfig::fill_quarantine`] (see [`hooks`](crate::hooks)).
pub const QUARANTINE: Duration = Duration::from_secs(2);

/// How an entity's reads and writes go through the cache (DESIGN section 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Policy {
    /// The caller loads on a miss (`get_or_load`); writes go to the database, then the key is
    /// invalidated.
    CacheAside,
    /// The repository loads by primary key on a miss; writes go to the database, then the key is
    /// invalidated.
    #[default]
    ReadThrough,
    /// As read-through, and a write sets the cache to the row the database returned.
    WriteThrough,
    /// As read-through, and a write sets the cache at once and is applied to the table later,
    /// in batches, by a background flusher.
    WriteBehind,
}

impl Policy {
    /// In the order of `parse::POLICIES`.
    const ALL: [Policy; 4] = [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
        Policy::WriteBehind,
    ];

    /// The name used in configuration (`"read_through"` and so on).
    pub fn name(self) -> &'static str {
        match self {
            Policy::CacheAside => "cache_aside",
            Policy::ReadThrough => "read_through",
            Policy::WriteThrough => "write_through",
            Policy::WriteBehind => "write_behind",
        }
    }
}

/// Tuning of the write-behind flusher.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WriteBehindConfig {
    /// Most keys applied in one flush transaction.
    pub batch: usize,
    /// Longest time a write waits before the flusher applies it.
    pub max_delay: Duration,
    /// Most outbox rows pending (not yet applied; a key written twice counts twice); past it
    /// writers wait for the flusher (backpressure).
    pub max_pending: usize,
    /// Attempts before a row that keeps failing moves to the dead-letter table, retries of
    /// transient errors included (so no row can hold up its entity's outbox for ever).
    pub max_attempts: u32,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            max_delay: Duration::from_millis(50),
            max_pending: 100_000,
            max_attempts: MAX_ATTEMPTS,
        }
    }
}

/// The cache settings of one entity. Plain data: build it with the chained setters, or start
/// from [`CacheConfig::default`].
///
/// ```
/// use std::time::Duration;
/// use sea_orm_cache::{CacheConfig, Policy};
/// let config = CacheConfig::default()
///     .policy(Policy::WriteThrough)
///     .ttl(Duration::from_secs(300))
///     .ttl_jitter(0.1)
///     .capacity(10_000)
///     .negative_ttl(Some(Duration::from_secs(30)));
/// assert_eq!(config.policy, Policy::WriteThrough);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Read and write policy.
    pub policy: Policy,
    /// How long an entry is served after it was filled.
    pub ttl: Duration,
    /// Fraction of `ttl` (0.0 to 1.0) taken off at random per entry, so entries filled together
    /// do not expire together. An entry never lives longer than `ttl`.
    pub ttl_jitter: f64,
    /// Most entries held; the least useful are evicted past it.
    pub capacity: usize,
    /// Cache "no such row" for this long; `None` (the default) does not cache absence.
    pub negative_ttl: Option<Duration>,
    /// Serve an expired entry for up to this long past its expiry when the database fails.
    pub stale_if_error: Option<Duration>,
    /// How long a key written through the save hooks inside a plain `DatabaseTransaction` is
    /// kept from being filled: the time that transaction has to commit (see
    /// [`hooks`](crate::hooks)).
    pub fill_quarantine: Duration,
    /// Flusher settings; used by [`Policy::WriteBehind`] only.
    pub write_behind: WriteBehindConfig,
    /// The staleness sampler and the inconsistency budget (DESIGN G10).
    pub freshness: FreshnessConfig,
    /// Who logs the entity's changes for other instances: the layer (default) or database
    /// triggers, which also see writes that bypass the layer (DESIGN G11).
    pub capture: Capture,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            policy: Policy::ReadThrough,
            ttl: Duration::from_secs(300),
            ttl_jitter: 0.1,
            capacity: 10_000,
            negative_ttl: None,
            stale_if_error: None,
            fill_quarantine: QUARANTINE,
            write_behind: WriteBehindConfig::default(),
            freshness: FreshnessConfig::default(),
            capture: Capture::Layer,
        }
    }
}

impl CacheConfig {
    /// Sets the policy.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the time to live.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the jitter as a fraction of the TTL (within `0.0..=1.0`, checked by
    /// [`validate`](Self::validate)).
    #[must_use]
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.ttl_jitter = fraction;
        self
    }

    /// Sets the capacity in entries (at least 1, checked by [`validate`](Self::validate)).
    #[must_use]
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }

    /// Caches "no such row" for `ttl`; `None` turns negative entries off.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Serves an expired entry for up to `window` past expiry while loads fail.
    #[must_use]
    pub fn stale_if_error(mut self, window: Option<Duration>) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Sets how long the save hooks keep a key written inside a plain `DatabaseTransaction`
    /// from being filled.
    #[must_use]
    pub fn fill_quarantine(mut self, quarantine: Duration) -> Self {
        self.fill_quarantine = quarantine;
        self
    }

    /// Sets the write-behind flusher's settings.
    #[must_use]
    pub fn write_behind(mut self, write_behind: WriteBehindConfig) -> Self {
        self.write_behind = write_behind;
        self
    }

    /// Sets the staleness sampler's settings, all of them (the budget too): call it before
    /// [`staleness_budget`](Self::staleness_budget) and
    /// [`on_over_budget`](Self::on_over_budget), or use
    /// [`map_freshness`](Self::map_freshness) to change some.
    #[must_use]
    pub fn freshness(mut self, freshness: FreshnessConfig) -> Self {
        self.freshness = freshness;
        self
    }

    /// Changes the staleness sampler's settings in place.
    #[must_use]
    pub fn map_freshness(
        mut self,
        change: impl FnOnce(FreshnessConfig) -> FreshnessConfig,
    ) -> Self {
        self.freshness = change(self.freshness);
        self
    }

    /// Sets the inconsistency budget: the staleness ratio the entity tolerates, as a
    /// fraction (`Some(0.0001)` is 0.01%). Shorthand for [`FreshnessConfig::budget`].
    #[must_use]
    pub fn staleness_budget(mut self, budget: Option<f64>) -> Self {
        self.freshness.budget = budget;
        self
    }

    /// Sets who logs the entity's changes for other instances ([`Capture`]).
    #[must_use]
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = capture;
        self
    }

    /// Sets what happens past the budget. Shorthand for [`FreshnessConfig::on_over_budget`].
    #[must_use]
    pub fn on_over_budget(mut self, action: OverBudget) -> Self {
        self.freshness.on_over_budget = action;
        self
    }
}

impl WriteBehindConfig {
    /// Sets the batch size (at least 1, checked by [`CacheConfig::validate`]).
    #[must_use]
    pub fn batch(mut self, keys: usize) -> Self {
        self.batch = keys;
        self
    }

    /// Sets the longest delay before a write is flushed.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the bound on pending outbox rows (at least 1, checked by
    /// [`CacheConfig::validate`]).
    #[must_use]
    pub fn max_pending(mut self, rows: usize) -> Self {
        self.max_pending = rows;
        self
    }

    /// Sets the attempts before a failing row is dead-lettered (at least 1, checked by
    /// [`CacheConfig::validate`]).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }
}
