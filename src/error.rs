//! The crate's one error type.

use sea_orm::DbErr;

/// Everything that can go wrong in sea-orm-cache.
///
/// Database errors pass through unchanged as [`Error::Db`]; `From<Error> for DbErr` lets `?`
/// work inside existing SeaORM code ([`Error::NotFound`] becomes `DbErr::RecordNotUpdated`,
/// as SeaORM reports an update of a missing row; other errors `DbErr::Custom`).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database returned an error. Nothing was cached.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// `repository::<E>()` was asked for an entity the layer was not built with.
    #[error(
        "entity `{entity}` is not registered with this CacheLayer; add `.entity::<E>(..)` (or `.cached`, `.write_behind`, `.entity_config`) to the builder"
    )]
    NotRegistered {
        /// Table name of the entity.
        entity: &'static str,
    },
    /// The builder registered one entity more than once (`build()` refuses it rather than pick
    /// one of the configurations).
    #[error("entity `{entity}` is registered twice with this CacheLayer's builder")]
    DuplicateEntity {
        /// Table name of the entity.
        entity: &'static str,
    },
    /// `get` was called on a cache-aside entity, which never loads by itself.
    #[error(
        "entity `{entity}` uses the cache-aside policy: call `get_or_load(key, loader)` or `peek(key)` instead of `get`"
    )]
    LoaderRequired {
        /// Table name of the entity.
        entity: &'static str,
    },
    /// A write needs the primary key but the ActiveModel does not set every key column.
    #[error("entity `{entity}`: the ActiveModel does not set its primary key")]
    MissingPrimaryKey {
        /// Table name of the entity.
        entity: &'static str,
    },
    /// An update (`update`, `update_with`) addressed a row that does not exist: the same error
    /// under every policy. Nothing was written or cached.
    #[error("entity `{entity}`: no row with that primary key")]
    NotFound {
        /// Table name of the entity.
        entity: &'static str,
    },
    /// A write-behind entity registered without an outbox codec: with `.entity::<E>(..)` or
    /// `.entity_config::<E>(..)`, or with `.cached::<E>(..)` whose `#[derive(Cached)]` does not
    /// declare write-behind; `build` refuses it.
    #[error(
        "entity `{entity}` cannot use write-behind without an outbox codec: register it with `.write_behind::<E>(..)` (its Model must implement serde's Serialize and Deserialize)"
    )]
    NotSerializable {
        /// Table name of the entity.
        entity: &'static str,
    },
    /// An entity's configuration has a setting out of range ([`CacheConfig::validate`](crate::CacheConfig::validate));
    /// reported by `build`, which builds nothing then.
    #[error("entity `{entity}`: invalid cache configuration: {source}")]
    InvalidConfig {
        /// Table name of the entity.
        entity: &'static str,
        /// The setting, and what is wrong with it.
        source: InvalidSetting,
    },
    /// An entity captures its changes with database triggers
    /// ([`Capture::Triggers`](crate::Capture::Triggers)) but they are not installed; `build`
    /// refuses it, since the layer would log none of the entity's writes.
    #[error(
        "entity `{entity}` captures its changes with triggers, but they are not installed: call `CacheLayerBuilder::install_triggers()` or install them from a migration with `sea_orm_cache::triggers::for_entity`"
    )]
    TriggersMissing {
        /// Table name of the entity.
        entity: String,
    },
    /// A model could not be encoded for the outbox; the write was not acknowledged.
    #[error("entity `{entity}`: the model does not encode for the outbox: {reason}")]
    Encode {
        /// Table name of the entity.
        entity: &'static str,
        /// The codec's message.
        reason: String,
    },
    /// A pending outbox row no longer decodes; the flusher moves it to the dead-letter table.
    #[error("entity `{entity}`: outbox row {outbox_id} does not decode: {reason}")]
    Decode {
        /// Table name of the entity.
        entity: &'static str,
        /// The outbox row's id.
        outbox_id: i64,
        /// The codec's message.
        reason: String,
    },
    /// A write-behind entity's outbox table cannot be read when the layer is built.
    #[error(
        "entity `{entity}` uses write-behind, but the outbox table cannot be read: {source}; add `sea_orm_cache::migration::OutboxMigration` (feature `migration`) or `sea_orm_cache::outbox::create_tables` to your migrator, or call `CacheLayerBuilder::create_outbox_tables()`"
    )]
    OutboxUnavailable {
        /// Table name of the entity.
        entity: &'static str,
        /// The database's error.
        source: DbErr,
    },
    /// Coherence is on, but the invalidation log table cannot be read.
    #[error(
        "coherence is on, but the invalidation log table `sea_orm_cache_invalidation` cannot be read: {source}; add `sea_orm_cache::migration::OutboxMigration` (feature `migration`) or `sea_orm_cache::outbox::create_tables` to your migrator, or call `CacheLayerBuilder::create_outbox_tables()`"
    )]
    LogUnavailable {
        /// The database's error.
        source: DbErr,
    },
    /// A write-behind write's outbox row would not fit the outbox table: its key's text
    /// (`pk`, a JSON array of the key's values) or its payload (the model as JSON) is longer
    /// than the column holds. The write was refused before anything was written, so it was
    /// not acknowledged; nothing was truncated.
    #[error(
        "entity `{entity}`: the write-behind outbox row's `{column}` is {len} {unit}, more than the outbox table's column holds ({max} {unit}); the write was not acknowledged. Tables from an older version hold less: run `sea_orm_cache::outbox::create_tables` (or `CacheLayerBuilder::create_outbox_tables()`), which upgrades them (`pk` holds 512 characters, `payload` any model on MySQL/MariaDB), use a shorter key or a smaller model, or cache this entity with another policy"
    )]
    OutboxRowTooLarge {
        /// Table name of the entity.
        entity: &'static str,
        /// The outbox column: `"pk"` or `"payload"`.
        column: &'static str,
        /// The value's length, in `unit`.
        len: u64,
        /// What the column holds, in `unit`.
        max: u64,
        /// `"characters"` or `"bytes"`.
        unit: &'static str,
    },
    /// `shutdown` gave up before the outbox drained; the rows stay for the next start.
    #[error(
        "entity `{entity}`: {pending} write-behind rows were still failing at shutdown; they stay in the outbox and are retried on the next start"
    )]
    ShutdownIncomplete {
        /// Table name of the entity.
        entity: &'static str,
        /// Outbox rows left.
        pending: usize,
    },
    /// The layer was shut down; write-behind writes are no longer accepted.
    #[error("the cache layer is shut down")]
    Shutdown,
}

impl From<Error> for DbErr {
    fn from(err: Error) -> Self {
        match err {
            Error::Db(db) => db,
            // What SeaORM itself returns for an update of a missing row, so a service's
            // existing handling of it keeps working through `?`.
            Error::NotFound { .. } => DbErr::RecordNotUpdated,
            other => DbErr::Custom(other.to_string()),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A setting with a value that makes no sense, found by [`CacheConfig::validate`](crate::CacheConfig::validate).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("`{setting}` {reason}")]
#[non_exhaustive]
pub struct InvalidSetting {
    /// The setting, as a config file names it (`ttl_jitter`, `write_behind.batch`).
    pub setting: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}
