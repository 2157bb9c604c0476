//! Rhai module `cdc`: CDC consumers, and the doc comments that are the reference.

use std::sync::{Arc, LazyLock};

use ::rhai::plugin::*;
use ::rhai::{Array, Map, Module, NativeCallContext};
use godwit_engine::PrimitiveError;
use serde_json::json;

use crate::pg::parse_lsn;
use crate::prim::{Opts, RhaiResult, call, shared, strings};

const A: &str = "cdc";

/// Install `cdc::…` into `engine`. The module is built once per process: its functions
/// capture nothing (they find the world's backend through the engine, see [`call`]).
pub fn register(engine: &mut Engine) {
    static MODULE: LazyLock<Arc<Module>> =
        LazyLock::new(|| shared(A, exported_module!(cdc_module)));
    engine.register_static_module(A, MODULE.clone());
}

#[export_module]
mod cdc_module {
    use super::*;

    /// The CDC consumers reading logical slots.
    ///
    /// # Parameters
    /// None.
    ///
    /// # Returns
    /// Array of `#{ name, slot, db, state, position, position_bytes }`; `state` is `running` or
    /// `paused`.
    ///
    /// # Errors
    /// None in normal operation.
    ///
    /// # Example
    /// ```rhai
    /// let cs = cdc::list_consumers();
    /// if cs.len() != 1 || cs[0].state != "running" || cs[0].slot != "debezium_orders" { throw cs; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn list_consumers(ctx: NativeCallContext) -> RhaiResult<Array> {
        call(&ctx, A, "list_consumers", &json!({}), |cx, w| {
            w.cdc.list_consumers(cx)
        })
    }

    /// Pause a consumer (it disconnects; its slot goes inactive and stops advancing). Idempotent.
    ///
    /// # Parameters
    /// * `name` — the consumer.
    ///
    /// # Returns
    /// The consumer (as in `list_consumers`), `state: "paused"`.
    ///
    /// # Errors
    /// `NotFound` for an unknown consumer.
    ///
    /// # Example
    /// ```rhai
    /// let c = cdc::pause_consumer("orders-cdc");
    /// let slot = pg::replication_slots("orders-db").filter(|s| s.slot_name == c.slot)[0];
    /// if c.state != "paused" || slot.active { throw slot; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn pause_consumer(ctx: NativeCallContext, name: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "pause_consumer",
            &json!({ "name": name }),
            |cx, w| w.cdc.pause_consumer(cx, name),
        )
    }

    /// Resume a consumer, on the source (undo of a pause) or on the target after the CDC restore.
    ///
    /// # Parameters
    /// * `name` — the consumer.
    /// * `options` — `#{ db (where it was), slot (the slot it read), position }`; `position` (an
    ///   LSN string or byte position) advances the slot to it first — for a rollback to the position
    ///   recorded before the cutover. Slots only move forward.
    ///
    /// # Returns
    /// The consumer, `state: "running"`, with the position it resumes from.
    ///
    /// # Errors
    /// `NotFound` for an unknown consumer or a slot missing on `db`; `Conflict` for a position
    /// behind the slot or past the current LSN; `Invalid` for a position that is not an LSN.
    ///
    /// # Example
    /// ```rhai
    /// cdc::pause_consumer("orders-cdc");
    /// let at = cdc::record_positions()[0];
    /// sleep("1m");
    /// let c = cdc::resume_consumer("orders-cdc", #{ db: "orders-db", position: at.confirmed_flush_lsn });
    /// if c.state != "running" || c.position != at.confirmed_flush_lsn { throw c; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn resume_consumer(ctx: NativeCallContext, name: &str, options: Map) -> RhaiResult<Map> {
        const OP: &str = "resume_consumer";
        let bad = |e: PrimitiveError| e.into_rhai_at(ctx.call_position());
        let o = Opts::new(A, OP, options, &["db", "slot", "position"]).map_err(bad)?;
        let db = o.string("db").map_err(bad)?;
        let slot = o.string("slot").map_err(bad)?;
        let position = match o.int("position", 0) {
            Ok(p) => p.map(|p| p as u64),
            Err(_) => match o.string("position").map_err(bad)? {
                Some(text) if parse_lsn(&text).is_some_and(|p| p > 0) => parse_lsn(&text),
                Some(text) => {
                    return Err(bad(PrimitiveError::invalid(
                        A,
                        OP,
                        format!("options.position {text:?} is not an LSN"),
                        "pass an LSN like \"16/B374D848\" or its byte position (INT)",
                    )));
                }
                None => None,
            },
        };
        let args = json!({ "name": name, "db": db, "slot": slot, "position": position });
        call(&ctx, A, OP, &args, |cx, w| {
            // Defaults: where the consumer was, reading the slot it had.
            let current = w
                .cdc
                .list_consumers(cx)?
                .into_iter()
                .find(|x| x.name == name);
            let db = db
                .or(current.as_ref().map(|x| x.db.clone()))
                .unwrap_or_default();
            let slot = slot.or(current.map(|x| x.slot)).unwrap_or_default();
            w.cdc.resume_consumer(cx, name, &db, &slot, position)
        })
    }

    /// Each consumer's slot position on the source, to journal before the cutover (what to backfill
    /// from, and where to resume on rollback).
    ///
    /// # Parameters
    /// None.
    ///
    /// # Returns
    /// Array of `#{ consumer, slot, confirmed_flush_lsn, confirmed_flush_bytes, restart_lsn }`.
    ///
    /// # Errors
    /// None in normal operation.
    ///
    /// # Example
    /// ```rhai
    /// cdc::pause_consumer("orders-cdc");
    /// let p = cdc::record_positions();
    /// if p[0].slot != "debezium_orders" || p[0].confirmed_flush_bytes <= 0 { throw p; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn record_positions(ctx: NativeCallContext) -> RhaiResult<Array> {
        call(&ctx, A, "record_positions", &json!({}), |cx, w| {
            w.cdc.record_positions(cx)
        })
    }

    /// Create logical slots on the promoted Aurora cluster with the names and plugins of the
    /// source's. Their consistent point is on the new timeline: changes between the consumer's pause
    /// and it must be backfilled. Idempotent.
    ///
    /// # Parameters
    /// * `db` — the promoted Aurora cluster.
    /// * `slots` — names of logical slots on the source.
    ///
    /// # Returns
    /// Array of `#{ db, slot_name, plugin, consistent_point }`.
    ///
    /// # Errors
    /// `Conflict` when `db` is not writable yet (PostgreSQL cannot create a logical slot on a
    /// standby); `NotFound` for a slot the source does not have.
    ///
    /// # Example
    /// ```rhai
    /// rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    /// rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    /// rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
    /// try { cdc::create_equivalent_slots("orders-aurora", ["debezium_orders"]); throw "replica"; }
    /// catch (e) { if e.kind != "Conflict" { throw e; } }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn create_equivalent_slots(
        ctx: NativeCallContext,
        db: &str,
        slots: Array,
    ) -> RhaiResult<Array> {
        const OP: &str = "create_equivalent_slots";
        let names = strings(&Dynamic::from_array(slots)).ok_or_else(|| {
            PrimitiveError::invalid(
                A,
                OP,
                "slots must be an array of slot names",
                "e.g. [\"debezium_orders\"]",
            )
            .into_rhai_at(ctx.call_position())
        })?;
        call(
            &ctx,
            A,
            OP,
            &json!({ "db": db, "slots": names }),
            |cx, w| w.cdc.create_equivalent_slots(cx, db, &names),
        )
    }
}
