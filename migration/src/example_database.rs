//! [`example_database`]: the database the examples run in, one of their own, so they never
//! drop, alter or write a table they did not create.
//!
//! A developer's `DATABASE_URL` commonly names their own database; an example that ran its
//! migrations (or `Migrator::down`) there could drop their `users` table. So the examples read
//! their own variable, [`EXAMPLE_URL_VAR`], and on Postgres and MySQL/MariaDB they take the
//! server it names and work in a database of their own on it, created if missing. Any
//! database they are pointed at (that one, or a SQLite file) is used only if it is empty or
//! holds what these migrations made and nothing else; otherwise they stop with an error that
//! says so, having changed nothing.

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
};

use crate::Migrator;

/// The environment variable the examples read for a database server (or a SQLite URL).
/// Unset, they use an in-memory SQLite database.
pub const EXAMPLE_URL_VAR: &str = "SEA_ORM_CACHE_EXAMPLE_URL";

/// Tables these migrations create (the library's own are named `sea_orm_cache_*`).
const EXAMPLE_TABLES: [&str; 5] = [
    "users",
    "posts",
    "profiles",
    "memberships",
    "seaql_migrations",
];

/// The example `name`'s database, with the example tables: in memory when
/// [`EXAMPLE_URL_VAR`] is unset, otherwise as [`open_example_database`] opens it.
///
/// # Errors
/// As [`open_example_database`].
pub async fn example_database(name: &str) -> Result<DatabaseConnection, DbErr> {
    let url = std::env::var(EXAMPLE_URL_VAR).unwrap_or_else(|_| "sqlite::memory:".to_owned());
    open_example_database(&url, name).await
}

/// Opens the database an example named `name` works in and applies the example migrations.
///
/// - Postgres and MySQL/MariaDB: `url` names a server (its database is used only to connect);
///   the example works in the database `name` on it (letters, digits and `_`), created if
///   missing. The database in `url` is never touched.
/// - SQLite: `url` itself (a file, or `sqlite::memory:`).
///
/// Either way the database must be empty or hold only what these migrations made (their
/// tables, recorded in `seaql_migrations` by these migrations alone, and the library's
/// `sea_orm_cache_*` tables).
///
/// # Errors
/// A `name` that is not a plain identifier, a database holding tables of someone else's (the
/// message lists them), or the database's own error.
pub async fn open_example_database(url: &str, name: &str) -> Result<DatabaseConnection, DbErr> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(DbErr::Custom(format!(
            "example database name `{name}`: use lowercase letters, digits and `_`"
        )));
    }
    let db = if url.starts_with("sqlite:") {
        Database::connect(url).await?
    } else {
        let server = Database::connect(url).await?;
        let create = match server.get_database_backend() {
            DbBackend::Postgres => {
                let exists = server
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT 1 AS found FROM pg_database WHERE datname = $1",
                        [name.into()],
                    ))
                    .await?
                    .is_some();
                (!exists).then(|| format!("CREATE DATABASE \"{name}\""))
            }
            _ => Some(format!("CREATE DATABASE IF NOT EXISTS `{name}`")),
        };
        if let Some(sql) = create {
            server.execute_unprepared(&sql).await?;
        }
        server.close().await?;
        Database::connect(with_database(url, name)).await?
    };
    refuse_foreign_tables(&db, name).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// Fails, naming them, when `db` holds tables these migrations did not make.
async fn refuse_foreign_tables(db: &DatabaseConnection, name: &str) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let list = match backend {
        DbBackend::Sqlite => {
            "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        DbBackend::Postgres => {
            "SELECT tablename AS t FROM pg_tables WHERE schemaname = current_schema()"
        }
        _ => {
            "SELECT CAST(table_name AS CHAR) AS t FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
    };
    let mut tables = Vec::new();
    for row in db
        .query_all_raw(Statement::from_string(backend, list))
        .await?
    {
        tables.push(row.try_get::<String>("", "t")?);
    }
    let mut foreign: Vec<String> = tables
        .iter()
        .filter(|t| !t.starts_with("sea_orm_cache_") && !EXAMPLE_TABLES.contains(&t.as_str()))
        .cloned()
        .collect();
    let ours_present = tables
        .iter()
        .any(|t| t != "seaql_migrations" && EXAMPLE_TABLES.contains(&t.as_str()));
    if ours_present {
        // Tables with our names are ours only if our migrations recorded making them.
        let recorded = if tables.iter().any(|t| t == "seaql_migrations") {
            let mut versions = Vec::new();
            let sql = "SELECT version FROM seaql_migrations";
            for row in db
                .query_all_raw(Statement::from_string(backend, sql))
                .await?
            {
                versions.push(row.try_get::<String>("", "version")?);
            }
            let known: Vec<String> = Migrator::migrations()
                .iter()
                .map(|m| m.name().to_owned())
                .collect();
            !versions.is_empty() && versions.iter().all(|v| known.contains(v))
        } else {
            false
        };
        if !recorded {
            foreign.extend(
                tables
                    .iter()
                    .filter(|t| EXAMPLE_TABLES.contains(&t.as_str()))
                    .cloned(),
            );
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    Err(DbErr::Custom(format!(
        "the example database `{name}` holds tables the examples did not create ({}); they \
         never change those: set {EXAMPLE_URL_VAR} to another server or file",
        foreign.join(", ")
    )))
}

/// `url` with its database path replaced by `name` (its query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}
