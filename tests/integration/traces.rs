//! Tracing spans: a miss opens a `sea_orm_cache.load` span with the entity and the outcome, a
//! hit opens none (and emits nothing); writes, commits through the layer's connection and
//! write-behind batches have their spans. SQLite in memory only: the spans do not depend on
//! the backend.
//!
//! The subscriber is a small hand-written one, set for this test's thread only, on a
//! current-thread runtime, so every span the layer opens (its background tasks' included) is
//! recorded and no other test's is; and the test runs in a process of its own, so no other
//! test's thread touches `tracing`'s process-wide callsite cache meanwhile.

use std::fmt;
use std::sync::{Arc, Mutex};

use entity::{profile, user};
use migration::{Migrator, MigratorTrait};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::Database;
use sea_orm_cache::{CacheLayer, Error, Policy};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One span as opened, with every field value it was given (at opening or recorded later).
#[derive(Debug)]
struct SpanSeen {
    name: &'static str,
    fields: Vec<(&'static str, String)>,
}

impl SpanSeen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Default)]
struct Seen {
    spans: Vec<SpanSeen>,
    events: usize,
}

/// Records every span and counts every event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

impl Recorder {
    /// Spans named `name` opened so far.
    fn spans(&self, name: &str) -> Vec<(Option<String>, Option<String>)> {
        self.0
            .lock()
            .unwrap()
            .spans
            .iter()
            .filter(|span| span.name == name)
            .map(|span| {
                (
                    span.field("entity").map(str::to_owned),
                    span.field("outcome").map(str::to_owned),
                )
            })
            .collect()
    }

    /// Spans opened and events emitted so far.
    fn counts(&self) -> (usize, usize) {
        let seen = self.0.lock().unwrap();
        (seen.spans.len(), seen.events)
    }

    fn find(&self, name: &str, check: impl Fn(&SpanSeen) -> bool) -> bool {
        self.0
            .lock()
            .unwrap()
            .spans
            .iter()
            .any(|span| span.name == name && check(span))
    }
}

struct Fields<'a>(&'a mut Vec<(&'static str, String)>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name(), format!("{value:?}")));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut seen = self.0.lock().unwrap();
        let mut fields = Vec::new();
        span.record(&mut Fields(&mut fields));
        seen.spans.push(SpanSeen {
            name: span.metadata().name(),
            fields,
        });
        Id::from_u64(seen.spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut seen = self.0.lock().unwrap();
        let span = &mut seen.spans[span.into_u64() as usize - 1];
        values.record(&mut Fields(&mut span.fields));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {
        self.0.lock().unwrap().events += 1;
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

const LOAD: &str = "sea_orm_cache.load";
const WRITE: &str = "sea_orm_cache.write";

fn some(entity: &str, outcome: &str) -> (Option<String>, Option<String>) {
    (Some(entity.to_owned()), Some(outcome.to_owned()))
}

/// Runs [`spans_alone`] in a process of its own (this test binary, started again with only
/// that test): `tracing` caches each callsite's interest for the whole process, and another
/// test's thread meeting a callsite for the first time while this test set its subscriber
/// left a span unrecorded once in CI (a `sea_orm_cache.write` span missing).
#[test]
fn a_miss_opens_a_span_with_its_outcome_and_a_hit_opens_none() {
    // Output captured, so the child's test counts do not add to this run's.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "traces::spans_alone", "--nocapture"])
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "traces::spans_alone failed in its own process:\n{}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
}

/// The checks, alone in their process (see above).
#[tokio::test(flavor = "current_thread")]
#[ignore = "run by traces::a_miss_opens_a_span_with_its_outcome_and_a_hit_opens_none in a process of its own"]
async fn spans_alone() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());

    let db = Database::connect("sqlite::memory:").await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let cache = CacheLayer::builder(db)
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .cached::<profile::Entity>(|c| c)
        .metrics_interval(None)
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();

    let ada = users
        .insert(user::ActiveModel {
            email: Set("ada@example.com".into()),
            name: Set("Ada".into()),
            bio: Set(String::new()),
            updated_at: Set(0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(recorder.spans(WRITE), [some("users", "ok")]);
    assert!(recorder.find(WRITE, |s| s.field("op") == Some("insert")));

    // A miss: one load span, with the entity and what the load found.
    assert!(users.get(ada.id).await.unwrap().is_some());
    assert_eq!(recorder.spans(LOAD), [some("users", "loaded")]);
    assert!(users.get(404).await.unwrap().is_none());
    assert_eq!(
        recorder.spans(LOAD),
        [some("users", "loaded"), some("users", "negative")]
    );

    // Hits: no span, no event, whichever way the cache is read.
    let before = recorder.counts();
    for _ in 0..3 {
        assert!(users.get(ada.id).await.unwrap().is_some());
        let loaded = users
            .get_or_load(ada.id, || async { Ok::<_, Error>(None) })
            .await
            .unwrap();
        assert!(loaded.is_some(), "answered from the cache, not the loader");
    }
    assert_eq!(users.stats().hits, 6);
    assert_eq!(
        recorder.counts(),
        before,
        "a hit opened a span or emitted an event"
    );

    // A write that fails.
    let missing = users
        .update(user::ActiveModel {
            id: Unchanged(404),
            name: Set("nobody".into()),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(
        recorder.spans(WRITE),
        [some("users", "ok"), some("users", "error")]
    );

    // A transaction's commit runs its cache effects in a span naming the entity.
    let (repo, id) = (users.clone(), ada.id);
    cache
        .transaction(|txn| {
            Box::pin(async move {
                repo.update_with(
                    user::ActiveModel {
                        id: Unchanged(id),
                        name: Set("Ada L.".into()),
                        ..Default::default()
                    },
                    txn,
                )
                .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    assert!(recorder.find("sea_orm_cache.commit_effects", |s| {
        s.field("entity") == Some("users") && s.field("effects") == Some("1")
    }));

    // A write-behind batch: one flush span with the entity and the rows it wrote.
    let profiles = cache.repository::<profile::Entity>().unwrap();
    profiles
        .insert(profile::ActiveModel {
            user_id: Set(ada.id),
            display_name: Set("ada".into()),
            visits: Set(0),
        })
        .await
        .unwrap();
    profiles.flush().await.unwrap();
    assert!(recorder.find("sea_orm_cache.flush", |s| {
        s.field("entity") == Some("profiles")
            && s.field("rows") == Some("1")
            && s.field("outcome") == Some("ok")
    }));
    cache.shutdown().await.unwrap();
}
