//! Executing a run: build the engine, replay the journal from the top, continue live, and on
//! abort run the undos in reverse.

mod approval;
pub(crate) mod builtins;
mod busy;
pub(crate) mod ctx;
mod stack;
pub mod value;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, OptimizationLevel, Scope};
use serde::Serialize;
use serde_json::Value;
use tokio::runtime::Handle;

use crate::clock::{Cancel, Clock};
use crate::error::EngineError;
use crate::host::Host;
use crate::journal::{Entry, JournalStore, Outcome};
use crate::plan::{Plan, UndoState};
use crate::report::{Report, from_rhai};
use crate::runbook::{self, Runbook};
use crate::transcript::{Event, Sink};
pub use builtins::{from_json, to_json};
use ctx::{ExecScope, TERM_ABORT, TERM_CANCEL, TERM_STEP_TIMEOUT, termination_marker};
pub use ctx::{MUTATING_VERBS, RunCtx, is_mutating};

/// Attempts for an undo that fails with a retryable error.
const UNDO_ATTEMPTS: u32 = builtins::DEFAULT_ATTEMPTS;

/// Resource limits for a runbook, so a runaway script ends with a message instead of hanging
/// or crashing.
///
/// Rhai enforces the size limits only at some points, and at a cost: it measures a value after
/// an operation that may have grown it (a `push`, `+=`, a function's result), walking the whole
/// value each time, so growing an array by `push` is quadratic; and it never measures a map grown
/// by `m[key] = v`. So the journal measures again, exactly, everything it records (see
/// [`value`]), and the busy limit ends a script that computes too long whatever it computes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rhai operations per evaluation. Must be at least 1: Rhai reads 0 as "no limit" (the CLI
    /// refuses `--max-operations 0`).
    pub max_operations: u64,
    /// Longest the script may compute without calling a primitive or waiting (see [`busy`]);
    /// `None`: no busy limit.
    pub max_busy: Option<std::time::Duration>,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A gate polling every 30 s for a day with a few hundred operations per poll stays
            // far below this. It is the backstop for loops that keep calling primitives; the
            // busy limit ends a loop that does not call any much sooner.
            max_operations: 200_000_000,
            // `loop {}` used to run 126 s (debug build) until the operations limit; the standard
            // runbook's longest stretch without a primitive call or a wait is milliseconds.
            max_busy: Some(std::time::Duration::from_secs(30)),
            max_call_levels: 64,
            max_expr_depth: 128,
            max_string_size: 4 << 20,
            max_array_size: 1_000_000,
            max_map_size: 100_000,
        }
    }
}

impl Limits {
    fn apply(&self, engine: &mut Engine) {
        engine.set_max_operations(self.max_operations);
        engine.set_max_call_levels(self.max_call_levels);
        engine.set_max_expr_depths(self.max_expr_depth, self.max_expr_depth);
        engine.set_max_string_size(self.max_string_size);
        engine.set_max_array_size(self.max_array_size);
        engine.set_max_map_size(self.max_map_size);
    }

    /// Explain which limit a Rhai error hit, if any.
    fn explain(&self, err: &EvalAltResult) -> Option<String> {
        Some(match err.unwrap_inner() {
            EvalAltResult::ErrorTooManyOperations(_) => format!(
                "runbook exceeded the operations limit ({}): an endless loop? raise it with \
                 --max-operations if the runbook really needs more",
                self.max_operations
            ),
            EvalAltResult::ErrorTerminated(..)
                if termination_marker(err).as_deref() == Some(busy::TERM_BUSY) =>
            {
                format!(
                    "runbook computed for {} without calling a primitive or waiting (the busy \
                     limit): an endless loop, or a loop growing a large array or string one \
                     element at a time?",
                    crate::duration::format_duration(self.max_busy.unwrap_or_default())
                )
            }
            EvalAltResult::ErrorStackOverflow(_) => format!(
                "runbook exceeded the call depth limit ({}): runaway recursion?",
                self.max_call_levels
            ),
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                let limit = match what.as_str() {
                    w if w.contains("string") || w.contains("Length of string") => {
                        self.max_string_size
                    }
                    w if w.contains("array") || w.contains("Size of array") => self.max_array_size,
                    _ => self.max_map_size,
                };
                format!("runbook exceeded a size limit: {what} (limit {limit})")
            }
            _ => return None,
        })
    }
}

/// Releases the journal writer (and with it the run's lock) however `execute` ends, including a
/// panic unwinding through it: a long-lived process must not keep a run locked after one of its
/// primitives panicked, just as a dead process's lock is released by the OS.
struct Detach(Arc<RunCtx>);

impl Drop for Detach {
    fn drop(&mut self) {
        self.0.detach();
    }
}

/// Something that installs functions (a primitive area, a world, test toys) into a run's engine.
pub trait Plugin: Send + Sync {
    fn register(&self, engine: &mut Engine, host: &Host);
}

impl<F: Fn(&mut Engine, &Host) + Send + Sync> Plugin for F {
    fn register(&self, engine: &mut Engine, host: &Host) {
        self(engine, host)
    }
}

/// How a run ended (or stopped) this time.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum RunStatus {
    Succeeded {
        result: Value,
    },
    /// Aborted, and every undo completed.
    RolledBack {
        reason: String,
        report: Option<Report>,
        undone: Vec<String>,
    },
    /// An undo failed; the run stays open so `resume` retries the rollback.
    RollbackFailed {
        reason: String,
        step: String,
        error: String,
    },
    /// Cancelled by the operator; resumable, nothing rolled back.
    Interrupted,
}

impl RunStatus {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunStatus::Succeeded { .. } => crate::exit::OK,
            RunStatus::RolledBack { .. } => crate::exit::ROLLED_BACK,
            RunStatus::RollbackFailed { .. } => crate::exit::ROLLBACK_FAILED,
            RunStatus::Interrupted => crate::exit::INTERRUPTED,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    #[serde(flatten)]
    pub status: RunStatus,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub runbook: PathBuf,
    pub cluster: String,
    pub params: serde_json::Map<String, Value>,
    /// Use this id instead of generating one (tests).
    pub run_id: Option<String>,
}

/// What to resume, and how.
#[derive(Debug, Clone, Default)]
pub struct ResumeRequest {
    pub run_id: String,
    /// Resume under a runbook whose hash changed; replay then checks step by step.
    pub force_runbook_change: bool,
    /// `resume --set`: parameters to change, only those the runbook's schema marks `on_resume`.
    pub set: serde_json::Map<String, Value>,
    /// `godwit abort`: roll back at the first safe point with this reason (recorded as an abort
    /// request first, so a wait for an approval ends too).
    pub abort: Option<String>,
}

/// Drives runs: one Rhai engine per run, on the calling (blocking) thread.
#[derive(Clone)]
pub struct Runner {
    pub store: Arc<dyn JournalStore>,
    pub clock: Arc<dyn Clock>,
    pub handle: Handle,
    pub limits: Limits,
    pub cancel: Cancel,
    pub sinks: Vec<Arc<dyn Sink>>,
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Name of the world the plugins implement (journaled; a resume must use the same).
    pub world: String,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("world", &self.world)
            .finish_non_exhaustive()
    }
}

/// A new run id: a ULID (48 bits of wall-clock milliseconds, then 80 random bits, in Crockford
/// base32) and the cluster, e.g. `01JD3XK5QW8Z9F3M2N4P6R7T8V-orders-db`. Always the wall clock,
/// never the world's (every simulated run starts at the same virtual time), and monotonic
/// within a process, so ids sort by start time even within one millisecond: `last` and
/// "newest first" follow the ids (see [`run_order`]).
pub fn new_run_id(cluster: &str) -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    // Overflow needs 2^80 ids in one millisecond; a random one would do then.
    let id = generator
        .generate()
        .unwrap_or_else(|o| o.commit_overflow_random());
    format!("{id}-{cluster}")
}

/// The order of runs, oldest first: by the start time the id carries (a ULID's milliseconds, or
/// the `YYYYMMDD-HHMMSS` of ids written before ULIDs), then by the id itself (a ULID's random
/// part is monotonic within one process). Ids of neither form sort first.
pub fn run_order(id: &str) -> (i64, &str) {
    let ms = id
        .get(..26)
        .and_then(|u| ulid::Ulid::from_string(u).ok())
        .map(|u| u.timestamp_ms() as i64)
        .or_else(|| legacy_start_ms(id))
        .unwrap_or(i64::MIN);
    (ms, id)
}

/// The start time of a run id of the form `YYYYMMDD-HHMMSS-<cluster>-<hex>` (before ULIDs).
fn legacy_start_ms(id: &str) -> Option<i64> {
    let (date, rest) = (id.get(..8)?, id.get(8..)?);
    let time = rest.strip_prefix('-')?.get(..6)?;
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(date) || !digits(time) {
        return None;
    }
    let n = |s: &str| s.parse::<i64>().ok();
    let (y, m, d) = (n(&date[..4])?, n(&date[4..6])?, n(&date[6..])?);
    let (hh, mm, ss) = (n(&time[..2])?, n(&time[2..4])?, n(&time[4..])?);
    // Days from civil (Howard Hinnant), the inverse of clock::format_timestamp's.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1000)
}

/// `cluster` must be an identifier RDS accepts ([`crate::params::rds_identifier_problem`]):
/// anything else would only fail at preflight, after the run was created.
pub fn validate_cluster(cluster: &str) -> Result<(), EngineError> {
    match crate::params::rds_identifier_problem(cluster) {
        None => Ok(()),
        Some(why) => Err(EngineError::Invalid(format!(
            "--cluster {cluster:?}: {why} (the source's RDS instance identifier, e.g. orders-db)"
        ))),
    }
}

impl Runner {
    pub(crate) fn build(&self, ctx: &Arc<RunCtx>) -> (Engine, Host) {
        let mut engine = new_engine();
        // Simple, never Full: Full evaluates functions with constant arguments at compile time.
        engine.set_optimization_level(OptimizationLevel::Simple);
        self.limits.apply(&mut engine);
        let cancel = self.cancel.clone();
        let c = ctx.clone();
        let max_busy = self.limits.max_busy;
        engine.on_progress(move |ops| {
            if cancel.is_cancelled() {
                return Some(TERM_CANCEL.into());
            }
            // Clock reads are cheap but not free; a step timeout need not be exact to the op.
            if ops % 4096 == 0 {
                if let Some(left) = c.remaining_ms()
                    && left <= 0
                {
                    return Some(TERM_STEP_TIMEOUT.into());
                }
                if max_busy.is_some_and(|max| c.busy.busy_for() > max) {
                    return Some(busy::TERM_BUSY.into());
                }
            }
            None
        });
        let host = Host::new(ctx.clone(), self.handle.clone());
        builtins::register(&mut engine, ctx, &host);
        approval::register(&mut engine);
        for p in &self.plugins {
            p.register(&mut engine, &host);
        }
        (engine, host)
    }

    /// Start a new run. Bad input (unparsable runbook, bad cluster id) fails before anything is
    /// written.
    pub fn start(&self, req: StartRequest) -> Result<RunReport, EngineError> {
        self.start_as(req, false).map(|(r, _)| r)
    }

    /// Run `req` as a plan: everything up to the first call that would change the world
    /// (preflight, in the standard runbook), then stop there like an interrupt — nothing fails,
    /// nothing rolls back. Use a runner whose store is a scratch one (a
    /// [`MemoryStore`](crate::journal::memory::MemoryStore)): a plan's journal is not a run.
    /// Returns the report (`Interrupted` when it stopped at a mutation) and where it stopped
    /// (`rds::create_parameter_groups in 'create-parameter-groups'`).
    pub fn plan(&self, req: StartRequest) -> Result<(RunReport, Option<String>), EngineError> {
        self.start_as(req, true)
    }

    fn start_as(
        &self,
        req: StartRequest,
        planning: bool,
    ) -> Result<(RunReport, Option<String>), EngineError> {
        validate_cluster(&req.cluster)?;
        let run_id = req
            .run_id
            .clone()
            .unwrap_or_else(|| new_run_id(&req.cluster));
        let ctx = RunCtx::new(
            run_id.clone(),
            self.clock.clone(),
            self.cancel.clone(),
            true,
            self.sinks.clone(),
        )
        .with_runbook_path(req.runbook.clone())
        .with_store(self.store.clone());
        if planning {
            ctx.set_planning();
        }
        let (mut engine, _host) = self.build(&ctx);
        let prepared = runbook::load(&mut engine, &req.runbook).and_then(|rb| {
            // Every parameter is checked before the run exists (exit 2, nothing journaled).
            let params = crate::params::prepare(&engine, &rb, &req.cluster, &req.params)?;
            Ok((rb, Value::Object(params)))
        });
        // Ctrl-C while the runbook loads ends the load at its next operation: that is an
        // interrupt, not a runbook that does not parse.
        if self.cancel.is_cancelled() {
            return Err(EngineError::Interrupted(
                "interrupted before the run started; nothing was created".into(),
            ));
        }
        let (rb, params) = prepared?;
        let writer = self.store.create(&run_id)?;
        // The cluster lock, claimed once the run's directory is locked (so a concurrent claimer
        // sees a start in progress, not a stale claim) and before anything is journaled.
        if let Err(e) = self.store.claim_cluster(&req.cluster, &run_id) {
            drop(writer);
            let _ = self.store.discard(&run_id);
            return Err(e.into());
        }
        ctx.attach(writer, &Plan::default(), None);
        let _detach = Detach(ctx.clone());
        let started = Entry::RunStarted {
            run_id: run_id.clone(),
            runbook: rb.info.clone(),
            cluster: req.cluster.clone(),
            world: self.world.clone(),
            params: params.clone(),
            godwit_version: env!("CARGO_PKG_VERSION").into(),
            at: self.clock.now_ms(),
        };
        if let Err(e) = ctx.append(started) {
            let fatal = ctx.state().fatal.take();
            ctx.detach();
            let _ = self.store.release_cluster(&req.cluster, &run_id);
            let _ = self.store.discard(&run_id);
            return Err(fatal.unwrap_or_else(|| EngineError::Io(e.to_string())));
        }
        ctx.emit(Event::RunStarted {
            run_id: run_id.clone(),
            runbook: rb.info.name.clone(),
            version: rb.info.version.clone(),
            hash: rb.info.hash.clone(),
            cluster: req.cluster.clone(),
            world: self.world.clone(),
        });
        let report = self.execute(&engine, &rb, &ctx, &req.cluster, params)?;
        let stop = ctx.state().plan_stop.clone();
        Ok((report, stop))
    }

    /// Resume a run from its journal: replay what completed, continue where it stopped.
    pub fn resume(
        &self,
        run_id: &str,
        force_runbook_change: bool,
    ) -> Result<RunReport, EngineError> {
        self.resume_with(ResumeRequest {
            run_id: run_id.into(),
            force_runbook_change,
            ..ResumeRequest::default()
        })
    }

    /// Roll back run `run_id` on purpose (`godwit abort`): record the request, then, unless
    /// another process drives the run (it acts on the request at its next safe point; the
    /// answer is then [`JournalError::Locked`](crate::journal::JournalError::Locked)), replay
    /// it and roll back before the first step that has not started. A step that was in progress
    /// when the run stopped runs to its end first, so that its undo is registered.
    pub fn abort(&self, run_id: &str, reason: &str) -> Result<RunReport, EngineError> {
        self.resume_with(ResumeRequest {
            run_id: run_id.into(),
            abort: Some(reason.into()),
            ..ResumeRequest::default()
        })
    }

    /// [`Runner::resume`] with everything a resume can be asked: a forced runbook change,
    /// parameters changed on resume, an abort.
    pub fn resume_with(&self, req: ResumeRequest) -> Result<RunReport, EngineError> {
        let run_id = req.run_id.as_str();
        let force_runbook_change = req.force_runbook_change;
        if let Some(reason) = &req.abort {
            let plan = Plan::from_records(&self.store.read(run_id)?.records);
            if plan.finished.is_some() {
                return Err(EngineError::AlreadyFinished {
                    run_id: run_id.into(),
                    status: plan.status().as_str().into(),
                    nothing_to: "abort",
                });
            }
            self.store.request(
                run_id,
                &crate::journal::Request::Abort {
                    reason: reason.clone(),
                    by: crate::journal::Request::operator(),
                    at: crate::clock::SystemClock.now_ms(),
                },
            )?;
        }
        let (loaded, writer) = self.store.open(run_id)?;
        let plan = Plan::from_records(&loaded.records);
        let Some(started) = plan.started.clone() else {
            return Err(EngineError::Invalid(format!(
                "run {run_id} has no run-started record; it never began"
            )));
        };
        if plan.finished.is_some() {
            return Err(EngineError::AlreadyFinished {
                run_id: run_id.into(),
                status: plan.status().as_str().into(),
                nothing_to: if req.abort.is_some() {
                    "abort"
                } else {
                    "resume"
                },
            });
        }
        if started.world != self.world {
            return Err(EngineError::Invalid(format!(
                "run {run_id} was started in world '{}' but this resume uses world '{}'; resume it with --world {}",
                started.world, self.world, started.world
            )));
        }
        // A simulated world whose clock is behind the journal was restored older than the
        // run it continues (its state was not saved with the journal's last record): the run
        // would act on a world that has not reached what it already decided. Time in a run
        // never goes back.
        let last_at = loaded.records.iter().map(|r| r.entry.at()).max();
        if let Some(last_at) = last_at.filter(|t| self.clock.is_kept() && self.clock.now_ms() < *t)
        {
            return Err(EngineError::Io(format!(
                "run {run_id}: its world '{}' is at {} but the journal's last record is at {}: the \
                 world's saved state is older than the run and cannot continue it; nothing was \
                 appended — restore the world files the run left (or discard the run and start \
                 again)",
                self.world,
                crate::clock::format_timestamp(self.clock.now_ms()),
                crate::clock::format_timestamp(last_at),
            )));
        }
        let path = PathBuf::from(&started.runbook.path);
        let ctx = RunCtx::new(
            run_id.into(),
            self.clock.clone(),
            self.cancel.clone(),
            true,
            self.sinks.clone(),
        )
        .with_runbook_path(path.clone())
        .with_store(self.store.clone());
        let (mut engine, _host) = self.build(&ctx);
        let rb = runbook::load(&mut engine, &path);
        if self.cancel.is_cancelled() {
            return Err(EngineError::Interrupted(format!(
                "interrupted before run {run_id} resumed; nothing was appended"
            )));
        }
        let rb = rb?;
        let forced = if rb.info.hash != started.runbook.hash {
            if !force_runbook_change {
                return Err(EngineError::RunbookChanged {
                    run_id: run_id.into(),
                    pinned: started.runbook.hash.clone(),
                    current: rb.info.hash.clone(),
                });
            }
            Some(rb.info.hash.clone())
        } else {
            None
        };
        // Defaults a journal written before the runbook declared them lacks; after a forced
        // change, parameters the runbook no longer accepts are refused before anything is appended.
        let journaled = plan.params().as_object().cloned().unwrap_or_default();
        let mut params =
            crate::params::prepare_resume(&engine, &rb, run_id, &started.cluster, &journaled)?;
        // `resume --set`: only what the schema lets change on resume, checked like at start.
        let changed = if req.set.is_empty() {
            None
        } else {
            let schema =
                crate::params::schema(&engine, &rb, &started.cluster)?.ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "resume --set: runbook {} declares no parameters (fn parameters), so none \
                     can change on resume; nothing was resumed",
                        rb.info.name
                    ))
                })?;
            params = crate::params::override_on_resume(&schema, &params, &req.set)?;
            Some(Value::Object(req.set.clone()))
        };
        // The cluster lock: normally this run holds it since its start; a run started before
        // cluster locks existed claims it now, unless another unfinished run holds the cluster.
        self.store.claim_cluster(&started.cluster, run_id)?;
        let last_seq = loaded.records.last().map(|r| r.seq);
        ctx.attach(writer, &plan, last_seq);
        let _detach = Detach(ctx.clone());
        ctx.append(Entry::RunResumed {
            at: self.clock.now_ms(),
            pid: std::process::id(),
            runbook_hash: forced.clone(),
            params: changed,
        })
        .map_err(|e| {
            ctx.state()
                .fatal
                .take()
                .unwrap_or_else(|| EngineError::Io(e.to_string()))
        })?;
        ctx.emit(Event::RunResumed {
            run_id: run_id.into(),
            records: loaded.records.len(),
            torn_tail: loaded.torn_tail,
            forced_runbook_change: forced,
        });
        self.execute(&engine, &rb, &ctx, &started.cluster, Value::Object(params))
    }

    /// Run the script (and, if it aborts, the rollback) on a thread of its own with a stack
    /// sized for Rhai's recursion (see [`stack`]).
    fn execute(
        &self,
        engine: &Engine,
        rb: &Runbook,
        ctx: &Arc<RunCtx>,
        cluster: &str,
        params: Value,
    ) -> Result<RunReport, EngineError> {
        let out = stack::on_script_stack(|| self.execute_here(engine, rb, ctx, cluster, params))
            .unwrap_or_else(|e| self.stop(ctx, e));
        // An undo keeps its step's calling context, whose functions were registered for this
        // run and hold `ctx`: a cycle that kept every finished run alive, its world included
        // (about 1 MB per simulated migration: a fleet plan's RSS grew with the fleet). Nothing
        // runs this run's undos after this point: a rollback already took them, and `resume`
        // or `abort` registers them again in a new run context.
        drop(std::mem::take(&mut ctx.state().undos));
        out
    }

    fn execute_here(
        &self,
        engine: &Engine,
        rb: &Runbook,
        ctx: &Arc<RunCtx>,
        cluster: &str,
        params: Value,
    ) -> Result<RunReport, EngineError> {
        ctx.busy.restart();
        let mut scope = Scope::new();
        scope.push_constant("RUN_ID", ctx.run_id.clone());
        scope.push_constant("CLUSTER", cluster.to_string());
        scope.push_constant("WORLD", self.world.clone());
        let params = match value::decode(&params) {
            Ok(p) => p,
            Err(e) => return self.stop(ctx, EngineError::Invalid(format!("PARAMS{e}"))),
        };
        scope.push_constant("PARAMS", params);
        let out = engine.eval_ast_with_scope::<Dynamic>(&mut scope, &rb.ast);
        let report = |status| {
            Ok(RunReport {
                run_id: ctx.run_id.clone(),
                status,
            })
        };
        let err = match out {
            Ok(v) => {
                if let Some(item) = ctx.unconsumed() {
                    let r = Report::new(format!(
                        "replay diverged from the journal: the runbook finished, but the journal has {} next",
                        item.label()
                    ))
                    .with_hint("the runbook changed since these steps ran; restore it");
                    return self.stop(ctx, EngineError::NonDeterminism(r));
                }
                let detail = self.final_value(engine, ctx, &v, "the runbook's final value");
                self.append_or_stop(
                    ctx,
                    Entry::RunFinished {
                        outcome: Outcome::Succeeded,
                        detail: detail.clone(),
                        at: ctx.now_ms(),
                    },
                )?;
                ctx.emit(Event::RunFinished {
                    outcome: Outcome::Succeeded,
                    detail: detail.clone(),
                });
                ctx.detach();
                self.release(cluster, &ctx.run_id);
                return report(RunStatus::Succeeded { result: detail });
            }
            Err(e) => e,
        };
        let fatal = ctx.state().fatal.take();
        if let Some(fatal) = fatal {
            return self.stop(ctx, fatal);
        }
        let mut marker = termination_marker(&err);
        // A gate's wait woken to act on `godwit abort` (see RunCtx::progress): an abort, not an
        // interrupt — unless the operator also pressed Ctrl-C, which wins.
        if marker.as_deref() == Some(TERM_CANCEL)
            && ctx.state().abort_requested.is_some()
            && self.cancel.take_wake()
        {
            marker = Some(TERM_ABORT.into());
        }
        // Once the operator interrupted, stopping resumable is always safe: whatever ended the
        // script is either journaled already (a failed step replays its failure on resume and
        // the rollback happens then) or was cut by the interrupt itself. Ctrl-C is not abort.
        if marker.as_deref() == Some(TERM_CANCEL) || self.cancel.is_cancelled() {
            ctx.emit(Event::RunStopped {
                reason: format!("interrupted; continue with `godwit resume {}`", ctx.run_id),
            });
            ctx.detach();
            return report(RunStatus::Interrupted);
        }
        // Everything else aborts the run: explicit abort(), an unhandled error, a gate timeout,
        // a limit. Record why, then roll back.
        let (reason, rep) = match marker.as_deref() {
            Some(TERM_ABORT) => {
                let reason = ctx
                    .state()
                    .abort_requested
                    .clone()
                    .unwrap_or_else(|| "aborted".into());
                let resumed_abort = ctx.state().abort_recorded.is_some();
                (
                    reason,
                    (!resumed_abort)
                        .then(|| from_rhai(&err, &rb.path))
                        .map(|mut r| {
                            r.message = format!("abort: {}", r.message);
                            r
                        }),
                )
            }
            _ => {
                let mut r = from_rhai(&err, &rb.path);
                if let Some(limit) = self.limits.explain(&err) {
                    r.message = limit;
                }
                (format!("unhandled error: {}", r.message), Some(r))
            }
        };
        let rep = rep.map(|mut r| {
            if let Some(TERM_ABORT) = marker.as_deref() {
                r.message = format!("abort(\"{reason}\")");
            }
            r
        });
        self.rollback(engine, rb, ctx, cluster, reason, rep)
    }

    /// Give up the cluster lock of a run that finished. Best effort: a claim that stays behind
    /// is stale (its run finished) and the next claimer takes it over.
    fn release(&self, cluster: &str, run_id: &str) {
        let _ = self.store.release_cluster(cluster, run_id);
    }

    fn rollback(
        &self,
        engine: &Engine,
        rb: &Runbook,
        ctx: &Arc<RunCtx>,
        cluster: &str,
        reason: String,
        rep: Option<Report>,
    ) -> Result<RunReport, EngineError> {
        let recorded = ctx.state().abort_recorded.clone();
        let reason = match recorded {
            Some(r) => r,
            None => {
                self.append_or_stop(
                    ctx,
                    Entry::AbortStarted {
                        reason: reason.clone(),
                        at: ctx.now_ms(),
                    },
                )?;
                ctx.state().abort_recorded = Some(reason.clone());
                reason
            }
        };
        ctx.emit(Event::AbortStarted {
            reason: reason.clone(),
        });
        ctx.busy.restart();
        let undos = std::mem::take(&mut ctx.state().undos);
        let mut undone = Vec::new();
        for reg in undos.iter().rev() {
            let prior = ctx.state().undo_state.get(&reg.step).cloned();
            if prior == Some(UndoState::Completed) {
                ctx.emit(Event::UndoSkipped {
                    step: reg.step.clone(),
                });
                undone.push(reg.step.clone());
                continue;
            }
            if prior.is_none() {
                self.append_or_stop(
                    ctx,
                    Entry::UndoStarted {
                        step: reg.step.clone(),
                        at: ctx.now_ms(),
                    },
                )?;
            }
            ctx.emit(Event::UndoStarted {
                step: reg.step.clone(),
            });
            let out = self.run_undo(engine, ctx, reg);
            let fatal = ctx.state().fatal.take();
            if let Some(fatal) = fatal {
                return self.stop(ctx, fatal);
            }
            match out {
                Ok(v) => {
                    let what = format!("the result of the undo of '{}'", reg.step);
                    let result = self.final_value(engine, ctx, &v, &what);
                    self.append_or_stop(
                        ctx,
                        Entry::UndoCompleted {
                            step: reg.step.clone(),
                            result,
                            at: ctx.now_ms(),
                        },
                    )?;
                    ctx.state()
                        .undo_state
                        .insert(reg.step.clone(), UndoState::Completed);
                    ctx.emit(Event::UndoCompleted {
                        step: reg.step.clone(),
                    });
                    undone.push(reg.step.clone());
                }
                Err(e) if termination_marker(&e).as_deref() == Some(TERM_CANCEL) => {
                    ctx.emit(Event::RunStopped {
                        reason: format!(
                            "interrupted during rollback; continue with `godwit resume {}`",
                            ctx.run_id
                        ),
                    });
                    ctx.detach();
                    return Ok(RunReport {
                        run_id: ctx.run_id.clone(),
                        status: RunStatus::Interrupted,
                    });
                }
                Err(e) => {
                    let message = self.undo_failure(&e, ctx, rb);
                    self.append_or_stop(
                        ctx,
                        Entry::UndoFailed {
                            step: reg.step.clone(),
                            message: message.clone(),
                            at: ctx.now_ms(),
                        },
                    )?;
                    ctx.emit(Event::UndoFailed {
                        step: reg.step.clone(),
                        error: message.clone(),
                    });
                    ctx.emit(Event::RunStopped { reason: format!("rollback stopped at the undo of '{}'; fix the cause and `godwit resume {}` to retry it", reg.step, ctx.run_id) });
                    ctx.detach();
                    return Ok(RunReport {
                        run_id: ctx.run_id.clone(),
                        status: RunStatus::RollbackFailed {
                            reason,
                            step: reg.step.clone(),
                            error: message,
                        },
                    });
                }
            }
        }
        let detail = Value::String(reason.clone());
        self.append_or_stop(
            ctx,
            Entry::RunFinished {
                outcome: Outcome::RolledBack,
                detail: detail.clone(),
                at: ctx.now_ms(),
            },
        )?;
        ctx.emit(Event::RunFinished {
            outcome: Outcome::RolledBack,
            detail,
        });
        ctx.detach();
        self.release(cluster, &ctx.run_id);
        Ok(RunReport {
            run_id: ctx.run_id.clone(),
            status: RunStatus::RolledBack {
                reason,
                report: rep,
                undone,
            },
        })
    }

    /// Run one undo; retryable errors (throttling, timeouts) are retried with backoff through the
    /// run's clock, because a rollback that stops half-way needs an operator.
    fn run_undo(
        &self,
        engine: &Engine,
        ctx: &Arc<RunCtx>,
        reg: &ctx::UndoReg,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut delay = std::time::Duration::from_secs(10);
        let mut attempt = 1;
        loop {
            ctx.set_scope(ExecScope::Undo(reg.step.clone()));
            #[allow(deprecated)] // "volatile", not deprecated: see UndoReg::context
            let nc = reg.context.create_context(engine);
            let out = reg
                .f
                .call_within_context::<Dynamic>(&nc, (reg.result.clone(),));
            ctx.set_scope(ExecScope::Top);
            // Interrupted while the undo ran: stop resumable, the undo is not failed.
            if out.is_err() && ctx.cancel.is_cancelled() {
                return Err(ctx::terminate(TERM_CANCEL));
            }
            let failure = match &out {
                Err(e) => match e.unwrap_inner() {
                    EvalAltResult::ErrorRuntime(v, _) => {
                        crate::PrimitiveError::from_dynamic(v).filter(|p| p.retryable)
                    }
                    _ => None,
                },
                Ok(_) => None,
            };
            let Some(failure) = failure.filter(|_| attempt < UNDO_ATTEMPTS) else {
                return out;
            };
            ctx.emit(Event::Warning {
                message: format!(
                    "undo of '{}' attempt {attempt} failed ({failure}); retrying in {}",
                    reg.step,
                    crate::duration::format_duration(delay)
                ),
            });
            if !ctx.clock.sleep(delay, &ctx.cancel) {
                return Err(ctx::terminate(TERM_CANCEL));
            }
            delay = (delay * 2).min(builtins::MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// Why an undo failed, in words: `abort()` called inside the undo gives its reason (not
    /// Rhai's "Script terminated"), a limit is named like in the main script.
    fn undo_failure(&self, err: &EvalAltResult, ctx: &RunCtx, rb: &Runbook) -> String {
        if termination_marker(err).as_deref() == Some(TERM_ABORT) {
            let reason = ctx.state().abort_requested.clone().unwrap_or_default();
            return format!("abort(\"{reason}\") in the undo");
        }
        self.limits
            .explain(err)
            .unwrap_or_else(|| from_rhai(err, &rb.path).message)
    }

    /// The journal form of a value nothing replays (the runbook's final value, an undo's
    /// result). One that cannot be journaled exactly is recorded as a sentence saying why,
    /// with a warning, never silently as something else.
    fn final_value(&self, engine: &Engine, ctx: &RunCtx, v: &Dynamic, what: &str) -> Value {
        value::encode(v, "value", &value::ValueLimits::of(engine)).unwrap_or_else(|e| {
            let why = format!("{what} cannot be journaled: {e}");
            ctx.emit(Event::Warning {
                message: why.clone(),
            });
            Value::String(format!("<{why}>"))
        })
    }

    fn append_or_stop(&self, ctx: &Arc<RunCtx>, entry: Entry) -> Result<(), EngineError> {
        ctx.append(entry).map_err(|e| {
            let err = ctx
                .state()
                .fatal
                .take()
                .unwrap_or_else(|| EngineError::Io(e.to_string()));
            ctx.emit(Event::RunStopped {
                reason: err.to_string(),
            });
            ctx.detach();
            err
        })
    }

    fn stop(&self, ctx: &Arc<RunCtx>, err: EngineError) -> Result<RunReport, EngineError> {
        ctx.emit(Event::RunStopped {
            reason: err.to_string(),
        });
        ctx.detach();
        Err(err)
    }
}

/// Parse a runbook without running it (for `godwit check` and tests): the same engine setup as
/// a run, so every registered function is known.
pub fn check_runbook(runner: &Runner, path: &Path) -> Result<Runbook, EngineError> {
    let ctx = RunCtx::new(
        "check".into(),
        runner.clock.clone(),
        runner.cancel.clone(),
        true,
        Vec::new(),
    );
    let (mut engine, _) = runner.build(&ctx);
    runbook::load(&mut engine, path)
}

/// [`check_runbook`], then the lints of [`crate::lint`]; `pure_areas` are the namespaces of the
/// world's areas that never touch the world (their calls may stand outside steps).
pub fn lint_runbook(
    runner: &Runner,
    path: &Path,
    pure_areas: &[&str],
) -> Result<(Runbook, Vec<Report>), EngineError> {
    let ctx = RunCtx::new(
        "check".into(),
        runner.clock.clone(),
        runner.cancel.clone(),
        true,
        Vec::new(),
    );
    let (mut engine, _) = runner.build(&ctx);
    let rb = runbook::load(&mut engine, path)?;
    // The lints read the runbook as written: the optimizer drops, for one, the value ending a
    // catch block (Rhai discards it), which is the mistake a lint looks for.
    engine.set_optimization_level(OptimizationLevel::None);
    let cx = crate::lint::LintContext::of(&engine, pure_areas);
    let found = crate::lint::lint(&engine, &cx, &rb)?;
    Ok((rb, found))
}

/// An engine with the built-ins and every plugin of `runner` registered, for metadata (the
/// generated reference, REPL completion). It has no journal; do not run runbooks with it.
pub fn reference_engine(runner: &Runner) -> Engine {
    let ctx = RunCtx::new(
        "reference".into(),
        runner.clock.clone(),
        runner.cancel.clone(),
        true,
        Vec::new(),
    );
    runner.build(&ctx).0
}

/// `Engine::new()` (rhai 1.27), with its standard package built once per process: building
/// it registers a few hundred functions, a tenth of a fleet plan's per-run overhead. The
/// package is immutable and shared like any global module; `print`/`debug` are left unset
/// because [`builtins::register`] installs the run's own.
fn new_engine() -> Engine {
    use rhai::packages::{Package, StandardPackage};
    static STANDARD: std::sync::LazyLock<rhai::Shared<rhai::Module>> =
        std::sync::LazyLock::new(|| StandardPackage::new().as_shared_module());
    let mut engine = Engine::new_raw();
    engine.set_module_resolver(rhai::module_resolvers::FileModuleResolver::new());
    // Engine::new's string interner (rhai's MAX_STRINGS_INTERNED).
    engine.set_max_strings_interned(256);
    engine.register_global_module(STANDARD.clone());
    engine
}
