//! `godwit plan` for one cluster, read-only: the runbook's preflight in the cluster's own world
//! (the run stops before its first call that would change anything), then a prediction of the
//! whole migration in the simulator. Nothing is journaled in the state directory: every run
//! uses a scratch store.
//!
//! The prediction runs on one of two scenarios:
//! - in a world named `sim[:SCENARIO]`, that scenario itself (relabelled for the cluster): the
//!   simulated world *is* the cluster, so the prediction is what a run there would do;
//! - in any other world — aws, lab, or a generated fleet's simulated cluster
//!   ([`PlanRequest::scenario`]) — a scenario built from the cluster's own figures
//!   ([`crate::fleet::calibration`]): a read-only probe ([`PROBE`]) reads the source's
//!   description, a day of `TransactionLogsGeneration` and `DatabaseConnections`, free storage,
//!   slots and CDC consumers through the world's areas, and every figure it could not read is an
//!   assumption the plan states ([`Prediction::calibrated`], [`Prediction::assumptions`]).
//!
//! [`plan_cluster`] is the unit `godwit fleet plan` calls once per cluster.

use std::path::PathBuf;
use std::sync::Arc;

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::transcript::{Event, Line};
use godwit_engine::{RunStatus, StartRequest};
use godwit_stdlib::sim::scenario::Scenario;
use godwit_stdlib::sim::world::DEFAULT_SCENARIO;
use godwit_stdlib::world::World;
use godwit_xds::model::HoldBudget;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::demo::{Blackout, blackout};
use crate::session::{Failure, drive, invalid, runtime};
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
    /// The cluster's own simulated world (a generated fleet's cluster), instead of `world`.
    /// Planned like a real cluster: its prediction is calibrated from what the probe reads.
    pub scenario: Option<Scenario>,
    /// A recorded-series file (`godwit cw export`) the prediction replays instead of the
    /// workload curve fitted to the probe's figures.
    pub series: Option<PathBuf>,
}

/// The plan of one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterPlan {
    pub cluster: String,
    pub runbook: String,
    pub world: String,
    pub preflight: Preflight,
    pub prediction: Prediction,
    /// The Aurora writer's class against the source's observed peak (docs/fleet.md,
    /// "Instance sizing").
    pub sizing: crate::fleet::sizing::Sizing,
    /// Whether native logical replication could carry the source instead (docs/fleet.md,
    /// "The logical path").
    pub logical: crate::fleet::logical::LogicalEligibility,
    /// The path to take, with the logical path's prediction (docs/logical.md, "Which path").
    pub paths: PathChoice,
}

impl ClusterPlan {
    /// Would the migration go through, as far as the plan can tell?
    pub fn ready(&self) -> bool {
        self.preflight.passed
            && self.prediction.outcome == "succeeded"
            && self.sizing.verdict != "undersized"
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
    /// The write blackout's parts (ms): fence, catch-up (fence LSN → replica past it), the
    /// exact validation, promote, route switch — as the lab's cutover measures them
    /// (`godwit_lab::cutover::phases`), so a prediction compares with a measurement.
    pub blackout_parts: Vec<(String, i64)>,
    /// What the prediction assumed because it could not be measured.
    pub assumptions: Vec<String>,
    /// What the predicted run proved before the flip (issue 24): the audit, the query check
    /// and shadow reads, each as the run summed it up; `None`: not run.
    pub assurance: Assurance,
}

/// The assurance the predicted run gathered before the flip, each as the runbook summed it up
/// (its printed summary or its step's `summary`); `None` when the run did not do it (off, no
/// database access, or it stopped before).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Assurance {
    pub audit: Option<String>,
    pub query_check: Option<String>,
    pub shadow_reads: Option<String>,
}

impl Assurance {
    /// From a run's transcript: the validation's printed summaries and the `query-check`
    /// step's result.
    pub fn of(lines: &[Line]) -> Assurance {
        let mut a = Assurance::default();
        for l in lines {
            match &l.event {
                Event::Print { message, .. } => {
                    if let Some(s) = message.strip_prefix("audit while replicating: ") {
                        a.audit = Some(s.to_string());
                    } else if let Some(s) = message.strip_prefix("shadow reads: ") {
                        a.shadow_reads = Some(s.to_string());
                    }
                }
                // Proven only when statements ran: "not run" and "nothing checked" are not.
                Event::StepCompleted { name, result, .. }
                    if name == "query-check"
                        && result["available"].as_bool() != Some(false)
                        && result["checked"].as_u64().is_some_and(|n| n > 0) =>
                {
                    a.query_check = result
                        .get("summary")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
                _ => {}
            }
        }
        a
    }
}

impl Prediction {
    /// The end of the phase `name` (ms after the run's start), if the run reached it.
    pub fn phase_end(&self, name: &str) -> Option<i64> {
        self.phases
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, at, took)| at + took)
    }

    /// How long the phase `name` took (ms), if the run reached it.
    pub fn phase_took(&self, name: &str) -> Option<i64> {
        self.phases
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, took)| *took)
    }

    /// How long the part `name` of the blackout took (`blackout_parts`).
    pub fn blackout_part(&self, name: &str) -> Option<i64> {
        self.blackout_parts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ms)| *ms)
    }

    /// The predicted write blackout (ms), when the run ended it.
    pub fn blackout_ms(&self) -> Option<i64> {
        match &self.write_blackout {
            Blackout::Ended { from, to, .. } => Some(to - from),
            Blackout::None | Blackout::Ongoing { .. } => None,
        }
    }
}

/// The read-only calibration probe, run in the cluster's own world after its preflight: one
/// step of reads, whose result [`crate::fleet::calibration`] turns into a scenario. A runbook
/// like any other, so it goes through the Host (strict mode, the world's retries on throttling)
/// and works in every world.
pub const PROBE: &str = include_str!("fleet/probe.rhai");

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
    let world = match (&req.scenario, sim_scenario) {
        (Some(sc), _) => World::sim(sc.clone()),
        (None, Some(sc)) => World::sim(relabelled(sc, &req.cluster)?),
        (None, None) => worlds
            .build(&req.world, req.state.as_deref())
            .map_err(invalid)?,
    };
    let world_name = world.name.clone();
    let (pre, report, stop) =
        scratch_run(&world, &req.runbook, &req.cluster, &req.params, true, None)?;
    let pre_result = pre.lines.iter().find_map(|l| match &l.event {
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

    // The prediction: the scenario of a world named sim[:SCENARIO], else one calibrated from
    // what the probe reads of the cluster.
    // The probe runs in every world: the sizing reads what it measured.
    let probe = probe(&world, req)?;
    let sizing = crate::fleet::sizing::judge(&probe, &req.params);
    let logical = crate::fleet::logical::judge(&probe);
    let (mut scenario, calibrated, mut assumptions) = match (&req.scenario, sim_scenario) {
        (None, Some(sc)) => (relabelled(sc, &req.cluster)?, Vec::new(), Vec::new()),
        _ => {
            let platform = crate::fleet::calibration::Platform::of_world(&world_name);
            let c =
                crate::fleet::calibration::calibrate(&req.cluster, &probe, &req.params, platform);
            (c.scenario, c.measured, c.assumed)
        }
    };
    if let Some(file) = &req.series {
        let rec = godwit_stdlib::cw::recording::Recording::load(file)
            .map_err(|e| invalid(e.to_string()))?;
        if rec.cluster != req.cluster {
            return Err(invalid(format!(
                "recorded series {}: it is of cluster {}, not {}; export {}'s own series",
                file.display(),
                rec.cluster,
                req.cluster,
                req.cluster
            )));
        }
        let replayed = crate::fleet::calibration::replay_recording(
            &mut scenario,
            rec,
            &file.display().to_string(),
        )
        .map_err(invalid)?;
        // The recording replaces the fitted curve and its jitter.
        assumptions.retain(|a| !a.starts_with("the daily WAL curve") && !a.starts_with("WAL: "));
        assumptions.insert(0, replayed);
    }
    let params = match sim_scenario {
        Some(_) => req.params.clone(),
        None => {
            let (p, dilated) = minute_metrics(&req.params);
            if let Some((factor, said)) = dilated {
                // The window lasts `factor` times longer than the run's: the tables grow as
                // much over it as they will over the real one.
                scenario.workload.bytes_per_row =
                    (scenario.workload.bytes_per_row as f64 * factor).round() as u64;
                assumptions.push(said);
            }
            p
        }
    };
    let base_scenario = scenario.clone();
    let (runbook, prediction) = predict(
        &req.runbook,
        &req.cluster,
        scenario,
        &params,
        calibrated.clone(),
        assumptions.clone(),
    )?;
    let paths = choose_path(
        req,
        &runbook,
        &prediction,
        &logical,
        base_scenario,
        &params,
        (calibrated, assumptions),
    )?;
    Ok(ClusterPlan {
        cluster: req.cluster.clone(),
        runbook,
        world: world_name,
        preflight,
        sizing,
        logical,
        prediction,
        paths,
    })
}

/// The migration `runbook` predicted in the simulated `scenario`: its runbook's name and
/// version, and the [`Prediction`].
fn predict(
    runbook: &std::path::Path,
    cluster: &str,
    scenario: Scenario,
    params: &Map<String, Value>,
    calibrated: Vec<String>,
    mut assumptions: Vec<String>,
) -> Result<(String, Prediction), Failure> {
    let scenario_name = scenario.name.clone();
    let scenario_sessions = scenario.source.sessions;
    let (run, report, _) =
        scratch_run(&World::sim(scenario), runbook, cluster, params, false, None)?;
    let mut parts = godwit_lab::cutover::phases(&run.lines);
    let outcome = match &report.status {
        RunStatus::Succeeded { .. } => "succeeded".to_string(),
        RunStatus::RolledBack { reason, .. } => format!("rolled-back: {reason}"),
        RunStatus::RollbackFailed { step, error, .. } => {
            format!("rollback-failed at '{step}': {error}")
        }
        RunStatus::Interrupted => "interrupted".into(),
    };
    let name = run
        .lines
        .iter()
        .find_map(|l| match &l.event {
            Event::RunStarted {
                runbook, version, ..
            } => Some(format!("{runbook} {version}")),
            _ => None,
        })
        .unwrap_or_default();
    Ok((
        name,
        Prediction {
            scenario: scenario_name,
            calibrated,
            outcome,
            virtual_ms: run.end - run.lines.first().map_or(run.end, |l| l.at),
            write_blackout: match blackout(&run.lines) {
                // Still fenced at the end: until the run's last line, dropped ones included.
                Blackout::Ongoing { from, .. } => Blackout::Ongoing { from, to: run.end },
                // The route switch ends the blackout for Envoy; the applications' writes come
                // back when the first held connection retries onto Aurora.
                Blackout::Ended {
                    from, began, to, ..
                } if matches!(&report.status, RunStatus::Succeeded { .. }) => {
                    let back = clients_back_ms(to - from, scenario_sessions);
                    parts.push(("clients back".into(), back));
                    assumptions.push(format!(
                        "clients back {back} ms after the route switch: the first of {} held connections to retry onto Aurora, Envoy's hold retrying with its default backoff ({} ms doubling to {} ms, fully jittered)",
                        scenario_sessions.clamp(1, MAX_MODELLED_CLIENTS),
                        HoldBudget::default().base_interval_ms,
                        HoldBudget::default().max_interval_ms
                    ));
                    Blackout::Ended {
                        from,
                        began,
                        to: to + back,
                        until: "the first held connection retried onto Aurora".into(),
                    }
                }
                b => b,
            },
            phases: phases(&run),
            blackout_parts: parts,
            assumptions,
            assurance: Assurance::of(&run.lines),
        },
    ))
}

/// Which path to take, the physical replica (`rds-to-aurora` and its variants) or the logical
/// copy (`logical`, docs/logical.md), with the other path's prediction.
#[derive(Debug, Clone, Serialize)]
pub struct PathChoice {
    /// `physical` or `logical`.
    pub recommended: String,
    /// Why, in one sentence with the figures it compared.
    pub why: String,
    /// The logical path predicted in the same calibrated world (`None`: not eligible, the plan
    /// is of the logical runbook itself, or no `logical.rhai` beside the planned runbook).
    pub logical: Option<Prediction>,
}

/// The runbook file of the logical path: beside the planned one (a checkout's `runbooks/`, the
/// demo's copy).
pub const LOGICAL_RUNBOOK: &str = "logical.rhai";

/// Predict the logical path beside the planned physical one and recommend one: the logical
/// path when it is eligible (after the reboot that turns logical decoding on, when that is its
/// only blocker: the prediction assumes it done), its prediction succeeds, and its write
/// blackout is shorter — or the physical prediction fails where it succeeds.
fn choose_path(
    req: &PlanRequest,
    runbook: &str,
    planned: &Prediction,
    eligibility: &crate::fleet::logical::LogicalEligibility,
    mut scenario: Scenario,
    params: &Map<String, Value>,
    (calibrated, mut assumptions): (Vec<String>, Vec<String>),
) -> Result<PathChoice, Failure> {
    if runbook.starts_with("logical ") {
        return Ok(PathChoice {
            recommended: "logical".into(),
            why: "the plan is of the logical runbook".into(),
            logical: None,
        });
    }
    let physical = |why: String| PathChoice {
        recommended: "physical".into(),
        why,
        logical: None,
    };
    let file = req.runbook.with_file_name(LOGICAL_RUNBOOK);
    if eligibility.verdict == "not-eligible" {
        let first = eligibility
            .blockers
            .first()
            .map_or(String::new(), |b| format!(": {}", b.why));
        return Ok(physical(format!("the logical path is not eligible{first}")));
    }
    if !file.exists() {
        return Ok(physical(format!(
            "no {LOGICAL_RUNBOOK} beside {} to predict the logical path with",
            req.runbook.display()
        )));
    }
    // Logical decoding is on (`eligible`: the server's wal_level says so) or will be after the
    // reboot: the calibrated source has it either way. (Calibration takes no parameter group:
    // without this, the prediction of an eligible source failed its own preflight, and the
    // plan recommended the physical path for it.)
    scenario
        .source
        .parameters
        .insert("rds.logical_replication".into(), "1".into());
    if eligibility.verdict == "after-reboot" {
        assumptions.push(
            "logical decoding on: rds.logical_replication = 1 and the reboot that applies it, done before the run"
                .into(),
        );
    }
    // Only what the logical runbook takes of the cluster's parameters.
    let reboot_ms = godwit_stdlib::sim::scenario::dur_ms(&scenario.aws.reboot);
    let predicted = logical_schema(&file, &req.cluster).and_then(|schema| {
        let params: Map<String, Value> = params
            .iter()
            .filter(|(k, _)| schema.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        predict(
            &file,
            &req.cluster,
            scenario,
            &params,
            calibrated,
            assumptions,
        )
    });
    // The other path is advice: when it cannot be predicted, the plan of the planned runbook
    // stands and says why.
    let logical = match predicted {
        Ok((_, l)) => l,
        Err(e) => {
            return Ok(physical(format!(
                "the logical path could not be predicted: {}",
                e.1
            )));
        }
    };
    let show = |p: &Prediction| {
        p.blackout_ms().map_or("no blackout measured".into(), |ms| {
            format!("{} write blackout", human(ms))
        })
    };
    // Logical decoding off: the reboot that turns it on is an outage of its own (in a
    // maintenance window), counted against the logical path.
    let after_reboot = eligibility.verdict == "after-reboot";
    let (extra, reboot) = if after_reboot {
        (
            reboot_ms,
            format!(
                " (plus a reboot of about {} to turn logical decoding on)",
                human(reboot_ms)
            ),
        )
    } else {
        (0, String::new())
    };
    let (recommended, why) = match (
        planned.blackout_ms(),
        logical.blackout_ms().map(|l| l + extra),
    ) {
        _ if logical.outcome != "succeeded" => (
            "physical",
            format!(
                "the logical path's prediction did not succeed: {}",
                logical.outcome
            ),
        ),
        _ if planned.outcome != "succeeded" => (
            "logical",
            format!(
                "the physical prediction did not succeed ({}); the logical path did{reboot}, {}",
                planned.outcome,
                show(&logical)
            ),
        ),
        (Some(p), Some(l)) if l < p => (
            "logical",
            format!(
                "{}{reboot} against {} for the physical replica",
                show(&logical),
                show(planned)
            ),
        ),
        _ => (
            "physical",
            format!(
                "{} against {}{reboot} for the logical path",
                show(planned),
                show(&logical)
            ),
        ),
    };
    Ok(PathChoice {
        recommended: recommended.into(),
        why,
        logical: Some(logical),
    })
}

/// `ms` for people: `8.8s`, `4m32s`.
fn human(ms: i64) -> String {
    godwit_engine::duration::format_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// The parameter names the logical runbook declares (its schema, for any cluster).
fn logical_schema(file: &std::path::Path, cluster: &str) -> Result<Vec<String>, Failure> {
    let rt = shared_runtime()?;
    let world = World::sim_named(DEFAULT_SCENARIO).map_err(|e| invalid(e.to_string()))?;
    let runner = world.runner(Arc::new(MemoryStore::new()), rt.handle().clone());
    let schema = godwit_engine::params::load_schema(&runner, file, cluster)
        .map_err(|e| invalid(format!("{}: {e}", file.display())))?;
    Ok(schema.map_or_else(Vec::new, |s| s.params.keys().cloned().collect()))
}

/// At most this many clients are modelled: the first of more retries within milliseconds.
const MAX_MODELLED_CLIENTS: u32 = 64;

/// How long after the route switch the applications' first write lands (ms), expected over
/// `sessions` connections held for `held_ms` by Envoy's hold (docs/envoy.md, "The hold"): a
/// held connection retries with Envoy's fully jittered exponential backoff — each wait
/// uniform in `[0, b)`, `b` doubling from the base interval to the maximum
/// (`JitteredExponentialBackOffStrategy`) — for at most `max_connect_attempts`; then Envoy
/// closes it, and the application connects again at once (assumed: its own retry policy is
/// not known) and is held afresh. A connection gets through at its first retry after the
/// switch; the blackout ends with the first of them. A seeded Monte Carlo: the same answer
/// every time.
pub fn clients_back_ms(held_ms: i64, sessions: u32) -> i64 {
    let hold = HoldBudget::default();
    let (base, max) = (hold.base_interval_ms as f64, hold.max_interval_ms as f64);
    let attempts = hold.max_connect_attempts.max(1);
    let clients = sessions.clamp(1, MAX_MODELLED_CLIENTS);
    let held = held_ms.max(0) as f64;
    // xorshift64*: deterministic, no dependency for a few thousand draws.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    // The intervals of one connection's attempts; a cycle lasts at most their sum.
    let intervals: Vec<f64> = (0..attempts)
        .scan(base, |b, _| {
            let now = *b;
            *b = (*b * 2.0).min(max);
            Some(now)
        })
        .collect();
    let cycle_max: f64 = intervals.iter().sum();
    let weight: f64 = cycle_max;
    const TRIALS: u32 = 2000;
    let mut total = 0.0;
    for _ in 0..TRIALS {
        let mut first = f64::INFINITY;
        for _ in 0..clients {
            let mut t = 0.0;
            // Held for many cycles: the switch falls at a random point of the cycles' renewal
            // process — an interval picked in proportion to its mean length (its bound), a
            // length from its length-biased law (bound × √u), a uniform point in it.
            if held > 2.0 * cycle_max {
                let mut pick = uniform() * weight;
                let bound = intervals
                    .iter()
                    .copied()
                    .find(|b| {
                        pick -= b;
                        pick < 0.0
                    })
                    .unwrap_or(max);
                first = first.min(bound * uniform().sqrt() * uniform());
                continue;
            }
            let wait = 'held: loop {
                // One downstream connection: its attempts, then Envoy gives up on it.
                let mut b = base;
                for _ in 0..attempts {
                    t += uniform() * b;
                    b = (b * 2.0).min(max);
                    if t >= held {
                        break 'held t - held;
                    }
                }
            };
            first = first.min(wait);
        }
        total += first;
    }
    (total / f64::from(TRIALS)).round() as i64
}

/// The run's parameters for the simulator, whose CloudWatch has one-minute datapoints (as RDS's
/// standard monitoring): a `metric_period` under a minute (a lab's seconds) is predicted at
/// 60 s, and a validation window too short for the analysis's five datapoints at 10 minutes.
/// Neither is inside the write blackout; the assumption says so.
fn minute_metrics(params: &Map<String, Value>) -> (Map<String, Value>, Option<(f64, String)>) {
    let period = params
        .get("metric_period")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
    let Some(period) = period.filter(|p| *p < 60) else {
        return (params.clone(), None);
    };
    let mut p = params.clone();
    p.insert("metric_period".into(), 60.into());
    let dur = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .and_then(|w| godwit_engine::duration::parse_duration(w).ok())
    };
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(600);
    let mut factor = 1.0;
    let mut stretched = String::new();
    if let Some(w) = dur("validation_window").filter(|w| *w < WINDOW) {
        p.insert("validation_window".into(), "10m".into());
        // The gate's timeout keeps its margin over the window.
        if let Some(t) = dur("validation_timeout") {
            let timeout = WINDOW + t.saturating_sub(w);
            p.insert(
                "validation_timeout".into(),
                godwit_engine::duration::format_duration(timeout).into(),
            );
        }
        factor = WINDOW.as_secs_f64() / w.as_secs_f64().max(1.0);
        stretched = format!(
            ", and the validation window {} at 10 min (five datapoints for the analysis) with the tables growing {factor:.0} times slower (as much as over the real window)",
            godwit_engine::duration::format_duration(w)
        );
    }
    (
        p,
        Some((
            factor,
            format!(
                "metric_period {period} s predicted at 60 s (the simulator's CloudWatch has one-minute datapoints){stretched}; neither is inside the write blackout"
            ),
        )),
    )
}

/// A built-in scenario (or TOML file) whose source is `cluster`.
fn relabelled(name: &str, cluster: &str) -> Result<Scenario, Failure> {
    let mut sc = Scenario::load(name).map_err(|e| invalid(e.to_string()))?;
    sc.source.id = cluster.to_string();
    Ok(sc)
}

/// Run the calibration [`PROBE`] in `world` and return what its step read (`Null` when it
/// read nothing: every figure is then an assumption).
fn probe(world: &World, req: &PlanRequest) -> Result<Value, Failure> {
    let runbook = embedded_runbook("fleet-probe.rhai", PROBE)?;
    // Five-minute averages, as RDS's console shows them; the runbook's metric period when it is
    // under a minute (a lab's datapoints are seconds, and a lab has minutes of them).
    let mut params = Map::new();
    params.insert(
        "period".into(),
        req.params
            .get("metric_period")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .filter(|p| *p < 60)
            .unwrap_or(300)
            .into(),
    );
    let (probe_run, _, _) = scratch_run(world, &runbook, &req.cluster, &params, false, None)?;
    Ok(probe_run
        .lines
        .iter()
        .find_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } if name == "measure" => Some(result.clone()),
            _ => None,
        })
        .unwrap_or(Value::Null))
}

/// Run the read-only `runbook` in `world` for `cluster` on a scratch store, and return what its
/// step `step` returned; `Err` with the run's reason when the step did not complete (a world
/// that refused, a runbook error).
pub(crate) fn read_only_step(
    world: &World,
    runbook: &std::path::Path,
    cluster: &str,
    step: &str,
) -> Result<Result<Value, String>, Failure> {
    let (run, report, _) = scratch_run(world, runbook, cluster, &Map::new(), false, None)?;
    let result = run.lines.into_iter().find_map(|l| match l.event {
        Event::StepCompleted { name, result, .. } if name == step => Some(result),
        _ => None,
    });
    Ok(result.ok_or_else(|| match report.status {
        RunStatus::RolledBack { reason, .. } | RunStatus::RollbackFailed { reason, .. } => reason,
        RunStatus::Succeeded { .. } => format!("step {step} returned nothing"),
        RunStatus::Interrupted => "interrupted".into(),
    }))
}

/// A runbook embedded in the binary (the probe, the series export), written once per process
/// into a directory that lives as long as it: runs load runbooks from files.
fn embedded_runbook(file: &str, text: &str) -> Result<PathBuf, Failure> {
    let fail = |e: String| {
        Failure(
            godwit_engine::exit::INTERNAL,
            format!("cannot write the embedded runbook {file}: {e}"),
        )
    };
    let mut dir = EMBEDDED.lock().unwrap_or_else(|e| e.into_inner());
    if dir.is_none() {
        *dir = Some((
            tempfile::tempdir().map_err(|e| fail(e.to_string()))?,
            Vec::new(),
        ));
    }
    let Some((tmp, written)) = dir.as_mut() else {
        return Err(fail("no directory".into()));
    };
    let path = tmp.path().join(file);
    if !written.iter().any(|f| f == file) {
        std::fs::write(&path, text).map_err(|e| fail(e.to_string()))?;
        written.push(file.to_string());
    }
    Ok(path)
}

/// The directory the embedded runbooks are written to once per process (a fleet plan runs them
/// hundreds of times), and which of them are there.
static EMBEDDED: std::sync::Mutex<Option<(tempfile::TempDir, Vec<String>)>> =
    std::sync::Mutex::new(None);

/// Remove the embedded runbooks' directory: a static is never dropped, so without this every
/// `godwit plan` left a directory in the system's temporary directory. The CLI calls it on its
/// way out; a later embedded run writes them again.
pub fn remove_embedded_runbooks() {
    let dir = EMBEDDED.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(dir);
}

/// Run the embedded read-only runbook `text` (named `file`) in `world` for `cluster` on a
/// scratch store, with `sink` seeing every line as it is written (progress): the kept lines
/// (steps and their results) and how the run ended. For reads that must go through the Host
/// (deadlines, the world's retries, strict mode), like `godwit cw export`'s.
pub fn read_only_run(
    world: &World,
    file: &str,
    text: &str,
    cluster: &str,
    params: &Map<String, Value>,
    sink: Option<Arc<dyn godwit_engine::transcript::Sink>>,
) -> Result<(Vec<Line>, godwit_engine::RunReport), Failure> {
    let runbook = embedded_runbook(file, text)?;
    let (t, report, _) = scratch_run(world, &runbook, cluster, params, false, sink)?;
    Ok((t.lines, report))
}

/// What a plan keeps of a run's transcript: every line but the bulky ones (primitive calls with
/// their results — a day of CloudWatch datapoints per gate poll — and gate polls), and the time
/// of the last line of all. A fleet plan makes hundreds of runs; keeping whole transcripts made
/// its peak RSS grow with the validation window.
#[derive(Clone, Default)]
struct KeptLines {
    kept: Arc<std::sync::Mutex<(Vec<Line>, i64)>>,
}

impl godwit_engine::transcript::Sink for KeptLines {
    fn line(&self, line: &Line) {
        let mut k = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        k.1 = line.at;
        if !matches!(line.event, Event::Primitive { .. } | Event::GatePoll { .. }) {
            k.0.push(line.clone());
        }
    }
}

/// A run's kept lines and when its last line was written.
struct Transcript {
    lines: Vec<Line>,
    end: i64,
}

/// One multi-threaded runtime for every run this process plans: a fleet plan makes three runs
/// per cluster, and a runtime each (two worker threads started and joined) cost wall time and
/// spread the allocator over many arenas.
fn shared_runtime() -> Result<&'static tokio::runtime::Runtime, Failure> {
    static RT: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    match RT.get_or_init(|| runtime().map_err(|f| f.1)) {
        Ok(rt) => Ok(rt),
        Err(e) => Err(Failure(godwit_engine::exit::INTERNAL, e.clone())),
    }
}

/// Run `runbook` in `world` for `cluster` on a scratch store; `planning`: stop at the first
/// mutation.
fn scratch_run(
    world: &World,
    runbook: &std::path::Path,
    cluster: &str,
    params: &Map<String, Value>,
    planning: bool,
    sink: Option<Arc<dyn godwit_engine::transcript::Sink>>,
) -> Result<(Transcript, godwit_engine::RunReport, Option<String>), Failure> {
    let rt = shared_runtime()?;
    let mut runner = world.runner(Arc::new(MemoryStore::new()), rt.handle().clone());
    let kept = KeptLines::default();
    runner.sinks.push(Arc::new(kept.clone()));
    runner.sinks.extend(sink);
    let start = StartRequest {
        runbook: runbook.to_path_buf(),
        cluster: cluster.to_string(),
        params: params.clone(),
        run_id: None,
    };
    let (report, stop) = drive(rt, move || {
        if planning {
            runner.plan(start)
        } else {
            runner.start(start).map(|r| (r, None))
        }
    })?;
    let (lines, end) = std::mem::take(&mut *kept.kept.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((Transcript { lines, end }, report, stop))
}

/// The phases of a transcript: name, start (ms after the first line), duration (ms).
fn phases(t: &Transcript) -> Vec<(String, i64, i64)> {
    let lines = &t.lines;
    let t0 = lines.first().map_or(0, |l| l.at);
    let end = t.end.max(t0);
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

#[cfg(test)]
mod tests {
    use super::clients_back_ms;

    #[test]
    fn a_long_hold_waits_for_a_retry_of_connections_envoy_gave_up_and_the_app_renewed() {
        // Past 40 attempts (about 19 s) Envoy closes a held connection and the application
        // connects again, restarting at 100 ms: within a cycle the late intervals (up to 1 s)
        // dominate, so a point in time waits somewhat under a third of a second.
        let one = clients_back_ms(4 * 60 * 1000, 1);
        assert!((200..=366).contains(&one), "{one}");
        // The first of many held connections gets through sooner.
        let many = clients_back_ms(4 * 60 * 1000, 20);
        assert!(many < one / 5, "{many} vs {one}");
        assert_eq!(clients_back_ms(4 * 60 * 1000, 20), many, "deterministic");
    }

    #[test]
    fn a_short_hold_waits_for_the_next_of_the_early_short_retries() {
        // The lab's cutovers: about 350 ms held, 2 to 6 clients (measured 13–105 ms).
        let two = clients_back_ms(350, 2);
        let six = clients_back_ms(430, 6);
        assert!((60..=180).contains(&two), "{two}");
        assert!(six < two, "{six} vs {two}");
        assert_eq!(
            clients_back_ms(0, 0),
            clients_back_ms(0, 1),
            "at least one client"
        );
    }
}
