//! Cache-aside (and read-through) writes: write the database, then invalidate the key. The
//! entry is deleted, never rewritten, so the next read loads the committed row.

use std::sync::Arc;

use async_trait::async_trait;

use super::paths::PolicyPaths;
use crate::entity_cache::EntityCache;
use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf, key_of_model};
use crate::retry::retrying;
use crate::stats::bump;

impl<E: CacheableEntity> EntityCache<E> {
    /// Inserts, then invalidates the new key (which clears a negative entry for it).
    pub(crate) async fn insert_invalidate(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let model = retrying(&self.counters, || self.save_row(&am, true)).await?;
        bump(&self.counters.db_writes);
        self.store.invalidate(&key_of_model::<E>(&model));
        Ok(Arc::new(model))
    }

    /// Updates, then invalidates the key.
    pub(crate) async fn update_invalidate(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let model = retrying(&self.counters, || self.save_row(&am, false)).await?;
        bump(&self.counters.db_writes);
        self.store.invalidate(&key_of_model::<E>(&model));
        Ok(Arc::new(model))
    }

    /// Deletes, then invalidates the key. Returns whether a row was deleted.
    pub(crate) async fn delete_invalidate(&self, key: &KeyOf<E>) -> Result<bool> {
        let deleted = retrying(&self.counters, || self.delete_row(key)).await?;
        bump(&self.counters.db_writes);
        self.store.invalidate(key);
        Ok(deleted)
    }
}

/// Cache-aside: a miss is the caller's to load ([`Repository::get_or_load`](crate::Repository::get_or_load));
/// writes invalidate (the trait's default writes).
#[derive(Debug)]
pub(crate) struct CacheAside;

#[async_trait]
impl<E: CacheableEntity> PolicyPaths<E> for CacheAside {
    fn loads(&self) -> bool {
        false
    }

    async fn miss(&self, cache: &EntityCache<E>, _key: KeyOf<E>) -> Result<Option<Arc<E::Model>>> {
        bump(&cache.counters.misses);
        Err(Error::LoaderRequired { entity: cache.name })
    }
}
