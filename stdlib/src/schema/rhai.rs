//! Rhai module `schema`: the team's schema migrations frozen during the rollback window, and
//! the doc comments that are the reference.

use std::sync::{Arc, LazyLock};

use ::rhai::plugin::*;
use ::rhai::{Map, Module, NativeCallContext};
use serde_json::json;

use crate::prim::{RhaiResult, call, shared};

const A: &str = "schema";

/// Install `schema::…` into `engine` (built once per process, like every area's module).
pub fn register(engine: &mut Engine) {
    static MODULE: LazyLock<Arc<Module>> =
        LazyLock::new(|| shared(A, exported_module!(schema_module)));
    engine.register_static_module(A, MODULE.clone());
}

#[export_module]
mod schema_module {
    use super::*;

    /// Whether this world can freeze the schema migrations of a database (the team's declared
    /// hooks), how, and whether godwit froze them.
    ///
    /// # Parameters
    /// * `db` — an RDS instance id or an Aurora cluster id.
    ///
    /// # Returns
    /// `#{ db, declared, frozen, how, output }`.
    ///
    /// # Errors
    /// `NotFound` for an unknown endpoint (simulator).
    ///
    /// # Example
    /// ```rhai
    /// let s = schema::freeze_status("orders-db");
    /// if !s.declared || s.frozen { throw s; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn freeze_status(ctx: NativeCallContext, db: &str) -> RhaiResult<Map> {
        call(&ctx, A, "freeze_status", &json!({ "db": db }), |cx, w| {
            w.schema.freeze_status(cx, db)
        })
    }

    /// Freeze the team's schema migrations of a database (its declared freeze command, with
    /// `GODWIT_SCHEMA_DB` and `GODWIT_SCHEMA_REASON`): logical replication does not carry DDL,
    /// so a migration during the rollback window would break the way back. Idempotent.
    ///
    /// # Parameters
    /// * `db` — the database whose migrations stop (the promoted Aurora cluster).
    /// * `reason` — said to the command (and the team).
    ///
    /// # Returns
    /// `#{ db, declared, frozen: true, how, output }` (`output`: the end of what the command printed).
    ///
    /// # Errors
    /// `Invalid` without declared hooks; `Internal` (retryable) when the command fails, with its output; `Timeout` past its timeout.
    ///
    /// # Example
    /// ```rhai
    /// let f = schema::freeze("orders-db", "rollback window of orders-db");
    /// if !f.frozen || !schema::freeze_status("orders-db").frozen { throw f; }
    /// if schema::unfreeze("orders-db").frozen { throw "still frozen"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn freeze(ctx: NativeCallContext, db: &str, reason: &str) -> RhaiResult<Map> {
        call(
            &ctx,
            A,
            "freeze",
            &json!({ "db": db, "reason": reason }),
            |cx, w| w.schema.freeze(cx, db, reason),
        )
    }

    /// Let the team's schema migrations of a database run again (its declared unfreeze
    /// command). Idempotent.
    ///
    /// # Parameters
    /// * `db` — the database.
    ///
    /// # Returns
    /// `#{ db, declared, frozen: false, how, output }`.
    ///
    /// # Errors
    /// `Invalid` without declared hooks; `Internal` (retryable) when the command fails.
    ///
    /// # Example
    /// ```rhai
    /// if schema::unfreeze("orders-db").frozen { throw "frozen"; }
    /// ```
    #[rhai_fn(volatile, return_raw)]
    pub fn unfreeze(ctx: NativeCallContext, db: &str) -> RhaiResult<Map> {
        call(&ctx, A, "unfreeze", &json!({ "db": db }), |cx, w| {
            w.schema.unfreeze(cx, db)
        })
    }
}
