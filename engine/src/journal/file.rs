//! The embedded journal store: one directory per run under `<state>/runs/`.
//!
//! ```text
//! <state>/runs/<run-id>/journal.jsonl     hash-chained records, one per line, fsync'd per append
//!                      /transcript.jsonl  events for humans and tools; each line carries the
//!                                         journal sequence number current when it was written
//!                      /lock              flock'd by the process driving the run; holds its pid
//!                      /requests.jsonl    operator requests (`godwit approve`, `godwit abort`)
//! <state>/runs/.clusters/<cluster>        the cluster lock: the id of the run that holds it
//!                       /<cluster>.flock  flock'd while a claim is checked and written
//! ```
//!
//! Crash safety: an append is one `write` of a whole line followed by `fdatasync`, so after a
//! crash only the last line can be incomplete. Such a *torn* line (no trailing newline, or NUL
//! bytes left by the filesystem) is dropped on open and reported, not treated as tampering.
//! The transcript is written only after the journal append it refers to is durable, so a
//! transcript line naming a sequence number the journal does not have means records were
//! removed from the end of the journal: that is reported as truncation.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{
    Entry, JournalError, JournalStore, JournalWriter, Loaded, Request, claim_stands, genesis_hash,
    seal,
};

const JOURNAL: &str = "journal.jsonl";
const TRANSCRIPT: &str = "transcript.jsonl";
const LOCK: &str = "lock";
const REQUESTS: &str = "requests.jsonl";
/// Under the root, beside the runs; `list` skips it (it has no journal).
const CLUSTERS: &str = ".clusters";

/// Runs stored as directories under `root` (normally `<state dir>/runs`).
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join(run_id)
    }

    /// Who is driving the run right now, if anyone (probes the lock without keeping it).
    pub fn holder(&self, run_id: &str) -> Option<String> {
        let mut file = File::open(self.run_dir(run_id).join(LOCK)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(_) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Some(holder.trim().to_string())
            }
        }
    }

    fn not_found(&self, run_id: &str) -> JournalError {
        JournalError::NotFound {
            run_id: run_id.into(),
            where_: self.root.display().to_string(),
        }
    }

    fn lock(&self, run_id: &str, dir: &Path) -> Result<File, JournalError> {
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(JournalError::Locked {
                    run_id: run_id.into(),
                    holder: if holder.is_empty() {
                        "unknown pid".into()
                    } else {
                        holder.into()
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let host = fs::read_to_string("/etc/hostname").unwrap_or_default();
        write!(file, "pid {} on {}", std::process::id(), host.trim()).map_err(io)?;
        Ok(file)
    }

    /// The file naming the run that holds `cluster`, and the guard flock'd around a claim.
    fn cluster_files(&self, cluster: &str) -> Result<(PathBuf, File), JournalError> {
        let dir = self.root.join(CLUSTERS);
        fs::create_dir_all(&dir).map_err(io)?;
        let guard = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(format!("{cluster}.flock")))
            .map_err(io)?;
        // Claims take microseconds: wait for a concurrent one instead of failing.
        guard.lock().map_err(io)?;
        Ok((dir.join(cluster), guard))
    }

    /// The run holding `cluster`'s lock, if its claim still stands.
    pub fn cluster_holder(&self, cluster: &str) -> Option<String> {
        let holder = fs::read_to_string(self.root.join(CLUSTERS).join(cluster)).ok()?;
        let holder = holder.trim().to_string();
        claim_stands(self, &holder, self.holder(&holder).is_some()).then_some(holder)
    }

    /// Read the journal file and split it into complete lines plus a torn tail, if any.
    fn load_file(&self, run_id: &str, dir: &Path) -> Result<(Loaded, u64), JournalError> {
        let bytes = match fs::read(dir.join(JOURNAL)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.not_found(run_id));
            }
            Err(e) => return Err(io(e)),
        };
        let (good_len, torn) = split_torn_tail(&bytes);
        let text = std::str::from_utf8(&bytes[..good_len]).map_err(|_| JournalError::Tampered {
            run_id: run_id.into(),
            seq: 0,
            what: "file".into(),
            why: "the journal is not valid UTF-8".into(),
        })?;
        let records = super::verify_lines(run_id, text.lines())?;
        let last_seq = records.last().map(|r| r.seq);
        if let Some(referenced) = max_transcript_seq(&dir.join(TRANSCRIPT))
            && last_seq.is_none_or(|last| referenced > last)
        {
            return Err(JournalError::Tampered {
                run_id: run_id.into(),
                seq: last_seq.map_or(0, |s| s + 1),
                what: "end of journal".into(),
                why: format!(
                    "the transcript refers to record {referenced} but the journal ends at {}: \
                         records were removed from the end (truncated)",
                    last_seq.map_or("nothing".into(), |s| s.to_string())
                ),
            });
        }
        Ok((
            Loaded {
                records,
                torn_tail: torn.then_some(bytes.len() - good_len),
            },
            good_len as u64,
        ))
    }
}

/// Split off a torn last line: bytes after the last newline, or a final line of NUL bytes.
fn split_torn_tail(bytes: &[u8]) -> (usize, bool) {
    let mut good = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    let mut torn = good < bytes.len();
    // A crash can leave a zero-filled block that ends in a newline we did not write.
    while good > 0 {
        let start = bytes[..good - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if bytes[start..good - 1].contains(&0) {
            good = start;
            torn = true;
        } else {
            break;
        }
    }
    (good, torn)
}

/// The highest journal sequence number any readable transcript line refers to.
fn max_transcript_seq(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("seq").and_then(serde_json::Value::as_u64))
        .max()
}

fn io(e: impl std::fmt::Display) -> JournalError {
    JournalError::Io(e.to_string())
}

struct FileWriter {
    journal: File,
    transcript: File,
    _lock: File,
    next_seq: u64,
    prev: String,
}

impl JournalWriter for FileWriter {
    fn append(&mut self, entry: &Entry) -> Result<u64, JournalError> {
        let (record, mut line) = seal(self.next_seq, &self.prev, entry)?;
        line.push('\n');
        self.journal.write_all(line.as_bytes()).map_err(io)?;
        self.journal.sync_data().map_err(io)?;
        self.prev = record.hash;
        self.next_seq += 1;
        Ok(record.seq)
    }

    fn transcript(&mut self, line: &str) {
        // Best effort: losing narrative must never fail a migration step.
        let _ = self.transcript.write_all(format!("{line}\n").as_bytes());
    }
}

impl JournalStore for FileStore {
    fn create(&self, run_id: &str) -> Result<Box<dyn JournalWriter>, JournalError> {
        fs::create_dir_all(&self.root).map_err(io)?;
        let dir = self.run_dir(run_id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(JournalError::Exists {
                    run_id: run_id.into(),
                });
            }
            Err(e) => return Err(io(e)),
        }
        let lock = self.lock(run_id, &dir)?;
        let open = |name| {
            OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(dir.join(name))
        };
        let journal = open(JOURNAL).map_err(io)?;
        let transcript = open(TRANSCRIPT).map_err(io)?;
        // Make the new directory entry itself durable.
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(Box::new(FileWriter {
            journal,
            transcript,
            _lock: lock,
            next_seq: 0,
            prev: genesis_hash(run_id),
        }))
    }

    fn open(&self, run_id: &str) -> Result<(Loaded, Box<dyn JournalWriter>), JournalError> {
        let dir = self.run_dir(run_id);
        if !dir.join(JOURNAL).exists() {
            return Err(self.not_found(run_id));
        }
        let lock = self.lock(run_id, &dir)?;
        let (loaded, good_len) = self.load_file(run_id, &dir)?;
        let journal = OpenOptions::new()
            .append(true)
            .open(dir.join(JOURNAL))
            .map_err(io)?;
        if loaded.torn_tail.is_some() {
            journal.set_len(good_len).map_err(io)?;
            journal.sync_data().map_err(io)?;
        }
        let transcript = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(TRANSCRIPT))
            .map_err(io)?;
        let (next_seq, prev) = match loaded.records.last() {
            Some(r) => (r.seq + 1, r.hash.clone()),
            None => (0, genesis_hash(run_id)),
        };
        Ok((
            loaded,
            Box::new(FileWriter {
                journal,
                transcript,
                _lock: lock,
                next_seq,
                prev,
            }),
        ))
    }

    fn read(&self, run_id: &str) -> Result<Loaded, JournalError> {
        let dir = self.run_dir(run_id);
        Ok(self.load_file(run_id, &dir)?.0)
    }

    fn list(&self) -> Result<Vec<String>, JournalError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(JOURNAL).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        // Newest first, by the start time the id carries (ULIDs, and the dated ids before
        // them), so `last` is the run started last even among runs of one second.
        ids.sort_unstable_by(|a, b| crate::run::run_order(b).cmp(&crate::run::run_order(a)));
        Ok(ids)
    }

    fn discard(&self, run_id: &str) -> Result<(), JournalError> {
        let dir = self.run_dir(run_id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    fn claim_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        let (path, _guard) = self.cluster_files(cluster)?;
        if let Ok(holder) = fs::read_to_string(&path) {
            let holder = holder.trim();
            if holder == run_id {
                return Ok(());
            }
            if !holder.is_empty() && claim_stands(self, holder, self.holder(holder).is_some()) {
                return Err(JournalError::ClusterBusy {
                    cluster: cluster.into(),
                    holder: holder.into(),
                });
            }
        }
        // Write-then-rename, synced: a crash leaves the old claim or the new one, never half.
        let tmp = path.with_extension("new");
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(run_id.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }

    fn release_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        let (path, _guard) = self.cluster_files(cluster)?;
        match fs::read_to_string(&path) {
            Ok(holder) if holder.trim() == run_id => fs::remove_file(&path).map_err(io),
            _ => Ok(()),
        }
    }

    fn request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        let dir = self.run_dir(run_id);
        if !dir.join(JOURNAL).exists() {
            return Err(self.not_found(run_id));
        }
        let line = serde_json::to_string(request).map_err(io)? + "\n";
        // One small append: atomic on a local file system, so readers see whole lines.
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(REQUESTS))
            .map_err(io)?;
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)
    }

    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        let text = match fs::read_to_string(self.run_dir(run_id).join(REQUESTS)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// Path of a run's transcript file (for `godwit show`).
pub fn transcript_path(store: &FileStore, run_id: &str) -> PathBuf {
    store.run_dir(run_id).join(TRANSCRIPT)
}

/// Path of a run's journal file.
pub fn journal_path(store: &FileStore, run_id: &str) -> PathBuf {
    store.run_dir(run_id).join(JOURNAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Entry;

    fn step(name: &str) -> Entry {
        Entry::StepCompleted {
            name: name.into(),
            result: serde_json::json!({"n": 1.5}),
            at: 7,
        }
    }

    fn store() -> (tempfile::TempDir, FileStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("runs"));
        (dir, store)
    }

    #[test]
    fn append_then_reopen_verifies_chain() {
        let (_d, store) = store();
        let mut w = store.create("r1").unwrap();
        for n in ["a", "b", "c"] {
            w.append(&step(n)).unwrap();
        }
        drop(w);
        let (loaded, _w) = store.open("r1").unwrap();
        assert_eq!(loaded.records.len(), 3);
        assert_eq!(loaded.records[2].entry, step("c"));
        assert!(loaded.torn_tail.is_none());
    }

    #[test]
    fn second_writer_is_refused_with_holder() {
        let (_d, store) = store();
        let _w = store.create("r1").unwrap();
        let err = store.open("r1").err().unwrap().to_string();
        assert!(
            err.contains("being driven by another godwit process"),
            "{err}"
        );
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn torn_tail_is_dropped_not_tampering() {
        let (_d, store) = store();
        let mut w = store.create("r1").unwrap();
        w.append(&step("a")).unwrap();
        w.append(&step("b")).unwrap();
        drop(w);
        let path = journal_path(&store, "r1");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let torn = br#"{"seq":2,"prev":"abc","hash":"de"#;
        f.write_all(torn).unwrap();
        drop(f);
        let (loaded, mut w) = store.open("r1").unwrap();
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.torn_tail, Some(torn.len()));
        w.append(&step("c")).unwrap();
        drop(w);
        assert_eq!(
            store.read("r1").unwrap().records.len(),
            3,
            "append after repair chains on"
        );
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let (_d, store) = store();
        let mut w = store.create("r1").unwrap();
        w.append(&step("a")).unwrap();
        drop(w);
        let mut f = OpenOptions::new()
            .append(true)
            .open(journal_path(&store, "r1"))
            .unwrap();
        f.write_all(&[0u8; 64]).unwrap();
        f.write_all(b"\n").unwrap();
        drop(f);
        assert_eq!(store.read("r1").unwrap().torn_tail, Some(65));
    }

    #[test]
    fn edited_record_is_tampering() {
        let (_d, store) = store();
        let mut w = store.create("r1").unwrap();
        w.append(&step("a")).unwrap();
        w.append(&step("b")).unwrap();
        drop(w);
        let path = journal_path(&store, "r1");
        let text = fs::read_to_string(&path).unwrap().replacen("1.5", "2.5", 1);
        fs::write(&path, text).unwrap();
        let err = store.read("r1").unwrap_err().to_string();
        assert!(err.contains("damaged at record 0"), "{err}");
        assert!(err.contains("edited"), "{err}");
    }

    #[test]
    fn removed_middle_record_is_tampering() {
        let (_d, store) = store();
        let mut w = store.create("r1").unwrap();
        for n in ["a", "b", "c"] {
            w.append(&step(n)).unwrap();
        }
        drop(w);
        let path = journal_path(&store, "r1");
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let err = store.read("r1").unwrap_err().to_string();
        assert!(err.contains("record 1"), "{err}");
    }

    #[test]
    fn truncation_is_caught_through_the_transcript() {
        let (_d, store) = store();
        let mut w = store.create("r1").unwrap();
        for n in ["a", "b", "c"] {
            let seq = w.append(&step(n)).unwrap();
            w.transcript(&format!(r#"{{"seq":{seq},"event":"x"}}"#));
        }
        drop(w);
        let path = journal_path(&store, "r1");
        let text = fs::read_to_string(&path).unwrap();
        let kept: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        fs::write(&path, kept).unwrap();
        let err = store.read("r1").unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn runs_list_newest_first_by_the_time_in_their_ids_even_within_one_second() {
        let (_d, store) = store();
        // Made in this order; ULIDs of one process are monotonic within a millisecond.
        let ids: Vec<String> = (0..5)
            .map(|_| crate::run::new_run_id(if ids_vary() { "b" } else { "a" }))
            .collect();
        for id in ids.iter().rev() {
            drop(store.create(id).unwrap());
        }
        drop(store.create("20200101-000000-old-db-1a2b").unwrap());
        let mut want: Vec<String> = ids.iter().rev().cloned().collect();
        want.push("20200101-000000-old-db-1a2b".into());
        assert_eq!(store.list().unwrap(), want);
    }

    fn ids_vary() -> bool {
        use std::sync::atomic::{AtomicBool, Ordering};
        static FLIP: AtomicBool = AtomicBool::new(false);
        FLIP.fetch_xor(true, Ordering::SeqCst)
    }

    #[test]
    fn a_cluster_is_claimed_by_one_unfinished_run() {
        use crate::journal::Outcome;
        let (_d, store) = store();
        let started = |id: &str| Entry::RunStarted {
            run_id: id.into(),
            runbook: crate::journal::RunbookInfo {
                name: "r".into(),
                version: "1".into(),
                path: "r.rhai".into(),
                hash: "h".into(),
                modules: vec![],
            },
            cluster: "orders-db".into(),
            world: "pure".into(),
            params: serde_json::json!({}),
            godwit_version: "0".into(),
            at: 1,
        };
        let mut a = store.create("a").unwrap();
        store.claim_cluster("orders-db", "a").unwrap();
        a.append(&started("a")).unwrap();
        drop(a); // stopped, not finished: the claim stands
        let _b = store.create("b").unwrap();
        let err = store.claim_cluster("orders-db", "b").unwrap_err();
        assert!(
            matches!(&err, JournalError::ClusterBusy { holder, .. } if holder == "a"),
            "{err}"
        );
        assert!(err.to_string().contains("godwit resume a"), "{err}");
        store.claim_cluster("orders-db", "a").unwrap(); // the holder again: fine
        assert_eq!(store.cluster_holder("orders-db").as_deref(), Some("a"));
        let (_, mut a) = store.open("a").unwrap();
        a.append(&Entry::RunFinished {
            outcome: Outcome::Succeeded,
            detail: serde_json::Value::Null,
            at: 2,
        })
        .unwrap();
        drop(a);
        // Finished without releasing (a crash right after run-finished): stale, taken over.
        store.claim_cluster("orders-db", "b").unwrap();
        store.release_cluster("orders-db", "a").unwrap(); // not a's any more: kept
        assert_eq!(store.cluster_holder("orders-db").as_deref(), Some("b"));
        store.release_cluster("orders-db", "b").unwrap();
        assert_eq!(store.cluster_holder("orders-db"), None);
        assert_eq!(store.list().unwrap().len(), 2, "the lock files are no runs");
    }

    /// Issue 18: two runs started at the same moment on one cluster. Each holds its own run
    /// lock (as a starting run does) and claims at once: exactly one wins, the others are told
    /// who holds the cluster.
    #[test]
    fn concurrent_claims_on_one_cluster_admit_exactly_one() {
        let (_d, store) = store();
        const N: usize = 8;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(N));
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let store = store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let id = format!("r{i}");
                    let writer = store.create(&id).unwrap();
                    barrier.wait();
                    let claimed = store.claim_cluster("orders-db", &id);
                    // The writer (the run lock) lives until every claim is in.
                    (id, claimed, writer)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&String> = results
            .iter()
            .filter(|(_, c, _)| c.is_ok())
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(winners.len(), 1, "{winners:?}");
        for (_, claimed, _) in &results {
            if let Err(e) = claimed {
                assert!(
                    matches!(e, JournalError::ClusterBusy { holder, .. } if holder == winners[0]),
                    "{e}"
                );
            }
        }
        assert_eq!(store.cluster_holder("orders-db").as_ref(), Some(winners[0]));
    }

    #[test]
    fn a_start_that_never_began_holds_its_claim_only_while_it_is_starting() {
        let (_d, store) = store();
        let a = store.create("a").unwrap();
        store.claim_cluster("orders-db", "a").unwrap();
        let _b = store.create("b").unwrap();
        assert!(
            store.claim_cluster("orders-db", "b").is_err(),
            "a is starting"
        );
        drop(a); // its process died before run-started
        store.claim_cluster("orders-db", "b").unwrap();
    }

    #[test]
    fn requests_are_kept_beside_the_journal_in_order() {
        let (_d, store) = store();
        drop(store.create("r1").unwrap());
        let approve = Request::Approve {
            name: "cutover".into(),
            by: "ann".into(),
            at: 1,
        };
        let abort = Request::Abort {
            reason: "window closed".into(),
            by: "bob".into(),
            at: 2,
        };
        store.request("r1", &approve).unwrap();
        store.request("r1", &abort).unwrap();
        assert_eq!(store.requests("r1").unwrap(), vec![approve, abort]);
        assert!(
            store
                .request(
                    "nope",
                    &Request::Abort {
                        reason: String::new(),
                        by: String::new(),
                        at: 0
                    }
                )
                .is_err()
        );
    }

    #[test]
    fn create_twice_is_refused_and_list_is_newest_first() {
        let (_d, store) = store();
        drop(store.create("20260101-000000-a").unwrap());
        drop(store.create("20260102-000000-b").unwrap());
        assert!(matches!(
            store.create("20260101-000000-a"),
            Err(JournalError::Exists { .. })
        ));
        assert_eq!(
            store.list().unwrap(),
            vec!["20260102-000000-b", "20260101-000000-a"]
        );
        store.discard("20260101-000000-a").unwrap();
        assert_eq!(store.list().unwrap(), vec!["20260102-000000-b"]);
    }
}
