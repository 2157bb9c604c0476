//! # godwit-xds — the Envoy control plane behind the `route` area
//!
//! Applications reach PostgreSQL through Envoy; a cutover is a change of one endpoint list that
//! every Envoy node must apply. This crate serves that list over State-of-the-World ADS (gRPC,
//! `envoy-types` protos, mTLS optional), waits for every connected node's ACK, and judges the
//! nodes against the route's expected set ([`fleet`]: absent, behind, unexpected).
//!
//! ```text
//!  runbook (route area) / godwit dal serve      godwit run in another process
//!        │ publish / hold / switch / …            │ remote::RemotePlane (same operations)
//!        │                                        ▼ JSON over HTTP/1.1, loopback only
//!        │                          api (axum): /v1/routes/{route}/hold, … → same XdsError
//!        ▼                                        │
//!  plane::ControlPlane ◄──────────────────────────┘ ── model::RouteSpec transitions ── store (state.json: versions, history)
//!        │ resources::ResourceSet::build  (listener pg.R, cluster pg.R, EDS pg.R)
//!        ▼ watch<Snapshot>
//!  ads (tonic, one task per Envoy stream: nonces, ACK/NACK, wildcard + named subscriptions)
//!        │                                  ▲ ACK/NACK per (node, type) → publish report
//!        ▼                                  │
//!  Envoy nodes ────────── admin API ──► admin::status (per-endpoint connections, failures)
//! ```
//!
//! | module | what lives there |
//! |---|---|
//! | [`model`] | [`RouteSpec`], endpoints, hold budget; the pure hold/switch/cleanup transitions |
//! | [`fleet`] | a route's expected Envoy nodes; each node acked / behind / absent against a version |
//! | [`resources`] | protos per route, with the settings the measured Envoy behaviour demands |
//! | [`ads`] | the ADS stream protocol (versions, nonces, ACK/NACK, subscriptions) |
//! | `plane` | [`ControlPlane`], [`Config`], publish-and-wait, NACK rollback, [`serve`] |
//! | [`store`] | persisted state, so a restart never serves an older version |
//! | [`api`] | the management API: `ControlPlane` over JSON/HTTP, errors as [`api::ErrorBody`] |
//! | [`remote`] | [`RemotePlane`] (the API's client) and [`Plane`] (local or remote, one type) |
//! | [`admin`] | Envoy admin API client and parsers (`/clusters`, `/stats`) |
//! | [`envoy`] | locating the pinned Envoy, bootstraps, a process guard (lab, tests) |
//! | [`tls`] | mTLS on the xDS port |
//! | [`client`] | [`client::SimNode`], an Envoy-like ADS client for tests and benchmarks |
//! | [`error`] | [`XdsError`] → `godwit_engine::PrimitiveError` (area `route`) |
//!
//! Why the settings are what they are is in `docs/envoy.md` and, measured, in the shared
//! reference `envoy.md` (cited as "envoy.md §N" in comments).

pub mod admin;
pub mod ads;
pub mod api;
pub mod client;
pub mod envoy;
pub mod error;
pub mod fleet;
pub mod model;
mod plane;
pub mod remote;
pub mod resources;
pub mod store;
pub mod tls;

pub use error::XdsError;
pub use fleet::{Convergence, NodeOutcome, NodeReport};
pub use model::{Addr, Endpoint, Health, HoldBudget, Role, RouteSpec};
pub use plane::{
    Config, ControlPlane, Nack, NodeStatus, NodeView, PublishReport, RouteView, serve,
};
pub use remote::{Plane, RemotePlane};
