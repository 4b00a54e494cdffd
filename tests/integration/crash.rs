//! G5: a crash loses nothing that was acknowledged. The crash harness, [`writer_process`],
//! runs in a child process (this test binary, started again) that makes write-behind writes
//! and prints each acknowledgement; it is killed with SIGKILL at a random point after at least
//! 1,000 of them, a fresh layer on the same database flushes, and every key's table row must
//! hold its last acknowledged value or a later one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entity::profile;
use sea_orm::EntityTrait;
use sea_orm_cache::{CacheLayer, Policy};

use crate::common::*;

const RUNS: usize = 3;
const AT_LEAST: usize = 1_000;

/// The child's environment variable: the database URL to write to.
const CHILD_URL: &str = "SEA_ORM_CACHE_CRASH_WRITER_URL";
/// The child's first round, so a restarted writer's values keep growing.
const CHILD_FIRST_ROUND: &str = "SEA_ORM_CACHE_CRASH_WRITER_ROUND";
/// Concurrent writers in the child; writer `w` owns the keys `k` with `k % WRITERS == w`.
const WRITERS: i64 = 16;
/// Keys written (1..=KEYS).
const KEYS: i64 = 200;

/// The crash harness, run only as the child process of the crash test (this binary started
/// again with `--ignored --exact crash::writer_process`): makes write-behind writes until it is
/// killed, printing `ack <key> <visits>` as soon as each is acknowledged. Each key's values
/// only grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the crash test's child process, started by crash::*::killed_writer_loses_no_acknowledged_write"]
async fn writer_process() {
    use std::io::Write;

    let url = std::env::var(CHILD_URL).expect("run by the crash test");
    let first_round: i64 = std::env::var(CHILD_FIRST_ROUND).unwrap().parse().unwrap();
    let db = sea_orm::Database::connect(url).await.unwrap();
    let cache = CacheLayer::builder(db)
        .cached::<profile::Entity>(|c| {
            c.policy(Policy::WriteBehind).write_behind(
                sea_orm_cache::WriteBehindConfig::default().max_delay(Duration::from_millis(20)),
            )
        })
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let profiles = profiles.clone();
            tokio::spawn(async move {
                for round in first_round.. {
                    for key in (1..=KEYS).filter(|k| k % WRITERS == w) {
                        let visits = round * KEYS + key;
                        profiles
                            .insert(profile::ActiveModel {
                                user_id: sea_orm::ActiveValue::Set(key),
                                display_name: sea_orm::ActiveValue::Set(format!("writer {w}")),
                                visits: sea_orm::ActiveValue::Set(visits),
                            })
                            .await
                            .unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {key} {visits}").unwrap();
                        out.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}

/// This test binary, to start again as the crash harness.
fn harness() -> PathBuf {
    std::env::current_exe().unwrap()
}

/// A kill point between `AT_LEAST` and twice that many acknowledgements.
fn kill_after() -> usize {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    AT_LEAST + nanos % AT_LEAST
}

/// Kills the writer when dropped, so a failing test leaves no process behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn killed_writer_loses_no_acknowledged_write(t: TestDb) {
    let mut last_acked: HashMap<i64, i64> = HashMap::new();
    for run in 0..RUNS {
        let mut child = Killed(
            Command::new(harness())
                .args([
                    "--ignored",
                    "--exact",
                    "crash::writer_process",
                    "--nocapture",
                ])
                .env(CHILD_URL, t.url())
                .env(CHILD_FIRST_ROUND, (run * 1_000_000).to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
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
        let target = kill_after();
        let mut acked = 0;
        let mut record = |line: &str| {
            let mut words = line.split_whitespace();
            if words.next() != Some("ack") {
                return false;
            }
            let key: i64 = words.next().unwrap().parse().unwrap();
            let visits: i64 = words.next().unwrap().parse().unwrap();
            let previous = last_acked.insert(key, visits);
            assert!(
                previous.is_none_or(|p| p < visits),
                "acks of a key only grow"
            );
            true
        };
        while acked < target {
            let line = acks
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|e| {
                    panic!("run {run}: the writer stopped after {acked} acks: {e}")
                });
            if record(&line) {
                acked += 1;
            }
        }
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        // Every ack the writer printed before it died counts, read or not.
        while let Ok(line) = acks.recv() {
            if record(&line) {
                acked += 1;
            }
        }

        // A fresh layer resumes the outbox and drains it.
        let cache = t
            .builder()
            .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
            .build()
            .await
            .unwrap();
        cache.shutdown().await.unwrap();
        let rows: HashMap<i64, i64> = profile::Entity::find()
            .all(&t.db)
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.user_id, p.visits))
            .collect();
        let lost: Vec<_> = last_acked
            .iter()
            .filter(|(key, acked)| rows.get(key).is_none_or(|row| row < acked))
            .collect();
        assert!(
            lost.is_empty(),
            "run {run}: acknowledged writes lost: {lost:?}"
        );
        assert!(acked >= AT_LEAST);
    }
}

crate::backend_tests!(killed_writer_loses_no_acknowledged_write);
