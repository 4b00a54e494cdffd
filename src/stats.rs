//! Counters kept per entity, and the [`CacheStats`] snapshot a repository hands out.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::hit_counter::HitCounter;

/// Live counters; every field but `hits` is a relaxed atomic.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Hits and negative hits: counted on every hit, without a locked instruction.
    pub(crate) hits: HitCounter,
    pub(crate) misses: AtomicU64,
    /// Invalidations other instances wrote to the log, applied here.
    pub(crate) remote_invalidations: AtomicU64,
    /// Invalidations this instance asked for (a key, or the whole entity).
    pub(crate) local_invalidations: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) stale_fills_rejected: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) invalidated: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) replaced: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) write_lock_waits: AtomicU64,
    pub(crate) db_writes: AtomicU64,
    pub(crate) write_retries: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) flushed_rows: AtomicU64,
    pub(crate) coalesced_writes: AtomicU64,
    pub(crate) flush_errors: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    /// Wall-clock ms of the oldest pending outbox row, 0 when none (a gauge).
    pub(crate) oldest_pending_at: std::sync::atomic::AtomicI64,
}

/// Adds one to a counter.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// Adds `n` to a counter.
#[inline]
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, entries: usize, pending_writes: usize) -> CacheStats {
        let (hits, negative_hits) = self.hits.get();
        CacheStats {
            hits,
            negative_hits,
            misses: self.misses.load(Relaxed),
            remote_invalidations: self.remote_invalidations.load(Relaxed),
            local_invalidations: self.local_invalidations.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            loads: self.loads.load(Relaxed),
            load_errors: self.load_errors.load(Relaxed),
            stale_fills_rejected: self.stale_fills_rejected.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            expired: self.expired.load(Relaxed),
            invalidated: self.invalidated.load(Relaxed),
            evicted: self.evicted.load(Relaxed),
            replaced: self.replaced.load(Relaxed),
            writes: self.writes.load(Relaxed),
            write_lock_waits: self.write_lock_waits.load(Relaxed),
            db_writes: self.db_writes.load(Relaxed),
            write_retries: self.write_retries.load(Relaxed),
            flushes: self.flushes.load(Relaxed),
            flushed_rows: self.flushed_rows.load(Relaxed),
            coalesced_writes: self.coalesced_writes.load(Relaxed),
            flush_errors: self.flush_errors.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            flush_lag_ms: match self.oldest_pending_at.load(Relaxed) {
                0 => 0,
                oldest => (crate::clock::wall_ms() - oldest).max(0) as u64,
            },
            entries,
            pending_writes,
        }
    }
}

/// A snapshot of one entity's cache figures, from [`Repository::stats`](crate::Repository::stats).
///
/// Reads are `hits + negative_hits + misses`; every miss either waited for another caller's
/// load (`coalesced`) or ran one (`loads`, `load_errors`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from the cache with a row.
    pub hits: u64,
    /// Reads answered from the cache with "no such row" (negative entries).
    pub negative_hits: u64,
    /// Reads the cache could not answer.
    pub misses: u64,
    /// Invalidations written to the invalidation log by other instances and applied here
    /// (a key, or the whole entity), with [`Coherence`](crate::Coherence) on, whether or not
    /// an entry was cached for them; a coherence reset (the tailer fell behind the log's
    /// retention) counts one per entity too. Entries they removed count in `invalidated`.
    pub remote_invalidations: u64,
    /// Invalidations this instance made itself (a key, or the whole entity), whether or not
    /// an entry was cached for them: repository writes that invalidate, writes seen by the
    /// layer's connection or the hooks, [`Repository::invalidate`](crate::Repository::invalidate)
    /// and the `invalidate_all`s, a write-behind write dead-lettered. Entries they removed
    /// count in `invalidated`.
    pub local_invalidations: u64,
    /// Misses that waited for a load another caller had started (single flight).
    pub coalesced: u64,
    /// Loads that reached the database (or the caller's loader) and succeeded.
    pub loads: u64,
    /// Loads that failed; nothing was cached for them.
    pub load_errors: u64,
    /// Loads whose result was not cached because the key was invalidated or written meanwhile,
    /// or (warming, batch reads) because it holds a write-behind write not flushed yet.
    pub stale_fills_rejected: u64,
    /// Expired entries served because the database failed (`stale_if_error`).
    pub stale_served: u64,
    /// Entries removed because their TTL ran out.
    pub expired: u64,
    /// Entries removed by an invalidation, local or remote (an entity-wide one counts every
    /// entry it dropped), or by a written row that could not be put because the key was
    /// written or invalidated meanwhile (the key is invalidated instead).
    pub invalidated: u64,
    /// Entries evicted to stay within capacity.
    pub evicted: u64,
    /// Entries overwritten by a write (write-through, write-behind) or by warming.
    pub replaced: u64,
    /// Writes acknowledged by the repository.
    pub writes: u64,
    /// Writes that waited for another write to the same key (or one sharing its lock stripe)
    /// to finish: write-through and write-behind serialise writes per key.
    pub write_lock_waits: u64,
    /// Write statements the repository sent to the database (flusher batches included).
    pub db_writes: u64,
    /// Writes run again because the database refused them for a deadlock or a busy lock
    /// (SQLite's "database is locked"): a refused statement did not apply.
    pub write_retries: u64,
    /// Write-behind batches applied.
    pub flushes: u64,
    /// Table rows written (or deleted) by write-behind batches: one per key per batch.
    pub flushed_rows: u64,
    /// Write-behind writes absorbed by a later write to the same key in the same batch.
    pub coalesced_writes: u64,
    /// Write-behind keys whose application failed and backs off for a retry.
    pub flush_errors: u64,
    /// Write-behind outbox rows moved to the dead-letter table (failed too often, or their
    /// payload no longer decodes).
    pub dead_lettered: u64,
    /// Age in milliseconds of the oldest write-behind write not yet applied (0: none), as of
    /// the flusher's last look at the outbox.
    pub flush_lag_ms: u64,
    /// Entries now in the cache.
    pub entries: usize,
    /// Write-behind outbox rows not yet applied to the table (the outbox depth).
    pub pending_writes: usize,
}

impl CacheStats {
    /// Reads answered by the cache over all reads; 0.0 before the first read.
    pub fn hit_ratio(&self) -> f64 {
        let answered = self.hits + self.negative_hits;
        let reads = answered + self.misses;
        if reads == 0 {
            0.0
        } else {
            answered as f64 / reads as f64
        }
    }
}
