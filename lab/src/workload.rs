//! A write load through Envoy that records what clients saw: N clients, each inserting
//! `(client, seq)` rows one autocommit statement at a time through the Envoy listener,
//! recording every acknowledged commit with its time, reconnecting after any error. After a
//! cutover the report gives the client-visible write blackout (the longest gap between
//! acknowledged commits), the failed attempts, and — checked on the promoted target — every
//! acknowledged commit that is missing there.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The table the workload writes (created by the lab, owned by the application role).
pub const TABLE: &str = "godwit_workload";

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
#[derive(Debug, Clone, Serialize)]
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
    /// Acknowledged commits missing on the checked database; `None` until checked.
    pub lost: Option<u64>,
    /// Acknowledged after `after_ms` (the route switch) — and present on the checked database.
    pub acked_after_switch: Option<u64>,
    pub errors: BTreeMap<String, u64>,
}

pub struct Workload {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<ClientLog>>,
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
    /// Start `clients` writers against `127.0.0.1:port` as `role` in database `db`, each
    /// pausing `pace` between commits (0: as fast as the server acknowledges).
    pub fn start(port: u16, role: &str, db: &str, clients: usize, pace: Duration) -> Workload {
        let (stop, rx) = watch::channel(false);
        let conninfo = format!(
            "host=127.0.0.1 port={port} user={role} dbname={db} connect_timeout=60 application_name=godwit-workload"
        );
        let tasks = (0..clients)
            .map(|i| {
                let rx = rx.clone();
                let conninfo = conninfo.clone();
                tokio::spawn(client_loop(i as i32, conninfo, pace, rx))
            })
            .collect();
        Workload { stop, tasks }
    }

    /// Stop every client and collect their logs.
    pub async fn stop(self) -> Vec<ClientLog> {
        let _ = self.stop.send(true);
        let mut out = Vec::new();
        for t in self.tasks {
            if let Ok(log) = t.await {
                out.push(log);
            }
        }
        out
    }
}

async fn client_loop(
    client: i32,
    conninfo: String,
    pace: Duration,
    mut stop: watch::Receiver<bool>,
) -> ClientLog {
    let mut log = ClientLog {
        client,
        ..ClientLog::default()
    };
    let mut seq: i64 = 0;
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
                        log.connect_errors += 1;
                        *log.errors.entry(short(&e)).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                }
            }
        };
        seq += 1;
        match c.execute(&sql, &[&client, &seq]).await {
            Ok(_) => log.acked.push((seq, now_us())),
            Err(e) => {
                log.failed += 1;
                *log.errors.entry(short(&e)).or_default() += 1;
                conn = None;
            }
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    log
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

/// Blackout and failures from the logs (no loss check yet).
pub fn report(logs: &[ClientLog]) -> Report {
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
        lost: None,
        acked_after_switch: None,
        errors,
    }
}

/// Check every acknowledged commit against the database on `port` (the promoted target):
/// sets `lost` (acknowledged but missing) and, with `switch_ms`, how many commits
/// acknowledged after it are there.
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
    let rows = c
        .query(&format!("SELECT client, seq FROM {TABLE}"), &[])
        .await
        .map_err(|e| format!("read {TABLE} on the target: {e}"))?;
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
        let r = report(&logs);
        assert_eq!(r.acked, 5);
        assert_eq!(r.failed_attempts, 1);
        // 2 ms → 500 ms (client 1 bridges part of client 0's gap): 498 ms.
        assert_eq!(r.blackout_ms, 498.0);
        assert_eq!((r.blackout_from_ms, r.blackout_to_ms), (2, 500));
    }
}
