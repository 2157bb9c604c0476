//! `godwit repl`: start the console of [`crate::repl`] on a world, off the runtime's threads.

use std::sync::Arc;

use godwit_engine::plan::Plan;
use godwit_engine::{EngineError, JournalStore, exit};

use crate::context::Context;
use crate::repl::{AuditLog, Repl};
use crate::session::{Failure, Output, invalid, runner};
use crate::state::{resolve_run, world_files, world_state_file};

/// Interactive console with every primitive loaded (read-only until :allow-mutations).
/// Reads stdin when it is not a terminal: `echo 'lag::p99(s)' | godwit repl`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit repl --world sim:idle-source
  godwit repl --attach last        the run's results in `run`, and for a simulated run a copy of its
                                   world: describe_* shows the run's resources; the run never moves
  echo 'lag::fmt_bytes(67108864)' | godwit repl --world pure")]
pub struct ReplArgs {
    /// The world to work in [default: the attached run's world, else sim].
    #[arg(long)]
    pub world: Option<String>,
    /// Load a run's step results into `run` and say where it stopped; without --world, work in
    /// (a copy of) the run's own world.
    #[arg(long, value_name = "RUN")]
    pub attach: Option<String>,
}

impl ReplArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let worlds = &ctx.worlds;
        let state_dir = ctx.state_dir()?;
        let store = ctx.store()?;
        // A simulated run's world is copied, so the console sees the run's resources without
        // ever moving the run's own world (its clock, its state) forward.
        let copy = tempfile::tempdir().map_err(|e| {
            Failure(
                exit::INTERNAL,
                format!("cannot make a temporary directory: {e}"),
            )
        })?;
        let mut note = None;
        let (spec, state) = match (&self.attach, &self.world) {
            (Some(run), asked) => {
                let id = resolve_run(&store, run).map_err(invalid)?;
                let plan = Plan::from_records(&store.read(&id).map_err(EngineError::from)?.records);
                let run_world = plan.started.as_ref().map(|s| s.world.clone());
                match (run_world, asked) {
                    (Some(rw), Some(w)) if *w != rw => {
                        note = Some(format!(
                            "note: run {id} ran in world '{rw}'; this console is on '{w}', so what \
                             the primitives show is not the run's world (drop --world to use it)"
                        ));
                        (w.clone(), None)
                    }
                    (Some(rw), _) => {
                        let original = world_state_file(&state_dir, &id);
                        let target = copy.path().join(format!("{id}.json"));
                        if rw.starts_with("sim") {
                            if matches!(store, crate::state::Store::Pg(_)) {
                                // The shared store's copy: the world as the run's last append
                                // left it, whichever machine drove it.
                                crate::state::fetch_world(&store, &id, &target).map_err(invalid)?;
                            } else if original.exists() {
                                for (from, to) in
                                    world_files(&original).iter().zip(world_files(&target))
                                {
                                    if from.exists() {
                                        std::fs::copy(from, &to).map_err(|e| {
                                            Failure(
                                                exit::INTERNAL,
                                                format!("cannot copy {}: {e}", from.display()),
                                            )
                                        })?;
                                    }
                                }
                            }
                        }
                        if rw.starts_with("sim") && target.exists() {
                            note = Some(format!(
                                "world {rw}: a copy of run {id}'s simulated world, where the run stopped; calls here never move the run"
                            ));
                            (rw, Some(target))
                        } else {
                            (rw, None)
                        }
                    }
                    (None, Some(w)) => (w.clone(), None),
                    (None, None) => (worlds.default.clone(), None),
                }
            }
            (None, Some(w)) => (w.clone(), None),
            (None, None) => (worlds.default.clone(), None),
        };
        let world = worlds.build(&spec, state.as_deref()).map_err(invalid)?;
        let audit = Arc::new(AuditLog {
            path: state_dir.join("repl-audit.log"),
            world: world.name.clone(),
        });
        let (mut runner, rt) = runner(&store, world, &Output::quiet())?;
        runner.sinks.push(audit.clone());
        let repl = Repl::new(&runner, store.clone(), audit);
        let history = state_dir.join("repl-history");
        let attach = self.attach;
        if let Some(n) = note {
            crate::out::note(n);
        }
        // The session blocks on the runtime through the Host: keep it off the runtime's threads.
        let code =
            std::thread::scope(|s| s.spawn(|| crate::repl::run(repl, history, attach)).join());
        drop(rt);
        drop(copy);
        code.map_err(|_| Failure(exit::INTERNAL, "the REPL thread panicked".into()))
    }
}
