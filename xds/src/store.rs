//! Control-plane state: routes, the global version counter, per-type versions and the history
//! of every published route version. Persisted as one JSON file (temp file + fsync + rename), so
//! a restarted godwit serves the same versions and never makes Envoy see a version go backwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::XdsError;
use crate::model::RouteSpec;

/// Everything that must survive a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    /// The last published global version (0 = nothing published yet).
    pub version: u64,
    /// Per resource type (Cluster, ClusterLoadAssignment, Listener): the global version at which
    /// its content last changed. This is the `version_info` Envoy sees for that type.
    pub type_versions: [u64; 3],
    pub routes: BTreeMap<String, RouteSpec>,
    /// Every change, oldest first: the journal that `rollback_to` reads.
    pub history: Vec<HistoryEntry>,
    /// Per route, the Envoy nodes that must run it (`Config::expected_nodes`, `crate::fleet`).
    /// Kept here so a restart without the configuration keeps them; absent in older files.
    #[serde(default)]
    pub expected_nodes: BTreeMap<String, Vec<String>>,
}

/// One published change of one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub version: u64,
    pub route: String,
    /// `publish`, `hold`, `switch`, `cleanup`, `rollback_to 3`, `revert after NACK`.
    pub op: String,
    pub at_unix_ms: u64,
    pub spec: RouteSpec,
}

impl PersistedState {
    /// The spec route `route` had at global version `version`.
    pub fn spec_at(&self, route: &str, version: u64) -> Option<&RouteSpec> {
        self.history
            .iter()
            .rev()
            .find(|h| h.route == route && h.version <= version)
            .map(|h| &h.spec)
    }
}

/// Where the state lives; `None` keeps it in memory (tests, the simulator).
#[derive(Debug, Clone)]
pub struct Store {
    path: Option<PathBuf>,
}

impl Store {
    pub fn new(path: Option<PathBuf>) -> Self {
        Store { path }
    }

    pub fn load(&self) -> Result<PersistedState, XdsError> {
        let Some(path) = &self.path else {
            return Ok(PersistedState::default());
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| state_err(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PersistedState::default()),
            Err(e) => Err(state_err(path, e)),
        }
    }

    /// Durable before the new version is served: a crash after Envoy saw version N must not
    /// restart at N-1.
    pub fn save(&self, state: &PersistedState) -> Result<(), XdsError> {
        use std::io::Write;
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| state_err(path, e))?;
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| state_err(path, e))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| state_err(path, e))?;
        f.write_all(&bytes).map_err(|e| state_err(path, e))?;
        f.sync_all().map_err(|e| state_err(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| state_err(path, e))?;
        // The rename itself is durable only once the directory is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> XdsError {
    XdsError::State {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Addr;

    #[test]
    fn round_trip_and_spec_at() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Some(dir.path().join("xds/state.json")));
        assert_eq!(store.load().unwrap(), PersistedState::default());
        let a = RouteSpec::new(Addr::new("127.0.0.1", 5432), Addr::new("10.0.0.1", 5432));
        let b = a.switched(&Addr::new("10.0.0.2", 5432));
        let mut s = PersistedState {
            version: 3,
            type_versions: [1, 3, 1],
            ..Default::default()
        };
        for (v, spec) in [(1, &a), (3, &b)] {
            s.history.push(HistoryEntry {
                version: v,
                route: "orders".into(),
                op: "publish".into(),
                at_unix_ms: 0,
                spec: spec.clone(),
            });
        }
        s.routes.insert("orders".into(), b.clone());
        store.save(&s).unwrap();
        let back = store.load().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.spec_at("orders", 2), Some(&a));
        assert_eq!(back.spec_at("orders", 3), Some(&b));
        assert_eq!(back.spec_at("orders", 0), None);
    }
}
