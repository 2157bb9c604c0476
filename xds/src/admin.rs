//! Envoy's admin API: what each node actually does with a route, per endpoint.
//!
//! `GET /clusters?format=json` gives per-host gauges and health flags; zero values are
//! *omitted* and numbers are strings (measured, envoy.md §5). `GET /stats?format=json` gives
//! the cluster counters (`upstream_cx_connect_fail`, `upstream_cx_connect_attempts_exceeded`, …).
//! The admin port must be bound to loopback; this client speaks just enough HTTP/1.1 for it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::XdsError;
use crate::resources::resource_name;

/// One upstream host of one cluster as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// `ip:port` (or `name:port` for DNS hosts as resolved).
    pub address: String,
    pub cx_active: u64,
    pub cx_total: u64,
    pub cx_connect_fail: u64,
    /// `HEALTHY`, `DRAINING`, … as EDS set it.
    pub eds_health_status: String,
    /// Removed from config but kept while health checks pass (envoy.md §2.1).
    pub pending_dynamic_removal: bool,
}

/// A cluster from `/clusters?format=json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub name: String,
    pub hosts: Vec<HostStatus>,
}

/// What one node does with route `R`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub route: String,
    pub endpoints: Vec<HostStatus>,
    /// Includes connections on hosts already removed from the list.
    pub upstream_cx_active: u64,
    pub upstream_cx_total: u64,
    /// Refused attempts: during a hold, the parked retries.
    pub upstream_cx_connect_fail: u64,
    /// Connections closed because the hold budget ran out (flag URX).
    pub upstream_cx_connect_attempts_exceeded: u64,
    /// Connections closed because no host was healthy (flag UH).
    pub upstream_cx_none_healthy: u64,
    /// Connections the upstream closed (a server that went away resets its clients).
    #[serde(default)]
    pub upstream_cx_destroy_remote: u64,
}

/// Client of one node's admin API.
#[derive(Debug, Clone)]
pub struct Admin {
    addr: String,
}

impl Admin {
    pub fn new(addr: impl Into<String>) -> Self {
        Admin { addr: addr.into() }
    }

    /// GET `path`, returning the body of a 200 response.
    pub async fn get(&self, path: &str) -> Result<String, XdsError> {
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(&self.addr).await?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.addr
            );
            s.write_all(req.as_bytes()).await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let raw = tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .map_err(|_| self.err("timed out after 5 s"))?
            .map_err(|e| self.err(e))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| self.err("malformed HTTP response"))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(self.err(head.lines().next().unwrap_or("")));
        }
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Ok(if chunked {
            dechunk(body)
        } else {
            body.to_string()
        })
    }

    pub async fn clusters(&self) -> Result<Vec<ClusterStatus>, XdsError> {
        parse_clusters(&self.get("/clusters?format=json").await?).map_err(|e| self.err(e))
    }

    /// Counters and gauges whose name matches the RE2 `filter`.
    pub async fn stats(&self, filter: &str) -> Result<BTreeMap<String, Value>, XdsError> {
        let path = format!("/stats?format=json&filter={}", url_escape(filter));
        parse_stats(&self.get(&path).await?).map_err(|e| self.err(e))
    }

    /// Route `route` on this node: per-endpoint connections and the cluster's counters.
    pub async fn route_status(&self, route: &str) -> Result<RouteStatus, XdsError> {
        let name = resource_name(route);
        let clusters = self.clusters().await?;
        let prefix = format!("cluster.{name}.");
        let stats = self
            .stats(&format!("^{}", prefix.replace('.', "\\.")))
            .await?;
        let stat = |s: &str| stats.get(&format!("{prefix}{s}")).map(as_u64).unwrap_or(0);
        Ok(RouteStatus {
            route: route.to_string(),
            endpoints: clusters
                .into_iter()
                .find(|c| c.name == name)
                .map(|c| c.hosts)
                .unwrap_or_default(),
            upstream_cx_active: stat("upstream_cx_active"),
            upstream_cx_total: stat("upstream_cx_total"),
            upstream_cx_connect_fail: stat("upstream_cx_connect_fail"),
            upstream_cx_connect_attempts_exceeded: stat("upstream_cx_connect_attempts_exceeded"),
            upstream_cx_none_healthy: stat("upstream_cx_none_healthy"),
            upstream_cx_destroy_remote: stat("upstream_cx_destroy_remote"),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> XdsError {
        XdsError::Admin {
            addr: self.addr.clone(),
            message: e.to_string(),
        }
    }
}

/// Numbers arrive as JSON numbers in `/stats` and as strings in `/clusters`; zero is omitted.
fn as_u64(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Parse `/clusters?format=json` (`envoy.admin.v3.Clusters` as JSON).
pub fn parse_clusters(json: &str) -> Result<Vec<ClusterStatus>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for c in v["cluster_statuses"].as_array().into_iter().flatten() {
        let mut hosts = Vec::new();
        for h in c["host_statuses"].as_array().into_iter().flatten() {
            let sa = &h["address"]["socket_address"];
            let stat = |name: &str| {
                h["stats"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|s| s["name"] == name)
                    .map(|s| as_u64(&s["value"]))
                    .unwrap_or(0)
            };
            hosts.push(HostStatus {
                address: format!(
                    "{}:{}",
                    sa["address"].as_str().unwrap_or(""),
                    sa["port_value"].as_u64().unwrap_or(0)
                ),
                cx_active: stat("cx_active"),
                cx_total: stat("cx_total"),
                cx_connect_fail: stat("cx_connect_fail"),
                eds_health_status: h["health_status"]["eds_health_status"]
                    .as_str()
                    .unwrap_or("HEALTHY")
                    .to_string(),
                pending_dynamic_removal: h["health_status"]["pending_dynamic_removal"]
                    .as_bool()
                    .unwrap_or(false),
            });
        }
        out.push(ClusterStatus {
            name: c["name"].as_str().unwrap_or("").to_string(),
            hosts,
        });
    }
    Ok(out)
}

/// Parse `/stats?format=json`: `{"stats":[{"name":…,"value":…}, {"histograms":…}]}`.
pub fn parse_stats(json: &str) -> Result<BTreeMap<String, Value>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(v["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["name"].as_str()?.to_string(), s.get("value")?.clone())))
        .collect())
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

pub(crate) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shape measured on Envoy 1.40 (envoy.md §5): zero stats omitted, numbers as strings.
    const CLUSTERS: &str = r#"{"cluster_statuses":[{"name":"pg.orders","added_via_api":true,
      "host_statuses":[
        {"address":{"socket_address":{"address":"127.0.0.1","port_value":16001}},
         "stats":[{"name":"cx_connect_fail"},{"name":"cx_total","value":"3"},
                  {"name":"cx_active","type":"GAUGE","value":"1"}],
         "health_status":{"eds_health_status":"DRAINING"},"weight":1},
        {"address":{"socket_address":{"address":"127.0.0.1","port_value":16002}},
         "stats":[{"name":"cx_active","type":"GAUGE"}],
         "health_status":{"eds_health_status":"HEALTHY"},"weight":1}]}]}"#;

    #[test]
    fn clusters_json_with_omitted_zeros() {
        let c = parse_clusters(CLUSTERS).unwrap();
        assert_eq!(c[0].name, "pg.orders");
        let h = &c[0].hosts;
        assert_eq!(h[0].address, "127.0.0.1:16001");
        assert_eq!(
            (h[0].cx_active, h[0].cx_total, h[0].cx_connect_fail),
            (1, 3, 0)
        );
        assert_eq!(h[0].eds_health_status, "DRAINING");
        assert_eq!(
            (h[1].cx_active, h[1].eds_health_status.as_str()),
            (0, "HEALTHY")
        );
    }

    #[test]
    fn stats_json_and_chunked_bodies() {
        let s = parse_stats(
            r#"{"stats":[{"name":"cluster.pg.orders.upstream_cx_active","value":1},
                {"name":"cluster.pg.orders.version_text","value":"2"},{"histograms":{}}]}"#,
        )
        .unwrap();
        assert_eq!(as_u64(&s["cluster.pg.orders.upstream_cx_active"]), 1);
        assert_eq!(s["cluster.pg.orders.version_text"], "2");
        assert_eq!(dechunk("4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"), "abcdef");
        assert_eq!(url_escape("^cluster\\.pg"), "%5Ecluster%5C.pg");
    }
}
