//! `godwit runs`: every run in the state directory, newest first.

use godwit_engine::exit;
use serde_json::Value;

use crate::context::Context;
use crate::render::runs_table;
use crate::session::Failure;
use crate::state::list_runs;

/// List runs, newest first, with where each stands (`running`, `stopped`, `rollback-failed`, ...).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit runs
  godwit runs -o json | jq -r '.[] | select(.status == \"stopped\") | .run_id'")]
pub struct RunsArgs {}

impl RunsArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let store = ctx.store()?;
        let rows = list_runs(&store)?;
        if ctx.json() {
            crate::out::json(&Value::Array(rows));
            return Ok(exit::OK);
        }
        crate::out::line(runs_table(&rows, &store.place()));
        Ok(exit::OK)
    }
}
