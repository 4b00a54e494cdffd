//! [`WriteOn`]: the connection a repository write outside any caller's transaction runs on
//! ([`EntityCache::logged`](crate::entity_cache::EntityCache::logged)): the pool, a
//! transaction of its own that also adds the log row, or, on Postgres when the written key
//! is known before the write, the pool with the log row carried by the write statement
//! itself ([`Journal::prefixed`]): one round trip, atomic under autocommit.

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement,
};

use crate::coherence::Journal;
use crate::invalidation::LogEntry;

/// Where one repository write runs.
pub(crate) enum WriteOn<'c> {
    /// The pool, as given (coherence off, or triggers log the entity's writes).
    Pool(&'c DatabaseConnection),
    /// A transaction of the write's own, which adds the log row before it commits.
    Transaction(&'c DatabaseTransaction),
    /// The pool, each write statement carrying `entry`'s log row (Postgres).
    Logged {
        db: &'c DatabaseConnection,
        journal: &'c Journal,
        entry: LogEntry,
    },
}

impl WriteOn<'_> {
    /// `stmt` as it must run: a write statement with the log row in front of it, when the
    /// write is [`Logged`](Self::Logged). A write statement that cannot carry it is refused
    /// before it runs (nothing is written), so no write commits without its log row.
    fn carrying(&self, stmt: Statement) -> Result<Statement, DbErr> {
        let Self::Logged { journal, entry, .. } = self else {
            return Ok(stmt);
        };
        if !is_write(&stmt.sql) {
            return Ok(stmt);
        }
        journal.prefixed(stmt, [entry]).map_err(|stmt| {
            DbErr::Custom(format!(
                "sea-orm-cache: a repository write statement cannot carry its invalidation log row: {}",
                stmt.sql
            ))
        })
    }
}

/// Whether `sql` may write (anything but a `SELECT`).
fn is_write(sql: &str) -> bool {
    !sql.trim_start()
        .get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("select"))
}

#[async_trait]
impl ConnectionTrait for WriteOn<'_> {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Self::Pool(db) | Self::Logged { db, .. } => db.get_database_backend(),
            Self::Transaction(txn) => txn.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let stmt = self.carrying(stmt)?;
        match self {
            Self::Pool(db) | Self::Logged { db, .. } => db.execute_raw(stmt).await,
            Self::Transaction(txn) => txn.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Self::Pool(db) => db.execute_unprepared(sql).await,
            Self::Transaction(txn) => txn.execute_unprepared(sql).await,
            Self::Logged { db, .. } => {
                let stmt = Statement::from_string(db.get_database_backend(), sql);
                db.execute_raw(self.carrying(stmt)?).await
            }
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let stmt = self.carrying(stmt)?;
        match self {
            Self::Pool(db) | Self::Logged { db, .. } => db.query_one_raw(stmt).await,
            Self::Transaction(txn) => txn.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let stmt = self.carrying(stmt)?;
        match self {
            Self::Pool(db) | Self::Logged { db, .. } => db.query_all_raw(stmt).await,
            Self::Transaction(txn) => txn.query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        match self {
            Self::Pool(db) | Self::Logged { db, .. } => db.support_returning(),
            Self::Transaction(txn) => txn.support_returning(),
        }
    }
}
