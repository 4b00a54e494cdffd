//! Typed cache keys: an entity's own primary-key type (`i64`, `(i64, i64)`, ...), never a
//! formatted string. One store per entity, so the table name is not part of the key.

use std::hash::Hash;

use sea_orm::sea_query::{ArrayType, FromValueTuple, IntoValueTuple, ValueTuple};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, IntoActiveModel, Iterable,
    ModelTrait, PrimaryKeyToColumn, PrimaryKeyTrait, TryIntoModel, Value,
};

use crate::key_text::values_of_text;
pub use crate::key_text::{KeyTextError, key_text};

/// The primary-key type of entity `E`: the cache key of its store.
pub type KeyOf<E> = <<E as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType;

/// An entity the cache can hold: any SeaORM entity whose primary-key type is
/// `Hash + Eq + Clone` (all integer, string and UUID keys, and tuples of them).
///
/// Implemented for every such entity, including those of an entity crate that does not depend
/// on this library (as `sea-orm-cli generate entity` writes them); there is nothing to
/// implement by hand. `#[derive(Cached)]` ([`CachedEntity`](crate::CachedEntity)) is optional:
/// it declares the entity's defaults where it is defined.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: its primary key must be `Hash + Eq + Clone`",
    label = "not a cacheable entity",
    note = "any SeaORM entity whose primary key is `Hash + Eq + Clone` (integers, strings, UUIDs and tuples of them) can be cached"
)]
pub trait CacheableEntity:
    EntityTrait<
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
    E: EntityTrait<
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

/// The value types of `E`'s key columns, in key order.
pub(crate) fn key_types<E: EntityTrait>() -> Vec<ArrayType> {
    E::PrimaryKey::iter()
        .map(|key| <E::Model as ModelTrait>::get_value_type(key.into_column()))
        .collect()
}

/// The key of `E` that `values` (one per key column, in key order) name, checked against
/// the key's Rust types (an `ActiveEnum` value must be one of its variants).
pub(crate) fn key_of_values<E: CacheableEntity>(
    values: Vec<Value>,
) -> std::result::Result<KeyOf<E>, DbErr> {
    let mut am = E::ActiveModel::default();
    for (key, value) in E::PrimaryKey::iter().zip(values) {
        am.try_set(key.into_column(), value)?;
    }
    // Every key column was set above, each from a value its field's type accepted, so the
    // tuple has the key's arity and variants.
    am.get_primary_key_value()
        .map(KeyOf::<E>::from_value_tuple)
        .ok_or_else(|| DbErr::Type("a key column was not set".to_owned()))
}

/// The key of entity `E` that a canonical key text ([`key_text`]) names: the inverse of
/// `key_text`, typed.
///
/// ```
/// use sea_orm::sea_query::IntoValueTuple;
/// use sea_orm_cache::{key_from_text, key_text};
/// let text = key_text(7_i64.into_value_tuple());
/// assert_eq!(key_from_text::<entity::user::Entity>(&text).unwrap(), 7);
/// assert!(key_from_text::<entity::user::Entity>(r#"["seven"]"#).is_err());
/// ```
///
/// # Errors
/// [`KeyTextError`] if the text is not a JSON array of one value per key column, each of its
/// column's type.
pub fn key_from_text<E: CacheableEntity>(
    text: &str,
) -> std::result::Result<KeyOf<E>, KeyTextError> {
    let values = values_of_text(text, &key_types::<E>())?;
    key_of_values::<E>(values).map_err(|err| KeyTextError::Value {
        text: text.to_owned(),
        value: text.to_owned(),
        expected: err.to_string(),
    })
}
