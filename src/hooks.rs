//! Helpers for a user's own `ActiveModelBehavior` impl, for writes that do not go through
//! [`CachedConnection`].
//!
//! SeaORM runs `after_save` and `after_delete` right after the statement, *before* the
//! transaction (if any) commits, and gives the hook nothing to register an on-commit
//! callback with. So the helpers invalidate (or quarantine) the key in this process at once
//! and, with coherence on (DESIGN G8), add it to the invalidation log **on the connection the
//! write ran on**, so inside a transaction the log row commits with the write. What they
//! guarantee depends on that connection:
//!
//! | Connection passed to the hook | What the helper does | Guarantee |
//! |---|---|---|
//! | [`CachedConnection`] or [`CachedTransaction`] | nothing: the connection saw the statement, invalidates the key after the commit and writes its log row | exact: after commit, never on rollback |
//! | `DatabaseConnection` (autocommit) | invalidates the key at once (the statement has committed), then inserts its log row | exact here; other instances within the coherence bound, unless the process dies between the write and the log insert (then by TTL) |
//! | `DatabaseTransaction`, or any other connection | invalidates the key, quarantines it for the entity's `fill_quarantine` ([`QUARANTINE`] unless configured), and inserts its log row in that transaction | with coherence on, exact within the coherence bound after the commit, in every instance this one included (the row's origin is no instance's, so this instance's tailer applies it too); a rollback removes the row and only costs a reload. With coherence off, exact only if the transaction commits within the quarantine; otherwise a read between the quarantine's end and the commit may cache the old row until its TTL |
//!
//! No log row is written for an entity whose changes database triggers capture (their
//! trigger writes it), nor when no layer of the process has coherence on.
//!
//! The helpers tell these apart by the exact type of the connection `C` (its `TypeId`), never
//! by its name: any other type, a service's own wrapper around one of these (whatever it is
//! called), a `DatabaseExecutor` or a migration's `SchemaManagerConnection` included, is
//! "any other connection".
//!
//! ```
//! use sea_orm::entity::prelude::*;
//!
//! #[derive(Clone, Debug, PartialEq, DeriveEntityModel, sea_orm_cache::Cached)]
//! #[sea_orm(table_name = "notes")]
//! pub struct Model {
//!     #[sea_orm(primary_key)]
//!     pub id: i64,
//!     pub text: String,
//! }
//!
//! #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//! pub enum Relation {}
//!
//! #[async_trait::async_trait]
//! impl ActiveModelBehavior for ActiveModel {
//!     async fn after_save<C: ConnectionTrait>(model: Model, db: &C, _insert: bool) -> Result<Model, DbErr> {
//!         sea_orm_cache::hooks::after_save::<Entity, C>(&model, db).await?;
//!         Ok(model)
//!     }
//!
//!     async fn after_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
//!         sea_orm_cache::hooks::after_delete::<Entity, C>(&self, db).await?;
//!         Ok(self)
//!     }
//! }
//! ```

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use sea_orm::sea_query::IntoValueTuple;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use crate::connection::{CachedConnection, CachedTransaction};

use crate::coherence::HOOK_ORIGIN;
use crate::entity_cache::EntityCache;
use crate::invalidation::LogEntry;
use crate::key::{CacheableEntity, KeyOf, key_of_active_model, key_of_model, key_text};

pub use crate::config::QUARANTINE;

type Registered = (TypeId, Weak<dyn Any + Send + Sync>);

/// Every live entity cache in the process, so a hook can reach the ones holding its entity.
static CACHES: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

/// Makes `cache` reachable from the hooks.
pub(crate) fn register<E: CacheableEntity>(cache: &Arc<EntityCache<E>>) {
    let weak: Weak<dyn Any + Send + Sync> = Arc::downgrade(cache) as _;
    let mut caches = CACHES.lock().unwrap_or_else(PoisonError::into_inner);
    caches.retain(|(_, weak)| weak.strong_count() > 0);
    caches.push((TypeId::of::<E>(), weak));
}

fn caches_of<E: CacheableEntity>() -> Vec<Arc<EntityCache<E>>> {
    CACHES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(type_id, _)| *type_id == TypeId::of::<E>())
        .filter_map(|(_, weak)| weak.upgrade()?.downcast::<EntityCache<E>>().ok())
        .collect()
}

/// Where a write ran, as far as the hook can tell from the connection's type.
enum Ran {
    /// Through the cache layer's own connection, which handles it.
    Layer,
    /// Autocommit: the statement has committed.
    Committed,
    /// A transaction the layer cannot see commit.
    Unseen,
}

/// Where a write on connection type `C` ran, by `C`'s exact type (so a type of the caller's
/// that happens to share a name with one of these is `Unseen`). `C` need not be `'static`
/// (SeaORM's hooks do not require it): `typeid::of` gives the `TypeId` of `C` with its
/// lifetimes made `'static`, which equals the `TypeId` of a type without lifetime parameters
/// only when `C` is that type.
fn ran_on<C: ?Sized>() -> Ran {
    let id = typeid::of::<C>();
    if id == TypeId::of::<CachedConnection>() || id == TypeId::of::<CachedTransaction>() {
        Ran::Layer
    } else if id == TypeId::of::<DatabaseConnection>() {
        Ran::Committed
    } else {
        Ran::Unseen
    }
}

async fn invalidate<E: CacheableEntity, C: ConnectionTrait>(
    db: &C,
    key: KeyOf<E>,
) -> Result<(), DbErr> {
    let ran = ran_on::<C>();
    if matches!(ran, Ran::Layer) {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let mut journal = None;
    for cache in caches_of::<E>() {
        // A layer on another kind of database cannot hold this row.
        if cache.db.get_database_backend() != backend {
            continue;
        }
        match ran {
            Ran::Committed => cache.store.invalidate(&key),
            _ => cache
                .store
                .quarantine(&key, cache.config.fill_quarantine.as_millis() as u64),
        }
        // Triggers write the row of a captured entity's write themselves.
        if journal.is_none()
            && let Some(logging) = cache.journal.as_ref().filter(|j| !j.captures(cache.name))
        {
            journal = Some((logging.clone(), cache.name));
        }
    }
    let Some((journal, entity)) = journal else {
        return Ok(());
    };
    let entry = LogEntry {
        entity,
        key: Some(key_text(key.into_value_tuple())),
    };
    journal.write_as(db, [&entry], HOOK_ORIGIN).await
}

/// Call from `ActiveModelBehavior::after_save`: invalidates the saved row's key in every
/// cache layer of the process on the same kind of database and, with coherence on, adds the
/// key to the invalidation log on `db`, as the [module docs](self) describe for the
/// connection `db`.
///
/// # Errors
/// The database's, from the log insert; return it from the hook, so that a write inside a
/// transaction does not commit without its log row.
pub async fn after_save<E: CacheableEntity, C: ConnectionTrait>(
    model: &E::Model,
    db: &C,
) -> Result<(), DbErr> {
    invalidate::<E, C>(db, key_of_model::<E>(model)).await
}

/// Call from `ActiveModelBehavior::after_delete`, as [`after_save`].
///
/// # Errors
/// As [`after_save`].
pub async fn after_delete<E: CacheableEntity, C: ConnectionTrait>(
    active_model: &E::ActiveModel,
    db: &C,
) -> Result<(), DbErr> {
    match key_of_active_model::<E>(active_model) {
        Some(key) => invalidate::<E, C>(db, key).await,
        None => Ok(()),
    }
}
