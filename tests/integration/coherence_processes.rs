//! G8 across OS processes: instance B is this test binary started again
//! ([`writer_instance`]), writing through every path when told to on its stdin and printing
//! `ack` when the write is acknowledged; instance A (the test) has the row cached and must
//! show B's write within the documented bound: the poll interval, plus one read of the log,
//! checked as events (once a poll that started after the acknowledgement has finished).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use entity::{profile, user};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter};
use sea_orm_cache::{CacheLayer, Coherence, Policy};

use crate::common::*;

/// The child's environment: the database URL.
const CHILD_URL: &str = "SEA_ORM_CACHE_COHERENCE_WRITER_URL";
/// How often both instances read the log.
const POLL: Duration = Duration::from_millis(50);
/// How long A's tailer may take to run two polls after B's acknowledgement (the poll interval
/// and a read of the log, twice, with room for a loaded CI machine) before the test calls it
/// stalled.
const BOUND: Duration = Duration::from_secs(2);

fn coherence() -> Coherence {
    Coherence::on().poll_interval(POLL)
}

/// Instance B, run only as the child of the tests below: reads `<path> <id> <name>` lines
/// and writes `name` to user `id` (or `visits` to profile `id` for `write_behind`) through
/// that path, then prints `ack`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "instance B of coherence_processes::*, started by those tests"]
async fn writer_instance() {
    let url = std::env::var(CHILD_URL).expect("run by the coherence tests");
    let db = sea_orm::Database::connect(url).await.unwrap();
    let mut layers = Vec::new();
    for policy in [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
    ] {
        layers.push(
            CacheLayer::builder(db.clone())
                .coherence(coherence())
                .cached::<user::Entity>(move |c| c.policy(policy))
                .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
                .build()
                .await
                .unwrap(),
        );
    }
    let conn = layers[0].connection();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let mut words = line.splitn(3, ' ');
        let (path, id, name) = (
            words.next().unwrap(),
            words.next().unwrap().parse::<i64>().unwrap(),
            words.next().unwrap().to_owned(),
        );
        let rename = user::ActiveModel {
            id: Unchanged(id),
            name: Set(name.clone()),
            ..Default::default()
        };
        match path {
            "cache_aside" | "read_through" | "write_through" => {
                let layer = &layers[match path {
                    "cache_aside" => 0,
                    "read_through" => 1,
                    _ => 2,
                }];
                layer
                    .repository::<user::Entity>()
                    .unwrap()
                    .update(rename)
                    .await
                    .unwrap();
            }
            "connection" => {
                user::Entity::update(rename).exec(&conn).await.unwrap();
            }
            "update_many" => {
                user::Entity::update_many()
                    .col_expr(user::Column::Name, Expr::value(name))
                    .filter(user::Column::Id.eq(id))
                    .exec(&conn)
                    .await
                    .unwrap();
            }
            "raw_sql" => {
                let sql = match conn.get_database_backend() {
                    DbBackend::MySql => {
                        format!("UPDATE `users` SET `name` = '{name}' WHERE `id` = {id}")
                    }
                    _ => format!("UPDATE \"users\" SET \"name\" = '{name}' WHERE \"id\" = {id}"),
                };
                conn.execute_unprepared(&sql).await.unwrap();
            }
            "write_behind" => {
                layers[0]
                    .repository::<profile::Entity>()
                    .unwrap()
                    .update(profile::ActiveModel {
                        user_id: Unchanged(id),
                        visits: Set(name.parse().unwrap()),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            other => panic!("unknown path {other}"),
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "ack").unwrap();
        out.flush().unwrap();
    }
    for layer in layers {
        layer.shutdown().await.unwrap();
    }
}

/// Kills instance B when dropped, so a failing test leaves no process behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every write path of instance B, in its own process, reaches instance A within `BOUND`:
/// A has the row cached, B writes and acknowledges, and A's reads show the new value.
async fn another_process_writes_reach_this_one_within_the_bound(t: TestDb) {
    let a = CacheLayer::builder(t.connect_again().await)
        .coherence(coherence())
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
        .build()
        .await
        .unwrap();
    let (users, profiles) = (
        a.repository::<user::Entity>().unwrap(),
        a.repository::<profile::Entity>().unwrap(),
    );
    let u = seed_user(&t.db, 1).await;
    seed_profile(&t.db, u.id).await;

    let mut child = Child(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "coherence_processes::writer_instance",
                "--nocapture",
            ])
            .env(CHILD_URL, t.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut to_b = child.0.stdin.take().unwrap();
    let stdout = child.0.stdout.take().unwrap();
    let (lines, acks) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut slowest = Duration::ZERO;
    for (n, path) in [
        "cache_aside",
        "read_through",
        "write_through",
        "connection",
        "update_many",
        "raw_sql",
        "write_behind",
    ]
    .into_iter()
    .enumerate()
    {
        let value = format!("{}", 1_000 + n);
        let shows = async || match path {
            "write_behind" => {
                profiles
                    .get(u.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .visits
                    .to_string()
                    == value
            }
            _ => users.get(u.id).await.unwrap().unwrap().name == value,
        };
        assert!(!shows().await, "{path}: A has the old value cached");
        writeln!(to_b, "{path} {} {value}", u.id).unwrap();
        to_b.flush().unwrap();
        loop {
            let line = acks
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{path}: instance B did not acknowledge: {e}"));
            if line == "ack" {
                break;
            }
        }
        let acked = Instant::now();
        // The documented bound, as events: once a poll of A's that started after B's
        // acknowledgement has finished (polls run one after another, and the count moves
        // when one starts, so the second to start after this point proves the first done),
        // A shows the write. Waiting for the count is synchronisation on A's own progress;
        // the wall time it took is printed, and held to `BOUND` for a tailer that stalls.
        let polls = a.coherence_stats().polls;
        let seen = loop {
            // Read before `shows`: if two polls had started by then, the first one after the
            // acknowledgement had finished before `shows` read.
            let a_whole_poll_since = a.coherence_stats().polls >= polls + 2;
            if shows().await {
                break acked.elapsed();
            }
            assert!(
                !a_whole_poll_since,
                "{path}: A still serves the old value after a whole poll since B's acknowledgement"
            );
            assert!(
                acked.elapsed() < BOUND,
                "{path}: A's tailer did not poll twice within {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        slowest = slowest.max(seen);
    }
    drop(to_b);
    assert!(child.0.wait().unwrap().success(), "instance B failed");
    eprintln!("slowest cross-process staleness window: {slowest:?}");
    assert!(a.coherence_stats().applied >= 7);
    a.shutdown().await.unwrap();
}

crate::backend_tests!(another_process_writes_reach_this_one_within_the_bound);
