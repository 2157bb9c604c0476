//! The aws world against moto **with real PostgreSQL behind moto's endpoints** (issue 15): moto
//! keeps the RDS, EC2 and CloudWatch metadata the SDK reads; the servers behind the endpoints it
//! reports are the lab's, created, restarted, promoted and deleted as moto is asked to.
//!
//! ```text
//!   godwit (aws world, unmodified)                       this harness
//!   ├─ rds/ec2/cw ── SDK ──▶ moto (launcher --hooks) ──▶ hooks: LabRds over real servers
//!   │                        ▲                            │
//!   │                        └── PutMetricData ◀── feed: the lab's sampler, every second
//!   └─ pg/validate/cdc ── IamConnector: TLS verify-full + IAM token
//!                     ──▶ front door per endpoint (127.x.y.z:PORT): security groups,
//!                         TLS (the harness CA), token check ──▶ PostgreSQL (lab server)
//! ```
//!
//! | module | what |
//! |---|---|
//! | `mod.rs` | [`MotoPg`]: starts moto with hooks, the hook service, the feed; owns every process |
//! | `hooks` | the operations moto forwards, applied with `godwit_lab::areas::LabRds` |
//! | `front` | an endpoint's door: security groups, TLS, IAM token, relay to the server |
//! | `net` | security groups and IAM settings by database; client addresses' groups |
//! | `sigv4` | IAM auth tokens checked as RDS checks them |
//! | `pki` | the CA (`ca_bundle`) and one certificate per endpoint address |
//! | `feed` | CloudWatch fed from the lab's sampler |
//! | `route` | the aws world's route, naming the harness's addresses back |
//!
//! **Addresses.** Every endpoint is its own loopback address (`127.x.y.z`, random) on the port
//! moto reports (`Endpoint.Port`, default 5432), and its certificate names that address as an
//! IP SAN: RDS endpoints are DNS names, but a name that resolves to loopback needs
//! `/etc/hosts` or a DNS server, which a test must not change; an address of its own per
//! endpoint keeps `verify-full` meaningful (a door presents a certificate for its own address
//! only). Godwit connects from `127.0.0.1` (the kernel's source address for loopback).
//!
//! **Roles.** The harness logs in as `rdsadmin` (a superuser, as RDS's own agent), which
//! godwit's `pg` never counts as an application session; `rds_iam` and `rds_superuser` exist
//! as on RDS; each of [`Options::iam_users`] is created as the operator would (docs/aws.md):
//! `LOGIN CREATEROLE REPLICATION`, member of `rds_iam` and `rds_superuser`
//! (`pg_monitor`, `pg_signal_backend`, `pg_read_all_data`). The application is the lab's:
//! role `app`, database `app`, tables `orders`, `godwit_workload` and TPC-B's.
//!
//! Every process (servers, CDC consumers started by hooks with a pid file in [`MotoPg::pids`],
//! moto) is stopped by pid when [`MotoPg`] drops, also when a test panics.

pub mod feed;
pub mod front;
pub mod hooks;
pub mod net;
pub mod pki;
pub mod route;
pub mod sigv4;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godwit_engine::{Host, PrimitiveError, SystemClock};
use godwit_lab::LabState;
use godwit_lab::areas::{LabCtx, LabRds};
use godwit_lab::pgproc::{self, PgBin, ServerUser};
use godwit_lab::state::{Attributes, FORMAT_VERSION, RouteInfo};
use godwit_stdlib::aws::{Aws, AwsSettings};
use godwit_stdlib::pg::live::{BoxFuture, Connector, Pool, Target};
use serde_json::{Value, json};

use crate::moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};
pub use front::Arrival;
use front::{Door, Serves, Shared};

/// The superuser the harness logs in as: RDS's own.
pub const ADMIN: &str = "rdsadmin";

/// How a [`MotoPg`] is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows seeded into `orders` (and accounts into the TPC-B tables) of a new source.
    pub seed_rows: i64,
    /// Database roles created on a new source for IAM login (`db_user` of the aws settings).
    pub iam_users: Vec<String>,
    /// A mutation answers once its servers are done (`--hooks-sync`): a new cluster reads
    /// `available` at the first describe. For runbooks whose waits poll once a minute (the
    /// standard runbook's replica wait); RDS answers at once and the status follows, which is
    /// the default.
    pub sync_hooks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed_rows: 1000,
            iam_users: vec!["godwit".into()],
            sync_hooks: false,
        }
    }
}

/// The lab's servers reached as [`ADMIN`], for the lab's areas driven by the hooks.
struct AdminConnector {
    dir: PathBuf,
}

impl Connector for AdminConnector {
    fn target<'a>(&'a self, db: &'a str) -> BoxFuture<'a, Result<Target, PrimitiveError>> {
        Box::pin(async move {
            let st = LabState::load(&self.dir)
                .map_err(|e| godwit_lab::areas::lab_error("pg", "connect", e))?;
            let inst = st.serving(db).ok_or_else(|| {
                PrimitiveError::new(
                    "pg",
                    "connect",
                    godwit_engine::ErrorKind::NotFound,
                    format!("the harness has no server for {db:?}"),
                    "",
                )
            })?;
            let mut config = tokio_postgres::Config::new();
            config
                .host("127.0.0.1")
                .port(inst.port)
                .user(ADMIN)
                .dbname(&st.app_db)
                .application_name("godwit-harness")
                .connect_timeout(Duration::from_secs(5));
            Ok(Target {
                config,
                tls: None,
                aurora: false,
                bind: None,
            })
        })
    }

    fn access(&self, _db: &str) -> godwit_stdlib::pg::Access {
        godwit_stdlib::pg::Access {
            available: true,
            how: format!("the harness's {ADMIN} over loopback"),
            security_group: None,
        }
    }
}

/// The hook service's state: the lab behind moto, the doors, the VPC.
pub struct Harness {
    pub shared: Arc<Shared>,
    /// The lab's directory (`lab.json`, servers' data).
    pub dir: PathBuf,
    ca: pki::Ca,
    rds: LabRds,
    host: Host,
    opts: Options,
    doors: Mutex<Vec<(Arc<Door>, tokio::task::AbortHandle)>>,
    reboots: AtomicU64,
    handle: tokio::runtime::Handle,
}

/// A random address in 127.100.0.0–127.249.255.255 (the rest of 127/8 is left to others).
fn random_loopback(salt: u64) -> Ipv4Addr {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(salt);
    let v = h.finish();
    Ipv4Addr::new(
        127,
        100 + (v % 150) as u8,
        (v >> 8) as u8,
        1 + ((v >> 16) % 254) as u8,
    )
}

impl Harness {
    fn state(&self) -> Result<LabState, String> {
        LabState::load(&self.dir).map_err(|e| e.to_string())
    }

    /// A door for `serves` on a new address, port `port`, under `access`'s rules.
    fn open_door(&self, serves: Serves, access: &str, port: u16) -> Result<Ipv4Addr, String> {
        let mut bound = None;
        for salt in 0..64 {
            let ip = random_loopback(salt);
            match std::net::TcpListener::bind((ip, port)) {
                Ok(l) => {
                    bound = Some((ip, l));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(format!("bind {ip}:{port}: {e}")),
            }
        }
        let (ip, listener) = bound.ok_or("no free loopback address for an endpoint")?;
        let tls = self.ca.server_config(ip)?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let listener = {
            let _rt = self.handle.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?
        };
        let name = match &serves {
            Serves::Instance(id) | Serves::Writer(id) => id.clone(),
            Serves::Reader(id) => format!("{id}-ro"),
        };
        let door = Arc::new(Door {
            ip,
            port,
            serves,
            access: access.to_string(),
            tls,
        });
        let task = self
            .handle
            .spawn(front::serve(listener, door.clone(), self.shared.clone()));
        self.doors.lock().unwrap().push((door, task.abort_handle()));
        // Where CDC hook commands find an endpoint: `ADDRESS PORT`.
        let eps = self.dir.join("endpoints");
        std::fs::create_dir_all(&eps).map_err(|e| e.to_string())?;
        std::fs::write(eps.join(name), format!("{ip} {port}\n")).map_err(|e| e.to_string())?;
        Ok(ip)
    }

    /// The database whose endpoint is `host:port` (a cluster's id for its reader endpoint).
    pub fn name_of(&self, host: &str, port: u16) -> Option<String> {
        self.doors
            .lock()
            .unwrap()
            .iter()
            .find(|(d, _)| d.ip.to_string() == host && d.port == port)
            .map(|(d, _)| match &d.serves {
                Serves::Instance(id) | Serves::Writer(id) | Serves::Reader(id) => id.clone(),
            })
    }

    fn close_doors(&self, which: impl Fn(&Serves) -> bool) {
        self.doors.lock().unwrap().retain(|(d, task)| {
            if which(&d.serves) {
                task.abort();
                false
            } else {
                true
            }
        });
    }

    /// Stop every process the harness or its hook commands started (by pid).
    fn stop_processes(&self) {
        for entry in std::fs::read_dir(self.dir.join("pids"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(pid) = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                pgproc::stop_pid(pid, pgproc::Signal::SIGINT, Duration::from_secs(5));
            }
            let _ = std::fs::remove_file(entry.path());
        }
        if let Ok(st) = LabState::load(&self.dir) {
            for i in st.instances.values() {
                if let Some(pid) = i.pid {
                    pgproc::stop_pid(pid, pgproc::Signal::SIGINT, Duration::from_secs(10));
                }
            }
        }
    }

    /// Back to no database at all (moto was reset).
    fn reset(&self) -> Result<(), String> {
        self.close_doors(|_| true);
        self.stop_processes();
        let pool = self.rds.ctx.pool.clone();
        LabState::update(&self.dir, |st| {
            for id in st.instances.keys().chain(st.clusters.keys()) {
                pool.forget(id);
            }
            for i in st.instances.values() {
                let _ = std::fs::remove_dir_all(&i.spec.data);
                let _ = std::fs::remove_dir_all(&i.spec.socket_dir);
            }
            for c in st.clusters.values() {
                let _ = std::fs::remove_dir_all(&c.data);
            }
            st.instances.clear();
            st.clusters.clear();
            st.events.clear();
            st.source.clear();
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(self.dir.join("endpoints"));
        *self.shared.net.lock().unwrap() = net::Net::default();
        Ok(())
    }
}

/// moto with real PostgreSQL behind it. Dropping it stops everything it started.
pub struct MotoPg {
    pub moto: Moto,
    pub harness: Arc<Harness>,
    rt: Option<tokio::runtime::Runtime>,
    tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for MotoPg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotoPg")
            .field("moto", &self.moto.url)
            .field("dir", &self.harness.dir)
            .finish_non_exhaustive()
    }
}

impl MotoPg {
    /// Start the hook service, moto with `--hooks`, and the metric feed. Panics with the
    /// install command when PostgreSQL, moto or openssl is missing.
    pub fn start(opts: Options) -> MotoPg {
        let bin = PgBin::locate().unwrap_or_else(|e| panic!("{e}"));
        let user = ServerUser::for_this_process().unwrap_or_else(|e| panic!("{e}"));
        // Short path (socket paths are limited to 107 bytes), reachable by the server user.
        let tmp = tempfile::Builder::new()
            .prefix("godwit-motopg-")
            .tempdir_in("/tmp")
            .expect("a temporary directory");
        let dir = tmp.path().join("lab");
        pgproc::make_owned_dir(tmp.path(), user.as_ref()).unwrap();
        pgproc::make_owned_dir(&dir, user.as_ref()).unwrap();
        std::fs::create_dir_all(dir.join("pids")).unwrap();
        LabState {
            format: FORMAT_VERSION,
            dir: dir.clone(),
            bin,
            user,
            source: String::new(),
            app_role: "app".into(),
            app_db: "app".into(),
            supervisor_pid: std::process::id(),
            instances: BTreeMap::new(),
            clusters: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            parameter_groups: BTreeMap::new(),
            route: RouteInfo {
                listen_port: 0,
                read_listen_port: 0,
                xds_port: 0,
                api_port: 0,
                envoy_admin_port: 0,
                envoy_pid: None,
            },
            cdc: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            attributes: Attributes::default(),
            events: Vec::new(),
            seed_rows: opts.seed_rows,
        }
        .save()
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("godwit-motopg")
            .enable_all()
            .build()
            .unwrap();
        let ca = pki::Ca::new(&tmp.path().join("pki")).unwrap_or_else(|e| panic!("{e}"));
        let shared = Arc::new(Shared {
            net: Mutex::new(net::Net::default()),
            lab_dir: dir.clone(),
            region: REGION.into(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            admin: ADMIN.into(),
            log: Mutex::new(std::fs::File::create(tmp.path().join("harness.log")).ok()),
            arrivals: Mutex::new(Vec::new()),
        });
        let pool = Arc::new(Pool::new(
            Arc::new(AdminConnector { dir: dir.clone() }),
            rt.handle().clone(),
        ));
        let harness = Arc::new(Harness {
            shared: shared.clone(),
            dir: dir.clone(),
            ca,
            rds: LabRds {
                ctx: Arc::new(LabCtx {
                    dir: dir.clone(),
                    pool,
                }),
            },
            host: Host::detached(Arc::new(SystemClock), Some(rt.handle().clone())),
            opts,
            doors: Mutex::new(Vec::new()),
            reboots: AtomicU64::new(0),
            handle: rt.handle().clone(),
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let hooks_url = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(hooks::serve(listener, harness.clone()));
        let mut args = vec!["--hooks", &hooks_url];
        if harness.opts.sync_hooks {
            args.push("--hooks-sync");
        }
        let this = MotoPg {
            moto: Moto::start_with(&args),
            harness,
            rt: Some(rt),
            tmp: Some(tmp),
        };
        let aws = this.aws(this.settings(json!({})));
        let rt = this.rt.as_ref().unwrap();
        rt.spawn(feed::run(shared, aws.cw.clone()));
        this
    }

    /// The runtime the harness runs on (for tests that need one).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.as_ref().unwrap().handle().clone()
    }

    /// Where hook commands put the pid files of processes they start (stopped on drop).
    pub fn pids(&self) -> PathBuf {
        self.harness.dir.join("pids")
    }

    /// `ADDRESS PORT` files of the endpoints, by instance or cluster id (`<cluster>-ro`: the
    /// reader endpoint), for commands that must reach a database (CDC hooks).
    pub fn endpoints(&self) -> PathBuf {
        self.harness.dir.join("endpoints")
    }

    /// The CA bundle every endpoint's certificate chains to.
    pub fn ca_bundle(&self) -> &Path {
        &self.harness.ca.bundle
    }

    /// aws settings on this moto: region, endpoint, the CA bundle, `db_user` `godwit` in
    /// database `app`; `extra` keys added or replaced. `security_group` (required with
    /// `db_user`) is a well-formed id of no group until a test that fences passes godwit's real one.
    pub fn settings(&self, extra: Value) -> AwsSettings {
        let mut s = json!({
            "region": REGION,
            "endpoint_url": self.moto.url,
            "retry_backoff": "100ms",
            "ca_bundle": self.ca_bundle(),
            "db_user": "godwit",
            "db_name": "app",
            "security_group": "sg-00000000000000000",
        });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        AwsSettings::from_json(s, "motopg").unwrap_or_else(|e| panic!("{e}"))
    }

    /// aws settings of a credential-less migration: [`MotoPg::settings`] without `db_user`,
    /// `db_name`, `security_group` nor `ca_bundle` — an operator who grants godwit no database
    /// access configures none of them, and `IamConnector::access` then reports
    /// `available: false`. `extra` keys added or replaced.
    pub fn settings_credential_less(&self, extra: Value) -> AwsSettings {
        let mut s = json!({
            "region": REGION,
            "endpoint_url": self.moto.url,
            "retry_backoff": "100ms",
        });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        AwsSettings::from_json(s, "motopg").unwrap_or_else(|e| panic!("{e}"))
    }

    /// SDK clients on `settings` with the test credentials.
    pub fn aws(&self, settings: AwsSettings) -> Arc<Aws> {
        let creds =
            aws_sdk_rds::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        Arc::new(Aws::connect(settings, Some(creds)).unwrap())
    }

    /// Place `client` (a loopback address) in security group `group`, as a network interface
    /// of that group would be: rules naming the group admit it.
    pub fn place(&self, client: IpAddr, group: &str) {
        self.harness
            .shared
            .net
            .lock()
            .unwrap()
            .members
            .entry(client)
            .or_default()
            .insert(group.to_string());
    }

    /// The loopback port of the server behind `db` (an instance, or a cluster's writer), for
    /// checks from outside AWS's view (the master user's direct access).
    pub fn server_port(&self, db: &str) -> Option<u16> {
        LabState::load(&self.harness.dir)
            .ok()?
            .serving(db)
            .map(|i| i.port)
    }

    /// The postmaster pid behind `db` now.
    pub fn server_pid(&self, db: &str) -> Option<u32> {
        LabState::load(&self.harness.dir).ok()?.serving(db)?.pid
    }

    /// A superuser connection to the server behind `db` (database `dbname`), bypassing the
    /// door: what the test itself checks with.
    pub async fn admin(&self, db: &str, dbname: &str) -> tokio_postgres::Client {
        let port = self
            .server_port(db)
            .unwrap_or_else(|| panic!("no server behind {db}"));
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user={ADMIN} dbname={dbname} connect_timeout=10"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap_or_else(|e| panic!("connect to {db}'s server: {e}"));
        tokio::spawn(conn);
        c
    }

    /// Every connection the doors accepted so far, oldest first (dropped ones too): who
    /// reached, or tried to reach, a database through its endpoint.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.harness.shared.arrivals.lock().unwrap().clone()
    }

    /// How far each server's log has been written: a mark for [`MotoPg::server_logs_since`].
    pub fn server_log_mark(&self) -> BTreeMap<String, u64> {
        self.server_logs()
            .into_iter()
            .map(|(id, path)| {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                (id, len)
            })
            .collect()
    }

    /// What each server logged since `mark` (a server made since: all of its log), by
    /// instance id. The servers log every connection they authorize (`log_connections`,
    /// set by the harness on every source and inherited by its replicas' base backups):
    /// `connection authorized: user=… database=… application_name=…`.
    pub fn server_logs_since(&self, mark: &BTreeMap<String, u64>) -> BTreeMap<String, String> {
        self.server_logs()
            .into_iter()
            .map(|(id, path)| {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let from = (mark.get(&id).copied().unwrap_or(0) as usize).min(bytes.len());
                (id, String::from_utf8_lossy(&bytes[from..]).into_owned())
            })
            .collect()
    }

    /// Every server's log file (`<instance>.log` in the lab's directory; deleted instances'
    /// logs stay), by instance id.
    fn server_logs(&self) -> BTreeMap<String, PathBuf> {
        std::fs::read_dir(&self.harness.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".log")?;
                // CDC consumers log beside the servers as `<name>.cdc.log`.
                (!id.ends_with(".cdc")).then(|| (id.to_string(), e.path()))
            })
            .collect()
    }

    /// What the doors and hooks logged: refusals with their reasons, IAM logins, failures.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.harness.dir.parent().unwrap().join("harness.log"))
            .unwrap_or_default()
    }

    /// moto's reset, which resets the harness too (every server stopped).
    pub fn reset(&self) {
        self.moto.reset();
    }
}

impl Drop for MotoPg {
    fn drop(&mut self) {
        // moto first (no more hooks); then the runtime, waiting for a hook still applying (a
        // blocking task that may be starting a server); then every server by pid.
        self.moto.stop();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(60));
        }
        self.harness.close_doors(|_| true);
        self.harness.stop_processes();
        if std::env::var_os("GODWIT_KEEP_MOTOPG").is_some()
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("motopg files kept in {}", tmp.keep().display());
        }
    }
}
