//! Transient database errors are told by their codes, never by their message text: a
//! serialization failure is retried and the write succeeds; an error that only *mentions* a
//! transient code is not retried; and a write-behind key the database keeps refusing as
//! transient is still dead-lettered after `MAX_ATTEMPTS`.

use std::time::Duration;

use entity::{profile, user};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{ConnectionTrait, EntityTrait};
use sea_orm_cache::{Error, Policy, WriteBehindConfig};

use crate::common::*;

/// A Postgres trigger that fails the first UPDATE of `users` with SQLSTATE 40001
/// (serialization failure); a sequence counts attempts, since it survives the rollback.
const FAIL_FIRST_UPDATE: &str = "
    CREATE SEQUENCE users_update_attempts;
    CREATE FUNCTION fail_first_update() RETURNS trigger AS $$
    BEGIN
        IF nextval('users_update_attempts') = 1 THEN
            RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql;
    CREATE TRIGGER fail_first_update BEFORE UPDATE ON users
        FOR EACH ROW EXECUTE FUNCTION fail_first_update();";

/// Postgres: a write-through update refused with 40001 runs again and succeeds; the cache
/// holds the database's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_serialization_failure_is_retried() {
    run(Backend::Postgres, "serialization_retried", |t| async move {
        let u = seed_user(&t.db, 1).await;
        t.db.execute_unprepared(FAIL_FIRST_UPDATE).await.unwrap();
        let (cache, users) = users_under(&t, Policy::WriteThrough).await;
        let updated = users
            .update(user::ActiveModel {
                id: Unchanged(u.id),
                name: Set("retried".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(updated.name, "retried");
        assert_eq!(users.stats().write_retries, 1);
        let in_db = user::Entity::find_by_id(u.id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(users.peek(u.id).as_deref(), Some(&in_db));
        cache.shutdown().await.unwrap();
    })
    .await;
}

/// A duplicate-key error whose message text contains "40001" (MariaDB quotes the duplicate
/// value in its message) is not transient: it fails at once, with no retry.
async fn an_error_naming_a_transient_code_is_not_retried(t: TestDb) {
    let (cache, users) = users_under(&t, Policy::WriteThrough).await;
    let new = || user::ActiveModel {
        email: Set("40001@example.com".into()),
        name: Set("dup".into()),
        bio: Set(String::new()),
        updated_at: Set(0),
        ..Default::default()
    };
    users.insert(new()).await.unwrap();
    let err = users.insert(new()).await.unwrap_err();
    assert!(matches!(err, Error::Db(_)), "{err}");
    assert_eq!(users.stats().write_retries, 0, "{err}");
    cache.shutdown().await.unwrap();
}

/// Postgres: a write-behind key whose every UPDATE fails with 40001 is dead-lettered after
/// `MAX_ATTEMPTS` (as a flusher that had already failed 9 times would have left it), so it
/// cannot hold the outbox forever; the other key is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_key_refused_as_transient_every_time_is_dead_lettered() {
    run(
        Backend::Postgres,
        "transient_dead_lettered",
        |t| async move {
            seed_profile(&t.db, 1).await;
            seed_profile(&t.db, 2).await;
            t.db.execute_unprepared(
                "CREATE FUNCTION always_conflict() RETURNS trigger AS $$
             BEGIN
                 IF NEW.visits >= 1000000 THEN
                     RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
                 END IF;
                 RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER always_conflict BEFORE UPDATE ON profiles
                 FOR EACH ROW EXECUTE FUNCTION always_conflict();",
            )
            .await
            .unwrap();
            let cache = t
                .builder()
                .cached::<profile::Entity>(|c| {
                    c.policy(Policy::WriteBehind).write_behind(
                        WriteBehindConfig::default().max_delay(Duration::from_secs(3600)),
                    )
                })
                .build()
                .await
                .unwrap();
            let profiles = cache.repository::<profile::Entity>().unwrap();
            for (key, visits) in [(1, 2_000_000), (2, 5)] {
                profiles
                    .update(profile::ActiveModel {
                        user_id: Unchanged(key),
                        visits: Set(visits),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            t.db.execute_unprepared(&format!(
                "UPDATE sea_orm_cache_outbox SET attempts = {} WHERE pk = '[1]'",
                sea_orm_cache::outbox::MAX_ATTEMPTS - 1
            ))
            .await
            .unwrap();

            profiles.flush().await.unwrap();
            assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
            assert_eq!(t.count("sea_orm_cache_dead_letter").await, 1);
            let two = profile::Entity::find_by_id(2).one(&t.db).await.unwrap();
            assert_eq!(two.unwrap().visits, 5, "the other key was applied");
            assert_eq!(profiles.get(1).await.unwrap().unwrap().visits, 0);
            cache.shutdown().await.unwrap();
        },
    )
    .await;
}

crate::backend_tests!(an_error_naming_a_transient_code_is_not_retried);
