//! G8, several instances on one database: every write made through a layer adds rows to the
//! invalidation log in its own transaction, and every other layer applies them from its own
//! cursor. Two layers on one database are two instances (each has its own origin). Here the
//! reading layer reads the log with `catch_up`, so each step is forced, not timed; the
//! two-process test with a time bound is `coherence_processes.rs`.

use entity::{profile, user};
use futures_util::TryStreamExt;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, StreamTrait,
    TransactionTrait,
};
use sea_orm_cache::{CacheLayer, Coherence, Policy, Repository};

use crate::common::*;

/// A layer on `t`'s database with coherence on; `users` under `policy`, `profiles`
/// write-behind. It reads the log only when told to (`catch_up`): no poll is due for an hour
/// and no Postgres listener wakes it.
async fn instance(t: &TestDb, policy: Policy) -> CacheLayer {
    let by_hand = Coherence::on()
        .poll_interval(std::time::Duration::from_secs(3600))
        .listen(false);
    register_under::<user::Entity>(
        CacheLayer::builder(t.connect_again().await).coherence(by_hand),
        policy,
        |c| c,
    )
    .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
    .build()
    .await
    .unwrap()
}

fn rename(id: i64, name: &str) -> user::ActiveModel {
    user::ActiveModel {
        id: Unchanged(id),
        name: Set(name.to_owned()),
        ..Default::default()
    }
}

/// The name `users` shows for `id` (loading it on a miss, with `get_or_load` so cache-aside
/// works too).
async fn name_in(users: &Repository<user::Entity>, t: &TestDb, id: i64) -> Option<String> {
    users
        .get_or_load(id, || user::Entity::find_by_id(id).one(&t.db))
        .await
        .unwrap()
        .map(|u| u.name.clone())
}

/// Instance B writes a user through every path the layer has; instance A, which had the key
/// cached, keeps its cached row until it reads the log, then shows B's write. B's own writes
/// are never applied to B twice (its tailer skips its own rows).
async fn another_instances_writes_reach_this_one_through_the_log(t: TestDb) {
    for policy in [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
        Policy::WriteBehind,
    ] {
        let (a, b) = (instance(&t, policy).await, instance(&t, policy).await);
        let (users_a, users_b) = (
            a.repository::<user::Entity>().unwrap(),
            b.repository::<user::Entity>().unwrap(),
        );
        let u = seed_user(&t.db, 1).await;
        let conn = b.connection();
        let mut step = 0;
        let mut write = async |how: &str| {
            step += 1;
            let name = format!("{how} {step}");
            match how {
                "repository" => {
                    users_b.update(rename(u.id, &name)).await.unwrap();
                }
                "repository in a transaction" => {
                    let txn = conn.begin().await.unwrap();
                    users_b
                        .update_with(rename(u.id, &name), &txn)
                        .await
                        .unwrap();
                    txn.commit().await.unwrap();
                }
                "connection" => {
                    user::Entity::update(rename(u.id, &name))
                        .exec(&conn)
                        .await
                        .unwrap();
                }
                "update_many" => {
                    user::Entity::update_many()
                        .col_expr(user::Column::Name, Expr::value(name.clone()))
                        .filter(user::Column::Email.eq(u.email.clone()))
                        .exec(&conn)
                        .await
                        .unwrap();
                }
                "raw SQL" => {
                    let sql = match conn.get_database_backend() {
                        DbBackend::MySql => format!("UPDATE `users` SET `name` = '{name}'"),
                        _ => format!("UPDATE \"users\" SET \"name\" = '{name}'"),
                    };
                    conn.execute_unprepared(&sql).await.unwrap();
                }
                "stream" | "stream in a transaction" => {
                    let backend = conn.get_database_backend();
                    let sql = match backend {
                        DbBackend::Postgres => "UPDATE users SET name = $1 WHERE id = $2",
                        _ => "UPDATE users SET name = ? WHERE id = ?",
                    };
                    let stmt = Statement::from_sql_and_values(
                        backend,
                        sql,
                        [name.clone().into(), u.id.into()],
                    );
                    if how == "stream" {
                        let rows: Vec<_> = conn
                            .stream_raw(stmt)
                            .await
                            .unwrap()
                            .try_collect()
                            .await
                            .unwrap();
                        assert!(rows.is_empty());
                    } else {
                        let txn = conn.begin().await.unwrap();
                        let rows: Vec<_> = txn
                            .stream_raw(stmt)
                            .await
                            .unwrap()
                            .try_collect()
                            .await
                            .unwrap();
                        assert!(rows.is_empty());
                        txn.commit().await.unwrap();
                    }
                }
                _ => unreachable!(),
            }
            users_b.flush().await.unwrap();
            name
        };
        for how in [
            "repository",
            "repository in a transaction",
            "connection",
            "update_many",
            "raw SQL",
            "stream",
            "stream in a transaction",
        ] {
            let before = name_in(&users_a, &t, u.id).await;
            assert!(
                users_a.peek(u.id).is_some(),
                "{policy:?} {how}: A has it cached"
            );
            let name = write(how).await;
            assert_eq!(
                users_a.peek(u.id).map(|m| m.name.clone()),
                before,
                "{policy:?} {how}: A has not read the log yet"
            );
            a.catch_up().await.unwrap();
            assert_eq!(
                users_a.peek(u.id),
                None,
                "{policy:?} {how}: A dropped its entry"
            );
            assert_eq!(
                name_in(&users_a, &t, u.id).await.as_deref(),
                Some(name.as_str()),
                "{policy:?} {how}: A shows B's write"
            );
        }
        assert!(users_a.stats().remote_invalidations >= 7, "{policy:?}");
        let applied_b = b.coherence_stats().applied;
        b.catch_up().await.unwrap();
        assert_eq!(
            b.coherence_stats().applied,
            applied_b,
            "{policy:?}: B skips its own rows"
        );
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
        user::Entity::delete_many().exec(&t.db).await.unwrap();
    }
}

/// A write-behind write acknowledged by B (its outbox row and log row commit together): A
/// drops its cached row and reads the pending write, before any flush.
async fn a_write_behind_acknowledgement_reaches_the_other_instance(t: TestDb) {
    let (a, b) = (
        instance(&t, Policy::ReadThrough).await,
        instance(&t, Policy::ReadThrough).await,
    );
    let (profiles_a, profiles_b) = (
        a.repository::<profile::Entity>().unwrap(),
        b.repository::<profile::Entity>().unwrap(),
    );
    seed_profile(&t.db, 7).await;
    assert_eq!(profiles_a.get(7).await.unwrap().unwrap().visits, 0);
    profiles_b
        .update(profile::ActiveModel {
            user_id: Unchanged(7),
            visits: Set(41),
            ..Default::default()
        })
        .await
        .unwrap();
    a.catch_up().await.unwrap();
    assert_eq!(
        profiles_a.get(7).await.unwrap().unwrap().visits,
        41,
        "A reads B's pending write"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Item 4 of the issue, forced: a transaction elsewhere has written its log row (a lower id,
/// an older transaction) and stays open while B's later write commits and A reads it; when
/// the held transaction commits, A applies its row too. 25,000 rows committed in between do
/// not hold B's row back either (a gap holds back only its own row). SQLite cannot
/// interleave this (one
/// writer at a time: its ids become visible in order), so this runs on Postgres and MySQL.
async fn a_lower_log_id_that_commits_late_is_not_skipped(t: TestDb) {
    if t.db_backend() == DbBackend::Sqlite {
        return;
    }
    let (a, b) = (
        instance(&t, Policy::ReadThrough).await,
        instance(&t, Policy::ReadThrough).await,
    );
    let (users_a, users_b) = (
        a.repository::<user::Entity>().unwrap(),
        b.repository::<user::Entity>().unwrap(),
    );
    let (u1, u2) = (seed_user(&t.db, 1).await, seed_user(&t.db, 2).await);
    users_a.get(u1.id).await.unwrap();
    users_a.get(u2.id).await.unwrap();

    // The held transaction: changes user 1 and logs it, as another instance would.
    let held = t.db.begin().await.unwrap();
    held.execute_unprepared(&match t.db_backend() {
        DbBackend::MySql => format!("UPDATE `users` SET `name` = 'late' WHERE `id` = {}", u1.id),
        _ => format!(
            "UPDATE \"users\" SET \"name\" = 'late' WHERE \"id\" = {}",
            u1.id
        ),
    })
    .await
    .unwrap();
    held.execute_raw(Statement::from_string(
        t.db_backend(),
        format!(
            "INSERT INTO sea_orm_cache_invalidation (entity, pk, origin, created_at) \
             VALUES ('users', '[{}]', 'elsewhere', {})",
            u1.id,
            now_ms()
        ),
    ))
    .await
    .unwrap();

    // More committed rows than one page of the log read holds (10,000), so B's row comes
    // after the held row's gap and past the first page.
    filler_log_rows(&t, 25_000, now_ms()).await;
    users_b.update(rename(u2.id, "early")).await.unwrap();
    a.catch_up().await.unwrap();
    assert_eq!(
        users_a.peek(u2.id),
        None,
        "the later write is applied early, however many rows lie between"
    );
    assert!(
        users_a.peek(u1.id).is_some(),
        "nothing to apply for user 1 yet"
    );

    held.commit().await.unwrap();
    a.catch_up().await.unwrap();
    assert_eq!(
        users_a.peek(u1.id),
        None,
        "the late commit's row is applied"
    );
    assert_eq!(users_a.get(u1.id).await.unwrap().unwrap().name, "late");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Postgres: a notification from the writing transaction wakes A's tailer, so A shows B's write
/// with no poll due for an hour; with A's listener backend killed (`pg_terminate_backend`),
/// the listener reconnects, A reads the log at once, and the next write still arrives.
async fn notifications_wake_the_tailer_and_a_killed_listener_loses_nothing(t: TestDb) {
    if t.db_backend() != DbBackend::Postgres {
        return;
    }
    let hour = Coherence::on().poll_interval(std::time::Duration::from_secs(3600));
    let a = CacheLayer::builder(t.connect_again().await)
        .coherence(hour.clone())
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await
        .unwrap();
    let b = instance(&t, Policy::ReadThrough).await;
    let (users_a, users_b) = (
        a.repository::<user::Entity>().unwrap(),
        b.repository::<user::Entity>().unwrap(),
    );
    let u = seed_user(&t.db, 1).await;
    let shows = async |name: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if users_a.get(u.id).await.unwrap().unwrap().name == name {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    assert!(shows("user 1").await);
    // The listener is connected once the first notification is delivered.
    users_b.update(rename(u.id, "notified")).await.unwrap();
    assert!(shows("notified").await, "a notification woke A's tailer");

    let killed = t
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity              WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        ))
        .await
        .unwrap();
    assert!(!killed.is_empty(), "A's listener backend was found");
    users_b
        .update(rename(u.id, "after the kill"))
        .await
        .unwrap();
    assert!(
        shows("after the kill").await,
        "the reconnected listener (or the read at reconnect) brought B's write"
    );
    assert!(a.coherence_stats().listener_reconnects >= 1);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A layer that reads the log only when told to (`catch_up`), with `retention` and the
/// manual `clock`, caching `users` read-through with `configure` applied.
async fn retention_instance(
    t: &TestDb,
    clock: &sea_orm_cache::Clock,
    retention: std::time::Duration,
    configure: impl FnOnce(sea_orm_cache::CacheConfig) -> sea_orm_cache::CacheConfig + Send + 'static,
) -> CacheLayer {
    CacheLayer::builder(t.connect_again().await)
        .clock(clock.clone())
        .coherence(
            Coherence::on()
                .poll_interval(std::time::Duration::from_secs(3600))
                .listen(false)
                .retention(retention),
        )
        .cached::<user::Entity>(move |c| configure(c.policy(Policy::ReadThrough)))
        .build()
        .await
        .unwrap()
}

/// Retention: an instance that has not read the log for half the retention (paused; the
/// layer's manual clock stands for the pause) drops everything it holds when it next reads,
/// since the rows it missed may be pruned; here they are gone (another instance pruned
/// them), and A still serves no stale row. And a read of the log prunes rows older than
/// the retention.
async fn an_instance_behind_the_retention_resets_and_old_rows_are_pruned(t: TestDb) {
    let clock = sea_orm_cache::Clock::manual();
    let retention = std::time::Duration::from_secs(10);
    let a = retention_instance(&t, &clock, retention, |c| {
        c.ttl(std::time::Duration::from_secs(3600))
    })
    .await;
    let b = instance(&t, Policy::ReadThrough).await;
    let (users_a, users_b) = (
        a.repository::<user::Entity>().unwrap(),
        b.repository::<user::Entity>().unwrap(),
    );
    let u = seed_user(&t.db, 1).await;
    users_a.get(u.id).await.unwrap();
    a.catch_up().await.unwrap();
    assert_eq!(a.coherence_stats().resets, 0, "read in time: no reset");

    users_b.update(rename(u.id, "missed")).await.unwrap();
    // Another instance pruned the row A never read.
    t.db.execute_unprepared("DELETE FROM sea_orm_cache_invalidation")
        .await
        .unwrap();
    clock.advance(retention / 2 + std::time::Duration::from_secs(1));
    a.catch_up().await.unwrap();
    assert_eq!(
        a.coherence_stats().resets,
        1,
        "behind the retention: a reset"
    );
    assert_eq!(users_a.peek(u.id), None, "nothing A held survives");
    assert_eq!(users_a.get(u.id).await.unwrap().unwrap().name, "missed");

    // A row older than the retention is pruned by the next read that prunes.
    t.db.execute_unprepared(
        "INSERT INTO sea_orm_cache_invalidation (entity, pk, origin, created_at) \
         VALUES ('users', '[1]', 'ancient', 0)",
    )
    .await
    .unwrap();
    let recent = t.count("sea_orm_cache_invalidation").await;
    clock.advance(retention / 10);
    a.catch_up().await.unwrap();
    assert_eq!(t.count("sea_orm_cache_invalidation").await, recent - 1);
    assert_eq!(a.coherence_stats().pruned, 1);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A transaction left open for 30 s elsewhere (it has written, so on Postgres it holds every
/// tailer's `xmin` back) does not hold up other keys' invalidations: each of B's writes made
/// meanwhile reaches A, which polls on its own, within the bound. (On SQLite a transaction
/// that has written holds the only write lock, so no other write could be made meanwhile.)
async fn a_transaction_held_open_elsewhere_does_not_stall_other_keys(t: TestDb) {
    use std::time::{Duration, Instant};
    if t.db_backend() == DbBackend::Sqlite {
        return;
    }
    const HELD: Duration = Duration::from_secs(30);
    const BOUND: Duration = Duration::from_secs(2);
    let a = CacheLayer::builder(t.connect_again().await)
        .coherence(
            Coherence::on()
                .poll_interval(Duration::from_millis(50))
                .listen(false),
        )
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await
        .unwrap();
    let b = instance(&t, Policy::ReadThrough).await;
    let (users_a, users_b) = (
        a.repository::<user::Entity>().unwrap(),
        b.repository::<user::Entity>().unwrap(),
    );
    let bystander = seed_user(&t.db, 0).await;
    let mut keys = Vec::new();
    for n in 1..=5 {
        keys.push(seed_user(&t.db, n).await.id);
    }
    let held = t.db.begin().await.unwrap();
    held.execute_unprepared(&match t.db_backend() {
        DbBackend::MySql => format!(
            "UPDATE `users` SET `bio` = 'held' WHERE `id` = {}",
            bystander.id
        ),
        _ => format!(
            "UPDATE \"users\" SET \"bio\" = 'held' WHERE \"id\" = {}",
            bystander.id
        ),
    })
    .await
    .unwrap();
    let opened = Instant::now();
    let mut round = 0;
    while opened.elapsed() < HELD {
        round += 1;
        for &key in &keys {
            users_a.get(key).await.unwrap();
            let name = format!("round {round}");
            users_b.update(rename(key, &name)).await.unwrap();
            let acked = Instant::now();
            while users_a.get(key).await.unwrap().unwrap().name != name {
                assert!(
                    acked.elapsed() < BOUND,
                    "key {key}, {:?} into the held transaction: no invalidation within {BOUND:?}",
                    opened.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    held.rollback().await.unwrap();
    assert!(round >= 5, "writes went on while the transaction was open");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Inserts `rows` log rows of another instance for a table no layer caches, written at
/// `created_at`: applying them changes nothing, but each one is read and counted.
async fn filler_log_rows(t: &TestDb, rows: i64, created_at: i64) {
    use sea_orm::sea_query::{Alias, Query};
    for chunk in 0..(rows + 999) / 1_000 {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new("sea_orm_cache_invalidation"))
            .columns([
                Alias::new("entity"),
                Alias::new("pk"),
                Alias::new("origin"),
                Alias::new("created_at"),
            ]);
        for n in chunk * 1_000..rows.min((chunk + 1) * 1_000) {
            insert.values_panic([
                "elsewhere".into(),
                format!("[{n}]").into(),
                "another instance".into(),
                created_at.into(),
            ]);
        }
        t.db.execute(&insert).await.unwrap();
    }
}

/// A burst of log rows bigger than a page (25,000 rows, pages of 10,000) is read whole by one
/// `catch_up`, and the same rows, once older than the retention, are pruned whole by it
/// (batches of 10,000).
async fn a_burst_of_log_rows_is_read_and_pruned_whole(t: TestDb) {
    const ROWS: i64 = 25_000;
    let clock = sea_orm_cache::Clock::manual();
    let retention = std::time::Duration::from_secs(10);
    let a = retention_instance(&t, &clock, retention, |c| c).await;
    a.catch_up().await.unwrap();
    let before = a.coherence_stats();
    // Another instance's rows, written long ago, for a table A does not cache: applying them
    // changes nothing here, but each one is read and counted.
    filler_log_rows(&t, ROWS, 0).await;
    assert_eq!(t.count("sea_orm_cache_invalidation").await, ROWS);
    clock.advance(retention / 10);
    a.catch_up().await.unwrap();
    let after = a.coherence_stats();
    assert_eq!(
        after.applied - before.applied,
        ROWS as u64,
        "every row read at once"
    );
    assert_eq!(
        after.pruned - before.pruned,
        ROWS as u64,
        "every old row pruned"
    );
    assert_eq!(t.count("sea_orm_cache_invalidation").await, 0);
    assert_eq!(after.resets, 0);
    a.shutdown().await.unwrap();
}

/// SQLite: a poll asks `PRAGMA data_version` first and reads the log only when something was
/// committed since the previous poll; a commit by another instance is then read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_an_idle_log_is_not_read() {
    run(Backend::Sqlite, "idle_log_not_read", |t| async move {
        let reads_of_the_log = || {
            t.log
                .all()
                .iter()
                .filter(|sql| sql.contains("FROM sea_orm_cache_invalidation"))
                .count()
        };
        let a = t
            .builder()
            .coherence(
                Coherence::on()
                    .poll_interval(std::time::Duration::from_secs(3600))
                    .listen(false),
            )
            .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
            .build()
            .await
            .unwrap();
        let b = instance(&t, Policy::ReadThrough).await;
        let u = seed_user(&t.db, 1).await;
        let (users_a, users_b) = (
            a.repository::<user::Entity>().unwrap(),
            b.repository::<user::Entity>().unwrap(),
        );
        users_a.get(u.id).await.unwrap();
        a.catch_up().await.unwrap();
        t.log.clear();
        let before = a.coherence_stats();
        for _ in 0..3 {
            a.catch_up().await.unwrap();
        }
        assert_eq!(
            reads_of_the_log(),
            0,
            "nothing committed: the log is not read"
        );
        assert_eq!(
            a.coherence_stats().unchanged_polls - before.unchanged_polls,
            3
        );

        users_b.update(rename(u.id, "from B")).await.unwrap();
        a.catch_up().await.unwrap();
        assert_eq!(reads_of_the_log(), 1, "a commit: the log is read");
        assert_eq!(users_a.peek(u.id), None, "and B's row applied");
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    })
    .await;
}

crate::backend_tests!(
    a_burst_of_log_rows_is_read_and_pruned_whole,
    a_transaction_held_open_elsewhere_does_not_stall_other_keys,
    an_instance_behind_the_retention_resets_and_old_rows_are_pruned,
    notifications_wake_the_tailer_and_a_killed_listener_loses_nothing,
    another_instances_writes_reach_this_one_through_the_log,
    a_write_behind_acknowledgement_reaches_the_other_instance,
    a_lower_log_id_that_commits_late_is_not_skipped,
);
