//! [`CachedEntity`]: the cache configuration an entity declares where it is defined, with
//! `#[derive(Cached)]`.

use sea_orm::EntityTrait;

use crate::config::CacheConfig;

/// An entity that declares how it is cached: its default [`CacheConfig`].
///
/// Implement it with `#[derive(Cached)]` on the entity's `Model`, next to `DeriveEntityModel`,
/// and set the configuration with `#[cache(...)]` (see [`Cached`](crate::Cached) for every
/// setting). Only entities that implement it can be cached: `cache.repository::<E>()` and
/// `.entity::<E>(..)` on any other entity do not compile.
///
/// [`CacheLayerBuilder::entity`](crate::CacheLayerBuilder::entity) starts from
/// `E::cache_config()`, so the builder overrides the derive setting by setting.
///
/// ```
/// use sea_orm::entity::prelude::*;
/// use sea_orm_cache::{Cached, CachedEntity, Policy};
///
/// #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
/// #[sea_orm(table_name = "users")]
/// #[cache(policy = "write_through", ttl = "1m", negative_ttl = "30s")]
/// pub struct Model {
///     #[sea_orm(primary_key)]
///     pub id: i64,
///     pub name: String,
/// }
///
/// #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// pub enum Relation {}
///
/// impl ActiveModelBehavior for ActiveModel {}
///
/// let config = Entity::cache_config();
/// assert_eq!(config.policy, Policy::WriteThrough);
/// assert_eq!(config.ttl, std::time::Duration::from_secs(60));
/// assert_eq!(config.capacity, 10_000); // not set: the default
/// ```
///
/// It can be written by hand too, for a configuration computed at run time; an entity defined
/// in a crate you do not own cannot implement it (Rust's orphan rule).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no cache configuration: it does not implement `CachedEntity`",
    label = "this entity has no `#[derive(Cached)]`",
    note = "add `#[derive(Cached)]` next to `DeriveEntityModel` on the entity's `Model` (and `#[cache(...)]` to configure it)"
)]
pub trait CachedEntity: EntityTrait {
    /// The entity's default configuration: `#[cache(...)]`'s settings over
    /// [`CacheConfig::default`].
    fn cache_config() -> CacheConfig;
}
