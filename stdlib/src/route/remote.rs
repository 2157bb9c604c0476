//! [`Router`] over a godwit control plane in another process (`godwit dal serve`, a lab's
//! supervisor), through its management API ([`godwit_xds::remote::RemotePlane`]). The lab and
//! aws worlds differ only in how a database id becomes an address and back ([`Endpoints`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, PrimitiveError};
use godwit_xds::NodeOutcome;
use godwit_xds::error::XdsError;
use godwit_xds::model::{Addr, Health, Role};
use godwit_xds::remote::RemotePlane;

use super::{
    EndpointConnections, NodeAck, Route, RouteStats, Router, all_acked, plan_switch,
    sort_connections,
};

const A: &str = "route";

/// A node whose admin API did not answer: `what` comes from every node's, so the step retries.
fn node_unanswered(op: &str, node: &str, err: &str, what: &str) -> PrimitiveError {
    PrimitiveError::new(
        A,
        op,
        ErrorKind::Throttled,
        format!("Envoy node {node}: {err}"),
        format!("{what} come from every node's admin API; the step retries"),
    )
}

/// Where a world's databases listen.
pub trait Endpoints: Send + Sync {
    /// The address new connections for `db` (an instance id, or a cluster id = its writer) go
    /// to.
    fn addr_of(&self, cx: &Call<'_>, op: &str, db: &str) -> Result<Addr, PrimitiveError>;
    /// The database listening on `addr`, or the address itself when it is none of the world's.
    fn db_of(&self, addr: &Addr) -> String;
}

pub struct RemoteRouter {
    pub plane: RemotePlane,
    pub endpoints: Arc<dyn Endpoints>,
}

/// How long one management-API exchange may take when the step does not say less: above the
/// plane client's own 90 s (a publish waits for every node's ACK, twice after a NACK).
const ROUTE_CALL_LIMIT: Duration = Duration::from_secs(100);

impl RemoteRouter {
    /// `fut` through the call: bounded by the step's deadline and Ctrl-C as well as the
    /// client's own timeouts.
    fn run<T>(
        &self,
        cx: &Call<'_>,
        op: &str,
        fut: impl Future<Output = Result<T, XdsError>>,
    ) -> Result<T, PrimitiveError> {
        cx.block_on(ROUTE_CALL_LIMIT, async {
            fut.await.map_err(|e| e.into_primitive(op))
        })
    }

    fn view(&self, cx: &Call<'_>, name: &str, op: &str) -> Result<Route, PrimitiveError> {
        let (view, status) = self.run(cx, op, async {
            let view = self.plane.describe(name).await?;
            // Per-node data-plane counters come from each Envoy's admin API; a node whose admin
            // cannot be read reports no connections rather than failing the describe.
            let status = self.plane.status().await.unwrap_or_default();
            Ok((view, status))
        })?;
        let eps = &view.spec.endpoints;
        let parking: Vec<String> = eps
            .iter()
            .filter(|e| e.role == Role::Parking)
            .map(|e| e.addr.to_string())
            .collect();
        let hold = eps
            .iter()
            .any(|e| e.role == Role::Parking && e.health == Health::Healthy);
        let target_ep = eps
            .iter()
            .find(|e| e.role != Role::Parking && e.health == Health::Healthy)
            .or_else(|| eps.iter().find(|e| e.role != Role::Parking));
        let target = target_ep
            .map(|e| self.endpoints.db_of(&e.addr))
            .unwrap_or_default();
        let draining = eps
            .iter()
            .filter(|e| e.role != Role::Parking && e.health == Health::Draining)
            .map(|e| self.endpoints.db_of(&e.addr))
            .filter(|d| *d != target)
            .collect();
        // The control plane judges the nodes against the route's expected set (godwit_xds::fleet).
        let nodes: Vec<NodeAck> = view
            .nodes
            .iter()
            .map(|n| NodeAck {
                node: n.node.clone(),
                status: match &n.outcome {
                    NodeOutcome::Acked => "ack",
                    NodeOutcome::Nacked { .. } => "nack",
                    NodeOutcome::Behind => "behind",
                    gone if gone.is_gone() && n.expected => "absent",
                    _ => "disconnected",
                }
                .into(),
                unexpected: view.unexpected.contains(&n.node),
            })
            .collect();
        let all_acked = all_acked(&nodes);
        // A held client is a connection Envoy keeps retrying against the parking address.
        let held_connections = status
            .iter()
            .flat_map(|n| n.routes.iter())
            .filter(|r| r.route == name)
            .flat_map(|r| r.endpoints.iter())
            .filter(|e| parking.contains(&e.address))
            .map(|e| e.cx_active as i64)
            .sum();
        Ok(Route {
            name: name.to_string(),
            version: view.version as i64,
            endpoint: target_ep.map(|e| e.addr.to_string()).unwrap_or_default(),
            target,
            hold,
            draining,
            nodes,
            all_acked,
            held_connections,
        })
    }
}

impl Router for RemoteRouter {
    fn describe_route(&self, cx: &Call<'_>, name: &str) -> Result<Route, PrimitiveError> {
        self.view(cx, name, "describe_route")
    }

    fn switch_route(
        &self,
        cx: &Call<'_>,
        name: &str,
        target: &str,
        hold: bool,
        drain: bool,
    ) -> Result<Route, PrimitiveError> {
        const OP: &str = "switch_route";
        let cur = self.view(cx, name, OP)?;
        if plan_switch(&cur, target, hold, drain).is_none() {
            return Ok(cur);
        }
        let addr = self.endpoints.addr_of(cx, OP, target)?;
        self.run(cx, OP, async {
            let moves = cur.target != target || (!hold && cur.hold);
            if moves {
                self.plane.switch(name, addr.clone()).await?;
            }
            if hold {
                self.plane.hold(name).await?;
            } else if !drain {
                self.plane.cleanup(name).await?;
            } else if !moves {
                // The same config, which a node NACKed (plan_switch): the plane serves it
                // again under a new version.
                self.plane.switch(name, addr).await?;
            }
            Ok(())
        })?;
        self.view(cx, name, OP)
    }

    fn active_connections(
        &self,
        cx: &Call<'_>,
        name: &str,
    ) -> Result<Vec<EndpointConnections>, PrimitiveError> {
        const OP: &str = "active_connections";
        let (view, status) = self.run(cx, OP, async {
            Ok((self.plane.describe(name).await?, self.plane.status().await?))
        })?;
        let parking: Vec<String> = view
            .spec
            .endpoints
            .iter()
            .filter(|e| e.role == Role::Parking)
            .map(|e| e.addr.to_string())
            .collect();
        let mut by_addr: BTreeMap<String, i64> = BTreeMap::new();
        for e in view
            .spec
            .endpoints
            .iter()
            .filter(|e| e.role != Role::Parking)
        {
            by_addr.entry(e.addr.to_string()).or_default();
        }
        for node in &status {
            if let Some(err) = &node.error {
                return Err(node_unanswered(
                    OP,
                    &node.node.node,
                    err,
                    "connection counts",
                ));
            }
            for r in node.routes.iter().filter(|r| r.route == name) {
                for e in r.endpoints.iter().filter(|e| !parking.contains(&e.address)) {
                    *by_addr.entry(e.address.clone()).or_default() += e.cx_active as i64;
                }
            }
        }
        Ok(sort_connections(
            by_addr
                .into_iter()
                .map(|(address, connections)| {
                    let target = match address.rsplit_once(':') {
                        Some((host, port)) => port
                            .parse()
                            .map(|p| self.endpoints.db_of(&Addr::new(host, p)))
                            .unwrap_or_else(|_| address.clone()),
                        None => address.clone(),
                    };
                    EndpointConnections {
                        target,
                        endpoint: address,
                        connections,
                    }
                })
                .collect(),
        ))
    }

    fn route_stats(&self, cx: &Call<'_>, name: &str) -> Result<RouteStats, PrimitiveError> {
        const OP: &str = "route_stats";
        let route = self.view(cx, name, OP)?;
        let status = self.run(cx, OP, async { self.plane.status().await })?;
        let mut out = RouteStats {
            route: name.into(),
            target: route.target,
            at_ms: cx.now_ms(),
            ..RouteStats::default()
        };
        for node in &status {
            if let Some(err) = &node.error {
                return Err(node_unanswered(
                    OP,
                    &node.node.node,
                    err,
                    "route statistics",
                ));
            }
            for r in node.routes.iter().filter(|r| r.route == name) {
                out.nodes += 1;
                out.cx_total += r.upstream_cx_total as i64;
                out.cx_active += r.upstream_cx_active as i64;
                out.connect_fail += r.upstream_cx_connect_fail as i64;
                out.attempts_exceeded += r.upstream_cx_connect_attempts_exceeded as i64;
                out.none_healthy += r.upstream_cx_none_healthy as i64;
                out.destroy_remote += r.upstream_cx_destroy_remote as i64;
            }
        }
        Ok(out)
    }
}
