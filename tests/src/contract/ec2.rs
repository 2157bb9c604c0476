//! The `ec2` contract: groups of a VPC sorted by id; the quarantine group created once, with
//! no rule (`ec2::check_quarantine_group`); the rule admitting a group on the database port
//! added to it once; someone else's group of that name refused; an unknown VPC `NotFound`.

use godwit_engine::ErrorKind;
use godwit_stdlib::ec2::Admit;

use super::{Fixture, MISSING, err, ok, sorted_by};

const A: &str = "ec2";
/// The story's quarantine group.
pub const QUARANTINE: &str = "contract-quarantine";

pub fn contract(f: &Fixture) {
    let ec2 = &f.areas.ec2;
    let describe = |vpc: &str| {
        ok(
            f,
            "describe_security_groups",
            ec2.describe_security_groups(&f.cx(A, "describe_security_groups"), vpc),
        )
    };
    let ensure_admitting = |vpc: &str, name: &str, admit: &Admit| {
        ec2.ensure_quarantine_group(&f.cx(A, "ensure_quarantine_group"), vpc, name, admit)
    };
    let ensure = |vpc: &str, name: &str| ensure_admitting(vpc, name, &Admit::default());
    let groups = describe(&f.vpc);
    assert!(
        sorted_by(&groups, |g| g.id.clone()),
        "[{}] groups sorted by id",
        f.name
    );
    let src = super::rds::instance(f, &f.source);
    let app = groups
        .iter()
        .find(|g| src.security_groups.contains(&g.id))
        .unwrap_or_else(|| panic!("[{}] the source's group is in its VPC: {groups:?}", f.name));
    assert!(
        !app.ingress.is_empty(),
        "[{}] the application's group admits it",
        f.name
    );
    assert_eq!(
        describe("vpc-contract-none"),
        vec![],
        "[{}] a VPC without groups has none",
        f.name
    );

    let q = ok(f, "ensure_quarantine_group", ensure(&f.vpc, QUARANTINE));
    assert_eq!(
        (q.name.as_str(), q.vpc_id.as_str()),
        (QUARANTINE, f.vpc.as_str()),
        "[{}]",
        f.name
    );
    assert!(
        q.ingress.is_empty() && q.egress.is_empty(),
        "[{}] deny-all: {q:?}",
        f.name
    );
    let again = ok(
        f,
        "ensure_quarantine_group again",
        ensure(&f.vpc, QUARANTINE),
    );
    assert_eq!(again, q, "[{}] the same group", f.name);
    let named: Vec<_> = describe(&f.vpc)
        .into_iter()
        .filter(|g| g.name == QUARANTINE)
        .collect();
    assert_eq!(named.len(), 1, "[{}] created once: {named:?}", f.name);

    let e = err(
        f,
        "a group of that name with rules is someone else's (ec2::check_quarantine_group)",
        ErrorKind::Conflict,
        A,
        ensure(&f.vpc, &app.name),
    );
    assert!(
        e.message.contains("rules a quarantine must not have"),
        "[{}] {e:?}",
        f.name
    );
    assert_eq!(
        describe(&f.vpc).iter().find(|g| g.id == app.id),
        Some(app),
        "[{}] and left as it was",
        f.name
    );

    // What the fence does when godwit has database access: the same group, plus one rule that
    // admits godwit's group on the database port (the story admits the application's group,
    // which every world has).
    let admit = admit(f);
    let q2 = ok(
        f,
        "ensure_quarantine_group admitting a group",
        ensure_admitting(&f.vpc, QUARANTINE, &admit),
    );
    assert_eq!(q2.id, q.id, "[{}] the same group, a rule added", f.name);
    assert_eq!(q2.ingress, admit.rules(), "[{}] {q2:?}", f.name);
    assert!(q2.egress.is_empty(), "[{}] {q2:?}", f.name);
    let again = ok(
        f,
        "ensure_quarantine_group admitting again",
        ensure_admitting(&f.vpc, QUARANTINE, &admit),
    );
    assert_eq!(again, q2, "[{}] the rule once", f.name);
    err(
        f,
        "deny-all asked of a group that admits someone is a Conflict",
        ErrorKind::Conflict,
        A,
        ensure(&f.vpc, QUARANTINE),
    );
    err(
        f,
        "an unknown VPC is NotFound (ec2::vpc_not_found)",
        ErrorKind::NotFound,
        A,
        ensure(MISSING, QUARANTINE),
    );
}

/// What the story's quarantine admits: the source's first group (it exists in every world) on
/// the source's port.
pub fn admit(f: &Fixture) -> Admit {
    let src = super::rds::instance(f, &f.source);
    Admit {
        groups: vec![src.security_groups[0].clone()],
        port: src.port,
    }
}
