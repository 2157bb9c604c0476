//! A generated fleet: `n` RDS for PostgreSQL clusters, each its own simulated world (a
//! [`Scenario`] built in code), with the spread a platform team's fleet has — instance classes
//! from `db.t3.medium` to `db.r5.8xlarge`, 20 GB to 16 TB of storage, WAL rates from a few KB/s
//! to tens of MB/s with a daily peak at the owner's business hours, a handful to hundreds of
//! sessions, some clusters with CDC consumers, some that godwit reaches without database access
//! — and a few planted problems, each one a preflight check must find ([`Flaw`]).
//!
//! Seeded: the same `(n, seed)` gives the same fleet, so a fleet plan's report is reproducible
//! and a test knows which clusters are broken and why ([`FleetMember::flaw`]).
//!
//! Every scenario keeps 25 h of CloudWatch history before its start (`cloudwatch.history`), so
//! a fleet plan reads each cluster's last day of `TransactionLogsGeneration` through the world,
//! as it does on AWS.

use super::rng::Rng;
use std::collections::BTreeMap;

use super::scenario::{
    AccountInstance, ConsumerCfg, Fault, FaultKind, Scenario, SlotCfg, SlotType, Source, Workload,
};

/// The size of `godwit fleet plan --world sim`'s built-in fleet.
pub const GENERATED_FLEET_SIZE: usize = 400;
/// Its seed.
pub const GENERATED_FLEET_SEED: u64 = 2026;
/// The tag every generated cluster carries (`godwit:fleet = generated`): what discovery
/// (`[discover]`, `--discover`) finds it by in the simulated account.
pub const GENERATED_FLEET_TAG: (&str, &str) = ("godwit:fleet", "generated");
/// The tag naming a generated cluster's owning team.
pub const GENERATED_OWNER_TAG: &str = "team";

/// A problem planted in a generated cluster, and the preflight check that must refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// An extension Aurora does not offer (`timescaledb`).
    UnsupportedExtension,
    /// Automated backups off (retention 0).
    BackupsOff,
    /// A modification waiting for the next reboot (`DBInstanceClass`).
    PendingModification,
    /// An inactive logical slot whose consumer went away.
    StaleSlot,
    /// Unencrypted storage, while the fleet's policy asks for encrypted Aurora clusters.
    EncryptionMismatch,
    /// Auto minor version upgrade on.
    AutoMinorUpgrade,
    /// An unlogged table (not in WAL: empty on Aurora).
    UnloggedTable,
    /// A cross-Region read replica.
    CrossRegionReplica,
    /// A CDC consumer on a cluster godwit reaches without database access.
    CdcWithoutDatabaseAccess,
}

impl Flaw {
    /// The planted flaws, in the order the generator places them.
    pub const ALL: [Flaw; 9] = [
        Flaw::UnsupportedExtension,
        Flaw::BackupsOff,
        Flaw::PendingModification,
        Flaw::StaleSlot,
        Flaw::EncryptionMismatch,
        Flaw::AutoMinorUpgrade,
        Flaw::UnloggedTable,
        Flaw::CrossRegionReplica,
        Flaw::CdcWithoutDatabaseAccess,
    ];

    /// The standard runbook's preflight check that refuses this flaw (runbooks/lib/preflight.rhai).
    pub fn check(self) -> &'static str {
        match self {
            Flaw::UnsupportedExtension => "extensions",
            Flaw::BackupsOff => "backups-enabled",
            Flaw::PendingModification => "no-pending-modifications",
            Flaw::StaleSlot => "no-stale-slot",
            Flaw::EncryptionMismatch => "encryption",
            Flaw::AutoMinorUpgrade => "no-auto-minor-upgrade",
            Flaw::UnloggedTable => "no-unlogged-tables",
            Flaw::CrossRegionReplica => "no-cross-region-replica",
            Flaw::CdcWithoutDatabaseAccess => "cdc-without-database-access",
        }
    }
}

/// One cluster of the generated fleet.
#[derive(Debug, Clone)]
pub struct FleetMember {
    /// The cluster's world; `scenario.source.id` is the cluster id.
    pub scenario: Scenario,
    /// The owning team.
    pub owner: String,
    /// The planted problem, if any.
    pub flaw: Option<Flaw>,
    /// godwit has no database access to it (credential-less).
    pub credential_less: bool,
}

/// Teams and the services they own: cluster ids read `<service>-<nnn>`.
const TEAMS: &[(&str, &[&str])] = &[
    ("payments", &["ledger", "payouts", "refunds"]),
    ("orders", &["orders", "carts", "returns"]),
    ("identity", &["accounts", "sessions", "tokens"]),
    ("search", &["catalog", "indexer"]),
    ("logistics", &["shipments", "tracking", "routes"]),
    ("billing", &["invoices", "subscriptions"]),
    ("messaging", &["notifications", "inbox"]),
    ("analytics", &["events", "reports"]),
    ("risk", &["fraud", "limits"]),
    ("growth", &["campaigns", "referrals"]),
    ("platform", &["config", "flags", "audit"]),
];

/// Instance classes with how common they are (weights) and the sessions they typically hold.
const CLASSES: &[(&str, u32, u32)] = &[
    ("db.t3.medium", 10, 8),
    ("db.t4g.large", 8, 15),
    ("db.m5.large", 12, 25),
    ("db.m6g.xlarge", 12, 40),
    ("db.r6g.large", 14, 40),
    ("db.r6g.xlarge", 16, 80),
    ("db.r6g.2xlarge", 12, 150),
    ("db.r6g.4xlarge", 8, 250),
    ("db.r5.8xlarge", 4, 400),
];

/// Owners' business hours as a UTC peak: most teams peak in the European afternoon, some in the
/// American one.
const PEAK_HOURS: &[f64] = &[9.5, 11.0, 13.0, 14.0, 15.0, 16.5, 19.0, 21.0];

/// The generated fleet of `n` clusters from `seed` (see the module docs). About one cluster in
/// 30 carries a [`Flaw`] (each flaw at least once when `n >= 9 * 30`), one in ten is
/// credential-less, one in seven has a CDC consumer.
pub fn generated_fleet(n: usize, seed: u64) -> Vec<FleetMember> {
    let mut rng = Rng::new(seed);
    let pick = |rng: &mut Rng, k: usize| (rng.unit() * k as f64) as usize % k.max(1);
    let total_weight: u32 = CLASSES.iter().map(|c| c.1).sum();
    let mut fleet = Vec::with_capacity(n);
    for i in 0..n {
        let (team, services) = TEAMS[pick(&mut rng, TEAMS.len())];
        let service = services[pick(&mut rng, services.len())];
        let id = format!("{service}-{i:03}");
        let mut w = (rng.unit() * f64::from(total_weight)) as u32;
        let &(class, _, typical_sessions) = CLASSES
            .iter()
            .find(|c| {
                let hit = w < c.1;
                w = w.saturating_sub(c.1);
                hit
            })
            .unwrap_or(&CLASSES[0]);
        // Storage log-uniform over 20 GB..16 TB; data fills 20-80 % of it.
        let storage = (20.0 * (16_384.0f64 / 20.0).powf(rng.unit())).round() as u64;
        let data_gb = (storage as f64 * (0.2 + 0.6 * rng.unit())).round().max(1.0);
        // WAL: base log-uniform 20 KB/s..3 MB/s, larger clusters write more; a peak 1.5-4x the
        // base at the owner's business hours. The busiest few peak near the replica's replay
        // rate (32 MiB/s): what a plan should flag as at risk.
        let size_factor = (storage as f64 / 500.0).powf(0.3);
        let base = 20_000.0 * (150.0f64).powf(rng.unit()) * size_factor;
        let peak = base * (1.5 + 2.5 * rng.unit());
        let peak_hour = PEAK_HOURS[pick(&mut rng, PEAK_HOURS.len())];
        let sessions = ((f64::from(typical_sessions) * (0.5 + rng.unit())).round() as u32).max(2);
        let credential_less = rng.unit() < 0.1;
        // A CDC consumer on a credential-less cluster is refused by the preflight: that is
        // planted once (below), not left to chance.
        let cdc = rng.unit() < 0.15 && !credential_less;
        let major_minor = ["14.9", "15.4", "15.5", "16.1"][pick(&mut rng, 4)];
        let extensions: Vec<String> = {
            let mut e = vec!["plpgsql".to_string(), "pg_stat_statements".to_string()];
            for extra in ["pgcrypto", "postgis", "pg_trgm", "uuid-ossp", "citext"] {
                if rng.unit() < 0.25 {
                    e.push(extra.into());
                }
            }
            e
        };
        // Planted flaws at spread-out, seed-independent positions so every fleet of 270+ has
        // each once: cluster 17, 47, 77, ... carry flaw 0, 1, 2, ...
        let flaw = (i % 30 == 17)
            .then(|| Flaw::ALL.get(i / 30))
            .flatten()
            .copied();

        let mut sc = Scenario::from_toml("generated", "name = \"generated\"\n[source]\n")
            .expect("the minimal scenario parses");
        // The name is also how a worker rebuilds this world: `sim:generated:SEED:ID`
        // (`Scenario::load` → [`generated_member`]).
        sc.name = format!("{GENERATED_PREFIX}{seed}:{id}");
        sc.description = format!("generated fleet cluster {id} of team {team}");
        sc.seed = rng.next_u64();
        sc.cloudwatch.history = "25h".into();
        sc.source = Source {
            id: id.clone(),
            engine_version: major_minor.into(),
            instance_class: class.into(),
            allocated_storage_gb: storage.max(20),
            data_gb,
            sessions,
            extensions,
            app_roles: vec![format!("{service}_app")],
            parameter_group: format!("{service}-pg{}", &major_minor[..2]),
            tags: BTreeMap::from([
                (GENERATED_FLEET_TAG.0.into(), GENERATED_FLEET_TAG.1.into()),
                (GENERATED_OWNER_TAG.into(), team.to_string()),
            ]),
            ..Source::default()
        };
        // What decides the logical path's eligibility (godwit plan's "logical path"), drawn from
        // a hash of the cluster, not the generator's sequence, so the other draws stay as they
        // were: about one cluster in eight has a table without a key, one in twenty large
        // objects. A table without a key also turns the rollback window's reverse path off
        // (`reverse_replication=auto`): those clusters predict a cutover without it.
        let h = crate::sim::fnv(&[&seed.to_le_bytes(), id.as_bytes(), b"logical"]);
        if h.is_multiple_of(8)
            && let Some(t) = sc.source.tables.last()
        {
            sc.source.no_primary_key = vec![t.name.clone()];
        }
        if (h / 8).is_multiple_of(20) {
            sc.source.large_objects = 1 + (h / 160 % 5000) as i64;
        }
        sc.workload = Workload {
            base_write_bytes_per_second: base.round(),
            peak_write_bytes_per_second: peak.round(),
            peak_hour_utc: peak_hour,
            jitter: 0.1,
            ..Workload::default()
        };
        if cdc || flaw == Some(Flaw::StaleSlot) || flaw == Some(Flaw::CdcWithoutDatabaseAccess) {
            let slot = format!("debezium_{}", service.replace('-', "_"));
            sc.slots.push(SlotCfg {
                name: slot.clone(),
                slot_type: SlotType::Logical,
                plugin: "pgoutput".into(),
                active: true,
                database: "postgres".into(),
            });
            sc.cdc.consumers.push(ConsumerCfg {
                name: format!("{service}-cdc"),
                slot,
            });
        }
        sc.godwit.db_access = !(credential_less || flaw == Some(Flaw::CdcWithoutDatabaseAccess));
        match flaw {
            None => {}
            Some(Flaw::UnsupportedExtension) => sc.source.extensions.push("timescaledb".into()),
            Some(Flaw::BackupsOff) => sc.source.backup_retention_days = 0,
            Some(Flaw::PendingModification) => {
                sc.source.pending_modifications = vec!["DBInstanceClass".into()]
            }
            Some(Flaw::StaleSlot) => {
                // The consumer went away: its slot is inactive and grows from the start.
                sc.cdc.consumers.clear();
                let slot = sc.slots[0].name.clone();
                sc.slots[0].active = false;
                sc.faults.push(Fault {
                    kind: FaultKind::StaleLogicalSlot,
                    at: Some("0s".into()),
                    step: None,
                    lasts: None,
                    target: Some(slot),
                    value: None,
                });
            }
            Some(Flaw::EncryptionMismatch) => {
                sc.source.encrypted = false;
                sc.source.kms_key_id = None;
            }
            Some(Flaw::AutoMinorUpgrade) => sc.source.auto_minor_version_upgrade = true,
            Some(Flaw::UnloggedTable) => {
                sc.source.unlogged_tables = vec!["public.session_cache".into()]
            }
            Some(Flaw::CrossRegionReplica) => {
                sc.source.read_replicas =
                    vec![format!("arn:aws:rds:eu-west-1:111122223333:db:{id}-dr")]
            }
            Some(Flaw::CdcWithoutDatabaseAccess) => {}
        }
        debug_assert!(sc.validate().is_ok(), "{:?}", sc.validate());
        fleet.push(FleetMember {
            credential_less: !sc.godwit.db_access,
            scenario: sc,
            owner: team.into(),
            flaw,
        });
    }
    fleet
}

/// How a generated cluster's scenario is named, and loaded again: `generated:SEED:ID`.
pub const GENERATED_PREFIX: &str = "generated:";

/// The scenario of generated cluster `id` of the fleet of `seed` (any fleet size that includes
/// it gives the same cluster: a member depends only on the seed and its position, which its id
/// ends with). What `Scenario::load("generated:SEED:ID")` resolves, so that a worker on any
/// machine rebuilds the world of a fleet's cluster from its name alone.
pub fn generated_member(seed: u64, id: &str) -> Option<FleetMember> {
    let index: usize = id.rsplit_once('-')?.1.parse().ok()?;
    if index >= 100_000 {
        return None;
    }
    generated_fleet(index + 1, seed)
        .pop()
        .filter(|m| m.scenario.source.id == id)
}

/// `generated:SEED:ID` → the scenario of [`generated_member`]; `None` when `name` is not of
/// that form; an error naming the fix when it is but no such cluster exists.
pub fn load_generated(name: &str) -> Option<Result<Scenario, String>> {
    let rest = name.strip_prefix(GENERATED_PREFIX)?;
    let Some((seed, id)) = rest.split_once(':') else {
        return Some(Err(format!(
            "a generated fleet's cluster is named generated:SEED:ID (e.g. \
             generated:{GENERATED_FLEET_SEED}:ledger-017), not {name:?}"
        )));
    };
    let Ok(seed) = seed.parse::<u64>() else {
        return Some(Err(format!(
            "the seed of {name:?} is not a number (generated:SEED:ID)"
        )));
    };
    Some(
        generated_member(seed, id)
            .map(|m| m.scenario)
            .ok_or_else(|| {
                format!(
                    "the generated fleet of seed {seed} has no cluster {id:?} (its ids read \
             <service>-<nnn>; `godwit fleet plan --world sim -o json` lists them)"
                )
            }),
    )
}

/// The simulated account that holds the generated fleet of `n` (from `seed`): a world whose
/// source is the fleet's first cluster and whose `[[account]]` lists the others — tagged as in
/// their own worlds — beside three instances that are not the fleet's and that discovery must
/// leave out: an untagged PostgreSQL, one of another fleet, and a MySQL carrying the fleet's
/// tag (godwit migrates PostgreSQL only). Inventory only: each cluster is planned in its own
/// world ([`generated_fleet`]).
pub fn generated_account(n: usize, seed: u64) -> Scenario {
    let fleet = generated_fleet(n.max(1), seed);
    let mut members = fleet.into_iter();
    let mut sc = members
        .next()
        .map(|m| m.scenario)
        .expect("a fleet of at least one");
    sc.name = "generated-account".into();
    sc.description = format!("the simulated account of the generated fleet of {n}");
    let mut account: Vec<AccountInstance> = members
        .take(n.saturating_sub(1))
        .map(|m| AccountInstance {
            id: m.scenario.source.id,
            engine: "postgres".into(),
            engine_version: m.scenario.source.engine_version,
            instance_class: m.scenario.source.instance_class,
            allocated_storage_gb: m.scenario.source.allocated_storage_gb,
            status: "available".into(),
            tags: m.scenario.source.tags,
        })
        .collect();
    let other = |id: &str, engine: &str, version: &str, tags: &[(&str, &str)]| AccountInstance {
        id: id.into(),
        engine: engine.into(),
        engine_version: version.into(),
        instance_class: "db.t3.medium".into(),
        allocated_storage_gb: 20,
        status: "available".into(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    account.push(other("scratch-db", "postgres", "16.3", &[]));
    account.push(other(
        "warehouse-db",
        "postgres",
        "15.4",
        &[
            (GENERATED_FLEET_TAG.0, "data-platform"),
            (GENERATED_OWNER_TAG, "analytics"),
        ],
    ));
    account.push(other(
        "legacy-mysql",
        "mysql",
        "8.0.35",
        &[GENERATED_FLEET_TAG, (GENERATED_OWNER_TAG, "platform")],
    ));
    sc.account = account;
    sc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_cluster_is_rebuilt_from_its_scenario_name_alone() {
        let fleet = generated_fleet(60, 7);
        for m in [&fleet[0], &fleet[17], &fleet[59]] {
            let again = Scenario::load(&m.scenario.name).expect("loads");
            assert_eq!(again.source.id, m.scenario.source.id);
            assert_eq!(again.seed, m.scenario.seed);
            assert_eq!(
                serde_json::to_string(&again).unwrap(),
                serde_json::to_string(&m.scenario).unwrap(),
                "{}: the same world whatever the fleet's size",
                m.scenario.name
            );
        }
        for bad in [
            "generated:7",
            "generated:x:ledger-001",
            "generated:7:nothing-999",
            "generated:7:ledger",
        ] {
            let err = Scenario::load(bad).unwrap_err().to_string();
            assert!(err.contains("generated"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_generated_fleet_is_seeded_valid_and_spread() {
        let a = generated_fleet(GENERATED_FLEET_SIZE, GENERATED_FLEET_SEED);
        let b = generated_fleet(GENERATED_FLEET_SIZE, GENERATED_FLEET_SEED);
        assert_eq!(a.len(), 400);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.scenario.source.id, y.scenario.source.id);
            assert_eq!(x.scenario.seed, y.scenario.seed);
            x.scenario.validate().unwrap();
        }
        let mut ids: Vec<&str> = a.iter().map(|m| m.scenario.source.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 400, "cluster ids are unique");
        for flaw in Flaw::ALL {
            assert_eq!(
                a.iter().filter(|m| m.flaw == Some(flaw)).count(),
                1,
                "{flaw:?}"
            );
        }
        let storage: Vec<u64> = a
            .iter()
            .map(|m| m.scenario.source.allocated_storage_gb)
            .collect();
        assert!(storage.iter().any(|&g| g < 100) && storage.iter().any(|&g| g > 4000));
        let cl = a.iter().filter(|m| m.credential_less).count();
        let cdc = a
            .iter()
            .filter(|m| !m.scenario.cdc.consumers.is_empty())
            .count();
        assert!((20..80).contains(&cl), "{cl} credential-less");
        assert!((30..100).contains(&cdc), "{cdc} with CDC");
    }
}
