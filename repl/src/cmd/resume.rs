//! `godwit resume`: continue a run from its journal, in the world it started in.

use godwit_engine::plan::Plan;
use godwit_engine::{EngineError, JournalStore, ResumeRequest};

use crate::config::parse_sets;
use crate::context::Context;
use crate::session::{Driving, Failure, Output, audited, drive, finish, invalid};
use crate::state::{resolve_run, world_state_file};

/// Continue a run from its journal after a crash, an interrupt or a failed undo.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit resume last
  godwit resume 01JD3X --set accept_fork=true      after promotion: let the rollback route back

Only parameters the runbook declares changeable on resume (`on_resume`) may be set; the change is
journaled with the resume. Everything else keeps the value the run started with.")]
pub struct ResumeArgs {
    /// Run id (or a unique prefix, or `last`).
    pub run: String,
    /// Change a parameter the runbook declares changeable on resume (repeatable), e.g.
    /// `--set accept_fork=true`; VALUE is JSON if it parses, else a string.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Resume even though the runbook changed since the run started; the journal is then
    /// replayed step by step against the new runbook and any divergence stops the run.
    #[arg(long)]
    pub force_runbook_change: bool,
    #[command(flatten)]
    pub out: Output,
}

impl ResumeArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let out = self.out.with_format(ctx);
        let driving = Driving::start()?;
        let set = parse_sets(&self.set)?;
        let store = ctx.store()?;
        let state_dir = ctx.state_dir()?;
        let id = resolve_run(&store, &self.run).map_err(invalid)?;
        let plan = Plan::from_records(&store.read(&id).map_err(EngineError::from)?.records);
        let Some(started) = plan.started.as_ref() else {
            return Err(invalid(format!(
                "run {id} has no run-started record: it never began, so there is nothing to \
                 resume; start a new run ({} can be removed)",
                store.run_place(&id)
            )));
        };
        let world_name = started.world.clone();
        let state = world_state_file(&state_dir, &id);
        // Held until the drive ends: never the store's files fetched over a world another
        // process on this machine still drives.
        let _world = crate::state::claim_world(&id, &world_name, &state).map_err(invalid)?;
        crate::state::fetch_world(&store, &id, &state).map_err(invalid)?;
        crate::state::follow_world(&store, &id, &state);
        let world = ctx
            .worlds
            .build(&world_name, Some(&state))
            .map_err(|e| invalid(format!("run {id} needs world '{world_name}': {e}")))?;
        let audit = world.audit.clone();
        driving.check()?;
        let runner = driving.runner(&store, world, &out);
        let req = ResumeRequest {
            run_id: id,
            force_runbook_change: self.force_runbook_change,
            set,
            abort: None,
        };
        let report = drive(&driving.rt, move || runner.resume_with(req))?;
        Ok(audited(finish(&report, &out), audit.as_deref()))
    }
}
