//! The invalidation log, written side (DESIGN G8): every write made through the layer adds one
//! row per key it changes (or one for the whole entity) to `sea_orm_cache_invalidation`, in
//! the writing transaction, so no commit can happen without its invalidation. On Postgres the
//! same transaction sends `pg_notify`, which the database delivers on commit only.

use std::collections::HashSet;
use std::sync::OnceLock;

use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::clock::wall_ms;
use crate::invalidation::LogEntry;

/// The invalidation log table.
pub const INVALIDATION_TABLE: &str = "sea_orm_cache_invalidation";

/// The origin of the rows the [hook helpers](crate::hooks) write: no instance has it, so
/// every instance applies them, the writing one included (after the commit, which its hook
/// could not see).
pub(crate) const HOOK_ORIGIN: &str = "hook";

/// The Postgres notification channel a writing transaction notifies on.
pub(crate) const CHANNEL: &str = "sea_orm_cache_invalidation";

/// Most rows one `INSERT` carries (4 parameters each, well under every backend's limit).
const ROWS_PER_INSERT: usize = 500;

/// What this instance writes to the log with: its origin, which its own tailer skips.
#[derive(Debug)]
pub(crate) struct Journal {
    /// This instance's id, unique per layer build.
    pub(crate) origin: String,
    /// Tables whose changes database triggers log (DESIGN G11): this journal writes no row
    /// naming a key of theirs, set once when the layer is built, before any write.
    captured: OnceLock<HashSet<String>>,
}

impl Journal {
    /// A journal with a fresh origin id (process id, time and a random number).
    pub(crate) fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        let random = RandomState::new().hash_one(std::time::Instant::now());
        Self {
            origin: format!("{}-{}-{random:016x}", std::process::id(), wall_ms()),
            captured: OnceLock::new(),
        }
    }

    /// Sets the tables whose changes triggers log (once; later calls change nothing).
    pub(crate) fn set_captured(&self, tables: HashSet<String>) {
        let _ = self.captured.set(tables);
    }

    /// Whether triggers log the changes of `table`, so the layer must not log its keys again.
    pub(crate) fn captures(&self, table: &str) -> bool {
        self.captured
            .get()
            .is_some_and(|tables| tables.contains(table))
    }

    /// Whether `entry` goes to the log: not a key of a table triggers capture (their trigger
    /// writes that row in the same transaction). A whole-entity entry always goes: the layer
    /// writes one for a statement whose keys it cannot tell, which may be one no trigger
    /// fires on (MariaDB's TRUNCATE, DDL).
    fn logs(&self, entry: &LogEntry) -> bool {
        entry.key.is_none() || !self.captures(entry.entity)
    }

    /// Adds `entries` to the log on `conn` (the writing transaction), and on Postgres queues
    /// the wake-up notification for its commit. Does nothing without entries.
    pub(crate) async fn write<'e, C: ConnectionTrait>(
        &self,
        conn: &C,
        entries: impl IntoIterator<Item = &'e LogEntry>,
    ) -> Result<(), DbErr> {
        self.write_as(conn, entries, &self.origin).await
    }

    /// [`write`](Self::write) with another origin than this instance's: rows every instance
    /// applies, this one included (the hook helpers' rows, [`HOOK_ORIGIN`]).
    pub(crate) async fn write_as<'e, C: ConnectionTrait>(
        &self,
        conn: &C,
        entries: impl IntoIterator<Item = &'e LogEntry>,
        origin: &str,
    ) -> Result<(), DbErr> {
        let entries: Vec<&LogEntry> = entries.into_iter().filter(|e| self.logs(e)).collect();
        if entries.is_empty() {
            return Ok(());
        }
        let backend = conn.get_database_backend();
        let now = wall_ms();
        if backend == DbBackend::Postgres {
            // One statement per chunk that also queues the notification: one round trip.
            for chunk in entries.chunks(ROWS_PER_INSERT) {
                conn.execute_raw(postgres_insert(chunk, origin, now))
                    .await?;
            }
            return Ok(());
        }
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let mut insert = Query::insert();
            insert.into_table(Alias::new(INVALIDATION_TABLE)).columns([
                Alias::new("entity"),
                Alias::new("pk"),
                Alias::new("origin"),
                Alias::new("created_at"),
            ]);
            for entry in chunk {
                insert
                    .values([
                        entry.entity.into(),
                        entry.key.clone().into(),
                        origin.into(),
                        now.into(),
                    ])
                    .map_err(|err| DbErr::Custom(err.to_string()))?;
            }
            conn.execute_raw(backend.build(&insert)).await?;
        }
        Ok(())
    }
}

impl Journal {
    /// Postgres: `stmt`, a single `INSERT`, `UPDATE` or `DELETE`, with the log rows of
    /// `entries` (the ones that go to the log) and the notification added as a
    /// data-modifying `WITH` in front of it: one statement, so under autocommit the write
    /// and its invalidation commit together in one round trip, and the statement's result
    /// (rows affected, `RETURNING` rows) is the write's own; `stmt` as given when no entry
    /// goes to the log. `Err(stmt)` when the statement cannot take the `WITH` (another
    /// backend, several statements, a `WITH` of its own, not a write): it must run in a
    /// transaction with [`write`](Self::write) instead.
    pub(crate) fn prefixed<'e>(
        &self,
        stmt: Statement,
        entries: impl IntoIterator<Item = &'e LogEntry>,
    ) -> Result<Statement, Statement> {
        let entries: Vec<&LogEntry> = entries.into_iter().filter(|e| self.logs(e)).collect();
        if entries.is_empty() {
            return Ok(stmt);
        }
        if stmt.db_backend != DbBackend::Postgres || !plain_write(&stmt.sql) {
            return Err(stmt);
        }
        let Statement { sql, values, .. } = stmt;
        let mut values = values.map(|v| v.0).unwrap_or_default();
        let mut prefix = String::from(
            "WITH sea_orm_cache_logged AS (INSERT INTO sea_orm_cache_invalidation \
             (entity, pk, origin, created_at) SELECT v.entity, v.pk, ",
        );
        values.push(self.origin.clone().into());
        let origin = values.len();
        values.push(wall_ms().into());
        prefix.push_str(&format!(
            "${origin}::text, ${}::bigint FROM (VALUES ",
            values.len()
        ));
        for (n, entry) in entries.iter().enumerate() {
            if n > 0 {
                prefix.push_str(", ");
            }
            values.push(entry.entity.into());
            values.push(entry.key.clone().into());
            prefix.push_str(&format!(
                "(${}::text, ${}::text)",
                values.len() - 1,
                values.len()
            ));
        }
        prefix.push_str(&format!(
            ") AS v(entity, pk) CROSS JOIN (SELECT pg_notify('{CHANNEL}', ${origin}::text)) AS n) "
        ));
        prefix.push_str(&sql);
        Ok(Statement::from_sql_and_values(
            DbBackend::Postgres,
            prefix,
            values,
        ))
    }
}

/// Whether `sql` is one `INSERT`, `UPDATE` or `DELETE` (no `WITH` of its own, no second
/// statement), which a `WITH` can go in front of.
fn plain_write(sql: &str) -> bool {
    let head = sql.trim_start();
    !sql.contains(';')
        && ["INSERT ", "UPDATE ", "DELETE "].iter().any(|verb| {
            head.get(..verb.len())
                .is_some_and(|word| word.eq_ignore_ascii_case(verb))
        })
}

/// Postgres: the `INSERT` of `entries` and the `pg_notify` of their commit, as one
/// statement.
fn postgres_insert(entries: &[&LogEntry], origin: &str, now: i64) -> Statement {
    let mut sql = String::from(
        "INSERT INTO sea_orm_cache_invalidation (entity, pk, origin, created_at) \
             SELECT v.entity, v.pk, v.origin, v.created_at FROM (VALUES ",
    );
    let mut values = Vec::with_capacity(entries.len() * 2 + 2);
    values.push(origin.into());
    values.push(now.into());
    for (n, entry) in entries.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        let at = values.len();
        sql.push_str(&format!(
            "(${}::text, ${}::text, $1::text, $2::bigint)",
            at + 1,
            at + 2
        ));
        values.push(entry.entity.into());
        values.push(entry.key.clone().into());
    }
    sql.push_str(&format!(
        ") AS v(entity, pk, origin, created_at) \
             CROSS JOIN (SELECT pg_notify('{CHANNEL}', $1::text)) AS n"
    ));
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Creates the invalidation log table if it does not exist (called by
/// [`outbox::create_tables`](crate::outbox::create_tables), so the builder's
/// `create_outbox_tables` and the library's migration create it with the outbox). On Postgres
/// each row also records its writing transaction's id (`txid`), which the tailers order by.
pub(crate) async fn create_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let statements: &[&str] = match backend {
        DbBackend::Postgres => &[
            "CREATE TABLE IF NOT EXISTS sea_orm_cache_invalidation (\
             id BIGSERIAL PRIMARY KEY, entity VARCHAR(255) NOT NULL, pk TEXT NULL, \
             origin VARCHAR(64) NOT NULL, created_at BIGINT NOT NULL, \
             txid XID8 NOT NULL DEFAULT pg_current_xact_id())",
            "CREATE INDEX IF NOT EXISTS sea_orm_cache_invalidation_txid \
             ON sea_orm_cache_invalidation (txid)",
        ],
        DbBackend::MySql => &["CREATE TABLE IF NOT EXISTS sea_orm_cache_invalidation (\
             id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, entity VARCHAR(255) NOT NULL, \
             pk LONGTEXT NULL, origin VARCHAR(64) NOT NULL, created_at BIGINT NOT NULL) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"],
        // AUTOINCREMENT: ids are never reused, even after every row is pruned.
        _ => &["CREATE TABLE IF NOT EXISTS sea_orm_cache_invalidation (\
             id INTEGER PRIMARY KEY AUTOINCREMENT, entity TEXT NOT NULL, pk TEXT NULL, \
             origin TEXT NOT NULL, created_at INTEGER NOT NULL)"],
    };
    for sql in statements {
        db.execute_raw(Statement::from_string(backend, *sql))
            .await?;
    }
    Ok(())
}
