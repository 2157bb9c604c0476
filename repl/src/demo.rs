//! `godwit demo`: the standard runbook against a built-in simulated scenario, with the phase,
//! the gate being waited on and why as it goes, and a summary at the end. Needs nothing but the
//! binary: the runbook and its modules are embedded, and the run's state lives in a temporary
//! directory that is removed afterwards.

use std::sync::Arc;

use godwit_engine::clock::format_timestamp;
use godwit_engine::duration::format_duration;
use godwit_engine::journal::file::FileStore;
use godwit_engine::transcript::{Collector, Event, Line};
use godwit_engine::{RunStatus, StartRequest};
use godwit_stdlib::sim::scenario::Scenario;

use godwit_stdlib::sim::world::DEFAULT_SCENARIO;

/// `godwit demo --credential-less` without `--scenario`: a busy source without a CDC consumer
/// (one would be refused without database access: its paused slot holds the slot lag up).
const CREDENTIAL_LESS_SCENARIO: &str = "credential-less-busy";

use crate::render::HumanSink;
use crate::session::{Driving, Failure, Output, audited, drive};

/// The standard runbook and its modules, as shipped in the binary.
pub const STANDARD_RUNBOOK: &[(&str, &str)] = &[
    (
        "rds-to-aurora.rhai",
        include_str!("../../runbooks/rds-to-aurora.rhai"),
    ),
    (
        "lib/standard.rhai",
        include_str!("../../runbooks/lib/standard.rhai"),
    ),
    (
        "lib/checks.rhai",
        include_str!("../../runbooks/lib/checks.rhai"),
    ),
    (
        "lib/preflight.rhai",
        include_str!("../../runbooks/lib/preflight.rhai"),
    ),
    (
        "lib/catch_up.rhai",
        include_str!("../../runbooks/lib/catch_up.rhai"),
    ),
    (
        "lib/quiesce.rhai",
        include_str!("../../runbooks/lib/quiesce.rhai"),
    ),
    (
        "lib/routing.rhai",
        include_str!("../../runbooks/lib/routing.rhai"),
    ),
    (
        "lib/reverse.rhai",
        include_str!("../../runbooks/lib/reverse.rhai"),
    ),
    (
        "lib/clone.rhai",
        include_str!("../../runbooks/lib/clone.rhai"),
    ),
    (
        "lib/logical.rhai",
        include_str!("../../runbooks/lib/logical.rhai"),
    ),
    ("logical.rhai", include_str!("../../runbooks/logical.rhai")),
];

fn io(e: impl std::fmt::Display) -> Failure {
    Failure(godwit_engine::exit::INTERNAL, format!("demo: {e}"))
}

/// `godwit demo --list`: the built-in scenarios (`[{ name, description }]` with `-o json`).
pub fn list(json: bool) -> Result<i32, Failure> {
    let mut rows = Vec::new();
    for name in godwit_stdlib::sim::world::builtin_scenarios() {
        let sc = Scenario::load(name).map_err(io)?;
        if json {
            rows.push(serde_json::json!({ "name": name, "description": sc.description }));
        } else {
            crate::out::line(format!("  {name:<26} {}", sc.description));
        }
    }
    if json {
        crate::out::json(&rows);
    }
    Ok(godwit_engine::exit::OK)
}

/// Run the demo; returns the run's exit code. With `json`, no transcript: one JSON object with
/// the run's report and the summary's figures.
pub fn run(
    scenario: Option<&str>,
    credential_less: bool,
    verbose: bool,
    json: bool,
) -> Result<i32, Failure> {
    let name = scenario.unwrap_or(if credential_less {
        CREDENTIAL_LESS_SCENARIO
    } else {
        DEFAULT_SCENARIO
    });
    let mut sc = Scenario::load(name).map_err(|e| {
        let names = godwit_stdlib::sim::world::builtin_scenarios();
        let hint = godwit_engine::params::suggest(name, &names)
            .map(|n| format!("did you mean {n}? "))
            .unwrap_or_default();
        Failure(
            godwit_engine::exit::INVALID_INPUT,
            format!("{e} ({hint}godwit demo --list shows the scenarios)"),
        )
    })?;
    let cluster = sc.source.id.clone();
    // Credential-less: the world withholds database access, and the run records that it
    // accepts what only SQL could verify (preflight lists it).
    let mut params = serde_json::Map::new();
    if credential_less {
        sc.godwit.db_access = false;
    }
    let credential_less = !sc.godwit.db_access;
    if credential_less {
        params.insert("unverified".into(), "accept".into());
    }
    let dir = tempfile::tempdir().map_err(io)?;
    let runbook = write_standard_runbook(dir.path())?;
    if !json {
        crate::out::line(format!(
            "godwit demo · runbook rds-to-aurora · scenario {name}: {}",
            sc.description
        ));
        if credential_less {
            crate::out::line(
                "credential-less: no database access — every gate decides from AWS APIs and CloudWatch; \
                 what only SQL can verify is accepted (--set unverified=accept)",
            );
        }
        crate::out::line(format!(
            "(simulated: virtual clock, no AWS account; the run is not kept — use `godwit run rds-to-aurora --world sim:{name}` to keep one)\n"
        ));
    }
    let world = godwit_stdlib::world::World::sim(sc);
    let audit = world.audit.clone();
    let store = crate::state::Store::File(FileStore::new(dir.path().join("state/runs")));
    let out = Output {
        json: true,
        verbose,
        max_operations: None,
    };
    let driving = Driving::start()?;
    let mut runner = driving.runner(&store, world, &out);
    let collector = Collector::new();
    if !json {
        runner.sinks.push(Arc::new(HumanSink::new(verbose)));
    }
    runner.sinks.push(Arc::new(collector.clone()));
    let started = std::time::Instant::now();
    let req = StartRequest {
        runbook,
        cluster,
        params,
        run_id: None,
    };
    let report = drive(&driving.rt, move || runner.start(req))?;
    let wall = started.elapsed();
    let lines = collector.lines();
    if json {
        crate::out::json(&serde_json::json!({
            "scenario": name,
            "report": report,
            "write_blackout": blackout(&lines),
            "virtual_ms": lines.last().map_or(0, |l| l.at) - lines.first().map_or(0, |l| l.at),
        }));
    } else {
        crate::out::line(format!(
            "\n{}",
            summary(&lines, &report.status, wall, "virtual time")
        ));
    }
    Ok(audited(report.status.exit_code(), audit.as_deref()))
}

/// When writes could not reach the source: from the first step that ended the application's
/// sessions on it (new ones are held at Envoy from the hold on) — by SQL or by the reboot; the
/// fence itself if neither ran — to the route switch onto Aurora; or, when the run rolled back,
/// to the undo that reopened the source (its security groups restored, Envoy's hold released),
/// or to the end of the run if it is still fenced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Blackout {
    /// The source was never fenced.
    None,
    /// From `from` to `to` (clock ms); `began`: what started it, `until`: what ended it.
    Ended {
        from: i64,
        began: String,
        to: i64,
        until: String,
    },
    /// Still fenced when the run ended (a failed rollback, an interrupted run).
    Ongoing { from: i64, to: i64 },
}

/// The write blackout a transcript shows (see [`Blackout`]).
pub fn blackout(lines: &[Line]) -> Blackout {
    let started = |step: &str| {
        lines.iter().find_map(|l| match &l.event {
            Event::StepStarted { name } if name == step => Some(l.at),
            _ => None,
        })
    };
    let completed = |step: &str| {
        lines.iter().find_map(|l| match &l.event {
            Event::StepCompleted { name, .. } if name == step => Some(l.at),
            _ => None,
        })
    };
    let undone = |step: &str| {
        lines.iter().rev().find_map(|l| match &l.event {
            Event::UndoCompleted { step: s } if s == step => Some(l.at),
            _ => None,
        })
    };
    let ended = SESSION_ENDING_STEPS
        .iter()
        .filter_map(|(step, how)| started(step).map(|at| (at, *how)))
        .min_by_key(|(at, _)| *at);
    let Some((from, began)) = ended.or_else(|| started("fence").map(|at| (at, "source fenced")))
    else {
        return Blackout::None;
    };
    let began = began.to_string();
    if let Some(to) = completed("switch-route") {
        return Blackout::Ended {
            from,
            began,
            to,
            until: "every Envoy node on Aurora".into(),
        };
    }
    // Rolled back: the source takes writes again once its groups are back and the hold is gone.
    match (undone("fence"), undone("hold")) {
        (Some(f), h) => Blackout::Ended {
            from,
            began,
            to: h.map_or(f, |h| h.max(f)),
            until: "the rollback reopened the source".into(),
        },
        (None, _) => Blackout::Ongoing {
            from,
            to: lines.last().map_or(from, |l| l.at),
        },
    }
}

/// Write the embedded standard runbook and its modules under `dir/runbooks`; returns the
/// runbook's path.
pub fn write_standard_runbook(dir: &std::path::Path) -> Result<std::path::PathBuf, Failure> {
    for (path, text) in STANDARD_RUNBOOK {
        let p = dir.join("runbooks").join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(dir)).map_err(io)?;
        std::fs::write(&p, text).map_err(io)?;
    }
    Ok(dir.join("runbooks/rds-to-aurora.rhai"))
}

fn dur(ms: i64) -> String {
    format_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// The steps of the standard flow and its variants that end the application's sessions on the
/// source, and how each says it.
pub(crate) const SESSION_ENDING_STEPS: &[(&str, &str)] = &[
    ("terminate-app-sessions", "application sessions terminated"),
    ("end-app-sessions", "application sessions terminated"),
    ("reboot-source", "source reboot ended its sessions"),
];

/// The end-of-run summary: phase timeline (`clock`: "virtual time" in the simulator), write
/// blackout, checks, rollback.
pub fn summary(
    lines: &[Line],
    status: &RunStatus,
    wall: std::time::Duration,
    clock: &str,
) -> String {
    let t0 = lines.first().map_or(0, |l| l.at);
    let end = lines.last().map_or(t0, |l| l.at);
    let mut out = vec![format!("── summary ({clock}) ──")];
    let phases: Vec<(&str, i64)> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::Phase {
                name,
                replaying: false,
            } => Some((name.as_str(), l.at)),
            _ => None,
        })
        .collect();
    for (i, (name, at)) in phases.iter().enumerate() {
        let next = phases.get(i + 1).map_or(end, |p| p.1);
        out.push(format!(
            "  {:<38} at +{:<10} took {}",
            name,
            dur(at - t0),
            dur(next - at)
        ));
    }
    match blackout(lines) {
        Blackout::Ended {
            from,
            began,
            to,
            until,
        } => out.push(format!(
            "  write blackout ≈ {} ({began} at {} → {until} at {})",
            dur(to - from),
            format_timestamp(from),
            format_timestamp(to)
        )),
        Blackout::Ongoing { from, to } => out.push(format!(
            "  write blackout: the source is STILL FENCED (since {}, {} so far): nothing took over its writes",
            format_timestamp(from),
            dur(to - from)
        )),
        Blackout::None => out.push("  write blackout: none — the source was never fenced".into()),
    }
    let gates: Vec<String> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::GatePassed {
                name,
                polls,
                waited,
                evidence,
            } => Some(if evidence.is_empty() {
                format!("{name} ({polls} polls, {waited})")
            } else {
                format!(
                    "{name} ({polls} polls, {waited}; evidence {})",
                    evidence.join(" + ")
                )
            }),
            _ => None,
        })
        .collect();
    let steps = lines
        .iter()
        .filter(|l| matches!(l.event, Event::StepCompleted { .. }))
        .count();
    out.push(format!(
        "  {steps} steps completed; gates passed: {}",
        if gates.is_empty() {
            "none".into()
        } else {
            gates.join(", ")
        }
    ));
    let undone: Vec<&str> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::UndoCompleted { step } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    out.push(format!(
        "  rolled back: {}",
        if undone.is_empty() {
            "nothing".into()
        } else {
            undone.join(", ")
        }
    ));
    let outcome = match status {
        RunStatus::Succeeded { .. } => "succeeded".to_string(),
        RunStatus::RolledBack { reason, .. } => format!("rolled back: {reason}"),
        RunStatus::RollbackFailed { step, error, .. } => {
            format!("rollback stopped at '{step}': {error}")
        }
        RunStatus::Interrupted => "interrupted".into(),
    };
    out.push(if clock == "virtual time" {
        format!(
            "  outcome: {outcome} · {} of virtual time in {:.2} s of wall time",
            dur(end - t0),
            wall.as_secs_f64()
        )
    } else {
        format!("  outcome: {outcome} · {:.2} s", wall.as_secs_f64())
    });
    out.join("\n")
}
