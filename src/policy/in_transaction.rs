//! Repository writes inside a caller's [`CachedTransaction`] (DESIGN G3), shared by the
//! policies that write the table at once: the write runs on the transaction, and its cache
//! effect waits for the outermost commit (never after a rollback).
//!
//! - Cache-aside and read-through ([`AfterCommit::Invalidate`]): invalidate the key.
//! - Write-through ([`AfterCommit::Set`]): set the key to the row the database returned,
//!   through the fence, so a write or invalidation of the key after this write (another
//!   transaction's commit may have applied first, in either order) wins: the older row can
//!   never be the one left cached.
//!
//! Write-behind writes with a known key queue an outbox row instead (`write_behind.rs`).

use std::sync::Arc;

use sea_orm::ActiveModelTrait;
use sea_orm::sea_query::IntoValueTuple;

use crate::connection::CachedTransaction;
use crate::entity_cache::EntityCache;
use crate::error::Result;
use crate::invalidation::Effect;
use crate::key::{CacheableEntity, KeyOf, key_of_model, key_text};
use crate::stats::bump;

/// What a write in a transaction does to the cache once the transaction commits.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AfterCommit {
    /// Invalidate the key.
    Invalidate,
    /// Set the key to the written row, through the fence.
    Set,
}

/// Inserts (`insert`) or updates `am` on `txn`; the cache follows the commit as `then` says.
pub(crate) async fn save_in<E: CacheableEntity>(
    cache: &Arc<EntityCache<E>>,
    txn: &CachedTransaction,
    am: E::ActiveModel,
    insert: bool,
    then: AfterCommit,
) -> Result<Arc<E::Model>> {
    // Taken before the write: a write or invalidation of the key after it makes the
    // commit-time set back off.
    let ticket = cache.store.ticket();
    let model = Arc::new(if insert {
        am.insert(txn.raw()).await?
    } else {
        am.update(txn.raw()).await?
    });
    counted(cache);
    let (effect_cache, key) = (cache.clone(), key_of_model::<E>(&model));
    let text = Some(key_text(key.clone().into_value_tuple()));
    match then {
        AfterCommit::Set => {
            let row = model.clone();
            txn.defer(Effect::logged(cache.name, text, move || {
                effect_cache.store.put(key, ticket, row, false);
            }));
        }
        AfterCommit::Invalidate => {
            txn.defer(Effect::logged(cache.name, text, move || {
                effect_cache.store.invalidate(&key)
            }));
        }
    }
    Ok(model)
}

/// Deletes `key` on `txn`; the key is invalidated after the commit.
pub(crate) async fn delete_in<E: CacheableEntity>(
    cache: &Arc<EntityCache<E>>,
    txn: &CachedTransaction,
    key: KeyOf<E>,
) -> Result<bool> {
    let result = E::delete_by_id(key.clone()).exec(txn.raw()).await?;
    counted(cache);
    let effect_cache = cache.clone();
    let text = Some(key_text(key.clone().into_value_tuple()));
    txn.defer(Effect::logged(cache.name, text, move || {
        effect_cache.store.invalidate(&key)
    }));
    Ok(result.rows_affected > 0)
}

fn counted<E: CacheableEntity>(cache: &EntityCache<E>) {
    bump(&cache.counters.db_writes);
    bump(&cache.counters.writes);
}
