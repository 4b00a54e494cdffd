//! [`CacheConfig::validate`]: the settings no setter refuses, checked once, at build.

use std::time::Duration;

use super::CacheConfig;
use crate::error::InvalidSetting;

fn invalid(setting: &'static str, reason: String) -> Result<(), InvalidSetting> {
    Err(InvalidSetting { setting, reason })
}

impl CacheConfig {
    /// Checks the settings: a `ttl` of at least 1 ms, a positive `capacity`, `ttl_jitter` within `0.0..=1.0`,
    /// for the flusher, a positive `batch`, `max_pending` and `max_attempts`, and for the
    /// sampler a `sample_rate` and `budget` within `0.0..=1.0`, a positive
    /// `max_samples_per_sec`, `queue` and `window`, and a `min_ttl`, where one is set, longer
    /// than zero and no longer than `ttl` (left unset it follows the TTL). (A `version_column` is checked against the entity's columns at build.)
    /// [`CacheLayerBuilder::build`](crate::CacheLayerBuilder::build) runs it for every
    /// entity and reports the first failure as
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    ///
    /// ```
    /// use sea_orm_cache::CacheConfig;
    /// let wrong = CacheConfig::default().ttl_jitter(1.5);
    /// assert_eq!(wrong.validate().unwrap_err().setting, "ttl_jitter");
    /// assert!(CacheConfig::default().validate().is_ok());
    /// ```
    ///
    /// # Errors
    /// The first setting that is out of range.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.ttl < Duration::from_millis(1) {
            return invalid(
                "ttl",
                format!(
                    "must be at least 1 ms (expiry is kept in milliseconds), got {:?}",
                    self.ttl
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.ttl_jitter) {
            return invalid(
                "ttl_jitter",
                format!("must be within 0.0..=1.0, got {}", self.ttl_jitter),
            );
        }
        if self.capacity == 0 {
            return invalid("capacity", "must be at least 1".to_owned());
        }
        let flusher = &self.write_behind;
        if flusher.batch == 0 {
            return invalid("write_behind.batch", "must be at least 1".to_owned());
        }
        if flusher.max_pending == 0 {
            return invalid("write_behind.max_pending", "must be at least 1".to_owned());
        }
        if flusher.max_attempts == 0 || i32::try_from(flusher.max_attempts).is_err() {
            return invalid(
                "write_behind.max_attempts",
                format!(
                    "must be within 1..={}, got {}",
                    i32::MAX,
                    flusher.max_attempts
                ),
            );
        }
        let sampler = &self.freshness;
        if !(0.0..=1.0).contains(&sampler.sample_rate) {
            return invalid(
                "freshness.sample_rate",
                format!("must be within 0.0..=1.0, got {}", sampler.sample_rate),
            );
        }
        if let Some(budget) = sampler.budget
            && !(0.0..=1.0).contains(&budget)
        {
            return invalid(
                "freshness.budget",
                format!("must be within 0.0..=1.0, got {budget}"),
            );
        }
        if sampler.max_samples_per_sec == 0 {
            return invalid(
                "freshness.max_samples_per_sec",
                "must be at least 1".to_owned(),
            );
        }
        if sampler.queue == 0 {
            return invalid("freshness.queue", "must be at least 1".to_owned());
        }
        if sampler.window < Duration::from_millis(10) {
            return invalid(
                "freshness.window",
                "must be at least 10 ms (it is kept in 10 buckets)".to_owned(),
            );
        }
        if let Some(min_ttl) = sampler.min_ttl
            && (min_ttl == Duration::ZERO || min_ttl > self.ttl)
        {
            return invalid(
                "freshness.min_ttl",
                format!(
                    "must be longer than zero and at most the ttl ({:?}), got {min_ttl:?}",
                    self.ttl
                ),
            );
        }
        Ok(())
    }
}
