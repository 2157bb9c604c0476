//! [`Cw`] over the simulator: per-minute aggregates folded to the requested period, with the
//! scenario's publication delay and gap faults applied.

use godwit_engine::PrimitiveError;

use super::*;
use crate::sim::Sim;
use crate::sim::metrics::PUBLISHED;

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
        let key = (q.name.clone(), dim.clone(), id.clone());
        Ok(series(
            st.datapoints(&key, stat, q.period, q.since, q.until),
        ))
    }
}
