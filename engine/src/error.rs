//! One error pipeline.
//!
//! * [`PrimitiveError`] is what a primitive (an AWS/PostgreSQL/route call, or a pure helper given
//!   bad input) fails with. It enters Rhai through [`PrimitiveError::into_rhai`] as a plain map
//!   `#{ area, op, kind, retryable, message, hint }`, so scripts can `try { } catch (e) { e.kind }`.
//! * [`EngineError`] is what a run fails with as seen by the operator: it carries enough to render
//!   a report that quotes the runbook line (see [`crate::report`]).

use std::fmt;

use rhai::{Dynamic, EvalAltResult, Map, Position};
use serde::{Deserialize, Serialize};

/// The kind of a primitive failure; decides retry behaviour and how operators read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    Throttled,
    Timeout,
    Conflict,
    Invalid,
    Internal,
    /// The operator interrupted the run (Ctrl-C, SIGTERM) while the call waited. Never a
    /// failure: it enters Rhai as an uncatchable termination, so no step records it and
    /// nothing rolls back; the run stops resumable.
    Cancelled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Throttled => "Throttled",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Invalid => "Invalid",
            ErrorKind::Internal => "Internal",
            ErrorKind::Cancelled => "Cancelled",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NotFound" => ErrorKind::NotFound,
            "Throttled" => ErrorKind::Throttled,
            "Timeout" => ErrorKind::Timeout,
            "Conflict" => ErrorKind::Conflict,
            "Invalid" => ErrorKind::Invalid,
            "Internal" => ErrorKind::Internal,
            "Cancelled" => ErrorKind::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed primitive call: what failed, whether retrying can help, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{area}::{op} failed ({kind}): {message}")]
pub struct PrimitiveError {
    /// Rhai module of the primitive, e.g. `rds`.
    pub area: String,
    /// Function name, e.g. `promote_cluster`.
    pub op: String,
    pub kind: ErrorKind,
    pub retryable: bool,
    /// What failed, with the numbers: `replica orders-aurora lag 42 s > max 5 s`.
    pub message: String,
    /// What to do about it: `wait longer or raise max_replica_lag`.
    pub hint: String,
}

impl PrimitiveError {
    pub fn new(
        area: impl Into<String>,
        op: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        let retryable = matches!(kind, ErrorKind::Throttled | ErrorKind::Timeout);
        PrimitiveError {
            area: area.into(),
            op: op.into(),
            kind,
            retryable,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Bad arguments from the script: never retryable.
    pub fn invalid(
        area: impl Into<String>,
        op: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::new(area, op, ErrorKind::Invalid, message, hint)
    }

    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The map scripts see in `catch (e)`.
    pub fn to_map(&self) -> Map {
        let mut m = Map::new();
        m.insert("area".into(), self.area.clone().into());
        m.insert("op".into(), self.op.clone().into());
        m.insert("kind".into(), self.kind.as_str().into());
        m.insert("retryable".into(), self.retryable.into());
        m.insert("message".into(), self.message.clone().into());
        m.insert("hint".into(), self.hint.clone().into());
        m
    }

    /// Recognise a thrown value that is a primitive error map (also after a journal round trip).
    pub fn from_dynamic(value: &Dynamic) -> Option<Self> {
        let map = value.read_lock::<Map>()?;
        let s = |k: &str| map.get(k).and_then(|v| v.clone().into_string().ok());
        Some(PrimitiveError {
            area: s("area")?,
            op: s("op")?,
            kind: ErrorKind::parse(&s("kind")?)?,
            retryable: map.get("retryable")?.as_bool().ok()?,
            message: s("message")?,
            hint: s("hint").unwrap_or_default(),
        })
    }

    /// The one way a primitive error enters Rhai: a runtime error whose value is the map.
    pub fn into_rhai(self) -> Box<EvalAltResult> {
        self.into_rhai_at(Position::NONE)
    }

    /// As [`into_rhai`](Self::into_rhai), at the script position of the call. Rhai does not
    /// fill in positions for errors of module functions, so primitives take a
    /// `NativeCallContext` and pass `ctx.call_position()` here: reports then quote the line.
    pub fn into_rhai_at(self, pos: Position) -> Box<EvalAltResult> {
        if self.kind == ErrorKind::Cancelled {
            // Uncatchable: a script's `try { } catch` must not turn an interrupt into a branch.
            return Box::new(EvalAltResult::ErrorTerminated(
                crate::run::ctx::TERM_CANCEL.into(),
                pos,
            ));
        }
        Box::new(EvalAltResult::ErrorRuntime(
            Dynamic::from_map(self.to_map()),
            pos,
        ))
    }
}

impl From<PrimitiveError> for Box<EvalAltResult> {
    fn from(e: PrimitiveError) -> Self {
        e.into_rhai()
    }
}

/// Why a run could not start, resume or continue (as opposed to a runbook that failed and was
/// rolled back, which is an ordinary outcome). Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The runbook (or a module it imports) does not parse.
    #[error("{}", .0.render())]
    Parse(crate::report::Report),
    #[error("{0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error(
        "run {run_id}: the runbook changed since the run started (pinned {pinned}, now \
         {current}); restore the original runbook, or resume with --force-runbook-change to \
         replay the journal step by step against the new one"
    )]
    RunbookChanged {
        run_id: String,
        pinned: String,
        current: String,
    },
    /// Replay diverged from the journal: the runbook (or its data) no longer takes the same path.
    #[error("{}", .0.render())]
    NonDeterminism(crate::report::Report),
    /// A finished run was asked to go on: `nothing_to` is what was asked (`resume`, `abort`,
    /// `approve`).
    #[error("run {run_id} already finished ({status}); nothing to {nothing_to}")]
    AlreadyFinished {
        run_id: String,
        status: String,
        nothing_to: &'static str,
    },
    /// Bad input from the operator (arguments, parameters).
    #[error("{0}")]
    Invalid(String),
    /// The operator interrupted before the run began: nothing was created.
    #[error("{0}")]
    Interrupted(String),
    #[error("{0}")]
    Io(String),
}

impl EngineError {
    /// Process exit code for this error (documented in `docs/cli.md`).
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Parse(_) | EngineError::Invalid(_) => crate::exit::INVALID_INPUT,
            EngineError::Journal(
                crate::journal::JournalError::Locked { .. }
                | crate::journal::JournalError::ClusterBusy { .. },
            ) => crate::exit::LOCKED,
            EngineError::Journal(crate::journal::JournalError::Tampered { .. }) => {
                crate::exit::JOURNAL_DAMAGED
            }
            EngineError::Journal(crate::journal::JournalError::NotFound { .. }) => {
                crate::exit::INVALID_INPUT
            }
            EngineError::RunbookChanged { .. } | EngineError::NonDeterminism(_) => {
                crate::exit::REFUSED
            }
            EngineError::AlreadyFinished { .. } => crate::exit::REFUSED,
            EngineError::Interrupted(_) => crate::exit::INTERRUPTED,
            EngineError::Journal(_) | EngineError::Io(_) => crate::exit::INTERNAL,
        }
    }
}
