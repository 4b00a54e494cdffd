//! SQLite's cheap change check for the tailer: `PRAGMA data_version` on a connection of its
//! own. SQLite changes the value a connection reads whenever another connection (of any
//! process) has committed since that connection last read it, so an unchanged value means
//! the log has nothing new and the poll skips its read of the log. The value is per
//! connection, so the check keeps one connection, opened with the pool's options and held
//! outside the pool.

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::ConnectOptions;
use sea_orm::sqlx::sqlite::SqliteConnection;

/// The check's connection and the value it last read.
#[derive(Debug, Default)]
pub(crate) struct DataVersion {
    conn: Option<SqliteConnection>,
    last: Option<i64>,
}

impl DataVersion {
    /// Whether any connection other than the check's own has committed since the last call
    /// (`true` on the first call, and whenever the value cannot be read: then the poll reads
    /// the log, and the next call opens a new connection).
    pub(crate) async fn changed(&mut self, db: &DatabaseConnection) -> bool {
        match self.read(db).await {
            Ok(now) => self.last.replace(now) != Some(now),
            Err(err) => {
                tracing::debug!(%err, "PRAGMA data_version failed; reading the log");
                self.conn = None;
                self.last = None;
                true
            }
        }
    }

    async fn read(&mut self, db: &DatabaseConnection) -> Result<i64, sea_orm::sqlx::Error> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => {
                let options = db.get_sqlite_connection_pool().connect_options();
                empty.insert(options.connect().await?)
            }
        };
        sea_orm::sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(conn)
            .await
    }
}
