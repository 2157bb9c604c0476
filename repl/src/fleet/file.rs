//! The fleet file: TOML, parsed strictly (serde `deny_unknown_fields`; a value that does not fit
//! is named by its key path, `clusters[3].ownr`), then checked as a whole — every problem at
//! once, each with its place and its fix — before anything runs. docs/fleet.md has the format.
//!
//! ```toml
//! name = "payments-platform"
//! runbook = "rds-to-aurora"              # default for every cluster
//! [params]                               # every cluster's runbook parameters
//! validation_window = "24h"
//!
//! [groups.ledger]                        # shared owner, runbook and parameters
//! owner = "payments"
//! runbook = "cdc-heavy"
//! params = { approve_cutover = true }
//!
//! [[clusters]]
//! id = "ledger-001"
//! group = "ledger"
//! params = { validation_window = "48h" }  # over the group's and the fleet's
//!
//! [[waves]]
//! name = "canary"
//! clusters = ["ledger-001"]               # and/or groups = ["ledger"]
//! canaries = 1
//!
//! [[notify]]                              # see crate::notify
//! webhook = "https://hooks.example.com/godwit"
//! owners = ["payments"]                   # default: every cluster and the fleet's own news
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Fleet, FleetCluster, Runbooks, Wave, refuse};
use crate::session::{Failure, invalid};
use crate::worlds::Worlds;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FleetFile {
    pub(crate) name: Option<String>,
    /// The runbook of every cluster that names none (directly or through its group).
    #[serde(default = "standard")]
    pub(crate) runbook: String,
    #[serde(default)]
    pub(crate) params: Map<String, Value>,
    #[serde(default)]
    pub(crate) groups: BTreeMap<String, GroupFile>,
    /// Clusters found in the world by their tags (`[discover]`, see [`super::discover`]),
    /// merged into `clusters` before anything else is checked.
    #[serde(default)]
    pub(crate) discover: Option<DiscoverFile>,
    #[serde(default)]
    pub(crate) clusters: Vec<ClusterFile>,
    #[serde(default)]
    pub(crate) waves: Vec<WaveFile>,
    /// Where notifications go (`crate::notify`).
    #[serde(default)]
    pub(crate) notify: Vec<crate::notify::NotifyFile>,
}

/// `[discover]`: the fleet's clusters are the account's RDS for PostgreSQL instances carrying
/// `tag` (with `value`, when given); each one's owner is its `owner_tag` tag, else `owner`.
/// Clusters listed under `[[clusters]]` win over discovered ones of the same id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscoverFile {
    pub(crate) tag: String,
    pub(crate) value: Option<String>,
    pub(crate) owner_tag: Option<String>,
    /// The owner of a discovered instance without the owner tag.
    pub(crate) owner: Option<String>,
    /// The group of every discovered cluster (its owner, runbook and params apply).
    pub(crate) group: Option<String>,
}

fn standard() -> String {
    "rds-to-aurora".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupFile {
    owner: Option<String>,
    runbook: Option<String>,
    #[serde(default)]
    params: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterFile {
    pub(crate) id: String,
    /// The world this cluster lives in, when not `--world`'s (`lab:DIR` for one of several
    /// labs, `sim:SCENARIO`).
    #[serde(default)]
    pub(crate) world: Option<String>,
    pub(crate) owner: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) runbook: Option<String>,
    #[serde(default)]
    pub(crate) params: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaveFile {
    name: String,
    #[serde(default)]
    clusters: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    canaries: u32,
    #[serde(default = "one")]
    max_in_flight: u32,
    #[serde(default)]
    max_failures: u32,
    #[serde(default)]
    approve_after_canaries: bool,
}

fn one() -> u32 {
    1
}

/// Parse the fleet file `path` strictly: its content, its name (the file's `name`, else its
/// file name) and its directory. Errors are invalid input (exit 2) naming the key path.
pub(crate) fn parse(path: &Path) -> Result<(FleetFile, String), Failure> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read fleet file {origin}: {e}")))?;
    let de =
        toml::Deserializer::parse(&text).map_err(|e| invalid(format!("fleet {origin}: {e}")))?;
    let file: FleetFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { "(top level)".into() } else { at };
        let inner = e.into_inner().to_string();
        let fix = if inner.contains("unknown field") {
            "; see docs/fleet.md for the keys"
        } else {
            ""
        };
        invalid(format!(
            "fleet {origin}: {at}: {}{fix}",
            inner.trim_end().replace('\n', " ")
        ))
    })?;
    let name = file.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or("fleet".into(), |s| s.to_string_lossy().into_owned())
    });
    Ok((file, name))
}

/// Resolve a parsed fleet (its `[discover]` already merged into its clusters): every cluster's
/// runbook and parameters, groups, waves — every problem at once. `base`: the fleet file's
/// directory, where relative runbook paths are read.
pub(crate) fn load_parsed(
    file: FleetFile,
    name: String,
    origin: String,
    base: Option<&Path>,
    worlds: &Worlds,
) -> Result<Fleet, Failure> {
    resolve(
        file,
        name,
        origin,
        Runbooks::new(worlds, base.map(Path::to_path_buf)),
    )
}

fn resolve(
    file: FleetFile,
    name: String,
    origin: String,
    mut runbooks: Runbooks<'_>,
) -> Result<Fleet, Failure> {
    let mut problems = Vec::new();
    let mut fleet = Fleet::new(name, origin.clone());
    let group_names: Vec<&str> = file.groups.keys().map(String::as_str).collect();
    let nested = |at: &str, params: &Map<String, Value>, problems: &mut Vec<String>| {
        for (k, v) in params {
            if v.is_object() {
                problems.push(format!(
                    "{at}.{k}: is a table; runbook parameters are plain values (per-cluster ones \
                     go in the cluster's params)"
                ));
            }
        }
    };
    nested("params", &file.params, &mut problems);
    for (g, group) in &file.groups {
        nested(&format!("groups.{g}.params"), &group.params, &mut problems);
    }

    // Clusters: ids, duplicates, groups, owners, runbooks.
    let mut first_at: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in file.clusters.iter().enumerate() {
        let at = format!("clusters[{i}]");
        if let Some(why) = godwit_engine::params::rds_identifier_problem(&c.id) {
            problems.push(format!("{at}.id: {:?} {why}", c.id));
        }
        if let Some(j) = first_at.get(c.id.as_str()) {
            problems.push(format!(
                "{at}.id: {:?} is also clusters[{j}]; a cluster appears once in a fleet (merge \
                 the two entries)",
                c.id
            ));
            continue;
        }
        first_at.insert(&c.id, i);
        nested(&format!("{at}.params"), &c.params, &mut problems);
        let group = match &c.group {
            Some(g) => match file.groups.get(g) {
                Some(group) => Some(group),
                None => {
                    let hint = godwit_engine::params::suggest(g, &group_names)
                        .map(|n| format!("did you mean {n:?}? "))
                        .unwrap_or_default();
                    problems.push(format!(
                        "{at}.group: {g:?} is not a group under [groups] ({hint}groups: {})",
                        if group_names.is_empty() {
                            "none".into()
                        } else {
                            group_names.join(", ")
                        }
                    ));
                    continue;
                }
            },
            None => None,
        };
        let Some(owner) = c
            .owner
            .clone()
            .or_else(|| group.and_then(|g| g.owner.clone()))
        else {
            problems.push(format!(
                "{at} ({}): no owner; set owner = \"TEAM\" on the cluster{}",
                c.id,
                if c.group.is_some() {
                    " or on its group"
                } else {
                    " (or on a group it belongs to)"
                }
            ));
            continue;
        };
        let (runbook, runbook_at) = match (&c.runbook, group.and_then(|g| g.runbook.as_ref())) {
            (Some(r), _) => (r.clone(), format!("{at}.runbook")),
            (None, Some(r)) => (
                r.clone(),
                format!("groups.{}.runbook", c.group.as_deref().unwrap_or_default()),
            ),
            (None, None) => (file.runbook.clone(), "runbook".into()),
        };
        let path = match runbooks.find(&runbook) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{runbook_at} (cluster {}): {e}", c.id));
                continue;
            }
        };
        if let Some(w) = &c.world {
            let name = w.split(':').next().unwrap_or_default();
            if let Err(e) = runbooks.worlds.check_name(name) {
                problems.push(format!("{at}.world (cluster {}): {e}", c.id));
                continue;
            }
        }
        let mut params = file.params.clone();
        if let Some(g) = group {
            params.extend(g.params.clone());
        }
        params.extend(c.params.clone());
        if let Err(e) = runbooks.check_params(&path, &c.id, &params) {
            problems.push(format!(
                "{at} ({}): {e}\n(its parameters: [params], then its group's params, then its \
                 own)",
                c.id
            ));
            continue;
        }
        fleet.clusters.push(FleetCluster {
            id: c.id.clone(),
            owner,
            group: c.group.clone(),
            runbook,
            runbook_path: path,
            params,
            wave: None,
            scenario: None,
            world: c.world.clone(),
        });
    }
    if file.clusters.is_empty() {
        problems.push("clusters: the fleet has no clusters; add [[clusters]] entries".into());
    }

    // Waves: known clusters and groups, each cluster in one wave, sane limits.
    let mut wave_of: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut wave_names: BTreeMap<&str, usize> = BTreeMap::new();
    for (w, wave) in file.waves.iter().enumerate() {
        let at = format!("waves[{w}]");
        if let Some(first) = wave_names.insert(&wave.name, w) {
            problems.push(format!(
                "{at}.name: {:?} is also waves[{first}]; name each wave once",
                wave.name
            ));
        }
        let mut members: Vec<String> = Vec::new();
        for id in &wave.clusters {
            if first_at.contains_key(id.as_str()) {
                members.push(id.clone());
            } else {
                let ids: Vec<&str> = first_at.keys().copied().collect();
                let hint = godwit_engine::params::suggest(id, &ids)
                    .map(|n| format!("; did you mean {n:?}?"))
                    .unwrap_or_default();
                problems.push(format!(
                    "{at}.clusters: {id:?} is not a cluster of this fleet{hint}"
                ));
            }
        }
        for g in &wave.groups {
            if !file.groups.contains_key(g) {
                problems.push(format!("{at}.groups: {g:?} is not a group under [groups]"));
                continue;
            }
            members.extend(
                file.clusters
                    .iter()
                    .filter(|c| c.group.as_deref() == Some(g.as_str()))
                    .map(|c| c.id.clone()),
            );
        }
        let mut seen = Vec::new();
        for id in members {
            if seen.contains(&id) {
                continue;
            }
            if let Some((other, other_name)) = wave_of.get(&id) {
                problems.push(format!(
                    "{at} ({}): cluster {id:?} is already in waves[{other}] ({other_name}); a \
                     cluster migrates in one wave: remove it from one of them",
                    wave.name
                ));
                continue;
            }
            wave_of.insert(id.clone(), (w, wave.name.clone()));
            seen.push(id);
        }
        if wave.max_in_flight == 0 {
            problems.push(format!(
                "{at}.max_in_flight: 0 would run nothing; at least 1"
            ));
        }
        if wave.canaries as usize > seen.len() {
            problems.push(format!(
                "{at}.canaries: {} but the wave has {} cluster(s)",
                wave.canaries,
                seen.len()
            ));
        }
        fleet.waves.push(Wave {
            name: wave.name.clone(),
            clusters: seen,
            canaries: wave.canaries,
            max_in_flight: wave.max_in_flight,
            max_failures: wave.max_failures,
            approve_after_canaries: wave.approve_after_canaries,
        });
    }
    for c in &mut fleet.clusters {
        c.wave = wave_of.get(&c.id).map(|(_, n)| n.clone());
    }
    let mut owners: Vec<&str> = fleet.clusters.iter().map(|c| c.owner.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    let rules = crate::notify::rules(&file.notify, &owners, &mut problems);
    fleet.notify = rules;
    refuse(&origin, problems)?;
    fleet._embedded = runbooks.embedded.take();
    Ok(fleet)
}
