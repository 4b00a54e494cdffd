//! [`Repository<E>`]: one entity behind its cache policy.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sea_orm::sea_query::IntoValueTuple;
use sea_orm::{DbErr, QueryFilter, Select};

use crate::config::CacheConfig;
use crate::either_connection::CachedConnectionTrait;
use crate::entity_cache::EntityCache;
use crate::error::{Error, Result};
use crate::freshness::Freshness;
use crate::key::{CacheableEntity, KeyOf, key_of_model, key_text, keys_condition};
use crate::policy::{self, PolicyPaths};
use crate::spans;
use crate::stats::{CacheStats, add, bump};

/// An update's "no row has that key", whichever way the policy found out: SeaORM's
/// `RecordNotUpdated` (the `UPDATE` matched nothing) or `RecordNotFound` (the row was gone when
/// it was read back, on a backend without `RETURNING`) become [`Error::NotFound`], the error
/// write-behind reports for a key with no current row.
fn missing_row(err: Error, entity: &'static str) -> Error {
    match err {
        Error::Db(DbErr::RecordNotUpdated | DbErr::RecordNotFound(_)) => Error::NotFound { entity },
        other => other,
    }
}

/// The future [`Repository::get`] returns. The cache is read when `get` is called, so a hit
/// is ready at once and costs no allocation; a miss loads when the future is awaited.
#[must_use = "futures do nothing unless awaited"]
pub struct Get<'a, E: CacheableEntity>(GetState<'a, E>);

type Loading<'a, M> = Pin<Box<dyn Future<Output = Result<Option<Arc<M>>>> + Send + 'a>>;

enum GetState<'a, E: CacheableEntity> {
    /// Answered from the cache; taken by the first poll.
    Hit(Option<Option<Arc<E::Model>>>),
    /// The miss path, boxed: its future is large and a hit should not carry it.
    Miss(Loading<'a, E::Model>),
}

impl<E: CacheableEntity> Future for Get<'_, E> {
    type Output = Result<Option<Arc<E::Model>>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            GetState::Hit(value) => Poll::Ready(Ok(value.take().flatten())),
            GetState::Miss(load) => load.as_mut().poll(cx),
        }
    }
}

impl<E: CacheableEntity> fmt::Debug for Get<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            GetState::Hit(_) => "Get::Hit",
            GetState::Miss(_) => "Get::Miss",
        })
    }
}

/// One entity behind the cache policy chosen for it. Cheap to clone; get one from
/// [`CacheLayer::repository`](crate::CacheLayer::repository).
///
/// Keys are the entity's primary-key type: `i64` for `users`, `(i64, i64)` for a composite
/// key. Values are shared as `Arc<Model>`.
pub struct Repository<E: CacheableEntity> {
    inner: Arc<EntityCache<E>>,
    paths: &'static dyn PolicyPaths<E>,
}

impl<E: CacheableEntity> Clone for Repository<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            paths: self.paths,
        }
    }
}

impl<E: CacheableEntity> fmt::Debug for Repository<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("entity", &self.inner.name)
            .field("policy", &self.inner.config.policy)
            .finish_non_exhaustive()
    }
}

impl<E: CacheableEntity> Repository<E> {
    /// The repository of `inner`, with its policy's paths.
    pub(crate) fn new(inner: Arc<EntityCache<E>>) -> Self {
        let paths = policy::paths_of(inner.config.policy);
        Self { inner, paths }
    }

    /// The entity's configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// Reads a row by primary key: from the cache, else loaded by the repository (concurrent
    /// misses on one key share one load). `Ok(None)` means there is no such row.
    ///
    /// The cache is read when `get` is called: a hit takes no lock beyond quick_cache's shard
    /// read lock, allocates nothing, formats nothing, and the returned future is ready at once.
    /// A miss loads when the future is awaited.
    ///
    /// # Errors
    /// The future yields [`Error::Db`] if the load failed (nothing is cached), or
    /// [`Error::LoaderRequired`] for a cache-aside entity, which never loads by itself: use
    /// [`get_or_load`](Self::get_or_load).
    // Always inlined: with the sampler's (cold) call on the hit path, the compiler stopped
    // inlining `get` into callers, and a hit cost 36 ns instead of 30 (bench, hits-only).
    #[inline(always)]
    pub fn get(&self, key: KeyOf<E>) -> Get<'_, E> {
        Get(match self.inner.store.hit(&key) {
            Some(value) => GetState::Hit(Some(value)),
            None => GetState::Miss(self.paths.miss(&self.inner, key)),
        })
    }

    /// Cache-aside read: the cached row, else the row `loader` returns, which is cached unless
    /// the key was invalidated while it ran. Concurrent misses on one key run one loader.
    /// Works under every policy; under write-behind a pending write for the key is returned
    /// without running the loader.
    ///
    /// ```no_run
    /// # async fn demo(users: sea_orm_cache::Repository<entity::user::Entity>, db: sea_orm::DatabaseConnection) -> sea_orm_cache::Result<()> {
    /// use sea_orm::EntityTrait;
    /// let user = users
    ///     .get_or_load(7, || entity::user::Entity::find_by_id(7).one(&db))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The loader's error, converted; nothing is cached for it.
    pub async fn get_or_load<F, Fut, LE>(
        &self,
        key: KeyOf<E>,
        loader: F,
    ) -> Result<Option<Arc<E::Model>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<E::Model>, LE>>,
        LE: Into<Error>,
    {
        let inner = &*self.inner;
        if let Some(value) = inner.store.hit(&key) {
            return Ok(value);
        }
        inner
            .load_with(&key, || async {
                // Under write-behind a pending write is newer than anything the loader reads.
                if let Some(queue) = &inner.queue
                    && let Some(pending) = queue.pending(&inner.db, &key).await?
                {
                    return Ok(pending.into_value());
                }
                loader()
                    .await
                    .map(|row| row.map(Arc::new))
                    .map_err(Into::into)
            })
            .await
    }

    /// Reads many rows: hits from the cache, all misses in one query. The result is in the
    /// order of `keys`.
    ///
    /// # Errors
    /// [`Error::Db`] if the query failed; [`Error::LoaderRequired`] for a cache-aside entity
    /// with a miss.
    pub async fn get_many(
        &self,
        keys: impl IntoIterator<Item = KeyOf<E>>,
    ) -> Result<Vec<Option<Arc<E::Model>>>> {
        let inner = &*self.inner;
        let keys: Vec<KeyOf<E>> = keys.into_iter().collect();
        let mut out = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match inner.store.hit(key) {
                Some(value) => out.push(value),
                None => {
                    out.push(None);
                    missing.push(i);
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        add(&inner.counters.misses, missing.len() as u64);
        if !self.paths.loads() {
            return Err(Error::LoaderRequired { entity: inner.name });
        }
        let ticket = inner.store.ticket();
        let mut from_table = Vec::new();
        match &inner.queue {
            // Write-behind: the missing keys' pending writes, in one read, win over the table
            // (G6). Read before the table: a row applied in between is in the table by then.
            Some(queue) => {
                let texts: Vec<String> = missing
                    .iter()
                    .map(|&i| key_text(keys[i].clone().into_value_tuple()))
                    .collect();
                let mut pending = queue.pending_many(&inner.db, &texts).await?;
                for (&i, text) in missing.iter().zip(&texts) {
                    match pending.remove(text) {
                        Some(write) => out[i] = write.into_value(),
                        None => from_table.push(i),
                    }
                }
            }
            None => from_table.clone_from(&missing),
        }
        if !from_table.is_empty() {
            let condition = keys_condition::<E>(from_table.iter().map(|&i| &keys[i]));
            let rows = match E::find().filter(condition).all(&inner.db).await {
                Ok(rows) => rows,
                Err(err) => {
                    bump(&inner.counters.load_errors);
                    return Err(err.into());
                }
            };
            bump(&inner.counters.loads);
            let mut by_key: HashMap<KeyOf<E>, Arc<E::Model>> = rows
                .into_iter()
                .map(|row| (key_of_model::<E>(&row), Arc::new(row)))
                .collect();
            for &i in &from_table {
                out[i] = by_key.get(&keys[i]).cloned();
            }
            by_key.clear();
        }
        for i in missing {
            inner.store.fill(keys[i].clone(), ticket, out[i].clone());
        }
        Ok(out)
    }

    /// The cached row, without loading and without counting a read. `None` if the key is not
    /// cached, or cached as "no such row".
    pub fn peek(&self, key: KeyOf<E>) -> Option<Arc<E::Model>> {
        self.inner.store.peek(&key).flatten()
    }

    /// Inserts a row.
    ///
    /// Cache-aside and read-through insert, then invalidate the new key (clearing a negative
    /// entry). Write-through caches the inserted row. Write-behind caches it and queues the
    /// insert when the ActiveModel sets its key (an upsert); with a database-assigned key it
    /// writes through.
    ///
    /// # Errors
    /// [`Error::Db`] from the database; nothing is cached then. Under write-behind also
    /// [`Error::Encode`] and [`Error::OutboxRowTooLarge`] (the write is not acknowledged).
    pub async fn insert(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let inner = &*self.inner;
        spans::write(inner.name, "insert", async {
            let model = self.paths.insert(inner, am).await?;
            bump(&inner.counters.writes);
            Ok(model)
        })
        .await
    }

    /// Updates the columns the ActiveModel sets, by its primary key.
    ///
    /// Cache-aside and read-through update, then invalidate. Write-through caches the row the
    /// database returned. Write-behind merges the set columns over the current row, caches the
    /// result and queues it.
    ///
    /// # Errors
    /// [`Error::NotFound`] if no row has the key, under every policy (SeaORM's
    /// `DbErr::RecordNotUpdated` is reported as this); nothing is cached then.
    /// [`Error::Db`] from the database; [`Error::MissingPrimaryKey`]; [`Error::Encode`] and
    /// [`Error::OutboxRowTooLarge`] (write-behind: the write is not acknowledged).
    pub async fn update(&self, am: E::ActiveModel) -> Result<Arc<E::Model>> {
        let inner = &*self.inner;
        spans::write(inner.name, "update", async {
            let model = self
                .paths
                .update(inner, am)
                .await
                .map_err(|err| missing_row(err, inner.name))?;
            bump(&inner.counters.writes);
            Ok(model)
        })
        .await
    }

    /// Deletes a row by key; returns whether it existed. Under write-behind, readers see it
    /// gone at once and the table follows at the next flush.
    ///
    /// # Errors
    /// [`Error::Db`] from the database.
    pub async fn delete(&self, key: KeyOf<E>) -> Result<bool> {
        let inner = &*self.inner;
        spans::write(inner.name, "delete", async {
            let existed = self.paths.delete(inner, &key).await?;
            bump(&inner.counters.writes);
            Ok(existed)
        })
        .await
    }

    /// Reads a row on `conn`, from the database (under write-behind, a pending write first,
    /// as on a miss): inside a [`CachedTransaction`](crate::CachedTransaction) the read sees
    /// the transaction's own uncommitted writes. Nothing it reads is cached.
    ///
    /// # Errors
    /// [`Error::Db`] from the database.
    pub async fn get_with<C: CachedConnectionTrait>(
        &self,
        key: KeyOf<E>,
        conn: &C,
    ) -> Result<Option<Arc<E::Model>>> {
        let target = conn.target().await?;
        let row = self.inner.read_on(target.txn().raw(), &key).await?;
        target.finish().await?;
        Ok(row)
    }

    /// [`insert`](Self::insert) on `conn`, connection last as in SeaORM
    /// (`users.insert_with(am, &txn)`). In a [`CachedTransaction`](crate::CachedTransaction) the cache follows after
    /// its outermost commit (invalidated, or set to the inserted row under write-through;
    /// under write-behind the outbox row commits with the transaction), never after a
    /// rollback. On a [`CachedConnection`](crate::CachedConnection) the write runs in a transaction of its own,
    /// committed before this returns.
    ///
    /// # Errors
    /// [`Error::Db`]; under write-behind also [`Error::Encode`] and
    /// [`Error::OutboxRowTooLarge`].
    pub async fn insert_with<C: CachedConnectionTrait>(
        &self,
        am: E::ActiveModel,
        conn: &C,
    ) -> Result<Arc<E::Model>> {
        spans::write(self.inner.name, "insert", async {
            let target = conn.target().await?;
            let model = self
                .paths
                .save_in(&self.inner, target.txn(), am, true)
                .await?;
            target.finish().await?;
            Ok(model)
        })
        .await
    }

    /// [`update`](Self::update) on `conn`; the cache follows as for
    /// [`insert_with`](Self::insert_with).
    ///
    /// # Errors
    /// [`Error::NotFound`] if no row has the key (as the transaction sees it), under every
    /// policy, as [`update`](Self::update); [`Error::Db`]; under write-behind also
    /// [`Error::Encode`] and [`Error::OutboxRowTooLarge`].
    pub async fn update_with<C: CachedConnectionTrait>(
        &self,
        am: E::ActiveModel,
        conn: &C,
    ) -> Result<Arc<E::Model>> {
        spans::write(self.inner.name, "update", async {
            let target = conn.target().await?;
            let model = self
                .paths
                .save_in(&self.inner, target.txn(), am, false)
                .await
                .map_err(|err| missing_row(err, self.inner.name))?;
            target.finish().await?;
            Ok(model)
        })
        .await
    }

    /// [`delete`](Self::delete) on `conn`; the key is invalidated after the outermost commit.
    ///
    /// # Errors
    /// [`Error::Db`]; under write-behind also [`Error::Encode`] and
    /// [`Error::OutboxRowTooLarge`].
    pub async fn delete_with<C: CachedConnectionTrait>(
        &self,
        key: KeyOf<E>,
        conn: &C,
    ) -> Result<bool> {
        spans::write(self.inner.name, "delete", async {
            let target = conn.target().await?;
            let existed = self.paths.delete_in(&self.inner, target.txn(), key).await?;
            target.finish().await?;
            Ok(existed)
        })
        .await
    }

    /// Deletes the key's entry; the next read loads it again. A load of the key already in
    /// flight will not fill the cache. Synchronous: it only touches this process's memory.
    /// Under write-behind an entry not yet flushed is dropped too; the next read finds the
    /// pending write in the outbox.
    pub fn invalidate(&self, key: KeyOf<E>) {
        self.inner.store.invalidate(&key);
    }

    /// Drops every entry of the entity at once; loads already in flight do not fill. Synchronous, like
    /// [`invalidate`](Self::invalidate). [`CacheLayer::invalidate_all`](crate::CacheLayer::invalidate_all)
    /// does this for every registered entity.
    pub fn invalidate_all(&self) {
        self.inner.store.invalidate_all();
    }

    /// Loads the rows `select` returns into the cache; returns how many rows it read.
    ///
    /// Warming never puts an older value over a newer one: a key written or invalidated while
    /// the query ran is left alone, and under write-behind a key's pending outbox write wins
    /// over its table row (as on a miss) and an entry not yet flushed is never replaced.
    ///
    /// ```no_run
    /// # async fn demo(users: sea_orm_cache::Repository<entity::user::Entity>) -> sea_orm_cache::Result<()> {
    /// use sea_orm::{EntityTrait, QuerySelect};
    /// let warmed = users.warm(entity::user::Entity::find().limit(10_000)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Db`] if the query failed.
    pub async fn warm(&self, select: Select<E>) -> Result<usize> {
        let inner = &*self.inner;
        let ticket = inner.store.ticket();
        // Write-behind: pending outbox rows win over the table, as on a miss (G6). They are
        // read before the table: a row applied in between is in the table by then (the
        // flusher applies and deletes in one transaction), so no acknowledged write is missed.
        let mut pending = match &inner.queue {
            Some(queue) => Some(queue.pending_all(&inner.db).await?),
            None => None,
        };
        let rows = select.all(&inner.db).await?;
        bump(&inner.counters.loads);
        let n = rows.len();
        for row in rows {
            let key = key_of_model::<E>(&row);
            let value = match pending.as_mut().filter(|p| !p.is_empty()) {
                Some(pending) => match pending.remove(&key_text(key.clone().into_value_tuple())) {
                    Some(Some(write)) => write.into_value(),
                    // Pending, but undecodable: leave the key to a load.
                    Some(None) => continue,
                    None => Some(Arc::new(row)),
                },
                None => Some(Arc::new(row)),
            };
            inner.store.fill(key, ticket, value);
        }
        Ok(n)
    }

    /// Applies every pending write-behind write now; returns how many keys were applied.
    /// Does nothing under the other policies.
    ///
    /// # Errors
    /// [`Error::Db`] if a batch failed; it stays pending and is retried.
    pub async fn flush(&self) -> Result<usize> {
        match &self.inner.queue {
            Some(queue) => queue.flush().await,
            None => Ok(0),
        }
    }

    /// The entity's measured freshness over the sampler's window: samples verified and
    /// stale, the staleness ratio with its 95% confidence interval (and as nines), the
    /// budget and whether the ratio is over it, the effective TTL (DESIGN G10). `None` when
    /// the sampler is off (`sample_rate` 0).
    ///
    /// ```no_run
    /// # fn demo(users: sea_orm_cache::Repository<entity::user::Entity>) {
    /// if let Some(f) = users.freshness() {
    ///     println!(
    ///         "{} of {} sampled hits stale ({:.4}%, 95% CI {:.4}%-{:.4}%), at least {:.1} nines",
    ///         f.stale, f.verified, f.ratio * 100.0, f.interval.0 * 100.0, f.interval.1 * 100.0,
    ///         f.nines_at_least(),
    ///     );
    /// }
    /// # }
    /// ```
    pub fn freshness(&self) -> Option<Freshness> {
        self.inner.freshness()
    }

    /// Waits until the sampler has read every sample taken before the call, and judged every
    /// mismatch whose grace delay is over on the layer's clock. With
    /// [`Clock::manual`](crate::Clock::manual), advance the clock past the grace delay and
    /// call it again to judge the mismatches. Returns at once when the sampler is off.
    pub async fn settle_samples(&self) {
        if let Some(sampler) = &self.inner.sampler {
            sampler.settle().await;
        }
    }

    /// A snapshot of the entity's cache figures.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats()
    }
}
