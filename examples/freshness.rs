//! Choosing a TTL with measured freshness: one mixed workload, run once per TTL, and for each
//! the hit ratio, the true staleness ratio and the sampler's estimate side by side.
//!
//! ```text
//! cargo run --release --example freshness                 # 2% of writes bypass the layer
//! cargo run --release --example freshness -- --bypass 0.1 # 10% do
//! ```
//!
//! The workload, on an in-memory SQLite database, in simulated seconds (the layer's manual
//! clock): 1,000 users; each second 40 writes, of which the `--bypass` share go through the
//! plain `DatabaseConnection` (as another service, a script or psql would write) and the rest
//! through the layer's repository, then 2,000 reads skewed toward a fifth of the keys. The
//! example keeps its own record of every row's value, so a read that returns anything else is
//! stale: that is the true ratio (stale hits over hits). The sampler reads the rows of 5% of
//! hits as it gets to them and estimates the same ratio with a 95% confidence interval.
//!
//! Writes through the layer invalidate what they change, so only the bypassing writes leave
//! stale entries, for at most the TTL: a longer TTL buys hits with staleness, and the table
//! shows the price.

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use entity::user;
use migration::{Migrator, MigratorTrait};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Database, DatabaseConnection, EntityTrait, QueryFilter};
use sea_orm_cache::{CacheLayer, Clock, Coherence, FreshnessConfig, Policy};

const USERS: i64 = 1_000;
const SECONDS: u32 = 300;
const WRITES_PER_SEC: u32 = 40;
const READS_PER_SEC: u32 = 2_000;
const SAMPLE_RATE: f64 = 0.05;
const GRACE: Duration = Duration::from_millis(100);
const TTLS: [u64; 6] = [1, 5, 15, 60, 120, 300];

/// One TTL's figures.
struct Row {
    ttl: u64,
    hit_ratio: f64,
    true_ratio: f64,
    estimate: f64,
    interval: (f64, f64),
    samples: u64,
}

/// A small deterministic generator: every TTL runs the same workload.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn key(&mut self, skewed: bool) -> i64 {
        let u = self.unit();
        let u = if skewed { u * u } else { u };
        1 + (u * USERS as f64) as i64 % USERS
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let bypass: f64 = match args.iter().position(|a| a == "--bypass") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--bypass takes a fraction, such as 0.02")?
            .parse()?,
        None => 0.02,
    };
    if !(0.0..=1.0).contains(&bypass) {
        return Err("--bypass takes a fraction within 0..=1".into());
    }
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; `--release` runs it in seconds");
    }

    let mut rows = Vec::new();
    for ttl in TTLS {
        rows.push(run(ttl, bypass).await?);
    }
    println!(
        "{SECONDS} s simulated: {WRITES_PER_SEC} writes/s ({:.0}% bypassing the layer), \
         {READS_PER_SEC} reads/s over {USERS} users; sampler at {:.0}% of hits\n",
        bypass * 100.0,
        SAMPLE_RATE * 100.0
    );
    println!("| TTL | hit ratio | true staleness | sampler's estimate (95% CI) | samples |");
    println!("|---:|---:|---:|---|---:|");
    for r in rows {
        println!(
            "| {} s | {:.1}% | {:.3}% | {:.3}% ({:.3}%-{:.3}%){} | {} |",
            r.ttl,
            r.hit_ratio * 100.0,
            r.true_ratio * 100.0,
            r.estimate * 100.0,
            r.interval.0 * 100.0,
            r.interval.1 * 100.0,
            if r.interval.0 <= r.true_ratio && r.true_ratio <= r.interval.1 {
                ""
            } else {
                " (misses the true ratio)"
            },
            r.samples,
        );
    }
    Ok(())
}

/// The workload under `ttl` seconds, on a database of its own.
async fn run(ttl: u64, bypass: f64) -> Result<Row, Box<dyn Error>> {
    let db: DatabaseConnection = Database::connect("sqlite::memory:").await?;
    Migrator::up(&db, None).await?;
    let mut table: HashMap<i64, String> = HashMap::new();
    user::Entity::insert_many((1..=USERS).map(|id| {
        table.insert(id, format!("user {id}"));
        user::ActiveModel {
            id: Set(id),
            email: Set(format!("user{id}@example.com")),
            name: Set(format!("user {id}")),
            bio: Set(String::new()),
            updated_at: Set(0),
        }
    }))
    .exec(&db)
    .await?;

    let clock = Clock::manual();
    let cache = CacheLayer::builder(db.clone())
        .clock(clock.clone())
        .coherence(Coherence::off())
        .cached::<user::Entity>(move |c| {
            c.policy(Policy::ReadThrough)
                .ttl(Duration::from_secs(ttl))
                .freshness(
                    FreshnessConfig::default()
                        .sample_rate(SAMPLE_RATE)
                        .grace(GRACE)
                        .max_samples_per_sec(1_000_000)
                        .queue(100_000)
                        .window(Duration::from_secs(u64::from(SECONDS) * 2)),
                )
        })
        .build()
        .await?;
    let users = cache.repository::<user::Entity>()?;

    let mut rng = Lcg(2026);
    let (mut stale_reads, mut reads) = (0_u64, 0_u64);
    let before = users.stats();
    for second in 0..SECONDS {
        for w in 0..WRITES_PER_SEC {
            let id = rng.key(false);
            let name = format!("{second}.{w}");
            if rng.unit() < bypass {
                user::Entity::update_many()
                    .col_expr(user::Column::Name, Expr::value(name.clone()))
                    .filter(user::Column::Id.eq(id))
                    .exec(&db)
                    .await?;
            } else {
                users
                    .update(user::ActiveModel {
                        id: Unchanged(id),
                        name: Set(name.clone()),
                        ..Default::default()
                    })
                    .await?;
            }
            table.insert(id, name);
        }
        for _ in 0..READS_PER_SEC {
            let id = rng.key(true);
            let row = users.get(id).await?.ok_or("every user exists")?;
            reads += 1;
            stale_reads += u64::from(row.name != table[&id]);
        }
        // The samples are read before the next second's writes (each against the row as it
        // was at its hit), and a mismatch judged once its grace delay is over.
        users.settle_samples().await;
        clock.advance(GRACE);
        users.settle_samples().await;
        clock.advance(Duration::from_secs(1) - GRACE);
    }
    let after = users.stats();
    let hits = (after.hits - before.hits) + (after.negative_hits - before.negative_hits);
    let report = users.freshness().ok_or("the sampler is on")?;
    cache.shutdown().await?;
    Ok(Row {
        ttl,
        hit_ratio: hits as f64 / reads as f64,
        true_ratio: stale_reads as f64 / hits.max(1) as f64,
        estimate: report.ratio,
        interval: report.interval,
        samples: report.verified,
    })
}
