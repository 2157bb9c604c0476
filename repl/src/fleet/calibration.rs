//! The prediction's scenario, built from one cluster's own figures as the calibration probe
//! (`probe.rhai`) read them through its world. What it measured is listed in
//! [`Calibration::measured`]; what it had to assume, with the value taken, in
//! [`Calibration::assumed`] — a plan states both.
//!
//! The scenario predicts the migration *once the preflight's fixes are applied*: it takes the
//! figures that decide durations (storage, data, WAL rate and its daily peak, sessions, slots and
//! CDC consumers, database access, encryption) and leaves the blocking facts (backups off, a
//! pending modification, an unsupported extension, ...) out, because the preflight reports those.

use godwit_stdlib::sim::scenario::{ConsumerCfg, Scenario, SlotCfg, SlotType, TableCfg};
use serde_json::{Map, Value};

/// A scenario for the prediction, and how it was obtained.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub scenario: Scenario,
    /// Figures read from the cluster, with their values.
    pub measured: Vec<String>,
    /// Figures assumed, with the value taken and why.
    pub assumed: Vec<String>,
}

const GB: f64 = 1e9;
/// RDS's `AllocatedStorage` is in GiB; `FreeStorageSpace` in bytes.
const GIB: f64 = 1_073_741_824.0;

/// Where the cluster runs, for what no probe of the source can read: how long the platform
/// takes to build a replica, promote it, restart a server, and an Envoy to acknowledge a
/// route. Chosen by the world's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// RDS and Aurora (the aws world, and the simulated clusters of a generated fleet): the
    /// simulator's AWS timings, assumed — AWS does not publish them.
    Aws,
    /// The lab (`--world lab[:DIR]`): PostgreSQL servers and an Envoy on this machine, with
    /// the lab's own settings (docs/fleet.md "The platform's own timings").
    Lab,
}

impl Platform {
    pub fn of_world(world: &str) -> Platform {
        if world == "lab" || world.starts_with("lab:") {
            Platform::Lab
        } else {
            Platform::Aws
        }
    }

    /// Set the platform's durations in `sc`; the assumption that states them.
    fn apply(self, sc: &mut Scenario) -> String {
        match self {
            Platform::Aws => {
                let d = &sc.aws;
                format!(
                    "replica build {} + {} per 100 GB of data, promotion {} (the simulator's AWS timings; RDS does not publish them)",
                    d.create_replica_base, d.create_replica_per_100gb, d.promote
                )
            }
            Platform::Lab => {
                // The lab's own settings (lab/src/supervisor.rs LabOptions::new, pgproc.rs
                // PRIMARY_SETTINGS) and what its servers do on this machine: a promotion is
                // `pg_promote` of a local standby (tens of milliseconds), a replica a
                // `pg_basebackup` over loopback, an Envoy ACK a local xDS push.
                let a = &mut sc.aws;
                a.create_replica_base = "3s".into();
                a.create_replica_per_100gb = "15m".into();
                a.create_instance = "2s".into();
                a.promote = "30ms".into();
                a.promote_status_lag = "0s".into();
                // The lab's parameter groups are in force at once (lab_params'
                // parameter_group_settle is 0 s).
                a.parameter_group_settle = "0s".into();
                sc.source.backend_exit = "10ms".into();
                a.reboot = "1s".into();
                a.modify = "0s".into();
                a.delete = "1s".into();
                // The reverse path on local servers (the lab's cutovers: create-reverse-path
                // and subscribe-source-to-target take 60-70 ms together on this machine).
                a.security_group_rule = "5ms".into();
                a.logical_slot = "20ms".into();
                a.subscribe = "25ms".into();
                sc.wal.heartbeat_interval = "3s".into();
                sc.wal.archive_timeout = "10s".into();
                sc.cloudwatch.delay = "1s".into();
                // A standby on the same machine, reading its primary over loopback: replay
                // is bounded by its CPU, not a network (assumed: nothing measures it before
                // a replica exists).
                sc.replica.replay_bytes_per_second = 500e6;
                sc.envoy.nodes = sc.envoy_nodes();
                for n in &mut sc.envoy.nodes {
                    n.ack_latency = "15ms".into();
                }
                format!(
                    "the lab's platform: replica build {} (pg_basebackup), promotion {} (pg_promote), restart {}, a terminated backend gone in 10 ms, Envoy ACK 15 ms, replica replay 500 MB/s (assumed), RDS heartbeat every {} and archive_timeout {} (the lab's own settings)",
                    sc.aws.create_replica_base,
                    sc.aws.promote,
                    sc.aws.reboot,
                    sc.wal.heartbeat_interval,
                    sc.wal.archive_timeout
                )
            }
        }
    }
}

/// Build the prediction's scenario for `cluster` on `platform` from `probe` (the probe step's
/// result; `Null` when the probe read nothing) and the run's `params` (the target's encryption).
pub fn calibrate(
    cluster: &str,
    probe: &Value,
    params: &Map<String, Value>,
    platform: Platform,
) -> Calibration {
    let mut sc = Scenario::from_toml("calibrated", "name = \"calibrated\"\n[source]\n")
        .expect("the minimal scenario parses");
    sc.source.id = cluster.to_string();
    let mut measured = Vec::new();
    let mut assumed = Vec::new();
    let src = &probe["source"];

    if let Some(v) = src["engine_version"].as_str() {
        sc.source.engine_version = v.to_string();
        measured.push(format!("engine {v}"));
        // Whether Aurora offers it is the preflight's finding (`aurora-version`); the
        // prediction is of the migration once that is fixed.
        if !sc.aws.aurora_versions.iter().any(|a| a == v) {
            sc.aws.aurora_versions.push(v.to_string());
        }
    }
    if let Some(v) = src["instance_class"].as_str() {
        sc.source.instance_class = v.to_string();
        measured.push(format!("class {v}"));
    }
    if let Some(v) = src["allocated_storage_gb"].as_u64() {
        sc.source.allocated_storage_gb = v.max(20);
        measured.push(format!("storage {v} GB"));
    }
    // Data on disk: what the allocation does not have free (retained WAL included, a few
    // segments at most on a healthy source). It sizes the replica's build.
    let free_min = probe["free"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["v"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let alloc = sc.source.allocated_storage_gb as f64;
    if free_min.is_finite() {
        // To the megabyte: a lab's database is megabytes.
        let used = (alloc * GIB - free_min).clamp(0.0, alloc * GIB);
        sc.source.data_gb = (used / GB * 1000.0).round() / 1000.0;
        measured.push(format!(
            "data {} (allocated − FreeStorageSpace)",
            bytes(sc.source.data_gb * GB)
        ));
    } else {
        sc.source.data_gb = (alloc * 0.5).round();
        assumed.push(format!(
            "data {} GB: half the allocation (no FreeStorageSpace in the last hour)",
            sc.source.data_gb
        ));
    }
    // The target keeps the source's encryption unless the run asks otherwise; a mismatch is the
    // preflight's to report, the prediction assumes it fixed.
    let encrypted = params
        .get("encrypt_target")
        .and_then(Value::as_bool)
        .or_else(|| src["storage_encrypted"].as_bool())
        .unwrap_or(true);
    sc.source.encrypted = encrypted;
    if !encrypted {
        sc.source.kms_key_id = None;
    }

    // WAL generation over the last day, five-minute averages: the lowest is the base rate, the
    // highest the peak, its time of day the peak hour. The simulator's daily curve (base + a
    // raised-cosine peak) is fitted to those three.
    let wal: Vec<(i64, f64)> = probe["wal"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["t"].as_i64()?, p["v"].as_f64()?)))
        .collect();
    let span = match (wal.first(), wal.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0,
    };
    if wal.len() >= 12 && span < 2 * 3600 {
        // Less than two hours of figures (a lab, a new instance): no daily curve to fit; the
        // rate they show, steady, all day.
        let mean = wal.iter().map(|p| p.1).sum::<f64>() / wal.len() as f64;
        sc.workload.base_write_bytes_per_second = mean.max(0.0).round();
        sc.workload.peak_write_bytes_per_second = mean.max(0.0).round();
        sc.workload.jitter = 0.1;
        measured.push(format!(
            "WAL {}/s (the mean of {} TransactionLogsGeneration datapoints over {} s)",
            bytes(mean),
            wal.len(),
            span
        ));
        assumed.push(format!(
            "WAL: steady at that rate, ±10 % minute to minute (only {span} s of figures: no daily peak to fit)"
        ));
    } else if wal.len() >= 12 {
        let (low, high) = wal
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), (_, v)| {
                (lo.min(*v), hi.max(*v))
            });
        let (peak_t, _) = wal
            .iter()
            .copied()
            .fold((0, f64::MIN), |best, p| if p.1 > best.1 { p } else { best });
        // The middle of the peak's five minutes, as an hour of the day.
        let hour = ((peak_t + 150).rem_euclid(86_400)) as f64 / 3600.0;
        sc.workload.base_write_bytes_per_second = low.max(0.0).round();
        sc.workload.peak_write_bytes_per_second = high.max(low).round();
        sc.workload.peak_hour_utc = hour % 24.0;
        sc.workload.jitter = 0.1;
        measured.push(format!(
            "WAL {}/s base, {}/s peak at {:02}:{:02} UTC ({} five-minute averages of TransactionLogsGeneration)",
            bytes(low),
            bytes(high),
            hour as u32,
            ((hour.fract()) * 60.0) as u32,
            wal.len()
        ));
        assumed.push(
            "the daily WAL curve is base + one raised-cosine peak, ±10 % minute to minute".into(),
        );
    } else {
        assumed.push(format!(
            "WAL: idle (only {} five-minute TransactionLogsGeneration averages in the last day)",
            wal.len()
        ));
    }

    let connections = probe["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["v"].as_f64())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    match connections {
        Some(c) => {
            sc.source.sessions = c.round().max(0.0) as u32;
            measured.push(format!(
                "{} sessions (DatabaseConnections, the day's maximum)",
                sc.source.sessions
            ));
        }
        None => assumed.push(format!(
            "{} sessions (no DatabaseConnections in the last day)",
            sc.source.sessions
        )),
    }

    // Slots and their consumers: logical slots read with SQL when godwit has database access,
    // else the CDC hooks' consumers (each on its own slot).
    let access = probe["access"]["available"].as_bool();
    sc.godwit.db_access = access.unwrap_or(true);
    if access == Some(false) {
        measured.push("no database access (credential-less)".into());
    }
    let consumers: Vec<(String, String, bool)> = probe["consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["name"].as_str()?.to_string(),
                c["slot"].as_str()?.to_string(),
                c["state"].as_str() != Some("paused"),
            ))
        })
        .collect();
    let mut slots: Vec<(String, bool)> = probe["slots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["slot_type"].as_str() == Some("logical"))
        .filter_map(|s| Some((s["slot_name"].as_str()?.to_string(), true)))
        .collect();
    for (_, slot, _) in &consumers {
        if !slots.iter().any(|(s, _)| s == slot) {
            slots.push((slot.clone(), true));
        }
    }
    // A stale slot is the preflight's finding; the prediction assumes it dropped or consumed.
    sc.slots = slots
        .iter()
        .map(|(name, active)| SlotCfg {
            name: name.clone(),
            slot_type: SlotType::Logical,
            plugin: "pgoutput".into(),
            active: *active,
            database: "postgres".into(),
        })
        .collect();
    sc.cdc.consumers = consumers
        .iter()
        .filter(|(_, slot, _)| sc.slots.iter().any(|s| &s.name == slot))
        .map(|(name, slot, _)| ConsumerCfg {
            name: name.clone(),
            slot: slot.clone(),
        })
        .collect();
    // Without database access a CDC consumer is refused (`cdc-without-database-access`); the
    // check's first fix is to grant access, and the prediction is of the fixed migration.
    if !sc.godwit.db_access && !sc.cdc.consumers.is_empty() {
        sc.godwit.db_access = true;
        assumed.push(
            "database access granted: without it the CDC consumers are refused \
             (cdc-without-database-access)"
                .into(),
        );
    }
    if !sc.slots.is_empty() || !sc.cdc.consumers.is_empty() {
        measured.push(format!(
            "{} logical slot(s), {} CDC consumer(s)",
            sc.slots.len(),
            sc.cdc.consumers.len()
        ));
    }
    for m in probe["missing"].as_array().into_iter().flatten() {
        assumed.push(format!("not read: {}", m.as_str().unwrap_or_default()));
    }
    // The tables the exact comparison at the fence reads: it takes time with their rows.
    let tables: Vec<TableCfg> = probe["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some(TableCfg {
                name: t["table"].as_str()?.to_string(),
                rows: t["rows"].as_i64()?.max(0) as u64,
            })
        })
        .collect();
    if tables.is_empty() {
        assumed.push(format!(
            "tables: the simulator's ({} rows; no table statistics read)",
            sc.source.tables.iter().map(|t| t.rows).sum::<u64>()
        ));
    } else {
        measured.push(format!(
            "{} tables, {} rows (pg_stat_user_tables)",
            tables.len(),
            tables.iter().map(|t| t.rows).sum::<u64>()
        ));
        sc.source.tables = tables;
    }
    assumed.push(format!(
        "the exact comparison at the fence: {} + {} rows/s",
        sc.godwit.compare_base, sc.godwit.compare_rows_per_second
    ));
    assumed.push(platform.apply(&mut sc));
    if platform == Platform::Aws {
        assumed.push(format!(
            "replica replay {}/s whatever the class (not measured before a replica exists)",
            bytes(sc.replica.replay_bytes_per_second)
        ));
        assumed.push(
            "one Envoy node, 200 ms to ACK a route change; the run starts at 00:00 UTC".into(),
        );
    } else {
        assumed.push("one Envoy node; the run starts at 00:00 UTC".into());
    }
    sc.name = "calibrated".into();
    Calibration {
        scenario: sc,
        measured,
        assumed,
    }
}

/// Make `sc` replay `rec` (read from `file`) instead of its workload curve: the source's WAL,
/// sessions and starting free storage follow the recording (docs/sim.md "Replaying recorded
/// series"). The last 24 h of it are replayed, aligned on the hour of day (the scenario's start
/// meets the recording's datapoint at the same time of day) and looped: the prediction runs
/// longer than a day and a day's pattern repeats. Returns the assumption that replaces the
/// fitted curve's.
pub fn replay_recording(
    sc: &mut Scenario,
    mut rec: godwit_stdlib::cw::recording::Recording,
    file: &str,
) -> Result<String, String> {
    const DAY_MS: i64 = 86_400_000;
    let wal = rec
        .source_metric("TransactionLogsGeneration")
        .filter(|m| !m.points.is_empty())
        .ok_or_else(|| {
            format!(
                "recorded series {file}: no TransactionLogsGeneration datapoints of {}; export the \
                 cluster's series again (`godwit cw export`)",
                rec.cluster
            )
        })?;
    let end = wal.points.last().map_or(0, |p| p.0) + rec.period * 1000;
    let keep_from = end - DAY_MS;
    for m in &mut rec.metrics {
        m.points.retain(|p| p.0 >= keep_from);
    }
    let first = rec
        .source_metric("TransactionLogsGeneration")
        .and_then(|m| m.points.first())
        .map_or(0, |p| p.0);
    let offset_ms = (sc.start_ms() - first).rem_euclid(DAY_MS);
    sc.workload.recorded = Some(file.to_string());
    sc.workload.offset = format!("{}s", offset_ms / 1000);
    sc.workload.past_end = godwit_stdlib::cw::recording::PastEnd::Loop;
    sc.workload.jitter = 0.0;
    sc.workload.recording = Some(std::sync::Arc::new(rec));
    sc.validate()
        .map_err(|e| format!("recorded series {file}: {e}"))?;
    let replay = godwit_stdlib::sim::replay::Replay::of(sc)
        .ok_or_else(|| format!("recorded series {file}: nothing to replay"))?;
    Ok(format!(
        "{} (the last 24 h of the recording, aligned on the hour of day), instead of a fitted \
         curve",
        replay.describe()
    ))
}

/// `1.5 MB`, `12 KB`: rates and sizes for people.
pub fn bytes(v: f64) -> String {
    let v = v.max(0.0);
    if v >= 1e9 {
        format!("{:.1} GB", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1} MB", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} KB", v / 1e3)
    } else {
        format!("{v:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_daily_curve_and_sizes_come_from_the_probe() {
        let wal: Vec<Value> = (0..288)
            .map(|i| {
                let v = if i == 170 { 9e6 } else { 1e6 + f64::from(i) };
                json!({ "t": 1_767_225_600 + i * 300, "v": v })
            })
            .collect();
        let probe = json!({
            "source": { "engine_version": "16.1", "instance_class": "db.r6g.large",
                        "allocated_storage_gb": 1000, "storage_encrypted": true },
            "wal": wal,
            "connections": [{ "t": 0, "v": 12.0 }, { "t": 3600, "v": 30.0 }],
            "free": [{ "t": 0, "v": 700e9 }, { "t": 300, "v": 600e9 }],
            "access": { "available": false },
            "consumers": [{ "name": "c", "slot": "s", "state": "running" }],
            "slots": [], "missing": [],
        });
        let c = calibrate("orders-db", &probe, &Map::new(), Platform::Aws);
        let sc = &c.scenario;
        sc.validate().unwrap();
        // 1000 GiB allocated, 600 GB free.
        assert_eq!(sc.source.data_gb, 473.742);
        assert_eq!(sc.source.sessions, 30);
        assert_eq!(sc.workload.base_write_bytes_per_second, 1e6);
        assert_eq!(sc.workload.peak_write_bytes_per_second, 9e6);
        // Minute 170 × 5 = 850 min = 14:10, the middle of its five minutes 14:12:30.
        assert!(
            (sc.workload.peak_hour_utc - 14.208).abs() < 0.01,
            "{}",
            sc.workload.peak_hour_utc
        );
        // Credential-less with a CDC consumer: refused as it is, predicted with access granted.
        assert!(sc.godwit.db_access);
        assert!(
            c.measured.iter().any(|m| m.contains("credential-less")),
            "{:?}",
            c.measured
        );
        assert!(
            c.assumed
                .iter()
                .any(|a| a.starts_with("database access granted")),
            "{:?}",
            c.assumed
        );
        assert_eq!(sc.cdc.consumers.len(), 1);
        assert!(
            c.measured
                .iter()
                .any(|m| m.contains("9.0 MB/s peak at 14:12")),
            "{:?}",
            c.measured
        );
    }

    #[test]
    fn nothing_read_is_all_assumptions() {
        let c = calibrate("orders-db", &Value::Null, &Map::new(), Platform::Aws);
        c.scenario.validate().unwrap();
        assert!(c.measured.is_empty());
        assert!(
            c.assumed.iter().any(|a| a.starts_with("WAL: idle")),
            "{:?}",
            c.assumed
        );
    }
}
