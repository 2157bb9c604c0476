//! One measured cutover: a workload writing through Envoy while a runbook runs in the lab
//! world, then what the clients saw — used by `godwit demo --world lab`, the `lab` tests and
//! the cutover benchmark.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::journal::JournalStore;
use godwit_engine::transcript::{Collector, Event, Line, Sink};
use godwit_engine::{RunReport, RunStatus, StartRequest};
use serde::Serialize;

use crate::supervisor::{Supervisor, world};
use crate::workload::{self, Report, Workload};
use crate::{LabError, LabState};

/// Parameters that fit the standard runbook to a lab: a validation window of seconds (the
/// lab's load is steady; a day would contain no more), one-second metric periods (the lab
/// samples every second).
pub fn lab_params() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("validation_window".into(), "10s".into());
    m.insert("validation_timeout".into(), "5m".into());
    m.insert("metric_period".into(), 1.into());
    // Two healthy polls after the switch, 2 s apart (30 s against AWS).
    m.insert("health_every".into(), "2s".into());
    // A lab's parameter groups are in force at once (AWS asks for about five minutes).
    m.insert("parameter_group_settle".into(), "0s".into());
    // The audit at each (1 s) poll of the short window: 5,000 rows at up to 20,000 rows/s, so
    // a poll takes well under a second (the defaults, 20,000 at 1,000 rows/s, suit the 10-minute
    // polls of a day-long window).
    m.insert("audit_rows".into(), 5000.into());
    // Shadow reads through the lab's readers' route (`<source>-read`), which its two readers
    // use: opted in, as a team whose readers tolerate a replica's lag would.
    m.insert("read_route".into(), "auto".into());
    m.insert("audit_rows_per_second".into(), 20000.into());
    m
}

/// How to drive one cutover.
#[derive(Clone)]
pub struct Cutover {
    pub runbook: PathBuf,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub store: Arc<dyn JournalStore>,
    pub clients: usize,
    /// Pause between one client's commits.
    pub pace: Duration,
    /// Load before the run starts (the workload's connections are established through Envoy).
    pub warmup: Duration,
    /// What the clients commit: append-only inserts, or TPC-B transactions updating rows.
    pub workload: workload::Kind,
    pub sinks: Vec<Arc<dyn Sink>>,
}

/// The run's report with what the clients saw and the time of each phase.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    #[serde(skip)]
    pub report: Option<RunReport>,
    pub succeeded: bool,
    pub workload: Report,
    /// Wall-clock milliseconds of the cutover's parts (fence, catch-up, promote, switch).
    pub phases: Vec<(String, i64)>,
    /// What the validation compared (docs/validate.md, "Two passes"): rows the pre-pass read,
    /// keys and rows the fence pass compared.
    pub compared: Vec<(String, i64)>,
    /// Steps completed, in order, with their end time (epoch ms).
    pub steps: Vec<(String, i64)>,
    pub target_port: Option<u16>,
    /// What the readers through the readers' route saw (shadow reads), when the lab has one.
    pub reads: Option<workload::ReadReport>,
    #[serde(skip)]
    pub lines: Vec<Line>,
}

/// Run `c.runbook` on the lab of `sup` under a write load.
pub async fn run(sup: &Supervisor, c: Cutover) -> Result<Outcome, LabError> {
    let st = LabState::load(&sup.dir)?;
    let load = Workload::start(
        st.route.listen_port,
        &st.app_role,
        &st.app_db,
        c.clients,
        c.pace,
        c.workload,
        st.seed_rows,
    );
    tokio::time::sleep(c.warmup).await;
    run_under(sup, c, load).await
}

/// Run `c.runbook` on the lab of `sup` while `load` (started by the caller, already warm:
/// `c.clients`, `c.pace`, `c.workload` and `c.warmup` are not used) writes through Envoy.
pub async fn run_under(sup: &Supervisor, c: Cutover, load: Workload) -> Result<Outcome, LabError> {
    let st = LabState::load(&sup.dir)?;
    // Two readers through the readers' route: the shadow reads' traffic.
    let readers = (st.route.read_listen_port != 0).then(|| {
        workload::Readers::start(
            st.route.read_listen_port,
            &st.app_role,
            &st.app_db,
            2,
            st.seed_rows,
        )
    });
    // An async fn runs on a runtime, where `current()` cannot panic; the run itself goes to a
    // blocking thread with this handle captured (the lint's concern).
    #[allow(clippy::disallowed_methods)]
    let handle = tokio::runtime::Handle::current();
    let w = world(&sup.dir, handle.clone());
    let mut runner = w.runner(c.store.clone(), handle);
    let collector = Collector::new();
    runner.sinks.push(Arc::new(collector.clone()));
    runner.sinks.extend(c.sinks.iter().cloned());
    let req = StartRequest {
        runbook: c.runbook.clone(),
        cluster: st.source.clone(),
        params: c.params.clone(),
        run_id: None,
    };
    let result = tokio::task::spawn_blocking(move || runner.start(req))
        .await
        .map_err(|e| LabError::Process(format!("the run panicked: {e}")))?;
    // A little load after the switch: writes landing on the target are part of the proof.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kind = load.kind();
    let logs = load.stop().await;
    let reads = match readers {
        Some(r) => Some(r.stop().await),
        None => None,
    };
    let report = result.map_err(|e| LabError::Process(format!("the run failed to start: {e}")))?;
    let mut out = finish(sup, report, kind, logs, collector.lines()).await?;
    out.reads = reads;
    Ok(out)
}

/// The outcome of a finished run and its workload: blackout, failures, loss checked on the
/// database serving the route's target now.
pub async fn finish(
    sup: &Supervisor,
    report: RunReport,
    kind: workload::Kind,
    logs: Vec<workload::ClientLog>,
    lines: Vec<Line>,
) -> Result<Outcome, LabError> {
    let st = LabState::load(&sup.dir)?;
    let mut w = workload::report(kind, &logs);
    let steps: Vec<(String, i64)> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::StepCompleted { name, .. } => Some((name.clone(), l.at)),
            _ => None,
        })
        .collect();
    let succeeded = matches!(report.status, RunStatus::Succeeded { .. });
    let switch_ms = steps
        .iter()
        .find(|(n, _)| n == "switch-route")
        .map(|(_, t)| *t);
    let target = data_home(&st);
    if let Some(port) = target {
        workload::check_on(&mut w, &logs, port, &st.app_db, switch_ms)
            .await
            .map_err(LabError::Process)?;
    }
    Ok(Outcome {
        succeeded,
        workload: w,
        phases: phases(&lines),
        compared: compared(&lines),
        steps,
        target_port: target,
        reads: None,
        report: Some(report),
        lines,
    })
}

/// The port of the server where acknowledged commits must be now: the promoted (or restored)
/// cluster's writer after a cutover, else the source (never migrated, or rolled back).
pub fn data_home(st: &LabState) -> Option<u16> {
    st.clusters
        .values()
        .find(|c| c.replication_source.is_none() && c.status == "available")
        .and_then(|c| st.serving(&c.id))
        .or_else(|| st.instances.get(&st.source))
        .map(|i| i.port)
}

/// `workload.json` in the lab directory: what the clients of `godwit lab up --workload` saw
/// so far (rewritten every second, `lab status` shows it), and at `lab down` the final figures
/// with the loss check.
pub const WORKLOAD_FILE: &str = "workload.json";

/// The figures of `logs` (a `kind` workload), checked for loss on [`data_home`] when `check`.
pub async fn measure(
    dir: &std::path::Path,
    kind: workload::Kind,
    logs: &[workload::ClientLog],
    check: bool,
) -> Result<Report, LabError> {
    let mut w = workload::report(kind, logs);
    if check {
        let st = LabState::load(dir)?;
        if let Some(port) = data_home(&st) {
            workload::check_on(&mut w, logs, port, &st.app_db, None)
                .await
                .map_err(LabError::Process)?;
        }
    }
    let text = serde_json::to_string_pretty(&w).map_err(|e| LabError::State(e.to_string()))?;
    let tmp = dir.join(format!("{WORKLOAD_FILE}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, dir.join(WORKLOAD_FILE)))
        .map_err(|e| LabError::Io(format!("write {WORKLOAD_FILE}: {e}")))?;
    Ok(w)
}

/// What the two validation passes compared, from their steps' results: the pre-pass's rows
/// read, the fence pass's keys compared, tables and rows rescanned (a full comparison at the
/// fence: its rows).
pub fn compared(lines: &[Line]) -> Vec<(String, i64)> {
    let result = |n: &str| {
        lines.iter().find_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } if name == n => Some(result.clone()),
            _ => None,
        })
    };
    let mut out = Vec::new();
    if let Some(r) = result("validate-before-fence") {
        out.extend(
            r["rows_read"]
                .as_i64()
                .map(|n| ("pre-pass rows read".to_string(), n)),
        );
    }
    if let Some(r) = result("validate-at-fence") {
        match r.get("fence_pass") {
            Some(f) => {
                out.extend(
                    f["changed_keys"]
                        .as_i64()
                        .map(|n| ("fence keys compared".to_string(), n)),
                );
                out.extend(
                    f["rescanned_rows"]
                        .as_i64()
                        .map(|n| ("fence rows rescanned".to_string(), n)),
                );
            }
            None => out.extend(r["tables"].as_array().map(|t| {
                (
                    "fence rows compared".to_string(),
                    t.iter().filter_map(|t| t["source_rows"].as_i64()).sum(),
                )
            })),
        }
    }
    out
}

/// Durations of the blackout's parts from the transcript: fence (reboot or termination start →
/// sessions gone), catch-up (fence LSN → replica, or the logical path's target, past it), the
/// exact validation at the fence, promote (none on the logical path), route switch.
pub fn phases(lines: &[Line]) -> Vec<(String, i64)> {
    let started = |n: &str| {
        lines.iter().find_map(|l| match &l.event {
            Event::StepStarted { name } if name == n => Some(l.at),
            Event::GateStarted { name, .. } if name == n => Some(l.at),
            _ => None,
        })
    };
    let ended = |n: &str| {
        lines.iter().find_map(|l| match &l.event {
            Event::StepCompleted { name, .. } if name == n => Some(l.at),
            Event::GatePassed { name, .. } if name == n => Some(l.at),
            _ => None,
        })
    };
    let span = |label: &str, a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) => Some((label.to_string(), b - a)),
        _ => None,
    };
    // The fence ends the sessions by a reboot or with SQL (`fence_method`).
    let fence_start = started("reboot-source").or(started("terminate-app-sessions"));
    [
        span("fence", fence_start, ended("source-sessions-ended")),
        // The physical replica's replay, or the logical path's target applying past the
        // fence LSN (runbooks/lib/logical.rhai: no promotion there).
        span(
            "catch-up",
            started("record-fence-lsn"),
            ended("replica-caught-up").or(ended("target-applied")),
        ),
        span(
            "pre-pass",
            started("validate-before-fence"),
            ended("validate-before-fence"),
        ),
        span(
            "validate",
            started("validate-at-fence"),
            ended("validate-at-fence"),
        ),
        span("promote", started("promote"), ended("promote")),
        span(
            "route switch",
            started("switch-route"),
            ended("switch-route"),
        ),
        span("fence → switch", fence_start, ended("switch-route")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The blackout's timeline for a reader: every step and gate that started between the fence's
/// start and the end of the route switch, as (name, start, duration) in ms from the fence's
/// start — where time goes that `phases` does not name.
pub fn blackout_timeline(lines: &[Line]) -> Vec<(String, i64, i64)> {
    let Some(from) = lines.iter().find_map(|l| match &l.event {
        Event::StepStarted { name }
            if name == "reboot-source" || name == "terminate-app-sessions" =>
        {
            Some(l.at)
        }
        _ => None,
    }) else {
        return Vec::new();
    };
    let to = lines
        .iter()
        .find_map(|l| match &l.event {
            Event::StepCompleted { name, .. } if name == "switch-route" => Some(l.at),
            _ => None,
        })
        .unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let name = match &l.event {
            Event::StepStarted { name } | Event::GateStarted { name, .. } => name,
            _ => continue,
        };
        if l.at < from || l.at > to {
            continue;
        }
        let end = lines[i..].iter().find_map(|e| match &e.event {
            Event::StepCompleted { name: n, .. } | Event::GatePassed { name: n, .. }
                if n == name =>
            {
                Some(e.at)
            }
            _ => None,
        });
        out.push((name.clone(), l.at - from, end.map_or(-1, |e| e - l.at)));
    }
    out
}

/// A cutover and then its rollback through the rollback window (runbooks/rollback.rhai) under
/// one load, as `godwit rollback RUN` would start it: what the clients saw of each switch and
/// whether every acknowledged commit is on the source at the end.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrip {
    pub forward_succeeded: bool,
    pub rollback_succeeded: bool,
    /// The longest gap between acknowledged commits around each switch, in ms.
    pub forward_blackout_ms: f64,
    pub rollback_blackout_ms: f64,
    /// The whole load, checked on the source after the rollback (`lost`, `inconsistent`).
    pub workload: Report,
    /// The rollback's parts: catch-up (Aurora fenced → the source applied its last write) and
    /// release (the source unfenced, the clients released onto it).
    pub rollback_phases: Vec<(String, i64)>,
}

/// The longest gap between two acknowledged commits (any client) within `[from, to]` (epoch ms).
pub fn longest_gap(logs: &[workload::ClientLog], from: i64, to: i64) -> f64 {
    let mut t: Vec<i64> = logs
        .iter()
        .flat_map(|l| l.acked.iter().map(|(_, at)| *at))
        .filter(|at| (from * 1000..=to * 1000).contains(at))
        .collect();
    t.sort_unstable();
    t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as f64 / 1000.0
}

/// Run `runbook` for the lab's source to its end on a blocking thread: its report and lines.
pub async fn drive(
    sup: &Supervisor,
    store: Arc<dyn JournalStore>,
    runbook: PathBuf,
    params: serde_json::Map<String, serde_json::Value>,
) -> Result<(RunReport, Vec<Line>), LabError> {
    let st = LabState::load(&sup.dir)?;
    #[allow(clippy::disallowed_methods)]
    let handle = tokio::runtime::Handle::current();
    let mut runner = world(&sup.dir, handle.clone()).runner(store, handle);
    let collector = Collector::new();
    runner.sinks.push(Arc::new(collector.clone()));
    let req = StartRequest {
        runbook,
        cluster: st.source.clone(),
        params,
        run_id: None,
    };
    let report = tokio::task::spawn_blocking(move || runner.start(req))
        .await
        .map_err(|e| LabError::Process(format!("the run panicked: {e}")))?
        .map_err(|e| LabError::Process(format!("the run failed to start: {e}")))?;
    Ok((report, collector.lines()))
}

/// `c`'s cutover, `on_target` of writes on the target, then the rollback the cutover's journal
/// allows ([`godwit_stdlib::rollback_window::window`]), all under one load.
pub async fn round_trip(
    sup: &Supervisor,
    c: Cutover,
    on_target: Duration,
) -> Result<RoundTrip, LabError> {
    let st = LabState::load(&sup.dir)?;
    let load = Workload::start(
        st.route.listen_port,
        &st.app_role,
        &st.app_db,
        c.clients,
        c.pace,
        c.workload,
        st.seed_rows,
    );
    tokio::time::sleep(c.warmup).await;
    let (fwd, fwd_lines) = drive(sup, c.store.clone(), c.runbook.clone(), c.params.clone()).await?;
    let forward_succeeded = matches!(fwd.status, RunStatus::Succeeded { .. });
    let mut back_lines = Vec::new();
    let mut rollback_succeeded = false;
    if forward_succeeded {
        tokio::time::sleep(on_target).await;
        let records = c
            .store
            .read(&fwd.run_id)
            .map_err(|e| LabError::State(e.to_string()))?
            .records;
        let plan = godwit_engine::plan::Plan::from_records(&records);
        let w = godwit_stdlib::rollback_window::window(&fwd.run_id, &plan)
            .map_err(LabError::Process)?;
        let (back, lines) = drive(sup, c.store.clone(), w.runbook, w.params).await?;
        rollback_succeeded = matches!(back.status, RunStatus::Succeeded { .. });
        back_lines = lines;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kind = load.kind();
    let logs = load.stop().await;
    let mut w = workload::report(kind, &logs);
    let source_port = LabState::load(&sup.dir)?
        .instances
        .get(&st.source)
        .map(|i| i.port)
        .ok_or_else(|| LabError::State(format!("no instance {}", st.source)))?;
    if rollback_succeeded {
        workload::check_on(&mut w, &logs, source_port, &st.app_db, None)
            .await
            .map_err(LabError::Process)?;
    }
    let at = |lines: &[Line], step: &str, done: bool| {
        lines.iter().find_map(|l| match &l.event {
            Event::StepStarted { name } if !done && name == step => Some(l.at),
            Event::StepCompleted { name, .. } if done && name == step => Some(l.at),
            _ => None,
        })
    };
    let fwd_end = at(&fwd_lines, "switch-route", true).unwrap_or(0) + 1_000;
    let back_start = back_lines.first().map_or(i64::MAX, |l| l.at);
    let back_end = at(&back_lines, "release-to-source", true).unwrap_or(back_start) + 1_000;
    let span = |label: &str, a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) => Some((label.to_string(), b - a)),
        _ => None,
    };
    Ok(RoundTrip {
        forward_succeeded,
        rollback_succeeded,
        forward_blackout_ms: longest_gap(&logs, fwd_lines.first().map_or(0, |l| l.at), fwd_end),
        rollback_blackout_ms: longest_gap(&logs, back_start, back_end),
        workload: w,
        rollback_phases: [
            span(
                "catch-up",
                at(&back_lines, "catch-up-source", false),
                at(&back_lines, "catch-up-source", true),
            ),
            span(
                "release",
                at(&back_lines, "release-to-source", false),
                at(&back_lines, "release-to-source", true),
            ),
        ]
        .into_iter()
        .flatten()
        .collect(),
    })
}
