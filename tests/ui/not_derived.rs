use sea_orm::entity::prelude::*;
use sea_orm_cache::CacheLayer;

// No `#[derive(Cached)]`: the entity cannot be cached.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {
    let layer: fn(&CacheLayer) = |cache| {
        let _users = cache.repository::<Entity>();
    };
    let _ = layer;
}
