//! Write-through: write the database, then set the cache to the row the database returned.
//! Writes to one key hold its write lock across both steps, so concurrent writers end with
//! the cache holding the row of the last write the database applied.

use std::sync::Arc;

use sea_orm::ActiveModelTrait;

use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf, key_of_active_model, key_of_model};
use crate::repository::EntityCache;
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
        let model = Arc::new(retrying(&self.counters, || am.clone().insert(&self.db)).await?);
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
        let model = Arc::new(retrying(&self.counters, || am.clone().update(&self.db)).await?);
        bump(&self.counters.db_writes);
        // Through the fence: a write of the key from another path (a `CachedConnection`
        // statement, a hook) that committed after this one invalidated it, and wins.
        self.store.put(key, ticket, model.clone(), false);
        Ok(model)
    }

    /// Deletes and invalidates the key.
    pub(crate) async fn delete_through(&self, key: &KeyOf<E>) -> Result<bool> {
        let _lock = self.locks.lock(key).await;
        let result = retrying(&self.counters, || {
            E::delete_by_id(key.clone()).exec(&self.db)
        })
        .await?;
        bump(&self.counters.db_writes);
        self.store.invalidate(key);
        Ok(result.rows_affected > 0)
    }
}
