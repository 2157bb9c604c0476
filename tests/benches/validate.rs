//! `cargo bench -p godwit-tests --bench validate`: `validate::compare` of a primary and its
//! caught-up streaming replica holding one table of `VALIDATE_BENCH_ROWS` rows (default
//! 1,000,000), against a plain sequential scan of both sides in the same run — `SELECT
//! count(*)` (reads every page, converts nothing) and `COPY ... TO '/dev/null'` (reads and
//! renders every value, like the row text the hashes are computed over). Both sides are scanned
//! at the same time, as `compare` reads them. Prints the median of 3 runs of each and the
//! ratios; the goal (DESIGN.md §5) is compare <= 2x the scan.

use std::time::{Duration, Instant};

use godwit_lab::pgproc::{Scratch, Server};
use godwit_stdlib::validate::{CompareOptions, Validate};
use godwit_tests::livepg::{exec, live_validate, one};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn both(rt: &tokio::runtime::Runtime, a: &Server, b: &Server, sql: &str) -> Duration {
    let t = Instant::now();
    rt.block_on(async { tokio::join!(exec(a, sql), exec(b, sql)) });
    t.elapsed()
}

#[allow(clippy::disallowed_methods)] // waiting for a real replica in real time; no run clock here
fn main() {
    let rows: i64 = std::env::var("VALIDATE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let pg = Scratch::new().unwrap_or_else(|e| panic!("PostgreSQL is needed: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let p = pg.primary("p", &[]).unwrap();
    let t = Instant::now();
    rt.block_on(exec(
        &p,
        &format!(
            "CREATE TABLE events (id bigint PRIMARY KEY, kind int, payload text, amount float8, at timestamptz);
             INSERT INTO events SELECT g, g % 13, md5(g::text), g * 0.5, '2026-01-01'::timestamptz + g * interval '1 s'
               FROM generate_series(1, {rows}) g;
             ANALYZE events;"
        ),
    ));
    // Hint bits and the visibility map set, so neither side writes while being read.
    rt.block_on(exec(&p, "VACUUM events"));
    rt.block_on(exec(&p, "CHECKPOINT"));
    let r = pg.replica(&p, "r").unwrap();
    let lsn = rt
        .block_on(one(&p, "SELECT pg_current_wal_lsn()::text"))
        .unwrap();
    while rt
        .block_on(one(
            &r,
            &format!("SELECT (pg_last_wal_replay_lsn() >= '{lsn}')::text"),
        ))
        .as_deref()
        != Some("true")
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let size = rt
        .block_on(one(
            &p,
            "SELECT pg_size_pretty(pg_total_relation_size('events'))",
        ))
        .unwrap_or_default();
    println!(
        "validate bench: {rows} rows ({size} with index), primary + streaming replica, loaded in {:.1?}",
        t.elapsed()
    );

    // Warm both caches.
    both(&rt, &p, &r, "SELECT count(*) FROM events");
    let v = live_validate(&[("src", &p), ("dst", &r)], rt.handle().clone());
    let host = godwit_engine::Host::detached(
        std::sync::Arc::new(godwit_engine::SystemClock),
        Some(rt.handle().clone()),
    );
    let cx = host.context("validate", "compare");
    let (mut count, mut copy, mut compare) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        count.push(both(&rt, &p, &r, "SELECT count(*) FROM events"));
        copy.push(both(&rt, &p, &r, "COPY events TO '/dev/null'"));
        let t = Instant::now();
        let rep = v
            .compare(&cx, "src", "dst", &CompareOptions::default())
            .unwrap();
        compare.push(t.elapsed());
        assert!(rep.equal, "{}", rep.summary);
        assert_eq!(rep.tables[0].source_rows, rows);
    }
    let (count, copy, compare) = (median(count), median(copy), median(compare));
    println!("scan both sides, SELECT count(*):        {count:>10.1?}");
    println!("scan both sides, COPY TO '/dev/null':    {copy:>10.1?}");
    println!("validate::compare (equal tables):        {compare:>10.1?}");
    println!(
        "ratio compare / COPY scan: {:.2}x; compare / count(*) scan: {:.2}x (goal: <= 2x a plain scan)",
        compare.as_secs_f64() / copy.as_secs_f64(),
        compare.as_secs_f64() / count.as_secs_f64()
    );
}
