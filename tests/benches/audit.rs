//! `cargo bench -p godwit-tests --bench audit`: the continuous audit's overhead on the source's
//! write throughput (issue 24's goal: at most 5 % at the default budget).
//!
//! Per size (`AUDIT_BENCH_ROWS`, default `100000,1000000` TPC-B accounts; tellers and branches
//! with them): a primary and its streaming replica on this machine, TPC-B transactions from
//! `AUDIT_BENCH_CLIENTS` clients (default 4) straight to the primary as fast as it acknowledges
//! them — updates across the accounts, tellers and branches and an insert into the history,
//! like an application; saturating the source is the strictest case, every cycle the audit
//! takes shows. Pairs of phases of `AUDIT_BENCH_PHASE_S` seconds (default 40: one round at the
//! defaults), one without and one with the audit, `AUDIT_BENCH_PAIRS` times (default 4), their
//! order alternating (ABBA) so the throughput's drift touches both alike. With
//! the audit, `validate::audit` rounds at the runbook's defaults (20,000 rows a round, 1,000
//! source rows/s) run back to back: the most load the budget allows (the runbook polls every 10
//! minutes of a day-long window). Prints commits/s of each phase, the median of each side, the
//! median of the pairs' ratios (the figure: a pair shares the machine's state of the moment),
//! and the audit's rows compared and source rows read per second.

use std::time::{Duration, Instant};

use godwit_lab::workload::{self, Kind, Workload};
use godwit_stdlib::validate::{AuditOptions, AuditReport, Validate};
use godwit_tests::livepg::{exec, live_validate, one};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// Commits acknowledged by all clients between `from` and `to` (epoch µs).
fn commits(w: &Workload, from: i64, to: i64) -> usize {
    w.logs()
        .iter()
        .map(|l| {
            l.acked
                .iter()
                .filter(|(_, at)| *at >= from && *at < to)
                .count()
        })
        .sum()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[allow(clippy::disallowed_methods)] // phases and replay waits in real time; no run clock here
fn main() {
    let sizes: Vec<i64> = std::env::var("AUDIT_BENCH_ROWS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|r| {
            r.trim()
                .replace('_', "")
                .parse()
                .unwrap_or_else(|e| panic!("AUDIT_BENCH_ROWS: {r:?}: {e}"))
        })
        .collect();
    let clients: usize = env_or("AUDIT_BENCH_CLIENTS", 4);
    let phase = Duration::from_secs(env_or("AUDIT_BENCH_PHASE_S", 40));
    let pairs: usize = env_or("AUDIT_BENCH_PAIRS", 4);
    let opts = AuditOptions::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut lines = Vec::new();
    for rows in sizes {
        let pg = godwit_lab::pgproc::Scratch::new()
            .unwrap_or_else(|e| panic!("PostgreSQL is needed (apt-get install postgresql): {e}"));
        let p = pg.primary("p", &[]).unwrap();
        rt.block_on(exec(&p, &workload::tpcb_schema(rows)));
        rt.block_on(exec(&p, "VACUUM ANALYZE"));
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
        let v = live_validate(&[("src", &p), ("dst", &r)], rt.handle().clone());
        let host = godwit_engine::Host::detached(
            std::sync::Arc::new(godwit_engine::SystemClock),
            Some(rt.handle().clone()),
        );
        let cx = host.context("validate", "audit");
        let w = {
            let _in = rt.enter();
            Workload::start(
                p.port,
                "postgres",
                "postgres",
                clients,
                Duration::ZERO,
                Kind::Tpcb,
                rows,
            )
        };
        std::thread::sleep(Duration::from_secs(2)); // connected and warm
        let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut audit: Option<AuditReport> = None;
        // One phase without the audit and one with, of equal length, their order alternating
        // (ABBA): the throughput drifts as the history table grows, and a fixed order would
        // charge the drift to whichever phase comes second.
        let run_off = || {
            let t0 = now_us();
            std::thread::sleep(phase);
            let t1 = now_us();
            commits(&w, t0, t1) as f64 / ((t1 - t0) as f64 / 1e6)
        };
        let run_on = |audit: &mut Option<AuditReport>| {
            let t0 = now_us();
            let until = Instant::now() + phase;
            while Instant::now() < until {
                let round = v.audit(&cx, "src", "dst", &opts).unwrap();
                let a = AuditReport::absorb(audit.take(), &round, &opts);
                assert!(a.equal, "{}", a.summary);
                *audit = Some(a);
            }
            let t1 = now_us();
            commits(&w, t0, t1) as f64 / ((t1 - t0) as f64 / 1e6)
        };
        for pair in 0..pairs {
            let (tps_off, tps_on) = if pair % 2 == 0 {
                let off = run_off();
                (off, run_on(&mut audit))
            } else {
                let on = run_on(&mut audit);
                (run_off(), on)
            };
            println!(
                "{rows} accounts, pair {} ({}): {tps_off:.0} commits/s without the audit, {tps_on:.0} with ({:+.1} %)",
                pair + 1,
                if pair % 2 == 0 {
                    "without first"
                } else {
                    "with first"
                },
                (tps_on / tps_off - 1.0) * 100.0
            );
            off.push(tps_off);
            on.push(tps_on);
            ratios.push(tps_on / tps_off);
        }
        let logs = rt.block_on(w.stop());
        let report = workload::report(Kind::Tpcb, &logs);
        let a = audit.expect("at least one round");
        let (off, on, ratio) = (median(off), median(on), median(ratios));
        let line = format!(
            "{rows} accounts, {clients} TPC-B clients saturating the source: median {off:.0} commits/s without the audit, {on:.0} with; median ratio of the pairs {ratio:.3} (overhead {:.1} %; goal <= 5 %); audit: {} rounds, {:.0} rows compared/s, source read {:.0} rows/s (cap {}), {} unsettled; {} failed client attempts",
            (1.0 - ratio) * 100.0,
            a.rounds,
            a.compared as f64 * 1000.0 / a.elapsed_ms.max(1) as f64,
            a.rows_per_second,
            opts.rows_per_second,
            a.unsettled,
            report.failed_attempts,
        );
        println!("{line}");
        lines.push(line);
        pg.stop(&r);
        pg.stop(&p);
    }
    println!("\n== audit overhead on the source's write throughput ==");
    for l in lines {
        println!("{l}");
    }
}
