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

use crate::render::HumanSink;
use crate::session::{Failure, Output, audited, drive, runner};

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
];

pub const DEFAULT_SCENARIO: &str = "busy-source";

fn io(e: impl std::fmt::Display) -> Failure {
    Failure(godwit_engine::exit::INTERNAL, format!("demo: {e}"))
}

/// `godwit demo --list`.
pub fn list() -> Result<i32, Failure> {
    for name in godwit_stdlib::sim::world::builtin_scenarios() {
        let sc = Scenario::load(name).map_err(io)?;
        println!("  {name:<26} {}", sc.description);
    }
    Ok(godwit_engine::exit::OK)
}

/// Run the demo; returns the run's exit code.
pub fn run(scenario: Option<&str>, verbose: bool) -> Result<i32, Failure> {
    let name = scenario.unwrap_or(DEFAULT_SCENARIO);
    let sc = Scenario::load(name).map_err(|e| {
        Failure(
            godwit_engine::exit::INVALID_INPUT,
            format!("{e} (godwit demo --list shows the scenarios)"),
        )
    })?;
    let cluster = sc.source.id.clone();
    let dir = tempfile::tempdir().map_err(io)?;
    let runbook = write_standard_runbook(dir.path())?;
    println!(
        "godwit demo · runbook rds-to-aurora · scenario {name}: {}",
        sc.description
    );
    println!(
        "(simulated: virtual clock, no AWS account; the run is not kept — use `godwit run rds-to-aurora --world sim:{name}` to keep one)\n"
    );
    let world = godwit_stdlib::world::World::sim(sc);
    let audit = world.audit.clone();
    let store = FileStore::new(dir.path().join("state/runs"));
    let out = Output {
        json: true,
        verbose,
        max_operations: None,
    };
    let (mut runner, rt) = runner(&store, world, &out)?;
    let collector = Collector::new();
    runner.sinks.push(Arc::new(HumanSink::new(verbose)));
    runner.sinks.push(Arc::new(collector.clone()));
    let started = std::time::Instant::now();
    let req = StartRequest {
        runbook,
        cluster,
        params: Default::default(),
        run_id: None,
    };
    let report = drive(&rt, move || runner.start(req))?;
    let wall = started.elapsed();
    println!(
        "\n{}",
        summary(&collector.lines(), &report.status, wall, "virtual time")
    );
    Ok(audited(report.status.exit_code(), audit.as_deref()))
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
const SESSION_ENDING_STEPS: &[(&str, &str)] = &[
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
    // Writes stop when the application's sessions on the source end (new ones are held at
    // Envoy from the hold on): the first step that ends them, by SQL or by the reboot.
    let ended = SESSION_ENDING_STEPS
        .iter()
        .filter_map(|(step, how)| started(step).map(|at| (at, *how)))
        .min_by_key(|(at, _)| *at);
    match (ended, completed("switch-route")) {
        (Some((a, how)), Some(b)) => out.push(format!(
            "  write blackout ≈ {} ({how} at {} → every Envoy node on Aurora at {})",
            dur(b - a),
            format_timestamp(a),
            format_timestamp(b)
        )),
        _ => out.push("  write blackout: none — the source was never fenced".into()),
    }
    let gates: Vec<String> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::GatePassed {
                name,
                polls,
                waited,
            } => Some(format!("{name} ({polls} polls, {waited})")),
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
