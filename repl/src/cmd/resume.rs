//! `godwit resume`: continue a run from its journal, in the world it started in.

use std::path::Path;

use godwit_engine::journal::file::FileStore;
use godwit_engine::plan::Plan;
use godwit_engine::{EngineError, JournalStore};

use crate::session::{Failure, Output, audited, drive, finish, invalid, runner};
use crate::state::{resolve_run, world_state_file};
use crate::worlds::Worlds;

/// Continue a run from its journal after a crash, an interrupt or a failed undo.
#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    /// Run id (or a unique prefix, or `last`).
    pub run: String,
    /// Resume even though the runbook changed since the run started; the journal is then
    /// replayed step by step against the new runbook and any divergence stops the run.
    #[arg(long)]
    pub force_runbook_change: bool,
    #[command(flatten)]
    pub out: Output,
}

impl ResumeArgs {
    pub fn execute(
        self,
        state_dir: &Path,
        store: &FileStore,
        worlds: &Worlds,
    ) -> Result<i32, Failure> {
        let id = resolve_run(store, &self.run).map_err(invalid)?;
        let plan = Plan::from_records(&store.read(&id).map_err(EngineError::from)?.records);
        let world_name = plan
            .started
            .as_ref()
            .map(|s| s.world.clone())
            .unwrap_or_default();
        let world = worlds
            .build(&world_name, Some(&world_state_file(state_dir, &id)))
            .map_err(|e| invalid(format!("run {id} needs world '{world_name}': {e}")))?;
        let audit = world.audit.clone();
        let (runner, rt) = runner(store, world, &self.out)?;
        let force = self.force_runbook_change;
        let report = drive(&rt, move || runner.resume(&id, force))?;
        Ok(audited(finish(&report, &self.out), audit.as_deref()))
    }
}
