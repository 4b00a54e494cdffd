//! What a write through the cache layer's connection does to the cache: each statement is
//! read by [`crate::sql`] for its table and keys and becomes *effects* (invalidate these keys,
//! or every entry of an entity), which [`crate::connection`] runs at once under autocommit or
//! buffers until the outermost commit.

use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::sync::Arc;

use sea_orm::sea_query::{ColumnType, FromValueTuple, ValueTuple};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, IdenStatic, Iterable,
    PrimaryKeyToColumn, PrimaryKeyTrait, QueryResult, TryFromU64, TryGetableMany, Value,
};

use crate::key::{CacheableEntity, KeyOf};
use crate::repository::EntityCache;
use crate::sql::{self, Classified, Verb};

/// Work to do on the cache once a write is committed.
pub(crate) type Effect = Box<dyn FnOnce() + Send + Sync>;

/// How a cached table answers a write the connection saw.
#[async_trait::async_trait]
pub(crate) trait TableCache: Send + Sync {
    /// Effects known before the statement runs; `None` when the keys must come from its
    /// result (RETURNING rows, MySQL's last insert id).
    fn plan(&self, write: &sql::Write) -> Option<Vec<Effect>>;
    /// Invalidation of the keys in `rows`, or `None` if they do not carry the key columns.
    fn keys_in_rows(&self, rows: &[QueryResult]) -> Option<Vec<Effect>>;
    /// Invalidation of an auto-increment key reported by the database.
    fn key_of_insert_id(&self, id: u64) -> Option<Effect>;
    /// Invalidation of every entry of the entity.
    fn everything(&self) -> Effect;
    /// Whether the entity is write-behind: a write to its table must come after its pending
    /// outbox rows ([`apply_pending`](Self::apply_pending)).
    fn is_write_behind(&self) -> bool;
    /// Applies the entity's pending outbox rows on `txn`, before a write to its table made in
    /// that transaction; returns what to record once it commits.
    async fn apply_pending(&self, txn: &DatabaseTransaction) -> Result<Option<Effect>, DbErr>;
}

/// The cached tables, by name.
#[derive(Default)]
pub(crate) struct Tables {
    by_name: HashMap<&'static str, Arc<dyn TableCache>>,
}

impl fmt::Debug for Tables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Tables {
    pub(crate) fn insert<E: CacheableEntity>(&mut self, cache: Arc<EntityCache<E>>) {
        self.by_name
            .insert(cache.name, Arc::new(EntityTable(cache)));
    }

    fn get(&self, name: &str) -> Option<&Arc<dyn TableCache>> {
        self.by_name.get(name).or_else(|| {
            self.by_name
                .iter()
                .find(|(table, _)| table.eq_ignore_ascii_case(name))
                .map(|(_, cache)| cache)
        })
    }

    /// What a statement does to the cache: effects to run once it is committed, and tables
    /// whose keys must be read from the statement's result.
    pub(crate) fn plan(&self, sql: &str, values: &[Value], backend: DbBackend) -> Planned {
        let mut planned = Planned::default();
        if is_plain_select(sql) {
            return planned;
        }
        for statement in sql::classify(sql, values, backend) {
            match statement {
                Classified::Read => {}
                Classified::Everything => {
                    planned.now = self.by_name.values().map(|t| t.everything()).collect();
                    planned.from_result.clear();
                    planned.write_behind = self
                        .by_name
                        .values()
                        .filter(|t| t.is_write_behind())
                        .cloned()
                        .collect();
                    return planned;
                }
                Classified::Write(write) => {
                    if let Some(table) = self.get(&write.table) {
                        if table.is_write_behind()
                            && !planned.write_behind.iter().any(|t| Arc::ptr_eq(t, table))
                        {
                            planned.write_behind.push(table.clone());
                        }
                        match table.plan(&write) {
                            Some(effects) => planned.now.extend(effects),
                            None => planned.from_result.push(FromResult {
                                table: table.clone(),
                                // Only a one-row INSERT on MySQL or SQLite reports its key as
                                // the last insert id.
                                by_insert_id: matches!(write.verb, Verb::Insert { .. })
                                    && backend != DbBackend::Postgres,
                            }),
                        }
                    }
                }
            }
        }
        planned
    }
}

/// Whether `sql` is a `SELECT` (the common case), without reading it further.
fn is_plain_select(sql: &str) -> bool {
    let head = sql.trim_start();
    head.get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("select"))
        && !head.contains(';')
}

#[derive(Default)]
pub(crate) struct Planned {
    now: Vec<Effect>,
    from_result: Vec<FromResult>,
    /// Write-behind tables the statement writes: their pending rows go first.
    write_behind: Vec<Arc<dyn TableCache>>,
}

/// A write whose keys only its result can tell.
struct FromResult {
    table: Arc<dyn TableCache>,
    /// Whether the result's last insert id names the written row.
    by_insert_id: bool,
}

impl Planned {
    pub(crate) fn is_empty(&self) -> bool {
        self.now.is_empty() && self.from_result.is_empty()
    }

    /// Whether the statement writes a write-behind entity's table.
    pub(crate) fn writes_write_behind(&self) -> bool {
        !self.write_behind.is_empty()
    }

    /// Applies the pending outbox rows of every write-behind table the statement writes, on
    /// `txn`, before the statement runs there; returns what to record after the commit.
    pub(crate) async fn apply_pending(
        &self,
        txn: &DatabaseTransaction,
    ) -> Result<Vec<Effect>, DbErr> {
        let mut after = Vec::new();
        for table in &self.write_behind {
            if let Some(effect) = table.apply_pending(txn).await? {
                after.push(effect);
            }
        }
        Ok(after)
    }

    /// All effects, once the statement's outcome is known.
    pub(crate) fn resolve(
        mut self,
        rows: Option<&[QueryResult]>,
        exec: Option<&ExecResult>,
    ) -> Vec<Effect> {
        for FromResult {
            table,
            by_insert_id,
        } in mem::take(&mut self.from_result)
        {
            let effects = match (rows, exec) {
                (Some(rows), _) => table.keys_in_rows(rows),
                (None, Some(exec))
                    if by_insert_id && exec.rows_affected() == 1 && exec.last_insert_id() > 0 =>
                {
                    table
                        .key_of_insert_id(exec.last_insert_id())
                        .map(|e| vec![e])
                }
                _ => None,
            };
            match effects {
                Some(effects) => self.now.extend(effects),
                None => self.now.push(table.everything()),
            }
        }
        self.now
    }
}

/// One entity's cache behind [`TableCache`].
struct EntityTable<E: CacheableEntity>(Arc<EntityCache<E>>);

impl<E: CacheableEntity> EntityTable<E> {
    fn key_columns() -> Vec<String> {
        E::PrimaryKey::iter()
            .map(|key| key.into_column().as_str().to_owned())
            .collect()
    }

    fn invalidate(&self, key: KeyOf<E>) -> Effect {
        let cache = self.0.clone();
        Box::new(move || cache.store.invalidate(&key))
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

    async fn apply_pending(&self, txn: &DatabaseTransaction) -> Result<Option<Effect>, DbErr> {
        match &self.0.queue {
            Some(queue) => queue.apply_pending_in(txn).await.map_err(DbErr::from),
            None => Ok(None),
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

    fn everything(&self) -> Effect {
        let cache = self.0.clone();
        Box::new(move || cache.store.invalidate_all())
    }
}

pub(crate) fn run(effects: Vec<Effect>) {
    for effect in effects {
        effect();
    }
}
