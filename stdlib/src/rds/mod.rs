//! Area `rds`: RDS instances, Aurora clusters, parameter groups and snapshots.
//!
//! | file      | what                                                              |
//! |-----------|-------------------------------------------------------------------|
//! | `mod.rs`  | the [`Rds`] trait and its serde request/response types            |
//! | `rhai.rs` | the Rhai module `rds` (docs, argument conversion, `wait_until_*`) |
//! | `sim.rs`  | [`Rds`] over the simulator                                        |
//! | `aws.rs`  | [`Rds`] over `aws-sdk-rds` (feature `aws`)                        |
//!
//! Mutations are idempotent (check, then act): creating what exists with the same shape returns
//! it, promoting a promoted cluster returns it, and a reboot carries the step's idempotency
//! token so a step re-run after a crash does not reboot twice.

#[cfg(feature = "aws")]
pub mod aws;
pub mod rhai;
pub mod sim;

use std::collections::BTreeMap;

use godwit_engine::Call;
use godwit_engine::PrimitiveError;
use serde::{Deserialize, Serialize};

/// An RDS DB instance (RDS for PostgreSQL, or an Aurora cluster member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbInstance {
    pub id: String,
    pub arn: String,
    /// `postgres` or `aurora-postgresql`.
    pub engine: String,
    pub engine_version: String,
    pub instance_class: String,
    /// `available`, `creating`, `modifying`, `rebooting`, `deleting`, `failed`, ...
    pub status: String,
    pub cluster_id: Option<String>,
    pub security_groups: Vec<String>,
    pub parameter_group: String,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
    pub allocated_storage_gb: u64,
    pub backup_retention_days: u32,
    pub endpoint: String,
    pub vpc_id: String,
    /// Aurora clusters replicating from this instance (`ReadReplicaDBClusterIdentifiers`).
    pub replica_clusters: Vec<String>,
}

/// An Aurora DB cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbCluster {
    pub id: String,
    pub arn: String,
    pub engine: String,
    pub engine_version: String,
    /// `creating`, `available`, `promoting`, `deleting`, or a terminal state
    /// (`migration-failed`, `failed`, `incompatible-parameters`,
    /// `inaccessible-encryption-credentials`).
    pub status: String,
    /// ARN of the source while the cluster is a replica; `()` once promoted.
    pub replication_source_identifier: Option<String>,
    pub members: Vec<String>,
    pub writer: Option<String>,
    pub parameter_group: String,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
    pub endpoint: String,
    pub reader_endpoint: String,
    pub security_groups: Vec<String>,
    pub vpc_id: String,
}

/// One RDS event (`DescribeEvents`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdsEvent {
    /// Epoch seconds.
    pub at: i64,
    /// The instance or cluster id.
    pub source_id: String,
    /// `db-instance` or `db-cluster`.
    pub source_type: String,
    /// The event's text, e.g. `DB instance restarted`.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineVersion {
    pub engine: String,
    pub version: String,
    pub major: u32,
    pub minor: u32,
    pub parameter_group_family: String,
    pub supported_extensions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    /// `user` (set in the group) or `engine-default`.
    pub source: String,
}

/// `create_parameter_groups`: map a source DB parameter group onto an Aurora cluster group and
/// an instance group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateParameterGroups {
    pub cluster_group: String,
    pub instance_group: String,
    /// e.g. `aurora-postgresql15`.
    pub family: String,
    /// Parameters to carry over (usually the source group's user-set ones).
    pub parameters: BTreeMap<String, String>,
    /// Set on the cluster group only, e.g. `rds.logical_replication = 1`.
    pub cluster_parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterGroupsCreated {
    pub cluster_group: String,
    pub instance_group: String,
    /// Parameters set, sorted.
    pub applied: Vec<String>,
    /// Parameters Aurora does not accept, sorted (left out, never silently dropped).
    pub unsupported: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateReplicaCluster {
    pub cluster_id: String,
    /// The source RDS instance id (its ARN becomes `ReplicationSourceIdentifier`).
    pub source_id: String,
    pub engine_version: String,
    pub parameter_group: Option<String>,
    pub security_groups: Option<Vec<String>>,
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateClusterInstance {
    pub instance_id: String,
    pub cluster_id: String,
    pub instance_class: String,
    pub parameter_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub source_id: String,
    /// `creating` or `available`.
    pub status: String,
    pub engine_version: String,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
    pub data_gb: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreCluster {
    pub cluster_id: String,
    pub snapshot_id: String,
    pub engine_version: String,
    pub parameter_group: Option<String>,
}

/// RDS as the primitives see it, in every world.
pub trait Rds: Send + Sync {
    fn describe_instance(&self, cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError>;
    fn describe_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError>;
    /// Versions of `engine` (`postgres` or `aurora-postgresql`), oldest first.
    fn list_engine_versions(
        &self,
        cx: &Call<'_>,
        engine: &str,
    ) -> Result<Vec<EngineVersion>, PrimitiveError>;
    /// Parameters of a DB or cluster parameter group, sorted by name.
    fn describe_parameters(
        &self,
        cx: &Call<'_>,
        group: &str,
    ) -> Result<Vec<Parameter>, PrimitiveError>;
    fn create_parameter_groups(
        &self,
        cx: &Call<'_>,
        req: &CreateParameterGroups,
    ) -> Result<ParameterGroupsCreated, PrimitiveError>;
    fn create_replica_cluster(
        &self,
        cx: &Call<'_>,
        req: &CreateReplicaCluster,
    ) -> Result<DbCluster, PrimitiveError>;
    fn create_cluster_instance(
        &self,
        cx: &Call<'_>,
        req: &CreateClusterInstance,
    ) -> Result<DbInstance, PrimitiveError>;
    fn set_security_groups(
        &self,
        cx: &Call<'_>,
        id: &str,
        groups: &[String],
    ) -> Result<DbInstance, PrimitiveError>;
    /// `token` makes a re-run of the same step a no-op.
    fn reboot_instance(
        &self,
        cx: &Call<'_>,
        id: &str,
        token: &str,
    ) -> Result<DbInstance, PrimitiveError>;
    fn promote_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError>;
    fn delete_instance(&self, cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError>;
    fn delete_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError>;
    fn create_snapshot(
        &self,
        cx: &Call<'_>,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<Snapshot, PrimitiveError>;
    fn describe_snapshot(&self, cx: &Call<'_>, id: &str) -> Result<Snapshot, PrimitiveError>;
    fn restore_cluster_from_snapshot(
        &self,
        cx: &Call<'_>,
        req: &RestoreCluster,
    ) -> Result<DbCluster, PrimitiveError>;
    /// RDS events of an instance (`cluster` false) or a cluster, oldest first (the last 14
    /// days RDS keeps, or whatever the world keeps). Quoted when a wait meets a terminal state,
    /// because the state alone does not say why; also evidence that a reboot or a promotion
    /// completed.
    fn describe_events(
        &self,
        cx: &Call<'_>,
        id: &str,
        cluster: bool,
    ) -> Result<Vec<RdsEvent>, PrimitiveError>;
}

/// The states a cluster never leaves on its own: waiting is pointless. Every other state
/// (`maintenance`, `upgrading`, `backing-up`, `configuring-…`) is transient (AWS: "Viewing
/// Amazon Aurora DB cluster status").
pub const TERMINAL_CLUSTER_STATES: &[&str] = &[
    "migration-failed",
    "failed",
    "incompatible-parameters",
    "inaccessible-encryption-credentials",
];

/// Terminal instance states.
pub const TERMINAL_INSTANCE_STATES: &[&str] = &[
    "failed",
    "incompatible-parameters",
    "incompatible-restore",
    "inaccessible-encryption-credentials",
    "storage-full",
];
