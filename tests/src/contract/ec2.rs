//! The `ec2` contract: groups of a VPC sorted by id; the quarantine group created once, with
//! no rule (`ec2::check_quarantine_group`); someone else's group of that name refused; an
//! unknown VPC `NotFound`.

use godwit_engine::ErrorKind;

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
    let ensure = |vpc: &str, name: &str| {
        ec2.ensure_quarantine_group(
            &f.cx(A, "ensure_quarantine_group"),
            vpc,
            name,
            &Default::default(),
        )
    };
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
    assert!(e.message.contains("not deny-all"), "[{}] {e:?}", f.name);
    assert_eq!(
        describe(&f.vpc).iter().find(|g| g.id == app.id),
        Some(app),
        "[{}] and left as it was",
        f.name
    );
    err(
        f,
        "an unknown VPC is NotFound (ec2::vpc_not_found)",
        ErrorKind::NotFound,
        A,
        ensure(MISSING, QUARANTINE),
    );
}
