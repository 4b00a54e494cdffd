//! `profiles`: the primary key is set by the client (the owning user's id), so a write-behind
//! insert knows its key before the row reaches the database.

use sea_orm::entity::prelude::*;
use sea_orm_cache::Cached;
use serde::{Deserialize, Serialize};

/// A profile row. Cached write-behind: its key is known before the row reaches the table.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, Cached)]
#[sea_orm(table_name = "profiles")]
#[cache(
    policy = "write_behind",
    write_behind(batch = 500, max_delay = "50ms", max_pending = 100_000)
)]
pub struct Model {
    /// Client-set key: the owning user's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    /// Display name shown on the profile.
    pub display_name: String,
    /// A counter the examples bump.
    pub visits: i64,
}

/// `profiles` has no relations the examples use.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
