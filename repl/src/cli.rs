//! The `godwit` command line: the clap definitions and the dispatch to one command of
//! [`crate::cmd`]. Nothing below imports this module.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use godwit_engine::exit;

use crate::cmd::{
    abort, approve, check, clone, completions, cw, dal, demo, docs, fleet, lab, plan, repl, report,
    resume, rollback, run, runs, serve, show, verify, worker, worlds,
};
use crate::context::{Context, Format};
use crate::session::Failure;
use crate::worlds::Worlds;

const EXIT_CODES: &str = "Exit codes: 0 succeeded · 1 internal error · 2 invalid input (nothing changed) · \
3 aborted and rolled back · 4 rollback stopped at a failed undo (resume retries) · 5 journal damaged · \
6 run or cluster locked by another run · 7 interrupted (resume continues) · 8 refused (runbook changed, \
replay diverged, already finished) · 9 simulated world's invariants violated · 10 a check found problems";

const EXAMPLES: &str = "Examples:
  godwit demo                                              the standard runbook on a simulated busy source
  godwit plan rds-to-aurora --cluster orders-db            preflight + a simulated prediction, changes nothing
  godwit run rds-to-aurora --cluster orders-db --world sim:busy-source
  godwit runs                                              newest first; then: show last · resume last
  godwit completions bash > ~/.local/share/bash-completion/completions/godwit";

#[derive(Parser, Debug)]
#[command(
    name = "godwit",
    version,
    about = "Durable, resumable RDS → Aurora PostgreSQL migration runbooks",
    after_help = format!("{EXAMPLES}\n\n{EXIT_CODES}")
)]
pub struct Cli {
    /// Where runs are kept [default: $GODWIT_STATE_DIR, else $XDG_STATE_HOME/godwit, else ~/.local/state/godwit]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep runs in a shared PostgreSQL store instead of files: postgres://USER@HOST:PORT/DB
    /// (docs/store.md). Worlds' state stays in the state directory.
    #[arg(
        long,
        global = true,
        env = "GODWIT_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// Output format of what a command prints: `text` for people, `json` for machines.
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Shorthand for `-o json`.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands, in `godwit --help` order; each one's help is the doc comment of its `Args`.
#[derive(Subcommand, Debug)]
pub enum Command {
    Run(run::RunArgs),
    Plan(plan::PlanArgs),
    Fleet(fleet::FleetArgs),
    Cw(cw::CwArgs),
    Resume(resume::ResumeArgs),
    Abort(abort::AbortArgs),
    Approve(approve::ApproveArgs),
    Rollback(rollback::RollbackArgs),
    Clone(clone::CloneArgs),
    Runs(runs::RunsArgs),
    Show(show::ShowArgs),
    Verify(verify::VerifyArgs),
    Report(report::ReportArgs),
    Check(check::CheckArgs),
    Repl(repl::ReplArgs),
    Demo(demo::DemoArgs),
    Dal(dal::DalArgs),
    Lab(lab::LabArgs),
    Worker(worker::WorkerArgs),
    Serve(serve::ServeArgs),
    Worlds(worlds::WorldsArgs),
    Docs(docs::DocsArgs),
    Completions(completions::CompletionsArgs),
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
    let format = match (cli.json, cli.output) {
        (true, _) => Format::Json,
        (false, Some(f)) => f,
        (false, None) => Format::Text,
    };
    let ctx = Context::with_store(cli.state_dir, cli.store, worlds, format);
    let code = match dispatch(cli.command, &ctx) {
        Ok(code) => code,
        Err(Failure(code, msg)) => {
            crate::out::error(&msg);
            code
        }
    };
    crate::plan::remove_embedded_runbooks();
    code
}

fn dispatch(command: Command, ctx: &Context) -> Result<i32, Failure> {
    match command {
        Command::Run(args) => args.execute(ctx),
        Command::Plan(args) => args.execute(ctx),
        Command::Fleet(args) => args.execute(ctx),
        Command::Cw(args) => args.execute(ctx),
        Command::Resume(args) => args.execute(ctx),
        Command::Abort(args) => args.execute(ctx),
        Command::Approve(args) => args.execute(ctx),
        Command::Rollback(args) => args.execute(ctx),
        Command::Clone(args) => args.execute(ctx),
        Command::Runs(args) => args.execute(ctx),
        Command::Show(args) => args.execute(ctx),
        Command::Verify(args) => args.execute(ctx),
        Command::Report(args) => args.execute(ctx),
        Command::Serve(args) => args.execute(ctx),
        Command::Check(args) => args.execute(ctx),
        Command::Repl(args) => args.execute(ctx),
        Command::Demo(args) => args.execute(ctx),
        Command::Dal(args) => args.execute(ctx),
        Command::Lab(args) => args.execute(ctx),
        Command::Worker(args) => args.execute(ctx),
        Command::Worlds(args) => args.execute(ctx),
        Command::Docs(args) => args.execute(ctx),
        Command::Completions(args) => args.execute::<Cli>(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command and subcommand, with its path (`lab up`).
    fn commands() -> Vec<(String, clap::Command)> {
        fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{prefix}{}", sub.get_name());
                out.push((path.clone(), sub.clone()));
                walk(&format!("{path} "), sub, out);
            }
        }
        let mut out = Vec::new();
        walk("", &Cli::command(), &mut out);
        out
    }

    /// Issue 18: `--help` had no examples. Every command's help ends with some, each a
    /// `godwit …` command line.
    #[test]
    fn every_commands_help_has_examples() {
        let all = commands();
        assert!(all.len() > 16, "{}", all.len());
        for (path, cmd) in all {
            let after = cmd
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            let examples = after.split_once("Examples:").map(|(_, e)| e);
            assert!(
                examples.is_some_and(
                    |e| e.contains(&format!("godwit {}", path.split(' ').next().unwrap()))
                ),
                "`godwit {path} --help` has no example of itself: {after:?}"
            );
        }
    }

    /// Issue 18: no shell completions. The scripts cover every command and subcommand.
    #[test]
    fn completions_cover_every_command() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "godwit", &mut buf);
            let script = String::from_utf8(buf).unwrap();
            for (path, _) in commands() {
                let name = path.rsplit(' ').next().unwrap();
                assert!(script.contains(name), "{shell}: no {path} in the script");
            }
            assert!(
                script.contains("--cluster") && script.contains("--set"),
                "{shell}"
            );
        }
    }
}
