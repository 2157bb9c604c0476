//! `godwit runs`: every run in the state directory, newest first.

use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;
use serde_json::Value;

use crate::render::runs_table;
use crate::session::Failure;
use crate::state::list_runs;

/// List runs, newest first.
#[derive(clap::Args, Debug)]
pub struct RunsArgs {
    #[arg(long)]
    pub json: bool,
}

impl RunsArgs {
    pub fn execute(self, store: &FileStore) -> Result<i32, Failure> {
        let rows = list_runs(store)?;
        if self.json {
            println!("{}", Value::Array(rows));
            return Ok(exit::OK);
        }
        println!("{}", runs_table(&rows, store.root()));
        Ok(exit::OK)
    }
}
