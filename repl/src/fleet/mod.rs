//! The fleet: one definition of "the clusters godwit migrates" that every fleet command uses
//! (`godwit fleet plan` today; `fleet run`'s waves build on the same [`Fleet`]).
//!
//! * [`file`]: the fleet file (TOML) → [`Fleet`], strictly: unknown keys, duplicate clusters, a
//!   cluster in two waves, unknown groups and runbooks, parameters a runbook does not declare —
//!   every problem named with its key path and fix, before anything runs.
//! * [`discover`]: which fleet a command works on — the file, the account's instances found by
//!   their tags (`[discover]`, `--discover`) through the world, or the generated one.
//! * [`generated`]: the simulator's built-in generated fleet (`stdlib/src/sim/fleet.rs`) as a
//!   [`Fleet`] whose clusters each carry their own simulated world.
//! * [`calibration`]: the prediction's scenario from one cluster's own figures.
//! * [`plan`]: `fleet plan` — every cluster through [`crate::plan::plan_cluster`], in parallel
//!   with bounded concurrency — and its verdicts.
//! * [`report`]: the terminal table, and the Markdown report for people.
//! * [`run`]: `fleet run` — the fleet as waves of queued runs in the shared store, which
//!   workers drive (`godwit_pgstore::fleet` holds the wave rules) — and `fleet status`.
//!
//! Runbooks and parameters are resolved here once: each cluster's runbook is found and loaded,
//! and its parameters (fleet-wide, then its group's, then its own) are checked against that
//! runbook's schema exactly as `godwit run` would check them (`engine/src/params.rs`).

pub mod calibration;
pub mod discover;
pub mod file;
pub mod generated;
pub mod logical;
pub mod plan;
pub mod report;
pub mod run;
pub mod sizing;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use godwit_stdlib::sim::scenario::Scenario;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::session::{Failure, invalid};
use crate::worlds::Worlds;

/// The fleet every fleet command works on.
#[derive(Debug)]
pub struct Fleet {
    /// The fleet's name (the file's `name`, else its file name; `generated` for the built-in).
    pub name: String,
    /// Where it came from, for messages and reports (`fleet.toml`, `generated: 400 clusters,
    /// seed 2026`).
    pub origin: String,
    pub clusters: Vec<FleetCluster>,
    pub waves: Vec<Wave>,
    /// `[[notify]]`: where the fleet's and its clusters' notifications go.
    pub notify: Vec<crate::notify::Rule>,
    /// Keeps the embedded standard runbook's directory alive while clusters point into it.
    _embedded: Option<tempfile::TempDir>,
}

/// One cluster of the fleet, resolved: its runbook found, its parameters merged and checked.
#[derive(Debug, Clone, Serialize)]
pub struct FleetCluster {
    /// The source RDS instance id.
    pub id: String,
    /// The owning team.
    pub owner: String,
    pub group: Option<String>,
    /// The runbook's name as written (`rds-to-aurora`, `runbooks/cdc-heavy.rhai`).
    pub runbook: String,
    /// Its file.
    #[serde(skip)]
    pub runbook_path: PathBuf,
    /// Fleet-wide, then group, then cluster parameters (checked against the runbook's schema;
    /// defaults not filled in, the run does that).
    pub params: Map<String, Value>,
    /// The wave it belongs to, if any.
    pub wave: Option<String>,
    /// Its own simulated world (a generated fleet's cluster); `None`: the world of `--world`.
    #[serde(skip)]
    pub scenario: Option<Scenario>,
    /// Its own world: the fleet file's `world` (`lab:DIR`), or the spec that rebuilds
    /// `scenario` on any machine (`sim:generated:SEED:ID`) — for its plan and the runs `fleet
    /// run` queues; `None`: the world of `--world`.
    #[serde(skip)]
    pub world: Option<String>,
}

/// A wave of `fleet run`: which clusters migrate together and how carefully. Parsed and
/// validated here so a fleet file is refused before anything runs; `fleet run` executes them.
#[derive(Debug, Clone, Serialize)]
pub struct Wave {
    pub name: String,
    /// Its clusters, in the order given (group members in fleet order).
    pub clusters: Vec<String>,
    /// How many of them run first, alone, before the rest.
    pub canaries: u32,
    /// At most this many runs in flight at once.
    pub max_in_flight: u32,
    /// The wave stops when more than this many runs fail.
    pub max_failures: u32,
    /// After the canaries: wait for an operator's approval (else continue when they succeed).
    pub approve_after_canaries: bool,
}

impl Fleet {
    fn new(name: String, origin: String) -> Fleet {
        Fleet {
            name,
            origin,
            clusters: Vec::new(),
            waves: Vec::new(),
            notify: Vec::new(),
            _embedded: None,
        }
    }
}

impl Fleet {
    /// Set `overrides` (`fleet run --set`) over every cluster's parameters, checked against
    /// each cluster's runbook as the fleet file's own are; every problem at once, nothing
    /// changed on a refusal.
    pub fn override_params(
        &mut self,
        worlds: &Worlds,
        overrides: &Map<String, Value>,
    ) -> Result<(), Failure> {
        if overrides.is_empty() {
            return Ok(());
        }
        let mut runbooks = Runbooks::new(worlds, None);
        let mut merged = Vec::with_capacity(self.clusters.len());
        let mut problems = Vec::new();
        for c in &self.clusters {
            let mut params = c.params.clone();
            params.extend(overrides.clone());
            if let Err(e) = runbooks.check_params(&c.runbook_path, &c.id, &params) {
                problems.push(format!("{} (--set): {e}", c.id));
            }
            merged.push(params);
        }
        // One message per distinct problem is enough when every cluster shares it.
        problems.dedup_by(|a, b| a.split_once(' ').map(|x| x.1) == b.split_once(' ').map(|x| x.1));
        refuse(&self.origin, problems)?;
        for (c, params) in self.clusters.iter_mut().zip(merged) {
            c.params = params;
        }
        Ok(())
    }
}

impl Fleet {
    /// Cluster `id`'s parameters with `overrides` over them, checked against its runbook as
    /// the fleet file's are (`godwit serve`'s start); `Err` with every problem.
    pub fn cluster_params(
        &self,
        worlds: &Worlds,
        id: &str,
        overrides: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        let c = self
            .clusters
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| format!("cluster {id} is not in fleet {}", self.name))?;
        let mut params = c.params.clone();
        params.extend(overrides.clone());
        Runbooks::new(worlds, None).check_params(&c.runbook_path, &c.id, &params)?;
        Ok(params)
    }
}

/// Finds and loads runbooks for a fleet, once each, and checks parameters against them.
struct Runbooks<'a> {
    worlds: &'a Worlds,
    /// Directory of the fleet file: relative runbook paths are read from there.
    base: Option<PathBuf>,
    /// Each runbook with the engine that loaded it (loading seals an engine's module resolver
    /// to that runbook's modules).
    loaded: BTreeMap<PathBuf, Result<(rhai::Engine, godwit_engine::runbook::Runbook), String>>,
    embedded: Option<tempfile::TempDir>,
}

impl<'a> Runbooks<'a> {
    fn new(worlds: &'a Worlds, base: Option<PathBuf>) -> Self {
        Runbooks {
            worlds,
            base,
            loaded: BTreeMap::new(),
            embedded: None,
        }
    }

    /// The file of runbook `name`: a path (relative to the fleet file's directory, else the
    /// current one), else `runbooks/NAME.rhai` in either, else the standard runbook embedded in
    /// this binary when `name` is `rds-to-aurora`. The error lists what was looked for.
    fn find(&mut self, name: &str) -> Result<PathBuf, String> {
        let mut tried = Vec::new();
        let dirs: Vec<PathBuf> = self
            .base
            .iter()
            .cloned()
            .chain(std::iter::once(PathBuf::from(".")))
            .collect();
        for dir in &dirs {
            for p in [
                dir.join(name),
                dir.join("runbooks").join(format!("{name}.rhai")),
            ] {
                if p.is_file() {
                    return Ok(p);
                }
                tried.push(p.display().to_string());
            }
        }
        if name == "rds-to-aurora" {
            if self.embedded.is_none() {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                crate::demo::write_standard_runbook(dir.path()).map_err(|f| f.1)?;
                self.embedded = Some(dir);
            }
            if let Some(d) = &self.embedded {
                return Ok(d.path().join("runbooks/rds-to-aurora.rhai"));
            }
        }
        let known: Vec<String> = dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d.join("runbooks")).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".rhai").map(String::from))
            .chain(std::iter::once("rds-to-aurora".to_string()))
            .collect();
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        let hint = godwit_engine::params::suggest(name, &names)
            .map(|n| format!("did you mean {n}? "))
            .unwrap_or_default();
        Err(format!(
            "runbook {name:?} not found ({hint}looked for {}); name a runbook in runbooks/ or give \
             its path",
            tried.join(", ")
        ))
    }

    /// Check `params` for `cluster` against the schema of the runbook at `path`, as `godwit
    /// run` would (unknown keys with a did-you-mean, types, ranges, the runbook's own check).
    fn check_params(
        &mut self,
        path: &Path,
        cluster: &str,
        params: &Map<String, Value>,
    ) -> Result<(), String> {
        let worlds = self.worlds;
        let (engine, rb) = self
            .loaded
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let mut engine = crate::session::reference_engine(worlds).map_err(|f| f.1)?;
                let rb =
                    godwit_engine::runbook::load(&mut engine, path).map_err(|e| e.to_string())?;
                Ok((engine, rb))
            })
            .as_ref()
            .map_err(Clone::clone)?;
        godwit_engine::params::prepare(engine, rb, cluster, params)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// `problems` as one invalid-input failure naming the fleet's origin, or Ok.
fn refuse(origin: &str, problems: Vec<String>) -> Result<(), Failure> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(invalid(format!(
        "fleet {origin}: {} problem{}; nothing was run:\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems
            .iter()
            .map(|p| format!("  - {}", p.replace('\n', "\n    ")))
            .collect::<Vec<_>>()
            .join("\n")
    )))
}
