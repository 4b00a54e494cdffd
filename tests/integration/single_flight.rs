//! G1: concurrent misses on one key cause one database load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use entity::user;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait, RuntimeErr,
    TransactionTrait,
};
use sea_orm_cache::{CacheLayer, Coherence, Error, Policy};
use tokio::sync::{Barrier, watch};

use crate::common::*;

const READERS: usize = 64;

/// 64 readers miss while the first load is held open; all of them get its row and the
/// database sees one SELECT.
async fn sixty_four_misses_share_one_load(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (_cache, users) = users_under(&t, Policy::ReadThrough).await;
    let (open_gate, gate) = watch::channel(false);
    t.log.clear();

    let mut readers = Vec::new();
    for _ in 0..READERS {
        let users = users.clone();
        let db = t.db.clone();
        let mut gate = gate.clone();
        readers.push(tokio::spawn(async move {
            users
                .get_or_load(u.id, move || async move {
                    let row = user::Entity::find_by_id(u.id).one(&db).await;
                    // Hold the load open until every reader has missed.
                    gate.wait_for(|open| *open).await.unwrap();
                    row
                })
                .await
        }));
    }
    // Every reader has missed before the one load may finish.
    while users.stats().misses < READERS as u64 {
        tokio::task::yield_now().await;
    }
    open_gate.send(true).unwrap();
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap().as_deref(), Some(&u));
    }
    assert_eq!(t.log.selects("users"), 1, "one SELECT for 64 misses");
    let stats = users.stats();
    assert_eq!((stats.misses, stats.loads), (READERS as u64, 1));
    assert_eq!(stats.coalesced, READERS as u64 - 1);
}

/// The same through plain read-through `get`s, released together by a barrier.
async fn sixty_four_concurrent_gets_make_one_select(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (_cache, users) = users_under(&t, Policy::ReadThrough).await;
    let barrier = Arc::new(Barrier::new(READERS));
    t.log.clear();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let users = users.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                users.get(u.id).await
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap().as_deref(), Some(&u));
    }
    assert_eq!(t.log.selects("users"), 1);
    assert_eq!(users.stats().loads, 1);
}

/// Concurrent misses of the failure tests below.
const FAILING_MISSES: u64 = 100;

/// A connection pool of one connection to `t`'s database, and the count of statements
/// reading `users` it ran (failed ones included): the load attempts.
async fn one_connection(t: &TestDb) -> (DatabaseConnection, Arc<AtomicUsize>) {
    let mut options = ConnectOptions::new(t.url().to_owned());
    options
        .max_connections(1)
        .min_connections(0)
        .sqlx_logging(false);
    let mut db = Database::connect(options).await.unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let sink = attempts.clone();
    db.set_metric_callback(move |info| {
        let sql = &info.statement.sql;
        if sql.trim_start().starts_with("SELECT")
            && (sql.contains("\"users\"") || sql.contains("`users`"))
        {
            sink.fetch_add(1, Ordering::SeqCst);
        }
    });
    (db, attempts)
}

/// Issue 20 item 3: 100 concurrent `get`s of one key miss while the database fails. The one
/// load is held (the pool's only connection is taken) until every reader has missed; then
/// the table disappears and the load fails. Every reader gets that load's typed database
/// error: one attempt, not one per reader run one after another. Nothing is cached, and the
/// next miss once the table is back loads again.
async fn a_failed_load_is_shared_by_every_waiter_and_not_repeated(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (db, attempts) = one_connection(&t).await;
    let cache = CacheLayer::builder(db.clone())
        .coherence(Coherence::off())
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    // The pool's one connection: the load waits for it.
    let holder = db.begin().await.unwrap();
    let readers: Vec<_> = (0..FAILING_MISSES)
        .map(|_| {
            let users = users.clone();
            tokio::spawn(async move { users.get(u.id).await })
        })
        .collect();
    while users.stats().misses < FAILING_MISSES {
        tokio::task::yield_now().await;
    }
    let rename = match t.backend {
        Backend::MySql => "RENAME TABLE `users` TO `users_gone`",
        _ => "ALTER TABLE \"users\" RENAME TO \"users_gone\"",
    };
    holder.execute_unprepared(rename).await.unwrap();
    holder.commit().await.unwrap();
    for reader in readers {
        let err = reader.await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Db(_)),
            "typed database error, got {err:?}"
        );
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "one load attempt for {FAILING_MISSES} concurrent misses"
    );
    let stats = users.stats();
    assert_eq!((stats.load_errors, stats.entries), (1, 0), "{stats:?}");

    t.rename_table("users_gone", "users").await;
    assert_eq!(
        users.get(u.id).await.unwrap().as_deref(),
        Some(&u),
        "loaded again"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(users.stats().loads, 1);
    cache.shutdown().await.unwrap();
}

/// The same through `get_or_load`: the loader runs once, held until every caller has
/// missed, and its error reaches all of them; the next miss runs the loader again.
async fn a_failing_loader_runs_once_for_every_waiter(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (_cache, users) = users_under(&t, Policy::CacheAside).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let (open_gate, gate) = watch::channel(false);
    let callers: Vec<_> = (0..FAILING_MISSES)
        .map(|_| {
            let (users, runs, mut gate) = (users.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                users
                    .get_or_load(u.id, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.wait_for(|open| *open).await.unwrap();
                        Err::<Option<user::Model>, _>(DbErr::Conn(RuntimeErr::Internal(
                            "the database is down".into(),
                        )))
                    })
                    .await
            })
        })
        .collect();
    while users.stats().misses < FAILING_MISSES {
        tokio::task::yield_now().await;
    }
    open_gate.send(true).unwrap();
    for caller in callers {
        let err = caller.await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Db(DbErr::Conn(_))),
            "the loader's error, got {err:?}"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one loader run");
    assert_eq!(users.stats().entries, 0);

    let db = t.db.clone();
    let row = users
        .get_or_load(u.id, || user::Entity::find_by_id(u.id).one(&db))
        .await
        .unwrap();
    assert_eq!(row.as_deref(), Some(&u), "loaded again");
}

crate::backend_tests!(
    sixty_four_misses_share_one_load,
    sixty_four_concurrent_gets_make_one_select,
    a_failed_load_is_shared_by_every_waiter_and_not_repeated,
    a_failing_loader_runs_once_for_every_waiter,
);
