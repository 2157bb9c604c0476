//! The credential-less fence proof: no session on the source after the reboot, read from
//! CloudWatch `DatabaseConnections` (docs/aws.md, "DatabaseConnections").
//!
//! AWS defines the metric as the client network connections to the instance and leaves out
//! Amazon RDS's own connections (rds-metrics.html). After the quarantine (no inbound rule
//! admits anyone) and the reboot (which ends every established session), a datapoint whose
//! period started after the reboot completed shows what could still connect: it must be 0.
//! The same timing rule as the sync gate applies (fence.rs): a period that started before the
//! reboot completed, or inside the clock-skew allowance, may aggregate sessions from before it
//! and proves nothing; missing data never counts as 0.

use super::fence::no_fresh_data;
use super::fmt::{fmt_duration, fmt_utc};
use super::series::Series;
use super::{Assessment, Evidence, Options, Point, Verdict};

/// Decide from `DatabaseConnections` (`Maximum` per period) whether any session is left on a
/// source whose fence (quarantine + reboot) completed at `fence_t`.
///
/// Verdicts: `sessions-ended` (pass: at least one datapoint counts and every one that counts is
/// at most `connection_allowance`), `sessions-left` (a datapoint after the reboot shows more),
/// `waiting` (none counts yet), `no-data` (the series stopped arriving).
pub fn sessions_ended_after_fence(
    connections: &[Point],
    fence_t: i64,
    opts: &Options,
) -> Assessment {
    let series = Series::new(connections);
    let mut ev = Evidence::default();
    ev.int("fence_t", fence_t)
        .int("clock_skew_seconds", opts.clock_skew_seconds)
        .num("connection_allowance", opts.connection_allowance);
    let Some(valid_from) = fence_t.checked_add(opts.clock_skew_seconds) else {
        return Assessment::new(
            Verdict::Waiting,
            false,
            "fence time + clock-skew allowance is past the largest representable time, so no \
             datapoint can count; pass epoch seconds",
            ev,
        );
    };
    ev.int("counts_from_t", valid_from);
    let now = opts.now_or(&[&series], fence_t);
    ev.int("now", now);
    let after = series.since(valid_from);
    ev.int("datapoints_after_fence", after.points.len() as i64);
    let fence_text = format!("reboot completed at {}", fmt_utc(fence_t));
    let counting = format!(
        "counting from {} = reboot + {} s clock-skew allowance",
        fmt_utc(valid_from),
        opts.clock_skew_seconds
    );
    let Some(last) = after.last() else {
        return no_fresh_data(
            ("DatabaseConnections", "connections_last_t"),
            &series,
            valid_from,
            now,
            &fence_text,
            &counting,
            String::new(),
            opts,
            ev,
        );
    };
    let worst = after
        .points
        .iter()
        .copied()
        .fold(last, |a, p| if p.v > a.v { p } else { a });
    ev.int("connections_last_t", last.t)
        .num("connections_last", last.v)
        .num("connections_max_after_fence", worst.v)
        .int("connections_max_t", worst.t);
    if worst.v > opts.connection_allowance {
        return Assessment::new(
            Verdict::SessionsLeft,
            false,
            format!(
                "DatabaseConnections {} at {} ({} after the {}), more than the {} allowed: \
                 something reaches the source although the quarantine admits nobody — check its \
                 security groups (rds describe-db-instances) before going on",
                worst.v,
                fmt_utc(worst.t),
                fmt_duration(worst.t.saturating_sub(fence_t) as f64),
                fence_text,
                opts.connection_allowance
            ),
            ev,
        );
    }
    Assessment::new(
        Verdict::SessionsEnded,
        true,
        format!(
            "DatabaseConnections {} in {} datapoint(s) since the {} ({counting}), last at {}",
            worst.v,
            after.points.len(),
            fence_text,
            fmt_utc(last.t)
        ),
        ev,
    )
}
