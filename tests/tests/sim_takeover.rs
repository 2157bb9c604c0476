//! A run taken over by another worker continues in the world its journal's last record left:
//! the PostgreSQL store keeps a simulated world's files with every append (`follow_world`), and
//! a worker taking the run over puts them back (`fetch_world`). Here a run's journal is cut
//! after each of its records in turn, its world put back as that record stored it, and a fresh
//! process resumes: the run must succeed with no simulator invariant broken. A world older than
//! its journal is refused: with a `sim.now` one record behind, runs rolled back on a validation
//! that missed rows, or broke `route-serves-writable`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::journal::{Entry, JournalError, JournalStore, JournalWriter, Loaded, Request};
use godwit_engine::{RunStatus, StartRequest};
use godwit_stdlib::sim::scenario::Scenario;
use godwit_stdlib::sim::world::sim_world_persistent;
use godwit_stdlib::world::World;

/// The world's files as one append stored them (`None`: not written yet).
type Files = Vec<Option<Vec<u8>>>;

/// A store that keeps, with each append, the followed files as they are at that moment (what
/// `PgWriter::append` stores with the record).
#[derive(Clone)]
struct Following {
    inner: MemoryStore,
    files: Vec<PathBuf>,
    /// (the entry, the files with it), in append order.
    appended: Arc<Mutex<Vec<(Entry, Files)>>>,
}

struct FollowingWriter {
    inner: Box<dyn JournalWriter>,
    store: Following,
}

impl JournalWriter for FollowingWriter {
    fn append(&mut self, entry: &Entry) -> Result<u64, JournalError> {
        let seq = self.inner.append(entry)?;
        let files = self
            .store
            .files
            .iter()
            .map(|f| std::fs::read(f).ok())
            .collect();
        self.store
            .appended
            .lock()
            .unwrap()
            .push((entry.clone(), files));
        Ok(seq)
    }

    fn transcript(&mut self, line: &str) {
        self.inner.transcript(line)
    }
}

impl JournalStore for Following {
    fn create(&self, run_id: &str) -> Result<Box<dyn JournalWriter>, JournalError> {
        Ok(Box::new(FollowingWriter {
            inner: self.inner.create(run_id)?,
            store: self.clone(),
        }))
    }
    fn open(&self, run_id: &str) -> Result<(Loaded, Box<dyn JournalWriter>), JournalError> {
        let (loaded, inner) = self.inner.open(run_id)?;
        let store = self.clone();
        Ok((loaded, Box::new(FollowingWriter { inner, store })))
    }
    fn read(&self, run_id: &str) -> Result<Loaded, JournalError> {
        self.inner.read(run_id)
    }
    fn list(&self) -> Result<Vec<String>, JournalError> {
        self.inner.list()
    }
    fn discard(&self, run_id: &str) -> Result<(), JournalError> {
        self.inner.discard(run_id)
    }
    fn claim_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        self.inner.claim_cluster(cluster, run_id)
    }
    fn release_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        self.inner.release_cluster(cluster, run_id)
    }
    fn request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        self.inner.request(run_id, request)
    }
    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        self.inner.requests(run_id)
    }
}

fn runbooks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runbooks")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The simulated world of `scenario` kept at `state` (`sim.json`, `sim.now` beside it).
fn world_at(scenario: &str, state: &Path) -> World {
    sim_world_persistent(Scenario::load(scenario).unwrap(), state)
        .unwrap()
        .0
}

fn state_files(state: &Path) -> Vec<PathBuf> {
    vec![state.to_path_buf(), state.with_extension("now")]
}

/// An uninterrupted run of `runbook` on `scenario`: every record with the world files stored
/// with it.
fn record(
    runbook: &str,
    scenario: &str,
    params: &serde_json::Map<String, serde_json::Value>,
    rt: &tokio::runtime::Runtime,
) -> Vec<(Entry, Files)> {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("sim.json");
    let store = Following {
        inner: MemoryStore::new(),
        files: state_files(&state),
        appended: Arc::default(),
    };
    let world = world_at(scenario, &state);
    let runner = world.runner(Arc::new(store.clone()), rt.handle().clone());
    let report = runner
        .start(StartRequest {
            runbook: runbooks_dir().join(runbook),
            cluster: Scenario::load(scenario).unwrap().source.id,
            params: params.clone(),
            run_id: Some("r1".into()),
        })
        .unwrap();
    assert!(
        matches!(report.status, RunStatus::Succeeded { .. }),
        "{runbook} on {scenario}: {:?}",
        report.status
    );
    let findings = world.audit.as_ref().map(|a| a()).unwrap_or_default();
    assert!(findings.is_empty(), "{findings:?}");
    store.appended.lock().unwrap().clone()
}

/// Another machine resumes run `r1` whose journal is `entries`, in a world put back from
/// `files`: the report (or the refusal), the simulator's findings, and the records then in the
/// journal.
fn resume_on_another_machine(
    scenario: &str,
    entries: &[Entry],
    files: &Files,
    rt: &tokio::runtime::Runtime,
) -> (Result<RunStatus, String>, Vec<String>, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("sim.json");
    for (f, bytes) in state_files(&state).iter().zip(files) {
        if let Some(b) = bytes {
            std::fs::write(f, b).unwrap();
        }
    }
    let store = MemoryStore::new();
    let mut w = store.create("r1").unwrap();
    for e in entries {
        w.append(e).unwrap();
    }
    drop(w);
    let world = world_at(scenario, &state);
    let runner = world.runner(Arc::new(store.clone()), rt.handle().clone());
    let status = runner
        .resume("r1", false)
        .map(|r| r.status)
        .map_err(|e| e.to_string());
    let findings = world.audit.as_ref().map(|a| a()).unwrap_or_default();
    (status, findings, store.read("r1").unwrap().records.len())
}

/// Cut the journal of an uninterrupted run after each record (every `stride`-th, and every one
/// from the first hold of application traffic on, where a world behind its journal loses
/// writes) and resume it elsewhere, in the world of the cut and in the world of the record
/// after it.
fn every_takeover_succeeds(
    runbook: &str,
    scenario: &str,
    params: serde_json::Value,
    stride: usize,
) {
    let rt = rt();
    let appended = record(runbook, scenario, params.as_object().unwrap(), &rt);
    let entries: Vec<Entry> = appended.iter().map(|(e, _)| e.clone()).collect();
    let cutover = entries
        .iter()
        .position(|e| matches!(e, Entry::StepStarted { name, .. } if name == "hold"))
        .unwrap_or_else(|| panic!("{runbook}: no hold step"));
    let mut failed = Vec::new();
    let mut tried = 0;
    // After the last record the run has finished: nothing to resume.
    for k in 1..entries.len() {
        if k < cutover && k % stride != 1 {
            continue;
        }
        // The world as record k stored it (the PostgreSQL store's takeover), and as record
        // k + 1 did: the process died after the effects that record would have closed, before
        // journaling it (the file store's resume on one machine, and AWS, where effects stay):
        // the step runs again against a world where it already happened.
        for (world, files) in [("its own", k - 1), ("the next record's", k)] {
            tried += 1;
            let (status, findings, _) =
                resume_on_another_machine(scenario, &entries[..k], &appended[files].1, &rt);
            match status {
                Ok(RunStatus::Succeeded { .. }) if findings.is_empty() => {}
                other => failed.push(format!(
                    "cut after record {k} ({}), {world} world: {other:?}; findings: {findings:?}",
                    entries[k - 1].label()
                )),
            }
        }
    }
    assert!(tried > 20, "{runbook}: only {tried} cuts");
    assert!(failed.is_empty(), "{runbook} on {scenario}: {failed:#?}");
}

#[test]
fn the_standard_runbook_taken_over_after_any_record_succeeds_in_the_world_it_stored() {
    every_takeover_succeeds(
        "rds-to-aurora.rhai",
        "busy-source",
        serde_json::json!({}),
        3,
    );
}

#[test]
fn the_logical_runbook_taken_over_after_any_record_succeeds_in_the_world_it_stored() {
    every_takeover_succeeds("logical.rhai", "logical-ready", serde_json::json!({}), 3);
}

/// The world the journal's first record stored, under the journal of a run near its end: the
/// resume is refused before anything is appended, naming both times.
#[test]
fn a_world_older_than_its_journal_is_refused_before_anything_is_appended() {
    let rt = rt();
    let appended = record(
        "rds-to-aurora.rhai",
        "busy-source",
        &Default::default(),
        &rt,
    );
    let entries: Vec<Entry> = appended.iter().map(|(e, _)| e.clone()).collect();
    let k = entries.len() - 1;
    let (status, findings, records) =
        resume_on_another_machine("busy-source", &entries[..k], &appended[0].1, &rt);
    let err = status.expect_err("a world older than its journal continued the run");
    assert!(err.contains("older than the run"), "{err}");
    assert!(err.contains("journal's last record is at"), "{err}");
    assert_eq!(records, k, "nothing appended: {err}");
    assert!(findings.is_empty(), "{findings:?}");
}
