//! One entity's cache state ([`EntityCache`]), shared by its repositories, the connection's
//! invalidation, the hooks and the background flusher; and the miss path every loading
//! policy shares (single flight, fill through the fence, stale-if-error).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use std::pin::Pin;

use sea_orm::ActiveModelTrait;
use sea_orm::sea_query::IntoValueTuple;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IdenStatic, Iterable, ModelTrait,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::cached::ModelCodec;
use crate::clock::Clock;
use crate::coherence::Journal;
use crate::config::{CacheConfig, Policy};
use crate::error::{Error, InvalidSetting, Result};
use crate::freshness::{Freshness, RowRead, SampleSource, Sampler};
use crate::invalidation::LogEntry;
use crate::key::{CacheableEntity, KeyOf, key_of_active_model, key_of_model, key_text};
use crate::key_locks::KeyLocks;
use crate::outbox::Outbox;
use crate::sampler_counters::SamplerTotals;
use crate::spans::{self, LoadOutcome};
use crate::stats::{CacheStats, Counters, bump};
use crate::store::{Lookup, Miss, Store, Ticket};
use crate::tasks::Tasks;
use crate::write_on::WriteOn;

/// One write's future, on a connection borrowed for `'c`.
pub(crate) type BoxedWrite<'c, T> =
    Pin<Box<dyn Future<Output = std::result::Result<T, DbErr>> + Send + 'c>>;

/// Everything one entity's cache holds; shared by its repositories and background tasks.
pub(crate) struct EntityCache<E: CacheableEntity> {
    pub(crate) name: &'static str,
    pub(crate) db: DatabaseConnection,
    pub(crate) config: CacheConfig,
    pub(crate) store: Arc<Store<KeyOf<E>, E::Model>>,
    pub(crate) locks: KeyLocks,
    pub(crate) queue: Option<Arc<Outbox<E>>>,
    pub(crate) counters: Arc<Counters>,
    /// The invalidation log this instance writes to, with coherence on.
    pub(crate) journal: Option<Arc<Journal>>,
    /// The staleness sampler, unless its sample rate is 0.
    pub(crate) sampler: Option<Sampler<KeyOf<E>, E::Model>>,
    /// The column samples compare, if one is declared (else the whole row).
    version_column: Option<E::Column>,
    clock: Clock,
}

impl<E: CacheableEntity> fmt::Debug for EntityCache<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntityCache")
            .field("entity", &self.name)
            .field("config", &self.config)
            .field("store", &self.store)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl<E: CacheableEntity> EntityCache<E> {
    /// Builds the entity's store (and a write-behind entity's outbox, which needs `codec`:
    /// [`Error::NotSerializable`] without one). Nothing runs in the background until
    /// [`start`](Self::start).
    pub(crate) fn new(
        db: DatabaseConnection,
        config: CacheConfig,
        clock: Clock,
        codec: Option<ModelCodec<E::Model>>,
        journal: Option<Arc<Journal>>,
    ) -> Result<Self> {
        let name = E::default().table_name();
        config.validate().map_err(|source| Error::InvalidConfig {
            entity: name,
            source,
        })?;
        let version_column = match &config.freshness.version_column {
            None => None,
            Some(wanted) => Some(
                E::Column::iter()
                    .find(|column| column.as_str() == wanted.as_str())
                    .ok_or_else(|| Error::InvalidConfig {
                        entity: name_of::<E>(),
                        source: InvalidSetting {
                            setting: "freshness.version_column",
                            reason: format!("`{wanted}` is not a column of `{}`", name_of::<E>()),
                        },
                    })?,
            ),
        };
        let counters = Arc::new(Counters::default());
        let (sampler, queue) = match Sampler::new(&config.freshness, config.ttl) {
            Some((sampler, queue)) => (Some(sampler), Some(queue)),
            None => (None, None),
        };
        let store = Arc::new(Store::new(&config, clock.clone(), counters.clone(), queue));
        let queue = if config.policy == Policy::WriteBehind {
            Some(Outbox::<E>::new(
                db.clone(),
                name,
                journal.clone(),
                codec.ok_or(Error::NotSerializable { entity: name })?,
                config.write_behind.clone(),
                counters.clone(),
                store.clone(),
            )?)
        } else {
            None
        };
        Ok(Self {
            name,
            store,
            locks: KeyLocks::new(counters.clone()),
            db,
            config,
            queue,
            counters,
            journal,
            sampler,
            version_column,
            clock,
        })
    }

    /// The sampler's report now; `None` when the sampler is off.
    pub(crate) fn freshness(&self) -> Option<Freshness> {
        let sampler = self.sampler.as_ref()?;
        Some(sampler.report(self.clock.peek_ms(), self.store.effective_ttl_ms()))
    }

    /// The sampler's running totals; `None` when the sampler is off.
    pub(crate) fn sampler_totals(&self) -> Option<SamplerTotals> {
        self.sampler.as_ref().map(Sampler::totals)
    }

    /// Starts the entity's background work, owned by `tasks`: a write-behind entity's
    /// outbox writer and flusher, and the staleness sampler.
    pub(crate) fn start(self: &Arc<Self>, tasks: &Tasks) {
        if let Some(queue) = &self.queue {
            queue.start(tasks);
        }
        if let Some(sampler) = &self.sampler {
            sampler.start(self, self.clock.clone(), tasks);
        }
    }

    /// A snapshot of the entity's counters, entries and outbox depth.
    pub(crate) fn stats(&self) -> CacheStats {
        let pending = self.queue.as_ref().map_or(0, |q| q.depth());
        self.counters.snapshot(self.store.len(), pending)
    }

    /// Read-through read: the cache, else one coalesced load by key.
    pub(crate) async fn read(&self, key: &KeyOf<E>) -> Result<Option<Arc<E::Model>>> {
        if let Some(value) = self.store.hit(key) {
            return Ok(value);
        }
        self.load_with(key, || self.load_by_key(key)).await
    }

    /// The miss path shared by every policy: wait for a load in flight, or run `load` and fill
    /// its result unless the key was invalidated meanwhile. A failed load caches nothing, and
    /// its error is the answer of every miss that waited for it (one attempt, however many
    /// waited); the next miss loads again. Traced: a `sea_orm_cache.load` span with the
    /// outcome ([`spans`]).
    pub(crate) async fn load_with<F, Fut>(
        &self,
        key: &KeyOf<E>,
        load: F,
    ) -> Result<Option<Arc<E::Model>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Arc<E::Model>>>>,
    {
        // Registered before it is counted: a miss counted is one a failing load answers.
        let miss = self.store.begin_miss(key);
        bump(&self.counters.misses);
        spans::load(self.name, self.load_after_miss(key, &miss, load)).await
    }

    async fn load_after_miss<F, Fut>(
        &self,
        key: &KeyOf<E>,
        miss: &Miss<'_, KeyOf<E>>,
        load: F,
    ) -> (Result<Option<Arc<E::Model>>>, LoadOutcome)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Arc<E::Model>>>>,
    {
        let (guard, stale) = match self.store.lookup_or_guard(key, miss).await {
            Lookup::Fresh(value) => return (Ok(value), LoadOutcome::Coalesced),
            Lookup::Load { guard, stale } => (guard, stale),
            Lookup::Failed { error, stale } => {
                return match stale {
                    Some(stale) if self.store.may_serve_stale(&stale) => {
                        bump(&self.counters.stale_served);
                        (Ok(stale.value), LoadOutcome::Stale)
                    }
                    _ => (Err(error), LoadOutcome::Error),
                };
            }
        };
        let ticket = self.store.ticket();
        match load().await {
            Ok(value) => {
                bump(&self.counters.loads);
                self.store.fill_guarded(guard, key, ticket, value.clone());
                let outcome = match value {
                    Some(_) => LoadOutcome::Loaded,
                    None => LoadOutcome::Negative,
                };
                (Ok(value), outcome)
            }
            Err(err) => {
                bump(&self.counters.load_errors);
                // Before the guard is let go: the misses waiting for it share the error.
                self.store.record_failure(key, &err);
                match stale {
                    Some(stale) if self.store.may_serve_stale(&stale) => {
                        bump(&self.counters.stale_served);
                        let value = stale.value.clone();
                        self.store.restore_stale(guard, key, ticket, stale);
                        (Ok(value), LoadOutcome::Stale)
                    }
                    _ => (Err(err), LoadOutcome::Error),
                }
            }
        }
    }

    /// Runs one write outside any caller's transaction. With coherence off, as given, on the
    /// pool (autocommit). On, so that no commit of the write can happen without its
    /// invalidation in the log (G8): on Postgres, when the written key's text is `known`
    /// before the write, on the pool with the log row carried by the write statement itself
    /// (one round trip, [`WriteOn::Logged`]); otherwise in a transaction of its own that also
    /// adds the written key (as `logged` names it from the write's result). For an entity
    /// whose changes triggers log (G11), as given on the pool too: the trigger adds the row.
    pub(crate) async fn logged<T, F>(
        &self,
        write: F,
        known: Option<String>,
        logged: impl Fn(&T) -> String,
    ) -> std::result::Result<T, DbErr>
    where
        F: for<'c> Fn(WriteOn<'c>) -> BoxedWrite<'c, T>,
    {
        // Triggers log a captured entity's writes: no transaction of our own is needed.
        let Some(journal) = self.journal.as_ref().filter(|j| !j.captures(self.name)) else {
            return write(WriteOn::Pool(&self.db)).await;
        };
        let backend = self.db.get_database_backend();
        if backend == DbBackend::Postgres
            && let Some(key) = known
        {
            let entry = LogEntry {
                entity: self.name,
                key: Some(key),
            };
            return write(WriteOn::Logged {
                db: &self.db,
                journal,
                entry,
            })
            .await;
        }
        let mut options = TransactionOptions::default();
        if backend == DbBackend::Sqlite {
            options.sqlite_transaction_mode = Some(SqliteTransactionMode::Immediate);
        }
        let txn = self.db.begin_with_options(options).await?;
        let value = write(WriteOn::Transaction(&txn)).await?;
        let entry = LogEntry {
            entity: self.name,
            key: Some(logged(&value)),
        };
        journal.write(&txn, [&entry]).await?;
        txn.commit().await?;
        Ok(value)
    }

    /// Inserts (`insert`) or updates by `am` outside a transaction, through
    /// [`logged`](Self::logged).
    pub(crate) async fn save_row(
        &self,
        am: &E::ActiveModel,
        insert: bool,
    ) -> std::result::Result<E::Model, DbErr> {
        let known = key_of_active_model::<E>(am).map(|key| key_text(key.into_value_tuple()));
        self.logged(
            |conn| {
                let am = am.clone();
                Box::pin(async move {
                    if insert {
                        am.insert(&conn).await
                    } else {
                        am.update(&conn).await
                    }
                })
            },
            known,
            model_key_text::<E>,
        )
        .await
    }

    /// Deletes `key` outside a transaction, through [`logged`](Self::logged); returns whether
    /// a row was deleted.
    pub(crate) async fn delete_row(&self, key: &KeyOf<E>) -> std::result::Result<bool, DbErr> {
        let text = key_text(key.clone().into_value_tuple());
        self.logged(
            |conn| {
                let key = key.clone();
                Box::pin(async move {
                    let result = E::delete_by_id(key).exec(&conn).await?;
                    Ok(result.rows_affected > 0)
                })
            },
            Some(text.clone()),
            |_| text.clone(),
        )
        .await
    }

    /// Loads one row by key: a pending write-behind write wins over the table (G6).
    pub(crate) async fn load_by_key(&self, key: &KeyOf<E>) -> Result<Option<Arc<E::Model>>> {
        self.read_on(&self.db, key).await
    }

    /// The row of `key` as `db` sees it (a transaction: with its own writes): the newest
    /// pending write-behind write if there is one, else the table's row. Caches nothing.
    pub(crate) async fn read_on<C: ConnectionTrait>(
        &self,
        db: &C,
        key: &KeyOf<E>,
    ) -> Result<Option<Arc<E::Model>>> {
        if let Some(queue) = &self.queue
            && let Some(pending) = queue.pending(db, key).await?
        {
            return Ok(pending.into_value());
        }
        let row = E::find_by_id(key.clone()).one(db).await?;
        Ok(row.map(Arc::new))
    }
}

impl<E: CacheableEntity> SampleSource<KeyOf<E>, E::Model> for EntityCache<E> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn read<'a>(&'a self, key: &'a KeyOf<E>) -> RowRead<'a, E::Model> {
        Box::pin(self.load_by_key(key))
    }

    fn same(&self, cached: &E::Model, row: &E::Model) -> bool {
        match self.version_column {
            Some(column) => cached.get(column) == row.get(column),
            None => E::Column::iter().all(|column| cached.get(column) == row.get(column)),
        }
    }

    fn changed_since(&self, key: &KeyOf<E>, ticket: Ticket) -> bool {
        self.store.changed_since(key, ticket)
    }

    fn effective_ttl_ms(&self) -> u64 {
        self.store.effective_ttl_ms()
    }

    fn set_effective_ttl_ms(&self, ttl_ms: u64) {
        self.store.set_effective_ttl_ms(ttl_ms);
    }
}

/// An entity's table name.
fn name_of<E: CacheableEntity>() -> &'static str {
    E::default().table_name()
}

/// The canonical key text of a written row.
fn model_key_text<E: CacheableEntity>(model: &E::Model) -> String {
    key_text(key_of_model::<E>(model).into_value_tuple())
}
