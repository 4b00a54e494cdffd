//! The durable write-behind outbox (DESIGN G5, G6, G7): a write-behind write is acknowledged
//! once its outbox row has committed; a background flusher applies outbox rows to the table
//! and deletes them in one transaction, so each write takes effect exactly once, and a crash
//! loses nothing that was acknowledged.
//!
//! - `table`: the outbox and dead-letter tables ([`create_tables`]) and the capacity of
//!   their columns, which every row is checked against before it is written.
//! - `writer`: group commit of concurrent writers' rows.
//! - `flusher`: claim, coalesce per key, apply, retry with backoff, dead-letter.

mod flusher;
mod table;
mod writer;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::sea_query::IntoValueTuple;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cached::ModelCodec;
use crate::config::WriteBehindConfig;
use crate::connection::CachedTransaction;
use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf};
use crate::stats::Counters;
use crate::store::Store;

use crate::key::key_text;
pub use flusher::MAX_ATTEMPTS;
pub(crate) use table::{Capacity, RowCapacity, dead_letter_row, outbox_row};
pub use table::{DEAD_LETTER_TABLE, OUTBOX_TABLE, create_tables};

/// A write-behind write: the row after it, or the row it deletes.
#[derive(Debug)]
pub(crate) enum PendingWrite<M> {
    /// Insert or update the row to this model.
    Upsert(Arc<M>),
    /// Delete the row (the model is its last known value, which names its key).
    Delete(Arc<M>),
}

impl<M> PendingWrite<M> {
    /// What a reader sees for the key while the write is pending.
    pub(crate) fn into_value(self) -> Option<Arc<M>> {
        match self {
            PendingWrite::Upsert(m) => Some(m),
            PendingWrite::Delete(_) => None,
        }
    }

    fn op(&self) -> &'static str {
        match self {
            PendingWrite::Upsert(_) => UPSERT,
            PendingWrite::Delete(_) => DELETE,
        }
    }

    fn model(&self) -> &M {
        match self {
            PendingWrite::Upsert(m) | PendingWrite::Delete(m) => m,
        }
    }
}

const UPSERT: &str = "upsert";
const DELETE: &str = "delete";

/// Wall-clock milliseconds: outbox times are shared by every instance and survive restarts.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How often an idle flusher looks for rows other instances wrote.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long `shutdown` waits before trying again when rows it could not apply (held by
/// another instance's flush) are left.
const BLOCKED_PAUSE: Duration = Duration::from_millis(10);

/// The outbox's pending work, as this instance knows it. The bound on pending work is
/// `counted + in_flight`; a count of the table replaces `counted`, keeping the commits made
/// while it ran, and never touches `in_flight`, so it can err high but never low.
#[derive(Debug, Default)]
pub(crate) struct Depth {
    /// Rows in the outbox: the last count, plus commits since, less rows applied since.
    pub(crate) counted: i64,
    /// Rows reserved here whose insert has not committed (or failed) yet.
    in_flight: i64,
    /// Commits here, ever: how a count learns which commits it may have missed.
    pub(crate) commits: u64,
}

impl Depth {
    fn total(&self) -> usize {
        (self.counted + self.in_flight).max(0) as usize
    }
}

/// A reservation made for a row in a caller's transaction: committed by the transaction's
/// commit effect, released if the effects are dropped.
struct Reservation<E: CacheableEntity> {
    outbox: Arc<Outbox<E>>,
    key: Option<String>,
}

impl<E: CacheableEntity> Reservation<E> {
    fn commit(mut self) {
        if let Some(key) = self.key.take() {
            self.outbox.committed(key);
        }
    }
}

impl<E: CacheableEntity> Drop for Reservation<E> {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.outbox.release();
        }
    }
}

/// One entity's outbox: its writer, its flusher, and the bound on pending rows.
pub(crate) struct Outbox<E: CacheableEntity> {
    db: DatabaseConnection,
    entity: &'static str,
    codec: ModelCodec<E::Model>,
    config: WriteBehindConfig,
    counters: Arc<Counters>,
    /// The entity's store: applied keys' entries are marked clean (unpinned) there.
    store: Arc<Store<KeyOf<E>, E::Model>>,
    writer: writer::GroupWriter,
    /// Pending rows, as counted, and rows reserved but not committed yet.
    depth: Mutex<Depth>,
    /// Distinct keys written since the last flush began: `batch` of them fill a batch.
    window_keys: Mutex<HashSet<String>>,
    /// Wakes the flusher: new rows, a full batch, a committed transaction, shutdown.
    wake: Notify,
    /// Wakes writers waiting for room below `max_pending`.
    room: Notify,
    /// One flush at a time in this instance.
    flushing: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
    /// What the tables' `pk` and `payload` columns hold, read by [`check`](Self::check):
    /// a row that would not fit is refused before it is written, so no `sql_mode` can
    /// truncate an acknowledged write.
    capacity: OnceLock<RowCapacity>,
}

impl<E: CacheableEntity> fmt::Debug for Outbox<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("entity", &self.entity)
            .field("depth", &self.depth())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<E: CacheableEntity> Outbox<E> {
    /// Creates the outbox and starts its writer and flusher; the flusher first resumes
    /// whatever rows the table already holds for this entity.
    pub(crate) fn start(
        db: DatabaseConnection,
        entity: &'static str,
        codec: ModelCodec<E::Model>,
        config: WriteBehindConfig,
        counters: Arc<Counters>,
        store: Arc<Store<KeyOf<E>, E::Model>>,
    ) -> Result<Arc<Self>> {
        let outbox = Arc::new(Self {
            writer: writer::GroupWriter::start(db.clone(), counters.clone()),
            db,
            entity,
            codec,
            config,
            counters,
            store,
            depth: Mutex::new(Depth::default()),
            window_keys: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            room: Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
            task: Mutex::new(None),
            capacity: OnceLock::new(),
        });
        let handle = tokio::spawn(outbox.clone().run());
        *outbox.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(outbox)
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

    fn depth_lock(&self) -> MutexGuard<'_, Depth> {
        self.depth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves room for one row below `max_pending`, waiting while there is none
    /// (backpressure). The reservation is in flight until the row commits
    /// ([`committed`](Self::committed)) or fails ([`release`](Self::release)).
    async fn reserve(&self) -> Result<()> {
        let bound = self.config.max_pending as i64;
        let try_reserve = || {
            let mut depth = self.depth_lock();
            let room = depth.counted + depth.in_flight < bound;
            if room {
                depth.in_flight += 1;
            }
            room
        };
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return Err(Error::Shutdown);
            }
            if try_reserve() {
                return Ok(());
            }
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if try_reserve() {
                return Ok(());
            }
            self.wake.notify_one();
            room.await;
        }
    }

    /// A reserved row did not commit.
    fn release(&self) {
        self.depth_lock().in_flight -= 1;
        self.room.notify_waiters();
    }

    /// A reserved row has committed: it is pending, and the flusher may have a batch.
    fn committed(&self, key: String) {
        let depth = {
            let mut depth = self.depth_lock();
            depth.in_flight -= 1;
            depth.counted += 1;
            depth.commits += 1;
            depth.total()
        };
        let keys = {
            let mut keys = self
                .window_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            keys.insert(key);
            keys.len()
        };
        if keys == 1 || self.window_full(keys, depth) {
            self.wake.notify_one();
        }
    }

    /// A batch of distinct keys is waiting, or the bound is reached: flush before `max_delay`.
    fn window_full(&self, keys: usize, depth: usize) -> bool {
        keys >= self.config.batch || depth >= self.config.max_pending
    }

    fn window_keys(&self) -> usize {
        self.window_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Commits the write's outbox row (with whatever other writers are committing); returning
    /// `Ok` acknowledges the write.
    pub(crate) async fn push(&self, key: &KeyOf<E>, write: &PendingWrite<E::Model>) -> Result<()> {
        let key_text = key_text(key.clone().into_value_tuple());
        let row = self.row(&key_text, write)?;
        self.reserve().await?;
        if let Err(err) = self.writer.write(row).await {
            self.release();
            return Err(err.into());
        }
        self.committed(key_text);
        Ok(())
    }

    /// Inserts the write's outbox row in the caller's transaction: it commits or rolls back
    /// with the caller's other writes. The flusher is woken after the commit.
    pub(crate) async fn push_in(
        self: &Arc<Self>,
        txn: &CachedTransaction,
        key: &KeyOf<E>,
        write: &PendingWrite<E::Model>,
    ) -> Result<()> {
        let key_text = key_text(key.clone().into_value_tuple());
        let row = self.row(&key_text, write)?;
        self.reserve().await?;
        // Released if the transaction's effects are dropped (rollback) instead of run.
        let reservation = Reservation {
            outbox: self.clone(),
            key: Some(key_text),
        };
        if let Err(err) = outbox_row::Entity::insert(row)
            .exec_without_returning(txn.raw())
            .await
        {
            drop(reservation);
            return Err(err.into());
        }
        txn.defer(Box::new(move || reservation.commit()));
        Ok(())
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

    /// Rows pending for this entity, as far as this instance knows, reservations included.
    pub(crate) fn depth(&self) -> usize {
        self.depth_lock().total()
    }

    /// The flusher: resumes what the table holds, then sleeps until there is work (or polls
    /// for other instances' rows), lets writes gather for `max_delay` (or until a batch is
    /// full or the bound is reached), and flushes.
    async fn run(self: Arc<Self>) {
        // After a failure, rows wait for their own backoff, not for another gather window.
        let mut retrying = false;
        loop {
            // Stopped, or the layer was dropped without `shutdown` (this task holds the last
            // reference): what is left stays in the outbox for the next start.
            if self.stopping.load(Ordering::Acquire) || Arc::strong_count(&self) == 1 {
                return;
            }
            if let Err(err) = self.refresh_depth().await {
                tracing::warn!(entity = self.entity, %err, "counting outbox rows failed");
            }
            if self.depth() == 0 {
                retrying = false;
                let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                continue;
            }
            if !retrying {
                let deadline = tokio::time::Instant::now() + self.config.max_delay;
                while !self.window_full(self.window_keys(), self.depth())
                    && !self.stopping.load(Ordering::Acquire)
                {
                    if tokio::time::timeout_at(deadline, self.wake.notified())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
            match self.flush_all().await {
                Ok(report) if report.waiting_for_retry => {
                    // Woken by a new write: gather a window for it (the backed-off rows go
                    // with it if their time has come); else retry as soon as they are due.
                    let wait = report.retry_in.min(IDLE_POLL);
                    retrying = tokio::time::timeout(wait, self.wake.notified())
                        .await
                        .is_err();
                }
                Ok(_) => retrying = false,
                Err(err) => {
                    retrying = true;
                    tracing::warn!(entity = self.entity, %err, "write-behind flush failed; retrying");
                    let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                }
            }
        }
    }

    /// Applies every row that can be applied now; returns the number of keys applied.
    pub(crate) async fn flush(&self) -> Result<usize> {
        self.flush_all().await.map(|report| report.applied)
    }

    /// Stops the flusher after draining the outbox until `deadline`. Rows left (failing, or
    /// past the deadline) stay in the table for the next start.
    pub(crate) async fn shutdown(&self, deadline: tokio::time::Instant) -> Result<()> {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_one();
        self.room.notify_waiters();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        loop {
            let report = self.flush_all().await?;
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
                    pending: self.depth(),
                });
            }
            tokio::time::sleep(pause).await;
        }
    }
}
