//! The read and write promise of each policy (DESIGN section 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use entity::{profile, user};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{DatabaseConnection, EntityTrait};
use sea_orm_cache::{CacheLayer, Error, Policy, WriteBehindConfig};

use crate::common::*;

async fn layer(t: &TestDb, policy: Policy) -> CacheLayer {
    register_under::<user::Entity>(t.builder(), policy, |c| c)
        .cached::<profile::Entity>(move |c| {
            c.policy(policy)
                .write_behind(WriteBehindConfig::default().max_delay(Duration::from_secs(3600)))
        })
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

fn new_user(n: i64) -> user::ActiveModel {
    user::ActiveModel {
        email: Set(format!("new{n}@example.com")),
        name: Set(format!("new {n}")),
        bio: Set("bio".into()),
        updated_at: Set(now_ms()),
        ..Default::default()
    }
}

async fn table_user(db: &DatabaseConnection, id: i64) -> Option<user::Model> {
    user::Entity::find_by_id(id).one(db).await.unwrap()
}

async fn table_profile(db: &DatabaseConnection, id: i64) -> Option<profile::Model> {
    profile::Entity::find_by_id(id).one(db).await.unwrap()
}

/// Cache-aside: the cache never loads by itself; the caller's loader runs on a miss only, and
/// a write through the repository invalidates, so the next read runs the loader again.
async fn cache_aside_loads_through_the_caller(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let cache = layer(&t, Policy::CacheAside).await;
    let users = cache.repository::<user::Entity>().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |id: i64| {
        let db = t.db.clone();
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            user::Entity::find_by_id(id).one(&db).await
        }
    };

    assert!(matches!(
        users.get(u.id).await,
        Err(Error::LoaderRequired { .. })
    ));
    assert_eq!(
        users
            .get_or_load(u.id, load(u.id))
            .await
            .unwrap()
            .as_deref(),
        Some(&u)
    );
    assert_eq!(
        users
            .get_or_load(u.id, load(u.id))
            .await
            .unwrap()
            .as_deref(),
        Some(&u)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "second read is a hit");
    assert_eq!(
        users.get(u.id).await.unwrap().as_deref(),
        Some(&u),
        "get serves hits"
    );

    let updated = users.update(rename(u.id, "renamed")).await.unwrap();
    assert_eq!(updated.name, "renamed");
    assert_eq!(users.peek(u.id), None, "a write invalidates");
    let read = users.get_or_load(u.id, load(u.id)).await.unwrap().unwrap();
    assert_eq!(read.name, "renamed");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    assert!(users.delete(u.id).await.unwrap());
    assert_eq!(users.peek(u.id), None);
    assert_eq!(users.get_or_load(u.id, load(u.id)).await.unwrap(), None);
    assert_eq!(table_user(&t.db, u.id).await, None);
}

/// Read-through: a miss loads by primary key once, later reads are hits; a write goes to the
/// database and invalidates, so the next read loads the committed row.
async fn read_through_loads_by_key_and_invalidates_on_write(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let cache = layer(&t, Policy::ReadThrough).await;
    let users = cache.repository::<user::Entity>().unwrap();

    t.log.clear();
    assert_eq!(users.get(u.id).await.unwrap().as_deref(), Some(&u));
    assert_eq!(users.get(u.id).await.unwrap().as_deref(), Some(&u));
    assert_eq!(t.log.selects("users"), 1, "one load, then a hit");
    let stats = users.stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));

    let updated = users.update(rename(u.id, "renamed")).await.unwrap();
    assert_eq!(table_user(&t.db, u.id).await.as_ref(), Some(&*updated));
    assert_eq!(users.peek(u.id), None, "invalidated, not rewritten");
    t.log.clear();
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "renamed");
    assert_eq!(t.log.selects("users"), 1, "the read after a write reloads");

    let inserted = users.insert(new_user(2)).await.unwrap();
    assert_eq!(
        table_user(&t.db, inserted.id).await.as_ref(),
        Some(&*inserted)
    );
    assert_eq!(
        users.get(inserted.id).await.unwrap(),
        Some(inserted.clone())
    );

    assert!(users.delete(u.id).await.unwrap());
    assert_eq!(users.get(u.id).await.unwrap(), None);
    assert!(
        !users.delete(u.id).await.unwrap(),
        "a second delete finds nothing"
    );
}

/// Write-through: the cache holds the row the database returned as soon as the write returns;
/// reading it back costs no query.
async fn write_through_caches_the_row_the_database_returned(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let cache = layer(&t, Policy::WriteThrough).await;
    let users = cache.repository::<user::Entity>().unwrap();

    let updated = users.update(rename(u.id, "renamed")).await.unwrap();
    assert_eq!(updated.name, "renamed");
    assert_eq!(
        updated.email, u.email,
        "the full row, as the database returned it"
    );
    assert_eq!(users.peek(u.id), Some(updated.clone()));
    t.log.clear();
    assert_eq!(users.get(u.id).await.unwrap(), Some(updated.clone()));
    assert_eq!(t.log.selects("users"), 0, "served from the cache");
    assert_eq!(table_user(&t.db, u.id).await.as_ref(), Some(&*updated));

    let inserted = users.insert(new_user(2)).await.unwrap();
    assert!(inserted.id > u.id, "the database assigned the key");
    assert_eq!(users.peek(inserted.id), Some(inserted.clone()));
    assert_eq!(
        table_user(&t.db, inserted.id).await.as_ref(),
        Some(&*inserted)
    );

    assert!(users.delete(u.id).await.unwrap());
    assert_eq!(users.peek(u.id), None);
    assert_eq!(users.get(u.id).await.unwrap(), None);
    assert_eq!(table_user(&t.db, u.id).await, None);
}

/// Write-behind: readers see a write at once, the table only after a flush; a miss (after
/// eviction or invalidation) reads the pending write, not the older table row. A
/// database-assigned key cannot wait, so such an insert is written through.
async fn write_behind_acknowledges_before_the_table(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let p = seed_profile(&t.db, u.id).await;
    let cache = layer(&t, Policy::WriteBehind).await;
    let profiles = cache.repository::<profile::Entity>().unwrap();
    let users = cache.repository::<user::Entity>().unwrap();

    let updated = profiles
        .update(profile::ActiveModel {
            user_id: Unchanged(p.user_id),
            visits: Set(5),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (updated.visits, updated.display_name.as_str()),
        (5, p.display_name.as_str())
    );
    assert_eq!(
        profiles.get(p.user_id).await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(
        table_profile(&t.db, p.user_id).await,
        Some(p.clone()),
        "not flushed yet"
    );

    let other = seed_user(&t.db, 2).await;
    let inserted = profiles
        .insert(profile::ActiveModel {
            user_id: Set(other.id),
            display_name: Set("other".into()),
            visits: Set(1),
        })
        .await
        .unwrap();
    assert_eq!(
        table_profile(&t.db, other.id).await,
        None,
        "not flushed yet"
    );
    profiles.invalidate(other.id);
    assert_eq!(
        profiles.get(other.id).await.unwrap(),
        Some(inserted.clone()),
        "a miss reads the pending write, not the table"
    );
    profiles.invalidate(other.id);
    let db = t.db.clone();
    let loaded = profiles
        .get_or_load(other.id, || profile::Entity::find_by_id(other.id).one(&db))
        .await
        .unwrap();
    assert_eq!(
        loaded,
        Some(inserted.clone()),
        "the pending write wins over a loader"
    );

    assert!(profiles.delete(p.user_id).await.unwrap());
    assert_eq!(profiles.get(p.user_id).await.unwrap(), None);
    assert!(
        table_profile(&t.db, p.user_id).await.is_some(),
        "not flushed yet"
    );

    let through = users.insert(new_user(3)).await.unwrap();
    assert_eq!(
        table_user(&t.db, through.id).await.as_ref(),
        Some(&*through),
        "a database-assigned key is written through"
    );

    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        3,
        "three outbox rows"
    );
    assert_eq!(profiles.flush().await.unwrap(), 2);
    assert_eq!(table_profile(&t.db, p.user_id).await, None);
    assert_eq!(
        table_profile(&t.db, other.id).await.as_ref(),
        Some(&*inserted)
    );
    assert_eq!(profiles.stats().pending_writes, 0);
    cache.shutdown().await.unwrap();
}

/// `get_many` answers hits from the cache and loads every miss in one query.
async fn get_many_loads_all_misses_in_one_query(t: TestDb) {
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(seed_user(&t.db, n).await.id);
    }
    let cache = layer(&t, Policy::ReadThrough).await;
    let users = cache.repository::<user::Entity>().unwrap();
    users.get(ids[0]).await.unwrap();

    t.log.clear();
    let mut keys = ids.clone();
    keys.push(-1);
    let rows = users.get_many(keys.clone()).await.unwrap();
    assert_eq!(t.log.selects("users"), 1);
    let got: Vec<Option<i64>> = rows.iter().map(|r| r.as_ref().map(|m| m.id)).collect();
    let want: Vec<Option<i64>> = keys.iter().map(|&k| (k > 0).then_some(k)).collect();
    assert_eq!(got, want, "in the order asked, None for the missing key");

    users.get_many(ids.clone()).await.unwrap();
    assert_eq!(t.log.selects("users"), 1, "all hits the second time");
}

/// `warm` fills the cache from a select; reads afterwards cost no query.
async fn warm_fills_from_a_select(t: TestDb) {
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(seed_user(&t.db, n).await.id);
    }
    let cache = layer(&t, Policy::ReadThrough).await;
    let users = cache.repository::<user::Entity>().unwrap();
    assert_eq!(users.warm(user::Entity::find()).await.unwrap(), 10);
    t.log.clear();
    for id in ids {
        assert_eq!(users.get(id).await.unwrap().unwrap().id, id);
    }
    assert_eq!(t.log.selects("users"), 0);
    assert_eq!(users.stats().hits, 10);
}

/// Updating a key no row has is `Error::NotFound` under every policy, through `update` and
/// through `update_in`; nothing is written or cached.
async fn update_of_a_missing_key_is_not_found_under_every_policy(t: TestDb) {
    let missing = 4242;
    for policy in [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
        Policy::WriteBehind,
    ] {
        let cache = layer(&t, policy).await;
        let users = cache.repository::<user::Entity>().unwrap();
        let err = users.update(rename(missing, "ghost")).await.unwrap_err();
        assert!(
            matches!(err, Error::NotFound { entity: "users" }),
            "{policy:?}: update gave {err:?}"
        );
        let repo = users.clone();
        let err = cache
            .transaction(|txn| {
                Box::pin(async move {
                    repo.update_with(rename(missing, "ghost"), txn).await?;
                    Ok::<_, Error>(())
                })
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::NotFound { entity: "users" }),
            "{policy:?}: update_in gave {err:?}"
        );
        assert_eq!(users.peek(missing), None, "{policy:?}: nothing cached");
        assert_eq!(
            users.stats().pending_writes,
            0,
            "{policy:?}: nothing queued"
        );
        cache.shutdown().await.unwrap();
    }
    assert_eq!(table_user(&t.db, missing).await, None);
    assert_eq!(t.count("users").await, 0);
}

crate::backend_tests!(
    update_of_a_missing_key_is_not_found_under_every_policy,
    cache_aside_loads_through_the_caller,
    read_through_loads_by_key_and_invalidates_on_write,
    write_through_caches_the_row_the_database_returned,
    write_behind_acknowledges_before_the_table,
    get_many_loads_all_misses_in_one_query,
    warm_fills_from_a_select,
);
