//! What the trigger DDL is built from: the table, its key columns, and the names of the
//! objects this library creates on it.

use sea_orm::DbBackend;

use super::key_sql::{KeyColumn, literal, now_ms};
use crate::coherence::INVALIDATION_TABLE;

/// The `origin` of the log rows the triggers write. A layer's own origin is a process id, a
/// time and a random number, so no layer skips these rows as its own.
pub const ORIGIN: &str = "trigger";

/// Name suffixes of the Postgres triggers (the function's is `log`).
pub(crate) const POSTGRES_SUFFIXES: [&str; 4] = ["ins", "upd", "del", "trunc"];
/// Name suffixes of the MariaDB/MySQL and SQLite triggers.
pub(crate) const ROW_SUFFIXES: [&str; 3] = ["ins", "upd", "del"];

/// Longest identifier every backend accepts (Postgres: 63 bytes).
const MAX_NAME: usize = 63;

/// An entity's table, as the triggers need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    /// The table's name (also the log's `entity`).
    pub(crate) table: String,
    /// Its schema, if the entity names one (Postgres).
    pub(crate) schema: Option<String>,
    /// Its primary-key columns, in key order.
    pub(crate) keys: Vec<KeyColumn>,
}

impl Spec {
    /// The name of one of this library's objects on the table: `sea_orm_cache_<table>_<suffix>`,
    /// or, past the identifier limit, the table name cut short and a hash of it.
    pub(crate) fn name(&self, suffix: &str) -> String {
        let name = format!("sea_orm_cache_{}_{suffix}", self.table);
        if name.len() <= MAX_NAME {
            return name;
        }
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let hash = self.table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let short: String = self.table.chars().take(24).collect();
        format!("sea_orm_cache_{short}_{hash:016x}_{suffix}")
    }
}

impl Spec {
    /// `INSERT INTO` the invalidation log `... SELECT <entity>, k, <origin>, <now> FROM`: what
    /// every trigger body continues with a source of keys `k`.
    pub(super) fn log_insert(&self, backend: DbBackend) -> String {
        format!(
            "INSERT INTO {INVALIDATION_TABLE} (entity, pk, origin, created_at) SELECT {}, k, {}, {} FROM",
            literal(&self.table),
            literal(ORIGIN),
            now_ms(backend),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_every_backend() {
        let long = Spec {
            table: "t".repeat(80),
            schema: None,
            keys: Vec::new(),
        };
        for suffix in POSTGRES_SUFFIXES {
            assert!(long.name(suffix).len() <= MAX_NAME);
        }
        assert_ne!(long.name("ins"), long.name("upd"));
        let users = Spec {
            table: "users".to_owned(),
            ..long
        };
        assert_eq!(users.name("ins"), "sea_orm_cache_users_ins");
    }
}
