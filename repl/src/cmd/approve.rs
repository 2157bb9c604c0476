//! `godwit approve`: let a run pass its approval gate (`wait_until_approved`).

use godwit_engine::journal::Request;
use godwit_engine::plan::Plan;
use godwit_engine::{Clock, EngineError, JournalStore, SystemClock, exit};
use serde_json::json;

use crate::context::Context;
use crate::session::{Failure, invalid};
use crate::state::resolve_run;

/// Approve a run's next stage: a run started with `--set approve_cutover=true` waits after
/// validation, before the write blackout begins, until `godwit approve RUN`. `godwit abort RUN`
/// declines instead. The approval is journaled by the run with who gave it.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit run rds-to-aurora --cluster orders-db --set approve_cutover=true   (waits before quiescence)
  godwit approve last
  godwit approve 01JD3X --name cutover")]
pub struct ApproveArgs {
    /// Run id (or a unique prefix, or `last`).
    pub run: String,
    /// What is approved: the name the runbook waits for.
    #[arg(long, default_value = "cutover")]
    pub name: String,
}

impl ApproveArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let store = ctx.store()?;
        let id = resolve_run(&store, &self.run).map_err(invalid)?;
        let plan = Plan::from_records(&store.read(&id).map_err(EngineError::from)?.records);
        if plan.finished.is_some() {
            return Err(EngineError::AlreadyFinished {
                run_id: id,
                status: plan.status().as_str().into(),
                nothing_to: "approve",
            }
            .into());
        }
        let by = Request::operator();
        store
            .request(
                &id,
                &Request::Approve {
                    name: self.name.clone(),
                    by: by.clone(),
                    at: SystemClock.now_ms(),
                },
            )
            .map_err(|e| Failure::from(EngineError::from(e)))?;
        let holder = store.holder(&id);
        if ctx.json() {
            crate::out::json(&json!({
                "run_id": id, "approved": self.name, "by": by, "driven_by": holder,
            }));
            return Ok(exit::OK);
        }
        crate::out::line(match holder {
            Some(h) => format!(
                "approved {} of run {id} as {by}; the process driving it ({h}) continues within a second",
                self.name
            ),
            None => format!(
                "approved {} of run {id} as {by}; nobody drives the run now: `godwit resume {id}` continues it",
                self.name
            ),
        });
        Ok(exit::OK)
    }
}
