//! # godwit — the command
//!
//! * [`cli`]: clap definitions and the commands (`run`, `resume`, `runs`, `show`, `verify`,
//!   `check`, `worlds`); [`cli::main_with`] is the entry point, parameterised by the worlds
//!   so test binaries can add toy worlds to the real CLI.
//! * [`demo`]: `godwit demo` — the standard runbook on a built-in scenario, with a summary.
//! * [`docs`]: the generated primitive reference (`godwit docs`, drift check).
//! * [`lab`]: `godwit lab up|down|status`, the `lab` world and `godwit demo --world lab`.
//! * [`repl`]: `godwit repl` — the interactive console (rustyline; piped stdin works too).
//! * [`session`]: the runner plumbing commands share — runtime, Ctrl-C, sinks, `drive`,
//!   `finish`, the world's audit — and [`session::Failure`], what every command returns.
//! * [`config`]: the RUNBOOK argument, `--config` TOML and `--set` parameters, world settings.
//! * [`worlds`]: the `--world NAME[:ARG]` registry.
//! * [`render`]: human rendering of transcript events and the live progress line.
//! * [`state`]: the state directory, run-id resolution (`last`, unique prefixes), run listing.
//!
//! Exit codes live in [`godwit_engine::exit`] and are documented in `docs/cli.md`.

pub mod cli;
pub mod config;
pub mod demo;
pub mod docs;
pub mod lab;
pub mod render;
pub mod repl;
pub mod session;
pub mod state;
pub mod worlds;
