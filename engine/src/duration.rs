//! Durations as runbooks write them: `"30s"`, `"5m"`, `"2h"`, `"1h30m"`, `"500ms"`, `"1d"`.
//!
//! A bare integer is taken as seconds, so `timeout: 90` and `timeout: "90s"` mean the same.

use std::time::Duration;

/// The longest duration a runbook may give (ten years; any wait, timeout or backoff is far
/// shorter). Deadlines are `now + duration` in `i64` milliseconds: bounding every duration here
/// keeps that sum exact, where 584 million years (the `u64` of milliseconds) wrapped into a
/// deadline in the past, and a float of seconds too large for a `Duration` panicked.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// A number of seconds from a runbook (`sleep(90)`, `timeout: 90`, `sleep(0.5)`) as a
/// duration: negative means 0; NaN, infinity or more than [`MAX_DURATION`] is an error.
pub fn from_seconds(secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{secs} seconds is not a duration godwit waits for; the longest is {}",
            format_duration(MAX_DURATION)
        ));
    }
    Ok(Duration::from_secs_f64(secs.max(0.0)))
}

/// A polling schedule: every `every`, or — with `first` — starting at `first` and doubling up
/// to `every`. Waits that sit inside the write blackout (the fence, the catch-up, a promotion)
/// ramp: most finish within milliseconds, and a fixed 1-minute poll would add up to a minute
/// of downtime each; a longer wait still settles at one poll per `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ramp {
    pub first: Option<Duration>,
    pub every: Duration,
}

impl Ramp {
    pub fn fixed(every: Duration) -> Ramp {
        Ramp { first: None, every }
    }

    /// The wait after poll number `n` (1 = the first poll).
    pub fn wait_after(&self, n: u64) -> Duration {
        match self.first {
            None => self.every,
            Some(first) => {
                let factor = 1u32 << (n.saturating_sub(1).min(30) as u32);
                first.saturating_mul(factor).min(self.every)
            }
        }
    }
}

/// Parse a runbook duration string. The error says what was wrong and shows valid forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let fail = |why: &str| {
        Err(format!(
            "invalid duration {text:?}: {why}; use a number with a unit ms, s, m, h or d, \
             e.g. \"30s\", \"5m\", \"1h30m\""
        ))
    };
    if s.is_empty() {
        return fail("it is empty");
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return fail("expected a number");
        }
        let Ok(n) = rest[..digits].parse::<u128>() else {
            return fail("number too large");
        };
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return fail("missing unit after the number"),
            other => return fail(&format!("unknown unit {other:?}")),
        };
        rest = rest[unit_len..].trim_start();
        total_ms = match n.checked_mul(unit_ms).and_then(|v| v.checked_add(total_ms)) {
            Some(v) if v <= MAX_DURATION.as_millis() => v,
            _ => return fail(&format!("longer than {}", format_duration(MAX_DURATION))),
        };
    }
    Ok(Duration::from_millis(total_ms as u64))
}

/// Render a duration compactly for humans and transcripts: `45s`, `7m`, `1h30m`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    // Sub-second remainder is noise once we are above a second, except for short values.
    if d.as_secs() < 10 && !ms.is_multiple_of(1_000) {
        return format!("{:.1}s", d.as_secs_f64());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn rejects_with_reason() {
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(
            parse_duration("5 minutes")
                .unwrap_err()
                .contains("unknown unit \"minutes\"")
        );
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(
            parse_duration("m5")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_duration("99999999999999999999999d").is_err());
    }

    #[test]
    fn durations_are_bounded_so_deadlines_cannot_overflow() {
        assert!(
            parse_duration("9223372036854775807ms")
                .unwrap_err()
                .contains("longer than 3650d")
        );
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION);
        assert!(from_seconds(f64::NAN).is_err());
        assert!(from_seconds(1e308).is_err());
        assert!(from_seconds(f64::INFINITY).is_err());
        assert_eq!(from_seconds(f64::NEG_INFINITY).unwrap(), Duration::ZERO);
        assert_eq!(from_seconds(-5.0).unwrap(), Duration::ZERO);
        assert_eq!(from_seconds(0.5).unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["45s", "7m", "1h30m", "250ms", "2d3h"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_identity_for_whole_seconds(secs in 10u64..10_000_000) {
            let d = Duration::from_secs(secs);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}

#[cfg(test)]
mod ramp_tests {
    use super::*;

    #[test]
    fn a_ramp_doubles_from_first_up_to_every() {
        let r = Ramp {
            first: Some(Duration::from_millis(10)),
            every: Duration::from_millis(50),
        };
        let waits: Vec<u64> = (1..=5)
            .map(|n| r.wait_after(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 50, 50]);
        assert_eq!(
            Ramp::fixed(Duration::from_secs(3)).wait_after(7),
            Duration::from_secs(3)
        );
        assert_eq!(r.wait_after(u64::MAX), Duration::from_millis(50));
    }
}
