//! Logical replication as the simulator models it: publications, pgoutput slots, and
//! subscriptions on the source that stream a promoted Aurora cluster's writes back to it (the
//! zero-loss rollback), with their apply worker, its errors and the faults that slow or break
//! it; the table definitions logical replication compares; and sequences, which it does not
//! carry.
//!
//! Positions of a subscription are LSNs in the **publisher's** WAL. A promoted cluster's WAL
//! holds nothing but application writes (`target_lsn = promoted_at_lsn + app_bytes`), so a
//! position maps 1:1 to the cluster's application bytes: what a subscription applied from
//! `start` to `applied` is `applied - start` bytes of the cluster's writes, and the source's
//! tables hold them ([`SimState::content_version`]).
//!
//! The apply worker, per subscription:
//! * starts at the first grid point or event after `CREATE SUBSCRIPTION` (the launcher starts
//!   it), when the subscriber is up, the publisher writable, its slot and publication there,
//!   and its credentials still admit a new connection (an IAM token: 15 minutes after the
//!   subscription was created or refreshed; a running worker keeps its connection);
//! * receives everything the publisher committed and applies at [`APPLY_BYTES_PER_SECOND`]
//!   (`reverse-lag`: the fault's rate), integrated exactly like the replica's replay; what it
//!   applies is written to the source's WAL too (its slots and `TransactionLogsGeneration`
//!   see it);
//! * reports what it applied (`latest_end_lsn`, the slot's `confirmed_flush_lsn`) at grid
//!   points and events only: up to 10 s behind what it applied, never ahead — at once while
//!   it commits synchronously (`pg::set_subscription_commit`);
//! * fails on an apply error (`reverse-broken`, or the first change after a `target-ddl`
//!   added a column the source lacks): no worker, no progress, one more error every
//!   [`APPLY_RETRY_MS`] (`wal_retrieve_retry_interval`) while its credentials still connect;
//!   PostgreSQL before 15 has no error count (`pg_stat_subscription_stats`): it reads 0.

use std::collections::{BTreeMap, BTreeSet};

use godwit_engine::clock::Millis;
use serde::{Deserialize, Serialize};

use super::scenario::{FaultKind, SlotType};
use super::{SimState, Slot};
use crate::pg::{Sequence, SlotInfo, Subscription, TableDefinition, format_lsn, parse_lsn};

/// How fast a healthy apply worker applies the publisher's WAL: well above any built-in
/// scenario's write rate (busy-source peaks at ~13 MB/s), so it trails by a step at most.
pub const APPLY_BYTES_PER_SECOND: f64 = 32.0 * 1024.0 * 1024.0;

/// PostgreSQL's `wal_retrieve_retry_interval` default: a failed apply worker restarts this
/// often, and each restart that reaches the failing change is one more apply error.
pub const APPLY_RETRY_MS: Millis = 5_000;

/// How long an RDS IAM authentication token admits new connections.
pub const IAM_TOKEN_MS: Millis = 15 * 60_000;

/// The column a `target-ddl` fault adds to the hot table on the cluster.
pub const DDL_COLUMN: &str = "note text";

/// The columns of every simulated table (its definition on a database without DDL faults).
pub const TABLE_COLUMNS: &str = "id bigint, payload jsonb, updated_at timestamp with time zone";

/// The database a slot created through `pg::` belongs to (the application database).
pub const APP_DATABASE: &str = "postgres";

/// Logical replication objects of the world.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Logical {
    /// (database, publication name); every publication is `FOR ALL TABLES`.
    pub publications: BTreeSet<(String, String)>,
    pub subscriptions: Vec<SubState>,
    /// Application bytes of each promoted cluster the source applied through subscriptions,
    /// all time (a dropped subscription's writes stay applied); a cluster is here from its
    /// first subscription on.
    pub applied_from: BTreeMap<String, u64>,
    /// Clusters a `target-ddl` fault altered, and their LSN at the DDL: changes after it
    /// carry a column the source lacks.
    pub ddl_at: BTreeMap<String, u64>,
    /// Sequences set by `advance_sequences`: database → name → (value set, the database's
    /// sequence-taking writes at the time; values taken since continue from the value set).
    pub sequences_set: BTreeMap<String, BTreeMap<String, (i64, u64)>>,
    /// Databases whose schema migrations the team's hooks froze (`schema::freeze`).
    #[serde(default)]
    pub frozen: BTreeSet<String>,
    /// Clusters whose `target-ddl` waited for the freeze to end: applied at `schema::unfreeze`.
    #[serde(default)]
    pub ddl_waiting: BTreeSet<String>,
    /// Clusters `rds::create_cluster` made empty, and what they hold (`inbound.rs`).
    #[serde(default)]
    pub created: BTreeMap<String, super::inbound::Created>,
    /// Subscriptions on created clusters from the source (the logical path's copy).
    #[serde(default)]
    pub inbound: Vec<super::inbound::Inbound>,
}

/// A subscription and its apply worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubState {
    /// The subscriber (the source instance).
    pub db: String,
    pub name: String,
    pub publication: String,
    pub slot: String,
    /// The publisher (a promoted Aurora cluster).
    pub from: String,
    /// Publisher LSNs: where streaming started, what was received, applied (and flushed),
    /// and reported back to the publisher.
    pub start: u64,
    pub received: u64,
    pub applied: u64,
    pub reported: u64,
    /// The apply worker's pid while it runs.
    pub pid: Option<i64>,
    /// Apply errors counted so far, and the next restart of a failing worker.
    pub errors: i64,
    pub next_retry: Option<Millis>,
    /// When the credentials it connects with were issued (`CREATE`/`ALTER SUBSCRIPTION`).
    pub token_at: Millis,
    /// Why the worker does not run, when it does not (noted in the log when it changes).
    pub down: Option<String>,
    /// Its `synchronous_commit` when not PostgreSQL's default `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl SubState {
    /// As `pg_subscription` ⋈ `pg_stat_subscription` report it: positions only while the
    /// worker runs (the statistics row is the worker's).
    pub fn view(&self, errors_counted: bool) -> Subscription {
        let running = self.pid.is_some();
        Subscription {
            name: self.name.clone(),
            publications: vec![self.publication.clone()],
            slot_name: Some(self.slot.clone()),
            enabled: true,
            worker_pid: self.pid,
            received_lsn_bytes: running.then_some(self.received as i64),
            latest_end_lsn_bytes: running.then_some(self.reported as i64),
            apply_errors: if errors_counted { self.errors } else { 0 },
        }
    }
}

/// What a write on the source after the fence means.
pub(super) enum Rollback {
    /// No subscription ever brought a promoted cluster's writes back: the write is lost to
    /// the cluster that took over.
    None,
    /// The source misses application bytes a promoted cluster acknowledged.
    Incomplete { cluster: String, missing: u64 },
    /// The source holds every write of every promoted cluster: it is the primary again.
    Complete,
}

impl SimState {
    /// The database's logical replication is on: `rds.logical_replication = 1` in its
    /// parameter group (for the source: in the scenario's parameters, or a logical slot it
    /// already has — `wal_level` is `logical` then).
    pub fn logical_replication_on(&self, db: &str) -> bool {
        let group = if db == self.sc.source.id {
            if self.slots.iter().any(|s| s.slot_type == SlotType::Logical) {
                return true;
            }
            self.sc.source.parameter_group.clone()
        } else {
            match self.rds.clusters.get(db) {
                Some(c) => c.parameter_group.clone(),
                None => return false,
            }
        };
        self.rds
            .param_groups
            .get(&group)
            .and_then(|g| g.parameters.get("rds.logical_replication"))
            .is_some_and(|v| v == "1")
    }

    /// `db`'s current WAL position: the source's, or a promoted cluster's timeline.
    pub fn db_lsn(&self, db: &str) -> u64 {
        if db == self.sc.source.id {
            self.lsn
        } else {
            self.target_lsn(db)
        }
    }

    /// The logical slot `name` on `db`: (plugin, confirmed_flush_lsn).
    pub fn logical_slot(&self, db: &str, name: &str) -> Option<(String, u64)> {
        if db == self.sc.source.id {
            return self
                .slots
                .iter()
                .find(|s| s.name == name && s.slot_type == SlotType::Logical)
                .map(|s| (s.plugin.clone(), s.confirmed_flush_lsn));
        }
        self.target_slots
            .iter()
            .find(|(d, s)| d == db && s.slot_name == name && s.slot_type == "logical")
            .map(|(_, s)| {
                (
                    s.plugin.clone().unwrap_or_default(),
                    s.confirmed_flush_lsn
                        .as_deref()
                        .and_then(parse_lsn)
                        .unwrap_or(0),
                )
            })
    }

    /// Whether `db` has any slot named `name` (of any type or plugin).
    pub fn has_slot(&self, db: &str, name: &str) -> bool {
        if db == self.sc.source.id {
            self.slots.iter().any(|s| s.name == name)
        } else {
            self.target_slots
                .iter()
                .any(|(d, s)| d == db && s.slot_name == name)
        }
    }

    /// Create the pgoutput slot `name` on `db` (the caller checked it may) at its current
    /// position, inactive.
    pub fn add_logical_slot(&mut self, db: &str, name: &str) -> u64 {
        let at = self.db_lsn(db);
        let now = self.now;
        if db == self.sc.source.id {
            self.slots.push(Slot {
                name: name.to_string(),
                slot_type: SlotType::Logical,
                plugin: "pgoutput".into(),
                database: APP_DATABASE.into(),
                active: false,
                restart_lsn: at,
                confirmed_flush_lsn: at,
                inactive_since: Some(now),
                received: at,
                replica_cluster: None,
            });
        } else {
            self.target_slots.push((
                db.to_string(),
                SlotInfo {
                    slot_name: name.to_string(),
                    slot_type: "logical".into(),
                    plugin: Some("pgoutput".into()),
                    database: Some(APP_DATABASE.into()),
                    active: false,
                    restart_lsn: format_lsn(at),
                    confirmed_flush_lsn: Some(format_lsn(at)),
                    wal_status: "reserved".into(),
                    lag_bytes: 0,
                    inactive_since: Some(now / 1000),
                },
            ));
        }
        self.note(format!(
            "logical slot {name} created on {db} at {}",
            format_lsn(at)
        ));
        at
    }

    /// Whether a reader holds slot `name` on `db` (a connected walsender).
    pub fn slot_active(&self, db: &str, name: &str) -> bool {
        if db == self.sc.source.id {
            self.slots.iter().any(|s| s.name == name && s.active)
        } else {
            self.target_slots
                .iter()
                .any(|(d, s)| d == db && s.slot_name == name && s.active)
        }
    }

    /// Drop slot `name` of `db` (the caller checked nobody reads it); whether it existed.
    pub fn remove_slot(&mut self, db: &str, name: &str) -> bool {
        let existed = self.has_slot(db, name);
        if db == self.sc.source.id {
            self.slots.retain(|s| s.name != name);
        } else {
            self.target_slots
                .retain(|(d, s)| !(d == db && s.slot_name == name));
        }
        if existed {
            self.note(format!("replication slot {name} dropped on {db}"));
        }
        existed
    }

    /// Every (permanent) table with its columns, sorted: the scenario's tables, the hot one
    /// with the `target-ddl` column on a cluster the fault altered.
    pub fn table_definitions(&self, db: &str) -> Vec<TableDefinition> {
        // A cluster created empty has what `pg::copy_schema` put there (nothing before).
        if let Some(c) = self.created(db) {
            return c.schema.clone();
        }
        // A DDL on the source reaches a physical copy that replayed past it.
        let source_ddl = self.logical.ddl_at.get(&self.sc.source.id).copied();
        let replayed_past = |d: u64| {
            self.stream
                .as_ref()
                .filter(|s| s.cluster_id == db)
                .map(|s| s.replayed)
                .or_else(|| self.promoted_at_lsn.get(db).copied())
                .is_some_and(|at| at >= d)
        };
        let altered = self.logical.ddl_at.contains_key(db)
            || source_ddl.is_some_and(|d| db != self.sc.source.id && replayed_past(d));
        let mut out: Vec<TableDefinition> = self
            .sc
            .source
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| TableDefinition {
                table: t.name.clone(),
                columns: if i == 0 && altered {
                    format!("{TABLE_COLUMNS}, {DDL_COLUMN}")
                } else {
                    TABLE_COLUMNS.to_string()
                },
            })
            .collect();
        out.sort_by(|a, b| a.table.cmp(&b.table));
        out
    }

    /// The sequence-taking application writes `db` holds (one value per `bytes_per_row`):
    /// its own, and for a copy what it replayed from the source. Logical replication does
    /// not carry sequences: what the source applied from a cluster takes none.
    fn sequence_writes(&self, db: &str) -> u64 {
        let own = if db == self.sc.source.id {
            self.source_app_bytes()
        } else if self.created(db).is_some() {
            // Logical replication does not carry sequences: only the cluster's own writes.
            self.app_bytes.get(db).copied().unwrap_or(0)
        } else {
            self.content_version(db).map_or(0, |(a, l)| a + l)
        };
        own / self.sc.workload.bytes_per_row
    }

    /// `db`'s sequences, sorted by name: each at its starting value plus one per write, or
    /// past the value `advance_sequences` set by the values taken since.
    pub fn sequence_values(&self, db: &str) -> Vec<Sequence> {
        let written = self.sequence_writes(db);
        let set = self.logical.sequences_set.get(db);
        // A cluster created empty has the sequences of the schema copied into it, each at its
        // start (1): a schema-only copy holds no sequence values.
        let created = self.created(db);
        if created.is_some_and(|c| c.schema.is_empty()) {
            return Vec::new();
        }
        let mut out: Vec<Sequence> = self
            .sc
            .source
            .sequences
            .iter()
            .map(|s| {
                let start = if created.is_some() { 1 } else { s.last_value };
                let mut v = start + written as i64;
                if let Some((value, at)) = set.and_then(|m| m.get(&s.name)) {
                    v = v.max(value + written.saturating_sub(*at) as i64);
                }
                Sequence {
                    name: s.name.clone(),
                    last_value: v,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// `setval(name, greatest(own, value))` for each; the caller checked every name exists.
    pub fn set_sequences(&mut self, db: &str, to: &[Sequence]) {
        let current = self.sequence_values(db);
        let written = self.sequence_writes(db);
        for t in to {
            let own = current
                .iter()
                .find(|c| c.name == t.name)
                .map_or(i64::MIN, |c| c.last_value);
            if t.last_value > own {
                self.logical
                    .sequences_set
                    .entry(db.to_string())
                    .or_default()
                    .insert(t.name.clone(), (t.last_value, written));
                self.note(format!(
                    "sequence {} on {db} set to {}",
                    t.name, t.last_value
                ));
            }
        }
    }

    /// Application bytes of promoted clusters the source applied through subscriptions.
    pub fn reverse_applied_bytes(&self) -> u64 {
        self.logical.applied_from.values().sum()
    }

    /// Whether `db`'s server reports apply errors (`pg_stat_subscription_stats`, 15+).
    pub fn counts_apply_errors(&self, db: &str) -> bool {
        let version = if db == self.sc.source.id {
            self.sc.source.engine_version.clone()
        } else {
            self.rds
                .clusters
                .get(db)
                .map(|c| c.engine_version.clone())
                .unwrap_or_default()
        };
        super::scenario::version(&version).is_some_and(|v| v.0 >= 15)
    }

    /// The state of a rollback, for a write that reached the source after the fence.
    pub(super) fn rollback(&self) -> Rollback {
        if self.logical.applied_from.is_empty() || self.stream.is_some() {
            return Rollback::None;
        }
        for c in self.promoted_at_lsn.keys() {
            let written = self.app_bytes.get(c).copied().unwrap_or(0);
            let applied = self.logical.applied_from.get(c).copied().unwrap_or(0);
            if written > applied {
                return Rollback::Incomplete {
                    cluster: c.clone(),
                    missing: written - applied,
                };
            }
        }
        Rollback::Complete
    }

    /// A sequence of the source behind the one of a cluster whose writes it took back: its
    /// next values were handed out there already.
    pub(super) fn sequence_behind(&self) -> Option<String> {
        let src = self.sequence_values(&self.sc.source.id);
        for c in self.logical.applied_from.keys() {
            for (s, t) in src.iter().zip(self.sequence_values(c)) {
                if s.last_value < t.last_value {
                    return Some(format!(
                        "{} is at {} on the source, {} on {c}",
                        s.name, s.last_value, t.last_value
                    ));
                }
            }
        }
        None
    }

    /// Apply workers receive and apply from `from` to `to` (within one grid cell, like the
    /// replica's replay): `span(rate)` bytes at most, never past the publisher's position
    /// nor past a DDL the source lacks.
    pub(super) fn integrate_subscriptions(&mut self, span: &dyn Fn(f64) -> u64) {
        if self.logical.subscriptions.is_empty() {
            return;
        }
        let rate = self
            .fault(FaultKind::ReverseLag)
            .and_then(|f| f.value)
            .unwrap_or(APPLY_BYTES_PER_SECOND);
        let can = span(rate);
        let mut wal = 0;
        let mut reported: Vec<(String, String, u64)> = Vec::new();
        for i in 0..self.logical.subscriptions.len() {
            let s = &self.logical.subscriptions[i];
            if s.pid.is_none() {
                continue;
            }
            let end = self.target_lsn(&s.from);
            let cap = match self.logical.ddl_at.get(&s.from) {
                Some(d) if end > *d => end.min(*d),
                _ => end,
            };
            let from = s.from.clone();
            let s = &mut self.logical.subscriptions[i];
            s.received = s.received.max(end);
            let applied = (s.applied + can).min(cap).max(s.applied);
            let delta = applied - s.applied;
            s.applied = applied;
            // Committing synchronously, the worker reports what it applied at once (see
            // `step_subscriptions` for the status interval otherwise).
            if s.commit.is_some() {
                s.reported = applied;
                reported.push((from.clone(), s.slot.clone(), applied));
            }
            if delta > 0 {
                *self.logical.applied_from.entry(from).or_insert(0) += delta;
                // What the subscriber applies it writes to its own WAL (the same rows).
                wal += delta;
            }
        }
        for (from, slot, applied) in reported {
            self.report_to_slot(&from, &slot, applied, true);
        }
        if wal > 0 {
            self.write_wal(wal);
        }
    }

    /// Why subscription `i`'s worker cannot run now: `Err(true)` for an apply error (counted),
    /// `Err(false)` for anything else (connection, missing objects), with the reason.
    fn worker_blocked(&self, i: usize) -> Result<(), (bool, String)> {
        let s = &self.logical.subscriptions[i];
        if s.db == self.sc.source.id && !self.source_up() {
            return Err((false, format!("subscriber {} is down", s.db)));
        }
        if !self.writable(&s.from) {
            return Err((
                false,
                format!("could not connect to the publisher {}", s.from),
            ));
        }
        if self.logical_slot(&s.from, &s.slot).is_none() {
            return Err((
                false,
                format!(
                    "replication slot \"{}\" does not exist on {}",
                    s.slot, s.from
                ),
            ));
        }
        if !self
            .logical
            .publications
            .contains(&(s.from.clone(), s.publication.clone()))
        {
            return Err((
                false,
                format!(
                    "publication \"{}\" does not exist on {}",
                    s.publication, s.from
                ),
            ));
        }
        if self.fault(FaultKind::ReverseBroken).is_some() {
            return Err((true, "the apply worker fails applying a change".into()));
        }
        if let Some(d) = self.logical.ddl_at.get(&s.from)
            && s.applied >= *d
            && self.target_lsn(&s.from) > *d
        {
            let table = self
                .sc
                .source
                .tables
                .first()
                .map_or("?", |t| t.name.as_str());
            return Err((
                true,
                format!(
                    "logical replication target relation \"{table}\" is missing replicated \
                     column \"{}\"",
                    DDL_COLUMN.split(' ').next().unwrap_or(DDL_COLUMN)
                ),
            ));
        }
        Ok(())
    }

    /// At grid points and events: workers start, fail and count errors; positions are
    /// reported to the publisher and its slot.
    pub(super) fn step_subscriptions(&mut self) {
        let now = self.now;
        for i in 0..self.logical.subscriptions.len() {
            let blocked = self.worker_blocked(i);
            let mut pid = self.next_pid;
            let s = &mut self.logical.subscriptions[i];
            let expired = now >= s.token_at + IAM_TOKEN_MS;
            let mut down = match &blocked {
                Ok(()) => None,
                Err((_, why)) => Some(why.clone()),
            };
            match blocked {
                Err((true, _)) => {
                    s.pid = None;
                    // Each restart that connects reaches the failing change again.
                    let first = *s.next_retry.get_or_insert(now);
                    if first <= now {
                        let n = (now - first) / APPLY_RETRY_MS + 1;
                        let expiry = s.token_at + IAM_TOKEN_MS;
                        let connected = if expiry <= first {
                            0
                        } else {
                            ((expiry - 1 - first) / APPLY_RETRY_MS + 1).min(n)
                        };
                        s.errors += connected;
                        s.next_retry = Some(first + n * APPLY_RETRY_MS);
                    }
                    if expired {
                        down = Some(format!(
                            "{}; its restarts cannot log in to {}: the IAM token expired \
                             (refresh the subscription)",
                            down.unwrap_or_default(),
                            s.from
                        ));
                    }
                }
                Err((false, _)) => {
                    s.pid = None;
                    s.next_retry = None;
                }
                Ok(()) => {
                    s.next_retry = None;
                    if s.pid.is_none() {
                        if expired {
                            down = Some(format!(
                                "could not connect to the publisher {}: PAM authentication \
                                 failed (the IAM token expired; refresh the subscription)",
                                s.from
                            ));
                        } else {
                            s.pid = Some(pid);
                            pid += 1;
                            s.received = s.received.max(s.applied);
                        }
                    }
                }
            }
            if s.pid.is_some() {
                s.reported = s.applied;
            }
            let changed = s.down != down;
            s.down = down.clone();
            let (name, from, slot, reported, active) = (
                s.name.clone(),
                s.from.clone(),
                s.slot.clone(),
                s.reported,
                s.pid.is_some(),
            );
            self.next_pid = pid;
            if changed {
                match down {
                    Some(why) => self.note(format!("subscription {name}: {why}")),
                    None => self.note(format!("subscription {name}: apply worker running")),
                }
            }
            self.report_to_slot(&from, &slot, reported, active);
        }
    }

    /// The publisher's slot as its subscriber last reported (and whether it reads it now).
    fn report_to_slot(&mut self, db: &str, slot: &str, confirmed: u64, active: bool) {
        let now_s = self.now / 1000;
        if let Some((_, s)) = self
            .target_slots
            .iter_mut()
            .find(|(d, s)| d == db && s.slot_name == slot)
        {
            let had = s
                .confirmed_flush_lsn
                .as_deref()
                .and_then(parse_lsn)
                .unwrap_or(0);
            let confirmed = confirmed.max(had);
            s.confirmed_flush_lsn = Some(format_lsn(confirmed));
            s.restart_lsn = format_lsn(confirmed);
            if s.active != active {
                s.active = active;
                s.inactive_since = (!active).then_some(now_s);
            }
        }
    }

    /// A new subscription: from now on the source takes `from`'s writes back (none yet).
    pub fn add_subscription(&mut self, sub: SubState) {
        self.logical
            .applied_from
            .entry(sub.from.clone())
            .or_insert(0);
        self.logical.subscriptions.push(sub);
    }

    /// Drop subscription `name` of `db`: its worker stops, the publisher's slot is left
    /// (inactive). Whether it existed.
    pub fn remove_subscription(&mut self, db: &str, name: &str) -> bool {
        let Some(i) = self
            .logical
            .subscriptions
            .iter()
            .position(|s| s.db == db && s.name == name)
        else {
            return false;
        };
        let s = self.logical.subscriptions.remove(i);
        let reported = s.reported;
        self.report_to_slot(&s.from, &s.slot, reported, false);
        self.note(format!("subscription {name} dropped on {db}"));
        true
    }
}
