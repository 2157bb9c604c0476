//! Area `schema`: the team's schema migrations, frozen while the rollback window lasts.
//! Logical replication carries rows, not DDL: a migration applied to Aurora during the window
//! breaks the reverse path (docs/rds-to-aurora.md, "Rollback after promotion"). godwit cannot
//! stop a Flyway or Liquibase pipeline itself, so the team declares two commands — one that
//! freezes its migrations, one that lets them run again — and the runbook calls them, each
//! call journaled.
//!
//! | file      | what                                         |
//! |-----------|----------------------------------------------|
//! | `mod.rs`  | the [`Schema`] trait and [`Freezing`]        |
//! | `rhai.rs` | the Rhai module `schema`                     |
//! | `sim.rs`  | [`Schema`] over the simulator                |
//! | `hooks.rs`| [`Schema`] over declared commands (lab, aws) |

pub mod hooks;
pub mod rhai;
pub mod sim;

use godwit_engine::{Call, PrimitiveError};
use serde::{Deserialize, Serialize};

/// Where the schema migrations of one database stand, as godwit knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Freezing {
    pub db: String,
    /// Whether this world has freeze hooks for `db` at all.
    pub declared: bool,
    /// Frozen by godwit's last call (`false` before any).
    pub frozen: bool,
    /// How: the commands, or why there are none.
    pub how: String,
    /// What the last command printed (its end), if one ran.
    pub output: String,
}

pub trait Schema: Send + Sync {
    /// Whether this world can freeze `db`'s schema migrations, and how.
    fn freeze_status(&self, cx: &Call<'_>, db: &str) -> Result<Freezing, PrimitiveError>;
    /// Freeze them (`reason` reaches the command): idempotent. `Invalid` without hooks.
    fn freeze(&self, cx: &Call<'_>, db: &str, reason: &str) -> Result<Freezing, PrimitiveError>;
    /// Let them run again: idempotent. `Invalid` without hooks.
    fn unfreeze(&self, cx: &Call<'_>, db: &str) -> Result<Freezing, PrimitiveError>;
}

/// The refusal of `op` in a world without freeze hooks.
pub fn no_hooks(op: &str, db: &str, why: &str) -> PrimitiveError {
    PrimitiveError::invalid(
        "schema",
        op,
        format!("no schema-freeze hooks for {db}: {why}"),
        "declare them ([aws.schema_freeze] freeze/unfreeze commands, docs/aws.md), or skip the \
         freeze (schema::freeze_status says whether there are any)",
    )
}
