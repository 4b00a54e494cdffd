//! [`CoherenceStats`]: what a layer's tailer has done.

/// A snapshot of a layer's tailer figures, from
/// [`CacheLayer::coherence_stats`](crate::CacheLayer::coherence_stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoherenceStats {
    /// Log rows of other instances applied here.
    pub applied: u64,
    /// Polls of the log (a read of the log, or on SQLite a `PRAGMA data_version` that found
    /// nothing committed and skipped the read).
    pub polls: u64,
    /// SQLite: polls that skipped reading the log because `PRAGMA data_version` showed no
    /// commit since the previous poll.
    pub unchanged_polls: u64,
    /// Reads of the log that failed (retried at the next poll).
    pub poll_errors: u64,
    /// Missing log ids given up on after `gap_timeout` (MySQL/MariaDB).
    pub gaps_passed: u64,
    /// Times the Postgres listener lost its connection (each time the tailer read the log at
    /// once, and the listener reconnected).
    pub listener_reconnects: u64,
    /// Times this instance dropped every entry because it had not read the log for half the
    /// retention (rows it never read may have been pruned).
    pub resets: u64,
    /// Log rows whose key text named no key of their entity (a key type whose feature of
    /// this crate is off, a hand-written row): each dropped every entry of that entity.
    pub undecodable_keys: u64,
    /// Log rows this instance pruned.
    pub pruned: u64,
    /// Milliseconds from the last applied row's write to its application here (wall clocks
    /// of two hosts: skew between them shows here).
    pub last_lag_ms: u64,
    /// The largest such lag seen.
    pub max_lag_ms: u64,
}
