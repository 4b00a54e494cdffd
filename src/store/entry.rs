//! What the store holds per key ([`Entry`]), and the quick_cache lifecycle that pins unflushed
//! write-behind entries and counts evictions ([`Evictions`]).

use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use crate::clock::Clock;
use crate::stats::{Counters, bump};

/// A cached answer: a row, or "no such row". 16 bytes, the value and one word of metadata: a
/// hit copies it out of quick_cache, and the slab entry quick_cache keeps per key grows with
/// it (a dirty entry's write sequence number lives in its stripe).
///
/// The metadata word packs the expiry ([`EXPIRY_BITS`] bits of clock milliseconds), the low
/// [`GENERATION_BITS`] bits of the store's generation when the entry was made, and two flags.
#[derive(Debug)]
pub(crate) struct Entry<M> {
    pub(crate) value: Option<Arc<M>>,
    meta: u64,
}

// The hit path copies an entry out of quick_cache: keep it at two words.
const _: () = assert!(std::mem::size_of::<Entry<u8>>() == 16);

/// Bits of the expiry: clock milliseconds up to 2^42 (139 years after the clock started);
/// later expiries, and "never", are kept as the largest.
const EXPIRY_BITS: u32 = 42;
const EXPIRY_MASK: u64 = (1 << EXPIRY_BITS) - 1;
/// Bits of the generation kept: an entity-wide invalidation moves the generation on, and only
/// equality with the store's is asked. A fill is checked against the whole generation under
/// its stripe's lock just before it is made, so an entry of an older generation can look
/// current only if 2^20 entity-wide invalidations ran between that check and the insert.
pub(super) const GENERATION_BITS: u32 = 20;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

/// Handed to waiters of one load, then removed at once (negative caching is off).
const TRANSIENT: u64 = 1 << 62;
/// A write-behind value not yet applied to the table; not evicted for capacity while fresh.
const DIRTY: u64 = 1 << 63;

impl<M> Entry<M> {
    pub(super) fn new(
        value: Option<Arc<M>>,
        expires_at: u64,
        generation: u32,
        transient: bool,
        dirty: bool,
    ) -> Self {
        let flags = if transient { TRANSIENT } else { 0 } | if dirty { DIRTY } else { 0 };
        Self {
            value,
            meta: expires_at.min(EXPIRY_MASK)
                | ((u64::from(generation) & GENERATION_MASK) << EXPIRY_BITS)
                | flags,
        }
    }

    /// Clock milliseconds after which the entry is expired.
    #[inline]
    pub(super) fn expires_at(&self) -> u64 {
        self.meta & EXPIRY_MASK
    }

    /// Whether the entry was made in the store's generation `generation`.
    #[inline]
    pub(super) fn is_of_generation(&self, generation: u32) -> bool {
        (self.meta >> EXPIRY_BITS) & GENERATION_MASK == u64::from(generation) & GENERATION_MASK
    }

    #[inline]
    pub(super) fn is_transient(&self) -> bool {
        self.meta & TRANSIENT != 0
    }

    #[inline]
    pub(super) fn is_dirty(&self) -> bool {
        self.meta & DIRTY != 0
    }

    /// The same entry, no longer dirty.
    pub(super) fn cleaned(self) -> Self {
        Self {
            meta: self.meta & !DIRTY,
            ..self
        }
    }
}

impl<M> Clone for Entry<M> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            meta: self.meta,
        }
    }
}

/// Counts evictions (capacity pressure) into the entity's counters, and keeps fresh dirty
/// entries from being evicted.
#[derive(Clone, Debug)]
pub(crate) struct Evictions {
    pub(super) counters: Arc<Counters>,
    pub(super) clock: Clock,
}

/// Per-call state of [`Evictions`]: set when the call replaces a resident entry, whose old
/// value quick_cache hands to `on_evict` too (it is not an eviction).
#[derive(Debug, Default)]
pub(crate) struct Replacing(pub(super) bool);

impl<K, M> Lifecycle<K, Entry<M>> for Evictions {
    type RequestState = Replacing;

    /// A write-behind value the flusher has not applied yet stays until it is applied (or
    /// expires: a pin that missed its flush, see `Store::mark_flushed`, lasts one TTL at
    /// most). The store may hold more entries than its capacity meanwhile; how many is
    /// bounded by `max_pending`.
    #[inline]
    fn is_pinned(&self, _key: &K, val: &Entry<M>) -> bool {
        val.is_dirty() && self.clock.now_ms() < val.expires_at()
    }

    #[inline]
    fn on_evict(&self, state: &mut Replacing, _key: K, _val: Entry<M>) {
        if !std::mem::take(&mut state.0) {
            bump(&self.counters.evicted);
        }
    }
}

pub(super) type QuickCache<K, M> = Cache<K, Entry<M>, UnitWeighter, DefaultHashBuilder, Evictions>;
