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
        self.ctx.busy.restart();
        let (ok, result) = match out {
            Ok(v) => (
                true,
                abridge(serde_json::to_value(v).unwrap_or(serde_json::Value::Null)),
            ),
            Err(e) => (
                false,
                serde_json::to_value(e).unwrap_or(serde_json::Value::Null),
            ),
        };
        self.ctx.emit(Event::Primitive {
            area: area.into(),
            op: op.into(),
            args: abridge(serde_json::to_value(args).unwrap_or(serde_json::Value::Null)),
            ok,
            result,
            ms: started.elapsed().as_millis() as u64,
        });
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
        Value::String(s) if s.len() > MAX_STRING => {
            let cut = (0..=MAX_STRING)
                .rev()
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(0);
            Value::String(format!("{}… ({} bytes)", &s[..cut], s.len()))
        }
        other => other,
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
