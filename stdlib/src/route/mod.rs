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

pub mod remote;
pub mod rhai;
pub mod sim;

use godwit_engine::Call;
use godwit_engine::PrimitiveError;
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointConnections {
    pub target: String,
    pub endpoint: String,
    pub connections: i64,
}

pub trait Router: Send + Sync {
    fn describe_route(&self, cx: &Call<'_>, name: &str) -> Result<Route, PrimitiveError>;
    /// Publish a version pointing at `target`; idempotent when the current version already
    /// says the same.
    fn switch_route(
        &self,
        cx: &Call<'_>,
        name: &str,
        target: &str,
        hold: bool,
        drain: bool,
    ) -> Result<Route, PrimitiveError>;
    fn active_connections(
        &self,
        cx: &Call<'_>,
        name: &str,
    ) -> Result<Vec<EndpointConnections>, PrimitiveError>;
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
}
