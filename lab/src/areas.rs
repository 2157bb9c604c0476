//! The primitive areas over a lab: what each RDS/EC2 operation means on one machine.
//!
//! | primitive | in the lab |
//! |---|---|
//! | RDS instance | a PostgreSQL server (the source primary: `wal_level=logical`) |
//! | `create_replica_cluster` | `pg_basebackup -R -C -S` from the source (the cluster = its data directory) |
//! | `create_cluster_instance` | the streaming replica's server on that data directory |
//! | `promote_cluster` | `pg_promote(wait => false)`; complete when `pg_is_in_recovery()` is false |
//! | `set_security_groups` | `pg_hba.conf` + reload, by client address: godwit's connections come from [`GODWIT_ADDR`], Envoy's from [`ENVOY_ADDR`], direct clients from 127.0.0.1; while no group admits everyone, only godwit's address (when a group admits godwit's group) and replication get in (stateful, like a security group: sessions stay) |
//! | `reboot_instance` | fast restart (SIGINT, start on the same port): every session ends |
//! | `delete_*` | stop the server, drop its slot on the source, remove its files |
//! | parameter groups | recorded; `applied`/`unsupported` checked against the server's `pg_settings` |
//! | engine versions | the installed server's version; supported extensions = `pg_available_extensions`; for Aurora also the newer major's when installed (`GODWIT_PG_NEWER_BIN`) |
//! | `create_snapshot` | `pg_basebackup -X stream` of the instance's server into `snapshots/<id>` (no slot left, no standby configuration) |
//! | `restore_cluster_from_snapshot` | a copy of that backup as the new cluster's data directory; its writer instance starts on it as a primary |
//! | `create_cluster` | a fresh `initdb` of the requested major (the lab's binaries, or the newer major's, recorded with the cluster), seeded with what a new Aurora cluster has; its writer instance starts on it as a primary |

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, PrimitiveError};
use godwit_stdlib::ec2::{self, Ec2, SecurityGroup as Sg};
use godwit_stdlib::pg::live::{BoxFuture, Connector, PG_CALL_LIMIT, Pool, Target};
use godwit_stdlib::rds::{
    self, Accepts, CloneCluster, CreateCluster, CreateClusterInstance, CreateParameterGroups,
    CreateReplicaCluster, DbCluster, DbInstance, EngineVersion, ExistingGroup, InstancePage,
    InstanceSummary, Parameter, ParameterGroupsCreated, ParameterRule, Promotion, Rds, RdsEvent,
    Reboot, RestoreCluster, Snapshot,
};

use crate::LabError;
use crate::ops;
use crate::pgproc::{self, PgBin, ServerSpec};
use crate::state::{
    Cluster, Instance, InstanceOp, LabState, OpLock, ParameterGroup, SecurityGroup,
};

/// Shared by every area of one lab world.
pub struct LabCtx {
    pub dir: PathBuf,
    /// RDS's own connections, for what the areas do in the database on RDS's side (slots,
    /// promotion, settings; the CDC consumers' hooks): [`RdsConnector`]. Never godwit's.
    pub pool: Arc<Pool>,
}

impl LabCtx {
    pub fn new(dir: &Path, handle: tokio::runtime::Handle) -> Arc<LabCtx> {
        let connector = Arc::new(RdsConnector {
            dir: dir.to_path_buf(),
        });
        Arc::new(LabCtx {
            dir: dir.to_path_buf(),
            pool: Arc::new(Pool::new(connector, handle)),
        })
    }

    pub fn state(&self, area: &str, op: &str) -> Result<LabState, PrimitiveError> {
        LabState::load(&self.dir).map_err(|e| lab_error(area, op, e))
    }

    pub fn update<T>(
        &self,
        area: &str,
        op: &str,
        f: impl FnOnce(&mut LabState) -> Result<T, LabError>,
    ) -> Result<T, PrimitiveError> {
        LabState::update(&self.dir, f).map_err(|e| lab_error(area, op, e))
    }

    /// The operation lock of instance or cluster `id` ([`OpLock`]), waiting through the call
    /// while another process holds it (the supervisor completing an interrupted operation,
    /// which takes at most a server start).
    pub fn lock(
        &self,
        cx: &Call<'_>,
        area: &str,
        op: &str,
        id: &str,
    ) -> Result<OpLock, PrimitiveError> {
        loop {
            if let Some(lock) =
                OpLock::try_take(&self.dir, id).map_err(|e| lab_error(area, op, e))?
            {
                return Ok(lock);
            }
            cx.sleep(Duration::from_millis(20))?;
        }
    }

    /// Run one SQL statement on `db`'s server as the superuser, returning the first column
    /// of each row as text.
    pub fn sql(
        &self,
        cx: &Call<'_>,
        db: &str,
        op: &str,
        sql: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        let st = cx.budget(PG_CALL_LIMIT);
        self.pool.run(cx, db, PG_CALL_LIMIT, async {
            let c = self.pool.client(db, None, op, st).await?;
            let rows = c
                .simple_query(sql)
                .await
                .map_err(|e| godwit_stdlib::pg::live::sql_error(op, db, e))?;
            Ok(rows
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or("").to_string())
                    }
                    _ => None,
                })
                .collect())
        })
    }
}

/// A lab failure as a primitive error of `area::op`.
pub fn lab_error(area: &str, op: &str, e: LabError) -> PrimitiveError {
    let hint = match &e {
        LabError::State(_) => "godwit lab status shows what the lab has",
        LabError::Prerequisite(_) => "install what the message names",
        _ => "the message quotes the server or tool; `godwit lab status` shows the lab",
    };
    PrimitiveError::new(area, op, ErrorKind::Internal, e.to_string(), hint)
}

fn not_found(area: &str, op: &str, what: String) -> PrimitiveError {
    PrimitiveError::new(
        area,
        op,
        ErrorKind::NotFound,
        what,
        "godwit lab status lists the lab's instances, clusters and groups",
    )
}

/// RDS's own way into a lab database: superuser `rdsadmin` over the server's Unix socket. The
/// security groups govern TCP clients by address (`pg_hba.conf`), not this: RDS's API works
/// whatever groups the instance has (a rollback drops the replica's slot on a quarantined
/// source), and its sessions are RDS's, not the application's (`DatabaseConnections` and
/// `pg::application_backends` skip `rdsadmin`).
pub struct RdsConnector {
    pub dir: PathBuf,
}

impl Connector for RdsConnector {
    fn access(&self, _db: &str) -> godwit_stdlib::pg::Access {
        godwit_stdlib::pg::Access {
            available: true,
            how: format!(
                "RDS's own {} over the server's Unix socket",
                crate::metrics::ADMIN
            ),
            security_group: None,
        }
    }

    fn target<'a>(&'a self, db: &'a str) -> BoxFuture<'a, Result<Target, PrimitiveError>> {
        Box::pin(async move {
            let st = LabState::load(&self.dir).map_err(|e| lab_error("rds", "connect", e))?;
            let inst = st.serving(db).ok_or_else(|| {
                not_found(
                    "rds",
                    "connect",
                    format!("the lab has no instance or cluster {db:?}"),
                )
            })?;
            let mut config = tokio_postgres::Config::new();
            config
                .host_path(&inst.spec.socket_dir)
                .port(inst.port)
                .user(crate::metrics::ADMIN)
                .dbname(&st.app_db)
                .application_name("rds")
                .connect_timeout(Duration::from_secs(5));
            Ok(Target {
                config,
                tls: None,
                aurora: false,
                bind: None,
            })
        })
    }
}

/// godwit's way into a lab database (the `pg` and `validate` areas): the superuser on loopback
/// from [`GODWIT_ADDR`], in the application's database.
pub struct LabConnector {
    pub dir: PathBuf,
}

impl Connector for LabConnector {
    fn access(&self, _db: &str) -> godwit_stdlib::pg::Access {
        godwit_stdlib::pg::Access {
            available: true,
            how: format!("superuser postgres over loopback from {GODWIT_ADDR}"),
            security_group: Some(GODWIT_GROUP.into()),
        }
    }

    fn target<'a>(&'a self, db: &'a str) -> BoxFuture<'a, Result<Target, PrimitiveError>> {
        Box::pin(async move {
            let st = LabState::load(&self.dir).map_err(|e| lab_error("pg", "connect", e))?;
            let inst = st.serving(db).ok_or_else(|| {
                not_found(
                    "pg",
                    "connect",
                    format!("the lab has no instance or cluster {db:?}"),
                )
            })?;
            let mut config = tokio_postgres::Config::new();
            config
                .host("127.0.0.1")
                .port(inst.port)
                .user("postgres")
                .dbname(&st.app_db)
                .application_name("godwit")
                .connect_timeout(Duration::from_secs(5));
            // The lab's cluster members are plain standbys; `aurora` makes them refuse what
            // Aurora refuses (the pg_last_wal_* family).
            let aurora = st.clusters.contains_key(db) || inst.cluster.is_some();
            Ok(Target {
                config,
                tls: None,
                aurora,
                // godwit's own address: what the security groups admit as godwit's group.
                bind: Some(IpAddr::V4(GODWIT_ADDR)),
            })
        })
    }

    /// Loopback has no security groups: the lab checks them before a server connects to
    /// another (a subscription), from the groups it records, as AWS's network would filter
    /// them ([`ec2::check_connection`]: the subscriber's egress, the publisher's ingress on
    /// its port). The lab's VPC is one VPC.
    fn may_connect(&self, op: &str, from_db: &str, to_db: &str) -> Result<(), PrimitiveError> {
        let st = LabState::load(&self.dir).map_err(|e| lab_error("pg", op, e))?;
        let serving = |db: &str| {
            st.serving(db).cloned().ok_or_else(|| {
                not_found(
                    "pg",
                    op,
                    format!("the lab has no instance or cluster {db:?}"),
                )
            })
        };
        let (from, to) = (serving(from_db)?, serving(to_db)?);
        let groups = |i: &Instance| -> Vec<Sg> {
            i.security_groups
                .iter()
                .filter_map(|g| st.security_groups.get(g).map(sg_view))
                .collect()
        };
        let (from_groups, to_groups) = (groups(&from), groups(&to));
        ec2::check_connection(
            "pg",
            op,
            ec2::Side {
                db: from_db,
                groups: &from_groups,
            },
            ec2::Side {
                db: to_db,
                groups: &to_groups,
            },
            to.port,
        )
    }

    /// A login `pg_hba.conf` rejected is godwit locked out by the instance's security groups:
    /// said as such, and as a `Timeout`, which is what AWS's dropped packets give godwit.
    fn refused(&self, db: &str, error: PrimitiveError) -> PrimitiveError {
        if !error.message.contains("pg_hba.conf rejects connection") {
            return error;
        }
        let groups = LabState::load(&self.dir)
            .ok()
            .and_then(|st| st.serving(db).map(|i| i.security_groups.clone()))
            .unwrap_or_default();
        PrimitiveError::new(
            error.area,
            error.op,
            ErrorKind::Timeout,
            format!(
                "godwit cannot reach {db}: its security groups {groups:?} do not admit godwit's \
                 group {GODWIT_GROUP} ({GODWIT_ADDR}) on its port; on AWS the connection times \
                 out ({})",
                error.message
            ),
            format!(
                "a quarantine must admit {GODWIT_GROUP} (ec2::ensure_quarantine_group with \
                 admit) or godwit is locked out; rds::set_security_groups restores the groups"
            ),
        )
    }
}

/// The lab's stand-in for godwit's own security group (what a quarantine admits).
pub const GODWIT_GROUP: &str = "sg-lab-godwit";

/// The address godwit's connections to lab servers come from: the member of
/// [`GODWIT_GROUP`]. Security groups admit by client address, not by role, so godwit must
/// come from an address of its own (its role, superuser `postgres`, is no proof of it).
pub const GODWIT_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The address the lab's Envoy connects upstream from (its cluster's `upstream_bind_config`),
/// so that a quarantine refuses the application's new connections through Envoy too.
pub const ENVOY_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

const QUARANTINE_BEGIN: &str = "# godwit-lab quarantine: begin";
const QUARANTINE_END: &str = "# godwit-lab quarantine: end";

/// Whom a set of security groups lets in on the database port, by client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A rule from an address range (the application's group: `tcp/<port> from 127.0.0.0/8`):
    /// every loopback client.
    Everyone,
    /// Only a rule from godwit's group: [`GODWIT_ADDR`] and nobody else.
    Godwit,
    /// No rule that reaches the lab: everyone is refused, godwit too.
    Nobody,
}

/// Whom `groups` admit together (a security group's rules add up).
pub fn admission<'a>(groups: impl IntoIterator<Item = &'a SecurityGroup>) -> Admission {
    let mut out = Admission::Nobody;
    for rule in groups.into_iter().flat_map(|g| &g.ingress) {
        let from = rule.rsplit(" from ").next().unwrap_or_default();
        if from == GODWIT_GROUP {
            out = Admission::Godwit;
        } else if !from.starts_with("sg-") {
            return Admission::Everyone;
        }
    }
    out
}

/// `pg_hba.conf` of `data` for the security groups' [`Admission`]; whether it changed.
///
/// While not everyone is admitted, a block first (first match wins, before initdb's trust
/// lines) lets in what security groups do not govern — physical replication (a replica's
/// walreceiver, `pg_basebackup`) and Unix-socket clients (the lab's sampler, RDS's own
/// monitoring; the CDC consumers) — then godwit's address if admitted, and rejects every other
/// TCP client. Logical replication connections (`pg_recvlogical`) match database lines, not
/// `replication`: the lab's consumers connect over the Unix socket for that reason.
pub fn set_hba_quarantine(data: &Path, admission: Admission) -> Result<bool, LabError> {
    let path = data.join("pg_hba.conf");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LabError::Io(format!("read {}: {e}", path.display())))?;
    let mut kept = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line == QUARANTINE_BEGIN {
            inside = true;
        } else if line == QUARANTINE_END {
            inside = false;
        } else if !inside {
            kept.push(line.to_string());
        }
    }
    let mut out = Vec::new();
    if admission != Admission::Everyone {
        out.push(QUARANTINE_BEGIN.to_string());
        out.push("host replication all 127.0.0.0/8 trust".to_string());
        if admission == Admission::Godwit {
            out.push(format!("host all all {GODWIT_ADDR}/32 trust"));
        }
        out.push("host all all 0.0.0.0/0 reject".to_string());
        out.push("host all all ::/0 reject".to_string());
        out.push(QUARANTINE_END.to_string());
    }
    out.extend(kept);
    let new = out.join("\n") + "\n";
    if new == text {
        return Ok(false);
    }
    std::fs::write(&path, new)
        .map_err(|e| LabError::Io(format!("write {}: {e}", path.display())))?;
    Ok(true)
}

/// Settings of the lab's own making that must not travel to another server as parameters.
const INFRASTRUCTURE_SETTINGS: &[&str] = &[
    "port",
    "listen_addresses",
    "unix_socket_directories",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "external_pid_file",
    "primary_conninfo",
    "primary_slot_name",
    "application_name",
    "transaction_deferrable",
    "transaction_isolation",
    "transaction_read_only",
    "default_text_search_config",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "log_timezone",
    "TimeZone",
    "DateStyle",
    "client_encoding",
    "max_stack_depth",
    "dynamic_shared_memory_type",
];

pub struct LabRds {
    pub ctx: Arc<LabCtx>,
}

const R: &str = "rds";

impl LabRds {
    fn instance_view(&self, st: &LabState, i: &Instance) -> DbInstance {
        DbInstance {
            id: i.id.clone(),
            arn: st.arn(&i.id),
            engine: i.engine.clone(),
            engine_version: st.bin_of(i).version.clone(),
            instance_class: st.attributes.instance_class.clone(),
            // A server that should run and does not has crashed: RDS reports such an instance
            // as `failed`.
            status: if i.pid.is_some_and(pgproc::alive) || i.status != "available" {
                i.status.clone()
            } else {
                "failed".into()
            },
            cluster_id: i.cluster.clone(),
            security_groups: i.security_groups.clone(),
            parameter_group: i.parameter_group.clone(),
            storage_encrypted: st.attributes.storage_encrypted,
            kms_key_id: None,
            allocated_storage_gb: st.attributes.allocated_storage_gb,
            backup_retention_days: st.attributes.backup_retention_days,
            endpoint: format!("127.0.0.1:{}", i.port),
            port: i.port,
            vpc_id: st.attributes.vpc_id.clone(),
            replica_clusters: st
                .clusters
                .values()
                .filter(|c| c.replication_source.as_deref() == Some(i.id.as_str()))
                .map(|c| c.id.clone())
                .collect(),
            read_replicas: Vec::new(),
            iam_auth: i.cluster.is_none() && st.attributes.iam_auth,
            auto_minor_version_upgrade: false,
            pending_modifications: Vec::new(),
            parameter_apply_status: "in-sync".into(),
            // pg_hba is rewritten and reloaded before set_security_groups returns.
            security_groups_pending: Vec::new(),
        }
    }

    /// The cluster as RDS reports it, after asking its writer whether promotion completed.
    fn cluster_view(&self, cx: &Call<'_>, id: &str, op: &str) -> Result<DbCluster, PrimitiveError> {
        let st = self.ctx.state(R, op)?;
        let mut c = st
            .clusters
            .get(id)
            .ok_or_else(|| rds::cluster_not_found(op, id))?
            .clone();
        if c.promote_requested && c.replication_source.is_some() {
            let recovering = self
                .ctx
                .sql(cx, id, op, "SELECT pg_is_in_recovery()")
                .map(|v| v.first().map(String::as_str) == Some("t"))
                .unwrap_or(true);
            if !recovering {
                c = self.ctx.update(R, op, |st| {
                    let cl = st.clusters.get_mut(id).ok_or_else(|| {
                        LabError::State(format!("cluster {id} vanished while promoting"))
                    })?;
                    cl.replication_source = None;
                    cl.status = "available".into();
                    let cl = cl.clone();
                    st.event(
                        id,
                        true,
                        "Promoted read replica cluster to a stand-alone database cluster",
                    );
                    Ok(cl)
                })?;
            }
        }
        let st = self.ctx.state(R, op)?;
        let writer = c.members.first().and_then(|m| st.instances.get(m));
        let endpoint = writer
            .map(|w| format!("127.0.0.1:{}", w.port))
            .unwrap_or_default();
        Ok(DbCluster {
            id: c.id.clone(),
            arn: st.arn(&c.id),
            engine: "aurora-postgresql".into(),
            engine_version: c.engine_version.clone(),
            status: c.status.clone(),
            replication_source_identifier: c.replication_source.as_ref().map(|s| st.arn(s)),
            members: c.members.clone(),
            writer: c.members.first().cloned(),
            parameter_group: c.parameter_group.clone(),
            storage_encrypted: st.attributes.storage_encrypted,
            kms_key_id: None,
            endpoint: endpoint.clone(),
            reader_endpoint: endpoint,
            port: writer.map_or_else(rds::default_port, |w| w.port),
            security_groups: writer
                .map(|w| w.security_groups.clone())
                .or(c.security_groups.clone())
                .unwrap_or_default(),
            vpc_id: st.attributes.vpc_id.clone(),
            iam_auth: c.iam_auth,
        })
    }

    /// The lab's state and instance `id`, or `NotFound`.
    fn instance(&self, op: &str, id: &str) -> Result<(LabState, Instance), PrimitiveError> {
        let st = self.ctx.state(R, op)?;
        let inst = st
            .instances
            .get(id)
            .cloned()
            .ok_or_else(|| rds::instance_not_found(op, id))?;
        Ok((st, inst))
    }

    /// Fast shutdown of an instance's server — the recorded one, and one running on its data
    /// directory unrecorded (its starter was killed) — and forget its connections.
    fn stop_server(&self, id: &str, inst: &Instance) {
        let running = pgproc::running_pid(&inst.spec.data);
        for pid in inst.pid.into_iter().chain(running) {
            pgproc::stop_pid(pid, pgproc::Signal::SIGINT, Duration::from_secs(60));
        }
        self.ctx.pool.forget(id);
    }

    fn snapshot_view(&self, st: &LabState, s: &crate::state::Snapshot) -> Snapshot {
        Snapshot {
            id: s.id.clone(),
            source_id: s.source_id.clone(),
            status: s.status.clone(),
            engine_version: s.bin.as_ref().unwrap_or(&st.bin).version.clone(),
            storage_encrypted: st.attributes.storage_encrypted,
            kms_key_id: None,
            data_gb: s.bytes as f64 / 1e9,
        }
    }
}

/// The settings of a cluster's writer: the lab primary's, and how soon it reconnects to its
/// source after losing it ([`crate::state::Attributes::replica_retry_ms`]).
fn replica_settings(st: &LabState) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pgproc::PRIMARY_SETTINGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.push((
        "wal_retrieve_retry_interval".into(),
        format!("{}ms", st.attributes.replica_retry_ms),
    ));
    v
}

/// What a new Aurora cluster has, on the server of a fresh `initdb` (listening on
/// `socket_dir`, `port`), as its bootstrap superuser `postgres`: RDS's own superuser and
/// database with its heartbeat table, as every lab server has them
/// ([`crate::supervisor::rds_own_sql`]); Aurora's `rds_superuser` (with the powers the moto
/// harness gives it) and `rds_iam`, which `pg::copy_schema` grants the source's login roles
/// for IAM sign-in; the master user (`CreateDBCluster`'s `MasterUsername`, a member of
/// `rds_superuser`; its password is RDS's); and the lab's application database `app_db`,
/// empty and the master user's (`DatabaseName`: every connection the lab's world makes opens
/// it, as the aws world's open its `db_name`). No application role, table or row.
async fn seed_as_aurora(
    socket_dir: &Path,
    port: u16,
    master: &str,
    app_db: &str,
) -> Result<(), PrimitiveError> {
    const OP: &str = "create_cluster";
    let failed = |what: &str, e: &tokio_postgres::Error| {
        lab_error(
            R,
            OP,
            LabError::Process(format!(
                "seed the new cluster: {what}: {}",
                godwit_stdlib::pg::live::error_text(e)
            )),
        )
    };
    let connect = |dbname: &'static str| async move {
        let (c, conn) = tokio_postgres::Config::new()
            .host_path(socket_dir)
            .port(port)
            .user("postgres")
            .dbname(dbname)
            .application_name("rds")
            .connect_timeout(Duration::from_secs(10))
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| failed(&format!("connect to {dbname}"), &e))?;
        tokio::spawn(conn);
        Ok::<_, PrimitiveError>(c)
    };
    let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let (master, app_db) = (quoted(master), quoted(app_db));
    let admin = connect("postgres").await?;
    // One statement each: CREATE DATABASE refuses the implicit transaction of several.
    for sql in crate::supervisor::rds_own_sql().into_iter().chain([
        "CREATE ROLE rds_superuser NOLOGIN".to_string(),
        "GRANT pg_monitor, pg_signal_backend, pg_read_all_data TO rds_superuser".to_string(),
        "CREATE ROLE rds_iam NOLOGIN".to_string(),
        format!("CREATE ROLE {master} LOGIN CREATEROLE CREATEDB IN ROLE rds_superuser"),
        format!("CREATE DATABASE {app_db} OWNER {master}"),
    ]) {
        admin
            .batch_execute(&sql)
            .await
            .map_err(|e| failed(&sql, &e))?;
    }
    connect(crate::metrics::ADMIN)
        .await?
        .batch_execute(&crate::supervisor::rds_heartbeat_sql())
        .await
        .map_err(|e| failed("create RDS's heartbeat table", &e))?;
    Ok(())
}

/// Stop every lab process working on `data` (a `pg_basebackup` writing it, a server on it),
/// recorded or not.
/// A directory an interrupted operation left behind, gone: whatever still works on it stopped
/// ([`stop_on_data`]), then removed, so the operation starts over on a clean path.
fn start_over(data: &Path) -> Result<(), LabError> {
    stop_on_data(data);
    if data.exists() {
        std::fs::remove_dir_all(data)
            .map_err(|e| LabError::Io(format!("remove {}: {e}", data.display())))?;
    }
    Ok(())
}

fn stop_on_data(data: &Path) {
    let needle = data.to_string_lossy().into_owned();
    let Some(dir) = data.parent() else { return };
    for p in pgproc::lab_processes(dir) {
        let on_it = p.cwd.starts_with(data) || p.cmdline.split(' ').any(|a| a == needle);
        if on_it {
            pgproc::stop_pid(p.pid, pgproc::Signal::SIGINT, Duration::from_secs(30));
        }
    }
}

impl LabRds {
    /// Seed the cluster `req` creates, on `data` (just `initdb`-ed), with [`seed_as_aurora`]:
    /// through a server of its own binaries started for that alone, its pid recorded with the
    /// cluster while it runs (`lab down` stops it if this process dies meanwhile), stopped
    /// before this returns.
    fn seed_created(
        &self,
        cx: &Call<'_>,
        st: &LabState,
        bin: &PgBin,
        req: &CreateCluster,
        data: &Path,
    ) -> Result<(), PrimitiveError> {
        const OP: &str = "create_cluster";
        let id = req.cluster_id.clone();
        let spec = ServerSpec {
            data: data.to_path_buf(),
            socket_dir: st.dir.join(format!("{id}.init.s")),
            log: st.dir.join(format!("{id}.init.log")),
            settings: vec![("fsync".into(), "off".into())],
        };
        pgproc::make_owned_dir(&spec.socket_dir, st.user.as_ref())
            .map_err(|e| lab_error(R, OP, e))?;
        let dir = self.ctx.dir.clone();
        let server = pgproc::start_recorded(
            bin,
            st.user.as_ref(),
            &st.dir,
            &spec,
            0,
            ops::SERVER_TIMEOUT,
            "create_cluster:seeding",
            |pid, _| {
                LabState::update(&dir, |st| {
                    if let Some(c) = st.clusters.get_mut(&id) {
                        c.basebackup_pid = Some(pid);
                    }
                    Ok(())
                })
            },
        )
        .map_err(|e| lab_error(R, OP, e))?;
        let seeded = cx.block_on(
            PG_CALL_LIMIT,
            seed_as_aurora(
                &spec.socket_dir,
                server.port,
                &req.master_username,
                &st.app_db,
            ),
        );
        pgproc::stop_server(&server);
        let _ = std::fs::remove_dir_all(&spec.socket_dir);
        seeded
    }

    /// Drop the physical slot `slot` on `src`, once no process streams from it any more (the
    /// walsender of a stopped `pg_basebackup` or replica exits within moments).
    fn drop_slot(
        &self,
        cx: &Call<'_>,
        src: &str,
        op: &str,
        slot: &str,
    ) -> Result<(), PrimitiveError> {
        for _ in 0..250 {
            let active = self.ctx.sql(
                cx,
                src,
                op,
                &format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'"),
            )?;
            match active.first().map(String::as_str) {
                None => return Ok(()),
                Some("f") => {
                    self.ctx.sql(
                        cx,
                        src,
                        op,
                        &format!(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active"
                        ),
                    )?;
                }
                Some(_) => cx.sleep(Duration::from_millis(20))?,
            }
        }
        Err(PrimitiveError::new(
            R,
            op,
            ErrorKind::Conflict,
            format!("slot {slot} on {src} stays active: a process still streams from it"),
            "godwit lab status shows the lab's processes; pg_stat_replication on the source names it",
        ))
    }
}

impl Rds for LabRds {
    fn describe_instance(&self, _cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError> {
        let (st, inst) = self.instance("describe_instance", id)?;
        Ok(self.instance_view(&st, &inst))
    }

    fn describe_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        self.cluster_view(cx, id, "describe_cluster")
    }

    /// The lab's own server version (its extensions: the source's `pg_available_extensions`);
    /// for Aurora PostgreSQL also the newer major's when its binaries are installed
    /// ([`PgBin::newer_major`]; its extensions: those its installation holds). These are the
    /// versions `create_cluster` accepts ([`lab_binaries`]).
    fn list_engine_versions(
        &self,
        cx: &Call<'_>,
        engine: &str,
    ) -> Result<Vec<EngineVersion>, PrimitiveError> {
        const OP: &str = "list_engine_versions";
        rds::check_engine(OP, engine)?;
        let st = self.ctx.state(R, OP)?;
        let mut exts = self.ctx.sql(
            cx,
            &st.source,
            OP,
            "SELECT name FROM pg_available_extensions ORDER BY name",
        )?;
        exts.sort();
        let version = |bin: &PgBin, supported_extensions: Vec<String>| {
            let (major, minor) = rds::major_minor(&bin.version).unwrap_or((bin.major, 0));
            EngineVersion {
                engine: engine.to_string(),
                version: bin.version.clone(),
                major,
                minor,
                parameter_group_family: rds::parameter_group_family(engine, major),
                supported_extensions,
            }
        };
        let mut versions = vec![version(&st.bin, exts)];
        if engine == "aurora-postgresql"
            && let Ok(newer) = PgBin::newer_major(&st.bin)
        {
            versions.push(version(&newer, newer.extensions()));
        }
        Ok(rds::sort_versions(versions))
    }

    fn describe_parameters(
        &self,
        cx: &Call<'_>,
        group: &str,
    ) -> Result<Vec<Parameter>, PrimitiveError> {
        const OP: &str = "describe_parameters";
        let st = self.ctx.state(R, OP)?;
        let g = st
            .parameter_groups
            .get(group)
            .ok_or_else(|| rds::parameter_group_not_found(OP, group))?;
        let mut params: BTreeMap<String, Parameter> = g
            .parameters
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Parameter {
                        name: k.clone(),
                        value: v.clone(),
                        source: "user".into(),
                    },
                )
            })
            .collect();
        // The source's own group: what its server runs with beyond the defaults, live.
        if st
            .instances
            .get(&st.source)
            .map(|i| i.parameter_group.as_str())
            == Some(group)
        {
            let excluded = INFRASTRUCTURE_SETTINGS
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = self.ctx.sql(
                cx,
                &st.source,
                OP,
                &format!(
                    "SELECT name || '=' || setting FROM pg_settings \
                     WHERE source IN ('configuration file', 'command line') AND name NOT IN ({excluded}) ORDER BY name"
                ),
            )?;
            for r in rows {
                if let Some((k, v)) = r.split_once('=') {
                    params.entry(k.to_string()).or_insert(Parameter {
                        name: k.to_string(),
                        value: v.to_string(),
                        source: "user".into(),
                    });
                }
            }
        }
        Ok(params.into_values().collect())
    }

    fn create_parameter_groups(
        &self,
        cx: &Call<'_>,
        req: &CreateParameterGroups,
    ) -> Result<ParameterGroupsCreated, PrimitiveError> {
        const OP: &str = "create_parameter_groups";
        rds::check_aurora_family(OP, &req.family)?;
        let rules = self.describe_parameter_rules(cx, &req.family, false)?;
        rds::check_parameter_values(OP, req, |k| rules.iter().find(|r| r.name == k).cloned())?;
        let known: std::collections::BTreeSet<String> =
            rules.iter().map(|r| r.name.clone()).collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // `rds.*` parameters are RDS's own, cluster-wide; the lab's server has no such setting,
        // but they describe what the lab does anyway (logical replication is on). The server
        // knows no levels otherwise: what the request names a cluster parameter is one.
        let placed = rds::place_parameters(req, |k| {
            if k.starts_with("rds.")
                || (known.contains(k) && req.cluster_parameters.contains_key(k))
            {
                Accepts::Cluster
            } else if known.contains(k) {
                Accepts::Instance
            } else {
                Accepts::Neither
            }
        });
        // Checked and written under the lab's lock: both groups, or neither.
        self.ctx.update(R, OP, |st| {
            let work = rds::plan_parameter_groups(OP, req, &placed, |name, _| {
                Ok(st.parameter_groups.get(name).map(|g| ExistingGroup {
                    family: g.family.clone(),
                    cluster: g.cluster,
                    parameters: g.parameters.clone(),
                }))
            });
            let work = match work {
                Ok(work) => work,
                Err(e) => return Ok(Err(e)),
            };
            for w in work {
                st.parameter_groups
                    .entry(w.name.to_string())
                    .or_insert_with(|| ParameterGroup {
                        name: w.name.to_string(),
                        family: req.family.clone(),
                        cluster: w.cluster,
                        parameters: BTreeMap::new(),
                        created_at: now,
                    })
                    .parameters
                    .extend(w.set);
            }
            Ok(Ok(()))
        })??;
        Ok(placed.created(req))
    }

    fn create_replica_cluster(
        &self,
        cx: &Call<'_>,
        req: &CreateReplicaCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "create_replica_cluster";
        let _lock = self.ctx.lock(cx, R, OP, &req.cluster_id)?;
        let (st, source) = self.instance(OP, &req.source_id)?;
        let src_view = self.instance_view(&st, &source);
        // `creating` with the lock free: a process killed while copying; start over below.
        let interrupted = st
            .clusters
            .get(&req.cluster_id)
            .is_some_and(|c| c.status == "creating");
        let existing = match st.clusters.contains_key(&req.cluster_id) && !interrupted {
            true => Some(self.cluster_view(cx, &req.cluster_id, OP)?),
            false => None,
        };
        if let Some(c) = rds::existing_replica(OP, &src_view, existing)? {
            return Ok(c); // a re-run of the same step
        }
        rds::check_replica_source(OP, req, &src_view)?;
        let src = source.server().ok_or_else(|| {
            PrimitiveError::new(
                R,
                OP,
                ErrorKind::Conflict,
                format!("the source {} is not running", req.source_id),
                "godwit lab status shows its server; `godwit lab up` starts a new lab",
            )
        })?;
        let slot = req.cluster_id.replace('-', "_");
        let data = st.dir.join(&req.cluster_id);
        let group = req
            .parameter_group
            .clone()
            .unwrap_or_else(|| "default.aurora-postgresql".into());
        // The intent first: a process killed from here on leaves a `creating` cluster whose
        // directory, slot and copying process the next attempt (or `lab down`) finds.
        self.ctx.update(R, OP, |st| {
            st.clusters.insert(
                req.cluster_id.clone(),
                Cluster {
                    id: req.cluster_id.clone(),
                    replication_source: Some(req.source_id.clone()),
                    slot: slot.clone(),
                    data: data.clone(),
                    status: "creating".into(),
                    members: Vec::new(),
                    parameter_group: group,
                    engine_version: req.engine_version.clone(),
                    promote_requested: false,
                    iam_auth: req.iam_auth,
                    basebackup_pid: None,
                    restored_from: None,
                    bin: None,
                    security_groups: None,
                },
            );
            Ok(())
        })?;
        pgproc::crash_point("create_replica_cluster:intent");
        // A copy interrupted by a crash: its pg_basebackup may still run (it outlives the
        // process that started it), its partial directory and its slot remain. Start over.
        start_over(&data).map_err(|e| lab_error(R, OP, e))?;
        self.drop_slot(cx, &req.source_id, OP, &slot)?;
        let dir = self.ctx.dir.clone();
        let id = req.cluster_id.clone();
        pgproc::basebackup(
            &st.bin,
            st.user.as_ref(),
            &st.dir,
            &src,
            &data,
            &slot,
            |pid| {
                LabState::update(&dir, |st| {
                    if let Some(c) = st.clusters.get_mut(&id) {
                        c.basebackup_pid = Some(pid);
                    }
                    Ok(())
                })
            },
        )
        .map_err(|e| lab_error(R, OP, e))?;
        // A test's planted fault (crate::faults): the copy differs before its server starts.
        crate::faults::apply_divergence(&st.dir, &data).map_err(|e| lab_error(R, OP, e))?;
        pgproc::crash_point("create_replica_cluster:copied");
        self.ctx.update(R, OP, |st| {
            if let Some(c) = st.clusters.get_mut(&req.cluster_id) {
                c.status = "available".into();
                c.basebackup_pid = None;
            }
            st.event(&req.cluster_id, true, "DB cluster created");
            Ok(())
        })?;
        self.cluster_view(cx, &req.cluster_id, OP)
    }

    fn create_cluster_instance(
        &self,
        cx: &Call<'_>,
        req: &CreateClusterInstance,
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "create_cluster_instance";
        let _lock = self.ctx.lock(cx, R, OP, &req.instance_id)?;
        let st = self.ctx.state(R, OP)?;
        let cl = st
            .clusters
            .get(&req.cluster_id)
            .ok_or_else(|| rds::cluster_not_found(OP, &req.cluster_id))?;
        let existing = st.instances.get(&req.instance_id);
        if let Some(i) =
            rds::existing_member(OP, req, existing.map(|i| self.instance_view(&st, i)))?
            && existing.is_some_and(|i| i.op.is_none() && i.pid.is_some_and(pgproc::alive))
        {
            return Ok(i); // a member whose server is down is started again below
        }
        rds::check_aurora_class(OP, &req.instance_class, &cl.engine_version)?;
        let spec = ServerSpec {
            data: cl.data.clone(),
            socket_dir: st.dir.join(format!("{}.s", req.instance_id)),
            log: st.dir.join(format!("{}.log", req.instance_id)),
            settings: replica_settings(&st),
        };
        pgproc::make_owned_dir(&spec.socket_dir, st.user.as_ref())
            .map_err(|e| lab_error(R, OP, e))?;
        // A replica's writer takes the source's groups; a restored cluster's, the lab's
        // application group (RDS: the VPC's default group when the restore names none).
        // A clone's, its source cluster's writer's (AWS: the clone is restored into the source
        // cluster's groups, rds::clone_cluster). A cluster created empty's, those it was
        // created into (rds::create_cluster).
        let clone_of = cl
            .restored_from
            .as_deref()
            .and_then(|r| r.strip_prefix(CLONE_OF))
            .and_then(|src| st.serving(src))
            .map(|w| w.security_groups.clone());
        let groups = match (&cl.restored_from, clone_of.or(cl.security_groups.clone())) {
            (_, Some(g)) => g,
            (Some(_), None) => vec![crate::state::APP_GROUP.to_string()],
            (None, None) => st
                .instances
                .get(&st.source)
                .map(|s| s.security_groups.clone())
                .unwrap_or_default(),
        };
        // The copied pg_hba.conf is the source's when copied (a snapshot of a quarantined
        // source rejects the application): it follows the writer's groups instead.
        // A harness with no groups of its own (moto's, which filters at its own door) leaves
        // pg_hba as copied: it has no quarantine block, and no group to read one from.
        if !st.security_groups.is_empty() {
            let admits = admission(groups.iter().filter_map(|g| st.security_groups.get(g)));
            set_hba_quarantine(&cl.data, admits).map_err(|e| lab_error(R, OP, e))?;
        }
        let source_groups = groups;
        // The intent first (`creating`, no pid yet): whoever holds the lock next starts the
        // server or adopts the one a killed process started (crate::ops).
        self.ctx.update(R, OP, |st| {
            let inst = st
                .instances
                .entry(req.instance_id.clone())
                .or_insert_with(|| Instance {
                    id: req.instance_id.clone(),
                    engine: "aurora-postgresql".into(),
                    cluster: Some(req.cluster_id.clone()),
                    port: 0,
                    spec: spec.clone(),
                    pid: None,
                    status: "creating".into(),
                    security_groups: source_groups,
                    parameter_group: req
                        .parameter_group
                        .clone()
                        .unwrap_or_else(|| "default.aurora-postgresql".into()),
                    reboots: Vec::new(),
                    op: None,
                    tags: BTreeMap::new(),
                });
            if inst.op.is_none() {
                inst.op = Some(InstanceOp::Create);
            }
            if let Some(c) = st.clusters.get_mut(&req.cluster_id)
                && !c.members.contains(&req.instance_id)
            {
                c.members.push(req.instance_id.clone());
            }
            Ok(())
        })?;
        pgproc::crash_point("create_cluster_instance:intent");
        let inst =
            ops::complete(&self.ctx.dir, &req.instance_id).map_err(|e| lab_error(R, OP, e))?;
        self.ctx.pool.forget(&req.cluster_id);
        let st = self.ctx.state(R, OP)?;
        Ok(self.instance_view(&st, &inst))
    }

    fn set_security_groups(
        &self,
        cx: &Call<'_>,
        id: &str,
        groups: &[String],
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "set_security_groups";
        let (st, inst) = self.instance(OP, id)?;
        let view = self.instance_view(&st, &inst);
        if !rds::security_groups_change(OP, &view, groups)? {
            return Ok(view);
        }
        for g in groups {
            if !st.security_groups.contains_key(g) {
                return Err(not_found(
                    R,
                    OP,
                    format!("the lab has no security group {g:?}"),
                ));
            }
        }
        let admits = admission(groups.iter().map(|g| &st.security_groups[g]));
        set_hba_quarantine(&inst.spec.data, admits).map_err(|e| lab_error(R, OP, e))?;
        pgproc::crash_point("set_security_groups:written");
        // Reloaded whether or not this call changed the file: a process killed between
        // writing it and reloading left it written but not in force, and the groups are
        // recorded only after the reload. By signal, as `pg_reload_conf()` does, not over
        // godwit's connection: like RDS's API, this must work while the groups lock godwit out.
        if let Some(pid) = inst.pid.filter(|p| pgproc::alive(*p)) {
            pgproc::signal(pid, pgproc::Signal::SIGHUP).map_err(|e| lab_error(R, OP, e))?;
        }
        pgproc::crash_point("set_security_groups:reloaded");
        let groups = groups.to_vec();
        self.ctx.update(R, OP, |st| {
            if let Some(i) = st.instances.get_mut(id) {
                i.security_groups = groups;
            }
            Ok(())
        })?;
        self.describe_instance(cx, id)
    }

    fn reboot_instance(
        &self,
        cx: &Call<'_>,
        id: &str,
        token: &str,
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "reboot_instance";
        let _lock = self.ctx.lock(cx, R, OP, id)?;
        let (st, inst) = self.instance(OP, id)?;
        let view = self.instance_view(&st, &inst);
        let plan = rds::reboot(OP, &view, inst.reboots.iter().any(|t| t == token))?;
        if plan == Reboot::Done {
            return Ok(view);
        }
        // The intent first: which reboot (the token) and which server it ends. `Record` finds a
        // reboot under way (a process killed in the middle): it is completed, not started again.
        let token = token.to_string();
        self.ctx.update(R, OP, |st| {
            let i = st.instances.get_mut(id).ok_or_else(|| {
                LabError::State(format!("instance {id} vanished while rebooting"))
            })?;
            match (&plan, &i.op) {
                (Reboot::Reboot, _) | (Reboot::Record, None) => {
                    i.status = "rebooting".into();
                    i.op = Some(InstanceOp::Reboot {
                        token: token.clone(),
                        old_pid: if plan == Reboot::Reboot { i.pid } else { None },
                    });
                    if plan == Reboot::Reboot {
                        st.event(id, false, "DB instance shutdown");
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        pgproc::crash_point("reboot_instance:intent");
        self.ctx.pool.forget(id);
        let done = ops::complete(&self.ctx.dir, id).map_err(|e| PrimitiveError {
            hint: "the instance stays `rebooting` and the lab's supervisor keeps restarting it (its server log is in the lab directory)".into(),
            ..lab_error(R, OP, e)
        })?;
        // A reboot completed under another token (`Record`): this one is done too.
        if !done.reboots.contains(&token) {
            self.ctx.update(R, OP, |st| {
                if let Some(i) = st.instances.get_mut(id) {
                    i.reboots.push(token);
                }
                Ok(())
            })?;
        }
        self.ctx.pool.forget(id);
        self.describe_instance(cx, id)
    }

    fn promote_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "promote_cluster";
        let _lock = self.ctx.lock(cx, R, OP, id)?;
        let cl = self.cluster_view(cx, id, OP)?;
        let requested = self
            .ctx
            .state(R, OP)?
            .clusters
            .get(id)
            .is_some_and(|c| c.promote_requested);
        let plan = rds::promotion(OP, &cl)?;
        if plan == Promotion::Nothing && !(requested && cl.replication_source_identifier.is_some())
        {
            return Ok(cl);
        }
        if cl.members.is_empty() {
            return Err(PrimitiveError::new(
                R,
                OP,
                ErrorKind::Conflict,
                format!("cluster {id} has no instance to promote"),
                "create its writer instance first (rds::create_cluster_instance)",
            ));
        }
        // The intent first; then the request, sent again when a killed process recorded the
        // intent but may not have sent it (a promotion already under way or done ignores it).
        self.ctx.update(R, OP, |st| {
            if let Some(c) = st.clusters.get_mut(id) {
                c.promote_requested = true;
                c.status = "promoting".into();
            }
            Ok(())
        })?;
        pgproc::crash_point("promote_cluster:intent");
        // wait => false: pg_promote(wait => true) rounds up to 100 ms polls (local-postgres.md
        // gotcha 13); wait_until_cluster_promoted polls pg_is_in_recovery() instead.
        self.ctx.sql(
            cx,
            id,
            OP,
            "SELECT pg_promote(wait => false) WHERE pg_is_in_recovery()",
        )?;
        pgproc::crash_point("promote_cluster:requested");
        self.cluster_view(cx, id, OP)
    }

    fn delete_instance(&self, cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "delete_instance";
        let _lock = self.ctx.lock(cx, R, OP, id)?;
        let (st, inst) = self.instance(OP, id)?;
        let mut view = self.instance_view(&st, &inst);
        if rds::deleting_instance(OP, &view)? {
            return Ok(view);
        }
        self.stop_server(id, &inst);
        if inst.cluster.is_none() {
            // The source's own files; a cluster member's data is its cluster's.
            let _ = std::fs::remove_dir_all(&inst.spec.data);
        }
        self.ctx.update(R, OP, |st| {
            st.instances.remove(id);
            st.event(id, false, "DB instance deleted");
            for c in st.clusters.values_mut() {
                c.members.retain(|m| m != id);
            }
            Ok(())
        })?;
        view.status = "deleting".into();
        Ok(view)
    }

    fn delete_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "delete_cluster";
        let _lock = self.ctx.lock(cx, R, OP, id)?;
        let mut view = self.cluster_view(cx, id, OP)?;
        if rds::deleting_cluster(OP, &view, &view.members)? {
            return Ok(view);
        }
        let st = self.ctx.state(R, OP)?;
        let cl = st.clusters[id].clone();
        // Whatever still works on its files (a copy interrupted by a crash, a server nobody
        // recorded) goes first; then its slot is free to drop.
        stop_on_data(&cl.data);
        if let Some(src) = &cl.replication_source {
            self.drop_slot(cx, src, OP, &cl.slot)?;
        }
        let _ = std::fs::remove_dir_all(&cl.data);
        self.ctx.pool.forget(id);
        self.ctx.update(R, OP, |st| {
            st.clusters.remove(id);
            st.event(id, true, "DB cluster deleted");
            Ok(())
        })?;
        view.status = "deleting".into();
        Ok(view)
    }

    fn describe_parameter_group(
        &self,
        _cx: &Call<'_>,
        group: &str,
    ) -> Result<rds::ParameterGroup, PrimitiveError> {
        const OP: &str = "describe_parameter_group";
        let st = self.ctx.state(R, OP)?;
        let g = st
            .parameter_groups
            .get(group)
            .ok_or_else(|| rds::parameter_group_not_found(OP, group))?;
        Ok(rds::ParameterGroup {
            name: g.name.clone(),
            family: g.family.clone(),
            cluster: g.cluster,
            created_at: g.created_at,
        })
    }

    /// The server's own bounds (`pg_settings`: `min_val`-`max_val`, `enumvals`), which is what
    /// it would refuse; plus `rds.logical_replication`, RDS's switch the lab honours anyway.
    /// The lab knows no parameter levels: both levels get every setting.
    fn describe_parameter_rules(
        &self,
        cx: &Call<'_>,
        _family: &str,
        _cluster: bool,
    ) -> Result<Vec<ParameterRule>, PrimitiveError> {
        const OP: &str = "describe_parameter_rules";
        let st = self.ctx.state(R, OP)?;
        let rows = self.ctx.sql(
            cx,
            &st.source,
            OP,
            "SELECT name || E'\\t' || coalesce(boot_val, '') || E'\\t' || \
             coalesce(array_to_string(enumvals, ','), CASE WHEN vartype IN ('integer', 'real') \
             THEN min_val || '-' || max_val END, '') || E'\\t' || \
             (context NOT IN ('internal')) FROM pg_settings ORDER BY name",
        )?;
        let mut v: Vec<ParameterRule> = rows
            .iter()
            .filter_map(|r| {
                let mut f = r.split('\t');
                let name = f.next()?.to_string();
                let default = f.next().filter(|d| !d.is_empty()).map(String::from);
                let allowed = f.next().filter(|a| !a.is_empty()).map(String::from);
                let modifiable = f.next() == Some("true");
                Some(ParameterRule {
                    name,
                    default,
                    allowed_values: allowed,
                    modifiable,
                })
            })
            .collect();
        v.push(ParameterRule {
            name: "rds.logical_replication".into(),
            default: Some("1".into()),
            allowed_values: Some("0,1".into()),
            modifiable: true,
        });
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// The classes the lab orders: Aurora PostgreSQL's (what `create_cluster_instance` accepts,
    /// `rds::check_aurora_class`), and for the source engine the source's own class.
    fn list_orderable_instance_classes(
        &self,
        _cx: &Call<'_>,
        engine: &str,
        _version: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "list_orderable_instance_classes";
        rds::check_engine(OP, engine)?;
        if engine == "aurora-postgresql" {
            return Ok(rds::aurora_postgresql_classes());
        }
        let st = self.ctx.state(R, OP)?;
        Ok(vec![st.attributes.instance_class.clone()])
    }

    fn describe_events(
        &self,
        _cx: &Call<'_>,
        id: &str,
        cluster: bool,
    ) -> Result<Vec<RdsEvent>, PrimitiveError> {
        let st = self.ctx.state(R, "describe_events")?;
        let kind = if cluster { "db-cluster" } else { "db-instance" };
        Ok(rds::sort_events(
            st.events
                .into_iter()
                .filter(|e| e.source_id == id && e.source_type == kind)
                .collect(),
        ))
    }

    fn list_instances(
        &self,
        _cx: &Call<'_>,
        engine: &str,
        marker: Option<&str>,
        max_records: u32,
    ) -> Result<InstancePage, PrimitiveError> {
        let st = self.ctx.state(R, "list_instances")?;
        // Every instance the lab runs (the source, cluster writers) with its tags, paged as AWS
        // pages (rds::page_after).
        Ok(rds::page_after(
            st.instances
                .values()
                .filter(|i| i.engine == engine)
                .map(|i| {
                    let v = self.instance_view(&st, i);
                    InstanceSummary {
                        id: v.id,
                        engine: v.engine,
                        engine_version: v.engine_version,
                        instance_class: v.instance_class,
                        allocated_storage_gb: v.allocated_storage_gb,
                        status: v.status,
                        tags: i.tags.clone(),
                    }
                })
                .collect(),
            marker,
            max_records,
        ))
    }

    fn create_snapshot(
        &self,
        cx: &Call<'_>,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<Snapshot, PrimitiveError> {
        const OP: &str = "create_snapshot";
        let _lock = self
            .ctx
            .lock(cx, R, OP, &format!("snapshot-{snapshot_id}"))?;
        let (st, inst) = self.instance(OP, instance_id)?;
        // `creating` with the lock free: a process killed while copying; start over below.
        let existing = st
            .snapshots
            .get(snapshot_id)
            .filter(|s| s.status != "creating")
            .map(|s| self.snapshot_view(&st, s));
        if let Some(s) = rds::existing_snapshot(OP, instance_id, existing)? {
            return Ok(s);
        }
        let src = inst.server().ok_or_else(|| {
            PrimitiveError::new(
                R,
                OP,
                ErrorKind::Conflict,
                format!("instance {instance_id} is not running (InvalidDBInstanceState)"),
                "wait until it is available (rds::wait_until_instance_available)",
            )
            .with_retryable(true)
        })?;
        let snapshots = st.dir.join("snapshots");
        let path = snapshots.join(snapshot_id);
        // The server's own major copies it (a newer server refuses an older pg_basebackup).
        let bin = st.bin_of(&inst).clone();
        let recorded_bin = st.bin_record(&bin);
        // The intent first, as for a replica's copy (create_replica_cluster).
        self.ctx.update(R, OP, |st| {
            st.snapshots.insert(
                snapshot_id.to_string(),
                crate::state::Snapshot {
                    id: snapshot_id.to_string(),
                    source_id: instance_id.to_string(),
                    status: "creating".into(),
                    path: path.clone(),
                    bytes: 0,
                    basebackup_pid: None,
                    bin: recorded_bin,
                },
            );
            Ok(())
        })?;
        pgproc::crash_point("create_snapshot:intent");
        start_over(&path).map_err(|e| lab_error(R, OP, e))?;
        pgproc::make_owned_dir(&snapshots, st.user.as_ref()).map_err(|e| lab_error(R, OP, e))?;
        let dir = self.ctx.dir.clone();
        let id = snapshot_id.to_string();
        pgproc::base_backup(
            &bin,
            st.user.as_ref(),
            &st.dir,
            &src,
            &path,
            None,
            "create_snapshot:copying",
            |pid| {
                LabState::update(&dir, |st| {
                    if let Some(s) = st.snapshots.get_mut(&id) {
                        s.basebackup_pid = Some(pid);
                    }
                    Ok(())
                })
            },
        )
        .map_err(|e| lab_error(R, OP, e))?;
        pgproc::crash_point("create_snapshot:copied");
        let bytes = pgproc::dir_bytes(&path);
        let snap = self.ctx.update(R, OP, |st| {
            let s = st.snapshots.get_mut(snapshot_id).ok_or_else(|| {
                LabError::State(format!("snapshot {snapshot_id} vanished while copying"))
            })?;
            s.status = "available".into();
            s.bytes = bytes;
            s.basebackup_pid = None;
            let s = s.clone();
            st.event(instance_id, false, "Manual snapshot created");
            Ok(s)
        })?;
        let st = self.ctx.state(R, OP)?;
        Ok(self.snapshot_view(&st, &snap))
    }

    fn describe_snapshot(&self, _cx: &Call<'_>, id: &str) -> Result<Snapshot, PrimitiveError> {
        const OP: &str = "describe_snapshot";
        let st = self.ctx.state(R, OP)?;
        let s = st
            .snapshots
            .get(id)
            .ok_or_else(|| rds::snapshot_not_found(OP, id))?;
        Ok(self.snapshot_view(&st, s))
    }

    fn restore_cluster_from_snapshot(
        &self,
        cx: &Call<'_>,
        req: &RestoreCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "restore_cluster_from_snapshot";
        let _lock = self.ctx.lock(cx, R, OP, &req.cluster_id)?;
        let st = self.ctx.state(R, OP)?;
        let snap = st
            .snapshots
            .get(&req.snapshot_id)
            .cloned()
            .ok_or_else(|| rds::snapshot_not_found(OP, &req.snapshot_id))?;
        if st
            .clusters
            .get(&req.cluster_id)
            .is_some_and(|c| c.status != "creating")
        {
            return self.cluster_view(cx, &req.cluster_id, OP); // a re-run of the same step
        }
        rds::check_restorable(OP, &self.snapshot_view(&st, &snap))?;
        let data = st.dir.join(&req.cluster_id);
        let group = req
            .parameter_group
            .clone()
            .unwrap_or_else(|| "default.aurora-postgresql".into());
        self.ctx.update(R, OP, |st| {
            st.clusters.insert(
                req.cluster_id.clone(),
                Cluster {
                    id: req.cluster_id.clone(),
                    replication_source: None,
                    slot: String::new(),
                    data: data.clone(),
                    status: "creating".into(),
                    members: Vec::new(),
                    parameter_group: group,
                    engine_version: req.engine_version.clone(),
                    promote_requested: false,
                    iam_auth: req.iam_auth,
                    basebackup_pid: None,
                    restored_from: Some(req.snapshot_id.clone()),
                    bin: snap.bin.clone(),
                    security_groups: None,
                },
            );
            Ok(())
        })?;
        pgproc::crash_point("restore_cluster_from_snapshot:intent");
        start_over(&data).map_err(|e| lab_error(R, OP, e))?;
        pgproc::copy_dir(st.user.as_ref(), &st.dir, &snap.path, &data)
            .map_err(|e| lab_error(R, OP, e))?;
        pgproc::crash_point("restore_cluster_from_snapshot:copied");
        self.ctx.update(R, OP, |st| {
            if let Some(c) = st.clusters.get_mut(&req.cluster_id) {
                c.status = "available".into();
            }
            st.event(
                &req.cluster_id,
                true,
                &format!("Restored from snapshot {}", req.snapshot_id),
            );
            Ok(())
        })?;
        self.cluster_view(cx, &req.cluster_id, OP)
    }

    /// The lab's new, empty Aurora cluster: a fresh `initdb` of the requested major — the lab's
    /// own binaries for its own version, the newer major's for theirs ([`lab_binaries`]),
    /// recorded with the cluster ([`Cluster::bin`]) so that every later start of its server (its
    /// writer's creation, a reboot, a resumed run, the supervisor) runs them — seeded with what
    /// a new Aurora cluster has ([`seed_as_aurora`]): no application role, table or row. Its
    /// writer starts on it with `create_cluster_instance`, as a restored cluster's, in the
    /// groups it was created into. Recorded `creating` first; a process killed meanwhile leaves
    /// `creating` (and perhaps its seeding server, recorded), and the next call starts over.
    fn create_cluster(
        &self,
        cx: &Call<'_>,
        req: &CreateCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "create_cluster";
        let _lock = self.ctx.lock(cx, R, OP, &req.cluster_id)?;
        let (st, like) = self.instance(OP, &req.like)?;
        // `creating` with the lock free: a process killed while creating it; start over below.
        let interrupted = st.clusters.get(&req.cluster_id).is_some_and(|c| {
            c.status == "creating"
                && c.restored_from
                    .as_deref()
                    .is_some_and(|r| r.starts_with(CREATED_LIKE))
        });
        let existing = match st.clusters.contains_key(&req.cluster_id) && !interrupted {
            true => Some(self.cluster_view(cx, &req.cluster_id, OP)?),
            false => None,
        };
        if let Some(c) = rds::existing_standalone(OP, req, existing)? {
            return Ok(c); // a re-run of the same step
        }
        rds::check_logical_version(OP, req, &self.instance_view(&st, &like))?;
        let bin = lab_binaries(OP, &st.bin, &req.engine_version, || {
            PgBin::newer_major(&st.bin)
        })?;
        let family = rds::parameter_group_family("aurora-postgresql", bin.major);
        if let Some(name) = &req.parameter_group {
            let g = st
                .parameter_groups
                .get(name)
                .filter(|g| g.cluster)
                .ok_or_else(|| rds::parameter_group_not_found(OP, name))?;
            // "The DB cluster parameter group family must match the DB engine version"
            // (CreateDBCluster, InvalidParameterCombination).
            if g.family != family {
                return Err(PrimitiveError::invalid(
                    R,
                    OP,
                    format!(
                        "cluster parameter group {name} is of family {}, Aurora {} needs {family}",
                        g.family, req.engine_version
                    ),
                    format!("create the groups with family {family}"),
                ));
            }
        }
        let groups = req
            .security_groups
            .clone()
            .unwrap_or_else(|| like.security_groups.clone());
        if let Some(g) = groups.iter().find(|g| !st.security_groups.contains_key(*g)) {
            return Err(not_found(
                R,
                OP,
                format!("the lab has no security group {g:?}"),
            ));
        }
        // The WAL segments of the instance it replaces, as every other lab cluster has them
        // (copies of the source): a slot on it lags in the same teeth. PostgreSQL's own size
        // when that server does not say.
        let segment_mib = self
            .ctx
            .sql(
                cx,
                &req.like,
                OP,
                "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'",
            )
            .ok()
            .and_then(|v| v.first()?.parse::<u64>().ok())
            .map(|bytes| (bytes >> 20) as u32);
        let data = st.dir.join(&req.cluster_id);
        // The intent first: a process killed from here on leaves a `creating` cluster whose
        // directory and seeding server the next attempt (or `lab down`) finds.
        self.ctx.update(R, OP, |st| {
            st.clusters.insert(
                req.cluster_id.clone(),
                Cluster {
                    id: req.cluster_id.clone(),
                    replication_source: None,
                    slot: String::new(),
                    data: data.clone(),
                    status: "creating".into(),
                    members: Vec::new(),
                    parameter_group: req
                        .parameter_group
                        .clone()
                        .unwrap_or_else(|| format!("default.{family}")),
                    engine_version: req.engine_version.clone(),
                    promote_requested: false,
                    iam_auth: req.iam_auth,
                    basebackup_pid: None,
                    restored_from: Some(format!("{CREATED_LIKE}{}", req.like)),
                    bin: st.bin_record(&bin),
                    security_groups: Some(groups),
                },
            );
            Ok(())
        })?;
        pgproc::crash_point("create_cluster:intent");
        start_over(&data).map_err(|e| lab_error(R, OP, e))?;
        pgproc::initdb_with(&bin, st.user.as_ref(), &st.dir, &data, segment_mib)
            .map_err(|e| lab_error(R, OP, e))?;
        pgproc::crash_point("create_cluster:initdb");
        self.seed_created(cx, &st, &bin, req, &data)?;
        pgproc::crash_point("create_cluster:seeded");
        self.ctx.update(R, OP, |st| {
            if let Some(c) = st.clusters.get_mut(&req.cluster_id) {
                c.status = "available".into();
                c.basebackup_pid = None;
            }
            st.event(&req.cluster_id, true, "DB cluster created");
            Ok(())
        })?;
        self.cluster_view(cx, &req.cluster_id, OP)
    }

    /// The lab's clone: a `pg_basebackup` of the source cluster's writer (a standby while the
    /// cluster replicates) into the clone's data directory, without the standby's signal, so
    /// its instance recovers to the copy's end and starts as a primary of its own on its own
    /// port — "a copy of the replica promoted". Unlike Aurora's copy-on-write it copies every
    /// byte (seconds for a lab's megabytes). Recorded `creating` first; a process killed while
    /// copying leaves `creating`, and the next call starts the copy over.
    fn clone_cluster(
        &self,
        cx: &Call<'_>,
        req: &CloneCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "clone_cluster";
        let _lock = self.ctx.lock(cx, R, OP, &req.cluster_id)?;
        let st = self.ctx.state(R, OP)?;
        if st
            .clusters
            .get(&req.cluster_id)
            .is_some_and(|c| c.status != "creating")
        {
            return self.cluster_view(cx, &req.cluster_id, OP); // a re-run of the same step
        }
        let src = self.cluster_view(cx, &req.source_cluster, OP)?;
        rds::check_clonable(OP, &src)?;
        let writer = src
            .writer
            .clone()
            .or_else(|| src.members.first().cloned())
            .unwrap_or_default();
        let server = st
            .instances
            .get(&writer)
            .and_then(|i| i.server())
            .ok_or_else(|| {
                PrimitiveError::new(
                    R,
                    OP,
                    ErrorKind::Conflict,
                    format!("the writer {writer} of {} is not running (InvalidDBClusterStateFault)", src.id),
                    "wait until the cluster's instance is available (rds::wait_until_instance_available)",
                )
                .with_retryable(true)
            })?;
        let data = st.dir.join(&req.cluster_id);
        let group = src.parameter_group.clone();
        // A clone runs its source's major: the same binaries, which also copy it.
        let bin = st
            .clusters
            .get(&req.source_cluster)
            .and_then(|c| c.bin.clone());
        self.ctx.update(R, OP, |st| {
            st.clusters.insert(
                req.cluster_id.clone(),
                Cluster {
                    id: req.cluster_id.clone(),
                    replication_source: None,
                    slot: String::new(),
                    data: data.clone(),
                    status: "creating".into(),
                    members: Vec::new(),
                    parameter_group: group,
                    engine_version: src.engine_version.clone(),
                    promote_requested: false,
                    iam_auth: req.iam_auth,
                    basebackup_pid: None,
                    restored_from: Some(format!("{CLONE_OF}{}", src.id)),
                    bin: bin.clone(),
                    security_groups: None,
                },
            );
            Ok(())
        })?;
        pgproc::crash_point("clone_cluster:intent");
        start_over(&data).map_err(|e| lab_error(R, OP, e))?;
        let dir = self.ctx.dir.clone();
        let id = req.cluster_id.clone();
        pgproc::base_backup(
            bin.as_ref().unwrap_or(&st.bin),
            st.user.as_ref(),
            &st.dir,
            &server,
            &data,
            None,
            "clone_cluster:copying",
            |pid| {
                LabState::update(&dir, |st| {
                    if let Some(c) = st.clusters.get_mut(&id) {
                        c.basebackup_pid = Some(pid);
                    }
                    Ok(())
                })
            },
        )
        .map_err(|e| lab_error(R, OP, e))?;
        // A copy of a standby: without its signal it starts as a primary (a new timeline).
        for signal in ["standby.signal", "recovery.signal"] {
            let f = data.join(signal);
            if f.exists() {
                std::fs::remove_file(&f)
                    .map_err(|e| lab_error(R, OP, LabError::Io(format!("{}: {e}", f.display()))))?;
            }
        }
        pgproc::crash_point("clone_cluster:copied");
        self.ctx.update(R, OP, |st| {
            if let Some(c) = st.clusters.get_mut(&req.cluster_id) {
                c.status = "available".into();
                c.basebackup_pid = None;
            }
            st.event(
                &req.cluster_id,
                true,
                &format!("Cloned from {} (copy-on-write)", req.source_cluster),
            );
            Ok(())
        })?;
        self.cluster_view(cx, &req.cluster_id, OP)
    }
}

/// How a clone records its origin in `Cluster::restored_from`: this prefix and the source
/// cluster's id.
const CLONE_OF: &str = "clone of ";

/// How a cluster created empty records its origin in `Cluster::restored_from`: this prefix and
/// the instance it was created like (it never replicated).
const CREATED_LIKE: &str = "created empty like ";

/// The binaries an Aurora PostgreSQL `version` runs on in the lab: the lab's own (`own`) for
/// its own version; the newer major's (`newer`, [`PgBin::newer_major`]) for theirs, refused
/// with their install command when they are missing. Any other version is one the lab does
/// not offer: `Invalid`, naming those it does (what `list_engine_versions` lists).
fn lab_binaries(
    op: &str,
    own: &PgBin,
    version: &str,
    newer: impl FnOnce() -> Result<PgBin, LabError>,
) -> Result<PgBin, PrimitiveError> {
    if version == own.version {
        return Ok(own.clone());
    }
    let major = rds::major_minor(version).map(|(m, _)| m);
    let newer = newer();
    if let Some(m) = major.filter(|m| *m > own.major) {
        match &newer {
            Ok(b) if b.version == version => return Ok(b.clone()),
            Ok(_) => {}
            Err(e) => {
                return Err(PrimitiveError::invalid(
                    R,
                    op,
                    format!(
                        "Aurora PostgreSQL {version} runs on PostgreSQL {m}'s binaries in the lab, and it has none: {e}"
                    ),
                    format!(
                        "install them as the message says (scripts/test.sh does), or pick Aurora PostgreSQL {}",
                        own.version
                    ),
                ));
            }
        }
    }
    let offered: Vec<&str> = std::iter::once(own.version.as_str())
        .chain(newer.as_ref().ok().map(|b| b.version.as_str()))
        .collect();
    Err(PrimitiveError::invalid(
        R,
        op,
        format!(
            "the lab's Aurora PostgreSQL has no version {version} (InvalidParameterCombination)"
        ),
        format!(
            "pick one of {} (rds::list_engine_versions(\"aurora-postgresql\"))",
            offered.join(", ")
        ),
    ))
}

pub struct LabEc2 {
    pub ctx: Arc<LabCtx>,
}

fn sg_view(g: &SecurityGroup) -> Sg {
    Sg {
        id: g.id.clone(),
        name: g.name.clone(),
        vpc_id: g.vpc_id.clone(),
        ingress: g.ingress.clone(),
        egress: g.egress.clone(),
    }
}

impl Ec2 for LabEc2 {
    fn describe_security_groups(
        &self,
        _cx: &Call<'_>,
        vpc_id: &str,
    ) -> Result<Vec<Sg>, PrimitiveError> {
        let st = self.ctx.state("ec2", "describe_security_groups")?;
        Ok(ec2::sort_groups(
            st.security_groups
                .values()
                .filter(|g| g.vpc_id == vpc_id)
                .map(sg_view)
                .collect(),
        ))
    }

    fn ensure_quarantine_group(
        &self,
        _cx: &Call<'_>,
        vpc_id: &str,
        name: &str,
        admit: &ec2::Admit,
    ) -> Result<Sg, PrimitiveError> {
        const OP: &str = "ensure_quarantine_group";
        self.ctx.update("ec2", OP, |st| {
            if st.attributes.vpc_id != vpc_id {
                return Ok(Err(ec2::vpc_not_found(OP, vpc_id)));
            }
            if let Some(id) = st
                .security_groups
                .values()
                .find(|g| g.vpc_id == vpc_id && g.name == name)
                .map(|g| g.id.clone())
            {
                let missing = match ec2::check_quarantine_group(
                    OP,
                    &sg_view(&st.security_groups[&id]),
                    admit,
                ) {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(e)),
                };
                let g = st.security_groups.get_mut(&id).expect("found above");
                g.ingress.extend(missing);
                g.ingress.sort();
                return Ok(Ok(sg_view(g)));
            }
            let g = SecurityGroup {
                id: format!("sg-lab-{name}"),
                name: name.to_string(),
                vpc_id: vpc_id.to_string(),
                ingress: admit.rules(),
                egress: Vec::new(),
            };
            st.security_groups.insert(g.id.clone(), g.clone());
            Ok(Ok(sg_view(&g)))
        })?
    }

    fn allow_connection(
        &self,
        _cx: &Call<'_>,
        from_group: &str,
        to_group: &str,
        port: u16,
    ) -> Result<ec2::Connection, PrimitiveError> {
        const OP: &str = "allow_connection";
        // The lab's pg_hba.conf admits godwit by address only when a group names godwit's
        // group (`admission`); a rule from it added here would need every server in
        // `to_group` re-admitted. The quarantine's `admit` is the way to let godwit in.
        if from_group == GODWIT_GROUP {
            return Err(PrimitiveError::invalid(
                "ec2",
                OP,
                format!(
                    "the lab admits godwit's group {GODWIT_GROUP} through a quarantine's admit only"
                ),
                "ec2::ensure_quarantine_group(vpc, name, #{ admit: [...], port })",
            ));
        }
        self.ctx.update("ec2", OP, |st| {
            for g in [from_group, to_group] {
                if !st.security_groups.contains_key(g) {
                    return Ok(Err(ec2::group_not_found(OP, g)));
                }
            }
            let from = st
                .security_groups
                .get_mut(from_group)
                .expect("checked above");
            ec2::add_rule(&mut from.egress, ec2::egress_rule(port, to_group));
            let to = st.security_groups.get_mut(to_group).expect("checked above");
            // A rule from a group other than godwit's changes no `admission`: no pg_hba.conf
            // to rewrite.
            ec2::add_rule(&mut to.ingress, ec2::ingress_rule(port, from_group));
            Ok(Ok(ec2::Connection {
                from: sg_view(&st.security_groups[from_group]),
                to: sg_view(&st.security_groups[to_group]),
            }))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(rules: &[&str]) -> SecurityGroup {
        SecurityGroup {
            id: "sg-x".into(),
            name: "x".into(),
            vpc_id: "vpc-lab".into(),
            ingress: rules.iter().map(|r| r.to_string()).collect(),
            egress: Vec::new(),
        }
    }

    fn bin(version: &str) -> PgBin {
        PgBin {
            dir: PathBuf::from(format!("/pg/{version}/bin")),
            major: version.split('.').next().unwrap().parse().unwrap(),
            version: version.into(),
        }
    }

    fn newer() -> Result<PgBin, LabError> {
        Ok(bin("16.2"))
    }

    fn none_newer() -> Result<PgBin, LabError> {
        Err(LabError::Prerequisite(format!(
            "{} is not set; {}",
            pgproc::NEWER_BIN_VAR,
            pgproc::NEWER_INSTALL_HINT
        )))
    }

    #[test]
    fn a_created_cluster_runs_its_majors_binaries_and_a_missing_newer_major_names_its_install() {
        let own = bin("15.18");
        assert_eq!(lab_binaries("op", &own, "15.18", none_newer).unwrap(), own);
        assert_eq!(
            lab_binaries("op", &own, "16.2", newer).unwrap(),
            bin("16.2")
        );
        let missing = lab_binaries("op", &own, "16.2", none_newer).unwrap_err();
        assert_eq!(missing.kind, ErrorKind::Invalid, "{missing}");
        assert!(
            missing.message.contains("pip install pgserver") && missing.hint.contains("15.18"),
            "names the install command, and the version the lab has: {missing}"
        );
        // Versions the lab does not offer, whatever the major: each names those it does.
        for asked in ["16.4", "15.4", "17.0", "banana"] {
            let e = lab_binaries("op", &own, asked, newer).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Invalid, "{asked}: {e}");
            assert!(e.message.contains(asked), "{e}");
            assert!(e.hint.contains("pick one of 15.18, 16.2 "), "{asked}: {e}");
        }
        let e = lab_binaries("op", &own, "15.4", none_newer).unwrap_err();
        assert!(e.hint.contains("pick one of 15.18 "), "{e}");
    }

    #[test]
    fn groups_admit_by_address() {
        let app = group(&["tcp/5432 from 127.0.0.0/8"]);
        let godwit = group(&["tcp/5432 from sg-lab-godwit"]);
        let other = group(&["tcp/5432 from sg-lab-other"]);
        let none = group(&[]);
        assert_eq!(admission([&app]), Admission::Everyone);
        assert_eq!(admission([&godwit, &app]), Admission::Everyone);
        assert_eq!(admission([&godwit]), Admission::Godwit);
        assert_eq!(admission([&other, &godwit]), Admission::Godwit);
        assert_eq!(admission([&other]), Admission::Nobody);
        assert_eq!(admission([&none]), Admission::Nobody);
        assert_eq!(admission([]), Admission::Nobody);
    }

    #[test]
    fn the_quarantine_block_goes_first_and_comes_out_whole() {
        let dir = tempfile::tempdir().unwrap();
        let hba = dir.path().join("pg_hba.conf");
        let original = "local all all trust\nhost all all 127.0.0.1/32 trust\n";
        std::fs::write(&hba, original).unwrap();
        assert!(set_hba_quarantine(dir.path(), Admission::Godwit).unwrap());
        let q = std::fs::read_to_string(&hba).unwrap();
        assert!(q.starts_with(QUARANTINE_BEGIN), "first match wins: {q}");
        assert!(q.contains("host replication all 127.0.0.0/8 trust"), "{q}");
        assert!(q.contains("host all all 127.0.0.2/32 trust"), "{q}");
        assert!(q.contains("host all all 0.0.0.0/0 reject"), "{q}");
        assert!(
            !set_hba_quarantine(dir.path(), Admission::Godwit).unwrap(),
            "idempotent: no change"
        );
        assert!(set_hba_quarantine(dir.path(), Admission::Nobody).unwrap());
        let q = std::fs::read_to_string(&hba).unwrap();
        assert!(!q.contains("127.0.0.2"), "godwit locked out too: {q}");
        assert!(q.contains("host replication all 127.0.0.0/8 trust"), "{q}");
        assert!(set_hba_quarantine(dir.path(), Admission::Everyone).unwrap());
        assert_eq!(std::fs::read_to_string(&hba).unwrap(), original);
    }
}
