//! G3: inside a transaction, cache effects wait for the outermost commit; a rollback applies
//! none; a savepoint's effects join its parent's on release and are dropped on its rollback;
//! reads inside a transaction go to the transaction.

use entity::user;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, TransactionError, TransactionTrait};
use sea_orm_cache::{CachedTransaction, Error, Policy};

use crate::common::*;

fn rename(id: i64, name: &str) -> user::ActiveModel {
    user::ActiveModel {
        id: Unchanged(id),
        name: Set(name.to_owned()),
        ..Default::default()
    }
}

/// A write through the cached transaction, rolled back: the cached entry stays, and is served
/// without a query.
async fn rollback_leaves_the_cached_entry_as_it_was(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    users.get(u.id).await.unwrap();

    let txn = cache.connection().begin().await.unwrap();
    rename(u.id, "plain SeaORM").update(&txn).await.unwrap();
    users
        .update_with(rename(u.id, "repository"), &txn)
        .await
        .unwrap();
    txn.rollback().await.unwrap();

    assert_eq!(users.peek(u.id).as_deref(), Some(&u));
    t.log.clear();
    assert_eq!(users.get(u.id).await.unwrap().as_deref(), Some(&u));
    assert_eq!(t.log.selects("users"), 0, "still served from the cache");

    // Dropped without commit: the same.
    let txn = cache.connection().begin().await.unwrap();
    rename(u.id, "dropped").update(&txn).await.unwrap();
    drop(txn);
    assert_eq!(users.peek(u.id).as_deref(), Some(&u));
}

/// Committed: nothing changes before the commit, the key is invalidated after it, and the
/// next read loads the committed row.
async fn commit_makes_the_next_read_reload(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    users.get(u.id).await.unwrap();

    let txn = cache.connection().begin().await.unwrap();
    rename(u.id, "committed").update(&txn).await.unwrap();
    assert_eq!(
        users.peek(u.id).as_deref(),
        Some(&u),
        "not before the commit"
    );
    txn.commit().await.unwrap();
    assert_eq!(users.peek(u.id), None, "invalidated by the commit");
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "committed");
}

/// Write-through inside a transaction sets the cache to the returned row after the commit.
async fn write_through_sets_the_row_after_the_commit(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (cache, users) = users_under(&t, Policy::WriteThrough).await;
    users.get(u.id).await.unwrap();
    let repo = users.clone();
    let written = cache
        .transaction(|txn| {
            Box::pin(async move {
                let written = repo.update_with(rename(u.id, "through"), txn).await?;
                assert_eq!(
                    repo.peek(u.id).map(|m| m.name.clone()),
                    Some(u.name.clone())
                );
                Ok::<_, Error>(written)
            })
        })
        .await
        .unwrap();
    assert_eq!(users.peek(u.id), Some(written));
}

/// `cache.transaction` rolls back when the callback fails, and the cache keeps its entry.
async fn a_failed_transaction_callback_rolls_back(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    users.get(u.id).await.unwrap();
    let repo = users.clone();
    let outcome: Result<(), Error> = cache
        .transaction(|txn| {
            Box::pin(async move {
                repo.update_with(rename(u.id, "lost"), txn).await?;
                Err(Error::Db(DbErr::Custom("the caller gives up".into())))
            })
        })
        .await;
    assert!(outcome.is_err());
    assert_eq!(users.peek(u.id).as_deref(), Some(&u));
    let in_db = user::Entity::find_by_id(u.id)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(in_db, u, "rolled back");
}

/// SeaORM's async-closure transactions, on `cache.connection()` (and a savepoint on its
/// transaction) and on the layer: plain SeaORM code that calls `transaction_async` keeps
/// compiling after the swap to the cached connection, the closure borrows from its
/// surroundings (no `Box::pin`, no `'static`), a commit invalidates after it, an `Err`
/// rolls back and invalidates nothing.
async fn async_closure_transactions_commit_and_roll_back(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    let conn = cache.connection();
    users.get(u.id).await.unwrap();

    // Rolled back: the entry stays, the row too.
    let name = String::from("lost");
    let outcome = conn
        .transaction_async(async |txn: &CachedTransaction| {
            rename(u.id, &name).update(txn).await?;
            Err::<(), DbErr>(DbErr::Custom("the caller gives up".into()))
        })
        .await;
    assert!(matches!(outcome, Err(TransactionError::Transaction(_))));
    assert_eq!(users.peek(u.id).as_deref(), Some(&u));

    // Committed, with a savepoint inside that rolls back: the outer write's key is
    // invalidated after the commit; the savepoint's write is not in the table.
    conn.transaction_with_config_async(
        async |txn: &CachedTransaction| {
            rename(u.id, "outer").update(txn).await?;
            let inner = txn
                .transaction_async(async |sp: &CachedTransaction| {
                    rename(u.id, "savepoint").update(sp).await?;
                    Err::<(), DbErr>(DbErr::Custom("inner gives up".into()))
                })
                .await;
            assert!(inner.is_err());
            assert_eq!(
                users.peek(u.id).as_deref(),
                Some(&u),
                "not before the commit"
            );
            Ok::<(), DbErr>(())
        },
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(users.peek(u.id), None, "invalidated at the commit");
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "outer");

    // The layer's own, with this crate's error.
    let (repo, id) = (&users, u.id);
    cache
        .transaction_async(async |txn: &CachedTransaction| {
            repo.update_with(rename(id, "layer"), txn).await?;
            Ok::<(), Error>(())
        })
        .await
        .unwrap();
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "layer");
    let failed: Result<(), Error> = cache
        .transaction_with_config_async(
            async |txn: &CachedTransaction| {
                repo.update_with(rename(id, "lost again"), txn).await?;
                Err(Error::Db(DbErr::Custom("no".into())))
            },
            None,
            None,
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "layer");
}

/// A savepoint rolled back inside a committed transaction: only the outer write's key is
/// invalidated. A savepoint released inside a rolled back transaction: nothing is.
async fn savepoints_merge_on_release_and_drop_on_rollback(t: TestDb) {
    let a = seed_user(&t.db, 1).await;
    let b = seed_user(&t.db, 2).await;
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    users.get(a.id).await.unwrap();
    users.get(b.id).await.unwrap();

    let txn = cache.connection().begin().await.unwrap();
    rename(a.id, "outer").update(&txn).await.unwrap();
    let savepoint = txn.begin().await.unwrap();
    rename(b.id, "inner").update(&savepoint).await.unwrap();
    savepoint.rollback().await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(users.peek(a.id), None, "the outer write is invalidated");
    assert_eq!(
        users.peek(b.id).as_deref(),
        Some(&b),
        "the rolled back savepoint's is not"
    );
    assert_eq!(users.get(b.id).await.unwrap().as_deref(), Some(&b));
    let a_now = users.get(a.id).await.unwrap().unwrap();
    assert_eq!(a_now.name, "outer");

    let txn = cache.connection().begin().await.unwrap();
    let savepoint = txn.begin().await.unwrap();
    users
        .update_with(rename(b.id, "inner"), &savepoint)
        .await
        .unwrap();
    savepoint.commit().await.unwrap();
    assert_eq!(
        users.peek(b.id).as_deref(),
        Some(&b),
        "released, but not committed"
    );
    txn.rollback().await.unwrap();
    assert_eq!(users.peek(b.id).as_deref(), Some(&b));
    assert_eq!(users.peek(a.id), Some(a_now.clone()));

    let txn = cache.connection().begin().await.unwrap();
    let savepoint = txn.begin().await.unwrap();
    users
        .update_with(rename(b.id, "kept"), &savepoint)
        .await
        .unwrap();
    savepoint.commit().await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(
        users.peek(b.id),
        None,
        "released into a committed transaction"
    );
    assert_eq!(users.peek(a.id), Some(a_now));
}

/// Forced interleaving: a reader loads the old row after the transaction's UPDATE and before
/// its COMMIT, and tries to fill after the commit's invalidation. The old row must not stay.
async fn a_read_between_update_and_commit_does_not_stick(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    let reader_db = t.connect_again().await;

    let txn = cache.connection().begin().await.unwrap();
    rename(u.id, "new").update(&txn).await.unwrap();
    let held = held_load(&users, &reader_db, u.id);
    held.has_read.await.unwrap();
    txn.commit().await.unwrap();
    held.release.send(true).unwrap();
    let read = held.task.await.unwrap().unwrap().unwrap();
    assert_eq!(read.name, u.name, "the reader saw the old row");
    assert_eq!(users.peek(u.id), None, "and could not cache it");
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "new");

    // The other order: the old row is cached before the commit; the commit removes it.
    let txn = cache.connection().begin().await.unwrap();
    rename(u.id, "newer").update(&txn).await.unwrap();
    users.invalidate(u.id);
    let before = users.get(u.id).await.unwrap().unwrap();
    assert_eq!(before.name, "new", "uncommitted: readers see the old row");
    txn.commit().await.unwrap();
    assert_eq!(users.peek(u.id), None);
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "newer");
    reader_db.close().await.unwrap();
}

/// Reads inside a transaction go to the transaction: they see its uncommitted writes and
/// fill nothing.
async fn reads_inside_a_transaction_see_its_writes_and_fill_nothing(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let other = seed_user(&t.db, 2).await;
    let (cache, users) = users_under(&t, Policy::ReadThrough).await;
    users.get(u.id).await.unwrap();

    let txn = cache.connection().begin().await.unwrap();
    users.update_with(rename(u.id, "mine"), &txn).await.unwrap();
    let loads = users.stats().loads;
    assert_eq!(
        users.get_with(u.id, &txn).await.unwrap().unwrap().name,
        "mine"
    );
    assert_eq!(
        user::Entity::find_by_id(u.id)
            .one(&txn)
            .await
            .unwrap()
            .unwrap()
            .name,
        "mine",
        "plain SeaORM reads on the transaction see it too"
    );
    assert_eq!(
        users.get_with(other.id, &txn).await.unwrap().as_deref(),
        Some(&other)
    );
    assert_eq!(users.stats().loads, loads, "no cache load");
    assert_eq!(users.peek(other.id), None, "nothing filled");
    assert_eq!(
        users.peek(u.id).as_deref(),
        Some(&u),
        "the cache holds the committed row"
    );
    txn.rollback().await.unwrap();
}

crate::backend_tests!(
    rollback_leaves_the_cached_entry_as_it_was,
    commit_makes_the_next_read_reload,
    write_through_sets_the_row_after_the_commit,
    a_failed_transaction_callback_rolls_back,
    async_closure_transactions_commit_and_roll_back,
    savepoints_merge_on_release_and_drop_on_rollback,
    a_read_between_update_and_commit_does_not_stick,
    reads_inside_a_transaction_see_its_writes_and_fill_nothing,
);
