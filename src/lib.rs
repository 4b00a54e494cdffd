//! # sea-orm-cache
//!
//! A per-entity cache policy in front of SeaORM: **cache-aside, read-through, write-through
//! and write-behind**, on one [quick_cache](https://docs.rs/quick_cache) store per entity.
//!
//! - Keys are the entity's primary-key type (`i64`, `(i64, i64)`, ...), values `Arc<Model>`.
//! - Concurrent misses on one key share one database load.
//! - A load that started before an invalidation of its key never lands in the cache.
//! - Entries expire after a TTL with jitter; "no such row" can be cached too (opt-in).
//! - A database error on a miss is returned and nothing is cached.
//!
//! Declare how an entity is cached where it is defined, with [`#[derive(Cached)]`](Cached)
//! and `#[cache(...)]`; build one [`CacheLayer`] per process over an existing
//! `DatabaseConnection`, register the entities to cache (the builder may override any
//! setting), and read and write through [`Repository<E>`]. The README says what each policy
//! promises.
//!
//! ```
//! use sea_orm::{ActiveValue::{Set, Unchanged}, ConnectionTrait, Database, Schema};
//! use sea_orm_cache::{CacheLayer, Policy};
//!
//! mod user {
//!     use sea_orm::entity::prelude::*;
//!     use sea_orm_cache::Cached;
//!
//!     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
//!     #[sea_orm(table_name = "users")]
//!     #[cache(policy = "read_through", ttl = "5m", ttl_jitter = "10%", negative_ttl = "30s")]
//!     pub struct Model {
//!         #[sea_orm(primary_key)]
//!         pub id: i64,
//!         #[sea_orm(unique)]
//!         pub email: String,
//!         pub name: String,
//!     }
//!
//!     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//!     pub enum Relation {}
//!
//!     impl ActiveModelBehavior for ActiveModel {}
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let db = Database::connect("sqlite::memory:").await?; // your existing connection
//!     let schema = Schema::new(db.get_database_backend());
//!     db.execute(&schema.create_table_from_entity(user::Entity)).await?;
//!
//!     let cache = CacheLayer::builder(db)
//!         .cached::<user::Entity>(|c| c) // the derive's settings; change any of them here
//!         .build()
//!         .await?;
//!     let users = cache.repository::<user::Entity>()?;
//!
//!     let ada = users
//!         .insert(user::ActiveModel {
//!             email: Set("ada@example.com".into()),
//!             name: Set("Ada".into()),
//!             ..Default::default()
//!         })
//!         .await?;
//!     assert_eq!(users.get(ada.id).await?.as_deref(), Some(&*ada)); // loaded, then cached
//!     assert_eq!(users.get(ada.id).await?.as_deref(), Some(&*ada)); // a hit: no query
//!
//!     users
//!         .update(user::ActiveModel {
//!             id: Unchanged(ada.id),
//!             name: Set("Ada Lovelace".into()),
//!             ..Default::default()
//!         })
//!         .await?; // invalidates the key: the next read reloads it
//!     assert_eq!(users.get(ada.id).await?.map(|u| u.name.clone()).as_deref(), Some("Ada Lovelace"));
//!
//!     assert!(users.get(404).await?.is_none()); // "no such row", cached for 30 s
//!     assert!(users.get(404).await?.is_none()); // answered from the cache
//!
//!     let stats = users.stats();
//!     assert_eq!((stats.hits, stats.negative_hits, stats.loads), (1, 1, 3));
//!     assert_eq!(cache.repository::<user::Entity>()?.stats().hits, 1); // one store per entity
//!     cache.shutdown().await?; // applies pending write-behind writes, stops background tasks
//!     Ok(())
//! }
//! ```
//!
//! The derive is optional. Any SeaORM entity can be cached, one from an entity crate that
//! does not depend on this library included (as `sea-orm-cli generate entity` writes them):
//! [`CacheLayerBuilder::entity`] registers it from the default configuration, and
//! [`CacheLayerBuilder::write_behind`] registers it under write-behind (its `Model` must then
//! implement serde's `Serialize` and `Deserialize`, for the outbox).
//! [`CacheLayerBuilder::cached`] starts from what `#[derive(Cached)]` declares
//! ([`CachedEntity`]). A service may also read entity configurations from its own config file:
//! [`CacheConfig`] implements serde's `Deserialize`, and [`CacheLayerBuilder::entity_config`]
//! applies one. Registering an entity twice is an error from `build()`
//! ([`Error::DuplicateEntity`]), and so is asking `repository::<E>()` for an entity never
//! registered ([`Error::NotRegistered`]).
//!
//! Write-behind writes are durable once acknowledged: each is a committed row of the outbox
//! table ([`outbox`]), applied to the entity's table later by a background flusher, resumed by
//! the next start after a crash, and read before the table on a miss (on every instance).
//!
//! Several instances on one database keep each other's entries coherent ([`Coherence`], on by
//! default on Postgres, MySQL/MariaDB and file SQLite): every write made through a layer adds
//! rows to an invalidation log table in the writing transaction, and every layer tails that
//! log and drops what other instances changed, woken by `NOTIFY` on Postgres and polling
//! elsewhere. Writes that bypass the layer (`psql`, another service) reach the log through
//! opt-in database triggers ([`triggers`], [`Capture::Triggers`]); without them such an entry
//! stays until its TTL, and the staleness sampler measures how often that is served
//! ([`Repository::freshness`]).

#![deny(missing_docs)]

mod background;
mod cached;
mod clock;
mod coherence;
mod config;
mod connection;
mod either_connection;
mod entity_cache;
mod entity_table;
mod error;
mod freshness;
mod hit_counter;
pub mod hooks;
mod invalidation;
mod key;
mod key_locks;
mod key_text;
mod layer;
mod metrics_export;
#[cfg(feature = "migration")]
pub mod migration;
pub mod outbox;
mod own_pool;
mod policy;
mod repository;
mod retry;
mod sampler_counters;
mod spans;
mod sql;
mod stats;
mod store;
mod tasks;
pub mod triggers;
mod write_on;

pub use cached::{CachedEntity, ModelCodec};
pub use clock::Clock;
pub use coherence::{Coherence, CoherenceStats, INVALIDATION_TABLE};
pub use config::{
    CacheConfig, Capture, DEFAULT_MIN_TTL, FreshnessConfig, OverBudget, Policy, WriteBehindConfig,
};
pub use connection::{CachedConnection, CachedStream, CachedTransaction};
pub use either_connection::CachedConnectionTrait;
pub use error::{Error, InvalidSetting, Result};
pub use freshness::Freshness;
pub use key::{CacheableEntity, KeyOf, KeyTextError, key_from_text, key_text};
pub use layer::{CacheLayer, CacheLayerBuilder, METRICS_INTERVAL, SHUTDOWN_DEADLINE};
pub use repository::{Get, Repository};
pub use stats::CacheStats;

#[doc(inline)]
pub use sea_orm_cache_macros::Cached;

/// The names most programs need: `use sea_orm_cache::prelude::*;`.
pub mod prelude {
    pub use crate::{
        CacheConfig, CacheLayer, CacheStats, CacheableEntity, Cached, CachedEntity,
        Error as CacheError, Policy, Repository, WriteBehindConfig,
    };
}
