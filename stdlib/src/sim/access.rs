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

/// What the stepping loop reads of [`SimState::sessions`] at every step — writers, connections
/// on the source, application sessions per Envoy node, the next exit — gathered in one pass
/// when the sessions changed instead of several passes per step: a simulated day is ~10 000
/// steps over up to hundreds of sessions, and those passes were a third of a fleet plan's CPU.
///
/// Sessions change between steps only through API calls (and [`SimState::advance_to`]
/// refreshes the summary before it steps) and within a step only where the model connects,
/// ends or drops them, or fires a fault; each of those marks it stale.
#[derive(Debug, Default)]
pub(super) struct SessionSummary {
    pub(super) fresh: bool,
    /// Each database with application sessions, in order of first appearance: whether one of
    /// them never exits, and the latest `exits_at` of the others.
    pub(super) app_dbs: Vec<(String, bool, Millis)>,
    /// Sessions (of any kind) on the source.
    pub(super) on_source: usize,
    /// Application sessions per Envoy node (`via`).
    pub(super) app_per_node: Vec<u32>,
    /// The earliest `exits_at` of any session.
    pub(super) first_exit: Option<Millis>,
}

impl SimState {
    /// Bring [`SessionSummary`] up to date with `sessions`.
    pub(super) fn refresh_sessions(&mut self) {
        if self.summary.fresh {
            return;
        }
        let sum = &mut self.summary;
        sum.app_dbs.clear();
        sum.app_per_node.clear();
        sum.on_source = 0;
        sum.first_exit = None;
        for s in &self.sessions {
            if s.db == self.sc.source.id {
                sum.on_source += 1;
            }
            if let Some(t) = s.exits_at {
                sum.first_exit = Some(sum.first_exit.map_or(t, |f| f.min(t)));
            }
            if !s.application {
                continue;
            }
            if sum.app_per_node.len() <= s.via {
                sum.app_per_node.resize(s.via + 1, 0);
            }
            sum.app_per_node[s.via] += 1;
            let entry = match sum.app_dbs.iter_mut().find(|(db, _, _)| *db == s.db) {
                Some(e) => e,
                None => {
                    sum.app_dbs.push((s.db.clone(), false, Millis::MIN));
                    sum.app_dbs.last_mut().expect("just pushed")
                }
            };
            match s.exits_at {
                None => entry.1 = true,
                Some(t) => entry.2 = entry.2.max(t),
            }
        }
        sum.fresh = true;
    }

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
            // Applications connect from the VPC's address range, not from godwit's group: a
            // quarantine that admits godwit's group keeps them out.
            return self.admits(i, &[], true) && self.source_up();
        }
        self.writable(db)
    }

    /// The security groups in force on instance `id` (until a change is active, the previous
    /// ones), as the world has them.
    pub fn groups_of_instance(&self, id: &str) -> Vec<crate::ec2::SecurityGroup> {
        let Some(inst) = self.rds.instances.get(id) else {
            return Vec::new();
        };
        let in_force = self
            .groups_in_force
            .get(id)
            .unwrap_or(&inst.security_groups);
        in_force
            .iter()
            .filter_map(|g| self.groups.get(g).cloned())
            .collect()
    }

    /// The security groups of cluster `id`, as the world has them.
    pub fn groups_of_cluster(&self, id: &str) -> Vec<crate::ec2::SecurityGroup> {
        self.rds.clusters.get(id).map_or_else(Vec::new, |c| {
            c.security_groups
                .iter()
                .filter_map(|g| self.groups.get(g).cloned())
                .collect()
        })
    }

    /// Does one of `inst`'s security groups admit a client with `groups` (inside the VPC's
    /// range when `in_vpc`) on the instance's port?
    /// Until a change of its groups is active, the previous groups decide.
    pub fn admits(&self, inst: &crate::rds::DbInstance, groups: &[String], in_vpc: bool) -> bool {
        let in_force = self
            .groups_in_force
            .get(&inst.id)
            .unwrap_or(&inst.security_groups);
        in_force.iter().any(|g| {
            self.groups.get(g).is_some_and(|g| {
                g.ingress
                    .iter()
                    .any(|r| crate::ec2::rule_admits(r, inst.port, groups, in_vpc))
            })
        })
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
        let total = self.app_sessions_wanted();
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

    /// How many application sessions the source has now: the recorded `DatabaseConnections`
    /// (less the connections that are not the application's) when a recording is replayed,
    /// else `source.sessions`.
    pub fn app_sessions_wanted(&self) -> u32 {
        match self.replay.as_ref().and_then(|r| r.connections(self.now)) {
            Some(n) => n.saturating_sub(self.sc.source.internal_connections),
            None => self.sc.source.sessions,
        }
    }

    /// A replayed recording's sessions that are no longer recorded disconnect (the newest
    /// first, on each node): the application closed them.
    fn disconnect_surplus(&mut self) {
        if self.replay.is_none() {
            return;
        }
        for (j, (wanted, open, _)) in self.clients_per_node().into_iter().enumerate() {
            let mut surplus = open.saturating_sub(wanted);
            let mut i = self.sessions.len();
            while surplus > 0 && i > 0 {
                i -= 1;
                let s = &self.sessions[i];
                if s.application && s.via == j && s.exits_at.is_none() {
                    self.sessions.remove(i);
                    surplus -= 1;
                }
            }
        }
    }

    pub(super) fn connect_sessions(&mut self) {
        // Usually every node already carries the clients it wants: nothing connects, and the
        // slow path below (routes, security groups, per-node counts) would change nothing.
        if self.replay.is_none() && !self.wants_sessions() {
            return;
        }
        self.summary.fresh = false;
        self.disconnect_surplus();
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

    /// Does some Envoy node carry fewer application clients than it wants (see
    /// [`Self::clients_per_node`])?
    fn wants_sessions(&mut self) -> bool {
        self.refresh_sessions();
        let n = self.nodes.len().max(1) as u32;
        let total = self.app_sessions_wanted();
        (0..n).any(|j| {
            let wanted = total / n + u32::from(j < total % n);
            let open = self
                .summary
                .app_per_node
                .get(j as usize)
                .copied()
                .unwrap_or(0);
            wanted > open
        })
    }

    pub(super) fn end_sessions(&mut self) {
        let now = self.now;
        self.refresh_sessions();
        if self.summary.first_exit.is_none_or(|t| t > now) {
            return;
        }
        self.sessions.retain(|s| s.exits_at.is_none_or(|t| t > now));
        self.summary.fresh = false;
    }

    /// Every session on `db` ends (reboot, crash, delete).
    pub fn drop_sessions(&mut self, db: &str) {
        self.summary.fresh = false;
        self.godwit_conns.remove(db);
        let n = self.sessions.len();
        self.sessions.retain(|s| s.db != db);
        let ended = n - self.sessions.len();
        if ended > 0 {
            self.note(format!("{ended} sessions on {db} ended"));
        }
    }
}

/// godwit opens (or reuses) its connection to `db` for `area::op`, as AWS would let it:
///
/// * without database access in this world, every SQL call is refused;
/// * a connection godwit already holds survives a security-group change (groups are stateful)
///   and ends with the server's sessions (a reboot);
/// * a new connection to an RDS instance needs one of its groups to admit godwit's group on
///   its port — a deny-all quarantine locks godwit out exactly like the application (a connect
///   timeout, retryable: nothing answers);
/// * an Aurora cluster refuses godwit's IAM login unless IAM database authentication is
///   enabled on it (`CreateDBCluster` defaults it to off).
pub fn godwit_login(
    st: &mut super::Api<'_>,
    area: &str,
    op: &str,
    db: &str,
) -> Result<(), godwit_engine::PrimitiveError> {
    use godwit_engine::{ErrorKind, PrimitiveError};
    if !st.sc.godwit.db_access {
        return Err(PrimitiveError::new(
            area,
            op,
            ErrorKind::Invalid,
            format!(
                "{area}::{op} needs database access, and this world has none (credential-less)"
            ),
            "decide from AWS APIs and CloudWatch (the runbook's credential-less evidence), or \
             configure IAM database access",
        )
        .with_retryable(false));
    }
    if st.godwit_conns.contains(db) {
        return Ok(());
    }
    if let Some(i) = st.rds.instances.get(db) {
        if i.status == "rebooting" {
            return Err(PrimitiveError::new(
                area,
                op,
                ErrorKind::Timeout,
                format!("cannot connect to {db}: the instance is rebooting"),
                "retry once it is available",
            ));
        }
        if i.cluster_id.is_none() {
            let me = st.sc.godwit.security_group.clone();
            if !st.admits(i, std::slice::from_ref(&me), true) {
                return Err(PrimitiveError::new(
                    area,
                    op,
                    ErrorKind::Timeout,
                    format!(
                        "cannot connect to {db}: connection timed out — none of its security \
                         groups ({}) admits godwit's {me} on port {}",
                        i.security_groups.join(", "),
                        i.port
                    ),
                    "a quarantine must admit godwit's security group on the database port \
                     (ec2::ensure_quarantine_group with admit), or decide without SQL",
                ));
            }
        }
    } else if st.created(db).is_some_and(|c| !c.roles) {
        // A new cluster has only its master user (password in Secrets Manager): godwit's own
        // IAM role exists there once pg::copy_schema created the source's roles.
        return Err(PrimitiveError::new(
            area,
            op,
            ErrorKind::Conflict,
            format!(
                "cannot log in to {db}: FATAL: role \"godwit\" does not exist (28000) — a \
                 cluster rds::create_cluster made has only its master user until its roles are \
                 created"
            ),
            "copy the roles and the schema first (pg::copy_schema from the source): it signs in \
             once as the master user, its password read from Secrets Manager, and creates the \
             source's roles for IAM sign-in",
        )
        .with_retryable(false));
    } else if let Some(c) = st.rds.clusters.get(db)
        && !c.iam_auth
    {
        return Err(PrimitiveError::new(
            area,
            op,
            ErrorKind::Conflict,
            format!(
                "cannot log in to {db}: FATAL: PAM authentication failed for user \"godwit\" \
                 (28P01) — IAM database authentication is not enabled on the cluster"
            ),
            "create the cluster with IAM database authentication (the standard runbook \
             copies the source's setting), or enable it (modify-db-cluster \
             --enable-iam-database-authentication)",
        )
        .with_retryable(false));
    }
    st.godwit_conns.insert(db.to_string());
    Ok(())
}
