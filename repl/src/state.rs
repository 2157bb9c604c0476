//! Where godwit keeps its runs: `--state-dir`, else `GODWIT_STATE_DIR`, else the XDG state dir
//! (`$XDG_STATE_HOME/godwit`, default `~/.local/state/godwit`).

use std::path::PathBuf;

use godwit_engine::journal::file::FileStore;
use godwit_engine::plan::{Plan, Status};
use godwit_engine::{EngineError, JournalStore};
use serde_json::{Value, json};

pub fn state_dir(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("GODWIT_STATE_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p).join("godwit"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/godwit")),
        None => Err("no state directory: set GODWIT_STATE_DIR or pass --state-dir".into()),
    }
}

pub fn store(dir: &std::path::Path) -> FileStore {
    FileStore::new(dir.join("runs"))
}

/// Where a stateful world (the simulator) keeps a run's world: beside the runs, not in the run
/// directory, which only the journal store creates.
pub fn world_state_file(state_dir: &std::path::Path, run_id: &str) -> PathBuf {
    state_dir.join("worlds").join(format!("{run_id}.json"))
}

/// Resolve what the operator typed to a run id: exact id, `last`, or a unique prefix.
pub fn resolve_run(store: &FileStore, arg: &str) -> Result<String, String> {
    let ids = store.list().map_err(|e| e.to_string())?;
    if arg == "last" {
        return ids
            .first()
            .cloned()
            .ok_or_else(|| format!("no runs in {}", store.root().display()));
    }
    if ids.iter().any(|i| i == arg) {
        return Ok(arg.to_string());
    }
    let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(arg)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no run '{arg}' in {}; list runs with `godwit runs`",
            store.root().display()
        )),
        many => Err(format!(
            "'{arg}' matches {} runs ({}); type more of the id",
            many.len(),
            many.iter()
                .take(5)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Where run `id` stands: its journal's status, `running (<holder>)` while a process holds it,
/// `stopped` when it is in progress and nobody does.
pub fn run_status(store: &FileStore, id: &str, plan: &Plan) -> String {
    match (plan.status(), store.holder(id)) {
        (Status::InProgress | Status::RollingBack, Some(holder)) => format!("running ({holder})"),
        (Status::InProgress, None) => "stopped".into(),
        (s, _) => s.as_str().into(),
    }
}

/// Every run, newest first, as `godwit runs --json` prints them: `run_id`, `runbook`, `cluster`,
/// `world`, `status` and `where`; a run whose journal cannot be read is `damaged`.
pub fn list_runs(store: &FileStore) -> Result<Vec<Value>, EngineError> {
    let ids = store.list().map_err(EngineError::from)?;
    let mut rows = Vec::new();
    for id in ids {
        let row = match store.read(&id) {
            Ok(loaded) => {
                let plan = Plan::from_records(&loaded.records);
                let s = plan.started.clone();
                json!({
                    "run_id": id,
                    "runbook": s.as_ref().map(|s| format!("{} {}", s.runbook.name, s.runbook.version)),
                    "cluster": s.as_ref().map(|s| s.cluster.clone()),
                    "world": s.as_ref().map(|s| s.world.clone()),
                    "status": run_status(store, &id, &plan),
                    "where": plan.whereabouts(),
                })
            }
            Err(e) => json!({ "run_id": id, "status": "damaged", "where": e.to_string() }),
        };
        rows.push(row);
    }
    Ok(rows)
}
