//! The built-in generated fleet as a [`Fleet`]: `godwit fleet plan --world sim` without a fleet
//! file. The clusters come from the simulator (`godwit_stdlib::sim::fleet`), each with its own
//! world; this adds what a platform team's fleet file would say about them:
//!
//! - every cluster runs the standard runbook with `encrypt_target = true` (the team's policy:
//!   every Aurora cluster encrypted — the unencrypted source among them is refused);
//! - the credential-less clusters are group `no-database-access`, which accepts running without
//!   the checks only SQL can make (`unverified = "accept"`): the team decided so for them;
//! - waves: `canary` (eight small healthy clusters, two canaries, then an approval), then
//!   `wave-1` to `wave-3` by storage, smallest first.

use godwit_stdlib::sim::fleet::{GENERATED_FLEET_SEED, generated_fleet};
use serde_json::{Map, Value, json};

use super::{Fleet, FleetCluster, Runbooks, Wave, refuse};
use crate::session::Failure;
use crate::worlds::Worlds;

/// The group of the clusters godwit reaches without database access.
pub const NO_DATABASE_ACCESS: &str = "no-database-access";

/// The generated fleet of `n` clusters (seeded with [`GENERATED_FLEET_SEED`]), resolved and
/// checked like a fleet file.
pub fn load(n: usize, worlds: &Worlds) -> Result<Fleet, Failure> {
    let origin = format!("generated ({n} simulated clusters, seed {GENERATED_FLEET_SEED})");
    let mut fleet = Fleet::new("generated".into(), origin.clone());
    let mut runbooks = Runbooks::new(worlds, None);
    let path = runbooks
        .find("rds-to-aurora")
        .map_err(|e| crate::session::invalid(format!("fleet {origin}: {e}")))?;
    let mut problems = Vec::new();
    let fleet_params: Map<String, Value> = json!({ "encrypt_target": true })
        .as_object()
        .cloned()
        .unwrap_or_default();
    for m in generated_fleet(n, GENERATED_FLEET_SEED) {
        let id = m.scenario.source.id.clone();
        let mut params = fleet_params.clone();
        let group = m.credential_less.then(|| {
            params.insert("unverified".into(), json!("accept"));
            NO_DATABASE_ACCESS.to_string()
        });
        if let Err(e) = runbooks.check_params(&path, &id, &params) {
            problems.push(format!("{id}: {e}"));
        }
        fleet.clusters.push(FleetCluster {
            id,
            owner: m.owner,
            group,
            runbook: "rds-to-aurora".into(),
            runbook_path: path.clone(),
            params,
            wave: None,
            world: Some(format!("sim:{}", m.scenario.name)),
            scenario: Some(m.scenario),
        });
    }
    refuse(&origin, problems)?;

    // Canaries: small clusters with nothing planted that godwit reaches with SQL; then the rest
    // in thirds by storage.
    let mut by_size: Vec<usize> = (0..fleet.clusters.len()).collect();
    by_size.sort_by_key(|&i| {
        fleet.clusters[i]
            .scenario
            .as_ref()
            .map_or(0, |s| s.source.allocated_storage_gb)
    });
    let healthy = |c: &FleetCluster| {
        c.group.is_none()
            && c.scenario.as_ref().is_some_and(|s| {
                s.faults.is_empty()
                    && s.source.backup_retention_days > 0
                    && s.source.pending_modifications.is_empty()
                    && s.source.encrypted
                    && !s.source.auto_minor_version_upgrade
                    && s.source.unlogged_tables.is_empty()
                    && s.source.read_replicas.is_empty()
                    && !s.source.extensions.iter().any(|e| e == "timescaledb")
            })
    };
    let canary: Vec<usize> = by_size
        .iter()
        .copied()
        .filter(|&i| healthy(&fleet.clusters[i]))
        .take(8)
        .collect();
    let rest: Vec<usize> = by_size
        .into_iter()
        .filter(|i| !canary.contains(i))
        .collect();
    let mut waves = vec![("canary".to_string(), canary, 2, 4, 0, true)];
    let third = rest.len().div_ceil(3).max(1);
    for (k, chunk) in rest.chunks(third).enumerate() {
        waves.push((format!("wave-{}", k + 1), chunk.to_vec(), 0, 20, 3, false));
    }
    for (name, members, canaries, max_in_flight, max_failures, approve) in waves {
        for &i in &members {
            fleet.clusters[i].wave = Some(name.clone());
        }
        fleet.waves.push(Wave {
            name,
            clusters: members
                .iter()
                .map(|&i| fleet.clusters[i].id.clone())
                .collect(),
            canaries,
            max_in_flight,
            max_failures,
            approve_after_canaries: approve,
        });
    }
    fleet._embedded = runbooks.embedded.take();
    Ok(fleet)
}
