//! The text forms of cache settings: durations (`"5m"`, `"1h30m"`), jitter and other
//! fractions (`"10%"`, `"0.01%"`), policy names (`"read_through"`) and over-budget actions
//! (`"shorten_ttl"`).
//!
//! One crate both sides depend on: `#[derive(Cached)]` (`sea-orm-cache-macros`) checks an
//! attribute at compile time with it, and `sea_orm_cache`'s serde support reads a config file
//! with it, so both accept and refuse exactly the same text. It uses `std` only and has no
//! dependencies. It is an implementation detail of
//! [sea-orm-cache](https://docs.rs/sea-orm-cache); its API follows that crate's needs.

use std::time::Duration;

/// The policy names, in `Policy` order.
pub const POLICIES: [&str; 4] = [
    "cache_aside",
    "read_through",
    "write_through",
    "write_behind",
];

/// The over-budget action names, in `OverBudget` order.
pub const OVER_BUDGET: [&str; 2] = ["warn", "shorten_ttl"];

/// The capture names, in `Capture` order.
pub const CAPTURES: [&str; 2] = ["layer", "triggers"];

/// The units a duration accepts, and the length of one.
const UNITS: [(&str, Duration); 7] = [
    ("ns", Duration::from_nanos(1)),
    ("us", Duration::from_micros(1)),
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("h", Duration::from_secs(3_600)),
    ("d", Duration::from_secs(86_400)),
];

/// Parses a duration: whole numbers each followed by a unit (`ns`, `us`, `ms`, `s`, `m`, `h`,
/// `d`), such as `"50ms"`, `"30s"`, `"5m"` or `"1h30m"`.
///
/// # Errors
///
/// A message naming the text when it is empty, has a number without a unit (or an unknown
/// unit), or is longer than a [`Duration`] holds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration `{text}`: expected whole numbers each followed by a unit \
             (ns, us, ms, s, m, h, d), such as \"50ms\", \"30s\", \"5m\" or \"1h30m\""
        )
    };
    let too_long = || format!("duration `{text}` is too long");
    let mut rest = text;
    let mut nanos: u128 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let (_, scale) = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(invalid)?;
        let number: u128 = number.parse().map_err(|_| invalid())?;
        nanos = number
            .checked_mul(scale.as_nanos())
            .and_then(|part| nanos.checked_add(part))
            .ok_or_else(too_long)?;
        rest = &rest[digits + unit_len..];
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Parses a TTL jitter: a percentage (`"10%"`) or a fraction (`"0.1"`), within 0% to 100%.
/// Returns the fraction (`"10%"` is `0.1`).
///
/// # Errors
///
/// A message naming the text when it is not a number or a percentage, or is outside 0% to 100%.
pub fn parse_jitter(text: &str) -> Result<f64, String> {
    let fraction = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| {
        format!("invalid ttl_jitter `{text}`: expected a percentage such as \"10%\", or a fraction such as 0.1")
    })?;
    check_jitter(fraction)
}

/// Checks that a jitter fraction is within `0.0..=1.0` (0% to 100%) and returns it.
///
/// # Errors
///
/// A message giving the value as a percentage when it is outside that range (or NaN).
pub fn check_jitter(fraction: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(fraction)
    } else {
        Err(format!(
            "ttl_jitter must be between 0% and 100% of the TTL, got {}%",
            fraction * 100.0
        ))
    }
}

/// Parses a fraction setting (`sample_rate`, `staleness_budget`): a percentage (`"0.1%"`) or a
/// fraction (`"0.001"`), within 0% to 100%. Returns the fraction.
///
/// # Errors
///
/// A message naming `setting` and the text when it is not a number or a percentage, or is
/// outside 0% to 100%.
pub fn parse_fraction(setting: &str, text: &str) -> Result<f64, String> {
    let fraction = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| {
        format!("invalid {setting} `{text}`: expected a percentage such as \"0.1%\", or a fraction such as 0.001")
    })?;
    check_fraction(setting, fraction)
}

/// Checks that a fraction setting is within `0.0..=1.0` and returns it.
///
/// # Errors
///
/// A message naming `setting` when the value is outside that range (or NaN).
pub fn check_fraction(setting: &str, fraction: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(fraction)
    } else {
        Err(format!(
            "{setting} must be between 0% and 100%, got {}%",
            fraction * 100.0
        ))
    }
}

/// The index in [`OVER_BUDGET`] of an over-budget action name.
///
/// # Errors
///
/// An unknown name is refused with the names listed and the nearest one suggested.
pub fn parse_over_budget(name: &str) -> Result<usize, String> {
    if let Some(index) = OVER_BUDGET.iter().position(|p| *p == name) {
        return Ok(index);
    }
    let hint = match suggest(name, &OVER_BUDGET) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    Err(format!(
        "unknown on_over_budget `{name}`{hint} (expected one of: {})",
        OVER_BUDGET.join(", ")
    ))
}

/// The index in [`CAPTURES`] of a capture name.
///
/// # Errors
///
/// An unknown name is refused with the names listed and the nearest one suggested.
pub fn parse_capture(name: &str) -> Result<usize, String> {
    if let Some(index) = CAPTURES.iter().position(|p| *p == name) {
        return Ok(index);
    }
    let hint = match suggest(name, &CAPTURES) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    Err(format!(
        "unknown capture `{name}`{hint} (expected one of: {})",
        CAPTURES.join(", ")
    ))
}

/// The index in [`POLICIES`] of a policy name.
///
/// # Errors
///
/// An unknown name is refused with a message listing the names, and the nearest one suggested
/// when it looks like a typo.
pub fn parse_policy(name: &str) -> Result<usize, String> {
    if let Some(index) = POLICIES.iter().position(|p| *p == name) {
        return Ok(index);
    }
    let hint = match suggest(name, &POLICIES) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    Err(format!(
        "unknown policy `{name}`{hint} (expected one of: {})",
        POLICIES.join(", ")
    ))
}

/// The candidate nearest to `input` (case, `-` and `_` ignored), if it is near enough to be
/// a likely typo (an edit distance of at most 2, or a third of the candidate's length).
pub fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let normal = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let input = normal(input);
    candidates
        .iter()
        .map(|candidate| (edit_distance(&input, &normal(candidate)), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("2us"), Ok(Duration::from_micros(2)));
        for bad in ["", "5", "m", "5 m", "5x", "1.5s", "-1s", "5M"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.starts_with("invalid duration"), "{bad}: {err}");
        }
        let err = parse_duration("99999999999999999999999d").expect_err("too long");
        assert!(err.contains("too long"), "{err}");
    }

    #[test]
    fn jitter() {
        assert_eq!(parse_jitter("10%"), Ok(0.1));
        assert_eq!(parse_jitter("0.25"), Ok(0.25));
        assert_eq!(parse_jitter("100%"), Ok(1.0));
        assert_eq!(check_jitter(0.0), Ok(0.0));
        assert!(
            parse_jitter("ten")
                .expect_err("ten")
                .starts_with("invalid ttl_jitter")
        );
        assert!(parse_jitter("150%").expect_err("150%").contains("150%"));
        assert!(check_jitter(-0.1).is_err());
        assert!(check_jitter(f64::NAN).is_err());
    }

    #[test]
    fn policies() {
        for (index, name) in POLICIES.iter().enumerate() {
            assert_eq!(parse_policy(name), Ok(index));
        }
        let err = parse_policy("read_thruogh").expect_err("typo");
        assert!(err.contains("did you mean `read_through`?"), "{err}");
        let err = parse_policy("lru").expect_err("unknown");
        assert!(!err.contains("did you mean"), "{err}");
        assert!(err.contains("cache_aside, read_through, write_through, write_behind"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("Write-Behind", &POLICIES), Some("write_behind"));
        assert_eq!(suggest("writethrough", &POLICIES), Some("write_through"));
        assert_eq!(suggest("something_else", &POLICIES), None);
        assert_eq!(edit_distance(&['a', 'b'], &['b']), 1);
    }

    #[test]
    fn fractions_and_over_budget_actions() {
        assert_eq!(parse_fraction("staleness_budget", "0.01%"), Ok(0.0001));
        assert_eq!(parse_fraction("sample_rate", "0.5"), Ok(0.5));
        let err = parse_fraction("sample_rate", "150%").expect_err("over 100%");
        assert!(
            err.contains("sample_rate must be between 0% and 100%"),
            "{err}"
        );
        let err = parse_fraction("staleness_budget", "often").expect_err("not a number");
        assert!(err.contains("invalid staleness_budget `often`"), "{err}");
        assert_eq!(parse_over_budget("shorten_ttl"), Ok(1));
        assert_eq!(parse_capture("triggers"), Ok(1));
        assert!(
            parse_capture("trigger")
                .expect_err("typo")
                .contains("did you mean `triggers`")
        );
        let err = parse_over_budget("shorten-tl").expect_err("typo");
        assert!(err.contains("did you mean `shorten_ttl`?"), "{err}");
    }
}
