//! The fence's parts: the [`Ticket`] a load or write takes before it reads or writes the
//! database, and the per-stripe state ([`Stripe`]) every fill and put is checked against.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Taken before a load reads the database; checked when its result is filled in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    pub(super) epoch: u64,
    pub(super) generation: u64,
}

/// The fill check's state for the keys that hash to one stripe.
#[derive(Debug, Default)]
pub(super) struct Stripe {
    /// Epoch of the last invalidation or write of a key of this stripe.
    pub(super) epoch: u64,
    /// No fill before this time (clock milliseconds).
    pub(super) quarantine_until: u64,
}

impl Stripe {
    /// Whether a load that took `ticket` may fill now.
    pub(super) fn admits(&self, ticket: Ticket, now_ms: u64) -> bool {
        self.epoch <= ticket.epoch && now_ms >= self.quarantine_until
    }
}

pub(super) fn lock(stripe: &Mutex<Stripe>) -> MutexGuard<'_, Stripe> {
    // The critical sections below cannot panic half-way; a poisoned stripe is still consistent.
    stripe.lock().unwrap_or_else(PoisonError::into_inner)
}
