//! A coarse clock in milliseconds that a cache hit reads with one atomic load.
//!
//! Reading `Instant::now()` costs about as much as a whole quick_cache lookup, so the hit path
//! reads a number that a small background thread refreshes every millisecond. Tests use
//! [`Clock::manual`] and move time with [`Clock::advance`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The time source of a [`CacheLayer`](crate::CacheLayer): milliseconds since it started.
#[derive(Clone, Debug)]
pub struct Clock {
    now_ms: Arc<AtomicU64>,
    manual: bool,
}

/// How often the system clock's background thread refreshes the time.
const TICK: Duration = Duration::from_millis(1);

impl Clock {
    /// Real time, refreshed every millisecond by a background thread that stops when the last
    /// clone of this clock is dropped.
    pub fn system() -> Self {
        let now_ms = Arc::new(AtomicU64::new(0));
        let weak: Weak<AtomicU64> = Arc::downgrade(&now_ms);
        let start = Instant::now();
        std::thread::Builder::new()
            .name("sea-orm-cache-clock".into())
            .spawn(move || {
                while let Some(now) = weak.upgrade() {
                    now.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    drop(now);
                    std::thread::sleep(TICK);
                }
            })
            .expect("spawning the clock thread");
        Self {
            now_ms,
            manual: false,
        }
    }

    /// A clock that only moves when [`advance`](Self::advance) is called; for tests.
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = sea_orm_cache::Clock::manual();
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(clock.now_ms(), 5_000);
    /// ```
    pub fn manual() -> Self {
        Self {
            now_ms: Arc::new(AtomicU64::new(0)),
            manual: true,
        }
    }

    /// Moves a manual clock forward.
    ///
    /// # Panics
    /// If this is the system clock.
    pub fn advance(&self, by: Duration) {
        assert!(self.manual, "only a manual clock can be advanced");
        self.now_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }

    /// Milliseconds since the clock started.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }
}

/// Wall-clock milliseconds since the Unix epoch: outbox times are shared by every instance and
/// survive restarts, so they cannot come from a [`Clock`].
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
