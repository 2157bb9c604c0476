//! Starting, describing and stopping a lab.
//!
//! The supervisor is the process that brings a lab up and keeps the parts that must live as
//! long as the lab: the xDS control plane (with its management API, which the `route` area of
//! every `godwit run` talks to), the Envoy process, and the one-second metric sampler. Servers
//! (the source, replicas created by runs) and CDC consumers are recorded in `lab.json` by pid
//! and may be started by other processes; [`Supervisor::down`] and [`down_dir`] stop every one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use godwit_xds::envoy::EnvoyProcess;
use godwit_xds::model::{Addr, HoldBudget, RouteSpec};
use godwit_xds::{Config, ControlPlane};
use nix::sys::signal::Signal;
use serde::Serialize;

use godwit_stdlib::pg::live::OwnedRuntime;
use godwit_stdlib::pg::live::error_text;

use crate::LabError;
use crate::metrics::ADMIN;
use crate::pgproc::{self, PgBin, ServerSpec, ServerUser};
use crate::route_cdc::start_consumer;
use crate::state::{
    Attributes, Consumer, FORMAT_VERSION, Instance, LabState, ParameterGroup, RouteInfo,
    SecurityGroup,
};

/// The lab's Envoy node id: the route's expected node.
const LAB_ENVOY: &str = "lab-envoy-1";
/// One-second samples a lab has taken when it is up: what a preflight's "at least 5
/// datapoints" needs, plus one past the last of them (a period is published once the sampler
/// has moved past it: `metrics::published_until`), plus one for a second the sampler skipped.
const READY_SAMPLES: usize = 7;

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Where the lab lives (created; must not hold a running lab).
    pub dir: PathBuf,
    /// The source's RDS instance id (and the route's name).
    pub source: String,
    /// Rows in the seeded `orders` table.
    pub seed_rows: i64,
    /// Start a CDC consumer (`pg_recvlogical`, `test_decoding`) on a logical slot.
    pub cdc: bool,
    /// Envoy binary; `None`: `GODWIT_ENVOY_BIN` or the project's `.venv`.
    pub envoy: Option<PathBuf>,
    /// The replicas' `wal_retrieve_retry_interval` (default PostgreSQL's 5 s; see
    /// [`Attributes::replica_retry_ms`]).
    pub replica_retry: Duration,
    /// Each instance's storage allocation, GiB (default 20, RDS's smallest gp3).
    pub allocated_storage_gb: u64,
    /// Whether the runbook gets database access (default on). Off: credential-less — see
    /// [`Attributes::db_access`]; the sampler still produces every CloudWatch series.
    pub db_access: bool,
    /// RDS's heartbeat on the source (default every 3 s; RDS: about every 5 minutes), `None`:
    /// none. See [`crate::metrics::heartbeat`].
    pub heartbeat: Option<Duration>,
    /// The source's `archive_timeout` (default 10 s; RDS: 300 s), applied by RDS's agent
    /// ([`crate::metrics::force_switch`]), `None`: never. With the heartbeat, an idle source
    /// switches to a new WAL segment every period, and its slot lag saw-tooths between 0 and
    /// one segment (the 0↔64 MB rule's phenomenon).
    pub archive_timeout: Option<Duration>,
    /// WAL segment size of the source (and so of its copies), MiB (default 64, RDS's;
    /// `None`: PostgreSQL's 16).
    pub wal_segment_mib: Option<u32>,
    /// The source's tags (default none, as a new RDS instance): e.g. `godwit:fleet=lab` for
    /// fleet discovery.
    pub tags: BTreeMap<String, String>,
}

impl LabOptions {
    pub fn new(dir: impl Into<PathBuf>) -> LabOptions {
        LabOptions {
            dir: dir.into(),
            source: "orders-db".into(),
            seed_rows: 10_000,
            cdc: true,
            envoy: None,
            replica_retry: Duration::from_secs(5),
            allocated_storage_gb: 20,
            db_access: true,
            // RDS's five minutes squeezed like the lab's day: a tooth every 10 s, read by
            // one-second samples, as RDS's minute datapoints read a tooth every 5 minutes.
            heartbeat: Some(Duration::from_secs(3)),
            archive_timeout: Some(Duration::from_secs(10)),
            wal_segment_mib: Some(64),
            tags: BTreeMap::new(),
        }
    }
}

/// A running lab, owned by this process. Dropping it stops everything (also on panic).
pub struct Supervisor {
    pub dir: PathBuf,
    pub state: LabState,
    plane: Option<ControlPlane>,
    envoy: Option<EnvoyProcess>,
    sampler_stop: tokio::sync::watch::Sender<bool>,
    cleanup: Cleanup,
    down: bool,
}

/// What `down` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cleanup {
    /// The whole directory (tests, benchmarks, the demo: throwaway).
    All,
    /// The servers' data, snapshots and sockets; logs, `lab.json`, metrics and the workload's
    /// figures stay ([`remove_data`]).
    Data,
    Nothing,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(e: impl std::fmt::Display) -> LabError {
    LabError::Io(e.to_string())
}

/// The Envoy binary: the option, `GODWIT_ENVOY_BIN`, or the project's `.venv`.
pub fn envoy_binary(opt: Option<&Path>) -> Result<PathBuf, LabError> {
    if let Some(p) = opt {
        return Ok(p.to_path_buf());
    }
    let root = std::env::current_dir().map_err(io)?;
    // Walk up: tests run in the crate directory, the project's .venv is at the root.
    let mut dir: Option<&Path> = Some(&root);
    let mut last = String::new();
    while let Some(d) = dir {
        match godwit_xds::envoy::locate(d) {
            Ok(p) => return Ok(p),
            Err(e) => last = e,
        }
        dir = d.parent();
    }
    Err(LabError::Prerequisite(last))
}

impl Supervisor {
    /// Bring a lab up: the source server with the application's role, database and data,
    /// the control plane and its management API, Envoy routing to the source, the sampler,
    /// and (option) a CDC consumer.
    pub async fn up(opts: LabOptions) -> Result<Supervisor, LabError> {
        if let Ok(st) = LabState::load(&opts.dir) {
            if pgproc::alive(st.supervisor_pid) && st.supervisor_pid != std::process::id() {
                return Err(LabError::State(format!(
                    "a lab is already up at {} (supervisor pid {}); `godwit lab down` first",
                    opts.dir.display(),
                    st.supervisor_pid
                )));
            }
            // A lab whose supervisor died: stop what it left and start over.
            stop_all(&st);
        }
        let envoy_bin = envoy_binary(opts.envoy.as_deref())?;
        let bin = PgBin::locate()?;
        let user = ServerUser::for_this_process()?;
        if opts.dir.exists() {
            std::fs::remove_dir_all(&opts.dir).map_err(io)?;
        }
        pgproc::make_owned_dir(&opts.dir, user.as_ref())?;
        let dir = std::fs::canonicalize(&opts.dir).map_err(io)?;
        pgproc::check_reachable(&dir, user.as_ref())?;

        // The source server.
        let spec = ServerSpec {
            data: dir.join(&opts.source),
            socket_dir: dir.join(format!("{}.s", opts.source)),
            log: dir.join(format!("{}.log", opts.source)),
            // RDS preloads pg_stat_statements (the query check reads it); the application's
            // database has the extension (`seed`).
            settings: pgproc::PRIMARY_SETTINGS
                .iter()
                .chain(&[("shared_preload_libraries", "pg_stat_statements")])
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let segment = opts.wal_segment_mib;
        let server = {
            let (bin, user, dir, spec) = (bin.clone(), user.clone(), dir.clone(), spec.clone());
            tokio::task::spawn_blocking(move || {
                pgproc::make_owned_dir(&spec.socket_dir, user.as_ref())?;
                pgproc::initdb_with(&bin, user.as_ref(), &dir, &spec.data, segment)?;
                pgproc::start_server(&bin, user.as_ref(), &dir, &spec, 0, Duration::from_secs(60))
            })
            .await
            .map_err(io)??
        };
        let app_role = "app".to_string();
        let app_db = "app".to_string();
        seed(server.port, &app_role, &app_db, opts.seed_rows).await?;

        let mut security_groups = BTreeMap::new();
        security_groups.insert(
            "sg-lab-app".to_string(),
            SecurityGroup {
                id: "sg-lab-app".into(),
                name: "lab-app".into(),
                vpc_id: Attributes::default().vpc_id,
                // The source's own port, as an RDS application group's rule names its
                // instance's port (5432 there): the lab's servers listen on free ports, and a
                // rule on 5432 admitted no server subscribing to the source — the logical
                // path's subscription timed out (`LabConnector::may_connect`) where the
                // simulator, whose source listens on 5432, lets it through. A cluster's own
                // port is not covered; the reverse path opens it (`ec2::allow_connection`).
                ingress: vec![format!("tcp/{} from 127.0.0.0/8", server.port)],
                // EC2's default egress for a new group: everything out.
                egress: vec!["all to 0.0.0.0/0".into()],
            },
        );
        let source_group = format!("lab-postgres{}", bin.major);
        let mut parameter_groups = BTreeMap::new();
        parameter_groups.insert(
            source_group.clone(),
            ParameterGroup {
                name: source_group.clone(),
                family: format!("postgres{}", bin.major),
                cluster: false,
                parameters: BTreeMap::new(),
                created_at: 0,
            },
        );

        // The control plane, then the initial route to the source, then Envoy.
        let mut config = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.state_path = Some(dir.join("xds.json"));
        config.api = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let plane = ControlPlane::start(config)
            .await
            .map_err(|e| LabError::Process(format!("control plane: {e}")))?;
        let listen_port = pgproc::free_port()?;
        let mut route = RouteSpec::new(
            Addr::new("127.0.0.1", listen_port),
            Addr::new("127.0.0.1", server.port),
        );
        // A held connection retries its upstream connect with jittered exponential backoff; when
        // the hold is released it waits out its current interval. The lab's fence takes a few
        // hundred ms (not RDS's minute), so a short interval cap keeps that wait small: up to
        // 200 ms (mean ~100 ms) instead of 1 s, over a budget of ~10 s of hold.
        route.hold = HoldBudget {
            max_connect_attempts: 100,
            base_interval_ms: 20,
            max_interval_ms: 200,
        };
        // Envoy connects upstream from an address of its own: the lab's security groups filter
        // by client address, and a quarantine must refuse the application through Envoy too.
        route.upstream_bind = Some(crate::areas::ENVOY_ADDR.to_string());
        // The readers' route (`<source>-read`, a second listener): the standard runbook's
        // shadow reads (read_route = auto) move it to the replica during validation.
        let read_port = pgproc::free_port()?;
        let mut read_route = route.clone();
        read_route.listen = Addr::new("127.0.0.1", read_port);
        plane
            .publish(&opts.source, route)
            .await
            .map_err(|e| LabError::Process(format!("publish the initial route: {e}")))?;
        let read_name = format!("{}-read", opts.source);
        plane
            .publish(&read_name, read_route)
            .await
            .map_err(|e| LabError::Process(format!("publish the readers' route: {e}")))?;
        let admin_port = pgproc::free_port()?;
        let mut envoy = EnvoyProcess::start(
            &envoy_bin,
            &dir,
            LAB_ENVOY,
            plane.local_addr(),
            SocketAddr::from(([127, 0, 0, 1], admin_port)),
        )
        .map_err(|e| LabError::Process(format!("start Envoy {}: {e}", envoy_bin.display())))?;
        envoy
            .wait_ready(Duration::from_secs(60))
            .await
            .map_err(LabError::Process)?;
        wait_route_served(listen_port).await?;
        wait_route_served(read_port).await?;
        // The route must reach the lab's Envoy, as `dal serve --expect-nodes` names a fleet: a
        // cutover then fails naming it if it is gone. Set once it is up, so that the initial
        // publish above did not wait for it.
        for name in [&opts.source, &read_name] {
            plane
                .set_expected_nodes(name, &[LAB_ENVOY.to_string()])
                .map_err(|e| LabError::Process(format!("control plane: {e}")))?;
        }

        let mut state = LabState {
            format: FORMAT_VERSION,
            dir: dir.clone(),
            bin: bin.clone(),
            user: user.clone(),
            source: opts.source.clone(),
            app_role,
            app_db,
            supervisor_pid: std::process::id(),
            instances: BTreeMap::new(),
            clusters: BTreeMap::new(),
            security_groups,
            parameter_groups,
            route: RouteInfo {
                listen_port,
                read_listen_port: read_port,
                xds_port: plane.local_addr().port(),
                api_port: plane.api_addr().map(|a| a.port()).unwrap_or(0),
                envoy_admin_port: admin_port,
                envoy_pid: Some(envoy.pid()),
            },
            cdc: BTreeMap::new(),
            attributes: Attributes {
                replica_retry_ms: opts.replica_retry.as_millis() as u64,
                allocated_storage_gb: opts.allocated_storage_gb,
                db_access: opts.db_access,
                heartbeat_ms: opts.heartbeat.map(|d| d.as_millis() as u64),
                ..Attributes::default()
            },
            events: Vec::new(),
            seed_rows: opts.seed_rows,
            snapshots: BTreeMap::new(),
        };
        state.instances.insert(
            opts.source.clone(),
            Instance {
                id: opts.source.clone(),
                engine: "postgres".into(),
                cluster: None,
                port: server.port,
                spec,
                pid: Some(server.pid),
                status: "available".into(),
                security_groups: vec!["sg-lab-app".into()],
                parameter_group: source_group,
                reboots: Vec::new(),
                op: None,
                tags: opts.tags.clone(),
            },
        );
        if opts.cdc {
            let c = Consumer {
                name: "lab-cdc".into(),
                slot: "lab_cdc".into(),
                plugin: "test_decoding".into(),
                db: opts.source.clone(),
                pid: None,
                state: "running".into(),
                output: dir.join("lab-cdc.out"),
            };
            let (client, conn) = tokio_postgres::connect(
                &server.conninfo("postgres", &state.app_db),
                tokio_postgres::NoTls,
            )
            .await
            .map_err(|e| LabError::Process(format!("connect to the source: {e}")))?;
            tokio::spawn(conn);
            client
                .execute(
                    "SELECT pg_create_logical_replication_slot($1, $2)",
                    &[&c.slot, &c.plugin],
                )
                .await
                .map_err(|e| {
                    LabError::Process(format!("create the CDC slot: {}", error_text(&e)))
                })?;
            let pid = start_consumer(&state, &c, &opts.source)?;
            state.cdc.insert(
                c.name.clone(),
                Consumer {
                    pid: Some(pid),
                    ..c
                },
            );
        }
        state.save()?;

        if opts.archive_timeout.is_some() {
            crate::metrics::settle_wal(&state, 4).await;
        }
        let (sampler_stop, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(crate::metrics::run_sampler(dir.clone(), rx.clone()));
        if opts.heartbeat.is_some() || opts.archive_timeout.is_some() {
            tokio::spawn(crate::metrics::run_agent(
                dir.clone(),
                opts.heartbeat,
                opts.archive_timeout,
                rx.clone(),
            ));
        }
        tokio::spawn(complete_interrupted_ops(dir.clone(), rx));
        let sup = Supervisor {
            dir,
            state,
            plane: Some(plane),
            envoy: Some(envoy),
            sampler_stop,
            cleanup: Cleanup::All,
            down: false,
        };
        // Up means watched for a few seconds too: the standard preflight judges storage
        // headroom from at least 5 datapoints of the last hour (`lag::wal_headroom`), and a
        // run started the moment the lab is up (`godwit demo --world lab`, the tests) found one
        // and refused, rightly, to count no evidence as fine. On failure `sup` is dropped,
        // which stops everything started above.
        crate::metrics::wait_for_samples(&sup.dir, READY_SAMPLES, Duration::from_secs(30)).await?;
        Ok(sup)
    }

    /// Keep the lab's directory (data, logs, metrics, lab.json) after `down`.
    pub fn keep_files(&mut self) {
        self.cleanup = Cleanup::Nothing;
    }

    /// Keep the logs after `down` (remove the data: [`remove_data`]).
    pub fn keep_logs(&mut self) {
        self.cleanup = Cleanup::Data;
    }

    fn clean_up(&self) {
        match self.cleanup {
            Cleanup::All => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            Cleanup::Data => remove_data(&self.dir),
            Cleanup::Nothing => {}
        }
    }

    pub fn plane(&self) -> &ControlPlane {
        self.plane
            .as_ref()
            .expect("the control plane runs until down")
    }

    /// Stop every process of the lab (by pid, as recorded in lab.json) and the control
    /// plane; remove the directory unless `keep_files` was called.
    pub async fn down(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        let _ = self.sampler_stop.send(true);
        let st = LabState::load(&self.dir).unwrap_or_else(|_| self.state.clone());
        let _ = tokio::task::spawn_blocking(move || stop_all(&st)).await;
        self.envoy.take();
        if let Some(p) = self.plane.take() {
            p.shutdown().await;
        }
        self.clean_up();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        let _ = self.sampler_stop.send(true);
        let st = LabState::load(&self.dir).unwrap_or_else(|_| self.state.clone());
        stop_all(&st);
        self.envoy.take();
        self.clean_up();
    }
}

/// Every second until `stop` fires: complete the instance operations whose process died (a
/// `godwit run` killed mid-reboot), as RDS completes a reboot it accepted (crate::ops).
async fn complete_interrupted_ops(dir: PathBuf, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let d = dir.clone();
        let Ok((done, failed)) =
            tokio::task::spawn_blocking(move || crate::ops::complete_interrupted(&d)).await
        else {
            continue;
        };
        for id in done {
            eprintln!("lab: completed the interrupted operation on {id}");
        }
        for e in failed {
            eprintln!("lab: an interrupted operation could not complete yet: {e}");
        }
    }
}

/// Stop every process of the lab: those recorded in `st` — consumers first (they read from
/// servers), then servers (fast shutdown), then Envoy — and then any other the lab's programs
/// run under its directory (a server or copy whose starter was killed before recording it).
pub fn stop_all(st: &LabState) {
    stop_recorded(st);
    pgproc::stop_lab_processes(&st.dir, Duration::from_secs(30));
}

fn stop_recorded(st: &LabState) {
    // Only pids that are still the lab's programs under its directory: a pid recorded long ago
    // may belong to an unrelated process by now.
    let ours: std::collections::BTreeSet<u32> = pgproc::lab_processes(&st.dir)
        .iter()
        .map(|p| p.pid)
        .collect();
    let stop = |pid: Option<u32>, signal, grace| {
        if let Some(pid) = pid.filter(|p| ours.contains(p)) {
            pgproc::stop_pid(pid, signal, grace);
        }
    };
    for c in st.cdc.values() {
        stop(c.pid, Signal::SIGINT, Duration::from_secs(5));
    }
    for c in st.clusters.values() {
        stop(c.basebackup_pid, Signal::SIGTERM, Duration::from_secs(5));
    }
    for i in st.instances.values() {
        stop(i.pid, Signal::SIGINT, Duration::from_secs(30));
    }
    stop(st.route.envoy_pid, Signal::SIGTERM, Duration::from_secs(5));
}

/// Lab processes running under the lab's directory that `lab.json` does not name: servers,
/// copies or consumers whose starter died before recording them. Children of a recorded
/// process (a server's backends, a copy's WAL streamer) are not listed. Empty in a healthy
/// lab; `lab down` stops them too.
pub fn unrecorded_processes(st: &LabState) -> Vec<pgproc::LabProcess> {
    let all = pgproc::lab_processes(&st.dir);
    let pids: std::collections::BTreeSet<u32> = all.iter().map(|p| p.pid).collect();
    let recorded = st.pids();
    all.into_iter()
        .filter(|p| !pids.contains(&p.ppid) && !recorded.contains(&p.pid))
        .collect()
}

/// Remove a stopped lab's data — every subdirectory (servers' data, snapshots, sockets, locks)
/// and the CDC consumers' output — and keep its files for diagnosis: the servers', Envoy's and
/// the consumers' logs (`*.log`), `lab.json` (pids, events), `metrics.jsonl`, `xds.json`,
/// `workload.json`.
pub fn remove_data(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(&p);
        } else if p
            .extension()
            .is_some_and(|x| x == "out" || x == "tmp" || x == "lock")
        {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// `godwit lab down` from another process: ask the supervisor to stop (SIGTERM) and wait for
/// it; stop whatever is left, recorded or not; remove the data and keep the logs (`purge`:
/// remove the whole directory). Says what it stopped and where the logs are.
pub fn down_dir(dir: &Path, purge: bool) -> Result<String, LabError> {
    let st = LabState::load(dir)?;
    let supervisor = st.supervisor_pid != std::process::id() && pgproc::alive(st.supervisor_pid);
    if supervisor {
        pgproc::stop_pid(st.supervisor_pid, Signal::SIGTERM, Duration::from_secs(60));
    }
    let left = pgproc::lab_processes(dir).len();
    stop_all(&st);
    let stopped = format!(
        "lab at {} stopped ({}{left} processes left by it)",
        dir.display(),
        if supervisor {
            "its supervisor, and "
        } else {
            ""
        }
    );
    if purge {
        let _ = std::fs::remove_dir_all(dir);
        return Ok(format!("{stopped}; directory removed"));
    }
    remove_data(dir);
    Ok(format!(
        "{stopped}; data removed, logs kept in {} (servers', Envoy's and consumers' *.log, lab.json, metrics.jsonl{}) until the next `godwit lab up` there or `godwit lab down --purge`",
        dir.display(),
        if dir.join(crate::cutover::WORKLOAD_FILE).exists() {
            ", workload.json"
        } else {
            ""
        }
    ))
}

/// RDS's own superuser and database, on every server a lab makes (the source, and through
/// it its copies; a cluster created empty, `LabRds::create_cluster`), each statement on its
/// own on database `postgres`: its monitoring (the sampler), its heartbeat and the areas' SQL
/// log in as it, so none of them counts as the application's session (`DatabaseConnections`,
/// `pg::application_backends`), and no `pg::`/`validate::` query looks into its database
/// (`Pool::databases` skips `rdsadmin`).
pub(crate) fn rds_own_sql() -> [String; 2] {
    [
        format!("CREATE ROLE {ADMIN} SUPERUSER LOGIN"),
        format!("CREATE DATABASE {ADMIN} OWNER {ADMIN}"),
    ]
}

/// RDS's heartbeat table, created as [`ADMIN`] in its database (after [`rds_own_sql`]).
pub(crate) fn rds_heartbeat_sql() -> String {
    format!("SET ROLE {ADMIN}; {}", crate::metrics::HEARTBEAT_TABLE_SQL)
}

/// Create the application's role, database and tables, and seed `orders`.
async fn seed(port: u16, role: &str, db: &str, rows: i64) -> Result<(), LabError> {
    let connect = |dbname: String| async move {
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=10"),
            tokio_postgres::NoTls,
        )
        .await
        .map_err(|e| LabError::Process(format!("connect to the source: {e}")))?;
        tokio::spawn(conn);
        Ok::<_, LabError>(c)
    };
    let admin = connect("postgres".into()).await?;
    // Separate statements: CREATE DATABASE refuses to run in the implicit transaction of a
    // multi-statement string. The application signs in with IAM, as on RDS a service owner's
    // does (member of `rds_iam`; the lab's loopback trusts it all the same): a logical copy
    // carries no password (`pg::roles_without_iam`).
    for sql in [
        "CREATE ROLE rds_iam NOLOGIN".to_string(),
        format!("CREATE ROLE {role} LOGIN IN ROLE rds_iam"),
        format!("CREATE DATABASE {db} OWNER {role}"),
    ]
    .into_iter()
    .chain(rds_own_sql())
    {
        admin
            .batch_execute(&sql)
            .await
            .map_err(|e| LabError::Process(format!("{sql}: {}", error_text(&e))))?;
    }
    connect(ADMIN.to_string())
        .await?
        .batch_execute(&rds_heartbeat_sql())
        .await
        .map_err(|e| {
            LabError::Process(format!("create RDS's heartbeat table: {}", error_text(&e)))
        })?;
    let c = connect(db.to_string()).await?;
    c.batch_execute(&format!(
        "SET ROLE {role};
         CREATE TABLE {table} (client int, seq bigint, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (client, seq));
         CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, amount numeric(12,2), note text, created timestamptz NOT NULL DEFAULT now());
         INSERT INTO orders (customer, amount, note)
           SELECT g % 997, (g * 7 % 100000) / 100.0, CASE WHEN g % 10 = 0 THEN NULL ELSE 'order ' || g END
           FROM generate_series(1, {rows}) g;
         {tpcb}
         RESET ROLE;
         CREATE EXTENSION pg_stat_statements;
         ANALYZE;",
        table = crate::workload::TABLE,
        tpcb = crate::workload::tpcb_schema(rows),
    ))
    .await
    .map_err(|e| LabError::Process(format!("seed the application's tables: {}", error_text(&e))))?;
    Ok(())
}

/// Wait until Envoy's listener forwards to a server that answers.
async fn wait_route_served(port: u16) -> Result<(), LabError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2"),
            tokio_postgres::NoTls,
        )
        .await
        {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                if c.simple_query("SELECT 1").await.is_ok() {
                    return Ok(());
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(LabError::Process(format!(
        "Envoy's listener on 127.0.0.1:{port} does not reach the source after 60 s: {last}"
    )))
}

/// `godwit lab status`: what runs, from lab.json and the processes themselves.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub dir: PathBuf,
    pub supervisor: ProcessStatus,
    pub source: String,
    pub listen: String,
    pub control_plane_api: String,
    pub servers: Vec<ServerStatus>,
    pub envoy: ProcessStatus,
    pub consumers: Vec<ProcessStatus>,
    /// Lab processes `lab.json` does not name (empty in a healthy lab).
    pub unrecorded: Vec<pgproc::LabProcess>,
    /// What the clients of `lab up --workload` saw so far (`workload.json`).
    pub workload: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessStatus {
    pub name: String,
    pub pid: Option<u32>,
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub id: String,
    pub cluster: Option<String>,
    pub port: u16,
    pub pid: Option<u32>,
    pub running: bool,
    /// `primary`, `standby` or `down`, as `postmaster.pid` says.
    pub role: String,
    pub status: String,
}

pub fn status(dir: &Path) -> Result<Status, LabError> {
    let st = LabState::load(dir)?;
    let proc = |name: &str, pid: Option<u32>| ProcessStatus {
        name: name.to_string(),
        pid,
        running: pid.is_some_and(pgproc::alive),
    };
    Ok(Status {
        dir: dir.to_path_buf(),
        supervisor: proc("supervisor", Some(st.supervisor_pid)),
        source: st.source.clone(),
        listen: format!("127.0.0.1:{}", st.route.listen_port),
        control_plane_api: format!("127.0.0.1:{}", st.route.api_port),
        servers: st
            .instances
            .values()
            .map(|i| {
                let running = i.pid.is_some_and(pgproc::alive);
                let role = match i
                    .pid
                    .and_then(|p| pgproc::postmaster_state(&i.spec.data, p))
                {
                    Some(s) if running && s == "standby" => "standby",
                    Some(_) if running => "primary",
                    _ => "down",
                };
                ServerStatus {
                    id: i.id.clone(),
                    cluster: i.cluster.clone(),
                    port: i.port,
                    pid: i.pid,
                    running,
                    role: role.into(),
                    status: i.status.clone(),
                }
            })
            .collect(),
        envoy: proc("envoy", st.route.envoy_pid),
        consumers: st.cdc.values().map(|c| proc(&c.name, c.pid)).collect(),
        unrecorded: unrecorded_processes(&st),
        workload: std::fs::read_to_string(dir.join(crate::cutover::WORKLOAD_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// The lab world over the lab in `dir` for a process that does not own it (`godwit run
/// --world lab`): checks the lab is there and brings its own runtime for the database
/// connections.
pub fn world_standalone(dir: &Path) -> Result<godwit_stdlib::world::World, LabError> {
    let st = LabState::load(dir)?;
    if !pgproc::alive(st.supervisor_pid) {
        return Err(LabError::State(format!(
            "the lab at {} has no supervisor (pid {} is gone): its control plane is down; `godwit lab down`, then `godwit lab up`",
            dir.display(),
            st.supervisor_pid
        )));
    }
    let rt = OwnedRuntime::new("godwit-lab-pg").map_err(LabError::Process)?;
    let mut world = world(dir, rt.handle());
    world.keep.push(rt);
    Ok(world)
}

/// The lab world's areas over the lab in `dir`; database connections live on `handle` (a
/// runtime that outlives the world). godwit's `pg` and `validate` reach the databases over
/// their own pool (loopback from `areas::GODWIT_ADDR`, subject to the security groups), or
/// not at all when the lab withholds database access (`Attributes::db_access`).
pub fn world(dir: &Path, handle: tokio::runtime::Handle) -> godwit_stdlib::world::World {
    use godwit_stdlib::pg::Pg;
    use godwit_stdlib::pg::live::Pool;
    use godwit_stdlib::validate::Validate;
    let ctx = crate::areas::LabCtx::new(dir, handle.clone());
    // A lab.json that cannot be read now fails every call that needs it; the access it would
    // have granted is moot.
    let db_access = LabState::load(dir).is_ok_and(|st| st.attributes.db_access);
    let (pg, validate): (Arc<dyn Pg>, Arc<dyn Validate>) = if db_access {
        let pool = Arc::new(Pool::new(
            Arc::new(crate::areas::LabConnector {
                dir: dir.to_path_buf(),
            }),
            handle,
        ));
        (
            Arc::new(godwit_stdlib::pg::live::LivePg::new(pool.clone())),
            Arc::new(godwit_stdlib::validate::live::LiveValidate::new(pool)),
        )
    } else {
        let w = Arc::new(crate::withheld::Withheld);
        (w.clone(), w)
    };
    godwit_stdlib::world::World::new(
        "lab",
        Arc::new(godwit_engine::SystemClock),
        godwit_stdlib::world::Areas {
            rds: Arc::new(crate::areas::LabRds { ctx: ctx.clone() }),
            ec2: Arc::new(crate::areas::LabEc2 { ctx: ctx.clone() }),
            cw: Arc::new(crate::metrics::LabCw {
                dir: dir.to_path_buf(),
            }),
            pg,
            validate,
            route: Arc::new(crate::route_cdc::LabRouter { ctx: ctx.clone() }),
            cdc: Arc::new(crate::route_cdc::LabCdc { ctx }),
            schema: Arc::new(schema_freeze(dir)),
        },
    )
}

/// The lab team's schema-freeze hooks: real commands run like the aws world's declared ones,
/// keeping a freeze file per database under `schema-freeze/` of the lab (what a migration job
/// checks before it runs; `lab status` and the tests read it).
fn schema_freeze(dir: &Path) -> godwit_stdlib::schema::hooks::HookSchema {
    let files = dir.join("schema-freeze");
    let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    godwit_stdlib::schema::hooks::HookSchema::new(
        Some(godwit_stdlib::schema::hooks::FreezeHooks {
            freeze: format!(
                "mkdir -p {d} && printf '%s\\n' \"$GODWIT_SCHEMA_REASON\" > {d}/\"$GODWIT_SCHEMA_DB\"",
                d = q(&files)
            ),
            unfreeze: format!("rm -f {d}/\"$GODWIT_SCHEMA_DB\"", d = q(&files)),
            timeout: Some("30s".into()),
        }),
        "",
    )
}
