//! Faults a test plants in a lab: a file in the lab's directory names one, and the lab
//! operation it concerns applies it once and removes the file.
//!
//! **Replica divergence.** A physical standby is read-only, so no SQL can make its rows differ
//! from the primary's; storage corruption or a replication bug can. The fault rewrites bytes
//! of the new replica's copy — in its table files (`base/`), after `pg_basebackup` and before
//! the server starts — as a disk would. Replay does not undo it as long as the page is not
//! written again on the source after the backup's checkpoint (no full-page image of it
//! follows), which holds for a cold table; the lab's clusters have no data checksums, so the
//! page reads back with the changed bytes instead of failing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LabError;

/// The file, in the lab's directory, that plants a replica divergence.
pub const REPLICA_DIVERGENCE: &str = "fault-replica-divergence.json";

/// Bytes of a table file to replace (same length) in the next replica's copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub needle: Vec<u8>,
    pub replacement: Vec<u8>,
}

/// Plant a divergence for the next `create_replica_cluster` of the lab in `lab_dir`.
pub fn plant_divergence(lab_dir: &Path, d: &Divergence) -> Result<(), LabError> {
    if d.needle.is_empty() || d.needle.len() != d.replacement.len() {
        return Err(LabError::Io(format!(
            "a replica divergence replaces bytes with as many bytes (needle {} bytes, replacement {})",
            d.needle.len(),
            d.replacement.len()
        )));
    }
    let text = serde_json::to_string(d).map_err(|e| LabError::Io(e.to_string()))?;
    std::fs::write(lab_dir.join(REPLICA_DIVERGENCE), text)
        .map_err(|e| LabError::Io(format!("plant the replica divergence: {e}")))
}

/// Apply a planted divergence to the replica's copy in `data` (the server not started yet):
/// the needle must occur exactly once under `base/`. Returns the file changed, if one was
/// planted; the fault is spent either way.
pub fn apply_divergence(lab_dir: &Path, data: &Path) -> Result<Option<PathBuf>, LabError> {
    let planted = lab_dir.join(REPLICA_DIVERGENCE);
    let Ok(text) = std::fs::read_to_string(&planted) else {
        return Ok(None);
    };
    let _ = std::fs::remove_file(&planted);
    let d: Divergence = serde_json::from_str(&text)
        .map_err(|e| LabError::Io(format!("{}: {e}", planted.display())))?;
    let mut hits = Vec::new();
    let mut stack = vec![data.join("base")];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| LabError::Io(format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| LabError::Io(format!("{}: {e}", path.display())))?;
            let at: Vec<usize> = bytes
                .windows(d.needle.len())
                .enumerate()
                .filter(|(_, w)| *w == d.needle.as_slice())
                .map(|(i, _)| i)
                .collect();
            for i in at {
                hits.push((path.clone(), i));
            }
        }
    }
    let [(path, at)] = hits.as_slice() else {
        return Err(LabError::Io(format!(
            "the planted replica divergence's bytes occur {} times in the copy's table files, not once: choose bytes unique to one row",
            hits.len()
        )));
    };
    let mut bytes =
        std::fs::read(path).map_err(|e| LabError::Io(format!("{}: {e}", path.display())))?;
    bytes[*at..*at + d.replacement.len()].copy_from_slice(&d.replacement);
    std::fs::write(path, bytes).map_err(|e| LabError::Io(format!("{}: {e}", path.display())))?;
    Ok(Some(path.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_divergence_rewrites_its_bytes_once_and_is_spent() {
        let lab = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(data.path().join("base/5")).unwrap();
        std::fs::write(
            data.path().join("base/5/16384"),
            b"..\x17order 1777..\x19order 17770",
        )
        .unwrap();
        let d = Divergence {
            needle: b"\x17order 1777".to_vec(),
            replacement: b"\x17order 1X77".to_vec(),
        };
        plant_divergence(lab.path(), &d).unwrap();
        let changed = apply_divergence(lab.path(), data.path()).unwrap();
        assert_eq!(changed, Some(data.path().join("base/5/16384")));
        assert_eq!(
            std::fs::read(data.path().join("base/5/16384")).unwrap(),
            b"..\x17order 1X77..\x19order 17770"
        );
        assert_eq!(
            apply_divergence(lab.path(), data.path()).unwrap(),
            None,
            "spent"
        );
        // Bytes found twice (or never) are refused: the test's row is not unique.
        let twice = Divergence {
            needle: b"order".to_vec(),
            replacement: b"ORDER".to_vec(),
        };
        plant_divergence(lab.path(), &twice).unwrap();
        let e = apply_divergence(lab.path(), data.path()).unwrap_err();
        assert!(e.to_string().contains("occur 2 times"), "{e}");
        let uneven = Divergence {
            needle: b"ab".to_vec(),
            replacement: b"abc".to_vec(),
        };
        assert!(plant_divergence(lab.path(), &uneven).is_err());
    }
}
