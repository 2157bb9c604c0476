//! Table tests on recorded-style series (shapes seen on RDS: the idle sawtooth, a busy source
//! draining, a consumer-less logical slot) and property tests of the rules' invariants.

use proptest::prelude::*;

use super::*;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
const SEG: f64 = RDS_SEGMENT_BYTES;
/// 12:00:00 UTC.
const T0: i64 = 1_699_963_200;

fn series(start: i64, period: i64, values: &[f64]) -> Vec<Point> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| Point {
            t: start + i as i64 * period,
            v,
        })
        .collect()
}

/// The idle RDS shape: a forced segment switch every 5 minutes shows up as one datapoint of a
/// segment plus a few heartbeat bytes, the rest are 0.
fn idle_sawtooth(n: usize, seg: f64) -> Vec<f64> {
    (0..n)
        .map(|i| if i % 5 == 4 { seg + 8.0 * 1024.0 } else { 0.0 })
        .collect()
}

fn zeros(n: usize) -> Vec<f64> {
    vec![0.0; n]
}

fn opts() -> Options {
    Options::default()
}

fn with_now(now: i64) -> Options {
    Options {
        now: Some(now),
        ..Options::default()
    }
}

// ---- classify ------------------------------------------------------------------------------

#[test]
fn idle_source_sawtooth_is_idle_oscillation() {
    let slot = series(T0, 60, &idle_sawtooth(60, SEG));
    let replica = series(T0, 60, &zeros(60));
    let a = classify(&slot, &replica, None, &opts());
    assert_eq!(a.verdict, Verdict::IdleOscillation, "{}", a.why);
    assert!(a.pass);
    assert!(a.why.contains("between 0 and 64.0 MiB"), "{}", a.why);
    assert_eq!(a.evidence.get_i64("slot_zero_datapoints"), Some(48));
    assert_eq!(a.evidence.get_i64("slot_tooth_datapoints"), Some(12));
    assert_eq!(a.evidence.get_f64("slot_trend_bytes_per_min"), Some(0.0));
}

#[test]
fn stock_postgres_sawtooth_with_16_mib_segments() {
    let seg = 16.0 * MIB;
    let o = Options {
        segment_bytes: seg,
        ..opts()
    };
    let slot = series(T0, 60, &idle_sawtooth(60, seg));
    let replica = series(T0, 60, &zeros(60));
    assert_eq!(
        classify(&slot, &replica, None, &o).verdict,
        Verdict::IdleOscillation
    );
    // The RDS sawtooth read with a 16 MiB segment is four segments high: not idle.
    let rds = series(T0, 60, &idle_sawtooth(60, SEG));
    assert_ne!(
        classify(&rds, &replica, None, &o).verdict,
        Verdict::IdleOscillation
    );
}

#[test]
fn busy_source_catching_up() {
    // 2 GiB behind draining linearly over 30 min, replica lag 90 s → 10 s.
    let slot: Vec<f64> = (0..30)
        .map(|i| 2.0 * GIB * (1.0 - f64::from(i) / 36.0))
        .collect();
    let replica: Vec<f64> = (0..30).map(|i| 90.0 - f64::from(i) * 80.0 / 29.0).collect();
    let a = classify(
        &series(T0, 60, &slot),
        &series(T0, 60, &replica),
        None,
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::Lagging, "{}", a.why);
    assert!(!a.pass);
    assert!(a.why.contains("shrinking"), "{}", a.why);
    let eta = a.evidence.get_f64("slot_drain_estimate_seconds").unwrap();
    // 7 of 36 one-minute steps remain.
    assert!((eta - 420.0).abs() < 1.0, "eta {eta}");

    // ... and once drained: 0 with the replica at 0 s.
    let mut done = slot.clone();
    done.extend([100.0 * MIB, 0.0, 0.0]);
    let mut rdone = replica.clone();
    rdone.extend([2.0, 0.0, 0.0]);
    let a = classify(
        &series(T0, 60, &done),
        &series(T0, 60, &rdone),
        None,
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::CaughtUp, "{}", a.why);
    assert!(a.pass);
}

#[test]
fn small_steady_lag_is_lagging_not_caught_up() {
    // The "lag < 64 MB" trap: 40 MiB of unreceived WAL is not caught up.
    let slot = series(T0, 60, &[40.0 * MIB; 20]);
    let replica = series(T0, 60, &zeros(20));
    let a = classify(&slot, &replica, None, &opts());
    assert_eq!(a.verdict, Verdict::Lagging, "{}", a.why);
    assert!(a.why.contains("not caught up"), "{}", a.why);
}

#[test]
fn stale_logical_slot_is_named_with_advice() {
    // +64 MiB every 5 min for 40 min from 2.6 GiB while the replica is at 0 s.
    let slot: Vec<f64> = (0..41)
        .map(|i| 2.6 * GIB + f64::from(i / 5) * SEG)
        .collect();
    let replica = zeros(41);
    let slots = vec![
        Slot {
            slot_name: "aurora_replica".into(),
            slot_type: SlotType::Physical,
            active: true,
            lag_bytes: 0.0,
            inactive_since: None,
        },
        Slot {
            slot_name: "debezium_orders".into(),
            slot_type: SlotType::Logical,
            active: false,
            lag_bytes: 3.1 * GIB,
            inactive_since: Some(Since::Epoch(T0 + 4 * 60)),
        },
    ];
    let a = classify(
        &series(T0, 60, &slot),
        &series(T0, 60, &replica),
        Some(&slots),
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::StaleSlot, "{}", a.why);
    assert!(!a.pass);
    assert!(
        a.why.starts_with(
            "stale-slot: OldestReplicationSlotLag 3.1 GiB and +12.8 MiB/min for 40 min while \
             replica lag 0 s; slot `debezium_orders` (logical, inactive since 12:04:00, 3.1 GiB): \
             drop it"
        ),
        "{}",
        a.why
    );
    assert_eq!(a.evidence.0["stale_slot"], "debezium_orders");

    // Without a slot list it still says stale, and where to look.
    let a = classify(
        &series(T0, 60, &slot),
        &series(T0, 60, &replica),
        None,
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::StaleSlot);
    assert!(a.why.contains("pg_replication_slots"), "{}", a.why);
}

#[test]
fn far_above_but_flat_slot_is_stale_only_once_sustained() {
    let replica = series(T0, 60, &zeros(20));
    // 1 GiB flat for 5 min: lagging, with a warning.
    let short = series(T0 + 14 * 60, 60, &[GIB; 6]);
    let a = classify(&short, &replica, None, &opts());
    assert_eq!(a.verdict, Verdict::Lagging, "{}", a.why);
    assert!(
        a.why
            .contains("stale-slot if it stays above 256.0 MiB for 10 min"),
        "{}",
        a.why
    );
    // ... for 19 min: stale.
    let long = series(T0, 60, &[GIB; 20]);
    assert_eq!(
        classify(&long, &replica, None, &opts()).verdict,
        Verdict::StaleSlot
    );
}

#[test]
fn growing_with_replica_behind_is_growing() {
    let slot: Vec<f64> = (0..30).map(|i| f64::from(i) * 20.0 * MIB).collect();
    let replica: Vec<f64> = (0..30).map(|i| f64::from(i) * 2.0).collect();
    let a = classify(
        &series(T0, 60, &slot),
        &series(T0, 60, &replica),
        None,
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::Growing, "{}", a.why);
    assert!(a.why.contains("+20.0 MiB/min"), "{}", a.why);
}

#[test]
fn a_single_spike_does_not_decide() {
    let replica = series(T0, 60, &zeros(30));
    // A spike in the middle: the source is caught up now.
    let mut mid = zeros(30);
    mid[14] = 2.0 * GIB;
    let a = classify(&series(T0, 60, &mid), &replica, None, &opts());
    assert_eq!(a.verdict, Verdict::CaughtUp, "{}", a.why);
    assert_eq!(a.evidence.get_f64("slot_max_bytes"), Some(2.0 * GIB));
    // A spike on the last datapoint: behind now, but neither growing nor stale.
    let mut end = zeros(30);
    end[29] = 2.0 * GIB;
    let a = classify(&series(T0, 60, &end), &replica, None, &opts());
    assert_eq!(a.verdict, Verdict::Lagging, "{}", a.why);
    assert_eq!(a.evidence.get_f64("slot_trend_bytes_per_min"), Some(0.0));
}

#[test]
fn classify_without_data() {
    let a = classify(&[], &[], None, &opts());
    assert_eq!(a.verdict, Verdict::NoData);
    assert!(
        a.why.contains("missing data never counts as 0"),
        "{}",
        a.why
    );
    // The series stopped 12 min ago.
    let slot = series(T0, 60, &zeros(10));
    let a = classify(&slot, &slot, None, &with_now(T0 + 9 * 60 + 12 * 60));
    assert_eq!(a.verdict, Verdict::NoData);
    assert!(
        a.why.contains(
            "no OldestReplicationSlotLag datapoint since 12:09:00 (12 min before 12:21:00"
        ),
        "{}",
        a.why
    );
    // Slot data but no replica data (CloudWatch's -1 is not a measurement).
    let a = classify(&slot, &series(T0, 60, &[-1.0; 10]), None, &opts());
    assert_eq!(a.verdict, Verdict::NoData, "{}", a.why);
    assert!(
        a.why.contains("RDSToAuroraPostgreSQLReplicaLag"),
        "{}",
        a.why
    );
    assert_eq!(a.evidence.get_i64("dropped_datapoints"), Some(10));
}

#[test]
fn window_limits_what_is_classified() {
    // A stale episode an hour ago, idle since.
    let mut v = vec![GIB; 30];
    v.extend(idle_sawtooth(60, SEG));
    let slot = series(T0, 60, &v);
    let replica = series(T0, 60, &zeros(90));
    let o = Options {
        window_seconds: Some(3000),
        ..opts()
    };
    assert_eq!(
        classify(&slot, &replica, None, &o).verdict,
        Verdict::IdleOscillation
    );
    assert_ne!(
        classify(&slot, &replica, None, &opts()).verdict,
        Verdict::IdleOscillation
    );
}

// ---- the sync gate after the fence ---------------------------------------------------------

/// An idle source fenced at 12:30:10: sawtooth before, then the tail given.
fn fenced(tail: &[f64]) -> (Vec<Point>, i64) {
    let mut v = idle_sawtooth(31, SEG);
    v.extend_from_slice(tail);
    (series(T0, 60, &v), T0 + 30 * 60 + 10)
}

#[test]
fn fence_then_first_zero_passes() {
    // 12:31 one segment, 12:32 one segment, 12:33 zero.
    let (slot, fence) = fenced(&[SEG, SEG, 0.0]);
    let replica = series(T0, 60, &zeros(34));
    let a = caught_up_after_fence(&slot, &replica, fence, None, &opts());
    assert_eq!(a.verdict, Verdict::CaughtUp, "{}", a.why);
    assert!(a.pass);
    assert_eq!(
        a.evidence.get_i64("first_zero_after_fence_t"),
        Some(T0 + 33 * 60)
    );
    assert_eq!(
        a.evidence.get_i64("first_zero_after_fence_delay_seconds"),
        Some(170)
    );
    assert!(
        a.why
            .contains("OldestReplicationSlotLag 0 at 12:33:00 (3 min after the fence at 12:30:10)"),
        "{}",
        a.why
    );
}

#[test]
fn fence_before_the_first_zero_waits() {
    // Zeros before the fence (12:30:00 included) do not count.
    let (slot, fence) = fenced(&[SEG, SEG]);
    let replica = series(T0, 60, &zeros(33));
    let a = caught_up_after_fence(&slot, &replica, fence, None, &opts());
    assert_eq!(a.verdict, Verdict::Waiting, "{}", a.why);
    assert!(!a.pass);
    assert!(a.why.contains("last 64.0 MiB at 12:32:00"), "{}", a.why);
    assert!(
        a.why
            .contains("the 0 stamped 12:30:00 starts before 12:30:15"),
        "{}",
        a.why
    );
}

#[test]
fn replica_lag_must_be_near_zero_too() {
    let (slot, fence) = fenced(&[SEG, 0.0]);
    let mut r = zeros(31);
    r.extend([30.0, 4.0]);
    let a = caught_up_after_fence(&slot, &series(T0, 60, &r), fence, None, &opts());
    assert_eq!(a.verdict, Verdict::Waiting, "{}", a.why);
    assert!(
        a.why
            .contains("replica lag 4 s at 12:32:00 > tolerance 1 s"),
        "{}",
        a.why
    );
    let o = Options {
        replica_lag_tolerance_seconds: 5.0,
        ..opts()
    };
    assert!(caught_up_after_fence(&slot, &series(T0, 60, &r), fence, None, &o).pass);
}

#[test]
fn clock_skew_around_the_fence() {
    // Replica lag datapoints up to `now` (12:03:00).
    let replica = series(T0 - 600, 60, &zeros(14));
    let fence = T0;
    let case = |zero_at: i64, skew: i64| {
        let slot = vec![
            Point {
                t: T0 - 120,
                v: SEG,
            },
            Point { t: zero_at, v: 0.0 },
        ];
        let o = Options {
            clock_skew_seconds: skew,
            now: Some(T0 + 180),
            ..opts()
        };
        caught_up_after_fence(&slot, &replica, fence, None, &o)
    };
    // A 60 s period stamped 30 s before the fence covers time before the fence.
    assert!(!case(T0 - 30, 5).pass);
    assert_eq!(
        case(T0 - 30, 5).evidence.get_i64("ignored_zero_t"),
        Some(T0 - 30)
    );
    // Inside the skew allowance.
    assert!(!case(T0 + 2, 5).pass);
    assert!(!case(T0 + 4, 5).pass);
    // At and after fence + allowance.
    assert!(case(T0 + 5, 5).pass);
    assert!(case(T0 + 60, 5).pass);
    // No allowance: a period starting exactly at the fence counts.
    assert!(case(T0, 0).pass);
}

#[test]
fn datapoints_from_the_future_mean_clock_skew() {
    let (slot, fence) = fenced(&[SEG, 0.0]);
    let replica = series(T0, 60, &zeros(33));
    // Our clock says 12:31:00 but a datapoint is stamped 12:32:00.
    let a = caught_up_after_fence(&slot, &replica, fence, None, &with_now(T0 + 31 * 60));
    assert_eq!(a.verdict, Verdict::Waiting, "{}", a.why);
    assert!(
        a.why
            .contains("the metric clock and this host's clock disagree"),
        "{}",
        a.why
    );
    assert_eq!(a.evidence.get_i64("future_datapoint_t"), Some(T0 + 32 * 60));
    // With our clock at 12:34:00 the same series passes.
    assert!(caught_up_after_fence(&slot, &replica, fence, None, &with_now(T0 + 34 * 60)).pass);
}

#[test]
fn gaps_around_the_fence() {
    let fence = T0 + 30 * 60 + 10;
    // Data stopped at 12:25 and nothing since: at 12:33 still waiting, at 12:40 no-data.
    let slot = series(T0, 60, &idle_sawtooth(26, SEG));
    let replica = series(T0, 60, &zeros(26));
    let a = caught_up_after_fence(&slot, &replica, fence, None, &with_now(T0 + 33 * 60));
    assert_eq!(a.verdict, Verdict::Waiting, "{}", a.why);
    let a = caught_up_after_fence(&slot, &replica, fence, None, &with_now(T0 + 40 * 60));
    assert_eq!(a.verdict, Verdict::NoData, "{}", a.why);
    assert!(
        a.why
            .starts_with("no-data: no OldestReplicationSlotLag datapoint since 12:25:00"),
        "{}",
        a.why
    );

    // The gap spans the fence and data resumes: the first 0 after the fence still proves it.
    let mut resumed = slot.clone();
    resumed.extend(series(T0 + 34 * 60, 60, &[SEG, 0.0]));
    let mut r2 = replica.clone();
    r2.extend(series(T0 + 34 * 60, 60, &[0.0, 0.0]));
    let a = caught_up_after_fence(&resumed, &r2, fence, None, &opts());
    assert_eq!(a.verdict, Verdict::CaughtUp, "{}", a.why);
    assert_eq!(
        a.evidence.get_i64("first_zero_after_fence_t"),
        Some(T0 + 35 * 60)
    );

    // Slot data after the fence that stopped arriving without a 0.
    let mut stopped = slot.clone();
    stopped.extend(series(T0 + 31 * 60, 60, &[SEG, SEG]));
    let a = caught_up_after_fence(&stopped, &r2, fence, None, &with_now(T0 + 45 * 60));
    assert_eq!(a.verdict, Verdict::NoData, "{}", a.why);

    // The slot shows 0, but the replica lag series has nothing after the fence.
    let (ok_slot, _) = fenced(&[0.0]);
    let a = caught_up_after_fence(&ok_slot, &replica, fence, None, &with_now(T0 + 33 * 60));
    assert_eq!(a.verdict, Verdict::Waiting, "{}", a.why);
    let a = caught_up_after_fence(&ok_slot, &replica, fence, None, &with_now(T0 + 50 * 60));
    assert_eq!(a.verdict, Verdict::NoData, "{}", a.why);
    assert!(
        a.why.contains("RDSToAuroraPostgreSQLReplicaLag"),
        "{}",
        a.why
    );
}

#[test]
fn late_and_revised_datapoints() {
    // CloudWatch returns newest first; a late datapoint arrives out of order.
    let (mut slot, fence) = fenced(&[SEG, 0.0]);
    slot.reverse();
    slot.swap(0, 5);
    let replica = series(T0, 60, &zeros(33));
    assert!(caught_up_after_fence(&slot, &replica, fence, None, &opts()).pass);
    // The same timestamp reported as 0 and, revised by late samples, 64 MiB: not a 0.
    slot.push(Point {
        t: T0 + 32 * 60,
        v: SEG,
    });
    let a = caught_up_after_fence(&slot, &replica, fence, None, &opts());
    assert!(!a.pass, "{}", a.why);
}

#[test]
fn stale_slot_after_the_fence_is_reported_not_waited_on() {
    let mut v = vec![3.0 * GIB; 31];
    v.extend(vec![3.1 * GIB; 15]);
    let slot = series(T0, 60, &v);
    let replica = series(T0, 60, &zeros(46));
    let a = caught_up_after_fence(&slot, &replica, T0 + 30 * 60 + 10, None, &opts());
    assert_eq!(a.verdict, Verdict::StaleSlot, "{}", a.why);
    assert!(
        a.why.starts_with("stale-slot: since the fence at 12:30:10"),
        "{}",
        a.why
    );
    // Ten minutes after the fence it is not yet sustained: still waiting.
    let short = series(T0, 60, &v[..36]);
    let replica = series(T0, 60, &zeros(36));
    let a = caught_up_after_fence(&short, &replica, T0 + 30 * 60 + 10, None, &opts());
    assert_eq!(a.verdict, Verdict::Waiting, "{}", a.why);
}

// ---- keeps up at peak ----------------------------------------------------------------------

/// A diurnal-ish peak: WAL generation rising to 30 MiB/s and back over an hour.
fn peak_generation() -> Vec<f64> {
    (0..60)
        .map(|i| {
            let x = (f64::from(i) - 30.0) / 30.0;
            (30.0 * (1.0 - x * x)).max(1.0) * MIB
        })
        .collect()
}

/// Issue 18: the validation gate passed an idle source saying "final catch-up after the fence
/// ~5 d 17 h": its 64 MiB teeth are segment padding, not WAL to ship at 136 B/s.
#[test]
fn an_idle_sources_sawtooth_is_no_backlog_to_catch_up() {
    let slot: Vec<f64> = (0..120)
        .map(|i| if i % 5 == 0 { SEG } else { 0.0 })
        .collect();
    let generation: Vec<f64> = (0..120)
        .map(|i| if i % 5 == 4 { 136.0 } else { 0.0 })
        .collect();
    let a = keeps_up_at_peak(
        &series(T0, 60, &slot),
        &series(T0, 60, &zeros(120)),
        &series(T0, 60, &generation),
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::KeepsUp, "{}", a.why);
    let catch_up = a.evidence.get_f64("catch_up_estimate_seconds").unwrap();
    assert!(
        catch_up <= 60.0,
        "at most one period of the WAL actually written: {catch_up} s; {}",
        a.why
    );
    assert!(!a.why.contains(" d "), "{}", a.why);
}

#[test]
fn replica_keeps_up_at_peak() {
    let slot: Vec<f64> = (0..60).map(|i| f64::from(i % 3) * 8.0 * MIB).collect();
    let replica: Vec<f64> = (0..60).map(|i| f64::from(i % 4) * 0.5).collect();
    let a = keeps_up_at_peak(
        &series(T0, 60, &slot),
        &series(T0, 60, &replica),
        &series(T0, 60, &peak_generation()),
        &Options {
            peak_bytes_per_second: Some(30.0 * MIB),
            ..opts()
        },
    );
    assert_eq!(a.verdict, Verdict::KeepsUp, "{}", a.why);
    assert!(a.pass);
    assert_eq!(a.evidence.get_f64("replica_lag_p99_seconds"), Some(1.5));
    let catch_up = a.evidence.get_f64("catch_up_estimate_seconds").unwrap();
    assert!((1.5..5.0).contains(&catch_up), "{catch_up}");
    assert!(
        a.why.contains("final catch-up after the fence ~2 s"),
        "{}",
        a.why
    );
}

#[test]
fn replica_falling_behind_at_peak() {
    let generation = peak_generation();
    // Behind from the 20th minute: slot lag accumulating, replica lag climbing to 2 min.
    let slot: Vec<f64> = (0..60)
        .map(|i| f64::from((i - 20).max(0)) * 40.0 * MIB)
        .collect();
    let replica: Vec<f64> = (0..60).map(|i| f64::from((i - 20).max(0)) * 3.0).collect();
    let a = keeps_up_at_peak(
        &series(T0, 60, &slot),
        &series(T0, 60, &replica),
        &series(T0, 60, &generation),
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::FallingBehind, "{}", a.why);
    assert!(!a.pass);
    assert!(
        a.why.contains("replica lag p99 117 s > max 10 s"),
        "{}",
        a.why
    );
    assert!(
        a.why.contains("OldestReplicationSlotLag trending up"),
        "{}",
        a.why
    );
    let ratio = a.evidence.get_f64("receive_to_generation_ratio").unwrap();
    assert!(ratio < 1.0, "{ratio}");
}

#[test]
fn a_single_spike_at_peak_does_not_fail_a_long_enough_window() {
    // Three hours at 60 s: p99 is the second-highest datapoint, so one spike does not decide.
    let generation: Vec<f64> = (0..180).map(|i| f64::from(10 + i % 20) * MIB).collect();
    let mut slot = vec![4.0 * MIB; 180];
    slot[120] = 3.0 * GIB;
    let mut replica = vec![0.5; 180];
    replica[120] = 25.0;
    let a = keeps_up_at_peak(
        &series(T0, 60, &slot),
        &series(T0, 60, &replica),
        &series(T0, 60, &generation),
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::KeepsUp, "{}", a.why);
    // One hour: p99 of 60 datapoints is their maximum, and the spike counts.
    let a = keeps_up_at_peak(
        &series(T0, 60, &slot[90..150]),
        &series(T0, 60, &replica[90..150]),
        &series(T0, 60, &generation[90..150]),
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::FallingBehind, "{}", a.why);
}

#[test]
fn peak_validation_needs_the_peak_and_the_data() {
    let quiet = vec![2.0 * MIB; 60];
    let slot = series(T0, 60, &zeros(60));
    let replica = series(T0, 60, &zeros(60));
    let a = keeps_up_at_peak(
        &slot,
        &replica,
        &series(T0, 60, &quiet),
        &Options {
            peak_bytes_per_second: Some(30.0 * MIB),
            ..opts()
        },
    );
    assert_eq!(a.verdict, Verdict::WindowMissesPeak, "{}", a.why);
    let a = keeps_up_at_peak(&slot, &replica, &[], &opts());
    assert_eq!(a.verdict, Verdict::NoData, "{}", a.why);
    assert!(a.why.contains("TransactionLogsGeneration"), "{}", a.why);
}

#[test]
fn stale_slot_at_peak_is_not_a_slow_replica() {
    let slot: Vec<f64> = (0..60).map(|i| GIB + f64::from(i) * 30.0 * MIB).collect();
    let a = keeps_up_at_peak(
        &series(T0, 60, &slot),
        &series(T0, 60, &zeros(60)),
        &series(T0, 60, &peak_generation()),
        &opts(),
    );
    assert_eq!(a.verdict, Verdict::StaleSlot, "{}", a.why);
}

// ---- WAL headroom --------------------------------------------------------------------------

#[test]
fn wal_headroom_at_current_slot_growth() {
    // Slot lag +64 MiB/min; free storage flat at 10 GiB (the slot only just started).
    let slot: Vec<f64> = (0..30).map(|i| f64::from(i) * SEG).collect();
    let free = series(T0, 60, &[10.0 * GIB; 30]);
    let a = wal_headroom(&free, &series(T0, 60, &slot), &opts());
    assert_eq!(a.verdict, Verdict::HeadroomLow, "{}", a.why);
    assert_eq!(a.evidence.get_f64("seconds_until_full"), Some(160.0 * 60.0));
    assert!(a.why.contains("full in ~2 h 40 min"), "{}", a.why);
    assert!(
        a.why.contains("slot lag growing +64.0 MiB/min"),
        "{}",
        a.why
    );

    let big = series(T0, 60, &[1024.0 * GIB; 30]);
    let a = wal_headroom(&big, &series(T0, 60, &slot), &opts());
    assert_eq!(a.verdict, Verdict::HeadroomOk, "{}", a.why);

    let idle = series(T0, 60, &idle_sawtooth(30, SEG));
    let a = wal_headroom(&free, &idle, &opts());
    assert_eq!(a.verdict, Verdict::HeadroomOk, "{}", a.why);
    assert!(a.why.contains("not shrinking"), "{}", a.why);
    assert!(a.evidence.get_f64("seconds_until_full").is_none());
}

#[test]
fn wal_headroom_also_sees_free_storage_falling() {
    let free: Vec<f64> = (0..30)
        .map(|i| 10.0 * GIB - f64::from(i) * 128.0 * MIB)
        .collect();
    let slot = series(T0, 60, &zeros(30));
    let a = wal_headroom(&series(T0, 60, &free), &slot, &opts());
    assert_eq!(a.verdict, Verdict::HeadroomLow, "{}", a.why);
    assert!(a.why.contains("free storage falling"), "{}", a.why);
    let a = wal_headroom(&[], &slot, &opts());
    assert_eq!(a.verdict, Verdict::NoData);
}

// ---- hostile numbers (issue 19) ------------------------------------------------------------

#[test]
fn fence_evidence_counts_dropped_datapoints() {
    // docs/lag.md promises `evidence.dropped_datapoints` for every analysis.
    let (mut slot, fence) = fenced(&[SEG, 0.0]);
    slot.push(Point {
        t: fence + 30,
        v: -1.0,
    });
    let mut replica = series(T0, 60, &zeros(33));
    replica.push(Point {
        t: fence + 40,
        v: -1.0,
    });
    let a = caught_up_after_fence(&slot, &replica, fence, None, &opts());
    assert_eq!(
        a.evidence.get_i64("dropped_datapoints"),
        Some(2),
        "{}",
        a.why
    );
}

/// Timestamps and options at the ends of `i64`: Rust callers (the Rhai functions refuse these
/// as `Invalid`) get an answer, never an overflow panic, and never a pass from a wrapped time.
#[test]
fn extreme_timestamps_do_not_overflow_or_pass() {
    for (fence, t, skew, now) in [
        (i64::MAX, i64::MAX, i64::MAX, Some(i64::MAX)),
        (i64::MAX - 1, i64::MIN, 5, Some(i64::MIN)),
        (i64::MIN, i64::MAX, i64::MAX, None),
        (i64::MIN, i64::MIN, 0, Some(i64::MAX)),
        (0, i64::MAX, i64::MAX, Some(0)),
    ] {
        let slot = vec![
            Point { t, v: 0.0 },
            Point {
                t: t.wrapping_sub(60),
                v: SEG,
            },
        ];
        let replica = vec![Point { t, v: 0.0 }];
        let o = Options {
            clock_skew_seconds: skew,
            now,
            window_seconds: Some(i64::MAX),
            sustain_seconds: i64::MAX,
            stale_after_seconds: i64::MAX,
            ..Options::default()
        };
        let a = caught_up_after_fence(&slot, &replica, fence, None, &o);
        if a.pass {
            // A pass must rest on a zero stamped at or after fence + allowance, unwrapped.
            let at = a.evidence.get_i64("first_zero_after_fence_t").unwrap();
            assert!(
                i128::from(at) >= i128::from(fence) + i128::from(skew),
                "{}",
                a.why
            );
        }
        let _ = classify(&slot, &replica, None, &o);
        let _ = keeps_up_at_peak(&slot, &replica, &slot, &o);
        let _ = wal_headroom(&slot, &slot, &o);
        let _ = stats::theil_sen_per_second(&slot);
    }
}

#[test]
fn a_fence_near_i64_max_never_counts_earlier_datapoints() {
    // Wrapping, fence + 5 s allowance would be i64::MIN + 3: every datapoint "after the fence".
    let fence = i64::MAX - 2;
    let slot = vec![Point { t: 0, v: 0.0 }];
    let replica = vec![Point { t: 0, v: 0.0 }];
    let a = caught_up_after_fence(&slot, &replica, fence, None, &opts());
    assert!(!a.pass, "{}", a.why);
    assert!(
        a.why.contains("past the largest representable time"),
        "{}",
        a.why
    );
}

// ---- properties ----------------------------------------------------------------------------

fn arb_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => Just(0.0),
        2 => Just(SEG),
        3 => (0u32..=4096).prop_map(|k| f64::from(k) * MIB),
    ]
}

fn arb_series(from: i64, to: i64) -> impl Strategy<Value = Vec<Point>> {
    proptest::collection::vec((from..to, arb_value()), 0..40)
        .prop_map(|v| v.into_iter().map(|(t, v)| Point { t, v }).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever else the series holds, zeros stamped before fence + allowance never pass.
    #[test]
    fn a_zero_before_the_fence_never_passes(
        slot in arb_series(T0 - 3600, T0 + 5),
        replica in proptest::collection::vec((T0 - 3600..T0 + 3600, 0f64..3.0), 0..40),
        skew in 5i64..30,
        now in proptest::option::of(T0..T0 + 7200),
    ) {
        let replica: Vec<Point> = replica.into_iter().map(|(t, v)| Point { t, v }).collect();
        let o = Options { clock_skew_seconds: skew, now, ..Options::default() };
        let a = caught_up_after_fence(&slot, &replica, T0, None, &o);
        prop_assert!(!a.pass, "{}", a.why);
    }

    /// A series whose data stops before the fence (a gap spanning it, whatever comes before)
    /// never passes; and in general a pass always rests on a 0 stamped at or after
    /// fence + allowance.
    #[test]
    fn a_gap_spanning_the_fence_never_passes(
        before in arb_series(T0 - 3600, T0 - 60),
        after in arb_series(T0 + 600, T0 + 3600),
        data_resumes in any::<bool>(),
        now in T0..T0 + 7200,
    ) {
        let replica = series(T0 - 3600, 60, &zeros(120));
        let o = Options { now: Some(now), ..Options::default() };
        let mut slot = before.clone();
        let a = caught_up_after_fence(&slot, &replica, T0, None, &o);
        prop_assert!(!a.pass, "{}", a.why);
        if data_resumes {
            slot.extend(after);
            let a = caught_up_after_fence(&slot, &replica, T0, None, &o);
            if a.pass {
                let t = a.evidence.get_i64("first_zero_after_fence_t").unwrap();
                prop_assert!(t >= T0 + o.clock_skew_seconds);
                prop_assert!(slot.iter().any(|p| p.t == t && p.v == 0.0));
            }
        }
    }

    /// The rules are in segments: scaling the segment and the values by the same factor keeps
    /// the verdict (powers of two keep float arithmetic exact).
    #[test]
    fn scaling_segment_and_values_keeps_the_verdict(
        shape in 0u8..4,
        slope_mib in 0u32..200,
        noise in proptest::collection::vec(arb_value(), 5..60),
        replica_lag in 0f64..5.0,
        exp in -3i32..=3,
    ) {
        let values: Vec<f64> = noise.iter().enumerate().map(|(i, &n)| match shape {
            0 => n,
            1 => if i % 5 == 4 { SEG } else { 0.0 },
            2 => f64::from(slope_mib) * MIB * i as f64 + n / 16.0,
            _ => f64::from(slope_mib) * 16.0 * MIB + n,
        }).collect();
        let slot = series(T0, 60, &values);
        let replica = series(T0, 60, &vec![replica_lag; values.len()]);
        let k = 2f64.powi(exp);
        let scaled: Vec<Point> = slot.iter().map(|p| Point { t: p.t, v: p.v * k }).collect();
        let o = Options::default();
        let ok = Options { segment_bytes: SEG * k, ..Options::default() };
        let a = classify(&slot, &replica, None, &o);
        let b = classify(&scaled, &replica, None, &ok);
        prop_assert_eq!(a.verdict, b.verdict, "{} vs {}", a.why, b.why);
        let fence = T0 + 60 * (values.len() as i64 / 2) + 10;
        let a = caught_up_after_fence(&slot, &replica, fence, None, &o);
        let b = caught_up_after_fence(&scaled, &replica, fence, None, &ok);
        prop_assert_eq!(a.verdict, b.verdict, "{} vs {}", a.why, b.why);
    }
}

// The credential-less fence proof (sessions.rs).

/// Busy until the reboot, then 0: the period straddling the reboot (and one starting inside the
/// clock-skew allowance) shows sessions from before it and must not decide either way.
#[test]
fn sessions_end_on_the_first_zero_period_after_the_reboot() {
    let reboot = T0 + 30;
    let conns = series(T0 - 120, 60, &[40.0, 40.0, 41.0, 0.0, 0.0]);
    let a = sessions_ended_after_fence(&conns, reboot, &opts());
    assert_eq!(a.verdict, Verdict::SessionsEnded, "{}", a.why);
    assert!(a.pass);
    assert_eq!(a.evidence.get_i64("datapoints_after_fence"), Some(2));
    // Only the straddling period so far: not yet.
    let early = sessions_ended_after_fence(&conns[..3], reboot, &with_now(T0 + 40));
    assert_eq!(early.verdict, Verdict::Waiting, "{}", early.why);
    assert!(!early.pass);
}

#[test]
fn a_session_after_the_reboot_keeps_the_fence_shut_and_says_so() {
    let reboot = T0;
    let conns = series(T0 + 60, 60, &[0.0, 1.0, 0.0]);
    let a = sessions_ended_after_fence(&conns, reboot, &opts());
    assert_eq!(a.verdict, Verdict::SessionsLeft, "{}", a.why);
    assert!(!a.pass);
    assert!(a.why.contains("quarantine admits nobody"), "{}", a.why);
    let mut allowing = opts();
    allowing.connection_allowance = 1.0;
    assert!(sessions_ended_after_fence(&conns, reboot, &allowing).pass);
}

/// A gap is never a 0: waiting while a datapoint may still come, no-data once the series has
/// been silent longer than `stale_after_seconds`, and the first valid datapoint decides.
#[test]
fn a_gap_after_the_reboot_waits_then_the_first_datapoint_decides() {
    let reboot = T0;
    let before = series(T0 - 300, 60, &[12.0, 12.0, 12.0, 12.0, 12.0]);
    let waiting = sessions_ended_after_fence(&before, reboot, &with_now(T0 + 120));
    assert_eq!(waiting.verdict, Verdict::Waiting, "{}", waiting.why);
    let silent = sessions_ended_after_fence(&before, reboot, &with_now(T0 + 900));
    assert_eq!(silent.verdict, Verdict::NoData, "{}", silent.why);
    assert!(!silent.pass);
    let mut late = before.clone();
    late.push(Point {
        t: T0 + 600,
        v: 0.0,
    });
    let a = sessions_ended_after_fence(&late, reboot, &with_now(T0 + 900));
    assert!(a.pass, "{}", a.why);
}

proptest! {
    /// No datapoint stamped before the reboot (+ allowance) ever opens the fence, whatever it
    /// holds: only periods that started after the reboot can prove no session is left.
    #[test]
    fn datapoints_before_the_reboot_never_pass(values in prop::collection::vec(0.0f64..5.0, 0..20)) {
        let reboot = T0 + 20 * 60;
        let conns = series(T0, 60, &values);
        let a = sessions_ended_after_fence(&conns, reboot, &opts());
        prop_assert!(!a.pass, "{}", a.why);
    }
}
