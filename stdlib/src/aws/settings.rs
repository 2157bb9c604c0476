//! [`AwsSettings`]: how the aws world reaches AWS and the databases, per cluster.
//!
//! Read from the `[aws]` table of a `godwit run --config` file, overridden key by key by
//! `[clusters.<id>.aws]` (see `docs/aws.md`). Parsing is strict: an unknown or mistyped key is
//! an error naming the key and what it accepts, before anything touches AWS.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// TLS verification of PostgreSQL connections. IAM auth tokens are bearer credentials for 15
/// minutes, so they are only ever sent over a verified TLS connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// The server certificate chains to the CA bundle **and** names the host connected to.
    #[default]
    VerifyFull,
    /// The certificate chains to the CA bundle; the host name is not checked (for a connection
    /// through an address the certificate does not name, e.g. an SSH tunnel).
    VerifyCa,
}

/// Settings of the aws world for one cluster. Every key is optional; the AWS SDK's own
/// defaults (environment, `~/.aws/config`, instance metadata) fill region and credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// AWS region of the source and the target, e.g. `eu-west-1`.
    pub region: Option<String>,
    /// Named profile of `~/.aws/config` / `~/.aws/credentials`.
    pub profile: Option<String>,
    /// Endpoint URL for every service (an emulator, or a VPC interface endpoint).
    pub endpoint_url: Option<String>,
    /// The database user godwit logs in as with an IAM auth token (`rds_iam` granted).
    pub db_user: Option<String>,
    /// godwit's own VPC security group (`sg-…`), the group its database connections come
    /// from: the quarantine admits exactly it on the database port. Required with `db_user` —
    /// a quarantine that admits nobody locks godwit out of the fenced source.
    pub security_group: Option<String>,
    /// Database to connect to (default `postgres`).
    pub db_name: Option<String>,
    /// PEM file of the CA certificates RDS servers present (the RDS global bundle).
    pub ca_bundle: Option<PathBuf>,
    /// `verify-full` (default) or `verify-ca`.
    pub tls: Option<TlsMode>,
    /// Management API of the godwit data access layer control plane (`godwit dal serve
    /// --api`), `HOST:PORT`.
    pub envoy_control_plane: Option<String>,
    /// CDC consumers of the source: `"none"` declares there are none to pause (consumer hooks
    /// are not implemented; without the declaration every `cdc::` call fails).
    pub cdc: Option<String>,
    /// The source's CDC consumers with the commands that pause and resume them
    /// (`[[aws.cdc_consumers]]`; see `cdc::hooks`).
    pub cdc_consumers: Option<Vec<crate::cdc::hooks::ConsumerHook>>,
    /// The team's schema-migration freeze and unfreeze commands (`[aws.schema_freeze]`; see
    /// `schema::hooks`).
    pub schema_freeze: Option<crate::schema::hooks::FreezeHooks>,
    /// Attempts per AWS API call for throttling and 5xx answers (default 5; 1 = no retries).
    pub max_attempts: Option<u32>,
    /// First backoff between attempts, doubled each time (default `"500ms"`).
    pub retry_backoff: Option<String>,
    /// Longest backoff (default `"20s"`).
    pub retry_backoff_max: Option<String>,
    /// Deadline of one API call attempt (default `"60s"`).
    pub call_timeout: Option<String>,
}

/// Resolved retry policy of AWS API calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub call_timeout: Duration,
}

impl AwsSettings {
    /// Settings from a JSON object (a TOML table converted by the CLI); `origin` names where
    /// they came from in errors, e.g. `config godwit.toml [clusters.orders-db.aws]`.
    pub fn from_json(value: serde_json::Value, origin: &str) -> Result<AwsSettings, String> {
        let s: AwsSettings = serde_json::from_value(value).map_err(|e| {
            format!(
                "{origin}: {e}; the aws world takes: region, profile, endpoint_url, db_user, \
                 security_group, db_name, ca_bundle, tls, envoy_control_plane, cdc, cdc_consumers, \
                 schema_freeze, max_attempts, retry_backoff, retry_backoff_max, call_timeout (docs/aws.md)"
            )
        })?;
        s.validate(origin)?;
        Ok(s)
    }

    /// `other`'s keys win over `self`'s (per-cluster over top level).
    pub fn overridden_by(self, other: AwsSettings) -> AwsSettings {
        AwsSettings {
            region: other.region.or(self.region),
            profile: other.profile.or(self.profile),
            endpoint_url: other.endpoint_url.or(self.endpoint_url),
            db_user: other.db_user.or(self.db_user),
            security_group: other.security_group.or(self.security_group),
            db_name: other.db_name.or(self.db_name),
            ca_bundle: other.ca_bundle.or(self.ca_bundle),
            tls: other.tls.or(self.tls),
            envoy_control_plane: other.envoy_control_plane.or(self.envoy_control_plane),
            cdc: other.cdc.or(self.cdc),
            cdc_consumers: other.cdc_consumers.or(self.cdc_consumers),
            schema_freeze: other.schema_freeze.or(self.schema_freeze),
            max_attempts: other.max_attempts.or(self.max_attempts),
            retry_backoff: other.retry_backoff.or(self.retry_backoff),
            retry_backoff_max: other.retry_backoff_max.or(self.retry_backoff_max),
            call_timeout: other.call_timeout.or(self.call_timeout),
        }
    }

    /// Check values serde cannot: URLs, files, durations, ranges. Errors name the key and the fix.
    pub fn validate(&self, origin: &str) -> Result<(), String> {
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "{origin}: endpoint_url {url:?} is not an http(s) URL; e.g. endpoint_url = \"https://rds.eu-west-1.amazonaws.com\""
            ));
        }
        if let Some(c) = &self.cdc
            && c != "none"
        {
            return Err(format!(
                "{origin}: cdc = {c:?}; cdc = \"none\" declares a source without CDC consumers; \
                 declare consumers as [[aws.cdc_consumers]] tables (name, slot, db, pause, resume)"
            ));
        }
        if self.cdc.is_some() && self.cdc_consumers.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(format!(
                "{origin}: cdc = \"none\" and cdc_consumers both given; keep one"
            ));
        }
        for c in self.cdc_consumers.iter().flatten() {
            if c.name.is_empty()
                || c.slot.is_empty()
                || c.db.is_empty()
                || c.pause.trim().is_empty()
                || c.resume.trim().is_empty()
            {
                return Err(format!(
                    "{origin}: cdc_consumers entry {:?} needs name, slot, db, pause and resume",
                    c.name
                ));
            }
            if let Some(t) = &c.timeout {
                godwit_engine::duration::parse_duration(t)
                    .map_err(|e| format!("{origin}: cdc_consumers {:?} timeout: {e}", c.name))?;
            }
        }
        if let Some(cp) = &self.envoy_control_plane {
            control_plane_addr(cp).map_err(|e| format!("{origin}: {e}"))?;
        }
        if let Some(r) = &self.region
            && (r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(format!(
                "{origin}: region {r:?} is not a region name; e.g. region = \"eu-west-1\""
            ));
        }
        if let Some(ca) = &self.ca_bundle
            && !ca.is_file()
        {
            return Err(format!(
                "{origin}: ca_bundle {} is not a readable file; download the RDS bundle from \
                 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
                ca.display()
            ));
        }
        if let Some(u) = &self.db_user
            && u.is_empty()
        {
            return Err(format!(
                "{origin}: db_user is empty; name the database role granted rds_iam"
            ));
        }
        if let Some(g) = &self.security_group
            && !(g.starts_with("sg-")
                && g.len() > 3
                && g[3..].chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(format!(
                "{origin}: security_group {g:?} is not a security group id; e.g. security_group = \"sg-0123456789abcdef0\" (the group godwit's host or task runs in)"
            ));
        }
        if let Some(n) = self.max_attempts
            && !(1..=20).contains(&n)
        {
            return Err(format!(
                "{origin}: max_attempts = {n}; use 1 (no retries) to 20"
            ));
        }
        self.retry_policy(origin).map(|_| ())
    }

    /// Settings a run can start with, all tables merged: database access (`db_user`) comes
    /// with the security group the quarantine must admit, or the fenced source would refuse
    /// godwit itself.
    pub fn validate_complete(&self, origin: &str) -> Result<(), String> {
        self.validate(origin)?;
        if self.db_user.is_some() && self.security_group.is_none() {
            return Err(format!(
                "{origin}: db_user is set but security_group is not: the quarantine that fences \
                 the source admits no one else, so godwit could not reach the source after the \
                 fence; set security_group = \"sg-…\" (the group godwit's host or task runs in), \
                 or remove db_user to migrate credential-less"
            ));
        }
        Ok(())
    }

    /// The retry policy, defaults filled in.
    pub fn retry_policy(&self, origin: &str) -> Result<RetryPolicy, String> {
        let dur = |key: &str, v: &Option<String>, default: Duration| -> Result<Duration, String> {
            match v {
                None => Ok(default),
                Some(s) => godwit_engine::duration::parse_duration(s)
                    .map_err(|e| format!("{origin}: {key} = {s:?}: {e}; e.g. {key} = \"2s\"")),
            }
        };
        let policy = RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(5),
            backoff: dur(
                "retry_backoff",
                &self.retry_backoff,
                Duration::from_millis(500),
            )?,
            backoff_max: dur(
                "retry_backoff_max",
                &self.retry_backoff_max,
                Duration::from_secs(20),
            )?,
            call_timeout: dur("call_timeout", &self.call_timeout, Duration::from_secs(60))?,
        };
        if policy.call_timeout.is_zero() {
            return Err(format!(
                "{origin}: call_timeout is 0; e.g. call_timeout = \"60s\""
            ));
        }
        Ok(policy)
    }
}

/// The management API address of `godwit dal serve` from `envoy_control_plane`: `HOST:PORT`,
/// optionally with `http://`. The API is loopback-only (reach a remote one through a tunnel).
pub fn control_plane_addr(value: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let bare = value
        .strip_prefix("http://")
        .unwrap_or(value)
        .trim_end_matches('/');
    bare.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            format!(
                "envoy_control_plane {value:?} is not HOST:PORT of godwit dal serve's management API; \
                 e.g. envoy_control_plane = \"127.0.0.1:18001\" (the API is loopback-only: tunnel to a remote one)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let e = AwsSettings::from_json(json!({ "regoin": "eu-west-1" }), "cfg [aws]").unwrap_err();
        assert!(e.contains("regoin") && e.contains("cfg [aws]"), "{e}");
        let e = AwsSettings::from_json(json!({ "max_attempts": "3" }), "cfg").unwrap_err();
        assert!(e.contains("max_attempts") || e.contains("u32"), "{e}");
        let e = AwsSettings::from_json(json!({ "tls": "verify-some" }), "cfg").unwrap_err();
        assert!(e.contains("verify-full"), "{e}");
        let e =
            AwsSettings::from_json(json!({ "endpoint_url": "localhost:5000" }), "cfg").unwrap_err();
        assert!(e.contains("endpoint_url") && e.contains("http"), "{e}");
        let e = AwsSettings::from_json(json!({ "ca_bundle": "/nonexistent/ca.pem" }), "cfg")
            .unwrap_err();
        assert!(
            e.contains("ca_bundle") && e.contains("global-bundle.pem"),
            "{e}"
        );
        let e = AwsSettings::from_json(json!({ "retry_backoff": "soon" }), "cfg").unwrap_err();
        assert!(e.contains("retry_backoff"), "{e}");
        let e = AwsSettings::from_json(json!({ "max_attempts": 0 }), "cfg").unwrap_err();
        assert!(e.contains("max_attempts = 0"), "{e}");
    }

    #[test]
    fn cdc_is_declared_none_or_as_consumers_with_both_commands() {
        let ok = AwsSettings::from_json(
            json!({ "cdc_consumers": [{ "name": "dbz", "slot": "dbz_orders", "db": "orders-db",
                    "pause": "kubectl scale --replicas=0 deploy/dbz", "resume": "kubectl scale --replicas=1 deploy/dbz" }] }),
            "cfg [aws]",
        )
        .unwrap();
        assert_eq!(ok.cdc_consumers.unwrap()[0].slot, "dbz_orders");
        let e = AwsSettings::from_json(
            json!({ "cdc_consumers": [{ "name": "dbz", "slot": "s", "db": "d", "pause": "", "resume": "x" }] }),
            "cfg [aws]",
        )
        .unwrap_err();
        assert!(e.contains("needs name, slot, db, pause and resume"), "{e}");
        let e = AwsSettings::from_json(json!({ "cdc": "some" }), "cfg [aws]").unwrap_err();
        assert!(e.contains("cdc = \"none\" declares"), "{e}");
        let e = AwsSettings::from_json(
            json!({ "cdc": "none", "cdc_consumers": [{ "name": "a", "slot": "s", "db": "d", "pause": "p", "resume": "r" }] }),
            "cfg [aws]",
        )
        .unwrap_err();
        assert!(e.contains("both given"), "{e}");
    }

    #[test]
    fn per_cluster_keys_win_and_defaults_fill_in() {
        let top = AwsSettings::from_json(
            json!({ "region": "eu-west-1", "db_user": "godwit", "tls": "verify-ca" }),
            "top",
        )
        .unwrap();
        let mine = AwsSettings::from_json(json!({ "region": "us-east-2" }), "mine").unwrap();
        let s = top.overridden_by(mine);
        assert_eq!(s.region.as_deref(), Some("us-east-2"));
        assert_eq!(s.db_user.as_deref(), Some("godwit"));
        assert_eq!(s.tls, Some(TlsMode::VerifyCa));
        let p = s.retry_policy("x").unwrap();
        assert_eq!(p.max_attempts, 5);
        assert_eq!(p.backoff, Duration::from_millis(500));
        assert_eq!(p.call_timeout, Duration::from_secs(60));
    }
}
