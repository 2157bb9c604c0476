//! `godwit report RUN`: one run as a page people can read — its phases as a timeline, the gate
//! it waits on and why that gate is closed, a step that is retrying with its last error and
//! the time of its next attempt, the lag chart with the fence and the promotion marked, the
//! measured write blackout, what was rolled back and the journal's verification — written as
//! one self-contained HTML file (inline CSS and SVG, nothing fetched) for runs that never saw a
//! server. Everything on it comes from the run's own records: the journal (verified on read)
//! and the transcript, whose `primitive` lines hold every CloudWatch series the gates decided
//! on — the chart shows exactly what godwit saw.
//!
//! [`RunPage::build`] gathers the facts, [`html`] lays them out, [`chart`] draws the lag chart.

pub mod chart;
mod html;

use std::collections::BTreeMap;

use godwit_engine::clock::Millis;
use godwit_engine::journal::Loaded;
use godwit_engine::journal::Outcome;
use godwit_engine::plan::Plan;
use godwit_engine::transcript::{Event, Line};
use serde_json::Value;

pub use html::html;

use crate::demo::{Blackout, blackout};

/// A phase of the run: name, start, end (the next phase's start, or the run's last line).
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub from: Millis,
    pub to: Millis,
}

/// A step as the transcript tells it.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub at: Millis,
    pub ms: Option<u64>,
    /// `done`, `failed`, `running`, `retrying`, `replayed`.
    pub state: &'static str,
    /// Its result (compact JSON) or its error.
    pub detail: String,
}

/// A gate: how it went, and what it decided on.
#[derive(Debug, Clone)]
pub struct Gate {
    pub name: String,
    pub at: Millis,
    pub every: String,
    pub timeout: String,
    pub polls: u64,
    /// `passed`, `timed out`, `waiting`, `replayed`.
    pub state: &'static str,
    pub waited: Option<String>,
    /// The kinds of evidence its checks decided on (`GatePassed::evidence`).
    pub evidence: Vec<String>,
    /// The reasons of its last poll: why it is (or was) closed.
    pub why: Vec<String>,
    pub last_poll_at: Option<Millis>,
}

/// A retry that has not been followed by success yet: the last error and the next attempt.
#[derive(Debug, Clone)]
pub struct Retrying {
    pub step: String,
    pub attempt: u32,
    pub error: String,
    pub next_at: Millis,
}

/// One CloudWatch series as the run read it (the last value read for each timestamp).
#[derive(Debug, Clone)]
pub struct Series {
    pub metric: String,
    /// Whose series (`orders-db`, `orders-db-aurora`).
    pub of: String,
    /// (epoch ms, value), in time order.
    pub points: Vec<(Millis, f64)>,
}

/// A moment marked on the chart.
#[derive(Debug, Clone)]
pub struct Marker {
    pub label: &'static str,
    pub at: Millis,
}

/// The journal's verdict: reading it verified the hash chain.
#[derive(Debug, Clone)]
pub struct Verification {
    pub records: usize,
    pub head: Option<String>,
    pub torn_tail: Option<usize>,
}

/// Everything the run page shows.
#[derive(Debug, Clone)]
pub struct RunPage {
    pub run_id: String,
    pub cluster: String,
    pub runbook: String,
    pub world: String,
    pub params: Value,
    /// `succeeded`, `rolled back`, `running`, `held`, ... with who drives it.
    pub status: String,
    /// Where it stands (the plan's whereabouts).
    pub whereabouts: String,
    pub outcome: Option<(String, Value)>,
    pub started_at: Millis,
    pub last_at: Millis,
    pub phases: Vec<Phase>,
    pub steps: Vec<Step>,
    pub gates: Vec<Gate>,
    pub retrying: Option<Retrying>,
    pub blackout: Blackout,
    /// The blackout's parts (fence, catch-up, validation, promote, route switch), ms.
    pub blackout_parts: Vec<(String, i64)>,
    /// Undo: (step, `undone` | `failed: …` | `already undone`).
    pub rolled_back: Vec<(String, String)>,
    pub aborted: Option<String>,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    pub verification: Verification,
}

/// The CloudWatch metrics the chart shows, in panel order.
pub const CHARTED: &[&str] = &[
    "OldestReplicationSlotLag",
    "RDSToAuroraPostgreSQLReplicaLag",
    "TransactionLogsGeneration",
];

impl RunPage {
    /// The page of run `run_id` from its verified journal, its status (`godwit show`'s words)
    /// and its transcript lines.
    pub fn build(
        run_id: &str,
        loaded: &Loaded,
        plan: &Plan,
        status: String,
        lines: &[Line],
    ) -> RunPage {
        let started = plan.started.as_ref();
        let started_at = started
            .map(|s| s.at)
            .or_else(|| lines.first().map(|l| l.at))
            .unwrap_or(plan.last_at);
        let last_at = lines
            .last()
            .map_or(plan.last_at, |l| l.at.max(plan.last_at));
        RunPage {
            run_id: run_id.to_string(),
            cluster: started.map(|s| s.cluster.clone()).unwrap_or_default(),
            runbook: started
                .map(|s| format!("{} {}", s.runbook.name, s.runbook.version))
                .unwrap_or_default(),
            world: started.map(|s| s.world.clone()).unwrap_or_default(),
            params: plan.params(),
            status,
            whereabouts: plan.whereabouts(),
            outcome: plan.finished.as_ref().map(|(o, detail)| {
                let word = match o {
                    Outcome::Succeeded => "succeeded",
                    Outcome::RolledBack => "rolled back",
                };
                (word.to_string(), detail.clone())
            }),
            started_at,
            last_at,
            phases: phases(lines, last_at),
            steps: steps(lines),
            gates: gates(lines),
            retrying: retrying(lines),
            blackout: blackout(lines),
            blackout_parts: godwit_lab::cutover::phases(lines),
            rolled_back: rolled_back(lines),
            aborted: lines.iter().find_map(|l| match &l.event {
                Event::AbortStarted { reason } => Some(reason.clone()),
                _ => None,
            }),
            series: series(lines),
            markers: markers(lines),
            verification: Verification {
                records: loaded.records.len(),
                head: loaded.records.last().map(|r| r.hash.clone()),
                torn_tail: loaded.torn_tail,
            },
        }
    }
}

impl RunPage {
    /// The page's facts as JSON (`GET /api/v1/runs/{id}`): what the HTML shows.
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        json!({
            "run_id": self.run_id,
            "cluster": self.cluster,
            "runbook": self.runbook,
            "world": self.world,
            "params": self.params,
            "status": self.status,
            "where": self.whereabouts,
            "outcome": self.outcome.as_ref().map(|(w, d)| json!({ "outcome": w, "detail": d })),
            "started_at": self.started_at,
            "last_at": self.last_at,
            "phases": self.phases.iter().map(|p| json!({ "name": p.name, "from": p.from, "to": p.to })).collect::<Vec<_>>(),
            "steps": self.steps.iter().map(|s| json!({ "name": s.name, "at": s.at, "ms": s.ms, "state": s.state, "detail": s.detail })).collect::<Vec<_>>(),
            "gates": self.gates.iter().map(|g| json!({
                "name": g.name, "at": g.at, "state": g.state, "polls": g.polls, "every": g.every,
                "timeout": g.timeout, "waited": g.waited, "evidence": g.evidence, "why": g.why,
                "last_poll_at": g.last_poll_at,
            })).collect::<Vec<_>>(),
            "retrying": self.retrying.as_ref().map(|r| json!({ "step": r.step, "attempt": r.attempt, "error": r.error, "next_at": r.next_at })),
            "write_blackout": self.blackout,
            "blackout_parts": self.blackout_parts,
            "rolled_back": self.rolled_back,
            "aborted": self.aborted,
            "series": self.series.iter().map(|s| json!({ "metric": s.metric, "of": s.of, "points": s.points })).collect::<Vec<_>>(),
            "markers": self.markers.iter().map(|m| json!({ "label": m.label, "at": m.at })).collect::<Vec<_>>(),
            "journal": { "records": self.verification.records, "head": self.verification.head, "torn_tail": self.verification.torn_tail, "verified": true },
        })
    }
}

fn phases(lines: &[Line], end: Millis) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    for l in lines {
        if let Event::Phase { name, .. } = &l.event {
            if let Some(last) = out.last_mut() {
                last.to = l.at;
            }
            // A resumed run replays its phases: keep the first time each was entered.
            if out.iter().any(|p| &p.name == name) {
                continue;
            }
            out.push(Phase {
                name: name.clone(),
                from: l.at,
                to: end,
            });
        }
    }
    if let Some(last) = out.last_mut() {
        last.to = end;
    }
    out
}

fn steps(lines: &[Line]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let find = |out: &mut Vec<Step>, name: &str| out.iter().rposition(|s| s.name == name);
    for l in lines {
        match &l.event {
            Event::StepStarted { name } => out.push(Step {
                name: name.clone(),
                at: l.at,
                ms: None,
                state: "running",
                detail: String::new(),
            }),
            Event::StepReplayed { name } => out.push(Step {
                name: name.clone(),
                at: l.at,
                ms: None,
                state: "replayed",
                detail: "from the journal (completed by an earlier process)".into(),
            }),
            Event::StepCompleted { name, result, ms } => {
                if let Some(i) = find(&mut out, name) {
                    out[i].state = "done";
                    out[i].ms = Some(*ms);
                    out[i].detail = crate::render::compact(result, 160);
                }
            }
            Event::StepRetrying {
                name,
                attempt,
                delay,
                error,
            } => {
                if let Some(i) = find(&mut out, name) {
                    out[i].state = "retrying";
                    out[i].detail = format!("attempt {attempt} failed: {error}; next in {delay}");
                }
            }
            Event::StepFailed { name, error } => {
                if let Some(i) = find(&mut out, name) {
                    out[i].state = "failed";
                    out[i].detail = error.clone();
                }
            }
            _ => {}
        }
    }
    out
}

fn gates(lines: &[Line]) -> Vec<Gate> {
    let mut out: Vec<Gate> = Vec::new();
    for l in lines {
        let last = |out: &mut Vec<Gate>, name: &str| out.iter().rposition(|g| g.name == name);
        match &l.event {
            Event::GateStarted {
                name,
                every,
                timeout,
                ..
            } => out.push(Gate {
                name: name.clone(),
                at: l.at,
                every: every.clone(),
                timeout: timeout.clone(),
                polls: 0,
                state: "waiting",
                waited: None,
                evidence: Vec::new(),
                why: Vec::new(),
                last_poll_at: None,
            }),
            Event::GateReplayed { name } => out.push(Gate {
                name: name.clone(),
                at: l.at,
                every: String::new(),
                timeout: String::new(),
                polls: 0,
                state: "replayed",
                waited: None,
                evidence: Vec::new(),
                why: vec!["passed before a restart; from the journal".into()],
                last_poll_at: None,
            }),
            Event::GatePoll {
                name, poll, why, ..
            } => {
                if let Some(i) = last(&mut out, name) {
                    out[i].polls = *poll;
                    out[i].why = why.clone();
                    out[i].last_poll_at = Some(l.at);
                }
            }
            Event::GatePassed {
                name,
                polls,
                waited,
                evidence,
            } => {
                if let Some(i) = last(&mut out, name) {
                    out[i].state = "passed";
                    out[i].polls = *polls;
                    out[i].waited = Some(waited.clone());
                    out[i].evidence = evidence.clone();
                }
            }
            Event::GateTimedOut { name, polls, why } => {
                if let Some(i) = last(&mut out, name) {
                    out[i].state = "timed out";
                    out[i].polls = *polls;
                    out[i].why = why.clone();
                }
            }
            _ => {}
        }
    }
    out
}

/// The last retry, unless the step completed (or failed for good) after it.
fn retrying(lines: &[Line]) -> Option<Retrying> {
    let (i, l) = lines
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| matches!(l.event, Event::StepRetrying { .. }))?;
    let Event::StepRetrying {
        name,
        attempt,
        delay,
        error,
    } = &l.event
    else {
        return None;
    };
    let settled = lines[i + 1..].iter().any(|later| match &later.event {
        Event::StepCompleted { name: n, .. } | Event::StepFailed { name: n, .. } => n == name,
        Event::RunFinished { .. } => true,
        _ => false,
    });
    if settled {
        return None;
    }
    let delay_ms =
        godwit_engine::duration::parse_duration(delay).map_or(0, |d| d.as_millis() as Millis);
    Some(Retrying {
        step: name.clone(),
        attempt: *attempt,
        error: error.clone(),
        next_at: l.at + delay_ms,
    })
}

fn rolled_back(lines: &[Line]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::UndoCompleted { step } => Some((step.clone(), "undone".to_string())),
            Event::UndoSkipped { step } => Some((step.clone(), "already undone".to_string())),
            Event::UndoFailed { step, error } => Some((step.clone(), format!("failed: {error}"))),
            _ => None,
        })
        .collect()
}

/// Every CloudWatch series the run read (`cw::metric_series` calls), merged per metric and
/// dimension; a datapoint read twice keeps its last value (CloudWatch revises a period until
/// it closes).
fn series(lines: &[Line]) -> Vec<Series> {
    let mut by: BTreeMap<(String, String), BTreeMap<Millis, f64>> = BTreeMap::new();
    for l in lines {
        let Event::Primitive {
            area,
            op,
            args,
            ok: true,
            result,
            ..
        } = &l.event
        else {
            continue;
        };
        if area != "cw" || op != "metric_series" {
            continue;
        }
        let Some(metric) = args["name"].as_str().filter(|m| CHARTED.contains(m)) else {
            continue;
        };
        let of = args["dimensions"]
            .as_object()
            .and_then(|d| d.values().next())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let points = by.entry((metric.to_string(), of)).or_default();
        // A long read is abridged in the transcript (engine::host::abridge): its first and
        // last three datapoints — the latest ones at each poll.
        let kept = match result {
            Value::Array(a) => a.iter().collect::<Vec<_>>(),
            v => v["head"]
                .as_array()
                .into_iter()
                .chain(v["tail"].as_array())
                .flatten()
                .collect(),
        };
        for p in kept {
            if let (Some(t), Some(v)) = (p["t"].as_i64(), p["v"].as_f64()) {
                points.insert(t * 1000, v);
            }
        }
    }
    by.into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|((metric, of), p)| Series {
            metric,
            of,
            points: p.into_iter().collect(),
        })
        .collect()
}

/// The fence (the blackout's start), the promotion and the route switch.
fn markers(lines: &[Line]) -> Vec<Marker> {
    let mut out = Vec::new();
    match blackout(lines) {
        Blackout::Ended { from, .. } | Blackout::Ongoing { from, .. } => out.push(Marker {
            label: "fence",
            at: from,
        }),
        Blackout::None => {}
    }
    let completed = |step: &str| {
        lines.iter().find_map(|l| match &l.event {
            Event::StepCompleted { name, .. } if name == step => Some(l.at),
            _ => None,
        })
    };
    if let Some(at) = completed("promote") {
        out.push(Marker {
            label: "promotion",
            at,
        });
    }
    if let Some(at) = completed("switch-route") {
        out.push(Marker {
            label: "route switch",
            at,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn line(at: Millis, event: Event) -> Line {
        Line {
            at,
            seq: None,
            event,
        }
    }

    fn page(lines: &[Line]) -> RunPage {
        let loaded = Loaded {
            records: Vec::new(),
            torn_tail: None,
        };
        RunPage::build(
            "01RUN",
            &loaded,
            &Plan::from_records(&[]),
            "running".into(),
            lines,
        )
    }

    #[test]
    fn a_closed_gate_says_why_and_a_retrying_step_when_it_tries_next() {
        let lines = vec![
            line(
                0,
                Event::Phase {
                    name: "validation".into(),
                    replaying: false,
                },
            ),
            line(
                1_000,
                Event::StepStarted {
                    name: "create-replica".into(),
                },
            ),
            line(
                2_000,
                Event::StepRetrying {
                    name: "create-replica".into(),
                    attempt: 2,
                    delay: "30s".into(),
                    error: "rds::create_replica_cluster failed (Throttled): Rate exceeded".into(),
                },
            ),
            line(
                3_000,
                Event::GateStarted {
                    name: "validate".into(),
                    every: "5m".into(),
                    hold: 1,
                    timeout: "2d".into(),
                },
            ),
            line(
                4_000,
                Event::GatePoll {
                    name: "validate".into(),
                    poll: 3,
                    passing: 0,
                    checks: 1,
                    streak: 0,
                    why: vec![
                        "falling-behind: replica lag p99 <script>alert(1)</script> 62 s".into(),
                    ],
                },
            ),
        ];
        let p = page(&lines);
        let r = p.retrying.as_ref().expect("the retry is pending");
        assert_eq!(
            (r.step.as_str(), r.attempt, r.next_at),
            ("create-replica", 2, 32_000)
        );
        let g = &p.gates[0];
        assert_eq!((g.state, g.polls), ("waiting", 3));
        let h = html(&p);
        assert!(h.contains("Waiting on gate validate"), "{h}");
        assert!(h.contains("falling-behind: replica lag p99"));
        assert!(!h.contains("<script>alert"), "reasons are escaped");
        assert!(h.contains("&lt;script&gt;"));
        assert!(h.contains("Step create-replica is retrying"));
        assert!(h.contains("Rate exceeded"));
    }

    #[test]
    fn a_retry_followed_by_success_is_no_longer_pending_and_series_merge_their_reads() {
        let read = |at: Millis, pts: Vec<(i64, f64)>| {
            line(
                at,
                Event::Primitive {
                    area: "cw".into(),
                    op: "metric_series".into(),
                    args: json!({ "name": "OldestReplicationSlotLag",
                                  "dimensions": { "DBInstanceIdentifier": "orders-db" } }),
                    ok: true,
                    result: json!(
                        pts.iter()
                            .map(|(t, v)| json!({"t": t, "v": v}))
                            .collect::<Vec<_>>()
                    ),
                    ms: 0,
                },
            )
        };
        let lines = vec![
            line(0, Event::StepStarted { name: "s".into() }),
            line(
                1,
                Event::StepRetrying {
                    name: "s".into(),
                    attempt: 1,
                    delay: "1s".into(),
                    error: "e".into(),
                },
            ),
            line(
                2,
                Event::StepCompleted {
                    name: "s".into(),
                    result: json!(1),
                    ms: 2,
                },
            ),
            read(3, vec![(60, 1.0), (120, 2.0)]),
            // The second read revises 120 and adds 180.
            read(4, vec![(120, 5.0), (180, 3.0)]),
        ];
        let p = page(&lines);
        assert!(p.retrying.is_none());
        assert_eq!(p.steps[0].state, "done");
        assert_eq!(p.series.len(), 1);
        assert_eq!(
            p.series[0].points,
            vec![(60_000, 1.0), (120_000, 5.0), (180_000, 3.0)]
        );
        assert_eq!(p.series[0].of, "orders-db");
    }
}
