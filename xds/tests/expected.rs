//! Expected nodes per route (`Config::expected_nodes`, `godwit dal serve --expect-nodes`): a
//! publish waits for the connected nodes and, for a bounded time, for the expected ones that are
//! absent; its report, `describe` and the management API name the absent, behind and unexpected
//! nodes, and `all_acked` means every expected node ACKed. Simulated nodes (`client::SimNode`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use godwit_xds::client::SimNode;
use godwit_xds::{
    Addr, Config, ControlPlane, NodeOutcome, RemotePlane, RouteSpec, RouteView, XdsError,
};

const T: Duration = Duration::from_secs(5);

fn config(expected: &[&str]) -> Config {
    let mut c = Config::new("127.0.0.1:0".parse().unwrap());
    c.ack_timeout = Duration::from_secs(5);
    c.absent_timeout = Duration::from_millis(400);
    c.api = Some("127.0.0.1:0".parse().unwrap());
    c.expected_nodes = BTreeMap::from([(
        "orders".to_string(),
        expected.iter().map(|n| n.to_string()).collect(),
    )]);
    c
}

fn spec() -> RouteSpec {
    RouteSpec::new(Addr::new("127.0.0.1", 15432), Addr::new("10.0.0.1", 5432))
}

async fn node(cp: &ControlPlane, id: &str) -> SimNode {
    let n = SimNode::connect(cp.local_addr(), id, Default::default())
        .await
        .unwrap();
    let v = cp.version().to_string();
    assert!(
        n.wait_until(T, |s| s.accepted.iter().all(|a| *a == v))
            .await,
        "{id} current"
    );
    n
}

/// The server sees an ACK (or a disconnect) a moment after the client acted.
async fn eventually(cp: &ControlPlane, pred: impl Fn(&RouteView) -> bool) -> RouteView {
    for _ in 0..500 {
        let v = cp.describe("orders").unwrap();
        if pred(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{:?}", cp.describe("orders"))
}

fn outcome(nodes: &[godwit_xds::NodeReport], id: &str) -> NodeOutcome {
    nodes
        .iter()
        .find(|n| n.node == id)
        .unwrap_or_else(|| panic!("{id} in {nodes:?}"))
        .outcome
        .clone()
}

#[tokio::test]
async fn an_absent_expected_node_is_waited_for_a_bounded_time_then_reported() {
    let cp = ControlPlane::start(config(&["envoy-a", "envoy-b"]))
        .await
        .unwrap();
    let remote = RemotePlane::new(cp.api_addr().unwrap());
    cp.publish("orders", spec()).await.unwrap();
    let _a = node(&cp, "envoy-a").await;
    eventually(&cp, |v| outcome(&v.nodes, "envoy-a") == NodeOutcome::Acked).await;

    // envoy-b never connects: the hold is served and ACKed by envoy-a, then the publish returns
    // after absent_timeout (not ack_timeout), saying so.
    let started = Instant::now();
    let r = remote.hold("orders").await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!((r.version, r.changed, r.all_acked), (2, true, false));
    assert_eq!(r.absent, ["envoy-b"]);
    assert!(r.behind.is_empty() && r.unexpected.is_empty(), "{r:?}");
    assert_eq!(r.expected_nodes, ["envoy-a", "envoy-b"]);
    assert_eq!(outcome(&r.nodes, "envoy-a"), NodeOutcome::Acked);
    assert_eq!(outcome(&r.nodes, "envoy-b"), NodeOutcome::NeverConnected);
    assert!(r.nodes.iter().all(|n| n.expected), "{r:?}");

    // describe, in-process and through the API, says the same.
    let view = remote.describe("orders").await.unwrap();
    assert_eq!(view, cp.describe("orders").unwrap());
    assert_eq!(
        (view.absent.as_slice(), view.all_acked),
        (&["envoy-b".to_string()][..], false)
    );
    assert_eq!(outcome(&view.nodes, "envoy-b"), NodeOutcome::NeverConnected);

    // envoy-b comes up while the next publish waits for it: it is served, ACKs, and the
    // publish returns as soon as it did, with every expected node ACKed.
    let cp = Arc::new(cp);
    let switch = {
        let cp = cp.clone();
        tokio::spawn(async move { cp.switch("orders", Addr::new("10.0.0.2", 5432)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _b = SimNode::connect(cp.local_addr(), "envoy-b", Default::default())
        .await
        .unwrap();
    let r = switch.await.unwrap().unwrap();
    assert!(r.all_acked && r.absent.is_empty(), "{r:?}");
    assert!(
        r.nodes.iter().all(|n| n.outcome == NodeOutcome::Acked),
        "{r:?}"
    );
    assert!(cp.describe("orders").unwrap().all_acked);
    cp.shutdown().await;
}

#[tokio::test]
async fn a_disconnected_node_is_absent_and_an_unexpected_one_is_reported_and_waited_on() {
    let mut c = config(&["envoy-a", "envoy-b"]);
    c.ack_timeout = Duration::from_millis(600);
    c.absent_timeout = Duration::from_millis(200);
    let cp = ControlPlane::start(c).await.unwrap();
    cp.publish("orders", spec()).await.unwrap();
    let _a = node(&cp, "envoy-a").await;
    let b = node(&cp, "envoy-b").await;
    let x = node(&cp, "envoy-x").await;
    let v = eventually(&cp, |v| v.all_acked).await;
    assert_eq!(v.unexpected, ["envoy-x"]);
    assert!(
        !v.nodes
            .iter()
            .find(|n| n.node == "envoy-x")
            .unwrap()
            .expected
    );

    // b goes away after it ACKed: absent all the same (it would miss the next publish).
    b.disconnect();
    let v = eventually(&cp, |v| !v.absent.is_empty()).await;
    assert_eq!(
        (v.absent.as_slice(), v.all_acked),
        (&["envoy-b".to_string()][..], false)
    );
    assert_eq!(outcome(&v.nodes, "envoy-b"), NodeOutcome::Disconnected);

    // The unexpected x is connected, so it is waited on: paused, it fails the publish, which
    // names it behind and b absent.
    x.pause();
    let err = cp.hold("orders").await.unwrap_err();
    let XdsError::AckTimeout {
        version,
        behind,
        absent,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*version, behind.as_slice(), absent.as_slice()),
        (
            2,
            &["envoy-x".to_string()][..],
            &["envoy-b".to_string()][..]
        )
    );
    assert!(
        err.to_string()
            .contains("envoy-x; expected but absent: envoy-b"),
        "{err}"
    );
    let v = cp.describe("orders").unwrap();
    assert_eq!(v.behind, ["envoy-x"]);
    assert_eq!(outcome(&v.nodes, "envoy-x"), NodeOutcome::Behind);
    cp.shutdown().await;
}

#[tokio::test]
async fn the_expected_set_is_persisted_and_configuration_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("xds.json");
    let with = |expected: Option<&[&str]>| {
        let mut c = match expected {
            Some(e) => config(e),
            None => Config {
                expected_nodes: BTreeMap::new(),
                ..config(&[])
            },
        };
        c.state_path = Some(state.clone());
        c
    };
    let cp = ControlPlane::start(with(Some(&["envoy-b", "envoy-a", "envoy-a"])))
        .await
        .unwrap();
    cp.publish("orders", spec()).await.unwrap();
    assert_eq!(cp.expected_nodes("orders"), ["envoy-a", "envoy-b"]);
    cp.shutdown().await;
    drop(cp);

    // Restarted without the configuration: the set is kept.
    let cp = ControlPlane::start(with(None)).await.unwrap();
    assert_eq!(
        cp.describe("orders").unwrap().expected_nodes,
        ["envoy-a", "envoy-b"]
    );
    // The hosting process may change it (the lab does, once its Envoy is up); persisted.
    cp.set_expected_nodes("orders", &["envoy-c".into()])
        .unwrap();
    cp.shutdown().await;
    drop(cp);
    let cp = ControlPlane::start(with(None)).await.unwrap();
    assert_eq!(cp.expected_nodes("orders"), ["envoy-c"]);
    cp.shutdown().await;
    drop(cp);

    // An empty list in the configuration clears it: back to "every connected node".
    let cp = ControlPlane::start(with(Some(&[]))).await.unwrap();
    assert!(cp.expected_nodes("orders").is_empty());
    let r = cp.hold("orders").await.unwrap();
    assert!(
        r.absent.is_empty() && r.nodes.is_empty() && !r.all_acked,
        "{r:?}"
    );
    cp.shutdown().await;

    // A bad route name in the configuration is refused at start.
    let mut c = with(None);
    c.expected_nodes
        .insert("orders.db".into(), vec!["a".into()]);
    let e = ControlPlane::start(c).await.unwrap_err();
    assert!(matches!(e, XdsError::Invalid { .. }), "{e:?}");
}
