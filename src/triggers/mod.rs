//! Writes from outside the layer (DESIGN G11): database triggers that add the key of every
//! row an INSERT, UPDATE or DELETE changes on an entity's table to the invalidation log,
//! whoever makes the write (psql, another service, a migration), in the writing transaction.
//! Every layer's tailer applies those rows like any other instance's.
//!
//! Opt an entity in with [`Capture::Triggers`](crate::Capture::Triggers)
//! (`#[cache(capture = "triggers")]`), then install the triggers, either at start with
//! [`CacheLayerBuilder::install_triggers`](crate::CacheLayerBuilder::install_triggers) or
//! from a migration:
//!
//! ```no_run
//! # mod sea_orm_migration { pub use ::migration as prelude; }
//! use sea_orm_migration::prelude::*;
//!
//! pub struct Migration;
//!
//! impl MigrationName for Migration {
//!     fn name(&self) -> &str {
//!         "m20260601_000001_user_triggers"
//!     }
//! }
//!
//! #[async_trait::async_trait]
//! impl MigrationTrait for Migration {
//!     async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
//!         // Needs the invalidation log table (`OutboxMigration` creates it) to exist first.
//!         sea_orm_cache::triggers::for_entity::<entity::user::Entity>()?
//!             .install(manager.get_connection())
//!             .await?;
//!         Ok(())
//!     }
//!
//!     async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
//!         sea_orm_cache::triggers::for_entity::<entity::user::Entity>()?
//!             .uninstall(manager.get_connection())
//!             .await?;
//!         Ok(())
//!     }
//! }
//! ```
//!
//! [`Triggers::up`] and [`Triggers::down`] give the same DDL as text, for a migration tool
//! that runs SQL files.
//!
//! | backend | triggers | an UPDATE of n rows costs |
//! |---|---|---|
//! | Postgres | statement-level with transition tables (`AFTER INSERT / UPDATE / DELETE / TRUNCATE ... FOR EACH STATEMENT`), one PL/pgSQL function | one `INSERT ... SELECT` of n log rows and one `pg_notify` |
//! | MariaDB / MySQL | row-level (`AFTER ... FOR EACH ROW`) | n trigger calls, n log rows |
//! | SQLite | row-level | n trigger calls, n log rows |
//!
//! Log rows carry the origin `'trigger'`, which no layer has as its own, so every instance
//! applies them, the writing one included. Keys are written in the canonical
//! [`key_text`](crate::key_text()) form, byte for byte as the layer writes it, for every key
//! type that has one: integers, strings, enums, bool, bytes, UUIDs, decimals, dates, times
//! and date-times with or without a zone, and composites of these. TRUNCATE logs the whole entity on Postgres; MariaDB/MySQL fire no trigger on it.

mod key_sql;
mod postgres;
pub(crate) mod prepare;
mod row_level;
mod spec;

pub use spec::ORIGIN;

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Iterable, PrimaryKeyToColumn};
use sea_orm::{IdenStatic, ModelTrait, Statement};

use crate::error::{Error, InvalidSetting, Result};
use key_sql::{KeyColumn, KeyKind};
use spec::{POSTGRES_SUFFIXES, ROW_SUFFIXES, Spec};

/// The triggers that log an entity's changes: its table, its key columns and the DDL that
/// installs and removes them on each backend. Made by [`for_entity`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Triggers {
    spec: Spec,
}

/// The triggers of entity `E`.
///
/// # Errors
/// [`Error::InvalidConfig`] (setting `capture`) if a primary-key column's type has no
/// canonical key text in this build ([`key_text`](crate::key_text()) and the README's Key
/// types list them; floats and JSON have none, and UUIDs, decimals, dates and times need this
/// crate's feature for them).
pub fn for_entity<E: EntityTrait>() -> Result<Triggers> {
    let entity = E::default();
    let keys = E::PrimaryKey::iter()
        .map(|key| {
            let column = key.into_column();
            let ty = <E::Model as ModelTrait>::get_value_type(column);
            let kind = KeyKind::of(&ty).ok_or_else(|| {
                Error::InvalidConfig {
                    entity: entity.table_name(),
                    source: InvalidSetting {
                        setting: "capture",
                        reason: format!(
                            "key column `{}` has a value type ({ty:?}) without a key text in this build (see `key_text`; UUIDs, decimals, dates and times need this crate's features `with-uuid`, `with-rust_decimal`, `with-chrono`, `with-time`): triggers cannot write it",
                            column.as_str()
                        ),
                    },
                }
            })?;
            Ok(KeyColumn {
                name: column.as_str().to_owned(),
                kind,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Triggers {
        spec: Spec {
            table: entity.table_name().to_owned(),
            schema: entity.schema_name().map(str::to_owned),
            keys,
        },
    })
}

/// Installs `E`'s triggers on `db` ([`Triggers::install`]).
///
/// # Errors
/// As [`for_entity`] and [`Triggers::install`].
pub async fn install<E: EntityTrait, C: ConnectionTrait>(db: &C) -> Result<()> {
    for_entity::<E>()?.install(db).await
}

/// Removes `E`'s triggers from `db` ([`Triggers::uninstall`]).
///
/// # Errors
/// As [`for_entity`] and [`Triggers::uninstall`].
pub async fn uninstall<E: EntityTrait, C: ConnectionTrait>(db: &C) -> Result<()> {
    for_entity::<E>()?.uninstall(db).await
}

impl Triggers {
    /// The entity's table.
    pub fn table(&self) -> &str {
        &self.spec.table
    }

    /// The statements that install the triggers on `backend`, in order. Each may run again:
    /// a trigger that exists is kept.
    pub fn up(&self, backend: DbBackend) -> Vec<String> {
        match backend {
            DbBackend::Postgres => postgres::up(&self.spec),
            _ => row_level::up(backend, &self.spec),
        }
    }

    /// The statements that remove every trigger (and, on Postgres, the function) [`up`](Self::up)
    /// creates, in order. Each may run again.
    pub fn down(&self, backend: DbBackend) -> Vec<String> {
        match backend {
            DbBackend::Postgres => postgres::down(&self.spec),
            _ => row_level::down(backend, &self.spec),
        }
    }

    /// Installs the triggers on `db`, as [`up`](Self::up) does. Installing twice is a no-op.
    /// The invalidation log table must exist (see
    /// [`outbox::create_tables`](crate::outbox::create_tables)).
    ///
    /// On Postgres it is one statement that first takes a transaction-level advisory lock, so
    /// instances that install at the same moment (several replicas starting with
    /// `install_triggers`) take turns instead of failing on each other's catalog rows.
    ///
    /// # Errors
    /// [`Error::Db`] with the database's error. On MySQL/MariaDB and SQLite, statements run
    /// before it stay applied (run it inside a transaction to have all or nothing where the
    /// backend allows it); on Postgres the one statement is all or nothing.
    pub async fn install<C: ConnectionTrait>(&self, db: &C) -> Result<()> {
        match db.get_database_backend() {
            DbBackend::Postgres => self.run(db, vec![postgres::install(&self.spec)]).await,
            backend => self.run(db, self.up(backend)).await,
        }
    }

    /// Runs [`down`](Self::down) on `db`: removes every trigger and function `install`
    /// created. Removing what is not there is a no-op.
    ///
    /// # Errors
    /// [`Error::Db`] with the database's error.
    pub async fn uninstall<C: ConnectionTrait>(&self, db: &C) -> Result<()> {
        self.run(db, self.down(db.get_database_backend())).await
    }

    /// Whether every trigger [`install`](Self::install) creates exists on `db`.
    ///
    /// # Errors
    /// [`Error::Db`] if the catalog could not be read (on Postgres, also if the table does
    /// not exist).
    pub async fn installed<C: ConnectionTrait>(&self, db: &C) -> Result<bool> {
        let backend = db.get_database_backend();
        let (sql, expected) = match backend {
            DbBackend::Postgres => (postgres::count(&self.spec), POSTGRES_SUFFIXES.len()),
            _ => (row_level::count(backend, &self.spec), ROW_SUFFIXES.len()),
        };
        let row = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?;
        let n = match row {
            Some(row) => row.try_get::<i64>("", "n")?,
            None => 0,
        };
        Ok(usize::try_from(n).is_ok_and(|n| n == expected))
    }

    async fn run<C: ConnectionTrait>(&self, db: &C, statements: Vec<String>) -> Result<()> {
        for sql in statements {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Triggers {
        Triggers {
            spec: Spec {
                table: "users".to_owned(),
                schema: None,
                keys: vec![KeyColumn {
                    name: "id".to_owned(),
                    kind: KeyKind::Integer,
                }],
            },
        }
    }

    #[test]
    fn down_names_what_up_creates() {
        for backend in [DbBackend::Postgres, DbBackend::MySql, DbBackend::Sqlite] {
            let up = users().up(backend).join("\n");
            for statement in users().down(backend) {
                let name = statement
                    .split_whitespace()
                    .nth(4)
                    .unwrap_or_default()
                    .trim_end_matches("()")
                    .to_owned();
                assert!(up.contains(&name), "{backend:?}: {name} not in {up}");
            }
        }
    }
}
