//! [`Coherence`]: the settings of the invalidation log.

use std::time::Duration;

/// Settings of the invalidation log that keeps several instances' caches right
/// ([`CacheLayerBuilder::coherence`](crate::CacheLayerBuilder::coherence)); on by default,
/// except on an in-memory SQLite database.
///
/// With coherence on, every write made through the layer (repository writes under every
/// policy, statements on [`CachedConnection`](crate::CachedConnection) and in
/// [`CachedTransaction`](crate::CachedTransaction), write-behind acknowledgements) adds a row
/// per key to `sea_orm_cache_invalidation` in its own transaction, and a background tailer
/// applies the rows other instances wrote within about `poll_interval`. Off, an instance
/// learns nothing of other instances' writes: it serves what it cached until the entry's TTL
/// runs out. Unless the builder says otherwise it is on, except on an in-memory SQLite
/// database.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Coherence {
    /// Whether the layer writes and tails the log.
    pub enabled: bool,
    /// How often the tailer reads the log when nothing wakes it: on MySQL/MariaDB and SQLite
    /// always, on Postgres while its listener is not connected (or `listen` is off).
    pub poll_interval: Duration,
    /// Postgres with the listener connected: how often the tailer reads the log without a
    /// notification, the backstop for a notification lost. Every write's notification wakes
    /// the tailer at once, so an idle instance reads the log this often and no more.
    pub backstop_interval: Duration,
    /// Postgres only: whether a listener wakes the tailer on every write's notification
    /// (on by default); off, the tailer only polls.
    pub listen: bool,
    /// How long log rows are kept. Any instance prunes older ones; an instance that has not
    /// read the log for half of it (paused, partitioned) drops every entry it holds when it
    /// next reads (a reset), since rows it never read may be gone.
    pub retention: Duration,
    /// MySQL/MariaDB only: how long the tailer waits for a missing log id (a transaction that
    /// has its id but has not committed yet) before it takes it for a rollback and reads on.
    pub gap_timeout: Duration,
}

impl Default for Coherence {
    /// On: polls every 100 ms (on Postgres: listens, and reads every 2 s without a
    /// notification), keeps log rows for an hour, and waits 10 s for a missing id.
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_millis(100),
            backstop_interval: Duration::from_secs(2),
            listen: true,
            retention: Duration::from_secs(3600),
            gap_timeout: Duration::from_secs(10),
        }
    }
}

impl Coherence {
    /// Coherence on, with the default intervals ([`Coherence::default`]).
    pub fn on() -> Self {
        Self::default()
    }

    /// Coherence off: nothing is written to the log or read from it (a single instance).
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Sets how often the tailer reads the log.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets how often the tailer reads the log while the Postgres listener is connected.
    #[must_use]
    pub fn backstop_interval(mut self, interval: Duration) -> Self {
        self.backstop_interval = interval;
        self
    }

    /// Sets how long log rows are kept.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Turns the Postgres listener on or off (off: the tailer only polls).
    #[must_use]
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Sets how long a missing log id is waited for (MySQL/MariaDB).
    #[must_use]
    pub fn gap_timeout(mut self, timeout: Duration) -> Self {
        self.gap_timeout = timeout;
        self
    }
}
