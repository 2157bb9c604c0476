//! [`ControlPlane`]: the handle runbooks (through the `route` area) and `godwit dal serve` use.
//!
//! A publish computes the new resource set, bumps the global version, persists it, swaps the
//! [`Snapshot`] every stream watches, then waits until every connected node ACKed it and, for
//! at most `absent_timeout`, until the route's absent expected nodes connect ([`crate::fleet`]).
//! A NACK republishes the previous config (as a newer version, so versions never go backwards)
//! and fails the operation with Envoy's error detail.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{Admin, RouteStatus};
use crate::ads::AdsService;
use crate::error::XdsError;
use crate::fleet::{self, Convergence, NodeReport};
use crate::model::{Addr, RouteSpec, validate_route_name};
use crate::resources::{ResourceSet, ResourceType};
use crate::store::{HistoryEntry, PersistedState, Store};
use crate::tls::TlsFiles;

/// How to run the control plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address for ADS (`127.0.0.1:0` picks a free port; see
    /// [`ControlPlane::local_addr`]).
    pub listen: SocketAddr,
    /// Persisted state (routes, versions, history); `None` keeps it in memory.
    pub state_path: Option<PathBuf>,
    /// The refusing address new connections are parked on during a hold. It must actively
    /// refuse (RST) on every Envoy node: a blackhole would make each attempt cost a full
    /// `connect_timeout` (envoy.md §7.2).
    pub parking: Addr,
    /// How long a publish waits for every connected node to ACK.
    pub ack_timeout: Duration,
    /// Per route, the Envoy node ids that must run it ([`crate::fleet`]): a publish reports the
    /// ones that are absent or behind, and `all_acked` means every one of them ACKed. Merged
    /// into the persisted state at start (a route named here replaces its persisted set, an
    /// empty list clears it; routes not named keep theirs), so a restart without it keeps the
    /// sets. Not settable through the management API: a runbook must not be able to shrink
    /// the set it is gated on.
    pub expected_nodes: BTreeMap<String, Vec<String>>,
    /// How long a publish waits, beyond the connected nodes' ACKs, for expected nodes that are
    /// absent to connect (at most `ack_timeout`). A node that connects in that window is then
    /// waited on like any connected node; one that does not is reported absent and the publish
    /// returns with `all_acked: false` — not an error, since the version is served and every
    /// connected node runs it, but not a success either (`route::wait_until_acked` fails on
    /// it). 10 s covers Envoy's reconnect after a short control-plane restart (its ADS retry
    /// backoff starts at 0.5 s and doubles); a dead node costs each publish these 10 s.
    pub absent_timeout: Duration,
    /// mTLS on the xDS port when set.
    pub tls: Option<TlsFiles>,
    /// Listen address of the management API ([`crate::api`], JSON over HTTP/1.1) through which
    /// other processes drive routes ([`crate::remote::RemotePlane`]); `None` serves none. It has
    /// no authentication, so it must be a loopback address (`127.0.0.1:0` picks a free port; see
    /// [`ControlPlane::api_addr`]); anything else is refused at start.
    pub api: Option<SocketAddr>,
}

impl Config {
    pub fn new(listen: SocketAddr) -> Self {
        Config {
            listen,
            state_path: None,
            // Port 1 (tcpmux) is closed on practically every host, so loopback answers RST.
            parking: Addr::new("127.0.0.1", 1),
            ack_timeout: Duration::from_secs(15),
            expected_nodes: BTreeMap::new(),
            absent_timeout: Duration::from_secs(10),
            tls: None,
            api: None,
        }
    }
}

/// The served configuration at one global version.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) version: u64,
    pub(crate) type_versions: [u64; 3],
    pub(crate) resources: ResourceSet,
}

/// A node's rejection of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nack {
    pub rejected_version: u64,
    /// The `version_info` the NACK carried: the version the node keeps running.
    pub previous_version: String,
    /// Envoy's `error_detail.message`.
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TypeState {
    pub(crate) subscribed: bool,
    /// Resource names of the node's latest request (empty = wildcard).
    pub(crate) requested: Vec<String>,
    /// The request names the last response answered.
    pub(crate) sent_for: Vec<String>,
    pub(crate) sent_version: Option<u64>,
    pub(crate) sent_names: Vec<String>,
    pub(crate) nonce: String,
    pub(crate) acked_version: Option<u64>,
    pub(crate) acked_names: Vec<String>,
    pub(crate) nack: Option<Nack>,
}

#[derive(Debug, Clone)]
pub(crate) struct NodeState {
    pub(crate) cluster: String,
    pub(crate) admin: Option<String>,
    pub(crate) stream: u64,
    pub(crate) connected: bool,
    pub(crate) types: [TypeState; 3],
}

impl NodeState {
    /// Whether the node runs `snap` for every type it is subscribed to or must be.
    pub(crate) fn applied(&self, snap: &Snapshot) -> bool {
        ResourceType::ALL.into_iter().all(|t| {
            let ts = &self.types[t.index()];
            let want = snap.type_versions[t.index()];
            let needed: Vec<&String> = snap.resources.get(t).keys().collect();
            let cds_subscribed = self.types[ResourceType::Cluster.index()].subscribed;
            match t {
                ResourceType::Endpoints if needed.is_empty() => true,
                // EDS is subscribed by name once the EDS clusters arrive: a node that takes
                // clusters must come back for their endpoints.
                ResourceType::Endpoints if !ts.subscribed && !cds_subscribed => true,
                ResourceType::Endpoints => {
                    ts.acked_version.is_some_and(|v| v >= want)
                        && needed.iter().all(|n| ts.acked_names.contains(n))
                }
                // A node that never asked for a type (e.g. a CDS-only client) is not waited on.
                _ => !ts.subscribed || ts.acked_version.is_some_and(|v| v >= want),
            }
        })
    }

    /// A NACK of this snapshot's version (or a later one) of some type.
    pub(crate) fn nack_of(&self, snap: &Snapshot) -> Option<(ResourceType, &Nack)> {
        ResourceType::ALL
            .into_iter()
            .find_map(|t| self.nack_of_type(snap, t).map(|n| (t, n)))
    }

    /// A NACK of this snapshot's version (or a later one) of type `t`.
    pub(crate) fn nack_of_type(&self, snap: &Snapshot, t: ResourceType) -> Option<&Nack> {
        self.types[t.index()]
            .nack
            .as_ref()
            .filter(|n| n.rejected_version >= snap.type_versions[t.index()])
            .filter(|n| n.rejected_version > 0)
    }
}

pub(crate) struct State {
    pub(crate) persisted: PersistedState,
    pub(crate) nodes: BTreeMap<String, NodeState>,
    next_stream: u64,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) snapshot: watch::Sender<Arc<Snapshot>>,
    progress: watch::Sender<u64>,
    pub(crate) shutdown: watch::Sender<bool>,
    store: Store,
    config: Config,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn next_stream_id(&self) -> u64 {
        let mut st = self.lock();
        st.next_stream += 1;
        st.next_stream
    }

    pub(crate) fn progressed(&self) {
        self.progress.send_modify(|n| *n += 1);
    }

    /// A node opened a stream; a newer stream of the same node id replaces the older one.
    pub(crate) fn connected(&self, id: &str, cluster: &str, admin: Option<String>, stream: u64) {
        self.lock().nodes.insert(
            id.to_string(),
            NodeState {
                cluster: cluster.to_string(),
                admin,
                stream,
                connected: true,
                types: Default::default(),
            },
        );
        self.progressed();
    }

    pub(crate) fn disconnected(&self, id: &str, stream: u64) {
        if let Some(n) = self.lock().nodes.get_mut(id)
            && n.stream == stream
        {
            n.connected = false;
        }
        self.progressed();
    }
}

/// What one publish did on every node, against the route's expected set ([`crate::fleet`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishReport {
    pub route: String,
    /// The global version now served.
    pub version: u64,
    /// False when the route already had this spec (idempotent re-run): no new version.
    pub changed: bool,
    pub nodes: Vec<NodeReport>,
    pub waited_ms: u64,
    /// The route's expected set; empty when none is configured.
    #[serde(default)]
    pub expected_nodes: Vec<String>,
    /// Expected nodes not connected when the wait ended ([`Config::absent_timeout`]).
    #[serde(default)]
    pub absent: Vec<String>,
    /// Always empty in a report: a connected node still behind at `ack_timeout` fails the
    /// publish (`AckTimeout` names it). Kept so that reports and `describe` have one shape.
    #[serde(default)]
    pub behind: Vec<String>,
    /// Connected nodes outside a configured expected set.
    #[serde(default)]
    pub unexpected: Vec<String>,
    /// Every expected node (and every connected one) ACKed. False with absent nodes: the
    /// version is served, but not everywhere it must be.
    #[serde(default)]
    pub all_acked: bool,
}

/// A route as the control plane serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    pub route: String,
    /// The global version at which this route last changed.
    pub version: u64,
    pub spec: RouteSpec,
    /// `eds` (IP endpoints) or `strict_dns` (DNS names through CDS).
    pub discovery: String,
    /// Every journaled version of this route, oldest first: `(version, op)`.
    pub history: Vec<(u64, String)>,
    /// The route's expected set; empty when none is configured.
    #[serde(default)]
    pub expected_nodes: Vec<String>,
    /// Every node against the current version ([`crate::fleet`]).
    #[serde(default)]
    pub nodes: Vec<NodeReport>,
    /// Expected nodes that are not connected (never connected, or disconnected).
    #[serde(default)]
    pub absent: Vec<String>,
    /// Connected nodes that have not ACKed the current version.
    #[serde(default)]
    pub behind: Vec<String>,
    /// Connected nodes outside a configured expected set.
    #[serde(default)]
    pub unexpected: Vec<String>,
    /// Every expected node (and every connected one) runs the current version.
    #[serde(default)]
    pub all_acked: bool,
}

/// xDS-level state of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub node: String,
    pub cluster: String,
    pub connected: bool,
    pub admin: Option<String>,
    /// ACKed version per type (`Cluster`, `ClusterLoadAssignment`, `Listener`).
    pub acked: BTreeMap<String, u64>,
    pub nacks: BTreeMap<String, Nack>,
    /// Whether the node runs the current global version.
    pub current: bool,
}

/// One node's status: xDS state and, through its admin API, per-route data-plane state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeView,
    pub routes: Vec<RouteStatus>,
    /// Why the admin API could not be read, if it could not.
    pub error: Option<String>,
}

/// The running control plane. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct ControlPlane {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    api_addr: Option<SocketAddr>,
    /// The ADS server and the management API server (empty in [`ControlPlane::handle`]s).
    servers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("local_addr", &self.local_addr)
            .field("api_addr", &self.api_addr)
            .finish()
    }
}

impl ControlPlane {
    /// Load the persisted state, bind the xDS port and serve on the current tokio runtime.
    pub async fn start(config: Config) -> Result<ControlPlane, XdsError> {
        if let Some(api) = config.api {
            crate::api::check_listen(api)?;
        }
        let store = Store::new(config.state_path.clone());
        let mut persisted = store.load()?;
        let mut changed = false;
        for (route, nodes) in &config.expected_nodes {
            let set = fleet::normalize(route, nodes)?;
            let before = if set.is_empty() {
                persisted.expected_nodes.remove(route)
            } else {
                persisted.expected_nodes.insert(route.clone(), set.clone())
            };
            changed |= before.unwrap_or_default() != set;
        }
        if changed {
            store.save(&persisted)?;
        }
        let snapshot = Snapshot {
            version: persisted.version,
            type_versions: persisted.type_versions,
            resources: ResourceSet::build(&persisted.routes),
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| XdsError::Server(format!("bind {}: {e}", config.listen)))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| XdsError::Server(e.to_string()))?;
        let tls = match &config.tls {
            Some(files) => Some(files.server_config()?),
            None => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                persisted,
                nodes: BTreeMap::new(),
                next_stream: 0,
            }),
            snapshot: watch::channel(Arc::new(snapshot)).0,
            progress: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            store,
            config,
        });
        let service = AggregatedDiscoveryServiceServer::from_arc(Arc::new(AdsService {
            shared: shared.clone(),
        }));
        let mut builder = tonic::transport::Server::builder()
            // Envoy keeps one long-lived stream per node; keepalives notice dead peers.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| XdsError::Server(format!("TLS: {e}")))?;
        }
        let mut stop = shared.shutdown.subscribe();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let router = builder.add_service(service);
        let server = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
        let mut plane = ControlPlane {
            shared,
            local_addr,
            api_addr: None,
            servers: Mutex::new(vec![server]),
        };
        if let Some(api) = plane.shared.config.api {
            let stop = plane.shared.shutdown.subscribe();
            match crate::api::start(Arc::new(plane.handle()), api, stop).await {
                Ok((addr, task)) => {
                    plane.api_addr = Some(addr);
                    plane.servers_mut().push(task);
                }
                Err(e) => {
                    plane.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok(plane)
    }

    /// Another handle on the same control plane (same state, same streams), for the management
    /// API's handlers. It owns no server task: shutting it down signals the shared shutdown.
    fn handle(&self) -> ControlPlane {
        ControlPlane {
            shared: self.shared.clone(),
            local_addr: self.local_addr,
            api_addr: self.api_addr,
            servers: Mutex::new(Vec::new()),
        }
    }

    fn servers_mut(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bound xDS address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound management API address ([`Config::api`], with the port picked for `:0`).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// The current global version (0 before the first publish).
    pub fn version(&self) -> u64 {
        self.shared.lock().persisted.version
    }

    /// Set route `route` to `spec` and wait until every connected node ACKed it.
    pub async fn publish(&self, route: &str, spec: RouteSpec) -> Result<PublishReport, XdsError> {
        self.apply(route, "publish", |_| Ok(spec)).await
    }

    /// The route as served, with its journaled versions and where every node stands against
    /// its expected set.
    pub fn describe(&self, route: &str) -> Result<RouteView, XdsError> {
        let snap = self.shared.snapshot.borrow().clone();
        let st = self.shared.lock();
        let spec = st
            .persisted
            .routes
            .get(route)
            .ok_or_else(|| XdsError::NotFound(route.to_string()))?;
        let history: Vec<(u64, String)> = st
            .persisted
            .history
            .iter()
            .filter(|h| h.route == route)
            .map(|h| (h.version, h.op.clone()))
            .collect();
        let c = converge(&st, &snap, route);
        Ok(RouteView {
            route: route.to_string(),
            version: history.last().map(|h| h.0).unwrap_or(0),
            discovery: if spec.uses_dns() { "strict_dns" } else { "eds" }.into(),
            spec: spec.clone(),
            history,
            expected_nodes: c.expected_nodes,
            nodes: c.nodes,
            absent: c.absent,
            behind: c.behind,
            unexpected: c.unexpected,
            all_acked: c.all_acked,
        })
    }

    /// The Envoy nodes route `route` must reach ([`Config::expected_nodes`]); empty when none
    /// are configured.
    pub fn expected_nodes(&self, route: &str) -> Vec<String> {
        self.shared
            .lock()
            .persisted
            .expected_nodes
            .get(route)
            .cloned()
            .unwrap_or_default()
    }

    /// Replace the expected set of `route` (empty: none), persisted before it applies. For the
    /// process hosting the control plane (the lab supervisor, once its Envoy is up); the
    /// management API does not offer it ([`Config::expected_nodes`] says why).
    pub fn set_expected_nodes(&self, route: &str, nodes: &[String]) -> Result<(), XdsError> {
        let set = fleet::normalize(route, nodes)?;
        {
            let mut st = self.shared.lock();
            let mut next = st.persisted.clone();
            if set.is_empty() {
                next.expected_nodes.remove(route);
            } else {
                next.expected_nodes.insert(route.to_string(), set);
            }
            if next != st.persisted {
                self.shared.store.save(&next)?;
                st.persisted = next;
            }
        }
        // A publish waiting on the old set re-evaluates.
        self.shared.progressed();
        Ok(())
    }

    /// Every published route name.
    pub fn routes(&self) -> Vec<String> {
        self.shared
            .lock()
            .persisted
            .routes
            .keys()
            .cloned()
            .collect()
    }

    /// Hold new connections: `[parking, source DRAINING]`.
    pub async fn hold(&self, route: &str) -> Result<PublishReport, XdsError> {
        let parking = self.shared.config.parking.clone();
        self.apply(route, "hold", move |cur| {
            Ok(cur.cloned().ok_or(())?.held(&parking))
        })
        .await
    }

    /// Switch (or release a hold) onto `target`: `[target, source DRAINING]`.
    pub async fn switch(&self, route: &str, target: Addr) -> Result<PublishReport, XdsError> {
        self.apply(route, "switch", move |cur| {
            Ok(cur.cloned().ok_or(())?.switched(&target))
        })
        .await
    }

    /// Drop the drained endpoints: `[target]`.
    pub async fn cleanup(&self, route: &str) -> Result<PublishReport, XdsError> {
        let name = route.to_string();
        self.apply(route, "cleanup", move |cur| {
            cur.ok_or(())?.cleaned(&name).map_err(|_| ())
        })
        .await
    }

    /// Republish the spec route `route` had at global `version`, as a new (higher) version.
    pub async fn rollback_to(&self, route: &str, version: u64) -> Result<PublishReport, XdsError> {
        let spec = self
            .shared
            .lock()
            .persisted
            .spec_at(route, version)
            .cloned()
            .ok_or_else(|| XdsError::NoSuchVersion {
                route: route.to_string(),
                version,
            })?;
        self.apply(route, &format!("rollback_to {version}"), move |_| Ok(spec))
            .await
    }

    /// xDS-level view of every node that ever connected.
    pub fn nodes(&self) -> Vec<NodeView> {
        let snap = self.shared.snapshot.borrow().clone();
        let st = self.shared.lock();
        st.nodes
            .iter()
            .map(|(id, n)| NodeView {
                node: id.clone(),
                cluster: n.cluster.clone(),
                connected: n.connected,
                admin: n.admin.clone(),
                acked: ResourceType::ALL
                    .into_iter()
                    .filter_map(|t| {
                        n.types[t.index()]
                            .acked_version
                            .map(|v| (t.name().to_string(), v))
                    })
                    .collect(),
                nacks: ResourceType::ALL
                    .into_iter()
                    .filter_map(|t| {
                        n.types[t.index()]
                            .nack
                            .clone()
                            .map(|v| (t.name().to_string(), v))
                    })
                    .collect(),
                current: n.applied(&snap),
            })
            .collect()
    }

    /// Per node: the xDS view plus, for nodes that announced their admin address, what Envoy
    /// does with every route (connections per endpoint, refused attempts, exhausted holds).
    pub async fn status(&self) -> Vec<NodeStatus> {
        let routes = self.routes();
        let mut out = Vec::new();
        for node in self.nodes() {
            let mut st = NodeStatus {
                node,
                routes: Vec::new(),
                error: None,
            };
            if let Some(addr) = st.node.admin.clone().filter(|_| st.node.connected) {
                let admin = Admin::new(addr);
                for r in &routes {
                    match admin.route_status(r).await {
                        Ok(rs) => st.routes.push(rs),
                        Err(e) => {
                            st.error = Some(e.to_string());
                            break;
                        }
                    }
                }
            }
            out.push(st);
        }
        out
    }

    /// Stop serving: every ADS stream ends (nodes keep their config and reconnect later), and
    /// the management API stops accepting requests.
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        let handles = std::mem::take(&mut *self.servers_mut());
        for h in handles {
            // Graceful shutdown waits for connections to close; streams end on the same signal.
            if tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .is_err()
            {
                // A peer that does not close its connection (an HTTP/2 stream, an API call
                // waiting for ACKs) must not hang shutdown.
            }
        }
    }

    /// Change one route, publish, wait for the fleet; revert on NACK.
    async fn apply(
        &self,
        route: &str,
        op: &str,
        next: impl FnOnce(Option<&RouteSpec>) -> Result<RouteSpec, ()>,
    ) -> Result<PublishReport, XdsError> {
        validate_route_name(route)?;
        let (previous, spec) = {
            let st = self.shared.lock();
            let cur = st.persisted.routes.get(route);
            let spec = match next(cur) {
                Ok(s) => s,
                Err(()) if cur.is_none() => return Err(XdsError::NotFound(route.to_string())),
                Err(()) => {
                    // Only cleanup refuses an existing route; recompute its message.
                    return Err(cur
                        .map(|c| c.cleaned(route).err())
                        .and_then(|e| e)
                        .unwrap_or_else(|| XdsError::NotFound(route.to_string())));
                }
            };
            spec.validate(route)?;
            (st.persisted.clone(), spec)
        };
        let (version, changed) = self.install(route, op, Some(spec))?;
        let started = Instant::now();
        match self.wait_for(route, version, started).await {
            Ok(c) => Ok(PublishReport {
                route: route.to_string(),
                version,
                changed,
                nodes: c.nodes,
                waited_ms: started.elapsed().as_millis() as u64,
                expected_nodes: c.expected_nodes,
                absent: c.absent,
                behind: c.behind,
                unexpected: c.unexpected,
                all_acked: c.all_acked,
            }),
            Err(Waited::Nacked {
                node,
                type_name,
                detail,
            }) => {
                // Envoy keeps running the previous config; make the control plane serve it too,
                // under a new version, so every node (and a restarted godwit) agrees again.
                let prev = previous.routes.get(route).cloned();
                let (rolled_back_to, _) = self.install(route, "revert after NACK", prev)?;
                let _ = self.wait_for(route, rolled_back_to, Instant::now()).await;
                Err(XdsError::Nacked {
                    node,
                    version,
                    type_name,
                    detail,
                    rolled_back_to,
                })
            }
            Err(Waited::Timeout { behind, absent }) => Err(XdsError::AckTimeout {
                version,
                waited_ms: started.elapsed().as_millis() as u64,
                behind,
                absent,
            }),
        }
    }

    /// Make `spec` (or the route's removal, for `None`) the served config. Returns the version
    /// now served and whether it is new.
    ///
    /// The same config is served again, under a new version, when a connected node NACKed the
    /// one served now: xDS sends a node only a version it has not seen, so without it a node
    /// that rejected the current config (and the revert after it) would never be asked again,
    /// and every later publish of that config would fail on the old NACK. Only the types it
    /// NACKed get the new version.
    fn install(
        &self,
        route: &str,
        op: &str,
        spec: Option<RouteSpec>,
    ) -> Result<(u64, bool), XdsError> {
        let mut st = self.shared.lock();
        let mut next = st.persisted.clone();
        match &spec {
            Some(s) => {
                next.routes.insert(route.to_string(), s.clone());
            }
            None => {
                next.routes.remove(route);
            }
        }
        let old = self.shared.snapshot.borrow().clone();
        let rejected = ResourceType::ALL.map(|t| {
            st.nodes
                .values()
                .any(|n| n.connected && n.nack_of_type(&old, t).is_some())
        });
        if next.routes == st.persisted.routes && !rejected.contains(&true) {
            return Ok((st.persisted.version, false));
        }
        let resources = ResourceSet::build(&next.routes);
        next.version += 1;
        for t in ResourceType::ALL {
            if resources.get(t) != old.resources.get(t) || rejected[t.index()] {
                next.type_versions[t.index()] = next.version;
            }
        }
        if let Some(s) = spec {
            next.history.push(HistoryEntry {
                version: next.version,
                route: route.to_string(),
                op: op.to_string(),
                at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                spec: s,
            });
        }
        // Durable before any node can see it.
        self.shared.store.save(&next)?;
        let snapshot = Snapshot {
            version: next.version,
            type_versions: next.type_versions,
            resources,
        };
        st.persisted = next;
        self.shared.snapshot.send_replace(Arc::new(snapshot));
        Ok((st.persisted.version, true))
    }

    /// Wait until every connected node ACKed `version` (or a later one): at most
    /// `ack_timeout`, after which the nodes still behind fail the publish. Expected nodes that
    /// are absent are waited for until `absent_timeout`, then reported (module docs of
    /// [`crate::fleet`]).
    async fn wait_for(
        &self,
        route: &str,
        version: u64,
        started: Instant,
    ) -> Result<Convergence, Waited> {
        let config = &self.shared.config;
        let deadline = started + config.ack_timeout;
        let absent_deadline = started + config.absent_timeout.min(config.ack_timeout);
        let mut progress = self.shared.progress.subscribe();
        loop {
            progress.mark_unchanged();
            let snap = self.shared.snapshot.borrow().clone();
            let c = {
                let st = self.shared.lock();
                if snap.version == version
                    && let Some((id, t, nack)) = st.nodes.iter().find_map(|(id, n)| {
                        n.nack_of(&snap)
                            .filter(|_| n.connected)
                            .map(|(t, nack)| (id, t, nack))
                    })
                {
                    return Err(Waited::Nacked {
                        node: id.clone(),
                        type_name: t.name().to_string(),
                        detail: nack.detail.clone(),
                    });
                }
                converge(&st, &snap, route)
            };
            // A later publish superseded ours: waiting for the newer one covers ours.
            let now = Instant::now();
            if c.behind.is_empty() && (c.absent.is_empty() || now >= absent_deadline) {
                return Ok(c);
            }
            if now >= deadline {
                return Err(Waited::Timeout {
                    behind: c.behind,
                    absent: c.absent,
                });
            }
            let until = if c.behind.is_empty() {
                absent_deadline
            } else {
                deadline
            };
            let _ = tokio::time::timeout(until - now, progress.changed()).await;
        }
    }
}

/// Where route `route`'s nodes stand against `snap`.
fn converge(st: &State, snap: &Snapshot, route: &str) -> Convergence {
    let expected = st
        .persisted
        .expected_nodes
        .get(route)
        .map(Vec::as_slice)
        .unwrap_or_default();
    fleet::converge(&st.nodes, snap, expected)
}

enum Waited {
    Nacked {
        node: String,
        type_name: String,
        detail: String,
    },
    Timeout {
        behind: Vec<String>,
        absent: Vec<String>,
    },
}

/// Run the control plane until Ctrl-C / SIGTERM: the entry point of `godwit dal serve`.
pub async fn serve(config: Config) -> Result<(), XdsError> {
    // Registered before anything is printed: a supervisor that signals as soon as it reads the
    // first line must find the handler in place (a `ctrl_c()` future registers only when
    // first polled, after the prints).
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| XdsError::Server(format!("cannot handle SIGINT: {e}")))?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| XdsError::Server(format!("cannot handle SIGTERM: {e}")))?;
    let plane = ControlPlane::start(config).await?;
    eprintln!(
        "godwit xDS control plane on {} (version {})",
        plane.local_addr(),
        plane.version()
    );
    if let Some(api) = plane.api_addr() {
        eprintln!("management API on http://{api} (godwit_xds::remote::RemotePlane)");
    }
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    plane.shutdown().await;
    Ok(())
}
