//! [`CachedConnection`] and [`CachedTransaction`]: SeaORM connections that see every write
//! made through them and invalidate what it touched, after the commit (DESIGN G3, G4).
//!
//! Each statement is read by [`crate::sql`] for its table and, where the statement says so,
//! its primary keys. A write to a cached table then becomes *effects*: invalidate these keys,
//! or, where the keys cannot be told, invalidate the whole entity (a generation bump). Under
//! autocommit the effects run as soon as the statement returns; inside a transaction they
//! are buffered and run after the outermost commit. A savepoint's buffer merges into its
//! parent when it is released and is dropped when it is rolled back; a rolled back (or
//! dropped) transaction runs none.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use sea_orm::sea_query::{ColumnType, FromValueTuple, ValueTuple};
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, ExecResult, IdenStatic, IsolationLevel, Iterable, PrimaryKeyToColumn, PrimaryKeyTrait,
    QueryResult, Statement, TransactionError, TransactionOptions, TransactionSession,
    TransactionTrait, TryFromU64, TryGetableMany, Value,
};

use crate::key::{CacheableEntity, KeyOf};
use crate::repository::EntityCache;
use crate::sql::{self, Classified, Verb};

/// Work to do on the cache once a write is committed.
pub(crate) type Effect = Box<dyn FnOnce() + Send + Sync>;

/// How a cached table answers a write the connection saw.
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
    fn plan(&self, sql: &str, values: &[Value], backend: DbBackend) -> Planned {
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
                    return planned;
                }
                Classified::Write(write) => {
                    if let Some(table) = self.get(&write.table) {
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
struct Planned {
    now: Vec<Effect>,
    from_result: Vec<FromResult>,
}

/// A write whose keys only its result can tell.
struct FromResult {
    table: Arc<dyn TableCache>,
    /// Whether the result's last insert id names the written row.
    by_insert_id: bool,
}

impl Planned {
    fn is_empty(&self) -> bool {
        self.now.is_empty() && self.from_result.is_empty()
    }

    /// All effects, once the statement's outcome is known.
    fn resolve(mut self, rows: Option<&[QueryResult]>, exec: Option<&ExecResult>) -> Vec<Effect> {
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

impl<E: CacheableEntity> TableCache for EntityTable<E> {
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

fn run(effects: Vec<Effect>) {
    for effect in effects {
        effect();
    }
}

fn locked(buffer: &Mutex<Vec<Effect>>) -> MutexGuard<'_, Vec<Effect>> {
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `DatabaseConnection` that keeps the cache in step with every write made through it.
///
/// Get one from [`CacheLayer::connection`](crate::CacheLayer::connection) and pass it where a
/// service passed its `DatabaseConnection`: it implements SeaORM's `ConnectionTrait` and
/// `TransactionTrait`, and every statement reaches the database unchanged. A write to a
/// cached table invalidates the keys it names (or, where they cannot be told, every entry of
/// that entity) once it is committed: at once under autocommit, after the outermost commit
/// inside a transaction, never after a rollback.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sea_orm::{ActiveModelTrait, ActiveValue::{Set, Unchanged}, ConnectionTrait, Database, Schema};
/// use sea_orm_cache::CacheLayer;
/// use entity::user;
///
/// let db = Database::connect("sqlite::memory:").await?;
/// db.execute(&Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity)).await?;
/// let cache = CacheLayer::builder(db).entity::<user::Entity>(|c| c).build().await?;
/// let conn = cache.connection();
///
/// // Plain SeaORM code, unchanged, on the cached connection.
/// let ada = user::ActiveModel {
///     email: Set("ada@example.com".into()), name: Set("Ada".into()),
///     bio: Set(String::new()), updated_at: Set(0), ..Default::default()
/// }.insert(&conn).await?;
/// let users = cache.repository::<user::Entity>();
/// users.get(ada.id).await?;                                   // cached
/// user::ActiveModel { id: Unchanged(ada.id), name: Set("Ada L.".into()), ..Default::default() }
///     .update(&conn).await?;                                  // invalidates ada.id
/// assert_eq!(users.get(ada.id).await?.unwrap().name, "Ada L.");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CachedConnection {
    db: DatabaseConnection,
    tables: Arc<Tables>,
}

impl fmt::Debug for CachedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedConnection")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl CachedConnection {
    pub(crate) fn new(db: DatabaseConnection, tables: Arc<Tables>) -> Self {
        Self { db, tables }
    }

    /// The underlying connection. Writes made through it bypass the cache.
    pub fn inner(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Runs a statement's cache effects now: under autocommit it has committed.
    fn settle(&self, planned: Planned, rows: Option<&[QueryResult]>, exec: Option<&ExecResult>) {
        if !planned.is_empty() {
            run(planned.resolve(rows, exec));
        }
    }

    fn wrap(&self, txn: DatabaseTransaction) -> CachedTransaction {
        CachedTransaction {
            txn,
            tables: self.tables.clone(),
            effects: Arc::default(),
            parent: None,
        }
    }
}

fn stmt_values(stmt: &Statement) -> &[Value] {
    stmt.values
        .as_ref()
        .map_or(&[], |values| values.0.as_slice())
}

/// The callback type of `transaction`, as SeaORM defines it.
type Callback<'c, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>;

async fn run_transaction<F, T, E>(
    txn: CachedTransaction,
    callback: F,
) -> Result<T, TransactionError<E>>
where
    F: for<'c> FnOnce(&'c CachedTransaction) -> Callback<'c, T, E> + Send,
    T: Send,
    E: fmt::Display + fmt::Debug + Send,
{
    let outcome = callback(&txn).await;
    match outcome {
        Ok(value) => {
            txn.commit().await.map_err(TransactionError::Connection)?;
            Ok(value)
        }
        Err(err) => {
            txn.rollback().await.map_err(TransactionError::Connection)?;
            Err(TransactionError::Transaction(err))
        }
    }
}

/// A transaction on a [`CachedConnection`]. Cache effects of the writes made through it are
/// held until the outermost transaction commits; `begin` on it opens a savepoint whose
/// effects join this transaction's on commit and are dropped on rollback. Reads go to the
/// database, so the transaction sees its own writes; nothing it reads fills the cache.
pub struct CachedTransaction {
    txn: DatabaseTransaction,
    tables: Arc<Tables>,
    effects: Arc<Mutex<Vec<Effect>>>,
    /// The enclosing transaction's buffer, for a savepoint.
    parent: Option<Arc<Mutex<Vec<Effect>>>>,
}

impl fmt::Debug for CachedTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedTransaction")
            .field("buffered_effects", &locked(&self.effects).len())
            .field("savepoint", &self.parent.is_some())
            .finish_non_exhaustive()
    }
}

impl CachedTransaction {
    /// Buffers an effect until the outermost commit.
    pub(crate) fn defer(&self, effect: Effect) {
        locked(&self.effects).push(effect);
    }

    /// The underlying transaction; statements run on it are not seen by the cache.
    pub(crate) fn raw(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Buffers a statement's cache effects until the outermost commit.
    fn settle(&self, planned: Planned, rows: Option<&[QueryResult]>, exec: Option<&ExecResult>) {
        if !planned.is_empty() {
            locked(&self.effects).extend(planned.resolve(rows, exec));
        }
    }

    fn wrap(&self, txn: DatabaseTransaction) -> CachedTransaction {
        CachedTransaction {
            txn,
            tables: self.tables.clone(),
            effects: Arc::default(),
            parent: Some(self.effects.clone()),
        }
    }

    /// Commits; then runs the buffered cache effects, or hands them to the enclosing
    /// transaction when this is a savepoint.
    ///
    /// # Errors
    /// The database's, in which case no effect runs.
    pub async fn commit(self) -> Result<(), DbErr> {
        let CachedTransaction {
            txn,
            effects,
            parent,
            ..
        } = self;
        txn.commit().await?;
        let effects = mem::take(&mut *locked(&effects));
        match parent {
            Some(parent) => locked(&parent).extend(effects),
            None => run(effects),
        }
        Ok(())
    }

    /// Rolls back and drops the buffered cache effects.
    ///
    /// # Errors
    /// The database's.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

#[async_trait]
impl TransactionSession for CachedTransaction {
    async fn commit(self) -> Result<(), DbErr> {
        CachedTransaction::commit(self).await
    }

    async fn rollback(self) -> Result<(), DbErr> {
        CachedTransaction::rollback(self).await
    }
}

/// `ConnectionTrait` and `TransactionTrait` for a cached connection type: statements reach
/// `self.$inner` unchanged; their cache effects go to `self.settle` (run now, or buffered);
/// a transaction begun on it is wrapped by `self.wrap`.
macro_rules! cached_connection {
    ($ty:ty, $inner:ident) => {
        #[async_trait]
        impl ConnectionTrait for $ty {
            fn get_database_backend(&self) -> DbBackend {
                self.$inner.get_database_backend()
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                let planned = self
                    .tables
                    .plan(&stmt.sql, stmt_values(&stmt), stmt.db_backend);
                let result = self.$inner.execute_raw(stmt).await?;
                self.settle(planned, None, Some(&result));
                Ok(result)
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                let planned = self.tables.plan(sql, &[], self.get_database_backend());
                let result = self.$inner.execute_unprepared(sql).await?;
                self.settle(planned, None, Some(&result));
                Ok(result)
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                let planned = self
                    .tables
                    .plan(&stmt.sql, stmt_values(&stmt), stmt.db_backend);
                let row = self.$inner.query_one_raw(stmt).await?;
                self.settle(planned, Some(row.as_slice()), None);
                Ok(row)
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                let planned = self
                    .tables
                    .plan(&stmt.sql, stmt_values(&stmt), stmt.db_backend);
                let rows = self.$inner.query_all_raw(stmt).await?;
                self.settle(planned, Some(&rows), None);
                Ok(rows)
            }

            fn support_returning(&self) -> bool {
                self.$inner.support_returning()
            }
        }

        #[async_trait]
        impl TransactionTrait for $ty {
            type Transaction = CachedTransaction;

            async fn begin(&self) -> Result<CachedTransaction, DbErr> {
                Ok(self.wrap(self.$inner.begin().await?))
            }

            async fn begin_with_config(
                &self,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<CachedTransaction, DbErr> {
                let txn = self
                    .$inner
                    .begin_with_config(isolation_level, access_mode)
                    .await?;
                Ok(self.wrap(txn))
            }

            async fn begin_with_options(
                &self,
                options: TransactionOptions,
            ) -> Result<CachedTransaction, DbErr> {
                Ok(self.wrap(self.$inner.begin_with_options(options).await?))
            }

            async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
            where
                F: for<'c> FnOnce(&'c CachedTransaction) -> Callback<'c, T, E> + Send,
                T: Send,
                E: fmt::Display + fmt::Debug + Send,
            {
                let txn = self.begin().await.map_err(TransactionError::Connection)?;
                run_transaction(txn, callback).await
            }

            async fn transaction_with_config<F, T, E>(
                &self,
                callback: F,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<T, TransactionError<E>>
            where
                F: for<'c> FnOnce(&'c CachedTransaction) -> Callback<'c, T, E> + Send,
                T: Send,
                E: fmt::Display + fmt::Debug + Send,
            {
                let txn = self
                    .begin_with_config(isolation_level, access_mode)
                    .await
                    .map_err(TransactionError::Connection)?;
                run_transaction(txn, callback).await
            }
        }
    };
}

cached_connection!(CachedConnection, db);
cached_connection!(CachedTransaction, txn);
