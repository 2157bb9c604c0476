//! Durability of the engine: crash anywhere → resume → same result, each side effect once;
//! undo order; gates; non-determinism; strict mode; limits; bad input.

use std::sync::Arc;

use godwit_engine::Clock;
use godwit_engine::journal::{Entry, Outcome};
use godwit_engine::plan::Plan;
use godwit_engine::transcript::Event;
use godwit_engine::{EngineError, JournalStore, RunStatus};
use godwit_tests::harness::{Bench, CrashSink, until_crash};
use serde_json::json;

const FLOW: &str = r#"
//! name: toy-flow
//! version: 1.0.0
let a = step("create-a", #{ undo: |r| toy::revert(r.key) }, || toy::apply("a"));
let ready = gate("a-ready", #{ every: "10s", hold: 2, timeout: "5m" }, || {
    let ok = toy::next("ready", [false, true, true]);
    #{ pass: ok, why: if ok { "a is ready" } else { "a not ready yet" }, evidence: #{ ok: ok } }
});
let b = step("create-b", #{ undo: |r| { toy::revert("b2"); toy::revert("b1") } }, || {
    toy::apply("b1");
    toy::apply("b2")
});
step("finish", || toy::apply("c"));
#{ a: a.key, b: b.key, gate: ready.evidence.ok }
"#;

const ROLLBACK: &str = r#"
step("create-a", #{ undo: |r| toy::revert("a") }, || toy::apply("a"));
step("create-b", #{ undo: |r| toy::revert("b") }, || toy::apply("b"));
step("no-undo", || toy::apply("n"));
step("create-c", #{ undo: |r| toy::revert("c") }, || toy::apply("c"));
abort("promotion window closed");
"#;

/// Drive a run to its end, resuming after each injected crash. Returns the status and the
/// number of crashes.
fn run_with_crash_at(
    bench: &Bench,
    runbook: &std::path::Path,
    crash_at: usize,
) -> (RunStatus, usize) {
    let (runner, _) = bench.runner(vec![CrashSink::new(crash_at, |_| true)]);
    let mut crashes = 0;
    let mut outcome = until_crash(|| bench.start(&runner, runbook, "r1"));
    loop {
        match outcome {
            Some(Ok(report)) => return (report.status, crashes),
            Some(Err(EngineError::AlreadyFinished { .. })) => {
                // Crashed right after the run-finished record: the journal has the answer.
                let plan = Plan::from_records(&bench.store.read("r1").unwrap().records);
                let (o, detail) = plan.finished.unwrap();
                let status = match o {
                    Outcome::Succeeded => RunStatus::Succeeded { result: detail },
                    Outcome::RolledBack => RunStatus::RolledBack {
                        reason: detail.as_str().unwrap().into(),
                        report: None,
                        undone: vec![],
                    },
                };
                return (status, crashes);
            }
            Some(Err(e)) => panic!("crash at {crash_at}: resume failed: {e}"),
            None => {
                crashes += 1;
                let (runner, _) = bench.runner(vec![]);
                outcome = until_crash(|| runner.resume("r1", false));
            }
        }
    }
}

fn reference(source: &str) -> (RunStatus, Vec<(String, String)>, usize) {
    let bench = Bench::new();
    let rb = bench.write("flow.rhai", source);
    let (runner, collector) = bench.runner(vec![]);
    let report = bench.start(&runner, &rb, "r1").unwrap();
    (
        report.status,
        bench.world.effects(),
        collector.lines().len(),
    )
}

#[test]
fn crash_at_every_event_then_resume_gives_same_result_and_each_effect_once() {
    let (want, want_effects, events) = reference(FLOW);
    let RunStatus::Succeeded { result } = &want else {
        panic!("reference run failed: {want:?}")
    };
    assert_eq!(result, &json!({"a": "a", "b": "b2", "gate": true}));
    assert_eq!(want_effects.len(), 4);
    assert!(
        events > 15,
        "the flow should produce many crash points, got {events}"
    );
    for crash_at in 1..=events {
        let bench = Bench::new();
        let rb = bench.write("flow.rhai", FLOW);
        let (got, crashes) = run_with_crash_at(&bench, &rb, crash_at);
        assert_eq!(crashes, 1, "crash point {crash_at} must be reached");
        let RunStatus::Succeeded { result: got } = got else {
            panic!("crash {crash_at}: {got:?}")
        };
        assert_eq!(&got, result, "crash at event {crash_at}: different result");
        assert_eq!(
            bench.world.effects(),
            want_effects,
            "crash at event {crash_at}: effects differ"
        );
        for (key, n) in bench.world.calls() {
            assert!(
                n <= 2,
                "crash at event {crash_at}: {key} called {n} times (re-run at most once)"
            );
        }
        bench
            .store
            .read("r1")
            .expect("journal verifies after resume");
    }
}

#[test]
fn crash_at_every_event_during_rollback_undoes_each_step_once_in_reverse() {
    let (want, want_effects, events) = reference(ROLLBACK);
    let RunStatus::RolledBack { reason, undone, .. } = &want else {
        panic!("{want:?}")
    };
    assert_eq!(reason, "promotion window closed");
    assert_eq!(undone, &["create-c", "create-b", "create-a"]);
    let reverts: Vec<_> = want_effects
        .iter()
        .filter(|(op, _)| op == "revert")
        .map(|(_, k)| k.as_str())
        .collect();
    assert_eq!(
        reverts,
        ["c", "b", "a"],
        "undos run in reverse registration order"
    );
    for crash_at in 1..=events {
        let bench = Bench::new();
        let rb = bench.write("flow.rhai", ROLLBACK);
        let (got, _) = run_with_crash_at(&bench, &rb, crash_at);
        assert!(
            matches!(got, RunStatus::RolledBack { .. }),
            "crash {crash_at}: {got:?}"
        );
        assert_eq!(
            bench.world.effects(),
            want_effects,
            "crash at event {crash_at}"
        );
    }
}

#[test]
fn gate_holds_polls_through_the_clock_and_explains_why_closed() {
    let bench = Bench::new();
    let rb = bench.write(
        "g.rhai",
        r#"
        gate("caught-up", #{ every: "30s", hold: 3, timeout: "10m" }, || {
            let v = toy::next("lag", [9, 0, 0, 5, 0, 0, 0, 0]);
            #{ slot: #{ pass: v == 0, why: `slot lag ${v} MB`, evidence: #{ lag: v } },
               replica: #{ pass: true, why: "replica lag 0 s" } }
        })
    "#,
    );
    let (runner, collector) = bench.runner(vec![]);
    let r = bench.start(&runner, &rb, "g1").unwrap();
    let RunStatus::Succeeded { result } = r.status else {
        panic!()
    };
    assert_eq!(result["slot"]["evidence"]["lag"], 0);
    // Polls: 9 ✗, 0 ✓, 0 ✓, 5 ✗, 0 ✓, 0 ✓, 0 ✓ → passes on the 7th, six waits of 30 s.
    assert_eq!(bench.clock.now_ms() - godwit_tests::harness::T0, 6 * 30_000);
    let polls: Vec<_> = collector
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::GatePoll {
                poll, why, streak, ..
            } => Some((poll, why, streak)),
            _ => None,
        })
        .collect();
    assert_eq!(
        polls[0],
        (1, vec!["slot: slot lag 9 MB".to_string()], 0),
        "says why it is closed"
    );
    assert!(
        polls
            .iter()
            .any(|(p, w, _)| *p == 4 && w == &vec!["slot: slot lag 5 MB".to_string()])
    );
    assert!(
        collector
            .events()
            .iter()
            .any(|e| matches!(e, Event::GatePassed { polls: 7, .. }))
    );
}

#[test]
fn a_ramped_gate_polls_from_min_every_doubling_up_to_every() {
    let bench = Bench::new();
    let rb = bench.write(
        "g.rhai",
        r#"
        gate("ramped", #{ every: "1s", min_every: "100ms", timeout: "1m" }, || {
            let v = toy::next("lag", [1, 1, 1, 1, 1, 1, 0]);
            #{ pass: v == 0, why: `lag ${v}` }
        })
    "#,
    );
    let (runner, _) = bench.runner(vec![]);
    let r = bench.start(&runner, &rb, "ramp").unwrap();
    assert!(
        matches!(r.status, RunStatus::Succeeded { .. }),
        "{:?}",
        r.status
    );
    // Six waits: 100 + 200 + 400 + 800 ms, then capped at 1 s twice.
    assert_eq!(
        bench.clock.now_ms() - godwit_tests::harness::T0,
        100 + 200 + 400 + 800 + 1000 + 1000
    );

    let bad = bench.write(
        "bad.rhai",
        r#"gate("g", #{ every: "1s", min_every: "2s" }, || #{ pass: true, why: "" })"#,
    );
    let r = bench.start(&runner, &bad, "bad-ramp").unwrap();
    let RunStatus::RolledBack { reason, .. } = r.status else {
        panic!("{:?}", r.status)
    };
    assert!(
        reason.contains("'min_every' (2s) must be more than 0 and at most 'every' (1s)"),
        "{reason}"
    );
}

#[test]
fn gate_timeout_fails_with_the_reasons_and_replays_the_same() {
    let bench = Bench::new();
    let rb = bench.write("g.rhai", r#"
        let r = ();
        try {
            gate("never", #{ every: "1m", timeout: "5m" }, || #{ pass: false, why: "slot lag 64 MB" });
        } catch (e) { r = e }
        step("after", || r.message)
    "#);
    let (runner, _) = bench.runner(vec![]);
    let RunStatus::Succeeded { result } = bench.start(&runner, &rb, "g1").unwrap().status else {
        panic!()
    };
    let msg = result.as_str().unwrap();
    assert!(
        msg.contains("gate 'never' still closed after 5m (6 polls): slot lag 64 MB"),
        "{msg}"
    );
    // The journal holds the failure: a resume from before `after` replays it without polling.
    let n = bench.store.len("g1");
    let partial = bench.store.prefix("g1", n - 3); // drop step-started(after), completed, finished
    let (runner, c) = bench.runner_with(Arc::new(partial.clone()), vec![]);
    let RunStatus::Succeeded { result: again } = runner.resume("g1", false).unwrap().status else {
        panic!()
    };
    assert_eq!(again, result);
    assert!(
        c.events()
            .iter()
            .any(|e| matches!(e, Event::GateReplayed { .. }))
    );
    assert!(
        !c.events()
            .iter()
            .any(|e| matches!(e, Event::GatePoll { .. })),
        "replay must not poll"
    );
}

#[test]
fn primitive_errors_are_catchable_maps_and_replay_identically() {
    let bench = Bench::new();
    let rb = bench.write("e.rhai", r#"
        let e = ();
        try { step("conflict", || toy::fail("Conflict", "cluster exists")); } catch (err) { e = err }
        step("record", || #{ kind: e.kind, area: e.area, op: e.op, retryable: e.retryable, hint: e.hint })
    "#);
    let (runner, _) = bench.runner(vec![]);
    let RunStatus::Succeeded { result } = bench.start(&runner, &rb, "e1").unwrap().status else {
        panic!()
    };
    assert_eq!(
        result,
        json!({"kind": "Conflict", "area": "toy", "op": "fail", "retryable": false, "hint": "toy hint: do the thing"})
    );
    let entries = bench.store.entries("e1");
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Entry::StepFailed { name, .. } if name == "conflict"))
    );
    let partial = bench.store.prefix("e1", 4); // run-started, step-started, step-failed, step-started(record)
    let (runner, _) = bench.runner_with(Arc::new(partial), vec![]);
    let RunStatus::Succeeded { result: again } = runner.resume("e1", false).unwrap().status else {
        panic!()
    };
    assert_eq!(again, result);
}

#[test]
fn retryable_errors_are_retried_with_backoff_through_the_clock() {
    let bench = Bench::new();
    let rb = bench.write(
        "r.rhai",
        r#"step("flaky", #{ retry: #{ attempts: 3, backoff: "10s" } }, || toy::flaky(2))"#,
    );
    let (runner, c) = bench.runner(vec![]);
    let RunStatus::Succeeded { result } = bench.start(&runner, &rb, "r1").unwrap().status else {
        panic!()
    };
    assert_eq!(result, 3);
    let retries: Vec<_> = c
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StepRetrying { attempt, delay, .. } => Some((attempt, delay)),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [(1, "10s".to_string()), (2, "20s".to_string())]);
    assert_eq!(bench.clock.now_ms() - godwit_tests::harness::T0, 30_000);
}

#[test]
fn replay_divergence_names_both_sides() {
    let bench = Bench::new();
    let rb = bench.write(
        "d.rhai",
        r#"step("first", || toy::apply("1")); step("second", || toy::apply("2"));"#,
    );
    let (runner, _) = bench.runner(vec![]);
    bench.start(&runner, &rb, "d1").unwrap();
    let partial = bench.store.prefix("d1", 3); // started + first
    std::fs::write(
        &rb,
        r#"step("renamed", || toy::apply("1")); step("second", || toy::apply("2"));"#,
    )
    .unwrap();
    let (runner, _) = bench.runner_with(Arc::new(partial.clone()), vec![]);
    let err = runner.resume("d1", false).unwrap_err();
    assert!(matches!(err, EngineError::RunbookChanged { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("pinned sha256:") && msg.contains("now sha256:"),
        "{msg}"
    );
    let err = runner.resume("d1", true).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EngineError::NonDeterminism(_)), "{msg}");
    assert!(
        msg.contains("journal has step 'first' next, the runbook now runs step 'renamed'"),
        "{msg}"
    );
    assert!(msg.contains("d.rhai:1:1"), "{msg}");
    assert_eq!(err.exit_code(), godwit_engine::exit::REFUSED);
}

#[test]
fn world_access_outside_a_step_is_refused_with_position_and_fix() {
    let bench = Bench::new();
    let rb = bench.write("s.rhai", "let x = 1;\nlet y = toy::apply(\"x\");\n");
    let (runner, _) = bench.runner(vec![]);
    let r = bench.start(&runner, &rb, "s1").unwrap();
    let RunStatus::RolledBack {
        report: Some(rep), ..
    } = r.status
    else {
        panic!("{:?}", r.status)
    };
    let text = rep.render();
    assert!(
        text.contains("toy::apply touches the world and may only run inside a step"),
        "{text}"
    );
    assert!(text.contains("s.rhai:2:"), "{text}");
    assert!(
        text.contains("let y = toy::apply(\"x\");"),
        "quotes the line: {text}"
    );
    assert!(
        text.contains("hint: wrap it so its result is journaled"),
        "{text}"
    );
    assert!(
        bench.world.effects().is_empty(),
        "nothing touched the world"
    );
    // Pure functions are fine anywhere; so is reading back step results.
    let rb = bench.write("p.rhai", "let v = toy::pure(41); step(\"s\", || v)");
    let RunStatus::Succeeded { result } = bench.start(&runner, &rb, "p1").unwrap().status else {
        panic!()
    };
    assert_eq!(result, 42);
}

#[test]
fn syntax_error_reports_file_line_column_and_creates_no_run() {
    let bench = Bench::new();
    let rb = bench.write("bad.rhai", "step(\"a\", || 1);\nlet x = ;\n");
    let (runner, _) = bench.runner(vec![]);
    let err = bench.start(&runner, &rb, "b1").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EngineError::Parse(_)), "{msg}");
    assert!(msg.contains("bad.rhai:2:9"), "{msg}");
    assert!(msg.contains("runbook does not parse"), "{msg}");
    assert_eq!(err.exit_code(), godwit_engine::exit::INVALID_INPUT);
    assert!(bench.store.list().unwrap().is_empty(), "no run was created");
}

#[test]
fn syntax_error_in_an_imported_module_names_the_module() {
    let bench = Bench::new();
    bench.write("lib/util.rhai", "fn twice(x) { x * 2 }\nfn broken( { }\n");
    let rb = bench.write(
        "main.rhai",
        "import \"lib/util\" as util;\nstep(\"a\", || util::twice(2))\n",
    );
    let (runner, _) = bench.runner(vec![]);
    let msg = bench.start(&runner, &rb, "m1").unwrap_err().to_string();
    assert!(msg.contains("util.rhai:2:"), "{msg}");
    assert!(bench.store.list().unwrap().is_empty());
}

#[test]
fn modules_are_pinned_by_hash() {
    let bench = Bench::new();
    bench.write("lib/util.rhai", "fn twice(x) { x * 2 }\n");
    let rb = bench.write(
        "main.rhai",
        "import \"lib/util\" as util;\nstep(\"a\", || util::twice(2))\n",
    );
    let (runner, _) = bench.runner(vec![]);
    let RunStatus::Succeeded { result } = bench.start(&runner, &rb, "m1").unwrap().status else {
        panic!()
    };
    assert_eq!(result, 4);
    let Entry::RunStarted { runbook, .. } = &bench.store.entries("m1")[0] else {
        panic!()
    };
    assert_eq!(runbook.modules.len(), 1);
    assert_eq!(runbook.modules[0].import, "lib/util");
    let before = runbook.hash.clone();
    // Changing only the module changes the runbook hash.
    bench.write("lib/util.rhai", "fn twice(x) { x + x }\n");
    let rb2 = godwit_engine::run::check_runbook(&runner, &rb).unwrap();
    assert_ne!(rb2.info.hash, before);
}

#[test]
fn runaway_scripts_are_stopped_by_limits_and_the_journal_records_it() {
    let mut bench = Bench::new();
    bench.limits.max_operations = 200_000;
    let rb = bench.write("loop.rhai", "step(\"a\", #{ undo: |r| toy::revert(\"a\") }, || toy::apply(\"a\"));\nlet i = 0;\nloop { i += 1; }\n");
    let (runner, _) = bench.runner(vec![]);
    let r = bench.start(&runner, &rb, "l1").unwrap();
    let RunStatus::RolledBack { reason, .. } = &r.status else {
        panic!("{:?}", r.status)
    };
    assert!(reason.contains("operations limit (200000)"), "{reason}");
    assert!(bench.store.entries("l1").iter().any(
        |e| matches!(e, Entry::AbortStarted { reason, .. } if reason.contains("operations limit"))
    ));
    assert_eq!(
        bench.world.effects().last().unwrap(),
        &("revert".to_string(), "a".to_string())
    );

    let rb = bench.write("big.rhai", "let s = \"x\"; loop { s += s; }\n");
    let mut bench2 = Bench::new();
    bench2.limits.max_string_size = 1 << 16;
    let (runner2, _) = bench2.runner(vec![]);
    let rb2 = bench2.write("big.rhai", &std::fs::read_to_string(&rb).unwrap());
    let RunStatus::RolledBack { reason, .. } = bench2.start(&runner2, &rb2, "l2").unwrap().status
    else {
        panic!()
    };
    assert!(
        reason.contains("size limit") && reason.contains("65536"),
        "{reason}"
    );
}

#[test]
fn step_names_must_be_unique_and_kebab_case() {
    let bench = Bench::new();
    let (runner, _) = bench.runner(vec![]);
    let rb = bench.write("dup.rhai", "for i in 0..2 { step(\"probe\", || i) }");
    let RunStatus::RolledBack { reason, .. } = bench.start(&runner, &rb, "u1").unwrap().status
    else {
        panic!()
    };
    assert!(
        reason.contains("step name 'probe' is used twice"),
        "{reason}"
    );
    let rb = bench.write(
        "ok.rhai",
        "let s = 0; for i in 0..3 { s += step(\"probe-\" + i, || i) } s",
    );
    let RunStatus::Succeeded { result } = bench.start(&runner, &rb, "u2").unwrap().status else {
        panic!()
    };
    assert_eq!(result, 3);
    let rb = bench.write("case.rhai", "step(\"Create Replica\", || 1)");
    let RunStatus::RolledBack { reason, .. } = bench.start(&runner, &rb, "u3").unwrap().status
    else {
        panic!()
    };
    assert!(reason.contains("not kebab-case"), "{reason}");
}

#[test]
fn steps_cannot_nest() {
    let bench = Bench::new();
    let (runner, _) = bench.runner(vec![]);
    let rb = bench.write("n.rhai", "step(\"outer\", || step(\"inner\", || 1))");
    let RunStatus::RolledBack { reason, .. } = bench.start(&runner, &rb, "n1").unwrap().status
    else {
        panic!()
    };
    assert!(
        reason.contains("step 'inner' is inside step 'outer'"),
        "{reason}"
    );
}

#[test]
fn interrupt_stops_without_rollback_and_resume_continues() {
    let bench = Bench::new();
    let rb = bench.write(
        "i.rhai",
        r#"
        step("a", #{ undo: |r| toy::revert("a") }, || toy::apply("a"));
        step("stop", || toy::interrupt());
        gate("wait", #{ every: "1m" }, || #{ pass: true, why: "ok" });
        step("b", || toy::apply("b"));
        "done"
    "#,
    );
    let (runner, c) = bench.runner(vec![]);
    let r = bench.start(&runner, &rb, "i1").unwrap();
    assert!(matches!(r.status, RunStatus::Interrupted), "{:?}", r.status);
    assert!(
        c.events().iter().any(
            |e| matches!(e, Event::RunStopped { reason } if reason.contains("godwit resume i1"))
        )
    );
    assert_eq!(bench.world.effects().len(), 1, "no rollback on interrupt");
    let (runner, _) = bench.runner(vec![]);
    let RunStatus::Succeeded { result } = runner.resume("i1", false).unwrap().status else {
        panic!()
    };
    assert_eq!(result, "done");
    assert_eq!(bench.world.effects().len(), 2);
}

#[test]
fn a_second_driver_is_refused_and_finished_runs_are_not_resumed() {
    let bench = Bench::new();
    let rb = bench.write("a.rhai", "step(\"a\", || 1)");
    let (runner, _) = bench.runner(vec![]);
    bench.start(&runner, &rb, "a1").unwrap();
    let err = runner.resume("a1", false).unwrap_err();
    assert!(matches!(err, EngineError::AlreadyFinished { .. }), "{err}");
    let _held = bench.store.open("a1").unwrap();
    let err = runner.resume("a1", false).unwrap_err();
    assert!(
        err.to_string()
            .contains("being driven by another godwit process"),
        "{err}"
    );
    assert_eq!(err.exit_code(), godwit_engine::exit::LOCKED);
}

#[test]
fn failed_undo_stops_rollback_and_resume_retries_it() {
    let bench = Bench::new();
    let rb = bench.write("u.rhai", r#"
        step("a", #{ undo: |r| toy::revert("a") }, || toy::apply("a"));
        step("b", #{ undo: |r| { if toy::next("undo-b", [false, true]) { toy::revert("b") } else { toy::fail("Conflict", "still in use") } } }, || toy::apply("b"));
        abort("stop here");
    "#);
    let (runner, _) = bench.runner(vec![]);
    let r = bench.start(&runner, &rb, "u1").unwrap();
    let RunStatus::RollbackFailed { step, error, .. } = &r.status else {
        panic!("{:?}", r.status)
    };
    assert_eq!(step, "b");
    assert!(error.contains("still in use"), "{error}");
    assert_eq!(r.status.exit_code(), godwit_engine::exit::ROLLBACK_FAILED);
    let plan = Plan::from_records(&bench.store.read("u1").unwrap().records);
    assert_eq!(plan.status(), godwit_engine::plan::Status::RollingBack);
    // A new process (fresh toy sequence: the second answer is `true`) retries and finishes.
    let (runner, _) = bench.runner(vec![]);
    let r = runner.resume("u1", false).unwrap();
    // The new process's `toy::next` starts again at `false`: the undo fails once more…
    assert!(matches!(r.status, RunStatus::RollbackFailed { .. }));
    let r = {
        let (runner, _) = bench.runner(vec![]);
        runner.resume("u1", false).unwrap()
    };
    assert!(
        matches!(r.status, RunStatus::RollbackFailed { .. }),
        "deterministic toy keeps failing"
    );
}

#[test]
fn every_form_of_sleep_goes_through_the_run_clock() {
    // Rhai's own sleep(INT) would block for real seconds and ignore the virtual clock.
    let bench = Bench::new();
    let rb = bench.write(
        "s.rhai",
        "step(\"nap\", || { sleep(600); sleep(1.5); sleep(\"1h\"); now() })",
    );
    let (runner, _) = bench.runner(vec![]);
    let started = std::time::Instant::now();
    let RunStatus::Succeeded { result } = bench.start(&runner, &rb, "s1").unwrap().status else {
        panic!()
    };
    assert!(started.elapsed().as_secs() < 5, "slept for real");
    let t0 = godwit_tests::harness::T0 / 1000;
    assert_eq!(
        result,
        json!(t0 + 600 + 1 + 3600),
        "virtual time advanced by 600 s + 1.5 s + 1 h"
    );
    let rb = bench.write("t.rhai", "sleep(1);");
    let RunStatus::RolledBack { reason, .. } = bench.start(&runner, &rb, "s2").unwrap().status
    else {
        panic!()
    };
    assert!(
        reason.contains("core::sleep touches the world"),
        "strict mode applies: {reason}"
    );
}

#[test]
fn undo_closures_can_call_functions_of_imported_modules() {
    // Undos run after the script's evaluation ended; they still see the step's imports.
    let bench = Bench::new();
    bench.write("lib/revert.rhai", "fn it(key) { toy::revert(key) }\n");
    let rb = bench.write(
        "m.rhai",
        "import \"lib/revert\" as rv;\nstep(\"a\", #{ undo: |r| rv::it(r.key) }, || toy::apply(\"a\"));\nabort(\"test\");\n",
    );
    let (runner, _) = bench.runner(vec![]);
    let r = bench.start(&runner, &rb, "m1").unwrap();
    assert!(
        matches!(r.status, RunStatus::RolledBack { .. }),
        "{:?}",
        r.status
    );
    assert_eq!(
        bench.world.effects().last().unwrap(),
        &("revert".to_string(), "a".to_string())
    );
    // And after a crash: the resumed process rebuilds the undo with its imports.
    let partial = bench.store.prefix("m1", 3); // run-started, step-started, step-completed
    let (runner, _) = bench.runner_with(Arc::new(partial), vec![]);
    let r = runner.resume("m1", false).unwrap();
    assert!(
        matches!(r.status, RunStatus::RolledBack { .. }),
        "{:?}",
        r.status
    );
}
