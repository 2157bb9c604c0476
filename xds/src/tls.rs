//! mTLS on the xDS port: the server presents `cert`/`key` and requires a client certificate
//! signed by `client_ca` (every Envoy node), so nothing else can read or steer routes.

use std::path::PathBuf;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::error::XdsError;

/// PEM files for the xDS server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that signs the Envoy nodes' client certificates.
    pub client_ca: PathBuf,
}

impl TlsFiles {
    pub(crate) fn server_config(&self) -> Result<ServerTlsConfig, XdsError> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| XdsError::Server(format!("TLS file {}: {e}", p.display())))
        };
        let identity = Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        Ok(ServerTlsConfig::new()
            .identity(identity)
            .client_ca_root(Certificate::from_pem(read(&self.client_ca)?)))
    }
}
