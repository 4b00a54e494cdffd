//! Write-behind: a write sets the cache at once and is queued; a background flusher applies
//! queued writes to the table in batches, coalesced per key (last write wins).
//!
//! The queue sits behind one small seam, [`WriteQueue`]. This file's [`MemoryQueue`] keeps
//! pending writes in memory: a crash loses what it had not flushed. The durable outbox table
//! (a later step) replaces it behind the same seam.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue, DatabaseConnection, EntityTrait, IntoActiveModel, Iterable,
    PrimaryKeyToColumn, QueryFilter, TransactionTrait, TryIntoModel,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::WriteBehindConfig;
use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf, key_of_active_model, keys_condition};
use crate::repository::EntityCache;
use crate::stats::{Counters, add, bump};

/// A write waiting for the flusher.
#[derive(Debug)]
pub(crate) enum PendingWrite<M> {
    /// Insert or update the row to this model.
    Upsert(Arc<M>),
    /// Delete the row.
    Delete,
}

impl<M> Clone for PendingWrite<M> {
    fn clone(&self) -> Self {
        match self {
            PendingWrite::Upsert(m) => PendingWrite::Upsert(m.clone()),
            PendingWrite::Delete => PendingWrite::Delete,
        }
    }
}

impl<M> PendingWrite<M> {
    /// What a reader sees for the key while the write is pending.
    pub(crate) fn into_value(self) -> Option<Arc<M>> {
        match self {
            PendingWrite::Upsert(m) => Some(m),
            PendingWrite::Delete => None,
        }
    }
}

/// The seam between write-behind writers and whatever holds their writes until the flusher
/// applies them.
#[async_trait]
pub(crate) trait WriteQueue<E: CacheableEntity>: Send + Sync + fmt::Debug {
    /// Records a write, waiting while the queue is at its bound. Returning `Ok` acknowledges it.
    async fn push(&self, key: KeyOf<E>, write: PendingWrite<E::Model>) -> Result<()>;
    /// The newest write pending for `key`, if any.
    async fn pending(&self, key: &KeyOf<E>) -> Result<Option<PendingWrite<E::Model>>>;
    /// Applies everything pending now; returns the number of keys applied.
    async fn flush(&self) -> Result<usize>;
    /// Stops the background flusher after a last flush.
    async fn shutdown(&self) -> Result<()>;
    /// Keys with a pending write.
    fn depth(&self) -> usize;
}

struct QueueState<E: CacheableEntity> {
    /// Newest write per key, with the sequence number it was pushed with.
    pending: HashMap<KeyOf<E>, (u64, PendingWrite<E::Model>)>,
    /// Keys waiting for a flush, oldest first. A key being flushed is in `pending` only.
    order: VecDeque<KeyOf<E>>,
    seq: u64,
}

/// Pending writes held in memory, with a background flusher task.
pub(crate) struct MemoryQueue<E: CacheableEntity> {
    db: DatabaseConnection,
    config: WriteBehindConfig,
    counters: Arc<Counters>,
    state: Mutex<QueueState<E>>,
    /// Wakes the flusher: first pending write, a full batch, shutdown.
    wake: Notify,
    /// Wakes writers waiting for room.
    room: Notify,
    /// One flush at a time, so per-key order holds across batches.
    flushing: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl<E: CacheableEntity> fmt::Debug for MemoryQueue<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("depth", &self.depth())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Largest number of bind parameters one statement uses.
const MAX_PARAMS: usize = 30_000;
/// Longest pause between failed flush attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First pause after a failed flush attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

type Batch<E> = Vec<(KeyOf<E>, u64, PendingWrite<<E as EntityTrait>::Model>)>;

impl<E: CacheableEntity> MemoryQueue<E> {
    /// Creates the queue and starts its flusher on the current tokio runtime.
    pub(crate) fn start(
        db: DatabaseConnection,
        config: WriteBehindConfig,
        counters: Arc<Counters>,
    ) -> Arc<Self> {
        let queue = Arc::new(Self {
            db,
            config,
            counters,
            state: Mutex::new(QueueState {
                pending: HashMap::new(),
                order: VecDeque::new(),
                seq: 0,
            }),
            wake: Notify::new(),
            room: Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        let handle = tokio::spawn(queue.clone().run());
        *locked(&queue.task) = Some(handle);
        queue
    }

    /// The flusher: sleeps until there is work, lets writes gather for `max_delay` (or until a
    /// batch is full, or the queue is at its bound), flushes, and backs off exponentially while
    /// flushes fail.
    async fn run(self: Arc<Self>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            while self.depth() == 0 && !self.stopping.load(Ordering::Acquire) {
                self.wake.notified().await;
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            // Let writes gather until max_delay passes or a batch is full. A wake-up only
            // prompts a re-check, so a stale notification cannot cut the window short.
            let deadline = tokio::time::Instant::now() + self.config.max_delay;
            let enough = self.config.batch.min(self.config.max_pending);
            while self.depth() < enough && !self.stopping.load(Ordering::Acquire) {
                if tokio::time::timeout_at(deadline, self.wake.notified())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            match self.flush_all().await {
                Ok(_) => backoff = FIRST_BACKOFF,
                Err(err) => {
                    tracing::warn!(entity = E::default().table_name(), %err, ?backoff, "write-behind flush failed; retrying");
                    let _ = tokio::time::timeout(backoff, self.wake.notified()).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn take_batch(&self) -> Batch<E> {
        let mut state = locked(&self.state);
        let n = self.config.batch.min(state.order.len());
        let keys: Vec<_> = state.order.drain(..n).collect();
        keys.into_iter()
            .filter_map(|key| {
                let (seq, write) = state.pending.get(&key)?.clone();
                Some((key, seq, write))
            })
            .collect()
    }

    /// Applies one batch and removes the applied writes, in one database transaction.
    /// Returns the number of statements it ran.
    async fn apply(&self, batch: &Batch<E>) -> Result<u64> {
        let columns: Vec<E::Column> = E::Column::iter().collect();
        let key_columns: Vec<E::Column> = E::PrimaryKey::iter().map(|k| k.into_column()).collect();
        let value_columns: Vec<E::Column> = columns
            .iter()
            .filter(|c| E::PrimaryKey::from_column(**c).is_none())
            .copied()
            .collect();
        let rows_per_statement = (MAX_PARAMS / columns.len().max(1)).max(1);
        let mut on_conflict = OnConflict::columns(key_columns.iter().copied());
        if value_columns.is_empty() {
            on_conflict.do_nothing();
        } else {
            on_conflict.update_columns(value_columns.iter().copied());
        }

        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for (key, _, write) in batch {
            match write {
                PendingWrite::Upsert(model) => {
                    upserts.push(E::Model::clone(model).into_active_model().reset_all());
                }
                PendingWrite::Delete => deletes.push(key),
            }
        }

        let txn = self.db.begin().await?;
        let mut statements = 0;
        for chunk in upserts.chunks(rows_per_statement) {
            E::insert_many(chunk.iter().cloned())
                .on_conflict(on_conflict.clone())
                .exec_without_returning(&txn)
                .await?;
            statements += 1;
        }
        for chunk in deletes.chunks(rows_per_statement) {
            E::delete_many()
                .filter(keys_condition::<E>(chunk.iter().copied()))
                .exec(&txn)
                .await?;
            statements += 1;
        }
        txn.commit().await?;
        Ok(statements)
    }

    /// Flushes until nothing is pending, batch by batch. Stops at the first failed batch,
    /// which stays pending (ahead of newer keys) for the next attempt.
    async fn flush_all(&self) -> Result<usize> {
        let _one_at_a_time = self.flushing.lock().await;
        let mut applied = 0;
        loop {
            let batch = self.take_batch();
            if batch.is_empty() {
                return Ok(applied);
            }
            match self.apply(&batch).await {
                Ok(statements) => {
                    add(&self.counters.db_writes, statements);
                    bump(&self.counters.flushes);
                    add(&self.counters.flushed_rows, batch.len() as u64);
                    applied += batch.len();
                    let mut state = locked(&self.state);
                    for (key, seq, _) in batch {
                        match state.pending.get(&key) {
                            Some((newest, _)) if *newest == seq => {
                                state.pending.remove(&key);
                            }
                            // Written again while flushing: still pending, at the back.
                            Some(_) => state.order.push_back(key),
                            None => {}
                        }
                    }
                    drop(state);
                    self.room.notify_waiters();
                }
                Err(err) => {
                    bump(&self.counters.flush_errors);
                    let mut state = locked(&self.state);
                    for (key, _, _) in batch.into_iter().rev() {
                        state.order.push_front(key);
                    }
                    return Err(err);
                }
            }
        }
    }
}

#[async_trait]
impl<E: CacheableEntity> WriteQueue<E> for MemoryQueue<E> {
    async fn push(&self, key: KeyOf<E>, write: PendingWrite<E::Model>) -> Result<()> {
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return Err(Error::Shutdown);
            }
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = locked(&self.state);
                state.seq += 1;
                let seq = state.seq;
                if let Some(slot) = state.pending.get_mut(&key) {
                    *slot = (seq, write);
                    bump(&self.counters.coalesced_writes);
                    return Ok(());
                }
                if state.pending.len() < self.config.max_pending {
                    state.pending.insert(key.clone(), (seq, write));
                    state.order.push_back(key);
                    let depth = state.pending.len();
                    drop(state);
                    if depth == 1 || depth >= self.config.batch.min(self.config.max_pending) {
                        self.wake.notify_one();
                    }
                    return Ok(());
                }
            }
            // Full: wait for the flusher to make room (backpressure).
            self.wake.notify_one();
            room.await;
        }
    }

    async fn pending(&self, key: &KeyOf<E>) -> Result<Option<PendingWrite<E::Model>>> {
        Ok(locked(&self.state)
            .pending
            .get(key)
            .map(|(_, write)| write.clone()))
    }

    async fn flush(&self) -> Result<usize> {
        self.flush_all().await
    }

    async fn shutdown(&self) -> Result<()> {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_one();
        self.room.notify_waiters();
        let task = locked(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.flush_all().await.map(|_| ())
    }

    fn depth(&self) -> usize {
        locked(&self.state).pending.len()
    }
}

/// `changes` applied over `current`: columns the ActiveModel `Set` win, the rest keep their
/// current value (what an SQL `UPDATE` of the set columns would leave).
fn merge<E: CacheableEntity>(current: &E::Model, changes: &E::ActiveModel) -> Result<E::Model> {
    let mut merged: E::ActiveModel = current.clone().into_active_model();
    for column in E::Column::iter() {
        if let ActiveValue::Set(value) = changes.get(column) {
            merged.set(column, value);
        }
    }
    Ok(merged.try_into_model()?)
}

impl<E: CacheableEntity> EntityCache<E> {
    fn queue(&self) -> &Arc<dyn WriteQueue<E>> {
        self.queue
            .as_ref()
            .expect("write-behind entities are built with a queue")
    }

    async fn write_behind(&self, key: KeyOf<E>, model: Arc<E::Model>) -> Result<Arc<E::Model>> {
        self.queue()
            .push(key.clone(), PendingWrite::Upsert(model.clone()))
            .await?;
        self.store.set(key, model.clone());
        Ok(model)
    }

    /// Inserts with a client-set key by queueing an upsert; a database-assigned key is
    /// written through instead (DESIGN section 5).
    pub(crate) async fn insert_behind(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let Some(key) = key_of_active_model::<E>(&am) else {
            return self.insert_through(am).await;
        };
        let model = Arc::new(am.try_into_model()?);
        let _lock = self.locks.lock(&key).await;
        self.write_behind(key, model).await
    }

    /// Applies the set columns over the current row (pending writes included) and queues it.
    pub(crate) async fn update_behind(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let key =
            key_of_active_model::<E>(&am).ok_or(Error::MissingPrimaryKey { entity: self.name })?;
        let _lock = self.locks.lock(&key).await;
        let current = self
            .read(&key)
            .await?
            .ok_or(Error::NotFound { entity: self.name })?;
        let model = Arc::new(merge::<E>(&current, &am)?);
        self.write_behind(key, model).await
    }

    /// Queues a delete; readers see "no such row" at once.
    pub(crate) async fn delete_behind(&self, key: &KeyOf<E>) -> Result<bool> {
        let _lock = self.locks.lock(key).await;
        let existed = self.read(key).await?.is_some();
        self.queue().push(key.clone(), PendingWrite::Delete).await?;
        self.store.invalidate(key);
        Ok(existed)
    }
}
