//! One entity's cache as the connection sees it ([`TableCache`]): which keys a statement on
//! its table names, and how to invalidate them.

use std::sync::Arc;

use sea_orm::sea_query::IntoValueTuple;
use sea_orm::{
    DatabaseTransaction, DbErr, IdenStatic, Iterable, PrimaryKeyToColumn, PrimaryKeyTrait,
    QueryResult, TryFromU64, TryGetableMany, Value,
};

use crate::entity_cache::EntityCache;
use crate::invalidation::{Effect, TableCache};
use crate::key::{
    CacheableEntity, KeyOf, KeyTextError, key_from_text, key_of_values, key_text, key_types,
};
use crate::key_text::coerce;
use crate::sql::{self, Verb};
use crate::stats::bump;

/// One entity's cache behind [`TableCache`].
pub(crate) struct EntityTable<E: CacheableEntity>(pub(crate) Arc<EntityCache<E>>);

impl<E: CacheableEntity> EntityTable<E> {
    fn key_columns() -> Vec<String> {
        E::PrimaryKey::iter()
            .map(|key| key.into_column().as_str().to_owned())
            .collect()
    }

    fn invalidate(&self, key: KeyOf<E>) -> Effect {
        let cache = self.0.clone();
        let text = key_text(key.clone().into_value_tuple());
        Effect::logged(self.0.name, Some(text), move || {
            cache.store.invalidate(&key)
        })
    }

    /// The key a `column = value` row names, if it names every key column with a value that
    /// converts to the key's type (a string literal naming a UUID or a date, an integer of
    /// another width).
    fn key_of_row(&self, row: &[(String, Value)]) -> Option<KeyOf<E>> {
        let mut values = Vec::new();
        for (key, ty) in E::PrimaryKey::iter().zip(key_types::<E>()) {
            let column = key.into_column();
            let (_, value) = row.iter().find(|(c, _)| c == column.as_str())?;
            values.push(coerce(value, &ty)?);
        }
        key_of_values::<E>(values).ok()
    }
}

#[async_trait::async_trait]
impl<E: CacheableEntity> TableCache for EntityTable<E> {
    fn is_write_behind(&self) -> bool {
        self.0.queue.is_some()
    }

    fn written_keys(&self, write: &sql::Write) -> Option<Vec<String>> {
        let columns = Self::key_columns();
        if matches!(write.verb, Verb::Schema)
            || write.set_columns.iter().any(|c| columns.contains(c))
        {
            return None;
        }
        write
            .rows
            .as_ref()?
            .iter()
            .map(|row| {
                self.key_of_row(row)
                    .map(|key| key_text(key.into_value_tuple()))
            })
            .collect()
    }

    async fn apply_pending(
        &self,
        txn: &DatabaseTransaction,
        keys: Option<&[String]>,
    ) -> Result<Option<Effect>, DbErr> {
        match &self.0.queue {
            Some(queue) => queue.apply_pending_in(txn, keys).await.map_err(DbErr::from),
            None => Ok(None),
        }
    }

    async fn flush_pending(&self) -> Result<(), DbErr> {
        match &self.0.queue {
            Some(queue) => queue.flush().await.map(drop).map_err(DbErr::from),
            None => Ok(()),
        }
    }

    fn plan(&self, write: &sql::Write) -> Option<Vec<Effect>> {
        let columns = Self::key_columns();
        let keys_changed = write.set_columns.iter().any(|c| columns.contains(c));
        match write.verb {
            Verb::Schema => return Some(vec![self.everything()]),
            // A new row can only make a negative entry stale.
            Verb::Insert { upsert: false } if self.0.config.negative_ttl.is_none() => {
                return Some(Vec::new());
            }
            Verb::Update if keys_changed => return Some(vec![self.everything()]),
            _ => {}
        }
        let rows = write.rows.as_ref()?;
        rows.iter()
            .map(|row| self.key_of_row(row).map(|key| self.invalidate(key)))
            .collect()
    }

    fn keys_in_rows(&self, rows: &[QueryResult]) -> Option<Vec<Effect>> {
        let columns = Self::key_columns();
        rows.iter()
            .map(|row| {
                KeyOf::<E>::try_get_many(row, "", &columns)
                    .ok()
                    .map(|key| self.invalidate(key))
            })
            .collect()
    }

    fn key_of_insert_id(&self, id: u64) -> Option<Effect> {
        if !<E::PrimaryKey as PrimaryKeyTrait>::auto_increment() {
            return None;
        }
        KeyOf::<E>::try_from_u64(id)
            .ok()
            .map(|key| self.invalidate(key))
    }

    fn remote(&self, key: Option<&str>) -> Result<(), KeyTextError> {
        bump(&self.0.counters.remote_invalidations);
        let key = key.map(key_from_text::<E>).transpose();
        // A text that names no key of this entity drops every key: the one it meant cannot
        // be told apart.
        self.0
            .store
            .invalidate_remote(key.as_ref().ok().and_then(Option::as_ref));
        key.map(|_| ())
    }

    fn everything(&self) -> Effect {
        let cache = self.0.clone();
        Effect::logged(self.0.name, None, move || cache.store.invalidate_all())
    }
}
