//! Where godwit keeps its runs: `--state-dir`, else `GODWIT_STATE_DIR`, else the XDG state dir
//! (`$XDG_STATE_HOME/godwit`, default `~/.local/state/godwit`).

use std::path::PathBuf;

use godwit_engine::JournalStore;
use godwit_engine::journal::file::FileStore;

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

/// Resolve what the operator typed to a run id: exact id, `last`, or a unique prefix.
pub fn resolve_run(store: &FileStore, arg: &str) -> Result<String, String> {
    let ids = store.list().map_err(|e| e.to_string())?;
    if arg == "last" {
        return ids
            .first()
            .cloned()
            .ok_or_else(|| format!("no runs in {}", store.root().display()));
    }
    if ids.iter().any(|i| i == arg) {
        return Ok(arg.to_string());
    }
    let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(arg)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no run '{arg}' in {}; list runs with `godwit runs`",
            store.root().display()
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
