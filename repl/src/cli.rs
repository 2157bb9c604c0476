//! The `godwit` command line: the clap definitions and the dispatch to one command of
//! [`crate::cmd`]. Nothing below imports this module.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use godwit_engine::exit;

use crate::cmd::{check, dal, demo, docs, lab, repl, resume, run, runs, show, verify, worlds};
use crate::session::{Failure, invalid};
use crate::state::{state_dir, store};
use crate::worlds::Worlds;

const EXIT_CODES: &str = "Exit codes: 0 succeeded · 1 internal error · 2 invalid input (nothing changed) · \
3 aborted and rolled back · 4 rollback stopped at a failed undo (resume retries) · 5 journal damaged · \
6 run locked by another process · 7 interrupted (resume continues) · 8 refused (runbook changed, replay \
diverged, already finished) · 9 simulated world's invariants violated";

#[derive(Parser, Debug)]
#[command(name = "godwit", version, about = "Durable, resumable RDS → Aurora PostgreSQL migration runbooks", after_help = EXIT_CODES)]
pub struct Cli {
    /// Where runs are kept [default: $GODWIT_STATE_DIR, else $XDG_STATE_HOME/godwit, else ~/.local/state/godwit]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands, in `godwit --help` order; each one's help is the doc comment of its `Args`.
#[derive(Subcommand, Debug)]
pub enum Command {
    Run(run::RunArgs),
    Resume(resume::ResumeArgs),
    Runs(runs::RunsArgs),
    Show(show::ShowArgs),
    Verify(verify::VerifyArgs),
    Check(check::CheckArgs),
    Repl(repl::ReplArgs),
    Demo(demo::DemoArgs),
    Dal(dal::DalArgs),
    Lab(lab::LabArgs),
    Worlds(worlds::WorldsArgs),
    Docs(docs::DocsArgs),
}

/// Entry point of the binary; returns the process exit code. `worlds` lets test binaries add
/// worlds (toy primitives) to the real CLI.
pub fn main_with(worlds: Worlds, args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::INVALID_INPUT
            } else {
                exit::OK
            };
        }
    };
    match dispatch(cli, &worlds) {
        Ok(code) => code,
        Err(Failure(code, msg)) => {
            eprintln!("error: {msg}");
            code
        }
    }
}

fn dispatch(cli: Cli, worlds: &Worlds) -> Result<i32, Failure> {
    let dir = state_dir(cli.state_dir).map_err(invalid)?;
    let store = store(&dir);
    // Every binary has the lab world; a test binary may bring its own.
    let mut worlds = worlds.clone();
    if worlds.get("lab").is_none() {
        worlds.add(crate::lab::world_def(&dir));
    }
    match cli.command {
        Command::Run(args) => args.execute(&dir, &store, &worlds),
        Command::Resume(args) => args.execute(&dir, &store, &worlds),
        Command::Runs(args) => args.execute(&store),
        Command::Show(args) => args.execute(&store),
        Command::Verify(args) => args.execute(&store),
        Command::Check(args) => args.execute(&store, &worlds),
        Command::Repl(args) => args.execute(&dir, &store, &worlds),
        Command::Demo(args) => args.execute(),
        Command::Dal(args) => args.execute(&dir),
        Command::Lab(args) => args.execute(&dir),
        Command::Worlds(args) => args.execute(&worlds),
        Command::Docs(args) => args.execute(&worlds),
    }
}
