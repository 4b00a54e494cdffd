// A write-behind entity must be serde: the outbox stores its models as JSON.
use sea_orm::entity::prelude::*;
use sea_orm_cache::Cached;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
#[sea_orm(table_name = "rows")]
#[cache(policy = "write_behind")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
