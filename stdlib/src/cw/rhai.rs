//! Rhai module `cw`: CloudWatch metric series, and the doc comments that are the reference.

use std::sync::{Arc, LazyLock};

use ::rhai::plugin::*;
use ::rhai::{Array, Map, Module, NativeCallContext};
use godwit_engine::{Installed, PrimitiveError};

use super::*;
use crate::prim::{Opts, RhaiResult, call, shared};

const A: &str = "cw";

/// Install `cw::…` into `engine`. The module is built once per process: its functions
/// capture nothing (they find the world's backend through the engine, see [`call`]).
pub fn register(engine: &mut Engine) {
    static MODULE: LazyLock<Arc<Module>> = LazyLock::new(|| shared(A, exported_module!(cw_module)));
    engine.register_static_module(A, MODULE.clone());
}

#[export_module]
mod cw_module {
    use super::*;

    /// A CloudWatch metric series: one datapoint per period, oldest first, gaps preserved (a
    /// missing datapoint is absent, never 0). Datapoints are published after the period ends (plus
    /// CloudWatch's delay), so the newest minutes may not be there yet.
    ///
    /// # Parameters
    /// * `query` — `#{ name (required), dimensions (required, e.g. #{ DBInstanceIdentifier: "orders-db" }),
    ///   namespace ("AWS/RDS"), statistic ("Maximum"), period (60, seconds: a multiple of 60, or 1, 5, 10 or 30 for
    ///   high-resolution metrics — the lab samples every second),
    ///   since (until - 3600, epoch seconds), until (now, epoch seconds) }`.
    ///
    /// # Returns
    /// Array of `#{ t, v }`: `t` the start of the period in epoch seconds (INT), `v` the value (bytes,
    /// seconds, count, by metric). Feed it to `lag::*`.
    ///
    /// # Errors
    /// `Invalid` for an unknown key, a missing name or dimensions, an unknown statistic or a period
    /// CloudWatch does not offer; `Throttled` when AWS throttles.
    ///
    /// # Example
    /// ```rhai
    /// let slot = cw::metric_series(#{
    ///     name: "OldestReplicationSlotLag",
    ///     dimensions: #{ DBInstanceIdentifier: "orders-db" },
    /// });
    /// let conns = cw::metric_series(#{
    ///     name: "DatabaseConnections", dimensions: #{ DBInstanceIdentifier: "orders-db" },
    ///     statistic: "Average", period: 300,
    /// });
    /// for p in slot { if type_of(p.t) != "i64" { throw p; } }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn metric_series(ctx: NativeCallContext, query: Map) -> RhaiResult<Array> {
        const OP: &str = "metric_series";
        let bad = |e: PrimitiveError| e.into_rhai_at(ctx.call_position());
        let o = Opts::new(
            A,
            OP,
            query,
            &[
                "namespace",
                "name",
                "dimensions",
                "statistic",
                "period",
                "since",
                "until",
            ],
        )
        .map_err(bad)?;
        let now = Installed::of(&ctx)?.host().now_ms() / 1000;
        let name = o.string("name").map_err(bad)?.ok_or_else(|| {
            bad(PrimitiveError::invalid(
                A,
                OP,
                "query.name is missing",
                "name the metric, e.g. name: \"OldestReplicationSlotLag\"",
            ))
        })?;
        let dimensions = o.string_map("dimensions").map_err(bad)?.ok_or_else(|| {
            bad(PrimitiveError::invalid(
                A,
                OP,
                "query.dimensions is missing",
                "e.g. dimensions: #{ DBInstanceIdentifier: \"orders-db\" }",
            ))
        })?;
        let period = o.int("period", 1).map_err(bad)?.unwrap_or(60);
        if period % 60 != 0 && ![1, 5, 10, 30].contains(&period) {
            return Err(bad(PrimitiveError::invalid(
                A,
                OP,
                format!(
                    "query.period is {period}; CloudWatch offers 1, 5, 10, 30 or a multiple of 60"
                ),
                "RDS publishes one-minute datapoints: use 60, 300, 3600, ... (1 s periods only exist for high-resolution metrics, like the lab's)",
            )));
        }
        let until = o.int("until", 0).map_err(bad)?.unwrap_or(now);
        let since = o.int("since", 0).map_err(bad)?.unwrap_or(until - 3600);
        let statistic = o
            .string("statistic")
            .map_err(bad)?
            .unwrap_or("Maximum".into());
        if !STATISTICS.contains(&statistic.as_str()) {
            return Err(bad(PrimitiveError::invalid(
                A,
                OP,
                format!("query.statistic {statistic:?} is not a CloudWatch statistic"),
                format!("use one of {}", STATISTICS.join(", ")),
            )));
        }
        let q = MetricQuery {
            namespace: o
                .string("namespace")
                .map_err(bad)?
                .unwrap_or("AWS/RDS".into()),
            name,
            dimensions,
            statistic,
            period,
            since,
            until,
        };
        call(&ctx, A, OP, &q, |cx, w| w.cw.metric_series(cx, &q))
    }
}
