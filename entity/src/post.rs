//! `posts`: each belongs to a user.

use sea_orm::entity::prelude::*;
use sea_orm_cache::Cached;
use serde::{Deserialize, Serialize};

/// A post row. Cached aside: the caller loads on a miss (`get_or_load`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, Cached)]
#[sea_orm(table_name = "posts")]
#[cache(policy = "cache_aside", ttl = "1m")]
pub struct Model {
    /// Database-assigned key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The author.
    pub user_id: i64,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
}

/// Relations of `posts`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// A post belongs to a user.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
