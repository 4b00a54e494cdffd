//! MariaDB/MySQL and SQLite: three row-level triggers per table (neither has statement-level
//! triggers). An UPDATE logs the old key and, if the key changed, the new one too.
//!
//! Neither database fires triggers on `TRUNCATE` (MariaDB/MySQL; SQLite has no TRUNCATE and
//! runs `DELETE` row by row once a table has triggers).

use sea_orm::DbBackend;

use super::key_sql::{ident, key_expr, literal};
use super::spec::Spec;

/// The statements that install the triggers; `CREATE TRIGGER IF NOT EXISTS` keeps a trigger
/// that exists.
pub(super) fn up(backend: DbBackend, triggers: &Spec) -> Vec<String> {
    let table = ident(backend, &triggers.table);
    let insert = triggers.log_insert(backend);
    let old_key = key_expr(backend, "OLD", &triggers.keys);
    let new_key = key_expr(backend, "NEW", &triggers.keys);
    // UNION keeps one row when the key did not change.
    let events = [
        (
            "ins",
            "INSERT",
            format!("{insert} (SELECT {new_key} AS k) AS changed"),
        ),
        (
            "upd",
            "UPDATE",
            format!("{insert} (SELECT {old_key} AS k UNION SELECT {new_key}) AS changed"),
        ),
        (
            "del",
            "DELETE",
            format!("{insert} (SELECT {old_key} AS k) AS changed"),
        ),
    ];
    events
        .into_iter()
        .map(|(suffix, event, body)| {
            let name = ident(backend, &triggers.name(suffix));
            match backend {
                DbBackend::MySql => format!(
                    "CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table} FOR EACH ROW {body}"
                ),
                _ => format!(
                    "CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table} FOR EACH ROW \
                     BEGIN {body}; END"
                ),
            }
        })
        .collect()
}

/// The statements that remove the triggers; each may run again.
pub(super) fn down(backend: DbBackend, triggers: &Spec) -> Vec<String> {
    super::spec::ROW_SUFFIXES
        .iter()
        .map(|suffix| {
            format!(
                "DROP TRIGGER IF EXISTS {}",
                ident(backend, &triggers.name(suffix))
            )
        })
        .collect()
}

/// Counts this library's triggers on the table.
pub(super) fn count(backend: DbBackend, triggers: &Spec) -> String {
    let names: Vec<String> = super::spec::ROW_SUFFIXES
        .iter()
        .map(|suffix| literal(&triggers.name(suffix)))
        .collect();
    let names = names.join(", ");
    let table = literal(&triggers.table);
    match backend {
        DbBackend::MySql => format!(
            "SELECT COUNT(*) AS n FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = {table} \
             AND TRIGGER_NAME IN ({names})"
        ),
        _ => format!(
            "SELECT COUNT(*) AS n FROM sqlite_master \
             WHERE type = 'trigger' AND tbl_name = {table} AND name IN ({names})"
        ),
    }
}
