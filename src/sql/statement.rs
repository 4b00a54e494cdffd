//! What the reader tells of a statement: [`Classified`], a [`Write`] and its [`Verb`].

use sea_orm::Value;

/// What a statement does to cached tables.
#[derive(Debug, PartialEq)]
pub(crate) enum Classified {
    /// Reads, or writes nothing a cache holds (transaction control, `SET`, `CREATE`).
    Read,
    /// Writes one table.
    Write(Write),
    /// May write, but to which table cannot be told.
    Everything,
}

/// A write to one table.
#[derive(Debug, PartialEq)]
pub(crate) struct Write {
    /// Table name, unquoted, without schema.
    pub(crate) table: String,
    pub(crate) verb: Verb,
    /// The rows the statement touches, each as `column = value` pairs (the `WHERE` clause's
    /// equalities, or an inserted row's values); `None` when they cannot be told.
    pub(crate) rows: Option<Vec<Vec<(String, Value)>>>,
    /// Columns an `UPDATE` sets (so a caller can tell whether it moves a primary key).
    pub(crate) set_columns: Vec<String>,
}

/// The kind of write.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Verb {
    /// `INSERT`; `upsert` when it may also update existing rows.
    Insert { upsert: bool },
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `TRUNCATE`, `ALTER`, `DROP`, `RENAME`: every row may be gone or changed.
    Schema,
}
