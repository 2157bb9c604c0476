//! The hook service moto's launcher forwards database mutations to (`--hooks URL`,
//! docs/moto.md): each operation applied to real servers with the lab's own areas
//! (`godwit_lab::areas::LabRds`), and each endpoint given its front door.
//!
//! | op | from moto | here |
//! |---|---|---|
//! | `create_instance` | `CreateDBInstance` (standalone) | `initdb`, start, roles (`rdsadmin`, `rds_iam`, the IAM users), the application's data; its door |
//! | `create_cluster` | `CreateDBCluster` with an instance as `ReplicationSourceIdentifier` | `LabRds::create_replica_cluster` (`pg_basebackup` of the source); writer and reader doors |
//! | `create_cluster_instance` | `CreateDBInstance` into that cluster | `LabRds::create_cluster_instance` (a streaming replica); its door |
//! | `modify` | `ModifyDBInstance` / `ModifyDBCluster` (security groups, IAM auth) | the doors enforce the new groups and IAM setting |
//! | `security_group` | `Authorize/RevokeSecurityGroupIngress` | the group's rules |
//! | `reboot_instance` | `RebootDBInstance` | `LabRds::reboot_instance` (fast restart: every session ends) |
//! | `promote_cluster` | `PromoteReadReplicaDBCluster` | `LabRds::promote_cluster`, answered once out of recovery |
//! | `delete_instance` / `delete_cluster` | `DeleteDBInstance` / `DeleteDBCluster` | the lab's deletes; the doors close |
//! | `reset` | `POST /moto-api/reset` | every server stopped, the lab emptied |

use std::sync::Arc;
use std::time::Duration;

use godwit_lab::pgproc::{self, ServerSpec};
use godwit_lab::state::Instance;
use godwit_stdlib::rds::{CreateClusterInstance, CreateReplicaCluster, Rds};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Harness;
use super::front::Serves;
use super::net::{Group, Rule};

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    CreateInstance {
        id: String,
        port: u16,
        iam: bool,
        groups: Vec<Group>,
    },
    CreateCluster {
        id: String,
        source_id: String,
        port: u16,
        iam: bool,
        groups: Vec<Group>,
    },
    CreateClusterInstance {
        id: String,
        cluster_id: String,
        instance_class: String,
        port: u16,
    },
    Modify {
        id: String,
        groups: Vec<Group>,
        iam: bool,
    },
    SecurityGroup {
        id: String,
        ingress: Vec<Rule>,
    },
    RebootInstance {
        id: String,
    },
    PromoteCluster {
        id: String,
    },
    DeleteInstance {
        id: String,
    },
    DeleteCluster {
        id: String,
    },
    Reset,
}

/// Serve `POST /op` on `listener` until the runtime ends.
pub async fn serve(listener: TcpListener, harness: Arc<Harness>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let h = harness.clone();
        tokio::spawn(async move {
            let (status, body) = match read_request(&mut sock).await {
                Ok(body) => {
                    let h2 = h.clone();
                    match tokio::task::spawn_blocking(move || h2.apply(&body)).await {
                        Ok(Ok(v)) => (200, v),
                        Ok(Err(e)) => (500, json!({ "error": e })),
                        Err(e) => (500, json!({ "error": format!("the hook panicked: {e}") })),
                    }
                }
                Err(e) => (400, json!({ "error": e })),
            };
            if status != 200 {
                h.shared.log(format!("hook failed: {body}"));
            }
            let body = body.to_string();
            let reason = if status == 200 { "OK" } else { "Error" };
            let _ = sock
                .write_all(
                    format!(
                        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
            let _ = sock.shutdown().await;
        });
    }
}

/// The body of one HTTP/1.1 request (its `Content-Length` bytes).
async fn read_request(sock: &mut tokio::net::TcpStream) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the request ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err("request head too long".into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf[head_end..(head_end + len).min(buf.len())].to_vec())
}

/// How long a promotion may take to leave recovery.
const PROMOTE_LIMIT: Duration = Duration::from_secs(120);

impl Harness {
    /// Apply one forwarded operation (a JSON body) on a blocking thread.
    pub fn apply(&self, body: &[u8]) -> Result<Value, String> {
        let op: Op = serde_json::from_slice(body).map_err(|e| {
            format!(
                "unknown hook operation {}: {e}",
                String::from_utf8_lossy(body)
            )
        })?;
        let cx = |op: &'static str| self.host.context("rds", op);
        let e = |e: godwit_engine::PrimitiveError| e.to_string();
        match op {
            Op::CreateInstance {
                id,
                port,
                iam,
                groups,
            } => {
                self.create_source(&id)?;
                self.shared
                    .net
                    .lock()
                    .unwrap()
                    .set_access(&id, &groups, iam);
                let ip = self.open_door(Serves::Instance(id.clone()), &id, port)?;
                Ok(json!({ "address": ip.to_string() }))
            }
            Op::CreateCluster {
                id,
                source_id,
                port,
                iam,
                groups,
            } => {
                // The real servers run one version; moto's versions are its own (godwit checked
                // them against moto's answers already).
                let version = self.state()?.bin.version;
                self.rds
                    .create_replica_cluster(
                        &cx("create_replica_cluster"),
                        &CreateReplicaCluster {
                            cluster_id: id.clone(),
                            source_id,
                            engine_version: version,
                            parameter_group: None,
                            security_groups: None,
                            kms_key_id: None,
                            iam_auth: iam,
                        },
                    )
                    .map_err(e)?;
                self.shared
                    .net
                    .lock()
                    .unwrap()
                    .set_access(&id, &groups, iam);
                let writer = self.open_door(Serves::Writer(id.clone()), &id, port)?;
                let reader = self.open_door(Serves::Reader(id.clone()), &id, port)?;
                Ok(json!({ "endpoint": writer.to_string(), "reader_endpoint": reader.to_string() }))
            }
            Op::CreateClusterInstance {
                id,
                cluster_id,
                instance_class,
                port,
            } => {
                self.rds
                    .create_cluster_instance(
                        &cx("create_cluster_instance"),
                        &CreateClusterInstance {
                            instance_id: id.clone(),
                            cluster_id: cluster_id.clone(),
                            instance_class,
                            parameter_group: None,
                        },
                    )
                    .map_err(e)?;
                let ip = self.open_door(Serves::Instance(id), &cluster_id, port)?;
                Ok(json!({ "address": ip.to_string() }))
            }
            Op::Modify { id, groups, iam } => {
                self.shared
                    .net
                    .lock()
                    .unwrap()
                    .set_access(&id, &groups, iam);
                Ok(json!({}))
            }
            Op::SecurityGroup { id, ingress } => {
                self.shared.net.lock().unwrap().rules.insert(id, ingress);
                Ok(json!({}))
            }
            Op::RebootInstance { id } => {
                self.reboots
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let token = format!(
                    "harness-{}",
                    self.reboots.load(std::sync::atomic::Ordering::SeqCst)
                );
                self.rds
                    .reboot_instance(&cx("reboot_instance"), &id, &token)
                    .map_err(e)?;
                Ok(json!({}))
            }
            Op::PromoteCluster { id } => {
                self.rds
                    .promote_cluster(&cx("promote_cluster"), &id)
                    .map_err(e)?;
                let deadline = std::time::Instant::now() + PROMOTE_LIMIT;
                loop {
                    let c = self
                        .rds
                        .describe_cluster(&cx("describe_cluster"), &id)
                        .map_err(e)?;
                    if c.replication_source_identifier.is_none() {
                        return Ok(json!({}));
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(format!("{id} still in recovery after {PROMOTE_LIMIT:?}"));
                    }
                    cx("describe_cluster")
                        .sleep(Duration::from_millis(20))
                        .map_err(e)?;
                }
            }
            Op::DeleteInstance { id } => {
                let r = self
                    .rds
                    .delete_instance(&cx("delete_instance"), &id)
                    .map_err(e);
                self.close_doors(|s| *s == Serves::Instance(id.clone()));
                r.map(|_| json!({}))
            }
            Op::DeleteCluster { id } => {
                let r = self
                    .rds
                    .delete_cluster(&cx("delete_cluster"), &id)
                    .map_err(e);
                self.close_doors(
                    |s| matches!(s, Serves::Writer(c) | Serves::Reader(c) if *c == id),
                );
                r.map(|_| json!({}))
            }
            Op::Reset => {
                self.reset()?;
                Ok(json!({}))
            }
        }
    }

    /// A new source primary `id`: the lab's server settings, the roles RDS and the operator
    /// create, and the application's data (the lab's seed, see `godwit_lab::supervisor`).
    fn create_source(&self, id: &str) -> Result<(), String> {
        let st = self.state()?;
        if st.instances.contains_key(id) {
            return Err(format!("the harness already has a server for {id}"));
        }
        let spec = ServerSpec {
            data: self.dir.join(id),
            socket_dir: self.dir.join(format!("{id}.s")),
            log: self.dir.join(format!("{id}.log")),
            settings: pgproc::PRIMARY_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let user = st.user.as_ref();
        pgproc::make_owned_dir(&spec.socket_dir, user).map_err(|e| e.to_string())?;
        pgproc::initdb(&st.bin, user, &self.dir, &spec.data).map_err(|e| e.to_string())?;
        let server =
            pgproc::start_server(&st.bin, user, &self.dir, &spec, 0, Duration::from_secs(60))
                .map_err(|e| e.to_string())?;
        self.host
            .context("rds", "create_instance")
            .block_on(Duration::from_secs(120), async {
                self.seed(server.port, &st.app_role, &st.app_db, st.seed_rows)
                    .await
                    .map_err(|m| {
                        godwit_engine::PrimitiveError::new(
                            "rds",
                            "create_instance",
                            godwit_engine::ErrorKind::Internal,
                            m,
                            "",
                        )
                    })
            })
            .map_err(|e| e.to_string())?;
        let id = id.to_string();
        godwit_lab::LabState::update(&self.dir, |st| {
            if st.source.is_empty() {
                st.source = id.clone();
            }
            st.instances.insert(
                id.clone(),
                Instance {
                    id: id.clone(),
                    engine: "postgres".into(),
                    cluster: None,
                    port: server.port,
                    spec: spec.clone(),
                    pid: Some(server.pid),
                    status: "available".into(),
                    security_groups: Vec::new(),
                    parameter_group: format!("lab-postgres{}", st.bin.major),
                    reboots: Vec::new(),
                    op: None,
                    tags: Default::default(),
                },
            );
            st.event(&id, false, "DB instance created");
            Ok(())
        })
        .map_err(|e| e.to_string())
    }

    /// Roles, then the application's role, database and tables.
    async fn seed(&self, port: u16, role: &str, db: &str, rows: i64) -> Result<(), String> {
        let connect = |dbname: &str| {
            let conninfo = format!(
                "host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=10"
            );
            async move {
                let (c, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("connect to the new server: {e}"))?;
                tokio::spawn(conn);
                Ok::<_, String>(c)
            }
        };
        let admin = connect("postgres").await?;
        // What RDS has (its own superuser, `rds_iam`, `rds_superuser`'s powers) and what the
        // operator grants godwit (docs/aws.md): `rds_iam`, and what ending sessions, blocking
        // logins and reading every table takes.
        let mut sql = vec![
            format!("CREATE ROLE {} SUPERUSER LOGIN", self.shared.admin),
            "CREATE ROLE rds_iam NOLOGIN".to_string(),
            "CREATE ROLE rds_superuser NOLOGIN".to_string(),
            "GRANT pg_monitor, pg_signal_backend, pg_read_all_data TO rds_superuser".to_string(),
        ];
        for u in &self.opts.iam_users {
            sql.push(format!(
                "CREATE ROLE {u} LOGIN CREATEROLE REPLICATION IN ROLE rds_superuser, rds_iam"
            ));
        }
        sql.push(format!("CREATE ROLE {role} LOGIN"));
        // Every authorized connection in the server's log (with its user and
        // application_name), so a test can tell whether godwit reached a database at all;
        // `ALTER SYSTEM` lands in postgresql.auto.conf, which the replicas' base backups copy.
        sql.push("ALTER SYSTEM SET log_connections = on".to_string());
        sql.push("SELECT pg_reload_conf()".to_string());
        sql.push(format!("CREATE DATABASE {db} OWNER {role}"));
        for s in &sql {
            admin
                .batch_execute(s)
                .await
                .map_err(|e| format!("{s}: {}", godwit_stdlib::pg::live::error_text(&e)))?;
        }
        let c = connect(db).await?;
        c.batch_execute(&format!(
            "SET ROLE {role};
             CREATE TABLE {table} (client int, seq bigint, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (client, seq));
             CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, amount numeric(12,2), note text, created timestamptz NOT NULL DEFAULT now());
             INSERT INTO orders (customer, amount, note)
               SELECT g % 997, (g * 7 % 100000) / 100.0, CASE WHEN g % 10 = 0 THEN NULL ELSE 'order ' || g END
               FROM generate_series(1, {rows}) g;
             {tpcb}
             RESET ROLE;",
            table = godwit_lab::workload::TABLE,
            tpcb = godwit_lab::workload::tpcb_schema(rows),
        ))
        .await
        .map_err(|e| format!("seed: {}", godwit_stdlib::pg::live::error_text(&e)))
    }
}
