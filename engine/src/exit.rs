//! Process exit codes of `godwit`, shared by every command (documented in `docs/cli.md`).

/// The run succeeded / the command did what was asked.
pub const OK: i32 = 0;
/// Unexpected internal failure (I/O, a bug).
pub const INTERNAL: i32 = 1;
/// Bad input: arguments, runbook syntax, parameters, unknown run. Nothing was changed.
pub const INVALID_INPUT: i32 = 2;
/// The runbook aborted and every undo ran: the world is back where it started.
pub const ROLLED_BACK: i32 = 3;
/// Rollback stopped at a failed undo: needs an operator; `godwit resume` retries it.
pub const ROLLBACK_FAILED: i32 = 4;
/// The journal is damaged or was edited (`godwit verify` explains).
pub const JOURNAL_DAMAGED: i32 = 5;
/// Another process is driving this run, or another unfinished run holds the cluster.
pub const LOCKED: i32 = 6;
/// Interrupted (Ctrl-C): nothing rolled back, `godwit resume` continues.
pub const INTERRUPTED: i32 = 7;
/// Refused: runbook changed since the run started, replay diverged, or already finished.
pub const REFUSED: i32 = 8;
/// The simulated world's invariants were violated (lost write, two writers, ...): whatever the
/// run's own outcome, the runbook is unsafe in that scenario.
pub const INVARIANT_VIOLATED: i32 = 9;
/// A check found problems (`godwit check` lints, `godwit docs --check` drift); nothing was
/// changed.
pub const CHECK_FAILED: i32 = 10;
