//! The `godwit` commands, one file each (like mini-redis's `src/cmd/`): the command's clap
//! arguments, `<Command>Args`, whose doc comment is its `--help`, next to the `execute` that
//! carries it out and returns the exit code or a [`Failure`](crate::session::Failure).
//! `cli.rs` parses and picks one; commands build on the modules below them
//! ([`session`](crate::session), [`config`](crate::config), [`state`](crate::state),
//! [`worlds`](crate::worlds)) and never on `cli.rs`.

pub mod abort;
pub mod approve;
pub mod check;
pub mod clone;
pub mod completions;
pub mod cw;
pub mod dal;
pub mod demo;
pub mod docs;
pub mod fleet;
pub mod lab;
pub mod plan;
pub mod repl;
pub mod report;
pub mod resume;
pub mod rollback;
pub mod run;
pub mod runs;
pub mod serve;
pub mod show;
pub mod verify;
pub mod worker;
pub mod worlds;
