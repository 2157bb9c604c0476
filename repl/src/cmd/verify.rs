//! `godwit verify`: check a run's journal and say what was found.

use godwit_engine::journal::file::FileStore;
use godwit_engine::{EngineError, JournalStore, exit};

use crate::session::{Failure, invalid};
use crate::state::resolve_run;

/// Check a run's journal: hash chain, truncation, torn last line.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    pub run: String,
}

impl VerifyArgs {
    /// Reading the journal verifies it: a damaged one fails here with exit 5.
    pub fn execute(self, store: &FileStore) -> Result<i32, Failure> {
        let id = resolve_run(store, &self.run).map_err(invalid)?;
        let loaded = store.read(&id).map_err(EngineError::from)?;
        let last = loaded.records.last();
        println!(
            "run {id}: journal intact — {} records, hash chain verified{}",
            loaded.records.len(),
            last.map(|r| format!(", head {}", &r.hash[..16]))
                .unwrap_or_default()
        );
        if let Some(n) = loaded.torn_tail {
            println!(
                "note: the last line ({n} bytes) is torn — a crash interrupted its write; it will be dropped on resume"
            );
        }
        Ok(exit::OK)
    }
}
