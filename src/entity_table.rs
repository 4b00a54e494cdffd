//! One entity's cache as the connection sees it ([`TableCache`]): which keys a statement on
//! its table names, and how to invalidate them.

use std::sync::Arc;

use sea_orm::sea_query::{ColumnType, FromValueTuple, IntoValueTuple, ValueTuple};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, DbErr, IdenStatic, Iterable, PrimaryKeyToColumn,
    PrimaryKeyTrait, QueryResult, TryFromU64, TryGetableMany, Value,
};

use crate::entity_cache::EntityCache;
use crate::invalidation::{Effect, TableCache};
use crate::key::{CacheableEntity, KeyOf, key_text};
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

    /// The key a canonical key text (a JSON array of the key's values) names.
    fn key_of_text(&self, text: &str) -> Option<KeyOf<E>> {
        let values: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
        let row = E::PrimaryKey::iter()
            .zip(values)
            .map(|(key, value)| {
                let value = match value {
                    serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                        (Some(i), _) => Value::BigInt(Some(i)),
                        (None, Some(u)) => Value::BigUnsigned(Some(u)),
                        _ => return None,
                    },
                    serde_json::Value::String(s) => Value::String(Some(s)),
                    _ => return None,
                };
                Some((key.into_column().as_str().to_owned(), value))
            })
            .collect::<Option<Vec<_>>>()?;
        self.key_of_row(&row)
    }

    /// The key a `column = value` row names, if it names every key column with a value that
    /// converts to the key's type.
    fn key_of_row(&self, row: &[(String, Value)]) -> Option<KeyOf<E>> {
        let mut values = Vec::new();
        for key in E::PrimaryKey::iter() {
            let column = key.into_column();
            let (_, value) = row.iter().find(|(c, _)| c == column.as_str())?;
            values.push(coerce(value, column.def().get_column_type())?);
        }
        let tuple = match values.len() {
            1 => ValueTuple::One(values.pop()?),
            2 => {
                let b = values.pop()?;
                ValueTuple::Two(values.pop()?, b)
            }
            3 => {
                let c = values.pop()?;
                let b = values.pop()?;
                ValueTuple::Three(values.pop()?, b, c)
            }
            _ => ValueTuple::Many(values),
        };
        // `coerce` produced the variant the column's type decodes from; a key type that
        // disagrees with its column type (a custom `column_type`) would still panic inside
        // sea-query, so that case falls back to invalidating the whole entity.
        std::panic::catch_unwind(|| KeyOf::<E>::from_value_tuple(tuple)).ok()
    }
}

/// `value` in the variant a column of type `column` holds, for the key types a statement
/// can name: integers of any width and sign, and strings. `None` for anything else.
fn coerce(value: &Value, column: &ColumnType) -> Option<Value> {
    let integer: Option<i128> = match value {
        Value::TinyInt(v) => v.map(i128::from),
        Value::SmallInt(v) => v.map(i128::from),
        Value::Int(v) => v.map(i128::from),
        Value::BigInt(v) => v.map(i128::from),
        Value::TinyUnsigned(v) => v.map(i128::from),
        Value::SmallUnsigned(v) => v.map(i128::from),
        Value::Unsigned(v) => v.map(i128::from),
        Value::BigUnsigned(v) => v.map(i128::from),
        Value::String(Some(s)) => s.parse().ok(),
        _ => None,
    };
    Some(match column {
        ColumnType::TinyInteger => Value::TinyInt(Some(integer?.try_into().ok()?)),
        ColumnType::SmallInteger => Value::SmallInt(Some(integer?.try_into().ok()?)),
        ColumnType::Integer => Value::Int(Some(integer?.try_into().ok()?)),
        ColumnType::BigInteger => Value::BigInt(Some(integer?.try_into().ok()?)),
        ColumnType::TinyUnsigned => Value::TinyUnsigned(Some(integer?.try_into().ok()?)),
        ColumnType::SmallUnsigned => Value::SmallUnsigned(Some(integer?.try_into().ok()?)),
        ColumnType::Unsigned => Value::Unsigned(Some(integer?.try_into().ok()?)),
        ColumnType::BigUnsigned => Value::BigUnsigned(Some(integer?.try_into().ok()?)),
        ColumnType::String(_) | ColumnType::Char(_) | ColumnType::Text => match value {
            Value::String(Some(s)) => Value::String(Some(s.clone())),
            _ => return None,
        },
        _ => return None,
    })
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

    fn remote(&self, key: Option<&str>) {
        bump(&self.0.counters.remote_invalidations);
        let key = key.and_then(|text| self.key_of_text(text));
        self.0.store.invalidate_remote(key.as_ref());
    }

    fn everything(&self) -> Effect {
        let cache = self.0.clone();
        Effect::logged(self.0.name, None, move || cache.store.invalidate_all())
    }
}
