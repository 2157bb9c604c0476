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
use super::scenario::{
    ConsumerCfg, Fault, FaultKind, Scenario, SlotCfg, SlotType, Source, Workload,
};

/// The size of `godwit fleet plan --world sim`'s built-in fleet.
pub const GENERATED_FLEET_SIZE: usize = 400;
/// Its seed.
pub const GENERATED_FLEET_SEED: u64 = 2026;

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
        sc.name = format!("fleet-{id}");
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
            ..Source::default()
        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
