//! [`SimNode`]: a minimal ADS client that behaves like Envoy on the wire (wildcard CDS and LDS,
//! EDS by the names of EDS clusters, ACK of every response). Tests and the benchmark use it to
//! stand in for Envoy nodes; it can NACK on demand and can pause to play a lagging node.

use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster,
    cluster::{ClusterDiscoveryType, DiscoveryType},
};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryRequest, DiscoveryResponse,
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use envoy_types::pb::google::rpc;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::resources::{ResourceType, unpack};

/// What the simulated node has seen and answered.
#[derive(Debug, Clone, Default)]
pub struct SimState {
    /// Accepted `version_info` per type (Cluster, ClusterLoadAssignment, Listener).
    pub accepted: [String; 3],
    /// Every response received, in order.
    pub responses: Vec<DiscoveryResponse>,
    /// Every request sent, in order.
    pub requests: Vec<DiscoveryRequest>,
    eds_names: Vec<String>,
    last_nonce: [String; 3],
    /// NACK the next response of this type with this message.
    nack_next: Option<(ResourceType, String)>,
    /// NACK every response of this type with this message, until cleared.
    nack_all: Option<(ResourceType, String)>,
    /// Responses held back while paused (answered on resume).
    paused: bool,
    held: Vec<DiscoveryResponse>,
}

/// A simulated Envoy node connected over gRPC.
#[derive(Debug)]
pub struct SimNode {
    pub id: String,
    state: Arc<Mutex<SimState>>,
    tx: mpsc::Sender<DiscoveryRequest>,
    changed: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl SimNode {
    /// Connect to `http://addr` as node `id`, starting from `versions` (what the node runs
    /// already; empty strings for a fresh node).
    pub async fn connect(
        addr: std::net::SocketAddr,
        id: &str,
        versions: [String; 3],
    ) -> Result<SimNode, tonic::Status> {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let (tx, rx) = mpsc::channel(64);
        let state = Arc::new(Mutex::new(SimState {
            accepted: versions.clone(),
            ..Default::default()
        }));
        let node = Node {
            id: id.to_string(),
            cluster: "sim".into(),
            ..Default::default()
        };
        // Envoy's opening order on ADS: clusters first, listeners once clusters are warm; we
        // send both at once (the server must cope with any order).
        for t in [ResourceType::Cluster, ResourceType::Listener] {
            let req = DiscoveryRequest {
                version_info: versions[t as usize].clone(),
                node: Some(node.clone()),
                type_url: t.type_url(),
                ..Default::default()
            };
            state.lock().unwrap().requests.push(req.clone());
            tx.send(req).await.ok();
        }
        let mut inbound = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await?
            .into_inner();
        let (changed_tx, changed) = watch::channel(0u64);
        let (st, reply) = (state.clone(), tx.clone());
        let task = tokio::spawn(async move {
            while let Ok(Some(resp)) = inbound.message().await {
                let out = {
                    let mut s = st.lock().unwrap();
                    s.responses.push(resp.clone());
                    if s.paused {
                        s.held.push(resp);
                        Vec::new()
                    } else {
                        answer(&mut s, resp)
                    }
                };
                for r in out {
                    st.lock().unwrap().requests.push(r.clone());
                    let _ = reply.send(r).await;
                }
                changed_tx.send_modify(|n| *n += 1);
            }
        });
        Ok(SimNode {
            id: id.to_string(),
            state,
            tx,
            changed,
            task,
        })
    }

    /// A copy of what the node has seen.
    pub fn state(&self) -> SimState {
        self.state.lock().unwrap().clone()
    }

    /// Accepted version of a type.
    pub fn accepted(&self, t: ResourceType) -> String {
        self.state.lock().unwrap().accepted[t as usize].clone()
    }

    /// Reject the next response of type `t` with `message` (as Envoy's `error_detail`).
    pub fn nack_next(&self, t: ResourceType, message: &str) {
        self.state.lock().unwrap().nack_next = Some((t, message.to_string()));
    }

    /// Reject every response of type `t` with `message` until [`accept`](Self::accept): a node
    /// that rejects everything for a while (the simulator's `envoy-nack` fault).
    pub fn nack_all(&self, t: ResourceType, message: &str) {
        self.state.lock().unwrap().nack_all = Some((t, message.to_string()));
    }

    /// Stop rejecting what [`nack_all`](Self::nack_all) rejects.
    pub fn accept(&self) {
        self.state.lock().unwrap().nack_all = None;
    }

    /// Stop answering (a lagging node); responses are kept until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.state.lock().unwrap().paused = true;
    }

    /// Answer everything held back, in order.
    pub async fn resume(&self) {
        let out = {
            let mut s = self.state.lock().unwrap();
            s.paused = false;
            let held = std::mem::take(&mut s.held);
            held.into_iter()
                .flat_map(|r| answer(&mut s, r))
                .collect::<Vec<_>>()
        };
        for r in out {
            self.state.lock().unwrap().requests.push(r.clone());
            let _ = self.tx.send(r).await;
        }
    }

    /// Wait until `pred` holds on the node's state, up to `timeout`.
    pub async fn wait_until(
        &self,
        timeout: std::time::Duration,
        pred: impl Fn(&SimState) -> bool,
    ) -> bool {
        let mut changed = self.changed.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.state.lock().unwrap()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return pred(&self.state.lock().unwrap());
            }
        }
    }

    /// Close the stream (the node goes away; the server sees a disconnect).
    pub fn disconnect(self) {
        self.task.abort();
    }
}

/// Envoy's reaction to one response: ACK (or NACK), and an EDS (re)subscription when the set of
/// EDS clusters changed.
fn answer(s: &mut SimState, resp: DiscoveryResponse) -> Vec<DiscoveryRequest> {
    let Some(t) = ResourceType::from_type_url(&resp.type_url) else {
        return Vec::new();
    };
    let i = t as usize;
    let mut out = Vec::new();
    let names = if t == ResourceType::Endpoints {
        s.eds_names.clone()
    } else {
        Vec::new()
    };
    let nack = match (&s.nack_next, &s.nack_all) {
        (Some((nt, msg)), _) if *nt == t => {
            let msg = msg.clone();
            s.nack_next = None;
            Some(msg)
        }
        (_, Some((nt, msg))) if *nt == t => Some(msg.clone()),
        _ => None,
    };
    if let Some(msg) = nack {
        s.last_nonce[i] = resp.nonce.clone();
        out.push(DiscoveryRequest {
            version_info: s.accepted[i].clone(),
            resource_names: names,
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce,
            error_detail: Some(rpc::Status {
                code: 3,
                message: msg,
                ..Default::default()
            }),
            ..Default::default()
        });
        return out;
    }
    s.accepted[i] = resp.version_info.clone();
    s.last_nonce[i] = resp.nonce.clone();
    out.push(DiscoveryRequest {
        version_info: resp.version_info.clone(),
        resource_names: names,
        type_url: resp.type_url.clone(),
        response_nonce: resp.nonce.clone(),
        ..Default::default()
    });
    if t == ResourceType::Cluster {
        let mut eds: Vec<String> = resp
            .resources
            .iter()
            .filter_map(|a| unpack::<Cluster>(a).ok())
            .filter(|c| {
                c.cluster_discovery_type
                    == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
            })
            .map(|c| c.name)
            .collect();
        eds.sort();
        if eds != s.eds_names {
            let e = ResourceType::Endpoints as usize;
            s.eds_names = eds.clone();
            out.push(DiscoveryRequest {
                version_info: s.accepted[e].clone(),
                resource_names: eds,
                type_url: ResourceType::Endpoints.type_url(),
                response_nonce: s.last_nonce[e].clone(),
                ..Default::default()
            });
        }
    }
    out
}
