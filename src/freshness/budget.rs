//! Holding the measured ratio to the inconsistency budget: a warning once per window over
//! it, and with [`OverBudget::ShortenTtl`] the effective TTL stepped down while over and back
//! up while well within.

use crate::config::{FreshnessConfig, OverBudget};

use super::window::{Counts, wilson};

/// Most samples a TTL step up waits for (a budget of 0.01% would ask for 10,000).
const MAX_EVIDENCE: u64 = 10_000;

/// The budget's state between evaluations.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// Verified and stale samples since the effective TTL last changed: a step's effect is
    /// judged on samples taken after it.
    since_verified: u64,
    since_stale: u64,
    /// When the last over-budget warning was logged (clock ms).
    last_breach_ms: Option<u64>,
}

/// What an evaluation decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The window's lower bound is over the budget.
    pub(crate) over: bool,
    /// A breach to warn about and count (at most once per window).
    pub(crate) breach: bool,
    /// The new effective TTL, if it changes.
    pub(crate) ttl_ms: Option<u64>,
}

impl Budget {
    /// Counts a verified sample toward the next TTL decision.
    pub(crate) fn observe(&mut self, stale: bool) {
        self.since_verified += 1;
        self.since_stale += u64::from(stale);
    }

    /// Judges the window's `counts` against the budget at `now_ms`; `ttl_ms` is the
    /// configured TTL, `effective_ms` the one in force.
    pub(crate) fn evaluate(
        &mut self,
        config: &FreshnessConfig,
        counts: &Counts,
        now_ms: u64,
        ttl_ms: u64,
        effective_ms: u64,
    ) -> Verdict {
        let Some(budget) = config.budget else {
            return Verdict::default();
        };
        let window_ms = config.window.as_millis() as u64;
        let over = counts.interval().0 > budget;
        let breach = over
            && self
                .last_breach_ms
                .is_none_or(|at| now_ms.saturating_sub(at) >= window_ms);
        if breach {
            self.last_breach_ms = Some(now_ms);
        }
        let mut verdict = Verdict {
            over,
            breach,
            ttl_ms: None,
        };
        if config.on_over_budget != OverBudget::ShortenTtl {
            return verdict;
        }
        let min_ttl = config.min_ttl_for(std::time::Duration::from_millis(ttl_ms));
        let min_ms = (min_ttl.as_millis() as u64).clamp(1, ttl_ms);
        let since_over = wilson(self.since_stale, self.since_verified).0 > budget;
        let needed = if budget > 0.0 {
            ((1.0 / budget).ceil() as u64).min(MAX_EVIDENCE)
        } else {
            MAX_EVIDENCE
        };
        let since_ratio = self.since_stale as f64 / self.since_verified.max(1) as f64;
        let next = if since_over && effective_ms > min_ms {
            Some((effective_ms / 2).max(min_ms))
        } else if !since_over
            && effective_ms < ttl_ms
            && self.since_verified >= needed
            && since_ratio <= budget / 2.0
        {
            Some((effective_ms + (effective_ms / 4).max(1)).min(ttl_ms))
        } else {
            None
        };
        if next.is_some() {
            self.since_verified = 0;
            self.since_stale = 0;
        }
        verdict.ttl_ms = next;
        verdict
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> FreshnessConfig {
        FreshnessConfig::default()
            .budget(Some(0.01))
            .on_over_budget(OverBudget::ShortenTtl)
            .min_ttl(Duration::from_secs(1))
            .window(Duration::from_secs(10))
    }

    fn counts(verified: u64, stale: u64) -> Counts {
        Counts {
            verified,
            stale,
            ..Counts::default()
        }
    }

    #[test]
    fn over_budget_halves_down_to_the_floor_and_warns_once_per_window() {
        let (config, mut budget) = (config(), Budget::default());
        let mut effective = 64_000;
        let mut breaches = 0;
        for step in 0..10u64 {
            for i in 0..100 {
                budget.observe(i < 10);
            }
            let verdict = budget.evaluate(
                &config,
                &counts(1_000, 100),
                step * 1_000,
                64_000,
                effective,
            );
            assert!(verdict.over);
            breaches += u64::from(verdict.breach);
            if let Some(ttl) = verdict.ttl_ms {
                assert_eq!(ttl, (effective / 2).max(1_000));
                effective = ttl;
            }
        }
        assert_eq!(effective, 1_000, "down to min_ttl");
        assert_eq!(breaches, 1, "one warning in a 10 s window");
    }

    #[test]
    fn within_budget_restores_a_quarter_at_a_time_with_evidence() {
        let (config, mut budget) = (config(), Budget::default());
        for _ in 0..99 {
            budget.observe(false);
        }
        let verdict = budget.evaluate(&config, &counts(99, 0), 0, 8_000, 4_000);
        assert_eq!(
            verdict.ttl_ms, None,
            "100 samples are needed at a 1% budget"
        );
        budget.observe(false);
        let verdict = budget.evaluate(&config, &counts(100, 0), 0, 8_000, 4_000);
        assert_eq!(verdict.ttl_ms, Some(5_000));
        assert_eq!(
            budget
                .evaluate(&config, &counts(100, 0), 0, 8_000, 5_000)
                .ttl_ms,
            None
        );
    }

    #[test]
    fn without_a_budget_nothing_is_judged() {
        let mut budget = Budget::default();
        budget.observe(true);
        let verdict = budget.evaluate(&FreshnessConfig::default(), &counts(1, 1), 0, 1_000, 1_000);
        assert_eq!(verdict, Verdict::default());
    }
}
