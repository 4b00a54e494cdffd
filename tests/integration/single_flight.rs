//! G1: concurrent misses on one key cause one database load.

use std::sync::Arc;

use entity::user;
use sea_orm::EntityTrait;
use sea_orm_cache::Policy;
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

crate::backend_tests!(
    sixty_four_misses_share_one_load,
    sixty_four_concurrent_gets_make_one_select,
);
