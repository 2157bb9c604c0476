//! The `cw` contract: a series is oldest first, one datapoint per period start inside the
//! window, a stretch without data stays without datapoints (never 0); an unknown metric,
//! dimension value or namespace is an empty series; a query CloudWatch would refuse is
//! `Invalid` (`MetricQuery::check`).

use godwit_engine::ErrorKind;
use godwit_stdlib::cw::MetricQuery;

use super::{Fixture, MISSING, err, ok};

const A: &str = "cw";

fn series(f: &Fixture, what: &str, q: &MetricQuery) -> Vec<godwit_stdlib::cw::Point> {
    let s = ok(
        f,
        what,
        f.areas.cw.metric_series(&f.cx(A, "metric_series"), q),
    );
    assert!(
        s.windows(2).all(|w| w[0].t < w[1].t),
        "[{}] {what}: oldest first, one point per period: {s:?}",
        f.name
    );
    for p in &s {
        assert!(
            p.t >= q.since && p.t < q.until && p.t % q.period == 0,
            "[{}] {what}: {p:?} is a period start in [{}, {})",
            f.name,
            q.since,
            q.until
        );
        assert!(p.v.is_finite(), "[{}] {what}: {p:?}", f.name);
    }
    s
}

pub fn contract(f: &Fixture) {
    let q = (f.metric)();
    let s = series(f, "a metric the world has", &q);
    assert!(!s.is_empty(), "[{}] no data for {q:?}", f.name);

    let with = |change: &dyn Fn(&mut MetricQuery)| {
        let mut q = q.clone();
        change(&mut q);
        q
    };
    for (what, q) in [
        (
            "an unknown metric",
            with(&|q| q.name = "ContractNoSuchMetric".into()),
        ),
        (
            "an unknown namespace",
            with(&|q| q.namespace = "Contract/None".into()),
        ),
        (
            "an unknown dimension value",
            with(&|q| {
                for v in q.dimensions.values_mut() {
                    *v = MISSING.into();
                }
            }),
        ),
    ] {
        assert_eq!(
            series(f, what, &q),
            vec![],
            "[{}] {what}: no data, as CloudWatch answers",
            f.name
        );
    }
    for (what, q) in [
        (
            "an unknown statistic",
            with(&|q| q.statistic = "Median".into()),
        ),
        (
            "a period CloudWatch does not offer",
            with(&|q| q.period = 45),
        ),
        ("a query without dimension", with(&|q| q.dimensions.clear())),
    ] {
        err(
            f,
            &format!("{what} is Invalid (MetricQuery::check)"),
            ErrorKind::Invalid,
            A,
            f.areas.cw.metric_series(&f.cx(A, "metric_series"), &q),
        );
    }

    if let Some((q, (from, to))) = &f.gap {
        let s = series(f, "a window with a gap", q);
        assert!(
            s.iter().any(|p| p.t < *from) && s.iter().any(|p| p.t >= *to),
            "[{}] data on both sides of the gap: {s:?}",
            f.name
        );
        assert!(
            s.iter().all(|p| p.t < *from || p.t >= *to),
            "[{}] a gap stays a gap (no datapoint, never a 0): {s:?}",
            f.name
        );
    }
}
