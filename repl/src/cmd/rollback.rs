//! `godwit rollback`: roll a completed cutover back to its source through the rollback window
//! (runbooks/rollback.rhai), losing nothing. The run's journal says everything it needs: the
//! source, the target, the world, the source's own security groups (the fence recorded them)
//! and whether the reverse path started.

use godwit_engine::plan::Plan;
use godwit_engine::{EngineError, JournalStore, StartRequest};
use godwit_stdlib::rollback_window::window;

use crate::config::parse_sets;
use crate::context::Context;
use crate::session::{Driving, Failure, Output, invalid, start_on_a_copy_of};
use crate::state::resolve_run;

/// Roll a completed cutover back to its source, losing no write (inside the rollback window).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit rollback last --check              is the window healthy? (changes nothing)
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
    /// Only check the rollback window (the reverse replication applying, how far behind
    /// Aurora, the schemas equal) and say so; changes nothing (exit 3 when it could not roll
    /// back now, with the reason).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub out: Output,
}

/// The cutover `arg` names and its journal read back. `last` is the newest run that is not
/// itself a rollback (`godwit rollback last --check` then `godwit rollback last` name the same
/// cutover); a rollback run named by its id is refused, naming what to pass instead.
fn cutover_run(store: &crate::state::Store, arg: &str) -> Result<(String, Plan), Failure> {
    let read = |id: &str| -> Result<Plan, Failure> {
        Ok(Plan::from_records(
            &store.read(id).map_err(EngineError::from)?.records,
        ))
    };
    let is_rollback = |plan: &Plan| {
        plan.started
            .as_ref()
            .is_some_and(|s| s.runbook.name == "rollback")
    };
    if arg == "last" {
        for id in store.list().map_err(|e| invalid(e.to_string()))? {
            let plan = read(&id)?;
            if !is_rollback(&plan) {
                return Ok((id, plan));
            }
        }
        return Err(invalid(format!(
            "no cutover run in {} to roll back",
            store.place()
        )));
    }
    let id = resolve_run(store, arg).map_err(invalid)?;
    let plan = read(&id)?;
    if is_rollback(&plan) {
        return Err(invalid(format!(
            "run {id} is itself a rollback: name the cutover run it rolls back (godwit runs lists them)"
        )));
    }
    Ok((id, plan))
}

/// The newest run of `cluster` in `world` (the cutover `id` itself when none came after it):
/// whose world state is the latest.
fn latest_of_world(store: &crate::state::Store, id: &str, cluster: &str, world: &str) -> String {
    for run in store.list().unwrap_or_default() {
        if run == id {
            break;
        }
        let Ok(j) = store.read(&run) else { continue };
        let plan = Plan::from_records(&j.records);
        if plan
            .started
            .as_ref()
            .is_some_and(|s| s.cluster == cluster && s.world == world)
        {
            return run;
        }
    }
    id.to_string()
}

impl RollbackArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let out = self.out.with_format(ctx);
        let driving = Driving::start()?;
        let set = parse_sets(&self.set)?;
        let store = ctx.store()?;
        let (id, plan) = cutover_run(&store, &self.run)?;
        let mut w = window(&id, &plan).map_err(invalid)?;
        if !w.runbook.is_file() {
            return Err(invalid(format!(
                "the rollback runbook {} is missing (it ships beside rds-to-aurora.rhai in runbooks/)",
                w.runbook.display()
            )));
        }
        w.params.extend(set);
        if self.check {
            w.params.insert("check_only".into(), true.into());
        }
        // The rollback acts on the world as the cutover and any rollback run since left it: a
        // simulated world continues from the newest such run's state (a copy: each run's own
        // stays as it ended), so a second rollback finds the first one's work done.
        let latest = latest_of_world(&store, &id, &w.cluster, &w.world);
        let run_id = godwit_engine::run::new_run_id(&w.cluster);
        let req = StartRequest {
            runbook: w.runbook,
            cluster: w.cluster,
            params: w.params,
            run_id: Some(run_id),
        };
        start_on_a_copy_of(ctx, &driving, &store, &out, &latest, &w.world, req)
    }
}
