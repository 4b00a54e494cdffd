//! [`PolicyPaths`]: the one small trait every policy implements.

use std::sync::Arc;

use async_trait::async_trait;

use super::in_transaction::{self, AfterCommit};
use crate::connection::CachedTransaction;
use crate::entity_cache::EntityCache;
use crate::error::Result;
use crate::key::{CacheableEntity, KeyOf};

/// One policy's read and write paths for entity `E`. Implemented by a unit struct per policy;
/// [`paths_of`](super::paths_of) picks the one a configuration names.
#[async_trait]
pub(crate) trait PolicyPaths<E: CacheableEntity>: Send + Sync {
    /// Whether a miss loads the row by itself (every policy but cache-aside).
    fn loads(&self) -> bool {
        true
    }

    /// `get` after a missed hit: one coalesced load by key, through the fill fence.
    async fn miss(&self, cache: &EntityCache<E>, key: KeyOf<E>) -> Result<Option<Arc<E::Model>>> {
        cache.load_with(&key, || cache.load_by_key(&key)).await
    }

    /// Inserts `am`; returns the inserted row. By default (cache-aside, read-through): the
    /// insert, then the key invalidated.
    async fn insert(&self, cache: &EntityCache<E>, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        cache.insert_invalidate(am).await
    }

    /// Updates the columns `am` sets, by its key; returns the updated row. By default: the
    /// update, then the key invalidated.
    async fn update(&self, cache: &EntityCache<E>, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        cache.update_invalidate(am).await
    }

    /// Deletes `key`; returns whether there was a row. By default: the delete, then the key
    /// invalidated.
    async fn delete(&self, cache: &EntityCache<E>, key: &KeyOf<E>) -> Result<bool> {
        cache.delete_invalidate(key).await
    }

    /// Inserts (`insert`) or updates `am` on `txn`; the cache follows the outermost commit.
    /// By default the key is invalidated then.
    async fn save_in(
        &self,
        cache: &Arc<EntityCache<E>>,
        txn: &CachedTransaction,
        am: E::ActiveModel,
        insert: bool,
    ) -> Result<Arc<E::Model>> {
        in_transaction::save_in(cache, txn, am, insert, AfterCommit::Invalidate).await
    }

    /// Deletes `key` on `txn`; the key is invalidated after the outermost commit.
    async fn delete_in(
        &self,
        cache: &Arc<EntityCache<E>>,
        txn: &CachedTransaction,
        key: KeyOf<E>,
    ) -> Result<bool> {
        in_transaction::delete_in(cache, txn, key).await
    }
}
