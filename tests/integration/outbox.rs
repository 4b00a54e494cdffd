//! G5, G6, G7: the durable write-behind outbox. Acknowledged writes are outbox rows; the
//! flusher applies them exactly once, retries failures with backoff, dead-letters poison,
//! and any layer on the database reads the newest acknowledged value before the flush.

use std::sync::Arc;
use std::time::Duration;

use entity::profile;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, IsolationLevel, Statement, TransactionOptions,
    TransactionTrait,
};
use sea_orm_cache::{CacheLayer, Clock, Policy, Repository, WriteBehindConfig};

use crate::common::*;

async fn profiles_with(
    t: &TestDb,
    write_behind: WriteBehindConfig,
) -> (CacheLayer, Repository<profile::Entity>) {
    let cache = t
        .builder()
        .cached::<profile::Entity>(move |c| {
            c.policy(Policy::WriteBehind).write_behind(write_behind)
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    (cache, profiles)
}

fn one_window() -> WriteBehindConfig {
    WriteBehindConfig::default().max_delay(Duration::from_secs(3600))
}

fn visits(user_id: i64, visits: i64) -> profile::ActiveModel {
    profile::ActiveModel {
        user_id: Unchanged(user_id),
        visits: Set(visits),
        ..Default::default()
    }
}

fn new_profile(user_id: i64, visits: i64) -> profile::ActiveModel {
    profile::ActiveModel {
        user_id: Set(user_id),
        display_name: Set(format!("p{user_id}")),
        visits: Set(visits),
    }
}

async fn table_visits(t: &TestDb, user_id: i64) -> Option<i64> {
    profile::Entity::find_by_id(user_id)
        .one(&t.db)
        .await
        .unwrap()
        .map(|p| p.visits)
}

/// A fault the profiles table raises for `visits >= 1,000,000` (a trigger on SQLite, a CHECK
/// constraint elsewhere), and the text its error carries.
struct VisitsFault {
    add: &'static str,
    lift: &'static str,
    message: &'static str,
}

impl VisitsFault {
    fn for_backend(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Sqlite => Self {
                add: "CREATE TRIGGER too_many BEFORE UPDATE ON profiles \
                      WHEN NEW.visits >= 1000000 \
                      BEGIN SELECT RAISE(ABORT, 'visits too large'); END",
                lift: "DROP TRIGGER too_many",
                message: "visits too large",
            },
            _ => Self {
                add: "ALTER TABLE profiles ADD CONSTRAINT too_many CHECK (visits < 1000000)",
                lift: "ALTER TABLE profiles DROP CONSTRAINT too_many",
                message: "too_many",
            },
        }
    }

    async fn add(&self, t: &TestDb) {
        t.db.execute_unprepared(self.add).await.unwrap();
    }

    async fn lift(&self, t: &TestDb) {
        t.db.execute_unprepared(self.lift).await.unwrap();
    }
}

/// Waits (bounded) until `done` holds for the repository's stats.
async fn until(
    profiles: &Repository<profile::Entity>,
    done: impl Fn(&sea_orm_cache::CacheStats) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !done(&profiles.stats()) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the flusher got there");
}

/// An acknowledged write is an outbox row; the flush applies it and deletes the row.
async fn an_acknowledged_write_is_an_outbox_row_until_flushed(t: TestDb) {
    seed_profile(&t.db, 1).await;
    let (cache, profiles) = profiles_with(&t, one_window()).await;
    profiles.update(visits(1, 5)).await.unwrap();
    assert_eq!(t.count("sea_orm_cache_outbox").await, 1);
    assert_eq!(table_visits(&t, 1).await, Some(0));
    assert_eq!(profiles.flush().await.unwrap(), 1);
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
    assert_eq!(table_visits(&t, 1).await, Some(5));
    cache.shutdown().await.unwrap();
}

/// `update_in` puts the outbox row into the caller's transaction: a rollback leaves no row
/// and no cache change; a commit leaves the row and sets the cache after the commit.
async fn the_outbox_row_commits_or_rolls_back_with_the_caller(t: TestDb) {
    let p = seed_profile(&t.db, 1).await;
    let (cache, profiles) = profiles_with(&t, one_window()).await;
    profiles.get(1).await.unwrap();

    let txn = cache.connection().begin().await.unwrap();
    profiles.update_with(visits(1, 7), &txn).await.unwrap();
    assert_eq!(
        profiles.peek(1).as_deref(),
        Some(&p),
        "not before the commit"
    );
    txn.rollback().await.unwrap();
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        0,
        "rolled back with the caller"
    );
    assert_eq!(profiles.peek(1).as_deref(), Some(&p), "no cache change");
    assert_eq!(profiles.get(1).await.unwrap().as_deref(), Some(&p));

    let txn = cache.connection().begin().await.unwrap();
    let written = profiles.update_with(visits(1, 8), &txn).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(t.count("sea_orm_cache_outbox").await, 1);
    assert_eq!(profiles.peek(1), Some(written.clone()));
    assert_eq!(
        table_visits(&t, 1).await,
        Some(0),
        "the table follows at the flush"
    );
    profiles.flush().await.unwrap();
    assert_eq!(table_visits(&t, 1).await, Some(8));
    cache.shutdown().await.unwrap();
}

/// A payload that no longer decodes moves to the dead-letter table with its error; the other
/// rows are applied.
async fn a_poison_payload_is_dead_lettered_and_the_rest_applied(t: TestDb) {
    for id in 1..=3 {
        seed_profile(&t.db, id).await;
    }
    let (cache, profiles) = profiles_with(&t, one_window()).await;
    for id in 1..=3 {
        profiles.update(visits(id, id * 10)).await.unwrap();
    }
    let pk = "[2]";
    let sql = match t.db_backend() {
        DbBackend::Postgres => {
            format!("UPDATE sea_orm_cache_outbox SET payload = '{{not json' WHERE pk = '{pk}'")
        }
        _ => format!("UPDATE sea_orm_cache_outbox SET payload = '{{not json' WHERE pk = '{pk}'"),
    };
    t.db.execute_unprepared(&sql).await.unwrap();

    assert_eq!(profiles.flush().await.unwrap(), 2);
    assert_eq!(table_visits(&t, 1).await, Some(10));
    assert_eq!(
        table_visits(&t, 2).await,
        Some(0),
        "the poison row was not applied"
    );
    assert_eq!(table_visits(&t, 3).await, Some(30));
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
    assert_eq!(t.count("sea_orm_cache_dead_letter").await, 1);
    let error =
        t.db.query_one_raw(Statement::from_string(
            t.db_backend(),
            "SELECT pk, last_error FROM sea_orm_cache_dead_letter".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(error.try_get::<String>("", "pk").unwrap(), pk);
    let message = error.try_get::<String>("", "last_error").unwrap();
    assert!(message.contains("does not decode"), "{message}");
    assert_eq!(profiles.stats().dead_lettered, 1);
    cache.shutdown().await.unwrap();
}

/// The table rejects one key's value: the others are applied, that key backs off and is
/// retried, and once the fault is lifted it is applied.
async fn a_failing_table_write_is_retried_until_the_fault_clears(t: TestDb) {
    seed_profile(&t.db, 1).await;
    seed_profile(&t.db, 2).await;
    let fault = VisitsFault::for_backend(t.db_backend());
    fault.add(&t).await;
    let (cache, profiles) = profiles_with(
        &t,
        WriteBehindConfig::default().max_delay(Duration::from_millis(10)),
    )
    .await;
    profiles.update(visits(1, 2_000_000)).await.unwrap();
    profiles.update(visits(2, 5)).await.unwrap();

    until(&profiles, |s| s.flushed_rows >= 1 && s.flush_errors >= 1).await;
    assert_eq!(table_visits(&t, 2).await, Some(5), "the good key went on");
    assert_eq!(table_visits(&t, 1).await, Some(0), "the rejected key waits");
    assert_eq!(
        profiles.get(1).await.unwrap().unwrap().visits,
        2_000_000,
        "still acknowledged"
    );
    let retried = profiles.stats().flush_errors;

    fault.lift(&t).await;
    until(&profiles, |s| s.flushed_rows >= 2).await;
    assert_eq!(
        table_visits(&t, 1).await,
        Some(2_000_000),
        "applied once the fault cleared"
    );
    assert!(retried >= 1);
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
    assert_eq!(t.count("sea_orm_cache_dead_letter").await, 0);
    cache.shutdown().await.unwrap();
}

/// A row the table keeps rejecting moves to the dead-letter table with the database's error
/// after the entity's `max_attempts` (3 here, not the default 10; earlier attempts are
/// recorded on the row, as a flusher that had already failed twice would have left it), the
/// other keys are applied, and the cache stops serving the write that will never reach the
/// table.
async fn a_row_that_keeps_failing_is_dead_lettered_and_the_cache_follows_the_table(t: TestDb) {
    seed_profile(&t.db, 1).await;
    seed_profile(&t.db, 2).await;
    let fault = VisitsFault::for_backend(t.db_backend());
    fault.add(&t).await;
    const LIMIT: u32 = 3;
    assert_ne!(LIMIT, sea_orm_cache::outbox::MAX_ATTEMPTS);
    let (cache, profiles) = profiles_with(&t, one_window().max_attempts(LIMIT)).await;
    profiles.update(visits(1, 2_000_000)).await.unwrap();
    profiles.update(visits(2, 5)).await.unwrap();
    t.db.execute_unprepared(&format!(
        "UPDATE sea_orm_cache_outbox SET attempts = {} WHERE pk = '[1]'",
        LIMIT - 1
    ))
    .await
    .unwrap();

    profiles.flush().await.unwrap();
    assert_eq!(table_visits(&t, 2).await, Some(5), "the good key went on");
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
    assert_eq!(t.count("sea_orm_cache_dead_letter").await, 1);
    let dead =
        t.db.query_one_raw(Statement::from_string(
            t.db_backend(),
            "SELECT pk, attempts, last_error FROM sea_orm_cache_dead_letter".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.try_get::<String>("", "pk").unwrap(), "[1]");
    assert_eq!(dead.try_get::<i32>("", "attempts").unwrap(), LIMIT as i32);
    let error = dead.try_get::<String>("", "last_error").unwrap();
    assert!(error.contains(fault.message), "{error}");
    assert_eq!(profiles.stats().dead_lettered, 1);
    assert_eq!(
        profiles.get(1).await.unwrap().unwrap().visits,
        0,
        "the table's value, not the dead write"
    );
    fault.lift(&t).await;
    cache.shutdown().await.unwrap();
}

/// `shutdown_within` drains what it can and gives up on a key the table keeps rejecting when
/// its deadline comes (`Error::ShutdownIncomplete`); that row stays in the outbox, and the
/// next layer on the database applies it once the fault is gone.
async fn a_shutdown_deadline_leaves_failing_rows_for_the_next_start(t: TestDb) {
    seed_profile(&t.db, 1).await;
    seed_profile(&t.db, 2).await;
    let fault = VisitsFault::for_backend(t.db_backend());
    fault.add(&t).await;
    let (cache, profiles) = profiles_with(&t, one_window()).await;
    profiles.update(visits(1, 2_000_000)).await.unwrap();
    profiles.update(visits(2, 5)).await.unwrap();

    let result = cache.shutdown_within(Duration::from_millis(300)).await;
    assert!(
        matches!(
            result,
            Err(sea_orm_cache::Error::ShutdownIncomplete { pending: 1, .. })
        ),
        "{result:?}"
    );
    assert_eq!(table_visits(&t, 2).await, Some(5), "drained what it could");
    assert_eq!(table_visits(&t, 1).await, Some(0));
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        1,
        "left for the next start"
    );
    assert!(
        profiles.update(visits(2, 6)).await.is_err(),
        "writes after shutdown are refused"
    );

    fault.lift(&t).await;
    let (next, next_profiles) = profiles_with(&t, one_window()).await;
    assert_eq!(
        next_profiles.get(1).await.unwrap().unwrap().visits,
        2_000_000,
        "pending, read from the outbox"
    );
    next.shutdown().await.unwrap();
    assert_eq!(table_visits(&t, 1).await, Some(2_000_000));
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
}

/// Group commit: writers that arrive while an outbox insert is running share the next one.
/// The outbox table is locked by another transaction, so the first insert blocks; 20 more
/// writers reserve their rows meanwhile; once the lock goes, 21 acknowledged writes take at
/// most 2 insert statements (one each would be 21), plus one per writer that had to wait
/// for a key-lock stripe it shares with another writer (a random few in a thousand).
async fn writers_waiting_on_an_insert_share_the_next_one(t: TestDb) {
    const WRITERS: i64 = 21;
    let (cache, profiles) = profiles_with(&t, one_window()).await;
    let blocker =
        t.db.begin_with_options(TransactionOptions {
            isolation_level: Some(IsolationLevel::RepeatableRead),
            ..Default::default()
        })
        .await
        .unwrap();
    let lock = match t.db_backend() {
        // SQLite: holding its write lock blocks every other writer.
        DbBackend::Sqlite => "DELETE FROM sea_orm_cache_outbox WHERE id < 0",
        DbBackend::Postgres => "LOCK TABLE sea_orm_cache_outbox IN SHARE MODE",
        // InnoDB: the next-key lock past the last row blocks inserts; plain reads go on.
        _ => "SELECT id FROM sea_orm_cache_outbox FOR UPDATE",
    };
    blocker.execute_unprepared(lock).await.unwrap();
    t.log.clear();
    let writers: Vec<_> = (1..=WRITERS)
        .map(|id| {
            let profiles = profiles.clone();
            tokio::spawn(async move { profiles.insert(new_profile(id, id)).await.unwrap() })
        })
        .collect();
    // Every writer has reserved its row, so it is in the insert task's queue (or in the
    // blocked insert): reserving and sending happen without a pause in between. A writer
    // whose key shares a write-lock stripe with another's waits for that write instead (and
    // goes in a later insert).
    until(&profiles, |s| {
        s.pending_writes + s.write_lock_waits as usize >= WRITERS as usize
    })
    .await;
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        0,
        "the lock holds the inserts"
    );
    blocker.commit().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let inserts = t
        .log
        .all()
        .iter()
        .filter(|sql| {
            // With coherence on, Postgres writes a group as one `WITH ... INSERT` statement.
            let head = sql.trim_start().to_ascii_uppercase();
            (head.starts_with("INSERT") || head.starts_with("WITH"))
                && sql.contains("sea_orm_cache_outbox")
        })
        .count();
    let late = profiles.stats().write_lock_waits as usize;
    assert!(
        (1..=2 + late).contains(&inserts),
        "{inserts} inserts for {WRITERS} writes ({late} waited for a key lock)"
    );
    assert_eq!(t.count("sea_orm_cache_outbox").await, WRITERS);
    cache.shutdown().await.unwrap();
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
}

/// Dirty entries that left the store (their TTL ran out, which ends the pin, and then they
/// were evicted for capacity), then read: the newest acknowledged value, from the outbox,
/// not the older table row.
async fn an_evicted_dirty_entry_reads_the_newest_acknowledged_value(t: TestDb) {
    for id in 1..=100 {
        seed_profile(&t.db, id).await;
    }
    let clock = Clock::manual();
    let cache = t
        .builder()
        .clock(clock.clone())
        .cached::<profile::Entity>(|c| {
            c.policy(Policy::WriteBehind)
                .capacity(4)
                .ttl(Duration::from_secs(60))
                .write_behind(one_window())
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    for round in 1..=3 {
        for id in 1..=50 {
            profiles.update(visits(id, id * 100 + round)).await.unwrap();
        }
    }
    clock.advance(Duration::from_secs(61));
    for id in 51..=100 {
        profiles.get(id).await.unwrap().unwrap();
    }
    assert!(
        profiles.stats().evicted > 0 && profiles.stats().entries < 50,
        "expired dirty entries are evicted like any other: {:?}",
        profiles.stats()
    );
    for id in 1..=50 {
        assert_eq!(
            profiles.get(id).await.unwrap().unwrap().visits,
            id * 100 + 3
        );
        assert_eq!(table_visits(&t, id).await, Some(0), "not flushed");
    }
    cache.shutdown().await.unwrap();
    assert_eq!(table_visits(&t, 7).await, Some(703));
}

/// A dirty entry (acknowledged, not yet applied to the table) is not evicted for capacity:
/// the store holds more entries than its capacity until the flush, and reads of dirty keys
/// stay hits. Once applied, the entries are evictable again.
async fn dirty_entries_are_not_evicted_before_they_are_flushed(t: TestDb) {
    for id in 1..=100 {
        seed_profile(&t.db, id).await;
    }
    let cache = t
        .builder()
        .cached::<profile::Entity>(|c| {
            c.policy(Policy::WriteBehind)
                .capacity(4)
                .write_behind(one_window())
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    for id in 1..=50 {
        profiles.insert(new_profile(id, id + 1_000)).await.unwrap();
    }
    let before = profiles.stats();
    assert_eq!(before.evicted, 0, "{before:?}");
    assert_eq!(before.entries, 50);
    for id in 1..=50 {
        assert_eq!(profiles.get(id).await.unwrap().unwrap().visits, id + 1_000);
    }
    let after = profiles.stats();
    assert_eq!(
        after.hits - before.hits,
        50,
        "every dirty key is still cached"
    );
    assert_eq!(after.loads, before.loads);

    profiles.flush().await.unwrap();
    for id in 51..=100 {
        profiles.get(id).await.unwrap().unwrap();
    }
    let flushed = profiles.stats();
    assert!(
        flushed.evicted > 0 && flushed.entries < 50,
        "applied entries are evictable again: {flushed:?}"
    );
    for id in 1..=50 {
        assert_eq!(table_visits(&t, id).await, Some(id + 1_000));
    }
    cache.shutdown().await.unwrap();
}

/// acknowledged value before the flush.
async fn a_second_layer_reads_the_newest_acknowledged_value(t: TestDb) {
    seed_profile(&t.db, 1).await;
    let (writer, profiles) = profiles_with(&t, one_window()).await;
    let other_db = t.connect_again().await;
    let reader = CacheLayer::builder(other_db.clone())
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind).write_behind(one_window()))
        .build()
        .await
        .unwrap();
    let elsewhere = reader.repository::<profile::Entity>().unwrap();

    profiles.update(visits(1, 42)).await.unwrap();
    profiles.delete(1).await.unwrap();
    profiles.insert(new_profile(1, 43)).await.unwrap();
    assert_eq!(elsewhere.get(1).await.unwrap().unwrap().visits, 43);
    assert_eq!(table_visits(&t, 1).await, Some(0));
    writer.shutdown().await.unwrap();
    reader.shutdown().await.unwrap();
    assert_eq!(table_visits(&t, 1).await, Some(43));
    other_db.close().await.unwrap();
}

/// Many writers over 100 keys while the flusher runs: every table row ends equal to its key's
/// last acknowledged value.
async fn interleaved_updates_end_with_each_row_at_its_last_acknowledged_value(t: TestDb) {
    const KEYS: i64 = 100;
    const ROUNDS: i64 = 10;
    let (cache, profiles) = profiles_with(
        &t,
        WriteBehindConfig::default()
            .max_delay(Duration::from_millis(5))
            .batch(30),
    )
    .await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let profiles = profiles.clone();
            tokio::spawn(async move {
                let mut last = Vec::new();
                for round in 0..ROUNDS {
                    for id in (w..KEYS).step_by(4) {
                        let value = round * 1000 + id;
                        let write = if round == 0 {
                            profiles.insert(new_profile(id + 1, value)).await
                        } else {
                            profiles.update(visits(id + 1, value)).await
                        };
                        write.unwrap();
                        if round == ROUNDS - 1 {
                            last.push((id + 1, value));
                        }
                    }
                }
                last
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    cache.shutdown().await.unwrap();
    acknowledged.sort();
    let mut rows: Vec<(i64, i64)> = profile::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
        .iter()
        .map(|p| (p.user_id, p.visits))
        .collect();
    rows.sort();
    assert_eq!(rows, acknowledged);
    assert!(
        profiles.stats().flushes > 1,
        "flushes interleaved with the writes"
    );
}

/// A layer built with `create_outbox_tables` needs no migration.
async fn the_builder_can_create_the_outbox_tables(t: TestDb) {
    let drop = |table: &str| format!("DROP TABLE {table}");
    t.db.execute_unprepared(&drop("sea_orm_cache_outbox"))
        .await
        .unwrap();
    t.db.execute_unprepared(&drop("sea_orm_cache_dead_letter"))
        .await
        .unwrap();
    let without = t
        .builder()
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
        .build()
        .await;
    assert!(
        matches!(without, Err(sea_orm_cache::Error::OutboxUnavailable { .. })),
        "a missing outbox table is refused at build: {without:?}"
    );
    let cache = t
        .builder()
        .create_outbox_tables()
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind).write_behind(one_window()))
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    profiles.insert(new_profile(1, 1)).await.unwrap();
    assert_eq!(t.count("sea_orm_cache_outbox").await, 1);
    cache.shutdown().await.unwrap();
    assert_eq!(table_visits(&t, 1).await, Some(1));
    let _: Arc<profile::Model> = profiles.get(1).await.unwrap().unwrap();
}

/// A steady stream of writes is flushed a window at a time: rows written while a flush runs
/// wait for the next window instead of starting another flush at once. With `max_delay` out
/// of reach, a window closes only when `batch` distinct keys were written since the last
/// flush began: 20 keys close one; 200 writes to one key after it close none, so they stay
/// pending (a flusher that went again whenever rows were left would flush them by the dozen).
async fn a_steady_stream_is_flushed_a_window_at_a_time(t: TestDb) {
    const KEYS: i64 = 20;
    const HOT_WRITES: i64 = 200;
    for id in 1..=KEYS {
        seed_profile(&t.db, id).await;
    }
    let (cache, profiles) = profiles_with(&t, one_window().batch(KEYS as usize)).await;
    let writers: Vec<_> = (1..=KEYS)
        .map(|id| {
            let profiles = profiles.clone();
            tokio::spawn(async move { profiles.update(visits(id, 1)).await.unwrap() })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for n in 2..=HOT_WRITES {
        profiles.update(visits(1, n)).await.unwrap();
    }
    let stats = profiles.stats();
    assert!(
        stats.flushes <= 1,
        "{} flushes for one closed window",
        stats.flushes
    );
    cache.shutdown().await.unwrap();
    assert_eq!(table_visits(&t, 1).await, Some(HOT_WRITES));
    for id in 2..=KEYS {
        assert_eq!(table_visits(&t, id).await, Some(1));
    }
    let stats = profiles.stats();
    assert_eq!(
        stats.flushed_rows + stats.coalesced_writes,
        (KEYS + HOT_WRITES - 1) as u64
    );
}

/// Text that needs escaping on its way into the outbox (quotes, backslashes, control and
/// non-ASCII characters) reaches the table unchanged, and reads back unchanged from the
/// outbox before the flush (on Postgres group inserts travel as one JSON parameter).
async fn escaped_text_survives_the_outbox(t: TestDb) {
    const NAME: &str = "quote \" backslash \\ tab \t newline \n é 日本 🦀 {\"json\": [1]}";
    let (cache, profiles) = profiles_with(&t, one_window()).await;
    let writers: Vec<_> = (1..=8)
        .map(|id| {
            let profiles = profiles.clone();
            tokio::spawn(async move {
                profiles
                    .insert(profile::ActiveModel {
                        user_id: Set(id),
                        display_name: Set(format!("{NAME} {id}")),
                        visits: Set(id),
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let (second, second_profiles) = profiles_with(&t, one_window()).await;
    for id in 1..=8 {
        let pending = second_profiles.get(id).await.unwrap().unwrap();
        assert_eq!(pending.display_name, format!("{NAME} {id}"));
    }
    second.shutdown().await.unwrap();
    cache.shutdown().await.unwrap();
    for id in 1..=8 {
        let row = profile::Entity::find_by_id(id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.display_name, format!("{NAME} {id}"));
        assert_eq!(row.visits, id);
    }
}

crate::backend_tests!(
    an_acknowledged_write_is_an_outbox_row_until_flushed,
    the_outbox_row_commits_or_rolls_back_with_the_caller,
    a_poison_payload_is_dead_lettered_and_the_rest_applied,
    a_failing_table_write_is_retried_until_the_fault_clears,
    a_row_that_keeps_failing_is_dead_lettered_and_the_cache_follows_the_table,
    a_shutdown_deadline_leaves_failing_rows_for_the_next_start,
    writers_waiting_on_an_insert_share_the_next_one,
    an_evicted_dirty_entry_reads_the_newest_acknowledged_value,
    dirty_entries_are_not_evicted_before_they_are_flushed,
    a_second_layer_reads_the_newest_acknowledged_value,
    interleaved_updates_end_with_each_row_at_its_last_acknowledged_value,
    the_builder_can_create_the_outbox_tables,
    a_steady_stream_is_flushed_a_window_at_a_time,
    escaped_text_survives_the_outbox,
);
