//! The write-behind outbox and dead-letter tables, from `sea_orm_cache::outbox`.

use sea_orm_migration::prelude::*;

/// Creates `sea_orm_cache_outbox` (with its `(entity, pk, id)` index) and
/// `sea_orm_cache_dead_letter` with `sea_orm_cache::outbox::create_tables`, which does
/// nothing to tables that are already current, so `up` may run again. Add it to your own
/// `Migrator` to use write-behind.
#[derive(DeriveMigrationName, Debug)]
pub struct OutboxMigration;

#[async_trait::async_trait]
impl MigrationTrait for OutboxMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sea_orm_cache::outbox::create_tables(manager.get_connection()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            sea_orm_cache::outbox::OUTBOX_TABLE,
            sea_orm_cache::outbox::DEAD_LETTER_TABLE,
        ] {
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
