//! The example tables, created from the entity definitions so every backend gets matching types.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{EntityTrait, Schema};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn create<E: EntityTrait>(manager: &SchemaManager<'_>, entity: E) -> TableCreateStatement {
    let schema = Schema::new(manager.get_database_backend());
    schema
        .create_table_from_entity(entity)
        .if_not_exists()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(create(manager, entity::user::Entity))
            .await?;
        manager
            .create_table(create(manager, entity::post::Entity))
            .await?;
        manager
            .create_table(create(manager, entity::profile::Entity))
            .await?;
        manager
            .create_table(create(manager, entity::membership::Entity))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["memberships", "profiles", "posts", "users"] {
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
