//! Repository writes inside a caller's [`CachedTransaction`] (DESIGN G3): the write runs on the
//! transaction, and its cache effect waits for the outermost commit.
//!
//! - Cache-aside and read-through: invalidate the key after the commit.
//! - Write-through: after the commit, set the key to the row the database returned, unless
//!   the key was written or invalidated since the write (another transaction's commit may
//!   have applied first, in either order): then invalidate it instead, so the older row can
//!   never be the one left cached.
//! - Write-behind: the outbox row is inserted in the caller's transaction (see
//!   `write_behind.rs`); the cache is set after the commit.

use std::sync::Arc;

use sea_orm::ActiveModelTrait;

use crate::config::Policy;
use crate::connection::CachedTransaction;
use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf, key_of_active_model, key_of_model};
use crate::repository::EntityCache;
use crate::stats::bump;

impl<E: CacheableEntity> EntityCache<E> {
    /// Inserts (`insert`) or updates `am` on `txn`; the cache effect waits for the commit.
    pub(crate) async fn save_in(
        self: &Arc<Self>,
        txn: &CachedTransaction,
        am: E::ActiveModel,
        insert: bool,
    ) -> Result<Arc<E::Model>> {
        if self.config.policy == Policy::WriteBehind
            && let Some(key) = key_of_active_model::<E>(&am)
        {
            let model = self.write_behind_in(txn, key, Some((am, insert))).await?;
            return model.ok_or(Error::NotFound { entity: self.name });
        }
        // Taken before the write: a write or invalidation of the key after it makes the
        // commit-time set back off (write-through).
        let ticket = self.store.ticket();
        let model = Arc::new(if insert {
            am.insert(txn.raw()).await?
        } else {
            am.update(txn.raw()).await?
        });
        self.counted();
        let (cache, key) = (self.clone(), key_of_model::<E>(&model));
        if self.config.policy == Policy::WriteThrough {
            let row = model.clone();
            txn.defer(Box::new(move || {
                cache.store.put(key, ticket, row, false);
            }));
        } else {
            txn.defer(Box::new(move || cache.store.invalidate(&key)));
        }
        Ok(model)
    }

    /// Deletes `key` on `txn`; the key is invalidated after the commit.
    pub(crate) async fn delete_in(
        self: &Arc<Self>,
        txn: &CachedTransaction,
        key: KeyOf<E>,
    ) -> Result<bool> {
        if self.config.policy == Policy::WriteBehind {
            return Ok(self.write_behind_in(txn, key, None).await?.is_some());
        }
        let result = E::delete_by_id(key.clone()).exec(txn.raw()).await?;
        self.counted();
        let cache = self.clone();
        txn.defer(Box::new(move || cache.store.invalidate(&key)));
        Ok(result.rows_affected > 0)
    }

    fn counted(&self) {
        bump(&self.counters.db_writes);
        bump(&self.counters.writes);
    }
}
