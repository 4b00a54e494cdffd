//! The layer's background work does not wait for the application (issues 21 and 26): the
//! write-behind flusher and the invalidation log tailer run on the layer's own thread with
//! connections of their own, so an application holding every connection of its pool holds up
//! neither an acknowledged write on its way to the table nor another instance's write on its
//! way to this cache; and the flusher records each write's ack → applied lag.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use entity::{profile, user};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, EntityTrait, Statement, TransactionTrait, Value,
    sea_query::ValueTuple,
};
use sea_orm_cache::{CacheLayer, Coherence, Policy, WriteBehindConfig, key_text};

use crate::common::*;

/// The failure guard of every wait below: far longer than any of them takes.
const GUARD: Duration = Duration::from_secs(20);

fn visits(user_id: i64, visits: i64) -> profile::ActiveModel {
    profile::ActiveModel {
        user_id: Unchanged(user_id),
        visits: Set(visits),
        ..Default::default()
    }
}

/// Waits until profile `user_id` has `visits` in the table, as `reader` (a connection of
/// its own) reads it, for at most [`GUARD`].
async fn table_shows(reader: &sea_orm::DatabaseConnection, user_id: i64, visits: i64) -> bool {
    let read = async {
        loop {
            let row = profile::Entity::find_by_id(user_id)
                .one(reader)
                .await
                .unwrap();
            if row.is_some_and(|row| row.visits == visits) {
                return;
            }
            // A poll of the condition, not a stand-in for synchronisation.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(GUARD, read).await.is_ok()
}

/// Every connection of the application's pool (two) is held by an application transaction
/// that stays open; a write acknowledged just before the second was taken reaches the table
/// meanwhile, applied by the flusher on a connection of its own. The write is acknowledged
/// in a transaction on the pool's second connection, which is taken back at once by another
/// transaction: the flusher, woken by that commit, gathers writes for `max_delay` (half a
/// second) before it flushes, so when it wants a connection both are held.
async fn an_acknowledged_write_reaches_the_table_while_the_application_holds_its_pool(t: TestDb) {
    seed_profile(&t.db, 1).await;
    let mut options = ConnectOptions::new(t.url().to_owned());
    options
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(GUARD)
        .sqlx_logging(false);
    let app = Database::connect(options).await.unwrap();
    let cache = CacheLayer::builder(app.clone())
        .coherence(Coherence::off())
        .cached::<profile::Entity>(|c| {
            c.policy(Policy::WriteBehind)
                .write_behind(WriteBehindConfig::default().max_delay(Duration::from_millis(500)))
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();

    let first = app.begin().await.unwrap();
    first.execute_unprepared("SELECT 1").await.unwrap();
    let writing = cache.connection().begin().await.unwrap();
    profiles.update_with(visits(1, 7), &writing).await.unwrap();
    writing.commit().await.unwrap(); // acknowledged
    let second = app.begin().await.unwrap();
    second.execute_unprepared("SELECT 1").await.unwrap();

    let reader = t.connect_again().await;
    assert!(
        table_shows(&reader, 1, 7).await,
        "the acknowledged write reached the table while the application held its pool"
    );
    second.rollback().await.unwrap();
    first.rollback().await.unwrap();
    cache.shutdown().await.unwrap();
}

/// The same for the invalidation log tailer: instance A's pool (two connections) is held by
/// two open application transactions, and a write instance B makes reaches A's cache, read
/// from the log by A's tailer on a connection of its own (on Postgres woken by its listener,
/// also on a connection of its own).
async fn another_instances_write_reaches_this_cache_while_the_application_holds_its_pool(
    t: TestDb,
) {
    let ada = seed_user(&t.db, 1).await;
    let mut options = ConnectOptions::new(t.url().to_owned());
    options
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(GUARD)
        .sqlx_logging(false);
    let app = Database::connect(options).await.unwrap();
    let coherence = || Coherence::on().poll_interval(Duration::from_millis(50));
    let a = CacheLayer::builder(app.clone())
        .coherence(coherence())
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await
        .unwrap();
    let b = t
        .builder()
        .coherence(coherence())
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await
        .unwrap();
    let (users_a, users_b) = (
        a.repository::<user::Entity>().unwrap(),
        b.repository::<user::Entity>().unwrap(),
    );
    users_a.get(ada.id).await.unwrap(); // cached in A
    let before = users_a.stats().remote_invalidations;

    let first = app.begin().await.unwrap();
    first.execute_unprepared("SELECT 1").await.unwrap();
    let second = app.begin().await.unwrap();
    second.execute_unprepared("SELECT 1").await.unwrap();
    users_b
        .update(user::ActiveModel {
            id: Unchanged(ada.id),
            name: Set("Ada L.".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let applied = async {
        while users_a.stats().remote_invalidations == before {
            // A poll of the condition, not a stand-in for synchronisation.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert!(
        tokio::time::timeout(GUARD, applied).await.is_ok(),
        "B's write reached A's cache while A's application held its pool"
    );
    second.rollback().await.unwrap();
    first.rollback().await.unwrap();
    assert_eq!(users_a.get(ada.id).await.unwrap().unwrap().name, "Ada L.");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// One histogram sample as the test recorder keeps it: its labels and value.
type Sample = (Vec<(String, String)>, f64);

/// A recorder that keeps every histogram sample, by metric name; counters and gauges are
/// dropped. Installed once for the whole test binary: other tests' samples land here too.
#[derive(Default)]
struct Samples(Mutex<HashMap<String, Vec<Sample>>>);

struct Sink {
    samples: &'static Samples,
    key: Key,
}

impl HistogramFn for Sink {
    fn record(&self, value: f64) {
        let labels = self
            .key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        self.samples
            .0
            .lock()
            .unwrap()
            .entry(self.key.name().to_owned())
            .or_default()
            .push((labels, value));
    }
}

struct TestRecorder(&'static Samples);

impl Recorder for TestRecorder {
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
        Histogram::from_arc(Arc::new(Sink {
            samples: self.0,
            key: key.clone(),
        }))
    }
}

/// The samples every histogram of the process recorded, through a recorder installed for
/// the whole test binary on first use.
fn samples() -> &'static Samples {
    static SAMPLES: OnceLock<&'static Samples> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let samples: &'static Samples = Box::leak(Box::default());
        metrics::set_global_recorder(TestRecorder(samples)).expect("no other recorder");
        samples
    })
}

/// The values `sea_orm_cache_write_behind_apply_lag_seconds{entity="profiles"}` recorded.
fn apply_lags() -> Vec<f64> {
    samples()
        .0
        .lock()
        .unwrap()
        .get("sea_orm_cache_write_behind_apply_lag_seconds")
        .into_iter()
        .flatten()
        .filter(|(labels, _)| labels.contains(&("entity".to_owned(), "profiles".to_owned())))
        .map(|(_, value)| *value)
        .collect()
}

/// The flusher records, for each write it applies, the seconds from its acknowledgement (the
/// outbox row's `created_at`) to the commit that applied it. A row acknowledged a known time
/// ago (written into the outbox as a previous run would have left it, `created_at` set back
/// by a day and this test's own offset) shows up with that lag; a write through the
/// repository adds a sample of its own.
async fn the_flusher_records_each_writes_ack_to_applied_lag(t: TestDb) {
    samples();
    seed_profile(&t.db, 1).await;
    seed_profile(&t.db, 2).await;
    let offset_ms = 86_400_000 + i64::from(std::process::id() % 1000) * 1000 + 123;
    let acknowledged = now_ms() - offset_ms;
    let pk = key_text(ValueTuple::One(Value::from(1_i64)));
    let payload = r#"{"user_id":1,"display_name":"pending","visits":7}"#;
    let sql = match t.backend {
        Backend::Postgres => {
            "INSERT INTO sea_orm_cache_outbox (entity, pk, op, payload, created_at, attempts, available_at) \
             VALUES ('profiles', $1, 'upsert', $2, $3, 0, 0)"
        }
        _ => {
            "INSERT INTO sea_orm_cache_outbox (entity, pk, op, payload, created_at, attempts, available_at) \
             VALUES ('profiles', ?, 'upsert', ?, ?, 0, 0)"
        }
    };
    t.db.execute_raw(Statement::from_sql_and_values(
        t.db_backend(),
        sql,
        [pk.into(), payload.into(), acknowledged.into()],
    ))
    .await
    .unwrap();

    let cache = t
        .builder()
        .coherence(Coherence::off())
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    profiles.flush().await.unwrap();
    let before = now_ms();
    let lags = apply_lags();
    let (low, high) = (
        offset_ms as f64 / 1000.0,
        (before - acknowledged) as f64 / 1000.0,
    );
    assert!(
        lags.iter().any(|&lag| (low..=high).contains(&lag)),
        "a sample in [{low}, {high}] s among {lags:?}"
    );

    let count = lags.len();
    profiles.update(visits(2, 9)).await.unwrap();
    profiles.flush().await.unwrap();
    assert!(
        apply_lags().len() > count,
        "the repository's write added a sample"
    );
    cache.shutdown().await.unwrap();
}

crate::backend_tests!(
    an_acknowledged_write_reaches_the_table_while_the_application_holds_its_pool,
    another_instances_write_reaches_this_cache_while_the_application_holds_its_pool,
    the_flusher_records_each_writes_ack_to_applied_lag,
);
