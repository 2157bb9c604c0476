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
//!
//! What "the same shape" is, what conflicts, what is terminal and which ids are unknown is
//! decided here, once, by the pure rules below the trait ([`plan_parameter_group`],
//! [`promotion`], [`reboot`], [`existing_replica`], ...): every world looks the facts up its
//! own way and asks the rule. `tests/tests/contract.rs` runs the same assertions against the
//! sim, lab and aws (moto) worlds.

#[cfg(feature = "aws")]
pub mod aws;
pub mod rhai;
pub mod sim;

use std::collections::BTreeMap;

use godwit_engine::Call;
use godwit_engine::{ErrorKind, PrimitiveError};
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
    /// The port the endpoint listens on (`Endpoint.Port`): never assumed to be 5432.
    #[serde(default = "default_port")]
    pub port: u16,
    pub vpc_id: String,
    /// Aurora clusters replicating from this instance (`ReadReplicaDBClusterIdentifiers`).
    pub replica_clusters: Vec<String>,
    /// Read replicas of this instance (`ReadReplicaDBInstanceIdentifiers`): ids, and ARNs for
    /// cross-Region ones. A cross-Region replica blocks creating an Aurora replica.
    #[serde(default)]
    pub read_replicas: Vec<String>,
    /// `IAMDatabaseAuthenticationEnabled`: whether IAM users may log in.
    #[serde(default)]
    pub iam_auth: bool,
    /// `AutoMinorVersionUpgrade`: a source that upgrades itself during a multi-day validation
    /// can move ahead of its replica (AWS recommends turning it off for the migration).
    #[serde(default)]
    pub auto_minor_version_upgrade: bool,
    /// The fields of `PendingModifiedValues` that are set (e.g. `DBInstanceClass`): the next
    /// reboot — the fence's, inside the write blackout — would apply them.
    #[serde(default)]
    pub pending_modifications: Vec<String>,
    /// `ParameterApplyStatus` of its parameter group: `in-sync`, `pending-reboot`, `applying`.
    #[serde(default = "in_sync")]
    pub parameter_apply_status: String,
    /// Security groups whose membership is not `active` yet (`VpcSecurityGroups[].Status`):
    /// RDS applies a change asynchronously, so a quarantine is in force only once this is
    /// empty.
    #[serde(default)]
    pub security_groups_pending: Vec<String>,
}

/// The PostgreSQL port, for state written before endpoints carried theirs.
pub fn default_port() -> u16 {
    5432
}

fn in_sync() -> String {
    "in-sync".into()
}

/// IAM logins on clusters recorded before the flag existed: they were created by runs that
/// connected to them, so they admitted godwit.
fn iam_auth_recorded_before_the_flag() -> bool {
    true
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
    /// The port of both endpoints (`DBCluster.Port`).
    #[serde(default = "default_port")]
    pub port: u16,
    pub security_groups: Vec<String>,
    pub vpc_id: String,
    /// `IAMDatabaseAuthenticationEnabled`: off unless the cluster is created with it
    /// (`CreateDBCluster` defaults to off), and then godwit cannot log in.
    #[serde(default = "iam_auth_recorded_before_the_flag")]
    pub iam_auth: bool,
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

/// One DB instance as an account's listing shows it (`DescribeDBInstances` without an id):
/// what an inventory needs, with the instance's tags (`TagList`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSummary {
    pub id: String,
    pub engine: String,
    pub engine_version: String,
    pub instance_class: String,
    pub allocated_storage_gb: u64,
    pub status: String,
    /// Tag key → value (AWS tags are unique by key).
    pub tags: BTreeMap<String, String>,
}

/// One page of an account's instances: `marker` continues the listing, `None` on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstancePage {
    pub instances: Vec<InstanceSummary>,
    pub marker: Option<String>,
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

/// A parameter group itself (`DescribeDBParameterGroups` / `DescribeDBClusterParameterGroups`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterGroup {
    pub name: String,
    pub family: String,
    /// A DB cluster parameter group (else a DB parameter group).
    pub cluster: bool,
    /// When it was created (epoch seconds): AWS asks not to use a new cluster group for about
    /// five minutes (`CreateDBClusterParameterGroup`).
    pub created_at: i64,
}

/// What Aurora accepts for a parameter of a family (`DescribeEngineDefault*Parameters`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterRule {
    pub name: String,
    /// The engine default, which may be a formula (`{DBInstanceClassMemory/9531392}`).
    pub default: Option<String>,
    /// `AllowedValues`: a comma list (`0,1`, `off,on`), or a range (`1-262143`), or none.
    pub allowed_values: Option<String>,
    /// Whether it can be set in a group at all.
    pub modifiable: bool,
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
    /// `EnableIAMDatabaseAuthentication` (off when absent, as `CreateDBCluster`'s default):
    /// the standard runbook copies the source's, or godwit cannot log in to the target.
    #[serde(default)]
    pub iam_auth: bool,
}

/// A standalone Aurora PostgreSQL cluster (`CreateDBCluster` without a replication source): the
/// logical path's target, writable from the start. Its master password is generated and kept
/// by RDS in Secrets Manager (`ManageMasterUserPassword`): godwit never sees a password. It
/// joins the network of the instance it will replace (`like`): its VPC (DB subnet group),
/// security groups and port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateCluster {
    pub cluster_id: String,
    /// The RDS instance the cluster replaces: where it is created and what it defaults to.
    pub like: String,
    /// Any Aurora PostgreSQL version of the instance's major or a newer one (a logical copy
    /// crosses majors; it never goes back to an older one).
    pub engine_version: String,
    pub parameter_group: Option<String>,
    pub security_groups: Option<Vec<String>>,
    /// Encrypted storage (default: as the instance's); `kms_key_id` the key (default: the
    /// instance's key when it is encrypted, else the account's RDS key).
    pub storage_encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    /// `EnableIAMDatabaseAuthentication`: godwit and the application sign in with IAM.
    #[serde(default)]
    pub iam_auth: bool,
    /// `MasterUsername` (its password is RDS's, in Secrets Manager).
    pub master_username: String,
}

/// The master user godwit names on a cluster it creates (`CreateDBCluster` needs one); its
/// password is generated and kept by RDS (`ManageMasterUserPassword`).
pub const MASTER_USERNAME: &str = "godwit_master";

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
    /// `EnableIAMDatabaseAuthentication` (off when absent).
    #[serde(default)]
    pub iam_auth: bool,
}

/// A copy-on-write clone of an Aurora cluster (`RestoreDBClusterToPointInTime` with
/// `RestoreType=copy-on-write` and the latest restorable time): a new, writable cluster that
/// shares the source cluster's pages until either side changes them. Its instances are
/// created afterwards, as for any restored cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloneCluster {
    pub cluster_id: String,
    pub source_cluster: String,
    /// `EnableIAMDatabaseAuthentication`: the owning team signs in with IAM (no passwords).
    #[serde(default)]
    pub iam_auth: bool,
}

/// The rules AWS documents for a clone ("Limitations of Aurora cloning", Aurora User Guide):
/// the source must be an Aurora cluster with at least one DB instance ("You can't create a
/// clone from an Aurora DB cluster without a DB instance") and `available`. For the worlds
/// that cannot ask AWS; `Conflict` (retryable while the source is busy), `Invalid` for a
/// source that is not Aurora.
pub fn check_clonable(op: &str, source: &DbCluster) -> Result<(), PrimitiveError> {
    if source.engine != "aurora-postgresql" {
        return Err(PrimitiveError::invalid(
            "rds",
            op,
            format!(
                "{} is {}, not an Aurora cluster: only Aurora clones",
                source.id, source.engine
            ),
            "clone the Aurora replica cluster (the run's target), not the RDS source",
        ));
    }
    if source.members.is_empty() {
        return Err(PrimitiveError::new(
            "rds",
            op,
            ErrorKind::Conflict,
            format!(
                "cluster {} has no DB instance: Aurora cannot clone a cluster without one (InvalidDBClusterStateFault)",
                source.id
            ),
            "create its writer instance first and wait until it is available",
        )
        .with_retryable(false));
    }
    if source.status != "available" {
        return Err(PrimitiveError::new(
            "rds",
            op,
            ErrorKind::Conflict,
            format!(
                "cluster {} is {}, not available (InvalidDBClusterStateFault)",
                source.id, source.status
            ),
            "wait until it is available (rds::wait_until_cluster_available)",
        )
        .with_retryable(true));
    }
    Ok(())
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
    /// A DB or cluster parameter group itself; `NotFound` when it does not exist.
    fn describe_parameter_group(
        &self,
        cx: &Call<'_>,
        group: &str,
    ) -> Result<ParameterGroup, PrimitiveError>;
    /// What a family accepts, per parameter, sorted by name (`cluster`: the cluster-level
    /// parameters, else the instance-level ones).
    fn describe_parameter_rules(
        &self,
        cx: &Call<'_>,
        family: &str,
        cluster: bool,
    ) -> Result<Vec<ParameterRule>, PrimitiveError>;
    /// Instance classes orderable for `engine` at `version`
    /// (`DescribeOrderableDBInstanceOptions`), sorted.
    fn list_orderable_instance_classes(
        &self,
        cx: &Call<'_>,
        engine: &str,
        version: &str,
    ) -> Result<Vec<String>, PrimitiveError>;
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
    /// A standalone Aurora cluster ([`CreateCluster`]); idempotent (the same cluster, created
    /// like the same instance, is returned).
    fn create_cluster(
        &self,
        cx: &Call<'_>,
        req: &CreateCluster,
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
    /// A copy-on-write clone of an Aurora cluster ([`CloneCluster`]); idempotent (an existing
    /// cluster of that id is returned).
    fn clone_cluster(&self, cx: &Call<'_>, req: &CloneCluster)
    -> Result<DbCluster, PrimitiveError>;
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
    /// One page of the account's DB instances of `engine` (`DescribeDBInstances` with its
    /// `engine` filter, `Marker`, `MaxRecords`), ordered as the world orders them. `max_records`
    /// has passed [`check_max_records`]; a world refuses nothing else. Callers page with
    /// [`list_every_page`], which follows every page.
    fn list_instances(
        &self,
        cx: &Call<'_>,
        engine: &str,
        marker: Option<&str>,
        max_records: u32,
    ) -> Result<InstancePage, PrimitiveError>;
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

// ---------------------------------------------------------------------------------------------
// The contract: rules every world applies. Pure; a world looks up the facts (its model, its
// lab.json and servers, the AWS API) and lets these decide.
// ---------------------------------------------------------------------------------------------

const A: &str = "rds";

/// A DB instance id no instance has.
pub fn instance_not_found(op: &str, id: &str) -> PrimitiveError {
    PrimitiveError::new(
        A,
        op,
        ErrorKind::NotFound,
        format!("DB instance {id} not found (DBInstanceNotFound)"),
        "check the identifier and the world's region (already deleted?)",
    )
}

/// A DB cluster id no cluster has.
pub fn cluster_not_found(op: &str, id: &str) -> PrimitiveError {
    PrimitiveError::new(
        A,
        op,
        ErrorKind::NotFound,
        format!("DB cluster {id} not found (DBClusterNotFoundFault)"),
        "check the identifier and the world's region (already deleted?)",
    )
}

/// A snapshot id no snapshot has.
pub fn snapshot_not_found(op: &str, id: &str) -> PrimitiveError {
    PrimitiveError::new(
        A,
        op,
        ErrorKind::NotFound,
        format!("snapshot {id} not found (DBSnapshotNotFound)"),
        "check the snapshot id",
    )
}

/// A parameter group name no group has.
pub fn parameter_group_not_found(op: &str, group: &str) -> PrimitiveError {
    PrimitiveError::new(
        A,
        op,
        ErrorKind::NotFound,
        format!("parameter group {group} not found (DBParameterGroupNotFound)"),
        "check the group name on the instance (describe_instance(id).parameter_group)",
    )
}

/// The engines godwit migrates between; any other is `Invalid`.
pub fn check_engine(op: &str, engine: &str) -> Result<(), PrimitiveError> {
    match engine {
        "postgres" | "aurora-postgresql" => Ok(()),
        other => Err(PrimitiveError::invalid(
            A,
            op,
            format!("engine {other:?} is not known"),
            "use \"aurora-postgresql\" or \"postgres\"",
        )),
    }
}

/// The parameter group family of `engine` at major version `major`: `postgres15`,
/// `aurora-postgresql15`.
pub fn parameter_group_family(engine: &str, major: u32) -> String {
    if engine == "postgres" {
        format!("postgres{major}")
    } else {
        format!("aurora-postgresql{major}")
    }
}

/// `15.4` → `(15, 4)`; `16` → `(16, 0)`.
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut it = version.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// Engine versions as the trait returns them: oldest first, each once.
pub fn sort_versions(mut versions: Vec<EngineVersion>) -> Vec<EngineVersion> {
    versions.sort_by_key(|v| (v.major, v.minor));
    versions.dedup_by(|a, b| a.version == b.version);
    versions
}

/// RDS events as the trait returns them: oldest first (stable: same-second events keep the
/// order they were recorded in).
pub fn sort_events(mut events: Vec<RdsEvent>) -> Vec<RdsEvent> {
    events.sort_by_key(|e| e.at);
    events
}

/// Do the requested values fit what the family accepts (`AllowedValues`)? Checked before any
/// group is created or changed, so a bad value costs nothing: `Invalid`, naming every value
/// that does not fit and what would. `rule(name)` is the family's rule for a parameter, when the
/// world knows one; formulas and parameters without a rule are not checked.
pub fn check_parameter_values(
    op: &str,
    req: &CreateParameterGroups,
    rule: impl Fn(&str) -> Option<ParameterRule>,
) -> Result<(), PrimitiveError> {
    let mut bad = Vec::new();
    for (k, v) in req.parameters.iter().chain(req.cluster_parameters.iter()) {
        let Some(allowed) = rule(k).and_then(|r| r.allowed_values) else {
            continue;
        };
        if !value_allowed(v, &allowed) {
            bad.push(format!("{k} = {v:?} (allowed: {allowed})"));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort();
    bad.dedup();
    Err(PrimitiveError::invalid(
        "rds",
        op,
        format!(
            "parameters outside what {} accepts: {}",
            req.family,
            bad.join("; ")
        ),
        "change the source's value, or leave it out of the new groups; nothing was created",
    ))
}

/// Whether `value` fits an `AllowedValues` text: a comma list (`off,on`), a numeric range
/// (`0-2147483647`, `-1-65535`), or several ranges (`0-10,20-30`). A formula value
/// (`{DBInstanceClassMemory/9531392}`) is the engine's own and always fits.
pub fn value_allowed(value: &str, allowed: &str) -> bool {
    let value = value.trim();
    if value.starts_with('{') || allowed.trim().is_empty() {
        return true;
    }
    allowed.split(',').map(str::trim).any(|a| {
        if a.eq_ignore_ascii_case(value) {
            return true;
        }
        // A range `lo-hi`, either bound possibly negative: split at a '-' that follows a digit.
        let bytes = a.as_bytes();
        let dash = (1..bytes.len()).find(|&i| bytes[i] == b'-' && bytes[i - 1].is_ascii_digit());
        match (dash, value.parse::<f64>()) {
            (Some(i), Ok(v)) => match (a[..i].parse::<f64>(), a[i + 1..].parse::<f64>()) {
                (Ok(lo), Ok(hi)) => lo <= v && v <= hi,
                _ => false,
            },
            _ => false,
        }
    })
}

/// The Aurora PostgreSQL instance classes (the memory-optimised `db.r*`, `db.x2g`, burstable
/// `db.t3`/`db.t4g` medium and large; no `db.m*`: "Supported DB engines for DB instance
/// classes", Aurora User Guide). A world that cannot ask AWS (the simulator, the lab) orders
/// from this list.
pub fn aurora_postgresql_classes() -> Vec<String> {
    let mut v = Vec::new();
    for family in ["db.r5", "db.r6g", "db.r6i", "db.r7g", "db.r7i", "db.x2g"] {
        for size in [
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ] {
            v.push(format!("{family}.{size}"));
        }
    }
    for family in ["db.t3", "db.t4g"] {
        for size in ["medium", "large"] {
            v.push(format!("{family}.{size}"));
        }
    }
    v.sort();
    v
}

/// An Aurora instance of a class Aurora PostgreSQL does not order is refused, as
/// `CreateDBInstance` refuses it (`InvalidParameterCombination`: "RDS does not support
/// creating a DB instance with the following combination: DBInstanceClass=db.m6g.large,
/// Engine=aurora-postgresql, …"). For the worlds that cannot ask AWS (the simulator, the lab).
pub fn check_aurora_class(op: &str, class: &str, version: &str) -> Result<(), PrimitiveError> {
    if aurora_postgresql_classes().iter().any(|c| c == class) {
        return Ok(());
    }
    Err(PrimitiveError::new(
        "rds",
        op,
        ErrorKind::Invalid,
        format!(
            "RDS does not support creating a DB instance with the following combination: \
             DBInstanceClass={class}, Engine=aurora-postgresql, EngineVersion={version} \
             (InvalidParameterCombination)"
        ),
        "choose a class Aurora PostgreSQL orders (rds::list_orderable_instance_classes; \
         rds::aurora_class_for maps a db.m* class to its db.r* equivalent)",
    ))
}

/// The Aurora class closest to an RDS one: the same one when Aurora orders it, else the
/// memory-optimised class of the same size (`db.m6g.2xlarge` → `db.r6g.2xlarge`), else
/// `None` (say so and let the operator choose).
pub fn aurora_class_for(source_class: &str, orderable: &[String]) -> Option<String> {
    if orderable.iter().any(|c| c == source_class) {
        return Some(source_class.to_string());
    }
    let rest = source_class.strip_prefix("db.")?;
    let (family, size) = rest.split_once('.')?;
    let generation: String = family.chars().skip(1).collect();
    [format!("db.r{generation}.{size}"), format!("db.r6g.{size}")]
        .into_iter()
        .find(|c| orderable.contains(c))
}

/// How long a new DB cluster parameter group rests before a cluster may use it. AWS: "After
/// you create a DB cluster parameter group, wait at least 5 minutes before creating your first
/// DB cluster that uses that DB cluster parameter group" (CreateDBClusterParameterGroup). AWS
/// does not say what happens sooner; the simulator takes the stricter reading and refuses.
pub const PARAMETER_GROUP_SETTLE_SECONDS: i64 = 300;

/// Refuse a cluster that would use `group`, created at `created_at`, before it rested
/// `settle` seconds (`now`: epoch seconds; AWS: [`PARAMETER_GROUP_SETTLE_SECONDS`]).
/// `Conflict`, naming how long is left.
pub fn check_group_settled(
    op: &str,
    group: &str,
    created_at: i64,
    now: i64,
    settle: i64,
) -> Result<(), PrimitiveError> {
    let age = now - created_at;
    if age >= settle {
        return Ok(());
    }
    Err(PrimitiveError::new(
        "rds",
        op,
        ErrorKind::Conflict,
        format!(
            "cluster parameter group {group} was created {age} s ago: AWS asks for {settle} s before a cluster uses it"
        ),
        "wait until it has rested that long (the standard runbook's parameter-groups-settled gate does)",
    )
    .with_retryable(false))
}

/// The parameters a hot standby needs no lower than on its primary (PostgreSQL, "Hot Standby":
/// recovery stops — Aurora reports the instance `incompatible-parameters` — when one is lower).
pub const HOT_STANDBY_PARAMETERS: &[&str] = &[
    "max_connections",
    "max_locks_per_transaction",
    "max_prepared_transactions",
    "max_wal_senders",
    "max_worker_processes",
];

/// Memory of an instance class in bytes, as RDS's `DBInstanceClassMemory` approximates it (the
/// class's memory; RDS subtracts a little for the OS, which only lowers formula values further).
/// `None` for a class this table does not know.
pub fn class_memory_bytes(class: &str) -> Option<u64> {
    let rest = class.strip_prefix("db.")?;
    let (family, size) = rest.split_once('.')?;
    // GiB per vCPU: memory-optimised 8, general purpose 4, x2g 16; burstable by size.
    let per_vcpu: u64 = match family.chars().next()? {
        'r' => 8,
        'm' => 4,
        'x' => 16,
        't' => {
            return match size {
                "micro" => Some(1),
                "small" => Some(2),
                "medium" => Some(4),
                "large" => Some(8),
                "xlarge" => Some(16),
                "2xlarge" => Some(32),
                _ => None,
            }
            .map(|g| g << 30);
        }
        _ => return None,
    };
    let vcpus: u64 = match size {
        "large" => 2,
        "xlarge" => 4,
        other => other.strip_suffix("xlarge")?.parse::<u64>().ok()? * 4,
    };
    Some((vcpus * per_vcpu) << 30)
}

/// vCPUs of an instance class ("DB instance class hardware specifications", RDS User Guide:
/// `large` 2, `xlarge` 4, `Nxlarge` 4·N; every burstable size up to `large` 2). `None` for a
/// class this table does not know.
pub fn class_vcpus(class: &str) -> Option<u32> {
    let rest = class.strip_prefix("db.")?;
    let (family, size) = rest.split_once('.')?;
    if !matches!(family.chars().next()?, 'r' | 'm' | 'x' | 't') {
        return None;
    }
    match size {
        "micro" | "small" | "medium" if family.starts_with('t') => Some(2),
        "large" => Some(2),
        "xlarge" => Some(4),
        other => other
            .strip_suffix("xlarge")?
            .parse::<u32>()
            .ok()
            .map(|n| n * 4),
    }
}

/// The value of a parameter default as the engine computes it for `class`: a number, or a
/// formula RDS uses — `{DBInstanceClassMemory/N}` and `LEAST({DBInstanceClassMemory/N},M)`.
/// `None` when it cannot be computed here.
pub fn evaluate_default(default: &str, class: &str) -> Option<i64> {
    let d = default.trim();
    if let Ok(v) = d.parse::<i64>() {
        return Some(v);
    }
    let memory = |f: &str| -> Option<i64> {
        let n = f
            .trim()
            .strip_prefix("{DBInstanceClassMemory/")?
            .strip_suffix('}')?
            .parse::<u64>()
            .ok()?;
        i64::try_from(class_memory_bytes(class)? / n.max(1)).ok()
    };
    if let Some(inner) = d.strip_prefix("LEAST(").and_then(|r| r.strip_suffix(')')) {
        let (a, b) = inner.split_once("},")?;
        return Some(memory(&format!("{a}}}"))?.min(b.trim().parse().ok()?));
    }
    memory(d)
}

/// The hot-standby parameters whose value on the replica (`replica(name)`, `None` unknown) is
/// lower than on the source (`source(name)`): `name: replica < source` each, sorted.
pub fn hot_standby_shortfalls(
    source: impl Fn(&str) -> Option<i64>,
    replica: impl Fn(&str) -> Option<i64>,
) -> Vec<String> {
    HOT_STANDBY_PARAMETERS
        .iter()
        .filter_map(|p| match (source(p), replica(p)) {
            (Some(s), Some(r)) if r < s => Some(format!("{p}: {r} < {s}")),
            _ => None,
        })
        .collect()
}

/// Where an engine accepts a parameter (a world knows this from the family's engine defaults,
/// its server's settings or its model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// In the DB cluster parameter group.
    Cluster,
    /// In the DB (instance) parameter group.
    Instance,
    /// Nowhere: not carried over, reported as unsupported.
    Neither,
}

/// Which parameters of a [`CreateParameterGroups`] go into which group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub cluster: BTreeMap<String, String>,
    pub instance: BTreeMap<String, String>,
    /// Sorted, each once.
    pub applied: Vec<String>,
    /// Sorted, each once.
    pub unsupported: Vec<String>,
}

impl Placement {
    /// The answer of `create_parameter_groups` once both groups hold what was placed.
    pub fn created(&self, req: &CreateParameterGroups) -> ParameterGroupsCreated {
        ParameterGroupsCreated {
            cluster_group: req.cluster_group.clone(),
            instance_group: req.instance_group.clone(),
            applied: self.applied.clone(),
            unsupported: self.unsupported.clone(),
        }
    }
}

/// Place each requested parameter in exactly one group: a cluster-level one in the cluster
/// group, an instance-level one in the instance group; `cluster_parameters` only in the
/// cluster group (one the engine accepts per instance only is unsupported there). What the
/// engine does not accept is reported, never silently dropped.
pub fn place_parameters(
    req: &CreateParameterGroups,
    accepts: impl Fn(&str) -> Accepts,
) -> Placement {
    let mut p = Placement::default();
    let all = req
        .parameters
        .iter()
        .map(|(k, v)| (k, v, false))
        .chain(req.cluster_parameters.iter().map(|(k, v)| (k, v, true)));
    for (k, v, cluster_only) in all {
        match accepts(k) {
            Accepts::Cluster => {
                p.cluster.insert(k.clone(), v.clone());
            }
            Accepts::Instance if !cluster_only => {
                p.instance.insert(k.clone(), v.clone());
            }
            _ => {
                p.unsupported.push(k.clone());
                continue;
            }
        }
        p.applied.push(k.clone());
    }
    for v in [&mut p.applied, &mut p.unsupported] {
        v.sort();
        v.dedup();
    }
    p.unsupported.retain(|k| !p.applied.contains(k));
    p
}

/// A parameter group as it exists.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingGroup {
    pub family: String,
    /// A DB cluster parameter group (else a DB parameter group).
    pub cluster: bool,
    /// Its user-set parameters (not the engine defaults).
    pub parameters: BTreeMap<String, String>,
}

/// What makes a parameter group hold what was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupPlan {
    /// Create it, then set every parameter.
    Create,
    /// It exists; set these (empty: nothing to do). A group created by a run that crashed
    /// before setting its parameters lacks some: the re-run sets them.
    Set(BTreeMap<String, String>),
}

/// `create_parameter_groups`, one group: idempotent for the same request (a re-run converges,
/// also after a crash between creating the group and setting its parameters); a group that
/// exists with another kind or family, or with a user-set parameter the request does not set
/// or sets differently, belongs to something else: `Conflict`, naming the group, the differing
/// parameters and the fix.
pub fn plan_parameter_group(
    op: &str,
    name: &str,
    cluster: bool,
    family: &str,
    want: &BTreeMap<String, String>,
    existing: Option<&ExistingGroup>,
) -> Result<GroupPlan, PrimitiveError> {
    let Some(e) = existing else {
        return Ok(GroupPlan::Create);
    };
    let kind = |c: bool| {
        if c {
            "a DB cluster parameter group"
        } else {
            "a DB parameter group"
        }
    };
    let fix = "choose other group names (target_cluster), or delete the old group";
    if e.cluster != cluster {
        return Err(conflict(
            op,
            format!(
                "parameter group {name} exists as {}, not {}",
                kind(e.cluster),
                kind(cluster)
            ),
            fix,
        ));
    }
    if e.family != family {
        return Err(conflict(
            op,
            format!(
                "parameter group {name} exists with family {}, not {family}",
                e.family
            ),
            fix,
        ));
    }
    let differing: Vec<String> = e
        .parameters
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(*v))
        .map(|(k, v)| match want.get(k) {
            Some(w) => format!("{k} = {v} (wanted {w})"),
            None => format!("{k} = {v} (not requested)"),
        })
        .collect();
    if !differing.is_empty() {
        return Err(conflict(
            op,
            format!(
                "parameter group {name} exists with other settings: {}",
                differing.join(", ")
            ),
            format!("{fix} (it may belong to another migration)"),
        ));
    }
    Ok(GroupPlan::Set(
        want.iter()
            .filter(|(k, _)| !e.parameters.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

/// One group's share of a `create_parameter_groups`, once both groups passed
/// [`plan_parameter_group`]: create it (or not), then set `set` in it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWork<'a> {
    pub name: &'a str,
    pub cluster: bool,
    pub create: bool,
    pub set: BTreeMap<String, String>,
}

/// Plan both groups of `req` as `placed`, looking each up with `existing(name, cluster)`:
/// both are checked before either is touched, so a conflict in the second changes nothing.
pub fn plan_parameter_groups<'a>(
    op: &str,
    req: &'a CreateParameterGroups,
    placed: &Placement,
    mut existing: impl FnMut(&str, bool) -> Result<Option<ExistingGroup>, PrimitiveError>,
) -> Result<[GroupWork<'a>; 2], PrimitiveError> {
    let mut plan = |name: &'a String, cluster: bool, want: &BTreeMap<String, String>| {
        let found = existing(name, cluster)?;
        let plan = plan_parameter_group(op, name, cluster, &req.family, want, found.as_ref())?;
        Ok::<_, PrimitiveError>(match plan {
            GroupPlan::Create => GroupWork {
                name,
                cluster,
                create: true,
                set: want.clone(),
            },
            GroupPlan::Set(set) => GroupWork {
                name,
                cluster,
                create: false,
                set,
            },
        })
    };
    Ok([
        plan(&req.cluster_group, true, &placed.cluster)?,
        plan(&req.instance_group, false, &placed.instance)?,
    ])
}

/// `create_parameter_groups` takes Aurora PostgreSQL families only.
pub fn check_aurora_family(op: &str, family: &str) -> Result<(), PrimitiveError> {
    if family.starts_with("aurora-postgresql") {
        return Ok(());
    }
    Err(PrimitiveError::invalid(
        A,
        op,
        format!("family {family:?} is not an Aurora PostgreSQL family"),
        "use the target version's parameter_group_family, e.g. aurora-postgresql15",
    ))
}

/// Whether `cluster` replicates from `src` (RDS names the source by ARN; the id is accepted
/// too).
pub fn replicates_from(cluster: &DbCluster, src: &DbInstance) -> bool {
    cluster
        .replication_source_identifier
        .as_deref()
        .is_some_and(|s| s == src.arn || s == src.id)
}

/// `create_replica_cluster` finding `existing` under the requested id: the same replica (a
/// re-run: return it), or someone else's cluster (`Conflict`).
pub fn existing_replica(
    op: &str,
    src: &DbInstance,
    existing: Option<DbCluster>,
) -> Result<Option<DbCluster>, PrimitiveError> {
    match existing {
        None => Ok(None),
        Some(c) if replicates_from(&c, src) => Ok(Some(c)),
        Some(c) => Err(conflict(
            op,
            format!(
                "DB cluster {} already exists and does not replicate from {} (source: {}) \
                 (DBClusterAlreadyExistsFault)",
                c.id,
                src.id,
                c.replication_source_identifier.as_deref().unwrap_or("none")
            ),
            "choose another cluster id (target_cluster), or delete the existing cluster",
        )),
    }
}

/// `create_cluster` finding `existing` under the requested id: a standalone cluster of the
/// requested version is a re-run (returned); a replica, or another version, is someone else's
/// (`Conflict`).
pub fn existing_standalone(
    op: &str,
    req: &CreateCluster,
    existing: Option<DbCluster>,
) -> Result<Option<DbCluster>, PrimitiveError> {
    match existing {
        None => Ok(None),
        Some(c)
            if c.replication_source_identifier.is_none()
                && c.engine_version == req.engine_version =>
        {
            Ok(Some(c))
        }
        Some(c) => Err(conflict(
            op,
            format!(
                "DB cluster {} already exists ({} {}{}) (DBClusterAlreadyExistsFault)",
                c.id,
                c.engine,
                c.engine_version,
                c.replication_source_identifier
                    .as_deref()
                    .map(|s| format!(", replicating from {s}"))
                    .unwrap_or_default()
            ),
            "choose another cluster id (target_cluster), or delete the existing cluster",
        )),
    }
}

/// What a logical target of `src` may run: Aurora PostgreSQL of the instance's major or a newer
/// one. Logical replication crosses majors, but godwit never moves a database to an older
/// major (its dumps and catalogs are not made for that).
pub fn check_logical_version(
    op: &str,
    req: &CreateCluster,
    src: &DbInstance,
) -> Result<(), PrimitiveError> {
    match (
        major_minor(&src.engine_version),
        major_minor(&req.engine_version),
    ) {
        (Some(s), Some(t)) if t.0 >= s.0 => Ok(()),
        _ => Err(PrimitiveError::invalid(
            A,
            op,
            format!(
                "Aurora PostgreSQL {} for {} ({} {}): a logical target runs the source's major \
                 or a newer one",
                req.engine_version, src.id, src.engine, src.engine_version
            ),
            "pick a version of the same or a newer major (rds::list_engine_versions(\"aurora-postgresql\"))",
        )),
    }
}

/// What a new Aurora replica of `src` needs: automated backups on, no other Aurora replica,
/// and an Aurora version of the same major, minor at least the source's.
pub fn check_replica_source(
    op: &str,
    req: &CreateReplicaCluster,
    src: &DbInstance,
) -> Result<(), PrimitiveError> {
    if src.backup_retention_days == 0 {
        return Err(PrimitiveError::invalid(
            A,
            op,
            format!("source {} has automated backups disabled", src.id),
            "set backup retention > 0 on the source (ModifyDBInstance) before creating a replica",
        ));
    }
    if let Some(other) = src.replica_clusters.iter().find(|r| **r != req.cluster_id) {
        return Err(conflict(
            op,
            format!(
                "source {} already has an Aurora read replica ({other})",
                src.id
            ),
            "an RDS instance can have one Aurora replica; delete the old one first",
        ));
    }
    let compatible = match (
        major_minor(&src.engine_version),
        major_minor(&req.engine_version),
    ) {
        (Some(s), Some(t)) => s.0 == t.0 && t.1 >= s.1,
        _ => false,
    };
    if !compatible {
        return Err(incompatible_version(op, req, src));
    }
    Ok(())
}

/// The requested Aurora version cannot replicate from `src` (another major, a lower minor,
/// or one the world does not offer).
pub fn incompatible_version(
    op: &str,
    req: &CreateReplicaCluster,
    src: &DbInstance,
) -> PrimitiveError {
    PrimitiveError::invalid(
        A,
        op,
        format!(
            "Aurora version {} cannot replicate from RDS {} {}",
            req.engine_version, src.id, src.engine_version
        ),
        "pick an Aurora version of the same major, minor >= the source's \
         (list_engine_versions(\"aurora-postgresql\"))",
    )
}

/// `create_cluster_instance` finding `existing` under the requested id: a member of the
/// requested cluster (a re-run: return it), or another instance (`Conflict`).
pub fn existing_member(
    op: &str,
    req: &CreateClusterInstance,
    existing: Option<DbInstance>,
) -> Result<Option<DbInstance>, PrimitiveError> {
    match existing {
        None => Ok(None),
        Some(i) if i.cluster_id.as_deref() == Some(req.cluster_id.as_str()) => Ok(Some(i)),
        Some(i) => Err(conflict(
            op,
            format!(
                "DB instance {} already exists outside cluster {} (DBInstanceAlreadyExists)",
                i.id, req.cluster_id
            ),
            "choose another instance id",
        )),
    }
}

/// `set_security_groups`: `false` when the instance already has exactly these groups (in any
/// order: nothing to do); `Invalid` for none; `Conflict` when the instance is not available.
pub fn security_groups_change(
    op: &str,
    inst: &DbInstance,
    groups: &[String],
) -> Result<bool, PrimitiveError> {
    let have: std::collections::BTreeSet<&String> = inst.security_groups.iter().collect();
    if have == groups.iter().collect() {
        return Ok(false);
    }
    if groups.is_empty() {
        return Err(PrimitiveError::invalid(
            A,
            op,
            "an instance needs at least one security group".to_string(),
            "pass the quarantine group from ec2::ensure_quarantine_group",
        ));
    }
    if inst.status != "available" {
        return Err(conflict(
            op,
            format!(
                "instance {} is {} (InvalidDBInstanceState)",
                inst.id, inst.status
            ),
            "wait until it is available (rds::wait_until_instance_available)",
        ));
    }
    Ok(true)
}

/// What `reboot_instance` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reboot {
    /// This token's reboot happened: nothing (a re-run of the step).
    Done,
    /// A reboot is under way without the token recorded (an attempt whose record was lost):
    /// record the token, do not reboot again.
    Record,
    /// Reboot now, and record the token.
    Reboot,
}

/// `reboot_instance` with the step's idempotency `token`: `token_seen` says the world has
/// recorded it for this instance.
pub fn reboot(op: &str, inst: &DbInstance, token_seen: bool) -> Result<Reboot, PrimitiveError> {
    if token_seen {
        return Ok(Reboot::Done);
    }
    match inst.status.as_str() {
        "available" => Ok(Reboot::Reboot),
        "rebooting" => Ok(Reboot::Record),
        other => Err(conflict(
            op,
            format!("instance {} is {other} (InvalidDBInstanceState)", inst.id),
            "wait until it is available, then reboot",
        )
        .with_retryable(true)),
    }
}

/// What `promote_cluster` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// Promoted already, or promoting: return the cluster as it is.
    Nothing,
    /// Ask for the promotion.
    Request,
}

/// `promote_cluster`: a promoted cluster (no replication source) or one promoting needs
/// nothing; only an `available` replica can be promoted (`Conflict` otherwise).
pub fn promotion(op: &str, c: &DbCluster) -> Result<Promotion, PrimitiveError> {
    if c.replication_source_identifier.is_none() || c.status == "promoting" {
        return Ok(Promotion::Nothing);
    }
    if c.status != "available" {
        return Err(conflict(
            op,
            format!(
                "cluster {} is {} (InvalidDBClusterStateFault)",
                c.id, c.status
            ),
            "wait until the replica is available before promoting",
        ));
    }
    Ok(Promotion::Request)
}

/// A promotion is complete when the cluster no longer names a replication source **and** is
/// `available` (status alone reads `available` before the promotion shows).
pub fn promoted(c: &DbCluster) -> bool {
    c.replication_source_identifier.is_none() && c.status == "available"
}

/// `delete_instance`: `true` when it is being deleted already (return it); `Conflict` while an
/// Aurora cluster replicates from it (promote or delete the replica first).
pub fn deleting_instance(op: &str, inst: &DbInstance) -> Result<bool, PrimitiveError> {
    if inst.status == "deleting" {
        return Ok(true);
    }
    if !inst.replica_clusters.is_empty() {
        return Err(conflict(
            op,
            format!(
                "{} is the replication source of {}",
                inst.id,
                inst.replica_clusters.join(", ")
            ),
            "promote or delete the replica cluster first",
        ));
    }
    Ok(false)
}

/// `delete_cluster`: `true` when it is being deleted already (return it); `Conflict` while
/// `live_members` (members not being deleted) remain.
pub fn deleting_cluster(
    op: &str,
    c: &DbCluster,
    live_members: &[String],
) -> Result<bool, PrimitiveError> {
    if c.status == "deleting" {
        return Ok(true);
    }
    if !live_members.is_empty() {
        return Err(conflict(
            op,
            format!(
                "cluster {} still has instances: {}",
                c.id,
                live_members.join(", ")
            ),
            "delete the instances first (rds::delete_instance), then the cluster",
        ));
    }
    Ok(false)
}

/// `create_snapshot` finding `existing` under the requested id: of the same instance (return
/// it), or of another (`Conflict`).
pub fn existing_snapshot(
    op: &str,
    instance_id: &str,
    existing: Option<Snapshot>,
) -> Result<Option<Snapshot>, PrimitiveError> {
    match existing {
        None => Ok(None),
        Some(s) if s.source_id == instance_id => Ok(Some(s)),
        Some(s) => Err(conflict(
            op,
            format!("snapshot {} exists for {}", s.id, s.source_id),
            "choose another snapshot id",
        )),
    }
}

/// `restore_cluster_from_snapshot` needs an available snapshot (retryable `Conflict` while it
/// is being created).
pub fn check_restorable(op: &str, snap: &Snapshot) -> Result<(), PrimitiveError> {
    if snap.status == "available" {
        return Ok(());
    }
    Err(conflict(
        op,
        format!("snapshot {} is {}", snap.id, snap.status),
        "wait until it is available (rds::wait_until_snapshot_available)",
    )
    .with_retryable(true))
}

// ---------------------------------------------------------------------------------------------
// Listing the account: paging and tags.
// ---------------------------------------------------------------------------------------------

/// The only engine an account listing returns: godwit migrates RDS for PostgreSQL instances, so
/// MySQL, Oracle, ... and Aurora cluster members (`aurora-postgresql`) are never inventory.
pub const LISTED_ENGINE: &str = "postgres";

/// `MaxRecords` of `DescribeDBInstances`: "Default: 100. Constraints: Minimum 20, maximum 100."
/// (<https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBInstances.html>).
pub const MAX_RECORDS_MIN: u32 = 20;
pub const MAX_RECORDS_MAX: u32 = 100;

/// A page size AWS accepts, or `Invalid` as AWS answers (`InvalidParameterValue`) — checked in
/// every world, so the simulator and the lab refuse what AWS refuses.
pub fn check_max_records(op: &str, n: i64) -> Result<u32, PrimitiveError> {
    if (MAX_RECORDS_MIN as i64..=MAX_RECORDS_MAX as i64).contains(&n) {
        Ok(n as u32)
    } else {
        Err(PrimitiveError::invalid(
            A,
            op,
            format!(
                "page_size {n} is out of range (InvalidParameterValue: MaxRecords must be \
                 {MAX_RECORDS_MIN}..{MAX_RECORDS_MAX})"
            ),
            format!(
                "use a page size from {MAX_RECORDS_MIN} to {MAX_RECORDS_MAX}, or leave it out (100)"
            ),
        ))
    }
}

/// Which instances a listing keeps: all, those carrying tag `key`, or those whose `key` is
/// `value`. Tags cannot be filtered server-side by `DescribeDBInstances` (its filters are
/// `db-cluster-id`, `db-instance-id`, `dbi-resource-id`, `domain` and `engine`), so every world
/// lists every page and applies this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagFilter {
    pub key: Option<String>,
    pub value: Option<String>,
}

impl TagFilter {
    /// A filter AWS's tag rules allow (a key of 1 to 128 characters, a value of at most 256),
    /// and a value only with its key; `Invalid` naming the fix otherwise.
    pub fn new(
        op: &str,
        key: Option<String>,
        value: Option<String>,
    ) -> Result<TagFilter, PrimitiveError> {
        let bad = |what: String, fix: &str| Err(PrimitiveError::invalid(A, op, what, fix));
        match (&key, &value) {
            (None, Some(v)) => {
                return bad(
                    format!("value {v:?} without a tag"),
                    "give the tag's key too: #{ tag: \"godwit:fleet\", value: \"payments\" }",
                );
            }
            (Some(k), _) if k.trim().is_empty() => {
                return bad(
                    "the tag is empty".into(),
                    "name a tag key, e.g. \"godwit:fleet\", or leave the tag out to list every instance",
                );
            }
            (Some(k), _) if k.chars().count() > 128 => {
                return bad(
                    format!("tag {k:?} is longer than 128 characters"),
                    "AWS tag keys are 1 to 128 characters",
                );
            }
            (_, Some(v)) if v.chars().count() > 256 => {
                return bad(
                    format!("value {v:?} is longer than 256 characters"),
                    "AWS tag values are at most 256 characters",
                );
            }
            _ => {}
        }
        Ok(TagFilter { key, value })
    }

    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match (&self.key, &self.value) {
            (None, _) => true,
            (Some(k), None) => tags.contains_key(k),
            (Some(k), Some(v)) => tags.get(k) == Some(v),
        }
    }
}

impl std::fmt::Display for TagFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.key, &self.value) {
            (None, _) => write!(f, "any tags"),
            (Some(k), None) => write!(f, "tag {k}"),
            (Some(k), Some(v)) => write!(f, "tag {k}={v}"),
        }
    }
}

/// Every `postgres` instance of the account that `filter` keeps, sorted by id: every page
/// followed (`page_size` each, from [`check_max_records`]), the engine and the tags checked here
/// again whatever the world did. A marker that comes back twice is the world's bug, not a loop.
pub fn list_every_page(
    cx: &Call<'_>,
    rds: &dyn Rds,
    op: &str,
    filter: &TagFilter,
    page_size: u32,
) -> Result<Vec<InstanceSummary>, PrimitiveError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    let mut seen_markers = std::collections::BTreeSet::new();
    loop {
        let page = rds.list_instances(cx, LISTED_ENGINE, marker.as_deref(), page_size)?;
        if page.instances.len() > page_size as usize {
            return Err(PrimitiveError::new(
                A,
                op,
                ErrorKind::Internal,
                format!(
                    "a page of {} instances for MaxRecords {page_size}",
                    page.instances.len()
                ),
                "this is a bug in the world's listing",
            ));
        }
        out.extend(
            page.instances
                .into_iter()
                .filter(|i| i.engine == LISTED_ENGINE && filter.matches(&i.tags)),
        );
        marker = page.marker.filter(|m| !m.is_empty());
        match &marker {
            None => break,
            Some(m) if !seen_markers.insert(m.clone()) => {
                return Err(PrimitiveError::new(
                    A,
                    op,
                    ErrorKind::Internal,
                    format!("the listing returned marker {m:?} twice"),
                    "this is a bug in the world's paging",
                ));
            }
            Some(_) => {}
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.dedup_by(|a, b| a.id == b.id);
    Ok(out)
}

/// One page of `items` (sorted by id) after `marker`, as a world without AWS's own paging
/// serves it: at most `max_records`, and the marker of the next page (the last id served)
/// when more remain.
pub fn page_after(
    items: Vec<InstanceSummary>,
    marker: Option<&str>,
    max_records: u32,
) -> InstancePage {
    let mut rest: Vec<InstanceSummary> = items
        .into_iter()
        .filter(|i| marker.is_none_or(|m| i.id.as_str() > m))
        .collect();
    rest.sort_by(|a, b| a.id.cmp(&b.id));
    let more = rest.len() > max_records as usize;
    rest.truncate(max_records as usize);
    InstancePage {
        marker: more.then(|| rest.last().map(|i| i.id.clone())).flatten(),
        instances: rest,
    }
}

fn conflict(op: &str, message: String, hint: impl Into<String>) -> PrimitiveError {
    PrimitiveError::new(A, op, ErrorKind::Conflict, message, hint)
}

#[cfg(test)]
mod tests;
