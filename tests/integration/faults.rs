//! G9: a database error on a miss is returned and nothing is cached; `stale_if_error` serves
//! an expired entry while the database fails.

use std::time::Duration;

use entity::user;
use sea_orm_cache::{Clock, Error, Policy};

use crate::common::*;

/// The table disappears: the read fails with a database error and caches nothing; once the
/// table is back, the next read retries and succeeds.
async fn db_error_on_a_miss_is_returned_and_not_cached(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let cache = t
        .builder()
        .cached::<user::Entity>(|c| {
            c.policy(Policy::ReadThrough)
                .negative_ttl(Some(Duration::from_secs(60)))
        })
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();

    t.rename_table("users", "users_gone").await;
    let err = users.get(u.id).await.unwrap_err();
    assert!(
        matches!(err, Error::Db(_)),
        "typed database error, got {err:?}"
    );
    assert_eq!(users.stats().load_errors, 1);
    assert_eq!(
        users.stats().entries,
        0,
        "nothing cached, not even a negative entry"
    );

    t.rename_table("users_gone", "users").await;
    assert_eq!(
        users.get(u.id).await.unwrap().as_deref(),
        Some(&u),
        "retried"
    );
    assert_eq!(users.get(u.id).await.unwrap().as_deref(), Some(&u));
    assert_eq!(users.stats().loads, 1);
}

/// With `stale_if_error`, an expired entry is served while loads fail, within the window only.
async fn stale_if_error_serves_an_expired_entry_while_the_database_fails(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let clock = Clock::manual();
    let cache = t
        .builder()
        .clock(clock.clone())
        .cached::<user::Entity>(|c| {
            c.ttl(Duration::from_secs(10))
                .ttl_jitter(0.0)
                .stale_if_error(Some(Duration::from_secs(60)))
        })
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    users.get(u.id).await.unwrap();

    t.rename_table("users", "users_gone").await;
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        users.get(u.id).await.unwrap().as_deref(),
        Some(&u),
        "stale, served"
    );
    assert_eq!(
        users.get(u.id).await.unwrap().as_deref(),
        Some(&u),
        "and again"
    );
    assert_eq!(users.stats().stale_served, 2);
    assert_eq!(
        users.stats().load_errors,
        2,
        "each read retried the database"
    );
    clock.advance(Duration::from_secs(60));
    assert!(
        users.get(u.id).await.is_err(),
        "past the window the error shows"
    );
    t.rename_table("users_gone", "users").await;
}

crate::backend_tests!(
    db_error_on_a_miss_is_returned_and_not_cached,
    stale_if_error_serves_an_expired_entry_while_the_database_fails,
);
