//! The [`Host`]: the one door through which primitives reach the world.
//!
//! A primitive never touches tokio or the clock directly. It calls [`Host::call`] (synchronous
//! work, e.g. the simulator) or [`Host::block_on`] (async work, e.g. the AWS SDK), which
//! * enforce strict mode (world access only inside steps, gates and undos),
//! * bound the wait by the call's timeout, the step's timeout and cancellation (Ctrl-C),
//! * record the call with its arguments and result in the transcript.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult};
use serde::Serialize;
use tokio::runtime::Handle;

use crate::clock::{Clock, Millis};
use crate::error::{ErrorKind, PrimitiveError};
use crate::run::ctx::RunCtx;
use crate::transcript::Event;

/// Bridges one run's Rhai functions to its clock, its tokio runtime and its transcript.
#[derive(Clone)]
pub struct Host {
    ctx: Arc<RunCtx>,
    handle: Handle,
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
        Host { ctx, handle }
    }

    pub fn run_id(&self) -> &str {
        &self.ctx.run_id
    }

    pub fn clock(&self) -> &dyn Clock {
        self.ctx.clock.as_ref()
    }

    pub fn now_ms(&self) -> Millis {
        self.ctx.clock.now_ms()
    }

    /// A token stable across re-runs of the current step (for AWS client tokens and other
    /// check-then-act idempotency): `<run id>/<step name>`.
    pub fn idempotency_token(&self) -> String {
        match self.ctx.current_unit() {
            Some(unit) => format!("{}/{unit}", self.ctx.run_id),
            None => format!("{}/interactive", self.ctx.run_id),
        }
    }

    /// Wait through the run's clock (virtual in the simulator), cancellable, bounded by the
    /// current step's timeout.
    pub fn sleep(&self, area: &str, op: &str, d: Duration) -> Result<(), PrimitiveError> {
        self.ctx.check_world_access(area, op)?;
        let (d, cut) = match self.ctx.remaining_ms() {
            Some(left) if (left.max(0) as u128) < d.as_millis() => {
                (Duration::from_millis(left.max(0) as u64), true)
            }
            _ => (d, false),
        };
        if !self.ctx.clock.sleep(d, &self.ctx.cancel) {
            return Err(cancelled(area, op));
        }
        if cut {
            let step = self.ctx.current_unit().unwrap_or_default();
            return Err(crate::run::ctx::step_timeout(&step));
        }
        Ok(())
    }

    /// Run a synchronous world-touching operation with strict-mode check and transcript.
    pub fn call<A, T>(
        &self,
        area: &str,
        op: &str,
        args: &A,
        f: impl FnOnce() -> Result<T, PrimitiveError>,
    ) -> Result<T, PrimitiveError>
    where
        A: Serialize + ?Sized,
        T: Serialize,
    {
        self.ctx.check_world_access(area, op)?;
        if self.ctx.cancel.is_cancelled() {
            return Err(cancelled(area, op));
        }
        let started = Instant::now();
        let out = f();
        self.record(area, op, args, &out, started);
        out
    }

    /// Run an async world-touching operation on the captured runtime, bounded by `timeout`,
    /// the step's remaining time and cancellation.
    pub fn block_on<A, T, F>(
        &self,
        area: &str,
        op: &str,
        args: &A,
        timeout: Duration,
        fut: F,
    ) -> Result<T, PrimitiveError>
    where
        A: Serialize + ?Sized,
        T: Serialize,
        F: Future<Output = Result<T, PrimitiveError>>,
    {
        self.ctx.check_world_access(area, op)?;
        let limit = match self.ctx.remaining_ms() {
            Some(left) => timeout.min(Duration::from_millis(left.max(0) as u64)),
            None => timeout,
        };
        let started = Instant::now();
        let cancel = self.ctx.cancel.clone();
        let out = self.handle.block_on(async {
            tokio::select! {
                r = fut => r,
                _ = tokio::time::sleep(limit) => Err(PrimitiveError::new(
                    area, op, ErrorKind::Timeout,
                    format!("{area}::{op} did not answer within {}",
                        crate::duration::format_duration(limit)),
                    "the service is slow or unreachable; the step may be retried",
                )),
                _ = cancel.cancelled() => Err(cancelled(area, op)),
            }
        });
        self.record(area, op, args, &out, started);
        out
    }

    fn record<A: Serialize + ?Sized, T: Serialize>(
        &self,
        area: &str,
        op: &str,
        args: &A,
        out: &Result<T, PrimitiveError>,
        started: Instant,
    ) {
        let (ok, result) = match out {
            Ok(v) => (
                true,
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            ),
            Err(e) => (
                false,
                serde_json::to_value(e).unwrap_or(serde_json::Value::Null),
            ),
        };
        self.ctx.emit(Event::Primitive {
            area: area.into(),
            op: op.into(),
            args: serde_json::to_value(args).unwrap_or(serde_json::Value::Null),
            ok,
            result,
            ms: started.elapsed().as_millis() as u64,
        });
    }
}

fn cancelled(area: &str, op: &str) -> PrimitiveError {
    PrimitiveError::new(
        area,
        op,
        ErrorKind::Internal,
        "cancelled by the operator",
        "resume the run with `godwit resume RUN`",
    )
    .with_retryable(false)
}

/// Convert a typed primitive result into a Rhai value (a plain map/array/scalar).
pub fn to_rhai<T: Serialize>(value: &T) -> Result<Dynamic, Box<EvalAltResult>> {
    rhai::serde::to_dynamic(value)
}
