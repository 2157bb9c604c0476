//! A fleet plan for people: the terminal table (comfy-table, like `godwit runs`) and the
//! Markdown report (`--report FILE`), both sorted by readiness — blocked clusters first, each with
//! its failing check and fix.

use std::collections::BTreeMap;

use super::Fleet;
use super::plan::{ClusterVerdict, Readiness};

/// `850ms`, `4.2s`, `31s`, `4m31s`, `1h45m`, `1d1h56m`: predicted durations at the precision
/// that matters for each (a blackout in seconds, a migration in minutes).
pub fn short(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 10_000 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let s = (ms + 500) / 1000;
    if s < 60 {
        return format!("{s}s");
    }
    if s < 3600 {
        return format!("{}m{:02}s", s / 60, s % 60);
    }
    let m = (s + 30) / 60;
    let (d, h, m) = (m / 1440, m % 1440 / 60, m % 60);
    match d {
        0 => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h{m:02}m"),
    }
}

fn opt(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), short)
}

/// The one line that says why a cluster is not ready, and what to do.
pub fn finding(v: &ClusterVerdict) -> String {
    match (v.blocked_by.first(), &v.problem, &v.predicted) {
        (Some(f), _, _) => {
            let more = match v.blocked_by.len() {
                1 => String::new(),
                n => format!(" (+{} more)", n - 1),
            };
            format!("{}: {} — fix: {}{more}", f.check, f.why, f.fix)
        }
        (None, Some(p), _) => p.clone(),
        (None, None, Some(p)) if p.outcome != "succeeded" => format!("predicted {}", p.outcome),
        (None, None, Some(p)) if p.sizing == "undersized" || p.sizing == "oversized" => v
            .plan
            .as_ref()
            .map(|plan| format!("sizing: {}", plan.sizing.why))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// How many clusters of each readiness, in table order.
pub fn counts(verdicts: &[ClusterVerdict]) -> Vec<(Readiness, usize)> {
    let mut n: BTreeMap<Readiness, usize> = BTreeMap::new();
    for v in verdicts {
        *n.entry(v.readiness).or_default() += 1;
    }
    n.into_iter().collect()
}

/// The terminal table.
pub fn table(verdicts: &[ClusterVerdict]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header([
            "STATUS",
            "CLUSTER",
            "OWNER",
            "WAVE",
            "REPLICA",
            "VALIDATED",
            "BLACKOUT",
            "TOTAL",
            "TARGET",
            "PROVEN",
            "PATH",
            "FINDING / FIX",
        ]);
    for v in verdicts {
        let p = v.predicted.as_ref();
        table.add_row([
            v.readiness.word().to_string(),
            v.cluster.clone(),
            v.owner.clone(),
            v.wave.clone().unwrap_or_else(|| "-".into()),
            opt(p.and_then(|p| p.replica_build_ms)),
            opt(p.and_then(|p| p.validation_end_ms)),
            opt(p.and_then(|p| p.write_blackout_ms)),
            opt(p.map(|p| p.total_ms)),
            p.map_or_else(|| "-".into(), target),
            p.map_or_else(|| "-".into(), |p| proven(&p.assurance)),
            p.map_or_else(|| "-".into(), path),
            finding(v),
        ]);
    }
    for c in table.column_iter_mut() {
        c.set_padding((0, 2));
    }
    table.trim_fmt()
}

/// What the predicted run proved before the flip, in a word each: `audit+queries+reads`, `-`.
pub fn proven(a: &crate::plan::Assurance) -> String {
    let words: Vec<&str> = [
        (a.audit.is_some(), "audit"),
        (a.query_check.is_some(), "queries"),
        (a.shadow_reads.is_some(), "reads"),
    ]
    .into_iter()
    .filter_map(|(done, w)| done.then_some(w))
    .collect();
    if words.is_empty() {
        "-".into()
    } else {
        words.join("+")
    }
}

/// The recommended path, with the logical path's predicted blackout when it is the one:
/// `logical 8.8s`, `physical`.
pub fn path(p: &super::plan::Predicted) -> String {
    match (p.path.as_str(), p.logical_blackout_ms) {
        ("logical", Some(ms)) => format!("logical {}", opt(Some(ms))),
        (other, _) => other.to_string(),
    }
}

/// The target class with its sizing verdict: `db.r6g.xlarge fits`.
pub fn target(p: &super::plan::Predicted) -> String {
    match &p.target_class {
        Some(c) => format!("{c} {}", p.sizing),
        None => format!("- {}", p.sizing),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn percentile(mut v: Vec<i64>, p: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v.get(i).copied()
}

/// What the plan covered, for the report's header.
pub struct ReportContext<'a> {
    pub fleet: &'a Fleet,
    pub world: &'a str,
    /// Wall time the plan took.
    pub took_ms: i64,
    /// When it was made (UTC, RFC 3339).
    pub at: String,
}

/// The Markdown report (`--report FILE`).
pub fn markdown(cx: &ReportContext<'_>, verdicts: &[ClusterVerdict]) -> String {
    let mut out = Vec::new();
    let mut line = |s: String| out.push(s);
    line(format!("# Fleet plan: {}", cx.fleet.name));
    line(String::new());
    line(format!(
        "{} clusters from {} · world `{}` · {} · planned in {}. Read-only: nothing was changed \
         or recorded.",
        verdicts.len(),
        cx.fleet.origin,
        cx.world,
        cx.at,
        short(cx.took_ms)
    ));
    line(String::new());
    line("## Summary".into());
    line(String::new());
    line("| readiness | clusters | meaning |".into());
    line("|---|---:|---|".into());
    for (r, n) in counts(verdicts) {
        let meaning = match r {
            Readiness::Blocked => "a preflight check failed: fix it before migrating",
            Readiness::Error => "no plan could be made (see the problem)",
            Readiness::AtRisk => {
                "the preflight passed, but the predicted migration does not succeed or the target class is too small for the source's peak"
            }
            Readiness::Ready => "the preflight passed and the predicted migration succeeds",
        };
        line(format!("| {} | {n} | {meaning} |", r.word()));
    }
    let preds: Vec<_> = verdicts
        .iter()
        .filter(|v| v.readiness == Readiness::Ready)
        .filter_map(|v| v.predicted.as_ref())
        .collect();
    if !preds.is_empty() {
        let stat = |f: &dyn Fn(&super::plan::Predicted) -> Option<i64>| {
            let v: Vec<i64> = preds.iter().filter_map(|p| f(p)).collect();
            format!(
                "{} / {} / {}",
                percentile(v.clone(), 0.5).map_or("-".into(), short),
                percentile(v.clone(), 0.9).map_or("-".into(), short),
                v.iter().max().map_or("-".into(), |m| short(*m))
            )
        };
        line(String::new());
        line(format!(
            "Predicted for the {} ready clusters (median / p90 / max):",
            preds.len()
        ));
        line(String::new());
        line("| figure | median / p90 / max |".into());
        line("|---|---|".into());
        line(format!(
            "| replica build | {} |",
            stat(&|p| p.replica_build_ms)
        ));
        line(format!(
            "| validation ends | {} |",
            stat(&|p| p.validation_end_ms)
        ));
        line(format!(
            "| write blackout | {} |",
            stat(&|p| p.write_blackout_ms)
        ));
        line(format!("| total | {} |", stat(&|p| Some(p.total_ms))));
    }

    // What to fix, one section per failing check: the fix once, the clusters under it.
    let mut by_check: BTreeMap<&str, Vec<&ClusterVerdict>> = BTreeMap::new();
    for v in verdicts {
        for f in &v.blocked_by {
            by_check.entry(&f.check).or_default().push(v);
        }
    }
    let stopped: Vec<&ClusterVerdict> = verdicts
        .iter()
        .filter(|v| v.blocked_by.is_empty() && v.readiness != Readiness::Ready)
        .collect();
    if !by_check.is_empty() || !stopped.is_empty() {
        line(String::new());
        line("## What to fix".into());
        for (check, vs) in &by_check {
            let fix = vs
                .first()
                .and_then(|v| v.blocked_by.iter().find(|f| f.check == *check))
                .map(|f| f.fix.clone())
                .unwrap_or_default();
            line(String::new());
            line(format!(
                "### `{check}` — {} cluster{}",
                vs.len(),
                if vs.len() == 1 { "" } else { "s" }
            ));
            line(String::new());
            line(format!("Fix: {}", cell(&fix)));
            line(String::new());
            line("| cluster | owner | why |".into());
            line("|---|---|---|".into());
            for v in vs {
                let why = v
                    .blocked_by
                    .iter()
                    .find(|f| f.check == *check)
                    .map_or(String::new(), |f| f.why.clone());
                line(format!("| {} | {} | {} |", v.cluster, v.owner, cell(&why)));
            }
        }
        if !stopped.is_empty() {
            line(String::new());
            line("### Other problems".into());
            line(String::new());
            line("| cluster | owner | readiness | problem |".into());
            line("|---|---|---|---|".into());
            for v in stopped {
                line(format!(
                    "| {} | {} | {} | {} |",
                    v.cluster,
                    v.owner,
                    v.readiness.word(),
                    cell(&finding(v))
                ));
            }
        }
    }

    line(String::new());
    line("## Every cluster".into());
    line(String::new());
    line("Durations are predicted, from the migration's start: the replica's build, the end of the validation under production traffic, the write blackout, the whole migration.".into());
    line(String::new());
    line("| readiness | cluster | owner | wave | replica build | validation ends | write blackout | total | target | finding |".into());
    line("|---|---|---|---|---:|---:|---:|---:|---|---|".into());
    for v in verdicts {
        let p = v.predicted.as_ref();
        line(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.readiness.word(),
            v.cluster,
            v.owner,
            v.wave.as_deref().unwrap_or("-"),
            opt(p.and_then(|p| p.replica_build_ms)),
            opt(p.and_then(|p| p.validation_end_ms)),
            opt(p.and_then(|p| p.write_blackout_ms)),
            opt(p.map(|p| p.total_ms)),
            p.map_or_else(|| "-".into(), target),
            cell(&finding(v))
        ));
    }

    // Instance sizing: every cluster whose target is not simply right, with the reason.
    let sized: Vec<(&ClusterVerdict, &crate::fleet::sizing::Sizing)> = verdicts
        .iter()
        .filter_map(|v| Some((v, &v.plan.as_ref()?.sizing)))
        .filter(|(_, s)| s.verdict != "fits")
        .collect();
    if !sized.is_empty() {
        line(String::new());
        line("## Instance sizing".into());
        line(String::new());
        line("The Aurora writer's class against the source's busiest five minutes of CPU and its lowest free memory over the last day (a writer above 80 % of its vCPUs at the peak will not keep up).".into());
        line(String::new());
        line("| cluster | target | verdict | suggested | why |".into());
        line("|---|---|---|---|---|".into());
        for (v, s) in sized {
            line(format!(
                "| {} | {} | {} | {} | {} |",
                v.cluster,
                s.target_class.as_deref().unwrap_or("-"),
                s.verdict,
                s.suggested_class.as_deref().unwrap_or("-"),
                cell(&s.why)
            ));
        }
    }

    // Assurance before the flip: what each predicted run proved while replicating.
    let assured: Vec<(&ClusterVerdict, &crate::plan::Assurance)> = verdicts
        .iter()
        .filter_map(|v| Some((v, &v.predicted.as_ref()?.assurance)))
        .collect();
    if !assured.is_empty() {
        line(String::new());
        line("## Assurance before the flip".into());
        line(String::new());
        line("What each predicted run proved while replicating (docs/validate.md): the continuous audit of both sides, the source's heaviest read-only statements on the replica, and shadow reads through the readers' route. \"-\": not run — off, no database access, or the run stopped before.".into());
        line(String::new());
        line("| cluster | audit | query check | shadow reads |".into());
        line("|---|---|---|---|".into());
        let or_dash = |s: &Option<String>| s.as_deref().map_or_else(|| "-".to_string(), cell);
        for (v, a) in assured {
            line(format!(
                "| {} | {} | {} | {} |",
                v.cluster,
                or_dash(&a.audit),
                or_dash(&a.query_check),
                or_dash(&a.shadow_reads)
            ));
        }
    }

    // The logical path (issue 25): which clusters native logical replication could carry
    // instead, and what stands in the others' way — the fix once per check.
    let judged: Vec<(&ClusterVerdict, &super::logical::LogicalEligibility)> = verdicts
        .iter()
        .filter_map(|v| Some((v, &v.predicted.as_ref()?.logical)))
        .collect();
    if !judged.is_empty() {
        line(String::new());
        line("## The logical path".into());
        line(String::new());
        line("Whether native logical replication could carry each cluster instead of an Aurora replica (docs/fleet.md, \"The logical path\"): its eligibility, read from the source, and which path each plan recommends — the logical runbook (docs/logical.md) predicted in the same calibrated world, recommended when it succeeds with a shorter write blackout.".into());
        line(String::new());
        let logical: Vec<(&ClusterVerdict, i64, i64)> = verdicts
            .iter()
            .filter_map(|v| {
                let p = v.predicted.as_ref()?;
                (p.path == "logical").then_some((v, p.logical_blackout_ms?, p.write_blackout_ms?))
            })
            .collect();
        if !logical.is_empty() {
            let (l, ph): (Vec<i64>, Vec<i64>) = logical.iter().map(|(_, l, p)| (*l, *p)).unzip();
            line(format!(
                "Recommended: **logical** for {} clusters — predicted write blackout p50 {} (physical: {}), p100 {} (physical: {}); physical for the others.",
                logical.len(),
                opt(percentile(l.clone(), 0.5)),
                opt(percentile(ph.clone(), 0.5)),
                opt(percentile(l, 1.0)),
                opt(percentile(ph, 1.0)),
            ));
            line(String::new());
        }
        line("| verdict | clusters |".into());
        line("|---|---:|".into());
        let mut by_verdict: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_check: BTreeMap<&str, (String, Vec<&str>)> = BTreeMap::new();
        for (v, l) in &judged {
            *by_verdict.entry(&l.verdict).or_default() += 1;
            for b in &l.blockers {
                by_check
                    .entry(&b.check)
                    .or_insert_with(|| (b.fix.clone(), Vec::new()))
                    .1
                    .push(&v.cluster);
            }
        }
        for (verdict, n) in &by_verdict {
            line(format!("| {verdict} | {n} |"));
        }
        for (check, (fix, clusters)) in &by_check {
            line(String::new());
            line(format!("### `{check}` — {} clusters", clusters.len()));
            line(String::new());
            line(format!("Fix: {}", cell(fix)));
            line(String::new());
            line(clusters.join(", "));
        }
    }

    if !cx.fleet.waves.is_empty() {
        line(String::new());
        line("## Waves".into());
        line(String::new());
        line("| wave | clusters | not ready | canaries | max in flight | max failures | approval after canaries |".into());
        line("|---|---:|---:|---:|---:|---:|---|".into());
        for w in &cx.fleet.waves {
            let not_ready = verdicts
                .iter()
                .filter(|v| v.wave.as_deref() == Some(&w.name) && v.readiness != Readiness::Ready)
                .count();
            line(format!(
                "| {} | {} | {not_ready} | {} | {} | {} | {} |",
                w.name,
                w.clusters.len(),
                w.canaries,
                w.max_in_flight,
                w.max_failures,
                if w.approve_after_canaries {
                    "yes"
                } else {
                    "no"
                }
            ));
        }
    }

    // Assumptions, counted across the fleet (each cluster's own are in `-o json`).
    let mut assumed: BTreeMap<&str, usize> = BTreeMap::new();
    for p in verdicts.iter().filter_map(|v| v.predicted.as_ref()) {
        for a in &p.assumptions {
            *assumed.entry(a).or_default() += 1;
        }
    }
    line(String::new());
    line("## How the prediction was made".into());
    line(String::new());
    line("Each cluster's migration is run in the simulator with its runbook, on a scenario calibrated from the cluster's own figures read through its world: the instance's description (engine, class, storage, encryption), free storage (data size), a day of `TransactionLogsGeneration` (base WAL rate, daily peak and its hour), `DatabaseConnections` (sessions), logical slots and CDC consumers, database access. Blocking findings are left out: the prediction is the migration once they are fixed. What could not be measured was assumed:".into());
    line(String::new());
    line("| assumption | clusters |".into());
    line("|---|---:|".into());
    for (a, n) in assumed {
        line(format!("| {} | {n} |", cell(a)));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn durations_at_the_precision_that_matters() {
        assert_eq!(short(850), "850ms");
        assert_eq!(short(4_210), "4.2s");
        assert_eq!(short(31_100), "31s");
        assert_eq!(short(271_000), "4m31s");
        assert_eq!(short(6_300_000), "1h45m");
        assert_eq!(short(93_362_000), "1d1h56m");
    }
}
