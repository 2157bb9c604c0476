//! `godwit run`: validate everything, then start a run and drive it to the end.

use std::path::PathBuf;

use godwit_engine::StartRequest;
use godwit_engine::exit;

use crate::config::{
    AwsFlags, find_runbook, load_config, parse_sets, world_settings, write_settings,
};
use crate::context::Context;
use crate::session::{Driving, Failure, Output, audited, drive, finish, invalid};
use crate::state::world_state_file;

/// Start a run of RUNBOOK for one cluster and drive it to the end.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit run rds-to-aurora --cluster orders-db --world sim:busy-source
  godwit run rds-to-aurora --cluster orders-db --world aws --region eu-west-1 --config fleet.toml
  godwit run rds-to-aurora --cluster orders-db --set validation_window=2h --set approve_cutover=true
  godwit run rds-to-aurora --cluster orders-db -o json | jq .status
  godwit run rds-to-aurora --cluster orders-db --store postgres://godwit@store/godwit --enqueue

Ctrl-C (or SIGTERM) stops at the next safe point, rolls nothing back (exit 7); `godwit resume last`
continues. Every --set/--config value is checked against the runbook's parameters first: a bad one
is exit 2 and no run is created. One run per cluster: a second is refused (exit 6) with the
holder's run id until the first one finishes.")]
pub struct RunArgs {
    /// A runbook file, or the name of one in ./runbooks (e.g. rds-to-aurora).
    pub runbook: String,
    /// The cluster (source RDS instance id) this run migrates: an RDS identifier (letters,
    /// digits, hyphens; a letter first).
    #[arg(long)]
    pub cluster: String,
    /// World to run in: NAME or NAME:ARG (see `godwit worlds`).
    #[arg(long)]
    pub world: Option<String>,
    /// Runbook parameter (repeatable); VALUE is JSON if it parses (numbers, true), else a string.
    /// Wins over --config.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// TOML file of runbook parameters: top-level keys for every cluster, a
    /// `[clusters.<id>]` table per cluster overriding them; `[aws]` for the aws world.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsFlags,
    /// Queue the run in the shared store (`--store postgres://…`) for a `godwit worker` to
    /// start, instead of driving it here; prints its run id.
    #[arg(long)]
    pub enqueue: bool,
    #[command(flatten)]
    pub out: Output,
}

impl RunArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let RunArgs {
            runbook,
            cluster,
            world,
            set,
            config,
            aws,
            enqueue,
            out,
        } = self;
        let out = out.with_format(ctx);
        let driving = Driving::start()?;
        let worlds = &ctx.worlds;
        // Everything the operator typed is checked before anything is created.
        godwit_engine::run::validate_cluster(&cluster)?;
        let path = find_runbook(&runbook)?;
        let spec = world.as_deref().unwrap_or(&worlds.default).to_string();
        let world_name = spec.split(':').next().unwrap_or_default().to_string();
        worlds.check_name(&world_name).map_err(invalid)?;
        let mut params = match &config {
            Some(file) => load_config(file, &cluster)?,
            None => serde_json::Map::new(),
        };
        params.extend(parse_sets(&set)?);
        // World settings (`[aws]`, `[clusters.<id>.aws]`, --region …) reach the world factory
        // through a file beside the world's state file, so `resume` rebuilds the same world.
        let settings = world_settings(config.as_deref(), &cluster, &world_name, &aws)?;
        let store = ctx.store()?;
        if enqueue {
            return enqueue_run(ctx, &store, &path, cluster, spec, params, settings);
        }
        let state_dir = ctx.state_dir()?;
        // The run id comes from the wall clock, not the world's (a simulated world starts every
        // run at the same virtual time), so the world is built once, already at the path its
        // state keeps for `resume`. `Runner::start` checks the runbook and its parameters and
        // claims the cluster before it creates the run; a refusal removes the world's files again.
        let run_id = godwit_engine::run::new_run_id(&cluster);
        let state = world_state_file(&state_dir, &run_id);
        if let Some(parent) = state.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Failure(
                    exit::INTERNAL,
                    format!("cannot create {}: {e}", parent.display()),
                )
            })?;
        }
        let forget_world = || crate::state::forget_world(&state);
        if let Some(v) = &settings {
            write_settings(&state, v)?;
        }
        crate::state::follow_world(&store, &run_id, &state);
        let world = worlds.build(&spec, Some(&state)).map_err(|e| {
            forget_world();
            invalid(e)
        })?;
        let audit = world.audit.clone();
        driving.check().inspect_err(|_| forget_world())?;
        let runner = driving.runner(&store, world, &out);
        let rt = &driving.rt;
        let req = StartRequest {
            runbook: path,
            cluster,
            params,
            run_id: Some(run_id.clone()),
        };
        let report = drive(rt, move || runner.start(req)).inspect_err(|_| {
            // Refused before the run existed: nothing of it may remain. Once it exists (a
            // journal failure later on), its world stays for `resume`.
            if godwit_engine::JournalStore::read(&store, &run_id).is_err() {
                forget_world();
            }
        })?;
        Ok(audited(finish(&report, &out), audit.as_deref()))
    }
}

/// `--enqueue`: the run as a queued job of the shared store, for a worker to start. Its
/// parameters are checked by the worker that starts it (a bad one holds the job, named).
fn enqueue_run(
    ctx: &Context,
    store: &crate::state::Store,
    runbook: &std::path::Path,
    cluster: String,
    world: String,
    params: serde_json::Map<String, serde_json::Value>,
    settings: Option<serde_json::Value>,
) -> Result<i32, Failure> {
    let crate::state::Store::Pg(pg) = store else {
        return Err(invalid(
            "--enqueue queues the run for `godwit worker` processes, which share runs through \
             PostgreSQL: pass --store postgres://USER@HOST:PORT/DB (or set GODWIT_STORE, or store.url \
             in the settings file)",
        ));
    };
    let run_id = godwit_engine::run::new_run_id(&cluster);
    let job = godwit_pgstore::Job {
        run_id: run_id.clone(),
        cluster,
        runbook: runbook.display().to_string(),
        world,
        params,
        settings,
        ..Default::default()
    };
    pg.enqueue(&job)
        .map_err(|e| Failure::from(godwit_engine::EngineError::from(e)))?;
    if ctx.json() {
        crate::out::json(&serde_json::json!({ "run_id": run_id, "queued": true }));
    } else {
        crate::out::line(format!(
            "queued run {run_id} in {}; a `godwit worker` starts it (follow with `godwit show {run_id}`)",
            pg.place()
        ));
    }
    Ok(exit::OK)
}
