//! Which database errors are worth trying again, told by their codes (never by message
//! text), and the one backoff loop that repository writes and the outbox's group commit share.
//!
//! Transient: Postgres SQLSTATE `40001` (serialization failure) and `40P01` (deadlock);
//! MySQL/MariaDB errors 1213 (deadlock) and 1205 (lock wait timeout); SQLite `SQLITE_BUSY` and
//! `SQLITE_LOCKED` with any extended code (`database is locked`, `database table is locked`,
//! `SQLITE_BUSY_SNAPSHOT`, ...). A statement refused with one of them did not apply, so an
//! autocommit statement can run again. Everything else (a constraint, a type, a lost
//! connection) is not retried here.

use std::future::Future;
use std::time::Duration;

use sea_orm::DbErr;

use crate::stats::{Counters, bump};

/// Retries of a refused write; the waits double from [`FIRST_WAIT`], about 1.3 s in all, so
/// a writer holding SQLite's lock can finish.
pub(crate) const RETRIES: u32 = 7;
/// The first wait before a retry.
pub(crate) const FIRST_WAIT: Duration = Duration::from_millis(10);

/// The database error inside `err`, if it is one. Only with a backend feature: without one,
/// `sea_orm::sqlx` does not exist.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn database_error(err: &DbErr) -> Option<&(dyn sea_orm::sqlx::error::DatabaseError + 'static)> {
    use sea_orm::RuntimeErr;

    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => match &**e {
            sea_orm::sqlx::Error::Database(db) => Some(&**db),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `err` is the database asking to try again (see the module docs for the codes).
/// The codes of a backend are read only when this crate's feature for it (`sqlite`,
/// `postgres`, `mysql`) is on; with none, nothing is transient.
#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
pub(crate) fn is_transient(_err: &DbErr) -> bool {
    false
}

/// Whether `err` is the database asking to try again (see the module docs for the codes).
/// The codes of a backend are read only when this crate's feature for it (`sqlite`,
/// `postgres`, `mysql`) is on.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) fn is_transient(err: &DbErr) -> bool {
    let Some(db) = database_error(err) else {
        return false;
    };
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>() {
        return matches!(pg.code(), "40001" | "40P01");
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        return matches!(my.number(), 1213 | 1205);
    }
    #[cfg(feature = "sqlite")]
    if db
        .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
        .is_some()
    {
        // The extended result code; its low byte is the primary code.
        let primary = db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(5 | 6)); // SQLITE_BUSY, SQLITE_LOCKED
    }
    let _ = db;
    false
}

/// Runs `op` (one autocommit statement, or one whole transaction), again after a growing
/// wait while the database refuses it as transient, up to [`RETRIES`] times. Each retry is
/// counted in `write_retries`. Not for a statement inside a caller's transaction, which the
/// refusal may have aborted.
pub(crate) async fn retrying<T, F, Fut>(counters: &Counters, mut op: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    let mut wait = FIRST_WAIT;
    for _ in 0..RETRIES {
        match op().await {
            Err(err) if is_transient(&err) => {
                bump(&counters.write_retries);
                tracing::debug!(%err, ?wait, "refused as transient; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    op().await
}
