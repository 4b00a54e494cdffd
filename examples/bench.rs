//! Hit, miss and coalescing figures of sea-orm-cache, measured in one run and printed as a
//! markdown table.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example bench
//! cargo run --release --example bench -- --hits-only   # the in-memory hit rows only
//! cargo run --release --example bench -- --coherence   # the several-instances rows only
//! cargo run --release --example bench -- --triggers    # the outside-writer trigger rows only
//! ```
//!
//! The trigger rows (`--triggers`, also part of a full run) time a single-row `UPDATE` and a
//! 10,000-row `UPDATE` of `users` on a plain connection with the library's triggers
//! (`sea_orm_cache::triggers`) installed and not, on file SQLite, and on Postgres and MariaDB
//! when `TEST_POSTGRES_URL` / `TEST_MYSQL_URL` are set.
//!
//! The several-instances rows (`--coherence`, also part of a full run when
//! `TEST_POSTGRES_URL` is set; MariaDB rows when `TEST_MYSQL_URL` is too) run this binary a
//! second time as instance B, which writes and prints each acknowledgement's wall-clock time;
//! instance A (this process) had the row cached and reads it until the new value shows.
//!
//! Everything runs against an in-memory SQLite database (`sqlite::memory:`; SeaORM gives a
//! SQLite pool a single connection by default) with the `users` entity under read-through.
//! In-memory figures are the best of 50 rounds of 200,000 reads, the repository and raw
//! quick_cache measured in turn within each round; database figures are medians of 20 alternating rounds. The hit rows
//! read one hot key, then 10,000 keys in a random order (one precomputed splitmix64 sequence,
//! the same for `get`, `peek` and raw quick_cache). For `criterion` statistics, see
//! `cargo bench --bench hit_miss`.

use std::error::Error;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use entity::{profile, user};

#[path = "support/write_behind_lag.rs"]
mod write_behind_lag;
use migration::{Migrator, MigratorTrait};
use quick_cache::sync::Cache;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, Database, EntityTrait, QueryFilter};
use sea_orm_cache::{CacheLayer, Coherence, FreshnessConfig, Policy, Repository};
use tokio::sync::Barrier;

/// Rounds of the in-memory measurements (hit, peek, raw quick_cache), each measuring every
/// row once in turn; the fastest round of each row is reported. Many short rounds keep the
/// figures steady on a shared machine: a round preempted by another process is discarded.
const RUNS: u32 = 50;
/// Iterations per row per round for the in-memory measurements.
const MEMORY_ITERS: u32 = 200_000;
/// Iterations per round for the measurements that reach the database.
const DB_ITERS: u32 = 2_000;
/// Alternating rounds of raw and cached-connection writes, and writes per round.
const WRITE_ROUNDS: usize = 41;
const WRITE_ITERS: u32 = 200;
/// Alternating rounds of `find_by_id` and read-through misses.
const DB_ROUNDS: u64 = 20;
/// Concurrent readers of one cold key.
const TASKS: usize = 1_000;
/// Rounds of the coalescing test, each on a key not read before.
const ROUNDS: i64 = 20;
/// The key the hit, miss and find_by_id measurements read.
const HOT: i64 = 1;
/// The random-key hit rows read keys `SPREAD_BASE..SPREAD_BASE + SPREAD_KEYS`.
const SPREAD_BASE: i64 = 1_000_000;
const SPREAD_KEYS: i64 = 10_000;
/// Length of the precomputed key sequence (a power of two), cycled through.
const SEQUENCE: usize = 1 << 16;
/// Capacity of the repository and of the raw quick_cache: room for every key read.
const CAPACITY: usize = 20_000;

/// Nanoseconds per read of `MEMORY_ITERS` reads `$body` of the keys `$keys` in turn (cycled;
/// its length a power of two), after one untimed pass over `$keys`, so that each row starts
/// with its own data in the CPU caches rather than the previous row's.
macro_rules! ns_per_read {
    ($keys:expr, |$key:ident| $body:expr) => {{
        let keys: &[i64] = $keys;
        let mask = keys.len() - 1;
        for &$key in keys {
            $body;
        }
        let started = Instant::now();
        for i in 0..MEMORY_ITERS as usize {
            let $key = keys[i & mask];
            $body;
        }
        started.elapsed().as_nanos() as f64 / f64::from(MEMORY_ITERS)
    }};
}

/// Nanoseconds per iteration of `$body`, the best of `$runs` runs of `$iters` iterations.
macro_rules! best_ns {
    ($runs:expr, $iters:expr, $body:expr) => {{
        let mut best = f64::INFINITY;
        for _ in 0..$runs {
            let started = Instant::now();
            for _ in 0..$iters {
                $body;
            }
            best = best.min(started.elapsed().as_nanos() as f64 / f64::from($iters));
        }
        best
    }};
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    if let Ok(url) = std::env::var(COHERENCE_CHILD) {
        return coherence_child(&url).await;
    }
    if let Ok(side) = std::env::var(MEMORY_CHILD) {
        return memory_child(&side).await;
    }
    if std::env::args().any(|arg| arg == "--memory") {
        return memory_rows();
    }
    if std::env::args().any(|arg| arg == "--idle") {
        return idle_row().await;
    }
    if std::env::args().any(|arg| arg == "--write-behind-lag") {
        return write_behind_lag::rows(|admin| async move {
            on_scratch(&admin, |url| async move {
                write_behind_lag::measure(&url).await
            })
            .await
        })
        .await;
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run `cargo run --release --example bench`");
    }

    // Count the SELECTs on `users` that reach the database. The callback must be set before
    // the connection is cloned into the cache layer.
    let mut db = Database::connect("sqlite::memory:").await?;
    let selects = Arc::new(AtomicU64::new(0));
    let counter = selects.clone();
    db.set_metric_callback(move |info| {
        let sql = &info.statement.sql;
        if sql.starts_with("SELECT") && sql.contains(r#"FROM "users""#) {
            counter.fetch_add(1, Relaxed);
        }
    });
    Migrator::up(&db, None).await?;
    user::Entity::insert_many((1..=1 + ROUNDS).map(|id| user::ActiveModel {
        id: Set(id),
        email: Set(format!("user{id}@example.com")),
        name: Set(format!("User {id}")),
        bio: Set("Writes about caches.".to_owned()),
        updated_at: Set(0),
    }))
    .exec(&db)
    .await?;

    // The keys of the random-key rows, and their order: splitmix64 over SPREAD_KEYS keys.
    for chunk in (SPREAD_BASE..SPREAD_BASE + SPREAD_KEYS)
        .collect::<Vec<_>>()
        .chunks(1_000)
    {
        user::Entity::insert_many(chunk.iter().map(|&id| user::ActiveModel {
            id: Set(id),
            email: Set(format!("user{id}@example.com")),
            name: Set(format!("User {id}")),
            bio: Set("Writes about caches.".to_owned()),
            updated_at: Set(0),
        }))
        .exec(&db)
        .await?;
    }
    let sequence: Vec<i64> = {
        let mut state = 0x5eed_u64;
        (0..SEQUENCE)
            .map(|_| SPREAD_BASE + (splitmix64(&mut state) % SPREAD_KEYS as u64) as i64)
            .collect()
    };

    let cache = CacheLayer::builder(db.clone())
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough).capacity(CAPACITY))
        .build()
        .await?;
    let users = cache.repository::<user::Entity>()?;
    // The same entity with the staleness sampler off, and at 1% of hits (the layer above
    // samples the default 0.1%).
    let (off_layer, users_off) = sampled_layer(&db, 0.0).await?;
    let (pct_layer, users_pct) = sampled_layer(&db, 0.01).await?;
    for id in std::iter::once(HOT).chain(SPREAD_BASE..SPREAD_BASE + SPREAD_KEYS) {
        users_off.get(id).await?;
        users_pct.get(id).await?;
    }

    // Warm the hot key and the spread keys, into the repository and into a bare quick_cache
    // holding the same `Arc<user::Model>`s.
    let raw_cache: Cache<i64, Arc<user::Model>> = Cache::new(CAPACITY);
    let model = users.get(HOT).await?.ok_or("user 1 exists")?;
    raw_cache.insert(HOT, model);
    for id in SPREAD_BASE..SPREAD_BASE + SPREAD_KEYS {
        let model = users.get(id).await?.ok_or("spread user exists")?;
        raw_cache.insert(id, model);
    }
    check(
        raw_cache.len() == 1 + SPREAD_KEYS as usize,
        "the raw cache holds every key",
    )?;

    // Each round measures the repository and raw quick_cache in turn; the best round of each
    // row is kept.
    let hot = [HOT];
    let hits_before = users.stats().hits;
    let mut f = HitFigures::default();
    for _ in 0..RUNS {
        for (keys, raw, get, peek, off, pct) in [
            (
                &hot[..],
                &mut f.raw_hot,
                &mut f.get_hot,
                &mut f.peek_hot,
                &mut f.off_hot,
                &mut f.pct_hot,
            ),
            (
                &sequence[..],
                &mut f.raw_spread,
                &mut f.get_spread,
                &mut f.peek_spread,
                &mut f.off_spread,
                &mut f.pct_spread,
            ),
        ] {
            *off = off.min(ns_per_read!(keys, |key| black_box(
                users_off.get(black_box(key)).await?
            )));
            *pct = pct.min(ns_per_read!(keys, |key| black_box(
                users_pct.get(black_box(key)).await?
            )));
            *raw = raw.min(ns_per_read!(keys, |key| black_box(
                raw_cache.get(black_box(&key))
            )));
            *get = get.min(ns_per_read!(keys, |key| black_box(
                users.get(black_box(key)).await?
            )));
            *peek = peek.min(ns_per_read!(keys, |key| black_box(
                users.peek(black_box(key))
            )));
        }
    }
    let hits = users.stats().hits - hits_before;
    let reads_per_round = 2 * u64::from(MEMORY_ITERS) + 1 + SEQUENCE as u64;
    check(
        hits == u64::from(RUNS) * reads_per_round,
        "every hit read was a hit",
    )?;
    check(
        users.stats().misses == 1 + SPREAD_KEYS as u64,
        "no read missed after warming",
    )?;
    let hit = f.get_hot;
    check(
        users_off.freshness().is_none() && users_pct.freshness().is_some(),
        "the sampler is off, then on",
    )?;
    off_layer.shutdown().await?;
    pct_layer.shutdown().await?;

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if std::env::args().any(|arg| arg == "--triggers") {
        println!("Measured on: <date>, <machine> ({cores} hardware threads available)");
        println!();
        print_header();
        trigger_rows().await?;
        cache.shutdown().await?;
        return Ok(());
    }
    if std::env::args().any(|arg| arg == "--coherence") {
        println!("Measured on: <date>, <machine> ({cores} hardware threads available)");
        println!();
        print_header();
        coherence_rows().await?;
        cache.shutdown().await?;
        return Ok(());
    }
    if std::env::args().any(|arg| arg == "--hits-only") {
        println!("Measured on: <date>, <machine> ({cores} hardware threads available)");
        println!();
        print_header();
        print_hit_rows(&f);
        sampler_ceiling_row(&db).await?;
        cache.shutdown().await?;
        return Ok(());
    }

    // SeaORM by itself, and a read-through miss (every iteration drops the entry, so `get`
    // loads from the database). Database timings drift, so the two alternate in short rounds
    // and the medians are reported.
    let loads_before = users.stats().loads;
    let (mut finds, mut misses) = (Vec::new(), Vec::new());
    for _ in 0..DB_ROUNDS {
        finds.push(best_ns!(
            1,
            DB_ITERS,
            black_box(user::Entity::find_by_id(black_box(HOT)).one(&db).await?)
        ));
        misses.push(best_ns!(1, DB_ITERS, {
            users.invalidate(HOT);
            black_box(users.get(black_box(HOT)).await?)
        }));
    }
    let (find, miss) = (median(&mut finds), median(&mut misses));
    let loads = users.stats().loads - loads_before;
    check(
        loads == DB_ROUNDS * u64::from(DB_ITERS),
        "every miss read loaded",
    )?;

    // Coalescing: TASKS readers released at once on a key nobody read yet.
    let (mut max_loads, mut max_selects) = (0, 0);
    for round in 0..ROUNDS {
        let key = HOT + 1 + round;
        let (loads_before, selects_before) = (users.stats().loads, selects.load(Relaxed));
        let barrier = Arc::new(Barrier::new(TASKS));
        let readers: Vec<_> = (0..TASKS)
            .map(|_| {
                let (users, barrier) = (users.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    users.get(key).await
                })
            })
            .collect();
        for reader in readers {
            check(reader.await??.is_some(), "every reader sees the row")?;
        }
        max_loads = max_loads.max(users.stats().loads - loads_before);
        max_selects = max_selects.max(selects.load(Relaxed) - selects_before);
    }

    println!("Measured on: <date>, <machine> ({cores} hardware threads available)");
    println!();
    print_header();
    print_hit_rows(&f);
    sampler_ceiling_row(&db).await?;
    println!(
        "| SeaORM `find_by_id(id).one(&db)` (in-memory SQLite) | {find:.0} | find_by_id / hit = {:.0}× |",
        find / hit
    );
    println!(
        "| Read-through miss (`invalidate` + `get`) | {miss:.0} | miss / find_by_id = {:.2}× |",
        miss / find
    );
    println!(
        "| {TASKS} concurrent `get`s of one cold key ({ROUNDS} rounds) | - | at most {max_loads} DB load(s) per round ({max_selects} SELECT(s) seen by SeaORM) |"
    );

    cache.shutdown().await?;

    // A write statement through `CachedConnection` against the raw connection, on file SQLite
    // and, when `TEST_POSTGRES_URL` names an admin connection, on a scratch Postgres database.
    let sqlite_path = std::env::temp_dir().join(format!("soc-bench-{}.db", std::process::id()));
    let sqlite_url = format!("sqlite://{}?mode=rwc", sqlite_path.display());
    let (raw, cached) = write_overhead(&sqlite_url).await?;
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", sqlite_path.display()));
    }
    print_write_row("file SQLite", raw, cached);
    // Write-behind throughput against write-through, 64 writers, on file SQLite
    // (synchronous=FULL) and Postgres; and hot-key coalescing.
    let sqlite_path = std::env::temp_dir().join(format!("soc-bench-wb-{}.db", std::process::id()));
    let sqlite_url = format!("sqlite://{}?mode=rwc", sqlite_path.display());
    let sqlite = write_behind_rows(&sqlite_url).await;
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", sqlite_path.display()));
    }
    let sqlite = sqlite?;

    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("soc_bench_{}", std::process::id());
            let admin_db = Database::connect(admin.as_str()).await?;
            admin_db
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            let url = format!(
                "{}/{name}",
                admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(base, _)| base)
            );
            let measured = write_overhead(&url).await;
            admin_db
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            let (raw, cached) = measured?;
            print_write_row("Postgres", raw, cached);
            admin_db
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            let measured = write_behind_rows(&url).await;
            admin_db
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            print_throughput_rows("file SQLite (synchronous=FULL)", &sqlite);
            print_throughput_rows("Postgres", &measured?);
            coherence_rows().await?;
            trigger_rows().await?;
        }
        Err(_) => {
            println!(
                "| Write through `CachedConnection`, Postgres | - | skipped: set TEST_POSTGRES_URL |"
            );
            print_throughput_rows("file SQLite (synchronous=FULL)", &sqlite);
        }
    }
    Ok(())
}

/// Median ns of one `UPDATE ... WHERE id = ?` through the raw connection and through the
/// layer's `CachedConnection`, in alternating rounds.
async fn write_overhead(url: &str) -> Result<(f64, f64), Box<dyn Error>> {
    write_overhead_with(url, Coherence::off()).await
}

/// A connection to `url` whose `users` table holds one row, user 1, for the write rows.
async fn one_writer_table(url: &str) -> Result<sea_orm::DatabaseConnection, Box<dyn Error>> {
    let db = Database::connect(url).await?;
    Migrator::up(&db, None).await?;
    user::Entity::delete_many().exec(&db).await?;
    user::Entity::insert(user::ActiveModel {
        id: Set(1),
        email: Set("writer@example.com".to_owned()),
        name: Set("Writer".to_owned()),
        bio: Set(String::new()),
        updated_at: Set(0),
    })
    .exec(&db)
    .await?;
    Ok(db)
}

async fn write_overhead_with(
    url: &str,
    coherence: Coherence,
) -> Result<(f64, f64), Box<dyn Error>> {
    let db = one_writer_table(url).await?;
    let cache = CacheLayer::builder(db.clone())
        .coherence(coherence)
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await?;
    let conn = cache.connection();
    let users = cache.repository::<user::Entity>()?;
    let update = |n: i64| {
        user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::value(n))
            .filter(user::Column::Id.eq(1))
    };
    let (mut raws, mut cacheds) = (Vec::new(), Vec::new());
    let mut n = 0;
    for _ in 0..WRITE_ROUNDS {
        raws.push(best_ns!(1, WRITE_ITERS, {
            n += 1;
            update(n).exec(&db).await?
        }));
        users.get(1).await?;
        let invalidated = users.stats().invalidated;
        cacheds.push(best_ns!(1, WRITE_ITERS, {
            n += 1;
            update(n).exec(&conn).await?
        }));
        check(
            users.stats().invalidated > invalidated,
            "writes through the cached connection invalidate",
        )?;
    }
    cache.shutdown().await?;
    db.close().await?;
    Ok((median(&mut raws), median(&mut cacheds)))
}

/// Median ns of one `Repository::update` of one row under `policy` with `coherence`.
async fn repository_update_ns(
    url: &str,
    policy: Policy,
    coherence: Coherence,
) -> Result<f64, Box<dyn Error>> {
    let db = one_writer_table(url).await?;
    let builder = CacheLayer::builder(db.clone()).coherence(coherence);
    let cache = match policy {
        Policy::WriteBehind => builder.write_behind::<user::Entity>(|c| c),
        _ => builder.cached::<user::Entity>(move |c| c.policy(policy)),
    }
    .build()
    .await?;
    let users = cache.repository::<user::Entity>()?;
    let mut rounds = Vec::new();
    let mut n = 0;
    for _ in 0..WRITE_ROUNDS {
        rounds.push(best_ns!(1, WRITE_ITERS, {
            n += 1;
            users
                .update(user::ActiveModel {
                    id: sea_orm::ActiveValue::Unchanged(1),
                    updated_at: Set(n),
                    ..Default::default()
                })
                .await?
        }));
    }
    cache.shutdown().await?;
    let written = user::Entity::find_by_id(1).one(&db).await?;
    check(
        written.is_some_and(|u| u.updated_at == n),
        "the last repository update reached the table",
    )?;
    db.close().await?;
    Ok(median(&mut rounds))
}

fn print_write_row(backend: &str, raw: f64, cached: f64) {
    println!(
        "| Write through `CachedConnection` vs raw `DatabaseConnection`, {backend} | {cached:.0} vs {raw:.0} | cached / raw = {:.3}× |",
        cached / raw
    );
}

/// Concurrent writers in the throughput rows.
const WRITERS: i64 = 64;
/// Writes per writer in the throughput rows.
const WRITES_EACH: i64 = 200;
/// Hot-key coalescing: this many updates over [`HOT_KEYS`] keys.
const HOT_UPDATES: i64 = 10_000;
const HOT_KEYS: i64 = 100;

/// What the write-behind rows measured on one database.
struct WriteBehindFigures {
    write_through_per_s: f64,
    write_behind_per_s: f64,
    hot_table_writes: u64,
    hot_statements: u64,
}

async fn connect_full(url: &str) -> Result<sea_orm::DatabaseConnection, Box<dyn Error>> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options.max_connections(8).sqlx_logging(false);
    options.map_sqlx_sqlite_opts(|o| o.synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full));
    Ok(Database::connect(options).await?)
}

/// Acknowledged writes per second of `WRITERS` concurrent writers under `policy`.
async fn writes_per_second(url: &str, policy: Policy) -> Result<f64, Box<dyn Error>> {
    writes_per_second_with(url, policy, Coherence::off()).await
}

async fn writes_per_second_with(
    url: &str,
    policy: Policy,
    coherence: Coherence,
) -> Result<f64, Box<dyn Error>> {
    let db = connect_full(url).await?;
    Migrator::up(&db, None).await?;
    profile::Entity::delete_many().exec(&db).await?;
    profile::Entity::insert_many((0..WRITERS).map(|w| profile::ActiveModel {
        user_id: Set(w),
        display_name: Set(format!("writer {w}")),
        visits: Set(0),
    }))
    .exec(&db)
    .await?;
    let cache = CacheLayer::builder(db.clone())
        .coherence(coherence)
        .cached::<profile::Entity>(move |c| c.policy(policy))
        .build()
        .await?;
    let profiles = cache.repository::<profile::Entity>()?;
    for w in 0..WRITERS {
        profiles.get(w).await?;
    }
    let barrier = Arc::new(Barrier::new(WRITERS as usize));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (profiles, barrier) = (profiles.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                for n in 1..=WRITES_EACH {
                    profiles
                        .update(profile::ActiveModel {
                            user_id: sea_orm::ActiveValue::Unchanged(w),
                            visits: Set(n),
                            ..Default::default()
                        })
                        .await?;
                }
                Ok::<_, sea_orm_cache::Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    cache.shutdown().await?;
    let written: Vec<i64> = profile::Entity::find()
        .all(&db)
        .await?
        .iter()
        .map(|p| p.visits)
        .collect();
    check(
        written.iter().all(|&v| v == WRITES_EACH),
        "every writer's last write reached the table",
    )?;
    db.close().await?;
    Ok((WRITERS * WRITES_EACH) as f64 / elapsed)
}

/// Write-behind vs write-through throughput, and hot-key coalescing, on one database.
async fn write_behind_rows(url: &str) -> Result<WriteBehindFigures, Box<dyn Error>> {
    let write_through_per_s = writes_per_second(url, Policy::WriteThrough).await?;
    let write_behind_per_s = writes_per_second(url, Policy::WriteBehind).await?;

    // Hot keys: 10,000 updates over 100 keys from 64 writers, default flush settings.
    let db = connect_full(url).await?;
    profile::Entity::delete_many().exec(&db).await?;
    let cache = CacheLayer::builder(db.clone())
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
        .build()
        .await?;
    let profiles = cache.repository::<profile::Entity>()?;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let profiles = profiles.clone();
            tokio::spawn(async move {
                let mut n = w;
                while n < HOT_UPDATES {
                    profiles
                        .insert(profile::ActiveModel {
                            user_id: Set(n % HOT_KEYS),
                            display_name: Set(format!("writer {w}")),
                            visits: Set(n),
                        })
                        .await?;
                    n += WRITERS;
                }
                Ok::<_, sea_orm_cache::Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    cache.shutdown().await?;
    let stats = profiles.stats();
    check(
        stats.writes == HOT_UPDATES as u64,
        "every hot-key update was acknowledged",
    )?;
    db.close().await?;
    Ok(WriteBehindFigures {
        write_through_per_s,
        write_behind_per_s,
        hot_table_writes: stats.flushed_rows,
        hot_statements: stats.db_writes,
    })
}

fn print_throughput_rows(backend: &str, f: &WriteBehindFigures) {
    println!(
        "| {WRITERS} writers, acknowledged writes/s, {backend}: write-behind vs write-through | {:.0} vs {:.0} | write-behind / write-through = {:.1}× |",
        f.write_behind_per_s,
        f.write_through_per_s,
        f.write_behind_per_s / f.write_through_per_s
    );
    println!(
        "| Hot keys, {backend}: {HOT_UPDATES} write-behind updates over {HOT_KEYS} keys | - | {} table row writes in {} statements |",
        f.hot_table_writes, f.hot_statements
    );
}

/// Best ns/op of the hit rows.
struct HitFigures {
    raw_hot: f64,
    get_hot: f64,
    peek_hot: f64,
    raw_spread: f64,
    get_spread: f64,
    peek_spread: f64,
    off_hot: f64,
    off_spread: f64,
    pct_hot: f64,
    pct_spread: f64,
}

impl Default for HitFigures {
    fn default() -> Self {
        Self {
            raw_hot: f64::INFINITY,
            get_hot: f64::INFINITY,
            peek_hot: f64::INFINITY,
            raw_spread: f64::INFINITY,
            get_spread: f64::INFINITY,
            peek_spread: f64::INFINITY,
            off_hot: f64::INFINITY,
            off_spread: f64::INFINITY,
            pct_hot: f64::INFINITY,
            pct_spread: f64::INFINITY,
        }
    }
}

fn print_header() {
    println!("| Operation | ns/op | Comparison |");
    println!("|---|---:|---|");
}

fn print_hit_rows(f: &HitFigures) {
    for (keys, raw, get, peek, off, pct) in [
        (
            "one hot key",
            f.raw_hot,
            f.get_hot,
            f.peek_hot,
            f.off_hot,
            f.pct_hot,
        ),
        (
            "10,000 random keys",
            f.raw_spread,
            f.get_spread,
            f.peek_spread,
            f.off_spread,
            f.pct_spread,
        ),
    ] {
        println!("| Raw quick_cache `get` of an `Arc<user::Model>`, {keys} | {raw:.1} | |");
        println!(
            "| Repository hit (`users.get`, read-through, sampler at the default 0.1%), {keys} | {get:.1} | get / raw = {:.2}× |",
            get / raw
        );
        println!(
            "| Repository hit, sampler off, {keys} | {off:.1} | get / raw = {:.2}× |",
            off / raw
        );
        println!(
            "| Repository hit, sampler at 1% of hits, {keys} | {pct:.1} | get / raw = {:.2}×; / sampler off = {:.2}× |",
            pct / raw,
            pct / off
        );
        println!(
            "| `users.peek`, {keys} | {peek:.1} | peek / raw = {:.2}× |",
            peek / raw
        );
    }
}

/// A layer of its own caching `users` with the staleness sampler at `rate` of hits.
async fn sampled_layer(
    db: &sea_orm::DatabaseConnection,
    rate: f64,
) -> Result<(CacheLayer, Repository<user::Entity>), Box<dyn Error>> {
    let layer = CacheLayer::builder(db.clone())
        .coherence(Coherence::off())
        .cached::<user::Entity>(move |c| {
            c.policy(Policy::ReadThrough)
                .capacity(CAPACITY)
                .freshness(FreshnessConfig::default().sample_rate(rate))
        })
        .build()
        .await?;
    let users = layer.repository::<user::Entity>()?;
    Ok((layer, users))
}

/// Seconds of hits before the sampler's reads are counted (its first second's burst), and
/// seconds they are counted over.
const CEILING_SETTLE_SECS: u64 = 2;
const CEILING_SECS: u64 = 10;
/// The ceiling the row holds the sampler to.
const CEILING: u32 = 100;

/// One row: a hot key read as fast as one task can, the sampler at 1% of hits with a ceiling
/// of `CEILING` reads a second, so it is offered far more samples than it may read; the
/// sampler's database reads per second, counted over `CEILING_SECS` once the first
/// `CEILING_SETTLE_SECS` have passed.
async fn sampler_ceiling_row(db: &sea_orm::DatabaseConnection) -> Result<(), Box<dyn Error>> {
    let layer = CacheLayer::builder(db.clone())
        .coherence(Coherence::off())
        .cached::<user::Entity>(|c| {
            c.policy(Policy::ReadThrough).freshness(
                FreshnessConfig::default()
                    .sample_rate(0.01)
                    .max_samples_per_sec(CEILING),
            )
        })
        .build()
        .await?;
    let users = layer.repository::<user::Entity>()?;
    users.get(HOT).await?;
    let read_for = |secs: u64| {
        let users = users.clone();
        async move {
            let until = Instant::now() + std::time::Duration::from_secs(secs);
            let mut hits = 0_u64;
            while Instant::now() < until {
                for _ in 0..10_000 {
                    black_box(users.get(black_box(HOT)).await?);
                }
                hits += 10_000;
                // Let the sampler's task (and the SQLite worker) run between batches.
                tokio::task::yield_now().await;
            }
            Ok::<u64, Box<dyn Error>>(hits)
        }
    };
    read_for(CEILING_SETTLE_SECS).await?;
    let before = users.freshness().ok_or("sampler on")?;
    let started = Instant::now();
    let hits = read_for(CEILING_SECS).await?;
    let after = users.freshness().ok_or("sampler on")?;
    let elapsed = started.elapsed().as_secs_f64();
    let reads_per_sec = (after.reads - before.reads) as f64 / elapsed;
    let offered_per_sec = hits as f64 / elapsed * 0.01;
    check(after.reads > before.reads, "the sampler read")?;
    println!(
        "| Sampler at 1% of {:.1} M hits/s (one task, one hot key), `max_samples_per_sec = {CEILING}` | - | {reads_per_sec:.1} sample reads/s of {offered_per_sec:.0} offered/s (ceiling {CEILING}); {} throttled, {} dropped (queue full) |",
        hits as f64 / elapsed / 1e6,
        after.throttled - before.throttled,
        after.dropped - before.dropped,
    );
    layer.shutdown().await?;
    Ok(())
}

/// The next value of a splitmix64 sequence.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The median of `values`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Turns a failed sanity check into an error, so a wrong measurement is never printed.
fn check(ok: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if ok {
        Ok(())
    } else {
        Err(format!("sanity check failed: {what}").into())
    }
}

// ---- Several instances (`--coherence`) ----

/// Set in instance B's environment: the database URL.
const COHERENCE_CHILD: &str = "SOC_BENCH_COHERENCE_CHILD";
/// Set in instance B's environment: `listen` or `poll`.
const COHERENCE_MODE: &str = "SOC_BENCH_COHERENCE_MODE";
/// Writes measured per staleness row.
const STALENESS_SAMPLES: usize = 200;
/// Rows the staleness writes go round.
const STALENESS_KEYS: i64 = 10;

fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn coherence_of(mode: &str) -> Coherence {
    Coherence::on().listen(mode == "listen")
}

/// Instance B: for every `<key> <version>` line on stdin, a write-through update of user
/// `key`'s name to `version`; prints `ack <wall µs>` once it is acknowledged.
async fn coherence_child(url: &str) -> Result<(), Box<dyn Error>> {
    use std::io::{BufRead, Write};
    let mode = std::env::var(COHERENCE_MODE)?;
    let cache = CacheLayer::builder(Database::connect(url).await?)
        .coherence(coherence_of(&mode))
        .cached::<user::Entity>(|c| c.policy(Policy::WriteThrough))
        .build()
        .await?;
    let users = cache.repository::<user::Entity>()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (key, version) = line.split_once(' ').ok_or("a `<key> <version>` line")?;
        users
            .update(user::ActiveModel {
                id: sea_orm::ActiveValue::Unchanged(key.parse()?),
                name: Set(version.to_owned()),
                ..Default::default()
            })
            .await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ack {}", wall_us())?;
        out.flush()?;
    }
    cache.shutdown().await?;
    Ok(())
}

/// B's acknowledgement to A's first read of the new value, `STALENESS_SAMPLES` times; the
/// p50 and p99 in milliseconds.
async fn staleness(url: &str, mode: &str) -> Result<(f64, f64), Box<dyn Error>> {
    use std::io::{BufRead, BufReader, Write};
    let db = Database::connect(url).await?;
    Migrator::up(&db, None).await?;
    user::Entity::delete_many().exec(&db).await?;
    user::Entity::insert_many((1..=STALENESS_KEYS).map(|id| user::ActiveModel {
        id: Set(id),
        email: Set(format!("stale{id}@example.com")),
        name: Set("0".to_owned()),
        bio: Set(String::new()),
        updated_at: Set(0),
    }))
    .exec(&db)
    .await?;
    let a = CacheLayer::builder(db.clone())
        .coherence(coherence_of(mode))
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await?;
    let users = a.repository::<user::Entity>()?;
    let mut b = std::process::Command::new(std::env::current_exe()?)
        .env(COHERENCE_CHILD, url)
        .env(COHERENCE_MODE, mode)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut to_b = b.stdin.take().ok_or("B's stdin")?;
    let mut from_b = BufReader::new(b.stdout.take().ok_or("B's stdout")?).lines();
    let mut windows = Vec::with_capacity(STALENESS_SAMPLES);
    for sample in 0..STALENESS_SAMPLES {
        let key = 1 + sample as i64 % STALENESS_KEYS;
        let version = (sample + 1).to_string();
        users.get(key).await?.ok_or("the row exists")?;
        writeln!(to_b, "{key} {version}")?;
        to_b.flush()?;
        let line = tokio::task::block_in_place(|| from_b.next()).ok_or("B stopped")??;
        let acked: i64 = line.strip_prefix("ack ").ok_or("an ack line")?.parse()?;
        loop {
            if users.get(key).await?.ok_or("the row exists")?.name == version {
                break;
            }
            tokio::task::yield_now().await;
        }
        windows.push((wall_us() - acked) as f64 / 1_000.0);
    }
    drop(to_b);
    b.wait()?;
    a.shutdown().await?;
    db.close().await?;
    windows.sort_by(f64::total_cmp);
    let at = |q: f64| windows[((windows.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

/// A scratch database named `soc_bench_coh_<pid>` next to `admin`'s, created for `measure`
/// and dropped after it.
async fn on_scratch<T, F, Fut>(admin: &str, measure: F) -> Result<T, Box<dyn Error>>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, Box<dyn Error>>>,
{
    let name = format!("soc_bench_coh_{}", std::process::id());
    let admin_db = Database::connect(admin).await?;
    admin_db
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let url = format!(
        "{}/{name}",
        admin.rsplit_once('/').map_or(admin, |(base, _)| base)
    );
    let measured = measure(url).await;
    let drop_sql = if admin.starts_with("mysql") {
        format!("DROP DATABASE IF EXISTS {name}")
    } else {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    };
    admin_db.execute_unprepared(&drop_sql).await?;
    measured
}

/// Rounds of the trigger rows (triggers off and on alternate), single-row updates per round.
const TRIGGER_ROUNDS: usize = 9;
const TRIGGER_ITERS: u32 = 100;
/// Rows of the bulk update.
const BULK_ROWS: i64 = 10_000;

/// The outside-writer rows: what the triggers of `Capture::Triggers` cost a write made on a
/// plain connection, per backend.
async fn trigger_rows() -> Result<(), Box<dyn Error>> {
    let path = std::env::temp_dir().join(format!("soc-bench-trg-{}.db", std::process::id()));
    let sqlite_url = format!("sqlite://{}?mode=rwc", path.display());
    let sqlite = trigger_costs(&sqlite_url).await;
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    print_trigger_rows("file SQLite (synchronous=FULL)", sqlite?);
    for (label, var) in [
        ("Postgres", "TEST_POSTGRES_URL"),
        ("MariaDB", "TEST_MYSQL_URL"),
    ] {
        match std::env::var(var) {
            Ok(admin) => {
                let costs =
                    on_scratch(&admin, |url| async move { trigger_costs(&url).await }).await?;
                print_trigger_rows(label, costs);
            }
            Err(_) => {
                println!("| Outside writes with triggers, {label} | - | skipped: set {var} |")
            }
        }
    }
    Ok(())
}

/// Median ns of a single-row update and of a `BULK_ROWS`-row update, triggers off and on:
/// `((single off, single on), (bulk off, bulk on))`.
async fn trigger_costs(url: &str) -> Result<((f64, f64), (f64, f64)), Box<dyn Error>> {
    let db = connect_full(url).await?;
    Migrator::up(&db, None).await?;
    sea_orm_cache::outbox::create_tables(&db).await?;
    for chunk in (1..=BULK_ROWS).collect::<Vec<_>>().chunks(1_000) {
        user::Entity::insert_many(chunk.iter().map(|&id| user::ActiveModel {
            id: Set(id),
            email: Set(format!("user{id}@example.com")),
            name: Set(format!("User {id}")),
            bio: Set(String::new()),
            updated_at: Set(0),
        }))
        .exec(&db)
        .await?;
    }
    let (mut single_off, mut single_on, mut bulk_off, mut bulk_on) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut n = 0_i64;
    for round in 0..TRIGGER_ROUNDS * 2 {
        let on = round % 2 == 1;
        if on {
            sea_orm_cache::triggers::install::<user::Entity, _>(&db).await?;
        } else {
            sea_orm_cache::triggers::uninstall::<user::Entity, _>(&db).await?;
        }
        let single = best_ns!(1, TRIGGER_ITERS, {
            n += 1;
            user::Entity::update_many()
                .col_expr(user::Column::Name, Expr::value(format!("n{n}")))
                .filter(user::Column::Id.eq(1 + n % BULK_ROWS))
                .exec(&db)
                .await?
        });
        let started = Instant::now();
        let updated = user::Entity::update_many()
            .col_expr(user::Column::Bio, Expr::value(format!("round {round}")))
            .exec(&db)
            .await?;
        let bulk = started.elapsed().as_nanos() as f64;
        check(
            updated.rows_affected == BULK_ROWS as u64,
            "the bulk update changed every row",
        )?;
        if on {
            single_on.push(single);
            bulk_on.push(bulk);
        } else {
            single_off.push(single);
            bulk_off.push(bulk);
        }
    }
    // The triggers logged what they saw: every bulk update's rows, keyed.
    let logged = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM sea_orm_cache_invalidation WHERE origin = 'trigger'",
        ))
        .await?
        .ok_or("a count")?
        .try_get::<i64>("", "n")?;
    check(
        logged >= TRIGGER_ROUNDS as i64 * (BULK_ROWS + i64::from(TRIGGER_ITERS)),
        "the triggers logged every row they changed",
    )?;
    Ok((
        (median(&mut single_off), median(&mut single_on)),
        (median(&mut bulk_off), median(&mut bulk_on)),
    ))
}

fn print_trigger_rows(
    backend: &str,
    ((single_off, single_on), (bulk_off, bulk_on)): ((f64, f64), (f64, f64)),
) {
    println!(
        "| Single-row `UPDATE` on a plain connection, {backend}: triggers off / on | {single_off:.0} / {single_on:.0} | on / off = {:.2}× |",
        single_on / single_off
    );
    println!(
        "| {BULK_ROWS}-row `UPDATE`, {backend}: triggers off / on | {bulk_off:.0} / {bulk_on:.0} | on / off = {:.2}× |",
        bulk_on / bulk_off
    );
}

/// The several-instances rows: staleness windows across two processes, and what coherence
/// costs a write.
async fn coherence_rows() -> Result<(), Box<dyn Error>> {
    let mut targets = Vec::new();
    if let Ok(admin) = std::env::var("TEST_POSTGRES_URL") {
        targets.push(("Postgres, LISTEN/NOTIFY", admin.clone(), "listen"));
        targets.push(("Postgres, polling every 100 ms", admin, "poll"));
    }
    if let Ok(admin) = std::env::var("TEST_MYSQL_URL") {
        targets.push(("MariaDB, polling every 100 ms", admin, "poll"));
    }
    if targets.is_empty() {
        println!("| Several instances | - | skipped: set TEST_POSTGRES_URL and TEST_MYSQL_URL |");
        return Ok(());
    }
    for (label, admin, mode) in &targets {
        let (p50, p99) =
            on_scratch(admin, |url| async move { staleness(&url, mode).await }).await?;
        println!(
            "| Staleness window across two processes ({label}): B's acknowledgement to A's first read of the new value, {STALENESS_SAMPLES} writes | - | p50 {p50:.1} ms, p99 {p99:.1} ms |"
        );
    }
    // The costs: once per database (its polling row stands for it).
    for (label, admin, _) in targets.iter().filter(|(_, _, mode)| *mode == "poll") {
        let backend = label.split(',').next().unwrap_or(label);
        // The update through `CachedConnection` (the second figure) with coherence off, then on.
        let (off, on) = on_scratch(admin, |url| async move {
            let (_, off) = write_overhead_with(&url, Coherence::off()).await?;
            let (_, on) = write_overhead_with(&url, Coherence::on()).await?;
            Ok((off, on))
        })
        .await?;
        println!(
            "| Single-row update through `CachedConnection`, {backend}: coherence off / on | {off:.0} / {on:.0} | on / off = {:.2}× |",
            on / off
        );
        for policy in [
            Policy::CacheAside,
            Policy::ReadThrough,
            Policy::WriteThrough,
            Policy::WriteBehind,
        ] {
            let (off, on) = on_scratch(admin, |url| async move {
                let off = repository_update_ns(&url, policy, Coherence::off()).await?;
                let on = repository_update_ns(&url, policy, Coherence::on()).await?;
                Ok((off, on))
            })
            .await?;
            println!(
                "| Single-row `Repository::update`, {policy:?}, {backend}: coherence off / on | {off:.0} / {on:.0} | on / off = {:.2}× |",
                on / off
            );
        }
        let (off, on) = on_scratch(admin, |url| async move {
            let off = writes_per_second_with(&url, Policy::WriteBehind, Coherence::off()).await?;
            let on = writes_per_second_with(&url, Policy::WriteBehind, Coherence::on()).await?;
            Ok((off, on))
        })
        .await?;
        println!(
            "| Write-behind acknowledged writes/s, {WRITERS} writers, {backend}: coherence off / on | {off:.0} / {on:.0} | on / off = {:.2}× |",
            on / off
        );
    }
    Ok(())
}

/// Set in the processes `--memory` starts: which side of the memory row to measure.
const MEMORY_CHILD: &str = "SOC_BENCH_MEMORY_CHILD";
/// Rows cached by each side of the memory row.
const MEMORY_ENTRIES: i64 = 10_000;

/// This process's resident set size in bytes (Linux: `/proc/self/statm`).
fn rss_bytes() -> Result<u64, Box<dyn Error>> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("no resident pages in /proc/self/statm")?
        .parse()?;
    Ok(pages * 4096)
}

/// One side of the memory row, in a process of its own so neither inherits the other's
/// heap: `MEMORY_ENTRIES` users are loaded from an in-memory SQLite database (100 per query)
/// into a bare quick_cache of `Arc<Model>` (`bare`) or a layer with default settings and the
/// same capacity (`layer`, its construction included); prints the growth of the resident
/// set per cached entry. The rows are loaded once and dropped before measuring, so the
/// database's pages and the allocator's high-water mark of a batch are there on both sides.
async fn memory_child(side: &str) -> Result<(), Box<dyn Error>> {
    let db = Database::connect("sqlite::memory:").await?;
    Migrator::up(&db, None).await?;
    let ids: Vec<i64> = (1..=MEMORY_ENTRIES).collect();
    for chunk in ids.chunks(500) {
        user::Entity::insert_many(chunk.iter().map(|&id| user::ActiveModel {
            id: Set(id),
            email: Set(format!("user{id}@example.com")),
            name: Set(format!("User {id}")),
            bio: Set("A user of the memory benchmark.".to_owned()),
            updated_at: Set(0),
        }))
        .exec(&db)
        .await?;
    }
    for chunk in ids.chunks(100) {
        black_box(
            user::Entity::find()
                .filter(user::Column::Id.is_in(chunk.iter().copied()))
                .all(&db)
                .await?,
        );
    }
    let before = rss_bytes()?;
    let after = match side {
        "bare" => {
            let cache: Cache<i64, Arc<user::Model>> = Cache::new(CAPACITY);
            for chunk in ids.chunks(100) {
                for model in user::Entity::find()
                    .filter(user::Column::Id.is_in(chunk.iter().copied()))
                    .all(&db)
                    .await?
                {
                    cache.insert(model.id, Arc::new(model));
                }
            }
            check(
                cache.len() == MEMORY_ENTRIES as usize,
                "every row is cached",
            )?;
            let after = rss_bytes()?;
            black_box(&cache);
            after
        }
        _ => {
            let layer = CacheLayer::builder(db.clone())
                .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough).capacity(CAPACITY))
                .build()
                .await?;
            let users = layer.repository::<user::Entity>()?;
            for chunk in ids.chunks(100) {
                users.get_many(chunk.iter().copied()).await?;
            }
            check(
                ids.iter().all(|&id| users.peek(id).is_some()),
                "every row is cached",
            )?;
            let after = rss_bytes()?;
            black_box(&layer);
            after
        }
    };
    println!("{}", after.saturating_sub(before) / MEMORY_ENTRIES as u64);
    Ok(())
}

/// `--memory`: bytes per cached entry of the layer and of a bare quick_cache, each measured
/// in a process of its own, side by side.
fn memory_rows() -> Result<(), Box<dyn Error>> {
    let measure = |side: &str| -> Result<f64, Box<dyn Error>> {
        let out = std::process::Command::new(std::env::current_exe()?)
            .env(MEMORY_CHILD, side)
            .output()?;
        check(out.status.success(), "the memory child ran")?;
        Ok(String::from_utf8(out.stdout)?.trim().parse()?)
    };
    let (bare, layer) = (measure("bare")?, measure("layer")?);
    println!(
        "| Memory per cached entry: resident set growth over {MEMORY_ENTRIES} users, layer (default settings, its construction included) vs bare quick_cache of `Arc<Model>` | {layer:.0} B vs {bare:.0} B | layer / bare = {:.2}× |",
        layer / bare
    );
    Ok(())
}

/// How long `--idle` watches an idle layer.
const IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// CPU time this process's threads have run, summed from `/proc/self/task/*/schedstat`
/// (Linux; nanoseconds as the scheduler counts them, where `/proc/self/stat`'s 10 ms ticks
/// charge a whole tick to a thread that happens to run when it fires).
fn cpu_time() -> Result<std::time::Duration, Box<dyn Error>> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")? {
        let schedstat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        ns += schedstat
            .split_whitespace()
            .next()
            .ok_or("empty schedstat")?
            .parse::<u64>()?;
    }
    Ok(std::time::Duration::from_nanos(ns))
}

/// `--idle`: a layer with three entities (read-through, write-through, write-behind) on a
/// scratch Postgres database, default settings, no requests, for `IDLE_FOR`: the share of a
/// core the process used meanwhile, and the statements the layer sent (through SeaORM's
/// metric callback, on the application's pool and on the layer's own connections).
async fn idle_row() -> Result<(), Box<dyn Error>> {
    let Ok(admin) = std::env::var("TEST_POSTGRES_URL") else {
        println!("| Idle layer | - | skipped: set TEST_POSTGRES_URL |");
        return Ok(());
    };
    let (cpu, statements) = on_scratch(&admin, |url| async move {
        let mut db = Database::connect(url.as_str()).await?;
        Migrator::up(&db, None).await?;
        let sent = Arc::new(AtomicU64::new(0));
        let count = sent.clone();
        db.set_metric_callback(move |_| {
            count.fetch_add(1, Relaxed);
        });
        let count = sent.clone();
        let cache = CacheLayer::builder(db)
            .metric_callback(move |_| {
                count.fetch_add(1, Relaxed);
            })
            .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
            .cached::<entity::post::Entity>(|c| c.policy(Policy::WriteThrough))
            .write_behind::<profile::Entity>(|c| c)
            .build()
            .await?;
        // Past the start.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let (cpu_before, sent_before) = (cpu_time()?, sent.load(Relaxed));
        tokio::time::sleep(IDLE_FOR).await;
        let cpu = cpu_time()? - cpu_before;
        let statements = sent.load(Relaxed) - sent_before;
        cache.shutdown().await?;
        Ok((cpu, statements))
    })
    .await?;
    println!(
        "| Idle layer, three entities, Postgres with LISTEN, {IDLE_FOR:?} | - | {:.3}% of a core, {statements} statements ({:.2}/s) |",
        cpu.as_secs_f64() / IDLE_FOR.as_secs_f64() * 100.0,
        statements as f64 / IDLE_FOR.as_secs_f64()
    );
    Ok(())
}
