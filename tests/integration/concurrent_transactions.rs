//! Concurrent write-behind writes inside `cache.transaction`: on file SQLite in WAL mode with
//! a pool of 8 connections they must all commit, not fail with `database is locked`
//! (SQLITE_BUSY_SNAPSHOT), and the table ends with every key's last acknowledged value.

use std::time::Duration;

use entity::profile;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::EntityTrait;
use sea_orm_cache::{Error, Policy, WriteBehindConfig};

use crate::common::*;

const TASKS: i64 = 8;
const ROUNDS: i64 = 20;

async fn every_concurrent_write_behind_transaction_commits(t: TestDb) {
    for key in 1..=TASKS {
        seed_profile(&t.db, key).await;
    }
    let cache = t
        .builder()
        .cached::<profile::Entity>(|c| {
            c.policy(Policy::WriteBehind)
                .write_behind(WriteBehindConfig::default().max_delay(Duration::from_millis(5)))
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    let mut tasks = Vec::new();
    for key in 1..=TASKS {
        let (cache, profiles) = (cache.clone(), profiles.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for round in 1..=ROUNDS {
                let profiles = profiles.clone();
                let outcome = cache
                    .transaction(move |txn| {
                        Box::pin(async move {
                            // A read before the write, as services do.
                            profiles.get_with(key, txn).await?;
                            profiles
                                .update_with(
                                    profile::ActiveModel {
                                        user_id: Unchanged(key),
                                        visits: Set(round),
                                        ..Default::default()
                                    },
                                    txn,
                                )
                                .await?;
                            Ok::<_, Error>(())
                        })
                    })
                    .await;
                if let Err(err) = outcome {
                    failed.push(err.to_string());
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        failed.extend(task.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} of {} transactions failed, first: {:?}",
        failed.len(),
        TASKS * ROUNDS,
        failed.first()
    );
    for key in 1..=TASKS {
        assert_eq!(profiles.get(key).await.unwrap().unwrap().visits, ROUNDS);
    }
    cache.shutdown().await.unwrap();
    for row in profile::Entity::find().all(&t.db).await.unwrap() {
        assert_eq!(row.visits, ROUNDS, "key {}", row.user_id);
    }
}

crate::backend_tests!(every_concurrent_write_behind_transaction_commits);
