//! Background work has one owner, the layer (issue 20, item 6): a `build()` that fails starts
//! no task, `shutdown()` stops and joins every task it started (after its final write-behind
//! flush), and dropping the layer without `shutdown` stops them too, leaving pending
//! write-behind rows in the outbox for the next start.
//!
//! "No task runs" is counted with the runtime's own figure (`num_alive_tasks`: each test has a
//! runtime of its own) against the count before the layer, for the tasks on the application's
//! runtime (the tailer and the flushers run on the layer's own thread, whose statements the
//! log shows: `TestDb::builder`); "no statement reaches the
//! database" with the test connection's statement log, over an interval longer than every
//! poll period of the layer (the flusher's idle poll, one second, is the longest).

use std::time::Duration;

use entity::{profile, user};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ConnectionTrait, EntityTrait, Statement, TransactionTrait, Value, sea_query::ValueTuple,
};
use sea_orm_cache::{
    Capture, Coherence, Error, FreshnessConfig, Policy, WriteBehindConfig, key_text,
};

use crate::common::*;

/// Longer than every period the layer's tasks wait for: the flusher's idle poll (1 s), and
/// the tailer's poll, the sampler's grace and the metrics interval set below.
const QUIET: Duration = Duration::from_millis(1_500);

/// Tasks alive on this test's runtime.
fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (up to `within`) until at most `baseline` tasks are alive, and returns the count.
/// The wait only covers tasks that end by themselves at once: sqlx hands each used
/// connection back to its pool on a short task of its own.
async fn settled(baseline: usize, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = alive();
        if now <= baseline || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Asserts that at most `baseline` tasks are alive (see [`settled`]).
async fn assert_settled(baseline: usize, within: Duration, what: &str) {
    let now = settled(baseline, within).await;
    assert!(
        now <= baseline,
        "{what}: {now} tasks alive, {baseline} before the layer"
    );
}

/// Waits (up to five seconds) until the layer's own connections have run no statement for
/// 100 ms. After a drop, the tasks on the layer's thread (the flusher, the tailer) end at
/// their next wait, but a statement in flight completes first, and that thread's tasks are
/// not counted by [`alive`].
async fn background_settled(t: &TestDb) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seen = t.log.all().len();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = t.log.all().len();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// Every statement the test connection ran over [`QUIET`], from now.
async fn statements_over_quiet_interval(t: &TestDb) -> Vec<String> {
    t.log.clear();
    // Not a stand-in for synchronisation: the interval over which nothing may happen.
    tokio::time::sleep(QUIET).await;
    t.log.all()
}

/// A write-behind write of profile 1 that a previous run acknowledged and did not apply.
async fn pending_outbox_row(t: &TestDb) {
    seed_profile(&t.db, 1).await;
    let pk = key_text(ValueTuple::One(Value::from(1_i64)));
    let payload = r#"{"user_id":1,"display_name":"pending","visits":7}"#;
    let sql = match t.backend {
        Backend::Postgres => {
            "INSERT INTO sea_orm_cache_outbox (entity, pk, op, payload, created_at, attempts, available_at) \
             VALUES ('profiles', $1, 'upsert', $2, 0, 0, 0)"
        }
        _ => {
            "INSERT INTO sea_orm_cache_outbox (entity, pk, op, payload, created_at, attempts, available_at) \
             VALUES ('profiles', ?, 'upsert', ?, 0, 0, 0)"
        }
    };
    t.db.execute_raw(Statement::from_sql_and_values(
        t.db_backend(),
        sql,
        [Value::from(pk), Value::from(payload)],
    ))
    .await
    .unwrap();
}

async fn profile_visits(t: &TestDb, user_id: i64) -> i64 {
    profile::Entity::find_by_id(user_id)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap()
        .visits
}

fn sample_every_hit() -> FreshnessConfig {
    FreshnessConfig::default()
        .sample_rate(1.0)
        .grace(Duration::from_millis(300))
}

/// A write-behind entity with a row pending in the outbox, then an entity whose
/// configuration is invalid: `build` fails, and nothing of the layer ran or runs after it.
/// The pending row stays in the outbox, unapplied, for a layer that does build.
async fn a_build_failing_on_an_invalid_config_starts_nothing(t: TestDb) {
    pending_outbox_row(&t).await;
    let baseline = alive();
    let built = t
        .builder()
        .coherence(Coherence::on().poll_interval(Duration::from_millis(20)))
        .metrics_interval(Some(Duration::from_millis(10)))
        .write_behind::<profile::Entity>(|c| {
            c.write_behind(WriteBehindConfig::default().max_delay(Duration::from_millis(10)))
                .freshness(sample_every_hit())
        })
        .cached::<user::Entity>(|c| c.ttl_jitter(2.0))
        .build()
        .await;
    assert!(
        matches!(
            &built,
            Err(Error::InvalidConfig {
                entity: "users",
                ..
            })
        ),
        "{built:?}"
    );
    assert_eq!(
        statements_over_quiet_interval(&t).await,
        Vec::<String>::new(),
        "statements after a failed build"
    );
    assert_settled(
        baseline,
        Duration::from_millis(200),
        "tasks alive after a failed build",
    )
    .await;
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        1,
        "the pending row is kept"
    );
    assert_eq!(profile_visits(&t, 1).await, 0, "and not applied");

    // A layer that builds resumes it.
    let cache = t
        .builder()
        .write_behind::<profile::Entity>(|c| c)
        .build()
        .await
        .unwrap();
    cache.shutdown().await.unwrap();
    assert_eq!(profile_visits(&t, 1).await, 7);
}

/// The same when `build` fails late, after reading the database: an entity captured by
/// triggers that are not installed. The flusher must not have resumed the pending row either.
async fn a_build_failing_on_missing_triggers_starts_nothing(t: TestDb) {
    pending_outbox_row(&t).await;
    let baseline = alive();
    let built = t
        .builder()
        .coherence(Coherence::on().poll_interval(Duration::from_millis(20)))
        .metrics_interval(Some(Duration::from_millis(10)))
        .write_behind::<profile::Entity>(|c| {
            c.write_behind(WriteBehindConfig::default().max_delay(Duration::from_millis(10)))
                .freshness(sample_every_hit())
        })
        .cached::<user::Entity>(|c| c.capture(Capture::Triggers).freshness(sample_every_hit()))
        .build()
        .await;
    assert!(
        matches!(&built, Err(Error::TriggersMissing { entity }) if entity == "users"),
        "{built:?}"
    );
    assert_settled(
        baseline,
        Duration::from_millis(200),
        "tasks alive after a failed build",
    )
    .await;
    assert_eq!(
        statements_over_quiet_interval(&t).await,
        Vec::<String>::new(),
        "statements after a failed build"
    );
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        1,
        "the pending row is kept"
    );
    assert_eq!(profile_visits(&t, 1).await, 0, "and not applied");
}

/// Every kind of task a layer runs: write-behind writer and flusher, samplers (one with a
/// sample due after `shutdown`), the log tailer (and on Postgres its listener), the metrics
/// publisher. `shutdown` applies the pending write, then no task of the layer is alive and
/// no statement reaches the database, while the layer itself is still held.
async fn shutdown_flushes_then_stops_every_task(t: TestDb) {
    let ada = seed_user(&t.db, 1).await;
    seed_profile(&t.db, ada.id).await;
    let baseline = alive();
    let cache = t
        .builder()
        .coherence(Coherence::on().poll_interval(Duration::from_millis(20)))
        .metrics_interval(Some(Duration::from_millis(10)))
        .write_behind::<profile::Entity>(|c| {
            c.write_behind(WriteBehindConfig::default().max_delay(Duration::from_secs(3600)))
                .freshness(sample_every_hit())
        })
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough).freshness(sample_every_hit()))
        .build()
        .await
        .unwrap();
    assert!(alive() > baseline, "the layer runs its tasks");
    let profiles = cache.repository::<profile::Entity>().unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    profiles
        .update(profile::ActiveModel {
            user_id: Unchanged(ada.id),
            visits: Set(42),
            ..Default::default()
        })
        .await
        .unwrap();
    users.get(ada.id).await.unwrap();
    users.get(ada.id).await.unwrap(); // a hit, sampled: its read is due after the grace delay

    cache.shutdown().await.unwrap();
    assert_eq!(profile_visits(&t, ada.id).await, 42, "shutdown flushes");
    assert_settled(
        baseline,
        Duration::from_millis(200),
        "tasks alive after shutdown",
    )
    .await;
    assert_eq!(
        statements_over_quiet_interval(&t).await,
        Vec::<String>::new(),
        "statements after shutdown"
    );
    assert!(
        matches!(
            profiles
                .update(profile::ActiveModel {
                    user_id: Unchanged(ada.id),
                    visits: Set(43),
                    ..Default::default()
                })
                .await,
            Err(Error::Shutdown)
        ),
        "writes after shutdown are refused"
    );
    drop(cache);
}

/// Dropping the layer (and its repositories) without `shutdown` stops its tasks too; the
/// write-behind write it acknowledged stays in the outbox, and the next layer applies it.
async fn dropping_the_layer_stops_every_task_and_keeps_pending_writes(t: TestDb) {
    let ada = seed_user(&t.db, 1).await;
    seed_profile(&t.db, ada.id).await;
    let baseline = alive();
    let cache = t
        .builder()
        .coherence(Coherence::on().poll_interval(Duration::from_millis(20)))
        .metrics_interval(Some(Duration::from_millis(10)))
        .write_behind::<profile::Entity>(|c| {
            c.write_behind(WriteBehindConfig::default().max_delay(Duration::from_secs(3600)))
                .freshness(sample_every_hit())
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    profiles
        .update(profile::ActiveModel {
            user_id: Unchanged(ada.id),
            visits: Set(42),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(profiles);
    drop(cache);
    // The tasks end at their next wait, which the drop cuts short.
    assert_settled(
        baseline,
        Duration::from_secs(5),
        "tasks alive after the layer was dropped",
    )
    .await;
    background_settled(&t).await;
    assert_eq!(
        statements_over_quiet_interval(&t).await,
        Vec::<String>::new(),
        "statements after the layer was dropped"
    );
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        1,
        "the write is kept"
    );
    assert_eq!(profile_visits(&t, ada.id).await, 0);

    let cache = t
        .builder()
        .write_behind::<profile::Entity>(|c| c)
        .build()
        .await
        .unwrap();
    cache.shutdown().await.unwrap();
    assert_eq!(
        profile_visits(&t, ada.id).await,
        42,
        "the next start applies it"
    );
}

/// A write handed to the outbox writer before `shutdown` gives the stop is still inserted,
/// acknowledged and applied by the final flush. Forced on Postgres: another connection locks
/// the outbox table, so the writer's insert of write A waits; write B is handed over
/// meanwhile; `shutdown` is polled once (writes are refused and the stop is given from that
/// first poll on) before the lock is released. The logic is the same on every backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writes_handed_over_before_shutdown_are_applied() {
    run(
        Backend::Postgres,
        "handed_over_before_shutdown",
        |t| async move {
            for id in [1, 2, 3] {
                seed_profile(&t.db, id).await;
            }
            let cache = t
                .builder()
                .coherence(Coherence::off())
                .write_behind::<profile::Entity>(|c| {
                    c.write_behind(
                        WriteBehindConfig::default().max_delay(Duration::from_secs(3600)),
                    )
                })
                .build()
                .await
                .unwrap();
            let profiles = cache.repository::<profile::Entity>().unwrap();
            let write = |user_id: i64, visits: i64| {
                let profiles = profiles.clone();
                tokio::spawn(async move {
                    profiles
                        .update(profile::ActiveModel {
                            user_id: Unchanged(user_id),
                            visits: Set(visits),
                            ..Default::default()
                        })
                        .await
                })
            };
            let blocker = t.connect_again().await;
            let lock = blocker.begin().await.unwrap();
            lock.execute_unprepared("LOCK TABLE sea_orm_cache_outbox IN EXCLUSIVE MODE")
                .await
                .unwrap();
            let a = write(1, 1);
            wait_for_a_lock_wait(&t).await;
            let b = write(2, 2);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while profiles.stats().pending_writes < 2 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "write B never reserved"
                );
                tokio::task::yield_now().await;
            }
            let mut shutdown = std::pin::pin!(cache.shutdown());
            std::future::poll_fn(|cx| {
                assert!(
                    shutdown.as_mut().poll(cx).is_pending(),
                    "the insert of A is held"
                );
                std::task::Poll::Ready(())
            })
            .await;
            // (Another key: A holds key 1's write lock until it is acknowledged.)
            let refused = write(3, 99).await.unwrap();
            assert!(matches!(refused, Err(Error::Shutdown)), "{refused:?}");
            lock.rollback().await.unwrap();
            shutdown.await.unwrap();
            a.await.unwrap().unwrap();
            b.await.unwrap().unwrap();
            assert_eq!(profile_visits(&t, 1).await, 1);
            assert_eq!(profile_visits(&t, 2).await, 2);
            blocker.close().await.unwrap();
        },
    )
    .await;
}

/// Waits until a statement of this test's database waits for a lock.
async fn wait_for_a_lock_wait(t: &TestDb) {
    let waiting = "SELECT COUNT(*) AS n FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row =
            t.db.query_one_raw(Statement::from_string(t.db_backend(), waiting))
                .await
                .unwrap()
                .unwrap();
        if row.try_get::<i64>("", "n").unwrap() > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing waits for the lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

crate::backend_tests!(
    a_build_failing_on_an_invalid_config_starts_nothing,
    a_build_failing_on_missing_triggers_starts_nothing,
    shutdown_flushes_then_stops_every_task,
    dropping_the_layer_stops_every_task_and_keeps_pending_writes,
);
