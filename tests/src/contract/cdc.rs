//! The `cdc` contract: consumers listed by name; pause is idempotent; a consumer resumes from
//! a recorded position, a re-run finds its slot past it and leaves it (`cdc::advance_to`), a
//! position the database never wrote is a `Conflict`; slots cannot be made on a replica
//! (`Conflict`) and are made once on the promoted target.

use godwit_engine::ErrorKind;
use godwit_stdlib::pg::parse_lsn;

use super::{Fixture, MISSING, err, ok, sorted_by};

const A: &str = "cdc";

fn consumer(f: &Fixture) -> (String, String) {
    f.consumer
        .clone()
        .expect("the story runs cdc only with a consumer")
}

pub fn before_promotion(f: &Fixture) {
    let (name, slot) = consumer(f);
    let cdc = &f.areas.cdc;
    let list = ok(
        f,
        "list_consumers",
        cdc.list_consumers(&f.cx(A, "list_consumers")),
    );
    assert!(
        sorted_by(&list, |c| c.name.clone()),
        "[{}] consumers by name",
        f.name
    );
    let c = list
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("[{}] {name} is listed: {list:?}", f.name));
    assert_eq!(
        (c.slot.as_str(), c.db.as_str()),
        (slot.as_str(), f.source.as_str()),
        "[{}]",
        f.name
    );
    let pause = |n: &str| cdc.pause_consumer(&f.cx(A, "pause_consumer"), n);
    assert_eq!(
        ok(f, "pause_consumer", pause(&name)).state,
        "paused",
        "[{}]",
        f.name
    );
    assert_eq!(
        ok(f, "pause_consumer again", pause(&name)).state,
        "paused",
        "[{}] idempotent",
        f.name
    );
    err(
        f,
        "an unknown consumer is NotFound",
        ErrorKind::NotFound,
        A,
        pause(MISSING),
    );
    let positions = ok(
        f,
        "record_positions",
        cdc.record_positions(&f.cx(A, "record_positions")),
    );
    let at = positions
        .iter()
        .find(|p| p.consumer == name)
        .unwrap_or_else(|| panic!("[{}] {name}'s position: {positions:?}", f.name));
    assert_eq!(
        parse_lsn(&at.confirmed_flush_lsn),
        Some(at.confirmed_flush_bytes as u64),
        "[{}] {at:?}",
        f.name
    );
    let resume = |db: &str, slot: &str, position: Option<u64>| {
        cdc.resume_consumer(&f.cx(A, "resume_consumer"), &name, db, slot, position)
    };
    let position = Some(at.confirmed_flush_bytes as u64);
    let r = ok(
        f,
        "resume_consumer at its position",
        resume(&f.source, &slot, position),
    );
    assert_eq!(
        (r.state.as_str(), r.db.as_str()),
        ("running", f.source.as_str()),
        "[{}]",
        f.name
    );
    assert!(
        r.position_bytes >= at.confirmed_flush_bytes,
        "[{}] a slot never moves back: {r:?}",
        f.name
    );
    let again = ok(
        f,
        "resume_consumer again (the slot is at or past the position)",
        resume(&f.source, &slot, position),
    );
    assert_eq!(again.state, "running", "[{}]", f.name);
    let beyond = super::pg::current_lsn(f, &f.source) + (1 << 30);
    err(
        f,
        "a position past the database's WAL is a Conflict (cdc::advance_to)",
        ErrorKind::Conflict,
        A,
        resume(&f.source, &slot, Some(beyond)),
    );
    err(
        f,
        "an unknown slot is NotFound",
        ErrorKind::NotFound,
        A,
        resume(&f.source, "contract_missing", None),
    );
    err(
        f,
        "no logical slot on a replica (in recovery): Conflict",
        ErrorKind::Conflict,
        A,
        cdc.create_equivalent_slots(
            &f.cx(A, "create_equivalent_slots"),
            &f.target,
            std::slice::from_ref(&slot),
        ),
    );
}

pub fn after_promotion(f: &Fixture) {
    let (name, slot) = consumer(f);
    let cdc = &f.areas.cdc;
    let create = || {
        cdc.create_equivalent_slots(
            &f.cx(A, "create_equivalent_slots"),
            &f.target,
            std::slice::from_ref(&slot),
        )
    };
    let made = ok(f, "create_equivalent_slots", create());
    assert_eq!(
        made.iter()
            .map(|s| (s.db.as_str(), s.slot_name.as_str()))
            .collect::<Vec<_>>(),
        [(f.target.as_str(), slot.as_str())],
        "[{}]",
        f.name
    );
    let point =
        parse_lsn(&made[0].consistent_point).unwrap_or_else(|| panic!("[{}] {made:?}", f.name));
    let again = ok(f, "create_equivalent_slots again", create());
    assert_eq!(
        parse_lsn(&again[0].consistent_point),
        Some(point),
        "[{}] the same slot, not a second one",
        f.name
    );
    ok(
        f,
        "pause_consumer",
        cdc.pause_consumer(&f.cx(A, "pause_consumer"), &name),
    );
    let r = ok(
        f,
        "resume_consumer on the target",
        cdc.resume_consumer(&f.cx(A, "resume_consumer"), &name, &f.target, &slot, None),
    );
    assert_eq!(
        (r.state.as_str(), r.db.as_str()),
        ("running", f.target.as_str()),
        "[{}]",
        f.name
    );
    let positions = ok(
        f,
        "record_positions",
        cdc.record_positions(&f.cx(A, "record_positions")),
    );
    let p = positions.iter().find(|p| p.consumer == name);
    assert!(
        p.is_some_and(|p| p.confirmed_flush_bytes as u64 >= point),
        "[{}] the position on the database it reads now: {positions:?}",
        f.name
    );
    // The story deletes the target next: the consumer stops reading it.
    ok(
        f,
        "pause_consumer",
        cdc.pause_consumer(&f.cx(A, "pause_consumer"), &name),
    );
}
