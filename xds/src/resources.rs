//! Resource generation: a [`RouteSpec`] becomes typed Envoy protos (envoy-types / prost).
//!
//! Per route `R`:
//!
//! | resource | name | what decides it |
//! |---|---|---|
//! | Listener | `pg.R` | `tcp_proxy` → cluster `pg.R`; hold budget; explicit idle timeout; access log. Never changes during a cutover. |
//! | Cluster | `pg.R` | EDS for IP endpoints; STRICT_DNS with `load_assignment` for DNS names; panic threshold 0; `ignore_health_on_host_removal` |
//! | ClusterLoadAssignment | `pg.R` | EDS only: the endpoint list, the switch point |
//!
//! Generated from typed protos, never text: Envoy silently accepts misspelled fields in dynamic
//! config (measured, envoy.md §3.3).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, circuit_breakers,
    cluster::{
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, EdsClusterConfig,
    },
};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, BackoffStrategy, BindConfig, ConfigSource,
    DataSource, HealthStatus, SocketAddress, SubstitutionFormatString, address, config_source,
    data_source, socket_address, substitution_format_string,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use envoy_types::util::pack_any;
use prost::{Message, Name};

use crate::model::{Addr, Health, RouteSpec};

/// The three resource types godwit serves, in make-before-break push order (CDS → EDS → LDS:
/// a listener naming a cluster that is not there yet counts `downstream_cx_no_route`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Endpoints,
    Listener,
}

impl ResourceType {
    pub const ALL: [ResourceType; 3] = [
        ResourceType::Cluster,
        ResourceType::Endpoints,
        ResourceType::Listener,
    ];

    pub fn type_url(self) -> String {
        match self {
            ResourceType::Cluster => Cluster::type_url(),
            ResourceType::Endpoints => ClusterLoadAssignment::type_url(),
            ResourceType::Listener => Listener::type_url(),
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        ResourceType::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// Short name for reports: `Cluster`, `ClusterLoadAssignment`, `Listener`.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "Cluster",
            ResourceType::Endpoints => "ClusterLoadAssignment",
            ResourceType::Listener => "Listener",
        }
    }

    /// Listeners and clusters are wildcard subscriptions, and every response must carry all of
    /// them (an omitted one is deleted); EDS is subscribed by name (envoy.md §3.2).
    pub fn is_wildcard(self) -> bool {
        !matches!(self, ResourceType::Endpoints)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Envoy's name for route `R`'s listener, cluster and load assignment.
pub fn resource_name(route: &str) -> String {
    format!("pg.{route}")
}

/// All resources of a set of routes, by type and name, packed as `Any`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSet {
    pub by_type: [BTreeMap<String, Any>; 3],
}

impl ResourceSet {
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a String, &'a RouteSpec)>) -> Self {
        let mut set = ResourceSet::default();
        for (route, spec) in routes {
            let name = resource_name(route);
            set.by_type[ResourceType::Cluster.index()]
                .insert(name.clone(), pack_any(cluster(route, spec)));
            if !spec.uses_dns() {
                set.by_type[ResourceType::Endpoints.index()]
                    .insert(name.clone(), pack_any(load_assignment(route, spec)));
            }
            set.by_type[ResourceType::Listener.index()]
                .insert(name, pack_any(listener(route, spec)));
        }
        set
    }

    pub fn get(&self, t: ResourceType) -> &BTreeMap<String, Any> {
        &self.by_type[t.index()]
    }
}

/// Listener `pg.R`: one filter chain with `tcp_proxy`.
pub fn listener(route: &str, spec: &RouteSpec) -> Listener {
    let name = resource_name(route);
    let tcp = TcpProxy {
        stat_prefix: name.clone(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(name.clone())),
        // The hold: each retry re-runs load balancing on the *current* cluster, so connections
        // parked on the refusing endpoint reach the target as soon as the next update lands
        // (measured: held ≈2 s, then connected; envoy.md §2.3). Backoff needs Envoy >= 1.34.
        max_connect_attempts: Some(UInt32Value {
            value: spec.hold.max_connect_attempts,
        }),
        backoff_options: Some(BackoffStrategy {
            base_interval: Some(millis(spec.hold.base_interval_ms)),
            max_interval: Some(millis(spec.hold.max_interval_ms)),
        }),
        // Explicit: the 1 h default cuts idle pooled connections (envoy.md §1.1).
        idle_timeout: Some(millis(spec.idle_timeout_s * 1000)),
        // No max_downstream_connection_duration: sessions end on the database side (fence).
        access_log: vec![access_log(&spec.access_log_path)],
        ..Default::default()
    };
    Listener {
        name: name.clone(),
        address: Some(socket(&spec.listen)),
        stat_prefix: name,
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.tcp_proxy".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(tcp))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One line per connection: who connected, which upstream got it, and why it ended. `UF`/`URX`
/// flags show a hold that ran out; `UH` a route with no healthy host.
pub const ACCESS_LOG_FORMAT: &str = "[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS% -> \
%UPSTREAM_CLUSTER% %UPSTREAM_HOST% flags=%RESPONSE_FLAGS% duration_ms=%DURATION% \
rx=%BYTES_RECEIVED% tx=%BYTES_SENT%\n";

fn access_log(path: &str) -> AccessLog {
    let file = FileAccessLog {
        path: path.to_string(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
            SubstitutionFormatString {
                format: Some(substitution_format_string::Format::TextFormatSource(
                    DataSource {
                        specifier: Some(data_source::Specifier::InlineString(
                            ACCESS_LOG_FORMAT.into(),
                        )),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            },
        )),
    };
    AccessLog {
        name: "envoy.access_loggers.file".into(),
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(file))),
        ..Default::default()
    }
}

/// Cluster `pg.R`.
pub fn cluster(route: &str, spec: &RouteSpec) -> Cluster {
    let name = resource_name(route);
    let mut c = Cluster {
        name: name.clone(),
        connect_timeout: Some(millis(spec.connect_timeout_ms)),
        // Measured: a host removed from EDS while still passing health checks lingers as
        // /pending_dynamic_removal and keeps receiving new connections unless this is set.
        ignore_health_on_host_removal: true,
        common_lb_config: Some(CommonLbConfig {
            // Measured: with the default threshold (50 %), panic mode sends new connections to
            // the DRAINING source as soon as no healthy host is left (e.g. while held).
            healthy_panic_threshold: Some(Percent { value: 0.0 }),
            ..Default::default()
        }),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![circuit_breakers::Thresholds {
                max_connections: Some(UInt32Value {
                    value: spec.max_connections,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        // The address upstream connections come from, when the route names one (the lab's
        // address-filtering security groups).
        upstream_bind_config: spec.upstream_bind.as_ref().map(|ip| BindConfig {
            source_address: Some(SocketAddress {
                address: ip.clone(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    if spec.uses_dns() {
        // EDS rejects hostnames (measured), so DNS endpoints (RDS/Aurora) ride in the cluster:
        // the switch is a CDS update of this same cluster.
        c.cluster_discovery_type =
            Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
        // RDS/Aurora endpoints resolve to IPv4; AUTO would prefer an IPv6 answer.
        c.dns_lookup_family = DnsLookupFamily::V4Preferred as i32;
        c.load_assignment = Some(load_assignment(route, spec));
    } else {
        c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
        c.eds_cluster_config = Some(EdsClusterConfig {
            eds_config: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            service_name: String::new(),
        });
    }
    c
}

/// The endpoint list of route `R` (EDS resource, or the DNS cluster's `load_assignment`).
pub fn load_assignment(route: &str, spec: &RouteSpec) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: resource_name(route),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: spec
                .endpoints
                .iter()
                .map(|e| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(PbEndpoint {
                        address: Some(socket(&e.addr)),
                        ..Default::default()
                    })),
                    // DRAINING instead of removal: no new connections, but the host and its
                    // remaining sessions stay visible in /clusters (measured).
                    health_status: match e.health {
                        Health::Healthy => HealthStatus::Healthy,
                        Health::Draining => HealthStatus::Draining,
                    } as i32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn socket(a: &Addr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: a.host.clone(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(a.port as u32)),
            ..Default::default()
        })),
    }
}

fn millis(ms: u64) -> Duration {
    Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// Decode a packed resource back into its proto (tests, golden files, reports).
pub fn unpack<M: Message + Name + Default>(any: &Any) -> Result<M, String> {
    if any.type_url != M::type_url() {
        return Err(format!("type {} is not {}", any.type_url, M::type_url()));
    }
    M::decode(any.value.as_slice()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Role};

    fn spec() -> RouteSpec {
        RouteSpec::new(Addr::new("127.0.0.1", 5432), Addr::new("10.0.0.1", 5432))
    }

    #[test]
    fn names_are_consistent_and_eds_is_used_for_ips() {
        let routes = BTreeMap::from([("orders".to_string(), spec())]);
        let set = ResourceSet::build(&routes);
        let l: Listener = unpack(&set.get(ResourceType::Listener)["pg.orders"]).unwrap();
        let c: Cluster = unpack(&set.get(ResourceType::Cluster)["pg.orders"]).unwrap();
        let e: ClusterLoadAssignment =
            unpack(&set.get(ResourceType::Endpoints)["pg.orders"]).unwrap();
        let Some(filter::ConfigType::TypedConfig(tcp)) = &l.filter_chains[0].filters[0].config_type
        else {
            panic!("no typed config")
        };
        let tcp: TcpProxy = unpack(tcp).unwrap();
        assert_eq!(
            tcp.cluster_specifier,
            Some(tcp_proxy::ClusterSpecifier::Cluster(c.name.clone()))
        );
        assert_eq!(e.cluster_name, c.name);
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        );
        assert!(c.load_assignment.is_none());
        assert!(
            c.upstream_bind_config.is_none(),
            "the kernel picks by default"
        );
    }

    #[test]
    fn upstream_bind_sets_the_clusters_source_address() {
        let mut s = spec();
        s.upstream_bind = Some("127.0.0.3".into());
        let routes = BTreeMap::from([("orders".to_string(), s)]);
        let set = ResourceSet::build(&routes);
        let c: Cluster = unpack(&set.get(ResourceType::Cluster)["pg.orders"]).unwrap();
        let a = c.upstream_bind_config.unwrap().source_address.unwrap();
        assert_eq!(a.address, "127.0.0.3");
        assert_eq!(
            a.port_specifier,
            Some(socket_address::PortSpecifier::PortValue(0))
        );
    }

    #[test]
    fn dns_endpoints_use_strict_dns_without_eds() {
        let mut s = spec();
        s.endpoints.push(Endpoint {
            addr: Addr::new("orders.cluster-abc.eu-west-1.rds.amazonaws.com", 5432),
            role: Role::Target,
            health: Health::Healthy,
        });
        let routes = BTreeMap::from([("orders".to_string(), s)]);
        let set = ResourceSet::build(&routes);
        assert!(set.get(ResourceType::Endpoints).is_empty());
        let c: Cluster = unpack(&set.get(ResourceType::Cluster)["pg.orders"]).unwrap();
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
        );
        assert_eq!(
            c.load_assignment.unwrap().endpoints[0].lb_endpoints.len(),
            2
        );
    }
}
