//! A write through the layer's connection to a write-behind entity comes after that entity's
//! pending outbox rows: the later write wins in the table and in every reader, and the pending
//! write's other columns are kept (issue 10 item 5).

use std::time::Duration;

use entity::profile;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait};
use sea_orm_cache::{CacheLayer, Error, Repository, WriteBehindConfig};

use crate::common::*;

async fn layer(t: &TestDb) -> (CacheLayer, Repository<profile::Entity>) {
    let cache = t
        .builder()
        .cached::<profile::Entity>(|c| {
            c.write_behind(WriteBehindConfig::default().max_delay(Duration::from_secs(3600)))
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    (cache, profiles)
}

async fn pending_write(profiles: &Repository<profile::Entity>) {
    profiles
        .update(profile::ActiveModel {
            user_id: Unchanged(1),
            display_name: Set("from write-behind".into()),
            visits: Set(5),
        })
        .await
        .unwrap();
}

fn visits(n: i64) -> profile::ActiveModel {
    profile::ActiveModel {
        user_id: Unchanged(1),
        visits: Set(n),
        ..Default::default()
    }
}

async fn assert_final(t: &TestDb, profiles: &Repository<profile::Entity>, visits: i64) {
    profiles.flush().await.unwrap();
    let row = profile::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.display_name.as_str(), row.visits),
        ("from write-behind", visits),
        "the table: the pending write, then the later one"
    );
    assert_eq!(profiles.get(1).await.unwrap().as_deref(), Some(&row));
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
}

/// Autocommit: an ActiveModel update and a raw UPDATE through `cache.connection()`.
async fn a_connection_write_lands_after_the_pending_outbox_rows(t: TestDb) {
    seed_profile(&t.db, 1).await;
    let (cache, profiles) = layer(&t).await;
    pending_write(&profiles).await;
    visits(7).update(&cache.connection()).await.unwrap();
    assert_final(&t, &profiles, 7).await;

    pending_write(&profiles).await;
    cache
        .connection()
        .execute_unprepared("UPDATE profiles SET visits = 9 WHERE user_id = 1")
        .await
        .unwrap();
    assert_final(&t, &profiles, 9).await;
    cache.shutdown().await.unwrap();
}

/// Inside `cache.transaction`: the pending rows are applied in the caller's transaction, and
/// a rollback leaves them pending.
async fn a_transaction_write_lands_after_the_pending_outbox_rows(t: TestDb) {
    seed_profile(&t.db, 1).await;
    let (cache, profiles) = layer(&t).await;
    pending_write(&profiles).await;
    let rolled_back = cache
        .transaction(|txn| {
            Box::pin(async move {
                visits(3).update(txn).await?;
                Err::<(), _>(Error::Shutdown)
            })
        })
        .await;
    assert!(rolled_back.is_err());
    assert_eq!(t.count("sea_orm_cache_outbox").await, 1, "still pending");

    cache
        .transaction(|txn| {
            Box::pin(async move {
                visits(8).update(txn).await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    assert_final(&t, &profiles, 8).await;
    cache.shutdown().await.unwrap();
}

/// Pending rows of other keys, for the bounded-apply test.
const OTHER_KEYS: i64 = 1_000;

/// Issue 20 item 7: a write through the connection to one key applies that key's pending
/// outbox rows only, not the 1,000 of other keys (they wait for the flusher), in autocommit
/// and in a transaction. A statement whose keys are unknown still lands after every pending
/// row.
async fn a_keyed_connection_write_applies_only_its_own_pending_rows(t: TestDb) {
    seed_profile(&t.db, 1).await;
    // The flusher waits for an hour, or a batch larger than the test's writes.
    let cache = t
        .builder()
        .cached::<profile::Entity>(|c| {
            c.write_behind(
                WriteBehindConfig::default()
                    .max_delay(Duration::from_secs(3600))
                    .batch(10 * OTHER_KEYS as usize),
            )
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    let writes = (2..2 + OTHER_KEYS).map(|id| {
        let profiles = profiles.clone();
        async move {
            profiles
                .insert(profile::ActiveModel {
                    user_id: Set(id),
                    display_name: Set(format!("pending {id}")),
                    visits: Set(1),
                })
                .await
                .unwrap();
        }
    });
    futures_join_all(writes).await;
    pending_write(&profiles).await;
    assert_eq!(t.count("sea_orm_cache_outbox").await, OTHER_KEYS + 1);

    visits(7).update(&cache.connection()).await.unwrap();
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        OTHER_KEYS,
        "only key 1's pending row was applied before its update"
    );
    assert_eq!(
        t.count("profiles").await,
        1,
        "the other keys wait for the flusher"
    );
    let row = profile::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.display_name.as_str(), row.visits),
        ("from write-behind", 7)
    );

    pending_write(&profiles).await;
    cache
        .transaction(|txn| {
            Box::pin(async move {
                txn.execute_unprepared("UPDATE profiles SET visits = 8 WHERE user_id = 1")
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    assert_eq!(
        t.count("sea_orm_cache_outbox").await,
        OTHER_KEYS,
        "in a transaction too"
    );

    // No key: every pending row lands first.
    cache
        .connection()
        .execute_unprepared("UPDATE profiles SET visits = visits + 10")
        .await
        .unwrap();
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
    assert_eq!(t.count("profiles").await, OTHER_KEYS + 1);
    for (id, visits) in [(1, 18), (2, 11), (1 + OTHER_KEYS, 11)] {
        let row = profile::Entity::find_by_id(id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.visits, visits, "profile {id}");
    }
    cache.shutdown().await.unwrap();
}

/// Runs `futures` concurrently (write-behind writers join one group insert).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    for task in tasks {
        task.await.unwrap();
    }
}

crate::backend_tests!(
    a_connection_write_lands_after_the_pending_outbox_rows,
    a_transaction_write_lands_after_the_pending_outbox_rows,
    a_keyed_connection_write_applies_only_its_own_pending_rows,
);
