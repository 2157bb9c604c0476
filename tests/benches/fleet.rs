//! `cargo bench -p godwit-tests --bench fleet`: wall time and peak RSS of `godwit fleet plan
//! --world sim` over the generated 400-cluster fleet (goal: ≤ 5 s wall on the 2-core build box,
//! < 500 MB), then the wall time of one full simulated migration with the standard runbook, and
//! of 400 clusters (each its own simulated world) in parallel on the machine's cores. Prints
//! numbers; asserts only that every plan was made and every run succeeded.
//!
//! `GODWIT_FLEET_BENCH_PLAN_ONLY=1`: the fleet plan alone (docs/fleet.md, "Performance").
//!
//! The fleet plan runs in a child process (this bench binary again, `GODWIT_FLEET_BENCH_CHILD`)
//! so its peak RSS (`VmHWM`) is its own, not this process's after the other measurements.
//!
//! Last, `godwit fleet run` of the generated 400 (24 h validation windows) on a real PostgreSQL
//! store with three `godwit worker` processes (`--jobs 4`) and no chaos: wall time and runs per
//! second (issue 20's benchmark; `tests/tests/fleet_run.rs` is the same with chaos, in debug).

/// The `godwit` binary's allocator (repl/src/main.rs), so the plan measured here is the one
/// users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// In the child: the real CLI's `fleet plan` in this process; its peak RSS on stderr.
fn fleet_plan_child(size: &str) -> i32 {
    let code = godwit::cli::main_with(
        godwit::worlds::Worlds::default(),
        [
            "godwit",
            "fleet",
            "plan",
            "--world",
            "sim",
            "--generated",
            size,
            "-o",
            "json",
        ]
        .map(Into::into),
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ? kB");
    eprintln!("{hwm}");
    code
}

/// `godwit fleet plan --world sim` over `size` generated clusters: wall time, peak RSS, and how
/// many clusters each readiness got.
fn fleet_plan(size: usize) {
    let t = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("GODWIT_FLEET_BENCH_CHILD", size.to_string())
        .output()
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hwm_kb: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fleet plan printed no JSON array ({e}): {stderr}"));
    assert_eq!(verdicts.len(), size, "{stderr}");
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for v in &verdicts {
        *by.entry(v["readiness"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    println!(
        "fleet plan --world sim, {size} generated clusters: {wall:.2} s wall, peak RSS {:.0} MB, {by:?}",
        hwm_kb / 1024.0
    );
}

/// `godwit fleet run` of `size` generated clusters on three workers; the operator approves and
/// resumes as the fleet asks. Wall time from registering to done.
fn fleet_run(size: usize) {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_godwit-toy");
    let scratch =
        godwit_lab::pgproc::Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let dir = tempfile::tempdir().unwrap();
    let godwit = |state: &str, args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args)
            .current_dir(dir.path())
            .env("GODWIT_STATE_DIR", dir.path().join(state))
            .env("GODWIT_STORE", &url)
            .env("USER", "bench");
        c
    };
    let size_arg = size.to_string();
    let t = Instant::now();
    let o = godwit(
        "operator",
        &[
            "fleet",
            "run",
            "--world",
            "sim",
            "--generated",
            &size_arg,
            "--detach",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut workers: Vec<std::process::Child> = (0..3)
        .map(|i| {
            godwit(
                &format!("machine-{i}"),
                &["worker", "--jobs", "4", "--poll", "200ms"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut operator = Vec::new();
    let status = loop {
        let (_tx, rx) = std::sync::mpsc::channel::<()>();
        let _ = rx.recv_timeout(std::time::Duration::from_millis(250));
        let o = godwit("operator", &["fleet", "status", "-o", "json"])
            .output()
            .unwrap();
        let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        match st["state"].as_str().unwrap_or("") {
            "done" => break st,
            "stopped" => {
                operator.push("resume");
                assert!(
                    godwit("operator", &["fleet", "resume"])
                        .status()
                        .unwrap()
                        .success()
                );
            }
            _ => {
                for w in st["waves"].as_array().unwrap() {
                    if w["state"] == "awaiting-approval" {
                        operator.push("approve");
                        let wave = w["wave"].as_str().unwrap();
                        assert!(
                            godwit("operator", &["fleet", "approve", wave])
                                .stdout(Stdio::null())
                                .status()
                                .unwrap()
                                .success()
                        );
                    }
                }
            }
        }
    };
    let wall = t.elapsed().as_secs_f64();
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let mut by_state = std::collections::BTreeMap::new();
    for w in status["waves"].as_array().unwrap() {
        for m in w["members"].as_array().unwrap() {
            *by_state
                .entry(m["state"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    println!(
        "fleet run --world sim, {size} generated clusters, 3 workers x 4 jobs, PostgreSQL store: \
         {wall:.1} s wall, {:.2} runs/s, {by_state:?}, operator {operator:?}",
        size as f64 / wall
    );
    drop(server);
}

fn main() {
    if let Ok(size) = std::env::var("GODWIT_FLEET_BENCH_CHILD") {
        std::process::exit(fleet_plan_child(&size));
    }
    if std::env::var_os("GODWIT_FLEET_BENCH_RUN_ONLY").is_some() {
        fleet_run(400);
        return;
    }
    fleet_plan(400);
    if std::env::var_os("GODWIT_FLEET_BENCH_PLAN_ONLY").is_some() {
        return;
    }
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
    fleet_run(400);
}
