//! The lab's CloudWatch: the supervisor samples every second from `pg_stat_replication`,
//! `pg_replication_slots` and `pg_stat_activity` and appends one line per second to
//! `metrics.jsonl`; `cw::metric_series` in any lab process aggregates those lines per period.
//!
//! | metric (namespace AWS/RDS) | dimension | sampled as |
//! |---|---|---|
//! | `OldestReplicationSlotLag` | instance | max over slots of `current LSN − restart_lsn` (physical) / `confirmed_flush_lsn` (logical), bytes |
//! | `TransactionLogsGeneration` | instance | WAL bytes per second between two samples |
//! | `DatabaseConnections` | instance | client backends and logical replication connections (CDC consumers) in `pg_stat_activity`, not counting `rdsadmin`'s sessions — the sampler's, the heartbeat's, the areas' SQL — nor physical walsenders (the replica's stream, which RDS runs) |
//! | `FreeStorageSpace` | instance | the instance's allocation (`allocated_storage_gb`) minus what its data directory uses, bytes |
//! | `RDSToAuroraPostgreSQLReplicaLag` | cluster | the replica's `replay_lag` in `pg_stat_replication` on the source, seconds (0 when idle) |
//! | `ReplicaLagBytes` | cluster | `current LSN − replay_lsn` of that replica, bytes |
//! | `CPUUtilization` | instance | the instance's processes' CPU time over wall time and the class's vCPUs, percent ([`host_figures`]) |
//! | `FreeableMemory` | instance | the class's memory minus what the instance's processes hold, bytes ([`host_figures`]) |
//!
//! `DatabaseConnections` follows AWS's definition: "the number of client network connections
//! to the database instance", which does not include "sessions created by the database engine
//! for its own purposes" nor "Amazon RDS connections"
//! (<https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-metrics.html>). A CDC tool's
//! logical replication connection is a client's network connection, so it counts (inference:
//! AWS does not list walsenders either way); an Aurora replica's stream is RDS's own.
//!
//! RDS's agent ([`run_agent`]) writes a heartbeat into `rdsadmin.rds_heartbeat2`, as RDS does
//! every 5 minutes, and forces a switch to a new WAL segment once `archive_timeout` has passed
//! with something written — RDS's `archive_timeout` is 300 s, so on an idle instance every
//! heartbeat ends up filling a 64 MiB segment
//! (<https://www.morling.dev/blog/insatiable-postgres-replication-slot/>).
//!
//! A datapoint is returned only once its period has ended and the sampler has moved past it,
//! as CloudWatch publishes a period after it ends: the lab is not kinder than AWS (a
//! `Maximum` of 0 read mid-period would miss a session that logs in before the period ends).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use godwit_engine::Call;
use godwit_stdlib::cw::{self, Aggregate, Cw, MetricQuery, Statistic};
use godwit_stdlib::lag::Point;
use serde::{Deserialize, Serialize};

use crate::state::LabState;

pub const METRICS_FILE: &str = "metrics.jsonl";

/// RDS's own superuser: the sampler, the heartbeat and the areas' SQL log in as it.
pub const ADMIN: &str = "rdsadmin";

/// RDS's heartbeat table, in database `rdsadmin` (created with the source).
pub const HEARTBEAT_TABLE_SQL: &str = "CREATE TABLE rds_heartbeat2 (id int PRIMARY KEY, value bigint NOT NULL); \
     INSERT INTO rds_heartbeat2 VALUES (1, 0);";

/// One second of samples: `"DBInstanceIdentifier=orders-db/OldestReplicationSlotLag" → value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t: i64,
    pub m: BTreeMap<String, f64>,
}

pub fn key(dimension: &str, id: &str, metric: &str) -> String {
    format!("{dimension}={id}/{metric}")
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Take one sample of every instance and cluster in the lab. Servers that are down (a
/// reboot) are skipped: a gap, as CloudWatch shows one.
pub async fn sample(st: &LabState, last_lsn: &mut BTreeMap<String, (i64, i64)>) -> Sample {
    sample_as(st, last_lsn, ADMIN).await
}

/// [`sample`], logged in as superuser `user`. A world whose godwit logs in as another role than
/// the lab's `postgres` names the role RDS's own monitoring uses (`rdsadmin`), so the sampler's
/// sessions are not counted as the application's (`pg::application_backends` skips it).
pub async fn sample_as(
    st: &LabState,
    last_lsn: &mut BTreeMap<String, (i64, i64)>,
    user: &str,
) -> Sample {
    let mut m = BTreeMap::new();
    let t = now_s();
    for (id, inst) in &st.instances {
        if inst.cluster.is_some() || inst.pid.is_none() {
            continue;
        }
        let Ok(c) = connect(&inst.spec.socket_dir, inst.port, user, "postgres").await else {
            continue;
        };
        let dim = "DBInstanceIdentifier";
        if let Ok(row) = c
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, \
                 (SELECT count(*) FROM pg_stat_activity \
                    WHERE (backend_type = 'client backend' \
                           OR (backend_type = 'walsender' AND datname IS NOT NULL)) \
                    AND pid <> pg_backend_pid() AND usename IS DISTINCT FROM 'rdsadmin')::bigint, \
                 coalesce((SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), \
                    CASE WHEN slot_type = 'logical' THEN confirmed_flush_lsn ELSE restart_lsn END)) \
                    FROM pg_replication_slots), 0)::bigint",
                &[],
            )
            .await
        {
            let (lsn, conns, slot_lag): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            m.insert(key(dim, id, "OldestReplicationSlotLag"), slot_lag as f64);
            m.insert(key(dim, id, "DatabaseConnections"), conns as f64);
            if let Some((t0, lsn0)) = last_lsn.get(id)
                && t > *t0
            {
                m.insert(
                    key(dim, id, "TransactionLogsGeneration"),
                    (lsn - lsn0) as f64 / (t - t0) as f64,
                );
            }
            last_lsn.insert(id.clone(), (t, lsn));
            let allocated = st.attributes.allocated_storage_gb as f64 * (1u64 << 30) as f64;
            let used = crate::pgproc::dir_bytes(&inst.spec.data) as f64;
            m.insert(
                key(dim, id, "FreeStorageSpace"),
                (allocated - used).max(0.0),
            );
        }
        for (cid, cl) in &st.clusters {
            if cl.replication_source.as_deref() != Some(id.as_str()) {
                continue;
            }
            if let Ok(Some(row)) = c
                .query_opt(
                    "SELECT coalesce(extract(epoch FROM replay_lag), 0)::float8, \
                     pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint \
                     FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid \
                     WHERE s.slot_name = $1",
                    &[&cl.slot],
                )
                .await
            {
                let dim = "DBClusterIdentifier";
                m.insert(key(dim, cid, "RDSToAuroraPostgreSQLReplicaLag"), row.get(0));
                let bytes: Option<i64> = row.get(1);
                m.insert(
                    key(dim, cid, "ReplicaLagBytes"),
                    bytes.unwrap_or(0) as f64,
                );
            }
        }
    }
    Sample { t, m }
}

/// Over the server's Unix socket: RDS's own monitoring is not subject to the instance's
/// security groups, and neither is the lab's sampler (`pg_hba.conf` governs TCP clients by
/// address: [`crate::areas::set_hba_quarantine`]).
async fn connect(
    socket_dir: &Path,
    port: u16,
    user: &str,
    dbname: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (c, conn) = tokio_postgres::Config::new()
        .host_path(socket_dir)
        .port(port)
        .user(user)
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(2))
        .application_name("godwit-lab-sampler")
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(conn);
    Ok(c)
}

/// Sample the lab in `dir` every second until `stop` fires, appending to `metrics.jsonl`.
pub async fn run_sampler(dir: PathBuf, mut stop: tokio::sync::watch::Receiver<bool>) {
    let path = dir.join(METRICS_FILE);
    let mut last_lsn = BTreeMap::new();
    let mut cpu = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Ok(st) = LabState::load(&dir) else {
            continue;
        };
        let mut s = sample(&st, &mut last_lsn).await;
        if s.m.is_empty() {
            continue;
        }
        host_figures(&st, &mut cpu, &mut s.m);
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&path)
            && let Ok(line) = serde_json::to_string(&s)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// `/proc/<pid>/stat`'s fields after the command name (which may hold spaces): index 0 is the
/// state (field 3), 1 the parent pid, 11–14 utime, stime, cutime, cstime (clock ticks).
fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The instance's processes: its postmaster and the postmaster's children (every backend,
/// walsender and worker is one).
fn instance_processes(postmaster: u32) -> Vec<u32> {
    let mut pids = vec![postmaster];
    let Ok(dir) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if proc_stat(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// CPU time the instance has used, in clock ticks: the postmaster's own and that of the
/// children it reaped (cutime, cstime), plus its live children's.
fn instance_ticks(postmaster: u32, pids: &[u32]) -> Option<u64> {
    let num = |f: &[String], i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let pm = proc_stat(postmaster)?;
    let mut ticks = num(&pm, 11) + num(&pm, 12) + num(&pm, 13) + num(&pm, 14);
    for pid in pids.iter().filter(|p| **p != postmaster) {
        if let Some(f) = proc_stat(*pid) {
            ticks += num(&f, 11) + num(&f, 12);
        }
    }
    Some(ticks)
}

/// Memory the instance's processes hold (bytes): each one's private memory (`RssAnon`) plus the
/// shared memory they touched, counted once (the largest `RssShmem`: the shared buffers).
fn instance_memory(pids: &[u32]) -> u64 {
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (mut private, mut shared) = (0, 0);
    for pid in pids {
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) {
            private += field(&text, "RssAnon:");
            shared = shared.max(field(&text, "RssShmem:"));
        }
    }
    (private + shared) * 1024
}

/// `/proc`'s clock ticks per second (Linux's `USER_HZ`, fixed at 100 for every architecture's
/// user-visible interface).
const USER_HZ: f64 = 100.0;

/// The source instances' `CPUUtilization` and `FreeableMemory`, from `/proc` (RDS measures
/// them on the instance's host; the lab's instances share this machine):
/// - `CPUUtilization`: the instance's processes' CPU time since the previous sample over the
///   wall time and the class's vCPUs (`db.r6g.large`: 2), percent, at most 100;
/// - `FreeableMemory`: the class's memory (`rds::class_memory_bytes`) minus what the instance's
///   processes hold ([`instance_memory`]) — the memory the instance would have left on a host of
///   its own class.
///
/// `last` keeps each instance's ticks and when they were read.
pub fn host_figures(
    st: &LabState,
    last: &mut BTreeMap<String, (std::time::Instant, u64)>,
    m: &mut BTreeMap<String, f64>,
) {
    // RDS reports CPU as a share of the instance's vCPUs: the lab's class's, whatever this
    // machine has (the host's cores when the class is not in the table).
    let cores = godwit_stdlib::rds::class_vcpus(&st.attributes.instance_class)
        .map(f64::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64);
    let class_memory =
        godwit_stdlib::rds::class_memory_bytes(&st.attributes.instance_class).unwrap_or(0) as f64;
    for (id, inst) in &st.instances {
        let Some(pm) = inst.pid.filter(|_| inst.cluster.is_none()) else {
            continue;
        };
        let pids = instance_processes(pm);
        let now = std::time::Instant::now();
        if let Some(ticks) = instance_ticks(pm, &pids) {
            if let Some((t0, ticks0)) = last.get(id) {
                let wall = now.duration_since(*t0).as_secs_f64();
                if wall > 0.0 && ticks >= *ticks0 {
                    let busy = (ticks - ticks0) as f64 / USER_HZ;
                    m.insert(
                        key("DBInstanceIdentifier", id, "CPUUtilization"),
                        (busy / wall / cores * 100.0).clamp(0.0, 100.0),
                    );
                }
            }
            last.insert(id.clone(), (now, ticks));
        }
        if class_memory > 0.0 {
            m.insert(
                key("DBInstanceIdentifier", id, "FreeableMemory"),
                (class_memory - instance_memory(&pids) as f64).max(0.0),
            );
        }
    }
}

/// What RDS's agent keeps between beats: its connections, and per instance when it last
/// switched WAL segments and the LSN right after.
#[derive(Default)]
pub struct Agent {
    conns: BTreeMap<String, tokio_postgres::Client>,
    switched: BTreeMap<String, (std::time::Instant, i64)>,
}

/// RDS's heartbeat: one `UPDATE` of `rdsadmin.rds_heartbeat2` on every running source
/// instance (not on Aurora cluster members), over the Unix socket as [`ADMIN`] — through any
/// quarantine, as RDS's agent is not subject to the instance's security groups. Connections are
/// kept in `agent` and opened again after a reboot ended them. Returns the instances written.
pub async fn heartbeat(st: &LabState, agent: &mut Agent) -> Vec<String> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut written = Vec::new();
    for id in sources(st, agent).await {
        let Some(c) = agent.conns.get(&id) else {
            continue;
        };
        match c
            .execute(
                "UPDATE rds_heartbeat2 SET value = $1 WHERE id = 1",
                &[&now_ms],
            )
            .await
        {
            Ok(_) => written.push(id),
            Err(_) => {
                agent.conns.remove(&id);
            }
        }
    }
    written
}

/// The forced segment switch of `archive_timeout`, applied by RDS's agent: on every running
/// source instance whose last switch is at least `every` ago, switch to a new WAL segment if
/// anything was written since (an instance nobody writes to, heartbeat included, stays put —
/// PostgreSQL's rule). PostgreSQL's own `archive_timeout` did not switch here: measured on
/// PostgreSQL 15.18 with `archive_timeout=5s` and an `UPDATE` every 2 s, 40 s without a switch,
/// with `archive_mode` on or off and after a `pg_switch_wal()`. Returns the instances switched.
pub async fn force_switch(st: &LabState, agent: &mut Agent, every: Duration) -> Vec<String> {
    let mut switched = Vec::new();
    for id in sources(st, agent).await {
        if agent
            .switched
            .get(&id)
            .is_some_and(|(at, _)| at.elapsed() < every)
        {
            continue;
        }
        let Some(c) = agent.conns.get(&id) else {
            continue;
        };
        let last = agent.switched.get(&id).map(|(_, lsn)| *lsn).unwrap_or(-1);
        // One statement: the position read and the switch are one decision.
        let row = c
            .query_one(
                "SELECT pg_wal_lsn_diff(CASE WHEN pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') > $1::bigint \
                 THEN pg_switch_wal() ELSE pg_current_wal_lsn() END, '0/0')::bigint, \
                 pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
                &[&last],
            )
            .await;
        match row {
            Ok(r) => {
                let (before, after): (i64, i64) = (r.get(0), r.get(1));
                if after > before || last < 0 {
                    // RDS checkpoints every 300 s, as often as it switches; the lab cannot set
                    // checkpoint_timeout below 30 s, so the agent checkpoints with each switch.
                    // Without it every switch added a new 64 MiB file to pg_wal until the next
                    // checkpoint (FreeStorageSpace fell ~1 GiB/min and preflight's headroom
                    // check refused); with it the segment before is recycled as the next one.
                    if c.batch_execute("CHECKPOINT").await.is_err() {
                        agent.conns.remove(&id);
                    }
                    switched.push(id.clone());
                }
                agent
                    .switched
                    .insert(id, (std::time::Instant::now(), after));
            }
            Err(_) => {
                agent.conns.remove(&id);
            }
        }
    }
    switched
}

/// Bring the sources' `pg_wal` to its steady size before anything measures it: `cycles`
/// heartbeats, each followed by a forced switch and its checkpoint, so that the segments later
/// switches use are recycled ones, not new files (FreeStorageSpace stays flat on an idle
/// source, as on RDS once it has run a while).
pub async fn settle_wal(st: &LabState, cycles: usize) {
    let mut agent = Agent::default();
    for _ in 0..cycles {
        heartbeat(st, &mut agent).await;
        force_switch(st, &mut agent, Duration::ZERO).await;
    }
}

/// The running source instances, each with an open connection of the agent's (as [`ADMIN`],
/// in its database, over the Unix socket).
async fn sources(st: &LabState, agent: &mut Agent) -> Vec<String> {
    let mut out = Vec::new();
    for (id, inst) in &st.instances {
        if inst.cluster.is_some() || inst.pid.is_none() {
            agent.conns.remove(id);
            continue;
        }
        if agent.conns.get(id).is_none_or(|c| c.is_closed()) {
            match connect(&inst.spec.socket_dir, inst.port, ADMIN, ADMIN).await {
                Ok(c) => {
                    agent.conns.insert(id.clone(), c);
                }
                Err(_) => {
                    agent.conns.remove(id);
                    continue; // down (a reboot): the next beat tries again
                }
            }
        }
        out.push(id.clone());
    }
    out
}

/// RDS's agent on the lab in `dir` until `stop` fires: the heartbeat every `beat`, the forced
/// segment switch every `switch` (see [`heartbeat`], [`force_switch`]).
pub async fn run_agent(
    dir: PathBuf,
    beat: Option<Duration>,
    switch: Option<Duration>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut agent = Agent::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_beat: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Ok(st) = LabState::load(&dir) else {
            continue;
        };
        if let Some(every) = beat
            && last_beat.is_none_or(|t| t.elapsed() >= every)
        {
            last_beat = Some(std::time::Instant::now());
            heartbeat(&st, &mut agent).await;
        }
        if let Some(every) = switch {
            force_switch(&st, &mut agent, every).await;
        }
    }
}

/// Wait until the sampler has written `n` samples (a lab just started has none: its CloudWatch
/// would answer "no data"), or fail after `timeout`.
pub async fn wait_for_samples(
    dir: &Path,
    n: usize,
    timeout: Duration,
) -> Result<(), crate::LabError> {
    let started = std::time::Instant::now();
    loop {
        let written = fs::read_to_string(dir.join(METRICS_FILE))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if written >= n {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(crate::LabError::Process(format!(
                "the lab's metric sampler wrote {written} of {n} one-second samples to {} in {}; \
                 is the source server up? (its log is in {})",
                dir.join(METRICS_FILE).display(),
                godwit_engine::duration::format_duration(timeout),
                dir.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `cw::metric_series` over `metrics.jsonl`.
pub struct LabCw {
    pub dir: PathBuf,
}

impl Cw for LabCw {
    fn metric_series(
        &self,
        _cx: &Call<'_>,
        q: &MetricQuery,
    ) -> Result<Vec<Point>, godwit_engine::PrimitiveError> {
        let stat = q.check("metric_series")?;
        let Some((dim, id)) = q.dimensions.iter().next() else {
            return Ok(Vec::new());
        };
        if q.namespace != cw::NAMESPACE {
            return Ok(Vec::new()); // CloudWatch answers an unknown metric with no data
        }
        let k = key(dim, id, &q.name);
        let samples = read_samples(&self.dir, q.since, i64::MAX);
        let until = q.until.min(published_until(&samples, q.period, now_s()));
        Ok(aggregate(&samples, &k, q.period, stat, (q.since, until)))
    }
}

/// The end of the published periods: a period `[b, b + period)` is published once it has
/// ended (`b + period <= now`) and the sampler has written a sample at or after its end, so no
/// sample of it is still to come (samples are appended in time order). `samples` are those
/// read; without one past a period's end, the period is not published yet — like a CloudWatch
/// datapoint that arrives late. Returns the bound for period starts (`b < bound`).
pub fn published_until(samples: &[Sample], period: i64, now: i64) -> i64 {
    let period = period.max(1);
    let newest = samples.iter().map(|s| s.t).max().unwrap_or(i64::MIN);
    // b + period <= min(now, newest)  ⇔  b < min(now, newest) - period + 1
    now.min(newest).saturating_sub(period - 1)
}

/// Samples with `since <= t < until`.
pub fn read_samples(dir: &Path, since: i64, until: i64) -> Vec<Sample> {
    let text = fs::read_to_string(dir.join(METRICS_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Sample>(l).ok())
        .filter(|s| s.t >= since && s.t < until)
        .collect()
}

/// One datapoint per period that has samples of `key` (a period without samples is a gap),
/// `t` the period's start, within `[since, until)`.
pub fn aggregate(
    samples: &[Sample],
    key: &str,
    period: i64,
    stat: Statistic,
    (since, until): (i64, i64),
) -> Vec<Point> {
    cw::periods(
        samples
            .iter()
            .filter_map(|s| Some((s.t, Aggregate::of(*s.m.get(key)?)))),
        stat,
        period,
        since,
        until,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_one_key_fold_into_periods() {
        let s = |t, v| Sample {
            t,
            m: [("k".to_string(), v)].into_iter().collect(),
        };
        let samples = [s(100, 1.0), s(101, 3.0), s(250, 7.0)];
        let max = aggregate(&samples, "k", 60, Statistic::Maximum, (0, 600));
        assert_eq!(
            max.iter().map(|p| (p.t, p.v)).collect::<Vec<_>>(),
            [(60, 3.0), (240, 7.0)]
        );
        assert!(aggregate(&samples, "other", 60, Statistic::Maximum, (0, 600)).is_empty());
    }

    #[test]
    fn a_period_is_published_once_it_ended_and_the_sampler_moved_past_it() {
        let s = |t| Sample {
            t,
            m: [("k".to_string(), 1.0)].into_iter().collect(),
        };
        let at = |samples: &[Sample], period, now| {
            let until = published_until(samples, period, now);
            aggregate(samples, "k", period, Statistic::Maximum, (0, until))
                .iter()
                .map(|p| p.t)
                .collect::<Vec<_>>()
        };
        // One-second periods: second 101 is in progress (its sample is written, more of the
        // period is still to come): only 100 is published.
        assert_eq!(at(&[s(100), s(101)], 1, 101), [100]);
        // Second 101 ended, but the sampler has not written past it: not yet.
        assert_eq!(at(&[s(100), s(101)], 1, 102), [100]);
        assert_eq!(at(&[s(100), s(101), s(102)], 1, 102), [100, 101]);
        // Minutes: the minute starting at 120 is published from 180 on, with a sample at 180.
        let minute: Vec<Sample> = (100..=180).map(s).collect();
        assert_eq!(at(&minute[..80], 60, 179), [60]);
        assert_eq!(at(&minute, 60, 180), [60, 120]);
        assert!(at(&[], 60, 1000).is_empty());
    }
}
