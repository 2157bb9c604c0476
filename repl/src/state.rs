//! Where godwit keeps its runs: `--state-dir`, else `GODWIT_STATE_DIR`, else the XDG state dir
//! (`$XDG_STATE_HOME/godwit`, default `~/.local/state/godwit`); or, with `--store
//! postgres://…` (`GODWIT_STORE`), a shared PostgreSQL store (docs/store.md). Worlds' state
//! stays in the state directory either way.

use std::path::PathBuf;
use std::sync::Arc;

use godwit_engine::journal::file::{FileStore, transcript_path};
use godwit_engine::journal::{JournalError, JournalWriter, Loaded, Request};
use godwit_engine::plan::Plan;
use godwit_engine::{EngineError, JournalStore};
use godwit_pgstore::PgStore;
use serde_json::{Value, json};

/// The run store every command works against: files under the state directory (the embedded
/// default) or the shared PostgreSQL store. Both are the same `JournalStore`; this adds what
/// the commands show about a run beyond its journal.
#[derive(Clone, Debug)]
pub enum Store {
    File(FileStore),
    Pg(PgStore),
}

impl Store {
    /// The store as the engine takes it.
    pub fn journal(&self) -> Arc<dyn JournalStore> {
        match self {
            Store::File(f) => Arc::new(f.clone()),
            Store::Pg(p) => Arc::new(p.clone()),
        }
    }

    /// Who drives run `id` now: the file lock's holder, or the live lease's.
    pub fn holder(&self, id: &str) -> Option<String> {
        match self {
            Store::File(f) => f.holder(id),
            Store::Pg(p) => p.holder(id),
        }
    }

    /// Where the runs are, for messages: a directory or `postgres://user@host:port/db`.
    pub fn place(&self) -> String {
        match self {
            Store::File(f) => f.root().display().to_string(),
            Store::Pg(p) => p.place().to_string(),
        }
    }

    /// Where one run is, for messages.
    pub fn run_place(&self, id: &str) -> String {
        match self {
            Store::File(f) => format!("the directory {}", f.run_dir(id).display()),
            Store::Pg(p) => format!("run {id} in {}", p.place()),
        }
    }

    /// A run's transcript lines (best effort: none when unreadable).
    pub fn transcript_lines(&self, id: &str) -> Vec<String> {
        match self {
            Store::File(f) => std::fs::read_to_string(transcript_path(f, id))
                .map(|t| t.lines().map(str::to_string).collect())
                .unwrap_or_default(),
            Store::Pg(p) => p.transcript_lines(id).unwrap_or_default(),
        }
    }
}

impl JournalStore for Store {
    fn create(&self, run_id: &str) -> Result<Box<dyn JournalWriter>, JournalError> {
        match self {
            Store::File(f) => f.create(run_id),
            Store::Pg(p) => p.create(run_id),
        }
    }
    fn open(&self, run_id: &str) -> Result<(Loaded, Box<dyn JournalWriter>), JournalError> {
        match self {
            Store::File(f) => f.open(run_id),
            Store::Pg(p) => p.open(run_id),
        }
    }
    fn read(&self, run_id: &str) -> Result<Loaded, JournalError> {
        match self {
            Store::File(f) => f.read(run_id),
            Store::Pg(p) => p.read(run_id),
        }
    }
    fn list(&self) -> Result<Vec<String>, JournalError> {
        match self {
            Store::File(f) => f.list(),
            Store::Pg(p) => p.list(),
        }
    }
    fn discard(&self, run_id: &str) -> Result<(), JournalError> {
        match self {
            Store::File(f) => f.discard(run_id),
            Store::Pg(p) => p.discard(run_id),
        }
    }
    fn claim_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        match self {
            Store::File(f) => f.claim_cluster(cluster, run_id),
            Store::Pg(p) => p.claim_cluster(cluster, run_id),
        }
    }
    fn release_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        match self {
            Store::File(f) => f.release_cluster(cluster, run_id),
            Store::Pg(p) => p.release_cluster(cluster, run_id),
        }
    }
    fn request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        match self {
            Store::File(f) => f.request(run_id, request),
            Store::Pg(p) => p.request(run_id, request),
        }
    }
    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        match self {
            Store::File(f) => f.requests(run_id),
            Store::Pg(p) => p.requests(run_id),
        }
    }
}

pub fn state_dir(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("GODWIT_STATE_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p).join("godwit"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/godwit")),
        None => Err("no state directory: set GODWIT_STATE_DIR or pass --state-dir".into()),
    }
}

pub fn store(dir: &std::path::Path) -> FileStore {
    FileStore::new(dir.join("runs"))
}

/// The store `--store` names: a `postgres://` URL, connected (and migrated) now, so an
/// unreachable store is an error before anything runs.
pub fn pg_store(url: &str, options: godwit_pgstore::Options) -> Result<PgStore, String> {
    if !godwit_pgstore::is_url(url) {
        return Err(format!(
            "--store takes a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE), not '{url}'; \
             runs kept in files live under --state-dir, which is the default"
        ));
    }
    PgStore::connect(url, options).map_err(|e| e.to_string())
}

/// Where a stateful world (the simulator) keeps a run's world: beside the runs, not in the run
/// directory, which only the journal store creates.
pub fn world_state_file(state_dir: &std::path::Path, run_id: &str) -> PathBuf {
    state_dir.join("worlds").join(format!("{run_id}.json"))
}

/// The files a world keeps at `state` ([`world_state_file`]): the state itself, the simulator's
/// clock (`.now`) and the world's settings (`.settings.json`).
pub fn world_files(state: &std::path::Path) -> Vec<PathBuf> {
    vec![
        state.to_path_buf(),
        state.with_extension("now"),
        godwit_stdlib::world::settings_file(state),
    ]
}

/// A run's world files held by one job on this machine ([`lock_world`]); released on drop,
/// or by the kernel when the process dies. Empty for a world whose state is not in its files.
#[derive(Debug)]
pub struct WorldLock {
    _file: Option<std::fs::File>,
}

/// [`lock_world`] for a world named `world` (`sim:…`, `aws`, `lab`, …): only a simulated
/// world lives in its files; the others' state is elsewhere (AWS, the lab's servers), where a
/// job whose lease lapsed is stopped by the journal's fence, and their files (settings) are the
/// same for every take. Workers sharing a state directory therefore wait for a paused one to
/// wake (and be refused) or die before they take its *simulated* runs over; workers elsewhere
/// do not wait.
pub fn lock_world_of(world: &str, state: &std::path::Path) -> Result<Option<WorldLock>, String> {
    if world == "sim" || world.starts_with("sim:") {
        lock_world(state)
    } else {
        Ok(Some(WorldLock { _file: None }))
    }
}

/// Take run `state`'s world for one job: an exclusive lock on `<state>.lock` (flock, across
/// processes sharing the state directory and between jobs of one process). `None` while
/// another job holds it — a job of the same run whose lease lapsed while it still ran (its
/// process paused past the lease, or starved) goes on until its next append is refused;
/// fetching the store's files over its world meanwhile, or driving the world from two jobs,
/// would mix two runs' worlds in one set of files.
pub fn lock_world(state: &std::path::Path) -> Result<Option<WorldLock>, String> {
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let path = state.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(WorldLock { _file: Some(file) })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// [`lock_world`] for a command an operator runs (`resume`, `abort`): a world in use is an
/// error naming who to wait for.
pub fn claim_world(id: &str, world: &str, state: &std::path::Path) -> Result<WorldLock, String> {
    lock_world_of(world, state)?.ok_or_else(|| {
        format!(
            "run {id}'s world ({}) is in use by another godwit process on this machine (a \
             worker driving it, or one still letting go of it); wait for it, or stop that worker",
            state.display()
        )
    })
}

/// With the PostgreSQL store, make the world's files at `state` follow run `id`: each append
/// stores those that changed, so another machine can continue the run ([`fetch_world`]).
pub fn follow_world(store: &Store, id: &str, state: &std::path::Path) {
    if let Store::Pg(p) = store {
        p.follow_files(id, world_files(state));
    }
}

/// With the PostgreSQL store, put run `id`'s world files at `state` as its last append left
/// them, so the run continues here in the world it left elsewhere (on the machine that drove
/// it they are the same files, or the journal's consistent version of them).
pub fn fetch_world(store: &Store, id: &str, state: &std::path::Path) -> Result<(), String> {
    let Store::Pg(p) = store else {
        return Ok(());
    };
    let files = p.world_files(id).map_err(|e| e.to_string())?;
    let Some(dir) = state.parent() else {
        return Ok(());
    };
    if !files.is_empty() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for (name, content) in files {
        // Names are bare file names written by follow_world; anything else is not ours.
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            continue;
        }
        let path = dir.join(&name);
        std::fs::write(&path, content)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A new run's world continuing from run `from`'s (`godwit rollback`, `godwit clone`): run
/// `from`'s files fetched (PostgreSQL store), then copied to `to`'s, so `from`'s stay as they
/// ended. Returns `to`'s state file.
pub fn copy_world(
    store: &Store,
    state_dir: &std::path::Path,
    from: &str,
    to: &str,
) -> Result<PathBuf, crate::session::Failure> {
    let forward = world_state_file(state_dir, from);
    fetch_world(store, from, &forward).map_err(crate::session::invalid)?;
    let state = world_state_file(state_dir, to);
    for (a, b) in world_files(&forward).into_iter().zip(world_files(&state)) {
        if a.is_file() {
            std::fs::copy(&a, &b).map_err(|e| {
                crate::session::Failure(
                    godwit_engine::exit::INTERNAL,
                    format!("cannot copy {} to {}: {e}", a.display(), b.display()),
                )
            })?;
        }
    }
    Ok(state)
}

/// Remove a world that never got its run (a refused start); its directory too when empty.
pub fn forget_world(state: &std::path::Path) {
    for f in world_files(state) {
        let _ = std::fs::remove_file(f);
    }
    if let Some(parent) = state.parent() {
        let _ = std::fs::remove_dir(parent); // only if empty
    }
}

/// Resolve what the operator typed to a run id: exact id, `last` (the newest: ids are
/// time-ordered, see `godwit_engine::run::run_order`), or a unique prefix.
pub fn resolve_run(store: &Store, arg: &str) -> Result<String, String> {
    let ids = store.list().map_err(|e| e.to_string())?;
    if arg == "last" {
        return ids
            .first()
            .cloned()
            .ok_or_else(|| format!("no runs in {}", store.place()));
    }
    if ids.iter().any(|i| i == arg) {
        return Ok(arg.to_string());
    }
    let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(arg)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no run '{arg}' in {}; list runs with `godwit runs`",
            store.place()
        )),
        many => Err(format!(
            "'{arg}' matches {} runs ({}); type more of the id",
            many.len(),
            many.iter()
                .take(5)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Where run `id` stands, in the words every command uses ([`Plan::status_word`]), and the
/// process driving it, if one does.
pub fn run_status(store: &Store, id: &str, plan: &Plan) -> (&'static str, Option<String>) {
    let holder = store.holder(id);
    (plan.status_word(holder.is_some()), holder)
}

/// [`run_status`] in one phrase: `running (pid 42 on host)`, `stopped`, ...
pub fn status_text(store: &Store, id: &str, plan: &Plan) -> String {
    match run_status(store, id, plan) {
        (word, Some(holder)) => format!("{word} ({holder})"),
        (word, None) => word.to_string(),
    }
}

/// When run `id` was started by the wall clock, as its id says (ULIDs, and the dated ids before).
pub fn started_at(id: &str) -> Option<i64> {
    Some(godwit_engine::run::run_order(id).0).filter(|ms| *ms != i64::MIN)
}

/// Every run, newest first, as `godwit runs -o json` prints them: `run_id`, `runbook`,
/// `cluster`, `world`, `started` (wall clock, from the id), `status`, `driven_by` and
/// `where`; a run whose journal cannot be read is `damaged`.
pub fn list_runs(store: &Store) -> Result<Vec<Value>, EngineError> {
    let ids = store.list().map_err(EngineError::from)?;
    let mut rows = Vec::new();
    for id in ids {
        let row = match store.read(&id) {
            Ok(loaded) => {
                let plan = Plan::from_records(&loaded.records);
                let s = plan.started.clone();
                let (status, holder) = run_status(store, &id, &plan);
                json!({
                    "run_id": id,
                    "runbook": s.as_ref().map(|s| format!("{} {}", s.runbook.name, s.runbook.version)),
                    "cluster": s.as_ref().map(|s| s.cluster.clone()),
                    "world": s.as_ref().map(|s| s.world.clone()),
                    // Wall-clock start from the id (a simulated run's own clock starts every
                    // run at the same virtual time).
                    "started": started_at(&id).or_else(|| s.as_ref().map(|s| s.at)).map(godwit_engine::clock::format_timestamp),
                    "status": status,
                    "driven_by": holder,
                    "where": plan.whereabouts(),
                })
            }
            Err(e) => json!({ "run_id": id, "status": "damaged", "where": e.to_string() }),
        };
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One job per world: a second take (another job of this process, or another process
    /// sharing the state directory) waits until the first lets go.
    #[test]
    fn a_world_is_held_by_one_job_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("worlds").join("r1.json");
        let first = lock_world(&state).unwrap().expect("a free world");
        assert!(lock_world(&state).unwrap().is_none(), "held by the first");
        let err = claim_world("r1", "sim:busy-source", &state).unwrap_err();
        assert!(
            claim_world("r1", "aws", &state).is_ok(),
            "an aws world's files are not its state"
        );
        assert!(err.contains("in use by another godwit process"), "{err}");
        assert!(
            lock_world(&dir.path().join("worlds").join("r2.json"))
                .unwrap()
                .is_some(),
            "another run's world is free"
        );
        drop(first);
        assert!(lock_world(&state).unwrap().is_some(), "free again");
    }
}
