//! How fast the simulator runs: simulated hours per wall-clock second for a busy source, and
//! the wall time of one full cutover runbook on `World::sim`. Prints numbers; asserts nothing
//! (DESIGN.md §5: benchmarks, not timed tests).
//!
//! `cargo bench -p godwit-stdlib --bench sim` (add `--profile dev` on a shared box to skip the
//! optimised build; the numbers are then debug-build numbers).

use std::time::Instant;

use godwit_stdlib::sim::SimState;
use godwit_stdlib::sim::scenario::Scenario;

fn model(hours: i64, poll_s: i64) {
    let mut st = SimState::new(Scenario::load("busy-source").unwrap());
    let t0 = st.now;
    let started = Instant::now();
    let mut t = t0;
    while t < t0 + hours * 3_600_000 {
        t += poll_s * 1000;
        st.advance_to(t);
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "busy source, {hours} h simulated in {poll_s} s advances: {wall:.3} s wall, {:.0} \
         simulated h per wall s, {} model steps ({:.2} µs/step), WAL {:.1} GiB",
        hours as f64 / wall,
        st.steps,
        wall * 1e6 / st.steps as f64,
        (st.lsn - 0x16_0000_0000) as f64 / (1u64 << 30) as f64
    );
}

/// The cutover of `tests/sim_runs.rs`, condensed further: replica, fence, promote, release.
const CUTOVER: &str = r#"
step("create-replica", || {
    rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" })
});
step("wait-replica", || rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" }));
gate("keeps-up", #{ every: "5m", hold: 12, timeout: "2h" }, || {
    let s = cw::metric_series(#{ name: "RDSToAuroraPostgreSQLReplicaLag",
                                 dimensions: #{ DBClusterIdentifier: "orders-aurora" } });
    let ok = s.len() > 0 && s[s.len() - 1].v < 5.0;
    #{ pass: ok, why: `replica lag ${s}`, evidence: #{} }
});
step("hold", || { route::switch_route("orders-db", "orders-db", #{ hold: true }); route::wait_until_acked("orders-db", #{}) });
step("fence", || {
    pg::block_logins("orders-db", ["orders_app"]);
    pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    pg::wait_until_no_application_backends("orders-db", #{})
});
step("catch-up", || {
    let fence = pg::current_lsn("orders-db").lsn_bytes;
    while pg::replay_lsn("orders-aurora").lsn_bytes < fence { sleep("5s"); }
});
step("promote", || { rds::promote_cluster("orders-aurora"); rds::wait_until_cluster_promoted("orders-aurora", #{}) });
step("release", || { route::switch_route("orders-db", "orders-aurora", #{ drain: true }); route::wait_until_acked("orders-db", #{}) });
"#;

fn cutover(runs: u32) {
    use std::sync::Arc;

    use godwit_engine::journal::memory::MemoryStore;
    use godwit_engine::{RunStatus, StartRequest};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.rhai");
    std::fs::write(&path, CUTOVER).unwrap();
    let started = Instant::now();
    let mut virtual_h = 0.0;
    for i in 0..runs {
        let (world, sim) =
            godwit_stdlib::sim::world::sim_world(Scenario::load("busy-source").unwrap());
        let t0 = sim.lock().now;
        let runner = world.runner(Arc::new(MemoryStore::new()), rt.handle().clone());
        let report = runner
            .start(StartRequest {
                runbook: path.clone(),
                cluster: "orders-db".into(),
                params: serde_json::Map::new(),
                run_id: Some(format!("bench-{i}")),
            })
            .unwrap();
        assert!(
            matches!(report.status, RunStatus::Succeeded { .. }),
            "{:?}",
            report.status
        );
        virtual_h += (sim.lock().now - t0) as f64 / 3_600_000.0;
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "full cutover runbook on busy-source: {:.1} ms wall per run ({:.1} simulated h each)",
        wall * 1000.0 / f64::from(runs),
        virtual_h / f64::from(runs)
    );
}

fn main() {
    // A week in one jump (the model steps itself) and a day polled like a gate every 30 s.
    model(24 * 7, 3600 * 24 * 7);
    model(24, 30);
    model(24, 1);
    cutover(20);
}
