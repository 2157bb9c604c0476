//! Naming the slot that holds WAL back, and saying what to do about it instead of waiting.

use super::fmt::fmt_bytes;
use super::{Assessment, Evidence, Options, Slot, SlotType, Verdict};

/// The advice for one slot, by type and state. A logical slot is the usual culprit (a CDC
/// consumer paused or gone: the Netflix customer case); a physical slot without a standby is a
/// leftover from an earlier replica.
pub(crate) fn advice(slot: &Slot) -> String {
    let name = &slot.slot_name;
    match (slot.slot_type, slot.active) {
        (SlotType::Logical, false) => {
            format!("drop it (SELECT pg_drop_replication_slot('{name}')) or resume its consumer")
        }
        (SlotType::Logical, true) => format!(
            "its consumer is connected but not confirming (confirmed_flush_lsn stuck): fix or \
             restart the consumer, or drop slot '{name}'"
        ),
        (SlotType::Physical, false) => format!(
            "no standby uses it: drop it (SELECT pg_drop_replication_slot('{name}')) if its \
             replica is gone"
        ),
        (SlotType::Physical, true) => format!(
            "its standby '{name}' is connected but not confirming: check that replica, or \
             drop the slot if the replica is not needed"
        ),
    }
}

/// `slot `x` (logical, inactive since 12:04:00, 3.1 GiB)`
pub(crate) fn describe(slot: &Slot) -> String {
    let kind = match slot.slot_type {
        SlotType::Logical => "logical",
        SlotType::Physical => "physical",
    };
    let state = match (&slot.active, &slot.inactive_since) {
        (true, _) => "active".to_string(),
        (false, Some(since)) => format!("inactive since {}", since.display()),
        (false, None) => "inactive".to_string(),
    };
    format!(
        "slot `{}` ({kind}, {state}, {})",
        slot.slot_name,
        fmt_bytes(slot.lag_bytes)
    )
}

/// The slot most likely holding WAL back: the largest lag above one idle tooth, preferring an
/// inactive slot on a tie.
pub(crate) fn culprit<'a>(slots: &'a [Slot], opts: &Options) -> Option<&'a Slot> {
    slots
        .iter()
        .filter(|s| s.lag_bytes > opts.ceiling())
        .max_by(|a, b| {
            a.lag_bytes
                .total_cmp(&b.lag_bytes)
                .then((!a.active).cmp(&(!b.active)))
        })
}

/// Preflight inventory: flags every inactive slot and every slot lagging more than
/// `stale_slot_segments` segments.
///
/// Verdicts: `stale-slot` (pass false) or `no-stale-slot` (pass true). Evidence: `slots`,
/// `stale`, `stale_slot_names` (comma-separated), `max_lag_bytes`, `max_lag_slot`.
pub fn stale_slots(slots: &[Slot], opts: &Options) -> Assessment {
    let far = opts.far();
    let stale: Vec<&Slot> = slots
        .iter()
        .filter(|s| !s.active || s.lag_bytes > far)
        .collect();
    let mut ev = Evidence::default();
    ev.int("slots", slots.len() as i64)
        .int("stale", stale.len() as i64)
        .num("stale_slot_threshold_bytes", far);
    if let Some(max) = slots
        .iter()
        .max_by(|a, b| a.lag_bytes.total_cmp(&b.lag_bytes))
    {
        ev.num("max_lag_bytes", max.lag_bytes)
            .text("max_lag_slot", max.slot_name.clone());
    }
    ev.text(
        "stale_slot_names",
        stale
            .iter()
            .map(|s| s.slot_name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    if stale.is_empty() {
        return Assessment::new(
            Verdict::NoStaleSlot,
            true,
            format!(
                "{} slot(s), all active and within {} of lag",
                slots.len(),
                fmt_bytes(far)
            ),
            ev,
        );
    }
    let detail = stale
        .iter()
        .map(|s| format!("{}: {}", describe(s), advice(s)))
        .collect::<Vec<_>>()
        .join("; ");
    Assessment::new(Verdict::StaleSlot, false, detail, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lag::{RDS_SEGMENT_BYTES, Since};

    fn slot(name: &str, t: SlotType, active: bool, lag: f64) -> Slot {
        Slot {
            slot_name: name.into(),
            slot_type: t,
            active,
            lag_bytes: lag,
            inactive_since: (!active).then_some(Since::Epoch(12 * 3600 + 4 * 60)),
        }
    }

    #[test]
    fn flags_inactive_and_far_behind_slots() {
        let slots = [
            slot("aurora_replica", SlotType::Physical, true, 1024.0),
            slot(
                "debezium_orders",
                SlotType::Logical,
                false,
                3.1 * 1024.0 * RDS_SEGMENT_BYTES / 64.0,
            ),
            slot(
                "search_sync",
                SlotType::Logical,
                true,
                10.0 * RDS_SEGMENT_BYTES,
            ),
        ];
        let a = stale_slots(&slots, &Options::default());
        assert_eq!(a.verdict, Verdict::StaleSlot);
        assert!(!a.pass);
        assert!(
            a.why.contains(
                "slot `debezium_orders` (logical, inactive since 12:04:00, 3.1 GiB): drop it"
            ),
            "{}",
            a.why
        );
        assert!(a.why.contains("search_sync"), "{}", a.why);
        assert_eq!(a.evidence.get_i64("stale"), Some(2));
        assert_eq!(a.evidence.0["max_lag_slot"], "debezium_orders");
    }

    #[test]
    fn healthy_slots_pass() {
        let slots = [slot("aurora_replica", SlotType::Physical, true, 1024.0)];
        let a = stale_slots(&slots, &Options::default());
        assert_eq!(a.verdict, Verdict::NoStaleSlot);
        assert!(a.pass);
        let none = stale_slots(&[], &Options::default());
        assert!(none.pass, "{}", none.why);
    }

    #[test]
    fn culprit_prefers_the_largest_then_inactive() {
        let opts = Options::default();
        let slots = [
            slot("a", SlotType::Logical, true, 5.0 * RDS_SEGMENT_BYTES),
            slot("b", SlotType::Logical, false, 5.0 * RDS_SEGMENT_BYTES),
            slot("c", SlotType::Physical, true, 1.0),
        ];
        assert_eq!(culprit(&slots, &opts).unwrap().slot_name, "b");
        assert!(culprit(&slots[2..], &opts).is_none());
    }
}
