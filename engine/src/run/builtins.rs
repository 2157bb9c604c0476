//! The engine's script-visible functions: `step`, `gate`, `abort`, `now`, `sleep` and small
//! pure helpers. Primitive areas live in `godwit-stdlib`; these are the durable-execution core.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rhai::plugin::*;
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use serde_json::Value;

use crate::duration::{format_duration, parse_duration};
use crate::error::{EngineError, ErrorKind, PrimitiveError};
use crate::host::{Host, Installed};
use crate::journal::Entry;
use crate::plan::FlowKind;
use crate::report::strip_position;
use crate::run::ctx::{
    ExecScope, Replay, RunCtx, TERM_ABORT, TERM_STEP_TIMEOUT, UndoReg, step_timeout, terminate,
    termination_marker,
};
use crate::run::value::{ValueLimits, decode, encode};
use crate::transcript::{Event, Progress};

/// A fallible function's result. Generic and named so that the reference shows `-> T`
/// (`godwit docs` strips the wrapper; rhai would spell its own `RhaiResultOf<T>` out).
type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A script value in its journal form, with the default limits (see [`super::value`]).
pub fn to_json(v: &Dynamic) -> Result<Value, String> {
    encode(v, "result", &ValueLimits::default()).map_err(|e| e.to_string())
}

/// A journal value as a script value. For displaying journals (the REPL's `run` view); the run
/// itself replays through [`decode`], which refuses what it cannot decode exactly.
pub fn from_json(v: &Value) -> Dynamic {
    decode(v).unwrap_or_else(|e| Dynamic::from(format!("<not decodable: {e}>")))
}

/// Replay a journaled value, exactly as the live run saw it. A value that does not decode was
/// not written by godwit: the run stops instead of replaying something else.
fn replayed(ctx: &RunCtx, what: String, v: &Value) -> RhaiResult<Dynamic> {
    decode(v).map_err(|e| {
        ctx.fatal(EngineError::Invalid(format!(
            "the journal's {what} cannot be replayed: {e}; the journal was edited or written by              another program — check it with `godwit verify {}`",
            ctx.run_id
        )))
    })
}

/// Journal a step's or gate's result: the journal form and the value the script continues with
/// (decoded from it, so a live run sees exactly what a replay will). A value that cannot be
/// journaled exactly is this step's failure, as an `Invalid` primitive error.
/// The `evidence.kind` of a gate's result: one check (`#{ pass, why, evidence }`), an array of
/// checks, or a map of named checks — the shapes `gate` accepts.
fn evidence_kinds(result: &Value) -> Vec<String> {
    let kind = |c: &Value| {
        c.get("evidence")
            .and_then(|e| e.get("kind"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let all: Vec<String> = match result {
        Value::Array(checks) => checks.iter().filter_map(kind).collect(),
        Value::Object(m) if m.contains_key("pass") => kind(result).into_iter().collect(),
        Value::Object(m) => m.values().filter_map(kind).collect(),
        _ => Vec::new(),
    };
    let mut kinds = Vec::new();
    for k in all {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    kinds
}

fn journal_result(
    nc: &NativeCallContext,
    kind: &str,
    name: &str,
    v: &Dynamic,
) -> Result<(Value, Dynamic), Box<EvalAltResult>> {
    let json = encode(v, "result", &ValueLimits::of(nc.engine())).map_err(|why| {
        PrimitiveError::invalid(
            "engine",
            kind,
            format!("{kind} '{name}' returned a value that cannot be journaled: {why}"),
            "return plain data (maps, arrays, strings, finite numbers, booleans); keep large \
             or deep data in the world and return what later steps need",
        )
        .into_rhai_at(nc.call_position())
    })?;
    let back = decode(&json).map_err(|e| bad_option(kind, e.to_string(), ""))?;
    Ok((json, back))
}

/// Journal a thrown value (a step's or gate's final error). One that cannot be journaled exactly
/// is replaced, live too, by an `Invalid` error that says so: a replay throws the same value.
fn journal_error(nc: &NativeCallContext, kind: &str, name: &str, v: Dynamic) -> (Value, Dynamic) {
    let limits = ValueLimits::of(nc.engine());
    let json = encode(&v, "error", &limits).unwrap_or_else(|why| {
        let replacement = PrimitiveError::new(
            "engine",
            kind,
            ErrorKind::Invalid,
            format!("{kind} '{name}' failed with a value that cannot be journaled: {why}"),
            "throw plain data: a message string or a map",
        )
        .with_retryable(false);
        serde_json::to_value(&replacement).unwrap_or(Value::Null)
    });
    let back = decode(&json).unwrap_or(v);
    (json, back)
}

/// The value a failed step or gate throws (and journals): the thrown value if the runbook or a
/// primitive threw one, else a primitive-error map describing the Rhai error.
fn error_value(err: &EvalAltResult, area: &str, op: &str) -> Dynamic {
    match err.unwrap_inner() {
        EvalAltResult::ErrorRuntime(v, _) => v.clone(),
        other => Dynamic::from_map(
            PrimitiveError::new(
                area,
                op,
                ErrorKind::Internal,
                strip_position(&other.to_string()),
                "",
            )
            .with_retryable(false)
            .to_map(),
        ),
    }
}

fn error_message(v: &Dynamic) -> String {
    match PrimitiveError::from_dynamic(v) {
        Some(p) => p.to_string(),
        None => v.to_string(),
    }
}

/// The step's (or gate's) failure as the script sees it: `value`, its journal form, in place of
/// the innermost error, inside the chain of calls that raised it. The chain carries each
/// function's source file, so a report names the module and line where the error was raised;
/// a bare position (its line in an unknown file) was reported in the calling file, quoting an
/// unrelated line. `catch` unwraps the chain, so scripts still catch the value.
///
/// The chain stops at an `eval` call: the failure is placed at the call, not inside the
/// evaluated text. A report would add where in that text it happened, and a replay — which
/// throws the journaled value at the `step` call, with no chain — cannot: the run's abort
/// reason would differ between a live run and its resume (found by the fuzz suite).
fn rethrow(value: Dynamic, err: &EvalAltResult) -> Box<EvalAltResult> {
    fn replace(err: &EvalAltResult, value: Dynamic) -> EvalAltResult {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, _, _, pos) if name == "eval" => {
                EvalAltResult::ErrorRuntime(value, *pos)
            }
            EvalAltResult::ErrorInFunctionCall(name, source, inner, pos) => {
                let inner = Box::new(replace(inner, value));
                EvalAltResult::ErrorInFunctionCall(name.clone(), source.clone(), inner, *pos)
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                EvalAltResult::ErrorInModule(path.clone(), Box::new(replace(inner, value)), *pos)
            }
            other => EvalAltResult::ErrorRuntime(value, other.position()),
        }
    }
    Box::new(replace(err, value))
}

fn bad_option(op: &str, msg: String, hint: &str) -> Box<EvalAltResult> {
    PrimitiveError::invalid("engine", op, msg, hint).into()
}

fn duration_opt(op: &str, key: &str, v: &Dynamic) -> Result<Duration, Box<EvalAltResult>> {
    if let Ok(n) = v.as_int()
        && n >= 0
    {
        return crate::duration::from_seconds(n as f64)
            .map_err(|e| bad_option(op, format!("option '{key}': {e}"), ""));
    }
    let s = v.clone().into_string().map_err(|t| {
        bad_option(
            op,
            format!("option '{key}' is a {t}"),
            "give a duration such as \"30s\" or \"5m\"",
        )
    })?;
    parse_duration(&s).map_err(|e| bad_option(op, format!("option '{key}': {e}"), ""))
}

fn check_keys(op: &str, opts: &Map, allowed: &[&str]) -> Result<(), Box<EvalAltResult>> {
    for k in opts.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(bad_option(
                op,
                format!("unknown option '{k}'"),
                &format!("{op} options are: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Attempts for retryable errors when a step does not say (see `step_options`).
pub(crate) const DEFAULT_ATTEMPTS: u32 = 8;

/// Longest single wait between retries: with the default 5 s start, 8 attempts span ~10 min,
/// which rides out a typical AWS throttling episode.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct StepOptions {
    undo: Option<FnPtr>,
    attempts: u32,
    backoff: Duration,
    timeout: Option<Duration>,
}

fn step_options(opts: &Map) -> Result<StepOptions, Box<EvalAltResult>> {
    check_keys("step", opts, &["undo", "retry", "timeout"])?;
    let undo = match opts.get("undo") {
        None => None,
        Some(v) => Some(v.clone().try_cast::<FnPtr>().ok_or_else(|| {
            bad_option(
                "step",
                format!("option 'undo' is a {}", v.type_name()),
                "give a closure: undo: |result| ...",
            )
        })?),
    };
    // Retryable errors (throttling, timeouts) are retried by default: steps are idempotent by
    // contract, and a throttled AWS call should not abort a migration. `retry: #{ attempts: 1 }`
    // turns it off.
    let (mut attempts, mut backoff) = (DEFAULT_ATTEMPTS, Duration::from_secs(5));
    if let Some(r) = opts.get("retry") {
        let r = r.read_lock::<Map>().ok_or_else(|| {
            bad_option(
                "step",
                "option 'retry' must be a map".into(),
                "retry: #{ attempts: 3, backoff: \"10s\" }",
            )
        })?;
        check_keys("step retry", &r, &["attempts", "backoff"])?;
        attempts = DEFAULT_ATTEMPTS;
        if let Some(a) = r.get("attempts") {
            attempts = a
                .as_int()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    bad_option(
                        "step",
                        "retry.attempts must be an integer from 1 to 100".into(),
                        "",
                    )
                })? as u32;
        }
        if let Some(b) = r.get("backoff") {
            backoff = duration_opt("step", "retry.backoff", b)?;
        }
    }
    let timeout = opts
        .get("timeout")
        .map(|t| duration_opt("step", "timeout", t))
        .transpose()?;
    Ok(StepOptions {
        undo,
        attempts,
        backoff,
        timeout,
    })
}

fn register_undo(
    nc: &NativeCallContext,
    ctx: &RunCtx,
    name: &str,
    undo: Option<FnPtr>,
    result: &Dynamic,
) {
    if let Some(f) = undo {
        #[allow(deprecated)] // "volatile", not deprecated: see UndoReg::context
        let context = nc.store_data();
        ctx.state().undos.push(UndoReg {
            step: name.into(),
            f,
            result: result.clone(),
            context,
        });
    }
}

fn step_impl(
    nc: &NativeCallContext,
    ctx: &Arc<RunCtx>,
    name: &str,
    opts: &Map,
    f: FnPtr,
) -> RhaiResult<Dynamic> {
    let opts = step_options(opts)?;
    ctx.ensure_top(FlowKind::Step, name)?;
    ctx.claim_name(FlowKind::Step, name)?;
    match ctx.replay_next(FlowKind::Step, name, nc.call_position())? {
        Replay::Completed(v) => {
            ctx.emit(Event::StepReplayed { name: name.into() });
            let result = replayed(ctx, format!("result of step '{name}'"), &v)?;
            register_undo(nc, ctx, name, opts.undo, &result);
            return Ok(result);
        }
        Replay::Failed(e) => {
            ctx.emit(Event::StepReplayed { name: name.into() });
            return Err(Box::new(EvalAltResult::ErrorRuntime(
                replayed(ctx, format!("error of step '{name}'"), &e)?,
                nc.call_position(),
            )));
        }
        Replay::Rerun { .. } => ctx.emit(Event::StepRerun { name: name.into() }),
        Replay::Live => {
            ctx.append(Entry::StepStarted {
                name: name.into(),
                at: ctx.now_ms(),
            })?;
            ctx.emit(Event::StepStarted { name: name.into() });
        }
    }
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        {
            let mut st = ctx.state();
            st.scope = ExecScope::Step(name.into());
            st.deadline = opts
                .timeout
                .map(|t| (ctx.now_ms() + t.as_millis() as i64, name.to_string()));
        }
        let out = f.call_within_context::<Dynamic>(nc, ());
        {
            let mut st = ctx.state();
            st.scope = ExecScope::Top;
            st.deadline = None;
        }
        let err = match out.and_then(|v| journal_result(nc, "step", name, &v)) {
            Ok((json, result)) => {
                ctx.append(Entry::StepCompleted {
                    name: name.into(),
                    result: json.clone(),
                    at: ctx.now_ms(),
                })?;
                ctx.emit(Event::StepCompleted {
                    name: name.into(),
                    result: json.clone(),
                    ms: started.elapsed().as_millis() as u64,
                });
                register_undo(nc, ctx, name, opts.undo, &result);
                return Ok(result);
            }
            Err(e) => e,
        };
        // Interrupted while the body ran: whatever the body saw (a cut wait, a closed
        // connection), the operator stopped the run; this is no failure of the step, so nothing
        // is journaled and nothing rolls back (`resume` runs the step again).
        if ctx.cancel.is_cancelled() {
            return Err(terminate(crate::run::ctx::TERM_CANCEL));
        }
        // A step timeout surfaces as a termination from the progress callback; it is an
        // ordinary (catchable, journaled) failure of this step.
        let err = if termination_marker(&err).as_deref() == Some(TERM_STEP_TIMEOUT) {
            step_timeout(name).into_rhai()
        } else if !err.unwrap_inner().is_catchable() {
            return Err(err); // cancel, abort, limits, fatal: not this step's failure
        } else {
            err
        };
        let value = error_value(&err, "step", name);
        let retryable = PrimitiveError::from_dynamic(&value).is_some_and(|p| p.retryable);
        if retryable && attempt < opts.attempts {
            let delay = opts
                .backoff
                .saturating_mul(2u32.saturating_pow(attempt - 1))
                .min(MAX_BACKOFF);
            ctx.emit(Event::StepRetrying {
                name: name.into(),
                attempt,
                delay: format_duration(delay),
                error: error_message(&value),
            });
            if !ctx.clock.sleep(delay, &ctx.cancel) {
                return Err(terminate(crate::run::ctx::TERM_CANCEL));
            }
            attempt += 1;
            continue;
        }
        let (json, value) = journal_error(nc, "step", name, value);
        let message = error_message(&value);
        ctx.append(Entry::StepFailed {
            name: name.into(),
            error: json,
            message: message.clone(),
            at: ctx.now_ms(),
        })?;
        ctx.emit(Event::StepFailed {
            name: name.into(),
            error: message,
        });
        return Err(rethrow(value, &err));
    }
}

struct GateOptions {
    every: Duration,
    /// Ramp: the first wait, doubled each poll up to `every`.
    min_every: Option<Duration>,
    hold: u32,
    timeout: Duration,
}

fn gate_options(opts: &Map) -> Result<GateOptions, Box<EvalAltResult>> {
    check_keys("gate", opts, &["every", "min_every", "hold", "timeout"])?;
    let every = opts
        .get("every")
        .map(|v| duration_opt("gate", "every", v))
        .transpose()?;
    let min_every = opts
        .get("min_every")
        .map(|v| duration_opt("gate", "min_every", v))
        .transpose()?;
    let timeout = opts
        .get("timeout")
        .map(|v| duration_opt("gate", "timeout", v))
        .transpose()?;
    let hold = match opts.get("hold") {
        None => 1,
        Some(h) => h
            .as_int()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                bad_option(
                    "gate",
                    "option 'hold' must be an integer from 1 to 10000".into(),
                    "hold: 3 passes three polls in a row",
                )
            })? as u32,
    };
    let every = every.unwrap_or(Duration::from_secs(30));
    if every.is_zero() {
        return Err(bad_option(
            "gate",
            "option 'every' must be more than 0".into(),
            "",
        ));
    }
    if let Some(m) = min_every
        && (m.is_zero() || m > every)
    {
        return Err(bad_option(
            "gate",
            format!(
                "option 'min_every' ({}) must be more than 0 and at most 'every' ({})",
                format_duration(m),
                format_duration(every)
            ),
            "min_every: \"10ms\", every: \"5s\" polls after 10 ms, 20 ms, 40 ms, ... then every 5 s",
        ));
    }
    Ok(GateOptions {
        every,
        min_every,
        hold,
        timeout: timeout.unwrap_or(Duration::from_secs(3600)),
    })
}

/// One check of a gate poll.
struct Check {
    name: Option<String>,
    pass: bool,
    why: String,
}

/// A gate closure returns one check `#{ pass, why, evidence }`, an array of them, or a map of
/// named checks.
fn parse_checks(gate: &str, v: &Dynamic) -> Result<Vec<Check>, Box<EvalAltResult>> {
    let shape = || {
        bad_option(
            "gate",
            format!(
                "gate '{gate}' returned a {}; expected #{{ pass, why, evidence }}, an array of those, or a map of named ones",
                v.type_name()
            ),
            "e.g. gate(\"caught-up\", || #{ pass: lag == 0, why: `lag ${lag} bytes` })",
        )
    };
    let one = |name: Option<String>, c: &Dynamic| -> Result<Check, Box<EvalAltResult>> {
        let m = c.read_lock::<Map>().ok_or_else(shape)?;
        let pass = m
            .get("pass")
            .and_then(|p| p.as_bool().ok())
            .ok_or_else(shape)?;
        let why = m.get("why").map(|w| w.to_string()).unwrap_or_default();
        Ok(Check { name, pass, why })
    };
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return a.iter().map(|c| one(None, c)).collect();
    }
    let m = v.read_lock::<Map>().ok_or_else(shape)?;
    if m.contains_key("pass") {
        return Ok(vec![one(None, v)?]);
    }
    if m.is_empty() {
        return Err(shape());
    }
    m.iter().map(|(k, c)| one(Some(k.to_string()), c)).collect()
}

fn gate_impl(
    nc: &NativeCallContext,
    ctx: &Arc<RunCtx>,
    name: &str,
    opts: &Map,
    f: FnPtr,
) -> RhaiResult<Dynamic> {
    let opts = gate_options(opts)?;
    ctx.ensure_top(FlowKind::Gate, name)?;
    ctx.claim_name(FlowKind::Gate, name)?;
    let started_at = match ctx.replay_next(FlowKind::Gate, name, nc.call_position())? {
        Replay::Completed(v) => {
            ctx.emit(Event::GateReplayed { name: name.into() });
            return replayed(ctx, format!("result of gate '{name}'"), &v);
        }
        Replay::Failed(e) => {
            ctx.emit(Event::GateReplayed { name: name.into() });
            return Err(Box::new(EvalAltResult::ErrorRuntime(
                replayed(ctx, format!("error of gate '{name}'"), &e)?,
                nc.call_position(),
            )));
        }
        // The timeout counts from the first start, so crashes cannot extend it forever.
        Replay::Rerun { started_at } => started_at,
        Replay::Live => {
            let now = ctx.now_ms();
            ctx.append(Entry::GateStarted {
                name: name.into(),
                at: now,
            })?;
            now
        }
    };
    ctx.emit(Event::GateStarted {
        name: name.into(),
        every: format_duration(opts.every),
        hold: opts.hold,
        timeout: format_duration(opts.timeout),
    });
    let deadline = started_at + opts.timeout.as_millis() as i64;
    let (mut polls, mut streak) = (0u64, 0u32);
    let mut last_why: Option<Vec<String>> = None;
    loop {
        polls += 1;
        ctx.set_scope(ExecScope::Gate(name.into()));
        let out = f.call_within_context::<Dynamic>(nc, ());
        ctx.set_scope(ExecScope::Top);
        let (value, checks) = match out {
            Ok(v) => {
                let checks = parse_checks(name, &v)?;
                (Some(v), checks)
            }
            Err(err) if !err.unwrap_inner().is_catchable() => return Err(err),
            // Interrupted during a poll: not the gate's failure (see step_impl).
            Err(_) if ctx.cancel.is_cancelled() => {
                return Err(terminate(crate::run::ctx::TERM_CANCEL));
            }
            Err(err) => {
                let value = error_value(&err, "gate", name);
                match PrimitiveError::from_dynamic(&value) {
                    // A transient failure (throttling, a timeout) is a closed poll, not the end.
                    Some(p) if p.retryable => (
                        None,
                        vec![Check {
                            name: None,
                            pass: false,
                            why: format!("{p} (will poll again)"),
                        }],
                    ),
                    _ => {
                        let (json, value) = journal_error(nc, "gate", name, value);
                        let message = error_message(&value);
                        ctx.append(Entry::GateFailed {
                            name: name.into(),
                            polls,
                            error: json,
                            at: ctx.now_ms(),
                        })?;
                        ctx.emit(Event::GateTimedOut {
                            name: name.into(),
                            polls,
                            why: vec![message],
                        });
                        return Err(rethrow(value, &err));
                    }
                }
            }
        };
        let passing = checks.iter().filter(|c| c.pass).count();
        let all = passing == checks.len();
        streak = if all { streak + 1 } else { 0 };
        let why: Vec<String> = checks
            .iter()
            .filter(|c| !c.pass || all)
            .map(|c| match &c.name {
                Some(n) => format!("{n}: {}", c.why),
                None => c.why.clone(),
            })
            .collect();
        if last_why.as_ref() != Some(&why) {
            ctx.emit(Event::GatePoll {
                name: name.into(),
                poll: polls,
                passing,
                checks: checks.len(),
                streak,
                why: why.clone(),
            });
            last_why = Some(why.clone());
        }
        let now = ctx.now_ms();
        ctx.progress(&Progress {
            gate: name.into(),
            poll: polls,
            waited_ms: now - started_at,
            timeout_ms: opts.timeout.as_millis() as i64,
            why: why.clone(),
        });
        if streak >= opts.hold {
            let v = value.unwrap_or_default();
            let (json, result) = journal_result(nc, "gate", name, &v)?;
            ctx.append(Entry::GatePassed {
                name: name.into(),
                polls,
                result: json.clone(),
                at: now,
            })?;
            ctx.emit(Event::GatePassed {
                name: name.into(),
                polls,
                waited: format_duration(Duration::from_millis((now - started_at).max(0) as u64)),
                evidence: evidence_kinds(&json),
            });
            return Ok(result);
        }
        if now >= deadline {
            let err = PrimitiveError::new(
                "gate",
                name,
                ErrorKind::Timeout,
                format!(
                    "gate '{name}' still closed after {} ({polls} polls): {}",
                    format_duration(opts.timeout),
                    if why.is_empty() {
                        "no reason given".to_string()
                    } else {
                        why.join("; ")
                    }
                ),
                "the reasons say what is missing; fix the cause or raise the gate's timeout",
            )
            .with_retryable(false);
            ctx.append(Entry::GateFailed {
                name: name.into(),
                polls,
                error: serde_json::to_value(&err).unwrap_or(Value::Null),
                at: now,
            })?;
            ctx.emit(Event::GateTimedOut {
                name: name.into(),
                polls,
                why,
            });
            return Err(err.into_rhai());
        }
        let ramp = crate::duration::Ramp {
            first: opts.min_every,
            every: opts.every,
        };
        let wait = ramp
            .wait_after(polls)
            .min(Duration::from_millis((deadline - now) as u64));
        if !ctx.clock.sleep(wait, &ctx.cancel) {
            return Err(terminate(crate::run::ctx::TERM_CANCEL));
        }
    }
}

/// Install the engine's functions into `engine` for the run `ctx`: the host they find
/// through their context ([`Installed::of`]), the module of built-ins, and the print hooks.
pub(crate) fn register(engine: &mut Engine, ctx: &Arc<RunCtx>, host: &Host) {
    host.bind(engine);
    // Registered after Engine::new's standard packages, so found before them: every form of
    // `sleep` and `timestamp` a script can write lands here (see the module).
    engine.register_global_module(BUILTINS.clone());
    let c = ctx.clone();
    engine.on_print(move |s| {
        let replaying = c.replaying();
        c.emit(Event::Print {
            message: s.to_string(),
            replaying,
        });
    });
    let c = ctx.clone();
    engine.on_debug(move |s, _src, pos| {
        let replaying = c.replaying();
        c.emit(Event::Print {
            message: format!("[debug {pos}] {s}"),
            replaying,
        });
    });
}

/// A failed `assert` / `assert_eq`: what the runbook expected does not hold. `Conflict` (the
/// world or the data is not in the expected state), never retryable: asserting again does not
/// change the answer (a gate, not an assert, is how a runbook waits for something).
fn assertion_failed(ctx: &NativeCallContext, op: &str, message: String) -> Box<EvalAltResult> {
    PrimitiveError::new(
        "core",
        op,
        ErrorKind::Conflict,
        message,
        "the runbook asserted this; find out why it does not hold before resuming",
    )
    .with_retryable(false)
    .into_rhai_at(ctx.call_position())
}

/// `a == b` as a script means it (arrays and maps element by element); values of different
/// types without an `==` between them are not equal.
fn script_equal(ctx: &NativeCallContext, a: &Dynamic, b: &Dynamic) -> RhaiResult<bool> {
    let (mut a, mut b) = (a.clone(), b.clone());
    let different_types = a.type_id() != b.type_id();
    match ctx.call_native_fn_raw("==", false, &mut [&mut a, &mut b]) {
        Ok(v) => Ok(v.as_bool().unwrap_or(false)),
        Err(e) if different_types && matches!(*e, EvalAltResult::ErrorFunctionNotFound(..)) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The built-ins capture nothing, so their module is built once per process.
static BUILTINS: LazyLock<Arc<Module>> = LazyLock::new(|| {
    let mut m = exported_module!(builtins);
    m.build_index();
    Arc::new(m)
});

/// The engine's script-visible functions; `docs/primitives/core.md` is generated from these
/// doc comments and every example there runs as a runbook in the `docs` test binary.
#[export_module]
mod builtins {
    use super::*;

    /// Run `body` once per run and journal its result: the durable unit of a runbook.
    ///
    /// On resume, a step that completed returns its journaled result without running; one that
    /// started but never completed (a crash inside it) runs again, so bodies must be idempotent
    /// (check, then act). The result must be plain data (maps, arrays, strings, numbers, bools).
    ///
    /// Parameters:
    /// * `name` — kebab-case, unique within the run, stable across versions (the journal key).
    /// * `body` — a closure `|| ...`; world-touching primitives may only be called inside it.
    ///
    /// Returns: the body's result (from the journal when replaying).
    ///
    /// Errors: the body's error, journaled and thrown again identically on replay; a duplicate or
    /// non-kebab-case name; a step inside another step, gate or undo.
    ///
    /// Example:
    /// ```rhai
    /// let started = step("record-start", || now());
    /// let target = step("name-target", || #{ name: CLUSTER + "-aurora" });
    /// print(`${target.name} since ${time_str(started)}`);
    /// assert_eq(target.name, "orders-db-aurora");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn step(ctx: NativeCallContext, name: &str, body: FnPtr) -> RhaiResult<Dynamic> {
        let installed = Installed::of(&ctx)?;
        step_impl(&ctx, installed.host().run(), name, &Map::new(), body)
    }

    /// `step` with options.
    ///
    /// Parameters:
    /// * `name` — as for `step(name, body)`.
    /// * `options` — a map:
    ///   * `undo: |result| ...` — how to reverse this step; on abort, undos run in reverse order of
    ///     registration, each journaled, and receive the step's result;
    ///   * `retry: #{ attempts: 3, backoff: "5s" }` — retry errors marked `retryable` (throttling,
    ///     timeouts) with exponential backoff through the run's clock. This is the default;
    ///     `retry: #{ attempts: 1 }` turns retries off. (Undos retry retryable errors 5 times.)
    ///   * `timeout: "10m"` — fail the step (kind `Timeout`) when it runs longer.
    /// * `body` — the closure.
    ///
    /// Returns: the body's result.
    ///
    /// Errors: as `step(name, body)`; an unknown option names the allowed ones.
    ///
    /// Example:
    /// ```rhai
    /// let replica = step("create-replica", #{
    ///     undo: |r| print(`would delete ${r.id}`),
    ///     retry: #{ attempts: 3, backoff: "10s" },
    ///     timeout: "30m",
    /// }, || #{ id: CLUSTER + "-aurora" });
    /// assert_eq(replica, #{ id: "orders-db-aurora" });
    /// ```
    #[rhai_fn(name = "step", volatile, return_raw)]
    pub fn step_with_options(
        ctx: NativeCallContext,
        name: &str,
        options: Map,
        body: FnPtr,
    ) -> RhaiResult<Dynamic> {
        let installed = Installed::of(&ctx)?;
        step_impl(&ctx, installed.host().run(), name, &options, body)
    }

    /// Poll `checks` every 30 s until they pass once (timeout 1 h). See the options form.
    ///
    /// Parameters:
    /// * `name` — kebab-case, unique within the run (shares the namespace of steps).
    /// * `checks` — a closure returning `#{ pass, why, evidence }`, an array of those, or a map of
    ///   named ones.
    ///
    /// Returns: the value of the passing poll (journaled; replayed on resume).
    ///
    /// Errors: `Timeout` (area `gate`) with every closed check's `why`; a non-retryable error of a
    /// check (retryable ones count as a closed poll and are retried).
    ///
    /// Example:
    /// ```rhai
    /// let r = gate("one-poll", || #{ pass: true, why: "nothing to wait for" });
    /// assert_eq(r, #{ pass: true, why: "nothing to wait for" });
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn gate(ctx: NativeCallContext, name: &str, checks: FnPtr) -> RhaiResult<Dynamic> {
        let installed = Installed::of(&ctx)?;
        gate_impl(&ctx, installed.host().run(), name, &Map::new(), checks)
    }

    /// Poll `checks` `every` until all pass `hold` times in a row, or fail after `timeout`.
    ///
    /// The transcript records each change of the reasons a gate is closed (with the numbers), and
    /// a terminal shows a live progress line. The timeout counts from the gate's first start, so a
    /// crash and resume cannot extend it.
    ///
    /// Parameters:
    /// * `name` — kebab-case, unique within the run.
    /// * `options` — `every` (default `"30s"`), `hold` (default 1), `timeout` (default `"1h"`),
    ///   `min_every` (no default): poll first after `min_every`, doubling up to `every` — for gates
    ///   inside the write blackout, which usually open within milliseconds.
    /// * `checks` — a closure returning `#{ pass, why, evidence }`, an array of those, or a map of
    ///   named ones.
    ///
    /// Returns: the value of the last (passing) poll.
    ///
    /// Errors: `Timeout` naming every closed check's `why`; an unknown option; a malformed check.
    ///
    /// Example:
    /// ```rhai
    /// let t0 = step("t0", || now());
    /// let r = gate("settled", #{ every: "1s", hold: 2, timeout: "30s" }, || {
    ///     let waited = now() - t0;
    ///     #{ waited: #{ pass: waited >= 1, why: `waited ${waited} s of 1 s`, evidence: waited } }
    /// });
    /// // Passing once (after 1 s) is not enough with hold: 2; the next poll passes again.
    /// assert_eq(r.waited.evidence, 2);
    /// ```
    #[rhai_fn(name = "gate", volatile, return_raw)]
    pub fn gate_with_options(
        ctx: NativeCallContext,
        name: &str,
        options: Map,
        checks: FnPtr,
    ) -> RhaiResult<Dynamic> {
        let installed = Installed::of(&ctx)?;
        gate_impl(&ctx, installed.host().run(), name, &options, checks)
    }

    /// Stop the run and roll back: every registered undo runs in reverse order, each journaled.
    ///
    /// Cannot be caught. Before a promotion rollback is free; after it, a runbook must decide
    /// explicitly what reversing means (see docs/writing-runbooks.md).
    ///
    /// Parameters:
    /// * `reason` — why, for the journal and the operator.
    ///
    /// Returns: never.
    ///
    /// Errors: none; the run ends `rolled-back` (exit code 3), or `rolling-back` if an undo fails.
    ///
    /// Example:
    /// ```rhai
    /// // this example aborts
    /// step("prepare", #{ undo: |r| print("undoing prepare") }, || "prepared");
    /// abort("the maintenance window closed");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn abort(ctx: NativeCallContext, reason: &str) -> RhaiResult<()> {
        Installed::of(&ctx)?.host().run().state().abort_requested = Some(reason.to_string());
        // At the call, so a report (an abort inside an undo, say) quotes its line.
        Err(Box::new(EvalAltResult::ErrorTerminated(
            TERM_ABORT.into(),
            ctx.call_position(),
        )))
    }

    /// Current time in epoch seconds: the system clock, or the simulator's virtual clock.
    ///
    /// Touches the world (its value differs on every run), so only inside a step, gate or undo.
    ///
    /// Returns: epoch seconds (INT).
    ///
    /// Errors: called outside a step, gate or undo.
    ///
    /// Example:
    /// ```rhai
    /// let t = step("when", || now());
    /// print(time_str(t));
    /// let later = step("a-minute-later", || { sleep("1m"); now() });
    /// assert_eq(later - t, 60);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn now(ctx: NativeCallContext) -> RhaiResult<i64> {
        Installed::of(&ctx)?
            .host()
            .call("core", "now", &(), |cx| Ok(cx.now_ms().div_euclid(1000)))
            .map_err(Into::into)
    }

    /// Wait through the run's clock (virtual in the simulator), cancellable by Ctrl-C and bounded
    /// by the step's timeout. Also `sleep(30)` (INT seconds) and `sleep(0.5)` (FLOAT seconds): every
    /// form replaces Rhai's own `sleep`, which would block the thread for real.
    ///
    /// Parameters:
    /// * `duration` — a string such as `"30s"`, `"5m"`, `"1h30m"`.
    ///
    /// Returns: `()`.
    ///
    /// Errors: a malformed duration, NaN, or one longer than 3650 days; called outside a step; the
    /// step's timeout reached.
    ///
    /// Example:
    /// ```rhai
    /// let waited = step("pause", || {
    ///     let t0 = now();
    ///     sleep("90s");
    ///     now() - t0
    /// });
    /// assert_eq(waited, 90);
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn sleep(ctx: NativeCallContext, duration: &str) -> RhaiResult<()> {
        let d = parse_duration(duration).map_err(|e| bad_option("sleep", e, ""))?;
        Installed::of(&ctx)?
            .host()
            .sleep("core", "sleep", d)
            .map_err(Into::into)
    }

    // Rhai's standard library has its own `sleep(INT)` / `sleep(FLOAT)` that blocks the thread
    // for real seconds — no clock, no cancellation, no strict mode. These exact-type overloads
    // are found before the standard package's. Documented with `sleep(duration)`, so they have
    // no reference entry of their own.
    #[rhai_fn(name = "sleep", volatile, return_raw)]
    pub fn sleep_seconds(ctx: NativeCallContext, seconds: i64) -> RhaiResult<()> {
        let d = crate::duration::from_seconds(seconds as f64)
            .map_err(|e| bad_option("sleep", e, ""))?;
        Installed::of(&ctx)?
            .host()
            .sleep("core", "sleep", d)
            .map_err(Into::into)
    }

    #[rhai_fn(name = "sleep", volatile, return_raw)]
    pub fn sleep_float_seconds(ctx: NativeCallContext, seconds: f64) -> RhaiResult<()> {
        // `Duration::from_secs_f64` panics on NaN, infinity and huge values.
        let d = crate::duration::from_seconds(seconds).map_err(|e| bad_option("sleep", e, ""))?;
        Installed::of(&ctx)?
            .host()
            .sleep("core", "sleep", d)
            .map_err(Into::into)
    }

    // Rhai's `timestamp()` reads the machine clock with no journal: a replay would branch
    // differently. Shadowed by an error that points at the journaled way; not in the
    // reference, since no runbook should call it.
    #[rhai_fn(volatile, return_raw)]
    pub fn timestamp() -> RhaiResult<Dynamic> {
        Err(bad_option(
            "timestamp",
            "timestamp() reads the machine clock outside the journal, so a resumed run could \
             take another path"
                .into(),
            "use now() inside a step (epoch seconds, virtual in the simulator)",
        ))
    }

    /// Render epoch seconds as RFC 3339 UTC.
    ///
    /// Parameters:
    /// * `epoch_seconds` — e.g. the value of `now()`.
    ///
    /// Returns: a string like `"2026-11-22T05:30:12Z"`.
    ///
    /// Errors: `Invalid` for a number too large to be epoch seconds (beyond ±292 million years).
    ///
    /// Example:
    /// ```rhai
    /// assert_eq(time_str(0), "1970-01-01T00:00:00Z");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn time_str(epoch_seconds: i64) -> RhaiResult<String> {
        epoch_seconds
            .checked_mul(1000)
            .map(crate::clock::format_timestamp)
            .ok_or_else(|| {
                PrimitiveError::invalid(
                    "core",
                    "time_str",
                    format!("{epoch_seconds} is not epoch seconds godwit can show as a time"),
                    "pass epoch seconds, e.g. now()",
                )
                .into()
            })
    }

    /// A duration string in whole seconds.
    ///
    /// Parameters:
    /// * `duration` — e.g. `"5m"`, `"1h30m"`.
    ///
    /// Returns: INT seconds.
    ///
    /// Errors: a malformed duration, with the accepted forms.
    ///
    /// Example:
    /// ```rhai
    /// assert_eq(seconds("1h30m"), 5400);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn seconds(duration: &str) -> RhaiResult<i64> {
        parse_duration(duration)
            .map(|d| d.as_secs() as i64)
            .map_err(|e| PrimitiveError::invalid("core", "seconds", e, "").into())
    }

    /// Fail unless `condition` holds: how a runbook states what it expects before it acts on it
    /// (and how every example in this reference states its result).
    ///
    /// Parameters:
    /// * `condition` — a boolean.
    /// * `message` — what was expected, for the operator: it becomes the error's `message`.
    ///
    /// Returns: `()`.
    ///
    /// Errors: `Conflict` (area `core`, op `assert`, not retryable) with `message` when
    /// `condition` is false. Inside a step it fails the step (journaled, the run rolls back
    /// unless caught); to wait until something holds, use a gate.
    ///
    /// Example:
    /// ```rhai
    /// let lag = step("read-lag", || 0);
    /// assert(lag == 0, `replica lag is ${lag} bytes; wait for it to catch up`);
    /// // A failed assertion is an error like any other: it fails a step, `try` catches it.
    /// let failed = #{};
    /// try { assert(lag > 0, "lag is positive"); } catch (e) { failed = e; }
    /// assert_eq(failed.message, "lag is positive");
    /// ```
    #[rhai_fn(name = "assert", return_raw)]
    pub fn assert_holds(ctx: NativeCallContext, condition: bool, message: &str) -> RhaiResult<()> {
        if condition {
            return Ok(());
        }
        Err(assertion_failed(&ctx, "assert", message.to_string()))
    }

    /// Fail unless `actual == expected` (as a script compares: arrays and maps element by
    /// element, values of different types are not equal).
    ///
    /// Parameters:
    /// * `actual` — the value the runbook got.
    /// * `expected` — the value it should be.
    ///
    /// Returns: `()`.
    ///
    /// Errors: `Conflict` (area `core`, op `assert_eq`, not retryable) with the message
    /// `expected <expected>, got <actual>`.
    ///
    /// Example:
    /// ```rhai
    /// let target = step("name-target", || #{ name: CLUSTER + "-aurora", instances: 1 });
    /// assert_eq(target, #{ name: "orders-db-aurora", instances: 1 });
    /// let failed = #{};
    /// try { assert_eq(target.instances, 2); } catch (e) { failed = e; }
    /// assert_eq(failed.message, "expected 2, got 1");
    /// ```
    #[rhai_fn(name = "assert_eq", return_raw)]
    pub fn assert_equal(
        ctx: NativeCallContext,
        actual: Dynamic,
        expected: Dynamic,
    ) -> RhaiResult<()> {
        if script_equal(&ctx, &actual, &expected)? {
            return Ok(());
        }
        Err(assertion_failed(
            &ctx,
            "assert_eq",
            format!("expected {expected:?}, got {actual:?}"),
        ))
    }

    /// Mark the start of a phase of the runbook (`"preflight"`, `"quiescence"`, ...). Not
    /// journaled: it structures the transcript, the CLI output and summaries such as `godwit demo`'s
    /// timeline.
    ///
    /// Parameters:
    /// * `name` — a short name for people.
    ///
    /// Returns: `()`.
    ///
    /// Errors: none.
    ///
    /// Example:
    /// ```rhai
    /// assert_eq(phase("preflight"), ()); // it only marks the transcript
    /// let ok = step("check", || true);
    /// assert(ok, "the preflight check passed");
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn phase(ctx: NativeCallContext, name: &str) -> RhaiResult<()> {
        let installed = Installed::of(&ctx)?;
        let run = installed.host().run();
        let replaying = run.replaying();
        run.emit(Event::Phase {
            name: name.to_string(),
            replaying,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rhai::{Dynamic, Map};

    use crate::journal::memory::MemoryStore;
    use crate::run::Runner;
    use crate::session::Session;
    use crate::{Cancel, Clock, Limits, VirtualClock};

    fn session(rt: &tokio::runtime::Runtime) -> Session {
        Session::new(&Runner {
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(VirtualClock::new(0)) as Arc<dyn Clock>,
            handle: rt.handle().clone(),
            limits: Limits::default(),
            cancel: Cancel::new(),
            sinks: vec![],
            plugins: vec![],
            world: "test".into(),
        })
    }

    /// The error an assertion throws, as `catch (e)` sees it; `None` when it holds.
    fn failure(s: &mut Session, assertion: &str) -> Option<Map> {
        let v: Dynamic = s
            .eval(
                &format!(
                    "let caught = (); try {{ {assertion}; }} catch (e) {{ caught = e; }} caught"
                ),
                "<t>",
            )
            .unwrap_or_else(|e| panic!("{assertion}: {e:?}"));
        v.try_cast::<Map>()
    }

    #[test]
    fn assertions_pass_silently_and_fail_with_a_conflict_naming_both_values() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut s = session(&rt);
        for holds in [
            "assert(1 < 2, \"order\")",
            "assert_eq(1 + 1, 2)",
            "assert_eq(\"a\", \"a\")",
            "assert_eq([1, #{ b: [2] }], [1, #{ b: [2] }])",
            "assert_eq(#{ a: 1, b: \"x\" }, #{ b: \"x\", a: 1 })",
            "assert_eq((), ())",
        ] {
            if let Some(e) = failure(&mut s, holds) {
                panic!("{holds} failed: {e:?}");
            }
        }
        let e = failure(&mut s, "assert(1 > 2, \"one is more than two\")").unwrap();
        let text = |k: &str| e[k].clone().into_string().unwrap();
        assert_eq!(
            (text("area"), text("op"), text("kind"), text("message")),
            (
                "core".into(),
                "assert".into(),
                "Conflict".into(),
                "one is more than two".into()
            )
        );
        assert!(!e["retryable"].as_bool().unwrap());
        for (fails, message) in [
            ("assert_eq(1, 2)", "expected 2, got 1"),
            ("assert_eq(\"1\", 1)", "expected 1, got \"1\""),
            ("assert_eq([1, 2], [1])", "expected [1], got [1, 2]"),
            (
                "assert_eq(#{ a: 1 }, #{ a: 2 })",
                "expected #{\"a\": 2}, got #{\"a\": 1}",
            ),
        ] {
            let e = failure(&mut s, fails).unwrap_or_else(|| panic!("{fails} held"));
            assert_eq!(e["op"].clone().into_string().unwrap(), "assert_eq");
            assert_eq!(
                e["message"].clone().into_string().unwrap(),
                message,
                "{fails}"
            );
        }
    }
}
