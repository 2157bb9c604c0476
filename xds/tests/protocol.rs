//! The ADS protocol against gRPC clients on loopback: initial requests, ACK, NACK with rollback,
//! stale nonces, reconnects with a stale version, a lagging node, persistence across restarts.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryRequest, aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use godwit_xds::client::SimNode;
use godwit_xds::resources::{ResourceType, unpack};
use godwit_xds::{Addr, Config, ControlPlane, NodeOutcome, RouteSpec, XdsError};
use tokio_stream::wrappers::ReceiverStream;

const T: Duration = Duration::from_secs(5);

fn config() -> Config {
    let mut c = Config::new("127.0.0.1:0".parse().unwrap());
    c.ack_timeout = Duration::from_secs(5);
    c
}

fn spec() -> RouteSpec {
    RouteSpec::new(Addr::new("127.0.0.1", 15432), Addr::new("10.0.0.1", 5432))
}

/// The server sees an ACK a moment after the client sent it.
async fn server_sees_current(cp: &ControlPlane, n: usize) -> bool {
    for _ in 0..500 {
        if cp.nodes().iter().filter(|v| v.current).count() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn fresh() -> [String; 3] {
    Default::default()
}

fn all_at(node: &SimNode, v: &str) -> bool {
    ResourceType::ALL.into_iter().all(|t| node.accepted(t) == v)
}

/// The addresses in the last EDS response a node received.
fn last_endpoints(node: &SimNode) -> Vec<String> {
    let st = node.state();
    let resp = st
        .responses
        .iter()
        .rev()
        .find(|r| r.type_url == ResourceType::Endpoints.type_url())
        .expect("an EDS response");
    let cla: ClusterLoadAssignment = unpack(&resp.resources[0]).unwrap();
    cla.endpoints[0]
        .lb_endpoints
        .iter()
        .map(|e| match &e.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => format!("{:?}", ep.address),
            _ => String::new(),
        })
        .collect()
}

#[tokio::test]
async fn initial_requests_get_every_type_and_the_acks_make_the_node_current() {
    let cp = ControlPlane::start(config()).await.unwrap();
    let r = cp.publish("orders", spec()).await.unwrap();
    assert_eq!((r.version, r.changed), (1, true));
    assert!(
        r.nodes.is_empty(),
        "no node connected yet: nothing to wait for"
    );

    let node = SimNode::connect(cp.local_addr(), "envoy-1", fresh())
        .await
        .unwrap();
    assert!(node.wait_until(T, |_| true).await);
    assert!(
        tokio::time::timeout(T, async {
            while !all_at(&node, "1") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .is_ok(),
        "node got and ACKed version 1 of every type: {:?}",
        node.state().accepted
    );
    let st = node.state();
    // SotW: wildcard types carry every resource; EDS is answered with the names asked for.
    for resp in &st.responses {
        assert!(!resp.nonce.is_empty());
        assert_eq!(resp.resources.len(), 1, "{}", resp.type_url);
    }
    let views = cp.nodes();
    assert_eq!(views.len(), 1);
    assert!(server_sees_current(&cp, 1).await, "{:?}", cp.nodes());
    assert!(cp.nodes()[0].connected);

    // Republishing the same spec is idempotent: no new version, and the node is reported.
    let again = cp.publish("orders", spec()).await.unwrap();
    assert_eq!((again.version, again.changed), (1, false));
    assert_eq!(again.nodes[0].outcome, NodeOutcome::Acked);
    cp.shutdown().await;
}

#[tokio::test]
async fn a_switch_only_changes_the_endpoints_and_waits_for_the_ack() {
    let cp = ControlPlane::start(config()).await.unwrap();
    cp.publish("orders", spec()).await.unwrap();
    let node = SimNode::connect(cp.local_addr(), "envoy-1", fresh())
        .await
        .unwrap();
    assert!(
        node.wait_until(T, |s| s.accepted.iter().all(|v| v == "1"))
            .await
    );

    let r = cp.hold("orders").await.unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked);
    // Only the endpoint list moved: listener and cluster keep version 1 (no listener drain,
    // no cluster warming; envoy.md §2.2).
    assert_eq!(node.accepted(ResourceType::Endpoints), "2");
    assert_eq!(node.accepted(ResourceType::Cluster), "1");
    assert_eq!(node.accepted(ResourceType::Listener), "1");
    assert_eq!(last_endpoints(&node).len(), 2, "parking + draining source");

    let r = cp
        .switch("orders", Addr::new("10.0.0.2", 5432))
        .await
        .unwrap();
    assert_eq!(
        (r.version, r.nodes[0].outcome.clone()),
        (3, NodeOutcome::Acked)
    );
    let r = cp.cleanup("orders").await.unwrap();
    assert_eq!(r.version, 4);
    let eps = last_endpoints(&node);
    assert_eq!(eps.len(), 1);
    assert!(eps[0].contains("10.0.0.2"), "{eps:?}");

    let view = cp.describe("orders").unwrap();
    let ops: Vec<&str> = view.history.iter().map(|h| h.1.as_str()).collect();
    assert_eq!(ops, ["publish", "hold", "switch", "cleanup"]);

    // Roll back to v1's endpoints: a new, higher version with the old content.
    let r = cp.rollback_to("orders", 1).await.unwrap();
    assert_eq!(r.version, 5);
    assert_eq!(cp.describe("orders").unwrap().spec, spec());
    assert_eq!(node.accepted(ResourceType::Endpoints), "5");
    assert!(matches!(
        cp.rollback_to("orders", 0).await,
        Err(XdsError::NoSuchVersion { .. })
    ));
    assert!(matches!(cp.hold("nope").await, Err(XdsError::NotFound(_))));
    cp.shutdown().await;
}

#[tokio::test]
async fn a_nack_republishes_the_previous_version_and_fails_with_envoys_detail() {
    let cp = ControlPlane::start(config()).await.unwrap();
    cp.publish("orders", spec()).await.unwrap();
    let node = SimNode::connect(cp.local_addr(), "envoy-1", fresh())
        .await
        .unwrap();
    assert!(
        node.wait_until(T, |s| s.accepted.iter().all(|v| v == "1"))
            .await
    );
    let before = last_endpoints(&node);

    node.nack_next(
        ResourceType::Endpoints,
        "Proto constraint validation failed",
    );
    let err = cp
        .switch("orders", Addr::new("10.0.0.2", 5432))
        .await
        .unwrap_err();
    let XdsError::Nacked {
        node: who,
        version,
        detail,
        rolled_back_to,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((who.as_str(), *version, *rolled_back_to), ("envoy-1", 2, 3));
    assert!(detail.contains("Proto constraint"), "{detail}");
    // The NACK carried the previous version, and the node now runs v3 = v1's content.
    let st = node.state();
    let nack = st
        .requests
        .iter()
        .find(|r| r.error_detail.is_some())
        .unwrap();
    assert_eq!(nack.version_info, "1");
    assert_eq!(node.accepted(ResourceType::Endpoints), "3");
    assert_eq!(last_endpoints(&node), before);
    assert_eq!(cp.describe("orders").unwrap().spec, spec());
    let p = err.into_primitive("switch");
    assert_eq!((p.area.as_str(), p.op.as_str()), ("route", "switch"));
    assert!(server_sees_current(&cp, 1).await, "{:?}", cp.nodes());
    cp.shutdown().await;
}

/// A node that rejects everything for a while NACKs the switch and the revert after it. Once
/// it accepts again, publishing the config it rejected (here: the revert's, which is the one
/// served) must ask it again under a new version; the unchanged config alone would never be
/// re-sent, and the publish would fail on the old NACK.
#[tokio::test]
async fn after_a_nacked_revert_the_same_config_is_published_again_as_a_new_version() {
    let cp = ControlPlane::start(config()).await.unwrap();
    cp.publish("orders", spec()).await.unwrap();
    let node = SimNode::connect(cp.local_addr(), "envoy-1", fresh())
        .await
        .unwrap();
    assert!(
        node.wait_until(T, |s| s.accepted.iter().all(|v| v == "1"))
            .await
    );
    node.nack_all(ResourceType::Endpoints, "rejected for a while");
    let err = cp
        .switch("orders", Addr::new("10.0.0.2", 5432))
        .await
        .unwrap_err();
    let XdsError::Nacked { rolled_back_to, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*rolled_back_to, 3, "the revert is version 3");
    node.accept();
    let again = cp.publish("orders", spec()).await.unwrap();
    assert_eq!(
        (again.version, again.changed),
        (4, true),
        "the rejected config is served anew: {again:?}"
    );
    assert!(again.all_acked, "{again:?}");
    assert_eq!(node.accepted(ResourceType::Endpoints), "4");
    // Clusters and listeners, never rejected, keep their version.
    assert_eq!(node.accepted(ResourceType::Cluster), "1");
    let same = cp.publish("orders", spec()).await.unwrap();
    assert_eq!((same.version, same.changed), (4, false), "{same:?}");
    cp.shutdown().await;
}

#[tokio::test]
async fn a_reconnect_with_a_stale_version_gets_the_current_one() {
    let cp = ControlPlane::start(config()).await.unwrap();
    cp.publish("orders", spec()).await.unwrap();
    cp.hold("orders").await.unwrap();
    cp.switch("orders", Addr::new("10.0.0.2", 5432))
        .await
        .unwrap();
    // The node ran version 1 before it lost its stream.
    let node = SimNode::connect(
        cp.local_addr(),
        "envoy-1",
        ["1".into(), "1".into(), "1".into()],
    )
    .await
    .unwrap();
    assert!(
        node.wait_until(T, |s| s.accepted[ResourceType::Endpoints as usize] == "3")
            .await
    );
    assert_eq!(node.accepted(ResourceType::Cluster), "1");
    assert!(server_sees_current(&cp, 1).await, "{:?}", cp.nodes());
    cp.shutdown().await;
}

#[tokio::test]
async fn with_two_nodes_a_publish_waits_for_the_lagging_one() {
    let cp = ControlPlane::start(Config {
        ack_timeout: Duration::from_millis(300),
        ..config()
    })
    .await
    .unwrap();
    cp.publish("orders", spec()).await.unwrap();
    let a = SimNode::connect(cp.local_addr(), "envoy-a", fresh())
        .await
        .unwrap();
    let b = SimNode::connect(cp.local_addr(), "envoy-b", fresh())
        .await
        .unwrap();
    for n in [&a, &b] {
        assert!(
            n.wait_until(T, |s| s.accepted.iter().all(|v| v == "1"))
                .await
        );
    }
    b.pause();
    let err = cp.hold("orders").await.unwrap_err();
    let XdsError::AckTimeout {
        version, behind, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*version, behind.as_slice()),
        (2, ["envoy-b".to_string()].as_slice())
    );
    assert!(err.into_primitive("hold").retryable);
    let views = cp.nodes();
    assert!(views[0].current && !views[1].current, "{views:?}");

    // b catches up; the retried (idempotent) hold reports both nodes ACKed.
    b.resume().await;
    let r = cp.hold("orders").await.unwrap();
    assert_eq!((r.version, r.changed), (2, false));
    assert!(
        r.nodes.iter().all(|n| n.outcome == NodeOutcome::Acked),
        "{r:?}"
    );

    // A node that goes away is reported, not waited for.
    b.disconnect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = cp
        .switch("orders", Addr::new("10.0.0.2", 5432))
        .await
        .unwrap();
    let outcomes: Vec<_> = r.nodes.iter().map(|n| n.outcome.clone()).collect();
    assert_eq!(outcomes, [NodeOutcome::Acked, NodeOutcome::Disconnected]);
    cp.shutdown().await;
}

#[tokio::test]
async fn stale_nonces_are_ignored() {
    let cp = ControlPlane::start(config()).await.unwrap();
    // A DNS route: clusters only, so this CDS-only client is complete without EDS.
    let mut dns = spec();
    dns.endpoints[0].addr.host = "db.example.internal".into();
    cp.publish("orders", dns.clone()).await.unwrap();
    let mut client =
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.local_addr()))
            .await
            .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let cds = ResourceType::Cluster.type_url();
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: "raw".into(),
            ..Default::default()
        }),
        type_url: cds.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut inbound = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = inbound.message().await.unwrap().unwrap();
    assert_eq!(first.version_info, "1");
    // A CDS change while the first response is unanswered: a second response, new nonce.
    let mut s = dns;
    s.connect_timeout_ms = 2000;
    let cp = std::sync::Arc::new(cp);
    let publisher = {
        let cp = cp.clone();
        tokio::spawn(async move { cp.publish("orders", s).await })
    };
    let second = inbound.message().await.unwrap().unwrap();
    assert_eq!(second.version_info, "2");
    assert_ne!(first.nonce, second.nonce);
    // An ACK of the first (stale) nonce does not count as applying version 2.
    let ack = |resp: &envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse| {
        DiscoveryRequest {
            version_info: resp.version_info.clone(),
            type_url: cds.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        }
    };
    tx.send(ack(&first)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(cp.nodes()[0].acked.is_empty(), "{:?}", cp.nodes());
    assert!(!publisher.is_finished());
    tx.send(ack(&second)).await.unwrap();
    let report = publisher.await.unwrap().unwrap();
    assert_eq!(report.nodes[0].outcome, NodeOutcome::Acked);
    assert_eq!(cp.nodes()[0].acked["Cluster"], 2);
    cp.shutdown().await;
}

#[tokio::test]
async fn a_restarted_control_plane_serves_the_same_versions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        state_path: Some(dir.path().join("xds.json")),
        ..config()
    };
    let cp = ControlPlane::start(cfg.clone()).await.unwrap();
    cp.publish("orders", spec()).await.unwrap();
    cp.hold("orders").await.unwrap();
    let node = SimNode::connect(cp.local_addr(), "envoy-1", fresh())
        .await
        .unwrap();
    assert!(
        node.wait_until(T, |s| s.accepted[ResourceType::Endpoints as usize] == "2")
            .await
    );
    cp.shutdown().await;
    drop(cp);

    let cp = ControlPlane::start(cfg).await.unwrap();
    assert_eq!(cp.version(), 2);
    assert_eq!(cp.describe("orders").unwrap().history.len(), 2);
    // The node reconnects reporting what it runs; it is served the same versions, not 0 or 1.
    let node = SimNode::connect(cp.local_addr(), "envoy-1", node.state().accepted)
        .await
        .unwrap();
    assert!(node.wait_until(T, |s| s.responses.len() >= 3).await);
    for r in node.state().responses {
        assert!(
            r.version_info == "1" || r.version_info == "2",
            "{}",
            r.version_info
        );
    }
    let r = cp
        .switch("orders", Addr::new("10.0.0.2", 5432))
        .await
        .unwrap();
    assert_eq!(r.version, 3);
    assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked);
    cp.shutdown().await;
}
