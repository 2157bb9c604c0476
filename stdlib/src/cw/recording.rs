//! Recorded CloudWatch series: the file `godwit cw export` writes and a simulated scenario
//! replays (`[workload] recorded = "FILE"`, docs/sim.md "Replaying recorded series").
//!
//! The format is JSON, versioned by its `format` field ([`FORMAT`]), one object per metric with
//! its identity (namespace, dimensions), the statistic and period it was read with, its unit and
//! its datapoints as `[t_ms, value]` pairs, oldest first — the period's start in epoch
//! milliseconds, exactly what `GetMetricData` answered (gaps stay gaps):
//!
//! ```json
//! { "format": "godwit-cw-series/1", "cluster": "orders-db", "world": "aws", "region": "eu-west-1",
//!   "period": 60, "since_ms": 1767139200000, "until_ms": 1767229200000,
//!   "metrics": [ { "name": "TransactionLogsGeneration", "namespace": "AWS/RDS",
//!                  "dimensions": { "DBInstanceIdentifier": "orders-db" },
//!                  "statistic": "Average", "unit": "Bytes/Second",
//!                  "points": [[1767139200000, 2048.5], [1767139260000, 1990.0]] } ],
//!   "missing": ["WriteIOPS: no datapoints in the window"] }
//! ```
//!
//! [`Recording::parse`] checks a file strictly and names what is wrong: the file, the JSON path
//! (`metrics[0].points[17]`), the point's index and what to do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `format` of a recorded-series file this version reads and writes.
pub const FORMAT: &str = "godwit-cw-series/1";

/// The series `godwit cw export` reads from a source instance: (metric, statistic, unit).
/// The statistic is the one the simulator replays (an average rate, the peak of sessions, the
/// lowest free storage) or a gate reads (slot lag's maximum).
pub const SOURCE_METRICS: &[(&str, &str, &str)] = &[
    ("TransactionLogsGeneration", "Average", "Bytes/Second"),
    ("DatabaseConnections", "Maximum", "Count"),
    ("FreeStorageSpace", "Minimum", "Bytes"),
    ("OldestReplicationSlotLag", "Maximum", "Bytes"),
    ("ReplicationSlotDiskUsage", "Maximum", "Bytes"),
    ("TransactionLogsDiskUsage", "Maximum", "Bytes"),
    ("WriteIOPS", "Average", "Count/Second"),
];

/// A recorded-series file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Always [`FORMAT`].
    pub format: String,
    /// The source instance the series are of.
    pub cluster: String,
    /// The world they were read in (`aws`, `lab`, `sim:busy-source`).
    pub world: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Seconds per datapoint (a multiple of 60).
    pub period: i64,
    /// The window read, `[since_ms, until_ms)`, epoch milliseconds.
    pub since_ms: i64,
    pub until_ms: i64,
    pub metrics: Vec<RecordedMetric>,
    /// What could not be read, and why (a metric the world does not publish, a refused call).
    #[serde(default)]
    pub missing: Vec<String>,
}

/// One metric's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedMetric {
    pub name: String,
    #[serde(default = "rds_namespace")]
    pub namespace: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: String,
    #[serde(default)]
    pub unit: String,
    /// `[t_ms, value]`: the period's start (epoch ms), oldest first.
    pub points: Vec<(i64, f64)>,
}

fn rds_namespace() -> String {
    super::NAMESPACE.into()
}

/// A recorded-series file that cannot be used: which file, where in it, and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("recorded series {file}: {message}")]
pub struct RecordingError {
    pub file: String,
    pub message: String,
}

impl Recording {
    /// Read and check `text` (the contents of `file`, named in errors).
    pub fn parse(file: &str, text: &str) -> Result<Recording, RecordingError> {
        let err = |message: String| RecordingError {
            file: file.to_string(),
            message,
        };
        let de = &mut serde_json::Deserializer::from_str(text);
        let r: Recording = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let at = if path == "." {
                String::new()
            } else {
                format!("at `{path}`: ")
            };
            err(format!(
                "{at}{inner}; a point is `[t_ms, value]` (two numbers) — export the series again \
                 with `godwit cw export`, or fix the file by hand"
            ))
        })?;
        r.check().map_err(err)?;
        Ok(r)
    }

    /// Read and check the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Recording, RecordingError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RecordingError {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Recording::parse(&file, &text)
    }

    /// What serde cannot see: the format, the period, the order and values of the points.
    pub fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format is {:?}, this godwit reads {FORMAT:?}; export the series again with this \
                 version's `godwit cw export`",
                self.format
            ));
        }
        if self.period <= 0 || self.period % 60 != 0 {
            return Err(format!(
                "period {} s: expected a multiple of 60 (RDS publishes one-minute datapoints)",
                self.period
            ));
        }
        let period_ms = self.period * 1000;
        for (m, metric) in self.metrics.iter().enumerate() {
            if super::Statistic::parse(&metric.statistic).is_none() {
                return Err(format!(
                    "metrics[{m}] ({}): statistic {:?} is not a CloudWatch statistic; use one of {}",
                    metric.name,
                    metric.statistic,
                    super::STATISTICS.join(", ")
                ));
            }
            let mut last: Option<i64> = None;
            for (i, (t, v)) in metric.points.iter().enumerate() {
                let at = format!("metrics[{m}] ({}) point {i} [{t}, {v}]", metric.name);
                if !v.is_finite() {
                    return Err(format!(
                        "{at}: the value is not a finite number; remove the point (a gap stays \
                         a gap)"
                    ));
                }
                if t.rem_euclid(period_ms) != 0 {
                    return Err(format!(
                        "{at}: the time is not the start of a {} s period (a multiple of {period_ms} \
                         ms); CloudWatch stamps each datapoint with its period's start",
                        self.period
                    ));
                }
                if let Some(prev) = last.filter(|p| t <= p) {
                    return Err(format!(
                        "{at}: the time is not after the previous point's ({prev}); points are \
                         oldest first, one per period — sort them and drop duplicates"
                    ));
                }
                last = Some(*t);
            }
        }
        Ok(())
    }

    /// The series of `name` for the source instance (dimension `DBInstanceIdentifier` =
    /// [`Recording::cluster`]), if the file has it.
    pub fn source_metric(&self, name: &str) -> Option<&RecordedMetric> {
        self.metrics.iter().find(|m| {
            m.name == name
                && m.dimensions.get("DBInstanceIdentifier").map(String::as_str)
                    == Some(self.cluster.as_str())
        })
    }

    /// Serialise as the file `godwit cw export` writes (one point per line, so a diff of two
    /// recordings reads).
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("a recording is plain data");
        let metrics = match v.as_object_mut().and_then(|o| o.remove("metrics")) {
            Some(serde_json::Value::Array(ms)) => ms,
            _ => Vec::new(),
        };
        let head = serde_json::to_string_pretty(&v).expect("plain data");
        let mut out = String::new();
        // Everything but the metrics, pretty; then each metric with one point per line.
        let head = head
            .trim_end()
            .strip_suffix('}')
            .unwrap_or(&head)
            .trim_end();
        out.push_str(head);
        out.push_str(",\n  \"metrics\": [");
        for (i, mut m) in metrics.into_iter().enumerate() {
            let points = m
                .as_object_mut()
                .and_then(|o| o.remove("points"))
                .unwrap_or_default();
            let meta = serde_json::to_string(&m).expect("plain data");
            out.push_str(if i == 0 { "\n    " } else { ",\n    " });
            out.push_str(meta.strip_suffix('}').unwrap_or(&meta));
            out.push_str(",\"points\":[");
            for (j, p) in points.as_array().into_iter().flatten().enumerate() {
                out.push_str(if j == 0 { "\n      " } else { ",\n      " });
                out.push_str(&p.to_string());
            }
            out.push_str("\n    ]}");
        }
        out.push_str("\n  ]\n}\n");
        out
    }
}

/// What happens when a replay runs past the recording's last period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PastEnd {
    /// Start again from the recording's first period (a recording of whole days keeps its hour
    /// of day).
    #[default]
    Loop,
    /// Hold the last value.
    Hold,
}

impl PastEnd {
    pub fn word(self) -> &'static str {
        match self {
            PastEnd::Loop => "loops from its start",
            PastEnd::Hold => "holds its last value",
        }
    }
}

/// A recorded series placed on another timeline: the value at a time is the datapoint of the
/// period holding it (step-held: a CloudWatch datapoint is the period's statistic, so the
/// replay writes the recorded average over each recorded period); a gap holds the value before
/// it; before the first point the first value holds; past the end, [`PastEnd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Recording time (ms) = replay time + `shift_ms`.
    pub shift_ms: i64,
    /// The recording's first period start and its length (last − first + one period), ms.
    pub first_ms: i64,
    pub span_ms: i64,
    pub past_end: PastEnd,
}

impl Timeline {
    /// The timeline of `reference` (the series whose span loops) starting `offset_ms` after its
    /// first point at replay time `start_ms`. `None` for an empty series.
    pub fn new(
        reference: &RecordedMetric,
        period_s: i64,
        start_ms: i64,
        offset_ms: i64,
        past_end: PastEnd,
    ) -> Option<Timeline> {
        let first = reference.points.first()?.0;
        let last = reference.points.last()?.0;
        Some(Timeline {
            shift_ms: first + offset_ms - start_ms,
            first_ms: first,
            span_ms: last - first + period_s * 1000,
            past_end,
        })
    }

    /// The recording's time for replay time `t_ms`, looped or not.
    pub fn recording_time(&self, t_ms: i64) -> i64 {
        let r = t_ms + self.shift_ms;
        if r >= self.first_ms + self.span_ms && self.past_end == PastEnd::Loop {
            self.first_ms + (r - self.first_ms).rem_euclid(self.span_ms)
        } else {
            r
        }
    }

    /// The value of `points` at replay time `t_ms` (`None` for an empty series).
    pub fn value(&self, points: &[(i64, f64)], t_ms: i64) -> Option<f64> {
        let r = self.recording_time(t_ms);
        let i = points.partition_point(|(t, _)| *t <= r);
        match i {
            0 => points.first().map(|p| p.1),
            _ => Some(points[i - 1].1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(points: Vec<(i64, f64)>) -> RecordedMetric {
        RecordedMetric {
            name: "TransactionLogsGeneration".into(),
            namespace: "AWS/RDS".into(),
            dimensions: BTreeMap::from([("DBInstanceIdentifier".into(), "orders-db".into())]),
            statistic: "Average".into(),
            unit: "Bytes/Second".into(),
            points,
        }
    }

    fn recording(points: Vec<(i64, f64)>) -> Recording {
        Recording {
            format: FORMAT.into(),
            cluster: "orders-db".into(),
            world: "sim:busy-source".into(),
            region: None,
            period: 60,
            since_ms: 0,
            until_ms: 600_000,
            metrics: vec![metric(points)],
            missing: vec![],
        }
    }

    #[test]
    fn a_recording_round_trips_through_its_file() {
        let r = recording(vec![(0, 1.5), (60_000, 2.0), (180_000, 3.25)]);
        let text = r.to_json();
        assert_eq!(Recording::parse("x.json", &text).unwrap(), r);
        assert!(text.contains("\n      [60000,2.0]"), "{text}");
    }

    #[test]
    fn a_bad_file_names_the_point_and_the_fix() {
        let mut r = recording(vec![(0, 1.0), (120_000, 2.0), (60_000, 3.0)]);
        let e = Recording::parse("rec.json", &r.to_json()).unwrap_err();
        assert_eq!(e.file, "rec.json");
        assert!(
            e.message
                .contains("metrics[0] (TransactionLogsGeneration) point 2")
                && e.message.contains("sort them"),
            "{e}"
        );
        r.metrics[0].points = vec![(0, 1.0), (30_000, 2.0)];
        let e = Recording::parse("rec.json", &r.to_json()).unwrap_err();
        assert!(
            e.message.contains("point 1") && e.message.contains("period"),
            "{e}"
        );
        let text = r.to_json().replace("[30000,2.0]", "[30000]");
        let e = Recording::parse("rec.json", &text).unwrap_err();
        assert!(
            e.message.contains("metrics[0].points[1]") && e.message.contains("[t_ms, value]"),
            "{e}"
        );
        r.metrics[0].points = vec![(0, 1.0)];
        let e = Recording::parse(
            "rec.json",
            &r.to_json().replace(FORMAT, "godwit-cw-series/9"),
        )
        .unwrap_err();
        assert!(e.message.contains("godwit-cw-series/9"), "{e}");
    }

    #[test]
    fn a_timeline_steps_holds_gaps_and_loops_or_holds_past_the_end() {
        // Points at minutes 0, 1 and 3 (minute 2 is a gap): a span of 4 minutes.
        let pts = vec![(600_000, 1.0), (660_000, 2.0), (780_000, 4.0)];
        let m = metric(pts.clone());
        let lp = Timeline::new(&m, 60, 0, 0, PastEnd::Loop).unwrap();
        let at = |tl: &Timeline, s: i64| tl.value(&pts, s * 1000).unwrap();
        assert_eq!(at(&lp, 0), 1.0);
        assert_eq!(at(&lp, 59), 1.0, "step-held over the period");
        assert_eq!(at(&lp, 60), 2.0);
        assert_eq!(at(&lp, 150), 2.0, "a gap holds the value before it");
        assert_eq!(at(&lp, 200), 4.0);
        assert_eq!(at(&lp, 240), 1.0, "past the end: from the start again");
        assert_eq!(at(&lp, 300), 2.0);
        assert_eq!(at(&lp, -30), 1.0, "before the start: the first value");
        let hold = Timeline::new(&m, 60, 0, 0, PastEnd::Hold).unwrap();
        assert_eq!(at(&hold, 10_000), 4.0);
        let offset = Timeline::new(&m, 60, 0, 60_000, PastEnd::Loop).unwrap();
        assert_eq!(
            at(&offset, 0),
            2.0,
            "the offset is where in the recording replay starts"
        );
    }
}
