//! The lab cutover under a write load, several times: client-visible write blackout p50/p100,
//! failed client attempts, lost commits and the time of each part of the blackout.
//!
//! `cargo bench -p godwit-lab --bench cutover` (release; the servers and Envoy dominate, so a
//! dev build measures the same). Runs per workload: `GODWIT_BENCH_RUNS` (default 5);
//! workloads: `GODWIT_BENCH_WORKLOADS` (default `insert,tpcb`: the append-only load and TPC-B
//! transactions updating rows across tables); seeded rows (orders, and TPC-B accounts):
//! `GODWIT_BENCH_ROWS` (default 10 000; a list such as `10000,1000000` runs each size and prints
//! the blackout's growth from the smallest to each larger one); fence methods: `GODWIT_BENCH_FENCE` (default
//! `terminate,reboot`: the runbook's `fence_method`, ending the sessions with SQL or with a
//! restart of the source); the replicas' reconnect interval after the source's restart:
//! `GODWIT_BENCH_REPLICA_RETRY_MS` (default 5000, PostgreSQL's); modes: `GODWIT_BENCH_MODES`
//! (default `access,credential-less`: the runbook with database access, once per fence method,
//! and without any — the lab withholds it, the runbook reboots the source and decides from
//! CloudWatch, `unverified=accept`). Both modes run without a CDC consumer (the credential-less
//! runbook refuses one it cannot see) under the same load. Mode `rollback` (in the default
//! modes too): the cutover with database access, then — the clients writing to the target for
//! a second — its rollback through the rollback window (`godwit rollback RUN`); both
//! blackouts are printed side by side, and the loss check runs on the source. Mode `logical`
//! (default too): the `logical` runbook from the lab's PostgreSQL 15 into a cluster of the
//! newer major (`GODWIT_PG_NEWER_BIN`, issue 25: goal ≤ 1 s p100), fence `terminate`. Needs
//! PostgreSQL and Envoy like the lab tests (`scripts/test.sh` provisions them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::journal::file::FileStore;
use godwit_lab::cutover::{self, Cutover};
use godwit_lab::pgproc::PgBin;
use godwit_lab::workload::Kind;
use godwit_lab::{LabOptions, LabState, Supervisor};

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One workload's figures over its runs.
#[derive(Default)]
struct Figures {
    blackouts: Vec<f64>,
    phases: BTreeMap<String, Vec<f64>>,
    compared: BTreeMap<String, Vec<f64>>,
    failed: u64,
    lost: u64,
    inconsistent: u64,
    acked: usize,
}

fn main() {
    let runs: usize = std::env::var("GODWIT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // One size or several (`10000,1000000`): each seeded afresh, and the blackout's growth
    // from the smallest to each larger one printed at the end (docs/validate.md, "Two passes").
    let sizes: Vec<i64> = std::env::var("GODWIT_BENCH_ROWS")
        .unwrap_or_else(|_| "10000".into())
        .split(',')
        .map(|r| {
            r.trim()
                .replace('_', "")
                .parse()
                .unwrap_or_else(|e| panic!("GODWIT_BENCH_ROWS: {r:?}: {e}"))
        })
        .collect();
    let kinds: Vec<Kind> = std::env::var("GODWIT_BENCH_WORKLOADS")
        .unwrap_or_else(|_| "insert,tpcb".into())
        .split(',')
        .map(|k| Kind::parse(k.trim()).unwrap_or_else(|e| panic!("GODWIT_BENCH_WORKLOADS: {e}")))
        .collect();
    let fences: Vec<String> = std::env::var("GODWIT_BENCH_FENCE")
        .unwrap_or_else(|_| "terminate,reboot".into())
        .split(',')
        .map(|f| f.trim().to_string())
        .collect();
    // The replicas' wal_retrieve_retry_interval: how soon the replica reconnects after the
    // reboot fence restarts the source (PostgreSQL's default 5 s; docs/lab.md).
    let replica_retry_ms: u64 = std::env::var("GODWIT_BENCH_REPLICA_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let modes: Vec<String> = std::env::var("GODWIT_BENCH_MODES")
        .unwrap_or_else(|_| "access,credential-less,rollback,logical".into())
        .split(',')
        .map(|m| m.trim().to_string())
        .collect();
    // (label, database access, fence_method): every fence method with access; credential-less
    // has one, the reboot; the logical path ends the sessions with SQL.
    let mut configs: Vec<(String, bool, String)> = Vec::new();
    for mode in &modes {
        match mode.as_str() {
            "access" => configs.extend(fences.iter().map(|f| (f.clone(), true, f.clone()))),
            "credential-less" => configs.push(("cred-less".into(), false, "auto".into())),
            "logical" => configs.push(("logical".into(), true, "terminate".into())),
            "rollback" => {}
            other => panic!(
                "GODWIT_BENCH_MODES: unknown mode {other:?} (access, credential-less, rollback, logical)"
            ),
        }
    }
    let clients = 4;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let runbooks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let runbook = runbooks.join("rds-to-aurora.rhai");
    println!(
        "lab cutover × {runs} per workload, mode and size ({}; {}): standard runbook, {clients} clients writing through Envoy (5 ms pace), {} seeded rows, no CDC consumer, replica reconnect interval {replica_retry_ms} ms",
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", "),
        configs
            .iter()
            .map(|(label, access, _)| if label == "logical" {
                "logical 15 → newer major, fence terminate".to_string()
            } else if *access {
                format!("access, fence {label}")
            } else {
                "credential-less (reboot)".to_string()
            })
            .chain(
                modes
                    .iter()
                    .filter(|m| *m == "rollback")
                    .map(|_| "cutover then rollback".to_string())
            )
            .collect::<Vec<_>>()
            .join("; "),
        sizes
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    );
    let mut growth: Vec<(i64, String, Kind, f64, f64)> = Vec::new();
    for &rows in &sizes {
        let mut all: Vec<(String, Kind, Figures)> = Vec::new();
        for (fence, access, method) in &configs {
            for &kind in &kinds {
                let mut f = Figures::default();
                for i in 1..=runs {
                    let tmp = tempfile::Builder::new()
                        .prefix("godwit-bench-")
                        .tempdir_in("/tmp")
                        .expect("tmp");
                    let out = rt.block_on(async {
                        let mut opts = LabOptions::new(tmp.path().join("lab"));
                        opts.seed_rows = rows;
                        opts.replica_retry = Duration::from_millis(replica_retry_ms);
                        opts.db_access = *access;
                        opts.cdc = false;
                        let sup = Supervisor::up(opts)
                            .await
                            .unwrap_or_else(|e| panic!("lab up: {e}"));
                        let logical = fence == "logical";
                        let out = cutover::run(
                            &sup,
                            Cutover {
                                runbook: if logical {
                                    runbooks.join("logical.rhai")
                                } else {
                                    runbook.clone()
                                },
                                params: if logical {
                                    logical_params(&sup).await
                                } else {
                                    let mut p = cutover::lab_params();
                                    p.insert("fence_method".into(), method.as_str().into());
                                    if !*access {
                                        // Extensions and unlogged tables cannot be verified
                                        // without SQL: the recorded acceptance the runbook asks.
                                        p.insert("unverified".into(), "accept".into());
                                    }
                                    p
                                },
                                store: Arc::new(FileStore::new(tmp.path().join("runs"))),
                                clients,
                                pace: Duration::from_millis(5),
                                warmup: Duration::from_millis(500),
                                workload: kind,
                                sinks: Vec::new(),
                            },
                        )
                        .await
                        .unwrap_or_else(|e| panic!("cutover: {e}"));
                        sup.down().await;
                        out
                    });
                    assert!(
                        out.succeeded,
                        "{} run {i} did not succeed: {:?}",
                        kind.name(),
                        out.report.map(|r| r.status)
                    );
                    let w = &out.workload;
                    println!(
                        "  {fence:<9} {} run {i}: blackout {:>6.1} ms · failed attempts {} · lost {} of {}{} · {}",
                        kind.name(),
                        w.blackout_ms,
                        w.failed_attempts,
                        w.lost.unwrap_or(u64::MAX),
                        w.acked,
                        w.inconsistent
                            .map(|n| format!(" · inconsistent balances {n}"))
                            .unwrap_or_default(),
                        out.phases
                            .iter()
                            .map(|(n, ms)| format!("{n} {ms} ms"))
                            .chain(out.compared.iter().map(|(n, c)| format!("{n} {c}")))
                            .collect::<Vec<_>>()
                            .join(" · ")
                    );
                    f.blackouts.push(w.blackout_ms);
                    f.failed += w.failed_attempts;
                    f.lost += w.lost.unwrap_or(u64::MAX);
                    f.inconsistent += w.inconsistent.unwrap_or(0);
                    f.acked += w.acked;
                    for (n, ms) in &out.phases {
                        f.phases.entry(n.clone()).or_default().push(*ms as f64);
                    }
                    for (n, c) in &out.compared {
                        f.compared.entry(n.clone()).or_default().push(*c as f64);
                    }
                }
                all.push((fence.clone(), kind, f));
            }
        }
        let round_trips = if modes.iter().any(|m| m == "rollback") {
            round_trips(&rt, &runbook, &kinds, runs, rows, replica_retry_ms, clients)
        } else {
            Vec::new()
        };
        println!("summary ({rows} seeded rows, {runs} runs each):");
        for (fence, kind, mut f) in all {
            f.blackouts.sort_by(f64::total_cmp);
            growth.push((
                rows,
                fence.clone(),
                kind,
                pct(&f.blackouts, 0.5),
                pct(&f.blackouts, 1.0),
            ));
            println!(
                "{fence:<9} {:<6} blackout p50 {:.1} ms · p100 {:.1} ms · failed client attempts {} · lost commits {} of {} acknowledged{}",
                kind.name(),
                pct(&f.blackouts, 0.5),
                pct(&f.blackouts, 1.0),
                f.failed,
                f.lost,
                f.acked,
                if kind == Kind::Tpcb {
                    format!(" · inconsistent balances {}", f.inconsistent)
                } else {
                    String::new()
                }
            );
            for (n, mut v) in f.phases {
                v.sort_by(f64::total_cmp);
                println!(
                    "                  {n:<16} p50 {:>6.1} ms · p100 {:>6.1} ms{}",
                    pct(&v, 0.5),
                    pct(&v, 1.0),
                    if n == "pre-pass" {
                        " (before the hold: not in the blackout)"
                    } else {
                        ""
                    }
                );
            }
            for (n, mut v) in f.compared {
                v.sort_by(f64::total_cmp);
                println!(
                    "                  {n:<21} p50 {:>9.0} · p100 {:>9.0}",
                    pct(&v, 0.5),
                    pct(&v, 1.0)
                );
            }
        }
        for (kind, mut fwd, mut back, parts, lost, acked) in round_trips {
            fwd.sort_by(f64::total_cmp);
            back.sort_by(f64::total_cmp);
            println!(
                "rollback  {:<6} forward blackout p50 {:.1} ms · p100 {:.1} ms | rollback blackout p50 {:.1} ms · p100 {:.1} ms · lost commits {lost} of {acked} acknowledged (checked on the source)",
                kind.name(),
                pct(&fwd, 0.5),
                pct(&fwd, 1.0),
                pct(&back, 0.5),
                pct(&back, 1.0),
            );
            for (n, mut v) in parts {
                v.sort_by(f64::total_cmp);
                println!(
                    "                  rollback {n:<8} p50 {:>6.1} ms · p100 {:>6.1} ms",
                    pct(&v, 0.5),
                    pct(&v, 1.0)
                );
            }
        }
    }
    if sizes.len() > 1 {
        let small = sizes[0];
        println!("blackout growth from {small} seeded rows (goal: within 1.2x at 1,000,000):");
        for (r, fence, kind, p50, p100) in growth.iter().filter(|g| g.0 != small) {
            if let Some((_, _, _, a50, a100)) = growth
                .iter()
                .find(|g| g.0 == small && &g.1 == fence && g.2 == *kind)
            {
                println!(
                    "{fence:<9} {:<6} p50 {a50:.1} → {p50:.1} ms ({:.2}x) · p100 {a100:.1} → {p100:.1} ms ({:.2}x) at {r} rows",
                    kind.name(),
                    p50 / a50,
                    p100 / a100
                );
            }
        }
    }
}

/// Per workload: forward and rollback blackouts, the rollback's parts, lost and acknowledged.
type RoundTrips = Vec<(
    Kind,
    Vec<f64>,
    Vec<f64>,
    BTreeMap<String, Vec<f64>>,
    u64,
    usize,
)>;

/// Mode `rollback`: `runs` cutovers with database access, each followed by its rollback
/// through the rollback window after a second of writes on the target.
fn round_trips(
    rt: &tokio::runtime::Runtime,
    runbook: &std::path::Path,
    kinds: &[Kind],
    runs: usize,
    rows: i64,
    replica_retry_ms: u64,
    clients: usize,
) -> RoundTrips {
    let mut out = Vec::new();
    for &kind in kinds {
        let (mut fwd, mut back, mut parts, mut lost, mut acked) = (
            Vec::new(),
            Vec::new(),
            BTreeMap::<String, Vec<f64>>::new(),
            0u64,
            0usize,
        );
        for i in 1..=runs {
            let tmp = tempfile::Builder::new()
                .prefix("godwit-bench-")
                .tempdir_in("/tmp")
                .expect("tmp");
            let r = rt.block_on(async {
                let mut opts = LabOptions::new(tmp.path().join("lab"));
                opts.seed_rows = rows;
                opts.replica_retry = Duration::from_millis(replica_retry_ms);
                opts.cdc = false;
                let sup = Supervisor::up(opts)
                    .await
                    .unwrap_or_else(|e| panic!("lab up: {e}"));
                let r = cutover::round_trip(
                    &sup,
                    Cutover {
                        runbook: runbook.to_path_buf(),
                        params: cutover::lab_params(),
                        store: Arc::new(FileStore::new(tmp.path().join("runs"))),
                        clients,
                        pace: Duration::from_millis(5),
                        warmup: Duration::from_millis(500),
                        workload: kind,
                        sinks: Vec::new(),
                    },
                    Duration::from_secs(1),
                )
                .await
                .unwrap_or_else(|e| panic!("round trip: {e}"));
                sup.down().await;
                r
            });
            assert!(
                r.forward_succeeded && r.rollback_succeeded,
                "{} round trip {i}: forward {} rollback {}",
                kind.name(),
                r.forward_succeeded,
                r.rollback_succeeded
            );
            let w = &r.workload;
            println!(
                "  rollback  {} run {i}: forward blackout {:>6.1} ms · rollback blackout {:>6.1} ms · lost {} of {}{} · {}",
                kind.name(),
                r.forward_blackout_ms,
                r.rollback_blackout_ms,
                w.lost.unwrap_or(u64::MAX),
                w.acked,
                w.inconsistent
                    .map(|n| format!(" · inconsistent balances {n}"))
                    .unwrap_or_default(),
                r.rollback_phases
                    .iter()
                    .map(|(n, ms)| format!("{n} {ms} ms"))
                    .collect::<Vec<_>>()
                    .join(" · ")
            );
            fwd.push(r.forward_blackout_ms);
            back.push(r.rollback_blackout_ms);
            lost += w.lost.unwrap_or(u64::MAX) + w.inconsistent.unwrap_or(0);
            acked += w.acked;
            for (n, ms) in &r.rollback_phases {
                parts.entry(n.clone()).or_default().push(*ms as f64);
            }
        }
        out.push((kind, fwd, back, parts, lost, acked));
    }
    out
}

/// Mode `logical`: the `logical` runbook's parameters fitted to the lab as
/// tests/tests/lab_logical.rs fits them — the target the newer major, one-second metric
/// periods, groups in force at once — after dropping `pg_stat_statements` on the source (the
/// newer major's wheel lacks it: preflight's `extensions` check names that fix).
async fn logical_params(sup: &Supervisor) -> serde_json::Map<String, serde_json::Value> {
    let st = LabState::load(&sup.dir).expect("the lab's state");
    let newer = PgBin::newer_major(&st.bin).unwrap_or_else(|e| panic!("{e}"));
    let port = st.instances[&st.source].port;
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=app connect_timeout=10"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to the source: {e}"));
    tokio::spawn(conn);
    c.batch_execute("DROP EXTENSION IF EXISTS pg_stat_statements")
        .await
        .unwrap_or_else(|e| panic!("drop pg_stat_statements on the source: {e}"));
    serde_json::json!({
        "target_engine_version": newer.version,
        "metric_period": 1,
        "parameter_group_settle": "0s",
        "health_every": "2s",
        "fence_method": "terminate",
    })
    .as_object()
    .expect("an object")
    .clone()
}
