//! The expected Envoy nodes of a route, and where every node stands against the served version.
//!
//! A route's *expected set* (configuration: [`crate::Config::expected_nodes`], `godwit dal serve
//! --expect-nodes ROUTE=NODE,NODE`, persisted in the state file) names the nodes that must run
//! it. Against it, every node is one of:
//!
//! | outcome | meaning | counts as |
//! |---|---|---|
//! | `acked` | connected, runs the current version | — |
//! | `nacked` | connected, rejected the current version (it keeps the previous one) | not acked |
//! | `behind` | connected, has not ACKed the current version (yet) | [`Convergence::behind`] |
//! | `disconnected` | connected since this control plane started, not now | absent if expected |
//! | `never_connected` | expected, and not seen since this control plane started | absent |
//!
//! `all_acked` means every expected node ACKed the current version, and every connected one
//! too (an unexpected node that is connected routes traffic all the same). A disconnected node is
//! absent whatever it ACKed before: the control plane cannot vouch for a node it does not talk
//! to (it may have restarted with no config, or be partitioned), and it would miss the next
//! publish — a rollback included. With no expected set, the old rule holds: at least one node is
//! connected and every connected node ACKed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::XdsError;
use crate::model::validate_route_name;
use crate::plane::{NodeState, Snapshot};

/// One node's state against a version: in a publish report and in `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: String,
    /// The node is in the route's expected set.
    #[serde(default)]
    pub expected: bool,
    pub outcome: NodeOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum NodeOutcome {
    Acked,
    Nacked {
        type_name: String,
        detail: String,
    },
    /// Connected, and has not ACKed the current version (yet).
    Behind,
    /// Not connected now: it gets the version when it reconnects.
    Disconnected,
    /// Expected, but has not connected since this control plane started.
    NeverConnected,
}

impl NodeOutcome {
    /// Not connected: absent, when the node is expected.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            NodeOutcome::Disconnected | NodeOutcome::NeverConnected
        )
    }
}

/// Where a route's nodes stand against the served version.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Convergence {
    /// The route's expected set; empty when none is configured.
    pub expected_nodes: Vec<String>,
    /// Every node that connected since the control plane started, and every expected one.
    pub nodes: Vec<NodeReport>,
    /// Expected nodes that are not connected (never connected, or disconnected).
    pub absent: Vec<String>,
    /// Connected nodes that have not ACKed the current version.
    pub behind: Vec<String>,
    /// Connected nodes outside a configured expected set (reported, and waited on).
    pub unexpected: Vec<String>,
    /// Every expected node (and every connected one) ACKed the current version; with no
    /// expected set, at least one node is connected and every connected one ACKed.
    pub all_acked: bool,
}

/// Where every node stands against `snap`, given the route's expected set.
pub(crate) fn converge(
    nodes: &BTreeMap<String, NodeState>,
    snap: &Snapshot,
    expected: &[String],
) -> Convergence {
    let mut reports: Vec<NodeReport> = nodes
        .iter()
        .map(|(id, n)| NodeReport {
            node: id.clone(),
            expected: expected.contains(id),
            outcome: if !n.connected {
                NodeOutcome::Disconnected
            } else if let Some((t, nack)) = n.nack_of(snap) {
                NodeOutcome::Nacked {
                    type_name: t.name().to_string(),
                    detail: nack.detail.clone(),
                }
            } else if n.applied(snap) {
                NodeOutcome::Acked
            } else {
                NodeOutcome::Behind
            },
        })
        .collect();
    reports.extend(
        expected
            .iter()
            .filter(|id| !nodes.contains_key(*id))
            .map(|id| NodeReport {
                node: id.clone(),
                expected: true,
                outcome: NodeOutcome::NeverConnected,
            }),
    );
    reports.sort_by(|a, b| a.node.cmp(&b.node));
    let names = |f: &dyn Fn(&NodeReport) -> bool| -> Vec<String> {
        reports
            .iter()
            .filter(|r| f(r))
            .map(|r| r.node.clone())
            .collect()
    };
    let absent = names(&|r| r.expected && r.outcome.is_gone());
    let behind = names(&|r| r.outcome == NodeOutcome::Behind);
    let unexpected = if expected.is_empty() {
        Vec::new()
    } else {
        names(&|r| !r.expected && !r.outcome.is_gone())
    };
    let connected_acked = reports
        .iter()
        .filter(|r| !r.outcome.is_gone())
        .all(|r| r.outcome == NodeOutcome::Acked);
    let any_acked = reports.iter().any(|r| r.outcome == NodeOutcome::Acked);
    Convergence {
        expected_nodes: expected.to_vec(),
        all_acked: connected_acked && absent.is_empty() && (!expected.is_empty() || any_acked),
        nodes: reports,
        absent,
        behind,
        unexpected,
    }
}

/// An expected set as stored: sorted, without duplicates or blanks.
pub(crate) fn normalize(route: &str, nodes: &[String]) -> Result<Vec<String>, XdsError> {
    validate_route_name(route)?;
    let mut set: Vec<String> = nodes
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    set.sort();
    set.dedup();
    Ok(set)
}

/// `ROUTE=NODE,NODE` (the argument of `godwit dal serve --expect-nodes`); `ROUTE=` is the empty
/// set, which clears a persisted one.
pub fn parse_expected_nodes(arg: &str) -> Result<(String, Vec<String>), XdsError> {
    let invalid = |message: String| XdsError::Invalid {
        route: arg.split('=').next().unwrap_or("").to_string(),
        message,
    };
    let Some((route, nodes)) = arg.split_once('=') else {
        return Err(invalid(format!(
            "expected nodes {arg:?}: write ROUTE=NODE,NODE (Envoy node ids, e.g. \
             orders-db=envoy-a,envoy-b)"
        )));
    };
    let route = route.trim();
    let nodes: Vec<String> = nodes.split(',').map(str::to_string).collect();
    Ok((route.to_string(), normalize(route, &nodes)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Addr, RouteSpec};
    use crate::plane::{NodeState, Snapshot};
    use crate::resources::{ResourceSet, ResourceType};

    fn snapshot() -> Snapshot {
        let mut routes = BTreeMap::new();
        routes.insert(
            "orders".to_string(),
            RouteSpec::new(Addr::new("127.0.0.1", 15432), Addr::new("10.0.0.1", 5432)),
        );
        Snapshot {
            version: 2,
            type_versions: [2, 2, 2],
            resources: ResourceSet::build(&routes),
        }
    }

    fn node(connected: bool, acked: Option<u64>) -> NodeState {
        let mut n = NodeState {
            cluster: "c".into(),
            admin: None,
            stream: 1,
            connected,
            types: Default::default(),
        };
        for t in ResourceType::ALL {
            let ts = &mut n.types[t.index()];
            ts.subscribed = true;
            ts.acked_version = acked;
            ts.acked_names = vec!["pg.orders".into()];
        }
        n
    }

    fn outcome(c: &Convergence, id: &str) -> NodeOutcome {
        c.nodes
            .iter()
            .find(|r| r.node == id)
            .unwrap()
            .outcome
            .clone()
    }

    #[test]
    fn absent_behind_and_unexpected_against_the_expected_set() {
        let snap = snapshot();
        let mut nodes = BTreeMap::new();
        nodes.insert("a".to_string(), node(true, Some(2)));
        nodes.insert("b".to_string(), node(true, Some(1)));
        nodes.insert("c".to_string(), node(false, Some(2)));
        nodes.insert("x".to_string(), node(true, Some(2)));
        let expected: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let c = converge(&nodes, &snap, &expected);
        assert_eq!(outcome(&c, "a"), NodeOutcome::Acked);
        assert_eq!(outcome(&c, "b"), NodeOutcome::Behind);
        // c ACKed version 2 before it went away: absent all the same.
        assert_eq!(outcome(&c, "c"), NodeOutcome::Disconnected);
        assert_eq!(outcome(&c, "d"), NodeOutcome::NeverConnected);
        assert_eq!(
            (c.absent.as_slice(), c.behind.as_slice()),
            (&["c".to_string(), "d".into()][..], &["b".to_string()][..])
        );
        assert_eq!(c.unexpected, ["x"]);
        assert!(!c.all_acked);

        // Only a and x connected and current, b and c gone, d never seen.
        nodes.insert("b".to_string(), node(true, Some(2)));
        let ab: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let c = converge(&nodes, &snap, &ab);
        assert!(c.all_acked, "{c:?}");
        // An unexpected connected node that is behind keeps all_acked false: it routes traffic.
        nodes.insert("x".to_string(), node(true, Some(1)));
        let c = converge(&nodes, &snap, &ab);
        assert!(!c.all_acked && c.behind == ["x"], "{c:?}");
    }

    #[test]
    fn without_an_expected_set_every_connected_node_counts() {
        let snap = snapshot();
        let mut nodes = BTreeMap::new();
        let c = converge(&nodes, &snap, &[]);
        assert!(!c.all_acked, "no node at all is not 'all acked'");
        nodes.insert("a".to_string(), node(true, Some(2)));
        nodes.insert("gone".to_string(), node(false, Some(1)));
        let c = converge(&nodes, &snap, &[]);
        assert!(
            c.all_acked && c.absent.is_empty() && c.unexpected.is_empty(),
            "{c:?}"
        );
        assert_eq!(outcome(&c, "gone"), NodeOutcome::Disconnected);
    }

    #[test]
    fn expected_nodes_arguments() {
        assert_eq!(
            parse_expected_nodes("orders-db=envoy-b, envoy-a,envoy-b").unwrap(),
            (
                "orders-db".to_string(),
                vec!["envoy-a".to_string(), "envoy-b".into()]
            )
        );
        assert_eq!(
            parse_expected_nodes("orders-db=").unwrap(),
            ("orders-db".to_string(), vec![])
        );
        let e = parse_expected_nodes("orders-db").unwrap_err();
        assert!(e.to_string().contains("ROUTE=NODE,NODE"), "{e}");
        assert!(parse_expected_nodes("orders.db=a").is_err());
    }
}
