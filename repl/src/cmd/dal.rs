//! `godwit dal serve`: godwit's xDS control plane for the Envoy fleet as a long-lived service.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;
use godwit_engine::exit;

use crate::context::Context;
use crate::session::{Failure, invalid};

/// The Envoy data access layer: godwit's xDS control plane as a long-lived service.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit dal serve --listen 0.0.0.0:18000 --expect-nodes orders-db=envoy-a,envoy-b")]
pub struct DalArgs {
    #[command(subcommand)]
    pub command: DalCommand,
}

#[derive(Subcommand, Debug)]
pub enum DalCommand {
    /// Serve ADS (gRPC) to the Envoy fleet until Ctrl-C; routes and versions persist in the
    /// state file, so a restart serves the same versions (docs/envoy.md).
    #[command(after_help = "Examples:
  godwit dal serve
  godwit dal serve --listen 0.0.0.0:18000 --expect-nodes orders-db=envoy-a,envoy-b
  godwit dal serve --tls-cert xds.pem --tls-key xds.key --tls-client-ca fleet-ca.pem")]
    Serve {
        /// gRPC listen address for the Envoy nodes.
        #[arg(long, default_value = "127.0.0.1:18000")]
        listen: SocketAddr,
        /// Management API (JSON over HTTP) through which `godwit run` and other processes drive
        /// routes. Unauthenticated, so loopback only: a non-loopback address is refused.
        #[arg(long, default_value = godwit_xds::remote::DEFAULT_API_ADDR)]
        api: SocketAddr,
        /// Where routes, versions and history are kept [default: <state dir>/dal/state.json].
        #[arg(long)]
        state_file: Option<PathBuf>,
        /// How long a publish waits for every connected node to ACK.
        #[arg(long, default_value = "30s")]
        ack_timeout: String,
        /// The Envoy nodes a route must reach, `ROUTE=NODE,NODE` (repeatable): publishes report
        /// the absent and behind ones, and "all acked" means all of these. Persisted in the
        /// state file (a restart without the flag keeps them); `ROUTE=` clears a route's set.
        #[arg(long, value_name = "ROUTE=NODE,NODE")]
        expect_nodes: Vec<String>,
        /// How long a publish also waits for expected nodes that are absent to connect.
        #[arg(long, default_value = "10s")]
        absent_timeout: String,
        /// mTLS on the xDS port: server certificate, key and the CA of the nodes' certificates
        /// (all three, or none).
        #[arg(long, requires_all = ["tls_key", "tls_client_ca"])]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires_all = ["tls_cert", "tls_client_ca"])]
        tls_key: Option<PathBuf>,
        #[arg(long, requires_all = ["tls_cert", "tls_key"])]
        tls_client_ca: Option<PathBuf>,
    },
}

impl DalArgs {
    pub fn execute(self, ctx: &Context) -> Result<i32, Failure> {
        let DalCommand::Serve {
            listen,
            api,
            state_file,
            ack_timeout,
            expect_nodes,
            absent_timeout,
            tls_cert,
            tls_key,
            tls_client_ca,
        } = self.command;
        let mut config = godwit_xds::Config::new(listen);
        godwit_xds::api::check_listen(api).map_err(|e| invalid(format!("--api: {e}")))?;
        config.api = Some(api);
        config.state_path = Some(match state_file {
            Some(f) => f,
            None => ctx.state_dir()?.join("dal/state.json"),
        });
        config.ack_timeout = godwit_engine::duration::parse_duration(&ack_timeout)
            .map_err(|e| invalid(format!("--ack-timeout: {e}")))?;
        config.absent_timeout = godwit_engine::duration::parse_duration(&absent_timeout)
            .map_err(|e| invalid(format!("--absent-timeout: {e}")))?;
        for arg in &expect_nodes {
            let (route, nodes) = godwit_xds::fleet::parse_expected_nodes(arg)
                .map_err(|e| invalid(format!("--expect-nodes: {e}")))?;
            config.expected_nodes.insert(route, nodes);
        }
        if let (Some(cert), Some(key), Some(client_ca)) = (tls_cert, tls_key, tls_client_ca) {
            config.tls = Some(godwit_xds::tls::TlsFiles {
                cert,
                key,
                client_ca,
            });
        }
        if let Some(parent) = config.state_path.as_ref().and_then(|p| p.parent()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Failure(
                    exit::INTERNAL,
                    format!("cannot create {}: {e}", parent.display()),
                )
            })?;
        }
        // Not `session::runtime()`: the service has always run on tokio's default worker count.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Failure(
                    exit::INTERNAL,
                    format!("cannot start the async runtime: {e}"),
                )
            })?;
        rt.block_on(godwit_xds::serve(config))
            .map_err(|e| Failure(exit::INTERNAL, e.to_string()))?;
        Ok(exit::OK)
    }
}
