//! Write-through: write the database, then set the cache to the row the database returned.
//! Writes to one key hold its write lock across both steps, so concurrent writers end with
//! the cache holding the row of the last write the database applied.

use std::sync::Arc;

use async_trait::async_trait;

use super::in_transaction::{self, AfterCommit};
use super::paths::PolicyPaths;
use crate::connection::CachedTransaction;
use crate::entity_cache::EntityCache;
use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf, key_of_active_model, key_of_model};
use crate::retry::retrying;
use crate::stats::bump;

impl<E: CacheableEntity> EntityCache<E> {
    /// Inserts and caches the inserted row.
    pub(crate) async fn insert_through(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        // A database-assigned key is unknown until the insert returns; nobody else can be
        // writing it yet. A client-set key takes the lock like any other write.
        let _lock = match key_of_active_model::<E>(&am) {
            Some(key) => Some(self.locks.lock(&key).await),
            None => None,
        };
        let ticket = self.store.ticket();
        let model = Arc::new(retrying(&self.counters, || self.save_row(&am, true)).await?);
        bump(&self.counters.db_writes);
        self.store
            .put(key_of_model::<E>(&model), ticket, model.clone(), false);
        Ok(model)
    }

    /// Updates and caches the updated row.
    pub(crate) async fn update_through(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let key =
            key_of_active_model::<E>(&am).ok_or(Error::MissingPrimaryKey { entity: self.name })?;
        let _lock = self.locks.lock(&key).await;
        let ticket = self.store.ticket();
        let model = Arc::new(retrying(&self.counters, || self.save_row(&am, false)).await?);
        bump(&self.counters.db_writes);
        // Through the fence: a write of the key from another path (a `CachedConnection`
        // statement, a hook) that committed after this one invalidated it, and wins.
        self.store.put(key, ticket, model.clone(), false);
        Ok(model)
    }

    /// Deletes and invalidates the key.
    pub(crate) async fn delete_through(&self, key: &KeyOf<E>) -> Result<bool> {
        let _lock = self.locks.lock(key).await;
        let deleted = retrying(&self.counters, || self.delete_row(key)).await?;
        bump(&self.counters.db_writes);
        self.store.invalidate(key);
        Ok(deleted)
    }
}

/// Write-through: loads on a miss; a write sets the key to the row the database returned.
#[derive(Debug)]
pub(crate) struct WriteThrough;

#[async_trait]
impl<E: CacheableEntity> PolicyPaths<E> for WriteThrough {
    async fn insert(&self, cache: &EntityCache<E>, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        cache.insert_through(am).await
    }

    async fn update(&self, cache: &EntityCache<E>, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        cache.update_through(am).await
    }

    async fn delete(&self, cache: &EntityCache<E>, key: &KeyOf<E>) -> Result<bool> {
        cache.delete_through(key).await
    }

    async fn save_in(
        &self,
        cache: &Arc<EntityCache<E>>,
        txn: &CachedTransaction,
        am: E::ActiveModel,
        insert: bool,
    ) -> Result<Arc<E::Model>> {
        in_transaction::save_in(cache, txn, am, insert, AfterCommit::Set).await
    }
}
