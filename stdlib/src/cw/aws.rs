//! [`Cw`] over `aws-sdk-cloudwatch` (`GetMetricData`, which aws-sdk-cloudwatch ≥ 1.100 speaks
//! as Smithy RPC v2 CBOR; see docs/moto.md for how the tests serve that).

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types as t;
use godwit_engine::PrimitiveError;

use super::*;
use crate::aws::AwsApi;

impl Cw for AwsApi {
    fn metric_series(&self, cx: &Call<'_>, q: &MetricQuery) -> Result<Vec<Point>, PrimitiveError> {
        const OP: &str = "metric_series";
        q.check(OP)?;
        let metric = t::Metric::builder()
            .namespace(&q.namespace)
            .metric_name(&q.name)
            .set_dimensions(Some(
                q.dimensions
                    .iter()
                    .map(|(k, v)| t::Dimension::builder().name(k).value(v).build())
                    .collect(),
            ))
            .build();
        let query = t::MetricDataQuery::builder()
            .id("m")
            .metric_stat(
                t::MetricStat::builder()
                    .metric(metric)
                    .period(q.period as i32)
                    .stat(&q.statistic)
                    .build(),
            )
            .return_data(true)
            .build();
        let mut points = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self.api(cx, "cw", OP, "cloudwatch.GetMetricData", || {
                self.aws
                    .cw
                    .get_metric_data()
                    .metric_data_queries(query.clone())
                    .start_time(DateTime::from_secs(q.since))
                    .end_time(DateTime::from_secs(q.until))
                    .scan_by(t::ScanBy::TimestampAscending)
                    .set_next_token(next.clone())
                    .send()
            })?;
            for r in out.metric_data_results() {
                for (ts, v) in r.timestamps().iter().zip(r.values()) {
                    points.push(Point {
                        t: ts.secs(),
                        v: *v,
                    });
                }
            }
            next = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if next.is_none() {
                break;
            }
        }
        // CloudWatch rounds StartTime down (to the whole minute for data under 15 days old:
        // GetMetricData API reference, StartTime), so it answers periods that start before
        // `since`; the contract (`MetricQuery`) is the periods starting in [since, until).
        points.retain(|p| p.t >= q.since && p.t < q.until);
        // Oldest first whatever the service did with ScanBy; one point per period start.
        Ok(series(points))
    }
}
