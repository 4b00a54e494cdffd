//! Criterion benchmarks of the read path: a repository hit, a read-through miss, and a bare
//! quick_cache `get` for comparison. In-memory SQLite, `users` entity, read-through.
//!
//! Run with `cargo bench --bench hit_miss`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_main};
use entity::user;
use migration::{Migrator, MigratorTrait};
use quick_cache::sync::Cache;
use sea_orm::{ActiveValue::Set, Database, EntityTrait};
use sea_orm_cache::{CacheLayer, Policy, Repository};
use tokio::runtime::Runtime;

/// The key every benchmark reads.
const KEY: i64 = 1;

/// An in-memory database with one user, and a read-through layer in front of it.
async fn setup() -> Result<(CacheLayer, Repository<user::Entity>), Box<dyn std::error::Error>> {
    let db = Database::connect("sqlite::memory:").await?;
    Migrator::up(&db, None).await?;
    user::Entity::insert(user::ActiveModel {
        id: Set(KEY),
        email: Set("ada@example.com".to_owned()),
        name: Set("Ada".to_owned()),
        bio: Set("Writes about caches.".to_owned()),
        updated_at: Set(0),
    })
    .exec(&db)
    .await?;
    let cache = CacheLayer::builder(db)
        .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await?;
    let users = cache.repository::<user::Entity>()?;
    users.get(KEY).await?.ok_or("user 1 exists")?; // warm the key
    Ok((cache, users))
}

fn hit_miss(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let (cache, users) = rt.block_on(setup()).expect("benchmark setup");

    c.bench_function("hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(users.get(black_box(KEY)).await) });
    });

    c.bench_function("miss", |b| {
        b.to_async(&rt).iter(|| async {
            users.invalidate(KEY);
            black_box(users.get(black_box(KEY)).await)
        });
    });

    let model = rt
        .block_on(users.get(KEY))
        .expect("load user 1")
        .expect("user 1 exists");
    let raw: Cache<i64, Arc<user::Model>> = Cache::new(10_000);
    raw.insert(KEY, model);
    c.bench_function("raw_quick_cache_get", |b| {
        b.iter(|| black_box(raw.get(black_box(&KEY))));
    });

    rt.block_on(cache.shutdown()).expect("shutdown");
}

/// The benchmark group (written out instead of `criterion_group!`, whose function has no docs).
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    hit_miss(&mut criterion);
}

criterion_main!(benches);
