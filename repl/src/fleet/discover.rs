//! Which fleet a fleet command works on — the one place that decides (`godwit fleet plan`, and
//! `fleet run` on the same [`Fleet`]): a fleet file, the account's instances found by their
//! tags (`[discover]` in the file, or `--discover TAG[=VALUE]`), both, or the simulator's
//! generated fleet.
//!
//! Discovery reads the world through the Host like every other read: a read-only runbook of one
//! step ([`DISCOVER`]: `rds::list_instances`, every page of `DescribeDBInstances` on AWS) run on a
//! scratch store, exactly as `fleet plan` runs its calibration probe. Its answer is then matched
//! here with the same rule the primitive applies ([`TagFilter`]), so an empty result can say how
//! many instances were seen and which tags they carry.
//!
//! Merging ([`merge`], pure): clusters listed under `[[clusters]]` win over discovered ones of
//! the same id (their owner, group, runbook, params) and are kept when not discovered (they
//! augment the fleet); every other discovered instance becomes a cluster whose owner is its
//! owner tag, else `[discover] owner`. An instance without either is an error naming it and the
//! fix — as is no match at all — before anything runs.
//!
//! In the simulator, `--world sim` discovers in the simulated account that holds the generated
//! fleet (`godwit_stdlib::sim::fleet::generated_account`: its clusters tagged
//! `godwit:fleet=generated` and `team=<owner>`, beside instances that are not the fleet's); each
//! discovered generated cluster is then planned in its own world, as without discovery.

use std::collections::BTreeMap;
use std::path::Path;

use godwit_stdlib::rds::{InstanceSummary, TagFilter};
use godwit_stdlib::sim::fleet::{GENERATED_FLEET_SEED, generated_account, generated_fleet};
use godwit_stdlib::world::World;

use super::Fleet;
use super::file::{ClusterFile, DiscoverFile, FleetFile};
use crate::config::{AwsFlags, world_settings};
use crate::session::{Failure, invalid};
use crate::worlds::Worlds;

/// The discovery runbook: one read-only step listing the account's RDS for PostgreSQL
/// instances with their tags.
pub const DISCOVER: &str = "//! name: fleet-discover
//! version: 1.0.0
//!
//! Fleet discovery (repl/src/fleet/discover.rs): the account's RDS for PostgreSQL instances
//! with their tags, every page. Read-only.

step(\"list\", || rds::list_instances(#{}));
";

/// Where the fleet comes from: the command line's choices.
pub struct FleetSource<'a> {
    /// `--fleet FILE`.
    pub file: Option<&'a Path>,
    /// `--discover TAG[=VALUE]` (over the file's `[discover]`).
    pub discover: Option<&'a str>,
    /// `--owner-tag TAG` (over the file's `owner_tag`).
    pub owner_tag: Option<&'a str>,
    /// `--world`.
    pub world: &'a str,
    pub aws: &'a AwsFlags,
    /// `--generated N`: the generated fleet's size (and the simulated account's).
    pub generated: usize,
}

/// The fleet `src` names, resolved and checked; discovery, when asked for, run in the world
/// first. Errors are invalid input (exit 2) naming the place and the fix.
pub fn load(src: &FleetSource<'_>, worlds: &Worlds) -> Result<Fleet, Failure> {
    let flag = src
        .discover
        .map(|d| from_flag(d, src.owner_tag))
        .transpose()?;
    if flag.is_none() && src.owner_tag.is_some() {
        return Err(invalid(
            "--owner-tag applies to discovery: give --discover TAG[=VALUE] too (or owner_tag in \
             the fleet file's [discover])",
        ));
    }
    let (mut file, name, origin) = match (src.file, &flag) {
        (Some(path), _) => {
            let (file, name) = super::file::parse(path)?;
            (file, name, path.display().to_string())
        }
        (None, Some(_)) => (
            FleetFile {
                runbook: "rds-to-aurora".into(),
                ..FleetFile::default()
            },
            "discovered".to_string(),
            format!("--discover {}", src.discover.unwrap_or_default()),
        ),
        (None, None) if src.world == "sim" => {
            return super::generated::load(src.generated, worlds);
        }
        (None, None) => {
            return Err(invalid(format!(
                "no fleet: give --fleet FILE (docs/fleet.md) or --discover TAG[=VALUE]; only \
                 --world sim has a built-in fleet (the generated one), and this is --world {}",
                src.world
            )));
        }
    };
    if let Some(mut d) = flag {
        // The flag replaces the file's table; the file's default owner and group still apply.
        if let Some(f) = &file.discover {
            d.owner_tag = d.owner_tag.or_else(|| f.owner_tag.clone());
            d.owner = f.owner.clone();
            d.group = f.group.clone();
        }
        file.discover = Some(d);
    }
    let mut scenarios = BTreeMap::new();
    if let Some(d) = file.discover.clone() {
        let at = if src.discover.is_some() {
            "--discover".to_string()
        } else {
            format!("fleet {origin}: [discover]")
        };
        let filter = TagFilter::new("discover", Some(d.tag.clone()), d.value.clone())
            .map_err(|e| invalid(format!("{at}: {}; {}", e.message, e.hint)))?;
        if let Some(g) = &d.group
            && !file.groups.contains_key(g)
        {
            return Err(invalid(format!(
                "{at}: group {g:?} is not a group under [groups]; add [groups.{g}] or remove \
                 group from [discover]"
            )));
        }
        let all = list_instances(src, worlds)?;
        let clusters = merge(&d, &filter, &all, &file.clusters, src.world)
            .map_err(|problems| refused(&at, problems))?;
        if src.world == "sim" {
            // The generated account's clusters each keep their own world.
            scenarios = generated_fleet(src.generated, GENERATED_FLEET_SEED)
                .into_iter()
                .map(|m| (m.scenario.source.id.clone(), m.scenario))
                .collect();
        }
        file.clusters = clusters;
    }
    let base = src.file.and_then(Path::parent);
    let mut fleet = super::file::load_parsed(file, name, origin, base, worlds)?;
    for c in &mut fleet.clusters {
        c.scenario = scenarios.remove(&c.id);
        // What a worker rebuilds the cluster's world from (`fleet run`); else the fleet
        // file's own `world`, if it gave one.
        if let Some(s) = &c.scenario {
            c.world = Some(format!("sim:{}", s.name));
        }
    }
    Ok(fleet)
}

/// `--discover TAG[=VALUE]` as a `[discover]` table.
fn from_flag(flag: &str, owner_tag: Option<&str>) -> Result<DiscoverFile, Failure> {
    let (tag, value) = match flag.split_once('=') {
        Some((t, v)) => (t, Some(v.to_string())),
        None => (flag, None),
    };
    Ok(DiscoverFile {
        tag: tag.to_string(),
        value,
        owner_tag: owner_tag.map(str::to_string),
        owner: None,
        group: None,
    })
}

fn refused(at: &str, problems: Vec<String>) -> Failure {
    invalid(format!(
        "{at}: {} problem{}; nothing was run:\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems
            .iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// Every RDS for PostgreSQL instance of the world's account, read through the Host by the
/// [`DISCOVER`] runbook.
fn list_instances(src: &FleetSource<'_>, worlds: &Worlds) -> Result<Vec<InstanceSummary>, Failure> {
    let internal = |e: String| Failure(godwit_engine::exit::INTERNAL, e);
    let scratch = tempfile::tempdir().map_err(|e| internal(format!("temporary directory: {e}")))?;
    let runbook = scratch.path().join("fleet-discover.rhai");
    std::fs::write(&runbook, DISCOVER)
        .map_err(|e| internal(format!("cannot write the discovery runbook: {e}")))?;
    let world_name = src.world.split(':').next().unwrap_or_default();
    let world = if src.world == "sim" {
        World::sim(generated_account(src.generated, GENERATED_FLEET_SEED))
    } else {
        let state = scratch.path().join("world.json");
        if let Some(v) = world_settings(None, "", world_name, src.aws)? {
            crate::config::write_settings(&state, &v)?;
        }
        worlds.build(src.world, Some(&state)).map_err(|e| {
            invalid(format!(
                "--world {}: {e}; nothing was discovered",
                src.world
            ))
        })?
    };
    let listed = crate::plan::read_only_step(&world, &runbook, "fleet-discovery", "list")?
        .map_err(|e| {
            invalid(format!(
                "discovery in world {}: listing the account's instances failed: {e}",
                src.world
            ))
        })?;
    serde_json::from_value(listed).map_err(|e| {
        internal(format!(
            "discovery in world {}: rds::list_instances answered an unexpected shape: {e}",
            src.world
        ))
    })
}

/// The fleet's clusters: `listed` (the file's `[[clusters]]`, which win), then every instance of
/// `all` that `filter` keeps and that is not listed, its owner from `d.owner_tag` else `d.owner`.
/// `Err`: every problem, each naming the instance and the fix.
pub(crate) fn merge(
    d: &DiscoverFile,
    filter: &TagFilter,
    all: &[InstanceSummary],
    listed: &[ClusterFile],
    world: &str,
) -> Result<Vec<ClusterFile>, Vec<String>> {
    let found: Vec<&InstanceSummary> = all.iter().filter(|i| filter.matches(&i.tags)).collect();
    if found.is_empty() {
        let mut keys: Vec<String> = all
            .iter()
            .flat_map(|i| i.tags.iter())
            .filter(|(k, _)| Some(k.as_str()) == filter.key.as_deref())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        keys.sort();
        keys.dedup();
        let others = if keys.is_empty() {
            String::new()
        } else {
            format!(" (they carry {})", keys.join(", "))
        };
        return Err(vec![format!(
            "no RDS for PostgreSQL instance carries {filter}: {} instance{} seen in world \
             {world}{others}; tag the fleet's instances (aws rds add-tags-to-resource \
             --resource-name ARN --tags Key={},Value=...) or fix the tag and value",
            all.len(),
            if all.len() == 1 { "" } else { "s" },
            filter.key.as_deref().unwrap_or_default(),
        )]);
    }
    let mut problems = Vec::new();
    let mut clusters: Vec<ClusterFile> = listed.to_vec();
    for i in found {
        if listed.iter().any(|c| c.id == i.id) {
            continue;
        }
        let owner = d
            .owner_tag
            .as_ref()
            .and_then(|t| i.tags.get(t).cloned())
            .filter(|o| !o.trim().is_empty())
            .or_else(|| d.owner.clone());
        if owner.is_none() && d.group.is_none() {
            problems.push(match &d.owner_tag {
                Some(t) => format!(
                    "instance {} ({filter}) has no tag {t}: tag it with its owning team ({t}=TEAM), \
                     list it under [[clusters]] with an owner, or set owner = \"TEAM\" in \
                     [discover] for instances without the tag",
                    i.id
                ),
                None => format!(
                    "instance {} ({filter}) has no owner: set owner_tag = \"TAG\" in [discover] \
                     (or --owner-tag) to read owners from a tag, or owner = \"TEAM\" for all",
                    i.id
                ),
            });
            continue;
        }
        clusters.push(ClusterFile {
            world: None,
            id: i.id.clone(),
            owner,
            group: d.group.clone(),
            runbook: None,
            params: Default::default(),
        });
    }
    if problems.is_empty() {
        Ok(clusters)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, tags: &[(&str, &str)]) -> InstanceSummary {
        InstanceSummary {
            id: id.into(),
            engine: "postgres".into(),
            engine_version: "15.4".into(),
            instance_class: "db.r6g.large".into(),
            allocated_storage_gb: 100,
            status: "available".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn discover(value: Option<&str>, owner_tag: Option<&str>) -> (DiscoverFile, TagFilter) {
        let d = DiscoverFile {
            tag: "godwit:fleet".into(),
            value: value.map(String::from),
            owner_tag: owner_tag.map(String::from),
            ..DiscoverFile::default()
        };
        let f = TagFilter::new("discover", Some(d.tag.clone()), d.value.clone()).unwrap();
        (d, f)
    }

    fn account() -> Vec<InstanceSummary> {
        vec![
            inst(
                "ledger-001",
                &[("godwit:fleet", "payments"), ("team", "payments")],
            ),
            inst(
                "orders-db",
                &[("godwit:fleet", "payments"), ("team", "orders")],
            ),
            inst(
                "search-001",
                &[("godwit:fleet", "search"), ("team", "search")],
            ),
            inst("scratch", &[]),
        ]
    }

    #[test]
    fn discovered_instances_take_their_owner_from_the_tag_and_listed_clusters_win() {
        let (d, f) = discover(Some("payments"), Some("team"));
        let listed = vec![
            ClusterFile {
                id: "orders-db".into(),
                world: None,
                owner: Some("orders-platform".into()),
                group: None,
                runbook: Some("cdc-heavy".into()),
                params: Default::default(),
            },
            ClusterFile {
                id: "hand-picked".into(),
                world: None,
                owner: Some("ops".into()),
                group: None,
                runbook: None,
                params: Default::default(),
            },
        ];
        let got = merge(&d, &f, &account(), &listed, "sim").unwrap();
        let ids: Vec<(&str, Option<&str>, Option<&str>)> = got
            .iter()
            .map(|c| (c.id.as_str(), c.owner.as_deref(), c.runbook.as_deref()))
            .collect();
        assert_eq!(
            ids,
            [
                ("orders-db", Some("orders-platform"), Some("cdc-heavy")),
                ("hand-picked", Some("ops"), None),
                ("ledger-001", Some("payments"), None),
            ]
        );
    }

    #[test]
    fn a_tag_without_a_value_keeps_every_instance_carrying_it() {
        let (d, f) = discover(None, Some("team"));
        let got = merge(&d, &f, &account(), &[], "sim").unwrap();
        let ids: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["ledger-001", "orders-db", "search-001"]);
    }

    #[test]
    fn an_instance_without_the_owner_tag_is_named_unless_a_default_owner_is_given() {
        let (d, f) = discover(Some("payments"), Some("owner"));
        let problems = merge(&d, &f, &account(), &[], "aws").unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("instance ledger-001")
                && problems[0].contains("has no tag owner")
                && problems[0].contains("owner = \"TEAM\""),
            "{problems:?}"
        );
        let d = DiscoverFile {
            owner: Some("platform".into()),
            ..d
        };
        let got = merge(&d, &f, &account(), &[], "aws").unwrap();
        assert!(got.iter().all(|c| c.owner.as_deref() == Some("platform")));
    }

    #[test]
    fn no_match_says_which_tag_how_many_were_seen_and_what_values_exist() {
        let (d, f) = discover(Some("paymnets"), Some("team"));
        let problems = merge(&d, &f, &account(), &[], "aws").unwrap_err();
        assert_eq!(problems.len(), 1);
        let p = &problems[0];
        assert!(p.contains("tag godwit:fleet=paymnets"), "{p}");
        assert!(p.contains("4 instances seen in world aws"), "{p}");
        assert!(
            p.contains("godwit:fleet=payments, godwit:fleet=search"),
            "{p}"
        );
    }

    #[test]
    fn the_flag_splits_tag_and_value_at_the_first_equals_sign() {
        let d = from_flag("godwit:fleet=a=b", Some("team")).unwrap();
        assert_eq!(
            (d.tag.as_str(), d.value.as_deref(), d.owner_tag.as_deref()),
            ("godwit:fleet", Some("a=b"), Some("team"))
        );
        let d = from_flag("godwit:fleet", None).unwrap();
        assert_eq!(d.value, None);
    }
}
