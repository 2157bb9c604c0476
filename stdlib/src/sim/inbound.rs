//! The logical path's forward copy as the simulator models it: an Aurora cluster created
//! empty (`rds::create_cluster`), the source's roles and schema copied into it
//! (`pg::copy_schema`), and its subscription to the source (`pg::subscribe` with `copy_data`) —
//! the initial copy, table by table, then the stream of the source's changes.
//!
//! * Positions are LSNs of the **source's** WAL. The stream starts at the source slot's
//!   position when the subscription was created (`start`); what the cluster applied is the
//!   source's application bytes up to its `applied` LSN ([`SimState::app_bytes_at`]).
//! * The initial copy reads each table (`pg::table_stats`: the scenario's rows hold the
//!   source's `data_gb`, [`SimState::row_bytes`]; each row the workload added its bytes) at
//!   `[logical] copy_bytes_per_second`, one table at a time in name order.
//!   PostgreSQL runs up to `max_sync_workers_per_subscription` (2) table syncs at once; one
//!   at a time at the aggregate rate is never faster. A table goes `init` → `copying` →
//!   `ready`; PostgreSQL's `finished copy` and `synchronized` last a moment and are folded in.
//! * The stream applies only once every table is ready, at [`APPLY_BYTES_PER_SECOND`]
//!   (PostgreSQL's apply worker already streams the ready tables meanwhile: holding it back is
//!   never kinder). The slot on the source hears what was applied at its status interval —
//!   at once while the subscription commits synchronously (`pg::set_subscription_commit`: its
//!   worker's feedback after each transaction carries the flushed position).
//! * A DDL on the source (`source-ddl`: a column added to the hot table) is not carried: a
//!   copy of the hot table that starts after it fails ("missing replicated column"), and the
//!   stream fails at the first change after it once it reached it. Each restart of the failing
//!   worker is one more error, every [`APPLY_RETRY_MS`].
//! * Sequences are not carried: the cluster's move only with its own writes, from 1 after the
//!   schema copy (a schema-only dump holds no sequence values).
//!
//! When the cluster takes its first application write it has taken over: every write the
//! source acknowledged must be applied there by then, and the source must take none after
//! (the same invariants as a promotion, checked in `integrate`).

use godwit_engine::clock::Millis;
use serde::{Deserialize, Serialize};

use super::SimState;
use super::logical::{APPLY_BYTES_PER_SECOND, APPLY_RETRY_MS, DDL_COLUMN, IAM_TOKEN_MS};
use crate::pg::{Subscription, SubscriptionTable, TableDefinition};

/// A database `rds::create_cluster` made: empty until `pg::copy_schema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// Whether `pg::copy_schema` created the source's roles here (for IAM: no passwords). Until
    /// then only the master user exists, and godwit cannot sign in with IAM.
    pub roles: bool,
    /// Its tables (none before `pg::copy_schema`).
    pub schema: Vec<TableDefinition>,
    /// The source's application bytes it holds from subscriptions dropped since.
    pub kept: u64,
    /// Whether it took an application write (it took over from the source).
    pub took_over: bool,
    /// The tables an initial copy finished (kept after its subscription is dropped): a table
    /// never copied holds none of the source's rows.
    #[serde(default)]
    pub copied: std::collections::BTreeSet<String>,
}

/// One table of an inbound subscription's initial copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSync {
    pub table: String,
    pub total_bytes: u64,
    pub copied_bytes: u64,
    /// `init`, `copying` or `ready`.
    pub state: String,
    /// The copy failed (the table's definition differs from the source's).
    pub failed: bool,
}

/// A subscription on a created cluster, streaming from the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// The subscriber (a cluster `rds::create_cluster` made).
    pub db: String,
    pub name: String,
    pub publication: String,
    /// The source's logical slot it streams from.
    pub slot: String,
    /// Source LSNs: where streaming starts (the slot's position at `CREATE SUBSCRIPTION`),
    /// and what was applied.
    pub start: u64,
    pub applied: u64,
    /// The initial copy, in copy order (empty with `copy_data = false`).
    pub tables: Vec<TableSync>,
    pub pid: Option<i64>,
    pub errors: i64,
    pub next_retry: Option<Millis>,
    /// When its credentials were issued (an IAM token admits new connections for 15 min).
    pub token_at: Millis,
    pub down: Option<String>,
    /// Its `synchronous_commit` when not PostgreSQL's default `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Inbound {
    /// Every table copied: the stream applies.
    pub fn copied(&self) -> bool {
        self.tables.iter().all(|t| t.state == "ready")
    }

    pub fn view(&self) -> Subscription {
        let running = self.pid.is_some();
        Subscription {
            name: self.name.clone(),
            publications: vec![self.publication.clone()],
            slot_name: Some(self.slot.clone()),
            enabled: true,
            worker_pid: self.pid,
            received_lsn_bytes: running.then_some(self.applied as i64),
            latest_end_lsn_bytes: running.then_some(self.applied as i64),
            apply_errors: self.errors,
        }
    }

    pub fn table_views(&self) -> Vec<SubscriptionTable> {
        self.tables
            .iter()
            .map(|t| SubscriptionTable {
                table: t.table.clone(),
                state: t.state.clone(),
                copied_bytes: Some(t.copied_bytes as i64),
                error: t.failed.then(|| missing_column(&t.table)),
            })
            .collect()
    }
}

/// PostgreSQL's error for a change (or a copy) carrying a column the subscriber lacks.
pub fn missing_column(table: &str) -> String {
    format!(
        "logical replication target relation \"{table}\" is missing replicated column \"{}\"",
        DDL_COLUMN.split(' ').next().unwrap_or(DDL_COLUMN)
    )
}

impl SimState {
    /// The bytes of one table row on disk: the source's `data_gb` spread over its tables' rows,
    /// so that a copy of every table moves the database's size (`pg::table_stats`, the initial
    /// copy). Not floored at the workload's bytes per row: that is the WAL a written row
    /// costs, which a plan on a lab stretches 60 times (`plan::minute_metrics`) — a floor made
    /// a 0.3 GB lab source 102 GiB to copy, and its logical prediction time out.
    pub fn row_bytes(&self) -> u64 {
        let rows: u64 = self.sc.source.tables.iter().map(|t| t.rows).sum();
        let data = (self.sc.source.data_gb * 1024.0 * 1024.0 * 1024.0) as u64;
        (data / rows.max(1)).max(1)
    }

    /// `rds::create_cluster` made `id`: an empty database, its own timeline from 0.
    pub fn create_empty_database(&mut self, id: &str) {
        self.logical
            .created
            .insert(id.to_string(), Created::default());
        // Its WAL holds only its own writes: a reverse subscription's positions map 1:1 to
        // them (logical.rs), as for a promoted cluster.
        self.promoted_at_lsn.insert(id.to_string(), 0);
    }

    /// The created cluster `db`, if it is one.
    pub fn created(&self, db: &str) -> Option<&Created> {
        self.logical.created.get(db)
    }

    /// The source's application bytes the created cluster `db` holds: its live subscription's
    /// (once copied: what it applied; while copying: the copy's snapshot), or what dropped
    /// ones left.
    pub fn inbound_app_bytes(&self, db: &str) -> Option<u64> {
        let c = self.created(db)?;
        let live = self
            .logical
            .inbound
            .iter()
            // Without a copy (`copy_data = false`) a subscription holds only what it streamed.
            .filter(|s| s.db == db && !s.tables.is_empty())
            .map(|s| self.app_bytes_at(if s.copied() { s.applied } else { s.start }))
            .max()
            .unwrap_or(0);
        Some(live.max(c.kept))
    }

    /// The share of `table` the created cluster `db` holds while its initial copy runs
    /// (`None`: all of it, or not a created cluster).
    pub fn copied_share(&self, db: &str, table: &str) -> Option<f64> {
        let c = self.created(db)?;
        if c.copied.contains(table) {
            return None;
        }
        if !c.schema.iter().any(|t| t.table == table) {
            return Some(0.0);
        }
        // Copying now, or never copied (no subscription, `copy_data = false`, or one dropped
        // before the table was done): what its copy read so far, or nothing.
        let copying = self
            .logical
            .inbound
            .iter()
            .filter(|s| s.db == db)
            .find_map(|s| s.tables.iter().find(|t| t.table == table));
        Some(copying.map_or(0.0, |t| t.copied_bytes as f64 / t.total_bytes.max(1) as f64))
    }

    /// The source's tables the created cluster `db` has not copied whole.
    pub fn uncopied(&self, db: &str) -> Vec<String> {
        let Some(c) = self.created(db) else {
            return Vec::new();
        };
        self.sc
            .source
            .tables
            .iter()
            .filter(|t| !c.copied.contains(&t.name))
            .map(|t| t.name.clone())
            .collect()
    }

    /// Source slots an inbound subscription reads (their position is what it applied, not
    /// what the source wrote).
    pub(super) fn inbound_slots(&self) -> Vec<String> {
        self.logical
            .inbound
            .iter()
            .map(|s| s.slot.clone())
            .collect()
    }

    /// The source's DDL (a `source-ddl` fault): the source LSN it happened at.
    fn source_ddl(&self) -> Option<u64> {
        self.logical.ddl_at.get(&self.sc.source.id).copied()
    }

    /// Why inbound subscription `i`'s worker cannot run: `Err(true, why)` for an apply error.
    fn inbound_blocked(&self, i: usize) -> Result<(), (bool, String)> {
        let s = &self.logical.inbound[i];
        if !self.writable(&s.db) {
            return Err((false, format!("subscriber {} is not available", s.db)));
        }
        if !self.source_up() {
            return Err((
                false,
                format!("could not connect to the publisher {}", self.sc.source.id),
            ));
        }
        let source = self.sc.source.id.clone();
        if self.logical_slot(&source, &s.slot).is_none() {
            return Err((
                false,
                format!("replication slot \"{}\" does not exist on {source}", s.slot),
            ));
        }
        if !self
            .logical
            .publications
            .contains(&(source.clone(), s.publication.clone()))
        {
            return Err((
                false,
                format!(
                    "publication \"{}\" does not exist on {source}",
                    s.publication
                ),
            ));
        }
        if let Some(d) = self.source_ddl()
            && s.copied()
            && s.applied >= d
            && self.lsn > d
        {
            let hot = self
                .sc
                .source
                .tables
                .first()
                .map_or("?", |t| t.name.as_str());
            return Err((true, missing_column(hot)));
        }
        Ok(())
    }

    /// Within one grid cell: the initial copy reads `span(copy rate)` bytes, then the stream
    /// applies `span(apply rate)`, never past the source's position nor past a DDL it lacks.
    pub(super) fn integrate_inbound(&mut self, span: &dyn Fn(f64) -> u64) {
        if self.logical.inbound.is_empty() {
            return;
        }
        let copy = span(self.sc.logical.copy_bytes_per_second);
        let apply = span(APPLY_BYTES_PER_SECOND);
        let lsn = self.lsn;
        let ddl = self.source_ddl();
        let now = self.now;
        let mut finished: Vec<(String, String)> = Vec::new();
        let mut reported: Vec<(String, u64)> = Vec::new();
        for s in &mut self.logical.inbound {
            if s.pid.is_none() {
                continue;
            }
            // A table's sync opens a new connection to the source: with an IAM token, only
            // within 15 minutes of the subscription's last credentials.
            let can_log_in = now < s.token_at + IAM_TOKEN_MS;
            let mut budget = copy;
            for t in &mut s.tables {
                if budget == 0 {
                    break;
                }
                // A failing table's sync keeps failing; the others go on (each table has
                // its own sync worker).
                if t.state == "ready" || t.failed {
                    continue;
                }
                if t.state == "init" && !can_log_in {
                    break;
                }
                t.state = "copying".into();
                let take = budget.min(t.total_bytes - t.copied_bytes);
                t.copied_bytes += take;
                budget -= take;
                if t.copied_bytes >= t.total_bytes {
                    t.state = "ready".into();
                    finished.push((s.db.clone(), t.table.clone()));
                }
            }
            if s.copied() {
                let cap = match ddl {
                    Some(d) if lsn > d => lsn.min(d),
                    _ => lsn,
                };
                s.applied = (s.applied + apply).min(cap).max(s.applied);
                if s.commit.is_some() {
                    reported.push((s.slot.clone(), s.applied));
                }
            }
        }
        // A worker that commits synchronously reports what it applied as it applies it (its
        // feedback after each transaction carries the flushed position): the source's slot
        // confirms it at once, not at the next status interval.
        for (slot, applied) in reported {
            if let Some(sl) = self.slots.iter_mut().find(|sl| sl.name == slot) {
                sl.received = sl.received.max(applied);
                sl.confirmed_flush_lsn = sl.confirmed_flush_lsn.max(applied);
                sl.restart_lsn = sl.restart_lsn.max(applied);
            }
        }
        for (db, table) in finished {
            if let Some(c) = self.logical.created.get_mut(&db) {
                c.copied.insert(table);
            }
        }
    }

    /// At grid points and events: workers start or fail; a copy of the hot table that starts
    /// after a DDL on the source fails; the source's slot hears what was applied.
    pub(super) fn step_inbound(&mut self) {
        let now = self.now;
        let ddl = self.source_ddl();
        let hot = self.sc.source.tables.first().map(|t| t.name.clone());
        for i in 0..self.logical.inbound.len() {
            // A copy starting after the DDL reads the new column the subscriber lacks.
            if ddl.is_some() {
                let s = &mut self.logical.inbound[i];
                if let Some(t) = s
                    .tables
                    .iter_mut()
                    .find(|t| Some(&t.table) == hot.as_ref() && t.state == "init")
                {
                    t.failed = true;
                }
            }
            let blocked = self.inbound_blocked(i);
            let mut pid = self.next_pid;
            let s = &mut self.logical.inbound[i];
            let expired = now >= s.token_at + IAM_TOKEN_MS;
            // Each restart of a failing worker (the apply worker, or a table's sync while the
            // apply worker runs on) reaches the failing change again: one error each.
            let failing_sync = s.tables.iter().find(|t| t.failed).map(|t| t.table.clone());
            let mut count_errors = || {
                let first = *s.next_retry.get_or_insert(now);
                if first <= now {
                    let n = (now - first) / APPLY_RETRY_MS + 1;
                    s.errors += n;
                    s.next_retry = Some(first + n * APPLY_RETRY_MS);
                }
            };
            let mut down = match &blocked {
                Ok(()) => None,
                Err((_, why)) => Some(why.clone()),
            };
            match blocked {
                Err((true, _)) => {
                    count_errors();
                    s.pid = None;
                }
                Err((false, _)) => {
                    s.pid = None;
                    s.next_retry = None;
                }
                Ok(()) => {
                    match &failing_sync {
                        Some(table) if s.pid.is_some() => {
                            count_errors();
                            down = Some(format!(
                                "the sync of {table} fails: {}",
                                missing_column(table)
                            ));
                        }
                        _ => s.next_retry = None,
                    }
                    if s.pid.is_none() {
                        if expired {
                            down = Some(
                                "could not connect to the publisher: PAM authentication failed \
                                 (the IAM token expired; refresh the subscription)"
                                    .to_string(),
                            );
                        } else {
                            s.pid = Some(pid);
                            pid += 1;
                        }
                    } else if expired
                        && let Some(t) = s.tables.iter().find(|t| t.state != "ready" && !t.failed)
                        && t.state == "init"
                    {
                        down = Some(format!(
                            "the sync of {} cannot log in to the publisher: PAM authentication \
                             failed (the IAM token expired; refresh the subscription)",
                            t.table
                        ));
                    }
                }
            }
            let changed = s.down != down;
            s.down = down.clone();
            let (name, slot, applied, active) =
                (s.name.clone(), s.slot.clone(), s.applied, s.pid.is_some());
            self.next_pid = pid;
            if changed {
                match down {
                    Some(why) => self.note(format!("subscription {name}: {why}")),
                    None => self.note(format!("subscription {name}: apply worker running")),
                }
            }
            if let Some(sl) = self.slots.iter_mut().find(|sl| sl.name == slot) {
                sl.received = sl.received.max(applied);
                if sl.active != active {
                    sl.active = active;
                    sl.inactive_since = (!active).then_some(now);
                }
            }
        }
    }

    /// Drop inbound subscription `name` of `db`: what it applied stays; the source's slot is
    /// left (inactive). Whether it existed.
    pub fn remove_inbound(&mut self, db: &str, name: &str) -> bool {
        let Some(i) = self
            .logical
            .inbound
            .iter()
            .position(|s| s.db == db && s.name == name)
        else {
            return false;
        };
        let held = self.inbound_app_bytes(db).unwrap_or(0);
        let s = self.logical.inbound.remove(i);
        if let Some(c) = self.logical.created.get_mut(db) {
            c.kept = c.kept.max(held);
        }
        let now = self.now;
        if let Some(sl) = self.slots.iter_mut().find(|sl| sl.name == s.slot) {
            sl.active = false;
            sl.inactive_since = Some(now);
        }
        self.note(format!("subscription {name} dropped on {db}"));
        true
    }

    /// The created cluster `db` takes its first application write: it took over. Every write
    /// the source acknowledged must be there, and the source takes none from now on.
    pub(super) fn take_over(&mut self, db: &str) {
        let Some(c) = self.logical.created.get(db) else {
            return;
        };
        if c.took_over {
            return;
        }
        let uncopied = self.uncopied(db);
        if !uncopied.is_empty() {
            self.violate(
                "no-acknowledged-write-lost",
                format!(
                    "{db} took application writes while its copy of {} was not complete: the \
                     source's rows there are missing",
                    uncopied.join(", ")
                ),
            );
        }
        let held = self.inbound_app_bytes(db).unwrap_or(0);
        let acknowledged = self.source_app_bytes();
        if acknowledged > held {
            self.violate(
                "no-acknowledged-write-lost",
                format!(
                    "{db} took application writes while {} bytes the source acknowledged had \
                     not been applied there",
                    acknowledged - held
                ),
            );
        }
        if let Some(c) = self.logical.created.get_mut(db) {
            c.took_over = true;
        }
        self.fence_at.get_or_insert(self.now);
        self.note(format!(
            "{db} took its first application write: it took over"
        ));
    }
}
