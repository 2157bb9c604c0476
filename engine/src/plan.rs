//! Reading a journal back: the replay sequence a resumed run must follow, and the run's status.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::clock::Millis;
use crate::journal::{Entry, Outcome, Record, RunbookInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    Step,
    Gate,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Step => "step",
            FlowKind::Gate => "gate",
        }
    }
}

/// What the journal says about one step or gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FlowOutcome {
    Completed {
        result: Value,
        at: Millis,
    },
    Failed {
        error: Value,
        at: Millis,
    },
    /// Started, never finished: the process stopped inside it.
    Incomplete {
        started_at: Millis,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowItem {
    pub kind: FlowKind,
    pub name: String,
    #[serde(flatten)]
    pub outcome: FlowOutcome,
}

impl FlowItem {
    pub fn label(&self) -> String {
        format!("{} '{}'", self.kind.as_str(), self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UndoState {
    Started,
    Completed,
    Failed { message: String },
}

/// The parameters a run was started with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Started {
    pub run_id: String,
    pub runbook: RunbookInfo,
    pub cluster: String,
    pub world: String,
    pub params: Value,
    pub at: Millis,
}

/// Where a run stands, derived from its journal alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not finished; resumable (or being driven right now, which the lock tells).
    InProgress,
    /// Rollback began and has not finished (an undo failed, or the process stopped).
    RollingBack,
    Succeeded,
    RolledBack,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::InProgress => "in-progress",
            Status::RollingBack => "rolling-back",
            Status::Succeeded => "succeeded",
            Status::RolledBack => "rolled-back",
        }
    }
}

/// A journal, read back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub started: Option<Started>,
    pub flow: Vec<FlowItem>,
    pub abort: Option<String>,
    pub undo: HashMap<String, UndoState>,
    /// Undo steps in the order they were recorded (for display).
    pub undo_order: Vec<String>,
    pub finished: Option<(Outcome, Value)>,
    pub resumes: usize,
    pub last_at: Millis,
    /// Parameters changed on resume (`resume --set`), in order; [`Plan::params`] applies them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub param_changes: Vec<Value>,
}

impl Plan {
    pub fn from_records(records: &[Record]) -> Plan {
        let mut plan = Plan::default();
        for record in records {
            plan.apply(&record.entry);
        }
        plan
    }

    fn close(&mut self, kind: FlowKind, name: &str, outcome: FlowOutcome) {
        match self.flow.last_mut() {
            Some(last)
                if last.kind == kind
                    && last.name == name
                    && matches!(last.outcome, FlowOutcome::Incomplete { .. }) =>
            {
                last.outcome = outcome;
            }
            _ => self.flow.push(FlowItem {
                kind,
                name: name.to_string(),
                outcome,
            }),
        }
    }

    fn open(&mut self, kind: FlowKind, name: &str, at: Millis) {
        // A re-run after a crash does not append a second *-started record, but be lenient.
        if let Some(last) = self.flow.last()
            && last.kind == kind
            && last.name == name
            && matches!(last.outcome, FlowOutcome::Incomplete { .. })
        {
            return;
        }
        self.flow.push(FlowItem {
            kind,
            name: name.to_string(),
            outcome: FlowOutcome::Incomplete { started_at: at },
        });
    }

    fn apply(&mut self, entry: &Entry) {
        match entry {
            Entry::RunStarted {
                run_id,
                runbook,
                cluster,
                world,
                params,
                at,
                ..
            } => {
                self.last_at = *at;
                self.started = Some(Started {
                    run_id: run_id.clone(),
                    runbook: runbook.clone(),
                    cluster: cluster.clone(),
                    world: world.clone(),
                    params: params.clone(),
                    at: *at,
                });
            }
            Entry::RunResumed { at, params, .. } => {
                self.last_at = *at;
                self.resumes += 1;
                if let Some(p) = params {
                    self.param_changes.push(p.clone());
                }
            }
            Entry::StepStarted { name, at } => {
                self.last_at = *at;
                self.open(FlowKind::Step, name, *at);
            }
            Entry::StepCompleted { name, result, at } => {
                self.last_at = *at;
                let o = FlowOutcome::Completed {
                    result: result.clone(),
                    at: *at,
                };
                self.close(FlowKind::Step, name, o);
            }
            Entry::StepFailed {
                name, error, at, ..
            } => {
                self.last_at = *at;
                let o = FlowOutcome::Failed {
                    error: error.clone(),
                    at: *at,
                };
                self.close(FlowKind::Step, name, o);
            }
            Entry::GateStarted { name, at } => {
                self.last_at = *at;
                self.open(FlowKind::Gate, name, *at);
            }
            Entry::GatePassed {
                name, result, at, ..
            } => {
                self.last_at = *at;
                let o = FlowOutcome::Completed {
                    result: result.clone(),
                    at: *at,
                };
                self.close(FlowKind::Gate, name, o);
            }
            Entry::GateFailed {
                name, error, at, ..
            } => {
                self.last_at = *at;
                let o = FlowOutcome::Failed {
                    error: error.clone(),
                    at: *at,
                };
                self.close(FlowKind::Gate, name, o);
            }
            Entry::AbortStarted { reason, at } => {
                self.last_at = *at;
                self.abort = Some(reason.clone());
            }
            Entry::UndoStarted { step, at } => {
                self.last_at = *at;
                if !self.undo_order.contains(step) {
                    self.undo_order.push(step.clone());
                }
                self.undo.insert(step.clone(), UndoState::Started);
            }
            Entry::UndoCompleted { step, at, .. } => {
                self.last_at = *at;
                self.undo.insert(step.clone(), UndoState::Completed);
            }
            Entry::UndoFailed { step, message, at } => {
                self.last_at = *at;
                self.undo.insert(
                    step.clone(),
                    UndoState::Failed {
                        message: message.clone(),
                    },
                );
            }
            Entry::RunFinished {
                outcome,
                detail,
                at,
            } => {
                self.last_at = *at;
                self.finished = Some((*outcome, detail.clone()));
            }
        }
    }

    /// The parameters the run continues with: `run-started`'s, with every `resume --set` change
    /// applied in order. `Null` before `run-started`.
    pub fn params(&self) -> Value {
        let Some(started) = &self.started else {
            return Value::Null;
        };
        let mut params = started.params.clone();
        if let Value::Object(out) = &mut params {
            for change in &self.param_changes {
                if let Value::Object(c) = change {
                    out.extend(c.clone());
                }
            }
        }
        params
    }

    /// The one word every command uses for where a run stands, given whether a process drives
    /// it right now (its run lock is held):
    ///
    /// | word | meaning | what to do |
    /// |---|---|---|
    /// | `running` | a process drives it | wait, or Ctrl-C that process |
    /// | `stopped` | not finished, nobody drives it (Ctrl-C, crash) | `godwit resume` / `godwit abort` |
    /// | `rolling-back` | a process is running its undos | wait |
    /// | `rollback-stopped` | rollback begun, nobody drives it | `godwit resume` finishes it |
    /// | `rollback-failed` | an undo failed; nobody drives it | fix the cause, `godwit resume` |
    /// | `succeeded`, `rolled-back` | finished | — |
    pub fn status_word(&self, driven: bool) -> &'static str {
        match (self.status(), driven) {
            (Status::Succeeded, _) => "succeeded",
            (Status::RolledBack, _) => "rolled-back",
            (Status::InProgress, true) => "running",
            (Status::InProgress, false) => "stopped",
            (Status::RollingBack, true) => "rolling-back",
            (Status::RollingBack, false)
                if self
                    .undo
                    .values()
                    .any(|u| matches!(u, UndoState::Failed { .. })) =>
            {
                "rollback-failed"
            }
            (Status::RollingBack, false) => "rollback-stopped",
        }
    }

    pub fn status(&self) -> Status {
        match (&self.finished, &self.abort) {
            (Some((Outcome::Succeeded, _)), _) => Status::Succeeded,
            (Some((Outcome::RolledBack, _)), _) => Status::RolledBack,
            (None, Some(_)) => Status::RollingBack,
            (None, None) => Status::InProgress,
        }
    }

    /// A one-line account of where the run stopped, for `runs` and `show`.
    pub fn whereabouts(&self) -> String {
        if let Some(reason) = &self.abort {
            if let Some((step, UndoState::Failed { message })) = self
                .undo
                .iter()
                .find(|(_, s)| matches!(s, UndoState::Failed { .. }))
            {
                return format!("undo of '{step}' failed: {message}");
            }
            if self.finished.is_none() {
                return format!("rolling back: {reason}");
            }
            return format!("rolled back: {reason}");
        }
        match self.flow.last() {
            None => "no step yet".into(),
            Some(item) => match &item.outcome {
                FlowOutcome::Incomplete { .. } => format!("inside {}", item.label()),
                FlowOutcome::Completed { .. } => format!("after {}", item.label()),
                FlowOutcome::Failed { .. } => format!("{} failed", item.label()),
            },
        }
    }
}
