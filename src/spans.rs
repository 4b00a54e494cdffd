//! The `tracing` spans the cache opens, their names and fields in one place. None is opened on
//! the hit path ([`Store::hit`](crate::store::Store::hit), a `Repository::get` that hits): a
//! load's span begins once the cache has missed. All are at `DEBUG` level.
//!
//! | span | where | fields |
//! | --- | --- | --- |
//! | `sea_orm_cache.load` | a miss (every policy's, `get_or_load`'s) | `entity`, `outcome`: `loaded`, `negative` (no row), `coalesced` (another caller's load answered), `stale` (served stale on error), `error` |
//! | `sea_orm_cache.write` | a repository write (`insert`, `update`, `delete` and their `*_with`) | `entity`, `op`, `outcome`: `ok`, `error` |
//! | `sea_orm_cache.flush` | one write-behind batch | `entity`, `claimed` (outbox rows), `rows` (table rows written), `outcome`: `ok`, `by_key` (the batch failed and was applied key by key), `error` |
//! | `sea_orm_cache.remote_invalidations` | a page of invalidation log rows read by the tailer | `rows` (read), `applied` (other instances' rows applied) |
//! | `sea_orm_cache.commit_effects` | the cache effects of a commit through the layer's connection | `effects`, `entity` (when they all concern one) |

use std::future::Future;

use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::error::Result;

/// How a miss ended, recorded as the load span's `outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoadOutcome {
    /// Loaded a row.
    Loaded,
    /// Loaded "no such row".
    Negative,
    /// Answered by another caller's load (single flight).
    Coalesced,
    /// The load failed; an expired entry was served (`stale_if_error`).
    Stale,
    /// The load failed.
    Error,
}

impl LoadOutcome {
    fn as_str(self) -> &'static str {
        match self {
            LoadOutcome::Loaded => "loaded",
            LoadOutcome::Negative => "negative",
            LoadOutcome::Coalesced => "coalesced",
            LoadOutcome::Stale => "stale",
            LoadOutcome::Error => "error",
        }
    }
}

/// Runs `miss` (a load after a missed hit) in a `sea_orm_cache.load` span and records the
/// outcome it returns.
pub(crate) async fn load<T>(
    entity: &'static str,
    miss: impl Future<Output = (Result<T>, LoadOutcome)>,
) -> Result<T> {
    let span = tracing::debug_span!("sea_orm_cache.load", entity, outcome = Empty);
    let (result, outcome) = miss.instrument(span.clone()).await;
    span.record("outcome", outcome.as_str());
    result
}

/// Runs `write` (`op`: `insert`, `update`, `delete`) in a `sea_orm_cache.write` span and
/// records whether it succeeded.
pub(crate) async fn write<T>(
    entity: &'static str,
    op: &'static str,
    write: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = tracing::debug_span!("sea_orm_cache.write", entity, op, outcome = Empty);
    let result = write.instrument(span.clone()).await;
    span.record("outcome", if result.is_ok() { "ok" } else { "error" });
    result
}

/// The span of one write-behind batch of `claimed` outbox rows; the flusher records `rows`
/// and `outcome`.
pub(crate) fn flush(entity: &'static str, claimed: usize) -> Span {
    tracing::debug_span!(
        "sea_orm_cache.flush",
        entity,
        claimed,
        rows = Empty,
        outcome = Empty
    )
}

/// The span of applying `rows` invalidation log rows; the tailer records `applied`.
pub(crate) fn remote_invalidations(rows: usize) -> Span {
    tracing::debug_span!("sea_orm_cache.remote_invalidations", rows, applied = Empty)
}

/// The span of running a commit's `effects` cache effects, of `entity` when they all concern
/// one.
pub(crate) fn commit_effects(effects: usize, entity: Option<&'static str>) -> Span {
    tracing::debug_span!("sea_orm_cache.commit_effects", effects, entity)
}
