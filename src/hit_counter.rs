//! The hit counters: counted on every cache hit, from every thread that reads.
//!
//! A read-modify-write on shared memory (`fetch_add`) is the dearest instruction a hit would
//! run: on the 2-core Intel VM the bench runs on, each locked instruction costs about 9 ns,
//! as much as a quarter of a raw quick_cache lookup. So a hit counts without one: every thread
//! that counts gets a *slot* of its own, the same index in every entity's counter, and counts
//! there with a plain load and store. Only that thread writes its slot while it runs, so no
//! count is lost; readers sum the slots with atomic loads, so none is torn.
//!
//! Slots are handed out from one process-wide list when a thread first counts, and given back
//! when the thread exits (its count stays in the slot, for the next owner to continue). The
//! list's mutex orders the old owner's last store before the new owner's first load. A thread
//! that finds every slot taken, or counts while it exits, counts on a shared line with
//! `fetch_add` instead: exact, only dearer.
//!
//! Finding the slot is one read of a constant-initialised thread-local (an `fs`-relative load
//! on x86-64 Linux), no lazy initialisation on the hit path. A thread's first count is the
//! exception, once per thread: it takes the list's mutex and registers the release at thread
//! exit (which may allocate in the standard library's list of thread-local destructors).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// Threads that count with plain stores at once; more count on the shared line.
pub(crate) const SLOTS: usize = 64;

/// A thread's slot before it first counts.
const UNASSIGNED: u32 = u32::MAX;
/// A thread that found no free slot, or whose slot was given back as it exits.
const SHARED: u32 = u32::MAX - 1;

thread_local! {
    /// This thread's slot index (`UNASSIGNED`, `SHARED`, or below `SLOTS`).
    static SLOT: Cell<u32> = const { Cell::new(UNASSIGNED) };
    /// Gives the slot back when the thread exits; set when a slot is taken.
    static RELEASE: SlotRelease = const { SlotRelease(Cell::new(UNASSIGNED)) };
}

/// The slots no running thread holds, and the next never-used one.
static FREE: Mutex<FreeSlots> = Mutex::new(FreeSlots {
    returned: Vec::new(),
    next: 0,
});

struct FreeSlots {
    returned: Vec<u32>,
    next: u32,
}

struct SlotRelease(Cell<u32>);

impl Drop for SlotRelease {
    fn drop(&mut self) {
        let slot = self.0.get();
        if slot as usize >= SLOTS {
            return;
        }
        // Whatever counts after this, on this thread, counts on the shared line.
        let _ = SLOT.try_with(|s| s.set(SHARED));
        let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
        free.returned.push(slot);
    }
}

/// Takes a slot for this thread (or settles on the shared line), once per thread.
#[cold]
#[inline(never)]
fn assign() -> u32 {
    let taken = {
        let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
        match free.returned.pop() {
            Some(slot) => Some(slot),
            None if (free.next as usize) < SLOTS => {
                free.next += 1;
                Some(free.next - 1)
            }
            None => None,
        }
    };
    let slot = match taken {
        // Registering the release can fail only while the thread exits: then give it back.
        Some(slot) if RELEASE.try_with(|r| r.0.set(slot)).is_ok() => slot,
        Some(slot) => {
            let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
            free.returned.push(slot);
            SHARED
        }
        None => SHARED,
    };
    SLOT.with(|s| s.set(slot));
    slot
}

/// One line's counts.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line {
    hits: AtomicU64,
    negative_hits: AtomicU64,
}

impl Line {
    fn counter(&self, negative: bool) -> &AtomicU64 {
        if negative {
            &self.negative_hits
        } else {
            &self.hits
        }
    }
}

/// An entity's hit and negative-hit counts.
#[derive(Debug)]
pub(crate) struct HitCounter {
    slots: [Line; SLOTS],
    shared: Line,
}

impl Default for HitCounter {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| Line::default()),
            shared: Line::default(),
        }
    }
}

impl HitCounter {
    /// Counts one hit; `negative`: one answered with "no such row". Returns the count of
    /// this thread's slot before this hit (the sampler picks hits by it).
    #[inline]
    pub(crate) fn bump(&self, negative: bool) -> u64 {
        let slot = SLOT.with(Cell::get) as usize;
        match self.slots.get(slot) {
            Some(line) => {
                let counter = line.counter(negative);
                // Only this thread writes this slot while it holds it (see the module docs).
                let count = counter.load(Relaxed);
                counter.store(count + 1, Relaxed);
                count
            }
            None => self.bump_unslotted(negative),
        }
    }

    #[cold]
    #[inline(never)]
    fn bump_unslotted(&self, negative: bool) -> u64 {
        let mut slot = SLOT.with(Cell::get);
        if slot == UNASSIGNED {
            slot = assign();
        }
        match self.slots.get(slot as usize) {
            Some(_) => self.bump(negative),
            None => self.shared.counter(negative).fetch_add(1, Relaxed),
        }
    }

    /// `(hits, negative_hits)` so far.
    pub(crate) fn get(&self) -> (u64, u64) {
        self.slots.iter().chain(std::iter::once(&self.shared)).fold(
            (0, 0),
            |(hits, negative), line| {
                (
                    hits + line.hits.load(Relaxed),
                    negative + line.negative_hits.load(Relaxed),
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    /// `threads` threads that all count at once (a barrier holds each until all have
    /// started, so none exits and gives its slot back before the others take theirs).
    fn count_concurrently(counter: &Arc<HitCounter>, threads: usize, per_thread: u64) {
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (counter, barrier) = (counter.clone(), barrier.clone());
                std::thread::spawn(move || {
                    counter.bump(i % 2 == 1);
                    barrier.wait();
                    for _ in 1..per_thread {
                        counter.bump(i % 2 == 1);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("a counting thread panicked");
        }
    }

    #[test]
    fn counts_from_more_threads_than_slots_add_up_exactly() {
        // More threads than slots at once: some count on the shared line.
        let counter = Arc::new(HitCounter::default());
        let threads = SLOTS + 16;
        count_concurrently(&counter, threads, 1_000);
        let n = threads as u64 * 1_000;
        assert_eq!(counter.get(), (n / 2, n / 2));
        assert!(counter.shared.hits.load(Relaxed) + counter.shared.negative_hits.load(Relaxed) > 0);
    }

    #[test]
    fn slots_given_back_by_exited_threads_keep_their_counts() {
        // Rounds of threads, each round after the last exited: later rounds reuse the slots
        // the earlier ones gave back, and continue their counts.
        let counter = Arc::new(HitCounter::default());
        for _ in 0..10 {
            count_concurrently(&counter, 8, 500);
        }
        assert_eq!(counter.get(), (10 * 4 * 500, 10 * 4 * 500));
    }

    #[test]
    fn concurrent_threads_count_on_lines_of_their_own() {
        let counter = Arc::new(HitCounter::default());
        count_concurrently(&counter, 8, 1);
        // Each thread counted once: on a slot no other running thread had, or (all slots
        // taken by other tests' threads) on the shared line.
        let used = counter
            .slots
            .iter()
            .filter(|line| line.hits.load(Relaxed) + line.negative_hits.load(Relaxed) > 0)
            .count() as u64;
        let shared = counter.shared.hits.load(Relaxed) + counter.shared.negative_hits.load(Relaxed);
        assert_eq!(used + shared, 8, "two running threads counted on one slot");
    }
}
