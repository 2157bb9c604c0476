//! `wait_until_approved(name)`: a run waits for a person (`godwit approve RUN`), on the wall
//! clock whatever the world's clock — a simulated run pauses for real, because a decision is
//! not simulated. The approval arrives through the store's operator requests, so it reaches a
//! run driven by another process, and one given while no process drives the run is found when
//! it resumes. `godwit abort RUN` while it waits declines: the run rolls back.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use rhai::plugin::*;
use rhai::{Engine, EvalAltResult, Map, NativeCallContext};

use crate::clock::{Clock, SystemClock};
use crate::duration::{format_duration, parse_duration};
use crate::error::{ErrorKind, PrimitiveError};
use crate::host::Installed;
use crate::journal::Request;
use crate::run::ctx::{TERM_ABORT, TERM_CANCEL, terminate};
use crate::transcript::Waiting;

/// How often the store is read while waiting.
const POLL: Duration = Duration::from_secs(1);
/// Without `timeout`: a week, long enough for a change window to come round.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

/// The approval functions capture nothing (they find the run through the engine's
/// [`Installed`] tag), so their module is built once per process.
static APPROVAL: LazyLock<Arc<Module>> = LazyLock::new(|| {
    let mut m = exported_module!(approval);
    m.build_index();
    Arc::new(m)
});

pub(crate) fn register(engine: &mut Engine) {
    engine.register_global_module(APPROVAL.clone());
}

/// `wait_until_approved`; `docs/primitives/core.md` is generated from these doc comments.
#[export_module]
mod approval {
    use super::*;

    /// Wait until an operator approves `name` for this run with `godwit approve RUN --name NAME`,
    /// on the wall clock (a simulated run pauses for real: a decision is not simulated). Inside a
    /// step, so the approval is journaled and a resumed run does not ask again; an approval given
    /// while no process drives the run is found when it resumes. `godwit abort RUN` while it
    /// waits declines: the run rolls back. Waits a week at most; see the options form.
    ///
    /// Parameters:
    /// * `name` — what is approved, e.g. `"cutover"` (the default of `godwit approve`).
    ///
    /// Returns: `#{ name, approved_by, approved_at }` (`approved_at` in epoch seconds).
    ///
    /// Errors: `Timeout` (not retryable) when nobody approved within a week; `Invalid` outside a
    /// step, gate or undo.
    ///
    /// Example:
    /// ```rhai
    /// // Nobody approves here, and outside a step the wait is refused before it starts.
    /// let kind = "";
    /// try { wait_until_approved("cutover"); } catch (e) { kind = e.kind; }
    /// assert_eq(kind, "Invalid");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_approved(ctx: NativeCallContext, name: &str) -> RhaiResult<Map> {
        wait(&ctx, name, &Map::new())
    }

    /// `wait_until_approved` with options.
    ///
    /// Parameters:
    /// * `name` — what is approved.
    /// * `options` — `#{ timeout: "7d" }` (the default).
    ///
    /// Returns: `#{ name, approved_by, approved_at }` (`approved_at` in epoch seconds).
    ///
    /// Errors: `Timeout` (not retryable) when nobody approved in time; `Invalid` for an unknown
    /// option, or outside a step, gate or undo.
    ///
    /// Example:
    /// ```rhai
    /// // Nobody approves here: after its timeout the wait fails, and the step can say so.
    /// let r = step("approve-demo", || {
    ///     let got = "";
    ///     try { got = wait_until_approved("cutover", #{ timeout: "1s" }).approved_by; }
    ///     catch (e) { got = e.kind; }
    ///     got
    /// });
    /// assert_eq(r, "Timeout");
    /// ```
    #[rhai_fn(name = "wait_until_approved", volatile, return_raw)]
    pub fn wait_until_approved_with_options(
        ctx: NativeCallContext,
        name: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        wait(&ctx, name, &options)
    }
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

fn wait(nc: &NativeCallContext, name: &str, opts: &Map) -> RhaiResult<Map> {
    const OP: &str = "wait_until_approved";
    let installed = Installed::of(nc)?;
    let ctx = installed.host().run();
    let at = |e: PrimitiveError| e.into_rhai_at(nc.call_position());
    ctx.check_world_access("core", OP).map_err(at)?;
    let mut timeout = DEFAULT_TIMEOUT;
    for (k, v) in opts {
        match (k.as_str(), v.clone().into_string()) {
            ("timeout", Ok(t)) => {
                timeout = parse_duration(&t)
                    .map_err(|e| at(PrimitiveError::invalid("core", OP, e, "")))?;
            }
            (k, _) => {
                return Err(at(PrimitiveError::invalid(
                    "core",
                    OP,
                    format!("option '{k}' of {OP} is not a duration string or not an option"),
                    "the only option is timeout, e.g. #{ timeout: \"3d\" }",
                )));
            }
        }
    }
    let started = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        ctx.busy.restart();
        let requests = ctx.requests();
        if let Some(Request::Approve { by, at, .. }) = requests
            .iter()
            .find(|r| matches!(r, Request::Approve { name: n, .. } if n == name))
        {
            let mut out = Map::new();
            out.insert("name".into(), name.into());
            out.insert("approved_by".into(), by.clone().into());
            out.insert("approved_at".into(), (at.div_euclid(1000)).into());
            return Ok(out);
        }
        if let Some(Request::Abort { reason, by, .. }) =
            requests.iter().find(|r| matches!(r, Request::Abort { .. }))
        {
            ctx.state().abort_requested = Some(format!("aborted by {by}: {reason}"));
            return Err(terminate(TERM_ABORT));
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(at(PrimitiveError::new(
                "core",
                OP,
                ErrorKind::Timeout,
                format!(
                    "nobody approved {name:?} within {}",
                    format_duration(timeout)
                ),
                format!(
                    "approve with `godwit approve {} --name {name}` in time, or raise the timeout",
                    ctx.run_id
                ),
            )
            .with_retryable(false)));
        }
        ctx.waiting(&Waiting {
            unit: ctx.current_unit(),
            call: format!("core::{OP}"),
            what: format!(
                "approval of {name:?}: `godwit approve {} --name {name}` (or `godwit abort {}`)",
                ctx.run_id, ctx.run_id
            ),
            polls,
            waited_ms: waited.as_millis() as i64,
            timeout_ms: timeout.as_millis() as i64,
        });
        // The wall clock on purpose: the world's clock may be virtual.
        if !SystemClock.sleep(POLL.min(timeout - waited), &ctx.cancel) {
            return Err(terminate(TERM_CANCEL));
        }
    }
}
