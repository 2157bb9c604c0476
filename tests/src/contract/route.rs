//! The `route` contract: the source's route describes its target; an unknown route or target
//! is `NotFound`; hold, switch with drain and switch back each publish one version and a
//! repeat publishes none (`route::plan_switch`); every version is taken by the fleet
//! (`route::all_acked`); connections are listed by target.

use godwit_engine::ErrorKind;
use godwit_stdlib::route::Route;

use super::{Fixture, MISSING, err, ok, sorted_by};

const A: &str = "route";

fn describe(f: &Fixture) -> Route {
    ok(
        f,
        "describe_route",
        f.areas
            .route
            .describe_route(&f.cx(A, "describe_route"), &f.source),
    )
}

fn acked(f: &Fixture, version: i64) -> Route {
    f.wait(&format!("every node ACKs version {version}"), || {
        Some(describe(f)).filter(|r| r.version >= version && r.all_acked)
    })
}

pub fn contract(f: &Fixture) {
    let route = &f.areas.route;
    let r0 = describe(f);
    assert_eq!(
        (r0.name.as_str(), r0.target.as_str(), r0.hold),
        (f.source.as_str(), f.source.as_str(), false),
        "[{}] {r0:?}",
        f.name
    );
    assert!(!r0.nodes.is_empty(), "[{}] a fleet serves it", f.name);
    err(
        f,
        "an unknown route is NotFound",
        ErrorKind::NotFound,
        A,
        route.describe_route(&f.cx(A, "describe_route"), MISSING),
    );
    let switch = |target: &str, hold: bool, drain: bool| {
        route.switch_route(&f.cx(A, "switch_route"), &f.source, target, hold, drain)
    };
    err(
        f,
        "an unknown target is NotFound (route::target_not_found)",
        ErrorKind::NotFound,
        A,
        switch(MISSING, false, false),
    );
    let r0 = acked(f, r0.version);

    let held = ok(f, "hold", switch(&f.source, true, false));
    assert!(
        held.hold && held.version > r0.version,
        "[{}] a new version that holds: {held:?}",
        f.name
    );
    let again = ok(f, "hold again", switch(&f.source, true, false));
    assert_eq!(
        (again.version, again.hold),
        (held.version, true),
        "[{}] the same switch publishes nothing",
        f.name
    );
    acked(f, held.version);

    let moved = ok(f, "switch with drain", switch(&f.target, false, true));
    assert_eq!(
        (moved.target.as_str(), moved.hold, moved.draining.clone()),
        (f.target.as_str(), false, vec![f.source.clone()]),
        "[{}] the target, released, the source draining: {moved:?}",
        f.name
    );
    assert!(moved.version > held.version, "[{}]", f.name);
    let again = ok(f, "switch with drain again", switch(&f.target, false, true));
    assert_eq!(again.version, moved.version, "[{}]", f.name);
    acked(f, moved.version);
    let conns = ok(
        f,
        "active_connections",
        route.active_connections(&f.cx(A, "active_connections"), &f.source),
    );
    assert!(
        sorted_by(&conns, |c| c.target.clone()),
        "[{}] by target: {conns:?}",
        f.name
    );
    assert!(
        conns.iter().any(|c| c.target == f.target),
        "[{}] the target is an endpoint: {conns:?}",
        f.name
    );

    let back = ok(f, "switch back", switch(&f.source, false, false));
    assert_eq!(
        (back.target.as_str(), back.hold, back.draining.len()),
        (f.source.as_str(), false, 0),
        "[{}] {back:?}",
        f.name
    );
    acked(f, back.version);
}
