//! `bench -- --write-behind-lag` (issue 26): how long an acknowledged write-behind write
//! takes to reach the table under an ordinary load, on each database. Two layers on one
//! database (two instances), one write-behind entity with default settings, about 400
//! acknowledged writes a second between them, and four readers on the same runtime reading
//! the table through `cache.connection()` (each resting 1 ms every 4 reads). The lag is the
//! one the flushers record (`sea_orm_cache_write_behind_apply_lag_seconds`: the outbox row's
//! acknowledgement to the commit that applied it), read here through a recorder of this
//! example's own.

use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use entity::profile;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use migration::{Migrator, MigratorTrait};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{Database, EntityTrait};
use sea_orm_cache::{CacheLayer, WriteBehindConfig};

/// How long each database is measured.
const RUN: Duration = Duration::from_secs(15);
/// Rows written (the writers pick one at random each time).
const KEYS: i64 = 100;
/// Writers per instance, each writing every `WRITE_EVERY`: 2 x 2 x 100 = 400 writes/s.
const WRITERS: usize = 2;
const WRITE_EVERY: Duration = Duration::from_millis(10);
/// Readers on the first instance's runtime.
const READERS: usize = 4;

/// The lag histogram's values, in seconds.
#[derive(Default)]
struct Lags(Mutex<Vec<f64>>);

impl HistogramFn for Lags {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(value);
    }
}

/// A recorder that keeps the apply lag histogram's values and nothing else.
struct LagRecorder(Arc<Lags>);

impl Recorder for LagRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() == "sea_orm_cache_write_behind_apply_lag_seconds" {
            Histogram::from_arc(self.0.clone())
        } else {
            Histogram::noop()
        }
    }
}

/// The recorded lags, installing the recorder on first use.
fn lags() -> &'static Arc<Lags> {
    static LAGS: OnceLock<Arc<Lags>> = OnceLock::new();
    LAGS.get_or_init(|| {
        let lags = Arc::new(Lags::default());
        let _ = metrics::set_global_recorder(LagRecorder(lags.clone()));
        lags
    })
}

/// The ack → applied lag on `url`'s database under the workload: (p50, p99, max) in ms,
/// the writes acknowledged, and the lags recorded.
pub(crate) async fn measure(url: &str) -> Result<(f64, f64, f64, usize, usize), Box<dyn Error>> {
    let lags = lags();
    let db = Database::connect(url).await?;
    Migrator::up(&db, None).await?;
    profile::Entity::delete_many().exec(&db).await?;
    profile::Entity::insert_many((0..KEYS).map(|k| profile::ActiveModel {
        user_id: Set(k),
        display_name: Set(format!("profile {k}")),
        visits: Set(0),
    }))
    .exec(&db)
    .await?;
    let instance = async || -> Result<CacheLayer, Box<dyn Error>> {
        Ok(CacheLayer::builder(Database::connect(url).await?)
            .write_behind::<profile::Entity>(|c| c)
            .build()
            .await?)
    };
    let (a, b) = (instance().await?, instance().await?);
    lags.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for (n, layer) in [&a, &b].into_iter().enumerate() {
        for w in 0..WRITERS {
            let profiles = layer.repository::<profile::Entity>()?;
            let (stop, written) = (stop.clone(), written.clone());
            let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ ((n * WRITERS + w) as u64 + 1);
            tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(WRITE_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut version = 0;
                while !stop.load(Ordering::Relaxed) {
                    every.tick().await;
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    version += 1;
                    profiles
                        .update(profile::ActiveModel {
                            user_id: Unchanged((state % KEYS as u64) as i64),
                            visits: Set(version),
                            ..Default::default()
                        })
                        .await?;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, sea_orm_cache::Error>(())
            }));
        }
    }
    for r in 0..READERS {
        let (conn, stop) = (a.connection(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut key = r as i64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..4 {
                    key = (key + 7) % KEYS;
                    profile::Entity::find_by_id(key)
                        .one(&conn)
                        .await
                        .map_err(sea_orm_cache::Error::from)?;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(())
        }));
    }
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    // Before the shutdowns' final flushes: their lag is not the workload's.
    let mut seen = std::mem::take(&mut *lags.0.lock().unwrap_or_else(|e| e.into_inner()));
    a.shutdown().await?;
    b.shutdown().await?;
    db.close().await?;
    if seen.is_empty() {
        return Err("no lag was recorded".into());
    }
    seen.sort_by(f64::total_cmp);
    let at = |q: f64| seen[((seen.len() - 1) as f64 * q).round() as usize] * 1000.0;
    Ok((
        at(0.5),
        at(0.99),
        at(1.0),
        written.load(Ordering::Relaxed),
        seen.len(),
    ))
}

/// The rows of `--write-behind-lag`: SQLite (a temporary file), and Postgres and MariaDB
/// when their URLs are set (each on a scratch database made by `scratch`).
pub(crate) async fn rows<S, Fut>(scratch: S) -> Result<(), Box<dyn Error>>
where
    S: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(f64, f64, f64, usize, usize), Box<dyn Error>>>,
{
    let max_delay = WriteBehindConfig::default().max_delay;
    let path = std::env::temp_dir().join(format!("soc_bench_lag_{}.db", std::process::id()));
    let sqlite = format!("sqlite://{}?mode=rwc", path.display());
    let mut targets: Vec<(&str, Option<String>)> = vec![("SQLite (file)", None)];
    if let Ok(admin) = std::env::var("TEST_POSTGRES_URL") {
        targets.push(("Postgres", Some(admin)));
    }
    if let Ok(admin) = std::env::var("TEST_MYSQL_URL") {
        targets.push(("MariaDB", Some(admin)));
    }
    for (label, admin) in targets {
        let (p50, p99, max, written, recorded) = match admin {
            None => {
                let measured = measure(&sqlite).await;
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                measured?
            }
            Some(admin) => scratch(admin).await?,
        };
        let per_s = written as f64 / RUN.as_secs_f64();
        println!(
            "| Write-behind ack → applied lag, {label}: two instances, {per_s:.0} acknowledged writes/s, {READERS} readers on the runtime, {RUN:?} ({recorded} rows applied) | max_delay {max_delay:?} | p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms |"
        );
    }
    Ok(())
}
