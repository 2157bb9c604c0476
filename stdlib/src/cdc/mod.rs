//! Area `cdc`: change-data-capture consumers reading logical slots — pause, record positions,
//! recreate equivalent slots on the target, resume. Logical slots are not carried by physical
//! replication, so consumers always need new slots on Aurora and a backfill of the gap.
//!
//! | file      | what                                   |
//! |-----------|----------------------------------------|
//! | `mod.rs`  | the [`Cdc`] trait and its types        |
//! | `rhai.rs` | the Rhai module `cdc`                  |
//! | `sim.rs`  | [`Cdc`] over the simulator             |
//! | `hooks.rs` | [`Cdc`] over declared consumers with pause/resume commands (aws), and the slot
//!   operations every world with real slots shares |
//!
//! The rules every world applies: where a resumed slot moves ([`advance_to`]), what an unknown
//! consumer is ([`consumer_not_found`]), the order of consumers ([`sort_consumers`]).

pub mod hooks;
pub mod rhai;
pub mod sim;

use godwit_engine::Call;
use godwit_engine::{ErrorKind, PrimitiveError};
use serde::{Deserialize, Serialize};

use crate::pg::format_lsn;

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
    /// Sorted by name.
    fn list_consumers(&self, cx: &Call<'_>) -> Result<Vec<ConsumerInfo>, PrimitiveError>;
    /// Idempotent: a paused consumer stays paused. `NotFound` for an unknown consumer.
    fn pause_consumer(&self, cx: &Call<'_>, name: &str) -> Result<ConsumerInfo, PrimitiveError>;
    /// Resume reading `slot` on `db` (the source, or the target after the restore), from
    /// `position` (a byte LSN; the slot is advanced to it, see [`advance_to`]) or from where the
    /// slot is. `NotFound` for an unknown consumer or slot.
    fn resume_consumer(
        &self,
        cx: &Call<'_>,
        name: &str,
        db: &str,
        slot: &str,
        position: Option<u64>,
    ) -> Result<ConsumerInfo, PrimitiveError>;
    /// Each consumer's slot position on the database it reads, in [`Cdc::list_consumers`] order.
    fn record_positions(&self, cx: &Call<'_>) -> Result<Vec<SlotPosition>, PrimitiveError>;
    /// Create logical slots named like the source's on `db`; idempotent (the same slot and
    /// consistent point again). `Conflict` on a database in recovery (a replica).
    fn create_equivalent_slots(
        &self,
        cx: &Call<'_>,
        db: &str,
        slots: &[String],
    ) -> Result<Vec<CreatedSlot>, PrimitiveError>;
}

/// A consumer name no consumer has.
pub fn consumer_not_found(op: &str, name: &str, known: &[&str]) -> PrimitiveError {
    PrimitiveError::new(
        "cdc",
        op,
        ErrorKind::NotFound,
        format!("no CDC consumer {name:?}"),
        format!("consumers: {}", known.join(", ")),
    )
}

/// The output plugin of a slot made for a consumer on the target: the consumer's own, else
/// `pgoutput` (PostgreSQL's built-in, what logical replication and most CDC tools read).
pub fn plugin(of_consumer: Option<String>) -> String {
    of_consumer.unwrap_or_else(|| "pgoutput".into())
}

/// Consumers as the trait lists them: by name.
pub fn sort_consumers(mut consumers: Vec<ConsumerInfo>) -> Vec<ConsumerInfo> {
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    consumers
}

/// Where a slot confirmed up to `confirmed` moves when its consumer resumes from `position`
/// on a database whose WAL is at `current`: forward only. No position, or one the slot is
/// already past (a re-run after the consumer moved on), is no move (`None`); a position past
/// the database's WAL is one it never wrote (`Conflict`).
pub fn advance_to(
    op: &str,
    slot: &str,
    confirmed: u64,
    position: Option<u64>,
    current: u64,
) -> Result<Option<u64>, PrimitiveError> {
    match position {
        Some(p) if p > current => Err(PrimitiveError::new(
            "cdc",
            op,
            ErrorKind::Conflict,
            format!(
                "slot {slot} cannot move to {}: the database's WAL ends at {}",
                format_lsn(p),
                format_lsn(current)
            ),
            "pass a position recorded on this database (cdc::record_positions), or none to \
             continue from the slot",
        )),
        Some(p) if p > confirmed => Ok(Some(p)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_only_moves_forward_and_never_past_the_wal() {
        assert_eq!(advance_to("op", "s", 100, None, 500).unwrap(), None);
        assert_eq!(
            advance_to("op", "s", 100, Some(300), 500).unwrap(),
            Some(300)
        );
        assert_eq!(
            advance_to("op", "s", 100, Some(500), 500).unwrap(),
            Some(500)
        );
        assert_eq!(
            advance_to("op", "s", 300, Some(100), 500).unwrap(),
            None,
            "a consumer already past the position stays where it is"
        );
        let e = advance_to("op", "s", 100, Some(501), 500).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert!(e.message.contains("0/1F5"), "{e:?}");
    }
}
