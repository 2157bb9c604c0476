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
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            backup_retention_days: 7,
            storage_encrypted: false,
            instance_class: "db.lab.local".into(),
            vpc_id: "vpc-lab".into(),
            iam_auth: true,
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

    /// The instance serving `db`: the instance itself, or a cluster's writer.
    pub fn serving(&self, db: &str) -> Option<&Instance> {
        if let Some(i) = self.instances.get(db) {
            return Some(i);
        }
        let c = self.clusters.get(db)?;
        c.members.first().and_then(|m| self.instances.get(m))
    }

    /// Every pid the lab started that may still run (servers, Envoy, consumers).
    pub fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.instances.values().filter_map(|i| i.pid).collect();
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

    pub fn arn(&self, id: &str) -> String {
        let kind = if self.clusters.contains_key(id) {
            "cluster"
        } else {
            "db"
        };
        format!("arn:aws:rds:lab:000000000000:{kind}:{id}")
    }
}
