//! Integration tests, one module per behaviour. `backend_tests!` runs every test body on
//! SQLite, Postgres and MySQL/MariaDB, so test names read `module::backend::test`.

#![allow(clippy::unwrap_used)] // Tests unwrap: a failure is the report.

mod common;

/// The quickstart example, run by `example_databases` against a developer's database.
#[path = "../../examples/quickstart.rs"]
mod quickstart_example;

mod call_shape;
mod coherence;
mod coherence_checker;
mod coherence_processes;
mod composite_keys;
mod concurrent_transactions;
mod connection_after_outbox;
mod crash;
mod example_databases;
mod expiry;
mod faults;
mod freshness;
mod hooks;
mod idle_cost;
mod key_types;
mod lifecycle;
mod outbox;
mod outbox_schema;
mod own_connections;
mod plain_entities;
mod policies;
mod retry;
mod round_trips;
mod single_flight;
mod stale_fill;
mod traces;
mod transactions;
mod triggers;
mod warm;
mod write_behind;
mod write_paths;
mod write_through;
