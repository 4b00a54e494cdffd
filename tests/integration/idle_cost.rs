//! What an idle layer costs its database (issue 21): with coherence on (the default) and the
//! Postgres listener connected, an instance nobody uses reads the log every
//! `backstop_interval` (2 s) in one statement, and an idle write-behind flusher looks for
//! other instances' rows less and less often; nothing else. Every statement the layer sends
//! is counted: on the application's pool and on the layer's own connections
//! (`TestDb::builder` gives both the test's statement log). MySQL/MariaDB and SQLite have no
//! listener: their tailer polls every `poll_interval`.

use std::time::Duration;

use entity::{post, profile, user};
use sea_orm_cache::Policy;

use crate::common::*;

/// Three entities (read-through, write-through, write-behind), default settings, no
/// requests: over ten seconds the layer sends at most one statement a second. Before the
/// listener set the pace, the tailer read the log ten times a second in two statements: 200
/// in the same ten seconds.
async fn an_idle_layer_sends_at_most_one_statement_a_second(t: TestDb) {
    let cache = t
        .builder()
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .cached::<post::Entity>(|c| c.policy(Policy::WriteThrough))
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
        .build()
        .await
        .unwrap();
    // Past the start (the first read of the log, the flushers' resume, the first prune).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = Duration::from_secs(10);
    t.log.clear();
    let polls = cache.coherence_stats().polls;
    tokio::time::sleep(window).await;
    let sent = t.log.all();
    let reads = cache.coherence_stats().polls - polls;
    eprintln!(
        "idle layer: {} statements in {window:?}, {reads} reads of the log",
        sent.len()
    );
    assert!(
        sent.len() <= window.as_secs() as usize,
        "an idle layer sent {} statements in {window:?} ({reads} reads of the log): {sent:#?}",
        sent.len()
    );
    cache.shutdown().await.unwrap();
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
