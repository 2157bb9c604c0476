//! Hostile runbooks and journals (issue 19): nothing a runbook returns, computes or imports, and
//! nothing a journal holds, may crash godwit, escape the pinned runbook, or silently change a
//! value. Each test is named after the behaviour it holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use godwit_engine::journal::file::{FileStore, journal_path};
use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::journal::{Entry, JournalError, JournalStore, JournalWriter, Loaded, Request};
use godwit_engine::transcript::{Collector, Event};
use godwit_engine::{
    Cancel, Clock, EngineError, Limits, RunReport, RunStatus, Runner, StartRequest, SystemClock,
    VirtualClock,
};
use serde_json::{Value, json};

struct Bench {
    dir: tempfile::TempDir,
    store: MemoryStore,
    rt: tokio::runtime::Runtime,
    limits: Limits,
    clock: Arc<dyn Clock>,
    events: Collector,
}

impl Bench {
    fn new() -> Self {
        Bench {
            dir: tempfile::tempdir().unwrap(),
            store: MemoryStore::new(),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
            limits: Limits::default(),
            clock: Arc::new(VirtualClock::new(0)),
            events: Collector::new(),
        }
    }

    fn write(&self, name: &str, src: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, src).unwrap();
        path
    }

    fn runner_with(&self, store: Arc<dyn JournalStore>) -> Runner {
        Runner {
            store,
            clock: self.clock.clone(),
            handle: self.rt.handle().clone(),
            limits: self.limits.clone(),
            cancel: Cancel::new(),
            sinks: vec![Arc::new(self.events.clone())],
            plugins: vec![],
            world: "test".into(),
        }
    }

    fn runner(&self) -> Runner {
        self.runner_with(Arc::new(self.store.clone()))
    }

    fn start(&self, runbook: &Path, id: &str) -> Result<RunReport, EngineError> {
        self.runner().start(StartRequest {
            runbook: runbook.to_path_buf(),
            cluster: "c1".into(),
            params: Default::default(),
            run_id: Some(id.into()),
        })
    }

    fn run(&self, src: &str) -> RunReport {
        let rb = self.write("rb.rhai", src);
        self.start(&rb, "r1").unwrap()
    }

    fn warnings(&self) -> Vec<String> {
        self.events
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Warning { message } => Some(message),
                _ => None,
            })
            .collect()
    }
}

fn rolled_back(r: &RunReport) -> String {
    match &r.status {
        RunStatus::RolledBack { reason, .. } => reason.clone(),
        other => panic!("expected a rollback, got {other:?}"),
    }
}

fn step_failed(store: &MemoryStore, run: &str, step: &str) -> (Value, String) {
    store
        .entries(run)
        .into_iter()
        .find_map(|e| match e {
            Entry::StepFailed {
                name,
                error,
                message,
                ..
            } if name == step => Some((error, message)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no step-failed for {step}: {:?}", store.entries(run)))
}

// ---- 1. Deeply nested values -------------------------------------------------------------

#[test]
fn a_step_returning_a_deeply_nested_value_fails_naming_the_step_and_the_limit() {
    let b = Bench::new();
    let src = r#"let a = []; for i in 0..2000 { a = [a]; } step("nested", || a);"#;
    let r = b.run(src);
    let reason = rolled_back(&r);
    assert!(
        reason.contains("step 'nested' returned a value that cannot be journaled"),
        "{reason}"
    );
    assert!(
        reason.contains("journaled values nest at most 64 arrays or maps"),
        "{reason}"
    );
    // The failure is journaled like any other: a resume replays it, it does not re-run or crash.
    let (_, message) = step_failed(&b.store, "r1", "nested");
    assert!(message.contains("nested 65 levels deep"), "{message}");
}

#[test]
fn a_plain_5000_deep_array_does_not_crash_the_run() {
    // Rhai clones, compares, prints and drops nested data recursively; on a 2 MiB thread this
    // aborted the process at ~2 500 levels (debug build).
    let b = Bench::new();
    let r = b.run("let a = []; for i in 0..5000 { a = [a]; } let same = a == a; print(a); a");
    let RunStatus::Succeeded { result } = &r.status else {
        panic!("{r:?}")
    };
    let text = result.as_str().unwrap();
    assert!(
        text.contains("the runbook's final value cannot be journaled")
            && text.contains("65 levels"),
        "{text}"
    );
    assert_eq!(b.warnings().len(), 1, "{:?}", b.warnings());
}

/// A journal line holding `value` as a step result, hash-chained correctly, as another program
/// (or an older godwit) could have written it.
fn forge_journal(store: &FileStore, run: &str, runbook: &Path, value: &str) {
    let rb_info = {
        let b = Bench::new();
        godwit_engine::run::check_runbook(&b.runner(), runbook)
            .unwrap()
            .info
    };
    let mut w = store.create(run).unwrap();
    w.append(&Entry::RunStarted {
        run_id: run.into(),
        runbook: rb_info,
        cluster: "c1".into(),
        world: "test".into(),
        params: json!({}),
        godwit_version: "test".into(),
        at: 0,
    })
    .unwrap();
    w.append(&Entry::StepStarted {
        name: "s".into(),
        at: 0,
    })
    .unwrap();
    drop(w);
    // Append the completed record by hand: the deep value must never exist as a serde Value.
    let path = journal_path(store, run);
    let text = std::fs::read_to_string(&path).unwrap();
    let prev = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let entry = format!(r#"{{"type":"step-completed","name":"s","result":{value},"at":0}}"#);
    let hash = godwit_engine::journal::record_hash(2, &prev, &entry);
    let line = format!(r#"{{"seq":2,"prev":"{prev}","hash":"{hash}","entry":{entry}}}"#);
    std::fs::write(&path, format!("{text}{line}\n")).unwrap();
}

#[test]
fn a_journal_holding_a_value_nested_past_the_parse_limit_is_reported_not_a_crash() {
    let b = Bench::new();
    let rb = b.write("rb.rhai", r#"step("s", || 1)"#);
    let store = FileStore::new(b.dir.path().join("runs"));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    forge_journal(&store, "deep", &rb, &deep);
    // verify / show read through the store: a clean error, exit 5.
    let err = store.read("deep").unwrap_err();
    assert!(
        err.to_string().contains("recursion limit exceeded"),
        "{err}"
    );
    let err = b
        .runner_with(Arc::new(store))
        .resume("deep", false)
        .unwrap_err();
    assert_eq!(
        err.exit_code(),
        godwit_engine::exit::JOURNAL_DAMAGED,
        "{err}"
    );
}

#[test]
fn a_journal_value_nested_below_the_parse_limit_replays() {
    // Deeper than godwit now journals (64), as an older godwit could have written it.
    let b = Bench::new();
    let rb = b.write("rb.rhai", r#"let v = step("s", || 1); len(v)"#);
    let store = FileStore::new(b.dir.path().join("runs"));
    let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
    forge_journal(&store, "deep", &rb, &deep);
    let r = b
        .runner_with(Arc::new(store))
        .resume("deep", false)
        .unwrap();
    assert!(
        matches!(&r.status, RunStatus::Succeeded { result } if result == &json!(1)),
        "{r:?}"
    );
}

// ---- 3. Non-finite numbers --------------------------------------------------------------

#[test]
fn a_step_returning_inf_or_nan_fails_instead_of_journaling_unit() {
    for (expr, shown) in [("1e308 * 10.0", "inf"), ("0.0 / 0.0", "NaN")] {
        let b = Bench::new();
        let r = b.run(&format!(r#"let x = step("n", || #{{ lag: {expr} }}); x"#));
        let reason = rolled_back(&r);
        assert!(
            reason.contains(&format!(
                "step 'n' returned a value that cannot be journaled: result.lag is {shown}, \
                 which JSON cannot hold"
            )),
            "{reason}"
        );
    }
}

#[test]
fn a_thrown_nan_is_replaced_by_an_error_that_says_so_live_and_on_replay() {
    let b = Bench::new();
    let r = b.run(
        r#"let seen = (); try { step("n", || throw 0.0 / 0.0) } catch (e) { seen = e.message } seen"#,
    );
    let RunStatus::Succeeded { result } = &r.status else {
        panic!("{r:?}")
    };
    let live = result.as_str().unwrap().to_string();
    assert!(
        live.contains("step 'n' failed with a value that cannot be journaled: error is NaN"),
        "{live}"
    );
    let (error, _) = step_failed(&b.store, "r1", "n");
    assert_eq!(error["message"], live, "journaled = what the live run saw");
}

#[test]
fn journaled_floats_replay_bit_for_bit() {
    // serde_json without `float_roundtrip` parsed ~30% of random doubles back one ulp off.
    let b = Bench::new();
    let rb = b.write(
        "rb.rhai",
        r#"
        let x = step("x", || [1.0715660391465826e-75, -1.603964615428183e143, 0.1 + 0.2, 1e-320]);
        step("after", || 1);
        x
        "#,
    );
    let store = FileStore::new(b.dir.path().join("runs"));
    let live = b.runner_with(Arc::new(store.clone())).start(StartRequest {
        runbook: rb.clone(),
        cluster: "c1".into(),
        params: Default::default(),
        run_id: Some("f".into()),
    });
    let RunStatus::Succeeded { result: live } = live.unwrap().status else {
        panic!()
    };
    // Cut the journal after step x (as a crash would) and replay it from the file.
    let path = journal_path(&store, "f");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, kept).unwrap();
    std::fs::write(store.run_dir("f").join("transcript.jsonl"), "").unwrap();
    let RunStatus::Succeeded { result: replayed } = b
        .runner_with(Arc::new(store))
        .resume("f", false)
        .unwrap()
        .status
    else {
        panic!()
    };
    let bits = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap().to_bits())
            .collect()
    };
    assert_eq!(bits(&live), bits(&replayed));
}

// ---- 4. Size and time limits ------------------------------------------------------------

#[test]
fn a_map_grown_past_the_map_limit_by_index_assignment_cannot_be_journaled() {
    // Rhai measures the assigned element, not the map, after `m[key] = v`.
    let mut b = Bench::new();
    b.limits.max_map_size = 1_000;
    let r = b.run(r#"let m = #{}; for i in 0..1001 { m["k" + i] = i; } step("big", || m);"#);
    let reason = rolled_back(&r);
    assert!(
        reason.contains("result is a map of 1001 entries; the map size limit is 1000"),
        "{reason}"
    );
}

#[test]
fn an_endless_loop_ends_at_the_busy_limit_with_its_name() {
    let mut b = Bench::new();
    b.limits.max_busy = Some(Duration::from_millis(500));
    let t = Instant::now();
    let r = b.run("step(\"a\", || 1); loop { }");
    let reason = rolled_back(&r);
    assert!(
        reason.contains("runbook computed for 500ms without calling a primitive or waiting"),
        "{reason}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn a_quadratic_push_loop_ends_at_the_busy_limit() {
    // Every push re-measures the whole array against the size limits: 100 000 pushes took 35 s.
    let mut b = Bench::new();
    b.limits.max_busy = Some(Duration::from_millis(500));
    let t = Instant::now();
    let r = b.run("let a = []; loop { a.push(1); }");
    assert!(rolled_back(&r).contains("busy limit"), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn waiting_on_the_clock_is_not_busy() {
    // Real clock: 10 sleeps of 100 ms inside a step, each shorter than the busy limit, together
    // longer than it.
    let mut b = Bench::new();
    b.limits.max_busy = Some(Duration::from_millis(300));
    b.clock = Arc::new(SystemClock);
    let r = b.run(r#"step("poll", || { for i in 0..10 { sleep("100ms"); } 1 })"#);
    assert!(matches!(r.status, RunStatus::Succeeded { .. }), "{r:?}");
}

#[test]
fn hostile_numbers_in_built_ins_fail_the_step_instead_of_panicking() {
    // sleep(1e308) panicked in Duration::from_secs_f64; a 2^63 ms timeout wrapped into a
    // deadline in the past; time_str(i64::MAX) overflowed.
    for (body, expect) in [
        ("sleep(1e308)", "is not a duration godwit waits for"),
        ("sleep(0.0 / 0.0)", "is not a duration godwit waits for"),
        (
            "sleep(9223372036854775807)",
            "is not a duration godwit waits for",
        ),
        ("time_str(9223372036854775807)", "is not epoch seconds"),
        ("sleep(\"9223372036854775807ms\")", "longer than 3650d"),
    ] {
        let b = Bench::new();
        let r = b.run(&format!("step(\"s\", || {body});"));
        let reason = rolled_back(&r);
        assert!(reason.contains(expect), "{body}: {reason}");
    }
    let b = Bench::new();
    let r = b.run("step(\"s\", #{ timeout: 9223372036854775807 }, || 1);");
    assert!(rolled_back(&r).contains("option 'timeout'"), "{r:?}");
}

// ---- 2. Imports outside the pinned hash -------------------------------------------------

fn parse_error(b: &Bench, src: &str) -> godwit_engine::report::Report {
    let rb = b.write("rb.rhai", src);
    match b.start(&rb, "r1") {
        Err(EngineError::Parse(r)) => r,
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[test]
fn a_computed_import_path_is_refused_at_load_with_its_position() {
    let b = Bench::new();
    b.write("lib/dyn.rhai", "fn f() { 1 }");
    let r = parse_error(
        &b,
        "let x = 1;\nlet p = \"lib/\" + \"dyn\"; import p as m;\nstep(\"s\", || m::f());",
    );
    assert!(
        r.message.contains("import path is computed at run time"),
        "{r:?}"
    );
    let loc = r.location.unwrap();
    assert_eq!((loc.line, loc.column), (2, 25));
    assert!(b.store.entries("r1").is_empty(), "nothing was started");
}

#[test]
fn a_computed_import_inside_a_module_is_refused_at_the_modules_line() {
    let b = Bench::new();
    b.write("lib/dyn.rhai", "fn f() { 1 }");
    b.write(
        "lib/outer.rhai",
        "fn g() {\n  let p = \"lib/dyn\";\n  import p as m;\n  m::f()\n}",
    );
    let r = parse_error(&b, "import \"lib/outer\" as o;\nstep(\"s\", || o::g());");
    assert!(
        r.message.contains("import path is computed at run time"),
        "{r:?}"
    );
    let loc = r.location.unwrap();
    assert!(loc.file.ends_with("lib/outer.rhai"), "{loc:?}");
    assert_eq!(loc.line, 3);
}

#[test]
fn imports_at_run_time_get_only_modules_pinned_at_load() {
    let b = Bench::new();
    b.write("lib/a.rhai", "fn f() { 41 }");
    b.write("lib/b.rhai", "fn f() { 0 }");
    // lib/a is pinned (imported at the top); eval() may use it and gets the pinned code.
    let r = b.run(
        "import \"lib/a\" as a;\nlet v = eval(\"import \\\"lib/a\\\" as x; x::f()\");\nstep(\"s\", || v + 1)",
    );
    assert!(
        matches!(&r.status, RunStatus::Succeeded { result } if result == &json!(42)),
        "{r:?}"
    );
    // lib/b was never pinned: importing it at run time is an error at the eval.
    let b2 = Bench::new();
    b2.write("lib/b.rhai", "fn f() { 0 }");
    let r = b2.run("let v = 1;\nlet w = eval(\"import \\\"lib/b\\\" as x; x::f()\");");
    let RunStatus::RolledBack { report, .. } = &r.status else {
        panic!("{r:?}")
    };
    let report = report.as_ref().unwrap();
    assert!(
        report
            .message
            .contains("import \"lib/b\" at run time: the module was not loaded with the runbook"),
        "{report:?}"
    );
    assert_eq!(report.location.as_ref().unwrap().line, 2);
}

#[test]
fn editing_a_pinned_module_changes_the_runbook_hash() {
    // The static-import case the computed import escaped: an edit is a different hash.
    let b = Bench::new();
    b.write("lib/m.rhai", "fn f() { 1 }");
    let rb = b.write("rb.rhai", "import \"lib/m\" as m;\nstep(\"s\", || m::f())");
    let before = godwit_engine::run::check_runbook(&b.runner(), &rb).unwrap();
    b.write("lib/m.rhai", "fn f() { 2 }");
    let after = godwit_engine::run::check_runbook(&b.runner(), &rb).unwrap();
    assert_ne!(before.info.hash, after.info.hash);
}

// ---- 6. Errors with their place ---------------------------------------------------------

#[test]
fn an_error_inside_eval_points_at_the_eval_call() {
    let b = Bench::new();
    let r = b.run("let x = 1;\n\nlet y = eval(\"let z = 1;\\nthrow \\\"boom\\\";\");");
    let RunStatus::RolledBack { report, .. } = &r.status else {
        panic!("{r:?}")
    };
    let report = report.as_ref().unwrap();
    assert_eq!(
        report.message,
        "runbook threw: boom (line 2, column 1 of the text given to eval)"
    );
    assert_eq!(report.location.as_ref().unwrap().line, 3);
}

#[test]
fn a_missing_module_is_reported_at_its_import_line() {
    let b = Bench::new();
    let r = parse_error(&b, "let x = 1;\nimport \"lib/nope\" as n;");
    assert!(
        r.message
            .starts_with("module \"lib/nope\" not found: there is no file"),
        "{r:?}"
    );
    assert_eq!(r.location.as_ref().unwrap().line, 2);
    let hint = r.hint.unwrap();
    assert!(
        hint.starts_with("import paths are relative to the runbook's folder"),
        "{hint}"
    );
    let rendered =
        EngineError::Parse(parse_error(&b, "import \"../../etc/passwd\" as p;")).to_string();
    assert!(
        rendered.contains("--> "),
        "an import outside the folder has its place: {rendered}"
    );
}

#[test]
fn a_nested_missing_module_is_reported_at_the_modules_line() {
    let b = Bench::new();
    b.write(
        "lib/outer.rhai",
        "// outer\nimport \"lib/gone\" as g;\nfn f() { 1 }",
    );
    let r = parse_error(&b, "import \"lib/outer\" as o;");
    let loc = r.location.unwrap();
    assert!(loc.file.ends_with("lib/outer.rhai"), "{loc:?}");
    assert_eq!(loc.line, 2);
}

#[test]
fn abort_inside_an_undo_reports_its_reason() {
    let b = Bench::new();
    let r = b.run("step(\"a\", #{ undo: |r| abort(\"undo says no\") }, || 1);\nthrow \"fail\";");
    let RunStatus::RollbackFailed { error, step, .. } = &r.status else {
        panic!("{r:?}")
    };
    assert_eq!(step, "a");
    assert_eq!(error, "abort(\"undo says no\") in the undo");
}

/// A finished run leaves nothing alive. An undo keeps its step's calling context, whose
/// functions were registered for the run and hold the run's context: that cycle kept every run
/// that registered an undo in memory, with its sinks and the world behind them (about 1 MB per
/// simulated migration: a fleet plan's RSS grew with the fleet).
#[test]
fn a_finished_run_with_undos_is_freed() {
    struct Sentinel;
    impl godwit_engine::transcript::Sink for Sentinel {
        fn line(&self, _: &godwit_engine::transcript::Line) {}
    }
    let b = Bench::new();
    let rb = b.write(
        "rb.rhai",
        "step(\"a\", #{ undo: |r| print(r) }, || 1);\nstep(\"b\", #{ undo: |r| print(r) }, || 2);",
    );
    let sentinel: Arc<dyn godwit_engine::transcript::Sink> = Arc::new(Sentinel);
    let alive = Arc::downgrade(&sentinel);
    let mut runner = b.runner();
    runner.sinks.push(sentinel);
    let report = runner
        .start(StartRequest {
            runbook: rb,
            cluster: "c1".into(),
            params: Default::default(),
            run_id: Some("r1".into()),
        })
        .unwrap();
    assert!(
        matches!(report.status, RunStatus::Succeeded { .. }),
        "{:?}",
        report.status
    );
    drop(runner);
    assert!(
        alive.upgrade().is_none(),
        "the finished run is still in memory"
    );
}

/// A memory store whose writers say their hold lapsed from the `after`-th question on (the Host
/// asks before every world call): what a shared store's writer says when its lease renewals
/// stopped being confirmed.
#[derive(Clone)]
struct LapsingStore {
    inner: MemoryStore,
    after: usize,
    asked: Arc<std::sync::atomic::AtomicUsize>,
}

struct LapsingWriter {
    inner: Box<dyn JournalWriter>,
    store: LapsingStore,
}

impl JournalWriter for LapsingWriter {
    fn append(&mut self, entry: &Entry) -> Result<u64, JournalError> {
        self.inner.append(entry)
    }
    fn transcript(&mut self, line: &str) {
        self.inner.transcript(line)
    }
    fn lapsed(&self) -> Option<JournalError> {
        let n = 1 + self
            .store
            .asked
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (n >= self.store.after).then(|| JournalError::Locked {
            run_id: "r1".into(),
            holder: "maybe nobody yet; this process's lease renewals stopped".into(),
        })
    }
}

impl JournalStore for LapsingStore {
    fn create(&self, run_id: &str) -> Result<Box<dyn JournalWriter>, JournalError> {
        Ok(Box::new(LapsingWriter {
            inner: self.inner.create(run_id)?,
            store: self.clone(),
        }))
    }
    fn open(&self, run_id: &str) -> Result<(Loaded, Box<dyn JournalWriter>), JournalError> {
        let (loaded, inner) = self.inner.open(run_id)?;
        Ok((
            loaded,
            Box::new(LapsingWriter {
                inner,
                store: self.clone(),
            }),
        ))
    }
    fn read(&self, run_id: &str) -> Result<Loaded, JournalError> {
        self.inner.read(run_id)
    }
    fn list(&self) -> Result<Vec<String>, JournalError> {
        self.inner.list()
    }
    fn discard(&self, run_id: &str) -> Result<(), JournalError> {
        self.inner.discard(run_id)
    }
    fn claim_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        self.inner.claim_cluster(cluster, run_id)
    }
    fn release_cluster(&self, cluster: &str, run_id: &str) -> Result<(), JournalError> {
        self.inner.release_cluster(cluster, run_id)
    }
    fn request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        self.inner.request(run_id, request)
    }
    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        self.inner.requests(run_id)
    }
}

/// Once the journal's writer says its hold on the run lapsed, the Host makes no more world
/// calls: the run stops on that error — nothing journaled after it, nothing rolled back (the
/// worker that takes the run over resumes it) — even where the script catches errors.
#[test]
fn a_run_whose_lease_lapsed_makes_no_world_call_and_rolls_nothing_back() {
    let b = Bench::new();
    let store = LapsingStore {
        inner: b.store.clone(),
        after: 3,
        asked: Arc::default(),
    };
    let rb = b.write(
        "lease.rhai",
        r#"
step("first", #{ undo: |r| print("undone") }, || now());
step("second", || {
    let t = now();
    // The third world call is refused: a script's catch must not turn it into a branch.
    try { now(); } catch (e) { print("caught"); }
    t
});
step("third", || now());
"#,
    );
    let out = b.runner_with(Arc::new(store)).start(StartRequest {
        runbook: rb,
        cluster: "c1".into(),
        params: Default::default(),
        run_id: Some("r1".into()),
    });
    let err = out.expect_err("the run stopped on the lapsed lease");
    assert!(
        matches!(&err, EngineError::Journal(JournalError::Locked { holder, .. }) if holder.contains("renewals stopped")),
        "{err}"
    );
    let entries = b.store.entries("r1");
    let text = format!("{entries:#?}");
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Entry::StepCompleted { name, .. } if name == "first")),
        "{text}"
    );
    // The step the refusal stopped stays started, as after a crash: the next worker runs it
    // again. Nothing failed, nothing was undone, the run did not finish.
    assert!(
        !entries.iter().any(|e| matches!(
            e,
            Entry::StepCompleted { name, .. } if name != "first"
        ) || matches!(
            e,
            Entry::StepFailed { .. }
                | Entry::AbortStarted { .. }
                | Entry::UndoStarted { .. }
                | Entry::RunFinished { .. }
        )),
        "{text}"
    );
    let events = b.events.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Print { message, .. } if message == "caught" || message == "undone")),
        "{events:?}"
    );
}
