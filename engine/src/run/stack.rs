//! The thread a runbook executes on, with a stack sized for Rhai.
//!
//! Rhai is recursive wherever data is nested: cloning a value (`a = [a]` clones `a`), dropping
//! it, comparing, printing and measuring it against the size limits all recurse once per level,
//! and nothing in Rhai limits how deep data may nest. On the 2 MiB stack of a tokio blocking
//! thread (or a test thread), `let a = []; for i in 0..2500 { a = [a]; }` overflowed the stack in
//! a debug build and aborted the process — no error, no journal record, and `resume` crashed the
//! same way (issue 19).
//!
//! Building nesting `d` deep costs `d²/2` element copies (there are no references in Rhai, so
//! every level is copied again): deep data is slow to build, and [`SCRIPT_STACK`] leaves room for
//! far more levels than a runbook builds in minutes. It is address space, not memory: only the
//! pages a script touches are ever committed.
//!
//! Values that leave the script (journaled results, thrown errors, the final value) are limited
//! to [`super::value::MAX_DEPTH`] levels on top of this, so godwit's own conversions never recurse
//! deeply whatever the stack.

use crate::error::EngineError;

/// Stack of the thread a runbook executes on (see the module docs for the arithmetic).
pub(crate) const SCRIPT_STACK: usize = 256 << 20;

/// Run `f` on a new thread with [`SCRIPT_STACK`] of stack, waiting for it. A panic in `f`
/// continues unwinding in the caller.
pub(crate) fn on_script_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, EngineError> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("godwit-runbook".into())
            .stack_size(SCRIPT_STACK)
            .spawn_scoped(s, f)
            .map_err(|e| {
                EngineError::Io(format!(
                    "cannot start the runbook's thread ({} MiB stack): {e}",
                    SCRIPT_STACK >> 20
                ))
            })?;
        Ok(handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}
