//! `profiles`: the primary key is set by the client (the owning user's id), so a write-behind
//! insert knows its key before the row reaches the database.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A profile row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "profiles")]
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
