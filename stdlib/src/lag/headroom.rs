//! WAL headroom: a slot that holds WAL back fills the source's storage; at what time?

use super::fmt::{fmt_bytes, fmt_bytes_per_min, fmt_duration, fmt_utc};
use super::series::Series;
use super::stats::theil_sen_per_second;
use super::{Assessment, Evidence, Options, Point, Verdict};

/// Time until `FreeStorageSpace` reaches 0 at the current consumption: the larger of the slot
/// lag's growth and the free space's decline (both Theil–Sen, bytes/s). The slot growth is the
/// WAL retained for the replica; the decline also catches table growth, and storage runs out
/// for either reason.
///
/// Verdicts: `headroom-ok` (pass: at least `min_headroom_seconds`, or not shrinking),
/// `headroom-low`, `no-data`.
pub fn wal_headroom(free_storage: &[Point], slot_lag: &[Point], opts: &Options) -> Assessment {
    let free_all = Series::new(free_storage);
    let slot_all = Series::new(slot_lag);
    let now = opts.now_or(&[&free_all, &slot_all], 0);
    let free = opts.window(&free_all, now);
    let slot = opts.window(&slot_all, now);
    let mut ev = Evidence::default();
    ev.int("now", now)
        .num("min_headroom_seconds", opts.min_headroom_seconds);
    for (name, s) in [
        ("FreeStorageSpace", &free),
        ("OldestReplicationSlotLag", &slot),
    ] {
        let stale = s
            .last()
            .is_none_or(|p| now.saturating_sub(p.t) > opts.stale_after_seconds);
        if s.points.len() < opts.min_datapoints || stale {
            ev.text("missing_series", name);
            let detail = match s.last() {
                Some(p) if stale => format!("no {name} datapoint since {}", fmt_utc(p.t)),
                _ => format!(
                    "{} {name} datapoint(s) in the window, need at least {}",
                    s.points.len(),
                    opts.min_datapoints
                ),
            };
            return Assessment::new(Verdict::NoData, false, detail, ev);
        }
    }
    let (Some(free_last), Some(slot_last)) = (free.last(), slot.last()) else {
        return Assessment::new(Verdict::NoData, false, "empty series", ev);
    };
    let slot_growth = theil_sen_per_second(&slot.points).unwrap_or(0.0);
    let free_decline = -theil_sen_per_second(&free.points).unwrap_or(0.0);
    let consumption = slot_growth.max(free_decline);
    ev.num("free_storage_bytes", free_last.v)
        .int("free_storage_t", free_last.t)
        .num("slot_lag_bytes", slot_last.v)
        .num("slot_growth_bytes_per_min", slot_growth * 60.0)
        .num("free_storage_decline_bytes_per_min", free_decline * 60.0)
        .num("consumption_bytes_per_min", consumption * 60.0);
    let driver = if slot_growth >= free_decline {
        format!("slot lag growing {}", fmt_bytes_per_min(slot_growth * 60.0))
    } else {
        format!(
            "free storage falling {}",
            fmt_bytes_per_min(-free_decline * 60.0)
        )
    };
    if consumption <= 0.0 {
        return Assessment::new(
            Verdict::HeadroomOk,
            true,
            format!(
                "FreeStorageSpace {}, slot lag trend {}, free storage trend {}: not shrinking",
                fmt_bytes(free_last.v),
                fmt_bytes_per_min(slot_growth * 60.0),
                fmt_bytes_per_min(-free_decline * 60.0)
            ),
            ev,
        );
    }
    let seconds = free_last.v / consumption;
    let full_at = free_last.t.saturating_add(seconds.min(1e12) as i64);
    ev.num("seconds_until_full", seconds)
        .int("full_at_t", full_at);
    // A clock time without a date only helps within the day.
    let at = if seconds < 86_400.0 {
        format!(" (around {} UTC)", fmt_utc(full_at))
    } else {
        String::new()
    };
    let detail = format!(
        "FreeStorageSpace {} at {}, {}: full in ~{}{at}; minimum {}",
        fmt_bytes(free_last.v),
        fmt_utc(free_last.t),
        driver,
        fmt_duration(seconds),
        fmt_duration(opts.min_headroom_seconds)
    );
    if seconds >= opts.min_headroom_seconds {
        Assessment::new(Verdict::HeadroomOk, true, detail, ev)
    } else {
        Assessment::new(
            Verdict::HeadroomLow,
            false,
            format!("{detail}; free a stale slot or add storage before it fills"),
            ev,
        )
    }
}
