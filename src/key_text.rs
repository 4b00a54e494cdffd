//! The canonical key text: a primary key as the text the outbox, the invalidation log and
//! the database triggers store ([`key_text`]), and back ([`value_of_json`]), typed.
//!
//! One encoding per value type, chosen so that each backend's trigger SQL can write it from
//! the stored column byte for byte (`triggers/key_sql.rs`):
//!
//! | value | text |
//! |---|---|
//! | integers | the decimal number: `42`, `-7` |
//! | strings, chars, enums | a JSON string (serde_json escaping): `"ada"` |
//! | bool | `true` / `false` |
//! | bytes | a JSON string of lowercase hex: `"00ff"` |
//! | UUID | a JSON string, lowercase and hyphenated: `"67e55044-10b1-426f-9247-bb680e5fe0c8"` |
//! | decimal | a JSON string of the number without trailing zeros: `"1.5"` for 1.50, `"-3"` |
//! | date | `"2024-03-05"` |
//! | time of day | `"13:04:05"`, with the fraction of a second if any, without trailing zeros: `"13:04:05.5"` |
//! | date and time | `"2024-03-05 13:04:05.5"` |
//! | date and time with a zone | the instant in UTC, then `Z`: `"2024-03-05 11:04:05.5Z"` |
//! | NULL | `null` |
//!
//! Decoding reads these, and also a `T` between date and time, any number of fraction digits
//! and an offset other than `Z` (`+02:00`), so a text some other writer made lands on the same
//! key.

use std::fmt::Write;

use sea_orm::Value;
use sea_orm::sea_query::{ArrayType, Enum, OptionEnum, ValueTuple};
use serde_json::Value as Json;

/// Why a key text names no key of an entity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyTextError {
    /// The text is not a JSON array.
    #[error("key text {text:?} is not a JSON array")]
    NotAnArray {
        /// The text.
        text: String,
    },
    /// The array has another number of values than the key has columns.
    #[error("key text {text:?} has {got} values; the key has {expected} columns")]
    Arity {
        /// The text.
        text: String,
        /// Key columns.
        expected: usize,
        /// Values in the text.
        got: usize,
    },
    /// A value does not read as its column's type.
    #[error("value {value} of key text {text:?} is not a {expected}")]
    Value {
        /// The text.
        text: String,
        /// The value.
        value: String,
        /// The column's value type.
        expected: String,
    },
    /// The key column's type has no key text in this build: its feature of this crate
    /// (`with-uuid`, `with-chrono`, `with-time`, `with-rust_decimal`) is off, or the type is
    /// not one a key can have (floats, JSON, ...).
    #[error("key column type {type_name} has no key text (is this crate's feature for it on?)")]
    Unsupported {
        /// The column's value type.
        type_name: String,
    },
}

/// A primary key as text, in the one canonical encoding every stored key uses (the outbox's
/// `pk` column, the invalidation log's, and what the database triggers write): a JSON array
/// of the key's column values, in primary-key order, with no spaces.
///
/// | value | text | trigger SQL, Postgres |
/// |---|---|---|
/// | integers | the decimal number: `[42]`, `[-7]` | `(id)::text` |
/// | strings, chars, enums | a JSON string (serde_json escaping): `["ada"]` | `to_json(s)::text` |
/// | bool | `true` / `false` | `CASE WHEN b THEN 'true' ELSE 'false' END` |
/// | bytes | a JSON string of lowercase hex: `["00ff"]` | `encode(b, 'hex')` |
/// | UUID | a JSON string, lowercase, hyphenated | `u::text` |
/// | decimal | a JSON string without trailing zeros: `["1.5"]` for 1.50 | `trim_scale(d)::text` |
/// | date | `["2024-03-05"]` | `to_char(d, 'YYYY-MM-DD')` |
/// | time | `["13:04:05.5"]`: the fraction of a second only if not zero, without trailing zeros | `to_char(t, 'HH24:MI:SS.US')`, trimmed |
/// | date-time | `["2024-03-05 13:04:05.5"]` | `to_char(t, 'YYYY-MM-DD HH24:MI:SS.US')`, trimmed |
/// | date-time with a zone | the instant in UTC, then `Z`: `["2024-03-05 11:04:05Z"]` | `to_char(t AT TIME ZONE 'UTC', ...) \|\| 'Z'` |
/// | NULL | `null` | |
///
/// A composite key joins its values with `,`: `[1,2]`, `[3,"x"]`. UUIDs, decimals and dates
/// and times need this crate's features `with-uuid`, `with-rust_decimal`, `with-chrono` and
/// `with-time` (on by default); without them such a value is written as sea-query's JSON
/// form and other instances cannot read it back (they drop the whole entity instead).
///
/// ```
/// use sea_orm::sea_query::IntoValueTuple;
/// assert_eq!(sea_orm_cache::key_text((1_i64, "a\"b".to_owned()).into_value_tuple()), r#"[1,"a\"b"]"#);
/// assert_eq!(sea_orm_cache::key_text(7_i32.into_value_tuple()), "[7]");
/// ```
pub fn key_text(values: ValueTuple) -> String {
    let mut out = String::with_capacity(16);
    out.push('[');
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_value(&mut out, value);
    }
    out.push(']');
    out
}

/// `s` as a JSON string.
fn write_json_string(out: &mut String, s: &str) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{}", Json::String(s.to_owned()));
}

/// Appends one value's canonical text.
fn write_value(out: &mut String, value: Value) {
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
        Value::String(Some(s)) => {
            write_json_string(out, &s);
            Ok(())
        }
        Value::Char(Some(c)) => {
            write_json_string(out, c.encode_utf8(&mut [0; 4]));
            Ok(())
        }
        Value::Enum(OptionEnum::Some(e)) => {
            write_json_string(out, &e.value);
            Ok(())
        }
        Value::Bytes(Some(bytes)) => {
            out.push('"');
            for byte in bytes {
                let _ = write!(out, "{byte:02x}");
            }
            out.push('"');
            Ok(())
        }
        #[cfg(feature = "with-uuid")]
        Value::Uuid(Some(u)) => write!(out, "\"{}\"", u.hyphenated()),
        #[cfg(feature = "with-rust_decimal")]
        Value::Decimal(Some(d)) => write!(out, "\"{}\"", d.normalize()),
        #[cfg(feature = "with-chrono")]
        value @ (Value::ChronoDate(Some(_))
        | Value::ChronoTime(Some(_))
        | Value::ChronoDateTime(Some(_))
        | Value::ChronoDateTimeUtc(Some(_))
        | Value::ChronoDateTimeLocal(Some(_))
        | Value::ChronoDateTimeWithTimeZone(Some(_))) => {
            chrono_text::write(out, value);
            Ok(())
        }
        #[cfg(feature = "with-time")]
        value @ (Value::TimeDate(Some(_))
        | Value::TimeTime(Some(_))
        | Value::TimeDateTime(Some(_))
        | Value::TimeDateTimeWithTimeZone(Some(_))) => {
            time_text::write(out, value);
            Ok(())
        }
        other if is_null(&other) => write!(out, "null"),
        // A type without its feature here (or not a key type): sea-query's JSON form, which
        // the decoder refuses, so other instances drop the whole entity.
        other => write!(
            out,
            "{}",
            sea_orm::sea_query::sea_value_to_json_value(&other)
        ),
    };
}

/// Whether `value` is a NULL of any type.
fn is_null(value: &Value) -> bool {
    *value == value.as_null()
}

/// The value of type `ty` that `json` (one element of a key text) names.
///
/// # Errors
/// `Err(None)` if the column type has no key text in this build, `Err(Some(()))` if `json`
/// does not read as that type.
pub(crate) fn value_of_json(json: &Json, ty: &ArrayType) -> Result<Value, Option<()>> {
    let int = || -> Option<i128> {
        match json {
            Json::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            Json::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    let text = || json.as_str().ok_or(Some(()));
    let bad = Some(());
    Ok(match ty {
        ArrayType::Bool => match json {
            Json::Bool(b) => Value::Bool(Some(*b)),
            _ => return Err(bad),
        },
        ArrayType::TinyInt => {
            Value::TinyInt(Some(int().and_then(|i| i.try_into().ok()).ok_or(bad)?))
        }
        ArrayType::SmallInt => {
            Value::SmallInt(Some(int().and_then(|i| i.try_into().ok()).ok_or(bad)?))
        }
        ArrayType::Int => Value::Int(Some(int().and_then(|i| i.try_into().ok()).ok_or(bad)?)),
        ArrayType::BigInt => Value::BigInt(Some(int().and_then(|i| i.try_into().ok()).ok_or(bad)?)),
        ArrayType::TinyUnsigned => {
            Value::TinyUnsigned(Some(int().and_then(|i| i.try_into().ok()).ok_or(bad)?))
        }
        ArrayType::SmallUnsigned => {
            Value::SmallUnsigned(Some(int().and_then(|i| i.try_into().ok()).ok_or(bad)?))
        }
        ArrayType::Unsigned => {
            Value::Unsigned(Some(int().and_then(|i| i.try_into().ok()).ok_or(bad)?))
        }
        ArrayType::BigUnsigned => {
            Value::BigUnsigned(Some(int().and_then(|i| i.try_into().ok()).ok_or(bad)?))
        }
        ArrayType::String => Value::String(Some(text()?.to_owned())),
        ArrayType::Char => {
            let mut chars = text()?.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Value::Char(Some(c)),
                _ => return Err(bad),
            }
        }
        ArrayType::Enum(type_name) => Value::Enum(OptionEnum::Some(Box::new(Enum {
            type_name: (**type_name).clone(),
            value: text()?.to_owned().into(),
        }))),
        ArrayType::Bytes => Value::Bytes(Some(hex(text()?).ok_or(bad)?)),
        #[cfg(feature = "with-uuid")]
        ArrayType::Uuid => {
            use sea_orm::sea_query::value::prelude::Uuid;
            Value::Uuid(Some(Uuid::try_parse(text()?).map_err(|_| bad)?))
        }
        #[cfg(feature = "with-rust_decimal")]
        ArrayType::Decimal => {
            use sea_orm::sea_query::value::prelude::Decimal;
            let d: Decimal = text()?.parse().map_err(|_| bad)?;
            Value::Decimal(Some(d))
        }
        #[cfg(feature = "with-chrono")]
        ArrayType::ChronoDate
        | ArrayType::ChronoTime
        | ArrayType::ChronoDateTime
        | ArrayType::ChronoDateTimeUtc
        | ArrayType::ChronoDateTimeLocal
        | ArrayType::ChronoDateTimeWithTimeZone => chrono_text::read(text()?, ty).ok_or(bad)?,
        #[cfg(feature = "with-time")]
        ArrayType::TimeDate
        | ArrayType::TimeTime
        | ArrayType::TimeDateTime
        | ArrayType::TimeDateTimeWithTimeZone => time_text::read(text()?, ty).ok_or(bad)?,
        _ => return Err(None),
    })
}

/// Whether values of type `ty` have a key text in this build (what [`value_of_json`] reads).
pub(crate) fn has_key_text(ty: &ArrayType) -> bool {
    !matches!(value_of_json(&Json::Null, ty), Err(None))
}

/// The values of a key text, as the types `types` (the key columns', in key order).
///
/// # Errors
/// [`KeyTextError`] if the text is not an array of that many values of those types.
pub(crate) fn values_of_text(text: &str, types: &[ArrayType]) -> Result<Vec<Value>, KeyTextError> {
    let Ok(Json::Array(items)) = serde_json::from_str::<Json>(text) else {
        return Err(KeyTextError::NotAnArray {
            text: text.to_owned(),
        });
    };
    if items.len() != types.len() {
        return Err(KeyTextError::Arity {
            text: text.to_owned(),
            expected: types.len(),
            got: items.len(),
        });
    }
    items
        .iter()
        .zip(types)
        .map(|(item, ty)| {
            value_of_json(item, ty).map_err(|bad| match bad {
                None => KeyTextError::Unsupported {
                    type_name: format!("{ty:?}"),
                },
                Some(()) => KeyTextError::Value {
                    text: text.to_owned(),
                    value: item.to_string(),
                    expected: format!("{ty:?}"),
                },
            })
        })
        .collect()
}

/// `value` as type `ty`: itself if it is one, else read from its canonical text (a key
/// named by a string literal in SQL, an integer of another width).
pub(crate) fn coerce(value: &Value, ty: &ArrayType) -> Option<Value> {
    if value.array_type() == *ty {
        return Some(value.clone());
    }
    let mut text = String::new();
    write_value(&mut text, value.clone());
    let json: Json = serde_json::from_str(&text).ok()?;
    value_of_json(&json, ty).ok()
}

/// Bytes from lowercase or uppercase hex.
fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Calendar fields shared by the chrono and time encodings.
#[cfg(any(feature = "with-chrono", feature = "with-time"))]
mod civil {
    use std::fmt::Write;

    /// `YYYY-MM-DD`.
    pub(super) fn write_date(out: &mut String, year: i32, month: u32, day: u32) {
        let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    }

    /// `HH:MM:SS`, then `.` and the fraction without trailing zeros if it is not zero.
    pub(super) fn write_time(out: &mut String, hour: u32, minute: u32, second: u32, nanos: u32) {
        let _ = write!(out, "{hour:02}:{minute:02}:{second:02}");
        if nanos > 0 {
            let digits = format!("{nanos:09}");
            let _ = write!(out, ".{}", digits.trim_end_matches('0'));
        }
    }

    /// `(year, month, day)` of `YYYY-MM-DD`.
    pub(super) fn read_date(text: &str) -> Option<(i32, u32, u32)> {
        let mut parts = text.rsplitn(3, '-');
        let day = parts.next()?.parse().ok()?;
        let month = parts.next()?.parse().ok()?;
        let year = parts.next()?.parse().ok()?;
        Some((year, month, day))
    }

    /// `(hour, minute, second, nanosecond)` of `HH:MM:SS[.fraction]`.
    pub(super) fn read_time(text: &str) -> Option<(u32, u32, u32, u32)> {
        let mut parts = text.splitn(3, ':');
        let hour = parts.next()?.parse().ok()?;
        let minute = parts.next()?.parse().ok()?;
        let seconds = parts.next()?;
        let (second, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
        if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let nanos = if fraction.is_empty() {
            0
        } else {
            format!("{fraction:0<9}").parse().ok()?
        };
        Some((hour, minute, second.parse().ok()?, nanos))
    }

    /// A date-time's date and time parts (split at ` ` or `T`).
    pub(super) fn split_date_time(text: &str) -> Option<(&str, &str)> {
        text.split_once(' ').or_else(|| text.split_once('T'))
    }

    /// A zoned date-time's local part and its offset from UTC in seconds (`Z`, `+HH:MM`,
    /// `-HH:MM`, `+HH`).
    pub(super) fn split_offset(text: &str) -> Option<(&str, i32)> {
        if let Some(local) = text.strip_suffix('Z') {
            return Some((local, 0));
        }
        let (date, time) = split_date_time(text)?;
        let at = time.rfind(['+', '-'])?;
        let (clock, offset) = time.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let offset = &offset[1..];
        let (hours, minutes) = offset.split_once(':').unwrap_or((offset, "0"));
        let seconds = hours.parse::<i32>().ok()? * 3600 + minutes.parse::<i32>().ok()? * 60;
        let local = &text[..date.len() + 1 + clock.len()];
        Some((local, sign * seconds))
    }
}

#[cfg(feature = "with-chrono")]
mod chrono_text {
    use sea_orm::Value;
    use sea_orm::sea_query::ArrayType;
    use sea_orm::sea_query::value::prelude::chrono::{
        DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc,
    };

    use super::civil;

    fn write_date(out: &mut String, d: NaiveDate) {
        civil::write_date(out, d.year(), d.month(), d.day());
    }

    fn write_time(out: &mut String, t: NaiveTime) {
        civil::write_time(out, t.hour(), t.minute(), t.second(), t.nanosecond());
    }

    fn write_date_time(out: &mut String, t: NaiveDateTime) {
        write_date(out, t.date());
        out.push(' ');
        write_time(out, t.time());
    }

    fn write_instant(out: &mut String, utc: NaiveDateTime) {
        out.push('"');
        write_date_time(out, utc);
        out.push_str("Z\"");
    }

    pub(super) fn write(out: &mut String, value: Value) {
        match value {
            Value::ChronoDate(Some(d)) => {
                out.push('"');
                write_date(out, d);
                out.push('"');
            }
            Value::ChronoTime(Some(t)) => {
                out.push('"');
                write_time(out, t);
                out.push('"');
            }
            Value::ChronoDateTime(Some(t)) => {
                out.push('"');
                write_date_time(out, t);
                out.push('"');
            }
            Value::ChronoDateTimeUtc(Some(t)) => write_instant(out, t.naive_utc()),
            Value::ChronoDateTimeLocal(Some(t)) => write_instant(out, t.naive_utc()),
            Value::ChronoDateTimeWithTimeZone(Some(t)) => write_instant(out, t.naive_utc()),
            _ => {}
        }
    }

    fn date(text: &str) -> Option<NaiveDate> {
        let (y, m, d) = civil::read_date(text)?;
        NaiveDate::from_ymd_opt(y, m, d)
    }

    fn time(text: &str) -> Option<NaiveTime> {
        let (h, m, s, ns) = civil::read_time(text)?;
        NaiveTime::from_hms_nano_opt(h, m, s, ns)
    }

    fn date_time(text: &str) -> Option<NaiveDateTime> {
        let (d, t) = civil::split_date_time(text)?;
        Some(date(d)?.and_time(time(t)?))
    }

    fn instant(text: &str) -> Option<NaiveDateTime> {
        let (local, offset) = civil::split_offset(text)?;
        date_time(local)?.checked_sub_signed(chrono::Duration::seconds(i64::from(offset)))
    }

    use sea_orm::sea_query::value::prelude::chrono;

    pub(super) fn read(text: &str, ty: &ArrayType) -> Option<Value> {
        Some(match ty {
            ArrayType::ChronoDate => Value::ChronoDate(Some(date(text)?)),
            ArrayType::ChronoTime => Value::ChronoTime(Some(time(text)?)),
            ArrayType::ChronoDateTime => Value::ChronoDateTime(Some(date_time(text)?)),
            ArrayType::ChronoDateTimeUtc => Value::ChronoDateTimeUtc(Some(
                DateTime::<Utc>::from_naive_utc_and_offset(instant(text)?, Utc),
            )),
            ArrayType::ChronoDateTimeLocal => Value::ChronoDateTimeLocal(Some(
                DateTime::<Utc>::from_naive_utc_and_offset(instant(text)?, Utc)
                    .with_timezone(&Local),
            )),
            ArrayType::ChronoDateTimeWithTimeZone => Value::ChronoDateTimeWithTimeZone(Some(
                DateTime::<FixedOffset>::from_naive_utc_and_offset(
                    instant(text)?,
                    FixedOffset::east_opt(0)?,
                ),
            )),
            _ => return None,
        })
    }
}

#[cfg(feature = "with-time")]
mod time_text {
    use sea_orm::Value;
    use sea_orm::sea_query::ArrayType;
    use sea_orm::sea_query::value::prelude::time::{
        Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset,
    };

    use super::civil;

    fn write_date(out: &mut String, d: Date) {
        civil::write_date(out, d.year(), u8::from(d.month()).into(), d.day().into());
    }

    fn write_time(out: &mut String, t: Time) {
        civil::write_time(
            out,
            t.hour().into(),
            t.minute().into(),
            t.second().into(),
            t.nanosecond(),
        );
    }

    fn write_date_time(out: &mut String, t: PrimitiveDateTime) {
        write_date(out, t.date());
        out.push(' ');
        write_time(out, t.time());
    }

    pub(super) fn write(out: &mut String, value: Value) {
        out.push('"');
        match value {
            Value::TimeDate(Some(d)) => write_date(out, d),
            Value::TimeTime(Some(t)) => write_time(out, t),
            Value::TimeDateTime(Some(t)) => write_date_time(out, t),
            Value::TimeDateTimeWithTimeZone(Some(t)) => {
                let utc = t.to_offset(UtcOffset::UTC);
                write_date_time(out, PrimitiveDateTime::new(utc.date(), utc.time()));
                out.push('Z');
            }
            _ => {}
        }
        out.push('"');
    }

    fn date(text: &str) -> Option<Date> {
        let (y, m, d) = civil::read_date(text)?;
        Date::from_calendar_date(
            y,
            Month::try_from(u8::try_from(m).ok()?).ok()?,
            d.try_into().ok()?,
        )
        .ok()
    }

    fn time(text: &str) -> Option<Time> {
        let (h, m, s, ns) = civil::read_time(text)?;
        Time::from_hms_nano(
            h.try_into().ok()?,
            m.try_into().ok()?,
            s.try_into().ok()?,
            ns,
        )
        .ok()
    }

    fn date_time(text: &str) -> Option<PrimitiveDateTime> {
        let (d, t) = civil::split_date_time(text)?;
        Some(PrimitiveDateTime::new(date(d)?, time(t)?))
    }

    fn instant(text: &str) -> Option<OffsetDateTime> {
        let (local, offset) = civil::split_offset(text)?;
        let offset = UtcOffset::from_whole_seconds(offset).ok()?;
        date_time(local)?
            .assume_offset(offset)
            .checked_to_offset(UtcOffset::UTC)
    }

    pub(super) fn read(text: &str, ty: &ArrayType) -> Option<Value> {
        Some(match ty {
            ArrayType::TimeDate => Value::TimeDate(Some(date(text)?)),
            ArrayType::TimeTime => Value::TimeTime(Some(time(text)?)),
            ArrayType::TimeDateTime => Value::TimeDateTime(Some(date_time(text)?)),
            ArrayType::TimeDateTimeWithTimeZone => {
                Value::TimeDateTimeWithTimeZone(Some(instant(text)?))
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a failure is the report.
mod tests {
    use sea_orm::sea_query::{IntoValueTuple, ValueTuple};

    use super::*;

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
            key_text(ValueTuple::One(Value::Bytes(Some(vec![0, 255])))),
            r#"["00ff"]"#
        );
        assert_eq!(key_text(ValueTuple::One(Value::Int(None))), "[null]");
    }

    #[test]
    fn key_text_is_what_serde_json_writes_for_the_values() {
        let key = ("a,b".to_owned(), 9_i64, "[x]".to_owned());
        let json = serde_json::to_string(&serde_json::json!(["a,b", 9, "[x]"])).unwrap();
        assert_eq!(key_text(key.into_value_tuple()), json);
    }

    /// `value`'s text is `text`, and `text` reads back as `value`.
    fn round_trip(value: Value, text: &str) {
        let ty = value.array_type();
        assert_eq!(
            key_text(ValueTuple::One(value.clone())),
            format!("[{text}]")
        );
        let back = values_of_text(&format!("[{text}]"), std::slice::from_ref(&ty)).unwrap();
        assert_eq!(back, vec![value], "{text}");
    }

    #[test]
    fn every_plain_key_type_reads_back() {
        round_trip(Value::TinyInt(Some(i8::MIN)), "-128");
        round_trip(Value::BigUnsigned(Some(u64::MAX)), "18446744073709551615");
        round_trip(Value::Bool(Some(false)), "false");
        round_trip(Value::Char(Some('"')), r#""\"""#);
        round_trip(Value::Bytes(Some(vec![0, 1, 254])), r#""0001fe""#);
        round_trip(Value::String(Some("x\u{1}y".to_owned())), r#""x\u0001y""#);
    }

    #[cfg(all(feature = "with-uuid", feature = "with-rust_decimal"))]
    #[test]
    fn uuids_and_decimals_read_back() {
        use sea_orm::sea_query::value::prelude::{Decimal, Uuid};
        let u = Uuid::parse_str("67E55044-10B1-426F-9247-BB680E5FE0C8").unwrap();
        round_trip(
            Value::Uuid(Some(u)),
            r#""67e55044-10b1-426f-9247-bb680e5fe0c8""#,
        );
        round_trip(Value::Decimal(Some("-12.5".parse().unwrap())), r#""-12.5""#);
        // 1.50 and 1.5 are one key (equal, same hash): one text.
        let scaled: Decimal = "1.50".parse().unwrap();
        assert_eq!(
            key_text(ValueTuple::One(Value::Decimal(Some(scaled)))),
            r#"["1.5"]"#
        );
        assert_eq!(
            key_text(ValueTuple::One(Value::Decimal(Some(Decimal::ZERO)))),
            r#"["0"]"#
        );
    }

    #[cfg(all(feature = "with-chrono", feature = "with-time"))]
    #[test]
    fn dates_and_times_read_back() {
        use sea_orm::sea_query::value::prelude::chrono::{FixedOffset, NaiveDate};
        use sea_orm::sea_query::value::prelude::time;
        let d = NaiveDate::from_ymd_opt(2024, 3, 5).unwrap();
        let t = d.and_hms_micro_opt(13, 4, 5, 500_000).unwrap();
        round_trip(Value::ChronoDate(Some(d)), r#""2024-03-05""#);
        round_trip(Value::ChronoTime(Some(t.time())), r#""13:04:05.5""#);
        round_trip(Value::ChronoDateTime(Some(t)), r#""2024-03-05 13:04:05.5""#);
        round_trip(
            Value::ChronoDateTimeUtc(Some(t.and_utc())),
            r#""2024-03-05 13:04:05.5Z""#,
        );
        // The instant, whatever the offset: equal keys, one text.
        let east = t
            .and_utc()
            .with_timezone(&FixedOffset::east_opt(2 * 3600).unwrap());
        assert_eq!(
            key_text(ValueTuple::One(Value::ChronoDateTimeWithTimeZone(Some(
                east
            )))),
            r#"["2024-03-05 13:04:05.5Z"]"#
        );
        let back = values_of_text(
            r#"["2024-03-05T15:04:05.500+02:00"]"#,
            &[ArrayType::ChronoDateTimeWithTimeZone],
        )
        .unwrap();
        assert_eq!(back, vec![Value::ChronoDateTimeWithTimeZone(Some(east))]);

        let td = time::Date::from_calendar_date(2024, time::Month::March, 5).unwrap();
        let tt = time::Time::from_hms_nano(0, 0, 7, 1).unwrap();
        round_trip(Value::TimeDate(Some(td)), r#""2024-03-05""#);
        round_trip(Value::TimeTime(Some(tt)), r#""00:00:07.000000001""#);
        let pdt = time::PrimitiveDateTime::new(td, tt);
        round_trip(
            Value::TimeDateTime(Some(pdt)),
            r#""2024-03-05 00:00:07.000000001""#,
        );
        let west = pdt
            .assume_utc()
            .to_offset(time::UtcOffset::from_hms(-3, -30, 0).unwrap());
        assert_eq!(
            key_text(ValueTuple::One(Value::TimeDateTimeWithTimeZone(Some(west)))),
            r#"["2024-03-05 00:00:07.000000001Z"]"#
        );
        let back = values_of_text(
            r#"["2024-03-04 20:30:07.000000001-03:30"]"#,
            &[ArrayType::TimeDateTimeWithTimeZone],
        )
        .unwrap();
        assert_eq!(back, vec![Value::TimeDateTimeWithTimeZone(Some(west))]);
    }

    #[test]
    fn texts_that_name_no_key_are_typed_errors() {
        let int = [ArrayType::Int];
        assert!(matches!(
            values_of_text("7", &int),
            Err(KeyTextError::NotAnArray { .. })
        ));
        assert!(matches!(
            values_of_text("[1,2]", &int),
            Err(KeyTextError::Arity {
                expected: 1,
                got: 2,
                ..
            })
        ));
        assert!(matches!(
            values_of_text("[3000000000]", &int),
            Err(KeyTextError::Value { .. })
        ));
        assert!(matches!(
            values_of_text("[1.5]", &[ArrayType::Double]),
            Err(KeyTextError::Unsupported { .. })
        ));
    }

    #[test]
    fn coerce_reads_another_variant_as_the_column_type() {
        assert_eq!(
            coerce(&Value::String(Some("42".to_owned())), &ArrayType::SmallInt),
            Some(Value::SmallInt(Some(42)))
        );
        assert_eq!(
            coerce(&Value::BigInt(Some(300)), &ArrayType::TinyUnsigned),
            None
        );
    }
}
