//! `godwit clone`: a throwaway writable clone of a migration's Aurora cluster for the team that
//! owns it (runbooks/clone.rhai, beside the run's runbook). The run's journal names the world
//! and the Aurora cluster (`target_cluster`); the clone is a run of its own, on the clone's id,
//! so it never holds the migration's cluster, and `godwit abort` on it deletes the clone.

use godwit_engine::plan::Plan;
use godwit_engine::{EngineError, JournalStore, StartRequest};
use serde_json::Value;

use crate::config::parse_sets;
use crate::context::Context;
use crate::session::{Driving, Failure, Output, invalid, start_on_a_copy_of};
use crate::state::resolve_run;

/// Clone a migration's Aurora cluster for its team: writable, deleted after `--for`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit clone last                          the newest run's Aurora cluster, kept 8 h
  godwit clone 01JD3X --for 2d --set instance_class=db.r6g.xlarge

Starts the `clone` runbook (beside the run's own) in the run's world: Aurora's copy-on-write
clone of the run's target cluster (its pages shared until either side writes), one instance,
its endpoint printed (IAM sign-in, no password); the run then waits and deletes the clone when
its time is up. `godwit abort <clone run>` deletes it sooner. The migration is not touched.")]
pub struct CloneArgs {
    /// The migration run: run id (or a unique prefix, or `last`).
    pub run: String,
    /// How long the clone lives, e.g. `8h`, `2d` (at most 7 days).
    #[arg(long = "for", value_name = "DURATION")]
    pub keep_for: Option<String>,
    /// The clone's id (default: `<target>-clone`).
    #[arg(long)]
    pub id: Option<String>,
    /// Parameter of the clone runbook (repeatable), e.g. `--set instance_class=db.r6g.xlarge`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub out: Output,
}

impl CloneArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let out = self.out.with_format(ctx);
        let driving = Driving::start()?;
        let set = parse_sets(&self.set)?;
        let store = ctx.store()?;
        let arg = if self.run == "last" {
            // The newest migration: not a clone or a rollback run.
            store
                .list()
                .map_err(|e| invalid(e.to_string()))?
                .into_iter()
                .find(|id| {
                    store.read(id).is_ok_and(|j| {
                        Plan::from_records(&j.records).started.is_some_and(|s| {
                            !matches!(s.runbook.name.as_str(), "clone" | "rollback")
                        })
                    })
                })
                .ok_or_else(|| invalid(format!("no migration run in {} to clone", store.place())))?
        } else {
            resolve_run(&store, &self.run).map_err(invalid)?
        };
        let plan = Plan::from_records(&store.read(&arg).map_err(EngineError::from)?.records);
        let Some(started) = plan.started.as_ref() else {
            return Err(invalid(format!(
                "run {arg} never began: there is no cluster to clone"
            )));
        };
        if started.runbook.name == "clone" {
            return Err(invalid(format!(
                "run {arg} is itself a clone: name the migration run (godwit runs lists them)"
            )));
        }
        let target = started
            .params
            .get("target_cluster")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{}-aurora", started.cluster), str::to_string);
        let clone_id = self.id.unwrap_or_else(|| format!("{target}-clone"));
        let runbook = std::path::Path::new(&started.runbook.path)
            .parent()
            .map(|d| d.join("clone.rhai"))
            .unwrap_or_else(|| "clone.rhai".into());
        if !runbook.is_file() {
            return Err(invalid(format!(
                "the clone runbook {} is missing (it ships beside rds-to-aurora.rhai in runbooks/)",
                runbook.display()
            )));
        }
        let mut params = serde_json::Map::new();
        params.insert("source_cluster".into(), target.clone().into());
        if let Some(d) = self.keep_for {
            params.insert("keep_for".into(), d.into());
        }
        params.extend(set);
        // The clone acts on the world as the migration left it: a simulated world continues
        // from a copy of the run's state (the run's own stays as it is).
        let run_id = godwit_engine::run::new_run_id(&clone_id);
        let req = StartRequest {
            runbook,
            cluster: clone_id,
            params,
            run_id: Some(run_id),
        };
        start_on_a_copy_of(ctx, &driving, &store, &out, &arg, &started.world, req)
    }
}
