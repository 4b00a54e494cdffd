//! The canonical key text ([`key_text`](crate::key_text)) of a changed row, as a SQL expression
//! per backend, for the triggers to write into the log's `pk` column.

use sea_orm::DbBackend;
use sea_orm::sea_query::ColumnType;

/// How a key column's value is written in the key text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// An integer: its decimal digits.
    Integer,
    /// A string: a JSON string.
    Text,
}

impl KeyKind {
    /// The kind of a column type, or `None` for a type whose key text no trigger writes yet.
    pub(crate) fn of(column_type: &ColumnType) -> Option<KeyKind> {
        match column_type {
            ColumnType::TinyInteger
            | ColumnType::SmallInteger
            | ColumnType::Integer
            | ColumnType::BigInteger
            | ColumnType::TinyUnsigned
            | ColumnType::SmallUnsigned
            | ColumnType::Unsigned
            | ColumnType::BigUnsigned => Some(KeyKind::Integer),
            ColumnType::Char(_) | ColumnType::String(_) | ColumnType::Text => Some(KeyKind::Text),
            _ => None,
        }
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
        parts.push(match (backend, key.kind) {
            (DbBackend::Postgres, KeyKind::Integer) => format!("({column})::text"),
            (DbBackend::Postgres, KeyKind::Text) => format!("to_json({column})::text"),
            (DbBackend::MySql, KeyKind::Integer) => column,
            (DbBackend::MySql, KeyKind::Text) => format!("JSON_QUOTE({column})"),
            (_, KeyKind::Integer) => column,
            (_, KeyKind::Text) => format!("json_quote({column})"),
        });
    }
    parts.push("']'".to_owned());
    match backend {
        DbBackend::MySql => format!("CONCAT({})", parts.join(", ")),
        _ => parts.join(" || "),
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
