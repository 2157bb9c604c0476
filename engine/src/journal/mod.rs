//! The step journal: the durable record a run is replayed from.
//!
//! A journal is an ordered list of [`Entry`]s wrapped in hash-chained [`Record`]s: each record's
//! `hash` is SHA-256 over its sequence number, the previous record's hash and the entry's exact
//! JSON bytes, and the chain starts from a hash of the run id. Editing, reordering or deleting a
//! record in the middle breaks the chain; deleting records at the end is caught by comparing
//! with the transcript, which references journal sequence numbers (see [`file`]).
//!
//! Stores: [`memory::MemoryStore`] for tests, [`file::FileStore`] (one directory per run,
//! append-only JSONL, fsync per entry, exclusive lock) as the embedded default.
//!
//! Besides journals a store keeps two small things a run needs from outside its own process:
//! the **cluster lock** ([`JournalStore::claim_cluster`]: one unfinished run per cluster, from
//! its start until it finishes, whoever drives it) and **operator requests**
//! ([`JournalStore::request`]: `godwit approve` / `godwit abort` for a run another process may
//! be driving; the run journals what it does with them).

pub mod file;
pub mod memory;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::Millis;

/// The runbook a run was started with: its identity and the content hash it is pinned to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookInfo {
    pub name: String,
    pub version: String,
    pub path: String,
    /// `sha256:<hex>` over the runbook and every module it imports.
    pub hash: String,
    pub modules: Vec<ModuleInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleInfo {
    pub import: String,
    pub path: String,
    pub hash: String,
}

/// How a run ended (the last entry of a finished run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The runbook ran to its end.
    Succeeded,
    /// Aborted (by `abort()`, an unhandled error or a gate timeout); every undo completed.
    RolledBack,
}

/// One journal entry. Step-like entries (`step-*`, `gate-*`) form the replay sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Entry {
    RunStarted {
        run_id: String,
        runbook: RunbookInfo,
        cluster: String,
        world: String,
        params: Value,
        godwit_version: String,
        at: Millis,
    },
    /// A later process took over the run.
    RunResumed {
        at: Millis,
        pid: u32,
        /// Set when the runbook changed and the operator forced the resume.
        runbook_hash: Option<String>,
        /// Parameters changed on this resume (`resume --set`, only keys the runbook declares
        /// `on_resume`); they apply from here on, over `run-started`'s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<Value>,
    },
    StepStarted {
        name: String,
        at: Millis,
    },
    StepCompleted {
        name: String,
        result: Value,
        at: Millis,
    },
    /// The step's final error (after retries); replay throws the same value again.
    StepFailed {
        name: String,
        error: Value,
        message: String,
        at: Millis,
    },
    GateStarted {
        name: String,
        at: Millis,
    },
    GatePassed {
        name: String,
        polls: u64,
        result: Value,
        at: Millis,
    },
    /// The gate timed out or a check failed with a non-retryable error; replay throws it again.
    GateFailed {
        name: String,
        polls: u64,
        error: Value,
        at: Millis,
    },
    /// Rollback began; the undos that follow run in reverse registration order.
    AbortStarted {
        reason: String,
        at: Millis,
    },
    UndoStarted {
        step: String,
        at: Millis,
    },
    UndoCompleted {
        step: String,
        result: Value,
        at: Millis,
    },
    UndoFailed {
        step: String,
        message: String,
        at: Millis,
    },
    RunFinished {
        outcome: Outcome,
        /// The runbook's final value (succeeded) or the abort reason (rolled back).
        detail: Value,
        at: Millis,
    },
}

impl Entry {
    /// When the record was written, by the run's clock.
    pub fn at(&self) -> Millis {
        match self {
            Entry::RunStarted { at, .. }
            | Entry::RunResumed { at, .. }
            | Entry::StepStarted { at, .. }
            | Entry::StepCompleted { at, .. }
            | Entry::StepFailed { at, .. }
            | Entry::GateStarted { at, .. }
            | Entry::GatePassed { at, .. }
            | Entry::GateFailed { at, .. }
            | Entry::AbortStarted { at, .. }
            | Entry::UndoStarted { at, .. }
            | Entry::UndoCompleted { at, .. }
            | Entry::UndoFailed { at, .. }
            | Entry::RunFinished { at, .. } => *at,
        }
    }

    /// A short label for messages: `step 'create-replica'`.
    pub fn label(&self) -> String {
        match self {
            Entry::StepStarted { name, .. }
            | Entry::StepCompleted { name, .. }
            | Entry::StepFailed { name, .. } => format!("step '{name}'"),
            Entry::GateStarted { name, .. }
            | Entry::GatePassed { name, .. }
            | Entry::GateFailed { name, .. } => format!("gate '{name}'"),
            Entry::UndoStarted { step, .. }
            | Entry::UndoCompleted { step, .. }
            | Entry::UndoFailed { step, .. } => format!("the undo of '{step}'"),
            // The record's type as the journal spells it (`run-started`), never Rust's `Debug`
            // dump of the whole entry, which reached operators in damage reports.
            other => serde_json::to_value(other)
                .ok()
                .and_then(|v| v["type"].as_str().map(|t| format!("the {t} record")))
                .unwrap_or_else(|| "a record".into()),
        }
    }
}

/// A journal line: an entry with its place in the hash chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub prev: String,
    pub hash: String,
    pub entry: Entry,
}

/// The hash the chain starts from: binds a journal to its run id.
pub fn genesis_hash(run_id: &str) -> String {
    hex::encode(Sha256::digest(
        format!("godwit-journal-v1\n{run_id}").as_bytes(),
    ))
}

/// The chained hash of one record, over the exact JSON bytes of its entry.
pub fn record_hash(seq: u64, prev: &str, entry_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(entry_json.as_bytes());
    hex::encode(h.finalize())
}

/// Build the next record after `prev` (or the genesis hash), returning it with its JSON line.
pub fn seal(seq: u64, prev: &str, entry: &Entry) -> Result<(Record, String), JournalError> {
    let entry_json = serde_json::to_string(entry).map_err(|e| JournalError::Io(e.to_string()))?;
    let hash = record_hash(seq, prev, &entry_json);
    let line = format!(r#"{{"seq":{seq},"prev":"{prev}","hash":"{hash}","entry":{entry_json}}}"#);
    Ok((
        Record {
            seq,
            prev: prev.to_string(),
            hash,
            entry: entry.clone(),
        },
        line,
    ))
}

#[derive(Deserialize)]
struct RawLine<'a> {
    seq: u64,
    prev: String,
    hash: String,
    #[serde(borrow)]
    entry: &'a serde_json::value::RawValue,
}

/// Parse and check one line against the expected position in the chain.
pub fn open_line(line: &str, expect_seq: u64, expect_prev: &str) -> Result<Record, String> {
    let raw: RawLine<'_> = serde_json::from_str(line).map_err(|e| format!("not a record: {e}"))?;
    if raw.seq != expect_seq {
        return Err(format!(
            "sequence {} where {expect_seq} was expected",
            raw.seq
        ));
    }
    if raw.prev != expect_prev {
        return Err("its previous-hash does not match the record before it".into());
    }
    let want = record_hash(raw.seq, &raw.prev, raw.entry.get());
    if raw.hash != want {
        return Err("its content does not match its hash (edited)".into());
    }
    let entry: Entry =
        serde_json::from_str(raw.entry.get()).map_err(|e| format!("unknown entry: {e}"))?;
    Ok(Record {
        seq: raw.seq,
        prev: raw.prev,
        hash: raw.hash,
        entry,
    })
}

/// Failures of a journal store. Messages name the run and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("run {run_id} not found in {where_}; list runs with `godwit runs`")]
    NotFound { run_id: String, where_: String },
    #[error("run {run_id} already exists")]
    Exists { run_id: String },
    #[error(
        "run {run_id} is being driven by another godwit process ({holder}); wait for it to \
         finish or stop it, then resume"
    )]
    Locked { run_id: String, holder: String },
    #[error(
        "journal of run {run_id} is damaged at record {seq} ({what}): {why}; the journal is \
         tamper-evident and will not be resumed — inspect it with `godwit verify {run_id}`"
    )]
    Tampered {
        run_id: String,
        seq: u64,
        what: String,
        why: String,
    },
    #[error(
        "cluster {cluster} is being migrated by run {holder}, which has not finished; one run \
         per cluster: wait for it, `godwit resume {holder}`, or `godwit abort {holder}`"
    )]
    ClusterBusy { cluster: String, holder: String },
    #[error("journal I/O failed: {0}")]
    Io(String),
}

/// What an operator asked of a run from outside the process driving it. Kept beside the journal
/// until the run acts on it; the run journals what it did (an approval step's result, an abort's
/// reason), so the request itself need not be tamper-evident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// `godwit approve RUN`: the run may pass `wait_until_approved(name)`.
    Approve {
        name: String,
        by: String,
        at: Millis,
    },
    /// `godwit abort RUN`: roll back at the next safe point (before the next step, between gate
    /// polls, while waiting for an approval).
    Abort {
        reason: String,
        by: String,
        at: Millis,
    },
}

impl Request {
    /// Who is asking: `$USER` (or `$LOGNAME`) on this host.
    pub fn operator() -> String {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        match host.trim() {
            "" => user,
            h => format!("{user}@{h}"),
        }
    }
}

/// What reading a journal found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub records: Vec<Record>,
    /// A torn last line (crash mid-write) that was dropped: its byte length.
    pub torn_tail: Option<usize>,
}

/// Appends entries to one run's journal; held for as long as the run executes.
pub trait JournalWriter: Send {
    /// Append and make durable (fsync) before returning. Returns the record's sequence number.
    fn append(&mut self, entry: &Entry) -> Result<u64, JournalError>;
    /// Write one transcript line (not synced: the transcript is the narrative, the journal is
    /// the record).
    fn transcript(&mut self, line: &str);
    /// Whether this writer knows, without asking its store, that its hold on the run may lapse
    /// before it could write again: the error its next append may meet. The Host asks before
    /// every world call, so a process paused or cut off from its store stops acting on the
    /// world before another worker may take the run over — the store's fence only refuses
    /// the next append, after whatever the step did meanwhile. A file or memory store's lock
    /// lasts as long as the process: never.
    fn lapsed(&self) -> Option<JournalError> {
        None
    }
}

/// Where runs live.
pub trait JournalStore: Send + Sync {
    /// Create a new run and lock it for writing.
    fn create(&self, run_id: &str) -> Result<Box<dyn JournalWriter>, JournalError>;
    /// Lock an existing run for writing and load (verifying) its journal. A torn last line is
    /// dropped from the file.
    fn open(&self, run_id: &str) -> Result<(Loaded, Box<dyn JournalWriter>), JournalError>;
    /// Read and verify without locking (for `show`, `verify`, `runs`).
    fn read(&self, run_id: &str) -> Result<Loaded, JournalError>;
    /// All run ids, newest first.
    fn list(&self) -> Result<Vec<String>, JournalError>;
    /// Remove a run that never got its first entry (used when start-up fails before the run
    /// began, so bad input leaves nothing behind).
    fn discard(&self, run_id: &str) -> Result<(), JournalError>;

    /// Claim `cluster` for `run_id` until [`release_cluster`](Self::release_cluster): one
    /// unfinished run per cluster, whichever process drives it (the run lock only keeps two
    /// processes from driving one run). Idempotent for the holder; a claim held by a run that
    /// finished, or by a start that never began, is taken over. Refused with
    /// [`JournalError::ClusterBusy`] naming the holder. The file store keeps a lock file per
    /// cluster; a shared PostgreSQL store keeps a row (`cluster` primary key, `run_id`) written
    /// in the transaction that creates the run and deleted with its `run-finished`.
    fn claim_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError>;
    /// Give up `run_id`'s claim on `cluster` (its run finished); a claim by another run is left.
    fn release_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError>;
    /// Record an operator's request to run `run_id` (see [`Request`]).
    fn request(&self, run_id: &str, request: &Request) -> Result<(), JournalError>;
    /// The requests made to run `run_id`, oldest first.
    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError>;
}

/// Whether run `holder`'s claim on a cluster still stands: it began and has not finished, or it
/// is being created right now (`driven`: a process holds its run lock). A run that is gone, a
/// start that never began, or a finished run hold nothing. A damaged journal keeps its claim:
/// godwit cannot tell whether that run left the cluster half-migrated.
pub(crate) fn claim_stands(store: &dyn JournalStore, holder: &str, driven: bool) -> bool {
    match store.read(holder) {
        Ok(loaded) => {
            let began = loaded
                .records
                .iter()
                .any(|r| matches!(r.entry, Entry::RunStarted { .. }));
            let finished = loaded
                .records
                .iter()
                .any(|r| matches!(r.entry, Entry::RunFinished { .. }));
            (began && !finished) || (!began && driven)
        }
        Err(JournalError::NotFound { .. }) => driven,
        Err(_) => true,
    }
}

/// Verify a sequence of lines (already split) as a chain for `run_id`: the one check every store
/// applies to what it reads (the file store and the PostgreSQL store alike).
pub fn verify_lines<'a>(
    run_id: &str,
    lines: impl Iterator<Item = &'a str>,
) -> Result<Vec<Record>, JournalError> {
    let mut prev = genesis_hash(run_id);
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let seq = i as u64;
        let rec = open_line(line, seq, &prev).map_err(|why| JournalError::Tampered {
            run_id: run_id.to_string(),
            seq,
            what: out.last().map_or("first record".into(), |r: &Record| {
                format!("after {}", r.entry.label())
            }),
            why,
        })?;
        prev = rec.hash.clone();
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: Rust `Debug` text reached operators: a journal damaged after its first record
    /// was reported "after RunStarted { run_id: …, runbook: RunbookInfo { … } … }".
    #[test]
    fn records_are_named_in_words_not_debug_output() {
        let started = Entry::RunStarted {
            run_id: "r".into(),
            runbook: RunbookInfo {
                name: "n".into(),
                version: "1".into(),
                path: "p".into(),
                hash: "h".into(),
                modules: vec![],
            },
            cluster: "c".into(),
            world: "w".into(),
            params: Value::Null,
            godwit_version: "0".into(),
            at: 0,
        };
        assert_eq!(started.label(), "the run-started record");
        let undo = Entry::UndoFailed {
            step: "fence".into(),
            message: "m".into(),
            at: 0,
        };
        assert_eq!(undo.label(), "the undo of 'fence'");
    }
}
