//! Rhai module `route`: Envoy routes, and the doc comments that are the reference.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::rhai::plugin::*;
use ::rhai::{Array, Map, Module, NativeCallContext};
use godwit_engine::{ErrorKind, PrimitiveError};
use serde_json::json;

use crate::prim::{Opts, RhaiResult, call, poll, shared, wait_opts};

const A: &str = "route";

/// Install `route::…` into `engine`. The module is built once per process: its functions
/// capture nothing (they find the world's backend through the engine, see [`call`]).
pub fn register(engine: &mut Engine) {
    static MODULE: LazyLock<Arc<Module>> =
        LazyLock::new(|| shared(A, exported_module!(route_module)));
    engine.register_static_module(A, MODULE.clone());
}

#[export_module]
mod route_module {
    use super::*;

    /// The current version of a route and every Envoy node's answer to it.
    ///
    /// # Parameters
    /// * `name` — the route (by default named after the source instance).
    ///
    /// # Returns
    /// `#{ name, version, target, endpoint, hold, draining, nodes: [#{ node, status, unexpected }],
    /// all_acked, held_connections }`. A node's status is `ack`, `nack`, `behind` (connected, not
    /// ACKed yet), `absent` (one of the route's expected nodes, not connected) or `disconnected`
    /// (not expected, gone: not counted); `unexpected` marks a connected node outside the expected
    /// set. `all_acked`: every expected node (and every connected one) ACKed this version.
    /// `held_connections` counts clients parked by a hold.
    ///
    /// # Errors
    /// `NotFound` for an unknown route.
    ///
    /// # Example
    /// ```rhai
    /// let r = route::describe_route("orders-db");
    /// if r.target != "orders-db" || !r.all_acked || r.nodes.len() != 2 { throw r; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn describe_route(ctx: NativeCallContext, name: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "describe_route",
            &json!({ "name": name }),
            |cx, w| w.route.describe_route(cx, name),
        )
    }

    /// Publish a new version of a route sending new connections to `target`. With `hold: true` new
    /// connections are parked (not refused) until a later version releases them; with
    /// `drain: true` the previous target stays as a draining endpoint for established sessions.
    /// Idempotent: a route already in that state is returned unchanged (no new version),
    /// unless a node NACKed that state: then it is published again, as a new version.
    ///
    /// # Parameters
    /// * `name` — the route.
    /// * `target` — an RDS instance id or an Aurora cluster id.
    /// * `options` — `#{ hold (false), drain (false) }`.
    ///
    /// # Returns
    /// The route (as `describe_route`); nodes are `behind` until they ACK.
    ///
    /// # Errors
    /// `NotFound` for an unknown route or target; `Invalid` for an unknown option.
    ///
    /// # Example
    /// ```rhai
    /// let held = route::switch_route("orders-db", "orders-db", #{ hold: true });
    /// if !held.hold || held.version != 2 { throw held; }
    /// let r = route::wait_until_acked("orders-db", #{});
    /// if !r.all_acked { throw r; }
    /// // The fence ends the sessions; their clients reconnect into the hold and wait there.
    /// pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    /// sleep("5s");
    /// if route::describe_route("orders-db").held_connections != 40 { throw "not parked"; }
    /// route::switch_route("orders-db", "orders-db", #{});   // release
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn switch_route(
        ctx: NativeCallContext,
        name: &str,
        target: &str,
        options: Map,
    ) -> RhaiResult<Map> {
        let o = Opts::new(A, "switch_route", options, &["hold", "drain"])
            .map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        let hold = o
            .bool("hold")
            .map_err(|e| e.into_rhai_at(ctx.call_position()))?
            .unwrap_or(false);
        let drain = o
            .bool("drain")
            .map_err(|e| e.into_rhai_at(ctx.call_position()))?
            .unwrap_or(false);
        call(
            &ctx,
            A,
            "switch_route",
            &json!({ "name": name, "target": target, "hold": hold, "drain": drain }),
            |cx, w| w.route.switch_route(cx, name, target, hold, drain),
        )
    }

    /// Release a hold: publish the route's current target and draining endpoints without the hold,
    /// so parked connections proceed. Idempotent (a route not holding is returned unchanged).
    ///
    /// # Parameters
    /// * `name` — the route.
    ///
    /// # Returns
    /// The route (as `describe_route`), `hold: false`.
    ///
    /// # Errors
    /// `NotFound` for an unknown route.
    ///
    /// # Example
    /// ```rhai
    /// route::switch_route("orders-db", "orders-db", #{ hold: true });
    /// let r = route::release_route("orders-db");
    /// if r.hold || r.version != 3 { throw r; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn release_route(ctx: NativeCallContext, name: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "release_route",
            &json!({ "name": name }),
            |cx, w| {
                let cur = w.route.describe_route(cx, name)?;
                let drain = !cur.draining.is_empty();
                w.route.switch_route(cx, name, &cur.target, false, drain)
            },
        )
    }

    /// Poll until every Envoy node the route expects (and every connected one) ACKed its current
    /// version. A NACK fails at once: the caller republishes the previous version and aborts.
    ///
    /// # Parameters
    /// * `name` — the route.
    /// * `options` — `#{ timeout, every, min_every }`; defaults `timeout: "2m"`, `every: "1s"`; `min_every` ramps the polls (first after it, doubling up to `every`).
    ///
    /// # Returns
    /// The route (as `describe_route`) with `all_acked: true`.
    ///
    /// # Errors
    /// `Conflict` naming the node that NACKed; `Timeout` naming the expected nodes still absent and
    /// the nodes still behind.
    ///
    /// # Example
    /// ```rhai
    /// route::switch_route("orders-db", "orders-db", #{ hold: true });
    /// let r = route::wait_until_acked("orders-db", #{ timeout: "30s" });
    /// if r.nodes.some(|n| n.status != "ack") { throw r; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_until_acked(ctx: NativeCallContext, name: &str, options: Map) -> RhaiResult<Map> {
        const OP: &str = "wait_until_acked";
        let (timeout, every) = wait_opts(
            A,
            OP,
            options,
            Duration::from_secs(120),
            Duration::from_secs(1),
        )
        .map_err(|e| e.into_rhai_at(ctx.call_position()))?;
        call(&ctx, A, OP, &json!({ "name": name }), |cx, w| {
            let (mut absent, mut behind) = (Vec::new(), Vec::new());
            poll(cx, timeout, every, &format!("every node ACKing route {name}"), |cx| {
                let route = w.route.describe_route(cx, name)?;
                if let Some(n) = route.nodes.iter().find(|n| n.status == "nack") {
                    return Err(PrimitiveError::new(A, OP, ErrorKind::Conflict,
                        format!("Envoy node {} NACKed route {name} version {}", n.node, route.version),
                        "republish the previous version (switch_route back) and abort; the node's log says why it rejected the config"));
                }
                let named = |status: &str| -> Vec<String> {
                    route.nodes.iter().filter(|n| n.status == status).map(|n| n.node.clone()).collect()
                };
                (absent, behind) = (named("absent"), named("behind"));
                Ok(route.all_acked.then_some(route))
            })
            .map_err(|mut e| {
                if e.kind == ErrorKind::Timeout {
                    let mut waiting = Vec::new();
                    if !absent.is_empty() {
                        waiting.push(format!("absent: {}", absent.join(", ")));
                        e.hint = "an absent node is expected but not connected to the control plane: \
                            start it or fix its xDS connection (certificate, address), or take it out of \
                            the route's expected nodes (godwit dal serve --expect-nodes)".into();
                    }
                    if !behind.is_empty() {
                        waiting.push(format!("behind: {}", behind.join(", ")));
                    }
                    if waiting.is_empty() {
                        // No expected set and no node connected: nothing runs the route.
                        waiting.push("no Envoy node connected".into());
                    }
                    e.message = format!("{} ({})", e.message, waiting.join("; "));
                }
                e
            })
        })
    }

    /// Established application connections per endpoint of a route (target, draining ones, and any
    /// other database still holding application sessions).
    ///
    /// # Parameters
    /// * `name` — the route.
    ///
    /// # Returns
    /// Array of `#{ target, endpoint, connections }`, the current target first.
    ///
    /// # Errors
    /// `NotFound` for an unknown route.
    ///
    /// # Example
    /// ```rhai
    /// let c = route::active_connections("orders-db");
    /// if c[0].target != "orders-db" || c[0].connections != 40 { throw c; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn active_connections(ctx: NativeCallContext, name: &str) -> RhaiResult<Array> {
        call(
            &ctx,
            A,
            "active_connections",
            &json!({ "name": name }),
            |cx, w| w.route.active_connections(cx, name),
        )
    }

    /// What Envoy counted for a route's cluster, summed over the nodes serving it (their admin
    /// APIs: `/stats` counters of cluster `pg.<route>`; the simulator: the scenario route's
    /// `connections_per_second` over time, failing while its target refuses). The counters are
    /// cumulative since each node started: compare two readings. The evidence of the
    /// shadow-read gate (docs/rds-to-aurora.md, "Shadow reads"). Connection latency is not
    /// among them: a TCP proxy sees connections, not queries.
    ///
    /// # Parameters
    /// * `name` — the route.
    ///
    /// # Returns
    /// `#{ route, target, nodes, cx_total, cx_active, connect_fail, attempts_exceeded,
    /// none_healthy, destroy_remote, at_ms }`: connections established and open now, failed
    /// connects, connections closed when the retries ran out or no endpoint was healthy, and
    /// connections the server reset; `at_ms` when read.
    ///
    /// # Errors
    /// `NotFound` for an unknown route; `Throttled` (retryable) when a node's admin API does
    /// not answer.
    ///
    /// # Example
    /// ```rhai
    /// let s = route::route_stats("orders-db");
    /// if s.route != "orders-db" || s.target != "orders-db" { throw s; }
    /// if s.connect_fail + s.attempts_exceeded + s.none_healthy > 0 { throw `readers refused: ${s}`; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn route_stats(ctx: NativeCallContext, name: &str) -> RhaiResult<Map> {
        call(&ctx, A, "route_stats", &json!({ "name": name }), |cx, w| {
            w.route.route_stats(cx, name)
        })
    }
}
