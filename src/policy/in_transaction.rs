//! Repository writes inside a caller's [`CachedTransaction`] (DESIGN G3): the write runs on the
//! transaction, and its cache effect waits for the outermost commit.
//!
//! - Cache-aside and read-through: invalidate the key after the commit.
//! - Write-through: after the commit, set the key to the row the database returned, unless
//!   the key was written or invalidated since the write (another transaction's commit may
//!   have applied first, in either order): then invalidate it instead, so the older row can
//!   never be the one left cached.
//! - Write-behind: not yet; the durable outbox will put the write into the caller's
//!   transaction (see [`Error::WriteBehindInTransaction`]).

use std::sync::Arc;

use sea_orm::ActiveModelTrait;

use crate::config::Policy;
use crate::connection::CachedTransaction;
use crate::error::{Error, Result};
use crate::key::{CacheableEntity, KeyOf, key_of_model};
use crate::repository::EntityCache;
use crate::stats::bump;

impl<E: CacheableEntity> EntityCache<E> {
    fn check_policy(&self) -> Result<()> {
        match self.config.policy {
            Policy::WriteBehind => Err(Error::WriteBehindInTransaction { entity: self.name }),
            _ => Ok(()),
        }
    }

    /// Inserts (`insert`) or updates `am` on `txn`; the cache effect waits for the commit.
    pub(crate) async fn save_in(
        self: &Arc<Self>,
        txn: &CachedTransaction,
        am: E::ActiveModel,
        insert: bool,
    ) -> Result<Arc<E::Model>> {
        self.check_policy()?;
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
                cache.store.set_committed(key, ticket, row)
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
        self.check_policy()?;
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
