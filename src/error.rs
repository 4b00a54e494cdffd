//! The crate's one error type.

use sea_orm::DbErr;

/// Everything that can go wrong in sea-orm-cache.
///
/// Database errors pass through unchanged as [`Error::Db`]; `From<Error> for DbErr` lets `?`
/// work inside existing SeaORM code.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database returned an error. Nothing was cached.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// `repository::<E>()` was asked for an entity the layer was not built with.
    #[error(
        "entity `{entity}` is not registered with this CacheLayer; add `.entity::<E>(..)` to the builder"
    )]
    NotRegistered {
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
    /// An update addressed a row that does not exist.
    #[error("entity `{entity}`: no row with that primary key")]
    NotFound {
        /// Table name of the entity.
        entity: &'static str,
    },
    /// A repository write inside a transaction on a write-behind entity. The in-memory
    /// write-behind queue cannot commit or roll back with the caller's transaction; the
    /// durable outbox will.
    #[error(
        "entity `{entity}` uses write-behind, whose writes cannot join a transaction yet; write outside the transaction, or use write-through for this entity"
    )]
    WriteBehindInTransaction {
        /// Table name of the entity.
        entity: &'static str,
    },
    /// The layer was shut down; write-behind writes are no longer accepted.
    #[error("the cache layer is shut down")]
    Shutdown,
}

impl From<Error> for DbErr {
    fn from(err: Error) -> Self {
        match err {
            Error::Db(db) => db,
            other => DbErr::Custom(other.to_string()),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
