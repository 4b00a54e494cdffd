//! The flusher's work: claim a batch of outbox rows, keep the keys whose oldest row it holds,
//! coalesce each key to its newest row, and apply the batch and delete its rows in one
//! transaction, so each write takes effect exactly once.
//!
//! - Postgres and MariaDB/MySQL claim with `FOR UPDATE SKIP LOCKED`, so several instances can
//!   drain one outbox. A key is applied only by the claimant of its oldest pending row (an
//!   instance that claimed only newer rows of a key leaves them), which keeps the order of
//!   each key's writes across instances. SQLite runs one flusher in `BEGIN IMMEDIATE`.
//! - A batch that fails is retried key by key, so one bad row does not hold up the rest; a
//!   key that fails on its own backs off exponentially (with jitter) through its rows'
//!   `available_at`, and moves to the dead-letter table with its error after
//!   the entity's `max_attempts` ([`WriteBehindConfig::max_attempts`](crate::WriteBehindConfig::max_attempts)). A row whose payload no longer decodes moves there at once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, EntityTrait, IntoActiveModel, IsolationLevel, Iterable, PrimaryKeyToColumn,
    QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use tracing::Instrument;

use super::pending::DELETE;
use super::queue::Outbox;
use super::table::{MAX_PARAMS, dead_letter_row, outbox_row, pks_in};
use crate::clock::wall_ms;
use crate::error::Result;
use crate::invalidation::Effect;
use crate::key::{CacheableEntity, KeyOf, key_of_model, keys_condition};
use crate::spans;
use crate::stats::{add, bump};

/// Backoff after the first failure; it doubles per attempt up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 100;
const MAX_BACKOFF_MS: i64 = 30_000;
/// Most outbox rows one claim reads: every row of up to `batch` keys, so a hot key's writes
/// in one window become one table write.
const MAX_CLAIM_ROWS: u64 = 20_000;
/// Most bytes of an error kept in `last_error`: within any text column (a MySQL `TEXT`, from
/// an older version's tables, holds 65535 bytes), so recording a failure cannot fail, nor be
/// truncated by the database, however long the database's message.
const MAX_ERROR_BYTES: usize = 4096;

/// `error` as stored in `last_error` (outbox and dead-letter table alike): at most
/// [`MAX_ERROR_BYTES`], cut at a character boundary.
fn last_error(error: &str) -> String {
    if error.len() <= MAX_ERROR_BYTES {
        return error.to_owned();
    }
    const MARK: &str = "...";
    let end = error.floor_char_boundary(MAX_ERROR_BYTES - MARK.len());
    format!("{}{MARK}", &error[..end])
}

/// What a flush did.
#[derive(Debug, Default)]
pub(crate) struct FlushReport {
    /// Keys applied (table rows written or deleted).
    pub(crate) applied: usize,
    /// Rows this entity still has in the outbox: written meanwhile, held by another
    /// instance, or backing off after failures.
    pub(crate) left: usize,
    /// Every row left is backing off after failures (none can be applied now).
    pub(crate) waiting_for_retry: bool,
    /// When the first of them may be retried.
    pub(crate) retry_in: Duration,
}

/// One key's claimed rows, oldest first.
struct KeyRows {
    rows: Vec<outbox_row::Model>,
}

/// What one applied batch removed from the outbox.
#[derive(Default)]
struct Applied {
    keys: usize,
    rows: usize,
    dead: usize,
    statements: u64,
    /// When each applied row was acknowledged (its `created_at`, wall ms), for the ack →
    /// applied lag.
    acknowledged: Vec<i64>,
}

/// `row` as a dead letter, failed now with `error`.
fn dead_letter(
    row: &outbox_row::Model,
    attempts: i32,
    error: &str,
) -> dead_letter_row::ActiveModel {
    dead_letter_row::ActiveModel {
        id: Set(row.id),
        entity: Set(row.entity.clone()),
        pk: Set(row.pk.clone()),
        op: Set(row.op.clone()),
        payload: Set(row.payload.clone()),
        created_at: Set(row.created_at),
        attempts: Set(attempts),
        last_error: Set(Some(last_error(error))),
        available_at: Set(row.available_at),
        failed_at: Set(wall_ms()),
    }
}

/// `id IN (ids)`. On Postgres the list is one JSON parameter of a statement whose text does
/// not change with its length, so it is prepared once per connection (an `IN` list of
/// thousands of parameters would be prepared anew for every length).
fn ids_in(backend: DbBackend, ids: &[i64]) -> Expr {
    if backend != DbBackend::Postgres {
        return outbox_row::Column::Id.is_in(ids.iter().copied());
    }
    let mut json = String::with_capacity(ids.len() * 12 + 2);
    json.push('[');
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            json.push(',');
        }
        let _ = write!(json, "{id}");
    }
    json.push(']');
    Expr::cust_with_values(
        r#""id" IN (SELECT value::bigint FROM json_array_elements_text($1::json))"#,
        [json],
    )
}

/// `rows` (in id order) grouped by key: the keys in order of their first row, and each key's
/// rows in id order.
fn by_key(rows: Vec<outbox_row::Model>) -> (Vec<String>, HashMap<String, Vec<outbox_row::Model>>) {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Vec<outbox_row::Model>> = HashMap::new();
    for row in rows {
        if !by_key.contains_key(&row.pk) {
            order.push(row.pk.clone());
        }
        by_key.entry(row.pk.clone()).or_default().push(row);
    }
    (order, by_key)
}

fn backoff_ms(attempts: i32) -> i64 {
    let exp = FIRST_BACKOFF_MS
        .saturating_mul(1_i64 << attempts.clamp(1, 20).saturating_sub(1))
        .min(MAX_BACKOFF_MS);
    // Up to a quarter of jitter, so keys that failed together do not retry together.
    let jitter = (wall_ms().wrapping_mul(0x9e37_79b9) as u64 % (exp as u64 / 4 + 1)) as i64;
    exp - jitter
}

impl<E: CacheableEntity> Outbox<E> {
    async fn begin(&self) -> Result<DatabaseTransaction> {
        let options = match self.flush_db().get_database_backend() {
            DbBackend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            },
            // Fewer gap locks against the writers' inserts than REPEATABLE READ.
            DbBackend::MySql => TransactionOptions {
                isolation_level: Some(IsolationLevel::ReadCommitted),
                ..Default::default()
            },
            _ => TransactionOptions::default(),
        };
        Ok(self.flush_db().begin_with_options(options).await?)
    }

    /// Counts this entity's outbox rows; records the oldest one's age for the stats.
    pub(super) async fn refresh_depth(&self) -> Result<(usize, Option<i64>)> {
        use std::sync::atomic::Ordering;
        let commits_before = self.pressure.depth_lock().commits;
        let counted: Option<(i64, Option<i64>, Option<i64>)> = outbox_row::Entity::find()
            .select_only()
            .expr(sea_orm::sea_query::ExprTrait::count(Expr::col(
                outbox_row::Column::Id,
            )))
            .expr(sea_orm::sea_query::ExprTrait::min(Expr::col(
                outbox_row::Column::CreatedAt,
            )))
            .expr(sea_orm::sea_query::ExprTrait::min(Expr::col(
                outbox_row::Column::AvailableAt,
            )))
            .filter(outbox_row::Column::Entity.eq(self.entity))
            .into_tuple()
            .one(self.flush_db())
            .await?;
        let (rows, oldest, next) = counted.unwrap_or((0, None, None));
        {
            // Commits made while counting may or may not be in the count: keep them (erring
            // high keeps the bound).
            let mut depth = self.pressure.depth_lock();
            let meanwhile = (depth.commits - commits_before) as i64;
            depth.counted = rows + meanwhile;
        }
        self.counters
            .oldest_pending_at
            .store(oldest.unwrap_or(0), Ordering::Relaxed);
        Ok((rows.max(0) as usize, next))
    }

    /// Flushes until nothing can be applied now.
    pub(super) async fn flush_all(&self) -> Result<FlushReport> {
        let _one_at_a_time = self.flushing.lock().await;
        self.pressure.new_window();
        let mut report = FlushReport::default();
        loop {
            let (more, applied) = self.round().await?;
            report.applied += applied;
            // Rows written while this flush runs wait for the next gather window, so a
            // steady stream of writes is flushed in batches, not one round after another.
            if !more {
                break;
            }
        }
        let (left, next_available) = self.refresh_depth().await?;
        self.pressure.room.notify_waiters();
        report.left = left;
        // Rows written while this flush ran are available at once; they wait for the next
        // gather window. Only rows that are all backing off make the flusher wait for them.
        let wait = next_available.map_or(0, |at| (at - wall_ms()).max(0));
        if left > 0 && wait > 0 {
            report.waiting_for_retry = true;
            report.retry_in = Duration::from_millis(wait as u64);
        }
        Ok(report)
    }

    /// Applies the pending rows of `keys` (canonical key texts; `None`: every pending row of
    /// this entity) on `txn`, the transaction of a write made through the layer's connection,
    /// before that write: the write comes after them in the table, as it did for its caller
    /// (issue: a `CachedConnection` update of a key with a pending write-behind write). Rows
    /// of other keys are left to the flusher. Rows held by a flush in progress are waited for
    /// (`FOR UPDATE`, not `SKIP LOCKED`); by then they are applied and gone. Rows backing off
    /// after failures are applied too: if one still fails, so does the caller's write, which
    /// cannot be ordered after it. Returns what to record once `txn` commits.
    pub(crate) async fn apply_pending_in(
        self: &Arc<Self>,
        txn: &DatabaseTransaction,
        keys: Option<&[String]>,
    ) -> Result<Option<Effect>> {
        let mark = self.store.flush_mark();
        let mut select = outbox_row::Entity::find()
            .filter(outbox_row::Column::Entity.eq(self.entity))
            .order_by_asc(outbox_row::Column::Id);
        if let Some(keys) = keys {
            if keys.is_empty() {
                return Ok(None);
            }
            if keys.len() <= MAX_PARAMS {
                select = select.filter(pks_in(txn.get_database_backend(), keys)?);
            }
        }
        if txn.get_database_backend() != DbBackend::Sqlite {
            select = select.lock(LockType::Update);
        }
        let rows = select.all(txn).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let (order, mut by_key) = by_key(rows);
        let keys: Vec<KeyRows> = order
            .into_iter()
            .filter_map(|pk| by_key.remove(&pk).map(|rows| KeyRows { rows }))
            .collect();
        let mut written = Vec::with_capacity(keys.len());
        let applied = self.apply(txn, &keys, &mut written).await?;
        let outbox = self.clone();
        Ok(Some(Effect::local(move || {
            outbox.record(&applied, &written, Some(mark));
            outbox.pressure.room.notify_waiters();
        })))
    }

    /// Claims up to a batch of rows that may be applied now (`only`: just these ids).
    async fn claim(
        &self,
        txn: &DatabaseTransaction,
        only: Option<&[i64]>,
    ) -> Result<Vec<outbox_row::Model>> {
        let mut select = outbox_row::Entity::find()
            .filter(outbox_row::Column::Entity.eq(self.entity))
            .filter(outbox_row::Column::AvailableAt.lte(wall_ms()))
            .order_by_asc(outbox_row::Column::Id)
            .limit(MAX_CLAIM_ROWS);
        if let Some(ids) = only {
            select = select.filter(ids_in(txn.get_database_backend(), ids));
        }
        if txn.get_database_backend() != DbBackend::Sqlite {
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        Ok(select.all(txn).await?)
    }

    /// Groups claimed rows by key, keeping only keys whose oldest pending row is claimed, at
    /// most `batch` keys (the rest stay for the next round). Also returns whether keys were
    /// left out for want of room in the batch.
    async fn group(
        &self,
        txn: &DatabaseTransaction,
        rows: Vec<outbox_row::Model>,
    ) -> Result<(Vec<KeyRows>, bool)> {
        let (order, mut by_key) = by_key(rows);
        let oldest: HashMap<String, i64> = outbox_row::Entity::find()
            .select_only()
            .column(outbox_row::Column::Pk)
            .expr(sea_orm::sea_query::ExprTrait::min(Expr::col(
                outbox_row::Column::Id,
            )))
            .filter(outbox_row::Column::Entity.eq(self.entity))
            .filter(pks_in(txn.get_database_backend(), &order)?)
            .group_by(outbox_row::Column::Pk)
            .into_tuple::<(String, i64)>()
            .all(txn)
            .await?
            .into_iter()
            .collect();
        let truncated = order.len() > self.config.batch;
        let keys = order
            .into_iter()
            .filter_map(|pk| {
                let rows = by_key.remove(&pk)?;
                let first = rows.first()?.id;
                // An older row of this key is held by another flusher, or backing off.
                (oldest.get(&pk).is_none_or(|&min| min >= first)).then_some(KeyRows { rows })
            })
            .take(self.config.batch)
            .collect();
        Ok((keys, truncated))
    }

    /// Applies each key's newest row, dead-letters keys whose newest row does not decode,
    /// and deletes every claimed row, all on `txn`. The applied keys are added to `written`.
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        keys: &[KeyRows],
        written: &mut Vec<KeyOf<E>>,
    ) -> Result<Applied> {
        let mut applied = Applied::default();
        let mut upserts = Vec::new();
        let mut deletes: Vec<KeyOf<E>> = Vec::new();
        let mut dead = Vec::new();
        let mut done_ids = Vec::new();
        for key in keys {
            let Some(newest) = key.rows.last() else {
                continue;
            };
            match (self.codec.decode)(&newest.payload) {
                Ok(model) => {
                    applied.keys += 1;
                    applied.rows += key.rows.len();
                    applied
                        .acknowledged
                        .extend(key.rows.iter().map(|row| row.created_at));
                    if newest.op == DELETE {
                        deletes.push(key_of_model::<E>(&model));
                    } else {
                        written.push(key_of_model::<E>(&model));
                        upserts.push(model.into_active_model().reset_all());
                    }
                }
                Err(reason) => {
                    let error = format!("payload does not decode: {reason}");
                    for row in &key.rows {
                        dead.push(dead_letter(row, row.attempts, &error));
                    }
                    applied.dead += key.rows.len();
                }
            }
            done_ids.extend(key.rows.iter().map(|row| row.id));
        }

        let columns = E::Column::iter().count().max(1);
        let per_statement = (MAX_PARAMS / columns).max(1);
        if !upserts.is_empty() {
            let key_columns: Vec<E::Column> =
                E::PrimaryKey::iter().map(|k| k.into_column()).collect();
            let value_columns: Vec<E::Column> = E::Column::iter()
                .filter(|c| E::PrimaryKey::from_column(*c).is_none())
                .collect();
            let mut on_conflict = OnConflict::columns(key_columns);
            if value_columns.is_empty() {
                on_conflict.do_nothing();
            } else {
                on_conflict.update_columns(value_columns);
            }
            for chunk in upserts.chunks(per_statement) {
                E::insert_many(chunk.iter().cloned())
                    .on_conflict(on_conflict.clone())
                    .exec_without_returning(txn)
                    .await?;
                applied.statements += 1;
            }
        }
        for chunk in deletes.chunks(per_statement) {
            E::delete_many()
                .filter(keys_condition::<E>(chunk.iter()))
                .exec(txn)
                .await?;
            applied.statements += 1;
        }
        for chunk in dead.chunks(MAX_PARAMS / 10) {
            dead_letter_row::Entity::insert_many(chunk.iter().cloned())
                .exec_without_returning(txn)
                .await?;
        }
        for chunk in done_ids.chunks(MAX_PARAMS) {
            outbox_row::Entity::delete_many()
                .filter(ids_in(txn.get_database_backend(), chunk))
                .exec(txn)
                .await?;
        }
        Ok(applied)
    }

    /// The applied batch has committed: its keys' entries are clean (evictable) again, if
    /// the claim held every row committed before `mark` (see `round`), and its rows' ack →
    /// applied lag is recorded.
    fn record(&self, applied: &Applied, written: &[KeyOf<E>], mark: Option<u64>) {
        super::apply_lag::record(self.entity, &applied.acknowledged);
        if let Some(mark) = mark {
            for key in written {
                self.store.mark_flushed(key, mark);
            }
        }
        if applied.keys > 0 {
            bump(&self.counters.flushes);
        }
        add(&self.counters.flushed_rows, applied.keys as u64);
        add(
            &self.counters.coalesced_writes,
            (applied.rows - applied.keys) as u64,
        );
        add(&self.counters.dead_lettered, applied.dead as u64);
        add(&self.counters.db_writes, applied.statements);
        self.pressure.depth_lock().counted -= (applied.rows + applied.dead) as i64;
    }

    /// One batch: `(more, keys applied)`, where `more` says the batch was full, so rows
    /// that were waiting when it began may be left. A batch that claimed rows is traced: a
    /// `sea_orm_cache.flush` span with the rows it wrote and its outcome.
    async fn round(&self) -> Result<(bool, usize)> {
        let txn = self.begin().await?;
        let mark = self.store.flush_mark();
        let rows = self.claim(&txn, None).await?;
        let claimed = rows.len();
        if claimed == 0 {
            txn.commit().await?;
            return Ok((false, 0));
        }
        let span = spans::flush(self.entity, claimed);
        let result = self
            .apply_claimed(txn, rows, mark)
            .instrument(span.clone())
            .await;
        match &result {
            Ok((_, applied, outcome)) => {
                span.record("rows", applied);
                span.record("outcome", outcome);
            }
            Err(_) => {
                span.record("outcome", "error");
            }
        }
        result.map(|(more, applied, _)| (more, applied))
    }

    /// [`round`](Self::round) once it has claimed `rows` on `txn`: `(more, keys applied,
    /// outcome)`, the outcome `ok`, or `by_key` when the batch failed and was applied key by key.
    async fn apply_claimed(
        &self,
        txn: DatabaseTransaction,
        rows: Vec<outbox_row::Model>,
        mark: u64,
    ) -> Result<(bool, usize, &'static str)> {
        let claimed = rows.len();
        // A claim cut short by its limit may have left newer rows of a key it applies: its
        // entries stay pinned for a later round.
        let mark = (claimed as u64 != MAX_CLAIM_ROWS).then_some(mark);
        let (keys, truncated) = self.group(&txn, rows).await?;
        if keys.is_empty() {
            // Everything claimed waits behind older rows held elsewhere.
            txn.commit().await?;
            return Ok((false, 0, "ok"));
        }
        let more = truncated || claimed as u64 == MAX_CLAIM_ROWS;
        let mut written = Vec::with_capacity(keys.len());
        match self.apply(&txn, &keys, &mut written).await {
            Ok(applied) => {
                txn.commit().await?;
                self.record(&applied, &written, mark);
                Ok((more, applied.keys, "ok"))
            }
            // A batch refused for any reason, a deadlock included, is retried key by key.
            Err(err) => {
                let _ = txn.rollback().await;
                tracing::debug!(entity = self.entity, %err, "batch failed; applying key by key");
                let mut applied_keys = 0;
                for key in keys {
                    applied_keys += self.apply_one(key, mark).await?;
                }
                Ok((more, applied_keys, "by_key"))
            }
        }
    }

    /// Applies one key's rows in a transaction of their own; on failure, backs them off.
    /// Returns the keys applied (0 or 1). `mark`: the round's, taken before it claimed them.
    async fn apply_one(&self, key: KeyRows, mark: Option<u64>) -> Result<usize> {
        let ids: Vec<i64> = key.rows.iter().map(|row| row.id).collect();
        let txn = self.begin().await?;
        let rows = self.claim(&txn, Some(&ids)).await?;
        if rows.len() != ids.len() {
            // Another flusher took some of them meanwhile.
            txn.commit().await?;
            return Ok(0);
        }
        let mut written = Vec::with_capacity(1);
        match self.apply(&txn, &[KeyRows { rows }], &mut written).await {
            Ok(applied) => {
                txn.commit().await?;
                self.record(&applied, &written, mark);
                Ok(applied.keys)
            }
            // A transient refusal (deadlock, serialization failure, busy) counts as an attempt
            // too: a key the database refuses every time is dead-lettered after
            // `max_attempts` instead of holding its entity's outbox forever.
            Err(err) => {
                let _ = txn.rollback().await;
                self.back_off(&key.rows, &err.to_string()).await?;
                Ok(0)
            }
        }
    }

    /// Records a failed attempt on `rows`: later retry, or the dead-letter table after
    /// `max_attempts`.
    async fn back_off(&self, rows: &[outbox_row::Model], error: &str) -> Result<()> {
        bump(&self.counters.flush_errors);
        let txn = self.begin().await?;
        let now = wall_ms();
        let mut dead = 0;
        let mut dead_key = None;
        for row in rows {
            let attempts = row.attempts + 1;
            if attempts >= self.max_attempts() {
                dead_letter(row, attempts, error).insert(&txn).await?;
                outbox_row::Entity::delete_by_id(row.id).exec(&txn).await?;
                dead += 1;
                if let Ok(model) = (self.codec.decode)(&row.payload) {
                    dead_key = Some(key_of_model::<E>(&model));
                }
            } else {
                outbox_row::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(row.id),
                    attempts: Set(attempts),
                    last_error: Set(Some(last_error(error))),
                    available_at: Set(now + backoff_ms(attempts)),
                    ..Default::default()
                }
                .update(&txn)
                .await?;
            }
        }
        txn.commit().await?;
        if dead > 0 {
            add(&self.counters.dead_lettered, dead);
            self.pressure.depth_lock().counted -= dead as i64;
        }
        // The dead write will not reach the table: stop serving it (a later write of the key
        // still pending is read back from the outbox).
        if let Some(key) = dead_key {
            self.store.invalidate(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_ERROR_BYTES, last_error};

    #[test]
    fn last_error_is_cut_at_a_character_boundary() {
        assert_eq!(last_error("short"), "short");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let kept = last_error(&long);
        assert!(kept.len() <= MAX_ERROR_BYTES, "{}", kept.len());
        assert!(kept.ends_with("..."));
        assert!(kept.trim_end_matches("...").chars().all(|c| c == 'é'));
    }
}
