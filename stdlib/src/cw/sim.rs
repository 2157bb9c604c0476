//! [`Cw`] over the simulator: per-minute aggregates folded to the requested period, with the
//! scenario's publication delay and gap faults applied.

use godwit_engine::PrimitiveError;

use super::*;
use crate::sim::Sim;
use crate::sim::metrics::{DERIVED_FROM_WAL, PUBLISHED};

impl Cw for Sim {
    fn metric_series(&self, cx: &Call<'_>, q: &MetricQuery) -> Result<Vec<Point>, PrimitiveError> {
        const OP: &str = "metric_series";
        let st = self.api(cx, "cw", OP)?;
        let stat = q.check(OP)?;
        let Some((dim, id)) = q.dimensions.iter().next() else {
            return Ok(Vec::new());
        };
        if q.namespace != NAMESPACE || !PUBLISHED.iter().any(|(n, d)| *n == q.name && d == dim) {
            return Ok(Vec::new()); // CloudWatch answers an unknown metric with no data
        }
        if DERIVED_FROM_WAL.contains(&q.name.as_str()) {
            // The source's load follows its write rate: each of its `TransactionLogsGeneration`
            // datapoints (same statistic, period, gaps and publication delay) mapped onto the
            // scenario's idle-to-peak range — affine, so Average, Minimum and Maximum map
            // exactly. Only the source has them (the Aurora instances are not modelled).
            if *id != st.sc.source.id {
                return Ok(Vec::new());
            }
            let src = &st.sc.source;
            let peak = st
                .sc
                .workload
                .peak_write_bytes_per_second
                .max(st.sc.workload.base_write_bytes_per_second);
            let memory = crate::rds::class_memory_bytes(&src.instance_class).unwrap_or(0) as f64;
            let (idle, at_peak) = if q.name == "CPUUtilization" {
                (src.cpu_percent_idle, src.cpu_percent_at_peak)
            } else {
                (
                    src.freeable_memory_percent_idle,
                    src.freeable_memory_percent_at_peak,
                )
            };
            // A map that falls with the load (free memory) turns the WAL's Minimum into the
            // metric's Maximum: ask the WAL for the opposite extreme.
            let wal_stat = match stat {
                Statistic::Minimum if at_peak < idle => Statistic::Maximum,
                Statistic::Maximum if at_peak < idle => Statistic::Minimum,
                s => s,
            };
            let key = (
                "TransactionLogsGeneration".to_string(),
                dim.clone(),
                id.clone(),
            );
            let points = st.datapoints(&key, wal_stat, q.period, q.since, q.until);
            let mapped = series(points).into_iter().map(|mut p| {
                let load = if peak > 0.0 {
                    (p.v / peak).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let percent = idle + (at_peak - idle) * load;
                p.v = if q.name == "CPUUtilization" {
                    percent
                } else {
                    memory * percent / 100.0
                };
                p
            });
            return Ok(mapped.collect());
        }
        let key = (q.name.clone(), dim.clone(), id.clone());
        Ok(series(
            st.datapoints(&key, stat, q.period, q.since, q.until),
        ))
    }
}
