//! [`IamConnector`]: how the aws world reaches PostgreSQL — the endpoint from RDS, an IAM auth
//! token for the configured database user signed with the AWS credentials, TLS verified
//! against the RDS CA bundle. No database password exists anywhere.
//!
//! A token is a presigned `rds-db:connect` URL valid for 15 minutes; it is generated at every
//! (re)connect ([`Connector::target`] is called each time) and lives only in the
//! `tokio_postgres::Config` handed to the connection (whose `Debug`, like [`Target`]'s,
//! redacts the password). It is never returned by a primitive, so it never reaches a
//! transcript, a journal or a report; `tests/tests/moto.rs` greps a run's files for it.

use std::sync::Arc;

use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config as TokenConfig};
use godwit_engine::{ErrorKind, PrimitiveError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::{Aws, TlsMode};
use crate::pg::live::{BoxFuture, Connector, Target};

const A: &str = "pg";

/// Reaches `db` (an RDS instance id, or an Aurora cluster id = its writer endpoint) as
/// `db_user` with an IAM token over verified TLS.
pub struct IamConnector {
    aws: Arc<Aws>,
    tls: Result<Arc<rustls::ClientConfig>, String>,
}

impl std::fmt::Debug for IamConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamConnector")
            .field("db_user", &self.aws.settings.db_user)
            .finish_non_exhaustive()
    }
}

fn failed(message: String, hint: &str) -> PrimitiveError {
    PrimitiveError::new(A, "connect", ErrorKind::Invalid, message, hint).with_retryable(false)
}

impl IamConnector {
    /// The TLS configuration is built here (a bad bundle is reported at the first connect,
    /// with the key to fix, so a world without database access still builds).
    pub fn new(aws: Arc<Aws>) -> IamConnector {
        let tls = tls_config(&aws);
        IamConnector { aws, tls }
    }

    /// An IAM auth token for `user` at `host:port`, from the world's credentials and region.
    pub async fn token(&self, host: &str, port: u16, user: &str) -> Result<String, PrimitiveError> {
        let config = TokenConfig::builder()
            .hostname(host)
            .port(u64::from(port))
            .username(user)
            .build()
            .map_err(|e| failed(format!("cannot build an IAM auth token request: {e}"), ""))?;
        AuthTokenGenerator::new(config)
            .auth_token(&self.aws.sdk)
            .await
            .map(|t| t.as_str().to_string())
            .map_err(|e| {
                failed(
                    format!("cannot sign an IAM auth token for {user}@{host}: {e}"),
                    "the AWS credentials are missing or expired (profile, AWS_* variables, \
                     instance role)",
                )
            })
    }

    /// Host and port of `db`: an instance's endpoint, else a cluster's writer endpoint.
    /// `db`'s endpoint and port as RDS describes them, and whether it is Aurora (a cluster or
    /// a cluster's instance).
    async fn endpoint(&self, db: &str) -> Result<(String, u16, bool), PrimitiveError> {
        let rds = &self.aws.rds;
        let api = |e: String| {
            PrimitiveError::new(
                A,
                "connect",
                ErrorKind::Internal,
                format!("cannot look up the endpoint of {db}: {e}"),
                "check the credentials and the region; the step is retried",
            )
            .with_retryable(true)
        };
        match rds
            .describe_db_instances()
            .db_instance_identifier(db)
            .send()
            .await
        {
            Ok(o) => {
                if let Some(ep) = o.db_instances().first().and_then(|i| i.endpoint())
                    && let Some(host) = ep.address()
                {
                    let aurora = o.db_instances()[0].db_cluster_identifier().is_some();
                    return Ok((host.to_string(), ep.port().unwrap_or(5432) as u16, aurora));
                }
            }
            Err(e)
                if aws_sdk_rds::error::ProvideErrorMetadata::code(&e)
                    .is_some_and(|c| c.starts_with("DBInstanceNotFound")) => {}
            Err(e) => return Err(api(super::error_chain(&e))),
        }
        match rds
            .describe_db_clusters()
            .db_cluster_identifier(db)
            .send()
            .await
        {
            Ok(o) => {
                if let Some(c) = o.db_clusters().first()
                    && let Some(host) = c.endpoint()
                {
                    return Ok((host.to_string(), c.port().unwrap_or(5432) as u16, true));
                }
                Err(failed(
                    format!("{db} has no endpoint yet"),
                    "wait until it is available (rds::wait_until_*_available)",
                ))
            }
            Err(e)
                if aws_sdk_rds::error::ProvideErrorMetadata::code(&e)
                    .is_some_and(|c| c.starts_with("DBClusterNotFound")) =>
            {
                Err(PrimitiveError::new(
                    A,
                    "connect",
                    ErrorKind::NotFound,
                    format!(
                        "{db} is neither a DB instance nor a DB cluster in {}",
                        self.aws.region()
                    ),
                    "check the identifier and the region",
                ))
            }
            Err(e) => Err(api(super::error_chain(&e))),
        }
    }
}

impl IamConnector {
    /// The master user's sign-in to cluster `db` when RDS manages its password
    /// (`ManageMasterUserPassword`, as `rds::create_cluster` asks): the secret the cluster names
    /// (`MasterUserSecret`, API_MasterUserSecret) read with `GetSecretValue`, its JSON's
    /// `username` and `password` put in a target like godwit's own (writer endpoint, `db_name`,
    /// verified TLS). `None` for an instance, or a cluster whose password RDS does not keep.
    async fn master(&self, db: &str) -> Result<Option<Target>, PrimitiveError> {
        const OP: &str = "connect";
        let fail = |kind: ErrorKind, message: String, hint: &str| {
            PrimitiveError::new(A, OP, kind, message, hint)
        };
        let cluster = match self
            .aws
            .rds
            .describe_db_clusters()
            .db_cluster_identifier(db)
            .send()
            .await
        {
            Ok(o) => o.db_clusters().first().cloned(),
            Err(e)
                if aws_sdk_rds::error::ProvideErrorMetadata::code(&e)
                    .is_some_and(|c| c.starts_with("DBClusterNotFound")) =>
            {
                None
            }
            Err(e) => {
                return Err(fail(
                    ErrorKind::Internal,
                    format!("cannot describe {db}: {}", super::error_chain(&e)),
                    "check the credentials and the region; the step is retried",
                )
                .with_retryable(true));
            }
        };
        let Some(cluster) = cluster else {
            return Ok(None);
        };
        let Some(secret) = cluster.master_user_secret() else {
            return Ok(None);
        };
        let arn = secret.secret_arn().unwrap_or_default().to_string();
        if let Some(status) = secret.secret_status().filter(|s| *s != "active") {
            // `creating` while RDS makes it, `rotating` while it changes the password.
            return Err(fail(
                ErrorKind::Timeout,
                format!("the master user's secret of {db} is {status}, not active yet"),
                "wait a moment: RDS finishes it within minutes; the step is retried",
            )
            .with_retryable(true));
        }
        let value = self
            .aws
            .secrets
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .map_err(|e| {
                let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or_default()
                    .to_string();
                if code == "AccessDeniedException" {
                    fail(
                        ErrorKind::Invalid,
                        format!(
                            "godwit may not read the master user's secret {arn} of {db}: {}",
                            super::error_chain(&e)
                        ),
                        "allow godwit's AWS role secretsmanager:GetSecretValue on the secrets RDS \
                         creates (rds!cluster-*) and kms:Decrypt on their key (docs/aws.md), \
                         then run again",
                    )
                    .with_retryable(false)
                } else {
                    fail(
                        ErrorKind::Internal,
                        format!(
                            "cannot read the master user's secret {arn} of {db}: {}",
                            super::error_chain(&e)
                        ),
                        "check the credentials and the region; the step is retried",
                    )
                    .with_retryable(true)
                }
            })?;
        #[derive(serde::Deserialize)]
        struct Credentials {
            username: String,
            password: String,
        }
        let creds: Credentials = value
            .secret_string()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| {
                // Never the secret's text: it holds the password.
                fail(
                    ErrorKind::Invalid,
                    format!(
                        "the master user's secret {arn} of {db} is not RDS's JSON with a \
                         username and a password"
                    ),
                    "the secret was changed by hand: restore RDS's form, or create godwit's \
                     login on the cluster yourself (docs/aws.md)",
                )
                .with_retryable(false)
            })?;
        let tls = self
            .tls
            .clone()
            .map_err(|e| failed(e, "set ca_bundle in the [aws] table of --config"))?;
        let host = cluster.endpoint().ok_or_else(|| {
            fail(
                ErrorKind::Timeout,
                format!("{db} has no endpoint yet"),
                "wait until it is available (rds::wait_until_*_available)",
            )
            .with_retryable(true)
        })?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(cluster.port().unwrap_or(5432) as u16)
            .user(&creds.username)
            .dbname(self.aws.settings.db_name.as_deref().unwrap_or("postgres"))
            .password(creds.password)
            .application_name("godwit")
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        Ok(Some(Target {
            config,
            tls: Some(tls),
            aurora: true,
            bind: None,
        }))
    }
}

impl Connector for IamConnector {
    fn master_target<'a>(
        &'a self,
        db: &'a str,
    ) -> BoxFuture<'a, Option<Result<Target, PrimitiveError>>> {
        Box::pin(async move { self.master(db).await.transpose() })
    }

    fn access(&self, _db: &str) -> crate::pg::Access {
        let s = &self.aws.settings;
        match &s.db_user {
            Some(user) => crate::pg::Access {
                available: true,
                how: format!(
                    "IAM user {user} over TLS ({})",
                    match s.tls.unwrap_or_default() {
                        TlsMode::VerifyFull => "verify-full",
                        TlsMode::VerifyCa => "verify-ca",
                    }
                ),
                security_group: s.security_group.clone(),
            },
            None => crate::pg::Access {
                available: false,
                how: "no db_user in the [aws] table: IAM database access is not configured \
                      (credential-less; docs/aws.md)"
                    .into(),
                security_group: None,
            },
        }
    }

    fn target<'a>(&'a self, db: &'a str) -> BoxFuture<'a, Result<Target, PrimitiveError>> {
        Box::pin(async move {
            let user = self.aws.settings.db_user.clone().ok_or_else(|| {
                failed(
                    "no database user for IAM authentication".into(),
                    "set db_user in the [aws] table of --config (a role granted rds_iam)",
                )
            })?;
            let tls = self
                .tls
                .clone()
                .map_err(|e| failed(e, "set ca_bundle in the [aws] table of --config"))?;
            let (host, port, aurora) = self.endpoint(db).await?;
            let token = self.token(&host, port, &user).await?;
            let mut config = tokio_postgres::Config::new();
            config
                .host(&host)
                .port(port)
                .user(&user)
                .dbname(self.aws.settings.db_name.as_deref().unwrap_or("postgres"))
                .password(token)
                .application_name("godwit")
                // The token must never travel in the clear: TLS or no connection.
                .ssl_mode(tokio_postgres::config::SslMode::Require);
            Ok(Target {
                config,
                tls: Some(tls),
                aurora,
                bind: None,
            })
        })
    }
}

/// rustls with the RDS CA bundle as the only roots; `verify-ca` skips the host-name check.
fn tls_config(aws: &Aws) -> Result<Arc<rustls::ClientConfig>, String> {
    let path = aws.settings.ca_bundle.as_ref().ok_or_else(|| {
        "no ca_bundle: IAM tokens are only sent over TLS verified against the RDS CA bundle \
         (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"
            .to_string()
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("ca_bundle {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("ca_bundle {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("ca_bundle {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("ca_bundle {} holds no certificate", path.display()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match aws.settings.tls.unwrap_or_default() {
        TlsMode::VerifyFull => builder.with_root_certificates(roots).with_no_client_auth(),
        TlsMode::VerifyCa => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| e.to_string())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// `verify-ca`: the chain must verify against the bundle; a name mismatch alone is accepted
/// (a connection through an address the certificate does not name, e.g. a tunnel).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
