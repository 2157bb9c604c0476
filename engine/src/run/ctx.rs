//! The state of one executing run, shared by the built-in functions, the [`Host`] and the
//! runner: the journal writer, the replay cursor, the undo stack and the strict-mode scope.
//!
//! [`Host`]: crate::Host

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rhai::{Dynamic, EvalAltResult, FnPtr, Position};
use serde_json::Value;

use crate::clock::{Cancel, Clock, Millis};
use crate::error::{EngineError, ErrorKind, PrimitiveError};
use crate::journal::{Entry, JournalStore, JournalWriter, Request};
use crate::plan::{FlowItem, FlowKind, FlowOutcome, Plan, UndoState};
use crate::report::Report;
use crate::transcript::{Event, Line, Progress, Sink};

/// Marker values carried by uncatchable `ErrorTerminated` errors, so the runner knows why the
/// script stopped.
pub(crate) const TERM_FATAL: &str = "godwit:fatal";
pub(crate) const TERM_ABORT: &str = "godwit:abort";
pub(crate) const TERM_CANCEL: &str = "godwit:cancelled";
pub(crate) const TERM_STEP_TIMEOUT: &str = "godwit:step-timeout";

/// What the script is executing right now (strict mode allows world access inside the first
/// three).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecScope {
    Top,
    Step(String),
    Gate(String),
    Undo(String),
}

/// The answer of the journal to "step X is next".
pub(crate) enum Replay {
    /// Completed before: return this result without running.
    Completed(Value),
    /// Failed before: throw this value again.
    Failed(Value),
    /// Started, never finished (crash): run it again; `started_at` is from the first attempt.
    Rerun { started_at: Millis },
    /// Past the end of the journal: run it for real.
    Live,
}

pub(crate) struct UndoReg {
    pub step: String,
    pub f: FnPtr,
    pub result: Dynamic,
    /// The calling context of the step (its imports), so the undo can run after the script's
    /// evaluation ended. Rhai marks this API "volatile", not deprecated.
    #[allow(deprecated)]
    pub context: rhai::NativeCallContextStore,
}

pub(crate) struct State {
    writer: Option<Box<dyn JournalWriter>>,
    last_seq: Option<u64>,
    flow: Vec<FlowItem>,
    cursor: usize,
    pub abort_recorded: Option<String>,
    pub undo_state: HashMap<String, UndoState>,
    names: HashSet<String>,
    pub scope: ExecScope,
    pub deadline: Option<(Millis, String)>,
    pub undos: Vec<UndoReg>,
    pub fatal: Option<EngineError>,
    pub abort_requested: Option<String>,
    /// When the store's operator requests were last read (wall clock), see
    /// [`RunCtx::requested_abort`].
    requests_read: Option<std::time::Instant>,
    /// A plan (`Runner::plan`) stopped before this mutating call: `area::op in step 'S'`.
    pub plan_stop: Option<String>,
}

/// How often a run reads its operator requests at most: a simulated run polls gates thousands
/// of times a second, and `godwit abort` need not be faster than a person.
const REQUESTS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// One run's shared execution state.
pub struct RunCtx {
    pub run_id: String,
    pub clock: Arc<dyn Clock>,
    pub cancel: Cancel,
    /// Strict mode: world-touching primitives only inside steps, gates and undos. Off in the REPL.
    pub strict: bool,
    /// Interactive sessions refuse mutating primitives until mutations are allowed.
    read_only: std::sync::atomic::AtomicBool,
    /// A plan: the first mutating call stops the run (as an interrupt would: nothing fails,
    /// nothing rolls back) instead of failing its step.
    planning: std::sync::atomic::AtomicBool,
    pub runbook_path: PathBuf,
    sinks: Vec<Arc<dyn Sink>>,
    state: Mutex<State>,
    /// How long the script has computed without waiting or calling a primitive.
    pub(crate) busy: Arc<super::busy::BusyMeter>,
    /// Where operator requests (`godwit approve`, `godwit abort`) for this run are read from;
    /// `None` outside a run.
    store: Option<Arc<dyn JournalStore>>,
}

impl RunCtx {
    pub(crate) fn new(
        run_id: String,
        clock: Arc<dyn Clock>,
        cancel: Cancel,
        strict: bool,
        sinks: Vec<Arc<dyn Sink>>,
    ) -> Arc<Self> {
        let busy = Arc::new(super::busy::BusyMeter::default());
        let clock = Arc::new(super::busy::MeteredClock {
            inner: clock,
            meter: busy.clone(),
        });
        Arc::new(RunCtx {
            run_id,
            clock,
            busy,
            cancel,
            strict,
            read_only: std::sync::atomic::AtomicBool::new(false),
            planning: std::sync::atomic::AtomicBool::new(false),
            runbook_path: PathBuf::new(),
            sinks,
            state: Mutex::new(State {
                writer: None,
                last_seq: None,
                flow: Vec::new(),
                cursor: 0,
                abort_recorded: None,
                undo_state: HashMap::new(),
                names: HashSet::new(),
                scope: ExecScope::Top,
                deadline: None,
                undos: Vec::new(),
                fatal: None,
                abort_requested: None,
                requests_read: None,
                plan_stop: None,
            }),
            store: None,
        })
    }

    /// Read operator requests for this run from `store`.
    pub(crate) fn with_store(self: Arc<Self>, store: Arc<dyn JournalStore>) -> Arc<Self> {
        let mut me = Arc::try_unwrap(self).unwrap_or_else(|_| unreachable!("not shared yet"));
        me.store = Some(store);
        Arc::new(me)
    }

    /// The operator requests of this run (none outside a run, or when the store cannot say).
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.store
            .as_ref()
            .and_then(|s| s.requests(&self.run_id).ok())
            .unwrap_or_default()
    }

    /// Has an operator asked this run to abort (`godwit abort`)? Reads the store at most every
    /// half second; the first read always happens. Returns the reason the rollback records.
    pub(crate) fn requested_abort(&self) -> Option<String> {
        {
            let mut st = self.state();
            if st.abort_recorded.is_some() || st.writer.is_none() {
                return None; // rolling back already, or not a run
            }
            if st
                .requests_read
                .is_some_and(|t| t.elapsed() < REQUESTS_EVERY)
            {
                return None;
            }
            st.requests_read = Some(std::time::Instant::now());
        }
        self.requests().into_iter().find_map(|r| match r {
            Request::Abort { reason, by, .. } => Some(format!("aborted by {by}: {reason}")),
            Request::Approve { .. } => None,
        })
    }

    pub(crate) fn with_runbook_path(self: Arc<Self>, path: PathBuf) -> Arc<Self> {
        let mut me = Arc::try_unwrap(self).unwrap_or_else(|_| unreachable!("not shared yet"));
        me.runbook_path = path;
        Arc::new(me)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attach the journal writer and the plan read from an existing journal (empty for a new run).
    pub(crate) fn attach(
        &self,
        writer: Box<dyn JournalWriter>,
        plan: &Plan,
        last_seq: Option<u64>,
    ) {
        let mut st = self.state();
        st.writer = Some(writer);
        st.last_seq = last_seq;
        st.flow = plan.flow.clone();
        st.abort_recorded = plan.abort.clone();
        st.undo_state = plan.undo.clone();
    }

    pub(crate) fn detach(&self) {
        self.state().writer = None;
    }

    pub fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Emit a transcript event to the run's transcript file and every sink.
    pub fn emit(&self, event: Event) {
        let line = Line {
            at: self.clock.now_ms(),
            seq: None,
            event,
        };
        let line = {
            let mut st = self.state();
            let line = Line {
                seq: st.last_seq,
                ..line
            };
            if let Some(w) = st.writer.as_mut()
                && let Ok(json) = serde_json::to_string(&line)
            {
                w.transcript(&json);
            }
            line
        };
        for sink in &self.sinks {
            sink.line(&line);
        }
    }

    /// A gate polled (`p`): tell the sinks, and if an operator asked for an abort meanwhile,
    /// wake the gate's wait so the run rolls back now — between polls is a safe point, a gate
    /// changes nothing.
    pub(crate) fn progress(&self, p: &Progress) {
        for sink in &self.sinks {
            sink.progress(p);
        }
        if let Some(reason) = self.requested_abort() {
            self.state().abort_requested = Some(reason);
            self.cancel.wake();
        }
    }

    /// A wait inside a primitive (`wait_until_*`, retries) is about to sleep: tell the sinks.
    pub fn waiting(&self, w: &crate::transcript::Waiting) {
        for sink in &self.sinks {
            sink.waiting(w);
        }
    }

    /// The journal writer's own word that its hold on the run may have lapsed
    /// ([`crate::journal::JournalWriter::lapsed`]): the run stops as if the append had been
    /// refused (fatal: nothing more is journaled, nothing rolls back — another worker resumes
    /// it), and `area::op` is not called. `None` while the hold stands or without a journal.
    pub(crate) fn lease_lapsed(&self, area: &str, op: &str) -> Option<PrimitiveError> {
        let mut st = self.state();
        let err = st.writer.as_ref()?.lapsed()?;
        let message = format!("{area}::{op} not called: {err}");
        if st.fatal.is_none() {
            st.fatal = Some(EngineError::Journal(err));
        }
        // `Cancelled` is uncatchable in a script (`PrimitiveError::into_rhai`): no `try` may
        // turn the stop into a branch, and the run ends on the fatal error set above.
        Some(PrimitiveError::new(
            area,
            op,
            ErrorKind::Cancelled,
            message,
            "another worker resumes the run once its lease expires; nothing was rolled back",
        ))
    }

    /// Append to the journal (durably). A failure here is fatal: the run cannot continue
    /// without its record.
    pub(crate) fn append(&self, entry: Entry) -> Result<(), Box<EvalAltResult>> {
        let mut st = self.state();
        let Some(w) = st.writer.as_mut() else {
            return Ok(()); // interactive session: no journal
        };
        match w.append(&entry) {
            Ok(seq) => {
                st.last_seq = Some(seq);
                Ok(())
            }
            Err(e) => {
                st.fatal = Some(EngineError::Journal(e));
                Err(terminate(TERM_FATAL))
            }
        }
    }

    /// Is the script still replaying journaled steps?
    pub(crate) fn replaying(&self) -> bool {
        let st = self.state();
        st.cursor < st.flow.len()
    }

    /// Stop the run with an engine error (non-determinism, journal failure): uncatchable, no
    /// rollback.
    pub(crate) fn fatal(&self, err: EngineError) -> Box<EvalAltResult> {
        self.state().fatal = Some(err);
        terminate(TERM_FATAL)
    }

    /// Register a step or gate name; names must be unique within a run.
    pub(crate) fn claim_name(&self, kind: FlowKind, name: &str) -> Result<(), Box<EvalAltResult>> {
        if !self.strict {
            return Ok(()); // interactive: nothing is journaled, names may repeat
        }
        if let Some(why) = step_name_problem(kind.as_str(), name) {
            return Err(
                PrimitiveError::invalid("engine", kind.as_str(), why, STEP_NAME_HINT).into(),
            );
        }
        if !self.state().names.insert(name.to_string()) {
            return Err(PrimitiveError::invalid(
                "engine",
                kind.as_str(),
                format!("{} name '{name}' is used twice in this run", kind.as_str()),
                "step and gate names must be unique within a run; in a loop use a suffix, e.g. \
                 step(\"probe-\" + i, || ...)",
            )
            .into());
        }
        Ok(())
    }

    /// Refuse nesting: steps, gates and undos are the unit of journaling.
    pub(crate) fn ensure_top(&self, kind: FlowKind, name: &str) -> Result<(), Box<EvalAltResult>> {
        let scope = self.state().scope.clone();
        let inside = match scope {
            ExecScope::Top => return Ok(()),
            ExecScope::Step(s) => format!("step '{s}'"),
            ExecScope::Gate(g) => format!("gate '{g}'"),
            ExecScope::Undo(u) => format!("the undo of '{u}'"),
        };
        Err(PrimitiveError::invalid(
            "engine",
            kind.as_str(),
            format!(
                "{} '{name}' is inside {inside}; steps and gates cannot nest",
                kind.as_str()
            ),
            "move it to the top level of the runbook (or of a module function called there)",
        )
        .into())
    }

    /// Consult the journal for the next step or gate.
    pub(crate) fn replay_next(
        &self,
        kind: FlowKind,
        name: &str,
        pos: Position,
    ) -> Result<Replay, Box<EvalAltResult>> {
        let mut st = self.state();
        if st.cursor < st.flow.len() {
            let item = st.flow[st.cursor].clone();
            if item.kind != kind || item.name != name {
                drop(st);
                let report = Report::new(format!(
                    "replay diverged from the journal: the journal has {} next, the runbook now \
                     runs {} '{name}'",
                    item.label(),
                    kind.as_str()
                ))
                .at(&self.runbook_path, pos)
                .with_hint(
                    "the runbook or the data it branches on changed since these steps ran; \
                     restore the runbook the run started with, or abort the run",
                );
                return Err(self.fatal(EngineError::NonDeterminism(report)));
            }
            st.cursor += 1;
            return Ok(match item.outcome {
                FlowOutcome::Completed { result, .. } => Replay::Completed(result),
                FlowOutcome::Failed { error, .. } => Replay::Failed(error),
                FlowOutcome::Incomplete { started_at } => {
                    if st.abort_recorded.is_some() {
                        drop(st);
                        return Err(self.replay_abort());
                    }
                    Replay::Rerun { started_at }
                }
            });
        }
        if st.abort_recorded.is_some() {
            drop(st);
            return Err(self.replay_abort());
        }
        drop(st);
        // Before anything new starts is a safe point to act on `godwit abort`: the steps before
        // completed (their undos are registered), nothing of this one happened yet.
        if let Some(reason) = self.requested_abort() {
            self.state().abort_requested = Some(reason);
            return Err(terminate(TERM_ABORT));
        }
        Ok(Replay::Live)
    }

    /// The journal says rollback had begun: stop replaying and continue the rollback.
    fn replay_abort(&self) -> Box<EvalAltResult> {
        let mut st = self.state();
        st.abort_requested = st.abort_recorded.clone();
        terminate(TERM_ABORT)
    }

    /// Steps the journal still holds that the script has not reached (checked at the end).
    pub(crate) fn unconsumed(&self) -> Option<FlowItem> {
        let st = self.state();
        st.flow.get(st.cursor).cloned()
    }

    pub(crate) fn set_scope(&self, scope: ExecScope) {
        self.state().scope = scope;
    }

    pub(crate) fn set_planning(&self) {
        self.planning
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn set_read_only(&self, on: bool) {
        self.read_only
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Strict mode: may a world-touching primitive run now? Read-only sessions: may it mutate?
    pub fn check_world_access(&self, area: &str, op: &str) -> Result<(), PrimitiveError> {
        if self.planning.load(std::sync::atomic::Ordering::SeqCst) && is_mutating(op) {
            let unit = self
                .current_unit()
                .map_or_else(|| "at the top level".to_string(), |u| format!("in '{u}'"));
            self.state().plan_stop = Some(format!("{area}::{op} {unit}"));
            self.cancel.cancel();
            return Err(PrimitiveError::new(
                area,
                op,
                ErrorKind::Cancelled,
                format!("{area}::{op} would change the world; a plan stops here"),
                "",
            )
            .with_retryable(false));
        }
        if self.is_read_only() && is_mutating(op) {
            return Err(PrimitiveError::new(
                area,
                op,
                ErrorKind::Conflict,
                format!("{area}::{op} changes the world, and this session is read-only"),
                "type :allow-mutations to enable mutating primitives (asks for confirmation and                  is recorded in the audit log)",
            )
            .with_retryable(false));
        }
        if !self.strict {
            return Ok(());
        }
        let st = self.state();
        if st.scope != ExecScope::Top {
            if let Some((deadline, step)) = &st.deadline
                && self.clock.now_ms() >= *deadline
            {
                return Err(step_timeout(step));
            }
            return Ok(());
        }
        Err(PrimitiveError::invalid(
            area,
            op,
            format!(
                "{area}::{op} touches the world and may only run inside a step, a gate or an undo"
            ),
            format!(
                "wrap it so its result is journaled: step(\"my-step\", || {area}::{op}(...)); \
                 a bare call would run again on every resume"
            ),
        ))
    }

    /// The current step (or gate/undo) name, for idempotency tokens.
    pub fn current_unit(&self) -> Option<String> {
        match &self.state().scope {
            ExecScope::Top => None,
            ExecScope::Step(s) | ExecScope::Gate(s) => Some(s.clone()),
            ExecScope::Undo(s) => Some(format!("undo-{s}")),
        }
    }

    /// Milliseconds left before the current step's timeout, if it has one.
    pub fn remaining_ms(&self) -> Option<Millis> {
        let st = self.state();
        st.deadline.as_ref().map(|(d, _)| d - self.clock.now_ms())
    }
}

/// What to do about a name [`step_name_problem`] refuses.
pub const STEP_NAME_HINT: &str = "use lowercase letters, digits and '-' (e.g. \"create-replica\"); \
                                  names are journal keys and must stay stable";

/// Why `name` cannot name a step or gate (`kind`), if it cannot: names are journal keys, in
/// lowercase letters, digits, `-`, `_` and `.` (kebab-case). `godwit check` applies the same
/// rule to names written as literals.
pub fn step_name_problem(kind: &str, name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    (!valid).then(|| format!("{kind} name {name:?} is not kebab-case"))
}

/// Verbs that change the world (the house verb vocabulary: `create_*`, `set_*`, `promote_*`,
/// ...). Read-only sessions refuse these; `describe_*`, `get_*`, `list_*`, `wait_until_*` pass.
pub const MUTATING_VERBS: &[&str] = &[
    "create",
    "set",
    "promote",
    "switch",
    "reboot",
    "delete",
    "drop",
    "pause",
    "resume",
    "block",
    "unblock",
    "terminate",
    "ensure",
    "restore",
    "modify",
    "apply",
    "revert",
    "hold",
    "release",
    "rollback",
    "start",
    "stop",
    "record",
];

/// Does the primitive `op` mutate, by its verb?
pub fn is_mutating(op: &str) -> bool {
    MUTATING_VERBS
        .iter()
        .any(|v| op == *v || op.strip_prefix(v).is_some_and(|r| r.starts_with('_')))
}

pub(crate) fn terminate(marker: &str) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(
        marker.into(),
        Position::NONE,
    ))
}

/// The termination marker of an uncatchable error, if it is one of ours.
pub(crate) fn termination_marker(err: &EvalAltResult) -> Option<String> {
    match err.unwrap_inner() {
        EvalAltResult::ErrorTerminated(v, _) => v.clone().into_string().ok(),
        _ => None,
    }
}

pub(crate) fn step_timeout(step: &str) -> PrimitiveError {
    PrimitiveError::new(
        "engine",
        "step",
        ErrorKind::Timeout,
        format!("step '{step}' ran past its timeout"),
        "raise the step's timeout option, or find out why the world is slow",
    )
    .with_retryable(false)
}
