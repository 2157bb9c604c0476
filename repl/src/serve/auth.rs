//! Who is asking, and what they may do (docs/serve.md, "Who may do what").
//!
//! Two ways in, both configured in the `--auth` file, nothing anonymous:
//!
//! - **a bearer token** (`Authorization: Bearer …`): the file holds only its SHA-256 (tokens
//!   are 256 random bits, so a fast hash is enough: there is nothing to brute-force), with the
//!   user and their teams; `godwit serve --new-token USER:TEAM,…` makes one;
//! - **an authenticating proxy** in front (the company's SSO): the user and their teams in
//!   headers, believed only from the proxy's own addresses — the same headers from anyone else
//!   are refused, never ignored quietly.
//!
//! Authorisation is by ownership: everyone who is let in reads; a cluster's owner team acts on
//! it (start, abort, approve its run); members of an `admins` team act on everything.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `--auth` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Teams whose members act on every cluster and every fleet.
    #[serde(default)]
    pub admins: Vec<String>,
    pub proxy: Option<ProxyConfig>,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The proxy's addresses: only requests from these carry an identity in headers.
    pub addresses: Vec<IpAddr>,
    #[serde(default = "user_header")]
    pub user_header: String,
    /// Comma-separated teams (groups) of the user.
    #[serde(default = "teams_header")]
    pub teams_header: String,
}

fn user_header() -> String {
    "X-Forwarded-User".into()
}
fn teams_header() -> String {
    "X-Forwarded-Groups".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub user: String,
    #[serde(default)]
    pub teams: Vec<String>,
}

/// Someone let in.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub user: String,
    pub teams: Vec<String>,
    /// Member of an `admins` team.
    pub admin: bool,
    /// `token` or `proxy`.
    pub via: &'static str,
}

impl Identity {
    /// Whether this identity may act on a cluster owned by `owner`.
    pub fn may_act_on(&self, owner: &str) -> bool {
        self.admin || self.teams.iter().any(|t| t == owner)
    }

    /// `alice (orders, payments)`: for the audit log and the run's requests.
    pub fn label(&self) -> String {
        if self.teams.is_empty() {
            self.user.clone()
        } else {
            format!("{} ({})", self.user, self.teams.join(", "))
        }
    }
}

/// The cookie a browser signed in with a token carries (`/login`).
pub const SESSION_COOKIE: &str = "godwit_token";

/// The value of cookie `name` in `headers`.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The hex SHA-256 of a token, as the `--auth` file holds it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (256 bits, hex).
pub fn new_token() -> Result<String, String> {
    use std::io::Read as _;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom for a token: {e}"))?;
    Ok(hex::encode(b))
}

/// Compare without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl AuthConfig {
    /// Read and check the `--auth` file; every problem names its key.
    pub fn load(path: &Path) -> Result<AuthConfig, String> {
        let at = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("--auth {at}: {e}"))?;
        let de = toml::Deserializer::parse(&text).map_err(|e| format!("--auth {at}: {e}"))?;
        let cfg: AuthConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            format!(
                "--auth {at}: {}: {}",
                e.path(),
                e.inner().to_string().trim_end().replace('\n', " ")
            )
        })?;
        let mut problems = Vec::new();
        for (i, t) in cfg.tokens.iter().enumerate() {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push(format!(
                    "tokens[{i}].sha256: not a hex SHA-256 (64 hex digits); make tokens with `godwit serve --new-token USER:TEAM`"
                ));
            }
            if t.user.trim().is_empty() {
                problems.push(format!("tokens[{i}].user: empty"));
            }
        }
        if cfg.tokens.is_empty() && cfg.proxy.is_none() {
            problems.push(
                "no way in: add [[tokens]] (`godwit serve --new-token USER:TEAM`) or a [proxy] \
                 section; godwit serve lets nobody in anonymously"
                    .into(),
            );
        }
        if let Some(p) = &cfg.proxy
            && p.addresses.is_empty()
        {
            problems
                .push("proxy.addresses: empty; name the authenticating proxy's addresses".into());
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(format!("--auth {at}:\n  - {}", problems.join("\n  - ")))
        }
    }

    /// Who sent a request with `headers` from `peer`; `Err` with why not (answered 401).
    pub fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
        peer: IpAddr,
    ) -> Result<Identity, String> {
        let admin = |teams: &[String]| teams.iter().any(|t| self.admins.contains(t));
        if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
            let v = v.to_str().unwrap_or_default();
            let Some(token) = v.strip_prefix("Bearer ").map(str::trim) else {
                return Err("Authorization: expected `Bearer TOKEN`".into());
            };
            let hash = token_hash(token);
            return self
                .tokens
                .iter()
                .find(|t| same(t.sha256.to_ascii_lowercase().as_bytes(), hash.as_bytes()))
                .map(|t| Identity {
                    user: t.user.clone(),
                    teams: t.teams.clone(),
                    admin: admin(&t.teams),
                    via: "token",
                })
                .ok_or_else(|| "unknown bearer token".to_string());
        }
        // A browser signed in at /login carries its token in a cookie (HttpOnly, SameSite=Strict).
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            let hash = token_hash(&token);
            return self
                .tokens
                .iter()
                .find(|t| same(t.sha256.to_ascii_lowercase().as_bytes(), hash.as_bytes()))
                .map(|t| Identity {
                    user: t.user.clone(),
                    teams: t.teams.clone(),
                    admin: admin(&t.teams),
                    via: "token",
                })
                .ok_or_else(|| {
                    "the sign-in cookie's token is no longer valid: sign in again at /login"
                        .to_string()
                });
        }
        if let Some(p) = &self.proxy {
            let user = headers
                .get(p.user_header.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|u| !u.is_empty());
            if let Some(user) = user {
                if !p.addresses.contains(&peer) {
                    return Err(format!(
                        "{} from {peer}, which is not the authenticating proxy (proxy.addresses)",
                        p.user_header
                    ));
                }
                let teams: Vec<String> = headers
                    .get(p.teams_header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect();
                return Ok(Identity {
                    user: user.to_string(),
                    admin: admin(&teams),
                    teams,
                    via: "proxy",
                });
            }
        }
        Err(
            "sign in: send `Authorization: Bearer TOKEN`, or come through the authenticating proxy"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig {
            admins: vec!["platform".into()],
            proxy: Some(ProxyConfig {
                addresses: vec!["127.0.0.9".parse().unwrap()],
                user_header: user_header(),
                teams_header: teams_header(),
            }),
            tokens: vec![TokenConfig {
                sha256: token_hash("s3cret"),
                user: "alice".into(),
                teams: vec!["orders".into()],
            }],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tokens_and_the_proxy_let_in_and_nothing_else_does() {
        let c = cfg();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let alice = c
            .authenticate(&headers(&[("authorization", "Bearer s3cret")]), local)
            .unwrap();
        assert_eq!(
            (alice.user.as_str(), alice.admin, alice.via),
            ("alice", false, "token")
        );
        assert!(alice.may_act_on("orders") && !alice.may_act_on("payments"));
        assert!(
            c.authenticate(&headers(&[("authorization", "Bearer nope")]), local)
                .is_err()
        );
        assert!(
            c.authenticate(&headers(&[("authorization", "Basic eA==")]), local)
                .is_err()
        );
        assert!(c.authenticate(&HeaderMap::new(), local).is_err());
        let via_proxy = headers(&[
            ("x-forwarded-user", "bob"),
            ("x-forwarded-groups", "payments, platform"),
        ]);
        let bob = c
            .authenticate(&via_proxy, "127.0.0.9".parse().unwrap())
            .unwrap();
        assert_eq!(bob.teams, vec!["payments", "platform"]);
        assert!(bob.admin && bob.may_act_on("orders"));
        // The same headers from anyone but the proxy are refused.
        let e = c.authenticate(&via_proxy, local).unwrap_err();
        assert!(e.contains("not the authenticating proxy"), "{e}");
    }

    #[test]
    fn a_bad_auth_file_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.toml");
        std::fs::write(&f, "[[tokens]]\nsha256 = \"abc\"\nuser = \"a\"\n").unwrap();
        let e = AuthConfig::load(&f).unwrap_err();
        assert!(
            e.contains("tokens[0].sha256") && e.contains("--new-token"),
            "{e}"
        );
        std::fs::write(&f, "admins = []\n").unwrap();
        assert!(AuthConfig::load(&f).unwrap_err().contains("no way in"));
        std::fs::write(
            &f,
            "[proxy]\naddresses = [\"127.0.0.1\"]\nuser_heder = \"x\"\n",
        )
        .unwrap();
        let e = AuthConfig::load(&f).unwrap_err();
        assert!(e.contains("proxy") && e.contains("user_heder"), "{e}");
    }
}
