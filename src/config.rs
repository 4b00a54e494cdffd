//! Per-entity configuration: the [`Policy`] and its [`CacheConfig`], built with chained setters,
//! declared with `#[derive(Cached)]`, or read from a config file with serde.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

// Text forms of durations, jitter and policy names: the crate `#[derive(Cached)]` checks its
// attribute with, so a config file and the derive accept the same text.
use sea_orm_cache_parse as parse;

/// How an entity's reads and writes go through the cache (DESIGN section 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Policy {
    /// The caller loads on a miss (`get_or_load`); writes go to the database, then the key is
    /// invalidated.
    CacheAside,
    /// The repository loads by primary key on a miss; writes go to the database, then the key is
    /// invalidated.
    #[default]
    ReadThrough,
    /// As read-through, and a write sets the cache to the row the database returned.
    WriteThrough,
    /// As read-through, and a write sets the cache at once and is applied to the table later,
    /// in batches, by a background flusher.
    WriteBehind,
}

impl Policy {
    /// In the order of `parse::POLICIES`.
    const ALL: [Policy; 4] = [
        Policy::CacheAside,
        Policy::ReadThrough,
        Policy::WriteThrough,
        Policy::WriteBehind,
    ];

    /// The name used in configuration (`"read_through"` and so on).
    pub fn name(self) -> &'static str {
        match self {
            Policy::CacheAside => "cache_aside",
            Policy::ReadThrough => "read_through",
            Policy::WriteThrough => "write_through",
            Policy::WriteBehind => "write_behind",
        }
    }
}

/// Tuning of the write-behind flusher.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WriteBehindConfig {
    /// Most keys applied in one flush transaction.
    pub batch: usize,
    /// Longest time a write waits before the flusher applies it.
    pub max_delay: Duration,
    /// Most outbox rows pending (not yet applied; a key written twice counts twice); past it
    /// writers wait for the flusher (backpressure).
    pub max_pending: usize,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            max_delay: Duration::from_millis(50),
            max_pending: 100_000,
        }
    }
}

/// The cache settings of one entity. Plain data: build it with the chained setters, or start
/// from [`CacheConfig::default`].
///
/// ```
/// use std::time::Duration;
/// use sea_orm_cache::{CacheConfig, Policy};
/// let config = CacheConfig::default()
///     .policy(Policy::WriteThrough)
///     .ttl(Duration::from_secs(300))
///     .ttl_jitter(0.1)
///     .capacity(10_000)
///     .negative_ttl(Some(Duration::from_secs(30)));
/// assert_eq!(config.policy, Policy::WriteThrough);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Read and write policy.
    pub policy: Policy,
    /// How long an entry is served after it was filled.
    pub ttl: Duration,
    /// Fraction of `ttl` (0.0 to 1.0) taken off at random per entry, so entries filled together
    /// do not expire together. An entry never lives longer than `ttl`.
    pub ttl_jitter: f64,
    /// Most entries held; the least useful are evicted past it.
    pub capacity: usize,
    /// Cache "no such row" for this long; `None` (the default) does not cache absence.
    pub negative_ttl: Option<Duration>,
    /// Serve an expired entry for up to this long past its expiry when the database fails.
    pub stale_if_error: Option<Duration>,
    /// Flusher settings; used by [`Policy::WriteBehind`] only.
    pub write_behind: WriteBehindConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            policy: Policy::ReadThrough,
            ttl: Duration::from_secs(300),
            ttl_jitter: 0.1,
            capacity: 10_000,
            negative_ttl: None,
            stale_if_error: None,
            write_behind: WriteBehindConfig::default(),
        }
    }
}

impl CacheConfig {
    /// Sets the policy.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the time to live.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the jitter as a fraction of the TTL.
    ///
    /// # Panics
    /// If `fraction` is not within `0.0..=1.0`.
    #[must_use]
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&fraction),
            "ttl_jitter must be within 0.0..=1.0, got {fraction}"
        );
        self.ttl_jitter = fraction;
        self
    }

    /// Sets the capacity in entries.
    ///
    /// # Panics
    /// If `entries` is zero.
    #[must_use]
    pub fn capacity(mut self, entries: usize) -> Self {
        assert!(entries > 0, "capacity must be at least 1");
        self.capacity = entries;
        self
    }

    /// Caches "no such row" for `ttl`; `None` turns negative entries off.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Serves an expired entry for up to `window` past expiry while loads fail.
    #[must_use]
    pub fn stale_if_error(mut self, window: Option<Duration>) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Sets the write-behind flusher's settings.
    #[must_use]
    pub fn write_behind(mut self, write_behind: WriteBehindConfig) -> Self {
        self.write_behind = write_behind;
        self
    }
}

impl WriteBehindConfig {
    /// Sets the batch size.
    ///
    /// # Panics
    /// If `keys` is zero.
    #[must_use]
    pub fn batch(mut self, keys: usize) -> Self {
        assert!(keys > 0, "batch must be at least 1");
        self.batch = keys;
        self
    }

    /// Sets the longest delay before a write is flushed.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the bound on pending outbox rows.
    ///
    /// # Panics
    /// If `rows` is zero.
    #[must_use]
    pub fn max_pending(mut self, rows: usize) -> Self {
        assert!(rows > 0, "max_pending must be at least 1");
        self.max_pending = rows;
        self
    }
}

// ---- serde: reading a configuration from a config file or the environment ----

/// Reads a policy name: `"cache_aside"`, `"read_through"`, `"write_through"` or
/// `"write_behind"`. A misspelt name is refused with the nearest one suggested.
impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        parse::parse_policy(&name)
            .map(|index| Policy::ALL[index])
            .map_err(de::Error::custom)
    }
}

/// Reads a configuration; a setting left out keeps its [`CacheConfig::default`] value (use
/// [`CacheConfig::overlay`] to start from another configuration, such as an entity's derive).
///
/// Durations are strings (`"50ms"`, `"30s"`, `"5m"`, `"1h30m"`), `ttl_jitter` a percentage
/// (`"10%"`) or a fraction (`0.1`), `negative_ttl` and `stale_if_error` a duration or `null` /
/// `"off"`. An unknown setting is an error. `write_behind` is read under any policy and used by
/// [`Policy::WriteBehind`] only.
///
/// ```
/// use std::time::Duration;
/// use sea_orm_cache::{CacheConfig, Policy};
/// let config: CacheConfig = serde_json::from_str(
///     r#"{ "policy": "write_behind", "ttl": "10m", "ttl_jitter": "5%", "negative_ttl": "30s",
///          "write_behind": { "max_delay": "200ms" } }"#,
/// )?;
/// assert_eq!(config.policy, Policy::WriteBehind);
/// assert_eq!(config.ttl, Duration::from_secs(600));
/// assert_eq!(config.ttl_jitter, 0.05);
/// assert_eq!(config.negative_ttl, Some(Duration::from_secs(30)));
/// assert_eq!(config.write_behind.max_delay, Duration::from_millis(200));
/// assert_eq!(config.write_behind.batch, 500); // left out: the default
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for CacheConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        CacheConfig::default().overlay(deserializer)
    }
}

/// Reads the flusher settings; one left out keeps its [`WriteBehindConfig::default`] value.
impl<'de> Deserialize<'de> for WriteBehindConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let patch = WriteBehindPatch::deserialize(deserializer)?;
        Ok(patch.apply(WriteBehindConfig::default()))
    }
}

impl CacheConfig {
    /// This configuration with the settings `source` holds read over it; the others keep
    /// their value here. `source` is any serde deserializer (a `serde_json::Value`, a TOML
    /// table, ...), in the format of `CacheConfig`'s `Deserialize`; a `null` source (such as a
    /// missing section, `&file["users"]`) changes nothing.
    ///
    /// The way to let a config file override part of an entity's `#[derive(Cached)]`:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sea_orm_cache::{CacheConfig, Policy};
    /// let derived = CacheConfig::default().policy(Policy::WriteThrough); // E::cache_config()
    /// let config = derived.overlay(serde_json::json!({ "ttl": "30s" }))?;
    /// assert_eq!(config.policy, Policy::WriteThrough); // kept
    /// assert_eq!(config.ttl, Duration::from_secs(30)); // overridden
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    /// The deserializer's error for malformed input or an unknown setting; `self` is dropped.
    pub fn overlay<'de, D: Deserializer<'de>>(self, source: D) -> Result<Self, D::Error> {
        let patch = Option::<ConfigPatch>::deserialize(source)?.unwrap_or_default();
        Ok(patch.apply(self))
    }
}

/// The settings a config source holds; `None` where it is silent.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigPatch {
    policy: Option<Policy>,
    ttl: Option<Text<Duration>>,
    ttl_jitter: Option<Jitter>,
    capacity: Option<AtLeastOne>,
    #[serde(default, deserialize_with = "present")]
    negative_ttl: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "present")]
    stale_if_error: Option<OptionalDuration>,
    write_behind: Option<WriteBehindPatch>,
}

impl ConfigPatch {
    fn apply(self, mut config: CacheConfig) -> CacheConfig {
        let Self {
            policy,
            ttl,
            ttl_jitter,
            capacity,
            negative_ttl,
            stale_if_error,
            write_behind,
        } = self;
        config.policy = policy.unwrap_or(config.policy);
        config.ttl = ttl.map_or(config.ttl, |t| t.0);
        config.ttl_jitter = ttl_jitter.map_or(config.ttl_jitter, |j| j.0);
        config.capacity = capacity.map_or(config.capacity, |c| c.0);
        config.negative_ttl = negative_ttl.map_or(config.negative_ttl, |t| t.0);
        config.stale_if_error = stale_if_error.map_or(config.stale_if_error, |w| w.0);
        if let Some(write_behind) = write_behind {
            config.write_behind = write_behind.apply(config.write_behind);
        }
        config
    }
}

/// The flusher settings a config source holds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBehindPatch {
    batch: Option<AtLeastOne>,
    max_delay: Option<Text<Duration>>,
    max_pending: Option<AtLeastOne>,
}

impl WriteBehindPatch {
    fn apply(self, mut config: WriteBehindConfig) -> WriteBehindConfig {
        config.batch = self.batch.map_or(config.batch, |b| b.0);
        config.max_delay = self.max_delay.map_or(config.max_delay, |d| d.0);
        config.max_pending = self.max_pending.map_or(config.max_pending, |p| p.0);
        config
    }
}

/// Tells a setting given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A duration written as text: `"5m"`.
struct Text<T>(T);

impl<'de> Deserialize<'de> for Text<Duration> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse::parse_duration(&text)
            .map(Text)
            .map_err(de::Error::custom)
    }
}

/// An optional duration: `"5m"`, or `null` or `"off"` for none.
struct OptionalDuration(Option<Duration>);

impl<'de> Deserialize<'de> for OptionalDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(deserializer)?.as_deref() {
            None | Some("off") => Ok(OptionalDuration(None)),
            Some(text) => parse::parse_duration(text)
                .map(|d| OptionalDuration(Some(d)))
                .map_err(de::Error::custom),
        }
    }
}

/// A count of at least 1.
struct AtLeastOne(usize);

impl<'de> Deserialize<'de> for AtLeastOne {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match usize::deserialize(deserializer)? {
            0 => Err(de::Error::custom("must be at least 1")),
            n => Ok(AtLeastOne(n)),
        }
    }
}

/// A TTL jitter: `"10%"`, `"0.1"` or `0.1`, within 0% to 100%.
struct Jitter(f64);

impl<'de> Deserialize<'de> for Jitter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JitterVisitor)
    }
}

struct JitterVisitor;

impl Visitor<'_> for JitterVisitor {
    type Value = Jitter;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a percentage such as \"10%\", or a fraction such as 0.1")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Jitter, E> {
        parse::parse_jitter(text).map(Jitter).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, fraction: f64) -> Result<Jitter, E> {
        parse::check_jitter(fraction).map(Jitter).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, fraction: u64) -> Result<Jitter, E> {
        self.visit_f64(fraction as f64)
    }

    fn visit_i64<E: de::Error>(self, fraction: i64) -> Result<Jitter, E> {
        self.visit_f64(fraction as f64)
    }
}
