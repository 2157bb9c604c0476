//! [`Cdc`] over declared consumers and operator-supplied commands (the aws world): godwit
//! cannot stop or start a Debezium connector, a Kafka Connect task or a custom reader itself,
//! so each consumer names the shell commands that pause and resume it. Everything godwit can
//! see for itself comes from the database: a consumer is `running` while its logical slot is
//! active, its position is the slot's `confirmed_flush_lsn`, and the equivalent slots on the
//! target are created by godwit.
//!
//! Commands run with `sh -c` and these variables: `GODWIT_CDC_CONSUMER`, `GODWIT_CDC_SLOT`,
//! `GODWIT_CDC_DB` (instance or cluster id), and for `resume` also `GODWIT_CDC_POSITION`
//! (the LSN to start from, when the runbook gives one). A command that exits non-zero, or runs
//! past its timeout, fails the call with its output.

use std::sync::Arc;
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, PrimitiveError};
use serde::{Deserialize, Serialize};

use super::{
    Cdc, ConsumerInfo, CreatedSlot, SlotPosition, advance_to, consumer_not_found, sort_consumers,
};
use crate::pg::live::{PG_CALL_LIMIT, Pool, sql_error};
use crate::pg::{format_lsn, parse_lsn};

const A: &str = "cdc";

/// One consumer as the operator declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerHook {
    pub name: String,
    /// Its logical slot.
    pub slot: String,
    /// The instance (or cluster) it reads from before the cutover: the source.
    pub db: String,
    /// Output plugin of its slot, used for the equivalent slot on the target (default
    /// `pgoutput`).
    pub plugin: Option<String>,
    /// Shell command that stops the consumer (it must leave the slot inactive).
    pub pause: String,
    /// Shell command that starts it reading `GODWIT_CDC_SLOT` on `GODWIT_CDC_DB`.
    pub resume: String,
    /// How long a command may run (default `"10m"`).
    pub timeout: Option<String>,
}

pub struct HookCdc {
    pub consumers: Vec<ConsumerHook>,
    pub pool: Arc<Pool>,
}

impl HookCdc {
    fn hook(&self, op: &str, name: &str) -> Result<&ConsumerHook, PrimitiveError> {
        self.consumers
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.consumers.iter().map(|c| c.name.as_str()).collect();
                consumer_not_found(op, name, &known)
            })
    }

    /// Where `c` reads now: the db of the last resume in this process, else its declared one.
    fn info(
        &self,
        cx: &Call<'_>,
        op: &str,
        c: &ConsumerHook,
        db: &str,
        slot: &str,
    ) -> Result<ConsumerInfo, PrimitiveError> {
        let s = slot_state(cx, &self.pool, op, db, slot)?;
        // What godwit can see of a consumer it does not run: reading while its slot is active.
        let state = if s.active { "running" } else { "paused" };
        Ok(s.info(&c.name, slot, db, state))
    }

    /// Run `command` with `sh -c` through the call: bounded by the consumer's timeout, the
    /// step's deadline and Ctrl-C; a command cut short is killed.
    fn run(
        &self,
        cx: &Call<'_>,
        op: &str,
        c: &ConsumerHook,
        command: &str,
        env: &[(&str, String)],
    ) -> Result<(), PrimitiveError> {
        let mut vars = vec![("GODWIT_CDC_CONSUMER", c.name.clone())];
        vars.extend(env.iter().cloned());
        crate::prim::command::run(
            cx,
            &crate::prim::command::Hook {
                area: A,
                op,
                what: format!("consumer {}", c.name),
                command,
                env: vars,
                timeout: c.timeout.as_deref(),
                default_timeout: Duration::from_secs(600),
                fix: "fix the command (it runs with sh -c and GODWIT_CDC_* variables); the step retries",
            },
        )
        .map(|_| ())
    }
}

impl Cdc for HookCdc {
    fn list_consumers(&self, cx: &Call<'_>) -> Result<Vec<ConsumerInfo>, PrimitiveError> {
        let all = self
            .consumers
            .iter()
            .map(|c| self.info(cx, "list_consumers", c, &c.db, &c.slot))
            .collect::<Result<_, _>>()?;
        Ok(sort_consumers(all))
    }

    fn pause_consumer(&self, cx: &Call<'_>, name: &str) -> Result<ConsumerInfo, PrimitiveError> {
        const OP: &str = "pause_consumer";
        let c = self.hook(OP, name)?;
        self.run(
            cx,
            OP,
            c,
            &c.pause,
            &[
                ("GODWIT_CDC_SLOT", c.slot.clone()),
                ("GODWIT_CDC_DB", c.db.clone()),
            ],
        )?;
        self.info(cx, OP, c, &c.db, &c.slot)
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
        let c = self.hook(OP, name)?;
        let mut env = vec![
            ("GODWIT_CDC_SLOT", slot.to_string()),
            ("GODWIT_CDC_DB", db.to_string()),
        ];
        if let Some(p) = position {
            advance_slot(cx, &self.pool, OP, db, slot, p)?;
            env.push(("GODWIT_CDC_POSITION", format_lsn(p)));
        }
        self.run(cx, OP, c, &c.resume, &env)?;
        self.info(cx, OP, c, db, slot)
    }

    fn record_positions(&self, cx: &Call<'_>) -> Result<Vec<SlotPosition>, PrimitiveError> {
        let mut consumers: Vec<&ConsumerHook> = self.consumers.iter().collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        consumers
            .into_iter()
            .map(|c| {
                Ok(
                    slot_state(cx, &self.pool, "record_positions", &c.db, &c.slot)?
                        .position(&c.name, &c.slot),
                )
            })
            .collect()
    }

    fn create_equivalent_slots(
        &self,
        cx: &Call<'_>,
        db: &str,
        slots: &[String],
    ) -> Result<Vec<CreatedSlot>, PrimitiveError> {
        create_slots(cx, &self.pool, db, slots, |slot| {
            let c = self.consumers.iter().find(|c| c.slot == slot)?;
            c.plugin.clone()
        })
    }
}

/// A logical slot as its database reports it: where its consumer stands.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotState {
    pub active: bool,
    pub confirmed_flush_lsn: String,
    pub confirmed_flush_bytes: i64,
    pub restart_lsn: String,
}

impl SlotState {
    /// The position of `consumer`, which reads this slot (`slot`).
    pub fn position(&self, consumer: &str, slot: &str) -> SlotPosition {
        SlotPosition {
            consumer: consumer.to_string(),
            slot: slot.to_string(),
            confirmed_flush_lsn: self.confirmed_flush_lsn.clone(),
            confirmed_flush_bytes: self.confirmed_flush_bytes,
            restart_lsn: self.restart_lsn.clone(),
        }
    }

    /// `consumer` reading this slot (`slot`) on `db`, in `state`.
    pub fn info(&self, consumer: &str, slot: &str, db: &str, state: &str) -> ConsumerInfo {
        ConsumerInfo {
            name: consumer.to_string(),
            slot: slot.to_string(),
            db: db.to_string(),
            state: state.to_string(),
            position: self.confirmed_flush_lsn.clone(),
            position_bytes: self.confirmed_flush_bytes,
        }
    }
}

/// `slot` on `db` as the database sees it. Shared by every world with real slots.
pub fn slot_state(
    cx: &Call<'_>,
    pool: &Pool,
    op: &str,
    db: &str,
    slot: &str,
) -> Result<SlotState, PrimitiveError> {
    let st = cx.budget(PG_CALL_LIMIT);
    pool.run(cx, db, PG_CALL_LIMIT, async {
        let c = pool.client(db, None, op, st).await?;
        let row = c
            .query_opt(
                "SELECT active, coalesce(confirmed_flush_lsn::text, '0/0'), \
                 coalesce(pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint, 0), \
                 coalesce(restart_lsn::text, '0/0') FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| sql_error(op, db, e))?;
        let row = row.ok_or_else(|| no_slot(op, db, slot))?;
        Ok(SlotState {
            active: row.get(0),
            confirmed_flush_lsn: row.get(1),
            confirmed_flush_bytes: row.get(2),
            restart_lsn: row.get(3),
        })
    })
}

/// Create the logical slots `slots` on `db` (in its connection's database) unless they exist,
/// each with the output plugin of the consumer that reads it (`plugin_of`, see
/// [`super::plugin`]); each answer gives where the slot starts (for an existing one: its
/// confirmed flush). Shared by every world whose `cdc` creates real slots.
pub fn create_slots(
    cx: &Call<'_>,
    pool: &Pool,
    db: &str,
    slots: &[String],
    plugin_of: impl Fn(&str) -> Option<String>,
) -> Result<Vec<CreatedSlot>, PrimitiveError> {
    const OP: &str = "create_equivalent_slots";
    let slots: Vec<(String, String)> = slots
        .iter()
        .map(|s| (s.clone(), super::plugin(plugin_of(s))))
        .collect();
    let st = cx.budget(PG_CALL_LIMIT);
    pool.run(cx, db, PG_CALL_LIMIT, async {
        let client = pool.client(db, None, OP, st).await?;
        let mut out = Vec::new();
        for (slot, plugin) in &slots {
            let existing = client
                .query_opt(
                    "SELECT coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = $1",
                    &[slot],
                )
                .await
                .map_err(|e| sql_error(OP, db, e))?;
            let point: String = match existing {
                Some(r) => r.get(0),
                None => client
                    .query_one(
                        "SELECT lsn::text FROM pg_create_logical_replication_slot($1, $2)",
                        &[slot, plugin],
                    )
                    .await
                    .map_err(|e| sql_error(OP, db, e))?
                    .get(0),
            };
            out.push(CreatedSlot {
                db: db.to_string(),
                slot_name: slot.clone(),
                plugin: plugin.clone(),
                consistent_point: point,
            });
        }
        Ok(out)
    })
}

/// Move logical slot `slot` on `db` forward to `position` before its consumer resumes there
/// (see [`advance_to`]: a slot already past it stays). Shared by every world with real slots.
pub fn advance_slot(
    cx: &Call<'_>,
    pool: &Pool,
    op: &str,
    db: &str,
    slot: &str,
    position: u64,
) -> Result<(), PrimitiveError> {
    let st = cx.budget(PG_CALL_LIMIT);
    pool.run(cx, db, PG_CALL_LIMIT, async {
        let c = pool.client(db, None, op, st).await?;
        let row = c
            .query_opt(
                "SELECT coalesce(confirmed_flush_lsn, '0/0')::text, pg_current_wal_lsn()::text \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| sql_error(op, db, e))?
            .ok_or_else(|| no_slot(op, db, slot))?;
        let (confirmed, current): (String, String) = (row.get(0), row.get(1));
        let at = |text: &str| parse_lsn(text).unwrap_or(0);
        let Some(to) = advance_to(op, slot, at(&confirmed), Some(position), at(&current))? else {
            return Ok(());
        };
        c.query(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&slot, &format_lsn(to)],
        )
        .await
        .map_err(|e| sql_error(op, db, e))?;
        Ok(())
    })
}

fn no_slot(op: &str, db: &str, slot: &str) -> PrimitiveError {
    PrimitiveError::new(
        A,
        op,
        ErrorKind::NotFound,
        format!("{db} has no replication slot {slot:?}"),
        "check the consumer's slot and database; cdc::create_equivalent_slots creates one on a new database",
    )
}
