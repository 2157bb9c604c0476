//! The lab cutover under a write load, several times: client-visible write blackout p50/p100,
//! failed client attempts, lost commits and the time of each part of the blackout.
//!
//! `cargo bench -p godwit-lab --bench cutover` (release; the servers and Envoy dominate, so a
//! dev build measures the same). Runs: `GODWIT_BENCH_RUNS` (default 5). Needs PostgreSQL and
//! Envoy like the lab tests (`scripts/test.sh` provisions them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::journal::file::FileStore;
use godwit_lab::cutover::{self, Cutover};
use godwit_lab::{LabOptions, Supervisor};

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let runs: usize = std::env::var("GODWIT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let clients = 4;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let runbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let mut blackouts = Vec::new();
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut failed, mut lost, mut acked) = (0u64, 0u64, 0usize);
    println!(
        "lab cutover × {runs}: standard runbook, {clients} clients writing through Envoy (5 ms pace)"
    );
    for i in 1..=runs {
        let tmp = tempfile::Builder::new()
            .prefix("godwit-bench-")
            .tempdir_in("/tmp")
            .expect("tmp");
        let out = rt.block_on(async {
            let mut opts = LabOptions::new(tmp.path().join("lab"));
            opts.seed_rows = 10_000;
            let sup = Supervisor::up(opts)
                .await
                .unwrap_or_else(|e| panic!("lab up: {e}"));
            let out = cutover::run(
                &sup,
                Cutover {
                    runbook: runbook.clone(),
                    params: cutover::lab_params(),
                    store: Arc::new(FileStore::new(tmp.path().join("runs"))),
                    clients,
                    pace: Duration::from_millis(5),
                    warmup: Duration::from_millis(500),
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
            "run {i} did not succeed: {:?}",
            out.report.map(|r| r.status)
        );
        let w = &out.workload;
        println!(
            "  run {i}: blackout {:>6.1} ms · failed attempts {} · lost {} of {} · {}",
            w.blackout_ms,
            w.failed_attempts,
            w.lost.unwrap_or(u64::MAX),
            w.acked,
            out.phases
                .iter()
                .map(|(n, ms)| format!("{n} {ms} ms"))
                .collect::<Vec<_>>()
                .join(" · ")
        );
        blackouts.push(w.blackout_ms);
        failed += w.failed_attempts;
        lost += w.lost.unwrap_or(u64::MAX);
        acked += w.acked;
        for (n, ms) in &out.phases {
            phases.entry(n.clone()).or_default().push(*ms as f64);
        }
    }
    blackouts.sort_by(f64::total_cmp);
    println!(
        "blackout p50 {:.1} ms · p100 {:.1} ms (goal ≤ 1000 ms p100) · failed client attempts {failed} · lost commits {lost} of {acked} acknowledged",
        pct(&blackouts, 0.5),
        pct(&blackouts, 1.0)
    );
    for (n, mut v) in phases {
        v.sort_by(f64::total_cmp);
        println!(
            "  {n:<16} p50 {:>6.1} ms · p100 {:>6.1} ms",
            pct(&v, 0.5),
            pct(&v, 1.0)
        );
    }
}
