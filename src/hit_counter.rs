//! The hit counters: counted on every cache hit, from every thread that reads.
//!
//! One shared atomic would be written by every reading core on every hit, so under
//! concurrent readers its cache line would move between cores on each one. The counts are
//! spread over [`SHARDS`] cache lines instead, each counted with `fetch_add` (so a count is
//! never lost, whoever shares a line), and a thread picks its line from the address of its own
//! stack: threads' stacks are separate mappings megabytes apart, so concurrent readers mostly
//! write different lines, while finding the line costs no thread-local look-up (which
//! measured slower here than the count itself). Reading the counters sums the lines.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Cache lines the counts are spread over.
pub(crate) const SHARDS: usize = 16;

/// One line's counts.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard {
    hits: AtomicU64,
    negative_hits: AtomicU64,
}

/// An entity's hit and negative-hit counts.
#[derive(Debug, Default)]
pub(crate) struct HitCounter {
    shards: [Shard; SHARDS],
}

impl HitCounter {
    /// Counts one hit; `negative`: one answered with "no such row". Returns the count of
    /// its line before this hit (the sampler picks hits by it).
    #[inline]
    pub(crate) fn bump(&self, negative: bool) -> u64 {
        let marker = 0u8;
        // Bits above a thread stack's usual size: the same for every call on one thread.
        let shard = (std::ptr::addr_of!(marker) as usize >> 21) % SHARDS;
        let shard = &self.shards[shard];
        let counter = if negative {
            &shard.negative_hits
        } else {
            &shard.hits
        };
        counter.fetch_add(1, Relaxed)
    }

    /// `(hits, negative_hits)` so far.
    pub(crate) fn get(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(hits, negative), shard| {
            (
                hits + shard.hits.load(Relaxed),
                negative + shard.negative_hits.load(Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let counter = std::sync::Arc::new(HitCounter::default());
        let threads: Vec<_> = (0..SHARDS * 4)
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
        let n = (SHARDS * 4) as u64 * 1_000;
        assert_eq!(counter.get(), (n / 2, n / 2));
    }

    #[test]
    fn threads_spread_over_several_lines() {
        let counter = std::sync::Arc::new(HitCounter::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || counter.bump(false))
            })
            .collect();
        for thread in threads {
            thread.join().expect("a counting thread panicked");
        }
        let used = counter
            .shards
            .iter()
            .filter(|shard| shard.hits.load(Relaxed) > 0)
            .count();
        assert!(used > 1, "eight threads counted on one line");
    }
}
