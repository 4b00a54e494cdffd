//! Several instances, one database (DESIGN G8): every write made through a layer adds rows to
//! an invalidation log in the writing transaction (`journal.rs`); every layer tails that log
//! from its own cursor and applies the other instances' rows to its stores (`tailer.rs`).

mod journal;
#[cfg(feature = "postgres")]
mod listener;
mod tailer;

use std::sync::atomic::Ordering;
use std::time::Duration;

pub use journal::INVALIDATION_TABLE;
pub(crate) use journal::{Journal, create_table};
#[cfg(feature = "postgres")]
pub(crate) use listener::spawn as listen;
pub(crate) use tailer::Tailer;

/// Settings of the invalidation log that keeps several instances' caches right
/// ([`CacheLayerBuilder::coherence`](crate::CacheLayerBuilder::coherence)); on by default,
/// except on an in-memory SQLite database.
///
/// With coherence on, every write made through the layer (repository writes under every
/// policy, statements on [`CachedConnection`](crate::CachedConnection) and in
/// [`CachedTransaction`](crate::CachedTransaction), write-behind acknowledgements) adds a row
/// per key to `sea_orm_cache_invalidation` in its own transaction, and a background tailer
/// applies the rows other instances wrote within about `poll_interval`. Off, an instance
/// learns nothing of other instances' writes: it serves what it cached until the entry's TTL
/// runs out. Unless the builder says otherwise it is on, except on an in-memory SQLite
/// database.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Coherence {
    /// Whether the layer writes and tails the log.
    pub enabled: bool,
    /// How often the tailer reads the log. On Postgres a notification sent by the writing
    /// transaction wakes it sooner; the polls are the backstop for lost notifications.
    pub poll_interval: Duration,
    /// Postgres only: whether a listener wakes the tailer on every write's notification
    /// (on by default); off, the tailer only polls.
    pub listen: bool,
    /// How long log rows are kept. Any instance prunes older ones; an instance that has not
    /// read the log for half of it (paused, partitioned) drops every entry it holds when it
    /// next reads (a reset), since rows it never read may be gone.
    pub retention: Duration,
    /// MySQL/MariaDB only: how long the tailer waits for a missing log id (a transaction that
    /// has its id but has not committed yet) before it takes it for a rollback and reads on.
    pub gap_timeout: Duration,
}

impl Default for Coherence {
    /// On: polls every 100 ms (and listens, on Postgres), keeps log rows for an hour, and
    /// waits 10 s for a missing id.
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_millis(100),
            listen: true,
            retention: Duration::from_secs(3600),
            gap_timeout: Duration::from_secs(10),
        }
    }
}

impl Coherence {
    /// Coherence on, with the default intervals ([`Coherence::default`]).
    pub fn on() -> Self {
        Self::default()
    }

    /// Coherence off: nothing is written to the log or read from it (a single instance).
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Sets how often the tailer reads the log.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets how long log rows are kept.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Turns the Postgres listener on or off (off: the tailer only polls).
    #[must_use]
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Sets how long a missing log id is waited for (MySQL/MariaDB).
    #[must_use]
    pub fn gap_timeout(mut self, timeout: Duration) -> Self {
        self.gap_timeout = timeout;
        self
    }
}

/// A snapshot of a layer's tailer figures, from
/// [`CacheLayer::coherence_stats`](crate::CacheLayer::coherence_stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoherenceStats {
    /// Log rows of other instances applied here.
    pub applied: u64,
    /// Reads of the log.
    pub polls: u64,
    /// Reads of the log that failed (retried at the next poll).
    pub poll_errors: u64,
    /// Missing log ids given up on after `gap_timeout` (MySQL/MariaDB).
    pub gaps_passed: u64,
    /// Times the Postgres listener lost its connection (each time the tailer read the log at
    /// once, and the listener reconnected).
    pub listener_reconnects: u64,
    /// Times this instance dropped every entry because it had not read the log for half the
    /// retention (rows it never read may have been pruned).
    pub resets: u64,
    /// Log rows this instance pruned.
    pub pruned: u64,
    /// Milliseconds from the last applied row's write to its application here (wall clocks
    /// of two hosts: skew between them shows here).
    pub last_lag_ms: u64,
    /// The largest such lag seen.
    pub max_lag_ms: u64,
}

impl Tailer {
    /// A snapshot of the tailer's counts.
    pub(crate) fn stats(&self) -> CoherenceStats {
        let c = &self.counters;
        CoherenceStats {
            applied: c.applied.load(Ordering::Relaxed),
            polls: c.polls.load(Ordering::Relaxed),
            poll_errors: c.poll_errors.load(Ordering::Relaxed),
            gaps_passed: c.gaps_passed.load(Ordering::Relaxed),
            listener_reconnects: c.listener_reconnects.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            pruned: c.pruned.load(Ordering::Relaxed),
            last_lag_ms: c.last_lag_ms.load(Ordering::Relaxed),
            max_lag_ms: c.max_lag_ms.load(Ordering::Relaxed),
        }
    }
}

/// Whether `db` is an in-memory SQLite database (its main database has no file), which no
/// other process can open: coherence is off there unless asked for.
pub(crate) async fn in_memory_sqlite(
    db: &sea_orm::DatabaseConnection,
) -> Result<bool, sea_orm::DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(false);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<String>("", "file")?.is_empty(),
        None => true,
    })
}
