//! Time from publish to all-nodes-ACKed, for 1 and for 50 nodes (simulated Envoy gRPC clients
//! on loopback, `client::SimNode`). Each iteration is one EDS switch, the cutover's unit of
//! change. Run: `cargo bench -p godwit-xds --bench publish`.

use std::time::{Duration, Instant};

use godwit_xds::client::SimNode;
use godwit_xds::{Addr, Config, ControlPlane, NodeOutcome, RouteSpec};

const ITERATIONS: usize = 200;

async fn run(nodes: usize) -> Vec<Duration> {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap());
    config.ack_timeout = Duration::from_secs(30);
    let cp = ControlPlane::start(config).await.unwrap();
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
        let r = cp.switch("orders", to.clone()).await.unwrap();
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
    for nodes in [1, 50] {
        let t = rt.block_on(run(nodes));
        let pct = |p: f64| t[((t.len() - 1) as f64 * p) as usize];
        println!(
            "  {nodes:>3} node(s): p50 {:>8.3} ms  p95 {:>8.3} ms  max {:>8.3} ms",
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.95).as_secs_f64() * 1e3,
            t[t.len() - 1].as_secs_f64() * 1e3
        );
    }
}
