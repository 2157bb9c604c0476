//! Who can connect and write: sessions, security groups, blocked roles, routes.

use godwit_engine::clock::Millis;
use serde::{Deserialize, Serialize};

use super::SimState;

/// A backend on a simulated database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub pid: i64,
    /// The RDS instance or Aurora cluster id the session is connected to.
    pub db: String,
    pub role: String,
    pub application: bool,
    pub backend_start: Millis,
    /// `active`, `idle`, `idle in transaction`.
    pub state: String,
    pub xact_start: Option<Millis>,
    /// `pg_terminate_backend` was called; the backend exits at this time.
    pub exits_at: Option<Millis>,
    /// The Envoy node (index) an application session came through.
    pub via: usize,
}

impl SimState {
    pub fn source_id(&self) -> &str {
        &self.sc.source.id
    }

    /// The source is up (accepts writes from the engine itself: heartbeats, switches).
    pub fn source_up(&self) -> bool {
        self.rds
            .instances
            .get(&self.sc.source.id)
            .is_some_and(|i| matches!(i.status.as_str(), "available" | "modifying" | "backing-up"))
    }

    /// Can `db` (instance or cluster id) take application writes right now?
    pub fn writable(&self, db: &str) -> bool {
        if let Some(i) = self.rds.instances.get(db) {
            return i.cluster_id.is_none() && db == self.sc.source.id && self.source_up();
        }
        self.rds.clusters.get(db).is_some_and(|c| {
            c.replication_source_identifier.is_none()
                && c.status == "available"
                && c.members.iter().any(|m| {
                    self.rds
                        .instances
                        .get(m)
                        .is_some_and(|i| i.status == "available")
                })
        })
    }

    /// Would a new application connection to `db` succeed (network and login)?
    pub fn accepts_app(&self, db: &str) -> bool {
        if db == self.sc.source.id {
            let Some(i) = self.rds.instances.get(db) else {
                return false;
            };
            // Quarantine groups have no ingress; a group with an ingress rule lets clients in.
            let reachable = i
                .security_groups
                .iter()
                .any(|g| self.groups.get(g).is_some_and(|g| !g.ingress.is_empty()));
            return reachable && self.source_up();
        }
        self.writable(db)
    }

    /// The current LSN of a promoted cluster: its timeline continues from where replay
    /// stopped.
    pub fn target_lsn(&self, db: &str) -> u64 {
        self.promoted_at_lsn.get(db).copied().unwrap_or(0)
            + self.app_bytes.get(db).copied().unwrap_or(0)
    }

    /// Where the route sends new connections once every connected Envoy node agrees: its
    /// newest version they all ACKed (none while that version holds connections).
    pub fn app_target(&self) -> Option<String> {
        let route = self.app_route()?;
        let v = self.effective(&route)?;
        (!v.hold).then(|| v.target.clone())
    }

    /// The route applications use: the one named after the source, else the first.
    pub fn app_route(&self) -> Option<String> {
        if self.routes.contains_key(&self.sc.source.id) {
            return Some(self.sc.source.id.clone());
        }
        self.routes.keys().next().cloned()
    }

    /// Application clients are spread evenly over the Envoy nodes; each node forwards a new
    /// connection by the newest route version it ACKed — a disconnected node keeps its last
    /// one. Returns, per node: (clients it carries, clients connected, where it forwards them;
    /// `None` while its version holds).
    pub fn clients_per_node(&self) -> Vec<(u32, u32, Option<String>)> {
        let n = self.nodes.len().max(1) as u32;
        let total = self.sc.source.sessions;
        let route = self.app_route();
        (0..n)
            .map(|j| {
                let wanted = total / n + u32::from(j < total % n);
                let open = self
                    .sessions
                    .iter()
                    .filter(|s| s.application && s.via == j as usize)
                    .count() as u32;
                let target = route.as_deref().and_then(|r| {
                    let node = self.nodes.get(j as usize)?;
                    let v = self.routes.get(r)?.versions.iter().rev().find(|v| {
                        self.answer(node, r, v.version) == Some(super::net::Answer::Ack)
                    })?;
                    (!v.hold).then(|| v.target.clone())
                });
                (wanted, open, target)
            })
            .collect()
    }

    pub(super) fn connect_sessions(&mut self) {
        let roles: Vec<String> = self
            .sc
            .source
            .app_roles
            .iter()
            .filter(|r| !self.blocked_roles.contains(*r))
            .cloned()
            .collect();
        if roles.is_empty() {
            return;
        }
        let mut connected: Vec<(String, u32)> = Vec::new();
        for (j, (wanted, open, target)) in self.clients_per_node().into_iter().enumerate() {
            let Some(db) = target.filter(|db| self.accepts_app(db)) else {
                continue;
            };
            if wanted > open {
                match connected.iter_mut().find(|(d, _)| *d == db) {
                    Some((_, n)) => *n += wanted - open,
                    None => connected.push((db.clone(), wanted - open)),
                }
            }
            for i in open..wanted {
                let pid = self.next_pid;
                self.next_pid += 1;
                self.sessions.push(Session {
                    pid,
                    db: db.clone(),
                    role: roles[pid as usize % roles.len()].clone(),
                    application: true,
                    backend_start: self.now,
                    state: if i % 4 == 0 { "active" } else { "idle" }.into(),
                    xact_start: None,
                    exits_at: None,
                    via: j,
                });
            }
        }
        for (db, n) in connected {
            self.note(format!("{n} application sessions connected to {db}"));
        }
    }

    pub(super) fn end_sessions(&mut self) {
        let now = self.now;
        self.sessions.retain(|s| s.exits_at.is_none_or(|t| t > now));
    }

    /// Every session on `db` ends (reboot, crash, delete).
    pub fn drop_sessions(&mut self, db: &str) {
        let n = self.sessions.len();
        self.sessions.retain(|s| s.db != db);
        let ended = n - self.sessions.len();
        if ended > 0 {
            self.note(format!("{ended} sessions on {db} ended"));
        }
    }
}
