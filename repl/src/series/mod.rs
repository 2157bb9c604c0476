//! Recorded CloudWatch series (`godwit cw export`): a source's series read through its world
//! into the file format of [`godwit_stdlib::cw::recording`], which a simulated scenario replays
//! (`[workload] recorded`) and a plan's prediction replays instead of its fitted curve
//! (`godwit plan --series`, `godwit fleet plan --series DIR`).
//!
//! The reads are a runbook ([`EXPORT`]) run on a scratch store like the plan's probe, so they go
//! through the Host: the world's retries on throttling, deadlines, Ctrl-C. One step per metric
//! and day: a step completing is a progress line.

use std::sync::{Arc, Mutex};

use godwit_engine::RunStatus;
use godwit_engine::clock::format_timestamp;
use godwit_engine::exit;
use godwit_engine::transcript::{Event, Line, Sink};
use godwit_stdlib::cw::recording::{FORMAT, RecordedMetric, Recording, SOURCE_METRICS};
use godwit_stdlib::world::World;
use serde_json::{Map, Value, json};

use crate::session::{Failure, invalid};

/// The export runbook: read-only, one step per metric and day.
pub const EXPORT: &str = include_str!("export.rhai");

/// Seconds of series per read (per step): a day, 1,440 one-minute datapoints — GetMetricData
/// answers up to 100,800 per call, so a day is far inside one call and a page or two.
pub const CHUNK_S: i64 = 86_400;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub cluster: String,
    /// Seconds before now.
    pub window_s: i64,
    /// Seconds per datapoint, a multiple of 60.
    pub period: i64,
    /// The world's Region, recorded in the file when known.
    pub region: Option<String>,
}

/// How long CloudWatch keeps datapoints of a period (seconds): 60 s for 15 days, 300 s for 63
/// days, 3600 s for 455 days (GetMetricData API reference; docs/aws.md "CloudWatch series").
pub fn retention_s(period: i64) -> i64 {
    match period {
        p if p < 300 => 15 * 86_400,
        p if p < 3600 => 63 * 86_400,
        _ => 455 * 86_400,
    }
}

impl ExportRequest {
    /// Refuse what CloudWatch cannot answer before anything is read.
    pub fn check(&self) -> Result<(), Failure> {
        if self.period <= 0 || self.period % 60 != 0 {
            return Err(invalid(format!(
                "--period {}: RDS publishes one-minute datapoints; use 60 or a multiple of it \
                 (300, 3600)",
                self.period
            )));
        }
        if self.window_s < self.period {
            return Err(invalid(format!(
                "--since {} s is shorter than one period ({} s): nothing to export",
                self.window_s, self.period
            )));
        }
        let keep = retention_s(self.period);
        if self.window_s > keep {
            return Err(invalid(format!(
                "--since {} days at --period {}: CloudWatch keeps {} s datapoints {} days; use \
                 --period 300 (63 days) or 3600 (455 days), or a shorter window",
                self.window_s / 86_400,
                self.period,
                self.period,
                keep / 86_400
            )));
        }
        Ok(())
    }
}

/// Read `req.cluster`'s series in `world`; `progress` gets one line per metric and day read.
pub fn export(
    world: &World,
    req: &ExportRequest,
    progress: impl Fn(String) + Send + Sync + 'static,
) -> Result<Recording, Failure> {
    req.check()?;
    godwit_engine::run::validate_cluster(&req.cluster)?;
    let mut params = Map::new();
    params.insert("period".into(), json!(req.period));
    params.insert("window_s".into(), json!(req.window_s));
    params.insert("chunk_s".into(), json!(CHUNK_S));
    params.insert(
        "metrics".into(),
        json!(
            SOURCE_METRICS
                .iter()
                .map(|(n, s, u)| json!([n, s, u]))
                .collect::<Vec<_>>()
        ),
    );
    let sink = Arc::new(Progress {
        metrics: Mutex::new(Vec::new()),
        say: Box::new(progress),
    });
    let (lines, report) = crate::plan::read_only_run(
        world,
        "cw-export.rhai",
        EXPORT,
        &req.cluster,
        &params,
        Some(sink),
    )?;
    if let RunStatus::RolledBack { reason, .. } | RunStatus::RollbackFailed { reason, .. } =
        &report.status
    {
        return Err(invalid(format!(
            "cannot export the series of {} in world {}: {reason}",
            req.cluster, world.name
        )));
    }
    let results: Vec<(&str, &Value)> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } => Some((name.as_str(), result)),
            _ => None,
        })
        .collect();
    let plan = results
        .iter()
        .find(|(n, _)| *n == "window")
        .map(|(_, r)| *r)
        .ok_or_else(|| {
            Failure(
                exit::INTERNAL,
                format!("the export of {} read nothing (no window)", req.cluster),
            )
        })?;
    let since = plan["since"].as_i64().unwrap_or(0);
    let until = plan["end"].as_i64().unwrap_or(0);
    let window = format!(
        "between {} and {} ({} s periods)",
        format_timestamp(since * 1000),
        format_timestamp(until * 1000),
        req.period
    );
    let mut metrics: Vec<RecordedMetric> = plan["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| RecordedMetric {
            name: m["name"].as_str().unwrap_or_default().into(),
            namespace: godwit_stdlib::cw::NAMESPACE.into(),
            dimensions: m["dimensions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            statistic: m["statistic"].as_str().unwrap_or_default().into(),
            unit: m["unit"].as_str().unwrap_or_default().into(),
            points: Vec::new(),
        })
        .collect();
    let mut errors: Vec<Option<String>> = vec![None; metrics.len()];
    for (name, r) in &results {
        if !name.starts_with("read-") {
            continue;
        }
        let Some(k) = r["metric"].as_u64().map(|k| k as usize) else {
            continue;
        };
        let Some(m) = metrics.get_mut(k) else {
            continue;
        };
        if let Some(e) = r["error"].as_str() {
            errors[k].get_or_insert_with(|| e.to_string());
        }
        for p in r["points"].as_array().into_iter().flatten() {
            if let (Some(t), Some(v)) = (p["t"].as_i64(), p["v"].as_f64()) {
                m.points.push((t * 1000, v));
            }
        }
    }
    let mut missing = Vec::new();
    let mut kept = Vec::new();
    for (m, error) in metrics.into_iter().zip(errors) {
        let what = format!(
            "{} ({})",
            m.name,
            m.dimensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let wal = m.name == "TransactionLogsGeneration";
        match (error, m.points.is_empty()) {
            (Some(e), _) if wal => {
                return Err(invalid(format!(
                    "cannot read {what} in world {} {window}: {e}",
                    world.name
                )));
            }
            (None, true) if wal => {
                return Err(invalid(format!(
                    "no datapoints of {what} in world {} {window}: a replay needs them. Is the \
                     instance id right, and was it running then? CloudWatch keeps one-minute \
                     datapoints 15 days, five-minute ones 63 days",
                    world.name
                )));
            }
            (Some(e), _) => missing.push(format!("{what}: {e}")),
            (None, true) => missing.push(format!("{what}: no datapoints {window}")),
            (None, false) => kept.push(m),
        }
    }
    Ok(Recording {
        format: FORMAT.into(),
        cluster: req.cluster.clone(),
        world: world.name.clone(),
        region: req.region.clone(),
        period: req.period,
        since_ms: since * 1000,
        until_ms: until * 1000,
        metrics: kept,
        missing,
    })
}

/// Prints a line per metric and day as the export's steps complete.
struct Progress {
    /// The metrics the `window` step planned: what `read-K-I` refers to.
    metrics: Mutex<Vec<Value>>,
    say: Box<dyn Fn(String) + Send + Sync>,
}

impl Sink for Progress {
    fn line(&self, line: &Line) {
        let Event::StepCompleted { name, result, .. } = &line.event else {
            return;
        };
        let mut metrics = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        if name == "window" {
            *metrics = result["metrics"].as_array().cloned().unwrap_or_default();
            return;
        }
        if !name.starts_with("read-") {
            return;
        }
        let m = result["metric"]
            .as_u64()
            .and_then(|k| metrics.get(k as usize))
            .map(|m| m["name"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        let span = format!(
            "{} → {}",
            format_timestamp(result["since"].as_i64().unwrap_or(0) * 1000),
            format_timestamp(result["end"].as_i64().unwrap_or(0) * 1000)
        );
        (self.say)(match result["error"].as_str() {
            Some(e) => format!("  {m:<28} {span}: not read: {e}"),
            None => format!(
                "  {m:<28} {span}: {} datapoints",
                result["points"].as_array().map_or(0, Vec::len)
            ),
        });
    }
}
