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
//! every level is copied again, and measured against the size limits again), which bounds what a
//! runbook can reach before its busy limit ends it. Measured on the 2-core CI box, debug build:
//! 10 000 levels take ~15 s, and a level costs ~0.7–1 KiB of stack (2 000 levels fit in 2 MiB,
//! 3 000 did not). Within the default 30 s busy limit that is ~15 000 levels in a debug build,
//! and a few times more in a release build (faster, with smaller frames): tens of MiB at most.
//! [`SCRIPT_STACK`] leaves room above that; it is address space, not memory: only the pages a
//! script touches are ever committed.
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
