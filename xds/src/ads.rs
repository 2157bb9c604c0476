//! The State-of-the-World ADS server: one gRPC stream per Envoy node, carrying CDS, EDS and LDS.
//!
//! Per (node, type) the stream keeps what was last sent (version, nonce, resource names) and
//! what the node last ACKed or NACKed, following the xDS rules (envoy.md §3.2):
//!
//! * a request with an empty nonce opens a subscription (first request, or a reconnect; its
//!   `version_info` is what the node already runs) and is always answered;
//! * a request carrying the last nonce is an ACK of the version sent with it, or a NACK when it
//!   has `error_detail` (its `version_info` is then the *previous* version);
//! * a request with any other nonce is stale and ignored;
//! * Listener and Cluster are wildcard subscriptions answered with every resource of the type
//!   (an omitted one would be deleted); ClusterLoadAssignments are sent by name.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    aggregated_discovery_service_server::AggregatedDiscoveryService,
};
use envoy_types::pb::google::protobuf::value::Kind;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::plane::{Nack, NodeState, Shared, Snapshot};
use crate::resources::ResourceType;

/// Node metadata key under which a node may announce its admin address (`127.0.0.1:9901`), so
/// [`crate::ControlPlane::status`] can read its per-endpoint counters.
pub const ADMIN_METADATA_KEY: &str = "godwit_admin";

pub(crate) struct AdsService {
    pub(crate) shared: Arc<Shared>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let shared = self.shared.clone();
        tokio::spawn(async move { run_stream(shared, inbound, tx).await });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        // Delta is only needed for on-demand CDS, which godwit does not use (envoy.md §3.4).
        Err(Status::unimplemented(
            "godwit serves State-of-the-World ADS only; configure api_type: GRPC",
        ))
    }
}

type Tx = mpsc::Sender<Result<DiscoveryResponse, Status>>;

async fn run_stream(shared: Arc<Shared>, mut inbound: Streaming<DiscoveryRequest>, tx: Tx) {
    let stream_id = shared.next_stream_id();
    let mut snapshots = shared.snapshot.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let mut node: Option<String> = None;
    let mut nonces = 0u64;
    loop {
        let outgoing = tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => handle_request(&shared, stream_id, &mut node, &mut nonces, req),
                // End of stream or a transport error: the node reconnects with a new stream.
                _ => break,
            },
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break;
                }
                match &node {
                    Some(id) => push_changed(&shared, stream_id, id, &mut nonces),
                    None => Vec::new(),
                }
            }
            _ = shutdown.changed() => break,
        };
        for resp in outgoing {
            if tx.send(Ok(resp)).await.is_err() {
                break;
            }
        }
    }
    if let Some(id) = node {
        shared.disconnected(&id, stream_id);
    }
}

fn handle_request(
    shared: &Shared,
    stream_id: u64,
    node: &mut Option<String>,
    nonces: &mut u64,
    req: DiscoveryRequest,
) -> Vec<DiscoveryResponse> {
    // Only the first request of a stream must carry the node; Envoy may omit it afterwards.
    if node.is_none() {
        let Some(n) = &req.node else {
            return Vec::new();
        };
        let admin = n
            .metadata
            .as_ref()
            .and_then(|m| m.fields.get(ADMIN_METADATA_KEY))
            .and_then(|v| match &v.kind {
                Some(Kind::StringValue(s)) => Some(s.clone()),
                _ => None,
            });
        shared.connected(&n.id, &n.cluster, admin, stream_id);
        *node = Some(n.id.clone());
    }
    let Some(id) = node.as_deref() else {
        return Vec::new();
    };
    let Some(t) = ResourceType::from_type_url(&req.type_url) else {
        // Types godwit does not serve (RDS, SDS): nothing to say.
        return Vec::new();
    };
    let snapshot = shared.snapshot.borrow().clone();
    let mut st = shared.lock();
    let Some(ns) = st.nodes.get_mut(id).filter(|n| n.stream == stream_id) else {
        return Vec::new();
    };
    let ts = &mut ns.types[t.index()];
    if req.response_nonce.is_empty() {
        // A new subscription on this stream; after a reconnect the node reports what it runs.
        ts.subscribed = true;
        ts.requested = req.resource_names.clone();
        ts.sent_version = None;
        ts.nonce.clear();
        if let Ok(v) = req.version_info.parse::<u64>() {
            ts.acked_version = Some(v);
        }
    } else if req.response_nonce != ts.nonce {
        return Vec::new(); // stale: answers a response that has since been superseded
    } else {
        ts.requested = req.resource_names.clone();
        match &req.error_detail {
            Some(err) => {
                ts.nack = Some(Nack {
                    rejected_version: ts.sent_version.unwrap_or(0),
                    previous_version: req.version_info.clone(),
                    detail: err.message.clone(),
                });
            }
            None => {
                ts.acked_version = ts.sent_version;
                ts.acked_names = ts.sent_names.clone();
                ts.nack = None;
            }
        }
    }
    shared.progressed();
    let mut out = Vec::new();
    if let Some(resp) = respond_if_needed(ns, t, &snapshot, stream_id, nonces) {
        out.push(resp);
    }
    out
}

fn push_changed(
    shared: &Shared,
    stream_id: u64,
    id: &str,
    nonces: &mut u64,
) -> Vec<DiscoveryResponse> {
    let snapshot = shared.snapshot.borrow().clone();
    let mut st = shared.lock();
    let Some(ns) = st.nodes.get_mut(id).filter(|n| n.stream == stream_id) else {
        return Vec::new();
    };
    // Make-before-break: clusters, then their endpoints, then the listeners naming them.
    ResourceType::ALL
        .into_iter()
        .filter_map(|t| respond_if_needed(ns, t, &snapshot, stream_id, nonces))
        .collect()
}

/// Answer when the node has not seen this type's current version, or asked for other names.
/// A NACKed version is not re-sent: the publisher republishes the previous config instead.
fn respond_if_needed(
    ns: &mut NodeState,
    t: ResourceType,
    snapshot: &Snapshot,
    stream_id: u64,
    nonces: &mut u64,
) -> Option<DiscoveryResponse> {
    let ts = &mut ns.types[t.index()];
    let version = snapshot.type_versions[t.index()];
    if !ts.subscribed || (ts.sent_version == Some(version) && ts.sent_for == ts.requested) {
        return None;
    }
    let all = snapshot.resources.get(t);
    let wildcard =
        t.is_wildcard() || ts.requested.is_empty() || ts.requested.iter().any(|n| n == "*");
    let chosen: Vec<(&String, _)> = if wildcard {
        all.iter().collect()
    } else {
        all.iter()
            .filter(|(name, _)| ts.requested.contains(name))
            .collect()
    };
    *nonces += 1;
    let nonce = format!("{stream_id}-{nonces}");
    ts.sent_version = Some(version);
    ts.sent_for = ts.requested.clone();
    ts.sent_names = chosen.iter().map(|(n, _)| (*n).clone()).collect();
    ts.nonce = nonce.clone();
    Some(DiscoveryResponse {
        version_info: version.to_string(),
        resources: chosen.into_iter().map(|(_, any)| any.clone()).collect(),
        type_url: t.type_url(),
        nonce,
        ..Default::default()
    })
}
