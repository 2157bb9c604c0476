//! The management API through [`RemotePlane`], against a control plane with simulated Envoy
//! nodes (`client::SimNode`): every operation, and every error arriving as the same `XdsError`
//! (so the same primitive kind and retryability) as in-process.

use std::time::Duration;

use godwit_engine::ErrorKind;
use godwit_xds::api::ErrorBody;
use godwit_xds::client::SimNode;
use godwit_xds::resources::ResourceType;
use godwit_xds::{
    Addr, Config, ControlPlane, NodeOutcome, Plane, RemotePlane, RouteSpec, XdsError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

fn config() -> Config {
    let mut c = Config::new("127.0.0.1:0".parse().unwrap());
    c.ack_timeout = Duration::from_secs(5);
    c.api = Some("127.0.0.1:0".parse().unwrap());
    c
}

fn spec() -> RouteSpec {
    RouteSpec::new(Addr::new("127.0.0.1", 15432), Addr::new("10.0.0.1", 5432))
}

/// A control plane serving `orders` at version 1, one node current on it, and a client.
async fn setup(config: Config) -> (ControlPlane, SimNode, RemotePlane) {
    let cp = ControlPlane::start(config).await.unwrap();
    let remote = RemotePlane::new(cp.api_addr().expect("API bound"));
    let r = remote.publish("orders", spec()).await.unwrap();
    assert_eq!((r.version, r.changed), (1, true));
    let node = SimNode::connect(cp.local_addr(), "envoy-1", Default::default())
        .await
        .unwrap();
    assert!(
        node.wait_until(T, |s| s.accepted.iter().all(|v| v == "1"))
            .await
    );
    assert!(server_sees_current(&cp, 1).await, "{:?}", cp.nodes());
    (cp, node, remote)
}

async fn server_sees_current(cp: &ControlPlane, n: usize) -> bool {
    for _ in 0..500 {
        if cp.nodes().iter().filter(|v| v.current).count() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// One raw HTTP/1.1 exchange: (status, body).
async fn raw(addr: std::net::SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

#[tokio::test]
async fn every_operation_round_trips_and_matches_the_in_process_answers() {
    let (cp, node, remote) = setup(config()).await;
    assert_eq!(remote.routes().await.unwrap(), ["orders"]);
    assert_eq!(remote.version().await.unwrap(), 1);
    assert_eq!(
        remote.describe("orders").await.unwrap(),
        cp.describe("orders").unwrap()
    );

    // Idempotent re-publish: no new version, the node reported.
    let r = remote.publish("orders", spec()).await.unwrap();
    assert_eq!((r.version, r.changed), (1, false));
    assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked);

    let r = remote.hold("orders").await.unwrap();
    assert_eq!((r.version, r.changed), (2, true));
    assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked);
    // The answer came after the ACK: the node already runs the held list.
    assert_eq!(node.accepted(ResourceType::Endpoints), "2");

    let target = Addr::new("10.0.0.2", 5432);
    let r = remote.switch("orders", target.clone()).await.unwrap();
    assert_eq!(
        (r.version, r.nodes[0].outcome.clone()),
        (3, NodeOutcome::Acked)
    );
    assert_eq!(node.accepted(ResourceType::Endpoints), "3");
    let r = remote.cleanup("orders").await.unwrap();
    assert_eq!(r.version, 4);
    let view = remote.describe("orders").await.unwrap();
    assert_eq!(view, cp.describe("orders").unwrap());
    assert_eq!(view.spec.endpoints.len(), 1);
    assert_eq!(view.spec.endpoints[0].addr, target);
    let ops: Vec<&str> = view.history.iter().map(|h| h.1.as_str()).collect();
    assert_eq!(ops, ["publish", "hold", "switch", "cleanup"]);

    let r = remote.rollback_to("orders", 1).await.unwrap();
    assert_eq!(r.version, 5);
    assert_eq!(remote.describe("orders").await.unwrap().spec, spec());
    assert_eq!(remote.version().await.unwrap(), 5);
    assert_eq!(cp.version(), 5);

    assert_eq!(remote.nodes().await.unwrap(), cp.nodes());
    let status = remote.status().await.unwrap();
    assert_eq!(status, cp.status().await);
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].node.node, "envoy-1");

    // The same operations through `Plane`, local and remote, agree.
    let local = Plane::from(std::sync::Arc::new(cp));
    let remote = Plane::from(remote);
    for p in [&local, &remote] {
        assert_eq!(p.version().await.unwrap(), 5);
        assert_eq!(p.routes().await.unwrap(), ["orders"]);
    }
    let r = remote.hold("orders").await.unwrap();
    assert_eq!(r.version, 6);
    assert_eq!(local.describe("orders").await.unwrap().version, 6);
    let Plane::Local(cp) = local else {
        unreachable!()
    };
    cp.shutdown().await;
}

#[tokio::test]
async fn not_found_errors_are_the_same_as_in_process() {
    let (cp, _node, remote) = setup(config()).await;
    for (remote_err, local_err) in [
        (
            remote.hold("nope").await.unwrap_err(),
            cp.hold("nope").await.unwrap_err(),
        ),
        (
            remote.describe("nope").await.unwrap_err(),
            cp.describe("nope").unwrap_err(),
        ),
        (
            remote.rollback_to("orders", 0).await.unwrap_err(),
            cp.rollback_to("orders", 0).await.unwrap_err(),
        ),
        (
            remote.cleanup("nope").await.unwrap_err(),
            cp.cleanup("nope").await.unwrap_err(),
        ),
    ] {
        assert_eq!(remote_err, local_err);
        let p = remote_err.into_primitive("op");
        assert_eq!((p.kind, p.retryable), (ErrorKind::NotFound, false));
    }
    // A name the path cannot carry as-is still reaches the server and fails as in-process.
    assert_eq!(
        remote.describe("a/b c").await.unwrap_err(),
        XdsError::NotFound("a/b c".into())
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn a_nack_arrives_as_the_same_conflict_and_the_previous_config_is_served() {
    let (cp, node, remote) = setup(config()).await;
    node.nack_next(
        ResourceType::Endpoints,
        "Proto constraint validation failed",
    );
    let err = remote
        .switch("orders", Addr::new("10.0.0.2", 5432))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        XdsError::Nacked {
            node: "envoy-1".into(),
            version: 2,
            type_name: "ClusterLoadAssignment".into(),
            detail: "Proto constraint validation failed".into(),
            rolled_back_to: 3,
        }
    );
    assert_eq!(node.accepted(ResourceType::Endpoints), "3");
    assert_eq!(remote.describe("orders").await.unwrap().spec, spec());

    // The same NACK in-process converts to the same primitive error.
    node.nack_next(
        ResourceType::Endpoints,
        "Proto constraint validation failed",
    );
    let local = cp
        .switch("orders", Addr::new("10.0.0.2", 5432))
        .await
        .unwrap_err();
    let (r, l) = (err.into_primitive("switch"), local.into_primitive("switch"));
    assert_eq!((r.kind, r.retryable), (ErrorKind::Conflict, false));
    assert_eq!(
        (r.kind, r.retryable, &r.hint),
        (l.kind, l.retryable, &l.hint)
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn an_ack_timeout_stays_a_retryable_timeout() {
    let mut c = config();
    c.ack_timeout = Duration::from_millis(300);
    let (cp, a, remote) = setup(c).await;
    let b = SimNode::connect(cp.local_addr(), "envoy-b", Default::default())
        .await
        .unwrap();
    assert!(server_sees_current(&cp, 2).await, "{:?}", cp.nodes());
    b.pause();
    let err = remote.hold("orders").await.unwrap_err();
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
    let p = err.into_primitive("hold");
    assert_eq!((p.kind, p.retryable), (ErrorKind::Timeout, true));

    // The retry, once b caught up, succeeds without a new version.
    b.resume().await;
    let r = remote.hold("orders").await.unwrap();
    assert_eq!((r.version, r.changed), (2, false));
    assert!(
        r.nodes.iter().all(|n| n.outcome == NodeOutcome::Acked),
        "{r:?}"
    );
    drop(a);
    cp.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_a_400_naming_what_is_wrong() {
    let (cp, _node, remote) = setup(config()).await;
    let api = cp.api_addr().unwrap();

    // Semantic validation, through the typed client.
    let mut empty = spec();
    empty.endpoints.clear();
    let err = remote.publish("orders", empty).await.unwrap_err();
    let XdsError::Invalid { route, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(route, "orders");
    assert!(message.contains("endpoint list is empty"), "{message}");
    let mut zero = spec();
    zero.connect_timeout_ms = 0;
    let err = remote.publish("orders", zero).await.unwrap_err();
    assert!(err.to_string().contains("connect_timeout_ms"), "{err}");
    let err = remote.publish("orders.x", spec()).await.unwrap_err();
    assert!(
        matches!(&err, XdsError::Invalid { route, .. } if route == "orders.x"),
        "{err:?}"
    );
    assert_eq!(
        err.into_primitive("publish").kind,
        ErrorKind::Invalid,
        "the same kind as in-process"
    );

    // A body that does not deserialise: 400, the field named, the same error kind.
    let mut bad = serde_json::to_value(spec()).unwrap();
    bad["endpoints"][0]["health"] = "sick".into();
    let (status, body) = raw(
        api,
        &format!("PUT /v1/routes/orders HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json"),
        &bad.to_string(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let e: ErrorBody = serde_json::from_str(&body).unwrap();
    assert_eq!((e.kind.as_str(), e.retryable), ("invalid", false));
    assert!(e.message.contains("`endpoints[0].health`"), "{}", e.message);
    assert!(e.message.contains("sick"), "{}", e.message);
    assert!(!e.hint.is_empty());
    let (status, body) = raw(
        api,
        &format!("POST /v1/routes/orders/switch HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json"),
        r#"{"host":"10.0.0.2","port":"5432"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("`port`"), "{body}");

    // A mutation without a JSON content type (what a cross-origin form can send) changes nothing.
    let (status, body) = raw(
        api,
        &format!("POST /v1/routes/orders/hold HTTP/1.1\r\nHost: {api}\r\nContent-Type: text/plain"),
        "",
    )
    .await;
    assert_eq!(status, 415, "{body}");
    let refusal: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refusal["kind"], "refused", "{body}");
    assert!(
        refusal["hint"]
            .as_str()
            .unwrap()
            .contains("Content-Type: application/json")
            && !body.contains("certificates"),
        "the hint is about the request, not the server's TLS: {body}"
    );
    // A request addressed to another host name (DNS rebinding) is refused, even a read.
    let (status, body) = raw(
        api,
        "GET /v1/routes HTTP/1.1\r\nHost: evil.example:18001",
        "",
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body.contains("127.0.0.1:PORT") && !body.contains("certificates"),
        "{body}"
    );
    let (status, body) = raw(api, &format!("GET /v1/nope HTTP/1.1\r\nHost: {api}"), "").await;
    assert_eq!(status, 404);
    assert!(body.contains("GET /v1/nope"), "{body}");
    assert!(!body.contains("certificates"), "{body}");

    assert_eq!(cp.version(), 1, "no refused request published anything");
    assert_eq!(cp.describe("orders").unwrap().history.len(), 1);
    cp.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_control_plane_says_how_to_start_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // The listener is dropped: connections to `port` are refused.
    let remote = RemotePlane::new(port);
    let err = remote.routes().await.unwrap_err();
    let XdsError::Unreachable { addr, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(addr, &port.to_string());
    let text = err.to_string();
    assert!(
        text.contains(&format!("at {port} is not reachable")),
        "{text}"
    );
    assert!(
        text.contains(&format!("godwit dal serve --api {port}")),
        "{text}"
    );
    let p = err.into_primitive("hold");
    assert!(p.retryable, "a restarted control plane answers the retry");

    // A control plane that shut down stops answering the same way.
    let (cp, _node, remote) = setup(config()).await;
    cp.shutdown().await;
    let err = remote.hold("orders").await.unwrap_err();
    assert!(matches!(err, XdsError::Unreachable { .. }), "{err:?}");

    // The API is refused on a non-loopback address instead of being left open.
    let mut open = config();
    open.api = Some("0.0.0.0:0".parse().unwrap());
    let err = ControlPlane::start(open).await.unwrap_err();
    assert!(
        err.to_string().contains("only listens on loopback"),
        "{err}"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_does_not_cancel_the_nack_rollback() {
    let (cp, node, remote) = setup(config()).await;
    // The node will NACK the switch, but only once the client is gone.
    node.pause();
    node.nack_next(ResourceType::Endpoints, "rejected late");
    let client = {
        let remote = remote.clone();
        tokio::spawn(async move { remote.switch("orders", Addr::new("10.0.0.2", 5432)).await })
    };
    // The switch is served (version 2) and waited on.
    for _ in 0..500 {
        if cp.version() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cp.version(), 2);
    client.abort(); // the `godwit run` process dies: its connection closes
    let _ = client.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.resume().await;
    // The server still saw the NACK and republished the previous config.
    assert!(
        node.wait_until(T, |s| s.accepted[ResourceType::Endpoints as usize] == "3")
            .await,
        "{:?}",
        node.state().accepted
    );
    let view = cp.describe("orders").unwrap();
    assert_eq!(view.spec, spec());
    assert_eq!(view.history.last().unwrap().1, "revert after NACK");
    cp.shutdown().await;
}
