//! Postgres: one PL/pgSQL function and four statement-level triggers per table. INSERT,
//! UPDATE and DELETE read their transition tables, so a statement that changes 100,000 rows
//! adds its log rows with one `INSERT ... SELECT`, not 100,000 trigger calls; TRUNCATE logs
//! the whole entity. The function also sends the `pg_notify` the journal sends, delivered on
//! commit, so the tailers wake. It runs with the search path of the session that installed
//! it, so a writer with another search path still finds the log table.

use sea_orm::DbBackend;

use super::key_sql::{ident, key_expr, literal};
use super::spec::Spec;
use crate::coherence::CHANNEL;

const BACKEND: DbBackend = DbBackend::Postgres;

/// Transition table names.
const OLD_ROWS: &str = "sea_orm_cache_old";
const NEW_ROWS: &str = "sea_orm_cache_new";

/// `name`, qualified with the table's schema if it has one.
fn qualified(triggers: &Spec, name: &str) -> String {
    match &triggers.schema {
        Some(schema) => format!("{}.{}", ident(BACKEND, schema), ident(BACKEND, name)),
        None => ident(BACKEND, name),
    }
}

/// The statements that install the triggers; each may run again (the function is replaced
/// by itself, a trigger that exists is kept).
pub(super) fn up(triggers: &Spec) -> Vec<String> {
    let (function_sql, create) = parts(triggers);
    vec![
        function_sql,
        format!("DO $sea_orm_cache$ BEGIN {create}END $sea_orm_cache$"),
    ]
}

/// The advisory lock `install` holds for its transaction: installs of any table serialise
/// on it (the ASCII bytes of "sea_trig").
const INSTALL_LOCK: i64 = 0x7365_615f_7472_6967;

/// [`up`] as one statement that first takes [`INSTALL_LOCK`] for its transaction. Two
/// instances that install at once would otherwise race in the catalog: the second
/// `CREATE OR REPLACE FUNCTION` waits for the first's row in `pg_proc`, then fails ("tuple
/// concurrently updated", or a duplicate key when the function was new). Serialised, the
/// second replaces the function with itself and keeps the triggers it finds.
pub(super) fn install(triggers: &Spec) -> String {
    let (function_sql, create) = parts(triggers);
    format!(
        "DO $sea_orm_cache_install$ BEGIN PERFORM pg_advisory_xact_lock({INSTALL_LOCK}); \
         EXECUTE {}; {create}END $sea_orm_cache_install$",
        literal(&function_sql)
    )
}

/// The `CREATE OR REPLACE FUNCTION` statement, and the PL/pgSQL that creates each missing
/// trigger.
fn parts(triggers: &Spec) -> (String, String) {
    let table = qualified(triggers, &triggers.table);
    let function = qualified(triggers, &triggers.name("log"));
    let insert = triggers.log_insert(BACKEND);
    let old_key = key_expr(BACKEND, "o", &triggers.keys);
    let new_key = key_expr(BACKEND, "n", &triggers.keys);
    let body = format!(
        "DECLARE logged bigint; \
         BEGIN \
         IF TG_OP = 'TRUNCATE' THEN \
         {insert} (SELECT NULL::text AS k) AS everything; \
         ELSIF TG_OP = 'INSERT' THEN \
         {insert} (SELECT {new_key} AS k FROM {NEW_ROWS} n) AS changed; \
         ELSIF TG_OP = 'DELETE' THEN \
         {insert} (SELECT {old_key} AS k FROM {OLD_ROWS} o) AS changed; \
         ELSE \
         {insert} (SELECT {old_key} AS k FROM {OLD_ROWS} o \
         UNION SELECT {new_key} FROM {NEW_ROWS} n) AS changed; \
         END IF; \
         GET DIAGNOSTICS logged = ROW_COUNT; \
         IF logged > 0 THEN PERFORM pg_notify({channel}, ''); END IF; \
         RETURN NULL; \
         END",
        channel = literal(CHANNEL),
    );
    // `SET search_path FROM CURRENT`: the function finds the log table where the installing
    // session did, whatever the writing session's search path (once per statement: the
    // triggers are statement-level).
    let function_sql = format!(
        "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql \
         SET search_path FROM CURRENT \
         AS $sea_orm_cache$ {body} $sea_orm_cache$"
    );
    let events = [
        (
            "ins",
            "INSERT",
            format!("REFERENCING NEW TABLE AS {NEW_ROWS} FOR EACH STATEMENT"),
        ),
        (
            "upd",
            "UPDATE",
            format!(
                "REFERENCING OLD TABLE AS {OLD_ROWS} NEW TABLE AS {NEW_ROWS} FOR EACH STATEMENT"
            ),
        ),
        (
            "del",
            "DELETE",
            format!("REFERENCING OLD TABLE AS {OLD_ROWS} FOR EACH STATEMENT"),
        ),
        ("trunc", "TRUNCATE", "FOR EACH STATEMENT".to_owned()),
    ];
    let mut create = String::new();
    for (suffix, event, rows) in events {
        let name = triggers.name(suffix);
        create.push_str(&format!(
            "IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = {}::regclass AND tgname = {}) THEN \
             CREATE TRIGGER {} AFTER {event} ON {table} {rows} EXECUTE FUNCTION {function}(); \
             END IF; ",
            literal(&table),
            literal(&name),
            ident(BACKEND, &name),
        ));
    }
    (function_sql, create)
}

/// The statements that remove the triggers and their function; each may run again.
pub(super) fn down(triggers: &Spec) -> Vec<String> {
    let table = qualified(triggers, &triggers.table);
    let mut statements: Vec<String> = super::spec::POSTGRES_SUFFIXES
        .iter()
        .map(|suffix| {
            format!(
                "DROP TRIGGER IF EXISTS {} ON {table}",
                ident(BACKEND, &triggers.name(suffix))
            )
        })
        .collect();
    statements.push(format!(
        "DROP FUNCTION IF EXISTS {}()",
        qualified(triggers, &triggers.name("log"))
    ));
    statements
}

/// Counts this library's triggers on the table.
pub(super) fn count(triggers: &Spec) -> String {
    let names: Vec<String> = super::spec::POSTGRES_SUFFIXES
        .iter()
        .map(|suffix| literal(&triggers.name(suffix)))
        .collect();
    format!(
        "SELECT COUNT(*) AS n FROM pg_trigger WHERE tgrelid = {}::regclass AND tgname IN ({})",
        literal(&qualified(triggers, &triggers.table)),
        names.join(", ")
    )
}
