//! The sync gate: the 0↔64 MB rule after the fence (DESIGN §2 item 7).
//!
//! An idle RDS source's slot lag saw-tooths between 0 and one segment forever, so "stays 0"
//! never passes and "< 64 MB" can pass with a whole segment unreceived. What proves the replica
//! has everything is one datapoint **equal to 0 whose period started after the fence**.
//!
//! Timestamps are period starts: a 60 s `Maximum` stamped `fence - 30 s` aggregates samples
//! from before the fence too, and a single sample taken 10 s before the fence would make it 0.
//! So a datapoint counts only when `t >= fence + clock_skew_seconds`; the allowance covers the
//! difference between the clock that recorded the fence (godwit's host) and the clock that
//! stamps datapoints (the database host / CloudWatch). The cost is at most one extra period.

use super::classify::{classify_window, replica_now};
use super::fmt::{fmt_bytes, fmt_duration, fmt_seconds, fmt_utc};
use super::series::Series;
use super::{Assessment, Evidence, Options, Point, Slot, Verdict};

/// Decide whether the replica has caught up after the fence completed at `fence_t`.
///
/// Verdicts: `caught-up` (pass), `waiting` (no 0 after the fence yet, or replica lag above
/// tolerance; data still arriving), `stale-slot` (slot lag far above a segment or growing since
/// the fence while replica lag is ≈ 0: waiting will not help), `no-data` (a series stopped
/// arriving). Only `caught-up` passes.
pub fn caught_up_after_fence(
    slot_lag: &[Point],
    replica_lag: &[Point],
    fence_t: i64,
    slots: Option<&[Slot]>,
    opts: &Options,
) -> Assessment {
    let slot = Series::new(slot_lag);
    let replica = Series::new(replica_lag);
    // Checked: a wrapped sum would be a time in the past, and datapoints from before the fence
    // would count. The `lag::` Rhai functions refuse such inputs as `Invalid`; a Rust caller gets
    // a gate that stays shut.
    let Some(valid_from) = fence_t.checked_add(opts.clock_skew_seconds) else {
        let mut ev = Evidence::default();
        ev.int("fence_t", fence_t)
            .int("clock_skew_seconds", opts.clock_skew_seconds);
        return Assessment::new(
            Verdict::Waiting,
            false,
            "fence time + clock-skew allowance is past the largest representable time, so no \
             datapoint can count; pass epoch seconds",
            ev,
        );
    };
    let now = opts.now_or(&[&slot, &replica], fence_t);
    let after = slot.since(valid_from);
    let replica_after = replica.since(valid_from);

    let mut ev = Evidence::default();
    ev.int("fence_t", fence_t)
        .int("counts_from_t", valid_from)
        .int("clock_skew_seconds", opts.clock_skew_seconds)
        .int("now", now)
        .int(
            "dropped_datapoints",
            (slot.dropped + replica.dropped) as i64,
        )
        .int("slot_datapoints_after_fence", after.points.len() as i64)
        .int(
            "replica_datapoints_after_fence",
            replica_after.points.len() as i64,
        )
        .num(
            "replica_lag_tolerance_seconds",
            opts.replica_lag_tolerance_seconds,
        );
    let fence_text = format!("fence at {}", fmt_utc(fence_t));
    let counting = format!(
        "counting from {} = fence + {} s clock-skew allowance",
        fmt_utc(valid_from),
        opts.clock_skew_seconds
    );
    // A zero that starts inside the allowance (or in the period straddling the fence) is the
    // trap this rule exists for; say that it was seen and why it did not count.
    let ignored_zero = slot.points.iter().rev().find(|p| {
        p.v == 0.0 && p.t < valid_from && p.t > fence_t.saturating_sub(opts.period_seconds.max(1))
    });
    let ignored_text = match ignored_zero {
        Some(p) => {
            ev.int("ignored_zero_t", p.t);
            format!(
                " (the 0 stamped {} starts before {} and does not count)",
                fmt_utc(p.t),
                fmt_utc(valid_from)
            )
        }
        None => String::new(),
    };

    // A period cannot be published before it starts. A datapoint stamped later than `now` +
    // allowance means the metric clock runs ahead of ours by more than the allowance, and then
    // "stamped after the fence" no longer proves "sampled after the fence".
    if let Some(now_given) = opts.now {
        let ahead = slot
            .points
            .iter()
            .chain(&replica.points)
            .map(|p| p.t)
            .filter(|&t| t > now_given.saturating_add(opts.clock_skew_seconds))
            .max();
        if let Some(t) = ahead {
            ev.int("future_datapoint_t", t);
            return Assessment::new(
                Verdict::Waiting,
                false,
                format!(
                    "a datapoint is stamped {} but now is {} ({} ahead): the metric clock and \
                     this host's clock disagree by more than the {} s allowance, so no \
                     datapoint can be placed after the {}; fix time sync or raise \
                     clock_skew_seconds",
                    fmt_utc(t),
                    fmt_utc(now_given),
                    fmt_duration(t.saturating_sub(now_given) as f64),
                    opts.clock_skew_seconds,
                    fence_text
                ),
                ev,
            );
        }
    }

    if let Some(zero) = after.points.iter().find(|p| p.v == 0.0) {
        ev.int("first_zero_after_fence_t", zero.t).int(
            "first_zero_after_fence_delay_seconds",
            zero.t.saturating_sub(fence_t),
        );
        return match replica_after.last() {
            Some(r) if r.v <= opts.replica_lag_tolerance_seconds => {
                ev.num("replica_lag_seconds", r.v).int("replica_lag_t", r.t);
                Assessment::new(
                    Verdict::CaughtUp,
                    true,
                    format!(
                        "OldestReplicationSlotLag 0 at {} ({} after the {}), replica lag {} at {}",
                        fmt_utc(zero.t),
                        fmt_duration(zero.t.saturating_sub(fence_t) as f64),
                        fence_text,
                        fmt_seconds(r.v),
                        fmt_utc(r.t)
                    ),
                    ev,
                )
            }
            Some(r) => {
                ev.num("replica_lag_seconds", r.v).int("replica_lag_t", r.t);
                Assessment::new(
                    Verdict::Waiting,
                    false,
                    format!(
                        "OldestReplicationSlotLag 0 at {}, but replica lag {} at {} > tolerance {}",
                        fmt_utc(zero.t),
                        fmt_seconds(r.v),
                        fmt_utc(r.t),
                        fmt_seconds(opts.replica_lag_tolerance_seconds)
                    ),
                    ev,
                )
            }
            None => no_fresh_data(
                ("RDSToAuroraPostgreSQLReplicaLag", "replica_last_t"),
                &replica,
                valid_from,
                now,
                &fence_text,
                &counting,
                String::new(),
                opts,
                ev,
            ),
        };
    }

    let Some(last) = after.last() else {
        return no_fresh_data(
            ("OldestReplicationSlotLag", "slot_last_t"),
            &slot,
            valid_from,
            now,
            &fence_text,
            &counting,
            ignored_text,
            opts,
            ev,
        );
    };
    if now.saturating_sub(last.t) > opts.stale_after_seconds {
        ev.int("slot_last_t", last.t).num("slot_last_bytes", last.v);
        return Assessment::new(
            Verdict::NoData,
            false,
            format!(
                "no OldestReplicationSlotLag datapoint since {} ({} before {}), and none of the \
                 {} after the {} was 0: the series stopped arriving, check the metric source",
                fmt_utc(last.t),
                fmt_duration(now.saturating_sub(last.t) as f64),
                fmt_utc(now),
                after.points.len(),
                fence_text
            ),
            ev,
        );
    }

    // Since the fence nothing new is written, so sustained lag far above a segment with the
    // replica at ≈ 0 s is a slot nobody consumes; say so instead of waiting forever.
    let since_fence = classify_window(&slot, &after, &replica_after, now, slots, opts);
    if since_fence.verdict == Verdict::StaleSlot {
        let mut ev2 = since_fence.evidence;
        ev2.0.extend(ev.0);
        return Assessment::new(
            Verdict::StaleSlot,
            false,
            format!(
                "since the {}: {}",
                fence_text,
                since_fence.why.trim_start_matches("stale-slot: ")
            ),
            ev2,
        );
    }

    let max = after.values().into_iter().fold(0.0, f64::max);
    ev.int("slot_last_t", last.t)
        .num("slot_last_bytes", last.v)
        .num("slot_max_bytes_after_fence", max);
    let replica_text = match replica_now(&replica_after, now, opts) {
        Some(r) => {
            ev.num("replica_lag_seconds", r.v).int("replica_lag_t", r.t);
            format!("replica lag {}", fmt_seconds(r.v))
        }
        None => "no replica lag datapoint since the fence".to_string(),
    };
    Assessment::new(
        Verdict::Waiting,
        false,
        format!(
            "no 0 OldestReplicationSlotLag datapoint since the {} ({}): {} datapoint(s), last {} \
             at {}, max {}, {}{}",
            fence_text,
            counting,
            after.points.len(),
            fmt_bytes(last.v),
            fmt_utc(last.t),
            fmt_bytes(max),
            replica_text,
            ignored_text
        ),
        ev,
    )
}

/// No datapoint of `metric` counts yet: `waiting` while one may still be published, `no-data`
/// once the series has been silent longer than `stale_after_seconds`.
#[allow(clippy::too_many_arguments)] // crate-private; each argument is one piece of the message
pub(super) fn no_fresh_data(
    (metric, last_t_key): (&str, &str),
    series: &Series,
    valid_from: i64,
    now: i64,
    fence_text: &str,
    counting: &str,
    ignored_text: String,
    opts: &Options,
    mut ev: Evidence,
) -> Assessment {
    let seen = series.last().map(|p| p.t);
    if let Some(t) = seen {
        ev.int(last_t_key, t);
    }
    // Silence is measured from the later of the last datapoint and the moment datapoints
    // start to count: right after a fence no datapoint can exist yet.
    let silent_since = seen.map_or(valid_from, |t| t.max(valid_from));
    if now.saturating_sub(silent_since) > opts.stale_after_seconds {
        let since = match seen {
            Some(t) => format!("since {}", fmt_utc(t)),
            None => "at all".to_string(),
        };
        return Assessment::new(
            Verdict::NoData,
            false,
            format!(
                "no {metric} datapoint {since}: {} without one after the {fence_text} \
                 ({counting}){ignored_text}; the series stopped arriving, and missing data never \
                 counts as 0: check the metric source",
                fmt_duration(now.saturating_sub(silent_since) as f64),
            ),
            ev,
        );
    }
    Assessment::new(
        Verdict::Waiting,
        false,
        format!(
            "no {metric} datapoint stamped after the {fence_text} yet ({counting}; CloudWatch \
             publishes a period 1-3 min after it ends){ignored_text}"
        ),
        ev,
    )
}
