//! The engine's script-visible functions: `step`, `gate`, `abort`, `now`, `sleep` and small
//! pure helpers. Primitive areas live in `godwit-stdlib`; these are the durable-execution core.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, FuncRegistration, Map, NativeCallContext};
use serde_json::Value;

use crate::duration::{format_duration, parse_duration};
use crate::error::{EngineError, ErrorKind, PrimitiveError};
use crate::host::Host;
use crate::journal::Entry;
use crate::plan::FlowKind;
use crate::report::strip_position;
use crate::run::ctx::{
    ExecScope, Replay, RunCtx, TERM_ABORT, TERM_STEP_TIMEOUT, UndoReg, step_timeout, terminate,
    termination_marker,
};
use crate::run::value::{ValueLimits, decode, encode};
use crate::transcript::{Event, Progress};

type RhaiResult = Result<Dynamic, Box<EvalAltResult>>;

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
fn replayed(ctx: &RunCtx, what: String, v: &Value) -> RhaiResult {
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
fn rethrow(value: Dynamic, err: &EvalAltResult) -> Box<EvalAltResult> {
    fn replace(err: &EvalAltResult, value: Dynamic) -> EvalAltResult {
        match err {
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
) -> RhaiResult {
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
) -> RhaiResult {
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

/// Install the engine's functions into `engine` for the run `ctx`.
pub(crate) fn register(engine: &mut Engine, ctx: &Arc<RunCtx>, host: &Host) {
    let c = ctx.clone();
    FuncRegistration::new("step")
        .with_volatility(true)
        .with_params_info(["name: &str", "body: FnPtr", "Dynamic"])
        .with_comments([super::docs::STEP])
        .register_into_engine(
            engine,
            move |nc: NativeCallContext, name: &str, f: FnPtr| {
                step_impl(&nc, &c, name, &Map::new(), f)
            },
        );
    let c = ctx.clone();
    FuncRegistration::new("step")
        .with_volatility(true)
        .with_params_info(["name: &str", "options: Map", "body: FnPtr", "Dynamic"])
        .with_comments([super::docs::STEP_OPTS])
        .register_into_engine(
            engine,
            move |nc: NativeCallContext, name: &str, opts: Map, f: FnPtr| {
                step_impl(&nc, &c, name, &opts, f)
            },
        );
    let c = ctx.clone();
    FuncRegistration::new("gate")
        .with_volatility(true)
        .with_params_info(["name: &str", "checks: FnPtr", "Dynamic"])
        .with_comments([super::docs::GATE])
        .register_into_engine(
            engine,
            move |nc: NativeCallContext, name: &str, f: FnPtr| {
                gate_impl(&nc, &c, name, &Map::new(), f)
            },
        );
    let c = ctx.clone();
    FuncRegistration::new("gate")
        .with_volatility(true)
        .with_params_info(["name: &str", "options: Map", "checks: FnPtr", "Dynamic"])
        .with_comments([super::docs::GATE_OPTS])
        .register_into_engine(
            engine,
            move |nc: NativeCallContext, name: &str, opts: Map, f: FnPtr| {
                gate_impl(&nc, &c, name, &opts, f)
            },
        );
    let c = ctx.clone();
    FuncRegistration::new("abort")
        .with_volatility(true)
        .with_params_info(["reason: &str", "()"])
        .with_comments([super::docs::ABORT])
        .register_into_engine(
            engine,
            move |nc: NativeCallContext, reason: &str| -> Result<(), Box<EvalAltResult>> {
                c.state().abort_requested = Some(reason.to_string());
                // At the call, so a report (an abort inside an undo, say) quotes its line.
                Err(Box::new(EvalAltResult::ErrorTerminated(
                    TERM_ABORT.into(),
                    nc.call_position(),
                )))
            },
        );
    let h = host.clone();
    FuncRegistration::new("now")
        .with_volatility(true)
        .with_params_info(["i64"])
        .with_comments([super::docs::NOW])
        .register_into_engine(engine, move || -> Result<i64, Box<EvalAltResult>> {
            h.call("core", "now", &(), |cx| Ok(cx.now_ms().div_euclid(1000)))
                .map_err(Into::into)
        });
    // Rhai's standard library has its own `sleep(INT)` / `sleep(FLOAT)` that blocks the thread
    // for real seconds — no clock, no cancellation, no strict mode. Exact-type overloads
    // registered on the engine are found before the standard package's, so every form a script
    // can write lands here.
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_volatility(true)
        .with_params_info(["duration: &str", "()"])
        .with_comments([super::docs::SLEEP])
        .register_into_engine(engine, move |d: &str| -> Result<(), Box<EvalAltResult>> {
            let d = parse_duration(d).map_err(|e| bad_option("sleep", e, ""))?;
            h.sleep("core", "sleep", d).map_err(Into::into)
        });
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_volatility(true)
        .register_into_engine(engine, move |secs: i64| -> Result<(), Box<EvalAltResult>> {
            let d = crate::duration::from_seconds(secs as f64)
                .map_err(|e| bad_option("sleep", e, ""))?;
            h.sleep("core", "sleep", d).map_err(Into::into)
        });
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_volatility(true)
        .register_into_engine(engine, move |secs: f64| -> Result<(), Box<EvalAltResult>> {
            // `Duration::from_secs_f64` panics on NaN, infinity and huge values.
            let d = crate::duration::from_seconds(secs).map_err(|e| bad_option("sleep", e, ""))?;
            h.sleep("core", "sleep", d).map_err(Into::into)
        });
    // Rhai's `timestamp()` reads the machine clock with no journal: a replay would branch
    // differently. Shadow it with an error that points at the journaled way.
    FuncRegistration::new("timestamp")
        .with_volatility(true)
        .register_into_engine(engine, || -> Result<Dynamic, Box<EvalAltResult>> {
            Err(bad_option(
                "timestamp",
                "timestamp() reads the machine clock outside the journal, so a resumed run could \
                 take another path"
                    .into(),
                "use now() inside a step (epoch seconds, virtual in the simulator)",
            ))
        });
    FuncRegistration::new("time_str")
        .with_params_info(["epoch_seconds: i64", "String"])
        .with_comments([super::docs::TIME_STR])
        .register_into_engine(engine, |t: i64| -> Result<String, Box<EvalAltResult>> {
            t.checked_mul(1000)
                .map(crate::clock::format_timestamp)
                .ok_or_else(|| {
                    PrimitiveError::invalid(
                        "core",
                        "time_str",
                        format!("{t} is not epoch seconds godwit can show as a time"),
                        "pass epoch seconds, e.g. now()",
                    )
                    .into()
                })
        });
    FuncRegistration::new("seconds")
        .with_params_info(["duration: &str", "i64"])
        .with_comments([super::docs::SECONDS])
        .register_into_engine(engine, |d: &str| -> Result<i64, Box<EvalAltResult>> {
            parse_duration(d)
                .map(|d| d.as_secs() as i64)
                .map_err(|e| PrimitiveError::invalid("core", "seconds", e, "").into())
        });
    let c = ctx.clone();
    FuncRegistration::new("phase")
        .with_volatility(true)
        .with_params_info(["name: &str", "()"])
        .with_comments([super::docs::PHASE])
        .register_into_engine(engine, move |name: &str| {
            let replaying = c.replaying();
            c.emit(Event::Phase {
                name: name.to_string(),
                replaying,
            });
        });
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
