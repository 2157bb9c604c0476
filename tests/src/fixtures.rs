//! Journals written by an earlier shape of the runbooks, kept as fixtures: the `runbooks` test
//! binary resumes each under today's runbooks. Before restructuring a runbook, write new ones
//! with `cargo run -p godwit-tests --bin write-old-journals` and commit them.

use std::path::PathBuf;
use std::sync::Arc;

use godwit_engine::StartRequest;
use godwit_engine::journal::file::FileStore;
use godwit_engine::transcript::Event;

use crate::harness::{CrashSink, until_crash};

pub fn old_journals_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/old-journals")
}

fn runbooks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runbooks")
}

/// (fixture name, runbook, the step or gate after which the process died)
pub const OLD_JOURNALS: &[(&str, &str, &str)] = &[
    (
        "rds-to-aurora-crashed-after-reboot-source",
        "rds-to-aurora.rhai",
        "reboot-source",
    ),
    (
        "cdc-heavy-crashed-after-cdc-drained",
        "cdc-heavy.rhai",
        "cdc-drained",
    ),
];

/// Writes the fixtures of [`OLD_JOURNALS`] with the runbooks as they are now. Run it only
/// *before* restructuring a runbook, so the fixtures record the old shape; then commit them.
pub fn write_old_journals() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, runbook, crash_after) in OLD_JOURNALS {
        let tmp = tempfile::tempdir().unwrap();
        let sim_file = tmp.path().join("sim.json");
        let scenario = godwit_stdlib::sim::scenario::Scenario::load("busy-source").unwrap();
        let (world, _) =
            godwit_stdlib::sim::world::sim_world_persistent(scenario, &sim_file).unwrap();
        let store = FileStore::new(tmp.path().join("runs"));
        let crash_after = crash_after.to_string();
        let crash = CrashSink::new(1, move |e| match e {
            Event::StepCompleted { name, .. } | Event::GatePassed { name, .. } => {
                *name == crash_after
            }
            _ => false,
        });
        let mut r = world.runner(Arc::new(store.clone()), rt.handle().clone());
        r.sinks.push(crash);
        let req = StartRequest {
            runbook: runbooks_dir().join(runbook),
            cluster: "orders-db".into(),
            params: Default::default(),
            run_id: Some((*name).into()),
        };
        assert!(until_crash(|| r.start(req)).is_none(), "{name}: no crash");
        let out = old_journals_dir().join(name);
        std::fs::create_dir_all(&out).unwrap();
        let run_dir = store.run_dir(name);
        std::fs::copy(run_dir.join("journal.jsonl"), out.join("journal.jsonl")).unwrap();
        std::fs::copy(&sim_file, out.join("sim.json")).unwrap();
        std::fs::copy(sim_file.with_extension("now"), out.join("sim.now")).unwrap();
    }
}
