//! `cargo bench -p godwit-tests --bench fleet`: wall time of one full simulated migration with
//! the standard runbook, and of 400 clusters (each its own simulated world) in parallel on the
//! machine's cores. Prints numbers; asserts only that every run succeeded.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::{RunStatus, StartRequest};
use godwit_stdlib::world::World;

fn migrate(
    runbook: &std::path::Path,
    scenario: &str,
    rt: &tokio::runtime::Runtime,
    id: usize,
) -> bool {
    let world = World::sim_named(scenario).unwrap();
    let runner = world.runner(Arc::new(MemoryStore::new()), rt.handle().clone());
    let report = runner
        .start(StartRequest {
            runbook: runbook.to_path_buf(),
            cluster: "orders-db".into(),
            params: Default::default(),
            run_id: Some(format!("run-{id}")),
        })
        .unwrap();
    matches!(report.status, RunStatus::Succeeded { .. })
}

fn main() {
    let runbook = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Warm up (first run parses and caches nothing global, but faults pages in).
    assert!(migrate(&runbook, "busy-source", &rt, 0));
    let n = 10;
    let t = Instant::now();
    for i in 0..n {
        assert!(migrate(&runbook, "busy-source", &rt, i));
    }
    let one = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "one full migration (busy-source, ~1 d 2 h virtual): {:.1} ms wall (mean of {n})",
        one * 1e3
    );
    let idle = Instant::now();
    assert!(migrate(&runbook, "idle-source", &rt, 0));
    println!(
        "one full migration (idle-source):                   {:.1} ms wall",
        idle.elapsed().as_secs_f64() * 1e3
    );

    let fleet = 400;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (next, ok, runbook, rt) = (next.clone(), ok.clone(), runbook.clone(), &rt);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= fleet {
                        break;
                    }
                    let scenario = if i % 2 == 0 {
                        "busy-source"
                    } else {
                        "idle-source"
                    };
                    if migrate(&runbook, scenario, rt, i) {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let total = t.elapsed().as_secs_f64();
    println!(
        "{fleet} clusters (half busy, half idle) on {threads} threads: {total:.2} s wall, {:.1} ms per migration, {} succeeded",
        total * 1e3 / fleet as f64,
        ok.load(Ordering::SeqCst)
    );
    assert_eq!(ok.load(Ordering::SeqCst), fleet);
}
