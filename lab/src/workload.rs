//! A write load through Envoy that records what clients saw: N clients, each committing one
//! transaction at a time through the Envoy listener, recording every acknowledged commit with
//! its time, reconnecting after any error. Two kinds ([`Kind`]):
//!
//! * `insert`: one `(client, seq)` row per autocommit statement — the kindest load: append-only,
//!   no row is ever read or updated, no page is ever pruned;
//! * `tpcb`: TPC-B's transaction, like applications that update rows — an account (updated, then read back), its teller
//!   and its branch updated and a history row inserted, in one transaction (pgbench's default
//!   shape). Updates make HOT chains, pruning and full-page images after a restart: WAL the
//!   server writes on its own, which the insert load never shows.
//!
//! After a cutover the report gives the client-visible write blackout (the longest gap between
//! acknowledged commits), the failed attempts, and — checked on the database that holds the
//! data now — every acknowledged commit that is missing there and, for `tpcb`, every account,
//! teller or branch whose balance disagrees with the history (a transaction half applied).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The table the insert workload writes (created by the lab, owned by the application role).
pub const TABLE: &str = "godwit_workload";

/// What the clients commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One `(client, seq)` row per autocommit INSERT into [`TABLE`].
    Insert,
    /// TPC-B: update an account, its teller and its branch, insert a history row; one
    /// transaction (tables `tpcb_*`, see [`tpcb_schema`]).
    Tpcb,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Insert => "insert",
            Kind::Tpcb => "tpcb",
        }
    }

    pub fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "insert" => Ok(Kind::Insert),
            "tpcb" => Ok(Kind::Tpcb),
            other => Err(format!(
                "unknown workload {other:?}: insert (append-only) or tpcb (updates across tables)"
            )),
        }
    }
}

/// Accounts per branch and tellers per branch of the TPC-B tables (pgbench's ratios are
/// 100 000 and 10; a lab seeds far fewer accounts, so a branch holds fewer to keep more than
/// one branch — one branch row would serialise every transaction).
const ACCOUNTS_PER_BRANCH: i64 = 2_500;
const TELLERS_PER_BRANCH: i64 = 10;

/// The TPC-B tables with `accounts` accounts, every balance 0 (so a balance is the sum of its
/// history). Run as the application role.
pub fn tpcb_schema(accounts: i64) -> String {
    let accounts = accounts.max(1);
    let branches = (accounts / ACCOUNTS_PER_BRANCH).max(1);
    format!(
        "CREATE TABLE tpcb_branches (bid int PRIMARY KEY, bbalance bigint NOT NULL DEFAULT 0, filler char(88));
         CREATE TABLE tpcb_tellers (tid int PRIMARY KEY, bid int NOT NULL, tbalance bigint NOT NULL DEFAULT 0, filler char(84));
         CREATE TABLE tpcb_accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance bigint NOT NULL DEFAULT 0, filler char(84));
         CREATE TABLE tpcb_history (client int, seq bigint, tid int, bid int, aid int, delta bigint, mtime timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (client, seq));
         INSERT INTO tpcb_branches (bid) SELECT g FROM generate_series(1, {branches}) g;
         INSERT INTO tpcb_tellers (tid, bid) SELECT g, (g - 1) / {TELLERS_PER_BRANCH} + 1 FROM generate_series(1, {tellers}) g;
         INSERT INTO tpcb_accounts (aid, bid) SELECT g, (g - 1) / {ACCOUNTS_PER_BRANCH} + 1 FROM generate_series(1, {accounts}) g;
         ANALYZE tpcb_branches, tpcb_tellers, tpcb_accounts;",
        tellers = branches * TELLERS_PER_BRANCH,
    )
}

/// One client's record.
#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    pub client: i32,
    /// `(seq, epoch µs when the commit was acknowledged)`.
    pub acked: Vec<(i64, i64)>,
    /// INSERTs that returned an error (the outcome of an in-flight COMMIT is unknown to the
    /// client; only acknowledged ones are checked for loss).
    pub failed: u64,
    /// Connection attempts that failed.
    pub connect_errors: u64,
    /// Error messages by text, counted.
    pub errors: BTreeMap<String, u64>,
}

/// What the clients saw.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub clients: usize,
    pub acked: usize,
    pub failed_attempts: u64,
    pub connect_errors: u64,
    /// The longest gap between two acknowledged commits (any client), ms.
    pub blackout_ms: f64,
    /// When that gap started and ended (epoch ms).
    pub blackout_from_ms: i64,
    pub blackout_to_ms: i64,
    /// Which load (`insert` or `tpcb`).
    pub kind: Kind,
    /// Acknowledged commits missing on the checked database; `None` until checked.
    pub lost: Option<u64>,
    /// `tpcb`: accounts, tellers and branches whose balance is not the sum of their history on
    /// the checked database (a transaction half there); `None` until checked or for `insert`.
    pub inconsistent: Option<u64>,
    /// Acknowledged after `after_ms` (the route switch) — and present on the checked database.
    pub acked_after_switch: Option<u64>,
    pub errors: BTreeMap<String, u64>,
}

pub struct Workload {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Each client's log as it grows: read while the load runs ([`Workload::logs`]).
    logs: Vec<Arc<Mutex<ClientLog>>>,
    kind: Kind,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("clients", &self.tasks.len())
            .finish()
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Workload {
    /// Start `clients` writers of `kind` against `127.0.0.1:port` as `role` in database `db`,
    /// each pausing `pace` between commits (0: as fast as the server acknowledges). `accounts`:
    /// how many TPC-B accounts exist (the lab's seed; ignored by `insert`).
    pub fn start(
        port: u16,
        role: &str,
        db: &str,
        clients: usize,
        pace: Duration,
        kind: Kind,
        accounts: i64,
    ) -> Workload {
        let (stop, rx) = watch::channel(false);
        let conninfo = format!(
            "host=127.0.0.1 port={port} user={role} dbname={db} connect_timeout=60 application_name=godwit-workload"
        );
        let logs: Vec<Arc<Mutex<ClientLog>>> = (0..clients)
            .map(|i| {
                Arc::new(Mutex::new(ClientLog {
                    client: i as i32,
                    ..ClientLog::default()
                }))
            })
            .collect();
        let tasks = logs
            .iter()
            .map(|log| {
                let rx = rx.clone();
                let conninfo = conninfo.clone();
                tokio::spawn(client_loop(log.clone(), conninfo, pace, rx, kind, accounts))
            })
            .collect();
        Workload {
            stop,
            tasks,
            logs,
            kind,
        }
    }

    /// The clients' logs so far, while they keep writing.
    pub fn logs(&self) -> Vec<ClientLog> {
        self.logs
            .iter()
            .map(|l| l.lock().map(|l| l.clone()).unwrap_or_default())
            .collect()
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Stop every client and collect their logs (with the kind, for [`report`]).
    pub async fn stop(self) -> Vec<ClientLog> {
        let _ = self.stop.send(true);
        let logs = self.logs;
        for t in self.tasks {
            let _ = t.await;
        }
        logs.iter()
            .map(|l| l.lock().map(|l| l.clone()).unwrap_or_default())
            .collect()
    }
}

/// One TPC-B transaction of `client`: the account, teller and branch it touches, and the
/// amount (pgbench's `tpcb-like` script, with the values chosen here so one simple-query round
/// trip commits it).
fn tpcb_sql(client: i32, seq: i64, accounts: i64, rng: &mut u64) -> String {
    // xorshift64*: deterministic per client, no dependency.
    let mut next = || {
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let accounts = accounts.max(1);
    let aid = (next() % accounts as u64) as i64 + 1;
    let bid = (aid - 1) / ACCOUNTS_PER_BRANCH + 1;
    let tid = (bid - 1) * TELLERS_PER_BRANCH + (next() % TELLERS_PER_BRANCH as u64) as i64 + 1;
    let delta = (next() % 10_001) as i64 - 5_000;
    format!(
        "BEGIN; \
         UPDATE tpcb_accounts SET abalance = abalance + {delta} WHERE aid = {aid}; \
         SELECT abalance FROM tpcb_accounts WHERE aid = {aid}; \
         UPDATE tpcb_tellers SET tbalance = tbalance + {delta} WHERE tid = {tid}; \
         UPDATE tpcb_branches SET bbalance = bbalance + {delta} WHERE bid = {bid}; \
         INSERT INTO tpcb_history (client, seq, tid, bid, aid, delta) VALUES ({client}, {seq}, {tid}, {bid}, {aid}, {delta}); \
         COMMIT"
    )
}

async fn client_loop(
    log: Arc<Mutex<ClientLog>>,
    conninfo: String,
    pace: Duration,
    mut stop: watch::Receiver<bool>,
    kind: Kind,
    accounts: i64,
) {
    let client = log.lock().map(|l| l.client).unwrap_or(0);
    // The lock is taken once per commit or error, never across an await.
    let record = |f: &mut dyn FnMut(&mut ClientLog)| {
        if let Ok(mut l) = log.lock() {
            f(&mut l);
        }
    };
    let mut seq: i64 = 0;
    let mut rng: u64 =
        0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut conn: Option<tokio_postgres::Client> = None;
    let sql = format!("INSERT INTO {TABLE} (client, seq) VALUES ($1, $2)");
    while !*stop.borrow() {
        let c = match &conn {
            Some(c) if !c.is_closed() => c,
            _ => {
                let attempt = tokio::select! {
                    r = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls) => r,
                    _ = stop.changed() => break,
                };
                match attempt {
                    Ok((c, connection)) => {
                        tokio::spawn(connection);
                        conn = Some(c);
                        conn.as_ref().expect("just set")
                    }
                    Err(e) => {
                        record(&mut |log| {
                            log.connect_errors += 1;
                            *log.errors.entry(short(&e)).or_default() += 1;
                        });
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                }
            }
        };
        seq += 1;
        let done = match kind {
            Kind::Insert => c.execute(&sql, &[&client, &seq]).await.map(|_| ()),
            Kind::Tpcb => {
                c.batch_execute(&tpcb_sql(client, seq, accounts, &mut rng))
                    .await
            }
        };
        match done {
            Ok(()) => record(&mut |log| log.acked.push((seq, now_us()))),
            Err(e) => {
                record(&mut |log| {
                    log.failed += 1;
                    *log.errors.entry(short(&e)).or_default() += 1;
                });
                conn = None;
            }
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
}

/// What the readers saw (shadow reads): sessions opened, queries answered, failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ReadReport {
    pub clients: usize,
    pub sessions: u64,
    pub queries: u64,
    pub connect_errors: u64,
    pub failed_queries: u64,
    pub errors: BTreeMap<String, u64>,
}

/// Readers through the readers' route: each opens a session, reads `orders` by key 20 times
/// and leaves — so new connections keep crossing the route, as a pool's turnover does — and
/// retries 50 ms after a failure.
pub struct Readers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    report: Arc<Mutex<ReadReport>>,
}

impl Readers {
    /// `clients` readers against `127.0.0.1:port` as `role` in database `db`, keys in
    /// `1..=rows`.
    pub fn start(port: u16, role: &str, db: &str, clients: usize, rows: i64) -> Readers {
        let (stop, rx) = watch::channel(false);
        let conninfo = format!(
            "host=127.0.0.1 port={port} user={role} dbname={db} connect_timeout=5 application_name=godwit-readers"
        );
        let report = Arc::new(Mutex::new(ReadReport {
            clients,
            ..ReadReport::default()
        }));
        let tasks = (0..clients)
            .map(|i| {
                tokio::spawn(reader_loop(
                    report.clone(),
                    conninfo.clone(),
                    rx.clone(),
                    rows.max(1),
                    i as u64,
                ))
            })
            .collect();
        Readers {
            stop,
            tasks,
            report,
        }
    }

    /// What they saw so far.
    pub fn report(&self) -> ReadReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub async fn stop(self) -> ReadReport {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn reader_loop(
    report: Arc<Mutex<ReadReport>>,
    conninfo: String,
    mut stop: watch::Receiver<bool>,
    rows: i64,
    seed: u64,
) {
    let record = |f: &mut dyn FnMut(&mut ReadReport)| {
        if let Ok(mut r) = report.lock() {
            f(&mut r);
        }
    };
    let mut rng = 0x2545_F491_4F6C_DD1D ^ (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while !*stop.borrow() {
        let attempt = tokio::select! {
            r = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls) => r,
            _ = stop.changed() => break,
        };
        let c = match attempt {
            Ok((c, connection)) => {
                tokio::spawn(connection);
                record(&mut |r| r.sessions += 1);
                c
            }
            Err(e) => {
                record(&mut |r| {
                    r.connect_errors += 1;
                    *r.errors.entry(short(&e)).or_default() += 1;
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        for _ in 0..20 {
            if *stop.borrow() {
                break;
            }
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let id = (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % rows as u64) as i64 + 1;
            match c
                .query("SELECT id, amount FROM orders WHERE id = $1", &[&id])
                .await
            {
                Ok(_) => record(&mut |r| r.queries += 1),
                Err(e) => {
                    record(&mut |r| {
                        r.failed_queries += 1;
                        *r.errors.entry(short(&e)).or_default() += 1;
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn short(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            if let Some(src) = std::error::Error::source(e) {
                s = format!("{s}: {src}");
            }
            s
        }
    }
}

/// Blackout and failures from the logs of a `kind` workload (no loss check yet).
pub fn report(kind: Kind, logs: &[ClientLog]) -> Report {
    let mut times: Vec<i64> = logs
        .iter()
        .flat_map(|l| l.acked.iter().map(|(_, t)| *t))
        .collect();
    times.sort_unstable();
    let (mut gap, mut from, mut to) = (0i64, 0i64, 0i64);
    for w in times.windows(2) {
        if w[1] - w[0] > gap {
            gap = w[1] - w[0];
            from = w[0];
            to = w[1];
        }
    }
    let mut errors = BTreeMap::new();
    for l in logs {
        for (k, v) in &l.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    Report {
        clients: logs.len(),
        acked: times.len(),
        failed_attempts: logs.iter().map(|l| l.failed).sum(),
        connect_errors: logs.iter().map(|l| l.connect_errors).sum(),
        blackout_ms: gap as f64 / 1000.0,
        blackout_from_ms: from / 1000,
        blackout_to_ms: to / 1000,
        kind,
        lost: None,
        inconsistent: None,
        acked_after_switch: None,
        errors,
    }
}

/// Check every acknowledged commit against the database on `port` (the database that holds
/// the data now: the promoted target, or the source after a rollback): sets `lost`
/// (acknowledged but missing), for `tpcb` `inconsistent` (balances that disagree with the
/// history: a transaction half applied), and with `switch_ms` how many commits acknowledged
/// after it are there.
pub async fn check_on(
    report: &mut Report,
    logs: &[ClientLog],
    port: u16,
    db: &str,
    switch_ms: Option<i64>,
) -> Result<(), String> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname={db} connect_timeout=10"),
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| format!("connect to the target on port {port}: {e}"))?;
    tokio::spawn(conn);
    let table = match report.kind {
        Kind::Insert => TABLE,
        Kind::Tpcb => "tpcb_history",
    };
    let rows = c
        .query(&format!("SELECT client, seq FROM {table}"), &[])
        .await
        .map_err(|e| format!("read {table} on the target: {e}"))?;
    let present: HashSet<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut lost = 0;
    let mut after = 0;
    for l in logs {
        for (seq, t) in &l.acked {
            if present.contains(&(l.client, *seq)) {
                if switch_ms.is_some_and(|s| t / 1000 > s) {
                    after += 1;
                }
            } else {
                lost += 1;
            }
        }
    }
    report.lost = Some(lost);
    report.acked_after_switch = switch_ms.map(|_| after);
    if report.kind == Kind::Tpcb {
        // Every balance started at 0, so each is the sum of its history's deltas.
        let row = c
            .query_one(
                "SELECT
                   (SELECT count(*) FROM tpcb_accounts a LEFT JOIN
                      (SELECT aid, sum(delta) s FROM tpcb_history GROUP BY aid) h USING (aid)
                    WHERE a.abalance <> coalesce(h.s, 0))
                 + (SELECT count(*) FROM tpcb_tellers t LEFT JOIN
                      (SELECT tid, sum(delta) s FROM tpcb_history GROUP BY tid) h USING (tid)
                    WHERE t.tbalance <> coalesce(h.s, 0))
                 + (SELECT count(*) FROM tpcb_branches b LEFT JOIN
                      (SELECT bid, sum(delta) s FROM tpcb_history GROUP BY bid) h USING (bid)
                    WHERE b.bbalance <> coalesce(h.s, 0))",
                &[],
            )
            .await
            .map_err(|e| format!("check the TPC-B balances on the target: {e}"))?;
        report.inconsistent = Some(row.get::<_, i64>(0) as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blackout_is_the_longest_gap_across_clients() {
        let logs = vec![
            ClientLog {
                client: 0,
                acked: vec![(1, 1_000), (2, 2_000), (3, 900_000)],
                failed: 1,
                ..ClientLog::default()
            },
            ClientLog {
                client: 1,
                acked: vec![(1, 1_500), (2, 500_000)],
                ..ClientLog::default()
            },
        ];
        let r = report(Kind::Insert, &logs);
        assert_eq!(r.acked, 5);
        assert_eq!(r.failed_attempts, 1);
        // 2 ms → 500 ms (client 1 bridges part of client 0's gap): 498 ms.
        assert_eq!(r.blackout_ms, 498.0);
        assert_eq!((r.blackout_from_ms, r.blackout_to_ms), (2, 500));
    }

    #[test]
    fn a_tpcb_transaction_touches_one_account_its_teller_and_its_branch() {
        let mut rng = 42u64;
        for seq in 1..200 {
            let sql = tpcb_sql(3, seq, 10_000, &mut rng);
            let num = |key: &str| -> i64 {
                let at = sql.find(key).unwrap() + key.len();
                sql[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '-')
                    .collect::<String>()
                    .parse()
                    .unwrap()
            };
            let (aid, tid, bid) = (
                num("WHERE aid = "),
                num("WHERE tid = "),
                num("WHERE bid = "),
            );
            assert!((1..=10_000).contains(&aid), "{sql}");
            assert_eq!(bid, (aid - 1) / ACCOUNTS_PER_BRANCH + 1, "{sql}");
            assert_eq!((tid - 1) / TELLERS_PER_BRANCH + 1, bid, "{sql}");
            assert!(sql.starts_with("BEGIN;") && sql.ends_with("COMMIT"));
            assert!(sql.contains(&format!("VALUES (3, {seq}, {tid}, {bid}, {aid}, ")));
        }
    }
}
