//! A recorded series replayed as the source's workload (`[workload] recorded`): what the
//! model takes from it, on the world's timeline.
//!
//! | recorded | the model |
//! |---|---|
//! | `TransactionLogsGeneration` | the application's write rate: the recorded average of the period holding the instant, less the model's own RDS heartbeat (the recording holds the real one), never below 0; no jitter |
//! | `DatabaseConnections` | how many application sessions the source has (less `internal_connections`): sessions connect and disconnect as it changes, within the fence's rules (a quarantined source admits none) |
//! | `FreeStorageSpace` | the data size at the start (allocated − free − the retained WAL), so free storage starts at the recorded value; afterwards the model's (data fixed, retained WAL counted) |
//!
//! The history before the start (`cloudwatch.history`) is filled from the same mapping, so the
//! world's CloudWatch reads back the recording there too. Slot lag, replica lag and retained WAL
//! are *not* forced: they are the model's answer to the replayed writes (a gate that read a
//! recorded lag would test the recording, not the runbook). The rules of time — step-held
//! periods, gaps held, the first value before the start, loop or hold past the end — are
//! [`Timeline`]'s.

use serde::{Deserialize, Serialize};

use super::scenario::{Scenario, dur_ms};
use crate::cw::recording::{Recording, Timeline};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// The file, as the scenario names it.
    pub file: String,
    pub timeline: Timeline,
    pub period_s: i64,
    /// bytes/s, count, bytes: `[t_ms, value]` on the recording's own timeline.
    pub wal: Vec<(i64, f64)>,
    pub connections: Vec<(i64, f64)>,
    pub free: Vec<(i64, f64)>,
    /// The lowest and highest recorded WAL rates (what "at peak" means for a replayed load).
    pub wal_low: f64,
    pub wal_high: f64,
    /// The model's heartbeat, bytes/s on average: taken off the recorded rate.
    pub heartbeat_rate: f64,
}

impl Replay {
    /// The replay of `sc`'s recording, if it has one (validated: it holds WAL datapoints).
    pub fn of(sc: &Scenario) -> Option<Replay> {
        let rec: &Recording = sc.workload.recording.as_deref()?;
        let wal = rec.source_metric("TransactionLogsGeneration")?;
        let series = |name: &str| {
            rec.source_metric(name)
                .map(|m| m.points.clone())
                .unwrap_or_default()
        };
        let timeline = Timeline::new(
            wal,
            rec.period,
            sc.start_ms(),
            dur_ms(&sc.workload.offset),
            sc.workload.past_end,
        )?;
        let (wal_low, wal_high) = wal
            .points
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), (_, v)| {
                (lo.min(*v), hi.max(*v))
            });
        let heartbeat_ms = dur_ms(&sc.wal.heartbeat_interval).max(1);
        Some(Replay {
            file: sc.workload.recorded.clone().unwrap_or_else(|| "?".into()),
            timeline,
            period_s: rec.period,
            wal: wal.points.clone(),
            connections: series("DatabaseConnections"),
            free: series("FreeStorageSpace"),
            wal_low,
            wal_high,
            heartbeat_rate: sc.wal.heartbeat_bytes as f64 / (heartbeat_ms as f64 / 1000.0),
        })
    }

    /// The application's write rate at `t_ms` (bytes/s).
    pub fn write_rate(&self, t_ms: i64) -> f64 {
        let v = self.timeline.value(&self.wal, t_ms).unwrap_or(0.0);
        (v - self.heartbeat_rate).max(0.0)
    }

    /// Sessions `DatabaseConnections` recorded at `t_ms`, if it was recorded.
    pub fn connections(&self, t_ms: i64) -> Option<u32> {
        let v = self.timeline.value(&self.connections, t_ms)?;
        Some(v.round().max(0.0) as u32)
    }

    /// `FreeStorageSpace` recorded at `t_ms` (bytes), if it was recorded.
    pub fn free(&self, t_ms: i64) -> Option<f64> {
        self.timeline.value(&self.free, t_ms)
    }

    /// One line for people: what is replayed and what happens past the end.
    pub fn describe(&self) -> String {
        format!(
            "WAL replayed from {}, {} points at {} s (TransactionLogsGeneration){}{}; past its end \
             it {}",
            self.file,
            self.wal.len(),
            self.period_s,
            if self.connections.is_empty() {
                ""
            } else {
                ", sessions following DatabaseConnections"
            },
            if self.free.is_empty() {
                ""
            } else {
                ", free storage starting at FreeStorageSpace"
            },
            self.timeline.past_end.word()
        )
    }
}
