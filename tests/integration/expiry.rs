//! TTL, jitter and negative entries, on a manual clock (no sleeping).

use std::time::Duration;

use entity::user;
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;
use sea_orm_cache::{CacheConfig, CacheLayer, Clock, Policy, Repository};

use crate::common::*;

async fn users_with(
    t: &TestDb,
    clock: &Clock,
    configure: impl FnOnce(CacheConfig) -> CacheConfig + Send + 'static,
) -> (CacheLayer, Repository<user::Entity>) {
    let cache = t
        .builder()
        .clock(clock.clone())
        .cached::<user::Entity>(move |c| configure(c.policy(Policy::ReadThrough)))
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    (cache, users)
}

/// Without jitter an entry is served until exactly its TTL, then reloaded.
async fn entries_expire_after_their_ttl(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let clock = Clock::manual();
    let (_cache, users) = users_with(&t, &clock, |c| {
        c.ttl(Duration::from_secs(10)).ttl_jitter(0.0)
    })
    .await;
    users.get(u.id).await.unwrap();
    clock.advance(Duration::from_millis(9_999));
    t.log.clear();
    users.get(u.id).await.unwrap();
    assert_eq!(t.log.selects("users"), 0, "still fresh 1 ms before the TTL");
    clock.advance(Duration::from_millis(1));
    users.get(u.id).await.unwrap();
    assert_eq!(t.log.selects("users"), 1, "expired at the TTL");
    assert_eq!(users.stats().expired, 1);
}

/// Sub-second TTLs build with every other setting left to its default (a 200 ms TTL was
/// refused for the default `freshness.min_ttl` of 1 s), and serve until exactly their TTL.
async fn sub_second_ttls_build_and_expire_at_their_ttl(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    for ttl_ms in [1, 200, 999] {
        let clock = Clock::manual();
        let (cache, users) = users_with(&t, &clock, move |c| {
            c.ttl(Duration::from_millis(ttl_ms)).ttl_jitter(0.0)
        })
        .await;
        users.get(u.id).await.unwrap();
        clock.advance(Duration::from_millis(ttl_ms - 1));
        t.log.clear();
        users.get(u.id).await.unwrap();
        assert_eq!(t.log.selects("users"), 0, "{ttl_ms} ms: fresh 1 ms before");
        clock.advance(Duration::from_millis(1));
        users.get(u.id).await.unwrap();
        assert_eq!(t.log.selects("users"), 1, "{ttl_ms} ms: expired at the TTL");
        cache.shutdown().await.unwrap();
    }
}

/// With 50% jitter every entry lives between half the TTL and the TTL, and not all the same.
async fn jitter_spreads_expiry_within_bounds(t: TestDb) {
    const N: u64 = 100;
    for n in 0..N as i64 {
        seed_user(&t.db, n).await;
    }
    let clock = Clock::manual();
    let (_cache, users) = users_with(&t, &clock, |c| {
        c.ttl(Duration::from_secs(60)).ttl_jitter(0.5)
    })
    .await;
    let ids: Vec<i64> = user::Entity::find()
        .all(&t.db)
        .await
        .unwrap()
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(users.warm(user::Entity::find()).await.unwrap(), N as usize);

    let hits_at = |users: &Repository<user::Entity>| users.stats().hits;
    // Just before the lower bound: every entry is fresh.
    clock.advance(Duration::from_millis(29_999));
    let before = hits_at(&users);
    for &id in &ids {
        users.peek(id).expect("fresh before ttl * (1 - jitter)");
    }
    users.get_many(ids.clone()).await.unwrap();
    assert_eq!(hits_at(&users) - before, N);

    // Half way through the jitter window: some expired, some not.
    clock.advance(Duration::from_millis(15_001));
    let fresh = ids.iter().filter(|id| users.peek(**id).is_some()).count();
    assert!(
        fresh > 0 && fresh < N as usize,
        "expiry is spread, {fresh} of {N} fresh at 75% of the TTL"
    );

    // At the TTL: every entry filled at time 0 has expired.
    users.invalidate_all();
    assert_eq!(users.warm(user::Entity::find()).await.unwrap(), N as usize);
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        ids.iter().filter(|id| users.peek(**id).is_some()).count(),
        0
    );
}

/// Negative caching off (the default): every read of a missing key asks the database.
async fn missing_rows_are_not_cached_by_default(t: TestDb) {
    let clock = Clock::manual();
    let (_cache, users) = users_with(&t, &clock, |c| c).await;
    assert_eq!(users.get(42).await.unwrap(), None);
    assert_eq!(users.get(42).await.unwrap(), None);
    assert_eq!(t.log.selects("users"), 2);
    assert_eq!(users.stats().negative_hits, 0);
}

/// Negative caching on: "no such row" is served until the negative TTL, and an insert through
/// the repository clears it at once.
async fn negative_entries_are_cached_and_cleared_by_insert(t: TestDb) {
    let clock = Clock::manual();
    let (_cache, users) = users_with(&t, &clock, |c| {
        c.negative_ttl(Some(Duration::from_secs(30)))
    })
    .await;
    assert_eq!(users.get(42).await.unwrap(), None);
    assert_eq!(users.get(42).await.unwrap(), None);
    assert_eq!(
        t.log.selects("users"),
        1,
        "the second read is a negative hit"
    );
    assert_eq!(users.stats().negative_hits, 1);
    clock.advance(Duration::from_secs(30));
    assert_eq!(users.get(42).await.unwrap(), None);
    assert_eq!(t.log.selects("users"), 2, "reloaded after the negative TTL");

    let inserted = users
        .insert(user::ActiveModel {
            id: Set(42),
            email: Set("forty-two@example.com".into()),
            name: Set("x".into()),
            bio: Set(String::new()),
            updated_at: Set(now_ms()),
        })
        .await
        .unwrap();
    assert_eq!(users.get(42).await.unwrap(), Some(inserted));
}

crate::backend_tests!(
    entries_expire_after_their_ttl,
    sub_second_ttls_build_and_expire_at_their_ttl,
    jitter_spreads_expiry_within_bounds,
    missing_rows_are_not_cached_by_default,
    negative_entries_are_cached_and_cleared_by_insert,
);
