//! The invalidation log, read side (DESIGN G8): one tailer per layer reads the rows other
//! instances wrote, from its own cursor, and applies them to this instance's stores through
//! the fence (an invalidation refuses every load of the key that started before it).
//!
//! Ids are allocated when a row is inserted and become visible when its transaction commits,
//! so a reader can see id 102 before 101. No row is skipped:
//! - Postgres: each row records its transaction's id (`txid`). The cursor is a transaction
//!   id: every transaction older than a snapshot's `xmin` has finished, so each poll reads,
//!   in one statement (one snapshot), that `xmin` and every other instance's row with
//!   `txid >= cursor`, applies the ones not applied yet, and moves the cursor to that `xmin`. A transaction held open elsewhere only holds the cursor
//!   back; newer rows are applied as they commit (an early invalidation is harmless).
//! - SQLite: one writer at a time, so ids become visible in order. A poll first asks
//!   `PRAGMA data_version` (on a connection of its own) whether anything was committed since
//!   the last one, and reads the log only if so.
//! - MySQL/MariaDB: the cursor stops at a missing id (a gap) and newer rows are applied
//!   early; a gap still missing after `gap_timeout` is taken for a rolled-back transaction
//!   (whose id is never used) and passed. The log rows are the last statement before their
//!   transaction's commit, so a gap normally closes within a commit's time. Each poll reads
//!   past the newest id seen and the open gaps by id, so a gap holds back only its own row,
//!   never the rows after it however many there are.
//!
//! A poll reads at most `PAGE` rows past the newest id seen (MySQL/MariaDB, SQLite) and reads
//! again at once while pages come back full.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement};
use tokio::sync::Notify;

use super::journal::Journal;
use super::settings::Coherence;
use super::stats::CoherenceStats;
use crate::clock::Clock;
use crate::clock::wall_ms;
use crate::invalidation::Tables;
use crate::spans;
use crate::tasks::Stop;

/// Most rows one read of the log returns past the cursor (MySQL/MariaDB, SQLite); a full
/// page is followed by another read at once.
const PAGE: i64 = 10_000;

/// A `SELECT` of the columns a poll applies from the invalidation log, followed by `$rest`.
macro_rules! select_log_rows {
    ($rest:literal) => {
        concat!(
            "SELECT id, entity, pk, origin, created_at FROM sea_orm_cache_invalidation ",
            $rest
        )
    };
}

/// Most rows one `DELETE` of the pruning removes, so no statement holds the log for long.
const PRUNE_BATCH: i64 = 10_000;

/// Where a tailer has read to.
#[derive(Debug)]
enum Cursor {
    /// Postgres: every transaction below `xmin` is read; `applied` holds the rows of
    /// transactions at or above it that are already applied, with their `txid`.
    Xid {
        xmin: u64,
        applied: HashMap<i64, u64>,
    },
    /// MySQL/MariaDB and SQLite: every id up to `through` is read (or was a gap given up on);
    /// `applied` holds the ids above it already applied, `gaps` the missing ids below the
    /// newest one seen, since when they are missing.
    Id {
        through: i64,
        applied: BTreeMap<i64, ()>,
        gaps: BTreeMap<i64, Instant>,
        /// SQLite: whether anything was committed since the last poll.
        #[cfg(feature = "sqlite")]
        data_version: Option<super::data_version::DataVersion>,
    },
}

/// Runs `apply` over the log rows a poll read, in a `sea_orm_cache.remote_invalidations` span
/// when there are any, recording how many other instances' rows it applied.
fn traced(rows: &[QueryResult], apply: impl FnOnce() -> Result<usize, DbErr>) -> Result<(), DbErr> {
    if rows.is_empty() {
        return apply().map(drop);
    }
    let span = spans::remote_invalidations(rows.len());
    let applied = span.in_scope(apply)?;
    span.record("applied", applied);
    Ok(())
}

/// Counts a layer's tailer keeps (see [`CoherenceStats`]).
#[derive(Debug, Default)]
pub(crate) struct TailCounters {
    pub(crate) applied: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) poll_errors: AtomicU64,
    pub(crate) gaps_passed: AtomicU64,
    pub(crate) listener_reconnects: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) undecodable_keys: AtomicU64,
    pub(crate) pruned: AtomicU64,
    pub(crate) unchanged: AtomicU64,
    pub(crate) last_lag_ms: AtomicU64,
    pub(crate) max_lag_ms: AtomicU64,
}

/// One layer's tailer.
#[derive(Debug)]
pub(crate) struct Tailer {
    db: DatabaseConnection,
    journal: Arc<Journal>,
    tables: Arc<Tables>,
    poll_interval: Duration,
    /// How often to read with the listener connected.
    backstop_interval: Duration,
    /// Whether the Postgres listener is connected (a notification wakes every read due).
    pub(crate) listening: AtomicBool,
    gap_timeout: Duration,
    /// Log rows older than this are pruned; a tailer that has not read the log for half of
    /// it may have missed pruned rows, and resets.
    retention_ms: u64,
    /// The layer's clock: when the log was last read, and pruned.
    clock: Clock,
    last_read_ms: AtomicU64,
    last_prune_ms: AtomicU64,
    /// Wakes the tailer before its poll interval (a Postgres notification, a test).
    pub(crate) wake: Notify,
    pub(crate) counters: TailCounters,
    /// Where the log is read to; set by [`start`](Self::start), held by one poll at a time.
    cursor: tokio::sync::Mutex<Option<Cursor>>,
}

fn text_u64(row: &QueryResult, column: &str) -> Result<u64, DbErr> {
    let text: String = row.try_get("", column)?;
    text.parse()
        .map_err(|_| DbErr::Custom(format!("{column}: not a transaction id: {text}")))
}

impl Tailer {
    pub(crate) fn new(
        db: DatabaseConnection,
        journal: Arc<Journal>,
        tables: Arc<Tables>,
        settings: &Coherence,
        clock: Clock,
    ) -> Self {
        Self {
            db,
            journal,
            tables,
            poll_interval: settings.poll_interval,
            backstop_interval: settings.backstop_interval,
            listening: AtomicBool::new(false),
            gap_timeout: settings.gap_timeout,
            retention_ms: settings.retention.as_millis() as u64,
            clock,
            last_read_ms: AtomicU64::new(0),
            last_prune_ms: AtomicU64::new(0),
            wake: Notify::new(),
            counters: TailCounters::default(),
            cursor: tokio::sync::Mutex::new(None),
        }
    }

    /// Sets the cursor at the current end of the log: a new instance holds nothing yet, so
    /// nothing written before it started concerns it. Fails if the log cannot be read.
    pub(crate) async fn start(&self) -> Result<(), DbErr> {
        let cursor = self.end().await?;
        *self.cursor.lock().await = Some(cursor);
        Ok(())
    }

    async fn end(&self) -> Result<Cursor, DbErr> {
        let backend = self.db.get_database_backend();
        if backend == DbBackend::Postgres {
            let (xmin, rows) = self.read_from_xid(None).await?;
            let applied = rows
                .iter()
                .map(|row| Ok((row.try_get::<i64>("", "id")?, text_u64(row, "txid")?)))
                .collect::<Result<_, DbErr>>()?;
            return Ok(Cursor::Xid { xmin, applied });
        }
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COALESCE(MAX(id), 0) AS id FROM sea_orm_cache_invalidation",
            ))
            .await?;
        let through = match row {
            Some(row) => row.try_get::<i64>("", "id")?,
            None => 0,
        };
        Ok(Cursor::Id {
            through,
            applied: BTreeMap::new(),
            gaps: BTreeMap::new(),
            #[cfg(feature = "sqlite")]
            data_version: (backend == DbBackend::Sqlite).then(Default::default),
        })
    }

    /// Postgres, in one statement (one snapshot): the snapshot's `xmin`, and the other
    /// instances' log rows of transactions at or above `from` (`None`: that `xmin`) that it
    /// sees. Every transaction below that `xmin` finished before the snapshot, so their rows
    /// are all among them.
    async fn read_from_xid(&self, from: Option<u64>) -> Result<(u64, Vec<QueryResult>), DbErr> {
        let mut rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT s.x::text AS xmin, l.id, l.entity, l.pk, l.origin, l.created_at, \
                 l.txid::text AS txid \
                 FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x) AS s \
                 LEFT JOIN sea_orm_cache_invalidation AS l \
                 ON l.txid >= COALESCE($1::text::xid8, s.x) AND l.origin <> $2 ORDER BY l.id",
                [
                    from.map(|xid| xid.to_string()).into(),
                    self.journal.origin.clone().into(),
                ],
            ))
            .await?;
        let xmin = match rows.first() {
            Some(row) => text_u64(row, "xmin")?,
            None => return Err(DbErr::Custom("no snapshot xmin".to_owned())),
        };
        // No row at all: the one row the join kept has no log columns.
        if rows.len() == 1 && rows[0].try_get::<Option<i64>>("", "id")?.is_none() {
            rows.clear();
        }
        Ok((xmin, rows))
    }

    /// Applies one log row written by another instance; returns whether it was applied
    /// (this instance's own rows are not).
    fn apply(&self, row: &QueryResult) -> Result<bool, DbErr> {
        let origin: String = row.try_get("", "origin")?;
        if origin == self.journal.origin {
            return Ok(false);
        }
        let entity: String = row.try_get("", "entity")?;
        let key: Option<String> = row.try_get("", "pk")?;
        let created_at: i64 = row.try_get("", "created_at")?;
        if let Some(table) = self.tables.get(&entity)
            && let Err(err) = table.remote(key.as_deref())
        {
            // The entity was dropped whole instead: counted, and said once per row.
            self.counters
                .undecodable_keys
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(entity = %entity, error = %err, "invalidation log key text names no key: dropped every entry of the entity");
        }
        let lag = (wall_ms() - created_at).max(0) as u64;
        self.counters.applied.fetch_add(1, Ordering::Relaxed);
        self.counters.last_lag_ms.store(lag, Ordering::Relaxed);
        self.counters.max_lag_ms.fetch_max(lag, Ordering::Relaxed);
        Ok(true)
    }

    /// MySQL/MariaDB and SQLite: the log rows with these ids (the gaps below the newest id
    /// seen), a few hundred per read.
    async fn rows_with_ids(
        &self,
        ids: impl Iterator<Item = i64>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let ids: Vec<i64> = ids.collect();
        let mut rows = Vec::new();
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            rows.extend(
                self.db
                    .query_all_raw(Statement::from_sql_and_values(
                        self.db.get_database_backend(),
                        format!(select_log_rows!("WHERE id IN ({})"), marks),
                        chunk.iter().map(|id| (*id).into()),
                    ))
                    .await?,
            );
        }
        Ok(rows)
    }

    /// Reads and applies what is new since `cursor`, and moves it on. Returns whether the
    /// read filled a page, so there may be more to read now: `more` is that answer from the
    /// previous read of the same catch-up (SQLite's change check is then skipped).
    #[cfg_attr(not(feature = "sqlite"), allow(unused_variables))] // `more`
    async fn poll(&self, cursor: &mut Cursor, more: bool) -> Result<bool, DbErr> {
        self.counters.polls.fetch_add(1, Ordering::Relaxed);
        match cursor {
            Cursor::Xid { xmin, applied } => {
                let (next, rows) = self.read_from_xid(Some(*xmin)).await?;
                traced(&rows, || {
                    let mut n = 0;
                    for row in &rows {
                        let id: i64 = row.try_get("", "id")?;
                        if applied.contains_key(&id) {
                            continue;
                        }
                        n += usize::from(self.apply(row)?);
                        applied.insert(id, text_u64(row, "txid")?);
                    }
                    Ok(n)
                })?;
                applied.retain(|_, txid| *txid >= next);
                *xmin = next;
            }
            Cursor::Id {
                through,
                applied,
                gaps,
                #[cfg(feature = "sqlite")]
                data_version,
            } => {
                #[cfg(feature = "sqlite")]
                if !more
                    && let Some(check) = data_version
                    && !check.changed(&self.db).await
                {
                    self.counters.unchanged.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                // Past the newest id seen, a page at a time; and the gaps below it, which
                // are read by id, so rows already applied are not read again.
                let seen = applied.keys().next_back().copied().unwrap_or(*through);
                let mut rows = self.rows_with_ids(gaps.keys().copied()).await?;
                let past = self
                    .db
                    .query_all_raw(Statement::from_sql_and_values(
                        self.db.get_database_backend(),
                        select_log_rows!("WHERE id > ? ORDER BY id LIMIT ?"),
                        [seen.into(), PAGE.into()],
                    ))
                    .await?;
                let full = past.len() as i64 >= PAGE;
                rows.extend(past);
                let now = Instant::now();
                traced(&rows, || {
                    let mut n = 0;
                    for row in &rows {
                        let id: i64 = row.try_get("", "id")?;
                        if applied.contains_key(&id) {
                            continue;
                        }
                        n += usize::from(self.apply(row)?);
                        applied.insert(id, ());
                        gaps.remove(&id);
                    }
                    Ok(n)
                })?;
                // Ids missing below the newest one seen now, since when (the ones below
                // `seen` are in `gaps` already).
                let newest = applied.keys().next_back().copied().unwrap_or(*through);
                for id in seen.max(*through) + 1..newest {
                    if !applied.contains_key(&id) {
                        gaps.entry(id).or_insert(now);
                    }
                }
                // Move through what is contiguous, and past gaps given up on.
                loop {
                    let next = *through + 1;
                    if applied.remove(&next).is_some() {
                        *through = next;
                        continue;
                    }
                    match gaps.get(&next) {
                        Some(since) if now.duration_since(*since) >= self.gap_timeout => {
                            gaps.remove(&next);
                            self.counters.gaps_passed.fetch_add(1, Ordering::Relaxed);
                            *through = next;
                        }
                        _ => break,
                    }
                }
                // A full page: read on at once.
                return Ok(full);
            }
        }
        Ok(false)
    }

    /// Reads and applies what is new now.
    ///
    /// If the log was last read longer than half the retention ago, rows this instance never
    /// read may have been pruned since: every entry of every entity is dropped (a counted
    /// reset), so nothing it may have missed is served. Every `retention / 10` the read
    /// also prunes rows older than the retention.
    pub(crate) async fn catch_up(&self) -> Result<(), DbErr> {
        let mut cursor = self.cursor.lock().await;
        let cursor = match &mut *cursor {
            Some(cursor) => cursor,
            empty => empty.insert(self.end().await?),
        };
        let started = self.clock.peek_ms();
        let mut more = false;
        loop {
            match self.poll(cursor, more).await {
                Ok(true) => more = true,
                Ok(false) => break,
                Err(err) => {
                    self.counters.poll_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(err);
                }
            }
        }
        let last = self.last_read_ms.swap(started, Ordering::AcqRel);
        if started.saturating_sub(last) > self.retention_ms / 2 {
            self.counters.resets.fetch_add(1, Ordering::Relaxed);
            self.tables.invalidate_everything();
        }
        if started.saturating_sub(self.last_prune_ms.load(Ordering::Acquire))
            >= self.retention_ms / 10
        {
            self.last_prune_ms.store(started, Ordering::Release);
            self.prune().await?;
        }
        Ok(())
    }

    /// Deletes log rows older than the retention (by the writers' wall clocks), oldest first,
    /// at most [`PRUNE_BATCH`] per statement, until none is left.
    async fn prune(&self) -> Result<(), DbErr> {
        let before = wall_ms() - self.retention_ms as i64;
        let backend = self.db.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => {
                "DELETE FROM sea_orm_cache_invalidation WHERE id IN (SELECT id \
                 FROM sea_orm_cache_invalidation WHERE created_at < $1 ORDER BY id LIMIT $2)"
            }
            // MySQL takes no LIMIT in an IN subquery, but a DELETE of its own may have one.
            DbBackend::MySql => {
                "DELETE FROM sea_orm_cache_invalidation WHERE created_at < ? ORDER BY id LIMIT ?"
            }
            _ => {
                "DELETE FROM sea_orm_cache_invalidation WHERE id IN (SELECT id \
                 FROM sea_orm_cache_invalidation WHERE created_at < ? ORDER BY id LIMIT ?)"
            }
        };
        loop {
            let result = self
                .db
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    sql,
                    [before.into(), PRUNE_BATCH.into()],
                ))
                .await?;
            self.counters
                .pruned
                .fetch_add(result.rows_affected(), Ordering::Relaxed);
            if (result.rows_affected() as i64) < PRUNE_BATCH {
                return Ok(());
            }
        }
    }

    /// The tailer's task: polls every `poll_interval` (every `backstop_interval` while the
    /// Postgres listener is connected), or sooner when woken, until `stop` is given (a poll
    /// in progress completes first).
    pub(crate) async fn run(self: Arc<Self>, mut stop: Stop) {
        loop {
            let interval = if self.listening.load(Ordering::Acquire) {
                self.backstop_interval
            } else {
                self.poll_interval
            };
            let woken = tokio::time::timeout(interval, self.wake.notified());
            if stop.or(woken).await.is_none() {
                return;
            }
            if let Err(err) = self.catch_up().await {
                tracing::warn!(%err, "reading the invalidation log failed; retrying");
            }
        }
    }

    /// This instance's origin: the payload of its own writes' notifications.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // the listener's
    pub(crate) fn origin(&self) -> &str {
        &self.journal.origin
    }

    /// How often the tailer reads the log without being woken.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // the listener's
    pub(crate) fn poll_interval(&self) -> std::time::Duration {
        self.poll_interval
    }
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
            undecodable_keys: c.undecodable_keys.load(Ordering::Relaxed),
            pruned: c.pruned.load(Ordering::Relaxed),
            unchanged_polls: c.unchanged.load(Ordering::Relaxed),
            last_lag_ms: c.last_lag_ms.load(Ordering::Relaxed),
            max_lag_ms: c.max_lag_ms.load(Ordering::Relaxed),
        }
    }
}
