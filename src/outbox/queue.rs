//! One entity's outbox ([`Outbox`]): the writer's side (a row per write, checked against the
//! columns' capacity, committed alone or in the caller's transaction), the reads of pending
//! writes, and the flusher task's loop. The flush itself is in `flusher.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sea_orm::sea_query::IntoValueTuple;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder,
};

use super::backpressure::{Backpressure, Reservation};
use super::pending::{DELETE, PendingWrite};
use super::table::{self, Capacity, MAX_PARAMS, RowCapacity, outbox_row, pks_in};
use super::writer;
use crate::background::OnBackground;
use crate::cached::ModelCodec;
use crate::clock::wall_ms;
use crate::coherence::Journal;
use crate::config::WriteBehindConfig;
use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf, key_text};
use crate::stats::Counters;
use crate::store::Store;
use crate::tasks::{Stop, Tasks};

/// How soon an idle flusher first looks for rows other instances left (a crashed writer's):
/// it looks again after twice as long each time it finds none, up to [`IDLE_POLL_MAX`], so
/// an idle layer sends the database almost nothing.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The longest an idle flusher waits before it looks for rows other instances left.
const IDLE_POLL_MAX: Duration = Duration::from_secs(60);
/// How long `shutdown` waits before trying again when rows it could not apply (held by
/// another instance's flush) are left.
const BLOCKED_PAUSE: Duration = Duration::from_millis(10);

/// One entity's outbox: its writer, its flusher, and the bound on pending rows.
pub(crate) struct Outbox<E: CacheableEntity> {
    pub(super) db: DatabaseConnection,
    pub(super) entity: &'static str,
    pub(super) codec: ModelCodec<E::Model>,
    pub(super) config: WriteBehindConfig,
    pub(super) counters: Arc<Counters>,
    /// The entity's store: applied keys' entries are marked clean (unpinned) there.
    pub(super) store: Arc<Store<KeyOf<E>, E::Model>>,
    pub(super) writer: writer::GroupWriter,
    /// The bound on pending rows, and the flusher's wake-ups.
    pub(super) pressure: Arc<Backpressure>,
    /// One flush at a time in this instance.
    pub(super) flushing: tokio::sync::Mutex<()>,
    /// What the tables' `pk` and `payload` columns hold, read by [`check`](Self::check):
    /// a row that would not fit is refused before it is written, so no `sql_mode` can
    /// truncate an acknowledged write.
    pub(super) capacity: OnceLock<RowCapacity>,
    /// Where the flusher runs and the connection it flushes on (the layer's thread and own
    /// pool), once [`run_on`](Self::run_on) has set it; `db` until then.
    pub(super) background: OnceLock<Arc<OnBackground>>,
}

impl<E: CacheableEntity> fmt::Debug for Outbox<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("entity", &self.entity)
            .field("depth", &self.pressure.depth())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<E: CacheableEntity> Outbox<E> {
    /// Creates the outbox; its writer and flusher run from [`start`](Self::start).
    pub(crate) fn new(
        db: DatabaseConnection,
        entity: &'static str,
        journal: Option<Arc<Journal>>,
        codec: ModelCodec<E::Model>,
        config: WriteBehindConfig,
        counters: Arc<Counters>,
        store: Arc<Store<KeyOf<E>, E::Model>>,
    ) -> Result<Arc<Self>> {
        let outbox = Arc::new(Self {
            pressure: Arc::new(Backpressure::new(&config)),
            writer: writer::GroupWriter::new(db.clone(), entity, journal, counters.clone()),
            db,
            entity,
            codec,
            config,
            counters,
            store,
            flushing: tokio::sync::Mutex::new(()),
            capacity: OnceLock::new(),
            background: OnceLock::new(),
        });
        Ok(outbox)
    }

    /// Flushes on `background` from now on: its thread and connection (set once, before
    /// [`start`](Self::start)).
    pub(crate) fn run_on(&self, background: Arc<OnBackground>) {
        let _ = self.background.set(background);
    }

    /// The connection the flusher applies rows on: the layer's own once
    /// [`run_on`](Self::run_on) has set it, so a flush never waits behind the application's
    /// queries for a connection of its pool.
    pub(super) fn flush_db(&self) -> &DatabaseConnection {
        self.background.get().map_or(&self.db, |on| on.db())
    }

    /// Starts the writer (on the application's runtime: it acknowledges its writes) and the
    /// flusher (on the layer's thread), owned by `tasks`; the flusher first resumes whatever
    /// rows the table already holds for this entity.
    pub(crate) fn start(self: &Arc<Self>, tasks: &Tasks) {
        self.writer.start(tasks);
        tasks.spawn_background(self.clone().run(tasks.signal()));
    }

    /// Refuses `value` for `column` if it is longer than the column holds, in characters or
    /// in bytes.
    fn fits(&self, column: &'static str, value: &str, capacity: Capacity) -> Result<()> {
        let too_large = |len: usize, max: u64, unit: &'static str| Error::OutboxRowTooLarge {
            entity: self.entity,
            column,
            len: len as u64,
            max,
            unit,
        };
        let bytes = value.len();
        if let Some(max) = capacity.bytes.filter(|&max| bytes as u64 > max) {
            return Err(too_large(bytes, max, "bytes"));
        }
        // No more characters than bytes: only count them when the bytes could be too many.
        if let Some(max) = capacity.chars.filter(|&max| bytes as u64 > max) {
            let chars = value.chars().count();
            if chars as u64 > max {
                return Err(too_large(chars, max, "characters"));
            }
        }
        Ok(())
    }

    /// The write's outbox row; `pk` is the key's [`key_text`].
    ///
    /// # Errors
    /// [`Error::OutboxRowTooLarge`] if the key's text or the payload is longer than the
    /// tables' columns hold (as read by [`check`](Self::check)).
    fn row(&self, pk: &str, write: &PendingWrite<E::Model>) -> Result<outbox_row::ActiveModel> {
        let capacity = self.capacity.get().copied().unwrap_or_default();
        self.fits("pk", pk, capacity.pk)?;
        let payload = (self.codec.encode)(write.model()).map_err(|reason| Error::Encode {
            entity: self.entity,
            reason,
        })?;
        self.fits("payload", &payload, capacity.payload)?;
        let now = wall_ms();
        Ok(outbox_row::ActiveModel {
            entity: Set(self.entity.to_owned()),
            pk: Set(pk.to_owned()),
            op: Set(write.op().to_owned()),
            payload: Set(payload),
            created_at: Set(now),
            attempts: Set(0),
            last_error: Set(None),
            available_at: Set(now),
            ..Default::default()
        })
    }

    /// Commits the write's outbox row (with whatever other writers are committing); returning
    /// `Ok` acknowledges the write.
    pub(crate) async fn push(&self, key: &KeyOf<E>, write: &PendingWrite<E::Model>) -> Result<()> {
        let key_text = key_text(key.clone().into_value_tuple());
        let row = self.row(&key_text, write)?;
        self.pressure.reserve().await?;
        if let Err(err) = self.writer.write(row).await {
            self.pressure.release();
            return Err(err);
        }
        self.pressure.committed(key_text);
        Ok(())
    }

    /// Inserts the write's outbox row in the caller's transaction: it commits or rolls back
    /// with the caller's other writes. The returned reservation is to be committed once the
    /// transaction commits (that wakes the flusher); dropped, it releases its room.
    pub(crate) async fn push_in(
        &self,
        txn: &DatabaseTransaction,
        key: &KeyOf<E>,
        write: &PendingWrite<E::Model>,
    ) -> Result<Reservation> {
        let key_text = key_text(key.clone().into_value_tuple());
        let row = self.row(&key_text, write)?;
        self.pressure.reserve().await?;
        // Released if the transaction's effects are dropped (rollback) instead of run.
        let reservation = Reservation::new(self.pressure.clone(), key_text);
        if let Err(err) = outbox_row::Entity::insert(row)
            .exec_without_returning(txn)
            .await
        {
            drop(reservation);
            return Err(err.into());
        }
        Ok(reservation)
    }

    /// The newest pending write for `key`, read on `db` (a transaction sees its own rows).
    pub(crate) async fn pending<C: ConnectionTrait>(
        &self,
        db: &C,
        key: &KeyOf<E>,
    ) -> Result<Option<PendingWrite<E::Model>>> {
        let newest = outbox_row::Entity::find()
            .filter(outbox_row::Column::Entity.eq(self.entity))
            .filter(outbox_row::Column::Pk.eq(key_text(key.clone().into_value_tuple())))
            .order_by_desc(outbox_row::Column::Id)
            .one(db)
            .await?;
        let Some(row) = newest else {
            return Ok(None);
        };
        let model = (self.codec.decode)(&row.payload).map_err(|reason| Error::Decode {
            entity: self.entity,
            outbox_id: row.id,
            reason,
        })?;
        Ok(Some(match row.op.as_str() {
            DELETE => PendingWrite::Delete(Arc::new(model)),
            _ => PendingWrite::Upsert(Arc::new(model)),
        }))
    }

    /// The newest pending write of each of `keys` that has one, by key text, read on `db` in
    /// one query per [`MAX_PARAMS`] keys. A row that no longer decodes is an error, as for
    /// [`pending`](Self::pending).
    pub(crate) async fn pending_many<C: ConnectionTrait>(
        &self,
        db: &C,
        keys: &[String],
    ) -> Result<HashMap<String, PendingWrite<E::Model>>> {
        let mut newest = HashMap::new();
        for chunk in keys.chunks(MAX_PARAMS) {
            let rows = outbox_row::Entity::find()
                .filter(outbox_row::Column::Entity.eq(self.entity))
                .filter(pks_in(db.get_database_backend(), chunk)?)
                .order_by_asc(outbox_row::Column::Id)
                .all(db)
                .await?;
            for row in rows {
                newest.insert(row.pk.clone(), row);
            }
        }
        newest
            .into_iter()
            .map(|(pk, row)| {
                let model = (self.codec.decode)(&row.payload).map_err(|reason| Error::Decode {
                    entity: self.entity,
                    outbox_id: row.id,
                    reason,
                })?;
                let write = match row.op.as_str() {
                    DELETE => PendingWrite::Delete(Arc::new(model)),
                    _ => PendingWrite::Upsert(Arc::new(model)),
                };
                Ok((pk, write))
            })
            .collect()
    }

    /// Every key's newest pending write, by key text, read on `db`, for warming. A row that
    /// no longer decodes is `None`: its key's value is unknown here.
    pub(crate) async fn pending_all<C: ConnectionTrait>(
        &self,
        db: &C,
    ) -> Result<HashMap<String, Option<PendingWrite<E::Model>>>> {
        let rows = outbox_row::Entity::find()
            .filter(outbox_row::Column::Entity.eq(self.entity))
            .order_by_asc(outbox_row::Column::Id)
            .all(db)
            .await?;
        let mut newest = HashMap::with_capacity(rows.len());
        for row in rows {
            newest.insert(row.pk, (row.op, row.payload));
        }
        Ok(newest
            .into_iter()
            .map(|(pk, (op, payload))| {
                let write = (self.codec.decode)(&payload)
                    .ok()
                    .map(|model| match op.as_str() {
                        DELETE => PendingWrite::Delete(Arc::new(model)),
                        _ => PendingWrite::Upsert(Arc::new(model)),
                    });
                (pk, write)
            })
            .collect())
    }

    /// Checks that the outbox table can be read (and counts this entity's rows), and reads
    /// what its columns hold, which every row is checked against before it is written.
    pub(crate) async fn check(&self) -> Result<()> {
        let unavailable = |source| Error::OutboxUnavailable {
            entity: self.entity,
            source,
        };
        match self.refresh_depth().await {
            Ok(_) => {}
            Err(Error::Db(source)) => return Err(unavailable(source)),
            Err(other) => return Err(other),
        }
        let capacity = table::row_capacity(&self.db).await.map_err(unavailable)?;
        // A second check reads the same tables: the first reading stays.
        let _ = self.capacity.set(capacity);
        Ok(())
    }

    /// Attempts before a failing row is dead-lettered (validated to fit the `attempts`
    /// column).
    pub(super) fn max_attempts(&self) -> i32 {
        i32::try_from(self.config.max_attempts).unwrap_or(i32::MAX)
    }

    /// Rows pending for this entity, as far as this instance knows, reservations included.
    pub(crate) fn depth(&self) -> usize {
        self.pressure.depth()
    }

    /// The flusher: resumes what the table holds, then sleeps until there is work (or polls
    /// for other instances' rows, less often the longer it finds none), lets writes gather for `max_delay` (or until a batch is
    /// full or the bound is reached), and flushes; until `stop` is given (a flush in
    /// progress completes first). Stopped by `shutdown`, which then flushes what is left, or
    /// by the layer's drop: what is left stays in the outbox for the next start.
    async fn run(self: Arc<Self>, mut stop: Stop) {
        // After a failure, rows wait for their own backoff, not for another gather window.
        let mut retrying = false;
        let mut idle_poll = IDLE_POLL;
        loop {
            if stop.is_given() {
                return;
            }
            if let Err(err) = self.refresh_depth().await {
                tracing::warn!(entity = self.entity, %err, "counting outbox rows failed");
            }
            if self.pressure.depth() == 0 {
                retrying = false;
                // A write wakes the flusher when it is the first key of a window: start one
                // before waiting, or a write after the last flush finds keys of rows already
                // applied in it and waits for the idle poll (it did: up to a second). A write
                // that committed before this is in the depth, checked again after.
                self.pressure.new_window();
                if self.pressure.depth() > 0 {
                    continue;
                }
                let woken = tokio::time::timeout(idle_poll, self.pressure.wake.notified());
                // Woken by a write: look soon again; timed out finding nothing: later.
                idle_poll = match stop.or(woken).await {
                    Some(Err(_)) => (idle_poll * 2).min(IDLE_POLL_MAX),
                    _ => IDLE_POLL,
                };
                continue;
            }
            idle_poll = IDLE_POLL;
            if !retrying {
                let deadline = tokio::time::Instant::now() + self.config.max_delay;
                while !self.pressure.window_full() {
                    let woken = tokio::time::timeout_at(deadline, self.pressure.wake.notified());
                    match stop.or(woken).await {
                        Some(Ok(())) => {}
                        Some(Err(_)) => break,
                        None => return,
                    }
                }
            }
            match self.flush_all().await {
                Ok(report) if report.waiting_for_retry => {
                    // Woken by a new write: gather a window for it (the backed-off rows go
                    // with it if their time has come); else retry as soon as they are due.
                    let wait = report.retry_in.min(IDLE_POLL);
                    let woken = tokio::time::timeout(wait, self.pressure.wake.notified());
                    retrying = stop.or(woken).await.is_some_and(|woken| woken.is_err());
                }
                Ok(_) => retrying = false,
                Err(err) => {
                    retrying = true;
                    tracing::warn!(entity = self.entity, %err, "write-behind flush failed; retrying");
                    let woken = tokio::time::timeout(IDLE_POLL, self.pressure.wake.notified());
                    stop.or(woken).await;
                }
            }
        }
    }

    /// Applies every row that can be applied now, on the layer's thread; returns the number
    /// of keys applied.
    pub(crate) async fn flush(self: &Arc<Self>) -> Result<usize> {
        self.on_background(|outbox| async move { outbox.flush_all().await })
            .await
            .map(|report| report.applied)
    }

    /// Runs `work` on this outbox on the layer's thread ([`OnBackground::run`]), or here
    /// before [`run_on`](Self::run_on).
    async fn on_background<F, Fut, T>(self: &Arc<Self>, work: F) -> T
    where
        F: Fn(Arc<Self>) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match self.background.get() {
            Some(on) => on.run(|| work(self.clone())).await,
            None => work(self.clone()).await,
        }
    }

    /// Refuses writes from now on ([`Error::Shutdown`]); the first step of shutting down,
    /// and what the layer's drop does.
    pub(crate) fn stop(&self) {
        self.pressure.stop();
    }

    /// The final flush of `shutdown`, once the layer's tasks have stopped (after
    /// [`stop`](Self::stop)): drains the outbox until `deadline`. Rows left (failing, or past
    /// the deadline) stay in the table for the next start.
    pub(crate) async fn drain(self: &Arc<Self>, deadline: tokio::time::Instant) -> Result<()> {
        loop {
            let report = self
                .on_background(|outbox| async move { outbox.flush_all().await })
                .await?;
            if report.left == 0 {
                return Ok(());
            }
            // Rows left that can be applied now were written or held elsewhere meanwhile:
            // go again, pausing briefly if this round could apply nothing.
            let pause = if report.waiting_for_retry {
                report.retry_in
            } else if report.applied == 0 {
                BLOCKED_PAUSE
            } else {
                Duration::ZERO
            };
            if tokio::time::Instant::now() + pause > deadline {
                return Err(Error::ShutdownIncomplete {
                    entity: self.entity,
                    pending: self.pressure.depth(),
                });
            }
            tokio::time::sleep(pause).await;
        }
    }
}
