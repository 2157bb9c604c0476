//! An in-memory journal store for tests: same chain and lock semantics as the file store,
//! plus access to the raw records so tests can cut a journal at any point (a simulated crash).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{
    Entry, JournalError, JournalStore, JournalWriter, Loaded, Record, Request, claim_stands,
    genesis_hash, seal,
};

#[derive(Default)]
struct RunData {
    records: Vec<Record>,
    transcript: Vec<String>,
    locked: bool,
    requests: Vec<Request>,
}

/// In-memory store; clones share the same runs.
#[derive(Clone, Default)]
pub struct MemoryStore {
    runs: Arc<Mutex<BTreeMap<String, RunData>>>,
    clusters: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The journal entries of a run, in order.
    pub fn entries(&self, run_id: &str) -> Vec<Entry> {
        let runs = self.runs.lock().unwrap();
        runs.get(run_id)
            .map(|r| r.records.iter().map(|r| r.entry.clone()).collect())
            .unwrap_or_default()
    }

    /// The transcript lines of a run.
    pub fn transcript(&self, run_id: &str) -> Vec<String> {
        let runs = self.runs.lock().unwrap();
        runs.get(run_id)
            .map(|r| r.transcript.clone())
            .unwrap_or_default()
    }

    /// A new store holding only the first `n` records of `run_id`: the state a crash right after
    /// the `n`-th durable append leaves behind.
    pub fn prefix(&self, run_id: &str, n: usize) -> MemoryStore {
        let runs = self.runs.lock().unwrap();
        let records = runs[run_id].records[..n].to_vec();
        let out = MemoryStore::new();
        out.runs.lock().unwrap().insert(
            run_id.to_string(),
            RunData {
                records,
                ..RunData::default()
            },
        );
        out
    }

    /// Number of records of a run.
    pub fn len(&self, run_id: &str) -> usize {
        self.runs
            .lock()
            .unwrap()
            .get(run_id)
            .map_or(0, |r| r.records.len())
    }
}

struct MemoryWriter {
    store: MemoryStore,
    run_id: String,
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        if let Some(run) = self.store.runs.lock().unwrap().get_mut(&self.run_id) {
            run.locked = false;
        }
    }
}

impl JournalWriter for MemoryWriter {
    fn append(&mut self, entry: &Entry) -> Result<u64, JournalError> {
        let mut runs = self.store.runs.lock().unwrap();
        let run = runs
            .get_mut(&self.run_id)
            .expect("run exists while its writer lives");
        let seq = run.records.len() as u64;
        let prev = run
            .records
            .last()
            .map_or_else(|| genesis_hash(&self.run_id), |r| r.hash.clone());
        let (record, _) = seal(seq, &prev, entry)?;
        run.records.push(record);
        Ok(seq)
    }

    fn transcript(&mut self, line: &str) {
        let mut runs = self.store.runs.lock().unwrap();
        if let Some(run) = runs.get_mut(&self.run_id) {
            run.transcript.push(line.to_string());
        }
    }
}

impl JournalStore for MemoryStore {
    fn create(&self, run_id: &str) -> Result<Box<dyn JournalWriter>, JournalError> {
        let mut runs = self.runs.lock().unwrap();
        if runs.contains_key(run_id) {
            return Err(JournalError::Exists {
                run_id: run_id.into(),
            });
        }
        runs.insert(
            run_id.into(),
            RunData {
                locked: true,
                ..RunData::default()
            },
        );
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            run_id: run_id.into(),
        }))
    }

    fn open(&self, run_id: &str) -> Result<(Loaded, Box<dyn JournalWriter>), JournalError> {
        let mut runs = self.runs.lock().unwrap();
        let run = runs.get_mut(run_id).ok_or_else(|| JournalError::NotFound {
            run_id: run_id.into(),
            where_: "memory".into(),
        })?;
        if run.locked {
            return Err(JournalError::Locked {
                run_id: run_id.into(),
                holder: "another writer in this process".into(),
            });
        }
        run.locked = true;
        let loaded = Loaded {
            records: run.records.clone(),
            torn_tail: None,
        };
        Ok((
            loaded,
            Box::new(MemoryWriter {
                store: self.clone(),
                run_id: run_id.into(),
            }),
        ))
    }

    fn read(&self, run_id: &str) -> Result<Loaded, JournalError> {
        let runs = self.runs.lock().unwrap();
        let run = runs.get(run_id).ok_or_else(|| JournalError::NotFound {
            run_id: run_id.into(),
            where_: "memory".into(),
        })?;
        Ok(Loaded {
            records: run.records.clone(),
            torn_tail: None,
        })
    }

    fn list(&self) -> Result<Vec<String>, JournalError> {
        Ok(self.runs.lock().unwrap().keys().rev().cloned().collect())
    }

    fn discard(&self, run_id: &str) -> Result<(), JournalError> {
        self.runs.lock().unwrap().remove(run_id);
        Ok(())
    }

    fn claim_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        let mut clusters = self.clusters.lock().unwrap();
        if let Some(holder) = clusters.get(cluster).filter(|h| *h != run_id) {
            let driven = self
                .runs
                .lock()
                .unwrap()
                .get(holder)
                .is_some_and(|r| r.locked);
            if claim_stands(self, holder, driven) {
                return Err(JournalError::ClusterBusy {
                    cluster: cluster.into(),
                    holder: holder.clone(),
                });
            }
        }
        clusters.insert(cluster.into(), run_id.into());
        Ok(())
    }

    fn release_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        let mut clusters = self.clusters.lock().unwrap();
        if clusters.get(cluster).is_some_and(|h| h == run_id) {
            clusters.remove(cluster);
        }
        Ok(())
    }

    fn request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        let mut runs = self.runs.lock().unwrap();
        let run = runs.get_mut(run_id).ok_or_else(|| JournalError::NotFound {
            run_id: run_id.into(),
            where_: "memory".into(),
        })?;
        run.requests.push(request.clone());
        Ok(())
    }

    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        Ok(self
            .runs
            .lock()
            .unwrap()
            .get(run_id)
            .map(|r| r.requests.clone())
            .unwrap_or_default())
    }
}
