//! Envoy routes and nodes, and CDC consumers, as the simulator models them.
//!
//! A route publishes numbered versions; each connected node ACKs a version after its ACK
//! latency (jittered by the seeded RNG), or NACKs it under an `envoy-nack` fault, or never
//! answers while disconnected. New application connections follow the newest version every
//! connected node has ACKed (Envoy never moves an established session). A held version parks
//! new connections.

use std::collections::BTreeMap;

use godwit_engine::clock::Millis;
use serde::{Deserialize, Serialize};

use super::SimState;
use super::scenario::{FaultKind, dur_ms};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteVersion {
    pub version: u64,
    pub target: String,
    pub hold: bool,
    pub draining: Vec<String>,
    pub published_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteState {
    pub name: String,
    /// Every published version, oldest first; the last is the current one.
    pub versions: Vec<RouteVersion>,
}

impl RouteState {
    pub fn current(&self) -> &RouteVersion {
        self.versions
            .last()
            .unwrap_or_else(|| unreachable!("a route has a version"))
    }
}

/// A node's answer to one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Ack,
    Nack,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub id: String,
    pub ack_latency: Millis,
    pub connected: bool,
    /// route → version → (answer, when it arrives).
    pub answers: BTreeMap<String, BTreeMap<u64, (Answer, Millis)>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    pub name: String,
    pub slot: String,
    /// Where its slot lives: the source, or an Aurora cluster after the CDC restore.
    pub db: String,
    /// `running` or `paused`.
    pub state: String,
    pub position: u64,
}

impl SimState {
    pub(super) fn seed_net(&mut self) {
        let nodes = self.sc.envoy_nodes();
        for n in nodes {
            self.nodes.push(NodeState {
                id: n.id.clone(),
                ack_latency: dur_ms(&n.ack_latency),
                connected: true,
                answers: BTreeMap::new(),
            });
        }
        let routes = if self.sc.envoy.routes.is_empty() {
            vec![(self.sc.source.id.clone(), self.sc.source.id.clone())]
        } else {
            self.sc
                .envoy
                .routes
                .iter()
                .map(|r| (r.name.clone(), r.target.clone()))
                .collect()
        };
        for (name, target) in routes {
            let v = RouteVersion {
                version: 1,
                target,
                hold: false,
                draining: Vec::new(),
                published_at: self.now,
            };
            self.routes.insert(
                name.clone(),
                RouteState {
                    name: name.clone(),
                    versions: vec![v],
                },
            );
            // Version 1 is what the nodes already run.
            for n in &mut self.nodes {
                n.answers
                    .entry(name.clone())
                    .or_default()
                    .insert(1, (Answer::Ack, self.now));
            }
        }
        let lsn = self.lsn;
        let src = self.sc.source.id.clone();
        for c in self.sc.cdc.consumers.clone() {
            self.consumers.push(Consumer {
                name: c.name,
                slot: c.slot,
                db: src.clone(),
                state: "running".into(),
                position: lsn,
            });
        }
    }

    /// Publish a new version of `route`; nodes answer after their latency.
    pub fn publish(
        &mut self,
        route: &str,
        target: String,
        hold: bool,
        draining: Vec<String>,
    ) -> u64 {
        let now = self.now;
        let Some(r) = self.routes.get_mut(route) else {
            return 0;
        };
        let version = r.current().version + 1;
        r.versions.push(RouteVersion {
            version,
            target,
            hold,
            draining,
            published_at: now,
        });
        let nack_all = self
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::EnvoyNack && f.active(now) && f.target.is_none());
        let nack_nodes: Vec<String> = self
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::EnvoyNack && f.active(now))
            .filter_map(|f| f.target.clone())
            .collect();
        for i in 0..self.nodes.len() {
            let jitter = 1.0 + 0.25 * self.rng.unit();
            let n = &mut self.nodes[i];
            if !n.connected {
                continue;
            }
            let answer = if nack_all || nack_nodes.contains(&n.id) {
                Answer::Nack
            } else {
                Answer::Ack
            };
            let at = now + (n.ack_latency as f64 * jitter) as Millis;
            n.answers
                .entry(route.to_string())
                .or_default()
                .insert(version, (answer, at));
        }
        self.note(format!("route {route} version {version} published"));
        version
    }

    /// The answer of `node` to `route`@`version` as of now.
    pub fn answer(&self, node: &NodeState, route: &str, version: u64) -> Option<Answer> {
        node.answers
            .get(route)?
            .get(&version)
            .filter(|(_, at)| *at <= self.now)
            .map(|(a, _)| *a)
    }

    /// The newest version every connected node has ACKed: what new connections follow.
    pub fn effective(&self, route: &str) -> Option<&RouteVersion> {
        let r = self.routes.get(route)?;
        r.versions.iter().rev().find(|v| {
            self.nodes
                .iter()
                .filter(|n| n.connected)
                .all(|n| self.answer(n, route, v.version) == Some(Answer::Ack))
        })
    }

    pub(super) fn fire_net_fault(&mut self, kind: FaultKind, target: Option<&str>) {
        if kind == FaultKind::EnvoyNodeDisconnect {
            for n in &mut self.nodes {
                if target.is_none_or(|t| t == n.id) {
                    n.connected = false;
                }
            }
        }
    }

    /// Consumers move their slots; a paused consumer's slot goes inactive.
    pub(super) fn step_consumers(&mut self) {
        let now = self.now;
        let src = &self.sc.source.id;
        for c in &mut self.consumers {
            if c.db != *src {
                continue;
            }
            if let Some(slot) = self.slots.iter_mut().find(|s| s.name == c.slot) {
                let stale = slot.inactive_since.is_some() && c.state == "running" && !slot.active;
                if c.state == "running" && !stale {
                    c.position = slot.confirmed_flush_lsn;
                } else if slot.active {
                    slot.active = false;
                    slot.inactive_since = Some(now);
                }
            }
        }
    }
}
