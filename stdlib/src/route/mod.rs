//! Area `route`: the Envoy data access layer — which endpoint a route sends new connections
//! to, holding and releasing them, and whether every node ACKed.
//!
//! | file      | what                                   |
//! |-----------|----------------------------------------|
//! | `mod.rs`  | the [`Router`] trait and its types     |
//! | `rhai.rs` | the Rhai module `route`                |
//! | `sim.rs`  | [`Router`] over the simulator          |
//! | `remote.rs` | [`Router`] over a control plane's management API (lab, aws) |
//!
//! Cutover: `switch_route(r, src, #{ hold: true })` (park new connections) → fence on the
//! database side → `switch_route(r, target, #{ drain: true })` (release to the target, source
//! draining) → `wait_until_acked`. Envoy never moves an established session.
//!
//! The rules every world applies: what a switch changes ([`plan_switch`]), when a version
//! counts as taken by the fleet ([`all_acked`]), what an unknown route or target is.

pub mod remote;
pub mod rhai;
pub mod sim;

use godwit_engine::Call;
use godwit_engine::{ErrorKind, PrimitiveError};
use serde::{Deserialize, Serialize};

/// One Envoy node against the route's current version, judged against the route's expected
/// nodes (configuration in the lab and aws worlds — `godwit dal serve --expect-nodes`; the
/// scenario's nodes in the simulator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAck {
    pub node: String,
    /// `ack`; `nack` (rejected it); `behind` (connected, has not ACKed it); `absent` (expected,
    /// not connected: never connected, or disconnected); `disconnected` (not expected, gone:
    /// not counted).
    pub status: String,
    /// Connected, but not one of the route's expected nodes (reported, and counted all the
    /// same: it routes traffic). Named so that it sorts after `node` and `status`, which keeps
    /// the maps' visible prefix in transcripts stable.
    #[serde(default)]
    pub unexpected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub name: String,
    pub version: i64,
    /// The RDS instance or Aurora cluster id new connections go to.
    pub target: String,
    pub endpoint: String,
    /// New connections are parked, not forwarded.
    pub hold: bool,
    /// Endpoints kept for established sessions only.
    pub draining: Vec<String>,
    pub nodes: Vec<NodeAck>,
    /// Every expected node (and every connected one) ACKed this version: none `absent`,
    /// `behind` or `nack`.
    pub all_acked: bool,
    /// Client connections parked by a hold, waiting for a release.
    pub held_connections: i64,
}

/// What Envoy counted for a route's cluster, summed over the nodes serving it: cumulative
/// counters (since each node started), so a runbook compares two readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteStats {
    pub route: String,
    /// Where the route sends new connections now.
    pub target: String,
    /// Nodes that answered (their admin API; the simulator's scenario nodes).
    pub nodes: i64,
    /// Upstream connections established, and open now.
    pub cx_total: i64,
    pub cx_active: i64,
    /// Upstream connects that failed (refused, timed out) — a hold's parked retries too.
    pub connect_fail: i64,
    /// Client connections closed because the connect retries ran out (flag URX).
    pub attempts_exceeded: i64,
    /// Client connections closed because no endpoint was healthy (flag UH).
    pub none_healthy: i64,
    /// Upstream connections the server closed (a server that went away resets them).
    pub destroy_remote: i64,
    /// When it was read (epoch ms, the run's clock).
    pub at_ms: i64,
}

impl RouteStats {
    /// Every failure a client can see: failed connects, exhausted retries, no healthy
    /// endpoint, connections reset by the server.
    pub fn failures(&self) -> i64 {
        self.connect_fail + self.attempts_exceeded + self.none_healthy + self.destroy_remote
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointConnections {
    pub target: String,
    pub endpoint: String,
    pub connections: i64,
}

pub trait Router: Send + Sync {
    /// `NotFound` for a route the control plane does not serve.
    fn describe_route(&self, cx: &Call<'_>, name: &str) -> Result<Route, PrimitiveError>;
    /// Publish a version pointing at `target`; idempotent when the current version already
    /// says the same and no node NACKed it (no new version, see [`plan_switch`]). `NotFound` for a target that is
    /// neither an instance nor a cluster of the world.
    fn switch_route(
        &self,
        cx: &Call<'_>,
        name: &str,
        target: &str,
        hold: bool,
        drain: bool,
    ) -> Result<Route, PrimitiveError>;
    /// Established client connections per endpoint of the route, sorted by target.
    fn active_connections(
        &self,
        cx: &Call<'_>,
        name: &str,
    ) -> Result<Vec<EndpointConnections>, PrimitiveError>;
    /// What Envoy counted for the route (docs/envoy.md, "Route statistics"): the evidence of
    /// the shadow-read gate.
    fn route_stats(&self, cx: &Call<'_>, name: &str) -> Result<RouteStats, PrimitiveError>;
}

/// What `switch_route(target, hold, drain)` changes on a route now at `cur`: `None` when the
/// current version already says it and no node rejected it (nothing to publish), else the
/// draining list of the new version — the old target joins it when `drain` and the target
/// changes, it is emptied without `drain`, and the new target is never in it.
///
/// A version a node NACKed is published again, as a new version, even when it says the same:
/// xDS asks a node again only for a new version, so without it the node that NACKed (during a
/// fault now over) would never be asked, and every wait for the route would fail on that NACK.
pub fn plan_switch(cur: &Route, target: &str, hold: bool, drain: bool) -> Option<Vec<String>> {
    let mut draining: Vec<String> = Vec::new();
    if drain {
        let old = cur
            .draining
            .iter()
            .chain((cur.target != target).then_some(&cur.target));
        for d in old {
            if d != target && !draining.contains(d) {
                draining.push(d.clone());
            }
        }
    }
    let same = cur.target == target && cur.hold == hold && cur.draining == draining;
    let rejected = cur.nodes.iter().any(|n| n.status == "nack");
    (!same || rejected).then_some(draining)
}

/// A version is taken by the fleet when every node that counts ACKed it and at least one did:
/// every expected node (an `absent` one has not), and every connected one (`behind` has not);
/// a `disconnected` node outside the expected set does not count. No node at all is no fleet
/// that took it.
pub fn all_acked(nodes: &[NodeAck]) -> bool {
    nodes.iter().any(|n| n.status == "ack")
        && nodes
            .iter()
            .all(|n| n.status == "ack" || n.status == "disconnected")
}

/// A route name the control plane does not serve.
pub fn route_not_found(op: &str, name: &str) -> PrimitiveError {
    PrimitiveError::new(
        "route",
        op,
        ErrorKind::NotFound,
        format!("route {name} is not configured"),
        "routes are named after the source instance id",
    )
}

/// A route target that is neither an instance nor a cluster of the world.
pub fn target_not_found(op: &str, target: &str) -> PrimitiveError {
    PrimitiveError::new(
        "route",
        op,
        ErrorKind::NotFound,
        format!("target {target} is neither an RDS instance nor an Aurora cluster"),
        "route to the source instance id or the Aurora cluster id",
    )
}

/// Connection counts as the trait returns them: by target.
pub fn sort_connections(mut c: Vec<EndpointConnections>) -> Vec<EndpointConnections> {
    c.sort_by(|a, b| a.target.cmp(&b.target).then(a.endpoint.cmp(&b.endpoint)));
    c
}

/// A `route` that cannot work in this world or configuration: every call fails with the
/// error (its `op` set to the call's), so a runbook stops at its first routing step saying why.
pub struct Unavailable(pub PrimitiveError);

impl Unavailable {
    fn fail(&self, op: &str) -> PrimitiveError {
        let mut e = self.0.clone();
        e.area = "route".into();
        e.op = op.into();
        e
    }
}

impl Router for Unavailable {
    fn describe_route(&self, _cx: &Call<'_>, _name: &str) -> Result<Route, PrimitiveError> {
        Err(self.fail("describe_route"))
    }

    fn switch_route(
        &self,
        _cx: &Call<'_>,
        _name: &str,
        _target: &str,
        _hold: bool,
        _drain: bool,
    ) -> Result<Route, PrimitiveError> {
        Err(self.fail("switch_route"))
    }

    fn active_connections(
        &self,
        _cx: &Call<'_>,
        _name: &str,
    ) -> Result<Vec<EndpointConnections>, PrimitiveError> {
        Err(self.fail("active_connections"))
    }

    fn route_stats(&self, _cx: &Call<'_>, _name: &str) -> Result<RouteStats, PrimitiveError> {
        Err(self.fail("route_stats"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(target: &str, hold: bool, draining: &[&str]) -> Route {
        Route {
            name: "orders-db".into(),
            version: 3,
            target: target.into(),
            endpoint: String::new(),
            hold,
            draining: draining.iter().map(|s| s.to_string()).collect(),
            nodes: vec![],
            all_acked: true,
            held_connections: 0,
        }
    }

    #[test]
    fn a_switch_to_what_the_route_says_publishes_nothing() {
        let r = route("orders-db", true, &[]);
        assert_eq!(plan_switch(&r, "orders-db", true, false), None);
        assert_eq!(plan_switch(&r, "orders-db", false, false), Some(vec![]));
        let d = route("orders-aurora", false, &["orders-db"]);
        assert_eq!(plan_switch(&d, "orders-aurora", false, true), None);
    }

    #[test]
    fn a_version_a_node_nacked_is_published_again_even_when_it_says_the_same() {
        let mut r = route("orders-db", true, &[]);
        r.nodes = ["ack", "nack"]
            .iter()
            .map(|s| NodeAck {
                node: format!("envoy-{s}"),
                status: s.to_string(),
                unexpected: false,
            })
            .collect();
        assert_eq!(plan_switch(&r, "orders-db", true, false), Some(vec![]));
        r.nodes[1].status = "behind".into();
        assert_eq!(plan_switch(&r, "orders-db", true, false), None);
    }

    #[test]
    fn draining_keeps_the_old_target_and_never_the_new_one() {
        let r = route("orders-db", true, &[]);
        assert_eq!(
            plan_switch(&r, "orders-aurora", false, true),
            Some(vec!["orders-db".to_string()])
        );
        let back = route("orders-aurora", false, &["orders-db"]);
        assert_eq!(
            plan_switch(&back, "orders-db", false, true),
            Some(vec!["orders-aurora".to_string()])
        );
        assert_eq!(
            plan_switch(&back, "orders-aurora", false, false),
            Some(vec![])
        );
    }

    #[test]
    fn acked_means_every_expected_and_connected_node_and_at_least_one() {
        let n = |s: &str| NodeAck {
            node: "n".into(),
            status: s.into(),
            unexpected: false,
        };
        assert!(all_acked(&[n("ack"), n("disconnected")]));
        assert!(!all_acked(&[n("ack"), n("behind")]));
        assert!(
            !all_acked(&[n("ack"), n("absent")]),
            "an expected node not connected"
        );
        assert!(!all_acked(&[n("ack"), n("nack")]));
        assert!(!all_acked(&[n("disconnected")]));
        assert!(!all_acked(&[]));
    }
}
