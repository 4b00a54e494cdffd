//! Entities from a crate that does not depend on sea-orm-cache (`entity-plain`, written as
//! `sea-orm-cli generate entity --with-serde both` writes them) are cached under every policy;
//! registration mistakes are typed errors, never panics.

use std::time::Duration;

use entity_plain::{accounts, tags};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{ConnectionTrait, EntityTrait, Schema};
use sea_orm_cache::{CacheConfig, Error, Policy, Repository, WriteBehindConfig};

use crate::common::*;

async fn create_tables(t: &TestDb) {
    let schema = Schema::new(t.db_backend());
    t.db.execute(&schema.create_table_from_entity(accounts::Entity))
        .await
        .unwrap();
    t.db.execute(&schema.create_table_from_entity(tags::Entity))
        .await
        .unwrap();
}

fn account(id: i64, balance: i64) -> accounts::ActiveModel {
    accounts::ActiveModel {
        id: Set(id),
        owner: Set(format!("owner {id}")),
        balance: Set(balance),
    }
}

fn balance(id: i64, balance: i64) -> accounts::ActiveModel {
    accounts::ActiveModel {
        id: Unchanged(id),
        balance: Set(balance),
        ..Default::default()
    }
}

async fn table_balance(t: &TestDb, id: i64) -> Option<i64> {
    accounts::Entity::find_by_id(id)
        .one(&t.db)
        .await
        .unwrap()
        .map(|a| a.balance)
}

/// Insert, read twice (the second a hit), update, read, delete, read: the reads see every
/// write, and the table holds it (after a flush under write-behind).
async fn round_trip(t: &TestDb, accounts: &Repository<accounts::Entity>, policy: Policy) {
    let read = |id: i64| async move {
        match policy {
            Policy::CacheAside => accounts
                .get_or_load(id, || accounts::Entity::find_by_id(id).one(&t.db))
                .await
                .unwrap(),
            _ => accounts.get(id).await.unwrap(),
        }
    };
    accounts.insert(account(1, 10)).await.unwrap();
    assert_eq!(read(1).await.unwrap().balance, 10);
    let hits = accounts.stats().hits;
    assert_eq!(read(1).await.unwrap().balance, 10);
    assert_eq!(accounts.stats().hits, hits + 1, "{policy:?}: a hit");

    accounts.update(balance(1, 20)).await.unwrap();
    assert_eq!(read(1).await.unwrap().balance, 20, "{policy:?}");
    accounts.flush().await.unwrap();
    assert_eq!(table_balance(t, 1).await, Some(20), "{policy:?}");

    assert!(accounts.delete(1).await.unwrap());
    assert!(read(1).await.is_none(), "{policy:?}");
    accounts.flush().await.unwrap();
    assert_eq!(table_balance(t, 1).await, None, "{policy:?}");
}

async fn every_policy_caches_an_entity_that_knows_nothing_of_the_cache(t: TestDb) {
    create_tables(&t).await;
    for policy in [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
    ] {
        let cache = t
            .builder()
            .entity::<accounts::Entity>(move |c| c.policy(policy))
            .build()
            .await
            .unwrap();
        let accounts = cache.repository::<accounts::Entity>().unwrap();
        round_trip(&t, &accounts, policy).await;
        cache.shutdown().await.unwrap();
    }
    let cache = t
        .builder()
        .write_behind::<accounts::Entity>(|c| {
            c.write_behind(WriteBehindConfig::default().max_delay(Duration::from_secs(3600)))
        })
        .build()
        .await
        .unwrap();
    let accounts = cache.repository::<accounts::Entity>().unwrap();
    assert_eq!(accounts.config().policy, Policy::WriteBehind);
    round_trip(&t, &accounts, Policy::WriteBehind).await;
    cache.shutdown().await.unwrap();
}

/// A string primary key, under write-behind: the outbox key text is the JSON string.
async fn a_plain_entity_with_a_string_key_goes_through_the_outbox(t: TestDb) {
    create_tables(&t).await;
    let cache = t
        .builder()
        .write_behind::<tags::Entity>(|c| {
            c.write_behind(WriteBehindConfig::default().max_delay(Duration::from_secs(3600)))
        })
        .build()
        .await
        .unwrap();
    let tags = cache.repository::<tags::Entity>().unwrap();
    tags.insert(tags::ActiveModel {
        name: Set("rust \"2024\"".into()),
        uses: Set(1),
    })
    .await
    .unwrap();
    let pk: String =
        t.db.query_one_raw(sea_orm::Statement::from_string(
            t.db_backend(),
            "SELECT pk FROM sea_orm_cache_outbox".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "pk")
        .unwrap();
    assert_eq!(pk, r#"["rust \"2024\""]"#);
    cache.shutdown().await.unwrap();
    let row = tags::Entity::find_by_id("rust \"2024\"".to_owned())
        .one(&t.db)
        .await
        .unwrap();
    assert_eq!(row.unwrap().uses, 1);
}

/// Registering twice, asking for an entity never registered, write-behind without a codec and
/// settings out of range are typed errors.
async fn registration_mistakes_are_typed_errors(t: TestDb) {
    create_tables(&t).await;
    let twice = t
        .builder()
        .entity::<accounts::Entity>(|c| c)
        .entity::<accounts::Entity>(|c| c.policy(Policy::WriteThrough))
        .build()
        .await;
    assert!(
        matches!(twice, Err(Error::DuplicateEntity { entity: "accounts" })),
        "{twice:?}"
    );

    let no_codec = t
        .builder()
        .entity::<accounts::Entity>(|c| c.policy(Policy::WriteBehind))
        .build()
        .await;
    assert!(
        matches!(no_codec, Err(Error::NotSerializable { entity: "accounts" })),
        "{no_codec:?}"
    );

    // Settings out of range are refused by `build`, with the setting named; no setter panics.
    for (setting, configure) in [
        (
            "ttl_jitter",
            (|c: CacheConfig| c.ttl_jitter(1.5)) as fn(CacheConfig) -> CacheConfig,
        ),
        ("capacity", |c| c.capacity(0)),
        ("ttl", |c| c.ttl(Duration::ZERO)),
        ("write_behind.batch", |c| {
            c.write_behind(WriteBehindConfig::default().batch(0))
        }),
        ("write_behind.max_pending", |c| {
            c.write_behind(WriteBehindConfig::default().max_pending(0))
        }),
        ("write_behind.max_attempts", |c| {
            c.write_behind(WriteBehindConfig::default().max_attempts(0))
        }),
    ] {
        let built = t
            .builder()
            .entity::<accounts::Entity>(configure)
            .build()
            .await;
        match built {
            Err(Error::InvalidConfig {
                entity: "accounts",
                source,
            }) => assert_eq!(source.setting, setting, "{source}"),
            other => panic!("{setting}: {other:?}"),
        }
    }

    let cache = t
        .builder()
        .entity::<accounts::Entity>(|c| c)
        .build()
        .await
        .unwrap();
    let missing = cache.repository::<tags::Entity>();
    assert!(
        matches!(missing, Err(Error::NotRegistered { entity: "tags" })),
        "{missing:?}"
    );
    cache.shutdown().await.unwrap();
}

crate::backend_tests!(
    every_policy_caches_an_entity_that_knows_nothing_of_the_cache,
    a_plain_entity_with_a_string_key_goes_through_the_outbox,
    registration_mistakes_are_typed_errors,
);
