//! Typed cache keys: an entity's own primary-key type (`i64`, `(i64, i64)`, ...), never a
//! formatted string. One store per entity, so the table name is not part of the key.

use std::hash::Hash;

use sea_orm::sea_query::{FromValueTuple, IntoValueTuple, ValueTuple};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, Iterable, ModelTrait,
    PrimaryKeyToColumn, PrimaryKeyTrait, TryIntoModel,
};

use crate::cached::CachedEntity;

/// The primary-key type of entity `E`: the cache key of its store.
pub type KeyOf<E> = <<E as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType;

/// An entity the cache can hold: it declares its cache configuration ([`CachedEntity`], from
/// `#[derive(Cached)]`), its models are cheap to share and its primary key is hashable.
///
/// Implemented for every SeaORM entity that implements [`CachedEntity`] and whose primary-key
/// type is `Hash + Eq + Clone` (all integer, string and UUID keys, and tuples of them); there is
/// nothing to implement by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: add `#[derive(Cached)]` to its `Model`",
    label = "not a cacheable entity",
    note = "an entity is cached when its `Model` has `#[derive(Cached)]` next to `DeriveEntityModel` \
            (`#[cache(...)]` configures it) and its primary key is `Hash + Eq + Clone`"
)]
pub trait CacheableEntity:
    CachedEntity
    + EntityTrait<
        Model: Sync + IntoActiveModel<<Self as EntityTrait>::ActiveModel> + 'static,
        ActiveModel: Send + Sync + TryIntoModel<<Self as EntityTrait>::Model> + 'static,
        PrimaryKey: PrimaryKeyTrait<ValueType: Hash + Eq + Clone + Sync + 'static>,
    > + Default
    + Send
    + Sync
    + 'static
{
}

impl<E> CacheableEntity for E where
    E: CachedEntity
        + EntityTrait<
            Model: Sync + IntoActiveModel<<E as EntityTrait>::ActiveModel> + 'static,
            ActiveModel: Send + Sync + TryIntoModel<<E as EntityTrait>::Model> + 'static,
            PrimaryKey: PrimaryKeyTrait<ValueType: Hash + Eq + Clone + Sync + 'static>,
        > + Default
        + Send
        + Sync
        + 'static
{
}

/// The key of a model.
pub(crate) fn key_of_model<E: CacheableEntity>(model: &E::Model) -> KeyOf<E> {
    KeyOf::<E>::from_value_tuple(model.get_primary_key_value())
}

/// The key an ActiveModel addresses, if every key column is set.
pub(crate) fn key_of_active_model<E: CacheableEntity>(am: &E::ActiveModel) -> Option<KeyOf<E>> {
    am.get_primary_key_value().map(KeyOf::<E>::from_value_tuple)
}

/// `pk = key` as a condition (one equality per key column), for composite keys too.
pub(crate) fn key_condition<E: CacheableEntity>(key: &KeyOf<E>) -> Condition {
    let values: ValueTuple = key.clone().into_value_tuple();
    E::PrimaryKey::iter()
        .zip(values)
        .fold(Condition::all(), |cond, (pk, value)| {
            cond.add(pk.into_column().eq(value))
        })
}

/// `pk IN keys`, as a disjunction of [`key_condition`]s.
pub(crate) fn keys_condition<'a, E: CacheableEntity>(
    keys: impl IntoIterator<Item = &'a KeyOf<E>>,
) -> Condition {
    keys.into_iter().fold(Condition::any(), |cond, key| {
        cond.add(key_condition::<E>(key))
    })
}
