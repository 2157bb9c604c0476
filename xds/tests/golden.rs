//! Golden tests of the generated resources for every cutover step (v1 source → v2 hold →
//! v3 release → v4 cleanup). Everything is decoded with the official protos (envoy-types), the
//! invariants the measured Envoy behaviour demands are asserted, and a readable rendering is
//! snapshotted so a reviewer sees any change.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use godwit_xds::resources::{ResourceSet, ResourceType, unpack};
use godwit_xds::{Addr, RouteSpec};
use prost::Message;

const PARKING: (&str, u16) = ("127.0.0.1", 1);

fn steps() -> Vec<(&'static str, RouteSpec)> {
    let v1 = RouteSpec::new(Addr::new("127.0.0.1", 5432), Addr::new("10.0.1.10", 5432));
    let v2 = v1.held(&Addr::new(PARKING.0, PARKING.1));
    let v3 = v2.switched(&Addr::new("10.0.2.20", 5432));
    let v4 = v3.cleaned("orders").unwrap();
    vec![
        ("v1", v1),
        ("v2-hold", v2),
        ("v3-release", v3),
        ("v4-cleanup", v4),
    ]
}

fn build(spec: &RouteSpec) -> ResourceSet {
    ResourceSet::build(&BTreeMap::from([("orders".to_string(), spec.clone())]))
}

fn tcp_proxy_of(l: &Listener) -> TcpProxy {
    assert_eq!(l.filter_chains.len(), 1);
    let filters = &l.filter_chains[0].filters;
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].name, "envoy.filters.network.tcp_proxy");
    let Some(filter::ConfigType::TypedConfig(any)) = &filters[0].config_type else {
        panic!("tcp_proxy without typed_config")
    };
    unpack(any).unwrap()
}

/// (host, port, health) of every endpoint of a CLA.
fn endpoints(cla: &ClusterLoadAssignment) -> Vec<(String, u32, HealthStatus)> {
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!("endpoint without address")
            };
            let Some(address::Address::SocketAddress(sa)) =
                ep.address.as_ref().and_then(|a| a.address.clone())
            else {
                panic!("not a socket address")
            };
            let Some(socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else {
                panic!("no port")
            };
            (
                sa.address,
                port,
                HealthStatus::try_from(e.health_status).unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_cutover_step_keeps_the_invariants() {
    let mut listeners = Vec::new();
    for (step, spec) in steps() {
        let set = build(&spec);
        // Round trip through the wire format.
        for t in ResourceType::ALL {
            for any in set.get(t).values() {
                assert_eq!(any.type_url, t.type_url());
            }
        }
        let l: Listener = unpack(&set.get(ResourceType::Listener)["pg.orders"]).unwrap();
        let c: Cluster = unpack(&set.get(ResourceType::Cluster)["pg.orders"]).unwrap();
        let cla: ClusterLoadAssignment =
            unpack(&set.get(ResourceType::Endpoints)["pg.orders"]).unwrap();
        assert_eq!(Listener::decode(l.encode_to_vec().as_slice()).unwrap(), l);

        // One name everywhere: listener → tcp_proxy → cluster → CLA.
        let tcp = tcp_proxy_of(&l);
        assert_eq!(l.name, "pg.orders");
        assert_eq!(
            tcp.cluster_specifier,
            Some(tcp_proxy::ClusterSpecifier::Cluster("pg.orders".into()))
        );
        assert_eq!(
            (c.name.as_str(), cla.cluster_name.as_str()),
            ("pg.orders", "pg.orders")
        );

        // The hold budget is real only with backoff (Envoy >= 1.34), explicit idle timeout,
        // no forced session end, an access log.
        assert!(tcp.max_connect_attempts.unwrap().value >= 2, "{step}");
        let backoff = tcp.backoff_options.unwrap();
        assert!(backoff.base_interval.is_some() && backoff.max_interval.is_some());
        assert!(
            tcp.idle_timeout.unwrap().seconds > 3600,
            "{step}: explicit, above the 1 h default"
        );
        assert!(tcp.max_downstream_connection_duration.is_none());
        assert_eq!(tcp.access_log.len(), 1);

        // Panic mode would route to the DRAINING source; removed healthy hosts would linger.
        let lb = c.common_lb_config.unwrap();
        assert_eq!(lb.healthy_panic_threshold.unwrap().value, 0.0, "{step}");
        assert!(c.ignore_health_on_host_removal, "{step}");
        assert!(c.connect_timeout.is_some());

        // EDS carries IPs only, never an empty list, always something HEALTHY.
        let eps = endpoints(&cla);
        assert!(
            !eps.is_empty(),
            "{step}: an empty list closes instead of holding"
        );
        for (host, _, _) in &eps {
            assert!(host.parse::<std::net::IpAddr>().is_ok(), "{step}: {host}");
        }
        assert!(eps.iter().any(|e| e.2 == HealthStatus::Healthy));
        let parking = eps
            .iter()
            .find(|e| (e.0.as_str(), e.1) == (PARKING.0, PARKING.1 as u32));
        match step {
            "v2-hold" => {
                assert_eq!(parking.map(|p| p.2), Some(HealthStatus::Healthy));
                assert!(
                    eps.iter()
                        .filter(|e| e.0 != PARKING.0)
                        .all(|e| e.2 == HealthStatus::Draining)
                );
            }
            _ => assert!(parking.is_none(), "{step}: parking only while held"),
        }
        listeners.push(l.encode_to_vec());
    }
    // The listener never changes during a cutover: an LDS change would hard-close every
    // tcp_proxy session after --drain-time-s (measured, envoy.md §2.1).
    assert!(listeners.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn golden_resources() {
    let mut out = String::new();
    for (step, spec) in steps() {
        let set = build(&spec);
        let cla: ClusterLoadAssignment =
            unpack(&set.get(ResourceType::Endpoints)["pg.orders"]).unwrap();
        out.push_str(&format!("# {step}: endpoints\n"));
        for (host, port, health) in endpoints(&cla) {
            out.push_str(&format!("{host}:{port} {}\n", health.as_str_name()));
        }
        if step == "v1" {
            let mut l: Listener = unpack(&set.get(ResourceType::Listener)["pg.orders"]).unwrap();
            let tcp = tcp_proxy_of(&l);
            l.filter_chains[0].filters[0].config_type = None;
            let c: Cluster = unpack(&set.get(ResourceType::Cluster)["pg.orders"]).unwrap();
            out.push_str(&format!(
                "# listener (typed_config decoded below)\n{l:#?}\n"
            ));
            let mut tcp_shown = tcp.clone();
            tcp_shown.access_log.clear();
            out.push_str(&format!(
                "# tcp_proxy (access_log: {} entry)\n{tcp_shown:#?}\n",
                tcp.access_log.len()
            ));
            out.push_str(&format!("# cluster\n{c:#?}\n"));
        }
    }
    insta::assert_snapshot!(out);
}
