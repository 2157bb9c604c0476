//! The lab's CloudWatch: the supervisor samples every second from `pg_stat_replication`,
//! `pg_replication_slots` and `pg_stat_activity` and appends one line per second to
//! `metrics.jsonl`; `cw::metric_series` in any lab process aggregates those lines per period.
//!
//! | metric (namespace AWS/RDS) | dimension | sampled as |
//! |---|---|---|
//! | `OldestReplicationSlotLag` | instance | max over slots of `current LSN − restart_lsn` (physical) / `confirmed_flush_lsn` (logical), bytes |
//! | `TransactionLogsGeneration` | instance | WAL bytes per second between two samples |
//! | `DatabaseConnections` | instance | client backends in `pg_stat_activity`, not counting the sampler's own session nor `rdsadmin`'s (AWS: the metric excludes "Amazon RDS connections"; walsenders are not client backends) |
//! | `FreeStorageSpace` | instance | the instance's allocation (`allocated_storage_gb`) minus what its data directory uses, bytes |
//! | `RDSToAuroraPostgreSQLReplicaLag` | cluster | the replica's `replay_lag` in `pg_stat_replication` on the source, seconds (0 when idle) |
//! | `ReplicaLagBytes` | cluster | `current LSN − replay_lsn` of that replica, bytes |

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
    sample_as(st, last_lsn, "postgres").await
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
        let Ok(c) = connect(&inst.spec.socket_dir, inst.port, user).await else {
            continue;
        };
        let dim = "DBInstanceIdentifier";
        if let Ok(row) = c
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, \
                 (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
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
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (c, conn) = tokio_postgres::Config::new()
        .host_path(socket_dir)
        .port(port)
        .user(user)
        .dbname("postgres")
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
        let s = sample(&st, &mut last_lsn).await;
        if s.m.is_empty() {
            continue;
        }
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&path)
            && let Ok(line) = serde_json::to_string(&s)
        {
            let _ = writeln!(f, "{line}");
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
        Ok(aggregate(
            &read_samples(&self.dir, q.since, q.until),
            &k,
            q.period,
            stat,
            (q.since, q.until),
        ))
    }
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
}
