//! Several instances, one database (DESIGN G8): every write made through a layer adds rows to
//! an invalidation log in the writing transaction (`journal.rs`); every layer tails that log
//! from its own cursor and applies the other instances' rows to its stores (`tailer.rs`).

#[cfg(feature = "sqlite")]
mod data_version;
mod journal;
#[cfg(feature = "postgres")]
mod listener;
mod settings;
mod stats;
mod tailer;

pub use journal::INVALIDATION_TABLE;
pub(crate) use journal::{CHANNEL, HOOK_ORIGIN, Journal, create_table};
#[cfg(feature = "postgres")]
pub(crate) use listener::spawn as listen;
pub use settings::Coherence;
pub use stats::CoherenceStats;
pub(crate) use tailer::Tailer;

/// Whether `db` is an in-memory SQLite database (its main database has no file), which no
/// other process can open: coherence is off there unless asked for.
pub(crate) async fn in_memory_sqlite(
    db: &sea_orm::DatabaseConnection,
) -> Result<bool, sea_orm::DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(false);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<String>("", "file")?.is_empty(),
        None => true,
    })
}
