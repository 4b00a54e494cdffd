//! G11, writes from outside the layer: with `Capture::Triggers`, database triggers add the keys
//! of every INSERT, UPDATE and DELETE on the table to the invalidation log, so a write made on a
//! plain connection (or by `psql` / `mariadb`) invalidates what a layer holds. The layer reads
//! the log with `catch_up`, so each step is forced, not timed.

use std::time::Duration;

use entity::{profile, user};
use entity_plain::tags;
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Schema, Statement, TransactionTrait};
use sea_orm_cache::{
    CacheLayer, Capture, Clock, Coherence, Error, FreshnessConfig, Policy, Repository, triggers,
};

use crate::common::*;

const LOG: &str = "sea_orm_cache_invalidation";

/// Coherence on, read only when told to (`catch_up`): no poll is due for an hour and no
/// Postgres listener wakes the tailer.
fn by_hand() -> Coherence {
    Coherence::on()
        .poll_interval(Duration::from_secs(3600))
        .listen(false)
}

/// A layer on its own connection to `t`'s database caching `users` under `policy`, captured
/// by triggers, which its build installs; absence is cached for a minute.
async fn instance(t: &TestDb, policy: Policy) -> (CacheLayer, Repository<user::Entity>) {
    let cache = register_under::<user::Entity>(
        CacheLayer::builder(t.connect_again().await)
            .coherence(by_hand())
            .install_triggers(),
        policy,
        |c| {
            c.capture(Capture::Triggers)
                .negative_ttl(Some(Duration::from_secs(60)))
                .capacity(20_000)
        },
    )
    .build()
    .await
    .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    (cache, users)
}

async fn exec(db: &impl ConnectionTrait, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn name_of(users: &Repository<user::Entity>, id: i64) -> Option<String> {
    users.get(id).await.unwrap().map(|u| u.name.clone())
}

/// The triggers of `table` in the catalog (any name), and on Postgres the functions this
/// library names after it.
async fn catalog_count(t: &TestDb, table: &str) -> i64 {
    let sql = match t.backend {
        Backend::Postgres => format!(
            "SELECT (SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = '{table}'::regclass \
             AND NOT tgisinternal) + (SELECT COUNT(*) FROM pg_proc \
             WHERE proname LIKE 'sea_orm_cache_{table}_%') AS n"
        ),
        Backend::MySql => format!(
            "SELECT COUNT(*) AS n FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = '{table}'"
        ),
        Backend::Sqlite => format!(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '{table}'"
        ),
    };
    t.db.query_one_raw(Statement::from_string(t.db_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

/// A raw UPDATE, DELETE and INSERT on a plain connection invalidate exactly the keys they
/// change; a key nobody wrote stays cached.
async fn outside_writes_invalidate_the_keys_they_change(t: TestDb) {
    let (cache, users) = instance(&t, Policy::ReadThrough).await;
    let (a, b, c) = (
        seed_user(&t.db, 1).await,
        seed_user(&t.db, 2).await,
        seed_user(&t.db, 3).await,
    );
    cache.catch_up().await.unwrap(); // the seeds' own INSERT rows
    for id in [a.id, b.id, c.id] {
        users.get(id).await.unwrap();
    }
    assert_eq!(users.get(1_000).await.unwrap(), None); // absence cached

    exec(
        &t.db,
        &format!("UPDATE users SET name = 'outside' WHERE id = {}", a.id),
    )
    .await;
    assert!(
        users.peek(a.id).is_some(),
        "not applied before the log is read"
    );
    cache.catch_up().await.unwrap();
    assert!(
        users.peek(a.id).is_none(),
        "the UPDATE's key is invalidated"
    );
    assert!(
        users.peek(c.id).is_some(),
        "a key nobody wrote stays cached"
    );
    assert_eq!(name_of(&users, a.id).await.as_deref(), Some("outside"));

    exec(&t.db, &format!("DELETE FROM users WHERE id = {}", b.id)).await;
    cache.catch_up().await.unwrap();
    assert_eq!(name_of(&users, b.id).await, None);

    exec(
        &t.db,
        "INSERT INTO users (id, email, name, bio, updated_at) \
         VALUES (1000, 'new@example.com', 'inserted', '', 0)",
    )
    .await;
    cache.catch_up().await.unwrap();
    assert_eq!(name_of(&users, 1_000).await.as_deref(), Some("inserted"));
    assert!(users.peek(c.id).is_some());
    assert!(cache.coherence_stats().applied >= 3);
}

/// An UPDATE that changes the primary key invalidates the old key and the new one.
async fn a_key_change_invalidates_both_keys(t: TestDb) {
    let (cache, users) = instance(&t, Policy::ReadThrough).await;
    let u = seed_user(&t.db, 1).await;
    let moved = u.id + 500;
    users.get(u.id).await.unwrap();
    assert_eq!(users.get(moved).await.unwrap(), None); // absence cached
    exec(
        &t.db,
        &format!("UPDATE users SET id = {moved} WHERE id = {}", u.id),
    )
    .await;
    cache.catch_up().await.unwrap();
    assert_eq!(users.get(u.id).await.unwrap(), None, "old key");
    assert_eq!(
        name_of(&users, moved).await,
        Some(u.name.clone()),
        "new key"
    );
}

/// One UPDATE of 10,000 rows invalidates every one of them; each reads fresh afterwards.
async fn a_bulk_update_invalidates_every_row(t: TestDb) {
    const ROWS: i64 = 10_000;
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(500) {
        user::Entity::insert_many(chunk.iter().map(|n| user::ActiveModel {
            email: Set(format!("bulk{n}@example.com")),
            name: Set("before".to_owned()),
            bio: Set(String::new()),
            updated_at: Set(0),
            ..Default::default()
        }))
        .exec_without_returning(&t.db)
        .await
        .unwrap();
    }
    let (cache, users) = instance(&t, Policy::ReadThrough).await;
    assert_eq!(
        users.warm(user::Entity::find()).await.unwrap(),
        ROWS as usize
    );
    let ids: Vec<i64> = user::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert!(ids.iter().all(|id| users.peek(*id).is_some()));
    exec(&t.db, "UPDATE users SET name = 'after'").await;
    cache.catch_up().await.unwrap();
    let still_cached = ids.iter().filter(|id| users.peek(**id).is_some()).count();
    assert_eq!(still_cached, 0, "every updated row is invalidated");
    for id in ids.iter().step_by(997) {
        assert_eq!(name_of(&users, *id).await.as_deref(), Some("after"));
    }
}

/// An outside write that rolls back adds no log row and invalidates nothing.
async fn rolled_back_outside_writes_invalidate_nothing(t: TestDb) {
    let (cache, users) = instance(&t, Policy::ReadThrough).await;
    let u = seed_user(&t.db, 1).await;
    cache.catch_up().await.unwrap(); // the seed's own INSERT row
    users.get(u.id).await.unwrap();
    let before = t.count(LOG).await;
    let txn = t.db.begin().await.unwrap();
    exec(
        &txn,
        &format!("UPDATE users SET name = 'never' WHERE id = {}", u.id),
    )
    .await;
    exec(&txn, &format!("DELETE FROM users WHERE id = {}", u.id)).await;
    txn.rollback().await.unwrap();
    cache.catch_up().await.unwrap();
    assert_eq!(t.count(LOG).await, before);
    assert!(users.peek(u.id).is_some());
    assert_eq!(name_of(&users, u.id).await, Some(u.name.clone()));
}

/// Postgres: a `TRUNCATE` on a plain connection invalidates the whole entity (MariaDB's fires
/// no trigger: documented, not tested).
async fn a_truncate_invalidates_the_whole_entity(t: TestDb) {
    if t.backend != Backend::Postgres {
        return;
    }
    let (cache, users) = instance(&t, Policy::ReadThrough).await;
    let (a, b) = (seed_user(&t.db, 1).await, seed_user(&t.db, 2).await);
    cache.catch_up().await.unwrap();
    assert!(name_of(&users, a.id).await.is_some());
    assert!(name_of(&users, b.id).await.is_some());
    exec(&t.db, "TRUNCATE users CASCADE").await;
    cache.catch_up().await.unwrap();
    assert!(users.peek(a.id).is_none() && users.peek(b.id).is_none());
    assert_eq!(name_of(&users, a.id).await, None);
    assert_eq!(name_of(&users, b.id).await, None);
}

/// Postgres: a writer whose `search_path` does not name the log table's schema still writes,
/// and its write is logged: the trigger function runs with the search path it was installed
/// under. (Before, its `INSERT` into the unqualified log table failed, and with it the
/// writer's `UPDATE`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_writer_with_another_search_path_is_logged() {
    run(Backend::Postgres, "other_search_path", |t| async move {
        let (cache, users) = instance(&t, Policy::ReadThrough).await;
        let u = seed_user(&t.db, 1).await;
        cache.catch_up().await.unwrap();
        assert!(name_of(&users, u.id).await.is_some());
        let txn = t.db.begin().await.unwrap();
        exec(&txn, "SET LOCAL search_path TO pg_catalog").await;
        exec(
            &txn,
            &format!(
                "UPDATE public.users SET name = 'elsewhere' WHERE id = {}",
                u.id
            ),
        )
        .await;
        txn.commit().await.unwrap();
        cache.catch_up().await.unwrap();
        assert_eq!(name_of(&users, u.id).await.as_deref(), Some("elsewhere"));
        cache.shutdown().await.unwrap();
    })
    .await;
}

/// Two instances that install the triggers at the same moment (replicas starting together
/// with `install_triggers`) take turns, and both succeed. Forced: the first install runs in a
/// transaction held open until the second is seen waiting for a lock in `pg_stat_activity`;
/// then the first commits. Without the install's advisory lock the second waits on the
/// function's catalog row instead, and fails when the first commits ("tuple concurrently
/// updated").
#[tokio::test]
async fn postgres_installs_at_the_same_moment_take_turns() {
    run(Backend::Postgres, "installs_take_turns", |t| async move {
        sea_orm_cache::outbox::create_tables(&t.db).await.unwrap();
        // The function exists already, as on every start but the first.
        triggers::install::<user::Entity, _>(&t.db).await.unwrap();
        let first = t.db.begin().await.unwrap();
        triggers::install::<user::Entity, _>(&first).await.unwrap();
        let other = t.connect_again().await;
        let second =
            tokio::spawn(async move { triggers::install::<user::Entity, _>(&other).await });
        let waiting = "SELECT COUNT(*) AS n FROM pg_stat_activity \
                       WHERE datname = current_database() AND wait_event_type = 'Lock'";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let row =
                t.db.query_one_raw(Statement::from_string(DbBackend::Postgres, waiting))
                    .await
                    .unwrap()
                    .unwrap();
            if row.try_get::<i64>("", "n").unwrap() > 0 {
                break;
            }
            assert!(
                !second.is_finished(),
                "the second install did not wait for the first"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "the second install was never seen waiting"
            );
            tokio::task::yield_now().await;
        }
        first.commit().await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(30), second)
            .await
            .expect("the second install still waits after the first committed")
            .unwrap();
        assert!(second.is_ok(), "the second install failed: {second:?}");
        assert!(
            triggers::for_entity::<user::Entity>()
                .unwrap()
                .installed(&t.db)
                .await
                .unwrap()
        );
        assert_eq!(
            catalog_count(&t, "users").await,
            5,
            "4 triggers and 1 function"
        );
    })
    .await;
}

/// Write-behind on a captured entity: the flush's `UPDATE` fires the triggers, whose log rows
/// every instance applies, the writing one included, while a newer write of the same key is
/// still pending. No instance goes back to the flushed value: A (the writer) and B (another
/// instance, which had the key cached) both read the pending write, and after the next flush
/// the table, A and B agree.
async fn write_behind_on_a_captured_entity_keeps_the_newest_write(t: TestDb) {
    let layer = || async {
        register_under::<profile::Entity>(
            CacheLayer::builder(t.connect_again().await)
                .coherence(by_hand())
                .install_triggers(),
            Policy::WriteBehind,
            |c| c.capture(Capture::Triggers),
        )
        .build()
        .await
        .unwrap()
    };
    let (a, b) = (layer().await, layer().await);
    let (profiles_a, profiles_b) = (
        a.repository::<profile::Entity>().unwrap(),
        b.repository::<profile::Entity>().unwrap(),
    );
    let u = seed_user(&t.db, 1).await;
    seed_profile(&t.db, u.id).await;
    let visits = |n: i64| profile::ActiveModel {
        user_id: sea_orm::ActiveValue::Unchanged(u.id),
        visits: Set(n),
        ..Default::default()
    };
    let table = || async {
        profile::Entity::find_by_id(u.id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap()
            .visits
    };
    assert_eq!(profiles_b.get(u.id).await.unwrap().unwrap().visits, 0);

    profiles_a.update(visits(1)).await.unwrap();
    profiles_a.flush().await.unwrap();
    assert_eq!(table().await, 1);
    profiles_a.update(visits(2)).await.unwrap();
    // A and B now read the log: B's acknowledgement rows for 1 and 2, and the trigger's
    // row for the flush of 1, which A applies too.
    a.catch_up().await.unwrap();
    b.catch_up().await.unwrap();
    assert!(
        a.coherence_stats().applied >= 1,
        "A applied the trigger's row for its own flush"
    );
    assert_eq!(profiles_a.get(u.id).await.unwrap().unwrap().visits, 2);
    assert_eq!(profiles_b.get(u.id).await.unwrap().unwrap().visits, 2);

    profiles_a.flush().await.unwrap();
    a.catch_up().await.unwrap();
    b.catch_up().await.unwrap();
    assert_eq!(table().await, 2);
    assert_eq!(profiles_a.get(u.id).await.unwrap().unwrap().visits, 2);
    assert_eq!(profiles_b.get(u.id).await.unwrap().unwrap().visits, 2);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Installing twice leaves the catalog as installing once; uninstalling removes every
/// trigger (and on Postgres the function), after which outside writes log nothing.
async fn install_is_idempotent_and_uninstall_removes_everything(t: TestDb) {
    assert_eq!(catalog_count(&t, "users").await, 0);
    triggers::install::<user::Entity, _>(&t.db).await.unwrap();
    let once = catalog_count(&t, "users").await;
    let expected = match t.backend {
        Backend::Postgres => 4 + 1, // INSERT, UPDATE, DELETE, TRUNCATE and the function
        _ => 3,
    };
    assert_eq!(once, expected);
    triggers::install::<user::Entity, _>(&t.db).await.unwrap();
    assert_eq!(catalog_count(&t, "users").await, once);
    let described = triggers::for_entity::<user::Entity>().unwrap();
    assert!(described.installed(&t.db).await.unwrap());

    triggers::uninstall::<user::Entity, _>(&t.db).await.unwrap();
    assert_eq!(catalog_count(&t, "users").await, 0);
    assert!(!described.installed(&t.db).await.unwrap());
    triggers::uninstall::<user::Entity, _>(&t.db).await.unwrap(); // again: a no-op
    let before = t.count(LOG).await;
    seed_user(&t.db, 1).await;
    exec(&t.db, "UPDATE users SET name = 'x'").await;
    assert_eq!(t.count(LOG).await, before, "no trigger left to log");
}

/// A captured entity whose triggers are missing is refused at build, with coherence on.
async fn build_refuses_missing_triggers(t: TestDb) {
    let err = CacheLayer::builder(t.connect_again().await)
        .coherence(by_hand())
        .cached::<user::Entity>(|c| c.capture(Capture::Triggers))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::TriggersMissing { entity } if entity == "users"),
        "{err}"
    );
}

/// The command-line client's URL arguments for `t`'s own database.
fn client_command(t: &TestDb, sql: &str) -> Option<std::process::Command> {
    match t.backend {
        Backend::Postgres => {
            let mut command = std::process::Command::new("psql");
            command.args([t.url(), "-v", "ON_ERROR_STOP=1", "-c", sql]);
            Some(command)
        }
        Backend::MySql => {
            // mysql://user[:password]@host:port/database
            let rest = t.url().split_once("://").unwrap().1;
            let (auth, location) = rest.rsplit_once('@').unwrap();
            let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
            let (host_port, database) = location.split_once('/').unwrap();
            let database = database.split('?').next().unwrap();
            let (host, port) = host_port.split_once(':').unwrap_or((host_port, "3306"));
            let mut command = std::process::Command::new("mariadb");
            command.args(["-h", host, "-P", port, "-u", user, database, "-e", sql]);
            if !password.is_empty() {
                command.env("MYSQL_PWD", password);
            }
            Some(command)
        }
        Backend::Sqlite => None,
    }
}

/// On Postgres and MariaDB, an UPDATE made by `psql` / `mariadb` invalidates too.
async fn command_line_client_writes_invalidate(t: TestDb) {
    let (cache, users) = instance(&t, Policy::ReadThrough).await;
    let u = seed_user(&t.db, 1).await;
    users.get(u.id).await.unwrap();
    let sql = format!(
        "UPDATE users SET name = 'from the shell' WHERE id = {}",
        u.id
    );
    let Some(mut command) = client_command(&t, &sql) else {
        return; // SQLite: the library's own connections are the only writers tested here
    };
    let output = command.output().expect("the command-line client runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    cache.catch_up().await.unwrap();
    assert!(users.peek(u.id).is_none());
    assert_eq!(
        name_of(&users, u.id).await.as_deref(),
        Some("from the shell")
    );
}

/// The log rows a step adds.
async fn rows_added<F: std::future::Future<Output = ()>>(t: &TestDb, step: F) -> i64 {
    let before = t.count(LOG).await;
    step.await;
    t.count(LOG).await - before
}

/// Writes through the layer on a captured entity add exactly one log row per change (the
/// trigger's, not a second one of the layer's), under every policy that writes the table
/// at once. Another instance applies it; so does the writing instance itself, since it cannot
/// tell the trigger's row for its own write from an outside write: a write-through put is
/// dropped and reloaded once, fresh.
async fn layer_writes_add_one_log_row_per_change(t: TestDb) {
    for policy in [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
    ] {
        exec(&t.db, "DELETE FROM users").await;
        let (writer, users) = instance(&t, policy).await;
        let (reader, users_b) = instance(&t, Policy::ReadThrough).await;
        let u = seed_user(&t.db, 1).await;
        // The seed's (and the previous round's DELETE's) rows, so what follows is this
        // round's writes only.
        writer.catch_up().await.unwrap();
        reader.catch_up().await.unwrap();
        users_b.get(u.id).await.unwrap();
        let rename = |name: &str| user::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(u.id),
            name: Set(name.to_owned()),
            ..Default::default()
        };
        let added = rows_added(&t, async {
            users.update(rename("one")).await.unwrap();
        })
        .await;
        assert_eq!(added, 1, "{policy:?}: repository update");
        reader.catch_up().await.unwrap();
        assert_eq!(name_of(&users_b, u.id).await.as_deref(), Some("one"));

        // The writer applies the trigger's row for its own write: its cached value (a
        // write-through put) is dropped once and reloads fresh, never stale.
        writer.catch_up().await.unwrap();
        assert!(users.peek(u.id).is_none(), "{policy:?}");
        let reloaded = users
            .get_or_load(u.id, || user::Entity::find_by_id(u.id).one(&t.db))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reloaded.name, "one");

        let conn = writer.connection();
        let added = rows_added(&t, async {
            exec(
                &conn,
                &format!("UPDATE users SET name = 'two' WHERE id = {}", u.id),
            )
            .await;
        })
        .await;
        assert_eq!(
            added, 1,
            "{policy:?}: raw SQL through the layer's connection"
        );

        let added = rows_added(&t, async {
            let txn = conn.begin().await.unwrap();
            users.update_with(rename("three"), &txn).await.unwrap();
            txn.commit().await.unwrap();
        })
        .await;
        assert_eq!(added, 1, "{policy:?}: in a transaction");

        let added = rows_added(&t, async {
            users.delete(u.id).await.unwrap();
        })
        .await;
        assert_eq!(added, 1, "{policy:?}: delete");
        reader.catch_up().await.unwrap();
        assert_eq!(name_of(&users_b, u.id).await, None);
    }
}

/// String keys are written as JSON strings, as `key_text` writes them: quotes, commas and
/// brackets inside a key do not confuse it with another.
async fn string_keys_are_written_in_the_canonical_text(t: TestDb) {
    let schema = Schema::new(t.db_backend());
    t.db.execute(&schema.create_table_from_entity(tags::Entity))
        .await
        .unwrap();
    let odd = r#"a"b,[c]\d"#;
    for name in [odd, "plain"] {
        tags::Entity::insert(tags::ActiveModel {
            name: Set(name.to_owned()),
            uses: Set(1),
        })
        .exec_without_returning(&t.db)
        .await
        .unwrap();
    }
    let cache = CacheLayer::builder(t.connect_again().await)
        .coherence(by_hand())
        .entity::<tags::Entity>(|c| c.capture(Capture::Triggers))
        .install_triggers()
        .build()
        .await
        .unwrap();
    let tags_cache = cache.repository::<tags::Entity>().unwrap();
    for name in [odd, "plain"] {
        tags_cache.get(name.to_owned()).await.unwrap().unwrap();
    }
    let update = Statement::from_sql_and_values(
        t.db_backend(),
        match t.db_backend() {
            DbBackend::Postgres => "UPDATE tags SET uses = 2 WHERE name = $1",
            _ => "UPDATE tags SET uses = 2 WHERE name = ?",
        },
        [odd.into()],
    );
    t.db.execute_raw(update).await.unwrap();
    let logged: Vec<String> =
        t.db.query_all_raw(Statement::from_string(
            t.db_backend(),
            "SELECT pk FROM sea_orm_cache_invalidation WHERE entity = 'tags' ORDER BY id",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "pk").unwrap())
        .collect();
    assert_eq!(
        logged.last().map(String::as_str),
        Some(serde_json::json!([odd]).to_string().as_str())
    );
    cache.catch_up().await.unwrap();
    assert!(tags_cache.peek(odd.to_owned()).is_none());
    assert!(tags_cache.peek("plain".to_owned()).is_some());
    let fresh = tags_cache.get(odd.to_owned()).await.unwrap().unwrap();
    assert_eq!(fresh.uses, 2);
}

/// Issue 13 item 4: the staleness sampler confirms it. Samples every hit; each round the hits'
/// samples are read (fresh), an outside program changes two cached rows, both are hit (serving
/// the old rows; their samples' reads find the change), the coherence bound passes
/// (`catch_up`, the log read now) and the samples are judged: the changed keys' samples are
/// discarded (the trigger's log row invalidated them within the grace delay), none is stale. Without triggers the same outside
/// writes are counted stale (`freshness::*::bypassing_writes_are_measured_within_the_interval`).
async fn the_sampler_finds_outside_writes_invalidated_not_stale(t: TestDb) {
    const GRACE: Duration = Duration::from_millis(100);
    let clock = Clock::manual();
    let cache = register_under::<user::Entity>(
        CacheLayer::builder(t.connect_again().await)
            .clock(clock.clone())
            .coherence(by_hand())
            .install_triggers(),
        Policy::ReadThrough,
        |c| {
            c.capture(Capture::Triggers).freshness(
                FreshnessConfig::default()
                    .sample_rate(1.0)
                    .grace(GRACE)
                    .queue(100_000)
                    .max_samples_per_sec(1_000_000),
            )
        },
    )
    .build()
    .await
    .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    let mut keys = Vec::new();
    for n in 1..=20 {
        keys.push(seed_user(&t.db, n).await.id);
    }
    for round in 0..20_usize {
        for &id in &keys {
            users.get(id).await.unwrap();
        }
        users.settle_samples().await;
        // Two distinct keys (6 * round + 3 is odd, never 0 mod 20).
        let changed = [keys[round % 20], keys[(round * 7 + 3) % 20]];
        for id in changed {
            exec(
                &t.db,
                &format!("UPDATE users SET name = 'outside {round}' WHERE id = {id}"),
            )
            .await;
            users.get(id).await.unwrap();
        }
        users.settle_samples().await;
        cache.catch_up().await.unwrap();
        clock.advance(GRACE);
        users.settle_samples().await;
    }
    let report = users.freshness().unwrap();
    assert_eq!(report.stale, 0, "{report:?}");
    // Each round's hits on the two keys it changed: their samples are discarded.
    assert_eq!(report.discarded, 40, "{report:?}");
    assert!(report.verified >= 250, "{report:?}");
    cache.shutdown().await.unwrap();
}

crate::backend_tests!(
    outside_writes_invalidate_the_keys_they_change,
    a_key_change_invalidates_both_keys,
    a_bulk_update_invalidates_every_row,
    rolled_back_outside_writes_invalidate_nothing,
    a_truncate_invalidates_the_whole_entity,
    install_is_idempotent_and_uninstall_removes_everything,
    build_refuses_missing_triggers,
    command_line_client_writes_invalidate,
    layer_writes_add_one_log_row_per_change,
    string_keys_are_written_in_the_canonical_text,
    the_sampler_finds_outside_writes_invalidated_not_stale,
    write_behind_on_a_captured_entity_keeps_the_newest_write,
);
