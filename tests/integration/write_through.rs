//! Write-through never lets an older write overwrite a newer one in the cache: concurrent
//! writers to one key end with cache == database.

use std::sync::Arc;
use std::time::Duration;

use entity::user;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ConnectOptions, Database, EntityTrait, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use sea_orm_cache::{CacheLayer, Policy};
use tokio::sync::Barrier;

use crate::common::*;

const WRITERS: usize = 32;

async fn concurrent_writers_leave_cache_equal_to_the_database(t: TestDb) {
    let u = seed_user(&t.db, 1).await;
    let (_cache, users) = users_under(&t, Policy::WriteThrough).await;
    users.get(u.id).await.unwrap();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let users = users.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                users
                    .update(user::ActiveModel {
                        id: Unchanged(u.id),
                        name: Set(format!("writer {i}")),
                        updated_at: Set(i as i64),
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let in_db = user::Entity::find_by_id(u.id)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        users.peek(u.id).as_deref(),
        Some(&in_db),
        "cache == database"
    );
    assert_eq!(users.stats().writes, WRITERS as u64);
}

/// A table whose `after_save` hook can hold a write between its database commit and its cache
/// set, so a test can force two writers to overlap exactly there.
mod gated {
    use std::sync::Mutex;

    use sea_orm::entity::prelude::*;
    use tokio::sync::{oneshot, watch};

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, sea_orm_cache::Cached)]
    #[sea_orm(table_name = "gated_rows")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: i64,
        pub(crate) name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    /// A write whose new name is a key here stops in `after_save`: it reports through the
    /// first sender and waits for the receiver to turn true.
    pub(crate) static HOLDS: Mutex<Vec<Hold>> = Mutex::new(Vec::new());

    /// The held name, where to report arrival, and the release signal.
    pub(crate) type Hold = (String, oneshot::Sender<()>, watch::Receiver<bool>);

    fn take_hold(name: &str) -> Option<(oneshot::Sender<()>, watch::Receiver<bool>)> {
        let mut holds = HOLDS.lock().unwrap();
        let at = holds.iter().position(|(n, _, _)| n == name)?;
        let (_, reached, release) = holds.swap_remove(at);
        Some((reached, release))
    }

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn after_save<C: ConnectionTrait>(
            model: Model,
            _db: &C,
            _insert: bool,
        ) -> Result<Model, DbErr> {
            if let Some((reached, mut release)) = take_hold(&model.name) {
                reached.send(()).unwrap();
                release.wait_for(|go| *go).await.unwrap();
            }
            Ok(model)
        }
    }
}

/// The `gated_rows` table with row 1 ("start"), cached write-through.
async fn gated_layer(t: &TestDb) -> (CacheLayer, sea_orm_cache::Repository<gated::Entity>) {
    use sea_orm::{ActiveModelTrait, ConnectionTrait, Schema};
    let schema = Schema::new(t.db_backend());
    t.db.execute(&schema.create_table_from_entity(gated::Entity))
        .await
        .unwrap();
    gated::ActiveModel {
        id: Set(1),
        name: Set("start".into()),
    }
    .insert(&t.db)
    .await
    .unwrap();
    // One instance: these tests hold a write inside `after_save`, which with coherence on
    // runs inside the write's own transaction (before its log row and commit), so the
    // interleavings below could not happen; the fence they test is the same either way.
    let cache = t
        .builder()
        .coherence(sea_orm_cache::Coherence::off())
        .cached::<gated::Entity>(|c| c.policy(Policy::WriteThrough))
        .build()
        .await
        .unwrap();
    let rows = cache.repository::<gated::Entity>().unwrap();
    (cache, rows)
}

/// Holds the next write that sets the name `name` in `after_save`: it reports on the first
/// receiver, and goes on when the sender sends `true`.
fn hold(
    name: &str,
) -> (
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::watch::Sender<bool>,
) {
    let (reached, has_reached) = tokio::sync::oneshot::channel();
    let (release, on_release) = tokio::sync::watch::channel(false);
    gated::HOLDS
        .lock()
        .unwrap()
        .push((name.to_owned(), reached, on_release));
    (has_reached, release)
}

/// Forced interleaving: writer A has committed and is held before its cache set; writer B of
/// the same key starts. B must wait for A (the per-key write lock), so the cache ends with B's
/// row, which is also the database's. Without the lock B would set first and A's older row
/// would overwrite it.
async fn a_held_write_cannot_overwrite_a_later_one(t: TestDb) {
    let (_cache, rows) = gated_layer(&t).await;

    let held_name = format!("held by {:?} {}", t.backend, now_ms());
    let (has_reached, release) = hold(&held_name);
    let write = |name: String| {
        let rows = rows.clone();
        tokio::spawn(async move {
            rows.update(gated::ActiveModel {
                id: Unchanged(1),
                name: Set(name),
            })
            .await
        })
    };
    let a = write(held_name.clone());
    has_reached.await.unwrap();
    let b = write("later".into());
    // B is parked on the key's write lock (bounded, so a regression fails instead of hanging).
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while rows.stats().write_lock_waits == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the second writer waits for the first");
    release.send(true).unwrap();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();

    let in_db = gated::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(in_db.name, "later");
    assert_eq!(rows.peek(1).as_deref(), Some(&in_db), "cache == database");
}

/// A write the database refuses for a lock (SQLite answers "database is locked" at once when
/// its busy timeout is 0, as it does whenever waiting could deadlock) is run again until
/// the lock is released, then cached; it does not fail the caller. SQLite only: Postgres and
/// MariaDB wait for row locks instead of refusing a one-row write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_write_refused_for_a_lock_is_retried() {
    run(
        Backend::Sqlite,
        "write_refused_for_a_lock",
        |t| async move {
            let u = seed_user(&t.db, 1).await;
            let mut options = ConnectOptions::new(t.url().to_owned());
            options.max_connections(2).sqlx_logging(false);
            options.map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::ZERO));
            let impatient = Database::connect(options).await.unwrap();
            let cache = CacheLayer::builder(impatient)
                .cached::<user::Entity>(|c| c.policy(Policy::WriteThrough))
                .build()
                .await
                .unwrap();
            let users = cache.repository::<user::Entity>().unwrap();

            // Another connection holds SQLite's write lock.
            let blocker =
                t.db.begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await
                .unwrap();
            let write = tokio::spawn({
                let users = users.clone();
                async move {
                    users
                        .update(user::ActiveModel {
                            id: Unchanged(u.id),
                            name: Set("after the lock".into()),
                            ..Default::default()
                        })
                        .await
                }
            });
            tokio::time::timeout(Duration::from_secs(30), async {
                while users.stats().write_retries == 0 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the write was refused and is being retried");
            blocker.commit().await.unwrap();

            let written = write
                .await
                .unwrap()
                .expect("retried until the lock was released");
            assert_eq!(written.name, "after the lock");
            let row = user::Entity::find_by_id(u.id)
                .one(&t.db)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.name, "after the lock");
            assert_eq!(users.peek(u.id).unwrap().name, "after the lock");
            assert!(users.stats().write_retries >= 1);
            cache.shutdown().await.unwrap();
        },
    )
    .await;
}

/// The fence (issue 10 item 4), forced interleaving: a write-through update has committed and
/// is held before its cache set; meanwhile a `CachedConnection` update of the same row (which
/// takes no repository lock) commits and invalidates the key. When the held write goes on, its
/// older row must not land in the cache: the cache ends with the database's row.
async fn a_held_write_cannot_overwrite_a_later_invalidation(t: TestDb) {
    use sea_orm::ActiveModelTrait;
    let (cache, rows) = gated_layer(&t).await;
    assert_eq!(rows.get(1).await.unwrap().unwrap().name, "start");

    let held_name = format!("held by {:?} {} (fence)", t.backend, now_ms());
    let (has_reached, release) = hold(&held_name);
    let held = {
        let rows = rows.clone();
        let name = held_name.clone();
        tokio::spawn(async move {
            rows.update(gated::ActiveModel {
                id: Unchanged(1),
                name: Set(name),
            })
            .await
        })
    };
    has_reached.await.unwrap();
    gated::ActiveModel {
        id: Unchanged(1),
        name: Set("through the connection".into()),
    }
    .update(&cache.connection())
    .await
    .unwrap();
    release.send(true).unwrap();
    held.await.unwrap().unwrap();

    let in_db = gated::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(in_db.name, "through the connection");
    assert_ne!(
        rows.peek(1).as_deref().map(|m| m.name.as_str()),
        Some(held_name.as_str()),
        "the held write's older row is not cached"
    );
    assert_eq!(
        rows.get(1).await.unwrap().as_deref(),
        Some(&in_db),
        "cache == database"
    );
    cache.shutdown().await.unwrap();
}

crate::backend_tests!(
    concurrent_writers_leave_cache_equal_to_the_database,
    a_held_write_cannot_overwrite_a_later_one,
    a_held_write_cannot_overwrite_a_later_invalidation,
);
