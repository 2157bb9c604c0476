//! The order the areas' contracts run in on one world: the migration's own order, so each
//! contract finds what it needs (a replica before its position is read, a promoted cluster
//! before `cdc::create_equivalent_slots` on it or a route released to it). Each area's part runs even when an earlier
//! one failed, so one run names every rule a world breaks; the test fails at the end with all
//! of them.

use std::panic::{AssertUnwindSafe, catch_unwind};

use godwit_stdlib::rds::{TERMINAL_CLUSTER_STATES, TERMINAL_INSTANCE_STATES};

use super::{Fixture, cdc, cw, ec2, pg, rds, route, validate};

/// What a part needs of the world beyond `rds`, `ec2` and `cw`.
#[derive(Clone, Copy, PartialEq)]
enum Needs {
    Nothing,
    Databases,
    Consumer,
    Route,
}

/// One area's part of the story: its name, what it needs, its assertion body.
type Part<'a> = (&'a str, Needs, &'a dyn Fn(&Fixture));

/// Run every area's contract on `f`; panic with every failure.
pub fn run(f: &Fixture) {
    use Needs::*;
    let parts: [Part; 16] = [
        ("rds: reads", Nothing, &rds::reads),
        ("rds: parameter groups", Nothing, &rds::parameter_groups),
        ("rds: replica", Nothing, &rds::replica),
        ("rds: listing", Nothing, &rds::listing),
        ("ec2", Nothing, &ec2::contract),
        ("cw", Nothing, &cw::contract),
        ("pg", Databases, &pg::contract),
        ("validate", Databases, &validate::contract),
        ("cdc: before promotion", Consumer, &cdc::before_promotion),
        ("rds: fence (security groups, reboot)", Nothing, &rds::fence),
        ("rds: snapshots", Nothing, &rds::snapshots),
        ("rds: promotion", Nothing, &rds::promotion),
        // After the promotion: the simulator's invariants refuse a route released to a
        // replica (`route-serves-writable`), as a runbook must.
        ("route", Route, &route::contract),
        ("cdc: after promotion", Consumer, &cdc::after_promotion),
        ("rds: deletes", Nothing, &rds::deletes),
        ("rds: terminal states", Nothing, &terminal_states),
    ];
    let mut failed = Vec::new();
    for (name, needs, part) in parts {
        let missing = match needs {
            Databases | Consumer if !f.databases => Some("no PostgreSQL behind this world"),
            Consumer if f.consumer.is_none() => Some("no CDC consumer in this world"),
            Route if !f.route => Some("no route in this world"),
            _ => None,
        };
        if let Some(why) = missing {
            eprintln!("[{}] {name}: not run ({why})", f.name);
            continue;
        }
        let started = std::time::Instant::now();
        match catch_unwind(AssertUnwindSafe(|| part(f))) {
            Ok(()) => eprintln!("[{}] {name}: ok ({:?})", f.name, started.elapsed()),
            Err(p) => {
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("[{}] {name}: FAILED", f.name);
                failed.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "the {} world breaks the contract:\n{}",
        f.name,
        failed.join("\n")
    );
}

/// A healthy story never sees a terminal state (`rds::TERMINAL_*_STATES`): waits that stop at
/// one (the `wait_until_*` primitives) would have ended it.
fn terminal_states(f: &Fixture) {
    let seen = f.seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty(),
        "[{}] the story observed no status",
        f.name
    );
    for s in &seen {
        assert!(
            !TERMINAL_CLUSTER_STATES.contains(&s.as_str())
                && !TERMINAL_INSTANCE_STATES.contains(&s.as_str()),
            "[{}] a healthy story reported the terminal state {s}",
            f.name
        );
    }
}
