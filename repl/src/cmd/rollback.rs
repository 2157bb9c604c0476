//! `godwit rollback`: roll a completed cutover back to its source through the rollback window
//! (runbooks/rollback.rhai), losing nothing. The run's journal says everything it needs: the
//! source, the target, the world, the source's own security groups (the fence recorded them)
//! and whether the reverse path started.

use godwit_engine::plan::{FlowOutcome, Plan, Status};
use godwit_engine::{EngineError, JournalStore, StartRequest, exit};
use serde_json::Value;

use crate::config::parse_sets;
use crate::context::Context;
use crate::session::{Driving, Failure, Output, audited, drive, finish, invalid};
use crate::state::{resolve_run, world_state_file};

/// The steps whose results record the reverse path (lib/reverse.rhai).
const PATH_STEP: &str = "create-reverse-path";
const SUBSCRIBE_STEP: &str = "subscribe-source-to-target";

/// Roll a completed cutover back to its source, losing no write (inside the rollback window).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit rollback last
  godwit rollback 01JD3X --set apply_timeout=30m

Starts the `rollback` runbook (beside the run's own) for the run's cluster, in the run's world:
checks the reverse replication is applying and the schemas are equal, holds the clients at Envoy,
fences Aurora, waits until the source applied Aurora's last write, moves the sequences past
Aurora's, unfences the source and releases the clients onto it. A run that has not finished rolls
back with `godwit abort RUN` instead (the undo of its reverse step is the same rollback).")]
pub struct RollbackArgs {
    /// The completed cutover: run id (or a unique prefix, or `last`).
    pub run: String,
    /// Parameter of the rollback runbook (repeatable), e.g. `--set apply_timeout=30m`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub out: Output,
}

/// What the rollback run starts from, read from the forward run's journal.
#[derive(Debug, PartialEq)]
pub struct Window {
    pub cluster: String,
    pub world: String,
    pub runbook: std::path::PathBuf,
    pub params: serde_json::Map<String, Value>,
}

/// The rollback window of the run journaled in `plan`, or why there is none — said so the
/// operator knows what to do instead.
pub fn window(id: &str, plan: &Plan) -> Result<Window, String> {
    let Some(started) = plan.started.as_ref() else {
        return Err(format!(
            "run {id} never began: there is nothing to roll back"
        ));
    };
    match plan.status() {
        Status::Succeeded => {}
        Status::InProgress | Status::RollingBack => {
            return Err(format!(
                "run {id} has not finished: `godwit abort {id}` rolls it back (after promotion, \
                 the undo of its reverse replication is this same zero-loss rollback)"
            ));
        }
        Status::RolledBack => {
            return Err(format!(
                "run {id} was already rolled back: its clients are on {}",
                started.cluster
            ));
        }
    }
    let completed = |step: &str| {
        plan.flow.iter().find_map(|f| match &f.outcome {
            FlowOutcome::Completed { result, .. } if f.name == step => Some(result),
            _ => None,
        })
    };
    let (Some(reverse), Some(subscribed)) = (completed(PATH_STEP), completed(SUBSCRIBE_STEP))
    else {
        return Err(format!(
            "run {id} has no rollback window: it ran without reverse replication \
             (reverse_replication=off, no database access, or a journal from before it existed); \
             routing back would lose Aurora's writes"
        ));
    };
    if let Some(why) = [reverse, subscribed]
        .iter()
        .find_map(|r| r.get("failed").and_then(Value::as_str))
    {
        return Err(format!(
            "run {id} has no rollback window: its reverse replication could not start ({why})"
        ));
    }
    let list = |key: &str| -> String {
        reverse
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let groups = list("source_groups");
    if groups.is_empty() {
        return Err(format!(
            "run {id}'s reverse step recorded no security groups of the source: pass them with \
             `godwit run rollback --cluster {} --set source_security_groups=sg-…`",
            started.cluster
        ));
    }
    let mut params = serde_json::Map::new();
    if let Some(t) = started.params.get("target_cluster") {
        params.insert("target_cluster".into(), t.clone());
    }
    params.insert("source_security_groups".into(), groups.into());
    params.insert("source_roles".into(), list("source_roles").into());
    for key in ["health_every"] {
        if let Some(v) = started.params.get(key) {
            params.insert(key.into(), v.clone());
        }
    }
    if let Some(v) = started.params.get("rollback_apply_timeout") {
        params.insert("apply_timeout".into(), v.clone());
    }
    let runbook = std::path::Path::new(&started.runbook.path)
        .parent()
        .map(|d| d.join("rollback.rhai"))
        .unwrap_or_else(|| "rollback.rhai".into());
    Ok(Window {
        cluster: started.cluster.clone(),
        world: started.world.clone(),
        runbook,
        params,
    })
}

impl RollbackArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let out = self.out.with_format(ctx);
        let driving = Driving::start()?;
        let set = parse_sets(&self.set)?;
        let store = ctx.store()?;
        let state_dir = ctx.state_dir()?;
        let id = resolve_run(&store, &self.run).map_err(invalid)?;
        let plan = Plan::from_records(&store.read(&id).map_err(EngineError::from)?.records);
        let mut w = window(&id, &plan).map_err(invalid)?;
        if !w.runbook.is_file() {
            return Err(invalid(format!(
                "the rollback runbook {} is missing (it ships beside rds-to-aurora.rhai in runbooks/)",
                w.runbook.display()
            )));
        }
        w.params.extend(set);
        // The rollback acts on the world the cutover left: a simulated world continues from
        // the run's state (a copy: the run's own stays as it ended).
        let forward = world_state_file(&state_dir, &id);
        crate::state::fetch_world(&store, &id, &forward).map_err(invalid)?;
        let run_id = godwit_engine::run::new_run_id(&w.cluster);
        let state = world_state_file(&state_dir, &run_id);
        for (from, to) in crate::state::world_files(&forward)
            .into_iter()
            .zip(crate::state::world_files(&state))
        {
            if from.is_file() {
                std::fs::copy(&from, &to).map_err(|e| {
                    Failure(
                        exit::INTERNAL,
                        format!("cannot copy {} to {}: {e}", from.display(), to.display()),
                    )
                })?;
            }
        }
        let forget_world = || crate::state::forget_world(&state);
        crate::state::follow_world(&store, &run_id, &state);
        let world = ctx.worlds.build(&w.world, Some(&state)).map_err(|e| {
            forget_world();
            invalid(format!("run {id} needs world '{}': {e}", w.world))
        })?;
        let audit = world.audit.clone();
        driving.check().inspect_err(|_| forget_world())?;
        let runner = driving.runner(&store, world, &out);
        let req = StartRequest {
            runbook: w.runbook,
            cluster: w.cluster,
            params: w.params,
            run_id: Some(run_id.clone()),
        };
        let report = drive(&driving.rt, move || runner.start(req)).inspect_err(|_| {
            if JournalStore::read(&store, &run_id).is_err() {
                forget_world();
            }
        })?;
        Ok(audited(finish(&report, &out), audit.as_deref()))
    }
}
