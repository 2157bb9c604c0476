//! The query check (`validate::queries`, docs/validate.md "The query check") on real
//! PostgreSQL: the application's read-only statements from the source's `pg_stat_statements`
//! run on both sides with sampled parameters; a statement that fails on the target only is
//! `error-on-target`, writes and row locks are never run, godwit's own and a superuser's
//! statements are left out, and a source without `pg_stat_statements` is reported, not an
//! error. A missing PostgreSQL fails these tests with the install command (never skipped).

use std::sync::Arc;

use godwit_engine::{Host, SystemClock};
use godwit_lab::pgproc::Server;
use godwit_stdlib::validate::{QueryCheckOptions, QueryReport, Validate};
use godwit_tests::livepg::{exec, live_validate, runtime, scratch};

const SCHEMA: &str = "
CREATE ROLE app LOGIN;
CREATE TABLE orders (id bigint PRIMARY KEY, customer int, amount numeric(12,2), note text);
INSERT INTO orders SELECT g, g % 97, g / 10.0, 'note ' || g FROM generate_series(1, 20000) g;
CREATE INDEX ON orders (customer);
GRANT SELECT, UPDATE ON orders TO app;
";

/// The application's statements, as role `app` through the extended protocol (so
/// pg_stat_statements records them with `$n`), a few times each.
async fn workload(s: &Server) {
    let (c, conn) = tokio_postgres::connect(&s.conninfo("app", "postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    for i in 0..20i64 {
        c.query("SELECT * FROM orders WHERE id = $1", &[&(i * 97 + 1)])
            .await
            .unwrap();
        c.query(
            "SELECT count(*), sum(amount) FROM orders WHERE customer = $1",
            &[&((i % 97) as i32)],
        )
        .await
        .unwrap();
        c.query(
            "SELECT id, note FROM orders WHERE customer = $1 ORDER BY id LIMIT $2",
            &[&((i % 97) as i32), &10i64],
        )
        .await
        .unwrap();
        c.query(
            "SELECT id FROM orders WHERE id = $1 FOR UPDATE",
            &[&(i + 1)],
        )
        .await
        .unwrap();
        c.execute("UPDATE orders SET note = note WHERE id = $1", &[&(i + 1)])
            .await
            .unwrap();
        // Uses a function only the source has: fails on a target without it.
        c.query(
            "SELECT legacy_score(id) FROM orders WHERE id = $1",
            &[&(i + 5)],
        )
        .await
        .unwrap();
    }
    drop(c);
    let _ = task.await;
}

fn check(r: &QueryReport, starts: &str) -> godwit_stdlib::validate::QueryCheck {
    r.statements
        .iter()
        .find(|s| s.query.starts_with(starts))
        .unwrap_or_else(|| panic!("no statement {starts:?} in {:#?}", r.statements))
        .clone()
}

/// Two independent servers with the same rows: the source has a function the target lacks
/// (an extension Aurora does not offer, say).
#[test]
fn the_application_statements_run_on_both_sides_and_one_fails_on_the_target() {
    let pg = scratch();
    let rt = runtime();
    let host = Host::detached(Arc::new(SystemClock), Some(rt.handle().clone()));
    let cx = host.context("validate", "test");
    let pgss = [("shared_preload_libraries", "pg_stat_statements")];
    let a = pg.primary("a", &pgss).unwrap();
    let b = pg.primary("b", &[]).unwrap();
    rt.block_on(async {
        exec(&a, SCHEMA).await;
        exec(&b, SCHEMA).await;
        exec(
            &a,
            "CREATE EXTENSION pg_stat_statements;
             CREATE FUNCTION legacy_score(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';",
        )
        .await;
        workload(&a).await;
    });
    let v = live_validate(&[("src", &a), ("dst", &b)], rt.handle().clone());
    let r = v
        .queries(&cx, "src", "dst", &QueryCheckOptions::default())
        .unwrap();
    assert!(r.available, "{}", r.summary);
    // The point read: its parameter sampled from orders.id, fast on both sides.
    let point = check(&r, "SELECT * FROM orders WHERE id = $1");
    assert_eq!(point.verdict, "ok", "{point:?}");
    assert!(
        point.parameters[0].contains("(a sampled orders.id)"),
        "{point:?}"
    );
    assert!(point.source_ms.is_some() && point.target_ms.is_some() && point.ratio.is_some());
    let limited = check(
        &r,
        "SELECT id, note FROM orders WHERE customer = $1 ORDER BY id LIMIT $2",
    );
    assert_eq!(limited.verdict, "ok", "{limited:?}");
    assert!(
        limited.parameters[1].contains("= 10 (LIMIT)"),
        "{limited:?}"
    );
    // The function the target lacks: incompatible, and the report says so.
    let legacy = check(&r, "SELECT legacy_score(id) FROM orders WHERE id = $1");
    assert_eq!(legacy.verdict, "error-on-target", "{legacy:?}");
    assert!(legacy.why.contains("legacy_score"), "{legacy:?}");
    assert!(!r.compatible && r.errors == 1, "{}", r.summary);
    assert!(r.summary.contains("1 fail on the target"), "{}", r.summary);
    // Never run: the row lock and the write; nor the superuser's own statements (the test's
    // setup, pg_stat_statements' own reads).
    assert!(
        r.statements
            .iter()
            .all(|s| !s.query.contains("FOR UPDATE") && !s.query.starts_with("UPDATE")),
        "{:#?}",
        r.statements
    );
    assert!(
        r.statements.iter().all(
            |s| !s.query.contains("pg_stat_statements") && !s.query.contains("generate_series")
        ),
        "{:#?}",
        r.statements
    );
    // Both sides unchanged by the check (read-only transactions).
    let left: i64 = rt.block_on(async {
        let (c, conn) =
            tokio_postgres::connect(&a.conninfo("postgres", "postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        c.query_one("SELECT count(*) FROM orders", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(left, 20000);
    // top bounds the statements run.
    let one = v
        .queries(
            &cx,
            "src",
            "dst",
            &QueryCheckOptions {
                top: 1,
                ..QueryCheckOptions::default()
            },
        )
        .unwrap();
    assert_eq!(one.statements.len(), 1, "{:#?}", one.statements);
}

#[test]
fn a_source_without_pg_stat_statements_is_reported_with_the_fix() {
    let pg = scratch();
    let rt = runtime();
    let host = Host::detached(Arc::new(SystemClock), Some(rt.handle().clone()));
    let cx = host.context("validate", "test");
    let a = pg.primary("a", &[]).unwrap();
    let b = pg.primary("b", &[]).unwrap();
    let v = live_validate(&[("src", &a), ("dst", &b)], rt.handle().clone());
    let r = v
        .queries(&cx, "src", "dst", &QueryCheckOptions::default())
        .unwrap();
    assert!(!r.available && r.compatible, "{r:?}");
    assert!(
        r.why.contains("CREATE EXTENSION pg_stat_statements"),
        "{}",
        r.why
    );
    assert!(
        r.summary.starts_with("query check not run"),
        "{}",
        r.summary
    );
}
