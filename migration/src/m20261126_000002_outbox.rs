//! The write-behind outbox and dead-letter tables, from `sea_orm_cache::outbox`.

use sea_orm_migration::prelude::*;

/// Creates `sea_orm_cache_outbox` (with its `(entity, pk, id)` index) and
/// `sea_orm_cache_dead_letter`. Add it to your own `Migrator` to use write-behind.
#[derive(DeriveMigrationName, Debug)]
pub struct OutboxMigration;

#[async_trait::async_trait]
impl MigrationTrait for OutboxMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in sea_orm_cache::outbox::tables() {
            manager.create_table(table).await?;
        }
        for index in sea_orm_cache::outbox::indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
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
