//! Write-behind batching: per-key coalescing inside a flush window, flush on shutdown, and
//! backpressure at the pending bound.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use entity::profile;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::EntityTrait;
use sea_orm_cache::{CacheLayer, Error, Policy, WriteBehindConfig};

use crate::common::*;

async fn layer(t: &TestDb, write_behind: WriteBehindConfig) -> CacheLayer {
    t.builder()
        .cached::<profile::Entity>(move |c| {
            c.policy(Policy::WriteBehind).write_behind(write_behind)
        })
        .build()
        .await
        .unwrap()
}

fn visits(user_id: i64, visits: i64) -> profile::ActiveModel {
    profile::ActiveModel {
        user_id: Unchanged(user_id),
        visits: Set(visits),
        ..Default::default()
    }
}

fn new_profile(user_id: i64) -> profile::ActiveModel {
    profile::ActiveModel {
        user_id: Set(user_id),
        display_name: Set(format!("p{user_id}")),
        visits: Set(0),
    }
}

/// 1,000 updates of one key inside one flush window reach the table as one write.
async fn thousand_updates_in_one_window_make_one_table_write(t: TestDb) {
    let p = seed_profile(&t.db, 1).await;
    let cache = layer(
        &t,
        WriteBehindConfig::default().max_delay(Duration::from_secs(3600)),
    )
    .await;
    let profiles = cache.repository::<profile::Entity>().unwrap();
    t.log.clear();
    for i in 1..=1000 {
        profiles.update(visits(p.user_id, i)).await.unwrap();
    }
    assert_eq!(
        t.log.writes("profiles"),
        0,
        "nothing written before the flush"
    );
    assert_eq!(profiles.flush().await.unwrap(), 1);
    assert_eq!(
        t.log.writes("profiles"),
        1,
        "one table write for the window"
    );
    let row = profile::Entity::find_by_id(p.user_id)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.visits, 1000, "the last write won");
    let stats = profiles.stats();
    assert_eq!(
        (stats.writes, stats.coalesced_writes, stats.flushed_rows),
        (1000, 999, 1)
    );
    cache.shutdown().await.unwrap();
}

/// `shutdown` applies every pending write, inserts, updates and deletes alike, and refuses
/// writes after it.
async fn shutdown_applies_every_pending_write(t: TestDb) {
    for id in 1..=20 {
        seed_profile(&t.db, id).await;
    }
    let cache = layer(
        &t,
        WriteBehindConfig::default()
            .max_delay(Duration::from_secs(3600))
            .batch(7),
    )
    .await;
    let profiles = cache.repository::<profile::Entity>().unwrap();
    for id in 1..=10 {
        profiles.update(visits(id, id * 10)).await.unwrap();
    }
    for id in 11..=20 {
        profiles.delete(id).await.unwrap();
    }
    for id in 21..=30 {
        profiles.insert(new_profile(id)).await.unwrap();
    }
    cache.shutdown().await.unwrap();

    let rows = profile::Entity::find().all(&t.db).await.unwrap();
    let mut got: Vec<(i64, i64)> = rows.iter().map(|r| (r.user_id, r.visits)).collect();
    got.sort();
    let want: Vec<(i64, i64)> = (1..=10)
        .map(|id| (id, id * 10))
        .chain((21..=30).map(|id| (id, 0)))
        .collect();
    assert_eq!(got, want);
    assert!(matches!(
        profiles.insert(new_profile(99)).await,
        Err(Error::Shutdown)
    ));
}

/// At `max_pending` outbox rows a writer waits until the flusher makes room: here the table
/// is away, so flushes fail and pending work must not grow; once it is back, the flusher's
/// retry applies the rows and the writer goes on.
async fn writers_wait_at_the_pending_bound(t: TestDb) {
    let cache = layer(
        &t,
        WriteBehindConfig::default()
            .max_delay(Duration::from_secs(3600))
            .max_pending(4),
    )
    .await;
    let profiles = cache.repository::<profile::Entity>().unwrap();
    t.rename_table("profiles", "profiles_away").await;
    for id in 1..=3 {
        profiles.insert(new_profile(id)).await.unwrap();
    }
    profiles.update(visits(1, 7)).await.unwrap();
    let blocked = profiles.insert(new_profile(5));
    let mut blocked = pin!(blocked);
    let first_poll = std::future::poll_fn(|cx| Poll::Ready(blocked.as_mut().poll(cx))).await;
    assert!(first_poll.is_pending(), "the fifth write waits for room");
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        4,
        "pending work does not grow"
    );

    t.rename_table("profiles_away", "profiles").await;
    tokio::time::timeout(Duration::from_secs(30), blocked)
        .await
        .expect("room is made once the table is back")
        .unwrap();
    cache.shutdown().await.unwrap();
    let mut rows: Vec<(i64, i64)> = profile::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.user_id, r.visits))
        .collect();
    rows.sort();
    assert_eq!(rows, vec![(1, 7), (2, 0), (3, 0), (5, 0)]);
}

/// Several writes to one key in one window: the table ends with the last of them, whatever
/// their kinds (update, delete, insert again).
async fn the_last_write_per_key_wins_whatever_its_kind(t: TestDb) {
    seed_profile(&t.db, 1).await;
    seed_profile(&t.db, 2).await;
    let cache = layer(
        &t,
        WriteBehindConfig::default().max_delay(Duration::from_secs(3600)),
    )
    .await;
    let profiles = cache.repository::<profile::Entity>().unwrap();
    // Key 1: update, delete, insert again. Key 2: update, then delete.
    profiles.update(visits(1, 5)).await.unwrap();
    profiles.delete(1).await.unwrap();
    assert_eq!(profiles.get(1).await.unwrap(), None);
    let again = profiles
        .insert(profile::ActiveModel {
            user_id: Set(1),
            display_name: Set("again".into()),
            visits: Set(9),
        })
        .await
        .unwrap();
    profiles.update(visits(2, 5)).await.unwrap();
    profiles.delete(2).await.unwrap();
    assert_eq!(profiles.flush().await.unwrap(), 2);

    let rows = profile::Entity::find().all(&t.db).await.unwrap();
    assert_eq!(rows, vec![(*again).clone()]);
    cache.shutdown().await.unwrap();
}

/// Waits (bounded) until the flusher has applied `n` batches by itself.
async fn flushed_by_itself(profiles: &sea_orm_cache::Repository<profile::Entity>, n: u64) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while profiles.stats().flushes < n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the background flusher ran");
}

/// The background flusher applies writes after `max_delay` without being asked, and at once
/// when a batch is full.
async fn the_flusher_runs_on_max_delay_and_on_a_full_batch(t: TestDb) {
    let cache = t
        .builder()
        .cached::<profile::Entity>(|c| {
            c.policy(Policy::WriteBehind)
                .write_behind(WriteBehindConfig::default().max_delay(Duration::from_millis(20)))
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    profiles.insert(new_profile(1)).await.unwrap();
    flushed_by_itself(&profiles, 1).await;
    assert!(
        profile::Entity::find_by_id(1)
            .one(&t.db)
            .await
            .unwrap()
            .is_some()
    );
    // Any layer's flusher drains the outbox: stop this one so the next is alone.
    cache.shutdown().await.unwrap();

    let full = layer(
        &t,
        WriteBehindConfig::default()
            .max_delay(Duration::from_secs(3600))
            .batch(10),
    )
    .await;
    let batched = full.repository::<profile::Entity>().unwrap();
    for id in 100..110 {
        batched.insert(new_profile(id)).await.unwrap();
    }
    flushed_by_itself(&batched, 1).await;
    assert_eq!(batched.stats().flushed_rows, 10);
    assert_eq!(profile::Entity::find().all(&t.db).await.unwrap().len(), 11);
    full.shutdown().await.unwrap();
}

/// Outbox reads that look up keys' pending writes (not the flusher's counts or claims).
fn pending_reads(t: &TestDb) -> usize {
    t.log
        .all()
        .iter()
        .filter(|sql| {
            sql.trim_start().to_ascii_uppercase().starts_with("SELECT")
                && sql.contains("sea_orm_cache_outbox")
                && !sql.contains("GROUP BY")
                && ["\"pk\" =", "`pk` =", "\"pk\" IN", "`pk` IN"]
                    .iter()
                    .any(|by_key| sql.contains(by_key))
        })
        .count()
}

/// Issue 20 item 7: `get_many` of 20 missing keys reads their pending writes in one outbox
/// query (it read one per key), and a pending write still wins over the table.
async fn get_many_reads_the_outbox_once_for_all_missing_keys(t: TestDb) {
    for id in 1..=20 {
        seed_profile(&t.db, id).await;
    }
    let cache = layer(
        &t,
        WriteBehindConfig::default().max_delay(Duration::from_secs(3600)),
    )
    .await;
    let profiles = cache.repository::<profile::Entity>().unwrap();
    for id in [3, 17] {
        profiles.update(visits(id, 100 + id)).await.unwrap();
        // Missing from the cache, pending in the outbox.
        profiles.invalidate(id);
    }
    t.log.clear();
    let rows = profiles.get_many(1..=20).await.unwrap();
    assert_eq!(pending_reads(&t), 1, "one outbox read for 20 missing keys");
    for (id, row) in (1..=20).zip(&rows) {
        let expected = if id == 3 || id == 17 { 100 + id } else { 0 };
        assert_eq!(
            row.as_ref().map(|r| r.visits),
            Some(expected),
            "profile {id}"
        );
    }
    cache.shutdown().await.unwrap();
}

crate::backend_tests!(
    get_many_reads_the_outbox_once_for_all_missing_keys,
    the_last_write_per_key_wins_whatever_its_kind,
    the_flusher_runs_on_max_delay_and_on_a_full_batch,
    thousand_updates_in_one_window_make_one_table_write,
    shutdown_applies_every_pending_write,
    writers_wait_at_the_pending_bound,
);
