//! One PostgreSQL connection on a thread of its own.
//!
//! `JournalStore` is synchronous and is called from threads that may be inside a tokio runtime
//! (a run's blocking thread, the CLI's main thread under `Runtime::block_on`). Blocking on a
//! second runtime from such a thread panics ("Cannot start a runtime from within a runtime"),
//! and so does the sync `postgres` crate, which is a `block_on` over tokio-postgres. So every
//! connection lives on its own plain thread with a current-thread runtime that nothing else
//! enters; callers hand it closures over a channel and wait for the answer on a std channel,
//! which is safe from any thread. The thread can also run a periodic `tick` between jobs: a
//! writer's lease heartbeat runs on the writer's own connection, so it serialises with the
//! appends and needs no lock.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use godwit_engine::journal::JournalError;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

/// Owned statement parameters: jobs cross threads, so they cannot borrow the caller's values.
pub(crate) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// One statement parameter, boxed for [`Params`].
pub(crate) fn p<T: ToSql + Sync + Send + 'static>(v: T) -> Box<dyn ToSql + Sync + Send> {
    Box::new(v)
}

/// Where the store is: the parsed URL and its printable form (no password).
#[derive(Debug)]
pub(crate) struct Target {
    pub config: tokio_postgres::Config,
    /// `postgres://user@host:port/db`, for messages.
    pub place: String,
    /// The longest any one statement (or connecting) may take before the call fails. A hung
    /// store must end an append with an error, not hang the run forever.
    pub op_timeout: Duration,
}

impl Target {
    pub fn parse(url: &str, op_timeout: Duration) -> Result<Target, JournalError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            JournalError::Io(format!(
                "the store URL '{}' is not a PostgreSQL connection string: {e}; write it as \
                 postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                redact(url)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(op_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("godwit");
        }
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let place = format!(
            "postgres://{}@{host}:{port}/{}",
            config.get_user().unwrap_or("?"),
            config.get_dbname().unwrap_or("?")
        );
        Ok(Target {
            config,
            place,
            op_timeout,
        })
    }
}

/// A URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The connection as a job sees it, on the connection's thread.
pub(crate) struct Db {
    rt: tokio::runtime::Runtime,
    target: Arc<Target>,
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
}

impl Db {
    fn new(target: Arc<Target>) -> Result<Db, JournalError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| JournalError::Io(format!("cannot start the store's runtime: {e}")))?;
        let mut db = Db {
            rt,
            target,
            client: None,
            statements: HashMap::new(),
        };
        db.connect()?;
        Ok(db)
    }

    pub fn place(&self) -> &str {
        &self.target.place
    }

    fn connect(&mut self) -> Result<(), JournalError> {
        let t = self.target.clone();
        let connected = self
            .rt
            .block_on(async { tokio::time::timeout(t.op_timeout, t.config.connect(NoTls)).await });
        let (client, connection) = match connected {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(JournalError::Io(format!(
                    "cannot reach the PostgreSQL store at {}: {}; check that the server runs and \
                     accepts this host (pg_hba.conf), and the URL's user, password and database",
                    t.place,
                    detail(&e)
                )));
            }
            Err(_) => {
                return Err(JournalError::Io(format!(
                    "cannot reach the PostgreSQL store at {}: no answer within {:?}; check the \
                     host, the port and any firewall between",
                    t.place, t.op_timeout
                )));
            }
        };
        // Polled only while a job blocks on this runtime, which is the only time the
        // connection has anything to do.
        self.rt.spawn(async move {
            let _ = connection.await;
        });
        self.client = Some(client);
        self.statements.clear();
        Ok(())
    }

    fn ready(&mut self) -> Result<(), JournalError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.connect()?;
        }
        Ok(())
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, JournalError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let client = self.client.as_ref().expect("ready() connected");
        let timeout = self.target.op_timeout;
        let prepared = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, client.prepare(sql)).await });
        let s = self.settle(prepared, sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    /// One statement, prepared once per connection (an append is then one round trip).
    pub fn query(&mut self, sql: &'static str, params: Params) -> Result<Vec<Row>, JournalError> {
        self.ready()?;
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client.as_ref().expect("ready() connected");
        let timeout = self.target.op_timeout;
        let out = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, client.query(&stmt, &refs)).await });
        self.settle(out, sql)
    }

    /// Statements without parameters (`BEGIN`, DDL), in the simple protocol.
    pub fn batch(&mut self, sql: &str) -> Result<(), JournalError> {
        self.ready()?;
        let client = self.client.as_ref().expect("ready() connected");
        let timeout = self.target.op_timeout;
        let out = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, client.batch_execute(sql)).await });
        self.settle(out, sql)
    }

    /// `f` inside `BEGIN … COMMIT`; rolled back when it fails.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Db) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        self.batch("BEGIN")?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn settle<T>(
        &mut self,
        out: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
        sql: &str,
    ) -> Result<T, JournalError> {
        let first = sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if self.client.as_ref().is_none_or(Client::is_closed) {
                    self.client = None;
                }
                Err(JournalError::Io(format!(
                    "the PostgreSQL store at {} failed `{first} …`: {}; check the server's log \
                     and that the store's user may write schema godwit",
                    self.target.place,
                    detail(&e)
                )))
            }
            Err(_) => {
                // The statement may still run in the server; this connection is unusable
                // until it answers, so forget it and reconnect next time.
                self.client = None;
                Err(JournalError::Io(format!(
                    "the PostgreSQL store at {} did not answer `{first} …` within {:?}; check \
                     that the server is up and not overloaded",
                    self.target.place, self.target.op_timeout
                )))
            }
        }
    }
}

/// The server's own words for a database error, else the client's.
pub(crate) fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
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

type Job = Box<dyn FnOnce(&mut Db) + Send>;
/// Work a connection's thread does on its own every period, between jobs.
pub(crate) type Tick = Box<dyn FnMut(&mut Db) + Send>;

/// A connection thread. Dropping it ends the thread after the jobs already sent.
pub(crate) struct Conn {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    place: String,
}

impl Conn {
    /// Connect on a new thread (named `name`); the error of a failed connection is returned
    /// here, before anything else is attempted.
    pub fn open(
        target: Arc<Target>,
        name: &str,
        tick: Option<(Duration, Tick)>,
    ) -> Result<Conn, JournalError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let place = target.place.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut db = match Db::new(target) {
                    Ok(db) => {
                        let _ = ready_tx.send(Ok(()));
                        db
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                serve(&mut db, &rx, tick);
            })
            .map_err(|e| JournalError::Io(format!("cannot start a store thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Conn {
                tx: Some(tx),
                thread: Some(thread),
                place,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(JournalError::Io(format!(
                "the connection thread for {place} ended before it connected"
            ))),
        }
    }

    /// Run `f` on the connection's thread and wait for its answer.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let gone = || {
            JournalError::Io(format!(
                "the connection to the PostgreSQL store at {} is gone (its thread ended)",
                self.place
            ))
        };
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(Box::new(move |db| {
                let _ = rtx.send(f(db));
            }))
            .map_err(|_| gone())?;
        rrx.recv().map_err(|_| gone())?
    }
}

fn serve(db: &mut Db, rx: &mpsc::Receiver<Job>, mut tick: Option<(Duration, Tick)>) {
    let mut next = tick.as_ref().map(|(every, _)| Instant::now() + *every);
    loop {
        let job = match (&mut tick, next) {
            (Some((every, f)), Some(at)) => {
                match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        f(db);
                        next = Some(Instant::now() + *every);
                        None
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            _ => match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            },
        };
        if let Some(job) = job {
            job(db);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://ann:s3cret@db:5432/godwit"),
            "postgres://ann:***@db:5432/godwit"
        );
        let t = Target::parse(
            "postgres://ann:s3cret@db.example:6432/fleet",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(t.place, "postgres://ann@db.example:6432/fleet");
        let err = Target::parse("postgres://ann:s3cret@db/x?bogus=1", Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("postgres://USER"), "{err}");
    }
}
