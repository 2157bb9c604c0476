//! # godwit — the command
//!
//! Arguments flow down: [`cli::main_with`] (the entry point, parameterised by the worlds so test
//! binaries can add toy worlds to the real CLI) parses them with clap and hands them to one
//! command of [`cmd`], which builds on the modules below it and returns an exit code or a
//! [`session::Failure`]. Nothing imports `cli` back.
//!
//! * [`cli`]: the clap `Cli`/`Command` definitions and the dispatch, one line per command.
//! * [`cmd`]: one file per command (`run`, `plan`, `fleet`, `resume`, `abort`, `approve`, `runs`,
//!   `show`, `verify`, `check`, `repl`, `demo`, `dal`, `lab`, `worlds`, `docs`, `completions`, `cw`),
//!   its clap `Args` next to its `execute`.
//! * [`context`]: what every command gets: the worlds, the output format (`-o json`), the state
//!   directory (resolved only when a command needs one).
//! * [`out`]: printing — colour through anstream (NO_COLOR, non-terminals), a closed pipe ends
//!   the command quietly.
//! * [`session`]: the runner plumbing commands share — runtime, Ctrl-C, sinks, `drive`,
//!   `finish`, the world's audit — and [`session::Failure`], what every command returns.
//! * [`config`]: the RUNBOOK argument, `--config` TOML and `--set` parameters, world settings.
//! * [`state`]: the state directory, run-id resolution (`last`, unique prefixes), run listing.
//! * [`worlds`]: the `--world NAME[:ARG]` registry.
//! * [`render`]: human rendering of transcript events, the live progress line, the runs table.
//! * [`demo`]: the standard runbook (embedded) on a built-in scenario, with a summary.
//! * [`plan`]: `godwit plan` for one cluster — preflight in its world, a simulated prediction —
//!   read-only, and callable per cluster by a fleet plan.
//! * [`fleet`]: the fleet — the fleet file and the generated fleet as one [`fleet::Fleet`], the
//!   prediction's calibration from a cluster's own figures, `fleet plan` over every cluster.
//! * [`notify`]: notifications of runs and fleets (the fleet file's `[[notify]]`): a run's
//!   sink that queues them in the store's outbox, and the workers' delivery (webhook, SNS).
//! * [`series`]: recorded CloudWatch series — `godwit cw export` through a world, read by the
//!   simulator's replay and a plan's prediction.
//! * [`lab`]: the `lab` world and `godwit demo --world lab`.
//! * [`repl`]: the interactive console (rustyline; piped stdin works too).
//! * [`docs`]: the generated primitive reference (`godwit docs`, drift check).
//!
//! Exit codes live in [`godwit_engine::exit`] and are documented in `docs/cli.md`.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod context;
pub mod demo;
pub mod docs;
pub mod fleet;
pub mod lab;
pub mod notify;
pub mod out;
pub mod plan;
pub mod render;
pub mod repl;
pub mod report;
pub mod series;
pub mod serve;
pub mod session;
pub mod settings;
pub mod state;
pub mod worlds;
