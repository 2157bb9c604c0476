//! [`Pg`] over a real PostgreSQL server (lab and aws worlds), through tokio-postgres.
//!
//! How a database is reached is the world's business, behind a [`Connector`]: the lab connects
//! to a local server by port; the aws world to the RDS/Aurora endpoint over TLS with an IAM
//! token (fetched at every connect, so a token never outlives its 15 minutes). Connections are
//! cached per database and re-opened when closed (a reboot of the source closes them).
//!
//! Cluster-wide facts (settings, slots, backends, LSNs) come from the connector's database;
//! per-database facts (extensions, unlogged tables, sequences, table hashes) from every
//! database that accepts connections, named `schema.name` in the connector's database and
//! `database:schema.name` in the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use godwit_engine::{Call, ErrorKind, PrimitiveError};
use tokio_postgres::{Client, Config, NoTls};

use super::{
    Access, Backend, Checkpoint, Extension, LargeObjects, Lsn, Pg, ReplicationConnection, Sequence,
    Setting, SlotInfo, SubscribeTo, Subscription, SubscriptionCommit, SubscriptionTable,
    TableDefinition, TableHash, TableStats, UnreplicableTable, subscription_table_state,
};

/// Roles godwit blocked, per database: what `block_logins` / `unblock_logins` report.
type Blocked = Mutex<HashMap<String, BTreeSet<String>>>;

const A: &str = "pg";

/// Where and how to reach one database.
#[derive(Clone)]
pub struct Target {
    /// Host, port, user, database; the password (an IAM token in the aws world) if any. Its
    /// `Debug` redacts the password.
    pub config: Config,
    /// TLS client configuration (verify-full in the aws world); `None`: plain TCP (the lab,
    /// loopback only).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Aurora (a cluster or one of its instances): what Aurora refuses is refused before it
    /// is asked, in every world (the lab's cluster members are plain standbys).
    pub aurora: bool,
    /// The local address connections come from; `None`: the kernel picks. The lab binds
    /// godwit's connections to an address of their own, because its security groups filter
    /// by client address like AWS's (docs/lab.md); plain TCP only.
    pub bind: Option<IpAddr>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("tls", &self.tls.is_some())
            .field("aurora", &self.aurora)
            .field("bind", &self.bind)
            .finish()
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a world reaches its databases.
pub trait Connector: Send + Sync + 'static {
    /// Where and how to reach `db` (an RDS instance id, or an Aurora cluster id = its writer).
    /// Called at every (re)connect, so credentials are fresh.
    fn target<'a>(&'a self, db: &'a str) -> BoxFuture<'a, Result<Target, PrimitiveError>>;

    /// Whether and how godwit reaches `db` through this connector, and the security group its
    /// connections come from (what a quarantine must admit).
    fn access(&self, db: &str) -> Access;

    /// Where and how to reach `db` as its master user, for the one thing only that user can
    /// do: create godwit's own login on a cluster godwit created, which has no other role
    /// (`pg::copy_schema`). The password (the aws world: RDS's, read from Secrets Manager) is
    /// only in the returned target, never kept. `None`: this world offers no such sign-in
    /// (godwit's login exists wherever it connects).
    fn master_target<'a>(
        &'a self,
        _db: &'a str,
    ) -> BoxFuture<'a, Option<Result<Target, PrimitiveError>>> {
        Box::pin(async { None })
    }

    /// Roles whose sessions are not the application's (godwit's own login is always
    /// excluded): e.g. `rdsadmin`, CDC consumers' roles.
    fn system_roles(&self) -> Vec<String> {
        vec!["rdsadmin".into(), "rdsrepladmin".into()]
    }

    /// The connection string a database server uses to reach `db` as a logical replication
    /// publisher (`CREATE SUBSCRIPTION .. CONNECTION`), with fresh credentials: by default
    /// godwit's own login ([`Connector::target`]) over TCP, TLS required where godwit uses TLS.
    /// An IAM token in it admits new connections for 15 minutes
    /// ([`super::Pg::refresh_subscription`] renews it).
    fn publisher_conninfo<'a>(
        &'a self,
        db: &'a str,
    ) -> BoxFuture<'a, Result<String, PrimitiveError>> {
        Box::pin(async move { Ok(conninfo(&self.target(db).await?)) })
    }

    /// Whether the server of `from_db` may open a connection to the server of `to_db` (a
    /// subscriber to its publisher; `op`: the `pg` primitive asking), as the world's network decides before the server tries:
    /// the lab, whose loopback has no security groups, checks both sides' groups
    /// ([`crate::ec2::check_connection`]) and refuses as AWS would (a `Timeout`). By default
    /// the real network decides (AWS: the packets are dropped and `CREATE SUBSCRIPTION` fails
    /// when its connection times out).
    fn may_connect(&self, _op: &str, _from_db: &str, _to_db: &str) -> Result<(), PrimitiveError> {
        Ok(())
    }

    /// A connection to `db` that failed with `error`, as the world tells it: the lab, whose
    /// security groups refuse a login where AWS's drop the packets, says which groups locked
    /// godwit out.
    fn refused(&self, _db: &str, error: PrimitiveError) -> PrimitiveError {
        error
    }
}

/// `target` as a libpq connection string (keywords and quoted values: docs of libpq,
/// "Connection Strings"), for a server connecting to it. Unix sockets are not offered: the
/// server connecting may run elsewhere.
pub fn conninfo(target: &Target) -> String {
    use tokio_postgres::config::Host;
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    if let Some(Host::Tcp(h)) = target.config.get_hosts().first() {
        parts.push(format!("host={}", quote(h)));
    }
    if let Some(p) = target.config.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = target.config.get_user() {
        parts.push(format!("user={}", quote(u)));
    }
    if let Some(d) = target.config.get_dbname() {
        parts.push(format!("dbname={}", quote(d)));
    }
    if let Some(pw) = target.config.get_password() {
        parts.push(format!("password={}", quote(&String::from_utf8_lossy(pw))));
    }
    if target.tls.is_some() {
        parts.push("sslmode=require".into());
    }
    parts.push("connect_timeout=10".into());
    parts.push("application_name='godwit_subscription'".into());
    parts.join(" ")
}

/// Open a connection to `target`; the connection task runs on the current runtime.
pub async fn connect(target: &Target, op: &str) -> Result<Client, PrimitiveError> {
    let unreachable = |e: tokio_postgres::Error| {
        PrimitiveError::new(
            A,
            op,
            ErrorKind::Internal,
            format!(
                "cannot connect to {:?} port {:?} as {:?}: {}",
                target.config.get_hosts(),
                target.config.get_ports(),
                target.config.get_user().unwrap_or("?"),
                error_text(&e)
            ),
            "is the server up and reachable from here? (godwit lab status / the security groups)",
        )
        .with_retryable(true)
    };
    match (&target.tls, target.bind) {
        (None, Some(ip)) => {
            let stream = bound_stream(&target.config, ip).await.map_err(|e| {
                PrimitiveError::new(
                    A,
                    op,
                    ErrorKind::Internal,
                    format!(
                        "cannot connect to {:?} port {:?} from {ip}: {e}",
                        target.config.get_hosts(),
                        target.config.get_ports(),
                    ),
                    "is the server up and reachable from here? (godwit lab status / the security groups)",
                )
                .with_retryable(true)
            })?;
            let (client, conn) = target
                .config
                .connect_raw(stream, NoTls)
                .await
                .map_err(unreachable)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
        (Some(_), Some(_)) => Err(PrimitiveError::new(
            A,
            op,
            ErrorKind::Internal,
            "a bound source address is supported over plain TCP only".to_string(),
            "set Target::bind only in a world without TLS (the lab)",
        )),
        (None, None) => {
            let (client, conn) = target.config.connect(NoTls).await.map_err(unreachable)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
        (Some(tls), None) => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
            let (client, conn) = target.config.connect(tls).await.map_err(unreachable)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
    }
}

/// A TCP connection to the first host and port of `config`, from local address `ip`, within
/// its `connect_timeout`.
async fn bound_stream(config: &Config, ip: IpAddr) -> std::io::Result<tokio::net::TcpStream> {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => return Err(std::io::Error::other("no TCP host to connect to")),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .find(|a| a.is_ipv4() == ip.is_ipv4())
        .ok_or_else(|| std::io::Error::other(format!("{host} has no address of {ip}'s family")))?;
    let socket = match ip {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(std::net::SocketAddr::new(ip, 0))?;
    let connect = socket.connect(addr);
    let stream = match config.get_connect_timeout() {
        Some(t) => tokio::time::timeout(*t, connect)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??,
        None => connect.await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A tokio-postgres error with the server's message, detail and hint when it has them.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

/// How long one `pg` primitive's statements may run when the step does not say less: the
/// catalog queries godwit runs answer in milliseconds, so a minute means the server is hung
/// or locked out (and the step retries).
pub const PG_CALL_LIMIT: Duration = Duration::from_secs(60);

/// Longest connection set-up (TCP, TLS, authentication).
const CONNECT_LIMIT: Duration = Duration::from_secs(15);

/// A cached connection and the `statement_timeout` last set on it (ms), so a call sets it only
/// when its budget differs.
struct Cached {
    client: Arc<Client>,
    statement_timeout_ms: AtomicU64,
}

/// A multi-threaded runtime owned by a world, for what must outlive single calls (database
/// connection tasks); shut down off any runtime thread when the world is dropped (dropping a
/// runtime inside another panics).
pub struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl OwnedRuntime {
    pub fn new(name: &str) -> Result<Arc<OwnedRuntime>, String> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .map(|rt| Arc::new(OwnedRuntime(Some(rt))))
            .map_err(|e| format!("cannot start the {name} runtime: {e}"))
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Connections per database, opened on first use and re-opened once closed.
///
/// Connection tasks run on the pool's own runtime (`handle`), so a connection outlives the
/// call that opened it and works whatever runtime the run waits on. Every statement is awaited
/// through the call's [`Call::block_on`](godwit_engine::Call::block_on), so the step's deadline
/// and Ctrl-C reach it, and runs with `statement_timeout` = the call's budget, so a statement
/// cut on godwit's side does not run on in the server either.
pub struct Pool {
    connector: Arc<dyn Connector>,
    handle: tokio::runtime::Handle,
    clients: Mutex<HashMap<String, Arc<Cached>>>,
}

/// Aborts a spawned task when the awaiting future is dropped (a cut or cancelled call).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `statement_timeout` for a budget: whole milliseconds, at least 1 (0 would mean none).
fn timeout_ms(budget: Duration) -> u64 {
    (budget.as_millis() as u64).max(1)
}

impl Pool {
    pub fn new(connector: Arc<dyn Connector>, handle: tokio::runtime::Handle) -> Self {
        Pool {
            connector,
            handle,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    /// A new connection of its own to `db`'s database `dbname` (`None`: the connector's own),
    /// whose statements time out after `budget`, opened on the pool's runtime.
    pub async fn connect(
        &self,
        db: &str,
        dbname: Option<&str>,
        op: &str,
        budget: Duration,
    ) -> Result<Arc<Client>, PrimitiveError> {
        let mut target = self.connector.target(db).await?;
        if let Some(name) = dbname {
            target.config.dbname(name);
        }
        self.connect_to(db, target, op, budget).await
    }

    /// A new connection to `db` as `target` says (another login than the connector's: a
    /// cluster's master user, [`Connector::master_target`]), whose statements time out after
    /// `budget`, opened on the pool's runtime. Never cached.
    pub async fn connect_to(
        &self,
        db: &str,
        mut target: Target,
        op: &str,
        budget: Duration,
    ) -> Result<Arc<Client>, PrimitiveError> {
        target
            .config
            .options(format!("-c statement_timeout={}", timeout_ms(budget)));
        let (db_owned, op_owned) = (db.to_string(), op.to_string());
        let mut task = AbortOnDrop(self.handle.spawn(async move {
            tokio::time::timeout(CONNECT_LIMIT, connect(&target, &op_owned))
                .await
                .map_err(|_| {
                    PrimitiveError::new(
                        A,
                        &op_owned,
                        ErrorKind::Timeout,
                        format!(
                            "connecting to {db_owned} took more than {} s",
                            CONNECT_LIMIT.as_secs()
                        ),
                        "is the server up and reachable from here?",
                    )
                })?
        }));
        let client = (&mut task.0)
            .await
            .map_err(|e| {
                PrimitiveError::new(
                    A,
                    op,
                    ErrorKind::Internal,
                    format!("connecting to {db} failed: {e}"),
                    "the pool's runtime is gone (the world was dropped); this is a bug in godwit",
                )
            })?
            .map_err(|e| self.connector.refused(db, e))?;
        Ok(Arc::new(client))
    }

    /// The shared client for `db`'s database `dbname` (`None`: the connector's own), with its
    /// `statement_timeout` set to `budget`.
    pub async fn client(
        &self,
        db: &str,
        dbname: Option<&str>,
        op: &str,
        budget: Duration,
    ) -> Result<Arc<Client>, PrimitiveError> {
        let key = format!("{db}\u{0}{}", dbname.unwrap_or(""));
        let want = timeout_ms(budget);
        let cached = self.clients.lock().unwrap().get(&key).cloned();
        if let Some(c) = cached.filter(|c| !c.client.is_closed()) {
            if c.statement_timeout_ms.load(Ordering::Relaxed) != want {
                c.client
                    .batch_execute(&format!("SET statement_timeout = {want}"))
                    .await
                    .map_err(|e| sql_error(op, db, e))?;
                c.statement_timeout_ms.store(want, Ordering::Relaxed);
            }
            return Ok(c.client.clone());
        }
        let client = self.connect(db, dbname, op, budget).await?;
        self.clients.lock().unwrap().insert(
            key,
            Arc::new(Cached {
                client: client.clone(),
                statement_timeout_ms: AtomicU64::new(want),
            }),
        );
        Ok(client)
    }

    /// Forget `db`'s connections: after a restart, so the next call reconnects at once; after a
    /// call was cut, because a connection with a statement in flight to a hung server would
    /// make the next call wait behind it.
    pub fn forget(&self, db: &str) {
        let prefix = format!("{db}\u{0}");
        self.clients
            .lock()
            .unwrap()
            .retain(|k, _| !k.starts_with(&prefix));
    }

    /// `fut` (statements on `db`) through the call: bounded by `limit`, the step's deadline and
    /// Ctrl-C. A cut or cancelled call forgets `db`'s connections (see [`Pool::forget`]). Its
    /// error is the calling area's (`cdc::…` reading a slot fails as `cdc`, not as `pg`).
    pub fn run<T>(
        &self,
        cx: &Call<'_>,
        db: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, PrimitiveError>>,
    ) -> Result<T, PrimitiveError> {
        let out = cx.block_on(limit, fut).map_err(|mut e| {
            e.area = cx.area().to_string();
            e
        });
        if let Err(e) = &out
            && matches!(e.kind, ErrorKind::Timeout | ErrorKind::Cancelled)
        {
            self.forget(db);
        }
        out
    }

    /// The databases of `db` that accept connections (not templates, not `rdsadmin`), the
    /// connector's own first.
    pub async fn databases(
        &self,
        db: &str,
        op: &str,
        budget: Duration,
    ) -> Result<Vec<String>, PrimitiveError> {
        let c = self.client(db, None, op, budget).await?;
        let rows = c
            .query(
                "SELECT datname, datname = current_database() AS own FROM pg_database \
                 WHERE datallowconn AND NOT datistemplate AND datname <> 'rdsadmin' \
                 ORDER BY own DESC, datname",
                &[],
            )
            .await
            .map_err(|e| sql_error(op, db, e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }
}

/// A failed statement: retryable when the connection broke (the server restarts), not when
/// the server refused the statement. A database in the wrong state for it (a replica in
/// recovery, SQLSTATE class 55 "object not in prerequisite state") is a `Conflict`, as the
/// simulator answers.
pub fn sql_error(op: &str, db: &str, e: tokio_postgres::Error) -> PrimitiveError {
    // Not a server error: a broken connection (retryable), unless godwit could not even encode
    // the statement's parameters (a bug, retrying repeats it).
    let closed = e.is_closed()
        || (e.as_db_error().is_none() && !e.to_string().starts_with("error serializing"));
    let text = error_text(&e);
    let wrong_state = e
        .as_db_error()
        .is_some_and(|d| d.code().code().starts_with("55"));
    let (kind, hint) = if text.contains("recovery is in progress")
        || text.contains("while in recovery")
    {
        (
            ErrorKind::Conflict,
            "this is a replica (in recovery): ask the primary (its pg::replication_connections say where the replica stands)",
        )
    } else if wrong_state {
        (
            ErrorKind::Conflict,
            "the database is not in the state the statement needs; its message says which",
        )
    } else if closed {
        (
            ErrorKind::Internal,
            "the connection broke (a restart?); the step retries",
        )
    } else {
        (
            ErrorKind::Internal,
            "the server refused the statement; its message says why",
        )
    };
    PrimitiveError::new(A, op, kind, format!("{db}: {text}"), hint).with_retryable(closed)
}

/// [`Pg`] over real servers.
pub struct LivePg {
    pool: Arc<Pool>,
    /// Pids godwit signalled, until they are gone: `Backend::terminating`.
    terminated: Mutex<BTreeSet<i32>>,
    /// When each slot was first seen inactive (PostgreSQL 15 does not record it).
    inactive_seen: Mutex<HashMap<String, i64>>,
    /// Roles this process blocked per database (the trait answers with every role godwit
    /// blocked). A resumed run in a new process starts empty; its step passes the same roles,
    /// so it answers the same.
    blocked: Blocked,
}

impl LivePg {
    pub fn new(pool: Arc<Pool>) -> Self {
        LivePg {
            pool,
            terminated: Mutex::new(BTreeSet::new()),
            inactive_seen: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// `fut` through the call, with `statement_timeout` = the call's budget (see [`Pool`]).
    fn run<T>(
        &self,
        cx: &Call<'_>,
        db: &str,
        fut: impl Future<Output = Result<T, PrimitiveError>>,
    ) -> Result<T, PrimitiveError> {
        self.pool.run(cx, db, PG_CALL_LIMIT, fut)
    }

    /// Run `sql` on every database of `db`, collecting `f(database prefix, row)`.
    async fn per_database<T>(
        &self,
        db: &str,
        op: &str,
        sql: &str,
        st: Duration,
        f: impl Fn(&str, &tokio_postgres::Row) -> T,
    ) -> Result<Vec<T>, PrimitiveError> {
        let mut out = Vec::new();
        for (i, name) in self.pool.databases(db, op, st).await?.iter().enumerate() {
            let c = self.pool.client(db, Some(name), op, st).await?;
            let prefix = if i == 0 {
                String::new()
            } else {
                format!("{name}:")
            };
            for row in c.query(sql, &[]).await.map_err(|e| sql_error(op, db, e))? {
                out.push(f(&prefix, &row));
            }
        }
        Ok(out)
    }

    async fn lsn(
        &self,
        db: &str,
        op: &str,
        expr: &str,
        st: Duration,
    ) -> Result<Lsn, PrimitiveError> {
        let c = self.pool.client(db, None, op, st).await?;
        let sql = format!("SELECT ({expr})::text, pg_wal_lsn_diff({expr}, '0/0')::bigint AS bytes");
        let row = c
            .query_one(&sql, &[])
            .await
            .map_err(|e| sql_error(op, db, e))?;
        match (
            row.get::<_, Option<String>>(0),
            row.get::<_, Option<i64>>(1),
        ) {
            (Some(lsn), Some(lsn_bytes)) => Ok(Lsn { lsn, lsn_bytes }),
            _ => Err(PrimitiveError::new(
                A,
                op,
                ErrorKind::Conflict,
                format!("{db} has no {expr}: it is not a replica"),
                "pg::replay_lsn is for a replica; use pg::current_lsn on a primary",
            )),
        }
    }
}

/// `column` (an expression over `pg_subscription`) of subscription `name` in the client's
/// database; `None` without one.
async fn subscription_column<T>(
    c: &Client,
    op: &str,
    db: &str,
    name: &str,
    column: &str,
) -> Result<Option<T>, PrimitiveError>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    c.query_opt(
        &format!(
            "SELECT {column} FROM pg_subscription WHERE subname = $1 AND subdbid = \
             (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        &[&name],
    )
    .await
    .map(|r| r.map(|r| r.get(0)))
    .map_err(|e| sql_error(op, db, e))
}

/// Every user table of the current database with its columns (`schema.name`, `name type, …`),
/// unsorted: [`Pg::table_definitions`] and the schema copy's "same tables already" compare it.
pub(crate) const TABLE_DEFINITIONS_SQL: &str = "SELECT n.nspname || '.' || c.relname, \
     coalesce(string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' \
       ORDER BY a.attnum), '') \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'rdsadmin') \
     AND n.nspname NOT LIKE 'pg\\_%' \
     GROUP BY 1";

/// Settings godwit reads when `pg::settings(db, [])` asks for all.
pub const WATCHED_SETTINGS: &[&str] = &[
    "server_version",
    "wal_level",
    "wal_segment_size",
    "archive_timeout",
    "max_wal_senders",
    "max_replication_slots",
    "max_slot_wal_keep_size",
    "hot_standby_feedback",
    "shared_preload_libraries",
    "rds.logical_replication",
    "max_connections",
];

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Pg for LivePg {
    fn access(&self, _cx: &Call<'_>, db: &str) -> Result<Access, PrimitiveError> {
        Ok(self.pool.connector().access(db))
    }

    fn replication_connections(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<ReplicationConnection>, PrimitiveError> {
        const OP: &str = "replication_connections";
        let st = cx.budget(PG_CALL_LIMIT);
        let rows = self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            // The LSN columns read NULL for a role without pg_monitor (or rds_superuser on
            // RDS): docs/aws.md lists the grants.
            c.query(
                "SELECT r.pid, coalesce(r.application_name, ''), r.client_addr::text, \
                 coalesce(r.state, ''), s.slot_name::text, \
                 pg_wal_lsn_diff(r.sent_lsn, '0/0')::bigint, pg_wal_lsn_diff(r.write_lsn, '0/0')::bigint, \
                 pg_wal_lsn_diff(r.flush_lsn, '0/0')::bigint, pg_wal_lsn_diff(r.replay_lsn, '0/0')::bigint, \
                 r.replay_lsn::text \
                 FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid \
                 ORDER BY r.pid",
                &[],
            )
            .await
            .map_err(|e| sql_error(OP, db, e))
        })?;
        Ok(rows
            .iter()
            .map(|r| ReplicationConnection {
                pid: i64::from(r.get::<_, i32>(0)),
                application_name: r.get(1),
                client_addr: r.get(2),
                state: r.get(3),
                slot_name: r.get(4),
                sent_lsn_bytes: r.get(5),
                write_lsn_bytes: r.get(6),
                flush_lsn_bytes: r.get(7),
                replay_lsn_bytes: r.get(8),
                replay_lsn: r.get(9),
            })
            .collect())
    }

    fn last_checkpoint(&self, cx: &Call<'_>, db: &str) -> Result<Checkpoint, PrimitiveError> {
        const OP: &str = "last_checkpoint";
        let st = cx.budget(PG_CALL_LIMIT);
        let row = self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            c.query_one(
                "SELECT checkpoint_lsn::text, pg_wal_lsn_diff(checkpoint_lsn, '0/0')::bigint, \
                 pg_wal_lsn_diff(redo_lsn, '0/0')::bigint, extract(epoch FROM checkpoint_time)::bigint \
                 FROM pg_control_checkpoint()",
                &[],
            )
            .await
            .map_err(|e| sql_error(OP, db, e))
        })?;
        let (at, redo): (i64, i64) = (row.get(1), row.get(2));
        Ok(Checkpoint {
            checkpoint_lsn: row.get(0),
            checkpoint_lsn_bytes: at,
            redo_lsn_bytes: redo,
            time: row.get(3),
            // A shutdown checkpoint is written with nothing after its redo point.
            shutdown: at == redo,
        })
    }

    fn table_hashes(&self, cx: &Call<'_>, db: &str) -> Result<Vec<TableHash>, PrimitiveError> {
        const OP: &str = "table_hashes";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let mut out = Vec::new();
            for (i, name) in self.pool.databases(db, OP, st).await?.iter().enumerate() {
                let c = self.pool.client(db, Some(name), OP, st).await?;
                let tables = c
                    .query(
                        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                         AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
                        &[],
                    )
                    .await
                    .map_err(|e| sql_error(OP, db, e))?;
                for t in tables {
                    let (schema, table): (String, String) = (t.get(0), t.get(1));
                    // Order-independent: the sum of 60-bit prefixes of each row's md5, computed
                    // in the server while it scans; nothing but two numbers reaches godwit.
                    let sql = format!(
                        "SELECT count(*)::bigint, coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0)::text \
                         FROM {}.{} t",
                        quote_ident(&schema),
                        quote_ident(&table)
                    );
                    let row = c.query_one(&sql, &[]).await.map_err(|e| sql_error(OP, db, e))?;
                    let prefix = if i == 0 { String::new() } else { format!("{name}:") };
                    out.push(TableHash {
                        table: format!("{prefix}{schema}.{table}"),
                        rows: row.get(0),
                        hash: row.get(1),
                    });
                }
            }
            out.sort_by(|a, b| a.table.cmp(&b.table));
            Ok(out)
        })
    }

    fn installed_extensions(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<Extension>, PrimitiveError> {
        const OP: &str = "installed_extensions";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let all = self
                .per_database(
                    db,
                    OP,
                    "SELECT extname, extversion FROM pg_extension",
                    st,
                    |_, r| Extension {
                        name: r.get(0),
                        version: r.get(1),
                    },
                )
                .await?;
            let set: BTreeMap<(String, String), Extension> = all
                .into_iter()
                .map(|e| ((e.name.clone(), e.version.clone()), e))
                .collect();
            Ok(set.into_values().collect())
        })
    }

    fn settings(
        &self,
        cx: &Call<'_>,
        db: &str,
        names: &[String],
    ) -> Result<Vec<Setting>, PrimitiveError> {
        const OP: &str = "settings";
        let st = cx.budget(PG_CALL_LIMIT);
        let wanted: Vec<String> = if names.is_empty() {
            WATCHED_SETTINGS.iter().map(|s| s.to_string()).collect()
        } else {
            names.to_vec()
        };
        self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            // PostgreSQL 16 removed the lc_collate / lc_ctype settings; the database's own
            // collation stays in pg_database, read under the same names so a comparison across
            // majors compares the same thing.
            let rows = c
                .query(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY($1) \
                     UNION ALL \
                     SELECT n, v FROM (SELECT 'lc_collate' AS n, datcollate::text AS v FROM pg_database \
                     WHERE datname = current_database() UNION ALL SELECT 'lc_ctype', datctype::text \
                     FROM pg_database WHERE datname = current_database()) d \
                     WHERE d.n = ANY($1) AND NOT EXISTS (SELECT 1 FROM pg_settings WHERE name = d.n) \
                     ORDER BY 1",
                    &[&wanted],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            Ok(rows
                .iter()
                .map(|r| Setting {
                    name: r.get(0),
                    setting: r.get(1),
                })
                .collect())
        })
    }

    fn table_stats(&self, cx: &Call<'_>, db: &str) -> Result<Vec<TableStats>, PrimitiveError> {
        const OP: &str = "table_stats";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            // n_live_tup is the statistics' estimate (-1 never: 0 before the first analyze);
            // reltuples is the planner's, better right after a bulk load: take the larger.
            let mut v = self
                .per_database(
                    db,
                    OP,
                    "SELECT s.schemaname || '.' || s.relname, \
                     greatest(s.n_live_tup, c.reltuples::bigint, 0)::bigint, pg_table_size(s.relid)::bigint \
                     FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid",
                    st,
                    |p, r| TableStats {
                        table: format!("{p}{}", r.get::<_, String>(0)),
                        rows: r.get(1),
                        bytes: r.get(2),
                    },
                )
                .await?;
            v.sort_by(|a, b| a.table.cmp(&b.table));
            Ok(v)
        })
    }

    fn large_objects(&self, cx: &Call<'_>, db: &str) -> Result<Vec<LargeObjects>, PrimitiveError> {
        const OP: &str = "large_objects";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let mut v = self
                .per_database(
                    db,
                    OP,
                    "SELECT current_database()::text, count(*) FROM pg_largeobject_metadata \
                     HAVING count(*) > 0",
                    st,
                    |_, r| LargeObjects {
                        database: r.get(0),
                        count: r.get(1),
                    },
                )
                .await?;
            v.sort_by(|a, b| a.database.cmp(&b.database));
            Ok(v)
        })
    }

    fn unlogged_tables(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "unlogged_tables";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let mut v = self
                .per_database(
                    db,
                    OP,
                    "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p')",
                    st,
                    |p, r| format!("{p}{}", r.get::<_, String>(0)),
                )
                .await?;
            v.sort();
            Ok(v)
        })
    }

    fn replication_slots(&self, cx: &Call<'_>, db: &str) -> Result<Vec<SlotInfo>, PrimitiveError> {
        const OP: &str = "replication_slots";
        let st = cx.budget(PG_CALL_LIMIT);
        let rows = self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            // `wal_status` exists from PostgreSQL 13: read through to_jsonb so an RDS source
            // on 11 or 12 answers too (its slots hold their WAL: `reserved`).
            c.query(
                "SELECT slot_name::text, slot_type, plugin::text, database::text, active, \
                 coalesce(restart_lsn::text, ''), confirmed_flush_lsn::text, \
                 CASE WHEN to_jsonb(s) ? 'wal_status' THEN coalesce(to_jsonb(s)->>'wal_status', 'lost') \
                      WHEN restart_lsn IS NULL THEN 'lost' ELSE 'reserved' END, \
                 CASE WHEN pg_is_in_recovery() THEN 0 ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), \
                   coalesce(confirmed_flush_lsn, restart_lsn))::bigint END \
                 FROM pg_replication_slots s ORDER BY slot_name",
                &[],
            )
            .await
            .map_err(|e| sql_error(OP, db, e))
        })?;
        let now = now_s();
        let mut seen = self.inactive_seen.lock().unwrap();
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let active: bool = r.get(4);
                let key = format!("{db}/{name}");
                let inactive_since = if active {
                    seen.remove(&key);
                    None
                } else {
                    Some(*seen.entry(key).or_insert(now))
                };
                SlotInfo {
                    slot_name: name,
                    slot_type: r.get(1),
                    plugin: r.get(2),
                    database: r.get(3),
                    active,
                    restart_lsn: r.get(5),
                    confirmed_flush_lsn: r.get(6),
                    wal_status: r.get(7),
                    lag_bytes: r.get::<_, Option<i64>>(8).unwrap_or(0),
                    inactive_since,
                }
            })
            .collect())
    }

    fn current_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(
            cx,
            db,
            self.lsn(db, "current_lsn", "pg_current_wal_lsn()", st),
        )
    }

    fn settled_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        const OP: &str = "settled_lsn";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            // An asynchronous commit is acknowledged once its record is inserted, and the WAL
            // writer writes it up to `wal_writer_delay` (200 ms by default) later: waiting for
            // it cost the write blackout up to that much (measured 208 ms in the lab). A commit
            // of godwit's own that waits for its flush (`local`: no standby asked) writes the
            // WAL in order up to its record, so every commit acknowledged before it is written
            // when it returns. PostgreSQL waits only for a transaction that wrote WAL (an id
            // alone, `txid_current()`, commits asynchronously: measured): a transactional
            // logical message, which any role may emit, empty and ignored by subscribers and
            // by CDC (decoding's bookkeeping), is that WAL. The setting holds for this
            // transaction only.
            let replica: bool = c
                .query_one(
                    "SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery() THEN \
                     set_config('synchronous_commit', 'local', true) \
                     || pg_logical_emit_message(true, 'godwit', 'settled') END",
                    &[],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?
                .get(0);
            if replica {
                return Err(PrimitiveError::new(
                    A,
                    OP,
                    ErrorKind::Conflict,
                    format!("{db} is a replica (in recovery): it acknowledges no commit"),
                    "pg::settled_lsn is for a primary; use pg::replay_lsn on a replica",
                ));
            }
            let r = c
                .query_one(
                    "SELECT pg_current_wal_lsn()::text, \
                     pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
                    &[],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            Ok(Lsn {
                lsn: r.get(0),
                lsn_bytes: r.get(1),
            })
        })
    }

    fn login_roles(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "login_roles";
        let st = cx.budget(PG_CALL_LIMIT);
        let system = self.pool.connector().system_roles();
        let rows = self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            c.query(
                "SELECT rolname::text FROM pg_roles WHERE rolcanlogin AND rolname <> current_user \
                 AND rolname NOT LIKE 'pg\\_%' AND NOT (rolname = ANY($1)) ORDER BY 1",
                &[&system],
            )
            .await
            .map_err(|e| sql_error(OP, db, e))
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn roles_without_iam(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "roles_without_iam";
        let st = cx.budget(PG_CALL_LIMIT);
        let system = self.pool.connector().system_roles();
        let rows = self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            // Membership through other roles counts, as `+rds_iam` in RDS's pg_hba.conf; a
            // server without rds_iam (to_regrole is NULL) signs everyone in with a password.
            c.query(
                "SELECT rolname::text FROM pg_roles r WHERE rolcanlogin AND rolname <> current_user \
                 AND rolname NOT LIKE 'pg\\_%' AND NOT (rolname = ANY($1)) \
                 AND NOT COALESCE(pg_has_role(r.oid, to_regrole('rds_iam'), 'member'), false) \
                 ORDER BY 1",
                &[&system],
            )
            .await
            .map_err(|e| sql_error(OP, db, e))
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn replay_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        const OP: &str = "replay_lsn";
        const FUNCTION: &str = "pg_last_wal_replay_lsn()";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            if self.pool.connector().target(db).await?.aurora {
                return Err(super::aurora_refuses(OP, db, FUNCTION));
            }
            self.lsn(db, OP, FUNCTION, st).await
        })
    }

    fn application_backends(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<Backend>, PrimitiveError> {
        const OP: &str = "application_backends";
        let st = cx.budget(PG_CALL_LIMIT);
        let system = self.pool.connector().system_roles();
        let rows = self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            c.query(
                "SELECT pid, usename::text, coalesce(state, ''), extract(epoch FROM backend_start)::bigint, \
                 extract(epoch FROM xact_start)::bigint \
                 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
                 AND usename IS NOT NULL AND usename <> current_user AND NOT (usename = ANY($1)) ORDER BY pid",
                &[&system],
            )
            .await
            .map_err(|e| sql_error(OP, db, e))
        })?;
        let mut terminated = self.terminated.lock().unwrap();
        let live: BTreeSet<i32> = rows.iter().map(|r| r.get::<_, i32>(0)).collect();
        terminated.retain(|p| live.contains(p));
        Ok(rows
            .iter()
            .map(|r| {
                let pid: i32 = r.get(0);
                Backend {
                    pid: pid as i64,
                    role: r.get(1),
                    state: r.get(2),
                    backend_start: r.get(3),
                    xact_start: r.get(4),
                    terminating: terminated.contains(&pid),
                }
            })
            .collect())
    }

    fn block_logins(
        &self,
        cx: &Call<'_>,
        db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError> {
        self.set_login(cx, db, "block_logins", roles, false)
    }

    fn unblock_logins(
        &self,
        cx: &Call<'_>,
        db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError> {
        self.set_login(cx, db, "unblock_logins", roles, true)
    }

    fn terminate_backends(
        &self,
        cx: &Call<'_>,
        db: &str,
        pids: &[i64],
    ) -> Result<Vec<i64>, PrimitiveError> {
        const OP: &str = "terminate_backends";
        let st = cx.budget(PG_CALL_LIMIT);
        let pids32: Vec<i32> = pids.iter().map(|p| *p as i32).collect();
        let rows = self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            c.query(
                "SELECT pid FROM unnest($1::int[]) AS pid WHERE pg_terminate_backend(pid)",
                &[&pids32],
            )
            .await
            .map_err(|e| sql_error(OP, db, e))
        })?;
        let done: Vec<i64> = rows.iter().map(|r| r.get::<_, i32>(0) as i64).collect();
        self.terminated
            .lock()
            .unwrap()
            .extend(done.iter().map(|p| *p as i32));
        Ok(done)
    }

    fn advance_sequences(
        &self,
        cx: &Call<'_>,
        db: &str,
        to: &[Sequence],
    ) -> Result<Vec<Sequence>, PrimitiveError> {
        const OP: &str = "advance_sequences";
        let before = self.sequences(cx, db)?;
        let missing: Vec<&str> = to
            .iter()
            .filter(|t| !before.iter().any(|b| b.name == t.name))
            .map(|t| t.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(crate::prim::not_found(
                A,
                OP,
                format!("{db} has no sequence {}", missing.join(", ")),
                "the two databases' schemas differ: compare pg::sequences of both",
            ));
        }
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let own = self.pool.databases(db, OP, st).await?;
            for t in to {
                // `database:schema.name` outside the connector's own database.
                let (dbname, seq) = match t.name.split_once(':') {
                    Some((d, q)) if own.iter().any(|o| o == d) => (Some(d), q),
                    _ => (None, t.name.as_str()),
                };
                let c = self.pool.client(db, dbname, OP, st).await?;
                c.execute(
                    // Past the given value in the sequence's own direction (a descending one
                    // hands out ever lower values).
                    "SELECT setval($1::text::regclass, \
                       CASE WHEN s.increment_by < 0 THEN least($2::bigint, coalesce(s.last_value, $2::bigint)) \
                            ELSE greatest($2::bigint, coalesce(s.last_value, $2::bigint)) END, true) \
                     FROM pg_sequences s \
                     WHERE format('%I.%I', s.schemaname, s.sequencename)::regclass = $1::text::regclass",
                    &[&seq, &t.last_value],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            }
            Ok(())
        })?;
        self.sequences(cx, db)
    }

    fn table_definitions(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<TableDefinition>, PrimitiveError> {
        const OP: &str = "table_definitions";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let mut v = self
                .per_database(db, OP, TABLE_DEFINITIONS_SQL, st, |p, r| TableDefinition {
                    table: format!("{p}{}", r.get::<_, String>(0)),
                    columns: r.get(1),
                })
                .await?;
            v.sort_by(|a, b| a.table.cmp(&b.table));
            Ok(v)
        })
    }

    fn unreplicable_tables(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<UnreplicableTable>, PrimitiveError> {
        const OP: &str = "unreplicable_tables";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let mut v = self
                .per_database(
                    db,
                    OP,
                    "SELECT n.nspname || '.' || c.relname, \
                     CASE WHEN c.relreplident = 'n' THEN 'replica identity nothing' ELSE 'no primary key' END \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND NOT c.relispartition \
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'rdsadmin') \
                     AND n.nspname NOT LIKE 'pg\\_%' \
                     AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS \
                       (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))",
                    st,
                    |p, r| UnreplicableTable {
                        table: format!("{p}{}", r.get::<_, String>(0)),
                        why: r.get(1),
                    },
                )
                .await?;
            v.sort_by(|a, b| a.table.cmp(&b.table));
            Ok(v)
        })
    }

    fn create_publication(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "create_publication";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            let exists = c
                .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
                .await
                .map_err(|e| sql_error(OP, db, e))?
                .is_some();
            if !exists {
                c.batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR ALL TABLES",
                    quote_ident(name)
                ))
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            }
            let rows = c
                .query(
                    "SELECT schemaname || '.' || tablename FROM pg_publication_tables \
                     WHERE pubname = $1 ORDER BY 1",
                    &[&name],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn drop_publication(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<bool, PrimitiveError> {
        const OP: &str = "drop_publication";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            let n = c
                .execute("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            c.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name)))
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            Ok(n > 0)
        })
    }

    fn create_logical_slot(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Lsn, PrimitiveError> {
        const OP: &str = "create_logical_slot";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            let existing = c
                .query_opt(
                    "SELECT slot_type, coalesce(plugin::text, ''), confirmed_flush_lsn::text, \
                     pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint \
                     FROM pg_replication_slots WHERE slot_name = $1",
                    &[&name],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            if let Some(r) = existing {
                let (kind, plugin): (String, String) = (r.get(0), r.get(1));
                if kind != "logical" || plugin != "pgoutput" {
                    return Err(crate::prim::conflict(
                        A,
                        OP,
                        format!(
                            "{db} has a {kind} slot {name} (plugin {plugin:?}), not a pgoutput one"
                        ),
                        "choose another slot name, or drop that slot if it is not in use",
                    ));
                }
                return Ok(Lsn {
                    lsn: r.get(2),
                    lsn_bytes: r.get(3),
                });
            }
            let r = c
                .query_one(
                    "SELECT lsn::text, pg_wal_lsn_diff(lsn, '0/0')::bigint \
                     FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&name],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            Ok(Lsn {
                lsn: r.get(0),
                lsn_bytes: r.get(1),
            })
        })
    }

    fn drop_replication_slot(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<bool, PrimitiveError> {
        const OP: &str = "drop_replication_slot";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            // A subscriber just dropped or disabled leaves its walsender exiting for a moment:
            // wait up to 10 s for the slot to be released before calling it in use.
            for _ in 0..100 {
                let row = c
                    .query_opt(
                        "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                        &[&name],
                    )
                    .await
                    .map_err(|e| sql_error(OP, db, e))?;
                match row.map(|r| r.get::<_, bool>(0)) {
                    None => return Ok(false),
                    Some(false) => {
                        c.execute("SELECT pg_drop_replication_slot($1)", &[&name])
                            .await
                            .map_err(|e| sql_error(OP, db, e))?;
                        return Ok(true);
                    }
                    Some(true) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            Err(crate::prim::conflict(
                A,
                OP,
                format!("slot {name} on {db} is still read by a client after 10 s"),
                "stop its reader first (pg::drop_subscription on the subscriber, or the CDC consumer)",
            )
            .with_retryable(true))
        })
    }

    fn subscribe(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        to: &SubscribeTo,
    ) -> Result<Subscription, PrimitiveError> {
        const OP: &str = "subscribe";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            if let Some(s) = self.one_subscription(db, OP, name, st).await? {
                return Ok(s);
            }
            self.pool.connector().may_connect(OP, db, &to.from)?;
            let info = self.pool.connector().publisher_conninfo(&to.from).await?;
            let c = self.pool.client(db, None, OP, st).await?;
            // The connection string carries credentials: it goes to the server only, never
            // to the journal (the call's arguments do not contain it).
            c.batch_execute(&format!(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} \
                 WITH (create_slot = false, slot_name = {}, copy_data = {}, enabled = true)",
                quote_ident(name),
                sql_literal(&info),
                quote_ident(&to.publication),
                sql_literal(&to.slot),
                to.copy_data,
            ))
            .await
            .map_err(|e| {
                let mut e = sql_error(OP, db, e);
                e.hint = format!(
                    "{db} must reach {} on its port (security groups both ways) and godwit's \
                     login there needs replication rights; {}",
                    to.from, e.hint
                );
                e
            })?;
            self.one_subscription(db, OP, name, st)
                .await?
                .ok_or_else(|| {
                    crate::prim::conflict(
                        A,
                        OP,
                        format!("subscription {name} on {db} vanished right after its creation"),
                        "someone else dropped it; look at the server's log",
                    )
                })
        })
    }

    fn refresh_subscription(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        from: &str,
    ) -> Result<Subscription, PrimitiveError> {
        const OP: &str = "refresh_subscription";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let Some(s) = self.one_subscription(db, OP, name, st).await? else {
                return Err(crate::prim::not_found(
                    A,
                    OP,
                    format!("{db} has no subscription {name}"),
                    "list them with pg::subscriptions",
                ));
            };
            let c = self.pool.client(db, None, OP, st).await?;
            let info = self.pool.connector().publisher_conninfo(from).await?;
            c.batch_execute(&format!(
                "ALTER SUBSCRIPTION {} CONNECTION {}",
                quote_ident(name),
                sql_literal(&info)
            ))
            .await
            .map_err(|e| sql_error(OP, db, e))?;
            self.one_subscription(db, OP, name, st)
                .await
                .map(|o| o.unwrap_or(s))
        })
    }

    fn set_subscription_commit(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        mode: &str,
    ) -> Result<SubscriptionCommit, PrimitiveError> {
        const OP: &str = "set_subscription_commit";
        super::check_commit_mode(OP, mode)?;
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            // `subsynccommit` is readable by every role (unlike the connection string).
            let before: Option<String> =
                subscription_column(&c, OP, db, name, "subsynccommit::text").await?;
            let Some(before) = before else {
                return Err(crate::prim::not_found(
                    A,
                    OP,
                    format!("{db} has no subscription {name}"),
                    "list them with pg::subscriptions",
                ));
            };
            if before != mode {
                c.batch_execute(&format!(
                    "ALTER SUBSCRIPTION {} SET (synchronous_commit = {})",
                    quote_ident(name),
                    sql_literal(mode)
                ))
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            }
            Ok(SubscriptionCommit {
                name: name.to_string(),
                before,
                after: mode.to_string(),
            })
        })
    }

    fn subscriptions(&self, cx: &Call<'_>, db: &str) -> Result<Vec<Subscription>, PrimitiveError> {
        const OP: &str = "subscriptions";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, self.subscription_rows(db, OP, st))
    }

    fn copy_schema(
        &self,
        cx: &Call<'_>,
        from: &str,
        to: &str,
    ) -> Result<super::SchemaCopy, PrimitiveError> {
        super::schema_copy::copy_schema(&self.pool, cx, from, to)
    }

    fn subscription_tables(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Vec<SubscriptionTable>, PrimitiveError> {
        const OP: &str = "subscription_tables";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            if self.one_subscription(db, OP, name, st).await?.is_none() {
                return Err(crate::prim::not_found(
                    A,
                    OP,
                    format!("{db} has no subscription {name}"),
                    "pg::subscriptions lists the subscriptions there",
                ));
            }
            let c = self.pool.client(db, None, OP, st).await?;
            // pg_stat_progress_copy (14+) shows a table sync's COPY while it runs.
            let has_progress: bool = c
                .query_one(
                    "SELECT to_regclass('pg_catalog.pg_stat_progress_copy') IS NOT NULL",
                    &[],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?
                .get(0);
            let progress = if has_progress {
                "(SELECT p.bytes_processed FROM pg_stat_progress_copy p WHERE p.relid = r.srrelid LIMIT 1)"
            } else {
                "NULL::bigint"
            };
            let rows = c
                .query(
                    &format!(
                        "SELECT n.nspname || '.' || cl.relname, r.srsubstate::text, {progress} \
                         FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid \
                         JOIN pg_class cl ON cl.oid = r.srrelid JOIN pg_namespace n ON n.oid = cl.relnamespace \
                         WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                         ORDER BY 1"
                    ),
                    &[&name],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            Ok(rows
                .iter()
                .map(|r| SubscriptionTable {
                    table: r.get(0),
                    state: subscription_table_state(&r.get::<_, String>(1)).into(),
                    copied_bytes: r.get(2),
                    error: None,
                })
                .collect())
        })
    }

    fn drop_subscription(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<bool, PrimitiveError> {
        const OP: &str = "drop_subscription";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            if self.one_subscription(db, OP, name, st).await?.is_none() {
                return Ok(false);
            }
            let c = self.pool.client(db, None, OP, st).await?;
            let q = quote_ident(name);
            // Detached from its slot first, so the drop does not connect to the publisher
            // (which may be fenced or gone); the caller drops the slot there.
            c.batch_execute(&format!(
                "ALTER SUBSCRIPTION {q} DISABLE; ALTER SUBSCRIPTION {q} SET (slot_name = NONE); \
                 DROP SUBSCRIPTION {q}"
            ))
            .await
            .map_err(|e| sql_error(OP, db, e))?;
            Ok(true)
        })
    }

    fn drop_subscription_from(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        publisher: &str,
    ) -> Result<super::SubscriptionDropped, PrimitiveError> {
        const OP: &str = "drop_subscription_from";
        let st = cx.budget(PG_CALL_LIMIT);
        // Its oid names its table syncs' slots on the publisher (`pg_<subid>_sync_<relid>_
        // <sysid>`, PostgreSQL 14+): read before the drop.
        let oid: Option<u32> = self.run(cx, db, async {
            let c = self.pool.client(db, None, OP, st).await?;
            subscription_column(&c, OP, db, name, "oid").await
        })?;
        let dropped = self.drop_subscription(cx, db, name)?;
        let Some(oid) = oid else {
            return Ok(super::SubscriptionDropped {
                dropped,
                sync_slots_dropped: Vec::new(),
            });
        };
        let prefix = format!("pg_{oid}_sync_");
        let sync_slots_dropped = self.run(cx, publisher, async {
            let c = self.pool.client(publisher, None, OP, st).await?;
            let mut gone = Vec::new();
            // The sync workers stopped with the subscription; their walsenders exit a moment
            // later — or never, while blocked in a COPY behind a lock: terminated then (they
            // are this subscription's, by their slot's name).
            for _ in 0..100 {
                let rows = c
                    .query(
                        "SELECT slot_name::text, active, active_pid FROM pg_replication_slots \
                         WHERE starts_with(slot_name::text, $1)",
                        &[&prefix],
                    )
                    .await
                    .map_err(|e| sql_error(OP, publisher, e))?;
                if rows.is_empty() {
                    return Ok(gone);
                }
                for r in rows {
                    let (slot, active, pid): (String, bool, Option<i32>) =
                        (r.get(0), r.get(1), r.get(2));
                    if let (true, Some(pid)) = (active, pid) {
                        c.execute("SELECT pg_terminate_backend($1)", &[&pid])
                            .await
                            .map_err(|e| sql_error(OP, publisher, e))?;
                    } else if !active {
                        match c
                            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                            .await
                        {
                            Ok(_) => gone.push(slot),
                            // Dropped or taken again meanwhile: looked at on the next round.
                            Err(e)
                                if e.code().is_some_and(|c| {
                                    *c == tokio_postgres::error::SqlState::UNDEFINED_OBJECT
                                        || *c == tokio_postgres::error::SqlState::OBJECT_IN_USE
                                }) => {}
                            Err(e) => return Err(sql_error(OP, publisher, e)),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(crate::prim::conflict(
                A,
                OP,
                format!(
                    "table-sync slots {prefix}* of subscription {name} on {publisher} are still \
                     read after 10 s"
                ),
                "the step retries; if it keeps failing, terminate their walsenders on the \
                 publisher and drop the slots (pg_replication_slots names them)",
            )
            .with_retryable(true))
        })?;
        Ok(super::SubscriptionDropped {
            dropped,
            sync_slots_dropped,
        })
    }

    fn sequences(&self, cx: &Call<'_>, db: &str) -> Result<Vec<Sequence>, PrimitiveError> {
        const OP: &str = "sequences";
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let mut v = self
                .per_database(
                    db,
                    OP,
                    // Quoted like an identifier where it must be (`public."Order-Ids"`), so the
                    // name reads back as a regclass.
                    "SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value, 0)::bigint FROM pg_sequences",
                    st,
                    |p, r| Sequence {
                        name: format!("{p}{}", r.get::<_, String>(0)),
                        last_value: r.get(1),
                    },
                )
                .await?;
            v.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(v)
        })
    }
}

/// A SQL string literal whatever `standard_conforming_strings` says: an escape string
/// (`E'…'`) with backslashes and quotes escaped.
pub(crate) fn sql_literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A subscription row of [`SUBSCRIPTIONS_SQL`].
fn subscription_of(r: &tokio_postgres::Row) -> Subscription {
    Subscription {
        name: r.get(0),
        publications: r.get(1),
        slot_name: r.get(2),
        enabled: r.get(3),
        worker_pid: r.get::<_, Option<i32>>(4).map(i64::from),
        received_lsn_bytes: r.get(5),
        latest_end_lsn_bytes: r.get(6),
        apply_errors: r.get(7),
    }
}

/// The subscriptions of the current database with their apply worker (the row of
/// `pg_stat_subscription` without a table: table-sync workers have one) and error count
/// (`pg_stat_subscription_stats`, PostgreSQL 15; before it, 0).
fn subscriptions_sql(with_stats: bool) -> String {
    let errors = if with_stats {
        "coalesce((SELECT apply_error_count + sync_error_count FROM pg_stat_subscription_stats ss WHERE ss.subid = s.oid), 0)::bigint"
    } else {
        "0::bigint"
    };
    format!(
        "SELECT s.subname::text, s.subpublications::text[], s.subslotname::text, s.subenabled, \
         st.pid, pg_wal_lsn_diff(st.received_lsn, '0/0')::bigint, \
         pg_wal_lsn_diff(st.latest_end_lsn, '0/0')::bigint, {errors} \
         FROM pg_subscription s \
         LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL \
         WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         ORDER BY 1"
    )
}

impl LivePg {
    async fn subscription_rows(
        &self,
        db: &str,
        op: &str,
        st: Duration,
    ) -> Result<Vec<Subscription>, PrimitiveError> {
        let c = self.pool.client(db, None, op, st).await?;
        let stats: bool = c
            .query_one(
                "SELECT to_regclass('pg_catalog.pg_stat_subscription_stats') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| sql_error(op, db, e))?
            .get(0);
        let rows = c
            .query(&subscriptions_sql(stats), &[])
            .await
            .map_err(|e| sql_error(op, db, e))?;
        Ok(rows.iter().map(subscription_of).collect())
    }

    async fn one_subscription(
        &self,
        db: &str,
        op: &str,
        name: &str,
        st: Duration,
    ) -> Result<Option<Subscription>, PrimitiveError> {
        Ok(self
            .subscription_rows(db, op, st)
            .await?
            .into_iter()
            .find(|s| s.name == name))
    }

    fn set_login(
        &self,
        cx: &Call<'_>,
        db: &str,
        op: &str,
        roles: &[String],
        login: bool,
    ) -> Result<Vec<String>, PrimitiveError> {
        let st = cx.budget(PG_CALL_LIMIT);
        self.run(cx, db, async {
            let c = self.pool.client(db, None, op, st).await?;
            let existing = c
                .query(
                    "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
                    &[&roles],
                )
                .await
                .map_err(|e| sql_error(op, db, e))?;
            let existing: BTreeSet<String> = existing.iter().map(|r| r.get(0)).collect();
            // Blocking an unknown role is a mistake; unblocking one has nothing to do.
            if let Some(missing) = roles.iter().find(|r| !login && !existing.contains(*r)) {
                return Err(PrimitiveError::new(
                    A,
                    op,
                    ErrorKind::NotFound,
                    format!("{db} has no role {missing:?}"),
                    "pass the application roles pg::application_backends reports",
                ));
            }
            for r in roles.iter().filter(|r| existing.contains(*r)) {
                let sql = format!(
                    "ALTER ROLE {} {}",
                    quote_ident(r),
                    if login { "LOGIN" } else { "NOLOGIN" }
                );
                c.batch_execute(&sql)
                    .await
                    .map_err(|e| sql_error(op, db, e))?;
            }
            Ok(())
        })?;
        let mut blocked = self.blocked.lock().unwrap();
        let set = blocked.entry(db.to_string()).or_default();
        for r in roles {
            if login {
                set.remove(r);
            } else {
                set.insert(r.clone());
            }
        }
        Ok(set.iter().cloned().collect())
    }
}
