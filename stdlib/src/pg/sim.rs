//! [`Pg`] over the simulator.

use godwit_engine::PrimitiveError;

use super::*;
use crate::prim::{conflict, not_found};
use crate::sim::access::godwit_login;
use crate::sim::logical::SubState;
use crate::sim::scenario::{FaultKind, SlotType};
use crate::sim::{Api, Sim, SimState, fnv};

const A: &str = "pg";

fn lsn(bytes: u64) -> Lsn {
    Lsn::at(bytes)
}

/// The database must exist and let godwit in (see [`godwit_login`]).
fn check_db(st: &mut Api<'_>, op: &str, db: &str) -> Result<(), PrimitiveError> {
    if !st.rds.instances.contains_key(db) && !st.rds.clusters.contains_key(db) {
        return Err(not_found(
            A,
            op,
            format!("no database endpoint {db}"),
            "pass an RDS instance id or an Aurora cluster id",
        ));
    }
    godwit_login(st, A, op, db)
}

fn is_source(st: &SimState, db: &str) -> bool {
    db == st.source_id()
}

/// `what` needs a read-write server: a replica (or a database not available) refuses it as
/// PostgreSQL does in a read-only transaction.
fn writable(st: &SimState, op: &str, db: &str, what: &str) -> Result<(), PrimitiveError> {
    if st.writable(db) {
        return Ok(());
    }
    Err(conflict(
        A,
        op,
        format!(
            "{db} cannot execute {what}: it is not a writable primary (a replica in recovery, or \
             not available) (25006 read_only_sql_transaction)"
        ),
        "run it on the primary: the source, or the cluster once promoted",
    ))
}

impl Pg for Sim {
    fn table_hashes(&self, cx: &Call<'_>, db: &str) -> Result<Vec<TableHash>, PrimitiveError> {
        let mut st = self.api(cx, A, "table_hashes")?;
        check_db(&mut st, "table_hashes", db)?;
        let Some((from_source, own)) = st.content_version(db) else {
            return Err(not_found(
                A,
                "table_hashes",
                format!("{db} holds no copy of the source's tables"),
                "compare the source with its Aurora replica",
            ));
        };
        let seed = st.sc.seed.to_le_bytes();
        let replica = !is_source(&st, db);
        let mut out: Vec<TableHash> = Vec::new();
        for (i, t) in st.sc.source.tables.iter().enumerate() {
            // Application writes land in the first (hot) table: one row per 4 KiB written.
            let (applied, local) = if i == 0 { (from_source, own) } else { (0, 0) };
            let rows = t.rows + (applied + local) / st.sc.workload.bytes_per_row;
            let h = fnv(&[
                t.name.as_bytes(),
                &seed,
                &applied.to_le_bytes(),
                &local.to_le_bytes(),
            ]);
            out.push(TableHash {
                table: t.name.clone(),
                rows: rows as i64,
                hash: format!("{h:016x}"),
            });
        }
        // Unlogged tables are not in WAL: a physical copy has them empty.
        for t in &st.sc.source.unlogged_tables {
            let (rows, h) = if replica {
                (0, fnv(&[t.as_bytes()]))
            } else {
                (1000, fnv(&[t.as_bytes(), &seed]))
            };
            out.push(TableHash {
                table: t.clone(),
                rows,
                hash: format!("{h:016x}"),
            });
        }
        out.sort_by(|a, b| a.table.cmp(&b.table));
        Ok(out)
    }

    fn installed_extensions(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<Extension>, PrimitiveError> {
        let mut st = self.api(cx, A, "installed_extensions")?;
        check_db(&mut st, "installed_extensions", db)?;
        let mut names = st.sc.source.extensions.clone();
        for f in st
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::ExtensionUnsupported)
        {
            names.extend(f.target.clone());
        }
        names.sort();
        names.dedup();
        Ok(names
            .into_iter()
            .map(|name| Extension {
                version: if name == "plpgsql" { "1.0" } else { "1.6" }.into(),
                name,
            })
            .collect())
    }

    fn settings(
        &self,
        cx: &Call<'_>,
        db: &str,
        names: &[String],
    ) -> Result<Vec<Setting>, PrimitiveError> {
        let mut st = self.api(cx, A, "settings")?;
        check_db(&mut st, "settings", db)?;
        // In force: a logical slot, or rds.logical_replication=1 in its parameter group.
        let logical = st.logical_replication_on(db);
        let mut all = std::collections::BTreeMap::new();
        all.insert("wal_segment_size".to_string(), st.seg.to_string());
        all.insert(
            "archive_timeout".to_string(),
            (st.tm.archive_timeout / 1000).to_string(),
        );
        all.insert(
            "wal_level".to_string(),
            if logical { "logical" } else { "replica" }.to_string(),
        );
        all.insert(
            "rds.logical_replication".to_string(),
            if logical { "1" } else { "0" }.to_string(),
        );
        all.insert(
            "server_version".to_string(),
            st.sc.source.engine_version.clone(),
        );
        if is_source(&st, db) {
            for p in crate::rds::HOT_STANDBY_PARAMETERS {
                if let Some(v) = crate::rds::sim::source_live_setting(&st, p) {
                    all.insert((*p).to_string(), v.to_string());
                }
            }
            for (k, v) in &st.sc.source.parameters {
                all.insert(k.clone(), v.clone());
            }
        }
        Ok(all
            .into_iter()
            .filter(|(k, _)| names.is_empty() || names.contains(k))
            .map(|(name, setting)| Setting { name, setting })
            .collect())
    }

    fn table_stats(&self, cx: &Call<'_>, db: &str) -> Result<Vec<TableStats>, PrimitiveError> {
        let mut st = self.api(cx, A, "table_stats")?;
        check_db(&mut st, "table_stats", db)?;
        let (applied, local) = st.content_version(db).unwrap_or((0, 0));
        let mut out: Vec<TableStats> = st
            .sc
            .source
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                // As table_hashes: writes land in the first table, one row per 4 KiB written.
                let written = if i == 0 {
                    (applied + local) / st.sc.workload.bytes_per_row
                } else {
                    0
                };
                TableStats {
                    table: t.name.clone(),
                    rows: (t.rows + written) as i64,
                    // The scenario's rows hold its `data_gb`; the workload's rows its bytes each.
                    bytes: (t.rows * st.row_bytes() + written * st.sc.workload.bytes_per_row)
                        as i64,
                }
            })
            .collect();
        out.sort_by(|a, b| a.table.cmp(&b.table));
        Ok(out)
    }

    fn large_objects(&self, cx: &Call<'_>, db: &str) -> Result<Vec<LargeObjects>, PrimitiveError> {
        const OP: &str = "large_objects";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        let n = st.sc.source.large_objects;
        Ok(if n > 0 {
            vec![LargeObjects {
                database: crate::sim::logical::APP_DATABASE.into(),
                count: n,
            }]
        } else {
            Vec::new()
        })
    }

    fn unlogged_tables(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        let mut st = self.api(cx, A, "unlogged_tables")?;
        check_db(&mut st, "unlogged_tables", db)?;
        let mut t = st.sc.source.unlogged_tables.clone();
        for f in st
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::UnloggedTable)
        {
            t.extend(f.target.clone());
        }
        t.sort();
        t.dedup();
        Ok(t)
    }

    fn replication_slots(&self, cx: &Call<'_>, db: &str) -> Result<Vec<SlotInfo>, PrimitiveError> {
        let mut st = self.api(cx, A, "replication_slots")?;
        check_db(&mut st, "replication_slots", db)?;
        let mut out: Vec<SlotInfo> = if is_source(&st, db) {
            st.slots
                .iter()
                .map(|s| {
                    let lag = s.lag_bytes(st.lsn);
                    SlotInfo {
                        slot_name: s.name.clone(),
                        slot_type: match s.slot_type {
                            SlotType::Logical => "logical",
                            SlotType::Physical => "physical",
                        }
                        .into(),
                        plugin: (s.slot_type == SlotType::Logical).then(|| s.plugin.clone()),
                        database: (s.slot_type == SlotType::Logical).then(|| s.database.clone()),
                        active: s.active,
                        restart_lsn: format_lsn(s.restart_lsn),
                        confirmed_flush_lsn: (s.slot_type == SlotType::Logical)
                            .then(|| format_lsn(s.confirmed_flush_lsn)),
                        wal_status: if lag > 1 << 30 {
                            "extended"
                        } else {
                            "reserved"
                        }
                        .into(),
                        lag_bytes: lag as i64,
                        inactive_since: s.inactive_since.map(|t| t / 1000),
                    }
                })
                .collect()
        } else {
            // WAL a slot holds back grows with the cluster's writes. (A CDC consumer resumed
            // on a cluster's slot is not modelled moving it: its slot keeps what it said.)
            let current = st.target_lsn(db);
            st.target_slots
                .iter()
                .filter(|s| s.0 == db)
                .map(|(_, s)| {
                    let mut s = s.clone();
                    let consumed = st
                        .consumers
                        .iter()
                        .any(|c| c.db == db && c.slot == s.slot_name);
                    if let Some(confirmed) = s.confirmed_flush_lsn.as_deref().and_then(parse_lsn)
                        && !consumed
                    {
                        let lag = current.saturating_sub(confirmed);
                        s.lag_bytes = lag as i64;
                        s.wal_status = if lag > 1 << 30 {
                            "extended"
                        } else {
                            "reserved"
                        }
                        .into();
                    }
                    s
                })
                .collect()
        };
        out.sort_by(|a, b| a.slot_name.cmp(&b.slot_name));
        Ok(out)
    }

    fn current_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        const OP: &str = "current_lsn";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        if is_source(&st, db) {
            return Ok(lsn(st.lsn));
        }
        if let Some(c) = st.rds.clusters.get(db) {
            // Aurora runs the WAL control functions only with logical replication on (its
            // cluster parameter group's rds.logical_replication = 1).
            let logical = st
                .rds
                .param_groups
                .get(&c.parameter_group)
                .and_then(|g| g.parameters.get("rds.logical_replication"))
                .is_some_and(|v| v == "1");
            if !logical {
                return Err(PrimitiveError::new(
                    A,
                    OP,
                    ErrorKind::Invalid,
                    format!(
                        "{db}: WAL control functions cannot be executed when wal_level < logical \
                         (55000 object_not_in_prerequisite_state)"
                    ),
                    "set rds.logical_replication = 1 in the cluster parameter group at creation, \
                     or read positions on the source",
                )
                .with_retryable(false));
            }
        }
        if st.writable(db) {
            // After promotion the new timeline continues from where replay stopped.
            let written = st.app_bytes.get(db).copied().unwrap_or(0);
            return Ok(lsn(
                st.promoted_at_lsn.get(db).copied().unwrap_or(0) + written
            ));
        }
        Err(conflict(
            A,
            OP,
            format!("{db} is in recovery (a replica)"),
            "read a replica's position on its source (pg::replication_connections)",
        ))
    }

    fn replay_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        const OP: &str = "replay_lsn";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        // Every replica in the simulator is an Aurora cluster, and Aurora refuses the
        // pg_last_wal_* family.
        if st.rds.clusters.contains_key(db) {
            return Err(aurora_refuses(OP, db, "pg_last_wal_replay_lsn()"));
        }
        Err(conflict(
            A,
            OP,
            format!("{db} is not a replica"),
            "replay_lsn is for a streaming replica",
        ))
    }

    fn access(&self, cx: &Call<'_>, db: &str) -> Result<Access, PrimitiveError> {
        let st = self.api(cx, A, "access")?;
        if !st.rds.instances.contains_key(db) && !st.rds.clusters.contains_key(db) {
            return Err(not_found(
                A,
                "access",
                format!("no database endpoint {db}"),
                "pass an RDS instance id or an Aurora cluster id",
            ));
        }
        let g = &st.sc.godwit;
        Ok(if g.db_access {
            Access {
                available: true,
                how: "IAM user godwit over TLS (simulated)".into(),
                security_group: Some(g.security_group.clone()),
            }
        } else {
            Access {
                available: false,
                how: "no database access in this world (credential-less)".into(),
                security_group: None,
            }
        })
    }

    fn replication_connections(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<ReplicationConnection>, PrimitiveError> {
        const OP: &str = "replication_connections";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        if !is_source(&st, db) {
            return Ok(Vec::new());
        }
        // The Aurora replica's walsender, while the stream flows and the source is up (a
        // reboot ends it; the replica reconnects once the source is back).
        let Some(s) = st.stream.as_ref().filter(|s| s.flowing && st.source_up()) else {
            return Ok(Vec::new());
        };
        let slot = st
            .slots
            .iter()
            .find(|sl| sl.replica_cluster.as_deref() == Some(s.cluster_id.as_str()))
            .map(|sl| sl.name.clone());
        let replayed = s.replayed as i64;
        Ok(vec![ReplicationConnection {
            pid: 7000,
            application_name: s.cluster_id.clone(),
            client_addr: Some("10.0.4.17".into()),
            state: "streaming".into(),
            slot_name: slot,
            sent_lsn_bytes: Some(st.lsn as i64),
            write_lsn_bytes: Some(replayed),
            flush_lsn_bytes: Some(replayed),
            replay_lsn_bytes: Some(replayed),
            replay_lsn: Some(format_lsn(s.replayed)),
        }])
    }

    fn last_checkpoint(&self, cx: &Call<'_>, db: &str) -> Result<Checkpoint, PrimitiveError> {
        const OP: &str = "last_checkpoint";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        if !is_source(&st, db) {
            return Err(aurora_refuses(OP, db, "pg_control_checkpoint()"));
        }
        let (at, lsn_at, shutdown) = st.checkpoint;
        Ok(Checkpoint {
            checkpoint_lsn: format_lsn(lsn_at),
            checkpoint_lsn_bytes: lsn_at as i64,
            redo_lsn_bytes: lsn_at as i64,
            time: at.div_euclid(1000),
            shutdown,
        })
    }

    /// The model writes every commit at once (no asynchronous commit): the current position.
    fn settled_lsn(&self, cx: &Call<'_>, db: &str) -> Result<Lsn, PrimitiveError> {
        self.current_lsn(cx, db)
    }

    /// The scenario's application roles: a physical copy and its promoted cluster have the
    /// source's roles.
    fn login_roles(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        let mut st = self.api(cx, A, "login_roles")?;
        check_db(&mut st, "login_roles", db)?;
        let mut roles = st.sc.source.app_roles.clone();
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    fn roles_without_iam(&self, cx: &Call<'_>, db: &str) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "roles_without_iam";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        // A copy's roles (pg::copy_schema) and a replica's sign in as the source's did; a
        // created cluster's are granted rds_iam by the copy.
        if st.created(db).is_some() {
            return Ok(Vec::new());
        }
        let mut roles = st.sc.source.password_roles.clone();
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    fn application_backends(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<Backend>, PrimitiveError> {
        let mut st = self.api(cx, A, "application_backends")?;
        check_db(&mut st, "application_backends", db)?;
        let mut out: Vec<Backend> = st
            .sessions
            .iter()
            .filter(|s| s.db == db && s.application)
            .map(|s| Backend {
                pid: s.pid,
                role: s.role.clone(),
                state: s.state.clone(),
                backend_start: s.backend_start / 1000,
                xact_start: s.xact_start.map(|t| t / 1000),
                terminating: s.exits_at.is_some(),
            })
            .collect();
        out.sort_by_key(|b| b.pid);
        Ok(out)
    }

    fn block_logins(
        &self,
        cx: &Call<'_>,
        db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError> {
        let mut st = self.api(cx, A, "block_logins")?;
        check_db(&mut st, "block_logins", db)?;
        for r in roles {
            if !st.sc.source.app_roles.contains(r) {
                return Err(not_found(
                    A,
                    "block_logins",
                    format!("role {r} does not exist"),
                    format!("application roles: {}", st.sc.source.app_roles.join(", ")),
                ));
            }
            st.blocked_roles.insert(r.clone());
        }
        st.note(format!("logins blocked for {}", roles.join(",")));
        Ok(st.blocked_roles.iter().cloned().collect())
    }

    fn unblock_logins(
        &self,
        cx: &Call<'_>,
        db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, PrimitiveError> {
        let mut st = self.api(cx, A, "unblock_logins")?;
        check_db(&mut st, "unblock_logins", db)?;
        for r in roles {
            st.blocked_roles.remove(r);
        }
        Ok(st.blocked_roles.iter().cloned().collect())
    }

    fn terminate_backends(
        &self,
        cx: &Call<'_>,
        db: &str,
        pids: &[i64],
    ) -> Result<Vec<i64>, PrimitiveError> {
        let mut st = self.api(cx, A, "terminate_backends")?;
        check_db(&mut st, "terminate_backends", db)?;
        let now = st.now;
        let exit_ms = crate::sim::scenario::dur_ms(&st.sc.source.backend_exit);
        // A long transaction at the fence: its backend takes the fault's duration to go.
        let stubborn_until = st
            .fault(FaultKind::LongRunningTransaction)
            .map(|f| f.fired_at.unwrap_or(now) + f.lasts.unwrap_or(600_000));
        let mut done = Vec::new();
        for s in st.sessions.iter_mut() {
            if s.db == db && pids.contains(&s.pid) {
                let exit = match (s.xact_start, stubborn_until) {
                    (Some(_), Some(t)) => t.max(now + exit_ms),
                    _ => now + exit_ms,
                };
                s.exits_at = Some(s.exits_at.map_or(exit, |e| e.min(exit)));
                done.push(s.pid);
            }
        }
        Ok(done)
    }

    fn sequences(&self, cx: &Call<'_>, db: &str) -> Result<Vec<Sequence>, PrimitiveError> {
        let mut st = self.api(cx, A, "sequences")?;
        check_db(&mut st, "sequences", db)?;
        // One value per 4 KiB a database wrote itself (a replica: what it replayed); never
        // what a subscription applied (logical replication does not carry sequences).
        Ok(st.sequence_values(db))
    }

    fn advance_sequences(
        &self,
        cx: &Call<'_>,
        db: &str,
        to: &[Sequence],
    ) -> Result<Vec<Sequence>, PrimitiveError> {
        const OP: &str = "advance_sequences";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        let before = st.sequence_values(db);
        let missing: Vec<&str> = to
            .iter()
            .filter(|t| !before.iter().any(|b| b.name == t.name))
            .map(|t| t.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(not_found(
                A,
                OP,
                format!("{db} has no sequence {}", missing.join(", ")),
                "the two databases' schemas differ: compare pg::sequences of both",
            ));
        }
        writable(&st, OP, db, "setval")?;
        st.set_sequences(db, to);
        Ok(st.sequence_values(db))
    }

    fn table_definitions(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<TableDefinition>, PrimitiveError> {
        const OP: &str = "table_definitions";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        Ok(st.table_definitions(db))
    }

    fn unreplicable_tables(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<Vec<UnreplicableTable>, PrimitiveError> {
        const OP: &str = "unreplicable_tables";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        // Unlogged tables are not published at all, so they are not listed (as live).
        let mut out: Vec<UnreplicableTable> = st
            .sc
            .source
            .no_primary_key
            .iter()
            .map(|t| UnreplicableTable {
                table: t.clone(),
                why: "no primary key".into(),
            })
            .collect();
        out.sort_by(|a, b| a.table.cmp(&b.table));
        Ok(out)
    }

    fn create_publication(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Vec<String>, PrimitiveError> {
        const OP: &str = "create_publication";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        let key = (db.to_string(), name.to_string());
        if !st.logical.publications.contains(&key) {
            writable(&st, OP, db, "CREATE PUBLICATION")?;
            st.logical.publications.insert(key);
            st.note(format!("publication {name} created on {db} for all tables"));
        }
        // FOR ALL TABLES publishes every permanent table (unlogged ones are never published).
        let mut tables: Vec<String> = st.sc.source.tables.iter().map(|t| t.name.clone()).collect();
        tables.sort();
        Ok(tables)
    }

    fn drop_publication(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<bool, PrimitiveError> {
        const OP: &str = "drop_publication";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        // DROP PUBLICATION IF EXISTS is refused on a read-only server whether it exists or not.
        writable(&st, OP, db, "DROP PUBLICATION")?;
        let existed = st
            .logical
            .publications
            .remove(&(db.to_string(), name.to_string()));
        if existed {
            st.note(format!("publication {name} dropped on {db}"));
        }
        Ok(existed)
    }

    fn create_logical_slot(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Lsn, PrimitiveError> {
        const OP: &str = "create_logical_slot";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        if let Some((plugin, at)) = st.logical_slot(db, name) {
            if plugin != "pgoutput" {
                return Err(conflict(
                    A,
                    OP,
                    format!(
                        "{db} has a logical slot {name} (plugin {plugin:?}), not a pgoutput one"
                    ),
                    "choose another slot name, or drop that slot if it is not in use",
                ));
            }
            return Ok(lsn(at));
        }
        if st.has_slot(db, name) {
            return Err(conflict(
                A,
                OP,
                format!("{db} has a physical slot {name}, not a pgoutput one"),
                "choose another slot name",
            ));
        }
        if !st.writable(db) {
            return Err(conflict(
                A,
                OP,
                format!(
                    "{db} is not a writable primary (a replica still replicating, or not \
                     available): PostgreSQL cannot create a logical slot on a standby"
                ),
                "create the slot after the promotion completed (rds::wait_until_promoted)",
            ));
        }
        if !st.logical_replication_on(db) {
            let group = if is_source(&st, db) {
                st.sc.source.parameter_group.clone()
            } else {
                st.rds
                    .clusters
                    .get(db)
                    .map(|c| c.parameter_group.clone())
                    .unwrap_or_default()
            };
            return Err(conflict(
                A,
                OP,
                format!(
                    "{db} has wal_level=replica: its parameter group {group:?} does not set \
                     rds.logical_replication=1 (55000 object_not_in_prerequisite_state)"
                ),
                "set rds.logical_replication=1 in the (cluster) parameter group before the \
                 cluster is created (rds::create_parameter_groups); it is static: a change \
                 needs a reboot",
            )
            .with_retryable(false));
        }
        let at = st.add_logical_slot(db, name);
        // PostgreSQL returns once the slot reached a consistent point: not free (inside the
        // write blackout when the reverse path is set up).
        let cost = crate::sim::scenario::dur_ms(&st.sc.aws.logical_slot);
        drop(st);
        cx.sleep(std::time::Duration::from_millis(cost.max(0) as u64))?;
        Ok(lsn(at))
    }

    fn drop_replication_slot(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<bool, PrimitiveError> {
        const OP: &str = "drop_replication_slot";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        if st.slot_active(db, name) {
            let readers: Vec<String> = st
                .logical
                .subscriptions
                .iter()
                .filter(|s| s.from == db && s.slot == name && s.pid.is_some())
                .map(|s| format!("subscription {} on {}", s.name, s.db))
                .collect();
            let who = if readers.is_empty() {
                "a client".to_string()
            } else {
                readers.join(", ")
            };
            return Err(conflict(
                A,
                OP,
                format!("slot {name} on {db} is active: {who} reads it"),
                "stop its reader first (pg::drop_subscription on the subscriber, or the CDC \
                 consumer), then retry",
            )
            .with_retryable(true));
        }
        Ok(st.remove_slot(db, name))
    }

    fn subscribe(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        to: &SubscribeTo,
    ) -> Result<Subscription, PrimitiveError> {
        const OP: &str = "subscribe";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        if let Some(s) = st
            .logical
            .subscriptions
            .iter()
            .find(|s| s.db == db && s.name == name)
        {
            return Ok(s.view(st.counts_apply_errors(db)));
        }
        if let Some(s) = st
            .logical
            .inbound
            .iter()
            .find(|s| s.db == db && s.name == name)
        {
            return Ok(s.view());
        }
        if st.created(db).is_some() && is_source(&st, &to.from) {
            return subscribe_inbound(st, cx, db, name, to);
        }
        if !is_source(&st, db) || !st.rds.clusters.contains_key(&to.from) {
            if !st.rds.instances.contains_key(&to.from) && !st.rds.clusters.contains_key(&to.from) {
                return Err(not_found(
                    A,
                    OP,
                    format!("no database endpoint {}", to.from),
                    "pass the publisher's RDS instance id or Aurora cluster id",
                ));
            }
            return Err(PrimitiveError::new(
                A,
                OP,
                ErrorKind::Invalid,
                format!(
                    "the simulator models a subscription on the source ({}) from a promoted \
                     Aurora cluster, and on a cluster rds::create_cluster made from the source; \
                     not on {db} from {}",
                    st.source_id(),
                    to.from
                ),
                "subscribe the source to the promoted cluster (the rollback's reverse stream), \
                 or a created cluster to the source (the logical path)",
            )
            .with_retryable(false));
        }
        // CREATE SUBSCRIPTION connects to the publisher first: through both sides' security
        // groups, as on AWS (a quarantined source has no egress until the reverse path opens
        // one with ec2::allow_connection).
        crate::ec2::check_connection(
            A,
            OP,
            crate::ec2::Side {
                db,
                groups: &st.groups_of_instance(db),
            },
            crate::ec2::Side {
                db: &to.from,
                groups: &st.groups_of_cluster(&to.from),
            },
            st.rds.clusters[&to.from].port,
        )?;
        if to.copy_data {
            return Err(PrimitiveError::new(
                A,
                OP,
                ErrorKind::Invalid,
                format!(
                    "copy_data = true onto {db}, which already holds the rows: the initial copy \
                     fails on their primary keys (the simulator models copy_data = false only)"
                ),
                "subscribe with copy_data: false from a slot created before the cluster took \
                 writes",
            )
            .with_retryable(false));
        }
        if !st
            .logical
            .publications
            .contains(&(to.from.clone(), to.publication.clone()))
        {
            return Err(not_found(
                A,
                OP,
                format!(
                    "publication {} does not exist on {}",
                    to.publication, to.from
                ),
                "create it there first (pg::create_publication)",
            ));
        }
        let Some((plugin, start)) = st.logical_slot(&to.from, &to.slot) else {
            return Err(not_found(
                A,
                OP,
                format!("replication slot {} does not exist on {}", to.slot, to.from),
                "create it there first (pg::create_logical_slot)",
            ));
        };
        if plugin != "pgoutput" {
            return Err(conflict(
                A,
                OP,
                format!(
                    "slot {} on {} decodes with {plugin:?}: a subscription needs pgoutput",
                    to.slot, to.from
                ),
                "create a pgoutput slot (pg::create_logical_slot)",
            ));
        }
        let now = st.now;
        let sub = SubState {
            db: db.to_string(),
            name: name.to_string(),
            publication: to.publication.clone(),
            slot: to.slot.clone(),
            from: to.from.clone(),
            start,
            received: start,
            applied: start,
            reported: start,
            pid: None,
            errors: 0,
            next_retry: None,
            token_at: now,
            down: None,
            commit: None,
        };
        let out = sub.view(st.counts_apply_errors(db));
        st.add_subscription(sub);
        st.note(format!(
            "subscription {name} created on {db}: publication {} of {} through slot {} from {}",
            to.publication,
            to.from,
            to.slot,
            format_lsn(start)
        ));
        // CREATE SUBSCRIPTION connects to the publisher and signs in before it returns.
        let cost = crate::sim::scenario::dur_ms(&st.sc.aws.subscribe);
        drop(st);
        cx.sleep(std::time::Duration::from_millis(cost.max(0) as u64))?;
        Ok(out)
    }

    fn refresh_subscription(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        from: &str,
    ) -> Result<Subscription, PrimitiveError> {
        const OP: &str = "refresh_subscription";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        let now = st.now;
        let counted = st.counts_apply_errors(db);
        // A subscription on a created cluster, from the source (the logical path's copy).
        let source = st.source_id().to_string();
        if let Some(s) = st
            .logical
            .inbound
            .iter_mut()
            .find(|s| s.db == db && s.name == name)
        {
            if from != source {
                return Err(conflict(
                    A,
                    OP,
                    format!("subscription {name} on {db} streams from {source}, not {from}"),
                    "pass the publisher the subscription was created with",
                ));
            }
            s.token_at = now;
            let out = s.view();
            st.note(format!(
                "subscription {name} on {db}: credentials refreshed"
            ));
            return Ok(out);
        }
        let Some(s) = st
            .logical
            .subscriptions
            .iter_mut()
            .find(|s| s.db == db && s.name == name)
        else {
            return Err(not_found(
                A,
                OP,
                format!("{db} has no subscription {name}"),
                "list them with pg::subscriptions",
            ));
        };
        if s.from != from {
            return Err(conflict(
                A,
                OP,
                format!(
                    "subscription {name} on {db} streams from {}, not {from}",
                    s.from
                ),
                "pass the publisher the subscription was created with",
            ));
        }
        // A fresh token admits new connections for 15 minutes more; a failing worker's next
        // restart is unchanged.
        s.token_at = now;
        let out = s.view(counted);
        st.note(format!(
            "subscription {name} on {db}: credentials refreshed"
        ));
        Ok(out)
    }

    /// The model applies and reports at its own pace whatever the mode (never sooner than
    /// PostgreSQL's synchronous commit would): the setting is kept and reported.
    fn set_subscription_commit(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        mode: &str,
    ) -> Result<SubscriptionCommit, PrimitiveError> {
        const OP: &str = "set_subscription_commit";
        check_commit_mode(OP, mode)?;
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        let logical = &mut st.logical;
        let setting = if let Some(s) = logical
            .inbound
            .iter_mut()
            .find(|s| s.db == db && s.name == name)
        {
            &mut s.commit
        } else if let Some(s) = logical
            .subscriptions
            .iter_mut()
            .find(|s| s.db == db && s.name == name)
        {
            &mut s.commit
        } else {
            return Err(not_found(
                A,
                OP,
                format!("{db} has no subscription {name}"),
                "list them with pg::subscriptions",
            ));
        };
        let before = setting.clone().unwrap_or_else(|| "off".into());
        *setting = (mode != "off").then(|| mode.to_string());
        st.note(format!(
            "subscription {name} on {db}: synchronous_commit {before} → {mode}"
        ));
        Ok(SubscriptionCommit {
            name: name.to_string(),
            before,
            after: mode.to_string(),
        })
    }

    fn subscriptions(&self, cx: &Call<'_>, db: &str) -> Result<Vec<Subscription>, PrimitiveError> {
        const OP: &str = "subscriptions";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        let counted = st.counts_apply_errors(db);
        let mut out: Vec<Subscription> = st
            .logical
            .subscriptions
            .iter()
            .filter(|s| s.db == db)
            .map(|s| s.view(counted))
            .chain(
                st.logical
                    .inbound
                    .iter()
                    .filter(|s| s.db == db)
                    .map(|s| s.view()),
            )
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn drop_subscription(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<bool, PrimitiveError> {
        const OP: &str = "drop_subscription";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        let inbound = st.remove_inbound(db, name);
        Ok(st.remove_subscription(db, name) || inbound)
    }

    fn drop_subscription_from(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
        publisher: &str,
    ) -> Result<SubscriptionDropped, PrimitiveError> {
        const OP: &str = "drop_subscription_from";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, publisher)?;
        check_db(&mut st, OP, db)?;
        // The simulator models no table-sync slots: the subscription alone goes.
        let inbound = st.remove_inbound(db, name);
        Ok(SubscriptionDropped {
            dropped: st.remove_subscription(db, name) || inbound,
            sync_slots_dropped: Vec::new(),
        })
    }

    fn copy_schema(
        &self,
        cx: &Call<'_>,
        from: &str,
        to: &str,
    ) -> Result<SchemaCopy, PrimitiveError> {
        const OP: &str = "copy_schema";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, from)?;
        if !is_source(&st, from) || st.created(to).is_none() {
            if !st.rds.clusters.contains_key(to) && !st.rds.instances.contains_key(to) {
                return Err(not_found(
                    A,
                    OP,
                    format!("no database endpoint {to}"),
                    "pass the cluster rds::create_cluster made",
                ));
            }
            return Err(PrimitiveError::new(
                A,
                OP,
                ErrorKind::Invalid,
                format!(
                    "the simulator copies the source's schema ({}) into a cluster \
                     rds::create_cluster made, not {from} into {to}",
                    st.source_id()
                ),
                "copy from the source into the logical path's target",
            )
            .with_retryable(false));
        }
        // The master user signs in (modelled: the aws world does not implement it yet): the cluster must take
        // connections, through the network as any client.
        writable(&st, OP, to, "CREATE ROLE / CREATE TABLE")?;
        let wanted = st.table_definitions(from);
        let have = st.table_definitions(to);
        if !have.is_empty() && have != wanted {
            return Err(conflict(
                A,
                OP,
                format!(
                    "{to} already has tables ({}) that differ from {from}'s: a schema copy \
                     restores into an empty database",
                    have.iter()
                        .map(|t| t.table.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "drop them on the target (or delete and re-create the cluster), then copy again",
            )
            .with_retryable(false));
        }
        let mut roles = st.sc.source.app_roles.clone();
        roles.sort();
        roles.dedup();
        let tables: Vec<String> = wanted.iter().map(|t| t.table.clone()).collect();
        let sequences = st.sc.source.sequences.len() as i64;
        if have.is_empty() {
            if let Some(c) = st.logical.created.get_mut(to) {
                c.roles = true;
                c.schema = wanted;
            }
            st.note(format!(
                "schema of {from} copied into {to}: roles {roles:?}, {} tables, {sequences} sequences",
                tables.len()
            ));
        }
        // pg_dump and its restore: a few seconds plus a moment per object.
        let cost = 5_000 + 200 * (tables.len() as i64 + sequences + roles.len() as i64);
        drop(st);
        cx.sleep(std::time::Duration::from_millis(cost as u64))?;
        Ok(SchemaCopy {
            from: from.to_string(),
            to: to.to_string(),
            roles,
            tables,
            sequences,
            how: "the simulator's pg_dump --schema-only and its restore, as the master user \
                  (modelled; the aws world does not implement that sign-in yet)"
                .into(),
        })
    }

    fn subscription_tables(
        &self,
        cx: &Call<'_>,
        db: &str,
        name: &str,
    ) -> Result<Vec<SubscriptionTable>, PrimitiveError> {
        const OP: &str = "subscription_tables";
        let mut st = self.api(cx, A, OP)?;
        check_db(&mut st, OP, db)?;
        if let Some(s) = st
            .logical
            .inbound
            .iter()
            .find(|s| s.db == db && s.name == name)
        {
            return Ok(s.table_views());
        }
        // A subscription that did not copy has every table ready from the start.
        if st
            .logical
            .subscriptions
            .iter()
            .any(|s| s.db == db && s.name == name)
        {
            let mut tables: Vec<String> =
                st.sc.source.tables.iter().map(|t| t.name.clone()).collect();
            tables.sort();
            return Ok(tables
                .into_iter()
                .map(|table| SubscriptionTable {
                    table,
                    state: "ready".into(),
                    copied_bytes: None,
                    error: None,
                })
                .collect());
        }
        Err(not_found(
            A,
            OP,
            format!("{db} has no subscription {name}"),
            "pg::subscriptions lists the subscriptions there",
        ))
    }
}

/// `CREATE SUBSCRIPTION` on a cluster `rds::create_cluster` made, from the source: the logical
/// path's copy (`sim/inbound.rs`).
fn subscribe_inbound(
    mut st: Api<'_>,
    cx: &Call<'_>,
    db: &str,
    name: &str,
    to: &SubscribeTo,
) -> Result<Subscription, PrimitiveError> {
    const OP: &str = "subscribe";
    writable(&st, OP, db, "CREATE SUBSCRIPTION")?;
    let source = st.source_id().to_string();
    crate::ec2::check_connection(
        A,
        OP,
        crate::ec2::Side {
            db,
            groups: &st.groups_of_cluster(db),
        },
        crate::ec2::Side {
            db: &source,
            groups: &st.groups_of_instance(&source),
        },
        st.rds.instances[&source].port,
    )?;
    if !st
        .logical
        .publications
        .contains(&(source.clone(), to.publication.clone()))
    {
        return Err(not_found(
            A,
            OP,
            format!("publication {} does not exist on {source}", to.publication),
            "create it there first (pg::create_publication)",
        ));
    }
    let Some((plugin, start)) = st.logical_slot(&source, &to.slot) else {
        return Err(not_found(
            A,
            OP,
            format!("replication slot {} does not exist on {source}", to.slot),
            "create it there first (pg::create_logical_slot)",
        ));
    };
    if plugin != "pgoutput" {
        return Err(conflict(
            A,
            OP,
            format!(
                "slot {} on {source} decodes with {plugin:?}: a subscription needs pgoutput",
                to.slot
            ),
            "create a pgoutput slot (pg::create_logical_slot)",
        ));
    }
    // CREATE SUBSCRIPTION looks up every published table on the subscriber.
    let have = st.table_definitions(db);
    let mut published: Vec<String> = st.sc.source.tables.iter().map(|t| t.name.clone()).collect();
    published.sort();
    if let Some(missing) = published
        .iter()
        .find(|t| !have.iter().any(|h| &h.table == *t))
    {
        return Err(PrimitiveError::new(
            A,
            OP,
            ErrorKind::Invalid,
            format!("relation \"{missing}\" does not exist on {db} (42P01): a subscription needs every published table there"),
            "copy the schema first (pg::copy_schema)",
        )
        .with_retryable(false));
    }
    let written = st.source_app_bytes() / st.sc.workload.bytes_per_row;
    let row_bytes = st.row_bytes();
    let tables = if to.copy_data {
        let mut t: Vec<crate::sim::inbound::TableSync> = st
            .sc
            .source
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| crate::sim::inbound::TableSync {
                table: t.name.clone(),
                total_bytes: t.rows * row_bytes
                    + if i == 0 {
                        written * st.sc.workload.bytes_per_row
                    } else {
                        0
                    },
                copied_bytes: 0,
                state: "init".into(),
                failed: false,
            })
            .collect();
        t.sort_by(|a, b| a.table.cmp(&b.table));
        t
    } else {
        Vec::new()
    };
    let now = st.now;
    let sub = crate::sim::inbound::Inbound {
        db: db.to_string(),
        name: name.to_string(),
        publication: to.publication.clone(),
        slot: to.slot.clone(),
        start,
        applied: start,
        tables,
        pid: None,
        errors: 0,
        next_retry: None,
        token_at: now,
        down: None,
        commit: None,
    };
    let out = sub.view();
    st.logical.inbound.push(sub);
    st.note(format!(
        "subscription {name} created on {db}: publication {} of {source} through slot {} from {}{}",
        to.publication,
        to.slot,
        format_lsn(start),
        if to.copy_data {
            ", copying every table first"
        } else {
            ""
        }
    ));
    let cost = crate::sim::scenario::dur_ms(&st.sc.aws.subscribe);
    drop(st);
    cx.sleep(std::time::Duration::from_millis(cost.max(0) as u64))?;
    Ok(out)
}
