//! The ack → applied lag of write-behind writes (issue 26): for each outbox row a flush
//! applied, the seconds from its acknowledgement (the row's `created_at`, wall time) to the
//! commit that applied it to the table, recorded as a histogram through the `metrics` facade
//! with the label `entity`. Unlike the other metrics, which the layer publishes from its
//! counters, it is recorded as it happens, by the flusher, once the commit has returned.
//! Without a recorder installed, recording does nothing.

use metrics::{Unit, describe_histogram, histogram};

use crate::clock::wall_ms;

/// Seconds from a write-behind write's acknowledgement to the commit that applied it.
pub(crate) const APPLY_LAG: &str = "sea_orm_cache_write_behind_apply_lag_seconds";

/// Records the lag of rows acknowledged at `acknowledged` (wall ms, the rows' `created_at`)
/// and applied by a commit that has just returned.
pub(crate) fn record(entity: &'static str, acknowledged: &[i64]) {
    if acknowledged.is_empty() {
        return;
    }
    describe_histogram!(
        APPLY_LAG,
        Unit::Seconds,
        "Seconds from a write-behind write's acknowledgement (its outbox row's commit) to the commit that applied it to the table."
    );
    let lag = histogram!(APPLY_LAG, "entity" => entity);
    let now = wall_ms();
    for &at in acknowledged {
        lag.record((now - at).max(0) as f64 / 1000.0);
    }
}
