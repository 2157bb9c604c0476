//! Issue 25, the logical path across majors on real servers: a PostgreSQL 15 source (Debian's)
//! replicated into a PostgreSQL 16 target (the pgserver wheel scripts/test.sh installs) with
//! godwit's own `pg` and `validate` primitives — publication and slot on the source, a
//! subscription on the target that copies the tables first, then streams while the
//! application writes (inserts and updates across two tables); every table's copy done, the
//! target applies past the
//! source's final position, the table definitions agree, the exact validation is equal across
//! the versions, and the sequences set past the source's make an insert on the target never
//! collide. The schema is copied with the newer major's `pg_dump --schema-only | psql` (the
//! logical runbook's schema step is still to come). A missing server fails with the install
//! command, never skipped.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use godwit_engine::RunStatus;
use godwit_engine::transcript::Event;
use godwit_lab::pgproc::{PgBin, Server};
use godwit_stdlib::world::World;
use godwit_tests::harness::pause;
use godwit_tests::livepg::{exec, one, run_script, runtime, scratch, sql_world};

const SCHEMA: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text, balance numeric(12,2) NOT NULL DEFAULT 0);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers(id),
                     amount numeric(12,2), placed timestamptz DEFAULT now(), note text);
INSERT INTO customers SELECT g, 'customer ' || g, 0 FROM generate_series(1, 2000) g;
INSERT INTO orders (customer, amount, note)
  SELECT 1 + g % 2000, (g % 997) / 10.0, md5(g::text) FROM generate_series(1, 50000) g;
";

/// The application: each transaction inserts an order and updates its customer's balance.
async fn application(port: u16, stop: Arc<AtomicBool>) -> u64 {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let customer = 1 + (n % 2000) as i32;
        c.batch_execute(&format!(
            "BEGIN;
             INSERT INTO orders (customer, amount, note) VALUES ({customer}, 12.50, 'live {n}');
             UPDATE customers SET balance = balance + 12.50 WHERE id = {customer};
             COMMIT;"
        ))
        .await
        .unwrap();
        n += 1;
    }
    n
}

/// Run `script` (a runbook of steps) in `world`; the run's result.
fn run(world: &World, rt: &tokio::runtime::Runtime, script: &str) -> serde_json::Value {
    let (report, lines) = run_script(world, rt, script, Default::default());
    match report.status {
        RunStatus::Succeeded { result, .. } => result,
        other => panic!(
            "{other:?}\n{:#?}",
            lines
                .into_iter()
                .filter(|l| matches!(l.event, Event::StepFailed { .. } | Event::Print { .. }))
                .collect::<Vec<_>>()
        ),
    }
}

/// The newer major's `pg_dump --schema-only` of `from` into `to` through its `psql`.
fn copy_schema(bin: &PgBin, from: &Server, to: &Server) {
    let dump = Command::new(bin.tool("pg_dump"))
        .args([
            "--schema-only",
            "--no-owner",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &from.port.to_string(), "postgres"])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let mut psql = Command::new(bin.tool("psql"))
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &to.port.to_string(), "postgres"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    psql.stdin.take().unwrap().write_all(&dump.stdout).unwrap();
    let out = psql.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_postgresql_15_source_replicates_logically_into_16_losing_nothing() {
    let old = scratch();
    let mut new = scratch();
    new.bin = PgBin::newer_major(&old.bin).unwrap_or_else(|e| panic!("{e}"));
    let source = old.primary("source", &[]).unwrap();
    let target = new.primary("target", &[]).unwrap();
    let rt = runtime();
    rt.block_on(exec(&source, SCHEMA));
    copy_schema(&new.bin, &source, &target);
    let version = |s: &Server| rt.block_on(one(s, "SHOW server_version_num")).unwrap();
    let (v_old, v_new) = (version(&source), version(&target));
    assert!(
        v_old.starts_with("15") && v_new.starts_with("16"),
        "{v_old} → {v_new}"
    );

    let world = sql_world(
        &[("orders-db", &source), ("orders-aurora", &target)],
        rt.handle().clone(),
    );

    // The application writes all along: the initial copy and the streaming run under load.
    let stop = Arc::new(AtomicBool::new(false));
    let app = rt.spawn(application(source.port, stop.clone()));
    let started = Instant::now();
    let subscribed = run(
        &world,
        &rt,
        r#"
let tables = step("publish", || pg::create_publication("orders-db", "godwit_logical"));
let slot = step("slot", || pg::create_logical_slot("orders-db", "godwit_logical"));
let sub = step("subscribe", || pg::subscribe("orders-aurora", "godwit_logical",
    #{ from: "orders-db", publication: "godwit_logical", slot: "godwit_logical", copy_data: true }));
#{ tables: tables, slot: slot, sub: sub }
"#,
    );
    assert_eq!(
        subscribed["tables"],
        serde_json::json!(["public.customers", "public.orders"]),
        "{subscribed}"
    );
    // Every table's initial copy done (`pg_subscription_rel` all `r`, ready): until then the
    // slot's confirmed position says nothing of the tables still copying or catching up.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let copying = rt
            .block_on(one(
                &target,
                "SELECT count(*)::text FROM pg_subscription_rel WHERE srsubstate <> 'r'",
            ))
            .unwrap();
        if copying == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{copying} table(s) still copying after 2 minutes"
        );
        pause(Duration::from_millis(100));
    }
    // Streaming under load for a while after the copy.
    pause(Duration::from_secs(2));
    // The fence, as the logical runbook will hold it: the application stops, then the
    // target must apply past the source's last position.
    stop.store(true, Ordering::SeqCst);
    let commits = rt.block_on(app).unwrap();
    let done = run(
        &world,
        &rt,
        r#"
let last = step("final-lsn", || pg::current_lsn("orders-db"));
let applied = step("applied", || pg::wait_until_slot_confirmed("orders-db", "godwit_logical",
    last.lsn_bytes, #{ timeout: "2m", every: "1s", min_every: "50ms" }));
let schemas = step("schemas", || #{ source: pg::table_definitions("orders-db"),
    target: pg::table_definitions("orders-aurora") });
// Logical replication does not carry sequences: set them past the source's first, then the
// exact validation (which compares sequences too) — the issue's order.
let seqs = step("sequences", || pg::advance_sequences("orders-aurora", pg::sequences("orders-db")));
let compared = step("validate", || validate::compare("orders-db", "orders-aurora", #{}));
#{ applied: applied, same_schema: schemas.source == schemas.target, equal: compared.equal,
   summary: compared.summary, sequences: seqs }
"#,
    );
    println!(
        "15 → 16: {commits} transactions during the copy and streaming ({:.1} s), {}",
        started.elapsed().as_secs_f64(),
        done["summary"]
    );
    assert!(commits > 50, "the application wrote: {commits}");
    assert_eq!(done["applied"]["behind_bytes"], 0, "{done}");
    assert_eq!(done["same_schema"], true, "{done}");
    assert_eq!(done["equal"], true, "{done}");
    // The target's sequence is past the source's: an insert there takes a new id.
    let id = |s: &Server| {
        rt.block_on(one(
            s,
            "INSERT INTO orders (customer, amount) VALUES (1, 1) RETURNING id::text",
        ))
        .unwrap()
        .parse::<i64>()
        .unwrap()
    };
    let on_target = id(&target);
    let source_last = rt
        .block_on(one(&source, "SELECT max(id)::text FROM orders"))
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert!(
        on_target > source_last,
        "an insert on the target took id {on_target}, the source's last is {source_last}: {done}"
    );
}
