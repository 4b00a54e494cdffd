//! `examples/existing_service.rs` over real HTTP: the service on a localhost port, driven by
//! HTTP/1.1 requests on a TCP socket. With the cache, repeated reads make no query and a write
//! through the service invalidates what it changed; without it, every read queries. Both answer
//! the same. The cached service's `GET /metrics` reports the cache's figures. And the README's
//! diff between the two versions is the one in the example.

#![allow(clippy::unwrap_used)] // Tests unwrap: a failure is the report.

#[allow(dead_code)] // The example's `main` and `--plain` switch are not used here.
#[path = "../examples/existing_service.rs"]
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::DatabaseConnection;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fresh in-memory database with the example tables, and a count of the `SELECT`s that
/// reach it from `users`.
async fn database() -> (DatabaseConnection, Arc<AtomicUsize>) {
    let mut db = service::connect("sqlite::memory:").await.unwrap();
    let selects = Arc::new(AtomicUsize::new(0));
    let count = selects.clone();
    db.set_metric_callback(move |info| {
        let sql = &info.statement.sql;
        if sql.trim_start().starts_with("SELECT") && sql.contains("\"users\"") {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (db, selects)
}

/// Serves `app` on a free localhost port.
async fn start(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One request on a new connection: the status, and the body as JSON (`Null` if empty).
async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, body) = request_text(addr, method, path, body).await;
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap()
    };
    (status, body)
}

/// One request on a new connection: the status, and the body as text.
async fn request_text(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "expected a Content-Length body: {head}"
    );
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The user's `name`.
fn name(user: &Value) -> &str {
    user["name"].as_str().unwrap()
}

/// The same requests against either service; the answers, without the clock-dependent
/// `updated_at`.
async fn script(addr: SocketAddr) -> Vec<(u16, Value)> {
    let mut answers = Vec::new();
    let mut ask = async |method: &str, path: &str, body: &str| {
        let (status, mut body) = request(addr, method, path, body).await;
        if let Some(user) = body.as_object_mut() {
            user.remove("updated_at");
        }
        answers.push((status, body));
    };
    ask(
        "POST",
        "/users",
        r#"{"email": "ada@example.com", "name": "Ada"}"#,
    )
    .await;
    ask("GET", "/users/1", "").await;
    ask("GET", "/users/1", "").await;
    ask("PATCH", "/users/1", r#"{"name": "Ada L."}"#).await;
    ask("GET", "/users/1", "").await;
    ask("DELETE", "/users/1", "").await;
    ask("GET", "/users/1", "").await;
    ask("DELETE", "/users/1", "").await;
    ask("PATCH", "/users/2", r#"{"name": "nobody"}"#).await;
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_service_reads_from_the_cache_and_writes_through_it_invalidate() {
    let (db, selects) = database().await;
    let cache = service::cache_layer(db).await.unwrap();
    let users = cache.repository::<entity_plain::users::Entity>().unwrap();
    let addr = start(service::cached::router(&cache).unwrap()).await;
    let selects = || selects.load(Ordering::SeqCst);

    let (status, ada) = request(
        addr,
        "POST",
        "/users",
        r#"{"email": "ada@example.com", "name": "Ada", "bio": "Notes on engines."}"#,
    )
    .await;
    assert_eq!(status, 201);
    let path = format!("/users/{}", ada["id"]);

    // Three reads: one load, then two hits that never reach the database.
    let before = selects();
    for _ in 0..3 {
        assert_eq!(request(addr, "GET", &path, "").await, (200, ada.clone()));
    }
    assert_eq!(selects() - before, 1, "one SELECT for three reads");
    assert_eq!((users.stats().loads, users.stats().hits), (1, 2));

    // A write through the service invalidates the key: the next read loads the new row once.
    let (status, renamed) = request(addr, "PATCH", &path, r#"{"name": "Ada L."}"#).await;
    assert_eq!((status, name(&renamed)), (200, "Ada L."));
    let before = selects();
    for _ in 0..2 {
        let (status, read) = request(addr, "GET", &path, "").await;
        assert_eq!((status, &read), (200, &renamed));
    }
    assert_eq!(selects() - before, 1, "the write invalidated; one reload");
    assert_eq!(users.stats().invalidated, 1);

    // A delete through the service: the next read finds no row.
    assert_eq!(request(addr, "DELETE", &path, "").await.0, 204);
    assert_eq!(request(addr, "GET", &path, "").await.0, 404);
    assert_eq!(request(addr, "DELETE", &path, "").await.0, 404);
    cache.shutdown().await.unwrap();
}

/// The value of the sample `series` (a metric name with its labels, as rendered) in a
/// Prometheus text body; panics if it is missing.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// Only this test scrapes `/metrics`, and the example's layers publish only when scraped, so
/// the figures are this layer's alone and can be compared exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_service_serves_its_figures_on_get_metrics() {
    let (db, _) = database().await;
    let cache = service::cache_layer(db).await.unwrap();
    let users = cache.repository::<entity_plain::users::Entity>().unwrap();
    let app = service::cached::router(&cache)
        .unwrap()
        .merge(service::metrics_endpoint::router(&cache));
    let addr = start(app).await;

    let (status, ada) = request(addr, "POST", "/users", r#"{"email": "m@b.c", "name": "M"}"#).await;
    assert_eq!(status, 201);
    let path = format!("/users/{}", ada["id"]);
    assert_eq!(request(addr, "GET", &path, "").await.0, 200); // a miss: loaded
    for _ in 0..2 {
        assert_eq!(request(addr, "GET", &path, "").await.0, 200); // hits
    }
    assert_eq!(
        request(addr, "PATCH", &path, r#"{"name": "M2"}"#).await.0,
        200
    );

    let (status, body) = request_text(addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    let metric = |series: &str| sample(&body, series);
    let stats = users.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.loads, stats.writes),
        (2, 1, 1, 2)
    );
    assert_eq!(metric(r#"sea_orm_cache_hits_total{entity="users"}"#), 2.0);
    assert_eq!(metric(r#"sea_orm_cache_misses_total{entity="users"}"#), 1.0);
    assert_eq!(metric(r#"sea_orm_cache_loads_total{entity="users"}"#), 1.0);
    assert_eq!(metric(r#"sea_orm_cache_writes_total{entity="users"}"#), 2.0);
    assert_eq!(
        metric(r#"sea_orm_cache_load_errors_total{entity="users"}"#),
        0.0
    );
    // The insert and the update each invalidated the key; only the update found it cached.
    assert_eq!(stats.local_invalidations, 2);
    assert_eq!(
        metric(r#"sea_orm_cache_invalidations_total{entity="users",origin="local"}"#),
        2.0
    );
    assert_eq!(
        metric(r#"sea_orm_cache_evictions_total{entity="users",cause="invalidated"}"#),
        1.0
    );
    assert_eq!(metric(r#"sea_orm_cache_entries{entity="users"}"#), 0.0);
    // The staleness sampler's series (default: 0.1% of hits; none of 2 hits sampled yet).
    let freshness = users.freshness().unwrap();
    assert_eq!(
        metric(r#"sea_orm_cache_effective_ttl_seconds{entity="users"}"#),
        freshness.effective_ttl.as_secs_f64()
    );
    assert_eq!(
        metric(r#"sea_orm_cache_samples_total{entity="users",outcome="stale"}"#),
        freshness.stale as f64
    );

    // A scrape publishes the figures as of the scrape.
    assert_eq!(request(addr, "GET", &path, "").await.0, 200); // the update invalidated: a miss
    assert_eq!(request(addr, "GET", &path, "").await.0, 200); // a hit
    let body = request_text(addr, "GET", "/metrics", "").await.1;
    assert_eq!(
        sample(&body, r#"sea_orm_cache_hits_total{entity="users"}"#),
        3.0
    );
    assert_eq!(
        sample(&body, r#"sea_orm_cache_misses_total{entity="users"}"#),
        2.0
    );
    assert_eq!(
        sample(&body, r#"sea_orm_cache_loads_total{entity="users"}"#),
        2.0
    );
    assert_eq!(
        sample(&body, r#"sea_orm_cache_entries{entity="users"}"#),
        1.0
    );
    cache.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_service_queries_on_every_read() {
    let (db, selects) = database().await;
    let addr = start(service::plain::router(db)).await;
    let (status, ada) = request(addr, "POST", "/users", r#"{"email": "a@b.c", "name": "A"}"#).await;
    assert_eq!(status, 201);
    let before = selects.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            request(addr, "GET", "/users/1", "").await,
            (200, ada.clone())
        );
    }
    assert_eq!(selects.load(Ordering::SeqCst) - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_answer_the_same() {
    let plain = start(service::plain::router(database().await.0)).await;
    let cache = service::cache_layer(database().await.0).await.unwrap();
    let cached = start(service::cached::router(&cache).unwrap()).await;
    let answers = script(plain).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [201, 200, 200, 200, 200, 204, 404, 404, 404]);
    assert_eq!(name(&answers[4].1), "Ada L.");
    assert_eq!(script(cached).await, answers);
}

/// The lines of `mod NAME { ... }` in the example, braces excluded.
fn module<'a>(source: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("pub(crate) mod {name} {{");
    source
        .lines()
        .skip_while(|line| *line != start)
        .skip(1)
        .take_while(|line| *line != "}")
        .collect()
}

/// The README's diff between the two modules, applied to `plain`, gives `cached`.
#[test]
fn readme_diff_matches_the_example() {
    let source = std::fs::read_to_string("examples/existing_service.rs").unwrap();
    let readme = std::fs::read_to_string("README.md").unwrap();
    let (plain, cached) = (module(&source, "plain"), module(&source, "cached"));
    assert!(!plain.is_empty() && !cached.is_empty());

    let section = readme
        .split_once("## Adding the cache to an existing service")
        .unwrap()
        .1;
    let diff = section
        .split_once("```diff\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;

    // Each hunk (hunks start with `@@`) replaces its old lines (context and `-`) with its new
    // lines (context and `+`), at the first match after the previous hunk.
    let mut patched: Vec<&str> = plain.clone();
    let mut from = 0;
    for hunk in diff.split("@@").filter(|h| !h.trim().is_empty()) {
        let lines: Vec<&str> = hunk.lines().skip(1).collect(); // the rest of the `@@` line
        let old: Vec<&str> = lines
            .iter()
            .filter(|l| !l.starts_with('+'))
            .map(|l| l.get(1..).unwrap_or(""))
            .collect();
        let new: Vec<&str> = lines
            .iter()
            .filter(|l| !l.starts_with('-'))
            .map(|l| l.get(1..).unwrap_or(""))
            .collect();
        let at = (from..=patched.len().saturating_sub(old.len()))
            .find(|&i| patched[i..i + old.len()] == old[..])
            .unwrap_or_else(|| panic!("README hunk not found in `mod plain`:\n{hunk}"));
        patched.splice(at..at + old.len(), new.iter().copied());
        from = at + new.len();
    }
    assert_eq!(patched, cached, "README diff applied to `mod plain`");
}
