//! The primitive areas over a lab: what each RDS/EC2 operation means on one machine.
//!
//! | primitive | in the lab |
//! |---|---|
//! | RDS instance | a PostgreSQL server (the source primary: `wal_level=logical`) |
//! | `create_replica_cluster` | `pg_basebackup -R -C -S` from the source (the cluster = its data directory) |
//! | `create_cluster_instance` | the streaming replica's server on that data directory |
//! | `promote_cluster` | `pg_promote(wait => false)`; complete when `pg_is_in_recovery()` is false |
//! | `set_security_groups` | a deny-all group rejects the application role in `pg_hba.conf` + reload (stateful, like a security group: sessions stay) |
//! | `reboot_instance` | fast restart (SIGINT, start on the same port): every session ends |
//! | `delete_*` | stop the server, drop its slot on the source, remove its files |
//! | parameter groups | recorded; `applied`/`unsupported` checked against the server's `pg_settings` |
//! | engine versions | the installed server's version; supported extensions = `pg_available_extensions` |
//! | snapshots | not modelled (a clear error): the snapshot runbook runs in the sim world |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, PrimitiveError};
use godwit_stdlib::ec2::{self, Ec2, SecurityGroup as Sg};
use godwit_stdlib::pg::live::{BoxFuture, Connector, PG_CALL_LIMIT, Pool, Target};
use godwit_stdlib::rds::{
    self, Accepts, CreateClusterInstance, CreateParameterGroups, CreateReplicaCluster, DbCluster,
    DbInstance, EngineVersion, ExistingGroup, Parameter, ParameterGroupsCreated, ParameterRule,
    Promotion, Rds, RdsEvent, Reboot, RestoreCluster, Snapshot,
};

use crate::LabError;
use crate::pgproc::{self, ServerSpec};
use crate::state::{Cluster, Instance, LabState, ParameterGroup, SecurityGroup};

/// Shared by every area of one lab world.
pub struct LabCtx {
    pub dir: PathBuf,
    pub pool: Arc<Pool>,
}

impl LabCtx {
    pub fn new(dir: &Path, handle: tokio::runtime::Handle) -> Arc<LabCtx> {
        let connector = Arc::new(LabConnector {
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

/// Reaches a lab database on loopback as the superuser, in the application's database.
pub struct LabConnector {
    pub dir: PathBuf,
}

impl Connector for LabConnector {
    fn access(&self, _db: &str) -> godwit_stdlib::pg::Access {
        godwit_stdlib::pg::Access {
            available: true,
            how: "superuser postgres over loopback".into(),
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
            Ok(Target { config, tls: None })
        })
    }
}

/// The lab's stand-in for godwit's own security group (what a quarantine admits).
pub const GODWIT_GROUP: &str = "sg-lab-godwit";

const QUARANTINE_BEGIN: &str = "# godwit-lab quarantine: begin";
const QUARANTINE_END: &str = "# godwit-lab quarantine: end";

/// `pg_hba.conf` of `data` with the application role rejected (`reject == true`) or admitted.
pub fn set_hba_quarantine(data: &Path, role: &str, reject: bool) -> Result<bool, LabError> {
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
    let was = text.contains(QUARANTINE_BEGIN);
    let mut out = Vec::new();
    if reject {
        // First match wins in pg_hba.conf: these lines come before initdb's trust lines.
        out.push(QUARANTINE_BEGIN.to_string());
        out.push(format!("host all {role} 127.0.0.1/32 reject"));
        out.push(format!("host all {role} ::1/128 reject"));
        out.push(format!("local all {role} reject"));
        out.push(QUARANTINE_END.to_string());
    }
    out.extend(kept);
    std::fs::write(&path, out.join("\n") + "\n")
        .map_err(|e| LabError::Io(format!("write {}: {e}", path.display())))?;
    Ok(was != reject)
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
            engine_version: st.bin.version.clone(),
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
            allocated_storage_gb: data_size_gb(&i.spec.data),
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

    /// Fast shutdown of an instance's server (if it runs) and forget its connections.
    fn stop_server(&self, id: &str, inst: &Instance) {
        if let Some(pid) = inst.pid {
            pgproc::stop_pid(pid, pgproc::Signal::SIGINT, Duration::from_secs(60));
        }
        self.ctx.pool.forget(id);
    }

    fn unsupported(op: &str) -> PrimitiveError {
        PrimitiveError::new(
            R,
            op,
            ErrorKind::Invalid,
            format!("the lab world does not model snapshots (rds::{op})"),
            "run the snapshot runbook in the sim world (--world sim) or against AWS",
        )
    }
}

fn data_size_gb(data: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    // At least 1 GB: RDS's smallest allocation; the size-aware deadlines use it.
    (walk(data) / (1 << 30)).max(1)
}

impl Rds for LabRds {
    fn describe_instance(&self, _cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError> {
        let (st, inst) = self.instance("describe_instance", id)?;
        Ok(self.instance_view(&st, &inst))
    }

    fn describe_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        self.cluster_view(cx, id, "describe_cluster")
    }

    fn list_engine_versions(
        &self,
        cx: &Call<'_>,
        engine: &str,
    ) -> Result<Vec<EngineVersion>, PrimitiveError> {
        const OP: &str = "list_engine_versions";
        rds::check_engine(OP, engine)?;
        let st = self.ctx.state(R, OP)?;
        let version = st.bin.version.clone();
        let (major, minor) = rds::major_minor(&version).unwrap_or((st.bin.major, 0));
        let mut exts = self.ctx.sql(
            cx,
            &st.source,
            OP,
            "SELECT name FROM pg_available_extensions ORDER BY name",
        )?;
        exts.sort();
        Ok(vec![EngineVersion {
            engine: engine.to_string(),
            version,
            major,
            minor,
            parameter_group_family: rds::parameter_group_family(engine, major),
            supported_extensions: exts,
        }])
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
        let (st, source) = self.instance(OP, &req.source_id)?;
        let src_view = self.instance_view(&st, &source);
        let existing = match st.clusters.contains_key(&req.cluster_id) {
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
        // A basebackup interrupted by a crash left a partial copy and maybe the slot: start over.
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(|e| {
                lab_error(
                    R,
                    OP,
                    LabError::Io(format!("remove {}: {e}", data.display())),
                )
            })?;
        }
        self.ctx.sql(
                cx,
            &req.source_id,
            OP,
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active"
            ),
        )?;
        pgproc::basebackup(&st.bin, st.user.as_ref(), &st.dir, &src, &data, &slot)
            .map_err(|e| lab_error(R, OP, e))?;
        let group = req
            .parameter_group
            .clone()
            .unwrap_or_else(|| "default.aurora-postgresql".into());
        self.ctx.update(R, OP, |st| {
            st.clusters.insert(
                req.cluster_id.clone(),
                Cluster {
                    id: req.cluster_id.clone(),
                    replication_source: Some(req.source_id.clone()),
                    slot: slot.clone(),
                    data: data.clone(),
                    status: "available".into(),
                    members: Vec::new(),
                    parameter_group: group,
                    engine_version: req.engine_version.clone(),
                    promote_requested: false,
                    iam_auth: req.iam_auth,
                },
            );
            st.event(&req.cluster_id, true, "DB cluster created");
            Ok(())
        })?;
        self.cluster_view(cx, &req.cluster_id, OP)
    }

    fn create_cluster_instance(
        &self,
        _cx: &Call<'_>,
        req: &CreateClusterInstance,
    ) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "create_cluster_instance";
        let st = self.ctx.state(R, OP)?;
        let cl = st
            .clusters
            .get(&req.cluster_id)
            .ok_or_else(|| rds::cluster_not_found(OP, &req.cluster_id))?;
        let existing = st.instances.get(&req.instance_id);
        if let Some(i) =
            rds::existing_member(OP, req, existing.map(|i| self.instance_view(&st, i)))?
            && existing.is_some_and(|i| i.pid.is_some_and(pgproc::alive))
        {
            return Ok(i); // a member whose server is down is started again below
        }
        let spec = ServerSpec {
            data: cl.data.clone(),
            socket_dir: st.dir.join(format!("{}.s", req.instance_id)),
            log: st.dir.join(format!("{}.log", req.instance_id)),
            settings: pgproc::PRIMARY_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        pgproc::make_owned_dir(&spec.socket_dir, st.user.as_ref())
            .map_err(|e| lab_error(R, OP, e))?;
        let server = pgproc::start_server(
            &st.bin,
            st.user.as_ref(),
            &st.dir,
            &spec,
            0,
            Duration::from_secs(120),
        )
        .map_err(|e| lab_error(R, OP, e))?;
        let source_groups = st
            .instances
            .get(&st.source)
            .map(|s| s.security_groups.clone())
            .unwrap_or_default();
        let inst = self.ctx.update(R, OP, |st| {
            let inst = Instance {
                id: req.instance_id.clone(),
                engine: "aurora-postgresql".into(),
                cluster: Some(req.cluster_id.clone()),
                port: server.port,
                spec: spec.clone(),
                pid: Some(server.pid),
                status: "available".into(),
                security_groups: source_groups,
                parameter_group: req
                    .parameter_group
                    .clone()
                    .unwrap_or_else(|| "default.aurora-postgresql".into()),
                reboots: Vec::new(),
            };
            st.instances.insert(req.instance_id.clone(), inst.clone());
            st.event(&req.instance_id, false, "DB instance created");
            if let Some(c) = st.clusters.get_mut(&req.cluster_id)
                && !c.members.contains(&req.instance_id)
            {
                c.members.push(req.instance_id.clone());
            }
            Ok(inst)
        })?;
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
        let admits = groups
            .iter()
            .any(|g| !st.security_groups[g].ingress.is_empty());
        let changed = set_hba_quarantine(&inst.spec.data, &st.app_role, !admits)
            .map_err(|e| lab_error(R, OP, e))?;
        if changed && inst.pid.is_some() {
            self.ctx.sql(cx, id, OP, "SELECT pg_reload_conf()")?;
        }
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
        let (st, inst) = self.instance(OP, id)?;
        let view = self.instance_view(&st, &inst);
        let plan = rds::reboot(OP, &view, inst.reboots.iter().any(|t| t == token))?;
        if plan == Reboot::Done {
            return Ok(view);
        }
        if plan == Reboot::Reboot {
            self.ctx.update(R, OP, |st| {
                if let Some(i) = st.instances.get_mut(id) {
                    i.status = "rebooting".into();
                }
                st.event(id, false, "DB instance shutdown");
                Ok(())
            })?;
            self.stop_server(id, &inst);
        }
        // `Record`: a process that crashed mid-reboot left the server down, or up again
        // without saying so.
        let pid = match inst
            .pid
            .filter(|p| plan == Reboot::Record && pgproc::alive(*p))
        {
            Some(pid) => pid,
            None => {
                pgproc::start_server(
                    &st.bin,
                    st.user.as_ref(),
                    &st.dir,
                    &inst.spec,
                    inst.port,
                    Duration::from_secs(120),
                )
                .map_err(|e| lab_error(R, OP, e))?
                .pid
            }
        };
        let token = token.to_string();
        self.ctx.update(R, OP, |st| {
            if let Some(i) = st.instances.get_mut(id) {
                i.pid = Some(pid);
                i.status = "available".into();
                i.reboots.push(token);
            }
            st.event(id, false, "DB instance restarted");
            Ok(())
        })?;
        self.describe_instance(cx, id)
    }

    fn promote_cluster(&self, cx: &Call<'_>, id: &str) -> Result<DbCluster, PrimitiveError> {
        const OP: &str = "promote_cluster";
        let cl = self.cluster_view(cx, id, OP)?;
        if rds::promotion(OP, &cl)? == Promotion::Nothing {
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
        // wait => false: pg_promote(wait => true) rounds up to 100 ms polls (local-postgres.md
        // gotcha 13); wait_until_cluster_promoted polls pg_is_in_recovery() instead.
        self.ctx
            .sql(cx, id, OP, "SELECT pg_promote(wait => false)")?;
        self.ctx.update(R, OP, |st| {
            if let Some(c) = st.clusters.get_mut(id) {
                c.promote_requested = true;
                c.status = "promoting".into();
            }
            Ok(())
        })?;
        self.cluster_view(cx, id, OP)
    }

    fn delete_instance(&self, _cx: &Call<'_>, id: &str) -> Result<DbInstance, PrimitiveError> {
        const OP: &str = "delete_instance";
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
        let mut view = self.cluster_view(cx, id, OP)?;
        if rds::deleting_cluster(OP, &view, &view.members)? {
            return Ok(view);
        }
        let st = self.ctx.state(R, OP)?;
        let cl = st.clusters[id].clone();
        if let Some(src) = &cl.replication_source {
            self.ctx.sql(
                cx,
                src,
                OP,
                &format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{}' AND NOT active",
                    cl.slot
                ),
            )?;
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

    /// The lab runs its servers on the one class it has (`db.lab.local`), for either engine.
    fn list_orderable_instance_classes(
        &self,
        _cx: &Call<'_>,
        engine: &str,
        _version: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "list_orderable_instance_classes";
        rds::check_engine(OP, engine)?;
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

    fn create_snapshot(
        &self,
        _cx: &Call<'_>,
        _: &str,
        _: &str,
    ) -> Result<Snapshot, PrimitiveError> {
        Err(Self::unsupported("create_snapshot"))
    }

    fn describe_snapshot(&self, _cx: &Call<'_>, _: &str) -> Result<Snapshot, PrimitiveError> {
        Err(Self::unsupported("describe_snapshot"))
    }

    fn restore_cluster_from_snapshot(
        &self,
        _cx: &Call<'_>,
        _: &RestoreCluster,
    ) -> Result<DbCluster, PrimitiveError> {
        Err(Self::unsupported("restore_cluster_from_snapshot"))
    }
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
        egress: Vec::new(),
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
            };
            st.security_groups.insert(g.id.clone(), g.clone());
            Ok(Ok(sg_view(&g)))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quarantine_block_goes_first_and_comes_out_whole() {
        let dir = tempfile::tempdir().unwrap();
        let hba = dir.path().join("pg_hba.conf");
        let original = "local all all trust\nhost all all 127.0.0.1/32 trust\n";
        std::fs::write(&hba, original).unwrap();
        assert!(set_hba_quarantine(dir.path(), "app", true).unwrap());
        let q = std::fs::read_to_string(&hba).unwrap();
        assert!(q.starts_with(QUARANTINE_BEGIN), "first match wins: {q}");
        assert!(q.contains("host all app 127.0.0.1/32 reject"));
        assert!(
            !set_hba_quarantine(dir.path(), "app", true).unwrap(),
            "idempotent: no change, no reload"
        );
        assert!(set_hba_quarantine(dir.path(), "app", false).unwrap());
        assert_eq!(std::fs::read_to_string(&hba).unwrap(), original);
    }
}
