//! `users`: an auto-increment key and a unique email.

use sea_orm::entity::prelude::*;
use sea_orm_cache::Cached;
use serde::{Deserialize, Serialize};

/// A user row. Cached read-through; the settings spelled out are the defaults.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, Cached)]
#[sea_orm(table_name = "users")]
#[cache(
    policy = "read_through",
    ttl = "5m",
    ttl_jitter = "10%",
    capacity = 10_000
)]
pub struct Model {
    /// Database-assigned key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique email address.
    #[sea_orm(unique)]
    pub email: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub bio: String,
    /// Last change, in milliseconds since the Unix epoch (set by the application).
    pub updated_at: i64,
}

/// Relations of `users`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// A user has many posts.
    #[sea_orm(has_many = "super::post::Entity")]
    Post,
}

impl Related<super::post::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Post.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
