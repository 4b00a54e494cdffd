//! Publishing each registered entity's [`CacheStats`] through the `metrics` facade
//! ([`CacheLayer::publish_metrics`](crate::CacheLayer::publish_metrics), which lists the
//! names). The cache already counts everything in its own atomics (hits in per-thread slots,
//! see `hit_counter`), so publishing reads those counters and sets the metrics to their
//! values: counters with `absolute`, gauges with `set`. The hit path pays nothing for metrics. Without a recorder
//! installed (the service installs the exporter it wants) every call here is a no-op.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use tokio::time::MissedTickBehavior;

use crate::entity_cache::EntityCache;
use crate::freshness::Freshness;
use crate::key::CacheableEntity;
use crate::sampler_counters::SamplerTotals;
use crate::stats::CacheStats;
use crate::tasks::Stop;

/// One registered entity as publishing sees it, without its type.
pub(crate) trait EntityMetrics: Send + Sync {
    /// The entity's table name: the value of the `entity` label.
    fn name(&self) -> &'static str;
    /// A snapshot of its counters.
    fn stats(&self) -> CacheStats;
    /// The staleness sampler's totals and report, when it is on.
    fn sampler(&self) -> Option<(SamplerTotals, Freshness)>;
}

impl<E: CacheableEntity> EntityMetrics for EntityCache<E> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn stats(&self) -> CacheStats {
        EntityCache::stats(self)
    }

    fn sampler(&self) -> Option<(SamplerTotals, Freshness)> {
        Some((self.sampler_totals()?, self.freshness()?))
    }
}

/// Reads answered from the cache with a row.
pub(crate) const HITS: &str = "sea_orm_cache_hits_total";
/// Reads answered from the cache with "no such row".
pub(crate) const NEGATIVE_HITS: &str = "sea_orm_cache_negative_hits_total";
/// Reads the cache could not answer.
pub(crate) const MISSES: &str = "sea_orm_cache_misses_total";
/// Loads that succeeded.
pub(crate) const LOADS: &str = "sea_orm_cache_loads_total";
/// Loads that failed.
pub(crate) const LOAD_ERRORS: &str = "sea_orm_cache_load_errors_total";
/// Entries removed, by `cause`.
pub(crate) const EVICTIONS: &str = "sea_orm_cache_evictions_total";
/// Invalidations, by `origin`.
pub(crate) const INVALIDATIONS: &str = "sea_orm_cache_invalidations_total";
/// Loads not cached because the key changed meanwhile.
pub(crate) const STALE_FILLS_REJECTED: &str = "sea_orm_cache_stale_fills_rejected_total";
/// Expired entries served because the database failed.
pub(crate) const STALE_SERVED: &str = "sea_orm_cache_stale_served_total";
/// Writes acknowledged.
pub(crate) const WRITES: &str = "sea_orm_cache_writes_total";
/// Writes run again after a transient refusal.
pub(crate) const WRITE_RETRIES: &str = "sea_orm_cache_write_retries_total";
/// Write-behind batches applied.
pub(crate) const FLUSHES: &str = "sea_orm_cache_flushes_total";
/// Table rows written by write-behind batches.
pub(crate) const FLUSHED_ROWS: &str = "sea_orm_cache_flushed_rows_total";
/// Outbox rows moved to the dead-letter table.
pub(crate) const DEAD_LETTERED: &str = "sea_orm_cache_dead_lettered_total";
/// Entries held.
pub(crate) const ENTRIES: &str = "sea_orm_cache_entries";
/// Write-behind writes not applied yet.
pub(crate) const WRITE_BEHIND_DEPTH: &str = "sea_orm_cache_write_behind_depth";
/// Age of the oldest write-behind write not applied yet.
pub(crate) const FLUSH_LAG: &str = "sea_orm_cache_write_behind_flush_lag_seconds";
/// Sampled hits, by `outcome`.
pub(crate) const SAMPLES: &str = "sea_orm_cache_samples_total";
/// Database reads the sampler made.
pub(crate) const SAMPLE_READS: &str = "sea_orm_cache_sample_reads_total";
/// Windows found over the staleness budget.
pub(crate) const BUDGET_BREACHES: &str = "sea_orm_cache_budget_breaches_total";
/// The staleness ratio over the sampler's window.
pub(crate) const STALENESS_RATIO: &str = "sea_orm_cache_staleness_ratio";
/// The lower bound of its 95% interval (what the budget is held to).
pub(crate) const STALENESS_RATIO_LOW: &str = "sea_orm_cache_staleness_ratio_lower_bound";
/// The staleness budget.
pub(crate) const STALENESS_BUDGET: &str = "sea_orm_cache_staleness_budget";
/// The TTL fills use now.
pub(crate) const EFFECTIVE_TTL: &str = "sea_orm_cache_effective_ttl_seconds";

/// Sets every metric of every entity in `entities` to its value now.
pub(crate) fn publish<'a>(entities: impl IntoIterator<Item = &'a dyn EntityMetrics>) {
    describe();
    for entity in entities {
        publish_entity(entity);
    }
}

/// Sets one entity's metrics.
fn publish_entity(entity: &dyn EntityMetrics) {
    let name = entity.name();
    let s = entity.stats();
    counter!(HITS, "entity" => name).absolute(s.hits);
    counter!(NEGATIVE_HITS, "entity" => name).absolute(s.negative_hits);
    counter!(MISSES, "entity" => name).absolute(s.misses);
    counter!(LOADS, "entity" => name).absolute(s.loads);
    counter!(LOAD_ERRORS, "entity" => name).absolute(s.load_errors);
    for (cause, value) in [
        ("expired", s.expired),
        ("capacity", s.evicted),
        ("invalidated", s.invalidated),
        ("replaced", s.replaced),
    ] {
        counter!(EVICTIONS, "entity" => name, "cause" => cause).absolute(value);
    }
    for (origin, value) in [
        ("local", s.local_invalidations),
        ("remote", s.remote_invalidations),
    ] {
        counter!(INVALIDATIONS, "entity" => name, "origin" => origin).absolute(value);
    }
    counter!(STALE_FILLS_REJECTED, "entity" => name).absolute(s.stale_fills_rejected);
    counter!(STALE_SERVED, "entity" => name).absolute(s.stale_served);
    counter!(WRITES, "entity" => name).absolute(s.writes);
    counter!(WRITE_RETRIES, "entity" => name).absolute(s.write_retries);
    counter!(FLUSHES, "entity" => name).absolute(s.flushes);
    counter!(FLUSHED_ROWS, "entity" => name).absolute(s.flushed_rows);
    counter!(DEAD_LETTERED, "entity" => name).absolute(s.dead_lettered);
    gauge!(ENTRIES, "entity" => name).set(s.entries as f64);
    gauge!(WRITE_BEHIND_DEPTH, "entity" => name).set(s.pending_writes as f64);
    gauge!(FLUSH_LAG, "entity" => name).set(s.flush_lag_ms as f64 / 1000.0);

    let Some((totals, report)) = entity.sampler() else {
        return;
    };
    for (outcome, value) in [
        ("fresh", totals.verified - totals.stale.min(totals.verified)),
        ("stale", totals.stale),
        ("discarded", totals.discarded),
        ("dropped", totals.dropped),
        ("throttled", totals.throttled),
        ("error", totals.errors),
    ] {
        counter!(SAMPLES, "entity" => name, "outcome" => outcome).absolute(value);
    }
    counter!(SAMPLE_READS, "entity" => name).absolute(totals.reads);
    counter!(BUDGET_BREACHES, "entity" => name).absolute(totals.breaches);
    gauge!(STALENESS_RATIO, "entity" => name).set(report.ratio);
    gauge!(STALENESS_RATIO_LOW, "entity" => name).set(report.interval.0);
    if let Some(budget) = report.budget {
        gauge!(STALENESS_BUDGET, "entity" => name).set(budget);
    }
    gauge!(EFFECTIVE_TTL, "entity" => name).set(report.effective_ttl.as_secs_f64());
}

/// Descriptions and units, for exporters that show them (Prometheus `# HELP`). Set on every
/// publish: a recorder installed after the layer was built still gets them.
fn describe() {
    let counters = [
        (HITS, "Reads answered from the cache with a row."),
        (
            NEGATIVE_HITS,
            "Reads answered from the cache with \"no such row\".",
        ),
        (MISSES, "Reads the cache could not answer."),
        (
            LOADS,
            "Loads that reached the database (or the caller's loader) and succeeded.",
        ),
        (
            LOAD_ERRORS,
            "Loads that failed; nothing was cached for them.",
        ),
        (
            EVICTIONS,
            "Entries removed, by cause: expired (TTL), capacity, invalidated, replaced (overwritten by a write or warming).",
        ),
        (
            INVALIDATIONS,
            "Invalidations (of a key, or of the whole entity), by origin: local (made by this instance) or remote (read from the invalidation log, written by another instance).",
        ),
        (
            STALE_FILLS_REJECTED,
            "Loads not cached because the key was invalidated or written meanwhile.",
        ),
        (
            STALE_SERVED,
            "Expired entries served because the database failed (stale_if_error).",
        ),
        (WRITES, "Writes acknowledged by the repository."),
        (
            WRITE_RETRIES,
            "Writes run again after the database refused them as transient (deadlock, busy).",
        ),
        (FLUSHES, "Write-behind batches applied."),
        (
            FLUSHED_ROWS,
            "Table rows written or deleted by write-behind batches (one per key per batch).",
        ),
        (
            DEAD_LETTERED,
            "Write-behind outbox rows moved to the dead-letter table.",
        ),
        (
            SAMPLES,
            "Sampled cache hits, by outcome: fresh, stale (differed from the row), discarded (key written meanwhile), dropped (queue full), throttled (over max_samples_per_sec), error (read failed).",
        ),
        (SAMPLE_READS, "Database reads the staleness sampler made."),
        (
            BUDGET_BREACHES,
            "Windows in which the staleness ratio's lower bound was over the budget.",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, Unit::Count, help);
    }
    describe_gauge!(ENTRIES, Unit::Count, "Entries now in the cache.");
    describe_gauge!(
        STALENESS_RATIO,
        "Stale samples over verified samples, over the sampler's window."
    );
    describe_gauge!(
        STALENESS_RATIO_LOW,
        "Lower bound of the staleness ratio's 95% confidence interval: what the budget is held to."
    );
    describe_gauge!(
        STALENESS_BUDGET,
        "The entity's staleness budget (a fraction)."
    );
    describe_gauge!(
        EFFECTIVE_TTL,
        Unit::Seconds,
        "The TTL fills use now (shorter than the configured one while the budget shortens it)."
    );
    describe_gauge!(
        WRITE_BEHIND_DEPTH,
        Unit::Count,
        "Write-behind outbox rows not yet applied to the table."
    );
    describe_gauge!(
        FLUSH_LAG,
        Unit::Seconds,
        "Age of the oldest write-behind write not yet applied (0: none), as of the flusher's last look at the outbox."
    );
}

/// The background task of [`CacheLayerBuilder::metrics_interval`](crate::CacheLayerBuilder::metrics_interval):
/// publishes every `period` (the first time one period after it starts) until `stop` is given
/// (by the layer's shutdown or drop).
pub(crate) async fn publish_every(
    entities: Arc<[Arc<dyn EntityMetrics>]>,
    period: Duration,
    mut stop: Stop,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while stop.or(ticks.tick()).await.is_some() {
        publish(entities.iter().map(|entity| &**entity));
    }
}
