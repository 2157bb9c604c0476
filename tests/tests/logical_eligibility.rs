//! Issue 25, the logical path's eligibility on real PostgreSQL: the plan's calibration probe
//! (`godwit::plan::PROBE`) reads what native logical replication cannot carry — a table
//! without a key, an unlogged table, large objects, a role signing in with a password, logical
//! decoding off — through the live `pg` area, and `fleet::logical::judge` names each with its
//! fix. A missing PostgreSQL fails with the install command (never skipped).

use godwit::fleet::logical::judge;
use godwit_engine::RunStatus;
use godwit_engine::transcript::Event;
use godwit_tests::livepg::{exec, run_script, runtime, scratch, sql_world};

/// What the probe's step `measure` read of `orders-db` (a simulated instance whose `pg` is the
/// real `server`).
fn probe(server: &godwit_lab::pgproc::Server, rt: &tokio::runtime::Runtime) -> serde_json::Value {
    let world = sql_world(&[("orders-db", server)], rt.handle().clone());
    let params = serde_json::json!({ "period": 60 })
        .as_object()
        .unwrap()
        .clone();
    let (report, lines) = run_script(&world, rt, godwit::plan::PROBE, params);
    assert!(
        matches!(report.status, RunStatus::Succeeded { .. }),
        "{:?}",
        report.status
    );
    lines
        .into_iter()
        .find_map(|l| match l.event {
            Event::StepCompleted { name, result, .. } if name == "measure" => Some(result),
            _ => None,
        })
        .expect("the probe measured")
}

#[test]
fn what_logical_replication_cannot_carry_is_read_from_the_server_and_named_with_its_fix() {
    let pg = scratch();
    // wal_level=replica: logical decoding off, as on an RDS source without
    // rds.logical_replication.
    let server = pg.primary("p", &[("wal_level", "replica")]).unwrap();
    let rt = runtime();
    rt.block_on(exec(
        &server,
        "CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric);
         CREATE TABLE events (at timestamptz, kind text);
         CREATE UNLOGGED TABLE session_cache (k text PRIMARY KEY, v text);
         SELECT lo_from_bytea(0, 'an attachment'), lo_from_bytea(0, 'another');
         CREATE ROLE legacy_app LOGIN PASSWORD 'not-iam';
         CREATE ROLE reporting NOLOGIN;",
    ));
    let measured = probe(&server, &rt);
    let l = &measured["logical"];
    assert_eq!(l["readable"], true, "{l}");
    assert_eq!(l["wal_level"], "replica", "{l}");
    assert_eq!(
        l["large_objects"],
        serde_json::json!([{ "database": "postgres", "count": 2 }]),
        "{l}"
    );
    assert_eq!(l["sequences"], 1, "{l}");
    let e = judge(&measured);
    let checks: Vec<&str> = e.blockers.iter().map(|b| b.check.as_str()).collect();
    assert_eq!(
        checks,
        [
            "logical-replica-identity",
            "logical-large-objects",
            "logical-unlogged-tables",
            "logical-iam-sign-in",
            "logical-decoding"
        ],
        "{e:?}"
    );
    assert_eq!(
        l["password_roles"],
        serde_json::json!(["legacy_app"]),
        "{l}"
    );
    assert!(
        e.blockers[0].why.contains("public.events") && !e.blockers[0].why.contains("orders"),
        "{e:?}"
    );
    assert!(e.blockers[1].why.contains("2 in postgres"), "{e:?}");
    assert!(e.blockers[2].why.contains("public.session_cache"), "{e:?}");
    assert_eq!(e.verdict, "not-eligible");

    // Fixed on the same server as the findings say (REPLICA IDENTITY FULL, SET LOGGED, the
    // large objects gone, the role signing in with IAM — a member of rds_iam through another
    // role counts): only logical decoding is left, a parameter and a reboot away.
    rt.block_on(exec(
        &server,
        "ALTER TABLE events REPLICA IDENTITY FULL;
         ALTER TABLE session_cache SET LOGGED;
         SELECT lo_unlink(oid) FROM pg_largeobject_metadata;
         CREATE ROLE rds_iam NOLOGIN;
         CREATE ROLE iam_users NOLOGIN IN ROLE rds_iam;
         GRANT iam_users TO legacy_app;",
    ));
    let e = judge(&probe(&server, &rt));
    assert_eq!(e.verdict, "after-reboot", "{e:?}");
    assert_eq!(e.blockers.len(), 1, "{e:?}");
    assert!(e.blockers[0].check.starts_with("logical-decoding"), "{e:?}");

    // A server with logical decoding on (wal_level=logical) and the same fixes: eligible, its
    // sequence noted.
    let on = pg.primary("q", &[]).unwrap();
    rt.block_on(exec(
        &on,
        "CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric);
         CREATE TABLE events (at timestamptz, kind text);
         ALTER TABLE events REPLICA IDENTITY FULL;",
    ));
    let e = judge(&probe(&on, &rt));
    assert_eq!(e.verdict, "eligible", "{e:?}");
    assert_eq!(
        e.summary(),
        "eligible (1 sequence(s) set past the source's values at the cutover)"
    );
}
