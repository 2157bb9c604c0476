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
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use godwit_engine::{ErrorKind, PrimitiveError};
use tokio_postgres::{Client, Config, NoTls};

use super::{Backend, Extension, Lsn, Pg, Sequence, Setting, SlotInfo, TableHash};

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
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a world reaches its databases.
pub trait Connector: Send + Sync + 'static {
    /// Where and how to reach `db` (an RDS instance id, or an Aurora cluster id = its writer).
    /// Called at every (re)connect, so credentials are fresh.
    fn target<'a>(&'a self, db: &'a str) -> BoxFuture<'a, Result<Target, PrimitiveError>>;

    /// Roles whose sessions are not the application's (godwit's own login is always
    /// excluded): e.g. `rdsadmin`, CDC consumers' roles.
    fn system_roles(&self) -> Vec<String> {
        vec!["rdsadmin".into(), "rdsrepladmin".into()]
    }
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
    match &target.tls {
        None => {
            let (client, conn) = target.config.connect(NoTls).await.map_err(unreachable)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
        Some(tls) => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
            let (client, conn) = target.config.connect(tls).await.map_err(unreachable)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
    }
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

/// Run `fut` to completion from synchronous code. Primitives run on a blocking thread (the
/// engine's rule; see clippy.toml), never on a runtime worker, so this may block.
pub fn block_on<T>(handle: &tokio::runtime::Handle, fut: impl Future<Output = T>) -> T {
    handle.block_on(fut)
}

/// Connections per database, opened on first use and re-opened once closed.
pub struct Pool {
    connector: Arc<dyn Connector>,
    handle: tokio::runtime::Handle,
    clients: Mutex<HashMap<String, Arc<Client>>>,
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

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// A connected client for `db`'s database `dbname` (`None`: the connector's own).
    pub async fn client(
        &self,
        db: &str,
        dbname: Option<&str>,
        op: &str,
    ) -> Result<Arc<Client>, PrimitiveError> {
        let key = format!("{db}\u{0}{}", dbname.unwrap_or(""));
        if let Some(c) = self.clients.lock().unwrap().get(&key)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let mut target = self.connector.target(db).await?;
        if let Some(name) = dbname {
            target.config.dbname(name);
        }
        let client = Arc::new(
            tokio::time::timeout(Duration::from_secs(15), connect(&target, op))
                .await
                .map_err(|_| {
                    PrimitiveError::new(
                        A,
                        op,
                        ErrorKind::Timeout,
                        format!("connecting to {db} took more than 15 s"),
                        "is the server up and reachable from here?",
                    )
                    .with_retryable(true)
                })??,
        );
        self.clients.lock().unwrap().insert(key, client.clone());
        Ok(client)
    }

    /// Forget `db`'s connections (after a restart, so the next call reconnects at once).
    pub fn forget(&self, db: &str) {
        let prefix = format!("{db}\u{0}");
        self.clients
            .lock()
            .unwrap()
            .retain(|k, _| !k.starts_with(&prefix));
    }

    /// The databases of `db` that accept connections (not templates, not `rdsadmin`), the
    /// connector's own first.
    pub async fn databases(&self, db: &str, op: &str) -> Result<Vec<String>, PrimitiveError> {
        let c = self.client(db, None, op).await?;
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
/// the server refused the statement.
pub fn sql_error(op: &str, db: &str, e: tokio_postgres::Error) -> PrimitiveError {
    let closed = e.is_closed() || e.as_db_error().is_none();
    let text = error_text(&e);
    let (kind, hint) = if text.contains("recovery is in progress") {
        (
            ErrorKind::Conflict,
            "this is a replica (in recovery): ask the primary, or pg::replay_lsn for the replica's position",
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
}

impl LivePg {
    pub fn new(pool: Arc<Pool>) -> Self {
        LivePg {
            pool,
            terminated: Mutex::new(BTreeSet::new()),
            inactive_seen: Mutex::new(HashMap::new()),
        }
    }

    fn run<T>(
        &self,
        fut: impl Future<Output = Result<T, PrimitiveError>>,
    ) -> Result<T, PrimitiveError> {
        block_on(self.pool.handle(), fut)
    }

    /// Run `sql` on every database of `db`, collecting `f(database prefix, row)`.
    async fn per_database<T>(
        &self,
        db: &str,
        op: &str,
        sql: &str,
        f: impl Fn(&str, &tokio_postgres::Row) -> T,
    ) -> Result<Vec<T>, PrimitiveError> {
        let mut out = Vec::new();
        for (i, name) in self.pool.databases(db, op).await?.iter().enumerate() {
            let c = self.pool.client(db, Some(name), op).await?;
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

    async fn lsn(&self, db: &str, op: &str, expr: &str) -> Result<Lsn, PrimitiveError> {
        let c = self.pool.client(db, None, op).await?;
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

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Pg for LivePg {
    fn table_hashes(&self, db: &str) -> Result<Vec<TableHash>, PrimitiveError> {
        const OP: &str = "table_hashes";
        self.run(async {
            let mut out = Vec::new();
            for (i, name) in self.pool.databases(db, OP).await?.iter().enumerate() {
                let c = self.pool.client(db, Some(name), OP).await?;
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

    fn installed_extensions(&self, db: &str) -> Result<Vec<Extension>, PrimitiveError> {
        const OP: &str = "installed_extensions";
        self.run(async {
            let all = self
                .per_database(
                    db,
                    OP,
                    "SELECT extname, extversion FROM pg_extension",
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

    fn settings(&self, db: &str, names: &[String]) -> Result<Vec<Setting>, PrimitiveError> {
        const OP: &str = "settings";
        let wanted: Vec<String> = if names.is_empty() {
            WATCHED_SETTINGS.iter().map(|s| s.to_string()).collect()
        } else {
            names.to_vec()
        };
        self.run(async {
            let c = self.pool.client(db, None, OP).await?;
            let rows = c
                .query(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY($1) ORDER BY name",
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

    fn unlogged_tables(&self, db: &str) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "unlogged_tables";
        self.run(async {
            let mut v = self
                .per_database(
                    db,
                    OP,
                    "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p')",
                    |p, r| format!("{p}{}", r.get::<_, String>(0)),
                )
                .await?;
            v.sort();
            Ok(v)
        })
    }

    fn replication_slots(&self, db: &str) -> Result<Vec<SlotInfo>, PrimitiveError> {
        const OP: &str = "replication_slots";
        let rows = self.run(async {
            let c = self.pool.client(db, None, OP).await?;
            c.query(
                "SELECT slot_name::text, slot_type, plugin::text, database::text, active, \
                 coalesce(restart_lsn::text, ''), confirmed_flush_lsn::text, coalesce(wal_status, 'lost'), \
                 CASE WHEN pg_is_in_recovery() THEN 0 ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), \
                   coalesce(confirmed_flush_lsn, restart_lsn))::bigint END \
                 FROM pg_replication_slots ORDER BY slot_name",
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

    fn current_lsn(&self, db: &str) -> Result<Lsn, PrimitiveError> {
        self.run(self.lsn(db, "current_lsn", "pg_current_wal_lsn()"))
    }

    fn replay_lsn(&self, db: &str) -> Result<Lsn, PrimitiveError> {
        self.run(self.lsn(db, "replay_lsn", "pg_last_wal_replay_lsn()"))
    }

    fn application_backends(&self, db: &str) -> Result<Vec<Backend>, PrimitiveError> {
        const OP: &str = "application_backends";
        let system = self.pool.connector().system_roles();
        let rows = self.run(async {
            let c = self.pool.client(db, None, OP).await?;
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

    fn block_logins(&self, db: &str, roles: &[String]) -> Result<Vec<String>, PrimitiveError> {
        self.set_login(db, "block_logins", roles, false)
    }

    fn unblock_logins(&self, db: &str, roles: &[String]) -> Result<Vec<String>, PrimitiveError> {
        self.set_login(db, "unblock_logins", roles, true)
    }

    fn terminate_backends(&self, db: &str, pids: &[i64]) -> Result<Vec<i64>, PrimitiveError> {
        const OP: &str = "terminate_backends";
        let pids32: Vec<i32> = pids.iter().map(|p| *p as i32).collect();
        let rows = self.run(async {
            let c = self.pool.client(db, None, OP).await?;
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

    fn sequences(&self, db: &str) -> Result<Vec<Sequence>, PrimitiveError> {
        const OP: &str = "sequences";
        self.run(async {
            let mut v = self
                .per_database(
                    db,
                    OP,
                    "SELECT schemaname || '.' || sequencename, coalesce(last_value, 0)::bigint FROM pg_sequences",
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

impl LivePg {
    fn set_login(
        &self,
        db: &str,
        op: &str,
        roles: &[String],
        login: bool,
    ) -> Result<Vec<String>, PrimitiveError> {
        self.run(async {
            let c = self.pool.client(db, None, op).await?;
            let existing = c
                .query(
                    "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
                    &[&roles],
                )
                .await
                .map_err(|e| sql_error(op, db, e))?;
            let existing: BTreeSet<String> = existing.iter().map(|r| r.get(0)).collect();
            if let Some(missing) = roles.iter().find(|r| !existing.contains(*r)) {
                return Err(PrimitiveError::new(
                    A,
                    op,
                    ErrorKind::NotFound,
                    format!("{db} has no role {missing:?}"),
                    "pass the application roles pg::application_backends reports",
                ));
            }
            for r in roles {
                let sql = format!(
                    "ALTER ROLE {} {}",
                    quote_ident(r),
                    if login { "LOGIN" } else { "NOLOGIN" }
                );
                c.batch_execute(&sql)
                    .await
                    .map_err(|e| sql_error(op, db, e))?;
            }
            let mut out = roles.to_vec();
            out.sort();
            out.dedup();
            Ok(out)
        })
    }
}
