//! What an idle layer costs its database (issue 21): with coherence on (the default) and the
//! Postgres listener connected, an instance nobody uses reads the log every
//! `backstop_interval` (2 s) in one statement, and an idle write-behind flusher looks for
//! other instances' rows less and less often; nothing else. The count is the server's
//! (`pg_stat_database`), so it sees every connection the layer opens, its own ones included.
//! MySQL/MariaDB and SQLite have no listener: their tailer polls every `poll_interval`.

use std::time::Duration;

use entity::{post, profile, user};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use sea_orm_cache::{CacheLayer, Policy};

use crate::common::*;

/// Committed and rolled-back transactions of database `name` so far, as the server counts
/// them (read from the admin database, so the reads are not counted).
async fn transactions(admin: &sea_orm::DatabaseConnection, name: &str) -> i64 {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database \
             WHERE datname = $1",
            [name.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// Three entities (read-through, write-through, write-behind), default settings, no
/// requests: over ten seconds the database counts at most one transaction a second from
/// the layer (each statement under autocommit is one). Before the listener set the pace, the
/// tailer read the log ten times a second in two statements: 200 in the same ten seconds.
async fn an_idle_layer_sends_at_most_one_statement_a_second(t: TestDb) {
    let cache = CacheLayer::builder(t.connect_again().await)
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .cached::<post::Entity>(|c| c.policy(Policy::WriteThrough))
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
        .build()
        .await
        .unwrap();
    let admin = Database::connect(std::env::var("TEST_POSTGRES_URL").unwrap())
        .await
        .unwrap();
    // Past the start (the first read of the log, the flushers' resume, the first prune), and
    // past Postgres's idle statistics flush (10 s), so what the migrations and the start
    // sent is counted before the window opens.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let window = Duration::from_secs(10);
    let before = transactions(&admin, t.name()).await;
    let polls = cache.coherence_stats().polls;
    tokio::time::sleep(window).await;
    let sent = transactions(&admin, t.name()).await - before;
    let stats = cache.coherence_stats();
    eprintln!(
        "idle layer: {sent} transactions in {window:?}, {} reads of the log",
        stats.polls - polls
    );
    assert!(
        sent <= window.as_secs() as i64,
        "an idle layer sent {sent} statements in {window:?} ({} reads of the log; {stats:?})",
        stats.polls - polls
    );
    cache.shutdown().await.unwrap();
    admin.close().await.unwrap();
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_layer_sends_at_most_one_statement_a_second() {
        crate::common::run(
            crate::common::Backend::Postgres,
            "idle_layer",
            super::an_idle_layer_sends_at_most_one_statement_a_second,
        )
        .await
    }
}
