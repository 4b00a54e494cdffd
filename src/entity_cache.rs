//! One entity's cache state ([`EntityCache`]), shared by its repositories, the connection's
//! invalidation, the hooks and the background flusher; and the miss path every loading
//! policy shares (single flight, fill through the fence, stale-if-error).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::cached::ModelCodec;
use crate::clock::Clock;
use crate::config::{CacheConfig, Policy};
use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf};
use crate::key_locks::KeyLocks;
use crate::outbox::Outbox;
use crate::stats::{Counters, bump};
use crate::store::{Lookup, Store};

/// Everything one entity's cache holds; shared by its repositories and background tasks.
pub(crate) struct EntityCache<E: CacheableEntity> {
    pub(crate) name: &'static str,
    pub(crate) db: DatabaseConnection,
    pub(crate) config: CacheConfig,
    pub(crate) store: Arc<Store<KeyOf<E>, E::Model>>,
    pub(crate) locks: KeyLocks,
    pub(crate) queue: Option<Arc<Outbox<E>>>,
    pub(crate) counters: Arc<Counters>,
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
    /// Builds the entity's store; a write-behind entity also starts its outbox flusher, and
    /// needs `codec` ([`Error::NotSerializable`] without one).
    pub(crate) fn new(
        db: DatabaseConnection,
        config: CacheConfig,
        clock: Clock,
        codec: Option<ModelCodec<E::Model>>,
    ) -> Result<Self> {
        let name = E::default().table_name();
        config.validate().map_err(|source| Error::InvalidConfig {
            entity: name,
            source,
        })?;
        let counters = Arc::new(Counters::default());
        let store = Arc::new(Store::new(&config, clock, counters.clone()));
        let queue = if config.policy == Policy::WriteBehind {
            Some(Outbox::<E>::start(
                db.clone(),
                name,
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
        })
    }

    /// Read-through read: the cache, else one coalesced load by key.
    pub(crate) async fn read(&self, key: &KeyOf<E>) -> Result<Option<Arc<E::Model>>> {
        if let Some(value) = self.store.hit(key) {
            return Ok(value);
        }
        self.load_with(key, || self.load_by_key(key)).await
    }

    /// The miss path shared by every policy: wait for a load in flight, or run `load` and fill
    /// its result unless the key was invalidated meanwhile. A failed load caches nothing.
    pub(crate) async fn load_with<F, Fut>(
        &self,
        key: &KeyOf<E>,
        load: F,
    ) -> Result<Option<Arc<E::Model>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Arc<E::Model>>>>,
    {
        bump(&self.counters.misses);
        let (guard, stale) = match self.store.lookup_or_guard(key).await {
            Lookup::Fresh(value) => return Ok(value),
            Lookup::Load { guard, stale } => (guard, stale),
        };
        let ticket = self.store.ticket();
        match load().await {
            Ok(value) => {
                bump(&self.counters.loads);
                self.store.fill_guarded(guard, key, ticket, value.clone());
                Ok(value)
            }
            Err(err) => {
                bump(&self.counters.load_errors);
                match stale {
                    Some(stale) if self.store.may_serve_stale(&stale) => {
                        bump(&self.counters.stale_served);
                        let value = stale.value.clone();
                        self.store.restore_stale(guard, key, ticket, stale);
                        Ok(value)
                    }
                    _ => Err(err),
                }
            }
        }
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
