//! The text forms of cache settings: durations (`"5m"`, `"1h30m"`), jitter (`"10%"`) and
//! policy names (`"read_through"`).
//!
//! One file, compiled into both crates: `#[derive(Cached)]` checks an attribute at compile time
//! with it, and `sea_orm_cache`'s serde support reads a config file with it, so both accept and
//! refuse exactly the same text. It uses `std` only.

use std::time::Duration;

/// The policy names, in `Policy` order.
pub(crate) const POLICIES: [&str; 4] = [
    "cache_aside",
    "read_through",
    "write_through",
    "write_behind",
];

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
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
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
pub(crate) fn parse_jitter(text: &str) -> Result<f64, String> {
    let fraction = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| {
        format!("invalid ttl_jitter `{text}`: expected a percentage such as \"10%\", or a fraction such as 0.1")
    })?;
    check_jitter(fraction)
}

/// Checks that a jitter fraction is within `0.0..=1.0` (0% to 100%).
pub(crate) fn check_jitter(fraction: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(fraction)
    } else {
        Err(format!(
            "ttl_jitter must be between 0% and 100% of the TTL, got {}%",
            fraction * 100.0
        ))
    }
}

/// The index in [`POLICIES`] of a policy name; an unknown name is refused with the nearest
/// one suggested.
pub(crate) fn parse_policy(name: &str) -> Result<usize, String> {
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
/// a likely typo.
pub(crate) fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
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
