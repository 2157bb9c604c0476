//! The prediction's scenario, built from one cluster's own figures as the calibration probe
//! (`probe.rhai`) read them through its world. What it measured is listed in
//! [`Calibration::measured`]; what it had to assume, with the value taken, in
//! [`Calibration::assumed`] — a plan states both.
//!
//! The scenario predicts the migration *once the preflight's fixes are applied*: it takes the
//! figures that decide durations (storage, data, WAL rate and its daily peak, sessions, slots and
//! CDC consumers, database access, encryption) and leaves the blocking facts (backups off, a
//! pending modification, an unsupported extension, ...) out, because the preflight reports those.

use godwit_stdlib::sim::scenario::{ConsumerCfg, Scenario, SlotCfg, SlotType};
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

/// Build the prediction's scenario for `cluster` from `probe` (the probe step's result; `Null`
/// when the probe read nothing) and the run's `params` (the target's encryption).
pub fn calibrate(cluster: &str, probe: &Value, params: &Map<String, Value>) -> Calibration {
    let mut sc = Scenario::from_toml("calibrated", "name = \"calibrated\"\n[source]\n")
        .expect("the minimal scenario parses");
    sc.source.id = cluster.to_string();
    let mut measured = Vec::new();
    let mut assumed = Vec::new();
    let src = &probe["source"];

    if let Some(v) = src["engine_version"].as_str() {
        sc.source.engine_version = v.to_string();
        measured.push(format!("engine {v}"));
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
        sc.source.data_gb = (alloc - free_min / GB).clamp(0.0, alloc).round();
        measured.push(format!(
            "data {} GB (allocated − FreeStorageSpace)",
            sc.source.data_gb
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
    if wal.len() >= 12 {
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
    let d = godwit_stdlib::sim::scenario::Aws::default();
    assumed.push(format!(
        "replica build {} + {} per 100 GB of data, promotion {} (the simulator's AWS timings; RDS does not publish them)",
        d.create_replica_base, d.create_replica_per_100gb, d.promote
    ));
    assumed.push(format!(
        "replica replay {}/s whatever the class (not measured before a replica exists)",
        bytes(sc.replica.replay_bytes_per_second)
    ));
    assumed
        .push("one Envoy node, 200 ms to ACK a route change; the run starts at 00:00 UTC".into());
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
        let c = calibrate("orders-db", &probe, &Map::new());
        let sc = &c.scenario;
        sc.validate().unwrap();
        assert_eq!(sc.source.data_gb, 400.0);
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
        let c = calibrate("orders-db", &Value::Null, &Map::new());
        c.scenario.validate().unwrap();
        assert!(c.measured.is_empty());
        assert!(
            c.assumed.iter().any(|a| a.starts_with("WAL: idle")),
            "{:?}",
            c.assumed
        );
    }
}
