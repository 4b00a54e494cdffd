//! The bound on one entity's pending outbox rows (`max_pending`) and the flusher's wake-ups:
//! writers reserve room before their row is written and wait while there is none; commits
//! wake the flusher when a batch of distinct keys is waiting or the bound is reached.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::config::WriteBehindConfig;
use crate::error::{Error, Result};

/// The outbox's pending work, as this instance knows it. The bound on pending work is
/// `counted + in_flight`; a count of the table replaces `counted`, keeping the commits made
/// while it ran, and never touches `in_flight`, so it can err high but never low.
#[derive(Debug, Default)]
pub(crate) struct Depth {
    /// Rows in the outbox: the last count, plus commits since, less rows applied since.
    pub(crate) counted: i64,
    /// Rows reserved here whose insert has not committed (or failed) yet.
    in_flight: i64,
    /// Commits here, ever: how a count learns which commits it may have missed.
    pub(crate) commits: u64,
}

impl Depth {
    fn total(&self) -> usize {
        (self.counted + self.in_flight).max(0) as usize
    }
}

/// One entity's bound on pending rows, and the notifications between its writers and its
/// flusher.
#[derive(Debug)]
pub(crate) struct Backpressure {
    /// Distinct keys that fill a batch.
    batch: usize,
    /// The bound on pending rows.
    max_pending: usize,
    depth: Mutex<Depth>,
    /// Distinct keys written since the last flush began: `batch` of them fill a batch.
    window_keys: Mutex<HashSet<String>>,
    /// Wakes the flusher: new rows, a full batch, a committed transaction, shutdown.
    pub(crate) wake: Notify,
    /// Wakes writers waiting for room below `max_pending`.
    pub(crate) room: Notify,
    stopping: AtomicBool,
}

impl Backpressure {
    pub(crate) fn new(config: &WriteBehindConfig) -> Self {
        Self {
            batch: config.batch,
            max_pending: config.max_pending,
            depth: Mutex::new(Depth::default()),
            window_keys: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            room: Notify::new(),
            stopping: AtomicBool::new(false),
        }
    }

    pub(crate) fn depth_lock(&self) -> MutexGuard<'_, Depth> {
        self.depth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rows pending, as far as this instance knows, reservations included.
    pub(crate) fn depth(&self) -> usize {
        self.depth_lock().total()
    }

    /// Whether [`stop`](Self::stop) was called.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Refuses new reservations ([`Error::Shutdown`]) and wakes everyone waiting.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_one();
        self.room.notify_waiters();
    }

    /// Reserves room for one row below `max_pending`, waiting while there is none. The
    /// reservation is in flight until the row commits ([`committed`](Self::committed)) or
    /// fails ([`release`](Self::release)).
    pub(crate) async fn reserve(&self) -> Result<()> {
        let bound = self.max_pending as i64;
        let try_reserve = || {
            let mut depth = self.depth_lock();
            let room = depth.counted + depth.in_flight < bound;
            if room {
                depth.in_flight += 1;
            }
            room
        };
        loop {
            if self.stopping() {
                return Err(Error::Shutdown);
            }
            if try_reserve() {
                return Ok(());
            }
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if try_reserve() {
                return Ok(());
            }
            self.wake.notify_one();
            room.await;
        }
    }

    /// A reserved row did not commit.
    pub(crate) fn release(&self) {
        self.depth_lock().in_flight -= 1;
        self.room.notify_waiters();
    }

    /// A reserved row for `key` (its key text) has committed: it is pending, and the flusher
    /// may have a batch.
    pub(crate) fn committed(&self, key: String) {
        let depth = {
            let mut depth = self.depth_lock();
            depth.in_flight -= 1;
            depth.counted += 1;
            depth.commits += 1;
            depth.total()
        };
        let keys = {
            let mut keys = self.window_keys_lock();
            keys.insert(key);
            keys.len()
        };
        if keys == 1 || self.window_full_at(keys, depth) {
            self.wake.notify_one();
        }
    }

    fn window_keys_lock(&self) -> MutexGuard<'_, HashSet<String>> {
        self.window_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A flush begins: keys written from now on gather the next window.
    pub(crate) fn new_window(&self) {
        self.window_keys_lock().clear();
    }

    /// A batch of distinct keys is waiting, or the bound is reached: flush before `max_delay`.
    pub(crate) fn window_full(&self) -> bool {
        let keys = self.window_keys_lock().len();
        self.window_full_at(keys, self.depth())
    }

    fn window_full_at(&self, keys: usize, depth: usize) -> bool {
        keys >= self.batch || depth >= self.max_pending
    }
}

/// Room reserved for a row in a caller's transaction: [`commit`](Self::commit) it from the
/// transaction's commit effect; dropped instead (a rollback), it is released.
#[derive(Debug)]
pub(crate) struct Reservation {
    pressure: Arc<Backpressure>,
    key: Option<String>,
}

impl Reservation {
    /// Room already reserved (by [`Backpressure::reserve`]) for a row of `key`.
    pub(crate) fn new(pressure: Arc<Backpressure>, key: String) -> Self {
        Self {
            pressure,
            key: Some(key),
        }
    }

    /// The row committed.
    pub(crate) fn commit(mut self) {
        if let Some(key) = self.key.take() {
            self.pressure.committed(key);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.pressure.release();
        }
    }
}
