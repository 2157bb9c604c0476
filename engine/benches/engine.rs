//! `cargo bench -p godwit-engine`: what a primitive call from Rhai and a journal append cost.
//!
//! Prints numbers; it asserts nothing (timed tests are flaky on shared machines). Ratios
//! measured in one run are the thing to compare.

use std::sync::Arc;
use std::time::Instant;

use godwit_engine::journal::Entry;
use godwit_engine::journal::file::FileStore;
use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::{
    Cancel, Clock, Host, Installed, JournalStore, Limits, RunStatus, Runner, StartRequest,
    VirtualClock,
};
use rhai::plugin::*;
use rhai::{Engine, FuncRegistration};

/// What a world installs for its functions (a stand-in for stdlib's `Areas`).
struct Backend;

impl Backend {
    fn noop(&self) -> i64 {
        1
    }
}

/// The shape every script-visible function has: a plugin function that captures nothing and
/// finds the host and the backend through the engine (`Installed`), as `stdlib::prim::call` does.
#[export_module]
mod bench_module {
    #[rhai_fn(volatile, return_raw)]
    pub fn world_noop(ctx: NativeCallContext) -> Result<i64, Box<EvalAltResult>> {
        let installed = Installed::of(&ctx)?;
        let backend = installed.get::<Backend>().expect("installed");
        installed
            .host()
            .call("bench", "world_noop", &(), |_| Ok(backend.noop()))
            .map_err(Into::into)
    }

    pub fn pure_noop() -> i64 {
        1
    }
}

fn plugin(engine: &mut Engine, host: &Host) {
    host.install(engine, Arc::new(Backend));
    let mut m = exported_module!(bench_module);
    // The shape world functions had before: a closure capturing the host and the backend.
    let (h, b) = (host.clone(), Arc::new(Backend));
    FuncRegistration::new("world_noop_captured")
        .with_volatility(true)
        .set_into_module(&mut m, move || -> Result<i64, Box<EvalAltResult>> {
            h.call("bench", "world_noop", &(), |_| Ok(b.noop()))
                .map_err(Into::into)
        });
    engine.register_static_module("bench", m.into());
}

fn runner(store: Arc<dyn JournalStore>, rt: &tokio::runtime::Runtime) -> Runner {
    Runner {
        store,
        clock: Arc::new(VirtualClock::new(0)) as Arc<dyn Clock>,
        handle: rt.handle().clone(),
        limits: Limits::default(),
        cancel: Cancel::new(),
        sinks: vec![],
        plugins: vec![Arc::new(plugin)],
        world: "bench".into(),
    }
}

fn time_script(rt: &tokio::runtime::Runtime, dir: &std::path::Path, name: &str, body: &str) -> f64 {
    let path = dir.join(format!("{name}.rhai"));
    std::fs::write(&path, body).unwrap();
    let r = runner(Arc::new(MemoryStore::new()), rt);
    let t = Instant::now();
    let report = r
        .start(StartRequest {
            runbook: path,
            cluster: "bench".into(),
            params: Default::default(),
            run_id: Some(name.into()),
        })
        .unwrap();
    assert!(
        matches!(report.status, RunStatus::Succeeded { .. }),
        "{report:?}"
    );
    t.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n = 200_000;
    let empty = time_script(
        &rt,
        dir.path(),
        "empty",
        &format!("step(\"s\", || {{ let x = 0; for i in 0..{n} {{ x += 1; }} x }})"),
    );
    let pure = time_script(
        &rt,
        dir.path(),
        "pure",
        &format!(
            "step(\"s\", || {{ let x = 0; for i in 0..{n} {{ x += bench::pure_noop(); }} x }})"
        ),
    );
    let world = time_script(
        &rt,
        dir.path(),
        "world",
        &format!(
            "step(\"s\", || {{ let x = 0; for i in 0..{n} {{ x += bench::world_noop(); }} x }})"
        ),
    );
    let captured = time_script(
        &rt,
        dir.path(),
        "captured",
        &format!(
            "step(\"s\", || {{ let x = 0; for i in 0..{n} {{ x += bench::world_noop_captured(); }} x }})"
        ),
    );
    let per = |t: f64| (t - empty).max(0.0) / n as f64 * 1e6;
    println!(
        "rhai loop baseline            {:>8.3} µs/iteration",
        empty / n as f64 * 1e6
    );
    println!(
        "pure primitive call           {:>8.3} µs/call (loop overhead subtracted)",
        per(pure)
    );
    println!(
        "world primitive via Host      {:>8.3} µs/call (strict check + transcript event; host and \
         backend found through the engine)",
        per(world)
    );
    println!(
        "  the same, closure-captured  {:>8.3} µs/call (the shape before `Installed`)",
        per(captured)
    );

    // Journal appends with fsync on the real file store.
    let store = FileStore::new(dir.path().join("runs"));
    let mut w = store.create("fsync").unwrap();
    let appends = 300;
    let entry = Entry::StepCompleted {
        name: "create-replica".into(),
        result: serde_json::json!({"cluster": "orders-aurora", "status": "creating", "lsn": "0/5000060"}),
        at: 0,
    };
    let t = Instant::now();
    for _ in 0..appends {
        w.append(&entry).unwrap();
    }
    let fsync = t.elapsed().as_secs_f64() / appends as f64 * 1e3;
    println!(
        "journal append + fdatasync    {fsync:>8.3} ms/append ({appends} appends, {})",
        dir.path().display()
    );
    drop(w);

    // Steps end to end on the file store: journal + transcript per step.
    let steps = 300;
    let path = dir.path().join("steps.rhai");
    std::fs::write(
        &path,
        format!("for i in 0..{steps} {{ step(\"s-\" + i, || i) }}"),
    )
    .unwrap();
    let r = runner(Arc::new(store.clone()), &rt);
    let t = Instant::now();
    r.start(StartRequest {
        runbook: path.clone(),
        cluster: "bench".into(),
        params: Default::default(),
        run_id: Some("steps".into()),
    })
    .unwrap();
    let live = t.elapsed().as_secs_f64() / steps as f64 * 1e3;
    println!("live step on file store       {live:>8.3} ms/step (2 fsync'd records each)");

    // Replay: resume a run whose journal holds every step (cut before run-finished).
    let mut w = store.create("replay").unwrap();
    let mut prev_entries = vec![];
    for i in 0..steps {
        prev_entries.push(Entry::StepStarted {
            name: format!("s-{i}"),
            at: 0,
        });
        prev_entries.push(Entry::StepCompleted {
            name: format!("s-{i}"),
            result: serde_json::json!(i),
            at: 0,
        });
    }
    let rb = godwit_engine::run::check_runbook(&r, &path).unwrap();
    w.append(&Entry::RunStarted {
        run_id: "replay".into(),
        runbook: rb.info,
        cluster: "bench".into(),
        world: "bench".into(),
        params: serde_json::json!({}),
        godwit_version: "bench".into(),
        at: 0,
    })
    .unwrap();
    for e in &prev_entries {
        w.append(e).unwrap();
    }
    drop(w);
    let t = Instant::now();
    r.resume("replay", false).unwrap();
    let replay = t.elapsed().as_secs_f64() / steps as f64 * 1e6;
    println!(
        "replayed step (resume)        {replay:>8.1} µs/step ({steps} steps, verify + replay)"
    );
}
