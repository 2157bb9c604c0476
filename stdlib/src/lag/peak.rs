//! "Keeps up at peak" (DESIGN §2 item 4): over a window that contains the source's peak write
//! rate, replica lag p99 stays under a bound, slot lag stays bounded with no upward trend, and
//! the replica's throughput matches WAL generation.

use super::classify::{SlotStats, classify_window};
use super::fmt::{fmt_bytes, fmt_bytes_per_min, fmt_duration, fmt_seconds, fmt_utc};
use super::series::Series;
use super::stats::percentile;
use super::{Assessment, Evidence, Options, Point, Verdict};

/// Validate that the replica keeps up over the window.
///
/// * replica lag p99 ≤ `max_replica_lag_p99_seconds`;
/// * slot lag: Theil–Sen rise across the window ≤ one segment, p99 ≤ `stale_slot_segments`;
/// * throughput: the replica's observed receive rate is WAL generation minus the slot lag's
///   growth (`mean(generation) - slope(slot lag)`, bytes/s); it is reported with the ratio;
/// * if `peak_bytes_per_second` is given, the window's generation must reach `peak_coverage`
///   of it, or the check proves nothing about the peak.
///
/// The final catch-up estimate is `max(replica lag p99, backlog / throughput)` where the
/// backlog is the slot lag p99, capped at the WAL generated over the replica's lag plus one
/// period (the sawtooth's height is segment padding, not data), and throughput is the larger of
/// the observed receive rate and the window's peak generation (a replica that keeps up at peak
/// replays at least that fast): an upper bound on how long the replica needs after the fence,
/// before the sync gate's first 0 datapoint can appear.
///
/// Verdicts: `keeps-up` (pass), `falling-behind`, `stale-slot` (slot lag up while replica lag
/// ≈ 0: not a slow replica), `window-misses-peak`, `no-data`.
pub fn keeps_up_at_peak(
    slot_lag: &[Point],
    replica_lag: &[Point],
    wal_generation: &[Point],
    opts: &Options,
) -> Assessment {
    let slot_all = Series::new(slot_lag);
    let replica_all = Series::new(replica_lag);
    let gen_all = Series::new(wal_generation);
    let now = opts.now_or(&[&slot_all, &replica_all, &gen_all], 0);
    let slot = opts.window(&slot_all, now);
    let replica = opts.window(&replica_all, now);
    let generation = opts.window(&gen_all, now);

    let mut ev = Evidence::default();
    ev.int("now", now)
        .num("segment_bytes", opts.segment_bytes)
        .num(
            "max_replica_lag_p99_seconds",
            opts.max_replica_lag_p99_seconds,
        );
    for (name, s) in [
        ("OldestReplicationSlotLag", &slot),
        ("RDSToAuroraPostgreSQLReplicaLag", &replica),
        ("TransactionLogsGeneration", &generation),
    ] {
        let stale = s
            .last()
            .is_none_or(|p| now.saturating_sub(p.t) > opts.stale_after_seconds);
        if s.points.len() < opts.min_datapoints || stale {
            let detail = match s.last() {
                Some(p) if stale => format!(
                    "no {name} datapoint since {} ({} before {})",
                    fmt_utc(p.t),
                    fmt_duration(now.saturating_sub(p.t) as f64),
                    fmt_utc(now)
                ),
                _ => format!(
                    "{} {name} datapoint(s) in the window, need at least {}",
                    s.points.len(),
                    opts.min_datapoints
                ),
            };
            ev.text("missing_series", name);
            return Assessment::new(Verdict::NoData, false, detail, ev);
        }
    }

    let verdict_of_window = classify_window(&slot_all, &slot, &replica, now, None, opts);
    if verdict_of_window.verdict == Verdict::StaleSlot {
        return verdict_of_window;
    }

    let Some(st) = SlotStats::of(&slot, opts) else {
        return Assessment::new(Verdict::NoData, false, "no slot lag datapoint", ev);
    };
    st.record(&mut ev);
    let rv = replica.values();
    let gv = generation.values();
    let replica_p99 = percentile(&rv, 99.0).unwrap_or(0.0);
    let replica_p50 = percentile(&rv, 50.0).unwrap_or(0.0);
    let slot_p99 = percentile(&slot.values(), 99.0).unwrap_or(0.0);
    let gen_mean = gv.iter().sum::<f64>() / gv.len() as f64;
    let gen_max = gv.iter().copied().fold(0.0, f64::max);
    let gen_p99 = percentile(&gv, 99.0).unwrap_or(0.0);
    let receive_rate = (gen_mean - st.slope).max(0.0);
    let throughput = receive_rate.max(gen_max);
    // What the replica can be missing: the slot lag, but no more than the WAL written while the
    // replica is behind (its lag, plus one period for the datapoints' granularity). Within the
    // idle sawtooth the slot lag is mostly the unused rest of a switched segment: an idle source
    // (136 B/s) with 64 MiB of slot lag was estimated at ~5 d 17 h of catch-up.
    let backlog = slot_p99.min(gen_max * (replica_p99 + opts.period_seconds as f64));
    let transfer = if throughput > 0.0 {
        backlog / throughput
    } else {
        0.0
    };
    let catch_up = replica_p99.max(transfer);
    ev.num("replica_lag_p99_seconds", replica_p99)
        .num("replica_lag_p50_seconds", replica_p50)
        .num("slot_lag_p99_bytes", slot_p99)
        .num("wal_generation_mean_bytes_per_second", gen_mean)
        .num("wal_generation_max_bytes_per_second", gen_max)
        .num("wal_generation_p99_bytes_per_second", gen_p99)
        .num("replica_receive_bytes_per_second", receive_rate)
        .num("backlog_estimate_bytes", backlog)
        .num("catch_up_estimate_seconds", catch_up);
    if gen_mean > 0.0 {
        ev.num("receive_to_generation_ratio", receive_rate / gen_mean);
    }

    if let Some(peak) = opts.peak_bytes_per_second {
        ev.num("known_peak_bytes_per_second", peak);
        if gen_max < opts.peak_coverage * peak {
            return Assessment::new(
                Verdict::WindowMissesPeak,
                false,
                format!(
                    "TransactionLogsGeneration in the window peaks at {}/s, below {:.0}% of the \
                     known peak {}/s: validate over a window that contains the peak",
                    fmt_bytes(gen_max),
                    opts.peak_coverage * 100.0,
                    fmt_bytes(peak)
                ),
                ev,
            );
        }
    }

    let mut failures = Vec::new();
    if replica_p99 > opts.max_replica_lag_p99_seconds {
        failures.push(format!(
            "replica lag p99 {} > max {}",
            fmt_seconds(replica_p99),
            fmt_seconds(opts.max_replica_lag_p99_seconds)
        ));
    }
    if st.trend_rise() > opts.segment_bytes {
        failures.push(format!(
            "OldestReplicationSlotLag trending up {} (+{} over {}, more than one {} segment)",
            fmt_bytes_per_min(st.slope * 60.0),
            fmt_bytes(st.trend_rise()),
            fmt_duration(st.span as f64),
            fmt_bytes(opts.segment_bytes)
        ));
    }
    if slot_p99 > opts.far() {
        failures.push(format!(
            "OldestReplicationSlotLag p99 {} > bound {}",
            fmt_bytes(slot_p99),
            fmt_bytes(opts.far())
        ));
    }
    let rates = format!(
        "WAL generation mean {}/s (max {}/s), replica receives {}/s",
        fmt_bytes(gen_mean),
        fmt_bytes(gen_max),
        fmt_bytes(receive_rate)
    );
    if failures.is_empty() {
        Assessment::new(
            Verdict::KeepsUp,
            true,
            format!(
                "replica lag p99 {} ≤ {}, OldestReplicationSlotLag p99 {} trend {}, {}; final \
                 catch-up after the fence ~{}",
                fmt_seconds(replica_p99),
                fmt_seconds(opts.max_replica_lag_p99_seconds),
                fmt_bytes(slot_p99),
                fmt_bytes_per_min(st.slope * 60.0),
                rates,
                fmt_duration(catch_up)
            ),
            ev,
        )
    } else {
        Assessment::new(
            Verdict::FallingBehind,
            false,
            format!("{}; {}", failures.join("; "), rates),
            ev,
        )
    }
}
