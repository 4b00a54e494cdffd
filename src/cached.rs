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

    /// How write-behind stores a model in the outbox table. `#[derive(Cached)]` fills it in
    /// when the `Model` implements serde's `Serialize` and `Deserialize` (as JSON); `None`
    /// otherwise, and such an entity cannot use [`Policy::WriteBehind`](crate::Policy).
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
    /// The JSON codec of a serde model.
    pub fn json() -> Self {
        Self {
            encode: |model| serde_json::to_string(model).map_err(|e| e.to_string()),
            decode: |text| serde_json::from_str(text).map_err(|e| e.to_string()),
        }
    }
}

/// Support for `#[derive(Cached)]`; not public API.
#[doc(hidden)]
pub mod __private {
    use std::marker::PhantomData;

    use super::ModelCodec;

    /// Picks the JSON codec when `M` is a serde model, and `None` otherwise, by autoref
    /// specialisation (the derive calls `(&Probe::<Model>::new()).codec()` on a concrete type).
    #[derive(Debug)]
    pub struct Probe<M>(PhantomData<M>);

    impl<M> Probe<M> {
        /// A probe for `M`.
        pub fn new() -> Self {
            Self(PhantomData)
        }
    }

    impl<M> Default for Probe<M> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Chosen when `M` is a serde model.
    pub trait ViaSerde<M> {
        /// The JSON codec.
        fn codec(&self) -> Option<ModelCodec<M>>;
    }

    impl<M: serde::Serialize + serde::de::DeserializeOwned> ViaSerde<M> for Probe<M> {
        fn codec(&self) -> Option<ModelCodec<M>> {
            Some(ModelCodec::json())
        }
    }

    /// Chosen otherwise.
    pub trait WithoutSerde<M> {
        /// No codec.
        fn codec(&self) -> Option<ModelCodec<M>>;
    }

    impl<M> WithoutSerde<M> for &Probe<M> {
        fn codec(&self) -> Option<ModelCodec<M>> {
            None
        }
    }
}
