//! [`CachedConnection`] and [`CachedTransaction`]: SeaORM connections that see every write
//! made through them and invalidate what it touched, after the commit (DESIGN G3, G4).
//!
//! Each statement becomes cache effects ([`crate::invalidation`]): invalidate the keys it
//! names, or, where the keys cannot be told, the whole entity (a generation bump). Under
//! autocommit the effects run as soon as the statement returns; inside a transaction they
//! are buffered and run after the outermost commit. A savepoint's buffer merges into its
//! parent when it is released and is dropped when it is rolled back; a rolled back (or
//! dropped) transaction runs none.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, SqliteTransactionMode, Statement, TransactionError,
    TransactionOptions, TransactionSession, TransactionTrait, Value,
};

use crate::coherence::Journal;
use crate::invalidation::{Effect, Planned, Tables, run};

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
/// let cache = CacheLayer::builder(db).cached::<user::Entity>(|c| c).build().await?;
/// let conn = cache.connection();
///
/// // Plain SeaORM code, unchanged, on the cached connection.
/// let ada = user::ActiveModel {
///     email: Set("ada@example.com".into()), name: Set("Ada".into()),
///     bio: Set(String::new()), updated_at: Set(0), ..Default::default()
/// }.insert(&conn).await?;
/// let users = cache.repository::<user::Entity>()?;
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
    /// The invalidation log, with coherence on: a write's log rows commit with it.
    journal: Option<Arc<Journal>>,
}

impl fmt::Debug for CachedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedConnection")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl CachedConnection {
    pub(crate) fn new(
        db: DatabaseConnection,
        tables: Arc<Tables>,
        journal: Option<Arc<Journal>>,
    ) -> Self {
        Self {
            db,
            tables,
            journal,
        }
    }

    /// The underlying connection (for APIs that take only SeaORM's own connection types,
    /// such as a sea-orm-migration `Migrator`). Writes made through it bypass the cache: call
    /// [`CacheLayer::invalidate_all`](crate::CacheLayer::invalidate_all) after them.
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
            journal: self.journal.clone(),
            effects: Arc::default(),
            parent: None,
        }
    }

    /// `options` for a new transaction. On SQLite a transaction the caller did not give a
    /// mode begins `IMMEDIATE`: it takes the write lock at `BEGIN`, waiting up to the busy
    /// timeout, instead of at its first write, where a read snapshot older than another
    /// writer's commit cannot be upgraded and fails at once with `SQLITE_BUSY_SNAPSHOT`
    /// (`database is locked`). The cost: transactions on one SQLite file run one at a time,
    /// read-only ones included (readers outside transactions are not held up in WAL mode).
    fn options(&self, mut options: TransactionOptions) -> TransactionOptions {
        if self.db.get_database_backend() == DbBackend::Sqlite
            && options.sqlite_transaction_mode.is_none()
        {
            options.sqlite_transaction_mode = Some(SqliteTransactionMode::Immediate);
        }
        options
    }
}

impl CachedConnection {
    /// Before a statement that writes a write-behind entity's table: a transaction that has
    /// applied the entity's pending outbox rows, for the statement to run in next, so it
    /// lands after them (the later write wins in the table and in every reader): the rows of
    /// the keys the statement writes when it names them; for a statement that can write any
    /// row, the entity's flusher first applies all of them in its own batches, and the
    /// transaction then applies what was written meanwhile. With
    /// coherence on, any statement with cache effects runs in a transaction of its own too,
    /// which [`seal`] adds its log rows to. `None` for any other statement, which runs under
    /// autocommit as given.
    async fn pending_first(
        &self,
        planned: &Planned,
    ) -> Result<Option<(DatabaseTransaction, Vec<Effect>)>, DbErr> {
        let logged = self.journal.is_some() && !planned.is_empty();
        if !planned.writes_write_behind() && !logged {
            return Ok(None);
        }
        planned.flush_unkeyed().await?;
        let txn = self
            .db
            .begin_with_options(self.options(TransactionOptions::default()))
            .await?;
        let after = planned.apply_pending(&txn).await?;
        Ok(Some((txn, after)))
    }
}

impl CachedConnection {
    /// With coherence on, on Postgres: a write whose effects are all known before it runs
    /// (its keys are named, or it invalidates whole entities) and that writes no write-behind
    /// table, with its log rows in front of it ([`Journal::prefixed`]): run alone under
    /// autocommit, the write and its invalidation commit together in one round trip instead
    /// of four (`BEGIN`, write, log, `COMMIT`). `Err(stmt)` for any other statement, which
    /// takes [`pending_first`](Self::pending_first)'s path.
    fn alone(&self, planned: &Planned, stmt: Statement) -> Result<Statement, Statement> {
        let Some(journal) = self.journal.as_deref() else {
            return Err(stmt);
        };
        if planned.is_empty() || planned.writes_write_behind() {
            return Err(stmt);
        }
        match planned.known_logs() {
            Some(entries) => journal.prefixed(stmt, entries),
            None => Err(stmt),
        }
    }
}

impl CachedTransaction {
    /// Inside a transaction its commit carries the log rows: no statement runs alone.
    fn alone(&self, _planned: &Planned, stmt: Statement) -> Result<Statement, Statement> {
        Err(stmt)
    }
}

impl CachedTransaction {
    /// Before a statement that writes a write-behind entity's table: its pending outbox rows
    /// are applied in this transaction first (recorded after the outermost commit): the rows
    /// of the keys the statement writes when it names them, else all of the entity's (a
    /// flush in another transaction could wait on this one's locks). Always `None`: the
    /// statement runs in this transaction.
    async fn pending_first(
        &self,
        planned: &Planned,
    ) -> Result<Option<(DatabaseTransaction, Vec<Effect>)>, DbErr> {
        if planned.writes_write_behind() {
            let after = planned.apply_pending(&self.txn).await?;
            locked(&self.effects).extend(after);
        }
        Ok(None)
    }
}

impl CachedTransaction {
    /// A savepoint takes its enclosing transaction's options as they are.
    fn options(&self, options: TransactionOptions) -> TransactionOptions {
        options
    }
}

/// A statement's cache effects, once it has run in a transaction of its own that is about
/// to commit; with `journal`, their log rows are added to that transaction first.
async fn seal(
    journal: Option<&Journal>,
    txn: &DatabaseTransaction,
    planned: Planned,
    rows: Option<&[QueryResult]>,
    exec: Option<&ExecResult>,
) -> Result<Vec<Effect>, DbErr> {
    let effects = planned.resolve(rows, exec);
    if let Some(journal) = journal {
        journal
            .write(txn, effects.iter().filter_map(Effect::log))
            .await?;
    }
    Ok(effects)
}

impl CachedConnection {
    fn journal(&self) -> Option<&Journal> {
        self.journal.as_deref()
    }
}

impl CachedTransaction {
    fn journal(&self) -> Option<&Journal> {
        self.journal.as_deref()
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
    finish(txn, outcome).await
}

/// `transaction_async` and `transaction_with_config_async` of both connection types: begins
/// on `conn` (`None`s: the connection's defaults, as `begin`), runs `callback`.
async fn run_transaction_async<C, F, T, E>(
    conn: &C,
    isolation_level: Option<IsolationLevel>,
    access_mode: Option<AccessMode>,
    callback: F,
) -> Result<T, TransactionError<E>>
where
    C: TransactionTrait<Transaction = CachedTransaction>,
    F: for<'c> AsyncFnOnce(&'c CachedTransaction) -> Result<T, E> + Send,
    T: Send,
    E: fmt::Display + fmt::Debug + Send,
{
    let txn = conn
        .begin_with_config(isolation_level, access_mode)
        .await
        .map_err(TransactionError::Connection)?;
    let outcome = callback(&txn).await;
    finish(txn, outcome).await
}

/// Commits `txn` after `Ok`, rolls it back after `Err`.
async fn finish<T, E>(
    txn: CachedTransaction,
    outcome: Result<T, E>,
) -> Result<T, TransactionError<E>> {
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
    journal: Option<Arc<Journal>>,
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
            journal: self.journal.clone(),
            effects: Arc::default(),
            parent: Some(self.effects.clone()),
        }
    }

    /// Commits; then runs the buffered cache effects, or hands them to the enclosing
    /// transaction when this is a savepoint. With coherence on, the outermost commit first
    /// adds the effects' keys to the invalidation log, in this transaction.
    ///
    /// # Errors
    /// The database's, in which case no effect runs.
    pub async fn commit(self) -> Result<(), DbErr> {
        let CachedTransaction {
            txn,
            effects,
            parent,
            journal,
            ..
        } = self;
        let effects = mem::take(&mut *locked(&effects));
        if parent.is_none()
            && let Some(journal) = &journal
        {
            journal
                .write(&txn, effects.iter().filter_map(Effect::log))
                .await?;
        }
        txn.commit().await?;
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
                let stmt = match self.alone(&planned, stmt) {
                    Ok(alone) => {
                        let result = self.$inner.execute_raw(alone).await?;
                        self.settle(planned, None, Some(&result));
                        return Ok(result);
                    }
                    Err(stmt) => stmt,
                };
                let result = match self.pending_first(&planned).await? {
                    None => self.$inner.execute_raw(stmt).await?,
                    Some((txn, after)) => {
                        let result = txn.execute_raw(stmt).await?;
                        let effects =
                            seal(self.journal(), &txn, planned, None, Some(&result)).await?;
                        txn.commit().await?;
                        run(after);
                        run(effects);
                        return Ok(result);
                    }
                };
                self.settle(planned, None, Some(&result));
                Ok(result)
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                let backend = self.get_database_backend();
                let planned = self.tables.plan(sql, &[], backend);
                if let Ok(alone) = self.alone(&planned, Statement::from_string(backend, sql)) {
                    let result = self.$inner.execute_raw(alone).await?;
                    self.settle(planned, None, Some(&result));
                    return Ok(result);
                }
                let result = match self.pending_first(&planned).await? {
                    None => self.$inner.execute_unprepared(sql).await?,
                    Some((txn, after)) => {
                        let result = txn.execute_unprepared(sql).await?;
                        let effects =
                            seal(self.journal(), &txn, planned, None, Some(&result)).await?;
                        txn.commit().await?;
                        run(after);
                        run(effects);
                        return Ok(result);
                    }
                };
                self.settle(planned, None, Some(&result));
                Ok(result)
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                let planned = self
                    .tables
                    .plan(&stmt.sql, stmt_values(&stmt), stmt.db_backend);
                let stmt = match self.alone(&planned, stmt) {
                    Ok(alone) => {
                        let row = self.$inner.query_one_raw(alone).await?;
                        self.settle(planned, Some(row.as_slice()), None);
                        return Ok(row);
                    }
                    Err(stmt) => stmt,
                };
                let row = match self.pending_first(&planned).await? {
                    None => self.$inner.query_one_raw(stmt).await?,
                    Some((txn, after)) => {
                        let row = txn.query_one_raw(stmt).await?;
                        let effects =
                            seal(self.journal(), &txn, planned, Some(row.as_slice()), None).await?;
                        txn.commit().await?;
                        run(after);
                        run(effects);
                        return Ok(row);
                    }
                };
                self.settle(planned, Some(row.as_slice()), None);
                Ok(row)
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                let planned = self
                    .tables
                    .plan(&stmt.sql, stmt_values(&stmt), stmt.db_backend);
                let stmt = match self.alone(&planned, stmt) {
                    Ok(alone) => {
                        let rows = self.$inner.query_all_raw(alone).await?;
                        self.settle(planned, Some(&rows), None);
                        return Ok(rows);
                    }
                    Err(stmt) => stmt,
                };
                let rows = match self.pending_first(&planned).await? {
                    None => self.$inner.query_all_raw(stmt).await?,
                    Some((txn, after)) => {
                        let rows = txn.query_all_raw(stmt).await?;
                        let effects =
                            seal(self.journal(), &txn, planned, Some(&rows), None).await?;
                        txn.commit().await?;
                        run(after);
                        run(effects);
                        return Ok(rows);
                    }
                };
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
                self.begin_with_options(TransactionOptions::default()).await
            }

            async fn begin_with_config(
                &self,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<CachedTransaction, DbErr> {
                self.begin_with_options(TransactionOptions {
                    isolation_level,
                    access_mode,
                    ..Default::default()
                })
                .await
            }

            async fn begin_with_options(
                &self,
                options: TransactionOptions,
            ) -> Result<CachedTransaction, DbErr> {
                let options = self.options(options);
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

/// SeaORM's async-closure transactions (`DatabaseConnection::transaction_async` and
/// `transaction_with_config_async`), so code that calls them keeps compiling on
/// `cache.connection()` and needs no `Box::pin`. The closure runs in a [`CachedTransaction`]
/// (on a [`CachedTransaction`], a savepoint): committed if it returns `Ok`, rolled back if it
/// returns `Err`; cache effects run after the outermost commit, as for
/// [`TransactionTrait::transaction`]. On SQLite the transaction begins `IMMEDIATE` (see
/// [`CachedConnection`]'s transactions).
macro_rules! transaction_async {
    ($ty:ty) => {
        impl $ty {
            /// Runs `callback` in a transaction: committed after `Ok`, rolled back after `Err`.
            ///
            /// # Errors
            /// `TransactionError::Transaction` with the callback's error, after the rollback;
            /// `TransactionError::Connection` with the database's on begin, commit or rollback.
            pub async fn transaction_async<F, T, E>(
                &self,
                callback: F,
            ) -> Result<T, TransactionError<E>>
            where
                F: for<'c> AsyncFnOnce(&'c CachedTransaction) -> Result<T, E> + Send,
                T: Send,
                E: fmt::Display + fmt::Debug + Send,
            {
                run_transaction_async(self, None, None, callback).await
            }

            /// [`transaction_async`](Self::transaction_async) with an isolation level and
            /// access mode.
            ///
            /// # Errors
            /// As [`transaction_async`](Self::transaction_async).
            pub async fn transaction_with_config_async<F, T, E>(
                &self,
                callback: F,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<T, TransactionError<E>>
            where
                F: for<'c> AsyncFnOnce(&'c CachedTransaction) -> Result<T, E> + Send,
                T: Send,
                E: fmt::Display + fmt::Debug + Send,
            {
                run_transaction_async(self, isolation_level, access_mode, callback).await
            }
        }
    };
}

transaction_async!(CachedConnection);
transaction_async!(CachedTransaction);

/// The row stream of [`CachedConnection`] and [`CachedTransaction`] (their SeaORM
/// `StreamTrait::Stream`): the database's rows, unchanged and in order.
///
/// A stream is meant for reads, which cost nothing here: nothing a stream yields fills the
/// cache. A write to a cached table streamed anyway (`UPDATE .. RETURNING` through
/// `stream_raw`) runs as `query_all` runs it, and its rows are streamed from memory once it
/// has run: in a transaction of its own on [`CachedConnection`] when coherence is on or the
/// table is write-behind (its invalidation log rows commit with it, its entity's pending
/// outbox rows are applied first), its cache effects after the commit; inside a
/// [`CachedTransaction`], buffered for the outermost commit like any statement's.
#[must_use = "streams do nothing unless polled"]
pub struct CachedStream<'a> {
    rows: Rows<'a>,
}

/// Where a [`CachedStream`]'s rows come from.
enum Rows<'a> {
    /// The database's stream of a read.
    Database(Pin<Box<dyn futures_core::Stream<Item = Result<QueryResult, DbErr>> + Send + 'a>>),
    /// The rows of a write, already run.
    Written(std::vec::IntoIter<QueryResult>),
}

impl fmt::Debug for CachedStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStream")
            .field(
                "written_rows_left",
                &match &self.rows {
                    Rows::Database(_) => None,
                    Rows::Written(rows) => Some(rows.len()),
                },
            )
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for CachedStream<'_> {
    type Item = Result<QueryResult, DbErr>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match &mut self.rows {
            Rows::Database(rows) => rows.as_mut().poll_next(cx),
            Rows::Written(rows) => std::task::Poll::Ready(rows.next().map(Ok)),
        }
    }
}

/// `StreamTrait` for a cached connection type: a read reaches `self.$inner` unchanged and its
/// rows come back unchanged; a write to a cached table runs through `query_all_raw`.
macro_rules! cached_stream {
    ($ty:ty, $inner:ident) => {
        impl sea_orm::StreamTrait for $ty {
            type Stream<'a> = CachedStream<'a>;

            fn get_database_backend(&self) -> DbBackend {
                ConnectionTrait::get_database_backend(&self.$inner)
            }

            fn stream_raw<'a>(
                &'a self,
                stmt: Statement,
            ) -> Pin<Box<dyn Future<Output = Result<CachedStream<'a>, DbErr>> + 'a + Send>> {
                Box::pin(async move {
                    let planned = self
                        .tables
                        .plan(&stmt.sql, stmt_values(&stmt), stmt.db_backend);
                    let rows = if planned.is_empty() && !planned.writes_write_behind() {
                        Rows::Database(Box::pin(
                            sea_orm::StreamTrait::stream_raw(&self.$inner, stmt).await?,
                        ))
                    } else {
                        Rows::Written(
                            ConnectionTrait::query_all_raw(self, stmt)
                                .await?
                                .into_iter(),
                        )
                    };
                    Ok(CachedStream { rows })
                })
            }
        }
    };
}

impl CachedTransaction {
    /// The database backend. Inherent, so the call is not ambiguous with both
    /// `ConnectionTrait` and `StreamTrait` in scope.
    pub fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.txn)
    }
}

cached_stream!(CachedConnection, db);
cached_stream!(CachedTransaction, txn);

impl CachedConnection {
    /// The database backend. Inherent, as on SeaORM's `DatabaseConnection`, so the call is
    /// not ambiguous with both `ConnectionTrait` and `StreamTrait` in scope.
    pub fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Checks that the database answers (SeaORM's `DatabaseConnection::ping`).
    ///
    /// # Errors
    /// The database's, or SeaORM's when the pool is closed.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }

    /// Closes the connection pool (SeaORM's `DatabaseConnection::close`).
    ///
    /// The pool is the one the whole layer shares: every clone of this connection,
    /// [`CacheLayer::db`](crate::CacheLayer::db), the repositories' loads and writes, and the
    /// write-behind flushers. After it, they all fail with SeaORM's connection error, and
    /// cache hits are still answered. Call [`CacheLayer::shutdown`](crate::CacheLayer::shutdown)
    /// first, so pending write-behind writes are applied while the pool is open.
    ///
    /// # Errors
    /// SeaORM's.
    pub async fn close(self) -> Result<(), DbErr> {
        self.db.close_by_ref().await
    }
}
