use sea_orm::entity::prelude::*;
use sea_orm_cache::Cached;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
#[sea_orm(table_name = "users")]
#[cache(policy = "read_through", tll = "5m")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
