//! The write-behind outbox and dead-letter tables as a sea-orm-migration migration (feature
//! `migration`, which adds the optional dependency on sea-orm-migration), for services that
//! manage their schema with a `Migrator`.
//!
//! ```no_run
//! use sea_orm_migration::prelude::*;
//!
//! pub struct Migrator;
//!
//! #[async_trait::async_trait]
//! impl MigratorTrait for Migrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         vec![
//!             // ... your own migrations ...
//!             Box::new(sea_orm_cache::migration::OutboxMigration),
//!         ]
//!     }
//! }
//! ```
//!
//! Services without a migrator call
//! [`CacheLayerBuilder::create_outbox_tables`](crate::CacheLayerBuilder::create_outbox_tables)
//! instead.

use sea_orm_migration::prelude::*;

use crate::outbox::{DEAD_LETTER_TABLE, OUTBOX_TABLE, create_tables};

/// Creates `sea_orm_cache_outbox` (with its `(entity, pk, id)` index) and
/// `sea_orm_cache_dead_letter` with [`outbox::create_tables`](crate::outbox::create_tables),
/// which does nothing to tables that are already current and upgrades tables an older version
/// created, so `up` may run again. `down` drops both tables.
///
/// Its name is [`OutboxMigration::NAME`], `m20261126_000002_outbox`: the name this migration
/// had in the workspace's `migration` crate, so a database that already applied it there does
/// not apply it again.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutboxMigration;

impl OutboxMigration {
    /// The migration's name, recorded in the `seaql_migrations` table once it is applied.
    pub const NAME: &'static str = "m20261126_000002_outbox";
}

impl MigrationName for OutboxMigration {
    fn name(&self) -> &str {
        Self::NAME
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OutboxMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_tables(manager.get_connection()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [OUTBOX_TABLE, DEAD_LETTER_TABLE] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name `DeriveMigrationName` gave it in `migration/src/m20261126_000002_outbox.rs`.
    #[test]
    fn keeps_the_name_it_was_applied_under() {
        assert_eq!(OutboxMigration.name(), "m20261126_000002_outbox");
    }
}
