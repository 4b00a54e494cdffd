//! G2: a load that started before an invalidation (or a write-through write) of its key never
//! lands in the cache, and readers that came after the invalidation get the new row.

use entity::user;
use sea_orm::ActiveModelTrait;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm_cache::Policy;

use crate::common::*;

fn rename(id: i64, name: &str) -> user::ActiveModel {
    user::ActiveModel {
        id: Unchanged(id),
        name: Set(name.to_owned()),
        ..Default::default()
    }
}

/// Forced interleaving: the loader reads the old row, the row is updated and invalidated,
/// then the loader finishes. The old row must not be cached, and a reader that queued up
/// behind the stale load must get the new row.
async fn load_started_before_invalidate_does_not_land(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (_cache, users) = users_under(&t, Policy::ReadThrough).await;
    let held = held_load(&users, &t.db, u.id);
    held.has_read.await.unwrap();
    // A writer commits and invalidates while the load is in flight.
    rename(u.id, "new").update(&t.db).await.unwrap();
    users.invalidate(u.id);
    // A reader after the invalidation queues behind the in-flight load.
    let late_reader = {
        let users = users.clone();
        tokio::spawn(async move { users.get(u.id).await })
    };
    while users.stats().misses < 2 {
        tokio::task::yield_now().await;
    }
    held.release.send(true).unwrap();

    let old = held.task.await.unwrap().unwrap().unwrap();
    assert_eq!(old.name, u.name, "the stale load returns what it read");
    let late = late_reader.await.unwrap().unwrap().unwrap();
    assert_eq!(
        late.name, "new",
        "a reader after the invalidation sees the new row"
    );
    assert_eq!(users.peek(u.id).map(|m| m.name.clone()), Some("new".into()));
    assert!(users.stats().stale_fills_rejected >= 1);
    assert_eq!(users.get(u.id).await.unwrap().unwrap().name, "new");
}

/// A load that read the row before a write-through write must not overwrite the written row.
async fn load_started_before_write_through_does_not_overwrite(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (_cache, users) = users_under(&t, Policy::WriteThrough).await;
    let held = held_load(&users, &t.db, u.id);
    held.has_read.await.unwrap();
    let written = users.update(rename(u.id, "written")).await.unwrap();
    held.release.send(true).unwrap();
    held.task.await.unwrap().unwrap();
    assert_eq!(users.peek(u.id), Some(written));
}

crate::backend_tests!(
    load_started_before_invalidate_does_not_land,
    load_started_before_write_through_does_not_overwrite,
);
