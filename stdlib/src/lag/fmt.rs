//! Human-readable numbers for `why` strings: bytes in binary units, UTC clock times, durations.

const KIB: f64 = 1024.0;

/// `67108864` → `"64.0 MiB"`. Binary units because WAL segments are powers of two: a segment
/// reads as a round `64.0 MiB`, not `67.1 MB`.
pub fn fmt_bytes(n: f64) -> String {
    if !n.is_finite() {
        return format!("{n} B");
    }
    let sign = if n < 0.0 { "-" } else { "" };
    let a = n.abs();
    if a < KIB {
        return format!("{sign}{} B", a.round() as i64);
    }
    let units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = a / KIB;
    let mut unit = 0;
    while value >= KIB && unit + 1 < units.len() {
        value /= KIB;
        unit += 1;
    }
    format!("{sign}{value:.1} {}", units[unit])
}

/// A signed rate for trends: `"+12.8 MiB/min"`, `"-1.0 KiB/min"`, `"+0 B/min"`.
pub fn fmt_bytes_per_min(bytes_per_min: f64) -> String {
    let sign = if bytes_per_min < 0.0 { "" } else { "+" };
    format!("{sign}{}/min", fmt_bytes(bytes_per_min))
}

/// Epoch seconds → `"HH:MM:SS"` (UTC). Gates poll within one day, so the date is left out of
/// `why` lines; evidence keeps the full epoch value.
pub fn fmt_utc(t: i64) -> String {
    let s = t.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Seconds → `"45 s"`, `"40 min"`, `"3 h 12 min"`, `"2 d 4 h"`: as precise as an operator
/// deciding whether to wait needs, no more.
pub fn fmt_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "forever".to_string();
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    // A float converts to u128 saturating, and the one rounding that can meet a huge value
    // saturates too: no overflow for any input (`lag::fmt_duration(i64::MAX)` used to panic).
    let s = seconds.abs().round() as u128;
    let body = if s < 120 {
        format!("{s} s")
    } else if s < 2 * 3600 {
        format!("{} min", (s + 30) / 60)
    } else if s < 48 * 3600 {
        let m = (s + 30) / 60;
        format!("{} h {} min", m / 60, m % 60)
    } else {
        let h = s.saturating_add(1800) / 3600;
        format!("{} d {} h", h / 24, h % 24)
    };
    format!("{sign}{body}")
}

/// Seconds with at most one decimal, for lag in seconds: `"0 s"`, `"2.5 s"`.
pub fn fmt_seconds(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{} s", r as i64)
    } else {
        format!("{r:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(fmt_bytes(0.0), "0 B");
        assert_eq!(fmt_bytes(1023.0), "1023 B");
        assert_eq!(fmt_bytes(1024.0), "1.0 KiB");
        assert_eq!(fmt_bytes(64.0 * 1024.0 * 1024.0), "64.0 MiB");
        assert_eq!(fmt_bytes(3.1 * 1024.0 * 1024.0 * 1024.0), "3.1 GiB");
        assert_eq!(fmt_bytes(-16.0 * 1024.0 * 1024.0), "-16.0 MiB");
        assert_eq!(
            fmt_bytes_per_min(64.0 * 1024.0 * 1024.0 / 5.0),
            "+12.8 MiB/min"
        );
        assert_eq!(fmt_bytes_per_min(-2048.0), "-2.0 KiB/min");
    }

    #[test]
    fn clock_and_durations() {
        assert_eq!(fmt_utc(1_700_000_000), "22:13:20");
        assert_eq!(fmt_utc(-1), "23:59:59");
        assert_eq!(fmt_duration(45.0), "45 s");
        assert_eq!(fmt_duration(40.0 * 60.0), "40 min");
        assert_eq!(fmt_duration(3.0 * 3600.0 + 12.0 * 60.0), "3 h 12 min");
        assert_eq!(fmt_duration(52.0 * 3600.0), "2 d 4 h");
        assert_eq!(fmt_duration(f64::INFINITY), "forever");
        assert_eq!(
            fmt_duration(i64::MAX as f64),
            "106751991167300 d 16 h",
            "i64::MAX seconds formats instead of overflowing"
        );
        assert!(fmt_duration(f64::MAX).ends_with(" h"));
        assert_eq!(fmt_duration(i64::MIN as f64), "-106751991167300 d 16 h");
        assert_eq!(fmt_seconds(0.0), "0 s");
        assert_eq!(fmt_seconds(2.54), "2.5 s");
    }
}
