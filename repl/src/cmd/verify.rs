//! `godwit verify`: check a run's journal and say what was found.

use godwit_engine::{EngineError, JournalStore, exit};
use serde_json::json;

use crate::context::Context;
use crate::session::{Failure, invalid};
use crate::state::resolve_run;

/// Check a run's journal: hash chain, truncation, torn last line.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit verify last
  godwit verify 01JD3X -o json | jq .intact

Exit 0 when the journal is intact (a torn last line left by a crash is reported and is no
damage); exit 5 when it was edited, reordered or truncated.")]
pub struct VerifyArgs {
    /// Run id (or a unique prefix, or `last`).
    pub run: String,
}

impl VerifyArgs {
    /// Reading the journal verifies it: a damaged one fails here with exit 5.
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let store = ctx.store()?;
        let id = resolve_run(&store, &self.run).map_err(invalid)?;
        let loaded = store.read(&id).map_err(EngineError::from)?;
        let last = loaded.records.last();
        if ctx.json() {
            crate::out::json(&json!({
                "run_id": id,
                "intact": true,
                "records": loaded.records.len(),
                "head": last.map(|r| r.hash.clone()),
                "torn_tail_bytes": loaded.torn_tail,
            }));
            return Ok(exit::OK);
        }
        crate::out::line(format!(
            "run {id}: journal intact — {} records, hash chain verified{}",
            loaded.records.len(),
            last.map(|r| format!(", head {}", &r.hash[..16]))
                .unwrap_or_default()
        ));
        if let Some(n) = loaded.torn_tail {
            crate::out::line(format!(
                "note: the last line ({n} bytes) is torn — a crash interrupted its write; it will be dropped on resume"
            ));
        }
        Ok(exit::OK)
    }
}
