//! The transcript: structured events describing a run, for humans (CLI rendering), for tools
//! (`transcript.jsonl`, `--json`) and for tests (YAML snapshots).
//!
//! Every [`Line`] carries the clock time and the journal sequence number current when it was
//! emitted; the file store uses the latter to detect a truncated journal.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Millis;
use crate::journal::Outcome;

/// What happened. Names are kebab-case in JSON (`step-completed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        run_id: String,
        runbook: String,
        version: String,
        hash: String,
        cluster: String,
        world: String,
    },
    RunResumed {
        run_id: String,
        /// Journal records found.
        records: usize,
        /// Bytes of a torn last line dropped (a crash mid-write).
        torn_tail: Option<usize>,
        forced_runbook_change: Option<String>,
    },
    StepStarted {
        name: String,
    },
    StepCompleted {
        name: String,
        result: Value,
        ms: u64,
    },
    /// Returned from the journal without running.
    StepReplayed {
        name: String,
    },
    /// Started before a crash but never completed: runs again (at-least-once).
    StepRerun {
        name: String,
    },
    StepRetrying {
        name: String,
        attempt: u32,
        delay: String,
        error: String,
    },
    StepFailed {
        name: String,
        error: String,
    },
    GateStarted {
        name: String,
        every: String,
        hold: u32,
        timeout: String,
    },
    /// Emitted when a gate's state or reasons change (not for every identical poll).
    GatePoll {
        name: String,
        poll: u64,
        passing: usize,
        checks: usize,
        streak: u32,
        why: Vec<String>,
    },
    GatePassed {
        name: String,
        polls: u64,
        waited: String,
        /// The kind of evidence each of its checks decided on (`evidence.kind`, in check
        /// order; checks that name none are left out): which rung of the evidence ladder.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        evidence: Vec<String>,
    },
    GateReplayed {
        name: String,
    },
    GateTimedOut {
        name: String,
        polls: u64,
        why: Vec<String>,
    },
    /// A world-touching primitive call with its arguments and result.
    Primitive {
        area: String,
        op: String,
        args: Value,
        ok: bool,
        result: Value,
        ms: u64,
    },
    /// The runbook entered a phase (`phase("quiescence")`): structure for people and summaries.
    Phase {
        name: String,
        replaying: bool,
    },
    Print {
        message: String,
        /// Printed while replaying journaled steps (already shown by an earlier process).
        replaying: bool,
    },
    Warning {
        message: String,
    },
    AbortStarted {
        reason: String,
    },
    UndoStarted {
        step: String,
    },
    UndoCompleted {
        step: String,
    },
    /// Already undone by an earlier process.
    UndoSkipped {
        step: String,
    },
    UndoFailed {
        step: String,
        error: String,
    },
    RunFinished {
        outcome: Outcome,
        detail: Value,
    },
    /// The run stopped without finishing (Ctrl-C, refused resume, rollback failure): resumable.
    RunStopped {
        reason: String,
    },
}

/// One transcript line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Clock time (virtual in the simulator).
    pub at: Millis,
    /// Number of the last durable journal record when this was emitted.
    pub seq: Option<u64>,
    #[serde(flatten)]
    pub event: Event,
}

/// Live progress of a long wait; not part of the transcript (too chatty), for progress lines.
#[derive(Debug, Clone)]
pub struct Progress {
    pub gate: String,
    pub poll: u64,
    pub waited_ms: i64,
    pub timeout_ms: i64,
    pub why: Vec<String>,
}

/// A primitive waiting for the world (`wait_until_*` between polls, a retry's backoff): for
/// progress lines, so a long wait inside a step is never silent; not part of the transcript.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The step (or gate, undo) the wait is in.
    pub unit: Option<String>,
    /// `area::op` of the waiting primitive.
    pub call: String,
    /// What it waits for, e.g. `cluster orders-db-aurora available`.
    pub what: String,
    pub polls: u64,
    /// Clock time (virtual in the simulator) waited so far and the wait's budget.
    pub waited_ms: i64,
    pub timeout_ms: i64,
}

/// Receives transcript lines as they happen.
pub trait Sink: Send + Sync {
    fn line(&self, line: &Line);
    fn progress(&self, _progress: &Progress) {}
    fn waiting(&self, _waiting: &Waiting) {}
}

/// Collects lines in memory (tests, `--json` summaries).
#[derive(Clone, Default)]
pub struct Collector {
    lines: Arc<Mutex<Vec<Line>>>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Event> {
        self.lines().into_iter().map(|l| l.event).collect()
    }
}

impl Sink for Collector {
    fn line(&self, line: &Line) {
        self.lines.lock().unwrap().push(line.clone());
    }
}
