//! The `pg` contract: LSNs in PostgreSQL's text form that parse to their byte position
//! (`pg::parse_lsn`); the replica's position read on the source; `current_lsn` on a replica
//! and `replay_lsn` on a primary are `Conflict`, `replay_lsn` on Aurora `Invalid`; an
//! unknown database `NotFound`; lists in the documented order; blocking logins
//! answers every role now blocked, unblocking the ones still blocked; the roles signing in with
//! a password are among the login roles.

use godwit_engine::ErrorKind;
use godwit_stdlib::pg::{Lsn, parse_lsn};

use super::{Fixture, MISSING, err, ok, sorted_by};

const A: &str = "pg";

fn check_lsn(f: &Fixture, what: &str, l: &Lsn) -> u64 {
    assert_eq!(
        parse_lsn(&l.lsn),
        Some(l.lsn_bytes as u64),
        "[{}] {what}: the text and the bytes agree: {l:?}",
        f.name
    );
    assert_eq!(
        godwit_stdlib::pg::format_lsn(l.lsn_bytes as u64),
        l.lsn,
        "[{}] {what}: PostgreSQL's text form (%X/%X)",
        f.name
    );
    l.lsn_bytes as u64
}

pub fn current_lsn(f: &Fixture, db: &str) -> u64 {
    let l = ok(
        f,
        &format!("current_lsn({db})"),
        f.areas.pg.current_lsn(&f.cx(A, "current_lsn"), db),
    );
    check_lsn(f, "current_lsn", &l)
}

/// Where the replica stands, read on the source (`pg_stat_replication`): the least replayed
/// position of the walsenders other than the CDC consumer's, `None` while none is connected
/// or one has not reported.
pub fn replica_position(f: &Fixture) -> Option<u64> {
    let conns = ok(
        f,
        "replication_connections",
        f.areas
            .pg
            .replication_connections(&f.cx(A, "replication_connections"), &f.source),
    );
    assert!(
        sorted_by(&conns, |c| c.pid),
        "[{}] by pid: {conns:?}",
        f.name
    );
    // The CDC consumer's logical walsender confirms positions at its own pace: not the replica.
    let consumer_slot = f.consumer.as_ref().map(|(_, slot)| slot.clone());
    let replica: Vec<_> = conns
        .iter()
        .filter(|c| consumer_slot.is_none() || c.slot_name != consumer_slot)
        .collect();
    let mut least: Option<u64> = None;
    for c in &replica {
        let (Some(text), Some(bytes)) = (&c.replay_lsn, c.replay_lsn_bytes) else {
            return None;
        };
        assert_eq!(parse_lsn(text), Some(bytes as u64), "[{}] {c:?}", f.name);
        least = Some(least.map_or(bytes as u64, |l| l.min(bytes as u64)));
    }
    least
}

/// Wait until the replica replayed what the source had written when called.
pub fn caught_up(f: &Fixture) {
    let at = current_lsn(f, &f.source);
    f.wait("the replica replayed the source's position", || {
        replica_position(f).filter(|p| *p >= at)
    });
}

pub fn contract(f: &Fixture) {
    let pg = &f.areas.pg;
    caught_up(f);
    let e = err(
        f,
        "replay_lsn on Aurora is Invalid (pg::aurora_refuses)",
        ErrorKind::Invalid,
        A,
        pg.replay_lsn(&f.cx(A, "replay_lsn"), &f.target),
    );
    assert!(
        e.message.contains("not supported on Aurora"),
        "[{}] {e:?}",
        f.name
    );
    err(
        f,
        "current_lsn on a replica is a Conflict",
        ErrorKind::Conflict,
        A,
        pg.current_lsn(&f.cx(A, "current_lsn"), &f.target),
    );
    err(
        f,
        "replay_lsn on a primary is a Conflict",
        ErrorKind::Conflict,
        A,
        pg.replay_lsn(&f.cx(A, "replay_lsn"), &f.source),
    );
    err(
        f,
        "an unknown database is NotFound",
        ErrorKind::NotFound,
        A,
        pg.current_lsn(&f.cx(A, "current_lsn"), MISSING),
    );

    let settings = ok(
        f,
        "settings",
        pg.settings(&f.cx(A, "settings"), &f.source, &[]),
    );
    assert!(!settings.is_empty(), "[{}]", f.name);
    assert!(
        sorted_by(&settings, |s| s.name.clone()),
        "[{}] settings sorted by name",
        f.name
    );
    let one = ok(
        f,
        "settings([wal_level])",
        pg.settings(&f.cx(A, "settings"), &f.source, &["wal_level".into()]),
    );
    assert_eq!(
        one.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["wal_level"],
        "[{}]",
        f.name
    );
    let slots = ok(
        f,
        "replication_slots",
        pg.replication_slots(&f.cx(A, "replication_slots"), &f.source),
    );
    assert!(
        sorted_by(&slots, |s| s.slot_name.clone()),
        "[{}] slots sorted by name: {slots:?}",
        f.name
    );
    for s in &slots {
        assert!(parse_lsn(&s.restart_lsn).is_some(), "[{}] {s:?}", f.name);
    }
    if let Some((_, slot)) = &f.consumer {
        assert!(
            slots
                .iter()
                .any(|s| &s.slot_name == slot && s.slot_type == "logical"),
            "[{}] the consumer's logical slot: {slots:?}",
            f.name
        );
    }
    let backends = ok(
        f,
        "application_backends",
        pg.application_backends(&f.cx(A, "application_backends"), &f.source),
    );
    assert!(sorted_by(&backends, |b| b.pid), "[{}] by pid", f.name);
    let exts = ok(
        f,
        "installed_extensions",
        pg.installed_extensions(&f.cx(A, "installed_extensions"), &f.source),
    );
    assert!(
        sorted_by(&exts, |e| e.name.clone()),
        "[{}] extensions sorted by name",
        f.name
    );
    let seqs = ok(
        f,
        "sequences",
        pg.sequences(&f.cx(A, "sequences"), &f.source),
    );
    assert!(
        sorted_by(&seqs, |s| s.name.clone()),
        "[{}] sequences sorted",
        f.name
    );
    let unlogged = ok(
        f,
        "unlogged_tables",
        pg.unlogged_tables(&f.cx(A, "unlogged_tables"), &f.source),
    );
    assert!(sorted_by(&unlogged, |t| t.clone()), "[{}]", f.name);
    let lo = ok(
        f,
        "large_objects",
        pg.large_objects(&f.cx(A, "large_objects"), &f.source),
    );
    assert!(
        sorted_by(&lo, |l| l.database.clone()) && lo.iter().all(|l| l.count > 0),
        "[{}] databases holding large objects, sorted: {lo:?}",
        f.name
    );

    // The replica holds the source's tables once it replayed the source's position.
    caught_up(f);
    let hashes = |db: &str| {
        let h = ok(
            f,
            &format!("table_hashes({db})"),
            pg.table_hashes(&f.cx(A, "table_hashes"), db),
        );
        assert!(sorted_by(&h, |t| t.table.clone()), "[{}]", f.name);
        h
    };
    let source = hashes(&f.source);
    assert!(
        source.iter().any(|t| t.table == f.table),
        "[{}] {} is among {source:?}",
        f.name,
        f.table
    );
    assert_eq!(
        hashes(&f.target),
        source,
        "[{}] a caught-up replica has the source's contents",
        f.name
    );

    let login = ok(
        f,
        "login_roles",
        pg.login_roles(&f.cx(A, "login_roles"), &f.source),
    );
    assert!(
        sorted_by(&login, |r| r.clone()) && login.contains(&f.app_role),
        "[{}] the application's role signs in: {login:?}",
        f.name
    );
    let without = ok(
        f,
        "roles_without_iam",
        pg.roles_without_iam(&f.cx(A, "roles_without_iam"), &f.source),
    );
    assert!(
        sorted_by(&without, |r| r.clone()) && without.iter().all(|r| login.contains(r)),
        "[{}] roles signing in with a password are login roles, sorted: {without:?} of {login:?}",
        f.name
    );

    let role = vec![f.app_role.clone()];
    let block = |roles: &[String]| pg.block_logins(&f.cx(A, "block_logins"), &f.source, roles);
    let unblock =
        |roles: &[String]| pg.unblock_logins(&f.cx(A, "unblock_logins"), &f.source, roles);
    assert_eq!(ok(f, "block_logins", block(&role)), role, "[{}]", f.name);
    assert_eq!(
        ok(f, "block_logins again", block(&role)),
        role,
        "[{}] idempotent: every role now blocked",
        f.name
    );
    err(
        f,
        "blocking an unknown role is NotFound",
        ErrorKind::NotFound,
        A,
        block(&[MISSING.to_string()]),
    );
    assert_eq!(
        ok(f, "unblock_logins", unblock(&role)),
        Vec::<String>::new(),
        "[{}] the roles still blocked: none",
        f.name
    );
    assert_eq!(
        ok(f, "unblock_logins again", unblock(&role)),
        Vec::<String>::new(),
        "[{}] idempotent",
        f.name
    );
}
