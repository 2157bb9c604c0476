//! The route model: what a route is, in plain serde data (it is persisted and journaled), and the
//! pure transitions the route operations apply to it (hold, switch, cleanup).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::XdsError;

/// One PostgreSQL route: the app-facing listener and the endpoints behind it.
///
/// A route `R` becomes listener `pg.R`, cluster `pg.R` and (for IP endpoints) the EDS
/// `ClusterLoadAssignment` `pg.R`; see [`crate::resources`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Where applications connect, on every Envoy node: `127.0.0.1:5432`.
    pub listen: Addr,
    /// The endpoint list: the one switch point of a cutover.
    pub endpoints: Vec<Endpoint>,
    /// How long Envoy holds a new connection while only the parking endpoint is listed.
    #[serde(default)]
    pub hold: HoldBudget,
    /// `tcp_proxy.idle_timeout` in seconds. Always explicit: Envoy's default is 1 h, which
    /// silently cuts idle pooled database connections (reference/envoy.md §1.1). 0 disables it.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// Upstream `connect_timeout` in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Cluster circuit breaker: `tcp_proxy` closes new connections beyond it (flag UO).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// File access log path (`%UPSTREAM_HOST% %RESPONSE_FLAGS%` per connection).
    #[serde(default = "default_access_log")]
    pub access_log_path: String,
    /// The IP address Envoy's upstream connections come from (the cluster's
    /// `upstream_bind_config.source_address`, any port); `None`: the kernel picks. The lab binds
    /// them to an address of their own so that its security groups, which filter by client
    /// address like AWS's, can tell Envoy from godwit and from direct clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_bind: Option<String>,
}

fn default_idle_timeout_s() -> u64 {
    8 * 3600
}
fn default_connect_timeout_ms() -> u64 {
    1000
}
fn default_max_connections() -> u32 {
    10_000
}
fn default_access_log() -> String {
    "/dev/stdout".into()
}

impl RouteSpec {
    /// A route with one healthy source endpoint and the default budgets.
    pub fn new(listen: Addr, source: Addr) -> Self {
        RouteSpec {
            listen,
            endpoints: vec![Endpoint {
                addr: source,
                role: Role::Source,
                health: Health::Healthy,
            }],
            hold: HoldBudget::default(),
            idle_timeout_s: default_idle_timeout_s(),
            connect_timeout_ms: default_connect_timeout_ms(),
            max_connections: default_max_connections(),
            access_log_path: default_access_log(),
            upstream_bind: None,
        }
    }

    /// EDS when every endpoint is an IP; otherwise a STRICT_DNS cluster pushed through CDS,
    /// because EDS rejects hostnames ("malformed IP address", measured; envoy.md §2.2).
    pub fn uses_dns(&self) -> bool {
        self.endpoints.iter().any(|e| !e.addr.is_ip())
    }

    /// Checks what Envoy would reject or what would silently break routing.
    pub fn validate(&self, route: &str) -> Result<(), XdsError> {
        validate_route_name(route)?;
        let invalid = |message: String| XdsError::Invalid {
            route: route.to_string(),
            message,
        };
        if self.endpoints.is_empty() {
            // Measured: an empty endpoint list closes new connections at once instead of
            // holding them (envoy.md §0.4). Holding is `hold`, with a parking endpoint.
            return Err(invalid(
                "the endpoint list is empty; Envoy would close every new connection".into(),
            ));
        }
        if !self.endpoints.iter().any(|e| e.health == Health::Healthy) {
            return Err(invalid(
                "no endpoint is HEALTHY; with healthy_panic_threshold 0 every new connection \
                 would be closed"
                    .into(),
            ));
        }
        if !self.listen.is_ip() {
            return Err(invalid(format!(
                "listen address {} must be an IP",
                self.listen
            )));
        }
        for e in &self.endpoints {
            if e.addr.host.is_empty() || e.addr.port == 0 {
                return Err(invalid(format!("endpoint {} has no host or port", e.addr)));
            }
        }
        if self.hold.max_connect_attempts == 0 || self.hold.base_interval_ms == 0 {
            return Err(invalid(
                "hold budget needs attempts >= 1 and intervals > 0".into(),
            ));
        }
        if self.hold.max_interval_ms < self.hold.base_interval_ms {
            return Err(invalid(
                "hold.max_interval_ms < hold.base_interval_ms".into(),
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err(invalid("connect_timeout_ms must be > 0".into()));
        }
        if let Some(b) = &self.upstream_bind
            && b.parse::<IpAddr>().is_err()
        {
            return Err(invalid(format!("upstream_bind {b:?} is not an IP address")));
        }
        Ok(())
    }

    /// `[parking HEALTHY, sources DRAINING]`: new connections wait in Envoy's `tcp_proxy`
    /// retries against the refusing parking address; established ones stay where they are.
    /// Idempotent: holding a held route changes nothing.
    pub fn held(&self, parking: &Addr) -> RouteSpec {
        let mut next = self.clone();
        next.endpoints.retain(|e| e.role != Role::Parking);
        for e in &mut next.endpoints {
            e.health = Health::Draining;
        }
        next.endpoints.insert(
            0,
            Endpoint {
                addr: parking.clone(),
                role: Role::Parking,
                health: Health::Healthy,
            },
        );
        next
    }

    /// `[target HEALTHY, everything else DRAINING]`, parking removed: the release of a hold, or a
    /// direct switch. DRAINING keeps the old endpoint visible per host in `/clusters` while its
    /// established sessions remain (envoy.md §2.1). Idempotent.
    pub fn switched(&self, target: &Addr) -> RouteSpec {
        let mut next = self.clone();
        next.endpoints.retain(|e| e.role != Role::Parking);
        for e in &mut next.endpoints {
            e.health = Health::Draining;
        }
        match next.endpoints.iter_mut().find(|e| &e.addr == target) {
            Some(e) => {
                e.health = Health::Healthy;
                e.role = Role::Target;
            }
            None => next.endpoints.insert(
                0,
                Endpoint {
                    addr: target.clone(),
                    role: Role::Target,
                    health: Health::Healthy,
                },
            ),
        }
        next
    }

    /// Only the HEALTHY non-parking endpoints remain (`[target]`). Fails when that would leave
    /// nothing (a held route has no real healthy endpoint).
    pub fn cleaned(&self, route: &str) -> Result<RouteSpec, XdsError> {
        let mut next = self.clone();
        next.endpoints
            .retain(|e| e.health == Health::Healthy && e.role != Role::Parking);
        if next.endpoints.is_empty() {
            return Err(XdsError::Invalid {
                route: route.to_string(),
                message: "cleanup would leave no endpoint (is the route held? switch first)".into(),
            });
        }
        Ok(next)
    }
}

/// Route names become Envoy resource names and stat prefixes (`pg.R`, `cluster.pg.R.*`).
pub fn validate_route_name(route: &str) -> Result<(), XdsError> {
    let ok = !route.is_empty()
        && route.len() <= 100
        && route
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(XdsError::Invalid {
            route: route.to_string(),
            message: "route names are 1-100 characters of [A-Za-z0-9_-]".into(),
        })
    }
}

/// `host:port`; host is an IP or a DNS name (RDS/Aurora endpoints are DNS names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl Addr {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Addr {
            host: host.into(),
            port,
        }
    }

    pub fn is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }
}

impl From<std::net::SocketAddr> for Addr {
    fn from(a: std::net::SocketAddr) -> Self {
        Addr::new(a.ip().to_string(), a.port())
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One upstream of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub addr: Addr,
    pub role: Role,
    pub health: Health,
}

/// Why an endpoint is in the list (for reports; Envoy only sees the health).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Source,
    Target,
    /// An address that actively refuses TCP: `tcp_proxy` retries against it until the list
    /// changes, which is the hold (envoy.md §2.3).
    Parking,
}

/// EDS `health_status` of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    /// No new connections; established ones stay and remain visible per host.
    Draining,
}

/// The hold budget: `tcp_proxy.max_connect_attempts` with `backoff_options` (Envoy >= 1.34).
/// Maximum hold ≈ the sum of the backoff intervals over the attempts; without backoff, refused
/// retries burn out in milliseconds (envoy.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldBudget {
    pub max_connect_attempts: u32,
    pub base_interval_ms: u64,
    pub max_interval_ms: u64,
}

impl Default for HoldBudget {
    /// 40 attempts, 100 ms → 1 s: about 20–30 s of hold (envoy.md §7.3).
    fn default() -> Self {
        HoldBudget {
            max_connect_attempts: 40,
            base_interval_ms: 100,
            max_interval_ms: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RouteSpec {
        RouteSpec::new(Addr::new("127.0.0.1", 5432), Addr::new("10.0.0.1", 5432))
    }

    #[test]
    fn cutover_sequence_shapes() {
        let parking = Addr::new("127.0.0.1", 1);
        let target = Addr::new("10.0.0.2", 5432);
        let v1 = spec();
        let v2 = v1.held(&parking);
        assert_eq!(v2.held(&parking), v2, "hold is idempotent");
        assert_eq!(v2.endpoints[0].role, Role::Parking);
        assert_eq!(v2.endpoints[0].health, Health::Healthy);
        assert_eq!(v2.endpoints[1].health, Health::Draining);
        let v3 = v2.switched(&target);
        assert_eq!(v3.switched(&target), v3, "switch is idempotent");
        assert!(v3.endpoints.iter().all(|e| e.role != Role::Parking));
        assert_eq!(v3.endpoints.len(), 2);
        let v4 = v3.cleaned("orders").unwrap();
        assert_eq!(v4.endpoints.len(), 1);
        assert_eq!(v4.endpoints[0].addr, target);
        assert!(
            v2.cleaned("orders").is_err(),
            "cleanup of a held route fails"
        );
        for s in [&v1, &v2, &v3, &v4] {
            s.validate("orders").unwrap();
        }
    }

    #[test]
    fn invalid_specs_are_refused() {
        let mut s = spec();
        s.endpoints.clear();
        assert!(s.validate("orders").is_err());
        assert!(spec().validate("orders.x").is_err());
        let mut s = spec();
        s.endpoints[0].health = Health::Draining;
        assert!(s.validate("orders").is_err());
    }

    #[test]
    fn dns_detection() {
        let mut s = spec();
        assert!(!s.uses_dns());
        s.endpoints[0].addr.host = "orders.cluster-x.eu-west-1.rds.amazonaws.com".into();
        assert!(s.uses_dns());
    }
}
