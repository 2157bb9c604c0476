//! `godwit run`: validate everything, then start a run and drive it to the end.

use std::path::{Path, PathBuf};

use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;
use godwit_engine::{JournalStore, StartRequest};
use godwit_stdlib::aws::world::settings_file;

use crate::config::{find_runbook, load_config, parse_sets, world_settings, write_settings};
use crate::session::{Failure, Output, audited, drive, finish, invalid, runner};
use crate::state::world_state_file;
use crate::worlds::Worlds;

/// Start a run of RUNBOOK for one cluster and drive it to the end.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A runbook file, or the name of one in ./runbooks (e.g. rds-to-aurora).
    pub runbook: String,
    /// The cluster (source RDS instance id) this run migrates.
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
    /// `[clusters.<id>]` table per cluster overriding them.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub out: Output,
}

impl RunArgs {
    pub fn execute(
        self,
        state_dir: &Path,
        store: &FileStore,
        worlds: &Worlds,
    ) -> Result<i32, Failure> {
        let RunArgs {
            runbook,
            cluster,
            world,
            set,
            config,
            out,
        } = self;
        let path = find_runbook(&runbook)?;
        let spec = world.as_deref().unwrap_or(&worlds.default).to_string();
        let world_name = spec.split(':').next().unwrap_or_default().to_string();
        let mut params = match &config {
            Some(file) => load_config(file, &cluster, &worlds.names())?,
            None => serde_json::Map::new(),
        };
        params.extend(parse_sets(&set)?);
        // World settings (`[aws]`, `[clusters.<id>.aws]`) reach the world factory through
        // a file beside the world's state file, so `resume` rebuilds the same world.
        let settings = match &config {
            Some(file) => world_settings(file, &cluster, &world_name)?,
            None => None,
        };
        // The run id comes from the wall clock, not the world's (a simulated world starts every
        // run at the same virtual time), so the world is built once, already at the path its
        // state keeps for `resume`. `Runner::start` validates the cluster id, the runbook and its
        // parameters before it creates the run; a refusal removes the world's files again.
        godwit_engine::run::validate_cluster(&cluster)?;
        let run_id = godwit_engine::run::new_run_id(&cluster);
        let state = world_state_file(state_dir, &run_id);
        if let Some(parent) = state.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Failure(
                    exit::INTERNAL,
                    format!("cannot create {}: {e}", parent.display()),
                )
            })?;
        }
        let forget_world = || {
            let _ = std::fs::remove_file(&state);
            let _ = std::fs::remove_file(settings_file(&state));
            if let Some(parent) = state.parent() {
                let _ = std::fs::remove_dir(parent); // only if empty
            }
        };
        if let Some(v) = &settings {
            write_settings(&state, v)?;
        }
        let world = worlds.build(&spec, Some(&state)).map_err(|e| {
            forget_world();
            invalid(e)
        })?;
        let audit = world.audit.clone();
        let (runner, rt) = runner(store, world, &out)?;
        let req = StartRequest {
            runbook: path,
            cluster,
            params,
            run_id: Some(run_id.clone()),
        };
        let report = drive(&rt, move || runner.start(req)).inspect_err(|_| {
            // Refused before the run existed: nothing of it may remain. Once it exists (a
            // journal failure later on), its world stays for `resume`.
            if store.read(&run_id).is_err() {
                forget_world();
            }
        })?;
        Ok(audited(finish(&report, &out), audit.as_deref()))
    }
}
