//! The harness's certificate authority: a CA of its own (the `ca_bundle` the aws world trusts,
//! standing in for the RDS global bundle) and one server certificate per endpoint, naming the
//! endpoint's address as an IP SAN so `verify-full` checks godwit reached the endpoint it
//! asked RDS for. Made with the `openssl` command (EC P-256: fast to generate; one day valid).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug)]
pub struct Ca {
    dir: PathBuf,
    /// PEM of the CA certificate: the `ca_bundle`.
    pub bundle: PathBuf,
    key: PathBuf,
}

fn openssl(args: &[&str], what: &str) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| format!("openssl ({what}): {e}; install it (apt-get install openssl)"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl ({what}) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("the harness's paths are UTF-8")
}

impl Ca {
    /// A new CA in `dir`.
    pub fn new(dir: &Path) -> Result<Ca, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (key, bundle) = (dir.join("ca.key"), dir.join("ca.pem"));
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=godwit harness RDS CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
                "-keyout",
                s(&key),
                "-out",
                s(&bundle),
            ],
            "CA",
        )?;
        Ok(Ca {
            dir: dir.to_path_buf(),
            bundle,
            key,
        })
    }

    /// A server certificate for `ip`, signed by the CA, as a rustls server configuration.
    pub fn server_config(&self, ip: Ipv4Addr) -> Result<Arc<rustls::ServerConfig>, String> {
        let name = ip.to_string();
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let cert = self.dir.join(format!("{name}.pem"));
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
            ),
        )
        .map_err(|e| format!("{}: {e}", ext.display()))?;
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                s(&key),
                "-out",
                s(&csr),
            ],
            "server key",
        )?;
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                s(&csr),
                "-CA",
                s(&self.bundle),
                "-CAkey",
                s(&self.key),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                s(&ext),
                "-out",
                s(&cert),
            ],
            "server certificate",
        )?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        let key =
            PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{}: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("server certificate for {ip}: {e}"))?;
        Ok(Arc::new(config))
    }
}
