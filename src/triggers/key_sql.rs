//! The canonical key text ([`key_text`](crate::key_text())) of a changed row, as a SQL expression
//! per backend, for the triggers to write into the log's `pk` column.

use sea_orm::DbBackend;
use sea_orm::sea_query::ArrayType;

use crate::key_text::has_key_text;

/// How a key column's value is written in the key text (see [`key_text`](crate::key_text())).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    not(all(
        feature = "with-uuid",
        feature = "with-rust_decimal",
        feature = "with-chrono",
        feature = "with-time"
    )),
    allow(
        dead_code,
        reason = "the kinds of types whose feature is off are never made"
    )
)]
pub(crate) enum KeyKind {
    /// An integer: its decimal digits.
    Integer,
    /// A string or an enum: a JSON string.
    Text,
    /// `true` / `false`.
    Bool,
    /// Bytes: a JSON string of lowercase hex.
    Bytes,
    /// A UUID: lowercase and hyphenated.
    Uuid,
    /// A decimal without trailing zeros.
    Decimal,
    /// `YYYY-MM-DD`.
    Date,
    /// `HH:MM:SS[.fraction]`.
    Time,
    /// `YYYY-MM-DD HH:MM:SS[.fraction]`.
    DateTime,
    /// The instant in UTC, `YYYY-MM-DD HH:MM:SS[.fraction]Z`.
    Instant,
}

impl KeyKind {
    /// The kind of a key field's value type, or `None` for a type without a key text in this
    /// build.
    pub(crate) fn of(ty: &ArrayType) -> Option<KeyKind> {
        if !has_key_text(ty) {
            return None;
        }
        Some(match ty {
            ArrayType::TinyInt
            | ArrayType::SmallInt
            | ArrayType::Int
            | ArrayType::BigInt
            | ArrayType::TinyUnsigned
            | ArrayType::SmallUnsigned
            | ArrayType::Unsigned
            | ArrayType::BigUnsigned => KeyKind::Integer,
            ArrayType::String | ArrayType::Char | ArrayType::Enum(_) => KeyKind::Text,
            ArrayType::Bool => KeyKind::Bool,
            ArrayType::Bytes => KeyKind::Bytes,
            #[cfg(feature = "with-uuid")]
            ArrayType::Uuid => KeyKind::Uuid,
            #[cfg(feature = "with-rust_decimal")]
            ArrayType::Decimal => KeyKind::Decimal,
            #[cfg(feature = "with-chrono")]
            ArrayType::ChronoDate => KeyKind::Date,
            #[cfg(feature = "with-chrono")]
            ArrayType::ChronoTime => KeyKind::Time,
            #[cfg(feature = "with-chrono")]
            ArrayType::ChronoDateTime => KeyKind::DateTime,
            #[cfg(feature = "with-chrono")]
            ArrayType::ChronoDateTimeUtc
            | ArrayType::ChronoDateTimeLocal
            | ArrayType::ChronoDateTimeWithTimeZone => KeyKind::Instant,
            #[cfg(feature = "with-time")]
            ArrayType::TimeDate => KeyKind::Date,
            #[cfg(feature = "with-time")]
            ArrayType::TimeTime => KeyKind::Time,
            #[cfg(feature = "with-time")]
            ArrayType::TimeDateTime => KeyKind::DateTime,
            #[cfg(feature = "with-time")]
            ArrayType::TimeDateTimeWithTimeZone => KeyKind::Instant,
            _ => return None,
        })
    }
}

/// One primary-key column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyColumn {
    /// The column's name.
    pub(crate) name: String,
    /// How its value is written.
    pub(crate) kind: KeyKind,
}

/// `name` as a quoted identifier of `backend`.
pub(crate) fn ident(backend: DbBackend, name: &str) -> String {
    match backend {
        DbBackend::MySql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// `text` as a SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The key text of the row `row` (`NEW`, `OLD`, or a transition table's alias) names: a JSON
/// array of the key columns' values, exactly as `key_text` writes it.
pub(crate) fn key_expr(backend: DbBackend, row: &str, keys: &[KeyColumn]) -> String {
    let mut parts = vec!["'['".to_owned()];
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            parts.push("','".to_owned());
        }
        let column = format!("{row}.{}", ident(backend, &key.name));
        parts.push(value_expr(backend, key.kind, &column));
    }
    parts.push("']'".to_owned());
    match backend {
        DbBackend::MySql => format!("CONCAT({})", parts.join(", ")),
        _ => parts.join(" || "),
    }
}

/// `text` between double quotes, as SQL.
fn quoted(backend: DbBackend, text: &str) -> String {
    match backend {
        DbBackend::MySql => format!("CONCAT('\"', {text}, '\"')"),
        _ => format!("'\"' || {text} || '\"'"),
    }
}

/// `text` (which has a `.` and fraction digits) without trailing zeros, nor the `.` if
/// nothing follows it.
fn trim_fraction(backend: DbBackend, text: &str) -> String {
    match backend {
        DbBackend::MySql => format!("TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text}))"),
        _ => format!("rtrim(rtrim({text}, '0'), '.')"),
    }
}

/// SQLite: `text` without trailing fraction zeros where it has a fraction.
fn sqlite_trim_fraction(text: &str) -> String {
    format!(
        "CASE WHEN instr({text}, '.') > 0 THEN {} ELSE {text} END",
        trim_fraction(DbBackend::Sqlite, text)
    )
}

/// The canonical text of one key column's value, as `key_text` writes it, from the value
/// as `backend` stores it (SeaORM's column types: Postgres `uuid`, `numeric`, `date`,
/// `time`, `timestamp`, `timestamptz`, `bytea`, `bool`; MariaDB/MySQL `binary(16)` UUIDs,
/// `decimal`, `timestamp` in the writing session's zone; SQLite as sqlx writes them: UUIDs
/// as 16-byte blobs, decimals, dates and times as text, zoned date-times with their offset).
fn value_expr(backend: DbBackend, kind: KeyKind, column: &str) -> String {
    let c = column;
    match (backend, kind) {
        (DbBackend::Postgres, KeyKind::Integer) => format!("({c})::text"),
        (DbBackend::Postgres, KeyKind::Text) => format!("to_json({c})::text"),
        (DbBackend::MySql, KeyKind::Integer) => c.to_owned(),
        (DbBackend::MySql, KeyKind::Text) => format!("JSON_QUOTE({c})"),
        (_, KeyKind::Integer) => c.to_owned(),
        (_, KeyKind::Text) => format!("json_quote({c})"),
        (DbBackend::MySql, KeyKind::Bool) => format!("IF({c}, 'true', 'false')"),
        (_, KeyKind::Bool) => format!("CASE WHEN {c} THEN 'true' ELSE 'false' END"),
        (DbBackend::Postgres, KeyKind::Bytes) => quoted(backend, &format!("encode({c}, 'hex')")),
        (_, KeyKind::Bytes) => quoted(backend, &format!("lower(hex({c}))")),
        (DbBackend::Postgres, KeyKind::Uuid) => quoted(backend, &format!("lower(({c})::text)")),
        (_, KeyKind::Uuid) => {
            // 16 bytes (SeaORM's `binary(16)`, sqlx's SQLite blob), else text.
            let h = format!("lower(hex({c}))");
            let dashed = match backend {
                DbBackend::MySql => format!(
                    "CONCAT_WS('-', SUBSTR({h}, 1, 8), SUBSTR({h}, 9, 4), SUBSTR({h}, 13, 4), SUBSTR({h}, 17, 4), SUBSTR({h}, 21))"
                ),
                _ => format!(
                    "substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-' || substr({h}, 13, 4) || '-' || substr({h}, 17, 4) || '-' || substr({h}, 21)"
                ),
            };
            quoted(
                backend,
                &format!("CASE WHEN length({c}) = 16 THEN {dashed} ELSE lower({c}) END"),
            )
        }
        (DbBackend::Postgres, KeyKind::Decimal) => {
            quoted(backend, &format!("trim_scale({c})::text"))
        }
        (DbBackend::MySql, KeyKind::Decimal) => quoted(
            backend,
            &format!(
                "IF(INSTR({c}, '.') > 0, {}, {c})",
                trim_fraction(backend, c)
            ),
        ),
        (_, KeyKind::Decimal) => quoted(
            backend,
            &sqlite_trim_fraction(&format!("CAST({c} AS TEXT)")),
        ),
        (DbBackend::Postgres, KeyKind::Date) => {
            quoted(backend, &format!("to_char({c}, 'YYYY-MM-DD')"))
        }
        (DbBackend::MySql, KeyKind::Date) => {
            quoted(backend, &format!("DATE_FORMAT({c}, '%Y-%m-%d')"))
        }
        (_, KeyKind::Date) => quoted(backend, &format!("substr({c}, 1, 10)")),
        (DbBackend::Postgres, KeyKind::Time) => quoted(
            backend,
            &trim_fraction(backend, &format!("to_char({c}, 'HH24:MI:SS.US')")),
        ),
        (DbBackend::MySql, KeyKind::Time) => quoted(
            backend,
            &trim_fraction(backend, &format!("TIME_FORMAT({c}, '%H:%i:%s.%f')")),
        ),
        (_, KeyKind::Time) => quoted(backend, &sqlite_trim_fraction(c)),
        (DbBackend::Postgres, KeyKind::DateTime) => quoted(
            backend,
            &trim_fraction(
                backend,
                &format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"),
            ),
        ),
        (DbBackend::MySql, KeyKind::DateTime) => quoted(
            backend,
            &trim_fraction(
                backend,
                &format!("DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"),
            ),
        ),
        (_, KeyKind::DateTime) => quoted(
            backend,
            &sqlite_trim_fraction(&format!("replace({c}, 'T', ' ')")),
        ),
        (DbBackend::Postgres, KeyKind::Instant) => quoted(
            backend,
            &format!(
                "{} || 'Z'",
                trim_fraction(
                    backend,
                    &format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
                )
            ),
        ),
        // A `timestamp` reads in the writing session's zone.
        (DbBackend::MySql, KeyKind::Instant) => quoted(
            backend,
            &format!(
                "{}, 'Z'",
                trim_fraction(
                    backend,
                    &format!(
                        "DATE_FORMAT(CONVERT_TZ({c}, @@session.time_zone, '+00:00'), '%Y-%m-%d %H:%i:%s.%f')"
                    )
                )
            ),
        ),
        (_, KeyKind::Instant) => {
            // `YYYY-MM-DD HH:MM:SS[.fraction](Z|±HH:MM)`: the whole seconds moved to UTC by
            // SQLite (the fraction left out, so it cannot round into the next second), then
            // the fraction as written.
            let offset =
                format!("CASE WHEN substr({c}, -1) = 'Z' THEN 'Z' ELSE substr({c}, -6) END");
            let local = format!(
                "CASE WHEN substr({c}, -1) = 'Z' THEN substr({c}, 1, length({c}) - 1) ELSE substr({c}, 1, length({c}) - 6) END"
            );
            let fraction = format!(
                "CASE WHEN instr({local}, '.') > 0 THEN {} ELSE '' END",
                trim_fraction(backend, &format!("substr({local}, instr({local}, '.'))"))
            );
            quoted(
                backend,
                &format!(
                    "strftime('%Y-%m-%d %H:%M:%S', substr({c}, 1, 19) || {offset}) || {fraction} || 'Z'"
                ),
            )
        }
    }
}

/// The current time in milliseconds since the Unix epoch, as the journal's `created_at`.
pub(crate) fn now_ms(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        DbBackend::MySql => "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
        _ => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<KeyColumn> {
        vec![
            KeyColumn {
                name: "id".to_owned(),
                kind: KeyKind::Integer,
            },
            KeyColumn {
                name: "name".to_owned(),
                kind: KeyKind::Text,
            },
        ]
    }

    #[test]
    fn composite_keys_join_their_values_with_a_comma() {
        assert_eq!(
            key_expr(DbBackend::Postgres, "n", &keys()),
            r#"'[' || (n."id")::text || ',' || to_json(n."name")::text || ']'"#
        );
        assert_eq!(
            key_expr(DbBackend::MySql, "NEW", &keys()),
            "CONCAT('[', NEW.`id`, ',', JSON_QUOTE(NEW.`name`), ']')"
        );
        assert_eq!(
            key_expr(DbBackend::Sqlite, "OLD", &keys()),
            r#"'[' || OLD."id" || ',' || json_quote(OLD."name") || ']'"#
        );
    }
}
