//! `lab.json`: what a lab is made of — servers (by data directory, port and pid), the RDS-shaped
//! objects the runbook sees (instances, clusters, security and parameter groups), Envoy and the
//! control plane's addresses, CDC consumers. Every process that acts on the lab (the
//! supervisor, `godwit run`, `godwit resume`, the REPL) reads it; mutations hold an exclusive
//! lock on `lab.lock`, re-read, change and rename a new file into place, so a reader never sees
//! half a file and a process killed mid-write leaves the previous state.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::pgproc::{PgBin, Server, ServerSpec, ServerUser};

pub const STATE_FILE: &str = "lab.json";
const LOCK_FILE: &str = "lab.lock";
pub const FORMAT_VERSION: u32 = 1;
/// The lab's application security group (its VPC's default): admits the application.
pub const APP_GROUP: &str = "sg-lab-app";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub format: u32,
    pub dir: PathBuf,
    pub bin: PgBin,
    pub user: Option<ServerUser>,
    /// The RDS instance id of the source, e.g. `orders-db`; also the route's name.
    pub source: String,
    /// The application's role and database (the workload writes as this role).
    pub app_role: String,
    pub app_db: String,
    /// The pid of the process that started the lab and serves the control plane and the
    /// metric sampler (`godwit lab up`, a test, `godwit demo --world lab`).
    pub supervisor_pid: u32,
    pub instances: BTreeMap<String, Instance>,
    pub clusters: BTreeMap<String, Cluster>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub parameter_groups: BTreeMap<String, ParameterGroup>,
    pub route: RouteInfo,
    pub cdc: BTreeMap<String, Consumer>,
    /// RDS attributes the lab has no equivalent for, reported as configured here (see
    /// docs/lab.md), so preflight checks them like on RDS.
    pub attributes: Attributes,
    /// RDS events (`rds::describe_events`), oldest first, worded as RDS words them.
    #[serde(default)]
    pub events: Vec<godwit_stdlib::rds::RdsEvent>,
    /// Rows seeded into `orders`, and accounts into the TPC-B tables (the workloads' data).
    #[serde(default = "default_seed_rows")]
    pub seed_rows: i64,
    /// DB snapshots: base backups of an instance's server, by id.
    #[serde(default)]
    pub snapshots: BTreeMap<String, Snapshot>,
}

/// A DB snapshot: a base backup (`pg_basebackup -X stream`, no slot, no standby
/// configuration) of an instance's server in `path`; restored by copying it into a new
/// cluster's data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub source_id: String,
    /// `creating` (the copy is under way, or was interrupted) or `available`.
    pub status: String,
    pub path: PathBuf,
    /// What the backup holds, bytes.
    pub bytes: u64,
    /// The `pg_basebackup` writing it while `creating`, recorded as soon as it is spawned.
    pub basebackup_pid: Option<u32>,
    /// The binaries of the server it copies, when not the lab's own ([`Cluster::bin`]): a
    /// cluster restored from it runs them.
    #[serde(default)]
    pub bin: Option<PgBin>,
}

fn default_seed_rows() -> i64 {
    10_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    pub backup_retention_days: u32,
    pub storage_encrypted: bool,
    pub instance_class: String,
    pub vpc_id: String,
    /// The source's IAM database authentication flag.
    #[serde(default = "yes")]
    pub iam_auth: bool,
    /// How soon a replica's walreceiver tries again after losing its source (a reboot of the
    /// source): the replicas' `wal_retrieve_retry_interval`, milliseconds. PostgreSQL's
    /// default is 5 s; Aurora neither documents nor lets one set its own (docs/lab.md).
    #[serde(default = "default_replica_retry_ms")]
    pub replica_retry_ms: u64,
    /// Each instance's storage allocation (`AllocatedStorage`, GiB). `FreeStorageSpace` is
    /// this minus what the instance's data directory uses — the instance's own disk, not the
    /// host's (a build filling the host's disk does not fill a lab instance).
    #[serde(default = "default_allocated_storage_gb")]
    pub allocated_storage_gb: u64,
    /// Whether the runbook may reach the lab's databases with SQL (`pg::`, `validate::`).
    /// Off: the lab is credential-less, like the aws world without `db_user` — `pg::access`
    /// says so and every other `pg::`/`validate::` call is refused without a connection, while
    /// RDS's own work (the sampler, the heartbeat, the areas' SQL as `rdsadmin`) goes on.
    #[serde(default = "yes")]
    pub db_access: bool,
    /// How often RDS's heartbeat updates `rdsadmin.rds_heartbeat2` on each source instance,
    /// milliseconds (`None`: no heartbeat). With `archive_timeout` it makes an idle source's
    /// slot lag saw-tooth by one segment (docs/lab.md).
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
}

fn default_allocated_storage_gb() -> u64 {
    // RDS's smallest gp3 allocation.
    20
}

fn default_replica_retry_ms() -> u64 {
    5_000
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            backup_retention_days: 7,
            storage_encrypted: false,
            // A class Aurora PostgreSQL orders, so the lab's Aurora refuses what AWS refuses
            // (rds::check_aurora_class); the servers are sized by this machine, not by it.
            instance_class: "db.r6g.large".into(),
            vpc_id: "vpc-lab".into(),
            iam_auth: true,
            replica_retry_ms: default_replica_retry_ms(),
            allocated_storage_gb: default_allocated_storage_gb(),
            db_access: true,
            heartbeat_ms: None,
        }
    }
}

/// An "RDS instance": the source primary, or a cluster's writer instance. Its server runs on
/// `spec` at `port`; `pid` is the postmaster's while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    /// `postgres` (the source) or `aurora-postgresql` (a cluster member).
    pub engine: String,
    pub cluster: Option<String>,
    pub port: u16,
    pub spec: ServerSpec,
    pub pid: Option<u32>,
    /// `available`, `rebooting`, `modifying`, `stopped`, `deleting`.
    pub status: String,
    pub security_groups: Vec<String>,
    pub parameter_group: String,
    /// Idempotency tokens of reboots already done.
    pub reboots: Vec<String>,
    /// The operation on this instance's server in flight: recorded before it acts, cleared
    /// when it completes. A process killed in the middle leaves it here, and whoever takes the
    /// instance's [`OpLock`] next finishes it (the step run again on `resume`, or the
    /// supervisor, which completes an accepted operation as RDS does on its own).
    #[serde(default)]
    pub op: Option<InstanceOp>,
    /// Its tags (`TagList`): what `rds::list_instances` and fleet discovery read.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An instance operation recorded before it acts (see [`Instance::op`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum InstanceOp {
    /// `create_cluster_instance`: the server on its cluster's data directory is started.
    Create,
    /// `reboot_instance` with `token`: the server that ran before (`old_pid`) is stopped and
    /// the server started again on the same port.
    Reboot { token: String, old_pid: Option<u32> },
}

impl Instance {
    pub fn server(&self) -> Option<Server> {
        self.pid.map(|pid| Server {
            pid,
            port: self.port,
            spec: self.spec.clone(),
        })
    }
}

/// An "Aurora cluster": a streaming replica's data directory (its writer instance runs it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    /// The source instance while the cluster replicates from it; `None` once promoted.
    pub replication_source: Option<String>,
    /// The physical slot on the source `pg_basebackup -C -S` created.
    pub slot: String,
    pub data: PathBuf,
    /// `creating`, `available`, `promoting`, `deleting`.
    pub status: String,
    pub members: Vec<String>,
    pub parameter_group: String,
    pub engine_version: String,
    pub promote_requested: bool,
    /// IAM database authentication enabled at creation (`EnableIAMDatabaseAuthentication`).
    #[serde(default = "yes")]
    pub iam_auth: bool,
    /// The process building the data directory while the cluster is `creating` — the
    /// `pg_basebackup` copying it, or the server seeding a cluster created empty — recorded as
    /// soon as it is spawned.
    #[serde(default)]
    pub basebackup_pid: Option<u32>,
    /// The snapshot a restored cluster was made from (it never replicated); a clone's or an
    /// empty cluster's origin, under a prefix (`crate::areas`).
    #[serde(default)]
    pub restored_from: Option<String>,
    /// The PostgreSQL binaries its servers run when they are not the lab's own
    /// ([`LabState::bin`]): a cluster created empty of a newer major (`rds::create_cluster`),
    /// and its clones and snapshots. Recorded with the cluster, so whoever starts its server
    /// later (a reboot, a resumed run, the supervisor completing an interrupted start) runs
    /// these, whatever its environment says. `None` (every cluster copied from the source):
    /// the lab's own.
    #[serde(default)]
    pub bin: Option<PgBin>,
    /// The security groups a cluster created empty was created into (the request's, else
    /// those of the instance it replaces), which its writer takes. `None`: its writer takes
    /// those of its kind (`LabRds::create_cluster_instance`).
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    /// Empty: deny-all (the quarantine). The lab admits the application role only through a
    /// group with ingress.
    pub ingress: Vec<String>,
    /// `all to 0.0.0.0/0` (the application's group, EC2's default), `tcp/N to sg-…`
    /// (`ec2::allow_connection`), or none (the quarantine): what a server in the group may
    /// connect to — a subscription's connection to its publisher (`LabConnector::may_connect`).
    /// A lab recorded before egress was modelled reads none: stricter, never kinder.
    #[serde(default)]
    pub egress: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterGroup {
    pub name: String,
    pub family: String,
    /// A DB cluster parameter group (else a DB parameter group).
    #[serde(default)]
    pub cluster: bool,
    pub parameters: BTreeMap<String, String>,
    /// When it was created (epoch seconds; 0 for the lab's own).
    #[serde(default)]
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// Where clients connect (Envoy's listener).
    pub listen_port: u16,
    /// Where the application's readers connect: route `<source>-read` (0: a lab from before).
    #[serde(default)]
    pub read_listen_port: u16,
    /// ADS (gRPC) and the management API of the control plane the supervisor serves.
    pub xds_port: u16,
    pub api_port: u16,
    pub envoy_admin_port: u16,
    pub envoy_pid: Option<u32>,
}

/// A CDC consumer: `pg_recvlogical` reading a logical slot into a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    pub name: String,
    pub slot: String,
    pub plugin: String,
    /// The instance or cluster it reads from.
    pub db: String,
    pub pid: Option<u32>,
    /// `running` or `paused`.
    pub state: String,
    pub output: PathBuf,
}

impl LabState {
    pub fn load(dir: &Path) -> Result<LabState, LabError> {
        let path = dir.join(STATE_FILE);
        let text = fs::read_to_string(&path).map_err(|e| {
            LabError::State(format!(
                "no lab at {} ({e}); start one with `godwit lab up` (or pass --world lab:DIR for another lab directory)",
                dir.display()
            ))
        })?;
        let st: LabState = serde_json::from_str(&text).map_err(|e| {
            LabError::State(format!(
                "{} is damaged or from another godwit version ({e}); stop the lab with `godwit lab down --force` and start a new one",
                path.display()
            ))
        })?;
        if st.format != FORMAT_VERSION {
            return Err(LabError::State(format!(
                "{} has format {} (this godwit reads {FORMAT_VERSION}); `godwit lab down --force`, then `godwit lab up`",
                path.display(),
                st.format
            )));
        }
        Ok(st)
    }

    /// Write atomically (temp file + rename).
    pub fn save(&self) -> Result<(), LabError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let text =
            serde_json::to_string_pretty(self).map_err(|e| LabError::State(e.to_string()))?;
        fs::write(&tmp, text)
            .and_then(|_| fs::rename(&tmp, &path))
            .map_err(|e| LabError::Io(format!("write {}: {e}", path.display())))
    }

    /// Under the lab's lock: re-read, apply `f`, save. `f`'s error leaves the file unchanged.
    pub fn update<T>(
        dir: &Path,
        f: impl FnOnce(&mut LabState) -> Result<T, LabError>,
    ) -> Result<T, LabError> {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| LabError::Io(format!("lock {}: {e}", dir.display())))?;
        lock.lock()
            .map_err(|e| LabError::Io(format!("lock {}: {e}", dir.display())))?;
        let mut st = LabState::load(dir)?;
        let out = f(&mut st)?;
        st.save()?;
        Ok(out)
    }

    /// The binaries `inst`'s server runs: its cluster's ([`Cluster::bin`]), else the lab's own.
    pub fn bin_of(&self, inst: &Instance) -> &PgBin {
        inst.cluster
            .as_ref()
            .and_then(|c| self.clusters.get(c))
            .and_then(|c| c.bin.as_ref())
            .unwrap_or(&self.bin)
    }

    /// `bin` as a cluster or snapshot records it: `None` for the lab's own ([`Cluster::bin`]).
    pub fn bin_record(&self, bin: &PgBin) -> Option<PgBin> {
        (*bin != self.bin).then(|| bin.clone())
    }

    /// The instance serving `db`: the instance itself, or a cluster's writer.
    pub fn serving(&self, db: &str) -> Option<&Instance> {
        if let Some(i) = self.instances.get(db) {
            return Some(i);
        }
        let c = self.clusters.get(db)?;
        c.members.first().and_then(|m| self.instances.get(m))
    }

    /// Every pid the lab started that may still run (servers, Envoy, consumers, a
    /// `pg_basebackup` copying a cluster).
    pub fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.instances.values().filter_map(|i| i.pid).collect();
        v.extend(self.clusters.values().filter_map(|c| c.basebackup_pid));
        v.extend(self.snapshots.values().filter_map(|s| s.basebackup_pid));
        v.extend(self.cdc.values().filter_map(|c| c.pid));
        v.extend(self.route.envoy_pid);
        v
    }

    /// Record an RDS event of an instance (`cluster` false) or a cluster, stamped now.
    pub fn event(&mut self, id: &str, cluster: bool, message: &str) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.events.push(godwit_stdlib::rds::RdsEvent {
            at,
            source_id: id.to_string(),
            source_type: if cluster { "db-cluster" } else { "db-instance" }.into(),
            message: message.to_string(),
        });
    }

    /// Instances with an operation in flight ([`Instance::op`]).
    pub fn pending_ops(&self) -> Vec<String> {
        self.instances
            .values()
            .filter(|i| i.op.is_some())
            .map(|i| i.id.clone())
            .collect()
    }

    pub fn arn(&self, id: &str) -> String {
        let kind = if self.clusters.contains_key(id) {
            "cluster"
        } else {
            "db"
        };
        format!("arn:aws:rds:lab:000000000000:{kind}:{id}")
    }
}

/// The lock on one lab object's operations (`locks/<id>.lock`, `flock`): held for the whole of
/// a mutation of that instance or cluster (start, reboot, basebackup), so two processes never
/// act on one server at once. The kernel drops it when its holder dies, so a free lock on an
/// object with an operation recorded means that operation was interrupted.
#[derive(Debug)]
pub struct OpLock {
    _file: fs::File,
}

impl OpLock {
    /// Take the lock on `id` if no one holds it.
    pub fn try_take(dir: &Path, id: &str) -> Result<Option<OpLock>, LabError> {
        let locks = dir.join("locks");
        fs::create_dir_all(&locks)
            .map_err(|e| LabError::Io(format!("create {}: {e}", locks.display())))?;
        let path = locks.join(format!("{id}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LabError::Io(format!("lock {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(OpLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                Err(LabError::Io(format!("lock {}: {e}", path.display())))
            }
        }
    }
}
