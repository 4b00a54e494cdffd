//! One entity's store: a quick_cache of `Arc<Model>` by typed key, with expiry (TTL and
//! jitter), negative entries, an entity-wide generation, and the fill check that keeps a load
//! which started before an invalidation out of the cache (DESIGN G1, G2, G7).
//!
//! All of expiry lives in this file; `entry.rs` holds what is stored per key and
//! `fence.rs` the ticket and stripe state the fill check uses. The clock is read with one atomic load ([`Clock`]).
//!
//! # How a stale fill is refused
//! Every load takes a [`Ticket`] (the store's invalidation epoch and generation) *before* it
//! reads the database. Every invalidation or write of a key takes the key's stripe lock, moves
//! the epoch forward and records it on the stripe. A fill takes the same stripe lock and is
//! refused if the stripe has seen an epoch newer than its ticket. Stripes are shared by many
//! keys, so a refusal can be spurious (the value is still returned to the caller, just not
//! cached); it is never missed. An entity-wide invalidation moves the generation instead, and
//! entries of an older generation are never served.
//!
//! A stripe can also be *quarantined* until a time: fills are refused until then. The save
//! hooks use it when they cannot see the commit of the transaction that wrote (see `hooks`).
//!
//! # How a failed load is shared
//! quick_cache hands a dropped guard to the next waiter, which would then load again: while
//! the database fails, N misses of one key would run N loads one after another. So a miss
//! first registers on its key's stripe ([`Store::begin_miss`]); a load that fails records its
//! error there ([`Store::record_failure`]) before it lets its guard go, and a miss that gets
//! the guard (or the expired entry a `stale_if_error` load put back) after a failure recorded
//! since it began shares that error ([`Lookup::Failed`]) instead of loading. A miss that
//! begins after the failure loads again: errors are never cached. The stripe forgets its
//! failures when its last miss ends.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use quick_cache::sync::{Cache, EntryAction, EntryResult, PlaceholderGuard};
use quick_cache::{DefaultHashBuilder, UnitWeighter};

mod entry;
mod fence;
mod sample;

use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::error::Error;
use crate::stats::{Counters, bump};
pub(crate) use entry::Entry;
use entry::{Evictions, QuickCache, Replacing};
pub(crate) use fence::Ticket;
use fence::{Stripe, lock};
pub(crate) use sample::{Sample, SampleQueue, SamplerMessage};

/// Fill-check stripes per entity: one per this many entries of its capacity (a power of two
/// between [`MIN_STRIPES`] and [`MAX_STRIPES`]). A write refuses the fills and puts of its
/// stripe's other keys that were in flight with it, so fewer stripes mean more reloads; more
/// cost memory that does not depend on what is cached (32 bytes and a lock each).
const ENTRIES_PER_STRIPE: usize = 16;
/// Fewest stripes of an entity.
const MIN_STRIPES: usize = 64;
/// Most stripes of an entity.
const MAX_STRIPES: usize = 4096;

/// The number of stripes of an entity of `capacity` entries.
fn stripes_for(capacity: usize) -> usize {
    (capacity / ENTRIES_PER_STRIPE)
        .next_power_of_two()
        .clamp(MIN_STRIPES, MAX_STRIPES)
}

/// A guard that makes concurrent misses on one key wait for a single load (G1).
pub(crate) type LoadGuard<'a, K, M> =
    PlaceholderGuard<'a, K, Entry<M>, UnitWeighter, DefaultHashBuilder, Evictions>;

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup<'a, K, M> {
    /// A fresh entry (or one handed over by the load this caller waited for).
    Fresh(Option<Arc<M>>),
    /// No usable entry: the caller must load and fill through the guard. `stale` is the
    /// expired entry that was there, if any (for `stale_if_error`).
    Load {
        guard: LoadGuard<'a, K, M>,
        stale: Option<Entry<M>>,
    },
    /// The load this caller waited for failed with `error`: the caller shares it (or, with
    /// `stale_if_error`, the expired entry `stale` the load put back) without loading.
    Failed {
        error: Error,
        stale: Option<Entry<M>>,
    },
}

/// A miss in progress ([`Store::begin_miss`]): while it lasts, its stripe keeps the errors
/// of failed loads for it to share.
#[derive(Debug)]
pub(crate) struct Miss<'a, K> {
    stripe: &'a Mutex<Stripe<K>>,
    /// The store's failure count when the miss began: failures numbered above it are shared.
    seen: u64,
}

impl<K> Drop for Miss<'_, K> {
    fn drop(&mut self) {
        let mut stripe = lock(self.stripe);
        stripe.misses -= 1;
        if stripe.misses == 0 {
            stripe.forget_failures();
        }
    }
}

/// The per-entity store.
pub(crate) struct Store<K, M> {
    cache: QuickCache<K, M>,
    hasher: DefaultHashBuilder,
    stripes: Box<[Mutex<Stripe<K>>]>,
    epoch: AtomicU64,
    generation: AtomicU32,
    /// Sequence numbers of dirty entries, drawn in write order.
    dirty_seq: AtomicU64,
    /// Failed loads, counted: the number of the last one ([`Store::record_failure`]).
    failures: AtomicU64,
    rng: AtomicU64,
    clock: Clock,
    /// The configured TTL.
    ttl_ms: u64,
    /// The TTL fills use now: the configured one, unless the freshness budget lowered it
    /// (`OverBudget::ShortenTtl`).
    effective_ttl_ms: AtomicU64,
    /// Picks hits for the staleness sampler; `None` with a sample rate of 0.
    sampler: Option<SampleQueue<K, M>>,
    /// The sampler's pick threshold (0: never), beside the fields a hit reads.
    sample_threshold: u64,
    jitter: f64,
    negative_ttl_ms: Option<u64>,
    stale_if_error_ms: Option<u64>,
    counters: Arc<Counters>,
}

impl<K: Hash + Eq, M> std::fmt::Debug for Store<K, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("entries", &self.cache.len())
            .field("capacity", &self.cache.capacity())
            .field("ttl_ms", &self.ttl_ms)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K, M> Store<K, M>
where
    K: Hash + Eq + Clone,
{
    pub(crate) fn new(
        config: &CacheConfig,
        clock: Clock,
        counters: Arc<Counters>,
        sampler: Option<SampleQueue<K, M>>,
    ) -> Self {
        let ttl_ms = config.ttl.as_millis() as u64;
        let cache = Cache::with(
            config.capacity,
            config.capacity as u64,
            UnitWeighter,
            DefaultHashBuilder::default(),
            Evictions {
                counters: counters.clone(),
                clock: clock.clone(),
            },
        );
        Self {
            cache,
            hasher: DefaultHashBuilder::default(),
            stripes: (0..stripes_for(config.capacity))
                .map(|_| Mutex::default())
                .collect(),
            epoch: AtomicU64::new(0),
            generation: AtomicU32::new(0),
            dirty_seq: AtomicU64::new(1),
            failures: AtomicU64::new(0),
            rng: AtomicU64::new(0x853c_49e6_748f_ea9b),
            clock,
            ttl_ms,
            effective_ttl_ms: AtomicU64::new(ttl_ms),
            sample_threshold: sampler.as_ref().map_or(0, SampleQueue::threshold),
            sampler,
            jitter: config.ttl_jitter,
            negative_ttl_ms: config.negative_ttl.map(|d| d.as_millis() as u64),
            stale_if_error_ms: config.stale_if_error.map(|d| d.as_millis() as u64),
            counters,
        }
    }

    #[inline]
    fn is_fresh(&self, entry: &Entry<M>) -> bool {
        entry.is_of_generation(self.generation.load(Ordering::Acquire))
            && self.clock.now_ms() < entry.expires_at()
    }

    /// The hit path: one quick_cache lookup, one clock read, one generation read, and the
    /// sampler's pick (a multiplication and a comparison). No allocation, no lock beyond
    /// quick_cache's shard read lock. `None` means "not cached".
    // Always inlined into `Repository::get`, for the same reason as it.
    #[inline(always)]
    pub(crate) fn hit(&self, key: &K) -> Option<Option<Arc<M>>> {
        let entry = self.cache.get(key)?;
        if !self.is_fresh(&entry) {
            return None;
        }
        let count = self.counters.hits.bump(entry.value.is_none());
        if self.sample_threshold != 0 && sample::picks(count, self.sample_threshold) {
            self.sample(key);
        }
        Some(entry.value)
    }

    /// Hands a picked hit to the sampler (off the common path: one hit in a thousand by
    /// default).
    #[cold]
    #[inline(never)]
    fn sample(&self, key: &K) {
        let (Some(sampler), Some(entry)) = (&self.sampler, self.cache.peek(key)) else {
            return;
        };
        let expires_at = entry.expires_at();
        let value = entry.value;
        // The longest life the entry can have been given.
        let lifetime = match &value {
            Some(_) => self.ttl_ms,
            None => self.negative_ttl_ms.unwrap_or(0).min(self.ttl_ms),
        };
        let now = self.clock.now_ms();
        if !sampler.admit(now) {
            return;
        }
        sampler.offer(Sample {
            key: key.clone(),
            value,
            ticket: self.ticket(),
            hit_ms: now,
            filled_after_ms: expires_at.saturating_sub(lifetime),
        });
    }

    /// Whether `key` was written or invalidated (or the whole entity invalidated) since
    /// `ticket` was taken. Keys share stripes, so it can answer yes for another key's write.
    pub(crate) fn changed_since(&self, key: &K, ticket: Ticket) -> bool {
        let stripe = lock(self.stripe(key));
        stripe.epoch > ticket.epoch || self.generation.load(Ordering::Acquire) != ticket.generation
    }

    /// The TTL fills use now (the configured one unless the budget shortened it).
    pub(crate) fn effective_ttl_ms(&self) -> u64 {
        self.effective_ttl_ms.load(Ordering::Relaxed)
    }

    /// Sets the TTL fills use from now on, at most the configured one. Shortening it also
    /// removes the entries that would outlive it (counted as expired), except write-behind
    /// entries not yet flushed; so no entry lives longer than the effective TTL.
    pub(crate) fn set_effective_ttl_ms(&self, ttl_ms: u64) {
        let ttl_ms = ttl_ms.clamp(1, self.ttl_ms);
        let before = self.effective_ttl_ms.swap(ttl_ms, Ordering::Relaxed);
        if ttl_ms >= before {
            return;
        }
        let latest = self.clock.now_ms().saturating_add(ttl_ms);
        let removed = std::cell::Cell::new(0);
        self.cache.retain(|_, entry| {
            let keep = entry.is_dirty() || entry.expires_at() <= latest;
            removed.set(removed.get() + u64::from(!keep));
            keep
        });
        crate::stats::add(&self.counters.expired, removed.get());
    }

    /// Reads the cache without counting or loading.
    pub(crate) fn peek(&self, key: &K) -> Option<Option<Arc<M>>> {
        let entry = self.cache.peek(key)?;
        self.is_fresh(&entry).then_some(entry.value)
    }

    /// Registers a miss of `key` before it looks for a load to wait for; held until the miss
    /// has its answer. A load of the key that fails meanwhile hands its error to it
    /// ([`lookup_or_guard`](Self::lookup_or_guard)).
    pub(crate) fn begin_miss(&self, key: &K) -> Miss<'_, K> {
        let stripe = self.stripe(key);
        let mut state = lock(stripe);
        state.misses += 1;
        // Read under the stripe's lock, which `record_failure` numbers failures under: a
        // failure of this key is either counted here or recorded after this miss registered.
        let seen = self.failures.load(Ordering::Acquire);
        drop(state);
        Miss { stripe, seen }
    }

    /// Records that a load of `key` failed with `error`, before its guard is let go (dropped,
    /// or filled with the entry `stale_if_error` puts back): every miss of the key that began
    /// before shares the error instead of loading again.
    pub(crate) fn record_failure(&self, key: &K, error: &Error) {
        let mut stripe = lock(self.stripe(key));
        let seq = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        stripe.set_failure(key, seq, error);
    }

    /// The error of a load of `key` that failed since `miss` began, if one did.
    fn failed_since(&self, key: &K, miss: &Miss<'_, K>) -> Option<Error> {
        lock(miss.stripe).failure_after(key, miss.seen)
    }

    /// After a missed [`hit`](Self::hit): waits for a load already running on this key, or
    /// returns the guard that makes this caller the loader. An expired entry is swapped for
    /// the guard atomically and handed back as `stale`. If a load of the key failed since
    /// `miss` began, its error is returned instead of a guard ([`Lookup::Failed`]): one failed
    /// load answers every miss that waited for it.
    pub(crate) async fn lookup_or_guard(&self, key: &K, miss: &Miss<'_, K>) -> Lookup<'_, K, M> {
        let usable = |entry: &Entry<M>| entry.is_transient() || self.is_fresh(entry);
        loop {
            match self.cache.get_value_or_guard_async(key).await {
                Ok(entry) if usable(&entry) => {
                    bump(&self.counters.coalesced);
                    return Lookup::Fresh(entry.value);
                }
                Ok(expired) => {
                    // The expired entry a failed `stale_if_error` load put back.
                    if let Some(error) = self.failed_since(key, miss) {
                        bump(&self.counters.coalesced);
                        return Lookup::Failed {
                            error,
                            stale: Some(expired),
                        };
                    }
                    let found = self
                        .cache
                        .entry_async(key, |_, entry| {
                            if usable(entry) {
                                EntryAction::Retain(entry.value.clone())
                            } else {
                                EntryAction::ReplaceWithGuard
                            }
                        })
                        .await;
                    match found {
                        EntryResult::Retained(value) => return Lookup::Fresh(value),
                        EntryResult::Replaced(guard, stale) => {
                            bump(&self.counters.expired);
                            return Lookup::Load {
                                guard,
                                stale: Some(stale),
                            };
                        }
                        EntryResult::Vacant(guard) => return self.load_or_share(guard, key, miss),
                        EntryResult::Removed(..) | EntryResult::Timeout => continue,
                    }
                }
                Err(guard) => return self.load_or_share(guard, key, miss),
            }
        }
    }

    /// A guard this miss got, perhaps handed over by a load that failed since it began: then
    /// the guard goes on to the next waiter and the miss shares the error.
    fn load_or_share<'a>(
        &self,
        guard: LoadGuard<'a, K, M>,
        key: &K,
        miss: &Miss<'_, K>,
    ) -> Lookup<'a, K, M> {
        match self.failed_since(key, miss) {
            Some(error) => {
                drop(guard);
                bump(&self.counters.coalesced);
                Lookup::Failed { error, stale: None }
            }
            None => Lookup::Load { guard, stale: None },
        }
    }

    /// Puts an expired entry back after a failed load, so later reads can serve it again
    /// (`stale_if_error`), unless the key was invalidated meanwhile.
    pub(crate) fn restore_stale(
        &self,
        guard: LoadGuard<'_, K, M>,
        key: &K,
        ticket: Ticket,
        stale: Entry<M>,
    ) {
        let stripe = lock(self.stripe(key));
        if self.admits(&stripe, ticket) {
            let _ = guard.insert(stale);
        }
    }

    /// Whether an expired entry may still be served because loading failed.
    pub(crate) fn may_serve_stale(&self, stale: &Entry<M>) -> bool {
        self.stale_if_error_ms.is_some_and(|window| {
            stale.is_of_generation(self.generation.load(Ordering::Acquire))
                && self.clock.now_ms() < stale.expires_at().saturating_add(window)
        })
    }

    /// Taken before a load reads the database.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket {
            generation: self.generation.load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Whether a fill or put that took `ticket` may be made now, under its stripe's lock:
    /// no write or invalidation of the stripe since, no quarantine, and no entity-wide
    /// invalidation since (the whole generation is compared here; entries keep only its low
    /// bits).
    fn admits(&self, stripe: &Stripe<K>, ticket: Ticket) -> bool {
        stripe.admits(ticket, self.clock.now_ms())
            && ticket.generation == self.generation.load(Ordering::Acquire)
    }

    fn stripe(&self, key: &K) -> &Mutex<Stripe<K>> {
        // A power of two: the mask is the modulo.
        &self.stripes[(self.hasher.hash_one(key) as usize) & (self.stripes.len() - 1)]
    }

    fn next_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The expiry of an entry filled now: the effective TTL (`None`: negative entries, the
    /// negative TTL, at most the effective TTL) with `jitter` of it taken off at random.
    fn expiry_now(&self, negative_ttl_ms: Option<u64>) -> u64 {
        let ttl = self.effective_ttl_ms();
        match negative_ttl_ms {
            None => self.expiry(ttl, (ttl as f64 * self.jitter) as u64),
            Some(negative) => self.expiry(negative.min(ttl), 0),
        }
    }

    /// TTL with jitter taken off, from a splitmix64 sequence (no allocation, no lock).
    fn expiry(&self, ttl_ms: u64, jitter_ms: u64) -> u64 {
        let jitter = if jitter_ms == 0 {
            0
        } else {
            let mut z = self
                .rng
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % (jitter_ms + 1)
        };
        self.clock.now_ms().saturating_add(ttl_ms - jitter)
    }

    /// The entry a loaded value becomes; `None` when absence is not cached at all.
    fn entry_for(&self, value: Option<Arc<M>>, generation: u32) -> Option<Entry<M>> {
        let expires_at = match (&value, self.negative_ttl_ms) {
            (Some(_), _) => self.expiry_now(None),
            (None, Some(neg)) => self.expiry_now(Some(neg)),
            (None, None) => return None,
        };
        Some(Entry::new(value, expires_at, generation, false, false))
    }

    /// Fills the result of a guarded load, unless the key was invalidated or written since
    /// `ticket` was taken. A refused fill drops the guard, so a waiter loads afresh.
    pub(crate) fn fill_guarded(
        &self,
        guard: LoadGuard<'_, K, M>,
        key: &K,
        ticket: Ticket,
        value: Option<Arc<M>>,
    ) {
        let stripe = lock(self.stripe(key));
        if !self.admits(&stripe, ticket) {
            drop(stripe);
            bump(&self.counters.stale_fills_rejected);
            return;
        }
        match self.entry_for(value.clone(), ticket.generation) {
            Some(entry) => {
                let _ = guard.insert(entry);
            }
            None => {
                // Negative caching is off: hand "no such row" to this load's waiters only.
                let entry = Entry::new(value, u64::MAX, ticket.generation, true, false);
                let _ = guard.insert(entry);
                self.cache.remove_if(key, Entry::is_transient);
            }
        }
    }

    /// Fills a value loaded without a guard (batch loads, warming), under the same check.
    /// A dirty entry (a write-behind write the table may not hold yet) is never replaced:
    /// the loaded row can be older than it. Replacing a resident entry counts as `replaced`,
    /// not as an eviction.
    pub(crate) fn fill(&self, key: K, ticket: Ticket, value: Option<Arc<M>>) {
        let stripe = lock(self.stripe(&key));
        if !self.admits(&stripe, ticket) {
            drop(stripe);
            bump(&self.counters.stale_fills_rejected);
            return;
        }
        let resident = self.cache.peek(&key);
        if resident.as_ref().is_some_and(Entry::is_dirty) {
            drop(stripe);
            bump(&self.counters.stale_fills_rejected);
            return;
        }
        if let Some(entry) = self.entry_for(value, ticket.generation) {
            let mut replacing = Replacing(resident.is_some());
            if replacing.0 {
                bump(&self.counters.replaced);
            }
            self.cache.insert_with_lifecycle(key, entry, &mut replacing);
        }
    }

    /// Taken by the flusher before it claims outbox rows: every dirty entry set before has a
    /// smaller sequence number, and its row committed before, so the claim sees it.
    pub(crate) fn flush_mark(&self) -> u64 {
        self.dirty_seq.load(Ordering::Acquire)
    }

    /// The flusher applied the key's pending rows, claimed after `mark` was taken: its entry
    /// is clean again if it was set before `mark` (a later write keeps it dirty). An entry set
    /// after the mark whose row the claim still saw stays pinned until its TTL runs out.
    pub(crate) fn mark_flushed(&self, key: &K, mark: u64) {
        let mut stripe = lock(self.stripe(key));
        match stripe.dirty_seq(key) {
            Some(seq) if seq < mark => stripe.set_dirty(key, None),
            _ => return,
        }
        let Some(entry) = self.cache.peek(key) else {
            return;
        };
        if !entry.is_dirty() {
            return;
        }
        let clean = entry.cleaned();
        let mut replacing = Replacing(true);
        let _ = self
            .cache
            .replace_with_lifecycle(key.clone(), clean, true, &mut replacing);
    }

    fn insert_current(&self, key: K, value: Arc<M>, dirty: bool) {
        let entry = Entry::new(
            Some(value),
            self.expiry_now(None),
            self.generation.load(Ordering::Acquire),
            false,
            dirty,
        );
        let mut replacing = Replacing(false);
        if self.cache.peek(&key).is_some() {
            bump(&self.counters.replaced);
            replacing.0 = true;
        }
        self.cache.insert_with_lifecycle(key, entry, &mut replacing);
    }

    /// The fence every written value passes to enter the store (write-through, write-behind,
    /// a transaction's writes at its commit): sets `key` to `value`, a value its writer got
    /// back from the database (or, under write-behind, whose outbox row committed), unless the
    /// key was written or invalidated since `ticket` was taken before the write, an
    /// entity-wide invalidation came since, or the key is quarantined. Then the key is
    /// invalidated instead: two writers racing to put their rows, or a write racing an
    /// invalidation from another path, can never leave the older row cached. Either way every
    /// load of the key that started before is refused. Returns whether the value was put.
    ///
    /// Loads pass the same check at fill ([`fill_guarded`](Self::fill_guarded),
    /// [`fill`](Self::fill)). Keys share stripes, so a put can be refused because another key
    /// of its stripe was written meanwhile: that costs a reload, never a stale entry.
    ///
    /// `dirty`: a write-behind write, pinned against eviction until
    /// [`mark_flushed`](Self::mark_flushed).
    pub(crate) fn put(&self, key: K, ticket: Ticket, value: Arc<M>, dirty: bool) -> bool {
        let mut stripe = lock(self.stripe(&key));
        let unchanged = self.admits(&stripe, ticket);
        stripe.epoch = self.next_epoch();
        if unchanged {
            let seq = dirty.then(|| self.dirty_seq.fetch_add(1, Ordering::AcqRel));
            stripe.set_dirty(&key, seq);
            self.insert_current(key, value, dirty);
        } else {
            bump(&self.counters.stale_fills_rejected);
            stripe.set_dirty(&key, None);
            if self.cache.remove(&key).is_some() {
                bump(&self.counters.invalidated);
            }
        }
        unchanged
    }

    /// Deletes a key's entry and refuses every load of the key that started before; counted
    /// as a local invalidation.
    pub(crate) fn invalidate(&self, key: &K) {
        bump(&self.counters.local_invalidations);
        self.remove(key);
    }

    /// Applies another instance's invalidation (the caller counts it): the key's, as
    /// [`invalidate`](Self::invalidate) does, or (`None`) the whole entity's, as
    /// [`invalidate_all`](Self::invalidate_all) does.
    pub(crate) fn invalidate_remote(&self, key: Option<&K>) {
        match key {
            Some(key) => self.remove(key),
            None => self.clear(),
        }
    }

    fn remove(&self, key: &K) {
        let mut stripe = lock(self.stripe(key));
        stripe.epoch = self.next_epoch();
        stripe.set_dirty(key, None);
        if self.cache.remove(key).is_some() {
            bump(&self.counters.invalidated);
        }
    }

    /// Invalidates a key and refuses every fill of its stripe for `for_ms` milliseconds.
    pub(crate) fn quarantine(&self, key: &K, for_ms: u64) {
        bump(&self.counters.local_invalidations);
        let until = self.clock.now_ms().saturating_add(for_ms);
        let mut stripe = lock(self.stripe(key));
        stripe.epoch = self.next_epoch();
        stripe.quarantine_until = stripe.quarantine_until.max(until);
        stripe.set_dirty(key, None);
        if self.cache.remove(key).is_some() {
            bump(&self.counters.invalidated);
        }
    }

    /// Makes every entry of the entity stale, and every load in flight unfit to fill; counted
    /// as a local invalidation.
    pub(crate) fn invalidate_all(&self) {
        bump(&self.counters.local_invalidations);
        self.clear();
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.next_epoch();
        let before = self.cache.len();
        self.cache.clear();
        crate::stats::add(&self.counters.invalidated, before as u64);
    }

    /// Entries held now.
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of two entries on a manual clock, with no sampler, and its counters.
    fn small_store() -> (Store<i64, i64>, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let store = Store::new(
            &CacheConfig::default().capacity(2),
            Clock::manual(),
            counters.clone(),
            None,
        );
        (store, counters)
    }

    #[test]
    fn replacing_an_entry_is_not_an_eviction() {
        let (store, counters) = small_store();
        for round in 0..10 {
            assert!(store.put(1, store.ticket(), Arc::new(round), false));
        }
        assert_eq!(counters.replaced.load(Ordering::Relaxed), 9);
        assert_eq!(counters.evicted.load(Ordering::Relaxed), 0);
        for key in 2..20 {
            assert!(store.put(key, store.ticket(), Arc::new(key), false));
        }
        assert!(counters.evicted.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_fill_from_before_a_whole_cycle_of_kept_generation_bits_is_refused() {
        // Entries keep the generation's low bits only: after 2^GENERATION_BITS entity-wide
        // invalidations an old ticket's generation looks current in an entry. The fill check
        // compares the whole generation, so the load's old row is not cached.
        let (store, _) = small_store();
        let ticket = store.ticket();
        for _ in 0..1u32 << entry::GENERATION_BITS {
            store.invalidate_all();
        }
        store.fill(1, ticket, Some(Arc::new(1)));
        assert!(
            store.peek(&1).is_none(),
            "a row loaded before the invalidations was cached"
        );
        store.fill(1, store.ticket(), Some(Arc::new(2)));
        assert_eq!(store.peek(&1), Some(Some(Arc::new(2))));
    }

    #[test]
    fn an_entry_keeps_its_expiry_generation_and_flags() {
        let entry = Entry::new(Some(Arc::new(7)), 123_456, 0xabc_def, false, true);
        assert_eq!(entry.expires_at(), 123_456);
        assert!(entry.is_of_generation(0xabc_def));
        assert!(!entry.is_of_generation(0xabc_dee));
        assert!(entry.is_dirty() && !entry.is_transient());
        let clean = entry.cleaned();
        assert!(!clean.is_dirty() && clean.expires_at() == 123_456);
        let never = Entry::new(None::<Arc<i64>>, u64::MAX, 0, true, false);
        assert!(never.is_transient() && !never.is_dirty());
        assert!(
            never.expires_at() > 100 * 365 * 24 * 3_600 * 1_000,
            "never expires"
        );
    }
}
