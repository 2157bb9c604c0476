//! Area `cdc`: change-data-capture consumers reading logical slots — pause, record positions,
//! recreate equivalent slots on the target, resume. Logical slots are not carried by physical
//! replication, so consumers always need new slots on Aurora and a backfill of the gap.
//!
//! | file      | what                                   |
//! |-----------|----------------------------------------|
//! | `mod.rs`  | the [`Cdc`] trait and its types        |
//! | `rhai.rs` | the Rhai module `cdc`                  |
//! | `sim.rs`  | [`Cdc`] over the simulator             |
//! | `hooks.rs` | [`Cdc`] over declared consumers with pause/resume commands (aws) |

pub mod hooks;
pub mod rhai;
pub mod sim;

use godwit_engine::Call;
use godwit_engine::PrimitiveError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerInfo {
    pub name: String,
    pub slot: String,
    pub db: String,
    /// `running` or `paused`.
    pub state: String,
    pub position: String,
    pub position_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotPosition {
    pub consumer: String,
    pub slot: String,
    pub confirmed_flush_lsn: String,
    pub confirmed_flush_bytes: i64,
    pub restart_lsn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedSlot {
    pub db: String,
    pub slot_name: String,
    pub plugin: String,
    /// Where the new slot starts on the target's timeline: changes before it must be
    /// backfilled.
    pub consistent_point: String,
}

pub trait Cdc: Send + Sync {
    fn list_consumers(&self, cx: &Call<'_>) -> Result<Vec<ConsumerInfo>, PrimitiveError>;
    fn pause_consumer(&self, cx: &Call<'_>, name: &str) -> Result<ConsumerInfo, PrimitiveError>;
    /// Resume reading `slot` on `db` (the source, or the target after the restore), from
    /// `position` (a byte LSN; the slot is advanced to it) or from where the slot is.
    fn resume_consumer(
        &self,
        cx: &Call<'_>,
        name: &str,
        db: &str,
        slot: &str,
        position: Option<u64>,
    ) -> Result<ConsumerInfo, PrimitiveError>;
    fn record_positions(&self, cx: &Call<'_>) -> Result<Vec<SlotPosition>, PrimitiveError>;
    /// Create logical slots named like the source's on `db`; idempotent.
    fn create_equivalent_slots(
        &self,
        cx: &Call<'_>,
        db: &str,
        slots: &[String],
    ) -> Result<Vec<CreatedSlot>, PrimitiveError>;
}
