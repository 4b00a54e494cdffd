//! SeaORM's call shape on the layer's connection types (issue 10 item 8): `StreamTrait` on
//! `CachedConnection` and `CachedTransaction`, `ping` and `close`, `CacheLayer::invalidate_all`
//! after writes the layer cannot see (migrations), `transaction_typed` for a callback with
//! its own error type, and the repository's `*_with(.., &conn)` methods on a
//! `CachedConnection` as well as a `CachedTransaction`.

use entity::user;
use futures_util::TryStreamExt;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, QueryOrder, Statement, StreamTrait,
    TransactionError, TransactionTrait,
};
use sea_orm_cache::Policy;

use crate::common::*;

fn rename(id: i64, name: &str) -> user::ActiveModel {
    user::ActiveModel {
        id: Unchanged(id),
        name: Set(name.to_owned()),
        ..Default::default()
    }
}

/// `Entity::find().stream(..)` on a `CachedConnection` and inside a `CachedTransaction`: the
/// rows come back unchanged, the transaction's stream sees its own write, and nothing a stream
/// reads fills the cache.
async fn streams_pass_rows_through_connection_and_transaction(t: TestDb) {
    let mut seeded = Vec::new();
    for n in 1..=3 {
        seeded.push(seed_user(&t.db, n).await);
    }
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    let conn = cache.connection();

    let streamed: Vec<user::Model> = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .stream(&conn)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed, seeded);
    assert_eq!(users.stats().entries, 0, "a stream fills nothing");

    users.get(seeded[0].id).await.unwrap();
    let txn = conn.begin().await.unwrap();
    rename(seeded[0].id, "in txn").update(&txn).await.unwrap();
    {
        let streamed: Vec<user::Model> = user::Entity::find()
            .order_by_asc(user::Column::Id)
            .stream(&txn)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed.len(), 3);
        assert_eq!(
            streamed[0].name, "in txn",
            "the transaction sees its own write"
        );
        assert_eq!(streamed[1..], seeded[1..]);
    }
    assert!(users.peek(seeded[0].id).is_some(), "not before the commit");
    txn.commit().await.unwrap();
    assert_eq!(users.peek(seeded[0].id), None, "invalidated by the commit");
    assert_eq!(
        users.get(seeded[0].id).await.unwrap().unwrap().name,
        "in txn"
    );
}

/// A write streamed through `stream_raw` (`DELETE .. RETURNING`, which all three backends
/// run) is not missed: it runs as `query_all` would, so under autocommit the key is
/// invalidated by the time `stream_raw` returns.
async fn a_streamed_write_invalidates_like_any_write(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    let conn = cache.connection();
    users.get(u.id).await.unwrap();

    let sql = match conn.get_database_backend() {
        DbBackend::Postgres => "DELETE FROM users WHERE id = $1 RETURNING id",
        _ => "DELETE FROM users WHERE id = ? RETURNING id",
    };
    let stmt = Statement::from_sql_and_values(conn.get_database_backend(), sql, [u.id.into()]);
    let rows: Vec<_> = conn
        .stream_raw(stmt)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(users.peek(u.id), None, "invalidated");
    assert_eq!(users.get(u.id).await.unwrap(), None);
}

/// `ping` answers; `close` closes the pool the whole layer shares.
async fn ping_and_close_delegate_to_the_shared_pool(t: TestDb) {
    let db = t.connect_again().await;
    let cache = sea_orm_cache::CacheLayer::builder(db)
        .cached::<user::Entity>(|c| c)
        .build()
        .await
        .unwrap();
    let conn = cache.connection();
    conn.ping().await.unwrap();
    cache.shutdown().await.unwrap();
    conn.clone().close().await.unwrap();
    assert!(conn.ping().await.is_err(), "closed");
    assert!(
        cache.db().ping().await.is_err(),
        "the layer's pool is the same"
    );
}

/// A data migration runs on `cache.db()` (a `Migrator` takes only SeaORM's connections), which
/// the cache does not see; `CacheLayer::invalidate_all` afterwards makes the next read load the
/// migrated row, for every registered entity.
async fn invalidate_all_after_a_migration_shows_the_new_rows(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let p = seed_profile(&t.db, u.id).await;
    let cache = t
        .builder()
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .cached::<entity::profile::Entity>(|c| c.policy(Policy::WriteThrough))
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    let profiles = cache.repository::<entity::profile::Entity>().unwrap();
    users.get(u.id).await.unwrap();
    profiles.get(p.user_id).await.unwrap();

    cache
        .db()
        .execute_unprepared("UPDATE users SET name = 'migrated'")
        .await
        .unwrap();
    cache
        .db()
        .execute_unprepared("UPDATE profiles SET visits = 99")
        .await
        .unwrap();
    assert_eq!(
        users.get(u.id).await.unwrap().unwrap().name,
        u.name,
        "stale until invalidated: the cache did not see the write"
    );

    cache.invalidate_all();
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "migrated");
    assert_eq!(profiles.get(p.user_id).await.unwrap().unwrap().visits, 99);
}

/// A service's own error type, with no `From<DbErr>`.
#[derive(Debug, PartialEq)]
enum Refused {
    Reserved,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reserved name")
    }
}

/// `transaction_typed`: a callback returning its own error type (no `From<DbErr>`) gets it back
/// as `TransactionError::Transaction`, after a rollback that leaves the cache as it was.
async fn transaction_typed_returns_the_callbacks_own_error(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (cache, users) = users_under(&t, Policy::WriteThrough).await;
    users.get(u.id).await.unwrap();

    let repo = users.clone();
    let outcome = cache
        .transaction_typed(|txn| {
            Box::pin(async move {
                repo.update_with(rename(u.id, "reserved"), txn)
                    .await
                    .map_err(|_| Refused::Reserved)?;
                Err::<(), _>(Refused::Reserved)
            })
        })
        .await;
    assert!(
        matches!(
            outcome,
            Err(TransactionError::Transaction(Refused::Reserved))
        ),
        "{outcome:?}"
    );
    assert_eq!(users.peek(u.id).as_deref(), Some(&u), "rolled back");
    assert_eq!(
        user::Entity::find_by_id(u.id).one(&t.db).await.unwrap(),
        Some(u.clone())
    );

    let repo = users.clone();
    let renamed = cache
        .transaction_typed(|txn| {
            Box::pin(async move {
                repo.update_with(rename(u.id, "kept"), txn)
                    .await
                    .map_err(|_| Refused::Reserved)
            })
        })
        .await
        .unwrap();
    assert_eq!(renamed.name, "kept");
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "kept");
}

/// `insert_with`, `update_with`, `get_with` and `delete_with` take the connection last and
/// accept a `CachedConnection` (the write commits in a transaction of its own before the
/// call returns) as well as a `CachedTransaction`, under every policy: afterwards the table
/// and every reader show the write.
async fn writes_with_a_cached_connection_commit_and_reach_the_cache(t: TestDb) {
    for policy in [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
        Policy::WriteBehind,
    ] {
        let cache =
            register_under::<user::Entity>(t.builder().create_outbox_tables(), policy, |c| c)
                .build()
                .await
                .unwrap();
        let users = cache.repository::<user::Entity>().unwrap();
        let conn = cache.connection();
        let u = seed_user(&t.db, 1).await;
        let cached = users
            .get_or_load(u.id, || user::Entity::find_by_id(u.id).one(&t.db))
            .await
            .unwrap();
        assert_eq!(cached.as_deref(), Some(&u), "{policy:?}");

        let renamed = users
            .update_with(rename(u.id, "on the connection"), &conn)
            .await
            .unwrap();
        assert_eq!(renamed.name, "on the connection", "{policy:?}");
        let read = users
            .get_or_load(u.id, || user::Entity::find_by_id(u.id).one(&t.db))
            .await
            .unwrap();
        assert_eq!(read.as_deref(), Some(&*renamed), "{policy:?}: every reader");
        assert_eq!(
            users.get_with(u.id, &conn).await.unwrap().as_deref(),
            Some(&*renamed),
            "{policy:?}: the connection reads it"
        );
        users.flush().await.unwrap();
        let in_table = user::Entity::find_by_id(u.id).one(&t.db).await.unwrap();
        assert_eq!(in_table.as_ref(), Some(&*renamed), "{policy:?}: the table");

        let inserted = users
            .insert_with(
                user::ActiveModel {
                    id: Set(u.id + 1_000),
                    email: Set("with@example.com".to_owned()),
                    name: Set("inserted with".to_owned()),
                    bio: Set(String::new()),
                    updated_at: Set(0),
                },
                &conn,
            )
            .await
            .unwrap();
        assert!(users.delete_with(u.id, &conn).await.unwrap(), "{policy:?}");
        let gone = users
            .get_or_load(u.id, || user::Entity::find_by_id(u.id).one(&t.db))
            .await
            .unwrap();
        assert_eq!(gone, None, "{policy:?}: deleted for every reader");
        users.flush().await.unwrap();
        assert_eq!(
            user::Entity::find_by_id(inserted.id)
                .one(&t.db)
                .await
                .unwrap()
                .as_ref(),
            Some(&*inserted),
            "{policy:?}"
        );
        assert_eq!(
            user::Entity::find_by_id(u.id).one(&t.db).await.unwrap(),
            None,
            "{policy:?}"
        );
        cache.shutdown().await.unwrap();
        user::Entity::delete_many().exec(&t.db).await.unwrap();
    }
}

crate::backend_tests!(
    writes_with_a_cached_connection_commit_and_reach_the_cache,
    streams_pass_rows_through_connection_and_transaction,
    a_streamed_write_invalidates_like_any_write,
    ping_and_close_delegate_to_the_shared_pool,
    invalidate_all_after_a_migration_shows_the_new_rows,
    transaction_typed_returns_the_callbacks_own_error,
);
