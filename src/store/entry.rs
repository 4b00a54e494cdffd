//! What the store holds per key ([`Entry`]), and the quick_cache lifecycle that pins unflushed
//! write-behind entries and counts evictions ([`Evictions`]).

use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use crate::clock::Clock;
use crate::stats::{Counters, bump};

/// A cached answer: a row, or "no such row". 24 bytes: a hit copies it out of quick_cache,
/// so it is kept small (a dirty entry's write sequence number lives in its stripe).
#[derive(Debug)]
pub(crate) struct Entry<M> {
    pub(crate) value: Option<Arc<M>>,
    pub(super) expires_at: u64,
    /// The store's generation when the entry was made (the low 32 bits: an entity-wide
    /// invalidation moves it on, and only equality is asked).
    pub(super) generation: u32,
    flags: u32,
}

// The hit path copies an entry out of quick_cache: keep it at three words.
const _: () = assert!(std::mem::size_of::<Entry<u8>>() == 24);

/// Handed to waiters of one load, then removed at once (negative caching is off).
const TRANSIENT: u32 = 1;
/// A write-behind value not yet applied to the table; not evicted for capacity while fresh.
const DIRTY: u32 = 2;

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
            expires_at,
            generation,
            flags,
        }
    }

    #[inline]
    pub(super) fn is_transient(&self) -> bool {
        self.flags & TRANSIENT != 0
    }

    #[inline]
    pub(super) fn is_dirty(&self) -> bool {
        self.flags & DIRTY != 0
    }

    /// The same entry, no longer dirty.
    pub(super) fn cleaned(self) -> Self {
        Self {
            flags: self.flags & !DIRTY,
            ..self
        }
    }
}

impl<M> Clone for Entry<M> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            expires_at: self.expires_at,
            generation: self.generation,
            flags: self.flags,
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
        val.is_dirty() && self.clock.now_ms() < val.expires_at
    }

    #[inline]
    fn on_evict(&self, state: &mut Replacing, _key: K, _val: Entry<M>) {
        if !std::mem::take(&mut state.0) {
            bump(&self.counters.evicted);
        }
    }
}

pub(super) type QuickCache<K, M> = Cache<K, Entry<M>, UnitWeighter, DefaultHashBuilder, Evictions>;
