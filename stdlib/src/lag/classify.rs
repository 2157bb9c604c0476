//! One window of slot lag (and replica lag) → one of six states, with the numbers.
//!
//! Order matters and is the point of this file:
//! 1. no slot data (or it stopped arriving) → `no-data`: missing is never 0;
//! 2. replica at ≈ 0 s while slot lag stays far above a segment, or keeps growing past one
//!    → `stale-slot`: waiting cannot fix it, someone must act;
//! 3. slot lag trending up by more than one segment across the window → `growing`;
//! 4. no replica data → `no-data` (caught-up needs both);
//! 5. slot lag above one idle tooth, or replica lag above tolerance → `lagging`;
//! 6. values between 0 and one tooth with both zeros and a tooth → `idle-oscillation`;
//! 7. last datapoint 0 → `caught-up`; anything else (small non-zero lag) → `lagging`.
//!
//! Every slot-lag threshold is a multiple of the segment size, so a 16 MiB-segment lab and a
//! 64 MiB-segment RDS source classify alike.

use super::fmt::{fmt_bytes, fmt_bytes_per_min, fmt_duration, fmt_seconds, fmt_utc};
use super::series::Series;
use super::slots::{advice, culprit, describe};
use super::stats::{median, theil_sen_per_second};
use super::{Assessment, Evidence, Options, Point, Slot, Verdict};

/// What one window of slot lag looks like, in numbers.
#[derive(Debug, Clone)]
pub(crate) struct SlotStats {
    pub n: usize,
    pub last: Point,
    pub max: f64,
    pub min: f64,
    pub median: f64,
    pub zeros: usize,
    /// Datapoints between half a segment and the idle ceiling: sawtooth peaks.
    pub teeth: usize,
    /// Theil–Sen slope, bytes per second (0 with a single timestamp).
    pub slope: f64,
    pub span: i64,
    pub run_above_ceiling: i64,
    pub run_above_far: i64,
}

impl SlotStats {
    pub fn of(s: &Series, opts: &Options) -> Option<SlotStats> {
        let last = s.last()?;
        let values = s.values();
        let ceiling = opts.ceiling();
        Some(SlotStats {
            n: values.len(),
            last,
            max: values.iter().copied().fold(f64::MIN, f64::max),
            min: values.iter().copied().fold(f64::MAX, f64::min),
            median: median(&values).unwrap_or(0.0),
            zeros: values.iter().filter(|&&v| v == 0.0).count(),
            teeth: values
                .iter()
                .filter(|&&v| v >= opts.segment_bytes / 2.0 && v <= ceiling)
                .count(),
            slope: theil_sen_per_second(&s.points).unwrap_or(0.0),
            span: s.span_seconds(),
            run_above_ceiling: s.trailing_run_above(ceiling).0,
            run_above_far: s.trailing_run_above(opts.far()).0,
        })
    }

    /// The trend's rise across the window, bytes.
    pub fn trend_rise(&self) -> f64 {
        self.slope * self.span as f64
    }

    /// Growing: the robust trend adds more than one segment across the window, and the lag is
    /// now above one idle tooth. A sawtooth never qualifies: it never leaves the ceiling.
    pub fn growing(&self, opts: &Options) -> bool {
        self.trend_rise() > opts.segment_bytes && self.last.v > opts.ceiling()
    }

    pub fn record(&self, ev: &mut Evidence) {
        ev.int("slot_datapoints", self.n as i64)
            .num("slot_last_bytes", self.last.v)
            .int("slot_last_t", self.last.t)
            .num("slot_max_bytes", self.max)
            .num("slot_min_bytes", self.min)
            .num("slot_median_bytes", self.median)
            .int("slot_zero_datapoints", self.zeros as i64)
            .int("slot_tooth_datapoints", self.teeth as i64)
            .num("slot_trend_bytes_per_min", self.slope * 60.0)
            .num("slot_trend_rise_bytes", self.trend_rise())
            .int("slot_span_seconds", self.span)
            .int("slot_above_ceiling_seconds", self.run_above_ceiling)
            .int("slot_above_stale_threshold_seconds", self.run_above_far);
    }
}

/// Classify slot lag (bytes) and replica lag (seconds) over the window. See the module docs
/// for the order of the rules and `docs/lag.md` for the thresholds.
///
/// `pass` is true for `caught-up` and `idle-oscillation` (nothing to wait for, nothing stale);
/// for a busy source that streams with a small steady lag use [`super::keeps_up_at_peak`].
/// `slots` (when known) names the culprit of a `stale-slot`.
pub fn classify(
    slot_lag: &[Point],
    replica_lag: &[Point],
    slots: Option<&[Slot]>,
    opts: &Options,
) -> Assessment {
    let slot = Series::new(slot_lag);
    let replica = Series::new(replica_lag);
    let now = opts.now_or(&[&slot, &replica], 0);
    let slot_w = opts.window(&slot, now);
    let replica_w = opts.window(&replica, now);
    classify_window(&slot, &slot_w, &replica_w, now, slots, opts)
}

/// Replica lag as the rules use it: the newest datapoint, if it is still arriving.
pub(crate) fn replica_now(replica: &Series, now: i64, opts: &Options) -> Option<Point> {
    replica
        .last()
        .filter(|p| now.saturating_sub(p.t) <= opts.stale_after_seconds)
}

/// `full` is the unwindowed slot series, used only to say when data was last seen.
pub(crate) fn classify_window(
    full: &Series,
    slot: &Series,
    replica: &Series,
    now: i64,
    slots: Option<&[Slot]>,
    opts: &Options,
) -> Assessment {
    let mut ev = Evidence::default();
    let ceiling = opts.ceiling();
    let far = opts.far();
    let tol = opts.replica_lag_tolerance_seconds;
    ev.int("now", now)
        .num("segment_bytes", opts.segment_bytes)
        .num("idle_ceiling_bytes", ceiling)
        .num("stale_slot_threshold_bytes", far)
        .num("replica_lag_tolerance_seconds", tol);
    let (gaps, largest_gap) = slot.gaps(opts.period_seconds);
    ev.int("slot_gaps", gaps as i64)
        .int("slot_largest_gap_seconds", largest_gap)
        .int(
            "dropped_datapoints",
            (slot.dropped + replica.dropped) as i64,
        )
        .int(
            "duplicate_datapoints",
            (slot.duplicates + replica.duplicates) as i64,
        );

    let stats = SlotStats::of(slot, opts);
    let fresh = stats
        .as_ref()
        .is_some_and(|s| now.saturating_sub(s.last.t) <= opts.stale_after_seconds);
    let Some(st) = stats.filter(|s| fresh && s.n >= opts.min_datapoints) else {
        ev.int("slot_datapoints", slot.points.len() as i64);
        let detail = match full.last() {
            None => "no OldestReplicationSlotLag datapoint at all; missing data never counts as 0"
                .to_string(),
            Some(p) if now.saturating_sub(p.t) > opts.stale_after_seconds => {
                ev.int("slot_last_t", p.t).num("slot_last_bytes", p.v);
                format!(
                    "no OldestReplicationSlotLag datapoint since {} ({} before {}; last value {}): \
                     the series stopped arriving, check the metric source",
                    fmt_utc(p.t),
                    fmt_duration(now.saturating_sub(p.t) as f64),
                    fmt_utc(now),
                    fmt_bytes(p.v)
                )
            }
            Some(_) => format!(
                "{} OldestReplicationSlotLag datapoint(s) in the window, need at least {}",
                slot.points.len(),
                opts.min_datapoints
            ),
        };
        return Assessment::new(Verdict::NoData, false, detail, ev);
    };
    st.record(&mut ev);

    let rep = replica_now(replica, now, opts);
    if let Some(r) = rep {
        ev.num("replica_last_seconds", r.v)
            .int("replica_last_t", r.t)
            .int("replica_datapoints", replica.points.len() as i64)
            .num(
                "replica_max_seconds",
                replica.values().into_iter().fold(0.0, f64::max),
            );
    }
    let replica_ok = rep.is_some_and(|r| r.v <= tol);
    let rate = fmt_bytes_per_min(st.slope * 60.0);
    let replica_text = match rep {
        Some(r) => format!("replica lag {}", fmt_seconds(r.v)),
        None => "replica lag unknown (no recent datapoint)".to_string(),
    };

    let far_sustained = st.run_above_far >= opts.sustain_seconds;
    let growing = st.growing(opts);
    let growth_sustained = growing && st.run_above_ceiling >= opts.sustain_seconds;
    if replica_ok && (far_sustained || growth_sustained) {
        let held = if far_sustained {
            st.run_above_far
        } else {
            st.run_above_ceiling
        };
        let mut detail = format!(
            "OldestReplicationSlotLag {} and {} for {} while {}",
            fmt_bytes(st.last.v),
            rate,
            fmt_duration(held as f64),
            replica_text
        );
        match slots.map(|s| (s, culprit(s, opts))) {
            Some((_, Some(c))) => {
                ev.text("stale_slot", c.slot_name.clone())
                    .num("stale_slot_lag_bytes", c.lag_bytes);
                detail += &format!("; {}: {}", describe(c), advice(c));
            }
            Some((_, None)) => {
                detail += "; no slot in the given list lags more than one segment (is the list \
                           older than the series?): list pg_replication_slots again";
            }
            None => {
                detail += "; a slot other than the replica's holds WAL back: find it in \
                           pg_replication_slots (inactive, or logical with an old \
                           confirmed_flush_lsn), then drop it or resume its consumer";
            }
        }
        return Assessment::new(Verdict::StaleSlot, false, detail, ev);
    }
    if growing {
        let why = if rep.is_none() {
            "; without replica lag a stale slot cannot be told from a slow replica"
        } else {
            ""
        };
        return Assessment::new(
            Verdict::Growing,
            false,
            format!(
                "OldestReplicationSlotLag {} at {}, trend {} (+{} over {}), {}{}",
                fmt_bytes(st.last.v),
                fmt_utc(st.last.t),
                rate,
                fmt_bytes(st.trend_rise()),
                fmt_duration(st.span as f64),
                replica_text,
                why
            ),
            ev,
        );
    }
    if rep.is_none() {
        let detail = match replica.last() {
            Some(p) => format!(
                "no RDSToAuroraPostgreSQLReplicaLag datapoint since {} (slot lag {}); caught-up \
                 needs both series",
                fmt_utc(p.t),
                fmt_bytes(st.last.v)
            ),
            None => format!(
                "no RDSToAuroraPostgreSQLReplicaLag datapoint (slot lag {}); caught-up needs \
                 both series",
                fmt_bytes(st.last.v)
            ),
        };
        return Assessment::new(Verdict::NoData, false, detail, ev);
    }
    if st.last.v > ceiling || !replica_ok {
        let mut detail = format!(
            "OldestReplicationSlotLag {} at {} (trend {}), {}",
            fmt_bytes(st.last.v),
            fmt_utc(st.last.t),
            rate,
            replica_text
        );
        if st.last.v > ceiling && st.slope < 0.0 {
            let eta = st.last.v / -st.slope;
            ev.num("slot_drain_estimate_seconds", eta);
            detail += &format!("; shrinking, at this rate 0 in ~{}", fmt_duration(eta));
        } else if st.last.v > far && replica_ok {
            detail += &format!(
                "; stale-slot if it stays above {} for {}",
                fmt_bytes(far),
                fmt_duration(opts.sustain_seconds as f64)
            );
        }
        return Assessment::new(Verdict::Lagging, false, detail, ev);
    }
    if st.max <= ceiling && st.zeros > 0 && st.teeth > 0 {
        return Assessment::new(
            Verdict::IdleOscillation,
            true,
            format!(
                "OldestReplicationSlotLag saw-tooths between 0 and {} ({} zero and {} \
                 segment-high datapoints of {}; segment {}), {}: in sync within one segment, \
                 nothing missing (the sawtooth of an idle source's forced segment switches; a busy \
                 source streaming in step looks the same: tell them apart by \
                 TransactionLogsGeneration, see keeps_up_at_peak)",
                fmt_bytes(st.max),
                st.zeros,
                st.teeth,
                st.n,
                fmt_bytes(opts.segment_bytes),
                replica_text
            ),
            ev,
        );
    }
    if st.last.v == 0.0 {
        return Assessment::new(
            Verdict::CaughtUp,
            true,
            format!(
                "OldestReplicationSlotLag 0 at {}, {} (window max {})",
                fmt_utc(st.last.t),
                replica_text,
                fmt_bytes(st.max)
            ),
            ev,
        );
    }
    Assessment::new(
        Verdict::Lagging,
        false,
        format!(
            "OldestReplicationSlotLag {} at {}, within one segment and not growing, {}: streaming \
             a busy source, not caught up",
            fmt_bytes(st.last.v),
            fmt_utc(st.last.t),
            replica_text
        ),
        ev,
    )
}
