//! `godwit plan` for one cluster, read-only: the runbook's preflight in the cluster's own world
//! (the run stops before its first call that would change anything), then a prediction of the
//! whole migration in the simulator, on a scenario relabelled for the cluster and calibrated
//! with what the preflight found (engine version, instance class, storage, encryption, backup
//! retention). Nothing is journaled in the state directory: both runs use a scratch store.
//!
//! [`plan_cluster`] is the unit a fleet plan calls once per cluster (DESIGN.md §6); calibrating
//! the workload from each cluster's own metrics is that part.

use std::path::PathBuf;
use std::sync::Arc;

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::transcript::{Collector, Event, Line};
use godwit_engine::{RunStatus, StartRequest};
use godwit_stdlib::sim::scenario::Scenario;
use godwit_stdlib::sim::world::DEFAULT_SCENARIO;
use godwit_stdlib::world::World;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::demo::{Blackout, blackout};
use crate::session::{Failure, Output, drive, invalid, runner};
use crate::worlds::Worlds;

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub runbook: PathBuf,
    pub cluster: String,
    /// `--world` spec: `sim[:SCENARIO]`, `lab`, `aws`, ...
    pub world: String,
    /// Runbook parameters (checked against the runbook's schema, as for a run).
    pub params: Map<String, Value>,
    /// Where a world keeps its state and settings for this plan (a scratch file), if it needs
    /// one (the aws world's settings).
    pub state: Option<PathBuf>,
}

/// The plan of one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterPlan {
    pub cluster: String,
    pub runbook: String,
    pub world: String,
    pub preflight: Preflight,
    pub prediction: Prediction,
}

impl ClusterPlan {
    /// Would the migration go through, as far as the plan can tell?
    pub fn ready(&self) -> bool {
        self.preflight.passed && self.prediction.outcome == "succeeded"
    }
}

/// The preflight, run in the cluster's own world.
#[derive(Debug, Clone, Serialize)]
pub struct Preflight {
    /// Every check passed and the run got as far as its first change to the world.
    pub passed: bool,
    /// The checks (`#{ name, pass, why, fix }`) the runbook's `preflight` step returned.
    pub checks: Vec<Value>,
    /// Where the run would begin changing the world (`area::op in 'step'`).
    pub stops_before: Option<String>,
    /// Why it ended before that, if it did (a failed check aborts).
    pub problem: Option<String>,
}

/// The whole migration in the simulator.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub scenario: String,
    /// What the scenario took from the preflight.
    pub calibrated: Vec<String>,
    /// `succeeded`, `rolled-back: <reason>`, ...
    pub outcome: String,
    pub virtual_ms: i64,
    pub write_blackout: Blackout,
    /// Phases: name, start (ms after the run's start), duration (ms).
    pub phases: Vec<(String, i64, i64)>,
}

/// Plan `req` (see the module docs). Refusals of the input (cluster id, parameters, runbook)
/// are errors, as for `godwit run`.
pub fn plan_cluster(worlds: &Worlds, req: &PlanRequest) -> Result<ClusterPlan, Failure> {
    godwit_engine::run::validate_cluster(&req.cluster)?;
    let (name, arg) = req.world.split_once(':').unwrap_or((&req.world, ""));
    worlds.check_name(name).map_err(invalid)?;
    let sim_scenario = (name == "sim").then_some(if arg.is_empty() {
        DEFAULT_SCENARIO
    } else {
        arg
    });
    let world = match sim_scenario {
        Some(sc) => World::sim(relabelled(sc, &req.cluster)?),
        None => worlds
            .build(&req.world, req.state.as_deref())
            .map_err(invalid)?,
    };
    let world_name = world.name.clone();
    let (lines, report, stop) = scratch_run(world, req, true)?;
    let pre_result = lines.iter().find_map(|l| match &l.event {
        Event::StepCompleted { name, result, .. } if name == "preflight" => Some(result.clone()),
        _ => None,
    });
    let checks = pre_result
        .as_ref()
        .and_then(|r| r["checks"].as_array().cloned())
        .unwrap_or_default();
    let problem = match &report.status {
        RunStatus::RolledBack { reason, .. } | RunStatus::RollbackFailed { reason, .. } => {
            Some(reason.clone())
        }
        RunStatus::Succeeded { .. } | RunStatus::Interrupted => None,
    };
    let preflight = Preflight {
        passed: problem.is_none()
            && stop.is_some()
            && checks.iter().all(|c| c["pass"].as_bool() != Some(false)),
        checks,
        stops_before: stop,
        problem,
    };

    // The prediction: the scenario of a simulated world, else the default one calibrated with
    // what the preflight saw of the real source.
    let mut scenario = relabelled(sim_scenario.unwrap_or(DEFAULT_SCENARIO), &req.cluster)?;
    let calibrated = match (&sim_scenario, pre_result.as_ref().map(|r| &r["source"])) {
        (None, Some(src)) => calibrate(&mut scenario, src),
        _ => Vec::new(),
    };
    let scenario_name = scenario.name.clone();
    let (lines, report, _) = scratch_run(World::sim(scenario), req, false)?;
    let outcome = match &report.status {
        RunStatus::Succeeded { .. } => "succeeded".to_string(),
        RunStatus::RolledBack { reason, .. } => format!("rolled-back: {reason}"),
        RunStatus::RollbackFailed { step, error, .. } => {
            format!("rollback-failed at '{step}': {error}")
        }
        RunStatus::Interrupted => "interrupted".into(),
    };
    Ok(ClusterPlan {
        cluster: req.cluster.clone(),
        runbook: lines
            .iter()
            .find_map(|l| match &l.event {
                Event::RunStarted {
                    runbook, version, ..
                } => Some(format!("{runbook} {version}")),
                _ => None,
            })
            .unwrap_or_default(),
        world: world_name,
        preflight,
        prediction: Prediction {
            scenario: scenario_name,
            calibrated,
            outcome,
            virtual_ms: lines.last().map_or(0, |l| l.at) - lines.first().map_or(0, |l| l.at),
            write_blackout: blackout(&lines),
            phases: phases(&lines),
        },
    })
}

/// A built-in scenario (or TOML file) whose source is `cluster`.
fn relabelled(name: &str, cluster: &str) -> Result<Scenario, Failure> {
    let mut sc = Scenario::load(name).map_err(|e| invalid(e.to_string()))?;
    sc.source.id = cluster.to_string();
    Ok(sc)
}

/// Take what the preflight saw of the source (`describe_instance`) into the scenario.
fn calibrate(sc: &mut Scenario, src: &Value) -> Vec<String> {
    let mut took = Vec::new();
    if let Some(v) = src["engine_version"].as_str() {
        sc.source.engine_version = v.to_string();
        took.push(format!("engine_version {v}"));
    }
    if let Some(v) = src["instance_class"].as_str() {
        sc.source.instance_class = v.to_string();
        took.push(format!("instance_class {v}"));
    }
    if let Some(v) = src["allocated_storage_gb"].as_f64() {
        sc.source.allocated_storage_gb = v.max(0.0) as u64;
        took.push(format!("allocated_storage_gb {v}"));
    }
    if let Some(v) = src["storage_encrypted"].as_bool() {
        sc.source.encrypted = v;
        took.push(format!("encrypted {v}"));
    }
    if let Some(v) = src["backup_retention_days"].as_u64() {
        sc.source.backup_retention_days = v as u32;
        took.push(format!("backup_retention_days {v}"));
    }
    took
}

/// Run `req`'s runbook in `world` on a scratch store; `planning`: stop at the first mutation.
fn scratch_run(
    world: World,
    req: &PlanRequest,
    planning: bool,
) -> Result<(Vec<Line>, godwit_engine::RunReport, Option<String>), Failure> {
    let scratch = crate::state::Store::File(godwit_engine::journal::file::FileStore::new(
        std::env::temp_dir(),
    ));
    let (mut runner, rt) = runner(&scratch, world, &Output::quiet())?;
    runner.store = Arc::new(MemoryStore::new());
    let collector = Collector::new();
    runner.sinks.push(Arc::new(collector.clone()));
    let start = StartRequest {
        runbook: req.runbook.clone(),
        cluster: req.cluster.clone(),
        params: req.params.clone(),
        run_id: None,
    };
    let (report, stop) = drive(&rt, move || {
        if planning {
            runner.plan(start)
        } else {
            runner.start(start).map(|r| (r, None))
        }
    })?;
    Ok((collector.lines(), report, stop))
}

/// The phases of a transcript: name, start (ms after the first line), duration (ms).
fn phases(lines: &[Line]) -> Vec<(String, i64, i64)> {
    let t0 = lines.first().map_or(0, |l| l.at);
    let end = lines.last().map_or(t0, |l| l.at);
    let starts: Vec<(String, i64)> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::Phase {
                name,
                replaying: false,
            } => Some((name.clone(), l.at)),
            _ => None,
        })
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, (name, at))| {
            let next = starts.get(i + 1).map_or(end, |p| p.1);
            (name.clone(), at - t0, next - at)
        })
        .collect()
}
