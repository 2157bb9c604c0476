//! The lab world end to end: the standard runbook on real PostgreSQL servers and a real
//! Envoy, under continuous writes through Envoy.
//!
//! Needs the PostgreSQL server binaries and Envoy; `scripts/test.sh` provisions both. A
//! missing one fails with its install command.

use std::sync::Arc;
use std::time::Duration;

use godwit_engine::journal::file::FileStore;
use godwit_lab::cutover::{self, Cutover};
use godwit_lab::{LabOptions, Supervisor};

fn runbook() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai")
}

async fn lab(dir: &std::path::Path) -> Supervisor {
    Supervisor::up(LabOptions::new(dir.join("lab")))
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standard_runbook_cuts_over_under_load_losing_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path()).await;
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let out = cutover::run(
        &sup,
        Cutover {
            runbook: runbook(),
            params: cutover::lab_params(),
            store,
            clients: 4,
            pace: Duration::from_millis(5),
            warmup: Duration::from_millis(500),
            sinks: Vec::new(),
        },
    )
    .await
    .unwrap();
    let status = &out.report.as_ref().unwrap().status;
    assert!(out.succeeded, "{status:?}");
    eprintln!("{}", serde_json::to_string_pretty(&out).unwrap());
    sup.down().await;
}
