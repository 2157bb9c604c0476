//! Area `cw`: CloudWatch metric series, the raw material of every lag gate.
//!
//! | file      | what                                          |
//! |-----------|-----------------------------------------------|
//! | `mod.rs`  | the [`Cw`] trait and [`MetricQuery`]          |
//! | `rhai.rs` | the Rhai module `cw`                          |
//! | `sim.rs`  | [`Cw`] over the simulator's datapoints        |
//! | `aws.rs`  | [`Cw`] over `GetMetricData` (feature `aws`)   |
//! | `recording.rs` | recorded series: the `godwit cw export` file a scenario replays |
//!
//! Series come back as `[#{ t, v }]` with `t` the START of the period in epoch seconds (INT),
//! oldest first, gaps preserved: a missing datapoint is absent, never 0 (see `docs/lag.md`).
//! The rules every world applies: what a valid query is ([`MetricQuery::check`]), how values
//! fold into periods ([`periods`], [`Statistic`]), and the order of a series ([`series`]). A
//! metric or namespace the world does not publish is an empty series, as CloudWatch answers.

#[cfg(feature = "aws")]
pub mod aws;
pub mod recording;
pub mod rhai;
pub mod sim;

use std::collections::BTreeMap;

use godwit_engine::Call;
use godwit_engine::PrimitiveError;
use serde::{Deserialize, Serialize};

const A: &str = "cw";

pub use crate::lag::Point;

/// One `GetMetricData`-style query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricQuery {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    /// `Maximum`, `Minimum`, `Average`, `Sum` or `SampleCount`.
    pub statistic: String,
    /// Seconds, a multiple of 60.
    pub period: i64,
    /// Epoch seconds, inclusive.
    pub since: i64,
    /// Epoch seconds, exclusive.
    pub until: i64,
}

pub trait Cw: Send + Sync {
    fn metric_series(&self, cx: &Call<'_>, q: &MetricQuery) -> Result<Vec<Point>, PrimitiveError>;
}

pub const STATISTICS: &[&str] = &["Maximum", "Minimum", "Average", "Sum", "SampleCount"];

/// The namespace of the RDS metrics godwit reads.
pub const NAMESPACE: &str = "AWS/RDS";

/// A CloudWatch statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Statistic {
    Maximum,
    Minimum,
    Average,
    Sum,
    SampleCount,
}

impl Statistic {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Maximum" => Statistic::Maximum,
            "Minimum" => Statistic::Minimum,
            "Average" => Statistic::Average,
            "Sum" => Statistic::Sum,
            "SampleCount" => Statistic::SampleCount,
            _ => return None,
        })
    }
}

impl MetricQuery {
    /// What every world refuses (`Invalid`) before looking for data: an unknown statistic, a
    /// period CloudWatch does not offer (1, 5, 10, 30 or a multiple of 60 seconds), no
    /// dimension. Returns the statistic.
    pub fn check(&self, op: &str) -> Result<Statistic, PrimitiveError> {
        let stat = Statistic::parse(&self.statistic).ok_or_else(|| {
            PrimitiveError::invalid(
                A,
                op,
                format!(
                    "statistic {:?} is not a CloudWatch statistic",
                    self.statistic
                ),
                format!("use one of {}", STATISTICS.join(", ")),
            )
        })?;
        if self.period <= 0 || (self.period % 60 != 0 && ![1, 5, 10, 30].contains(&self.period)) {
            return Err(PrimitiveError::invalid(
                A,
                op,
                format!(
                    "period {} s: CloudWatch offers 1, 5, 10, 30 or a multiple of 60",
                    self.period
                ),
                "RDS publishes one-minute datapoints: use 60, 300, 3600, ...",
            ));
        }
        if self.dimensions.is_empty() {
            return Err(PrimitiveError::invalid(
                A,
                op,
                format!("query of {} has no dimension", self.name),
                "e.g. dimensions: #{ DBInstanceIdentifier: \"orders-db\" }",
            ));
        }
        Ok(stat)
    }
}

/// Values folded so that any statistic can be read from them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub max: f64,
    pub min: f64,
    pub sum: f64,
    pub count: u32,
}

impl Aggregate {
    /// One value.
    pub fn of(v: f64) -> Aggregate {
        Aggregate {
            max: v,
            min: v,
            sum: v,
            count: 1,
        }
    }

    fn merge(self, o: Aggregate) -> Aggregate {
        Aggregate {
            max: self.max.max(o.max),
            min: self.min.min(o.min),
            sum: self.sum + o.sum,
            count: self.count + o.count,
        }
    }

    pub fn value(&self, stat: Statistic) -> f64 {
        match stat {
            Statistic::Maximum => self.max,
            Statistic::Minimum => self.min,
            Statistic::Average => self.sum / f64::from(self.count.max(1)),
            Statistic::Sum => self.sum,
            Statistic::SampleCount => f64::from(self.count),
        }
    }
}

/// Fold timestamped data (samples, or minutes already aggregated) into one datapoint per
/// `period`: `t` the period's start (a multiple of `period`, epoch seconds) with
/// `since <= t < until`, oldest first. A period without data has no datapoint: a gap stays a
/// gap, never a 0.
pub fn periods(
    data: impl IntoIterator<Item = (i64, Aggregate)>,
    stat: Statistic,
    period: i64,
    since: i64,
    until: i64,
) -> Vec<Point> {
    let period = period.max(1);
    let mut buckets: BTreeMap<i64, Aggregate> = BTreeMap::new();
    for (t, a) in data {
        let b = t.div_euclid(period) * period;
        if b < since || b >= until {
            continue;
        }
        buckets
            .entry(b)
            .and_modify(|e| *e = e.merge(a))
            .or_insert(a);
    }
    buckets
        .into_iter()
        .map(|(t, a)| Point {
            t,
            v: a.value(stat),
        })
        .collect()
}

/// A series as every world returns it: oldest first, one datapoint per period start.
pub fn series(mut points: Vec<Point>) -> Vec<Point> {
    points.sort_by_key(|p| p.t);
    points.dedup_by_key(|p| p.t);
    points
}

#[cfg(test)]
mod tests {
    use godwit_engine::ErrorKind;

    use super::*;

    fn q(statistic: &str, period: i64, dims: &[(&str, &str)]) -> MetricQuery {
        MetricQuery {
            namespace: NAMESPACE.into(),
            name: "OldestReplicationSlotLag".into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            statistic: statistic.into(),
            period,
            since: 0,
            until: 600,
        }
    }

    #[test]
    fn a_query_names_a_statistic_a_cloudwatch_period_and_a_dimension() {
        let d = [("DBInstanceIdentifier", "orders-db")];
        assert_eq!(
            q("Average", 60, &d).check("op").unwrap(),
            Statistic::Average
        );
        q("Maximum", 1, &d).check("op").unwrap();
        for bad in [
            q("Median", 60, &d),
            q("Maximum", 45, &d),
            q("Maximum", 0, &d),
            q("Maximum", 60, &[]),
        ] {
            assert_eq!(
                bad.check("op").unwrap_err().kind,
                ErrorKind::Invalid,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn periods_fold_by_statistic_and_keep_gaps() {
        let data =
            [(100, 1.0), (101, 3.0), (130, 5.0), (250, 7.0)].map(|(t, v)| (t, Aggregate::of(v)));
        let max = periods(data, Statistic::Maximum, 60, 0, 600);
        assert_eq!(
            max.iter().map(|p| (p.t, p.v)).collect::<Vec<_>>(),
            [(60, 3.0), (120, 5.0), (240, 7.0)],
            "the period at 180 has no data: a gap, not a zero"
        );
        assert_eq!(periods(data, Statistic::Average, 60, 0, 600)[0].v, 2.0);
        assert_eq!(periods(data, Statistic::SampleCount, 60, 0, 600)[0].v, 2.0);
        assert_eq!(periods(data, Statistic::Sum, 600, 0, 600)[0].v, 16.0);
        assert_eq!(periods(data, Statistic::Minimum, 1, 0, 600).len(), 4);
        assert_eq!(
            periods(data, Statistic::Maximum, 60, 120, 240).len(),
            1,
            "[since, until)"
        );
    }

    #[test]
    fn a_series_is_oldest_first_one_point_per_period() {
        let p = |t, v| Point { t, v };
        let s = series(vec![p(120, 2.0), p(60, 1.0), p(120, 3.0)]);
        assert_eq!(s.iter().map(|p| p.t).collect::<Vec<_>>(), [60, 120]);
    }
}
