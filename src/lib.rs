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
//! Build one [`CacheLayer`] per process over an existing `DatabaseConnection`, register the
//! entities to cache with their [`CacheConfig`], and read and write through
//! [`Repository<E>`]. See [`CacheLayer`] for a complete example and the README for what each
//! policy promises.
//!
//! This release keeps write-behind writes in memory until they are flushed: they are
//! applied on [`CacheLayer::shutdown`], but a crash loses what was not flushed yet.

mod clock;
mod config;
mod error;
mod key;
mod layer;
mod policy;
mod repository;
mod stats;
mod store;

pub use clock::Clock;
pub use config::{CacheConfig, Policy, WriteBehindConfig};
pub use error::{Error, Result};
pub use key::{CacheableEntity, KeyOf};
pub use layer::{CacheLayer, CacheLayerBuilder};
pub use repository::{Get, Repository};
pub use stats::CacheStats;

/// The names most programs need: `use sea_orm_cache::prelude::*;`.
pub mod prelude {
    pub use crate::{
        CacheConfig, CacheLayer, CacheStats, CacheableEntity, Error as CacheError, Policy,
        Repository, WriteBehindConfig,
    };
}
