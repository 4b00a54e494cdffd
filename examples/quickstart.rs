//! Quickstart: the same small workload under each of the four cache policies.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example quickstart
//! SEA_ORM_CACHE_EXAMPLE_URL=postgres://postgres@localhost/postgres cargo run --example quickstart
//! ```
//!
//! By default it uses an in-memory SQLite database. With `SEA_ORM_CACHE_EXAMPLE_URL` naming a
//! Postgres or MySQL/MariaDB server it works in a database of its own there,
//! `sea_orm_cache_quickstart` (created if missing), and empties its example tables at each
//! run; it never touches the database the URL names, and stops with an error, changing
//! nothing, if its own holds tables it did not create (`migration::example_database`).
//! `DATABASE_URL` is not read: it often names a developer's own database.
//!
//! For every policy it builds a [`CacheLayer`] for the `profile` entity (its key is set by the
//! client, so write-behind inserts go through the write queue), inserts 100 profiles, then runs
//! 2,100 operations over them: about 2,000 reads skewed 80/20 towards a few hot keys, and about
//! 5% updates.
//! It prints what the cache answered, what reached the database, and how long reads took, and
//! which build took them: `cargo run` is a debug build, several times slower than `--release`.
//! Write-through and write-behind put every row they write into the cache, so here their reads
//! never miss; write-behind also turns about 200 writes into a few batched statements.

use std::time::{Duration, Instant};

use entity::profile;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use sea_orm_cache::{CacheLayer, Policy};

/// Rows inserted before the reads start.
const ROWS: i64 = 100;
/// Reads and updates after the inserts.
const OPERATIONS: usize = 2_100;
/// Share of operations that are updates, in percent.
const UPDATE_PERCENT: u64 = 5;

#[allow(dead_code)] // `tests/integration` includes this file and has its own main.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = migration::example_database("sea_orm_cache_quickstart").await?;
    quickstart(&db).await
}

/// Runs the workload under each policy in `db`, the example's own database (see
/// `migration::example_database`), after emptying its example tables.
pub(crate) async fn quickstart(db: &DatabaseConnection) -> Result<(), Box<dyn std::error::Error>> {
    // Start from empty tables on every run: the database is the example's own.
    Migrator::down(db, None).await?;
    Migrator::up(db, None).await?;
    println!("database: {:?}", db.get_database_backend());
    if cfg!(debug_assertions) {
        // `cargo run` builds without optimisations: its timings are several times a release
        // build's. The bench example (`--release`) is where the product's figures come from.
        println!(
            "build: debug (timings below are debug-build figures; \
             `cargo run --release --example quickstart` for release ones)"
        );
    } else {
        println!("build: release");
    }

    for policy in [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
        Policy::WriteBehind,
    ] {
        run(db, policy).await?;
    }
    Ok(())
}

/// Runs the workload under one policy, with a cache layer of its own, and prints its figures.
async fn run(db: &DatabaseConnection, policy: Policy) -> Result<(), Box<dyn std::error::Error>> {
    profile::Entity::delete_many().exec(db).await?;
    let cache = CacheLayer::builder(db.clone())
        .cached::<profile::Entity>(move |c| c.policy(policy))
        .build()
        .await?;
    let repo = cache.repository::<profile::Entity>()?;

    for user_id in 1..=ROWS {
        repo.insert(profile::ActiveModel {
            user_id: Set(user_id),
            display_name: Set(format!("user {user_id}")),
            visits: Set(0),
        })
        .await?;
    }

    let mut rng = SplitMix(42);
    let (mut hit_times, mut miss_times) = (Vec::new(), Vec::new());
    for _ in 0..OPERATIONS {
        let key = rng.skewed_key();
        if rng.next() % 100 < UPDATE_PERCENT {
            repo.update(profile::ActiveModel {
                user_id: Set(key),
                visits: Set((rng.next() % 1_000) as i64),
                ..Default::default()
            })
            .await?;
            continue;
        }
        let hits_before = repo.stats().hits;
        let started = Instant::now();
        let row = match policy {
            // Cache-aside: the caller says how to load a missing row.
            Policy::CacheAside => {
                repo.get_or_load(key, || profile::Entity::find_by_id(key).one(db))
                    .await?
            }
            // The other policies load by primary key themselves.
            _ => repo.get(key).await?,
        };
        let elapsed = started.elapsed();
        assert!(row.is_some(), "profile {key} exists");
        if repo.stats().hits > hits_before {
            hit_times.push(elapsed);
        } else {
            miss_times.push(elapsed);
        }
    }
    // Write-behind: apply the writes still queued (shutdown would do it too).
    let flushed = repo.flush().await?;

    let stats = repo.stats();
    let (hits, misses) = (hit_times.len(), miss_times.len());
    println!("\n== {} ==", policy.name());
    println!("reads          {}", hits + misses);
    println!("  hits         {hits}");
    println!("  misses       {misses}");
    println!(
        "  hit ratio    {:.1}%",
        100.0 * hits as f64 / (hits + misses) as f64
    );
    println!("DB loads       {}", stats.loads);
    println!("writes         {}", stats.writes);
    println!("DB writes      {}", stats.db_writes);
    if policy == Policy::WriteBehind {
        println!("  flushed      {flushed} keys at the end");
    }
    println!("median hit     {}", median(&mut hit_times));
    println!("median miss    {}", median(&mut miss_times));
    assert!(hits > 0, "every policy answers some reads from the cache");

    cache.shutdown().await?;
    Ok(())
}

/// The median of `times`, formatted, or `-` if there are none.
fn median(times: &mut [Duration]) -> String {
    if times.is_empty() {
        return "-".to_owned();
    }
    times.sort_unstable();
    let mid = times[times.len() / 2];
    if mid < Duration::from_micros(10) {
        format!("{} ns", mid.as_nanos())
    } else {
        format!("{:.1} µs", mid.as_nanos() as f64 / 1_000.0)
    }
}

/// A tiny deterministic pseudo-random generator (splitmix64), so every run is the same.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A key in `1..=ROWS`: 80% of picks go to the first 20% of keys.
    fn skewed_key(&mut self) -> i64 {
        let hot = ROWS / 5;
        if self.next() % 100 < 80 {
            1 + (self.next() % hot as u64) as i64
        } else {
            hot + 1 + (self.next() % (ROWS - hot) as u64) as i64
        }
    }
}
