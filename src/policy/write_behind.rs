//! Write-behind: a write sets the cache and commits an outbox row before it is acknowledged;
//! the outbox's flusher applies it to the table later, coalesced per key (see
//! [`crate::outbox`]). Writes to one key hold its write lock, so the cache and the outbox see
//! them in the same order.

use std::sync::Arc;

use sea_orm::sea_query::IntoValueTuple;
use sea_orm::{ActiveModelTrait, ActiveValue, IntoActiveModel, Iterable, TryIntoModel};

use async_trait::async_trait;

use super::in_transaction::{self, AfterCommit};
use super::paths::PolicyPaths;
use crate::connection::CachedTransaction;
use crate::entity_cache::EntityCache;
use crate::error::{Error, Result};
use crate::invalidation::Effect;
use crate::key::{CacheableEntity, KeyOf, key_of_active_model, key_text};
use crate::outbox::{Outbox, PendingWrite};
use crate::stats::bump;

/// `changes` applied over `current`: columns the ActiveModel `Set` win, the rest keep their
/// current value (what an SQL `UPDATE` of the set columns would leave).
fn merge<E: CacheableEntity>(current: &E::Model, changes: &E::ActiveModel) -> Result<E::Model> {
    let mut merged: E::ActiveModel = current.clone().into_active_model();
    for column in E::Column::iter() {
        if let ActiveValue::Set(value) = changes.get(column) {
            merged.set(column, value);
        }
    }
    Ok(merged.try_into_model()?)
}

impl<E: CacheableEntity> EntityCache<E> {
    fn outbox(&self) -> Result<&Arc<Outbox<E>>> {
        self.queue
            .as_ref()
            .ok_or(Error::NotSerializable { entity: self.name })
    }

    async fn write_behind(&self, key: KeyOf<E>, write: PendingWrite<E::Model>) -> Result<()> {
        let ticket = self.store.ticket();
        self.outbox()?.push(&key, &write).await?;
        match write {
            PendingWrite::Upsert(model) => {
                self.store.put(key, ticket, model, true);
            }
            PendingWrite::Delete(_) => self.store.invalidate(&key),
        }
        Ok(())
    }

    /// Inserts with a client-set key by queueing an upsert; a database-assigned key is
    /// written through instead (DESIGN section 5).
    pub(crate) async fn insert_behind(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let Some(key) = key_of_active_model::<E>(&am) else {
            return self.insert_through(am).await;
        };
        let model = Arc::new(am.try_into_model()?);
        let _lock = self.locks.lock(&key).await;
        self.write_behind(key, PendingWrite::Upsert(model.clone()))
            .await?;
        Ok(model)
    }

    /// Applies the set columns over the current row (pending writes included) and queues it.
    pub(crate) async fn update_behind(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let key =
            key_of_active_model::<E>(&am).ok_or(Error::MissingPrimaryKey { entity: self.name })?;
        let _lock = self.locks.lock(&key).await;
        let current = self
            .read(&key)
            .await?
            .ok_or(Error::NotFound { entity: self.name })?;
        let model = Arc::new(merge::<E>(&current, &am)?);
        self.write_behind(key, PendingWrite::Upsert(model.clone()))
            .await?;
        Ok(model)
    }

    /// Queues a delete of the current row; readers see "no such row" at once. Returns whether
    /// there was a row (none: nothing is queued).
    pub(crate) async fn delete_behind(&self, key: &KeyOf<E>) -> Result<bool> {
        let _lock = self.locks.lock(key).await;
        let Some(current) = self.read(key).await? else {
            return Ok(false);
        };
        self.write_behind(key.clone(), PendingWrite::Delete(current))
            .await?;
        Ok(true)
    }

    /// A write-behind write inside the caller's transaction: the outbox row commits or rolls
    /// back with the caller's other writes, and the cache follows after the commit. `None`
    /// for `am` deletes.
    pub(crate) async fn write_behind_in(
        self: &Arc<Self>,
        txn: &CachedTransaction,
        key: KeyOf<E>,
        am: Option<(E::ActiveModel, bool)>,
    ) -> Result<Option<Arc<E::Model>>> {
        let outbox = self.outbox()?;
        let ticket = self.store.ticket();
        // Read through the transaction, so its own earlier writes count.
        let current = self.read_on(txn.raw(), &key).await?;
        let write = match am {
            Some((am, true)) => PendingWrite::Upsert(Arc::new(am.try_into_model()?)),
            Some((am, false)) => {
                let current = current.ok_or(Error::NotFound { entity: self.name })?;
                PendingWrite::Upsert(Arc::new(merge::<E>(&current, &am)?))
            }
            None => match current {
                Some(current) => PendingWrite::Delete(current),
                None => return Ok(None),
            },
        };
        let reservation = outbox.push_in(txn.raw(), &key, &write).await?;
        txn.defer(Effect::local(move || reservation.commit()));
        bump(&self.counters.writes);
        let cache = self.clone();
        let text = Some(key_text(key.clone().into_value_tuple()));
        Ok(match write {
            PendingWrite::Upsert(model) => {
                let row = model.clone();
                txn.defer(Effect::logged(self.name, text, move || {
                    cache.store.put(key, ticket, row, true);
                }));
                Some(model)
            }
            PendingWrite::Delete(model) => {
                txn.defer(Effect::logged(self.name, text, move || {
                    cache.store.invalidate(&key)
                }));
                Some(model)
            }
        })
    }
}

/// Write-behind: loads on a miss (a pending write first); a write sets the cache and commits
/// an outbox row, and the flusher applies it later.
#[derive(Debug)]
pub(crate) struct WriteBehind;

#[async_trait]
impl<E: CacheableEntity> PolicyPaths<E> for WriteBehind {
    async fn insert(&self, cache: &EntityCache<E>, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        cache.insert_behind(am).await
    }

    async fn update(&self, cache: &EntityCache<E>, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        cache.update_behind(am).await
    }

    async fn delete(&self, cache: &EntityCache<E>, key: &KeyOf<E>) -> Result<bool> {
        cache.delete_behind(key).await
    }

    /// A known key queues an outbox row in `txn`; a database-assigned key is written through
    /// in `txn`, as [`insert`](Self::insert) does outside one.
    async fn save_in(
        &self,
        cache: &Arc<EntityCache<E>>,
        txn: &CachedTransaction,
        am: E::ActiveModel,
        insert: bool,
    ) -> Result<Arc<E::Model>> {
        match key_of_active_model::<E>(&am) {
            Some(key) => cache
                .write_behind_in(txn, key, Some((am, insert)))
                .await?
                .ok_or(Error::NotFound { entity: cache.name }),
            None => in_transaction::save_in(cache, txn, am, insert, AfterCommit::Set).await,
        }
    }

    async fn delete_in(
        &self,
        cache: &Arc<EntityCache<E>>,
        txn: &CachedTransaction,
        key: KeyOf<E>,
    ) -> Result<bool> {
        Ok(cache.write_behind_in(txn, key, None).await?.is_some())
    }
}
