//! Read-through: on a miss the repository loads the row by primary key itself (the trait's
//! default [`miss`](PolicyPaths::miss)); writes invalidate, as under cache-aside.

use std::sync::Arc;

use async_trait::async_trait;

use super::in_transaction::{self, AfterCommit};
use super::paths::PolicyPaths;
use crate::connection::CachedTransaction;
use crate::entity_cache::EntityCache;
use crate::error::Result;
use crate::key::{CacheableEntity, KeyOf};

/// Read-through: loads on a miss, invalidates on a write.
#[derive(Debug)]
pub(crate) struct ReadThrough;

#[async_trait]
impl<E: CacheableEntity> PolicyPaths<E> for ReadThrough {
    async fn insert(&self, cache: &EntityCache<E>, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        cache.insert_invalidate(am).await
    }

    async fn update(&self, cache: &EntityCache<E>, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        cache.update_invalidate(am).await
    }

    async fn delete(&self, cache: &EntityCache<E>, key: &KeyOf<E>) -> Result<bool> {
        cache.delete_invalidate(key).await
    }

    async fn save_in(
        &self,
        cache: &Arc<EntityCache<E>>,
        txn: &CachedTransaction,
        am: E::ActiveModel,
        insert: bool,
    ) -> Result<Arc<E::Model>> {
        in_transaction::save_in(cache, txn, am, insert, AfterCommit::Invalidate).await
    }

    async fn delete_in(
        &self,
        cache: &Arc<EntityCache<E>>,
        txn: &CachedTransaction,
        key: KeyOf<E>,
    ) -> Result<bool> {
        in_transaction::delete_in(cache, txn, key).await
    }
}
