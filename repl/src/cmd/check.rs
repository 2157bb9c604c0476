//! `godwit check`: parse a runbook and its modules in a world, run nothing.

use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;
use godwit_engine::runbook::short_hash;

use crate::config::find_runbook;
use crate::session::{Failure, Output, invalid, runner};
use crate::worlds::Worlds;

/// Parse a runbook (and its modules) without running it; print its identity and hash.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    pub runbook: String,
    #[arg(long)]
    pub world: Option<String>,
}

impl CheckArgs {
    pub fn execute(self, store: &FileStore, worlds: &Worlds) -> Result<i32, Failure> {
        let path = find_runbook(&self.runbook)?;
        let world = worlds
            .build(self.world.as_deref().unwrap_or(&worlds.default), None)
            .map_err(invalid)?;
        let (runner, _rt) = runner(store, world, &Output::quiet())?;
        let rb = godwit_engine::run::check_runbook(&runner, &path)?;
        println!("{} {} ({})", rb.info.name, rb.info.version, rb.info.hash);
        for m in &rb.info.modules {
            println!(
                "  import \"{}\" → {} ({})",
                m.import,
                m.path,
                short_hash(&m.hash)
            );
        }
        Ok(exit::OK)
    }
}
