//! mTLS on the xDS port: a node with a certificate from the configured CA is served; a node
//! without one is refused. Certificates come from the `openssl` CLI (loopback only).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryRequest, aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use godwit_xds::resources::ResourceType;
use godwit_xds::tls::TlsFiles;
use godwit_xds::{Addr, Config, ControlPlane, RouteSpec};
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

/// CA, server cert for localhost/127.0.0.1, client cert.
fn certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=godwit-test-ca",
            ],
        ]
        .concat(),
    );
    for (name, ext) in [
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
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
                "ca.pem",
                "-CAkey",
                "ca.key",
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
    let mut config = Config::new("127.0.0.1:0".parse().unwrap());
    config.tls = Some(TlsFiles {
        cert: p("server.pem"),
        key: p("server.key"),
        client_ca: p("ca.pem"),
    });
    let cp = ControlPlane::start(config).await.unwrap();
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
