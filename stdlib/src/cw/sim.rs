//! [`Cw`] over the simulator: per-minute aggregates folded to the requested period, with the
//! scenario's publication delay and gap faults applied.

use godwit_engine::PrimitiveError;

use super::*;
use crate::sim::Sim;
use crate::sim::metrics::{PUBLISHED, Statistic};

impl Cw for Sim {
    fn metric_series(&self, cx: &Call<'_>, q: &MetricQuery) -> Result<Vec<Point>, PrimitiveError> {
        const OP: &str = "metric_series";
        let st = self.api(cx, "cw", OP)?;
        let stat = Statistic::parse(&q.statistic).ok_or_else(|| {
            PrimitiveError::invalid(
                "cw",
                OP,
                format!("statistic {:?} is not a CloudWatch statistic", q.statistic),
                format!("use one of {}", STATISTICS.join(", ")),
            )
        })?;
        if q.namespace != "AWS/RDS" {
            return Ok(Vec::new()); // CloudWatch answers an unknown metric with no data
        }
        let Some((dim, id)) = q.dimensions.iter().next() else {
            return Ok(Vec::new());
        };
        if !PUBLISHED.iter().any(|(n, d)| *n == q.name && d == dim) {
            return Ok(Vec::new());
        }
        let key = (q.name.clone(), dim.clone(), id.clone());
        Ok(st
            .datapoints(&key, stat, q.period, q.since, q.until)
            .into_iter()
            .map(|(t, v)| Point { t, v })
            .collect())
    }
}
