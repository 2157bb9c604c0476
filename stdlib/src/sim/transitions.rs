//! AWS-side changes that complete later (creation, promotion, reboot, deletes), and their
//! effect on the replication stream when they land.

use std::collections::{BTreeMap, BTreeSet};

use godwit_engine::clock::Millis;
use serde::{Deserialize, Serialize};

use super::scenario::{FaultKind, SlotType};
use super::{SimState, Slot, Stream};
use crate::pg::format_lsn;
use crate::rds::{DbCluster, DbInstance, RdsEvent, Snapshot};

/// An RDS-side change that completes later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    InstanceStatus { id: String, status: String },
    ClusterStatus { id: String, status: String },
    RebootDone { id: String },
    PromoteVisible { id: String },
    PromoteDone { id: String },
    DeleteInstance { id: String },
    DeleteCluster { id: String },
    SnapshotDone { id: String },
}

impl Change {
    /// What happened, for the model's event log.
    pub fn describe(&self) -> String {
        match self {
            Change::InstanceStatus { id, status } => format!("instance {id} is {status}"),
            Change::ClusterStatus { id, status } => format!("cluster {id} is {status}"),
            Change::RebootDone { id } => format!("{id} is up again after its reboot"),
            Change::PromoteVisible { id } => format!("cluster {id} shows the promotion"),
            Change::PromoteDone { id } => format!("cluster {id} promoted"),
            Change::DeleteInstance { id } => format!("instance {id} deleted"),
            Change::DeleteCluster { id } => format!("cluster {id} deleted"),
            Change::SnapshotDone { id } => format!("snapshot {id} is available"),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RdsModel {
    pub instances: BTreeMap<String, DbInstance>,
    pub clusters: BTreeMap<String, DbCluster>,
    /// name → (family, is_cluster_group, parameters)
    pub param_groups: BTreeMap<String, ParamGroup>,
    pub snapshots: BTreeMap<String, Snapshot>,
    /// Reboot idempotency tokens already acted on.
    pub reboot_tokens: BTreeSet<String>,
    /// RDS events (`DescribeEvents`), oldest first, worded as RDS words them.
    #[serde(default)]
    pub events: Vec<RdsEvent>,
    pending: Vec<(Millis, u64, Change)>,
    seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    pub name: String,
    pub family: String,
    pub cluster: bool,
    pub parameters: BTreeMap<String, String>,
    /// When it was created (ms).
    #[serde(default)]
    pub created_at: Millis,
}

impl RdsModel {
    /// Record an RDS event of an instance (`cluster` false) or a cluster at `now`.
    pub fn event(&mut self, now: Millis, id: &str, cluster: bool, message: impl Into<String>) {
        self.events.push(RdsEvent {
            at: now.div_euclid(1000),
            source_id: id.to_string(),
            source_type: if cluster { "db-cluster" } else { "db-instance" }.into(),
            message: message.into(),
        });
    }

    pub fn schedule(&mut self, at: Millis, change: Change) {
        self.seq += 1;
        self.pending.push((at, self.seq, change));
    }

    /// When the cluster's pending status change lands, if one is scheduled.
    pub fn pending_for_cluster(&self, id: &str) -> Option<Millis> {
        self.pending
            .iter()
            .filter(|p| matches!(&p.2, Change::ClusterStatus { id: c, .. } if c == id))
            .map(|p| p.0)
            .max()
    }

    /// Whether a promotion of `id` is scheduled already.
    pub fn promote_requested(&self, id: &str) -> bool {
        self.pending.iter().any(|p| {
            matches!(&p.2, Change::PromoteVisible { id: c } | Change::PromoteDone { id: c } if c == id)
        })
    }

    /// Drop the cluster's pending status change (a delete of a cluster being created);
    /// returns when the last of its members' deletes lands (0 if none pending).
    pub fn cancel_cluster_creation(&mut self, id: &str, members: &[String]) -> Millis {
        self.pending
            .retain(|p| !matches!(&p.2, Change::ClusterStatus { id: c, .. } if c == id));
        self.pending
            .iter()
            .filter(|p| matches!(&p.2, Change::DeleteInstance { id: m } if members.contains(m)))
            .map(|p| p.0)
            .max()
            .unwrap_or(0)
    }

    pub(super) fn next_due(&self) -> Option<Millis> {
        self.pending.iter().map(|p| p.0).min()
    }

    pub(super) fn take_due(&mut self, now: Millis) -> Vec<Change> {
        let mut due: Vec<_> = self
            .pending
            .iter()
            .filter(|p| p.0 <= now)
            .cloned()
            .collect();
        self.pending.retain(|p| p.0 > now);
        due.sort_by_key(|p| (p.0, p.1));
        due.into_iter().map(|p| p.2).collect()
    }
}

impl SimState {
    pub(super) fn apply(&mut self, change: Change) {
        self.note(change.describe());
        match change {
            Change::InstanceStatus { id, status } => {
                let created = self
                    .rds
                    .instances
                    .get(&id)
                    .is_some_and(|i| i.status == "creating" && status == "available");
                if created {
                    self.rds.event(self.now, &id, false, "DB instance created");
                }
                if let Some(i) = self.rds.instances.get_mut(&id) {
                    i.status = status;
                }
                self.refresh_stream();
            }
            Change::ClusterStatus { id, mut status } => {
                let replica = self
                    .rds
                    .clusters
                    .get(&id)
                    .is_some_and(|c| c.replication_source_identifier.is_some());
                if replica && status == "available" {
                    if let Some(t) = self
                        .fault(FaultKind::TerminalClusterState)
                        .and_then(|f| f.target.clone())
                    {
                        status = t;
                    } else if self.fault(FaultKind::EncryptionMismatch).is_some() {
                        status = "inaccessible-encryption-credentials".into();
                    }
                }
                // The simulator's wording of what RDS reports with each state.
                let message = match status.as_str() {
                    "available" => "DB cluster created".to_string(),
                    "migration-failed" => "Migration to the Aurora replica failed".into(),
                    "incompatible-parameters" => {
                        "The DB cluster parameters are incompatible: the cluster cannot start"
                            .into()
                    }
                    "inaccessible-encryption-credentials" => {
                        "The KMS key that encrypts the DB cluster cannot be accessed".into()
                    }
                    s => format!("DB cluster is {s}"),
                };
                self.rds.event(self.now, &id, true, message);
                if let Some(c) = self.rds.clusters.get_mut(&id) {
                    c.status = status;
                }
                self.refresh_stream();
            }
            Change::RebootDone { id } => {
                if let Some(i) = self.rds.instances.get_mut(&id) {
                    i.status = "available".into();
                }
                self.rds
                    .event(self.now, &id, false, "DB instance restarted");
            }
            Change::PromoteVisible { id } => {
                if self.promote_fault(FaultKind::PromoteFailure).is_some() {
                    // The promotion is refused after it showed `promoting`.
                    if let Some(c) = self.rds.clusters.get_mut(&id) {
                        c.status = "available".into();
                    }
                    self.note(format!("promotion of {id} failed; still a replica"));
                    self.rds.event(
                        self.now,
                        &id,
                        true,
                        "Failed to promote read replica cluster: the cluster remains a replica",
                    );
                    return;
                }
                if let Some(c) = self.rds.clusters.get_mut(&id) {
                    c.status = "promoting".into();
                }
                self.stop_stream(&id);
                if self.promote_fault(FaultKind::PromoteHang).is_none() {
                    let at = self.now + self.tm.promote;
                    self.rds.schedule(at, Change::PromoteDone { id });
                }
            }
            Change::PromoteDone { id } => {
                if let Some(c) = self.rds.clusters.get_mut(&id) {
                    c.status = "available".into();
                    c.replication_source_identifier = None;
                }
                let src = self.sc.source.id.clone();
                if let Some(i) = self.rds.instances.get_mut(&src) {
                    i.replica_clusters.retain(|c| *c != id);
                }
                self.rds.event(
                    self.now,
                    &id,
                    true,
                    "Promoted read replica cluster to a stand-alone database cluster",
                );
            }
            Change::DeleteInstance { id } => {
                self.rds.event(self.now, &id, false, "DB instance deleted");
                self.drop_sessions(&id);
                let cluster = self.rds.instances.remove(&id).and_then(|i| i.cluster_id);
                if let Some(c) = cluster.and_then(|c| self.rds.clusters.get_mut(&c)) {
                    c.members.retain(|m| *m != id);
                    if c.writer.as_deref() == Some(id.as_str()) {
                        c.writer = None;
                    }
                }
                self.refresh_stream();
            }
            Change::DeleteCluster { id } => {
                self.rds.event(self.now, &id, true, "DB cluster deleted");
                self.rds.clusters.remove(&id);
                self.stop_stream(&id);
                self.slots
                    .retain(|s| s.replica_cluster.as_deref() != Some(id.as_str()));
                let src = self.sc.source.id.clone();
                if let Some(i) = self.rds.instances.get_mut(&src) {
                    i.replica_clusters.retain(|c| *c != id);
                }
            }
            Change::SnapshotDone { id } => {
                if let Some(s) = self.rds.snapshots.get_mut(&id) {
                    s.status = "available".into();
                }
            }
        }
    }

    pub(super) fn promote_fault(&mut self, kind: FaultKind) -> Option<usize> {
        let now = self.now;
        let i = self.faults.iter().position(|f| {
            f.kind == kind && (f.active(now) || (f.at.is_none() && f.step.is_none()))
        })?;
        Some(i)
    }

    /// The stream flows while the replica cluster is available with an available member.
    pub(super) fn refresh_stream(&mut self) {
        let Some(stream) = &self.stream else {
            return;
        };
        let id = stream.cluster_id.clone();
        let flowing = self.rds.clusters.get(&id).is_some_and(|c| {
            c.replication_source_identifier.is_some()
                && c.status == "available"
                && c.members.iter().any(|m| {
                    self.rds
                        .instances
                        .get(m)
                        .is_some_and(|i| i.status == "available")
                })
        });
        if let Some(s) = &mut self.stream {
            s.flowing = flowing;
        }
    }

    pub(super) fn stop_stream(&mut self, cluster: &str) {
        if self
            .stream
            .as_ref()
            .is_some_and(|s| s.cluster_id == cluster)
        {
            let stream = self.stream.take().unwrap_or_else(|| unreachable!());
            self.promoted_at_lsn
                .insert(cluster.to_string(), stream.replayed);
            let applied = self.app_bytes_at(stream.replayed);
            self.promoted_app_bytes.insert(cluster.to_string(), applied);
            let lost = self.last_app_commit_lsn.saturating_sub(stream.replayed);
            if lost > 0 && self.fence_at.is_some() {
                self.violate(
                    "no-acknowledged-write-lost",
                    format!(
                        "promotion of {cluster} stopped replication {lost} bytes short of the \
                         source's last acknowledged commit"
                    ),
                );
            }
            self.slots
                .retain(|s| s.replica_cluster.as_deref() != Some(cluster));
            self.note(format!(
                "replication to {cluster} stopped at replayed lsn {}",
                format_lsn(stream.replayed)
            ));
        }
    }

    /// Begin replicating into `cluster` from the current LSN (the replica is built from a
    /// snapshot taken now; it catches up once available). A physical slot holds the WAL.
    pub fn start_stream(&mut self, cluster: &str) {
        let lsn = self.lsn;
        self.stream = Some(Stream {
            cluster_id: cluster.to_string(),
            replayed: lsn,
            flowing: false,
        });
        self.slots.push(Slot {
            name: format!("rds_aurora_{}", cluster.replace('-', "_")),
            slot_type: SlotType::Physical,
            plugin: String::new(),
            database: String::new(),
            active: true,
            restart_lsn: lsn,
            confirmed_flush_lsn: 0,
            inactive_since: None,
            received: lsn,
            replica_cluster: Some(cluster.to_string()),
        });
    }
}
