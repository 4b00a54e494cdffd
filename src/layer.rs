//! [`CacheLayer`]: one per process, in front of an existing `DatabaseConnection`.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;

use sea_orm::{
    AccessMode, DatabaseConnection, DbErr, IsolationLevel, TransactionError, TransactionTrait,
};

use crate::background::{BackgroundRuntime, OnBackground};
use crate::cached::{CachedEntity, ModelCodec};
use crate::clock::Clock;
use crate::coherence::{Coherence, CoherenceStats, Journal, Tailer};
use crate::config::{CacheConfig, Capture, Policy};
use crate::connection::{CachedConnection, CachedTransaction};
use crate::entity_cache::EntityCache;
use crate::entity_table::EntityTable;
use crate::error::{Error, Result};
use crate::invalidation::Tables;
use crate::key::CacheableEntity;
use crate::metrics_export::{self, EntityMetrics};
use crate::own_pool::MetricCallback;
use crate::repository::Repository;
use crate::tasks::Tasks;
use crate::triggers::Triggers;

/// How long [`CacheLayer::shutdown`] keeps flushing write-behind writes before it gives up
/// (the rows stay in the outbox for the next start), unless
/// [`CacheLayerBuilder::shutdown_deadline`] says otherwise.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// How often the layer publishes its metrics ([`CacheLayer::publish_metrics`]) in the
/// background, unless [`CacheLayerBuilder::metrics_interval`] says otherwise.
pub const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// What the layer does to every entity without knowing its type: checks before its
/// background work starts, the steps of [`CacheLayer::shutdown`] around stopping that work,
/// and [`CacheLayer::invalidate_all`].
#[async_trait]
trait Background: Send + Sync {
    /// Checks, at build, what the background work needs (the outbox table).
    async fn check(&self) -> Result<()>;
    /// Refuses write-behind writes from now on: shutdown's first step, and the layer's drop.
    fn stop(&self);
    /// Shutdown's final flush of write-behind writes, once the tasks have stopped.
    async fn drain(&self, deadline: tokio::time::Instant) -> Result<()>;
    /// Drops every entry of the entity.
    fn invalidate_all(&self);
    /// Whether the entity has background work the application's load must not delay (a
    /// write-behind flusher).
    fn needs_thread(&self) -> bool;
    /// Runs that work on `on` (the layer's thread and own connections), before it starts.
    fn run_on(&self, on: &Arc<OnBackground>);
}

#[async_trait]
impl<E: CacheableEntity> Background for EntityCache<E> {
    async fn check(&self) -> Result<()> {
        match &self.queue {
            Some(queue) => queue.check().await,
            None => Ok(()),
        }
    }

    fn stop(&self) {
        if let Some(queue) = &self.queue {
            queue.stop();
        }
    }

    async fn drain(&self, deadline: tokio::time::Instant) -> Result<()> {
        match &self.queue {
            Some(queue) => queue.drain(deadline).await,
            None => Ok(()),
        }
    }

    fn invalidate_all(&self) {
        self.store.invalidate_all();
    }

    fn needs_thread(&self) -> bool {
        self.queue.is_some()
    }

    fn run_on(&self, on: &Arc<OnBackground>) {
        if let Some(queue) = &self.queue {
            queue.run_on(on.clone());
        }
    }
}

/// Starts a registered entity's background work (and its save hooks), once `build` has
/// checked everything.
type Start = Box<dyn FnOnce(&Tasks) + Send>;

struct Registered {
    cache: Arc<dyn Any + Send + Sync>,
    background: Arc<dyn Background>,
    metrics: Arc<dyn EntityMetrics>,
    /// The entity's triggers, when its changes are captured by them.
    triggers: Option<Triggers>,
    /// Whether the layer stops logging the entity's keys (triggers capture it and it is not
    /// write-behind, whose log rows announce writes the table does not hold yet).
    trigger_logged: bool,
}

type Register = Box<
    dyn FnOnce(
            &DatabaseConnection,
            &Clock,
            Option<&Arc<Journal>>,
            &mut Tables,
        ) -> Result<(Registered, Start)>
        + Send,
>;

/// One `entity` / `cached` / `write_behind` call, run at `build`.
struct Registration {
    id: TypeId,
    name: &'static str,
    register: Register,
}

/// Builds a [`CacheLayer`]; from [`CacheLayer::builder`].
#[must_use]
pub struct CacheLayerBuilder {
    db: DatabaseConnection,
    create_outbox_tables: bool,
    install_triggers: bool,
    clock: Option<Clock>,
    shutdown_deadline: Duration,
    /// `None`: on, except on an in-memory SQLite database.
    coherence: Option<Coherence>,
    metrics_interval: Option<Duration>,
    /// SeaORM's metric callback for the layer's own connections.
    metric_callback: Option<MetricCallback>,
    entities: Vec<Registration>,
}

impl fmt::Debug for CacheLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayerBuilder")
            .field("entities", &self.entities.len())
            .finish_non_exhaustive()
    }
}

impl CacheLayerBuilder {
    /// Caches entity `E`, any SeaORM entity (one from an entity crate that knows nothing of
    /// this library included); `configure` receives [`CacheConfig::default`] and returns the
    /// configuration to use. Write-behind needs the outbox codec, which this method cannot
    /// supply: register a write-behind entity with [`write_behind`](Self::write_behind)
    /// ([`build`](Self::build) refuses one registered here, [`Error::NotSerializable`]).
    ///
    /// ```no_run
    /// # async fn demo(db: sea_orm::DatabaseConnection) -> sea_orm_cache::Result<()> {
    /// use std::time::Duration;
    /// use sea_orm_cache::{CacheLayer, Policy};
    /// let cache = CacheLayer::builder(db)
    ///     .entity::<entity::user::Entity>(|c| c.policy(Policy::WriteThrough).ttl(Duration::from_secs(60)))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn entity<E: CacheableEntity>(
        self,
        configure: impl FnOnce(CacheConfig) -> CacheConfig + Send + 'static,
    ) -> Self {
        self.register::<E>(move || (configure(CacheConfig::default()), None))
    }

    /// Caches entity `E` under write-behind: like [`entity`](Self::entity), with
    /// `configure` receiving [`CacheConfig::default`] set to [`Policy::WriteBehind`], and the
    /// JSON outbox codec, which is why `E::Model` must implement serde's `Serialize` and
    /// `Deserialize` (a compile error otherwise; `sea-orm-cli generate entity --with-serde
    /// both` writes such models).
    pub fn write_behind<E>(
        self,
        configure: impl FnOnce(CacheConfig) -> CacheConfig + Send + 'static,
    ) -> Self
    where
        E: CacheableEntity,
        E::Model: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.register::<E>(move || {
            let config = configure(CacheConfig::default().policy(Policy::WriteBehind));
            (config, Some(ModelCodec::json()))
        })
    }

    /// Caches entity `E` starting from the configuration its `#[derive(Cached)]` declares
    /// ([`CachedEntity::cache_config`], and its outbox codec when it declares write-behind);
    /// `configure` overrides it setting by setting.
    ///
    /// ```no_run
    /// # async fn demo(db: sea_orm::DatabaseConnection) -> sea_orm_cache::Result<()> {
    /// use std::time::Duration;
    /// use sea_orm_cache::CacheLayer;
    /// let cache = CacheLayer::builder(db)
    ///     .cached::<entity::user::Entity>(|c| c.ttl(Duration::from_secs(60))) // the derive's, TTL changed
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cached<E: CacheableEntity + CachedEntity>(
        self,
        configure: impl FnOnce(CacheConfig) -> CacheConfig + Send + 'static,
    ) -> Self {
        self.register::<E>(move || (configure(E::cache_config()), E::model_codec()))
    }

    /// Caches entity `E` with exactly `config` (for a configuration read from a config file:
    /// `CacheConfig` implements serde's `Deserialize`, and [`CacheConfig::overlay`] reads one
    /// over a derive's). As [`entity`](Self::entity): no outbox codec.
    pub fn entity_config<E: CacheableEntity>(self, config: CacheConfig) -> Self {
        self.entity::<E>(move |_| config)
    }

    fn register<E: CacheableEntity>(
        mut self,
        config: impl FnOnce() -> (CacheConfig, Option<ModelCodec<E::Model>>) + Send + 'static,
    ) -> Self {
        let register: Register = Box::new(move |db, clock, journal, tables| {
            let (config, codec) = config();
            let triggers = match config.capture {
                Capture::Triggers => Some(crate::triggers::for_entity::<E>()?),
                _ => None,
            };
            let trigger_logged = triggers.is_some() && config.policy != Policy::WriteBehind;
            let cache = Arc::new(EntityCache::<E>::new(
                db.clone(),
                config,
                clock.clone(),
                codec,
                journal.cloned(),
            )?);
            tables.insert(cache.name, Arc::new(EntityTable(cache.clone())));
            let start: Start = {
                let cache = cache.clone();
                Box::new(move |tasks: &Tasks| {
                    cache.start(tasks);
                    crate::hooks::register(&cache);
                })
            };
            let registered = Registered {
                cache: cache.clone(),
                background: cache.clone(),
                metrics: cache,
                triggers,
                trigger_logged,
            };
            Ok((registered, start))
        });
        self.entities.push(Registration {
            id: TypeId::of::<E>(),
            name: sea_orm::EntityName::table_name(&E::default()),
            register,
        });
        self
    }

    /// Creates the write-behind outbox and dead-letter tables at [`build`](Self::build) if
    /// they do not exist (and upgrades tables an older version created), for services
    /// without migrations; every start may call it. Services with a migrator call
    /// [`outbox::create_tables`](crate::outbox::create_tables) from it instead (as
    /// `sea_orm_cache::migration::OutboxMigration`, feature `migration`, does).
    pub fn create_outbox_tables(mut self) -> Self {
        self.create_outbox_tables = true;
        self
    }

    /// Installs the database triggers of every entity whose configuration captures its
    /// changes with them ([`Capture::Triggers`]) at [`build`](Self::build), after creating the
    /// outbox tables if asked; installing triggers that exist is a no-op, so every start may
    /// call it. For services without migrations; with a migrator, install them from a
    /// migration ([`triggers::for_entity`](crate::triggers::for_entity)). Without either,
    /// `build` refuses a captured entity whose triggers are missing
    /// ([`Error::TriggersMissing`]), with coherence on.
    pub fn install_triggers(mut self) -> Self {
        self.install_triggers = true;
        self
    }

    /// Uses `clock` for expiry instead of real time; pass [`Clock::manual`] in tests.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How this layer's caches are kept right when other instances write the same database
    /// ([`Coherence`]). Unless set: on ([`Coherence::default`]), except on an in-memory
    /// SQLite database, which only this process can open. On, the invalidation log table
    /// must exist: created by [`create_outbox_tables`](Self::create_outbox_tables) or the
    /// library's migration ([`Error::LogUnavailable`] from `build` otherwise).
    /// [`Coherence::off`] for a single-instance deployment.
    pub fn coherence(mut self, coherence: Coherence) -> Self {
        self.coherence = Some(coherence);
        self
    }

    /// How long [`CacheLayer::shutdown`] keeps flushing write-behind writes before it gives
    /// up (default [`SHUTDOWN_DEADLINE`]).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
        self
    }

    /// How often a background task publishes the layer's metrics
    /// ([`CacheLayer::publish_metrics`]): every `interval` (default [`METRICS_INTERVAL`], one
    /// second) until the layer is shut down or dropped. `None` (or a zero interval) starts no
    /// task: for a service that publishes when it is scraped, calling `publish_metrics` from
    /// its metrics endpoint, or that does not use metrics.
    pub fn metrics_interval(mut self, interval: Option<Duration>) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// SeaORM's metric callback (as `DatabaseConnection::set_metric_callback` takes) for the
    /// statements the layer runs on connections of its own: the invalidation log tailer's
    /// and the write-behind flushers', which run on a small pool the layer opens with the
    /// options of the connection it was given (so they never wait behind the application's
    /// queries for one of its connections), on a thread of the layer's own. Pass the
    /// callback the application's connection has, to see every statement in one place. By
    /// default those statements are reported to no callback. An in-memory SQLite database
    /// keeps one pool (another connection would open another database), whose callback is the
    /// application's.
    pub fn metric_callback<F>(mut self, callback: F) -> Self
    where
        F: Fn(&sea_orm::metric::Info<'_>) + Send + Sync + 'static,
    {
        self.metric_callback = Some(Arc::new(callback));
        self
    }

    /// Creates every entity's store, checks what the configuration needs, and then starts
    /// the background work (write-behind writers and flushers, which first resume the rows
    /// the outbox already holds; freshness samplers; the invalidation log tailer and, on
    /// Postgres, its listener; the metrics publisher). The flushers, the tailer and the
    /// listener run on a thread of the layer's own (`sea-orm-cache`, started only when there
    /// is such work) with a small pool of its own, opened with the given connection's options
    /// (see [`metric_callback`](Self::metric_callback)), so the application's load neither
    /// delays them nor takes their connections; the rest runs on the caller's runtime. A
    /// build that fails has started none of it (a thread it started ends with it). Must run
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::DuplicateEntity`] if an entity was registered twice;
    /// [`Error::NotSerializable`] for a write-behind entity without an outbox codec;
    /// [`Error::OutboxUnavailable`] if a write-behind entity's outbox table cannot be read;
    /// [`Error::Db`] if creating the outbox tables or installing triggers failed;
    /// [`Error::TriggersMissing`] for an entity captured by triggers that are not installed
    /// (with coherence on, without [`install_triggers`](Self::install_triggers));
    /// [`Error::InvalidConfig`] for one whose key triggers cannot write; [`Error::Db`] if
    /// the layer's thread could not be started.
    pub async fn build(self) -> Result<CacheLayer> {
        let clock = self.clock.unwrap_or_else(Clock::system);
        if self.create_outbox_tables {
            crate::outbox::create_tables(&self.db).await?;
        }
        for (i, registration) in self.entities.iter().enumerate() {
            if self.entities[..i].iter().any(|r| r.id == registration.id) {
                return Err(Error::DuplicateEntity {
                    entity: registration.name,
                });
            }
        }
        let in_memory = crate::coherence::in_memory_sqlite(&self.db).await?;
        let coherence = match self.coherence {
            Some(coherence) => coherence,
            None if in_memory => Coherence::off(),
            None => Coherence::default(),
        };
        let journal = coherence.enabled.then(|| Arc::new(Journal::new()));
        let mut tables = Tables::default();
        let mut starts = Vec::with_capacity(self.entities.len());
        let mut entities = HashMap::with_capacity(self.entities.len());
        for r in self.entities {
            let (registered, start) =
                (r.register)(&self.db, &clock, journal.as_ref(), &mut tables)?;
            entities.insert(r.id, registered);
            starts.push(start);
        }
        for registered in entities.values() {
            registered.background.check().await?;
        }
        // Collected before the await: an iterator with a closure held across it would keep
        // `build`'s future from being `Send` for every lifetime.
        let captured: Vec<(Triggers, bool)> = entities
            .values()
            .filter_map(|r| r.triggers.clone().map(|t| (t, r.trigger_logged)))
            .collect();
        crate::triggers::prepare::prepare(
            &self.db,
            journal.as_deref(),
            self.install_triggers,
            captured,
        )
        .await?;
        let tables = Arc::new(tables);
        // The layer's own thread and connections, for the work the application's load must
        // not delay: the tailer and its listener, the write-behind flushers. Dropped (the
        // thread ends) if the build fails from here.
        let runtime = if journal.is_some() || entities.values().any(|r| r.background.needs_thread())
        {
            Some(BackgroundRuntime::start().map_err(|err| {
                Error::Db(sea_orm::DbErr::Custom(format!(
                    "cannot start the sea-orm-cache thread: {err}"
                )))
            })?)
        } else {
            None
        };
        let on_background = OnBackground::new(
            runtime.as_ref().map(|r| r.handle().clone()),
            match &runtime {
                Some(runtime) => crate::own_pool::own_pool(
                    &self.db,
                    in_memory,
                    runtime.handle(),
                    self.metric_callback.clone(),
                ),
                None => self.db.clone(),
            },
        );
        for registered in entities.values() {
            registered.background.run_on(&on_background);
        }
        let tailer = match &journal {
            Some(journal) => {
                let tailer = Arc::new(Tailer::new(
                    on_background.db().clone(),
                    journal.clone(),
                    tables.clone(),
                    &coherence,
                    clock.clone(),
                ));
                let starting = tailer.clone();
                on_background
                    .run(move || {
                        let tailer = starting.clone();
                        async move { tailer.start().await }
                    })
                    .await
                    .map_err(|source| Error::LogUnavailable { source })?;
                Some(tailer)
            }
            None => None,
        };
        let metrics: Arc<[Arc<dyn EntityMetrics>]> =
            entities.values().map(|r| r.metrics.clone()).collect();

        // Every check has passed: start the background work, all of it owned by `tasks`.
        let tasks = Tasks::with_background(runtime);
        for start in starts {
            start(&tasks);
        }
        if let Some(tailer) = &tailer {
            tasks.spawn_background(tailer.clone().run(tasks.signal()));
            #[cfg(feature = "postgres")]
            if coherence.listen && self.db.get_database_backend() == sea_orm::DbBackend::Postgres {
                crate::coherence::listen(on_background.db(), tailer.clone(), &tasks);
            }
        }
        if let Some(interval) = self.metrics_interval.filter(|i| !i.is_zero()) {
            let publish = metrics_export::publish_every(metrics.clone(), interval, tasks.signal());
            tasks.spawn(publish);
        }
        Ok(CacheLayer {
            inner: Arc::new(LayerInner {
                connection: CachedConnection::new(self.db.clone(), tables, journal),
                db: self.db,
                clock,
                shutdown_deadline: self.shutdown_deadline,
                entities,
                metrics,
                tasks,
                tailer,
                on_background,
            }),
        })
    }
}

struct LayerInner {
    db: DatabaseConnection,
    connection: CachedConnection,
    clock: Clock,
    shutdown_deadline: Duration,
    entities: HashMap<TypeId, Registered>,
    /// Every entity, as [`publish_metrics`](CacheLayer::publish_metrics) reads them.
    metrics: Arc<[Arc<dyn EntityMetrics>]>,
    /// Every background task: stopped and joined by shutdown, stopped by drop.
    tasks: Tasks,
    /// Reads the invalidation log, with coherence on.
    tailer: Option<Arc<Tailer>>,
    /// The layer's thread and own connections, where the application's calls into the
    /// tailer run ([`catch_up`](CacheLayer::catch_up)).
    on_background: Arc<OnBackground>,
}

impl Drop for LayerInner {
    /// The layer dropped without [`shutdown`](CacheLayer::shutdown): its tasks stop at their
    /// next wait (dropping `tasks` tells them), write-behind writes are refused from now on,
    /// and the ones not yet applied stay in the outbox for the next start.
    fn drop(&mut self) {
        for registered in self.entities.values() {
            registered.background.stop();
        }
        self.tasks.stop();
    }
}

/// The caching layer: one per process, holding one store per registered entity.
///
/// Cheap to clone. Call [`shutdown`](Self::shutdown) before the process exits: it applies
/// pending write-behind writes and stops the layer's background tasks. Dropping the last
/// clone without `shutdown` stops the tasks too (each at its next wait; a statement in flight
/// completes), without the final flush: write-behind writes not yet applied stay in the
/// outbox, durable, and the next start resumes them; repositories still held refuse
/// write-behind writes ([`Error::Shutdown`]) and no longer hear of other instances' writes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, Schema};
/// use sea_orm_cache::{CacheLayer, Policy};
/// use entity::user;
///
/// let db = Database::connect("sqlite::memory:").await?;
/// let schema = Schema::new(db.get_database_backend());
/// db.execute(&schema.create_table_from_entity(user::Entity)).await?;
///
/// let cache = CacheLayer::builder(db)
///     .cached::<user::Entity>(|c| c.policy(Policy::ReadThrough))
///     .build()
///     .await?;
/// let users = cache.repository::<user::Entity>()?;
/// let ada = users
///     .insert(user::ActiveModel {
///         email: Set("ada@example.com".into()),
///         name: Set("Ada".into()),
///         bio: Set(String::new()),
///         updated_at: Set(0),
///         ..Default::default()
///     })
///     .await?;
/// assert_eq!(users.get(ada.id).await?.as_deref(), Some(&*ada)); // loaded, then cached
/// assert_eq!(users.get(ada.id).await?.as_deref(), Some(&*ada)); // a hit
/// assert_eq!(users.stats().hits, 1);
/// cache.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    inner: Arc<LayerInner>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("entities", &self.inner.entities.len())
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// Starts building a layer in front of `db`.
    pub fn builder(db: DatabaseConnection) -> CacheLayerBuilder {
        CacheLayerBuilder {
            db,
            create_outbox_tables: false,
            install_triggers: false,
            clock: None,
            shutdown_deadline: SHUTDOWN_DEADLINE,
            coherence: None,
            metrics_interval: Some(METRICS_INTERVAL),
            metric_callback: None,
            entities: Vec::new(),
        }
    }

    /// The repository of entity `E`. Cheap: clone it, or ask again.
    ///
    /// # Errors
    /// [`Error::NotRegistered`] if `E` was not registered with the builder.
    pub fn repository<E: CacheableEntity>(&self) -> Result<Repository<E>> {
        self.inner
            .entities
            .get(&TypeId::of::<E>())
            .and_then(|registered| registered.cache.clone().downcast::<EntityCache<E>>().ok())
            .map(Repository::new)
            .ok_or_else(|| Error::NotRegistered {
                entity: sea_orm::EntityName::table_name(&E::default()),
            })
    }

    /// The database connection the layer was built on. Writes made through it bypass the
    /// cache: after such writes (migrations included) call
    /// [`invalidate_all`](Self::invalidate_all).
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// A connection that keeps the cache in step with every write made through it: pass it
    /// where the service passed its `DatabaseConnection`. See [`CachedConnection`].
    pub fn connection(&self) -> CachedConnection {
        self.inner.connection.clone()
    }

    /// Runs `callback` in a transaction on [`connection`](Self::connection): committed if it
    /// returns `Ok`, rolled back if it returns `Err`. Cache effects of its writes (the
    /// repository's `*_with(.., txn)` writes and plain SeaORM writes through the transaction) run after
    /// the commit, and never after a rollback.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sea_orm::{ActiveValue::{Set, Unchanged}, ConnectionTrait, Database, Schema};
    /// use sea_orm_cache::{CacheLayer, Error};
    /// use entity::user;
    ///
    /// let db = Database::connect("sqlite::memory:").await?;
    /// db.execute(&Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity)).await?;
    /// let cache = CacheLayer::builder(db).cached::<user::Entity>(|c| c).build().await?;
    /// let users = cache.repository::<user::Entity>()?;
    /// let ada = users.insert(user::ActiveModel {
    ///     email: Set("ada@example.com".into()), name: Set("Ada".into()),
    ///     bio: Set(String::new()), updated_at: Set(0), ..Default::default()
    /// }).await?;
    ///
    /// let (repo, id) = (users.clone(), ada.id);
    /// cache.transaction(|txn| Box::pin(async move {
    ///     repo.update_with(user::ActiveModel {
    ///         id: Unchanged(id), name: Set("Ada L.".into()), ..Default::default()
    ///     }, txn).await?;
    ///     Ok::<_, Error>(())
    /// })).await?;
    /// assert_eq!(users.get(id).await?.unwrap().name, "Ada L.");
    /// # Ok(()) }
    /// ```
    ///
    /// The callback's error type is the caller's: any `E` with `From<DbErr>` (this crate's
    /// [`Error`], `DbErr`, a service's own error enum with a `From<DbErr>` arm). For an error
    /// type without `From<DbErr>`, use [`transaction_typed`](Self::transaction_typed).
    ///
    /// # Errors
    /// The callback's error (after the rollback), or the database's on begin, commit or
    /// rollback, converted with `From<DbErr>`.
    pub async fn transaction<F, T, E>(&self, callback: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(
                &'c CachedTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: From<DbErr> + fmt::Display + fmt::Debug + Send,
    {
        self.transaction_typed(callback).await.map_err(flatten)
    }

    /// [`transaction`](Self::transaction) with an async closure, as SeaORM's
    /// `DatabaseConnection::transaction_async`: no `Box::pin`, and the closure may borrow
    /// from its surroundings.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sea_orm::{ActiveValue::{Set, Unchanged}, ConnectionTrait, Database, Schema};
    /// use sea_orm_cache::{CacheLayer, CachedTransaction, Error};
    /// use entity::user;
    ///
    /// let db = Database::connect("sqlite::memory:").await?;
    /// db.execute(&Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity)).await?;
    /// let cache = CacheLayer::builder(db).entity::<user::Entity>(|c| c).build().await?;
    /// let users = cache.repository::<user::Entity>()?;
    /// let ada = users.insert(user::ActiveModel {
    ///     email: Set("ada@example.com".into()), name: Set("Ada".into()),
    ///     bio: Set(String::new()), updated_at: Set(0), ..Default::default()
    /// }).await?;
    /// cache.transaction_async(async |txn: &CachedTransaction| {
    ///     users.update_with(user::ActiveModel {
    ///         id: Unchanged(ada.id), name: Set("Ada L.".into()), ..Default::default()
    ///     }, txn).await?;
    ///     Ok::<_, Error>(())
    /// }).await?;
    /// assert_eq!(users.get(ada.id).await?.unwrap().name, "Ada L.");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`transaction`](Self::transaction).
    pub async fn transaction_async<F, T, E>(&self, callback: F) -> Result<T, E>
    where
        F: for<'c> AsyncFnOnce(&'c CachedTransaction) -> Result<T, E> + Send,
        T: Send,
        E: From<DbErr> + fmt::Display + fmt::Debug + Send,
    {
        self.transaction_with_config_async(callback, None, None)
            .await
    }

    /// [`transaction_async`](Self::transaction_async) with an isolation level and access mode.
    ///
    /// # Errors
    /// As [`transaction`](Self::transaction).
    pub async fn transaction_with_config_async<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, E>
    where
        F: for<'c> AsyncFnOnce(&'c CachedTransaction) -> Result<T, E> + Send,
        T: Send,
        E: From<DbErr> + fmt::Display + fmt::Debug + Send,
    {
        self.inner
            .connection
            .transaction_with_config_async(callback, isolation_level, access_mode)
            .await
            .map_err(flatten)
    }

    /// [`transaction`](Self::transaction) for a callback whose error type has no
    /// `From<DbErr>`: the callback's error comes back as `TransactionError::Transaction(e)`
    /// (after the rollback) and the database's on begin, commit or rollback as
    /// `TransactionError::Connection`, SeaORM's own shape (what `TransactionTrait::transaction`
    /// returns). Cache effects as in [`transaction`](Self::transaction).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Database, Schema, TransactionError};
    /// use sea_orm_cache::CacheLayer;
    /// use entity::user;
    ///
    /// /// A service's error, with no `From<DbErr>`.
    /// #[derive(Debug, PartialEq)]
    /// enum Refused { NameTaken }
    /// impl std::fmt::Display for Refused {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("name taken") }
    /// }
    ///
    /// let db = Database::connect("sqlite::memory:").await?;
    /// db.execute(&Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity)).await?;
    /// let cache = CacheLayer::builder(db).cached::<user::Entity>(|c| c).build().await?;
    /// let outcome = cache.transaction_typed(|txn| Box::pin(async move {
    ///     user::ActiveModel {
    ///         email: Set("ada@example.com".into()), name: Set("Ada".into()),
    ///         bio: Set(String::new()), updated_at: Set(0), ..Default::default()
    ///     }.insert(txn).await.map_err(|_| Refused::NameTaken)?;
    ///     Err::<(), _>(Refused::NameTaken)
    /// })).await;
    /// assert!(matches!(outcome, Err(TransactionError::Transaction(Refused::NameTaken))));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TransactionError::Transaction` with the callback's error, after the rollback;
    /// `TransactionError::Connection` with the database's error on begin, commit or rollback.
    pub async fn transaction_typed<F, T, E>(
        &self,
        callback: F,
    ) -> std::result::Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c CachedTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        self.inner.connection.transaction(callback).await
    }

    /// Drops every entry of every registered entity, at once; loads already in flight do not
    /// fill. The next read of each key loads it again.
    ///
    /// Call it after anything wrote the cached tables behind the layer's back: running
    /// migrations (a sea-orm-migration `Migrator` accepts only SeaORM's own connection types,
    /// so it runs on [`db`](Self::db) or [`CachedConnection::inner`], which the cache does not
    /// see), a bulk import, a fix made in `psql`. Until then, reads may return entries cached
    /// before that write. Write-behind writes not yet flushed are not lost: they stay in the
    /// outbox, and a read finds them there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, Schema};
    /// use sea_orm_cache::CacheLayer;
    /// use entity::user;
    ///
    /// let db = Database::connect("sqlite::memory:").await?;
    /// db.execute(&Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity)).await?;
    /// let cache = CacheLayer::builder(db).cached::<user::Entity>(|c| c).build().await?;
    /// let users = cache.repository::<user::Entity>()?;
    /// let ada = users.insert(user::ActiveModel {
    ///     email: Set("ada@example.com".into()), name: Set("Ada".into()),
    ///     bio: Set(String::new()), updated_at: Set(0), ..Default::default()
    /// }).await?;
    /// users.get(ada.id).await?; // cached
    ///
    /// // A data migration, on the connection a `Migrator` takes: the cache does not see it.
    /// cache.db().execute_unprepared("UPDATE users SET name = 'Ada L.'").await?;
    /// cache.invalidate_all();
    /// assert_eq!(users.get(ada.id).await?.unwrap().name, "Ada L.");
    /// # Ok(()) }
    /// ```
    pub fn invalidate_all(&self) {
        for registered in self.inner.entities.values() {
            registered.background.invalidate_all();
        }
    }

    /// Publishes every registered entity's figures ([`Repository::stats`]) through the
    /// [`metrics`](https://docs.rs/metrics) facade, now: to whatever recorder the service
    /// installed (the crate ships none; without one this does nothing). Cheap and
    /// synchronous: it reads the counters the cache keeps anyway and sets each metric to its
    /// value (counters with `absolute`, gauges with `set`), so the hit path pays nothing for
    /// metrics. A background task also calls it every
    /// [`metrics_interval`](CacheLayerBuilder::metrics_interval) (one second by default); a
    /// Prometheus endpoint may call it before it renders, for figures as of the scrape
    /// (`examples/existing_service.rs` serves `GET /metrics` that way).
    ///
    /// Every metric has the label `entity`, the entity's table name (`users`). Names follow
    /// Prometheus' conventions; the `CacheStats` field each is read from:
    ///
    /// | metric | type | extra label | from [`CacheStats`](crate::CacheStats) |
    /// | --- | --- | --- | --- |
    /// | `sea_orm_cache_hits_total` | counter | | `hits` |
    /// | `sea_orm_cache_negative_hits_total` | counter | | `negative_hits` |
    /// | `sea_orm_cache_misses_total` | counter | | `misses` |
    /// | `sea_orm_cache_loads_total` | counter | | `loads` |
    /// | `sea_orm_cache_load_errors_total` | counter | | `load_errors` |
    /// | `sea_orm_cache_evictions_total` | counter | `cause="expired"` | `expired` |
    /// | `sea_orm_cache_evictions_total` | counter | `cause="capacity"` | `evicted` |
    /// | `sea_orm_cache_evictions_total` | counter | `cause="invalidated"` | `invalidated` |
    /// | `sea_orm_cache_evictions_total` | counter | `cause="replaced"` | `replaced` |
    /// | `sea_orm_cache_invalidations_total` | counter | `origin="local"` | `local_invalidations` |
    /// | `sea_orm_cache_invalidations_total` | counter | `origin="remote"` | `remote_invalidations` |
    /// | `sea_orm_cache_stale_fills_rejected_total` | counter | | `stale_fills_rejected` |
    /// | `sea_orm_cache_stale_served_total` | counter | | `stale_served` |
    /// | `sea_orm_cache_writes_total` | counter | | `writes` |
    /// | `sea_orm_cache_write_retries_total` | counter | | `write_retries` |
    /// | `sea_orm_cache_flushes_total` | counter | | `flushes` |
    /// | `sea_orm_cache_flushed_rows_total` | counter | | `flushed_rows` |
    /// | `sea_orm_cache_dead_lettered_total` | counter | | `dead_lettered` |
    /// | `sea_orm_cache_entries` | gauge | | `entries` |
    /// | `sea_orm_cache_write_behind_depth` | gauge | | `pending_writes` |
    /// | `sea_orm_cache_write_behind_flush_lag_seconds` | gauge | | `flush_lag_ms` / 1000 |
    ///
    /// With the staleness sampler on (DESIGN G10; [`Repository::freshness`] has the report):
    ///
    /// | Name | Kind | Labels | Value |
    /// |---|---|---|---|
    /// | `sea_orm_cache_samples_total` | counter | `outcome` = `fresh`, `stale`, `discarded`, `dropped`, `throttled`, `error` | sampled hits since start |
    /// | `sea_orm_cache_sample_reads_total` | counter | | the sampler's database reads |
    /// | `sea_orm_cache_budget_breaches_total` | counter | | windows found over budget |
    /// | `sea_orm_cache_staleness_ratio` | gauge | | [`Freshness::ratio`](crate::Freshness::ratio) over the window |
    /// | `sea_orm_cache_staleness_ratio_lower_bound` | gauge | | the lower bound of its 95% interval |
    /// | `sea_orm_cache_staleness_budget` | gauge | | the budget, when one is set |
    /// | `sea_orm_cache_effective_ttl_seconds` | gauge | | [`Freshness::effective_ttl`](crate::Freshness::effective_ttl) |
    ///
    /// `evictions_total` counts entries removed; `invalidations_total` counts invalidations
    /// asked for (a key, or a whole entity), whether or not an entry was cached for them:
    /// `local` the ones this instance made (its writes, [`Repository::invalidate`],
    /// [`invalidate_all`](Self::invalidate_all), ...), `remote` the ones other instances wrote
    /// to the invalidation log and this one applied (with [`Coherence`] on).
    ///
    /// The values are this layer's. Two layers in one process with an entity of the same
    /// table would publish under the same labels (counters keep the larger value, gauges the
    /// last one set): one layer per process, as [`CacheLayer`] says.
    pub fn publish_metrics(&self) {
        metrics_export::publish(self.inner.metrics.iter().map(|entity| &**entity));
    }

    /// The invalidation log tailer's figures; all zero with coherence off.
    pub fn coherence_stats(&self) -> CoherenceStats {
        self.inner
            .tailer
            .as_ref()
            .map_or_else(CoherenceStats::default, |tailer| tailer.stats())
    }

    /// Reads the invalidation log now and applies what other instances wrote, returning once
    /// a full read that began after this call has finished (with coherence off, at once). For
    /// a request that must see every write committed elsewhere before it started.
    ///
    /// # Errors
    /// [`Error::Db`] if the log could not be read.
    pub async fn catch_up(&self) -> Result<()> {
        match &self.inner.tailer {
            Some(tailer) => self
                .inner
                .on_background
                .run(|| {
                    let tailer = tailer.clone();
                    async move { tailer.catch_up().await }
                })
                .await
                .map_err(Error::from),
            None => Ok(()),
        }
    }

    /// The layer's clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Stops every background task of the layer and applies pending write-behind writes,
    /// within the builder's [`shutdown_deadline`](CacheLayerBuilder::shutdown_deadline)
    /// ([`SHUTDOWN_DEADLINE`] unless set; see [`shutdown_within`](Self::shutdown_within)).
    /// Write-behind writes made after it starts are refused with [`Error::Shutdown`]; the
    /// ones already handed to the outbox writer are inserted. Then it tells every task to
    /// stop and waits for them (a flush or a log read in progress completes; a task still
    /// running at the deadline is aborted), and makes the final flush. When it returns, no
    /// task of the layer runs: no sampler, tailer, listener or metrics publisher, so the
    /// layer sends no more statements of its own (reads and writes the service still makes
    /// through it go to the database as before; [`catch_up`](Self::catch_up) still reads
    /// the log). The layer's own thread stays, idle, until the layer is dropped.
    ///
    /// # Errors
    /// The first error of an entity whose final flush failed or did not finish in time
    /// ([`Error::ShutdownIncomplete`]; its rows stay in the outbox for the next start); the
    /// other entities are still shut down.
    pub async fn shutdown(&self) -> Result<()> {
        self.shutdown_within(self.inner.shutdown_deadline).await
    }

    /// [`shutdown`](Self::shutdown) with its own deadline for the final flush of every
    /// write-behind entity (one deadline for all of them): rows that keep failing, or that
    /// it cannot reach in time, stay in the outbox, and the next start resumes them.
    ///
    /// # Errors
    /// As [`shutdown`](Self::shutdown).
    pub async fn shutdown_within(&self, deadline: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + deadline;
        let entities = || self.inner.entities.values();
        for registered in entities() {
            registered.background.stop();
        }
        // Writers insert the rows already handed to them, a flush or a log read in progress
        // completes; then every task has ended (or, past the deadline, is aborted).
        self.inner.tasks.stop();
        self.inner.tasks.join(deadline).await;
        let mut first_error = None;
        for registered in entities() {
            if let Err(err) = registered.background.drain(deadline).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A transaction's error as the callback's own type: the database's converted with
/// `From<DbErr>`.
fn flatten<E: From<DbErr>>(err: TransactionError<E>) -> E {
    match err {
        TransactionError::Connection(err) => err.into(),
        TransactionError::Transaction(err) => err,
    }
}
