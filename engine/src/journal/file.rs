//! The embedded journal store: one directory per run under `<state>/runs/`.
//!
//! ```text
//! <state>/runs/<run-id>/journal.jsonl     hash-chained records, one per line, fsync'd per append
//!                      /transcript.jsonl  events for humans and tools; each line carries the
//!                                         journal sequence number current when it was written
//!                      /lock              flock'd by the process driving the run; holds its pid
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

use super::{Entry, JournalError, JournalStore, JournalWriter, Loaded, genesis_hash, seal};

const JOURNAL: &str = "journal.jsonl";
const TRANSCRIPT: &str = "transcript.jsonl";
const LOCK: &str = "lock";

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
        // Run ids start with their UTC start time, so name order is start order.
        ids.sort_unstable_by(|a, b| b.cmp(a));
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
