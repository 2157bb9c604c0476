//! Plumbing shared by the world-touching areas' Rhai modules: a call through the run's host with
//! the world's areas; reading option maps strictly; errors at the script position.
//!
//! An area's functions are `#[export_module]` functions (`#[rhai_fn(volatile)]`, STYLE.md 6)
//! that capture nothing: [`call`] finds the run's [`Host`](godwit_engine::Host) and the
//! world's [`Areas`] in the engine the function runs in ([`Installed::of`]), where
//! [`Areas::register`] installed them. So a function's `///` doc comment is its reference.

pub mod command;

use std::sync::Arc;
use std::time::Duration;

use godwit_engine::duration::Ramp;
use godwit_engine::{Call, ErrorKind, Installed, PrimitiveError};
use rhai::{Dynamic, EvalAltResult, Map, Module, NativeCallContext, Variant};
use serde::Serialize;

use crate::world::Areas;

/// A fallible function's result. Generic and named so that the reference shows `-> T`
/// (`godwit docs` strips the wrapper; rhai would spell its own `RhaiResultOf<T>` out).
pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Run `f` through the run's host (strict mode, transcript) with the world's areas, and hand
/// the result to Rhai as plain data of the type the function declares (`Map`, `Array`), with
/// errors at the script position of the call. `f` gets the [`Call`]: the unit, the idempotency
/// token, the step's deadline and cancellation, and the only ways to wait.
pub fn call<A, T, R>(
    ctx: &NativeCallContext,
    area: &str,
    op: &str,
    args: &A,
    f: impl FnOnce(&Call<'_>, &Areas) -> Result<T, PrimitiveError>,
) -> RhaiResult<R>
where
    A: Serialize + ?Sized,
    T: Serialize,
    R: Variant + Clone,
{
    let installed = Installed::of(ctx)?;
    let areas = installed.get::<Areas>().ok_or_else(|| {
        PrimitiveError::new(
            area,
            op,
            ErrorKind::Internal,
            format!("{area}::{op} needs a world and this engine has none installed"),
            "this is a bug in the program that built the engine: register the world's Areas",
        )
        .into_rhai_at(ctx.call_position())
    })?;
    let out = installed
        .host()
        .call(area, op, args, |cx| f(cx, areas))
        .map_err(|e| e.into_rhai_at(ctx.call_position()))?;
    godwit_engine::to_rhai(&out)?
        .try_cast_result::<R>()
        .map_err(|v| {
            PrimitiveError::new(
                area,
                op,
                ErrorKind::Internal,
                format!(
                    "{area}::{op} returned {} where its reference promises {}",
                    v.type_name(),
                    std::any::type_name::<R>()
                ),
                "this is a bug in the area's Rhai module",
            )
            .into_rhai_at(ctx.call_position())
        })
}

/// An area's module ready for every engine to share: named and indexed once, so registering
/// it copies nothing.
pub fn shared(name: &str, mut module: Module) -> Arc<Module> {
    module.set_id(name);
    module.build_index();
    Arc::new(module)
}

/// A script's bad argument, at the position of the call.
pub fn invalid(ctx: &NativeCallContext, e: PrimitiveError) -> Box<EvalAltResult> {
    e.into_rhai_at(ctx.call_position())
}

pub fn not_found(area: &str, op: &str, what: String, hint: impl Into<String>) -> PrimitiveError {
    PrimitiveError::new(area, op, ErrorKind::NotFound, what, hint)
}

pub fn conflict(area: &str, op: &str, what: String, hint: impl Into<String>) -> PrimitiveError {
    PrimitiveError::new(area, op, ErrorKind::Conflict, what, hint)
}

/// An options map read strictly: unknown keys are named, with the allowed ones.
pub struct Opts<'a> {
    area: &'a str,
    op: &'a str,
    map: Map,
}

impl<'a> Opts<'a> {
    pub fn new(
        area: &'a str,
        op: &'a str,
        map: Map,
        allowed: &[&str],
    ) -> Result<Self, PrimitiveError> {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(PrimitiveError::invalid(
                    area,
                    op,
                    format!("options.{key} is not an option of {area}::{op}"),
                    if allowed.is_empty() {
                        format!("{area}::{op} takes no options: pass #{{}}")
                    } else {
                        format!("allowed keys: {}", allowed.join(", "))
                    },
                ));
            }
        }
        Ok(Opts { area, op, map })
    }

    fn bad(&self, key: &str, got: &Dynamic, want: &str) -> PrimitiveError {
        PrimitiveError::invalid(
            self.area,
            self.op,
            format!(
                "options.{key} is {} ({got}); expected {want}",
                got.type_name()
            ),
            format!("see the reference of {}::{}", self.area, self.op),
        )
    }

    fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, PrimitiveError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .clone()
                .into_string()
                .map(Some)
                .map_err(|_| self.bad(key, v, "a string")),
        }
    }

    pub fn int(&self, key: &str, min: i64) -> Result<Option<i64>, PrimitiveError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_int()
                .ok()
                .filter(|i| *i >= min)
                .map(Some)
                .ok_or_else(|| self.bad(key, v, &format!("an integer >= {min}"))),
        }
    }

    /// A number: a float, or an integer taken as one.
    pub fn float(&self, key: &str) -> Result<Option<f64>, PrimitiveError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_float()
                .or_else(|_| v.as_int().map(|i| i as f64))
                .map(Some)
                .map_err(|_| self.bad(key, v, "a number")),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, PrimitiveError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .map_err(|_| self.bad(key, v, "true or false")),
        }
    }

    /// A duration: `"30s"`, `"5m"`, or whole seconds.
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, PrimitiveError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                if let Some(n) = v.as_int().ok().filter(|n| *n >= 0) {
                    return Ok(Some(Duration::from_secs(n as u64)));
                }
                v.clone()
                    .into_string()
                    .ok()
                    .and_then(|s| godwit_engine::duration::parse_duration(&s).ok())
                    .map(Some)
                    .ok_or_else(|| self.bad(key, v, "a duration like \"30s\", \"5m\", \"2h\""))
            }
        }
    }

    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, PrimitiveError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => strings(v)
                .map(Some)
                .ok_or_else(|| self.bad(key, v, "an array of strings")),
        }
    }

    pub fn string_map(
        &self,
        key: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, PrimitiveError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => string_map(v)
                .map(Some)
                .ok_or_else(|| self.bad(key, v, "a map of names to string values")),
        }
    }
}

/// An array of strings, or `None`.
pub fn strings(v: &Dynamic) -> Option<Vec<String>> {
    let arr = v.read_lock::<rhai::Array>()?;
    arr.iter().map(|s| s.clone().into_string().ok()).collect()
}

/// A map whose values are strings, integers, floats or bools, rendered as strings.
pub fn string_map(v: &Dynamic) -> Option<std::collections::BTreeMap<String, String>> {
    let map = v.read_lock::<Map>()?;
    map.iter()
        .map(|(k, v)| {
            let s = if v.is_string() {
                v.clone().into_string().ok()?
            } else if v.is_int() || v.is_float() || v.is_bool() {
                v.to_string()
            } else {
                return None;
            };
            Some((k.to_string(), s))
        })
        .collect()
}

/// A wait's deadline and polling schedule, from `timeout` / `every` / `min_every` options
/// (`min_every`: poll first after it, doubling up to `every`; see [`Ramp`]).
pub fn wait_opts(
    area: &str,
    op: &str,
    options: Map,
    default_timeout: Duration,
    default_every: Duration,
) -> Result<(Duration, Ramp), PrimitiveError> {
    let o = Opts::new(area, op, options, &["timeout", "every", "min_every"])?;
    let timeout = o.duration("timeout")?.unwrap_or(default_timeout);
    let every = o.duration("every")?.unwrap_or(default_every);
    let first = o.duration("min_every")?;
    if every.is_zero() || first.is_some_and(|f| f.is_zero() || f > every) {
        return Err(PrimitiveError::invalid(
            area,
            op,
            format!(
                "options.every is {}{}",
                godwit_engine::duration::format_duration(every),
                first
                    .map(|f| format!(
                        " and options.min_every {}",
                        godwit_engine::duration::format_duration(f)
                    ))
                    .unwrap_or_default()
            ),
            "every must be more than 0, min_every more than 0 and at most every: #{ every: \"5s\", min_every: \"10ms\" }",
        ));
    }
    Ok((timeout, Ramp { first, every }))
}

/// The body every `wait_until_*(id, options)` primitive shares: `timeout` / `every` from the
/// options (with the primitive's defaults), the call recorded with its deadline, and `probe`
/// polled through the run's clock until it returns `Some` (see [`poll`]).
#[allow(clippy::too_many_arguments)] // each is one fact of the wait; a struct would only rename them
pub fn wait_until<T: Serialize>(
    ctx: &NativeCallContext,
    area: &str,
    op: &str,
    id: &str,
    options: Map,
    (default_timeout, default_every): (Duration, Duration),
    what: &str,
    mut probe: impl FnMut(&Call<'_>, &Areas) -> Result<Option<T>, PrimitiveError>,
) -> RhaiResult<Map> {
    let (timeout, every) = wait_opts(area, op, options, default_timeout, default_every)
        .map_err(|e| invalid(ctx, e))?;
    let args = serde_json::json!({ "id": id, "timeout_s": timeout.as_secs() });
    call(ctx, area, op, &args, |cx, areas| {
        poll(cx, timeout, every, what, |cx| probe(cx, areas))
    })
}

/// Poll `probe` through the call's clock on the schedule `every` until it returns `Some`, or
/// time out with `what`.
pub fn poll<T>(
    cx: &Call<'_>,
    timeout: Duration,
    every: Ramp,
    what: &str,
    mut probe: impl FnMut(&Call<'_>) -> Result<Option<T>, PrimitiveError>,
) -> Result<T, PrimitiveError> {
    let deadline = cx.now_ms() + timeout.as_millis() as i64;
    let mut polls = 0u64;
    loop {
        polls += 1;
        if let Some(done) = probe(cx)? {
            return Ok(done);
        }
        if cx.now_ms() >= deadline {
            return Err(PrimitiveError::new(
                cx.area(),
                cx.op(),
                ErrorKind::Timeout,
                format!(
                    "{what} not reached within {}",
                    godwit_engine::duration::format_duration(timeout)
                ),
                "wait longer (options.timeout), or look at why with the describe_* primitive",
            )
            // The deadline is the caller's decision and it is spent: retrying would multiply it
            // (a retried 30-minute promotion wait kept a fenced source down for hours).
            .with_retryable(false));
        }
        let left = Duration::from_millis((deadline - cx.now_ms()).max(0) as u64);
        cx.waiting(what, polls, timeout.saturating_sub(left), timeout);
        cx.sleep(every.wait_after(polls).min(left))?;
    }
}
