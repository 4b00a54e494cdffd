//! Migrations for sea-orm-cache's example entities.
//!
//! Add [`Migrator`] to a service, or run it directly: `Migrator::up(&db, None).await?`.

pub use sea_orm_migration::prelude::*;

mod example_database;
mod m20261126_000001_example_tables;

pub use example_database::{
    EXAMPLE_URL_VAR, example_database, open_example_database, with_database,
};

/// The write-behind outbox tables, shipped by the library (its `migration` feature); re-exported
/// so `migration::OutboxMigration` keeps working. Its name is still `m20261126_000002_outbox`.
pub use sea_orm_cache::migration::OutboxMigration;

/// Applies the example tables (`users`, `posts`, `profiles`, `memberships`) and the
/// write-behind outbox tables.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_example_tables::Migration),
            Box::new(OutboxMigration),
        ]
    }
}
