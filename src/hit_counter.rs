//! The hit counters: counted on every cache hit, from every thread that reads.
//!
//! One shared atomic would be written by every core on every hit, so under concurrent
//! readers its cache line would move between cores on each one. Instead each thread that
//! reads gets a slot of its own (a cache line, leased from a process-wide pool and returned
//! when the thread exits) and counts there with a plain load and store, which no other thread
//! writes. Reading the counters sums the slots. A thread beyond [`SLOTS`] live readers, or one
//! counting while its thread-locals are being torn down, counts with `fetch_add` on a shared
//! line instead. Every hit is counted exactly once either way.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// Slots per counter set: threads that can count without a locked instruction at once.
pub(crate) const SLOTS: usize = 64;

/// One thread's counts, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    hits: AtomicU64,
    negative_hits: AtomicU64,
}

/// An entity's hit and negative-hit counts.
#[derive(Debug)]
pub(crate) struct HitCounter {
    slots: [Slot; SLOTS],
    /// Counts of threads without a slot.
    shared: Slot,
}

impl Default for HitCounter {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot::default()),
            shared: Slot::default(),
        }
    }
}

impl Slot {
    #[inline]
    fn lane(&self, negative: bool) -> &AtomicU64 {
        if negative {
            &self.negative_hits
        } else {
            &self.hits
        }
    }
}

impl HitCounter {
    /// Counts one hit; `negative`: one answered with "no such row".
    #[inline]
    pub(crate) fn bump(&self, negative: bool) {
        match thread_slot() {
            Some(index) => {
                // Only this thread writes this slot while it holds the lease: a plain
                // load and store cannot lose a count.
                let counter = self.slots[index].lane(negative);
                counter.store(counter.load(Relaxed) + 1, Relaxed);
            }
            None => {
                self.shared.lane(negative).fetch_add(1, Relaxed);
            }
        }
    }

    /// `(hits, negative_hits)` so far.
    pub(crate) fn get(&self) -> (u64, u64) {
        self.slots.iter().chain(std::iter::once(&self.shared)).fold(
            (0, 0),
            |(hits, negative), slot| {
                (
                    hits + slot.hits.load(Relaxed),
                    negative + slot.negative_hits.load(Relaxed),
                )
            },
        )
    }
}

/// Slot indexes no live thread holds.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// Slot indexes handed out so far (the pool grows up to [`SLOTS`]).
static ISSUED: AtomicUsize = AtomicUsize::new(0);

/// A thread's slot index, returned to [`FREE`] when the thread exits. The return (a mutex
/// release) orders the exiting thread's last counts before the next holder's first.
struct Lease(Option<usize>);

impl Lease {
    fn take() -> Self {
        let reused = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        Self(reused.or_else(|| {
            let index = ISSUED.fetch_add(1, Relaxed);
            (index < SLOTS).then_some(index)
        }))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Counts after this point (other thread-locals' destructors) go to the shared line.
        let _ = INDEX.try_with(|cell| cell.set(SLOTS));
        if let Some(index) = self.0.take() {
            FREE.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(index);
        }
    }
}

thread_local! {
    static LEASE: Lease = Lease::take();
    /// The lease's index, cached where reading it costs no destructor-state check;
    /// `usize::MAX` until the lease is taken, `SLOTS` when there is none.
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's slot, leasing one on first use; `None` without one.
#[inline]
fn thread_slot() -> Option<usize> {
    let index = INDEX.with(Cell::get);
    if index < SLOTS {
        return Some(index);
    }
    if index == usize::MAX {
        return lease_slot();
    }
    None
}

#[cold]
fn lease_slot() -> Option<usize> {
    // Fails while the thread's thread-locals are being destroyed: count on the shared line.
    let index = LEASE.try_with(|lease| lease.0).ok().flatten();
    let _ = INDEX.try_with(|cell| cell.set(index.unwrap_or(SLOTS)));
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let counter = std::sync::Arc::new(HitCounter::default());
        // More threads than slots, so some count on the shared line.
        let threads: Vec<_> = (0..SLOTS + 8)
            .map(|i| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        counter.bump(i % 2 == 1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a counting thread panicked");
        }
        let n = (SLOTS + 8) as u64 * 1_000;
        assert_eq!(counter.get(), (n / 2, n / 2));
    }
}
