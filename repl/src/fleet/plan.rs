//! `godwit fleet plan`: every cluster of a [`Fleet`] through [`plan_cluster`] — its preflight in
//! its own world, its calibrated prediction in the simulator — on `jobs` threads at most, and
//! one [`ClusterVerdict`] per cluster. Read-only like `godwit plan`: nothing is journaled.
//!
//! Concurrency is bounded because every cluster's plan calls its world: on AWS each `jobs` slot
//! is a handful of API calls at a time, and throttling is retried by the world itself
//! (docs/aws.md); in the simulator each slot is one core's work.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::Serialize;

use super::{Fleet, FleetCluster};
use crate::plan::{ClusterPlan, PlanRequest, plan_cluster};
use crate::worlds::Worlds;

/// How ready a cluster is, in the order a table lists them (the most urgent first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// A preflight check failed (or the preflight refused to go on): fix it first.
    Blocked,
    /// The plan itself could not be made (the world refused, the runbook failed to load).
    Error,
    /// The preflight passed, but the predicted migration does not succeed.
    AtRisk,
    /// The preflight passed and the prediction succeeds.
    Ready,
}

impl Readiness {
    pub fn word(self) -> &'static str {
        match self {
            Readiness::Blocked => "blocked",
            Readiness::Error => "error",
            Readiness::AtRisk => "at-risk",
            Readiness::Ready => "ready",
        }
    }
}

/// A failed preflight check and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub check: String,
    pub why: String,
    pub fix: String,
}

/// The predicted figures of one cluster, in milliseconds from the run's start.
#[derive(Debug, Clone, Serialize)]
pub struct Predicted {
    /// `succeeded`, `rolled-back: <reason>`, ...
    pub outcome: String,
    /// How long the Aurora replica takes to build (phase `replica`).
    pub replica_build_ms: Option<i64>,
    /// When the validation under production traffic ends.
    pub validation_end_ms: Option<i64>,
    /// How long application writes are refused.
    pub write_blackout_ms: Option<i64>,
    /// Inside the blackout: from the fence LSN to the replica past it.
    pub catch_up_ms: Option<i64>,
    /// The whole migration.
    pub total_ms: i64,
    /// Figures read from the cluster.
    pub measured: Vec<String>,
    /// Figures assumed.
    pub assumptions: Vec<String>,
    /// The Aurora writer's class and its sizing verdict (`fits`, `undersized`, `oversized`,
    /// `unknown`): docs/fleet.md, "Instance sizing".
    pub target_class: Option<String>,
    pub sizing: String,
    /// What the predicted run proved before the flip: audit, query check, shadow reads
    /// (docs/fleet.md, "Assurance before the flip").
    pub assurance: crate::plan::Assurance,
    /// Whether the logical path could carry it (docs/fleet.md, "The logical path").
    pub logical: super::logical::LogicalEligibility,
    /// The path recommended (`physical` or `logical`), why, and the logical path's predicted
    /// write blackout (docs/logical.md, "Which path").
    pub path: String,
    pub path_why: String,
    pub logical_blackout_ms: Option<i64>,
}

/// One cluster's line of a fleet plan (`-o json` prints one object per cluster).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterVerdict {
    pub cluster: String,
    pub owner: String,
    pub group: Option<String>,
    pub wave: Option<String>,
    pub runbook: String,
    pub readiness: Readiness,
    /// The failed preflight checks, each with its fix.
    pub blocked_by: Vec<Finding>,
    /// Why the preflight stopped short (an abort's reason), or why no plan could be made.
    pub problem: Option<String>,
    pub predicted: Option<Predicted>,
    /// The whole one-cluster plan (`godwit plan -o json`'s object), when one was made.
    pub plan: Option<ClusterPlan>,
}

impl ClusterVerdict {
    fn of(c: &FleetCluster, plan: Result<ClusterPlan, String>) -> ClusterVerdict {
        let mut v = ClusterVerdict {
            cluster: c.id.clone(),
            owner: c.owner.clone(),
            group: c.group.clone(),
            wave: c.wave.clone(),
            runbook: c.runbook.clone(),
            readiness: Readiness::Error,
            blocked_by: Vec::new(),
            problem: None,
            predicted: None,
            plan: None,
        };
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                v.problem = Some(e);
                return v;
            }
        };
        let s = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap_or_default().to_string();
        v.blocked_by = plan
            .preflight
            .checks
            .iter()
            .filter(|c| c["pass"].as_bool() == Some(false))
            .map(|c| Finding {
                check: s(c, "name"),
                why: s(c, "why"),
                fix: s(c, "fix"),
            })
            .collect();
        v.problem = plan.preflight.problem.clone();
        let pr = &plan.prediction;
        v.predicted = Some(Predicted {
            outcome: pr.outcome.clone(),
            replica_build_ms: pr.phase_took("replica"),
            validation_end_ms: pr.phase_end("validation under production traffic"),
            write_blackout_ms: pr.blackout_ms(),
            catch_up_ms: pr.blackout_part("catch-up"),
            total_ms: pr.virtual_ms,
            measured: pr.calibrated.clone(),
            assumptions: pr.assumptions.clone(),
            target_class: plan.sizing.target_class.clone(),
            sizing: plan.sizing.verdict.clone(),
            assurance: pr.assurance.clone(),
            logical: plan.logical.clone(),
            path: plan.paths.recommended.clone(),
            path_why: plan.paths.why.clone(),
            logical_blackout_ms: plan.paths.logical.as_ref().and_then(|l| l.blackout_ms()),
        });
        v.readiness = if !plan.preflight.passed {
            Readiness::Blocked
        } else if pr.outcome != "succeeded" || plan.sizing.verdict == "undersized" {
            Readiness::AtRisk
        } else {
            Readiness::Ready
        };
        v.plan = Some(plan);
        v
    }
}

/// What to plan the fleet in.
pub struct FleetPlanRequest<'a> {
    pub fleet: &'a Fleet,
    /// `--world`: the world of every cluster that has none of its own.
    pub world: String,
    /// At most this many clusters planned at once.
    pub jobs: usize,
    /// The world's settings (aws), written for every cluster's plan.
    pub settings: Option<serde_json::Value>,
    /// A directory of recorded series, `<cluster>.json` each (`godwit cw export`): a cluster
    /// with one has its recording replayed in its prediction.
    pub series: Option<PathBuf>,
}

/// Plan every cluster of `req.fleet`; `progress(done, total, verdict)` is called on the calling
/// thread as each one finishes. The verdicts come back sorted by readiness, then cluster id.
pub fn plan_fleet(
    worlds: &Worlds,
    req: &FleetPlanRequest<'_>,
    mut progress: impl FnMut(usize, usize, &ClusterVerdict),
) -> Result<Vec<ClusterVerdict>, crate::session::Failure> {
    let clusters = &req.fleet.clusters;
    let scratch = tempfile::tempdir().map_err(|e| {
        crate::session::Failure(
            godwit_engine::exit::INTERNAL,
            format!("cannot make a temporary directory: {e}"),
        )
    })?;
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<ClusterVerdict>();
    let mut verdicts = Vec::with_capacity(clusters.len());
    std::thread::scope(|s| {
        for _ in 0..req.jobs.clamp(1, clusters.len().max(1)) {
            let tx = tx.clone();
            let (next, scratch) = (&next, scratch.path());
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = clusters.get(i) else { break };
                    let plan = plan_one(worlds, req, c, scratch.join(format!("{i}")));
                    if tx.send(ClusterVerdict::of(c, plan)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for v in rx {
            progress(verdicts.len() + 1, clusters.len(), &v);
            verdicts.push(v);
        }
    });
    verdicts.sort_by(|a, b| (a.readiness, &a.cluster).cmp(&(b.readiness, &b.cluster)));
    Ok(verdicts)
}

fn plan_one(
    worlds: &Worlds,
    req: &FleetPlanRequest<'_>,
    c: &FleetCluster,
    dir: PathBuf,
) -> Result<ClusterPlan, String> {
    let state = dir.join("world.json");
    if let Some(v) = &req.settings {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        crate::config::write_settings(&state, v).map_err(|f| f.1)?;
    }
    plan_cluster(
        worlds,
        &PlanRequest {
            runbook: c.runbook_path.clone(),
            cluster: c.id.clone(),
            world: c.world.clone().unwrap_or_else(|| req.world.clone()),
            params: c.params.clone(),
            state: Some(state),
            scenario: c.scenario.clone(),
            // One file per cluster, `<DIR>/<cluster>.json`; without one, the fitted curve.
            series: req
                .series
                .as_ref()
                .map(|d| d.join(format!("{}.json", c.id)))
                .filter(|f| f.exists()),
        },
    )
    .map_err(|f| f.1)
}
