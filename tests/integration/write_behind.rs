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
    CacheLayer::builder(t.db.clone())
        .entity::<profile::Entity>(move |c| {
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
    let profiles = cache.repository::<profile::Entity>();
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
    let profiles = cache.repository::<profile::Entity>();
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

/// At `max_pending` keys a writer of a new key waits until the flusher makes room.
async fn writers_wait_at_the_pending_bound(t: TestDb) {
    let cache = layer(
        &t,
        WriteBehindConfig::default()
            .max_delay(Duration::from_secs(3600))
            .max_pending(4),
    )
    .await;
    let profiles = cache.repository::<profile::Entity>();
    for id in 1..=4 {
        profiles.insert(new_profile(id)).await.unwrap();
    }
    profiles.update(visits(1, 7)).await.unwrap();
    let blocked = profiles.insert(new_profile(5));
    let mut blocked = pin!(blocked);
    let first_poll = std::future::poll_fn(|cx| Poll::Ready(blocked.as_mut().poll(cx))).await;
    assert!(first_poll.is_pending(), "the fifth key waits for room");
    profiles.flush().await.unwrap();
    blocked.await.unwrap();
    cache.shutdown().await.unwrap();
    assert_eq!(profile::Entity::find().all(&t.db).await.unwrap().len(), 5);
}

crate::backend_tests!(
    thousand_updates_in_one_window_make_one_table_write,
    shutdown_applies_every_pending_write,
    writers_wait_at_the_pending_bound,
);
