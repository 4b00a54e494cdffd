//! A coarse clock in milliseconds that a cache hit reads with one atomic load.
//!
//! Reading `Instant::now()` costs about as much as a whole quick_cache lookup, so the hit path
//! reads a number that a small background thread refreshes every millisecond while the
//! clock is in use. An idle clock costs nothing: when nothing has read it for a second the
//! thread parks, and the next read computes the time itself and wakes the thread (one
//! `Instant::now()` and an unpark, once). Background work reads the time without keeping
//! the thread awake ([`Clock::peek_ms`]). Tests use [`Clock::manual`] and move time with
//! [`Clock::advance`]; background work that waits for a time of this clock
//! ([`Clock::sleep_until`], the freshness sampler) wakes when a manual clock is advanced
//! past it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// The time source of a [`CacheLayer`](crate::CacheLayer): milliseconds since it started.
#[derive(Clone, Debug)]
pub struct Clock {
    ticks: Arc<Ticks>,
    /// Woken by [`advance`](Clock::advance); `None` for the system clock.
    advanced: Option<Arc<Notify>>,
}

/// The time a clock shows, and for the system clock what keeps it current.
#[derive(Debug)]
struct Ticks {
    now_ms: AtomicU64,
    /// Whether the time was read since the ticker last looked (always `true` for a manual
    /// clock). A reader that finds it `false` computes the time itself and wakes the ticker.
    in_use: AtomicBool,
    /// When the system clock started; `None` for a manual clock.
    start: Option<Instant>,
    /// The ticker thread, to wake it (and, on drop, to let it end).
    ticker: OnceLock<Thread>,
    /// Whether the ticker is parked (for the tests).
    #[cfg(test)]
    parked: AtomicBool,
}

impl Ticks {
    /// The system clock's time now, computed (never less than what was shown before).
    fn compute(&self, start: Instant) -> u64 {
        let now = start.elapsed().as_millis() as u64;
        self.now_ms.fetch_max(now, Ordering::AcqRel).max(now)
    }
}

impl Drop for Ticks {
    /// Wakes a parked ticker, which then finds the clock gone and ends.
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.get() {
            ticker.unpark();
        }
    }
}

/// How often the system clock's ticker refreshes the time while the clock is in use.
const TICK: Duration = Duration::from_millis(1);
/// How long the ticker keeps ticking after the last read before it parks.
const IDLE_AFTER: Duration = Duration::from_secs(1);

impl Clock {
    /// Real time, refreshed every millisecond by a background thread while the clock is
    /// read; the thread parks after a second without reads, and ends when the last clone of
    /// this clock is dropped.
    pub fn system() -> Self {
        let start = Instant::now();
        let ticks = Arc::new(Ticks {
            now_ms: AtomicU64::new(0),
            in_use: AtomicBool::new(true),
            start: Some(start),
            ticker: OnceLock::new(),
            #[cfg(test)]
            parked: AtomicBool::new(false),
        });
        let weak: Weak<Ticks> = Arc::downgrade(&ticks);
        let ticker = std::thread::Builder::new()
            .name("sea-orm-cache-clock".into())
            .spawn(move || tick(&weak, start))
            .expect("spawning the clock thread");
        let _ = ticks.ticker.set(ticker.thread().clone());
        Self {
            ticks,
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
            ticks: Arc::new(Ticks {
                now_ms: AtomicU64::new(0),
                in_use: AtomicBool::new(true),
                start: None,
                ticker: OnceLock::new(),
                #[cfg(test)]
                parked: AtomicBool::new(false),
            }),
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
        self.ticks
            .now_ms
            .fetch_add(by.as_millis() as u64, Ordering::AcqRel);
        advanced.notify_waiters();
    }

    /// Waits until [`now_ms`](Self::now_ms) reaches `ms`: a tokio sleep on the system clock,
    /// the next [`advance`](Self::advance) past it on a manual one.
    pub(crate) async fn sleep_until(&self, ms: u64) {
        match &self.advanced {
            None => loop {
                let now = self.peek_ms();
                if now >= ms {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(ms - now)).await;
            },
            Some(advanced) => loop {
                let woken = advanced.notified();
                if self.peek_ms() >= ms {
                    return;
                }
                woken.await;
            },
        }
    }

    /// Milliseconds since the clock started.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        if self.ticks.in_use.load(Ordering::Acquire) {
            return self.ticks.now_ms.load(Ordering::Acquire);
        }
        self.resume()
    }

    /// The first read after the ticker looked: the time computed here, and the ticker told
    /// the clock is in use (woken if it parked).
    #[cold]
    fn resume(&self) -> u64 {
        let ticks = &*self.ticks;
        let Some(start) = ticks.start else {
            return ticks.now_ms.load(Ordering::Acquire);
        };
        let now = ticks.compute(start);
        ticks.in_use.store(true, Ordering::Release);
        if let Some(ticker) = ticks.ticker.get() {
            ticker.unpark();
        }
        now
    }

    /// [`now_ms`](Self::now_ms) for background work: the time, computed on the system clock,
    /// without keeping its ticker awake.
    pub(crate) fn peek_ms(&self) -> u64 {
        match self.ticks.start {
            Some(start) => self.ticks.compute(start),
            None => self.ticks.now_ms.load(Ordering::Acquire),
        }
    }
}

/// The system clock's ticker: stores the time every [`TICK`] while the clock is read; parks
/// once a whole [`IDLE_AFTER`] passed without a read; ends when the clock is dropped.
fn tick(ticks: &Weak<Ticks>, start: Instant) {
    let mut looked_at = Instant::now();
    loop {
        let Some(clock) = ticks.upgrade() else {
            return;
        };
        clock.compute(start);
        let park = if looked_at.elapsed() >= IDLE_AFTER {
            looked_at = Instant::now();
            // Unread since the last look: park until a reader wakes us. Read: look again
            // after another `IDLE_AFTER` (the first read after this takes the slow path once).
            !clock.in_use.swap(false, Ordering::AcqRel)
        } else {
            false
        };
        #[cfg(test)]
        clock.parked.store(park, Ordering::Release);
        drop(clock);
        if park {
            std::thread::park();
            looked_at = Instant::now();
        } else {
            std::thread::sleep(TICK);
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch: outbox times are shared by every instance and
/// survive restarts, so they cannot come from a [`Clock`].
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (up to a minute, a failure guard) until the ticker of `clock` is parked.
    fn wait_parked(clock: &Clock) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !clock.ticks.parked.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the ticker never parked");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_unread_clock_parks_its_ticker_and_the_next_read_is_current() {
        let clock = Clock::system();
        let start = clock.ticks.start.expect("a system clock");
        wait_parked(&clock);
        let parked_at = clock.ticks.now_ms.load(Ordering::Acquire);
        // Real time moves on while the ticker sleeps: the next read must see it.
        while (start.elapsed().as_millis() as u64) < parked_at + 50 {
            std::hint::spin_loop();
        }
        let before = start.elapsed().as_millis() as u64;
        assert!(
            clock.now_ms() >= before,
            "a read after parking shows the current time"
        );
        // The read woke the ticker, which keeps the time from here on.
        let deadline = Instant::now() + Duration::from_secs(60);
        while clock.ticks.parked.load(Ordering::Acquire) {
            assert!(
                Instant::now() < deadline,
                "the read did not wake the ticker"
            );
            std::hint::spin_loop();
        }
        let woken = start.elapsed().as_millis() as u64;
        while clock.ticks.now_ms.load(Ordering::Acquire) < woken {
            assert!(Instant::now() < deadline, "the woken ticker does not tick");
            std::hint::spin_loop();
        }
    }

    #[test]
    fn background_reads_do_not_keep_the_ticker_awake() {
        let clock = Clock::system();
        let _ = clock.now_ms();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !clock.ticks.parked.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "peek_ms kept the ticker awake");
            let _ = clock.peek_ms();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
