//! The fence's parts: the [`Ticket`] a load or write takes before it reads or writes the
//! database, and the per-stripe state ([`Stripe`]) every fill and put is checked against,
//! which also keeps the outcome of failed loads for the misses that waited for them.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::Error;

/// Taken before a load reads the database; checked when its result is filled in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    pub(super) epoch: u64,
    pub(super) generation: u32,
}

/// The fill check's state for the keys that hash to one stripe: 32 bytes, since an entity
/// has one per 16 entries of its capacity; what only write-behind writes and failed loads
/// need is boxed apart ([`Rare`]) and absent otherwise.
#[derive(Debug)]
pub(super) struct Stripe<K> {
    /// Epoch of the last invalidation or write of a key of this stripe.
    pub(super) epoch: u64,
    /// No fill before this time (clock milliseconds).
    pub(super) quarantine_until: u64,
    /// Misses of this stripe's keys in progress (see `Store::begin_miss`).
    pub(super) misses: u32,
    /// Dirty entries and failed loads of this stripe's keys; `None` while there are none.
    rare: Option<Box<Rare<K>>>,
}

/// The parts of a stripe most stripes never use.
#[derive(Debug)]
struct Rare<K> {
    /// The write sequence numbers of this stripe's dirty entries (write-behind writes not
    /// yet applied to the table), by key.
    dirty: Vec<(K, u64)>,
    /// The error of each key's last failed load and its failure number, kept while a miss of
    /// the stripe is in progress: a miss that began before the failure shares it instead of
    /// loading again. Emptied when the stripe's last miss ends, so it holds at most one
    /// error per key with a miss in progress.
    failures: Vec<(K, u64, Error)>,
}

impl<K> Default for Stripe<K> {
    fn default() -> Self {
        Self {
            epoch: 0,
            quarantine_until: 0,
            misses: 0,
            rare: None,
        }
    }
}

impl<K> Stripe<K> {
    fn rare(&mut self) -> &mut Rare<K> {
        self.rare.get_or_insert_with(|| {
            Box::new(Rare {
                dirty: Vec::new(),
                failures: Vec::new(),
            })
        })
    }

    /// Drops the rare parts once both are empty.
    fn tidy(&mut self) {
        if self
            .rare
            .as_ref()
            .is_some_and(|rare| rare.dirty.is_empty() && rare.failures.is_empty())
        {
            self.rare = None;
        }
    }

    /// Forgets every failed load (the stripe's last miss ended).
    pub(super) fn forget_failures(&mut self) {
        if let Some(rare) = &mut self.rare {
            rare.failures = Vec::new();
            self.tidy();
        }
    }
}

impl<K: Eq> Stripe<K> {
    /// Records `key`'s dirty write `seq`, or (`None`) forgets it.
    pub(super) fn set_dirty(&mut self, key: &K, seq: Option<u64>)
    where
        K: Clone,
    {
        if seq.is_none() && self.rare.is_none() {
            return;
        }
        let dirty = &mut self.rare().dirty;
        let at = dirty.iter().position(|(k, _)| k == key);
        match (at, seq) {
            (Some(at), Some(seq)) => dirty[at].1 = seq,
            (Some(at), None) => {
                dirty.swap_remove(at);
            }
            (None, Some(seq)) => dirty.push((key.clone(), seq)),
            (None, None) => {}
        }
        self.tidy();
    }

    /// `key`'s dirty write sequence number, if it has one.
    pub(super) fn dirty_seq(&self, key: &K) -> Option<u64> {
        self.rare
            .as_ref()?
            .dirty
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, seq)| *seq)
    }

    /// Records `key`'s failed load, failure number `seq`, over any earlier one of the key.
    pub(super) fn set_failure(&mut self, key: &K, seq: u64, error: &Error)
    where
        K: Clone,
    {
        let failures = &mut self.rare().failures;
        match failures.iter_mut().find(|(k, _, _)| k == key) {
            Some(slot) => (slot.1, slot.2) = (seq, error.clone()),
            None => failures.push((key.clone(), seq, error.clone())),
        }
    }

    /// The error of `key`'s load that failed after failure number `seen`, if one did.
    pub(super) fn failure_after(&self, key: &K, seen: u64) -> Option<Error> {
        self.rare
            .as_ref()?
            .failures
            .iter()
            .find(|(k, seq, _)| k == key && *seq > seen)
            .map(|(_, _, error)| error.clone())
    }

    /// Whether a load that took `ticket` may fill now.
    pub(super) fn admits(&self, ticket: Ticket, now_ms: u64) -> bool {
        self.epoch <= ticket.epoch && now_ms >= self.quarantine_until
    }
}

pub(super) fn lock<K>(stripe: &Mutex<Stripe<K>>) -> MutexGuard<'_, Stripe<K>> {
    // The critical sections below cannot panic half-way; a poisoned stripe is still consistent.
    stripe.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripe_of_an_integer_key_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Stripe<i64>>(), 32);
    }
}
