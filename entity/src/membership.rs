//! `memberships`: a composite primary key `(org_id, user_id)`.

use sea_orm::entity::prelude::*;
use sea_orm_cache::Cached;
use serde::{Deserialize, Serialize};

/// A membership row. Cached write-through.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, Cached)]
#[sea_orm(table_name = "memberships")]
#[cache(policy = "write_through")]
pub struct Model {
    /// Organisation, first part of the key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: i64,
    /// Member, second part of the key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    /// Role in the organisation.
    pub role: String,
}

/// `memberships` has no relations the examples use.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
