//! What can be observed from outside: CloudWatch samples and minutes, storage, and the
//! invariants that fail a run.

use godwit_engine::clock::Millis;
use serde::{Deserialize, Serialize};

use super::SimState;
use super::metrics::{self, Statistic};
use super::scenario::{FaultKind, SlotType};

/// An invariant the run broke; fails the run with this report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub at: Millis,
    pub invariant: String,
    pub detail: String,
}

impl SimState {
    /// Free storage of the source in bytes: allocated − data − retained WAL.
    pub fn free_storage_bytes(&self) -> f64 {
        // RDS's AllocatedStorage is in GiB ("Amount of storage in gibibytes (GiB)",
        // CreateDBInstance); the data size is in GB.
        let alloc = self.sc.source.allocated_storage_gb as f64 * 1_073_741_824.0;
        (alloc - self.sc.source.data_gb * 1e9 - self.retained_wal_bytes() as f64).max(0.0)
    }

    /// WAL held by a slot can fill the disk: the instance goes `storage-full` and stops
    /// accepting writes (RDS's own answer), ending application sessions' work.
    pub(super) fn check_storage(&mut self) {
        if self.free_storage_bytes() > 0.0 || !self.source_up() {
            return;
        }
        let src = self.sc.source.id.clone();
        if let Some(i) = self.rds.instances.get_mut(&src) {
            i.status = "storage-full".into();
        }
        self.note(format!("{src} storage-full: retained WAL filled the disk"));
    }

    pub(super) fn sample(&mut self) {
        let minute = self.now.div_euclid(60_000) * 60;
        self.refresh_sessions();
        let src = self.sc.source.id.as_str();
        let inst = "DBInstanceIdentifier";
        if self.rds.instances.contains_key(src) {
            if !self.slots.is_empty() {
                let oldest = self
                    .slots
                    .iter()
                    .map(|s| s.lag_bytes(self.lsn))
                    .max()
                    .unwrap_or(0);
                self.metrics.sample_at(
                    &mut self.sites[0],
                    ("OldestReplicationSlotLag", inst, src),
                    minute,
                    oldest as f64,
                );
                let logical: u64 = self
                    .slots
                    .iter()
                    .filter(|s| s.slot_type == SlotType::Logical)
                    .map(|s| self.lsn.saturating_sub(s.restart_lsn))
                    .sum();
                self.metrics.sample_at(
                    &mut self.sites[1],
                    ("ReplicationSlotDiskUsage", inst, src),
                    minute,
                    logical as f64,
                );
            }
            let retained = self.retained_wal_bytes();
            self.metrics.sample_at(
                &mut self.sites[2],
                ("TransactionLogsDiskUsage", inst, src),
                minute,
                retained as f64,
            );
            let free = self.free_storage_bytes();
            self.metrics.sample_at(
                &mut self.sites[3],
                ("FreeStorageSpace", inst, src),
                minute,
                free,
            );
            let conns = self.summary.on_source + self.sc.source.internal_connections as usize;
            self.metrics.sample_at(
                &mut self.sites[4],
                ("DatabaseConnections", inst, src),
                minute,
                conns as f64,
            );
        }
        // CloudWatch reports replica lag as -1 while replication is not running (the replica
        // is still being created): no measurement, not "0 s behind" (docs/lag.md).
        let lag = self
            .replica_lag_seconds()
            .or(self.stream.as_ref().map(|_| -1.0));
        if let (Some(lag), Some(stream)) = (lag, &self.stream) {
            self.metrics.sample(
                (
                    "RDSToAuroraPostgreSQLReplicaLag",
                    "DBClusterIdentifier",
                    stream.cluster_id.as_str(),
                ),
                minute,
                lag,
            );
            if let Some(c) = self.rds.clusters.get(&stream.cluster_id) {
                for m in &c.members {
                    self.metrics
                        .sample(("ReplicaLag", inst, m.as_str()), minute, lag);
                }
            }
        }
    }

    /// WAL kept on the source's disk: everything behind the oldest slot, at least one segment.
    pub fn retained_wal_bytes(&self) -> u64 {
        let oldest = self
            .slots
            .iter()
            .map(|s| s.restart_lsn)
            .min()
            .unwrap_or(self.lsn);
        self.lsn.saturating_sub(oldest) + self.seg
    }

    /// CloudWatch history of the source from before the scenario starts: a real instance has
    /// been publishing for months, and a preflight that looks back an hour must find it (a
    /// world without any history made every "missing data" check meet no data at all, and the
    /// storage check passed on that). Steady values as they stand at the start, for the source's
    /// own metrics; the replica's do not exist yet. `TransactionLogsGeneration` follows the
    /// workload's daily curve (without jitter, which is drawn from the start on), so a fleet
    /// plan can read a cluster's WAL rate and its peak the way it reads them on AWS.
    /// `cloudwatch.history` long (at least the two hours a preflight's look-back needs).
    /// A replayed recording sets the data size so that free storage starts at the recorded
    /// `FreeStorageSpace` (the replica's build time follows from it, as on AWS).
    pub(super) fn start_replay(&mut self) {
        let Some(free) = self.replay.as_ref().and_then(|r| r.free(self.now)) else {
            return;
        };
        let alloc = self.sc.source.allocated_storage_gb as f64 * 1_073_741_824.0;
        let wal = self.retained_wal_bytes() as f64;
        self.sc.source.data_gb = ((alloc - free - wal) / 1e9).clamp(0.0, alloc / 1e9);
        if let Some(r) = &self.replay {
            let line = r.describe();
            self.note(line);
        }
    }

    pub(super) fn backfill_history(&mut self) {
        let history_minutes =
            (super::scenario::dur_ms(&self.sc.cloudwatch.history) / 60_000).max(120);
        let start = self.now.div_euclid(60_000) * 60;
        let src = self.sc.source.id.clone();
        let inst = "DBInstanceIdentifier";
        let free = self.free_storage_bytes();
        let retained = self.retained_wal_bytes() as f64;
        let conns = (self.sessions.iter().filter(|s| s.db == src).count()
            + self.sc.source.internal_connections as usize) as f64;
        let slots = !self.slots.is_empty();
        let writing =
            self.replay.is_some() || self.sessions.iter().any(|s| s.db == src && s.application);
        let heartbeat = self.sc.wal.heartbeat_bytes as f64 / (self.tm.heartbeat as f64 / 1000.0);
        for i in (1..=history_minutes).rev() {
            let minute = start - i * 60;
            let app = if writing {
                self.write_rate((minute + 30) * 1000)
            } else {
                0.0
            };
            self.metrics.sample(
                ("TransactionLogsGeneration", inst, src.as_str()),
                minute,
                app + heartbeat,
            );
            // A replayed recording's own history, else the values as they stand at the start.
            let recorded = |f: &dyn Fn(&super::replay::Replay, Millis) -> Option<f64>| {
                self.replay.as_ref().and_then(|r| f(r, minute * 1000))
            };
            let free = recorded(&|r, t| r.free(t)).unwrap_or(free);
            let conns = recorded(&|r, t| r.connections(t).map(f64::from)).unwrap_or(conns);
            self.metrics
                .sample(("FreeStorageSpace", inst, src.as_str()), minute, free);
            self.metrics.sample(
                ("TransactionLogsDiskUsage", inst, src.as_str()),
                minute,
                retained,
            );
            self.metrics
                .sample(("DatabaseConnections", inst, src.as_str()), minute, conns);
            if slots {
                self.metrics.sample(
                    ("OldestReplicationSlotLag", inst, src.as_str()),
                    minute,
                    0.0,
                );
            }
            self.metrics.close_minute(true);
        }
    }

    pub(super) fn close_minute(&mut self) {
        let minute = self.now / 1000 - 60;
        let src = self.sc.source.id.clone();
        let generation = self.minute_gen_bytes as f64 / 60.0;
        self.minute_gen_bytes = 0;
        self.metrics.sample(
            (
                "TransactionLogsGeneration",
                "DBInstanceIdentifier",
                src.as_str(),
            ),
            minute,
            generation,
        );
        // A minute is lost when the gap covers its start.
        let start = self.now - 60_000;
        let gap = self
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::CloudwatchGap && f.active(start));
        self.metrics.close_minute(!gap);
        let j = self.sc.workload.jitter;
        self.jitter = 1.0 + j * self.rng.signed();
    }

    /// CloudWatch datapoints for the source/replica metrics (see [`metrics::Metrics::query`]).
    pub fn datapoints(
        &self,
        key: &metrics::Key,
        stat: Statistic,
        period_s: i64,
        since: i64,
        until: i64,
    ) -> Vec<crate::cw::Point> {
        let extra = self
            .fault(FaultKind::CloudwatchDelay)
            .and_then(|f| f.value)
            .unwrap_or(0.0);
        let visible = (self.now - self.tm.cw_delay) / 1000 - extra as i64;
        self.metrics
            .query(key, stat, period_s, since, until, visible)
    }

    pub fn violate(&mut self, invariant: &str, detail: String) {
        // One report per invariant is enough to fail the run and keeps the log readable.
        if self.violations.iter().any(|v| v.invariant == invariant) {
            return;
        }
        self.violations.push(Violation {
            at: self.now,
            invariant: invariant.into(),
            detail,
        });
    }

    /// Invariants not checked where their facts change (single writer and no write after the
    /// fence are checked in `integrate`, no lost acknowledged write in `stop_stream`).
    pub(super) fn check_invariants(&mut self) {
        let mut bad = Vec::new();
        let app = self.app_route();
        for name in self.routes.keys() {
            let Some(v) = self.effective(name) else {
                continue;
            };
            // Another route (the readers' of shadow reads) may serve a read-only replica; it
            // must serve one that exists.
            if app.as_deref() != Some(name.as_str()) {
                if !self.rds.instances.contains_key(&v.target)
                    && !self.rds.clusters.contains_key(&v.target)
                {
                    bad.push(format!(
                        "route {name} version {} serves {}, which does not exist",
                        v.version, v.target
                    ));
                }
                continue;
            }
            // After a switch is released, the route must serve a writable endpoint.
            if v.version > 1 && !v.hold && !self.accepts_app(&v.target) {
                bad.push(format!(
                    "route {name} version {} released to {}, which is not a writable endpoint",
                    v.version, v.target
                ));
            }
        }
        for detail in bad {
            self.violate("route-serves-writable", detail);
        }
    }
}
