//! Connections of the layer's own (DESIGN G13, issues 21 and 26): the background work on the
//! layer's thread (`background.rs`) uses a small pool, opened with the application pool's
//! own options (the same URL, credentials, settings and per-connection setup), so it never
//! waits behind the application's queries for one of the application's connections.
//!
//! An in-memory SQLite database keeps the application's pool: another connection would open
//! another database. So do connections that are not a sqlx pool (mocks, proxies).

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DatabaseConnectionType};
use tokio::runtime::Handle;

/// SeaORM's metric callback, for the statements of the layer's own connections
/// ([`CacheLayerBuilder::metric_callback`](crate::CacheLayerBuilder::metric_callback)).
pub(crate) type MetricCallback = Arc<dyn Fn(&sea_orm::metric::Info<'_>) + Send + Sync>;

/// Most connections the layer's own pool holds for statements: the invalidation log
/// tailer's and the write-behind flushers' (one flush at a time per entity; the flushes of
/// several entities and the tailer's read may overlap). On Postgres the pool holds one more,
/// which the listener keeps for its `LISTEN`.
pub(crate) const MAX_CONNECTIONS: u32 = 2;

/// A pool of at most [`MAX_CONNECTIONS`] connections to `db`'s database, created on
/// `handle`'s runtime (the pool's upkeep task runs there; connections open lazily, where
/// they are first used), reporting its statements to `metrics` when given. `db` itself when
/// it is not a sqlx pool or it is an in-memory SQLite database (`in_memory`).
pub(crate) fn own_pool(
    db: &DatabaseConnection,
    in_memory: bool,
    handle: &Handle,
    metrics: Option<MetricCallback>,
) -> DatabaseConnection {
    match new_pool(db, in_memory, handle) {
        Some(mut own) => {
            if let Some(callback) = metrics {
                own.set_metric_callback(move |info| callback(info));
            }
            own
        }
        None => db.clone(),
    }
}

/// The new pool, unless `db` is kept.
#[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
fn new_pool(
    db: &DatabaseConnection,
    in_memory: bool,
    handle: &Handle,
) -> Option<DatabaseConnection> {
    let _on = handle.enter();
    Some(match &db.inner {
        #[cfg(feature = "postgres")]
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            let options = pool
                .options()
                .clone()
                .max_connections(MAX_CONNECTIONS + 1)
                .min_connections(0);
            sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(
                options.connect_lazy_with((*pool.connect_options()).clone()),
            )
        }
        #[cfg(feature = "mysql")]
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
            let pool = db.get_mysql_connection_pool();
            let options = pool
                .options()
                .clone()
                .max_connections(MAX_CONNECTIONS)
                .min_connections(0);
            sea_orm::SqlxMySqlConnector::from_sqlx_mysql_pool(
                options.connect_lazy_with((*pool.connect_options()).clone()),
            )
        }
        #[cfg(feature = "sqlite")]
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) if !in_memory => {
            let pool = db.get_sqlite_connection_pool();
            let options = pool
                .options()
                .clone()
                .max_connections(MAX_CONNECTIONS)
                .min_connections(0);
            sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(
                options.connect_lazy_with((*pool.connect_options()).clone()),
            )
        }
        _ => return None,
    })
}
