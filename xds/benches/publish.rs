//! Time from publish to all-nodes-ACKed, for 1 and for 50 nodes (simulated Envoy gRPC clients
//! on loopback, `client::SimNode`). Each iteration is one EDS switch, the cutover's unit of
//! change, made in-process (`ControlPlane`) or from a client through the management API
//! (`RemotePlane`, JSON over loopback HTTP/1.1, one connection per call).
//! Run: `cargo bench -p godwit-xds --bench publish`.

use std::time::{Duration, Instant};

use godwit_xds::client::SimNode;
use godwit_xds::{Addr, Config, ControlPlane, NodeOutcome, Plane, RemotePlane, RouteSpec};

const ITERATIONS: usize = 200;

async fn run(nodes: usize, remote: bool) -> Vec<Duration> {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap());
    config.ack_timeout = Duration::from_secs(30);
    config.api = Some("127.0.0.1:0".parse().unwrap());
    let cp = std::sync::Arc::new(ControlPlane::start(config).await.unwrap());
    let plane = if remote {
        Plane::from(RemotePlane::new(cp.api_addr().unwrap()))
    } else {
        Plane::from(cp.clone())
    };
    let source = Addr::new("10.0.0.1", 5432);
    let target = Addr::new("10.0.0.2", 5432);
    cp.publish(
        "orders",
        RouteSpec::new(Addr::new("127.0.0.1", 15432), source.clone()),
    )
    .await
    .unwrap();
    let mut sims = Vec::new();
    for i in 0..nodes {
        sims.push(
            SimNode::connect(cp.local_addr(), &format!("node-{i}"), Default::default())
                .await
                .unwrap(),
        );
    }
    while cp.nodes().iter().filter(|n| n.current).count() < nodes {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut times = Vec::with_capacity(ITERATIONS);
    for i in 0..ITERATIONS {
        let to = if i % 2 == 0 { &target } else { &source };
        let t = Instant::now();
        let r = plane.switch("orders", to.clone()).await.unwrap();
        times.push(t.elapsed());
        assert!(r.changed && r.nodes.len() == nodes);
        assert!(r.nodes.iter().all(|n| n.outcome == NodeOutcome::Acked));
    }
    cp.shutdown().await;
    times.sort();
    times
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("publish -> all nodes ACKed ({ITERATIONS} EDS switches each, loopback gRPC)");
    for (nodes, remote) in [(1, false), (1, true), (50, false), (50, true)] {
        let t = rt.block_on(run(nodes, remote));
        let pct = |p: f64| t[((t.len() - 1) as f64 * p) as usize];
        let via = if remote { "RemotePlane" } else { "in-process " };
        println!(
            "  {nodes:>3} node(s), {via}: p50 {:>8.3} ms  p95 {:>8.3} ms  max {:>8.3} ms",
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.95).as_secs_f64() * 1e3,
            t[t.len() - 1].as_secs_f64() * 1e3
        );
    }
}
