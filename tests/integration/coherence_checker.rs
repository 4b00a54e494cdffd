//! G8, checked as a register test in the style of Jepsen's: instance B (this test binary
//! started again, [`checker_writers`]) runs 8 writers over 200 keys, each key's version only
//! growing, and prints every acknowledgement with its wall-clock time; instance A (the test)
//! runs 8 readers over the same keys meanwhile. Afterwards every read is held against the
//! acknowledgements: a read that started later than an acknowledgement plus the bound must
//! return that version or a later one. On Postgres it runs a second time with A's listener
//! backend killed every second, and on every backend with half of the writes made on a plain
//! connection, captured by database triggers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entity::user;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};
use sea_orm_cache::{CacheLayer, Capture, Coherence, Policy};

use crate::common::*;

const CHILD_URL: &str = "SEA_ORM_CACHE_CHECKER_URL";
const CHILD_SECONDS: &str = "SEA_ORM_CACHE_CHECKER_SECONDS";
/// Set (to anything) when half of B's writes go through a plain connection.
const CHILD_PLAIN: &str = "SEA_ORM_CACHE_CHECKER_PLAIN";
/// With plain writes, each writer rests this long after a pass over its keys (workload pacing,
/// not synchronisation): a key's next write, which would invalidate it through the layer,
/// comes later than the bound, so a plain write nobody logged would show as a violation.
const PLAIN_PACE: Duration = Duration::from_millis(1_500);
const KEYS: i64 = 200;
const WRITERS: i64 = 8;
const READERS: usize = 8;
/// How long B writes.
const SECONDS: u64 = 20;
/// How often both instances read the log.
const POLL: Duration = Duration::from_millis(50);
/// The bound the reads are held to: the poll interval and one read of the log, with room for
/// a CI machine whose 2 cores also run the database.
const BOUND_US: i64 = 1_000_000;

/// One checker at a time in this process. Each runs 8 readers that never sleep and 8 writers in
/// a second process, and its bound is a wall-clock one: seven of them at once on a 2-core CI
/// machine (with the rest of the suite) starved the databases and the tailers past it (polls
/// every 160 ms instead of 50, log lag up to 10.8 s, the original MariaDB checker included).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Instance B of the checker: 8 writers, writer `w` owning the keys `k % 8 == w`, each write
/// the key's next version, through the repository (write-through) and a `CachedConnection`
/// statement in turn; prints `ack <key> <version> <wall µs>` once each is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "instance B of coherence_checker::*, started by those tests"]
async fn checker_writers() {
    let url = std::env::var(CHILD_URL).expect("run by the checker");
    let seconds: u64 = std::env::var(CHILD_SECONDS).unwrap().parse().unwrap();
    let plain = std::env::var(CHILD_PLAIN).is_ok();
    let db = sea_orm::Database::connect(url).await.unwrap();
    // With plain writes, the table is captured by the triggers A installed.
    let capture = if plain {
        Capture::Triggers
    } else {
        Capture::Layer
    };
    let cache = CacheLayer::builder(db.clone())
        .coherence(Coherence::on().poll_interval(POLL))
        .cached::<user::Entity>(move |c| c.policy(Policy::WriteThrough).capture(capture))
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    let conn = cache.connection();
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (users, conn, db) = (users.clone(), conn.clone(), db.clone());
            tokio::spawn(async move {
                let mut version = 0;
                while std::time::Instant::now() < deadline {
                    version += 1;
                    for key in (1..=KEYS).filter(|k| k % WRITERS == w) {
                        let name = version.to_string();
                        if version % 2 == 0 {
                            users
                                .update(user::ActiveModel {
                                    id: Unchanged(key),
                                    name: Set(name),
                                    ..Default::default()
                                })
                                .await
                                .unwrap();
                        } else if plain {
                            // A write the layer never sees: only the trigger logs it.
                            user::Entity::update_many()
                                .col_expr(user::Column::Name, Expr::value(name))
                                .filter(user::Column::Id.eq(key))
                                .exec(&db)
                                .await
                                .unwrap();
                        } else {
                            user::Entity::update_many()
                                .col_expr(user::Column::Name, Expr::value(name))
                                .filter(user::Column::Id.eq(key))
                                .exec(&conn)
                                .await
                                .unwrap();
                        }
                        let acked = now_us();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {key} {version} {acked}").unwrap();
                        out.flush().unwrap();
                    }
                    if plain {
                        tokio::time::sleep(PLAIN_PACE).await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    cache.shutdown().await.unwrap();
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn check(t: TestDb, kill_listener: bool, plain: bool) {
    let _alone = ONE_AT_A_TIME.lock().await;
    if t.db_backend() == DbBackend::Sqlite {
        // Two processes on one SQLite file, as a deployment would run them: in WAL mode (kept
        // in the file). In the default rollback-journal mode a reader waits while a writer
        // commits, and under a loaded CI machine B's 8 writers held A's log reads back for
        // more than the bound (2,547 of 2,600 writes late, lag up to 2.2 s).
        t.db.execute_unprepared("PRAGMA journal_mode=WAL")
            .await
            .unwrap();
    }
    for n in 1..=KEYS {
        let u = seed_user(&t.db, n).await;
        assert_eq!(u.id, n);
    }
    user::Entity::update_many()
        .col_expr(user::Column::Name, Expr::value("0"))
        .exec(&t.db)
        .await
        .unwrap();
    let capture = if plain {
        Capture::Triggers
    } else {
        Capture::Layer
    };
    let mut a = CacheLayer::builder(t.connect_again().await)
        .coherence(Coherence::on().poll_interval(POLL))
        .cached::<user::Entity>(move |c| c.policy(Policy::ReadThrough).capture(capture));
    if plain {
        a = a.install_triggers();
    }
    let a = a.build().await.unwrap();
    let users = a.repository::<user::Entity>().unwrap();

    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--ignored",
            "--exact",
            "coherence_checker::checker_writers",
            "--nocapture",
        ])
        .env(CHILD_URL, t.url())
        .env(CHILD_SECONDS, SECONDS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if plain {
        command.env(CHILD_PLAIN, "1");
    }
    let mut child = Child(command.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (lines, acks_in) = mpsc::channel::<String>();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done_reading = done.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
        done_reading.store(true, std::sync::atomic::Ordering::Release);
    });

    let reads = Arc::new(Mutex::new(Vec::<(i64, i64, i64)>::new()));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (users, reads, done) = (users.clone(), reads.clone(), done.clone());
            tokio::spawn(async move {
                let mut state = 0x9e37_79b9_u64 ^ r as u64;
                let mut mine = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let key = 1 + ((state >> 33) % KEYS as u64) as i64;
                    let started = now_us();
                    let row = users.get(key).await.unwrap().unwrap();
                    mine.push((key, row.name.parse::<i64>().unwrap(), started));
                    tokio::task::yield_now().await;
                }
                reads.lock().unwrap().extend(mine);
            })
        })
        .collect();
    let killer = kill_listener.then(|| {
        let (db, done) = (t.db.clone(), done.clone());
        tokio::spawn(async move {
            let mut killed = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                killed += db
                    .query_all_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                    ))
                    .await
                    .unwrap()
                    .len();
            }
            killed
        })
    });
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(child.0.wait().unwrap().success(), "instance B failed");
    let killed = match killer {
        Some(killer) => killer.await.unwrap(),
        None => 0,
    };

    // Each key's acknowledgements, in time order (versions grow with them).
    let mut acks: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    let mut total_acks = 0;
    for line in acks_in.try_iter() {
        let mut words = line.split_whitespace();
        if words.next() != Some("ack") {
            continue;
        }
        let key: i64 = words.next().unwrap().parse().unwrap();
        let version: i64 = words.next().unwrap().parse().unwrap();
        let at: i64 = words.next().unwrap().parse().unwrap();
        acks.entry(key).or_default().push((at, version));
        total_acks += 1;
    }
    let reads = std::mem::take(&mut *reads.lock().unwrap());
    // Reads older than an acknowledgement made at least `bound` µs before they started.
    let older_than = |bound: i64| {
        let mut violations = Vec::new();
        for &(key, version, started) in reads.iter() {
            let Some(key_acks) = acks.get(&key) else {
                continue;
            };
            // The newest acknowledgement at least `bound` before the read started.
            let due = key_acks.partition_point(|&(at, _)| at + bound <= started);
            if due > 0 && version < key_acks[due - 1].1 {
                violations.push((key, version, key_acks[due - 1], started));
            }
        }
        violations
    };
    let violations = older_than(BOUND_US);
    // For the record, not asserted: the same count at tighter bounds (two and four poll
    // intervals, and a quarter of a second), which this loaded 2-core machine may miss.
    let tighter: Vec<(i64, usize)> = [100_000, 200_000, 250_000]
        .into_iter()
        .map(|bound| (bound / 1_000, older_than(bound).len()))
        .collect();
    eprintln!("reads older than an acknowledgement made (ms, count) before: {tighter:?}");
    eprintln!(
        "checker on {:?}{}{}: {} reads, {total_acks} acknowledged writes, {} violations, \
         {} listener kills, {:?}",
        t.db_backend(),
        if kill_listener {
            " (listener killed every second)"
        } else {
            ""
        },
        if plain {
            " (half the writes on a plain connection, captured by triggers)"
        } else {
            ""
        },
        reads.len(),
        violations.len(),
        killed,
        a.coherence_stats(),
    );
    assert!(reads.len() > 10_000, "the readers read");
    assert!(total_acks > 1_000, "the writers wrote");
    assert!(
        violations.is_empty(),
        "reads older than an acknowledged write plus {BOUND_US} µs: {:?}",
        &violations[..violations.len().min(10)]
    );
    if kill_listener {
        assert!(killed >= 5, "the listener was killed");
        assert!(a.coherence_stats().listener_reconnects >= 5);
    }
    a.shutdown().await.unwrap();
}

/// No read that starts later than an acknowledgement plus the bound returns an older version.
async fn no_read_is_older_than_an_acknowledged_write_plus_the_bound(t: TestDb) {
    check(t, false, false).await;
}

/// The same with half of B's writes made on a plain `DatabaseConnection` that knows nothing of
/// the cache: the triggers A installed log them (issue 13).
async fn the_same_with_half_the_writes_outside_the_layer(t: TestDb) {
    check(t, false, true).await;
}

/// The same on Postgres with A's listener backend killed every second.
async fn the_same_with_the_listener_killed_every_second(t: TestDb) {
    if t.db_backend() != DbBackend::Postgres {
        return;
    }
    check(t, true, false).await;
}

crate::backend_tests!(
    no_read_is_older_than_an_acknowledged_write_plus_the_bound,
    the_same_with_half_the_writes_outside_the_layer,
    the_same_with_the_listener_killed_every_second,
);
