//! Typed cache keys: an entity's own primary-key type (`i64`, `(i64, i64)`, ...), never a
//! formatted string. One store per entity, so the table name is not part of the key.

use std::hash::Hash;

use sea_orm::Value;
use sea_orm::sea_query::{FromValueTuple, IntoValueTuple, ValueTuple};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, Iterable, ModelTrait,
    PrimaryKeyToColumn, PrimaryKeyTrait, TryIntoModel,
};

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

/// A primary key as text, in the one canonical encoding every stored key uses (the outbox's
/// `pk` column today; the invalidation log and database triggers build on it): a JSON array of
/// the key's column values, in primary-key order, with no spaces.
///
/// | value | text | SQL that writes the same text |
/// |---|---|---|
/// | integers | the decimal number: `[42]`, `[-7]` | `'[' \|\| id \|\| ']'` |
/// | strings, chars, enums | a JSON string (serde_json escaping): `["ada"]` | Postgres `to_json(s)::text`, SQLite `json_quote(s)`, MySQL `JSON_QUOTE(s)` |
/// | bool | `true` / `false` | |
/// | bytes | a JSON string of lowercase hex: `["00ff"]` | Postgres `encode(b, 'hex')`, SQLite / MySQL `lower(hex(b))` |
/// | NULL | `null` | |
/// | any other type (UUID, dates, decimals...) | its JSON form as sea-query writes it, e.g. `["67e55044-10b1-426f-9247-bb680e5fe0c8"]` | |
///
/// A composite key joins its values with `,`: `[1,2]`, `[3,"x"]`.
///
/// ```
/// use sea_orm::sea_query::IntoValueTuple;
/// assert_eq!(sea_orm_cache::key_text((1_i64, "a\"b".to_owned()).into_value_tuple()), r#"[1,"a\"b"]"#);
/// assert_eq!(sea_orm_cache::key_text(7_i32.into_value_tuple()), "[7]");
/// ```
pub fn key_text(values: ValueTuple) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(16);
    out.push('[');
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = match value {
            Value::TinyInt(Some(v)) => write!(out, "{v}"),
            Value::SmallInt(Some(v)) => write!(out, "{v}"),
            Value::Int(Some(v)) => write!(out, "{v}"),
            Value::BigInt(Some(v)) => write!(out, "{v}"),
            Value::TinyUnsigned(Some(v)) => write!(out, "{v}"),
            Value::SmallUnsigned(Some(v)) => write!(out, "{v}"),
            Value::Unsigned(Some(v)) => write!(out, "{v}"),
            Value::BigUnsigned(Some(v)) => write!(out, "{v}"),
            Value::Bool(Some(v)) => write!(out, "{v}"),
            Value::String(Some(s)) => write!(out, "{}", serde_json::Value::String(s)),
            Value::Char(Some(c)) => write!(out, "{}", serde_json::Value::String(c.to_string())),
            Value::Bytes(Some(bytes)) => {
                out.push('"');
                for byte in bytes {
                    let _ = write!(out, "{byte:02x}");
                }
                out.push('"');
                Ok(())
            }
            other => write!(
                out,
                "{}",
                sea_orm::sea_query::sea_value_to_json_value(&other)
            ),
        };
    }
    out.push(']');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a failure is the report.
mod tests {
    use sea_orm::sea_query::{IntoValueTuple, ValueTuple};

    use super::key_text;

    #[test]
    fn key_text_is_a_json_array_without_spaces() {
        assert_eq!(key_text(42_i64.into_value_tuple()), "[42]");
        assert_eq!(key_text((-1_i32, 2_u64).into_value_tuple()), "[-1,2]");
        assert_eq!(
            key_text(("é\n\"".to_owned(), 3_i16).into_value_tuple()),
            r#"["é\n\"",3]"#
        );
        assert_eq!(key_text(true.into_value_tuple()), "[true]");
        assert_eq!(
            key_text(ValueTuple::One(sea_orm::Value::Bytes(Some(vec![0, 255])))),
            r#"["00ff"]"#
        );
        assert_eq!(
            key_text(ValueTuple::One(sea_orm::Value::Int(None))),
            "[null]"
        );
    }

    #[test]
    fn key_text_is_what_serde_json_writes_for_the_values() {
        let key = ("a,b".to_owned(), 9_i64, "[x]".to_owned());
        let json = serde_json::to_string(&serde_json::json!(["a,b", 9, "[x]"])).unwrap();
        assert_eq!(key_text(key.into_value_tuple()), json);
    }
}
