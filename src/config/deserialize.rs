//! Reading a configuration from a config file or the environment: every setting in the text
//! forms the derive's `#[cache(...)]` accepts, and [`CacheConfig::overlay`] of one source over
//! a configuration.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

// Text forms of durations, jitter and policy names: the crate `#[derive(Cached)]` checks its
// attribute with, so a config file and the derive accept the same text.
use sea_orm_cache_parse as parse;

use super::{CacheConfig, Capture, FreshnessConfig, OverBudget, Policy, WriteBehindConfig};

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
    fill_quarantine: Option<Text<Duration>>,
    write_behind: Option<WriteBehindPatch>,
    freshness: Option<FreshnessPatch>,
    /// Shorthand for `freshness.budget`, as in `#[cache(staleness_budget = "0.01%")]`.
    #[serde(default, deserialize_with = "staleness_budget")]
    staleness_budget: Option<Option<f64>>,
    /// Shorthand for `freshness.on_over_budget`.
    on_over_budget: Option<OverBudget>,
    capture: Option<Capture>,
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
            fill_quarantine,
            write_behind,
            freshness,
            staleness_budget,
            on_over_budget,
            capture,
        } = self;
        config.policy = policy.unwrap_or(config.policy);
        config.ttl = ttl.map_or(config.ttl, |t| t.0);
        config.ttl_jitter = ttl_jitter.map_or(config.ttl_jitter, |j| j.0);
        config.capacity = capacity.map_or(config.capacity, |c| c.0);
        config.negative_ttl = negative_ttl.map_or(config.negative_ttl, |t| t.0);
        config.stale_if_error = stale_if_error.map_or(config.stale_if_error, |w| w.0);
        config.fill_quarantine = fill_quarantine.map_or(config.fill_quarantine, |q| q.0);
        if let Some(write_behind) = write_behind {
            config.write_behind = write_behind.apply(config.write_behind);
        }
        if let Some(freshness) = freshness {
            config.freshness = freshness.apply(config.freshness);
        }
        if let Some(budget) = staleness_budget {
            config.freshness.budget = budget;
        }
        if let Some(action) = on_over_budget {
            config.freshness.on_over_budget = action;
        }
        config.capture = capture.unwrap_or(config.capture);
        config
    }
}

/// The sampler settings a config source holds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreshnessPatch {
    #[serde(default, deserialize_with = "sample_rate")]
    sample_rate: Option<f64>,
    grace: Option<Text<Duration>>,
    max_samples_per_sec: Option<AtLeastOne>,
    queue: Option<AtLeastOne>,
    window: Option<Text<Duration>>,
    #[serde(default, deserialize_with = "staleness_budget")]
    budget: Option<Option<f64>>,
    on_over_budget: Option<OverBudget>,
    min_ttl: Option<Text<Duration>>,
    #[serde(default, deserialize_with = "present")]
    version_column: Option<Option<String>>,
}

impl FreshnessPatch {
    fn apply(self, mut config: FreshnessConfig) -> FreshnessConfig {
        config.sample_rate = self.sample_rate.unwrap_or(config.sample_rate);
        config.grace = self.grace.map_or(config.grace, |g| g.0);
        config.max_samples_per_sec = self
            .max_samples_per_sec
            .map_or(config.max_samples_per_sec, |n| {
                u32::try_from(n.0).unwrap_or(u32::MAX)
            });
        config.queue = self.queue.map_or(config.queue, |q| q.0);
        config.window = self.window.map_or(config.window, |w| w.0);
        config.budget = self.budget.unwrap_or(config.budget);
        config.on_over_budget = self.on_over_budget.unwrap_or(config.on_over_budget);
        config.min_ttl = self.min_ttl.map_or(config.min_ttl, |t| Some(t.0));
        config.version_column = self.version_column.unwrap_or(config.version_column);
        config
    }
}

/// Reads an over-budget action name: `"warn"` or `"shorten_ttl"`.
impl<'de> Deserialize<'de> for OverBudget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        parse::parse_over_budget(&name)
            .map(|index| OverBudget::ALL[index])
            .map_err(de::Error::custom)
    }
}

/// Reads a capture name: `"layer"` or `"triggers"`.
impl<'de> Deserialize<'de> for Capture {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        parse::parse_capture(&name)
            .map(|index| Capture::ALL[index])
            .map_err(de::Error::custom)
    }
}

/// A fraction setting written as `"0.1%"`, `"0.001"` or `0.001`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FractionText {
    Text(String),
    Number(f64),
}

fn fraction<'de, D: Deserializer<'de>>(setting: &str, d: D) -> Result<f64, D::Error> {
    match FractionText::deserialize(d)? {
        FractionText::Text(text) => parse::parse_fraction(setting, &text),
        FractionText::Number(n) => parse::check_fraction(setting, n),
    }
    .map_err(de::Error::custom)
}

fn sample_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    fraction("sample_rate", d).map(Some)
}

/// A budget: a fraction, or `null` / `"off"` for none.
fn staleness_budget<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    match Option::<FractionText>::deserialize(d)? {
        None => Ok(Some(None)),
        Some(FractionText::Text(text)) if text == "off" => Ok(Some(None)),
        Some(FractionText::Text(text)) => parse::parse_fraction("staleness_budget", &text)
            .map(|b| Some(Some(b)))
            .map_err(de::Error::custom),
        Some(FractionText::Number(n)) => parse::check_fraction("staleness_budget", n)
            .map(|b| Some(Some(b)))
            .map_err(de::Error::custom),
    }
}

/// The flusher settings a config source holds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBehindPatch {
    batch: Option<AtLeastOne>,
    max_delay: Option<Text<Duration>>,
    max_pending: Option<AtLeastOne>,
    max_attempts: Option<AtLeastOne>,
}

impl WriteBehindPatch {
    fn apply(self, mut config: WriteBehindConfig) -> WriteBehindConfig {
        config.batch = self.batch.map_or(config.batch, |b| b.0);
        config.max_delay = self.max_delay.map_or(config.max_delay, |d| d.0);
        config.max_pending = self.max_pending.map_or(config.max_pending, |p| p.0);
        config.max_attempts = self.max_attempts.map_or(config.max_attempts, |a| {
            u32::try_from(a.0).unwrap_or(u32::MAX)
        });
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
