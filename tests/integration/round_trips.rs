//! One round trip for a logged write (issue 21, DESIGN G8): on Postgres, a write made outside
//! a transaction through `CachedConnection`, or by the repository under a policy that writes
//! the table, reaches the database as one statement that also carries its invalidation log
//! rows (a data-modifying `WITH` in front of it), instead of `BEGIN`, the write, the log
//! insert and `COMMIT`. The log rows commit with the write (another instance drops its
//! entry) and not without it (a write that fails leaves no row). MySQL/MariaDB and SQLite
//! still use a transaction of the write's own; `coherence.rs` covers what every backend
//! promises.

use entity::user;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sea_orm_cache::{CacheLayer, Coherence, Policy};

use crate::common::*;

fn rename(id: i64, name: &str) -> user::ActiveModel {
    user::ActiveModel {
        id: Unchanged(id),
        name: Set(name.to_owned()),
        ..Default::default()
    }
}

/// A layer on `db` with coherence on that reads the log only when told (`catch_up`).
async fn instance(db: sea_orm::DatabaseConnection, policy: Policy) -> CacheLayer {
    let by_hand = Coherence::on()
        .poll_interval(std::time::Duration::from_secs(3600))
        .listen(false);
    CacheLayer::builder(db)
        .coherence(by_hand)
        .cached::<user::Entity>(move |c| c.policy(policy))
        .build()
        .await
        .unwrap()
}

/// Runs `write`, and returns the statements it sent on `t`'s logged connection.
async fn statements_of(t: &TestDb, write: impl AsyncFnOnce()) -> Vec<String> {
    t.log.clear();
    write().await;
    t.log.all()
}

/// Asserts `sent` is one statement that writes `users` and the log.
fn one_logged_statement(sent: &[String], what: &str) {
    assert_eq!(sent.len(), 1, "{what}: one statement, got {sent:#?}");
    assert!(
        sent[0].contains("sea_orm_cache_invalidation") && sent[0].contains("\"users\""),
        "{what}: the write carries its log rows: {}",
        sent[0]
    );
}

async fn a_logged_write_is_one_statement(t: TestDb) {
    for policy in [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
    ] {
        // B writes on the logged connection; A had the row cached.
        let b = instance(t.db.clone(), policy).await;
        let a = instance(t.connect_again().await, policy).await;
        let (users_a, users_b) = (
            a.repository::<user::Entity>().unwrap(),
            b.repository::<user::Entity>().unwrap(),
        );
        let u = seed_user(&t.db, 1).await;
        let conn = b.connection();
        let cached_in_a = async || {
            users_a
                .get_or_load(u.id, || user::Entity::find_by_id(u.id).one(&t.db))
                .await
                .unwrap();
            assert!(users_a.peek(u.id).is_some());
        };
        let write = async |what: &str| match what {
            "CachedConnection update" => {
                user::Entity::update(rename(u.id, "by connection"))
                    .exec(&conn)
                    .await
                    .unwrap();
            }
            "CachedConnection update_many by key" => {
                user::Entity::update_many()
                    .col_expr(user::Column::Name, Expr::value("by update_many"))
                    .filter(user::Column::Id.eq(u.id))
                    .exec(&conn)
                    .await
                    .unwrap();
            }
            "Repository::update" => {
                users_b.update(rename(u.id, "by repository")).await.unwrap();
            }
            "Repository::delete" => assert!(users_b.delete(u.id).await.unwrap()),
            _ => unreachable!(),
        };
        for what in [
            "CachedConnection update",
            "CachedConnection update_many by key",
            "Repository::update",
            "Repository::delete",
        ] {
            cached_in_a().await;
            let sent = statements_of(&t, async || write(what).await).await;
            one_logged_statement(&sent, &format!("{policy:?} {what}"));
            a.catch_up().await.unwrap();
            assert!(
                users_a.peek(u.id).is_none(),
                "{policy:?} {what}: the log row committed with the write"
            );
        }
        // A write that fails (the key exists) commits nothing, so no log row either.
        let logged = t.count("sea_orm_cache_invalidation").await;
        let dup = seed_user(&t.db, 2).await;
        let insert = user::Entity::insert(user::ActiveModel {
            id: Set(dup.id),
            email: Set("again@example.com".to_owned()),
            name: Set("again".to_owned()),
            bio: Set(String::new()),
            updated_at: Set(0),
        });
        assert!(insert.exec(&conn).await.is_err());
        assert_eq!(
            t.count("sea_orm_cache_invalidation").await,
            logged,
            "{policy:?}: a failed write leaves no log row"
        );
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
        user::Entity::delete_many().exec(&t.db).await.unwrap();
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_logged_write_is_one_statement() {
        crate::common::run(
            crate::common::Backend::Postgres,
            "one_round_trip",
            super::a_logged_write_is_one_statement,
        )
        .await
    }
}
