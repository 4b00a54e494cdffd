//! A coarse clock in milliseconds that a cache hit reads with one atomic load.
//!
//! Reading `Instant::now()` costs about as much as a whole quick_cache lookup, so the hit path
//! reads a number that a small background thread refreshes every millisecond. Tests use
//! [`Clock::manual`] and move time with [`Clock::advance`]; background work that waits for a
//! time of this clock ([`Clock::sleep_until`], the freshness sampler) wakes when a manual
//! clock is advanced past it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// The time source of a [`CacheLayer`](crate::CacheLayer): milliseconds since it started.
#[derive(Clone, Debug)]
pub struct Clock {
    now_ms: Arc<AtomicU64>,
    /// Woken by [`advance`](Clock::advance); `None` for the system clock.
    advanced: Option<Arc<Notify>>,
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
            advanced: None,
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
            advanced: Some(Arc::new(Notify::new())),
        }
    }

    /// Moves a manual clock forward.
    ///
    /// # Panics
    /// If this is the system clock.
    pub fn advance(&self, by: Duration) {
        let advanced = self
            .advanced
            .as_ref()
            .expect("only a manual clock can be advanced");
        self.now_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
        advanced.notify_waiters();
    }

    /// Waits until [`now_ms`](Self::now_ms) reaches `ms`: a tokio sleep on the system clock,
    /// the next [`advance`](Self::advance) past it on a manual one.
    pub(crate) async fn sleep_until(&self, ms: u64) {
        match &self.advanced {
            None => loop {
                let now = self.now_ms();
                if now >= ms {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(ms - now)).await;
            },
            Some(advanced) => loop {
                let woken = advanced.notified();
                if self.now_ms() >= ms {
                    return;
                }
                woken.await;
            },
        }
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
