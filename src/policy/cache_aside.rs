//! Cache-aside (and read-through) writes: write the database, then invalidate the key. The
//! entry is deleted, never rewritten, so the next read loads the committed row.

use std::sync::Arc;

use sea_orm::ActiveModelTrait;

use crate::error::Result;
use crate::key::{CacheableEntity, KeyOf, key_of_model};
use crate::repository::EntityCache;
use crate::retry::retrying;
use crate::stats::bump;

impl<E: CacheableEntity> EntityCache<E> {
    /// Inserts, then invalidates the new key (which clears a negative entry for it).
    pub(crate) async fn insert_invalidate(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let model = retrying(&self.counters, || am.clone().insert(&self.db)).await?;
        bump(&self.counters.db_writes);
        self.store.invalidate(&key_of_model::<E>(&model));
        Ok(Arc::new(model))
    }

    /// Updates, then invalidates the key.
    pub(crate) async fn update_invalidate(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let model = retrying(&self.counters, || am.clone().update(&self.db)).await?;
        bump(&self.counters.db_writes);
        self.store.invalidate(&key_of_model::<E>(&model));
        Ok(Arc::new(model))
    }

    /// Deletes, then invalidates the key. Returns whether a row was deleted.
    pub(crate) async fn delete_invalidate(&self, key: &KeyOf<E>) -> Result<bool> {
        let result = retrying(&self.counters, || {
            E::delete_by_id(key.clone()).exec(&self.db)
        })
        .await?;
        bump(&self.counters.db_writes);
        self.store.invalidate(key);
        Ok(result.rows_affected > 0)
    }
}
