//! [`CachedEntity`]: the cache configuration an entity declares where it is defined, with
//! `#[derive(Cached)]`.

use sea_orm::EntityTrait;

use crate::config::CacheConfig;

/// An entity that declares how it is cached: its default [`CacheConfig`].
///
/// Implement it with `#[derive(Cached)]` on the entity's `Model`, next to `DeriveEntityModel`,
/// and set the configuration with `#[cache(...)]` (see [`Cached`](crate::Cached) for every
/// setting). It is optional: any SeaORM entity can be cached
/// ([`CacheLayerBuilder::entity`](crate::CacheLayerBuilder::entity)), including one from an
/// entity crate that does not depend on this library; the derive is the way to declare an
/// entity's defaults where it is defined.
///
/// [`CacheLayerBuilder::cached`](crate::CacheLayerBuilder::cached) starts from
/// `E::cache_config()` (and `E::model_codec()`), so the builder overrides the derive setting
/// by setting.
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

    /// How write-behind stores a model in the outbox table. `#[derive(Cached)]` returns the
    /// JSON codec when `#[cache(policy = "write_behind")]` is declared (the `Model` must then
    /// implement serde's `Serialize` and `Deserialize`, checked at compile time), and `None`
    /// otherwise: such an entity is made write-behind in the builder with
    /// [`CacheLayerBuilder::write_behind`](crate::CacheLayerBuilder::write_behind), which
    /// states the serde bound itself.
    fn model_codec() -> Option<ModelCodec<Self::Model>> {
        None
    }
}

/// Encodes a model for the outbox table and decodes it back.
#[derive(Debug)]
pub struct ModelCodec<M> {
    /// The model as text.
    pub encode: fn(&M) -> Result<String, String>,
    /// The model back from text; an error moves the outbox row to the dead-letter table.
    pub decode: fn(&str) -> Result<M, String>,
}

impl<M> Clone for ModelCodec<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for ModelCodec<M> {}

impl<M: serde::Serialize + serde::de::DeserializeOwned> ModelCodec<M> {
    // (The only constructor: a codec is always a bound the compiler checked.)
    /// The JSON codec of a serde model.
    pub fn json() -> Self {
        Self {
            encode: |model| serde_json::to_string(model).map_err(|e| e.to_string()),
            decode: |text| serde_json::from_str(text).map_err(|e| e.to_string()),
        }
    }
}
