use sea_orm::entity::prelude::*;
use sea_orm_cache::Cached;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
#[sea_orm(table_name = "rows")]
#[cache(staleness_budget = "0.01%", on_over_budget = "shorten-tl")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
