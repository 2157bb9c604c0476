//! `godwit repl`: start the console of [`crate::repl`] on a world, off the runtime's threads.

use std::path::Path;
use std::sync::Arc;

use godwit_engine::exit;
use godwit_engine::journal::file::FileStore;

use crate::repl::{AuditLog, Repl};
use crate::session::{Failure, Output, invalid, runner};
use crate::worlds::Worlds;

/// Interactive console with every primitive loaded (read-only until :allow-mutations).
/// Reads stdin when it is not a terminal: `echo 'lag::p99(s)' | godwit repl`.
#[derive(clap::Args, Debug)]
pub struct ReplArgs {
    #[arg(long)]
    pub world: Option<String>,
    /// Load a run's step results into `run` and say where it stopped.
    #[arg(long, value_name = "RUN")]
    pub attach: Option<String>,
}

impl ReplArgs {
    pub fn execute(
        self,
        state_dir: &Path,
        store: &FileStore,
        worlds: &Worlds,
    ) -> Result<i32, Failure> {
        let world = worlds
            .build(self.world.as_deref().unwrap_or(&worlds.default), None)
            .map_err(invalid)?;
        let audit = Arc::new(AuditLog {
            path: state_dir.join("repl-audit.log"),
            world: world.name.clone(),
        });
        let (mut runner, rt) = runner(store, world, &Output::quiet())?;
        runner.sinks.push(audit.clone());
        let repl = Repl::new(&runner, store.clone(), audit);
        let history = state_dir.join("repl-history");
        let attach = self.attach;
        // The session blocks on the runtime through the Host: keep it off the runtime's threads.
        let code =
            std::thread::scope(|s| s.spawn(|| crate::repl::run(repl, history, attach)).join());
        drop(rt);
        code.map_err(|_| Failure(exit::INTERNAL, "the REPL thread panicked".into()))
    }
}
