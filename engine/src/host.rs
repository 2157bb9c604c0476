//! The [`Host`]: the one door through which primitives reach the world.
//!
//! A primitive never touches tokio or the clock directly. It calls [`Host::call`], which
//! * enforces strict mode (world access only inside steps, gates and undos),
//! * hands the backend that serves the call a [`Call`]: the current unit (step, gate or undo),
//!   its idempotency token, the time left before the step's deadline, cancellation (Ctrl-C),
//!   and a [`Call::block_on`] / [`Call::sleep`] that honour both,
//! * records the call with its arguments and result in the transcript.
//!
//! Backends never keep a runtime handle of their own to wait on: a wait that does not go
//! through the [`Call`] is one no step timeout or Ctrl-C reaches (STYLE.md 7).
//!
//! A script-visible function finds the run's host, and the backends its world installed, in the
//! engine it runs in ([`Installed::of`]), never in a closure: so every such function is a plain
//! `#[export_module]` function whose `///` doc comment is its reference.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};
use serde::Serialize;
use tokio::runtime::Handle;

use crate::clock::{Clock, Millis};
use crate::error::{ErrorKind, PrimitiveError};
use crate::run::ctx::RunCtx;
use crate::transcript::Event;

mod abridged;

/// Bridges one run's Rhai functions to its clock, its tokio runtime and its transcript.
#[derive(Clone)]
pub struct Host {
    ctx: Arc<RunCtx>,
    /// The runtime async work waits on; `None` for a detached host without one.
    handle: Option<Handle>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("run_id", &self.ctx.run_id)
            .finish()
    }
}

impl Host {
    pub(crate) fn new(ctx: Arc<RunCtx>, handle: Handle) -> Self {
        Host {
            ctx,
            handle: Some(handle),
        }
    }

    /// A host outside any run, for tests and tools that drive a backend directly: no journal,
    /// no strict mode, no transcript sinks; async work waits on `handle` (none: it fails).
    pub fn detached(clock: Arc<dyn Clock>, handle: Option<Handle>) -> Host {
        let ctx = RunCtx::new(
            "detached".into(),
            clock,
            crate::clock::Cancel::new(),
            false,
            Vec::new(),
        );
        Host { ctx, handle }
    }

    /// The [`Call`] context for `area::op` without the strict-mode check or a transcript
    /// event: for tests and tools that call a backend directly (a run goes through
    /// [`Host::call`]).
    pub fn context<'h>(&'h self, area: &'h str, op: &'h str) -> Call<'h> {
        Call {
            host: self,
            area,
            op,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.ctx.run_id
    }

    /// The run this host serves (for the engine's own built-ins: journal, replay, scope).
    pub(crate) fn run(&self) -> &Arc<RunCtx> {
        &self.ctx
    }

    /// Make this host what `engine`'s functions find through [`Installed::of`], with nothing
    /// installed yet: the first thing done to a run's engine.
    pub(crate) fn bind(&self, engine: &mut Engine) {
        engine.set_default_tag(Dynamic::from(Arc::new(Installed {
            host: self.clone(),
            values: Vec::new(),
        })));
    }

    /// Install `value` in `engine` for its functions to find ([`Installed::get`]): how a world
    /// hands its backends to the area modules it registers.
    pub fn install<T: Any + Send + Sync>(&self, engine: &mut Engine, value: Arc<T>) {
        let tag = engine.default_tag_mut();
        if let Some(mut installed) = tag.write_lock::<Arc<Installed>>() {
            Arc::make_mut(&mut installed).values.push(value);
            return;
        }
        // An engine no runner built (a test registering a plugin by hand): bind it here.
        *tag = Dynamic::from(Arc::new(Installed {
            host: self.clone(),
            values: vec![value],
        }));
    }

    pub fn clock(&self) -> &dyn Clock {
        self.ctx.clock.as_ref()
    }

    pub fn now_ms(&self) -> Millis {
        self.ctx.clock.now_ms()
    }

    /// Run the world-touching operation `area::op` with strict-mode check and transcript: `f`
    /// receives the [`Call`] it must do all its waiting through.
    pub fn call<A, T>(
        &self,
        area: &str,
        op: &str,
        args: &A,
        f: impl FnOnce(&Call<'_>) -> Result<T, PrimitiveError>,
    ) -> Result<T, PrimitiveError>
    where
        A: Serialize + ?Sized,
        T: Serialize,
    {
        self.ctx.check_world_access(area, op)?;
        let call = Call {
            host: self,
            area,
            op,
        };
        call.check()?;
        let started = Instant::now();
        let out = f(&call);
        self.record(area, op, args, &out, started);
        out
    }

    /// The script's own `sleep`: a wait through the run's clock with the strict-mode check,
    /// cancellable and cut at the step's deadline, not recorded as a world call.
    pub fn sleep(&self, area: &str, op: &str, d: Duration) -> Result<(), PrimitiveError> {
        self.ctx.check_world_access(area, op)?;
        Call {
            host: self,
            area,
            op,
        }
        .sleep(d)
    }

    fn record<A: Serialize + ?Sized, T: Serialize>(
        &self,
        area: &str,
        op: &str,
        args: &A,
        out: &Result<T, PrimitiveError>,
        started: Instant,
    ) {
        self.ctx.busy.restart();
        let (ok, result) = match out {
            Ok(v) => (true, abridged::to_abridged_value(v)),
            Err(e) => (
                false,
                serde_json::to_value(e).unwrap_or(serde_json::Value::Null),
            ),
        };
        self.ctx.emit(Event::Primitive {
            area: area.into(),
            op: op.into(),
            args: abridged::to_abridged_value(args),
            ok,
            result,
            ms: started.elapsed().as_millis() as u64,
        });
    }
}

/// What a run's engine carries for its functions, as Rhai's default tag (copied into every
/// evaluation, and into the context an undo runs in later): the run's [`Host`] and the values
/// plugins installed with [`Host::install`] (a world's backends). A function reaches them
/// through its `NativeCallContext`, so nothing is captured, and a module of functions is built
/// once per process instead of once per run.
#[derive(Clone)]
pub struct Installed {
    host: Host,
    values: Vec<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installed")
            .field("host", &self.host)
            .field("values", &self.values.len())
            .finish()
    }
}

impl Installed {
    /// What the engine running the calling function carries; an `Internal` error at the call
    /// when that engine was not built for a run (nothing a script can cause).
    pub fn of(ctx: &NativeCallContext) -> Result<Arc<Installed>, Box<EvalAltResult>> {
        ctx.tag()
            .and_then(|tag| tag.read_lock::<Arc<Installed>>().map(|i| Arc::clone(&i)))
            .ok_or_else(|| {
                let op = ctx.fn_name();
                PrimitiveError::new(
                    "engine",
                    op,
                    ErrorKind::Internal,
                    format!("{op} needs the run's host and this engine has none"),
                    "this is a bug in the program that built the engine: build it with a Runner",
                )
                .into_rhai_at(ctx.call_position())
            })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The value of type `T` a plugin installed, if one did.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values.iter().find_map(|v| (**v).downcast_ref::<T>())
    }
}

/// One world call in progress, as the backend serving it sees the run: where it is (the unit
/// and its idempotency token), how long it may take (the step's deadline), whether the
/// operator interrupted, and the only ways to wait ([`Call::block_on`], [`Call::sleep`]).
pub struct Call<'h> {
    host: &'h Host,
    area: &'h str,
    op: &'h str,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("run_id", &self.host.ctx.run_id)
            .field("call", &format_args!("{}::{}", self.area, self.op))
            .field("unit", &self.unit())
            .finish()
    }
}

/// How long a call may wait when neither its caller nor the step says: long enough for any
/// single AWS or PostgreSQL request, short enough that a hung peer is noticed.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl Call<'_> {
    pub fn area(&self) -> &str {
        self.area
    }

    pub fn op(&self) -> &str {
        self.op
    }

    pub fn run_id(&self) -> &str {
        &self.host.ctx.run_id
    }

    /// The step, gate (by name) or undo (`undo-<step>`) this call runs in; `None` at the top
    /// level of an interactive session.
    pub fn unit(&self) -> Option<String> {
        self.host.ctx.current_unit()
    }

    /// A token stable across re-runs of the current unit (AWS client tokens and other
    /// check-then-act idempotency): `<run id>/<unit>`, `<run id>/interactive` in a session.
    pub fn token(&self) -> String {
        match self.unit() {
            Some(unit) => format!("{}/{unit}", self.run_id()),
            None => format!("{}/interactive", self.run_id()),
        }
    }

    pub fn clock(&self) -> &dyn Clock {
        self.host.clock()
    }

    pub fn now_ms(&self) -> Millis {
        self.host.now_ms()
    }

    /// Time left before the current step's deadline (its `timeout` option); `None` when the
    /// step has none.
    pub fn remaining(&self) -> Option<Duration> {
        self.host
            .ctx
            .remaining_ms()
            .map(|left| Duration::from_millis(left.max(0) as u64))
    }

    /// How long an operation that would take at most `limit` may take now: `limit`, cut to the
    /// step's remaining time. PostgreSQL statements get this as their `statement_timeout`,
    /// HTTP and gRPC requests as their deadline.
    pub fn budget(&self, limit: Duration) -> Duration {
        match self.remaining() {
            Some(left) => limit.min(left),
            None => limit,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.host.ctx.cancel.is_cancelled()
    }

    /// Fails when the operator interrupted the run or the step's time is up: a backend doing
    /// many small operations calls this between them.
    pub fn check(&self) -> Result<(), PrimitiveError> {
        if self.is_cancelled() {
            return Err(cancelled(self.area, self.op));
        }
        if let Some(lapsed) = self.host.ctx.lease_lapsed(self.area, self.op) {
            return Err(lapsed);
        }
        if self.remaining().is_some_and(|left| left.is_zero()) {
            return Err(self.out_of_time());
        }
        Ok(())
    }

    /// Wait `d` through the run's clock (virtual in the simulator), cancellable, cut at the
    /// step's deadline. A cut sleep is the step running past its timeout (not retried: waiting
    /// was the step's own choice of how to spend its time), unlike a request the world did not
    /// answer in time (see [`Call::block_on`]).
    pub fn sleep(&self, d: Duration) -> Result<(), PrimitiveError> {
        let left = self.remaining();
        let cut = left.is_some_and(|l| l < d);
        let d = left.map_or(d, |l| l.min(d));
        if !self.host.ctx.clock.sleep(d, &self.host.ctx.cancel) {
            return Err(cancelled(self.area, self.op));
        }
        if cut {
            let step = self.unit().unwrap_or_default();
            return Err(crate::run::ctx::step_timeout(&step));
        }
        Ok(())
    }

    /// Say that this call is about to wait for `what` (poll `polls`, `waited` of `timeout` so
    /// far): progress lines show it, so a long `wait_until_*` inside a step is never silent.
    pub fn waiting(&self, what: &str, polls: u64, waited: Duration, timeout: Duration) {
        self.host.ctx.waiting(&crate::transcript::Waiting {
            unit: self.unit(),
            call: format!("{}::{}", self.area, self.op),
            what: what.to_string(),
            polls,
            waited_ms: waited.as_millis() as i64,
            timeout_ms: timeout.as_millis() as i64,
        });
    }

    /// Run async work (an SDK request, a SQL statement, an HTTP call) on the run's runtime,
    /// bounded by `limit`, the step's deadline and cancellation; whichever comes first ends the
    /// wait and drops the future (which cancels what it was doing).
    pub fn block_on<T, F>(&self, limit: Duration, fut: F) -> Result<T, PrimitiveError>
    where
        F: Future<Output = Result<T, PrimitiveError>>,
    {
        self.check()?;
        let step_cut = self.remaining().is_some_and(|left| left < limit);
        let wait = self.budget(limit);
        let cancel = self.host.ctx.cancel.clone();
        let (area, op) = (self.area, self.op);
        let Some(handle) = &self.host.handle else {
            return Err(PrimitiveError::new(
                area,
                op,
                ErrorKind::Internal,
                format!("{area}::{op} needs a runtime and this host has none"),
                "this is a bug in the caller that built the host",
            ));
        };
        // The only `block_on` in the tree: runs are on blocking threads (never runtime
        // workers), so blocking here is allowed; everything else waits through this.
        #[allow(clippy::disallowed_methods)]
        let out = handle.block_on(async {
            tokio::select! {
                r = fut => Some(r),
                _ = tokio::time::sleep(wait) => None,
                _ = cancel.cancelled() => Some(Err(cancelled(area, op))),
            }
        });
        match out {
            Some(r) => r,
            None if step_cut => Err(self.out_of_time()),
            None => Err(PrimitiveError::new(
                area,
                op,
                ErrorKind::Timeout,
                format!(
                    "{area}::{op} did not answer within {}",
                    crate::duration::format_duration(wait)
                ),
                "the service is slow or unreachable; the step may be retried",
            )),
        }
    }

    /// [`Call::block_on`], recorded in the transcript as its own event `area::op` (e.g. one
    /// AWS API attempt inside a primitive), so an operator sees every attempt.
    pub fn traced<A, T, F>(
        &self,
        area: &str,
        op: &str,
        args: &A,
        limit: Duration,
        fut: F,
    ) -> Result<T, PrimitiveError>
    where
        A: Serialize + ?Sized,
        T: Serialize,
        F: Future<Output = Result<T, PrimitiveError>>,
    {
        let started = Instant::now();
        let out = self.block_on(limit, fut);
        self.host.record(area, op, args, &out, started);
        out
    }

    /// The step's deadline cut this call: a world that does not answer in time. Retryable — a
    /// retry is a new attempt with a fresh timeout, and the world may answer then (a script
    /// that runs past its step's timeout on its own is not retried; see `step_timeout`).
    fn out_of_time(&self) -> PrimitiveError {
        let unit = self.unit().unwrap_or_default();
        PrimitiveError::new(
            self.area,
            self.op,
            ErrorKind::Timeout,
            format!(
                "{}::{} was cut by the timeout of '{unit}': the world did not answer in time",
                self.area, self.op
            ),
            "the service is slow or hung; the step retries it (raise the step's timeout option \
             if it needs longer)",
        )
    }
}

/// Longest array kept whole in a transcript event.
const MAX_ITEMS: usize = 32;
/// Longest string kept whole in a transcript event.
const MAX_STRING: usize = 4096;

/// Shorten a value for the transcript: arrays longer than [`MAX_ITEMS`] become
/// `{"items": n, "head": [first 3], "tail": [last 3]}`, long strings are cut. The transcript is
/// the narrative (the journal keeps what steps returned); a full day of 60 s metric datapoints
/// in every call made one standard run's transcript 1.9 MB.
pub fn abridge(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Array(a) if a.len() > MAX_ITEMS => {
            let n = a.len();
            let head: Vec<Value> = a[..3].iter().cloned().map(abridge).collect();
            let tail: Vec<Value> = a[n - 3..].iter().cloned().map(abridge).collect();
            serde_json::json!({ "items": n, "head": head, "tail": tail })
        }
        Value::Array(a) => Value::Array(a.into_iter().map(abridge).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, abridge(v))).collect()),
        Value::String(s) if s.len() > MAX_STRING => Value::String(cut(&s)),
        other => other,
    }
}

/// `s` as the transcript keeps it: cut after [`MAX_STRING`] bytes, saying how long it was.
fn cut(s: &str) -> String {
    if s.len() <= MAX_STRING {
        return s.to_string();
    }
    let end = (0..=MAX_STRING)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// The operator interrupted the run: never a failure of the call (see
/// [`ErrorKind::Cancelled`]).
fn cancelled(area: &str, op: &str) -> PrimitiveError {
    PrimitiveError::new(
        area,
        op,
        ErrorKind::Cancelled,
        "cancelled by the operator",
        "resume the run with `godwit resume RUN`",
    )
}

/// Convert a typed primitive result into a Rhai value (a plain map/array/scalar).
pub fn to_rhai<T: Serialize>(value: &T) -> Result<Dynamic, Box<EvalAltResult>> {
    rhai::serde::to_dynamic(value)
}

#[cfg(test)]
mod tests {
    use super::abridge;
    use serde_json::json;

    #[test]
    fn long_arrays_and_strings_are_abridged_small_values_kept() {
        let series: Vec<_> = (0..1440).map(|i| json!({"t": i, "v": i * 2})).collect();
        let out = abridge(json!({"series": series, "small": [1, 2, 3], "s": "x".repeat(5000)}));
        assert_eq!(out["series"]["items"], 1440);
        assert_eq!(out["series"]["head"][0], json!({"t": 0, "v": 0}));
        assert_eq!(out["series"]["tail"][2], json!({"t": 1439, "v": 2878}));
        assert_eq!(out["small"], json!([1, 2, 3]));
        assert!(out["s"].as_str().unwrap().ends_with("… (5000 bytes)"));
        let full = serde_json::Value::from(vec![1; 32]);
        assert_eq!(abridge(full.clone()), full, "32 items stay whole");
    }
}
