//! [`Cdc`] over the simulator.

use godwit_engine::PrimitiveError;

use super::*;
use crate::pg::SlotInfo;
use crate::pg::{format_lsn, parse_lsn};
use crate::prim::{conflict, not_found};
use crate::sim::net::Consumer;
use crate::sim::scenario::SlotType;
use crate::sim::{Sim, SimState};

const A: &str = "cdc";

fn info(c: &Consumer) -> ConsumerInfo {
    ConsumerInfo {
        name: c.name.clone(),
        slot: c.slot.clone(),
        db: c.db.clone(),
        state: c.state.clone(),
        position: format_lsn(c.position),
        position_bytes: c.position as i64,
    }
}

fn find<'a>(
    st: &'a mut SimState,
    op: &str,
    name: &str,
) -> Result<&'a mut Consumer, PrimitiveError> {
    let names: Vec<String> = st.consumers.iter().map(|c| c.name.clone()).collect();
    st.consumers
        .iter_mut()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            consumer_not_found(op, name, &known)
        })
}

impl Cdc for Sim {
    fn list_consumers(&self, cx: &Call<'_>) -> Result<Vec<ConsumerInfo>, PrimitiveError> {
        let st = self.api(cx, A, "list_consumers")?;
        Ok(sort_consumers(st.consumers.iter().map(info).collect()))
    }

    fn pause_consumer(&self, cx: &Call<'_>, name: &str) -> Result<ConsumerInfo, PrimitiveError> {
        let mut st = self.api(cx, A, "pause_consumer")?;
        let now = st.now;
        let c = find(&mut st, "pause_consumer", name)?;
        if c.state != "paused" {
            c.state = "paused".into();
        }
        let out = info(c);
        let slot = out.slot.clone();
        if let Some(s) = st.slots.iter_mut().find(|s| s.name == slot && s.active) {
            s.active = false;
            s.inactive_since = Some(now);
        }
        st.note(format!("consumer {name} paused"));
        Ok(out)
    }

    fn resume_consumer(
        &self,
        cx: &Call<'_>,
        name: &str,
        db: &str,
        slot: &str,
        position: Option<u64>,
    ) -> Result<ConsumerInfo, PrimitiveError> {
        const OP: &str = "resume_consumer";
        let mut st = self.api(cx, A, OP)?;
        find(&mut st, OP, name)?; // an unknown consumer changes nothing
        let on_source = db == st.source_id();
        let current = if on_source { st.lsn } else { st.target_lsn(db) };
        let position = if on_source {
            let s = st
                .slots
                .iter_mut()
                .find(|s| s.name == slot && s.slot_type == SlotType::Logical);
            let Some(s) = s else {
                return Err(not_found(
                    A,
                    OP,
                    format!("no logical slot {slot} on {db}"),
                    "pass a slot from pg::replication_slots",
                ));
            };
            if let Some(p) = advance_to(OP, slot, s.confirmed_flush_lsn, position, current)? {
                s.confirmed_flush_lsn = p;
                s.restart_lsn = s.restart_lsn.max(p);
            }
            s.active = true;
            s.inactive_since = None;
            s.confirmed_flush_lsn
        } else {
            let Some((_, s)) = st
                .target_slots
                .iter_mut()
                .find(|(d, s)| d == db && s.slot_name == slot)
            else {
                return Err(not_found(
                    A,
                    OP,
                    format!("no logical slot {slot} on {db}"),
                    "create it first with cdc::create_equivalent_slots",
                ));
            };
            let confirmed = s.confirmed_flush_lsn.as_deref().and_then(parse_lsn);
            let confirmed = confirmed.unwrap_or(0);
            let to = advance_to(OP, slot, confirmed, position, current)?;
            if let Some(p) = to {
                s.confirmed_flush_lsn = Some(format_lsn(p));
                s.restart_lsn = format_lsn(parse_lsn(&s.restart_lsn).unwrap_or(0).max(p));
            }
            s.active = true;
            s.inactive_since = None;
            to.unwrap_or(confirmed)
        };
        let c = find(&mut st, OP, name)?;
        c.state = "running".into();
        c.db = db.into();
        c.slot = slot.into();
        c.position = position;
        let out = info(c);
        st.note(format!("consumer {name} resumed on {db}/{slot}"));
        Ok(out)
    }

    fn record_positions(&self, cx: &Call<'_>) -> Result<Vec<SlotPosition>, PrimitiveError> {
        let st = self.api(cx, A, "record_positions")?;
        let mut consumers: Vec<&Consumer> = st.consumers.iter().collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        // Each consumer's slot on the database it reads: the source's, or the one made on a
        // target after the restore.
        let position = |c: &Consumer| -> Option<(u64, u64)> {
            if c.db == st.source_id() {
                let s = st.slots.iter().find(|s| s.name == c.slot)?;
                return Some((s.confirmed_flush_lsn, s.restart_lsn));
            }
            let (_, s) = st
                .target_slots
                .iter()
                .find(|(d, s)| *d == c.db && s.slot_name == c.slot)?;
            let confirmed = s.confirmed_flush_lsn.as_deref().and_then(parse_lsn)?;
            Some((confirmed, parse_lsn(&s.restart_lsn)?))
        };
        Ok(consumers
            .into_iter()
            .filter_map(|c| {
                let (confirmed, restart) = position(c)?;
                Some(SlotPosition {
                    consumer: c.name.clone(),
                    slot: c.slot.clone(),
                    confirmed_flush_lsn: format_lsn(confirmed),
                    confirmed_flush_bytes: confirmed as i64,
                    restart_lsn: format_lsn(restart),
                })
            })
            .collect())
    }

    fn create_equivalent_slots(
        &self,
        cx: &Call<'_>,
        db: &str,
        slots: &[String],
    ) -> Result<Vec<CreatedSlot>, PrimitiveError> {
        const OP: &str = "create_equivalent_slots";
        let mut st = self.api(cx, A, OP)?;
        if !st.writable(db) {
            return Err(conflict(
                A,
                OP,
                format!(
                    "{db} is not a writable Aurora cluster (PostgreSQL cannot create a logical slot on a standby)"
                ),
                "create the slots after promotion, with rds.logical_replication=1 in the cluster parameter group",
            ));
        }
        // Logical decoding on Aurora needs rds.logical_replication=1 in the cluster parameter
        // group, set before the cluster was created (changing it later needs a reboot).
        let group = st
            .rds
            .clusters
            .get(db)
            .map(|c| c.parameter_group.clone())
            .unwrap_or_default();
        let logical = st
            .rds
            .param_groups
            .get(&group)
            .and_then(|g| g.parameters.get("rds.logical_replication"))
            .is_some_and(|v| v == "1");
        if !logical {
            return Err(conflict(
                A,
                OP,
                format!(
                    "{db} has wal_level=replica: its cluster parameter group {group:?} does not set \
                     rds.logical_replication=1"
                ),
                "create the cluster parameter group with cluster_parameters: #{ \"rds.logical_replication\": \"1\" } \
                 before the replica (rds::create_parameter_groups)",
            ));
        }
        let mut out = Vec::new();
        for name in slots {
            let Some(src) = st
                .slots
                .iter()
                .find(|s| &s.name == name && s.slot_type == SlotType::Logical)
                .cloned()
            else {
                return Err(not_found(
                    A,
                    OP,
                    format!("no logical slot {name} on the source"),
                    "pass names from pg::replication_slots",
                ));
            };
            let start = st.target_lsn(db);
            let now_s = st.now / 1000;
            if !st
                .target_slots
                .iter()
                .any(|(d, s)| d == db && &s.slot_name == name)
            {
                st.target_slots.push((
                    db.to_string(),
                    SlotInfo {
                        slot_name: name.clone(),
                        slot_type: "logical".into(),
                        plugin: Some(src.plugin.clone()),
                        database: Some(src.database.clone()),
                        active: false,
                        restart_lsn: format_lsn(start),
                        confirmed_flush_lsn: Some(format_lsn(start)),
                        wal_status: "reserved".into(),
                        lag_bytes: 0,
                        inactive_since: Some(now_s),
                    },
                ));
            }
            let s = st
                .target_slots
                .iter()
                .find(|(d, s)| d == db && &s.slot_name == name)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| unreachable!());
            out.push(CreatedSlot {
                db: db.into(),
                slot_name: name.clone(),
                plugin: src.plugin.clone(),
                consistent_point: s.restart_lsn.clone(),
            });
        }
        Ok(out)
    }
}
