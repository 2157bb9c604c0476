//! The `godwit` command end to end, as separate processes: exit codes, crash (process exit)
//! after every step and in the middle of every step then `resume`, tampering, torn lines,
//! locks, changed runbooks, limits, Ctrl-C.

use std::path::PathBuf;
use std::process::{Command, Output};

use godwit_tests::toy::ToyWorld;
use serde_json::Value;

const TOY: &str = env!("CARGO_BIN_EXE_godwit-toy");
const CRASH_EXIT: i32 = 86;

const FLOW: &str = r#"//! name: toy-flow
//! version: 2.1.0
let a = step("create-a", #{ undo: |r| toy::revert("a") }, || toy::apply("a"));
let g = gate("a-ready", #{ every: "10s", hold: 2, timeout: "5m" }, || {
    let ok = toy::next("ready", [false, true, true]);
    #{ pass: ok, why: if ok { "a ready" } else { "a not ready" } }
});
let b = step("create-b", #{ undo: |r| toy::revert("b") }, || { toy::apply("b1"); toy::apply("b2") });
step("finish", || toy::apply("c"));
#{ a: a.key, b: b.key }
"#;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn world(&self) -> ToyWorld {
        ToyWorld::new(self.path("world"))
    }
    fn cmd(&self, args: &[&str], crash: Option<&str>) -> Output {
        let mut c = Command::new(TOY);
        c.args(args)
            .current_dir(self.dir.path())
            .env("GODWIT_STATE_DIR", self.path("state"))
            .env("GODWIT_TOY_WORLD", self.path("world"))
            .env_remove("GODWIT_TOY_CRASH");
        if let Some(spec) = crash {
            c.env("GODWIT_TOY_CRASH", spec);
        }
        c.output().unwrap()
    }
    fn godwit(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.cmd(args, None);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
        )
    }
    /// The runs in the state directory (`.clusters`, the cluster locks, is not a run).
    fn run_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.path("state/runs"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn run_dirs(&self) -> usize {
        self.run_ids().len()
    }
    fn only_run(&self) -> String {
        let mut ids = self.run_ids();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids.pop().unwrap()
    }
    fn journal(&self) -> PathBuf {
        self.path(&format!("state/runs/{}/journal.jsonl", self.only_run()))
    }
    fn show_json(&self) -> Value {
        let (code, out, err) = self.godwit(&["show", "last", "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }
}

fn event_count(env: &Env, event: &str) -> usize {
    let text = std::fs::read_to_string(
        env.path(&format!("state/runs/{}/transcript.jsonl", env.only_run())),
    )
    .unwrap();
    text.lines()
        .filter(|l| l.contains(&format!("\"event\":\"{event}\"")))
        .count()
}

#[test]
fn run_show_runs_verify() {
    let env = Env::new();
    env.write("flow.rhai", FLOW);
    let (code, out, err) = env.godwit(&[
        "run",
        "flow.rhai",
        "--cluster",
        "orders-db",
        "--world",
        "toy",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("runbook toy-flow 2.1.0"), "{out}");
    assert!(out.contains("✓ step create-a"), "{out}");
    assert!(
        out.contains("gate a-ready poll 1: closed, 0/1 checks pass: a not ready"),
        "{out}"
    );
    assert!(out.contains("✓ gate a-ready passed after 3 polls"), "{out}");
    let (code, out, _) = env.godwit(&["runs"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("toy-flow 2.1.0") && out.contains("succeeded"),
        "{out}"
    );
    let (code, out, _) = env.godwit(&["show", "last"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("✓ step 'create-b'") && out.contains("\"b2\""),
        "{out}"
    );
    let (code, out, _) = env.godwit(&["verify", &env.only_run()[..12]]);
    assert_eq!(code, 0, "unique prefix resolves");
    assert!(
        out.contains("journal intact") && out.contains("hash chain verified"),
        "{out}"
    );
    let (code, out, _) = env.godwit(&[
        "run",
        "flow.rhai",
        "--cluster",
        "orders-db",
        "--world",
        "toy",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).expect("--json prints one JSON object");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["result"]["b"], "b2");
}

fn crash_then_resume(crash: &str) -> (Env, Value) {
    let env = Env::new();
    env.write("flow.rhai", FLOW);
    let o = env.cmd(
        &["run", "flow.rhai", "--cluster", "c1", "--world", "toy"],
        Some(crash),
    );
    assert_eq!(
        o.status.code(),
        Some(CRASH_EXIT),
        "crash point {crash} must be reached: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let (code, out, err) = env.godwit(&["resume", "last"]);
    if code == 8 && err.contains("already finished") {
        return (env, Value::Null);
    }
    assert_eq!(code, 0, "resume after {crash}: {out}{err}");
    let result = env.show_json()["finished"][1].clone();
    (env, result)
}

/// An uncrashed run of FLOW: its environment, final result and world effects.
fn reference_run() -> (Env, Value, Vec<(String, String)>) {
    let env = Env::new();
    env.write("flow.rhai", FLOW);
    let (code, out, err) = env.godwit(&["run", "flow.rhai", "--cluster", "c1", "--world", "toy"]);
    assert_eq!(code, 0, "{out}{err}");
    let result = env.show_json()["finished"][1].clone();
    let effects = env.world().effects();
    (env, result, effects)
}

#[test]
fn process_exit_after_every_step_then_resume_applies_each_effect_once() {
    let (reference, want, want_effects) = reference_run();
    let steps = event_count(&reference, "step-completed") + event_count(&reference, "gate-passed");
    assert_eq!(steps, 4);
    for n in 1..=event_count(&reference, "step-completed") {
        let (env, got) = crash_then_resume(&format!("step-completed:{n}"));
        assert_eq!(got, want, "after step {n}");
        assert_eq!(
            env.world().effects(),
            want_effects,
            "after step {n}: each effect once"
        );
    }
    let (env, got) = crash_then_resume("gate-passed:1");
    assert_eq!(got, want);
    assert_eq!(env.world().effects(), want_effects);
}

#[test]
fn process_exit_in_the_middle_of_every_step_then_resume_applies_each_effect_once() {
    let (reference, want, want_effects) = reference_run();
    // Every primitive call is a point inside a step or gate, after its effect, before the
    // step's result is journaled.
    let calls = event_count(&reference, "primitive");
    assert!(calls >= 7, "{calls}");
    for n in 1..=calls {
        let (env, got) = crash_then_resume(&format!("primitive:{n}"));
        assert_eq!(got, want, "crash inside a step at primitive call {n}");
        assert_eq!(
            env.world().effects(),
            want_effects,
            "primitive call {n}: effects applied once"
        );
        let reruns = event_count(&env, "step-rerun");
        assert!(reruns <= 1, "at most the interrupted step re-runs");
    }
}

#[test]
fn process_exit_during_rollback_then_resume_finishes_it() {
    let rb = "step(\"a\", #{ undo: |r| toy::revert(\"a\") }, || toy::apply(\"a\"));\n\
              step(\"b\", #{ undo: |r| toy::revert(\"b\") }, || toy::apply(\"b\"));\n\
              abort(\"operator said no\");\n";
    for n in 1..=2 {
        let env = Env::new();
        env.write("rb.rhai", rb);
        let o = env.cmd(
            &["run", "rb.rhai", "--cluster", "c1", "--world", "toy"],
            Some(&format!("undo-completed:{n}")),
        );
        assert_eq!(o.status.code(), Some(CRASH_EXIT));
        let (code, out, err) = env.godwit(&["resume", "last"]);
        assert_eq!(code, 3, "rolled back: {out}{err}");
        assert!(out.contains("↩ b was already undone"), "{out}");
        if n == 1 {
            assert!(out.contains("↩ undid a"), "the remaining undo runs: {out}");
        }
        let reverts: Vec<String> = env
            .world()
            .effects()
            .into_iter()
            .filter(|(op, _)| op == "revert")
            .map(|(_, k)| k)
            .collect();
        assert_eq!(reverts, ["b", "a"], "each undo applied once, in reverse");
        assert_eq!(env.show_json()["status"], "rolled-back");
    }
}

#[test]
fn abort_rolls_back_in_reverse_with_exit_3() {
    let env = Env::new();
    env.write("rb.rhai", "step(\"a\", #{ undo: |r| toy::revert(\"a\") }, || toy::apply(\"a\"));\nstep(\"b\", #{ undo: |r| toy::revert(\"b\") }, || toy::apply(\"b\"));\nabort(\"window closed\");\n");
    let (code, out, err) = env.godwit(&["run", "rb.rhai", "--cluster", "c1", "--world", "toy"]);
    assert_eq!(code, 3, "{out}{err}");
    let undo_b = out.find("↩ undid b").expect("undid b");
    let undo_a = out.find("↩ undid a").expect("undid a");
    assert!(undo_b < undo_a, "reverse order: {out}");
    assert!(
        err.contains("abort(\"window closed\")") && err.contains("rb.rhai:3:1"),
        "{err}"
    );
}

#[test]
fn bad_input_changes_nothing() {
    let env = Env::new();
    env.write(
        "bad.rhai",
        "step(\"a\", || toy::apply(\"a\"));\nlet x = (;\n",
    );
    let (code, _, err) = env.godwit(&["run", "bad.rhai", "--cluster", "c1", "--world", "toy"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.rhai:2:") && err.contains("runbook does not parse"),
        "{err}"
    );
    assert_eq!(env.run_dirs(), 0, "no run directory left behind");
    assert!(env.world().effects().is_empty());
    let (code, _, err) = env.godwit(&["run", "missing", "--cluster", "c1"]);
    assert_eq!(code, 2);
    assert!(err.contains("runbook 'missing' not found"), "{err}");
    let (code, _, err) = env.godwit(&["run", "bad.rhai", "--cluster", "c1", "--world", "moon"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown world 'moon'") && err.contains("pure"),
        "{err}"
    );
    let (code, _, err) = env.godwit(&["run", "bad.rhai", "--cluster", "c1", "--set", "novalue"]);
    assert_eq!(code, 2);
    assert!(err.contains("expected KEY=VALUE"), "{err}");
    let (code, _, err) = env.godwit(&["resume", "nothing-here"]);
    assert_eq!(code, 2);
    assert!(err.contains("no run 'nothing-here'"), "{err}");
    let (code, _, err) = env.godwit(&["frobnicate"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(env.run_dirs(), 0);
}

#[test]
fn world_call_outside_a_step_quotes_the_line_and_rolls_back() {
    let env = Env::new();
    env.write("s.rhai", "step(\"a\", #{ undo: |r| toy::revert(\"a\") }, || toy::apply(\"a\"));\nlet b = toy::apply(\"b\");\n");
    let (code, _, err) = env.godwit(&["run", "s.rhai", "--cluster", "c1", "--world", "toy"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("toy::apply touches the world and may only run inside a step"),
        "{err}"
    );
    assert!(
        err.contains("s.rhai:2:") && err.contains("let b = toy::apply(\"b\");"),
        "{err}"
    );
    assert!(err.contains("hint: wrap it"), "{err}");
    assert_eq!(
        env.world().effects().len(),
        2,
        "a applied, then reverted; b never applied"
    );
}

#[test]
fn runaway_script_is_stopped_by_the_operations_limit_and_journaled() {
    let env = Env::new();
    env.write(
        "loop.rhai",
        "step(\"a\", || 1);\nlet i = 0;\nwhile true { i += 1; }\n",
    );
    let (code, _, err) = env.godwit(&[
        "run",
        "loop.rhai",
        "--cluster",
        "c1",
        "--world",
        "toy",
        "--max-operations",
        "100000",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("operations limit (100000)") && err.contains("--max-operations"),
        "{err}"
    );
    let plan = env.show_json();
    assert!(
        plan["abort"].as_str().unwrap().contains("operations limit"),
        "{plan}"
    );
}

#[test]
fn max_operations_zero_is_refused_not_unlimited() {
    // Rhai reads a limit of 0 as "no limit": `--max-operations 0` ran `loop {}` forever.
    let env = Env::new();
    env.write("loop.rhai", "loop { }\n");
    let args = ["run", "loop.rhai", "--cluster", "c1", "--world", "toy"];
    let (code, _, err) = env.godwit(&[&args[..], &["--max-operations", "0"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--max-operations"), "{err}");
    assert_eq!(env.run_dirs(), 0, "nothing started");
}

#[test]
fn edited_or_truncated_journal_is_refused_torn_line_is_repaired() {
    let env = Env::new();
    env.write("flow.rhai", FLOW);
    let o = env.cmd(
        &["run", "flow.rhai", "--cluster", "c1", "--world", "toy"],
        Some("step-completed:2"),
    );
    assert_eq!(o.status.code(), Some(CRASH_EXIT));
    let journal = env.journal();
    let original = std::fs::read_to_string(&journal).unwrap();

    // A torn last line (crash mid-write) is recognised, reported and dropped.
    std::fs::write(&journal, format!("{original}{{\"seq\":9,\"prev\":\"ab")).unwrap();
    let (code, out, _) = env.godwit(&["verify", "last"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("torn"), "{out}");

    // An edited record is tampering.
    std::fs::write(
        &journal,
        original.replacen("\"create-a\"", "\"create-x\"", 1),
    )
    .unwrap();
    let (code, _, err) = env.godwit(&["verify", "last"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("damaged at record") && err.contains("does not match its hash"),
        "{err}"
    );
    let (code, _, err) = env.godwit(&["resume", "last"]);
    assert_eq!(code, 5, "resume refuses too: {err}");

    // Whole records removed from the end: caught through the transcript.
    let kept: String = original.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&journal, kept).unwrap();
    let (code, _, err) = env.godwit(&["verify", "last"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("truncated"), "{err}");

    // Restored: resume finishes.
    std::fs::write(&journal, format!("{original}{{\"seq\":9,\"prev\":\"ab")).unwrap();
    let (code, out, err) = env.godwit(&["resume", "last"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dropped a torn last line"), "{out}");
}

#[test]
fn a_locked_run_is_refused_with_the_holder() {
    let env = Env::new();
    env.write("flow.rhai", FLOW);
    let o = env.cmd(
        &["run", "flow.rhai", "--cluster", "c1", "--world", "toy"],
        Some("step-completed:1"),
    );
    assert_eq!(o.status.code(), Some(CRASH_EXIT));
    let lock = env.path(&format!("state/runs/{}/lock", env.only_run()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock)
        .unwrap();
    f.try_lock().unwrap();
    std::fs::write(&lock, "pid 4242 on testhost").unwrap();
    let (code, _, err) = env.godwit(&["resume", "last"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("being driven by another godwit process (pid 4242 on testhost)"),
        "{err}"
    );
    let (_, out, _) = env.godwit(&["runs"]);
    assert!(out.contains("running (pid 4242"), "{out}");
    drop(f);
    assert_eq!(env.godwit(&["resume", "last"]).0, 0);
}

#[test]
fn resume_under_a_changed_runbook_is_refused_unless_forced() {
    let env = Env::new();
    let rb = env.write("flow.rhai", FLOW);
    let o = env.cmd(
        &["run", "flow.rhai", "--cluster", "c1", "--world", "toy"],
        Some("step-completed:1"),
    );
    assert_eq!(o.status.code(), Some(CRASH_EXIT));
    std::fs::write(&rb, FLOW.replace("toy::apply(\"c\")", "toy::apply(\"c2\")")).unwrap();
    let (code, _, err) = env.godwit(&["resume", "last"]);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("runbook changed since the run started (pinned sha256:")
            && err.contains("now sha256:"),
        "{err}"
    );
    assert!(err.contains("--force-runbook-change"), "{err}");
    let (code, out, err) = env.godwit(&["resume", "last", "--force-runbook-change"]);
    assert_eq!(
        code, 0,
        "compatible change replays step by step: {out}{err}"
    );
    assert!(out.contains("FORCED onto changed runbook"), "{out}");
    assert!(env.world().effects().iter().any(|(_, k)| k == "c2"));
}

#[test]
fn ctrl_c_interrupts_a_waiting_gate_and_resume_continues() {
    let env = Env::new();
    env.write("wait.rhai", "let t0 = step(\"start\", || now());\ngate(\"later\", #{ every: \"1s\", timeout: \"1m\" }, || #{ pass: now() - t0 >= 3, why: \"waiting\" });\n\"done\"\n");
    let child = Command::new(TOY)
        .args(["run", "wait.rhai", "--cluster", "c1", "--world", "pure"])
        .current_dir(env.dir.path())
        .env("GODWIT_STATE_DIR", env.path("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the gate is polling (the journal has its gate-started record), bounded.
    let started = std::time::Instant::now();
    loop {
        let has_gate = env
            .run_ids()
            .first()
            .and_then(|id| {
                std::fs::read_to_string(env.path(&format!("state/runs/{id}/journal.jsonl"))).ok()
            })
            .is_some_and(|j| j.contains("gate-started"));
        if has_gate {
            break;
        }
        assert!(started.elapsed().as_secs() < 20, "gate never started");
        // Waiting for another process, not inside a run: no run clock applies here.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("godwit resume"));
    let (code, out, err) = env.godwit(&["resume", "last"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("↺ step start (from journal)"), "{out}");
}

#[test]
fn help_lists_exit_codes_and_worlds() {
    let env = Env::new();
    let (code, out, _) = env.godwit(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes: 0 succeeded"), "{out}");
    let (code, out, _) = env.godwit(&["worlds"]);
    assert_eq!(code, 0);
    assert!(out.contains("pure") && out.contains("toy"), "{out}");
}

#[test]
fn config_file_per_cluster_then_set_overrides() {
    let env = Env::new();
    env.write("p.rhai", "step(\"params\", || PARAMS)");
    env.write("fleet.toml", "window = \"12h\"\nmax_lag = 5\nnote = \"all\"\n[clusters.orders-db]\nmax_lag = 20\n[clusters.other-db]\nmax_lag = 1\n");
    let (code, out, err) = env.godwit(&[
        "run",
        "p.rhai",
        "--cluster",
        "orders-db",
        "--world",
        "toy",
        "--config",
        "fleet.toml",
        "--set",
        "note=mine",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["result"],
        serde_json::json!({"window": "12h", "max_lag": 20, "note": "mine"})
    );
    env.write("bad.toml", "[vpc]\nid = 1\n");
    let (code, _, err) = env.godwit(&[
        "run",
        "p.rhai",
        "--cluster",
        "orders-db",
        "--world",
        "toy",
        "--config",
        "bad.toml",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`vpc` is a table") && err.contains("[clusters.<id>]"),
        "{err}"
    );
    env.write("broken.toml", "x = [1\n");
    let (code, _, err) = env.godwit(&[
        "run",
        "p.rhai",
        "--cluster",
        "orders-db",
        "--world",
        "toy",
        "--config",
        "broken.toml",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("broken.toml") && err.contains("line 1"),
        "{err}"
    );
    assert_eq!(env.run_dirs(), 1, "bad config files start nothing");
}

#[test]
fn a_simulated_migration_killed_mid_run_resumes_in_the_same_world() {
    // The standard runbook in the simulator, the process killed after a step; `resume` in a new
    // process must continue in the world the first one left (kept in <state>/worlds/RUN.json),
    // not in a fresh one, and end like an uninterrupted run.
    let runbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let rb = runbook.to_str().unwrap();
    let reference = Env::new();
    let (code, out, err) = reference.godwit(&[
        "run",
        rb,
        "--cluster",
        "orders-db",
        "--world",
        "sim:busy-source",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let want = reference.show_json()["finished"][1].clone();
    for n in [3, 9, 14] {
        let env = Env::new();
        let o = env.cmd(
            &[
                "run",
                rb,
                "--cluster",
                "orders-db",
                "--world",
                "sim:busy-source",
            ],
            Some(&format!("step-completed:{n}")),
        );
        assert_eq!(
            o.status.code(),
            Some(CRASH_EXIT),
            "crash after step {n}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let world_file = env.path(&format!("state/worlds/{}.json", env.only_run()));
        assert!(world_file.exists(), "the world is kept beside the runs");
        let (code, out, err) = env.godwit(&["resume", "last"]);
        assert_eq!(code, 0, "resume after step {n}: {out}{err}");
        assert_eq!(env.show_json()["finished"][1], want, "crash after step {n}");
        assert!(!out.contains("simulation invariant"), "{out}");
    }
    // Bad input leaves neither a run nor a world behind.
    let env = Env::new();
    env.write("bad.rhai", "let x = ;");
    assert_eq!(
        env.godwit(&[
            "run",
            "bad.rhai",
            "--cluster",
            "orders-db",
            "--world",
            "sim"
        ])
        .0,
        2
    );
    assert!(!env.path("state/worlds").exists() && env.run_dirs() == 0);
}

#[test]
fn dal_serve_runs_until_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    let mut child = Command::new(TOY)
        .args([
            "dal",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        ])
        .env("GODWIT_STATE_DIR", env.path("state"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    // Kept open until the process ends: it prints more lines after the first.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    stderr.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("godwit xDS control plane on 127.0.0.1:"),
        "{first}"
    );
    let addr = first.split_whitespace().nth(5).unwrap().to_string();
    assert!(
        std::net::TcpStream::connect(&addr).is_ok(),
        "serving on {addr}"
    );
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "Ctrl-C stops it cleanly"
    );
    assert!(
        env.path("state/dal").is_dir(),
        "state lives under the state dir"
    );
}

#[test]
fn dal_serve_persists_the_expected_nodes_and_refuses_a_malformed_set() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    let serve = [
        "dal",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
    ];
    let (code, _, err) = env.godwit(&[&serve[..], &["--expect-nodes", "orders-db"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--expect-nodes") && err.contains("ROUTE=NODE,NODE"),
        "{err}"
    );
    let mut child = Command::new(TOY)
        .args(serve)
        .args(["--expect-nodes", "orders-db=envoy-b,envoy-a"])
        .env("GODWIT_STATE_DIR", env.path("state"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    stderr.read_line(&mut first).unwrap();
    assert!(first.starts_with("godwit xDS control plane on"), "{first}");
    // Persisted at start, so a restart without the flag keeps the set.
    let state: Value =
        serde_json::from_slice(&std::fs::read(env.path("state/dal/state.json")).unwrap()).unwrap();
    assert_eq!(
        state["expected_nodes"],
        serde_json::json!({ "orders-db": ["envoy-a", "envoy-b"] })
    );
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn an_unsafe_runbook_fails_the_world_audit_even_when_it_succeeds() {
    // Promotes without fencing the source, then only waits: no later world call reports the
    // broken invariant, so the run itself succeeds; the world's audit must still fail it.
    let env = Env::new();
    env.write(
        "unsafe.rhai",
        r#"
        step("replica", || {
            rds::create_replica_cluster("orders-db-aurora", "orders-db", #{ engine_version: "15.4" });
            rds::create_cluster_instance("orders-db-aurora-1", "orders-db-aurora", #{ instance_class: "db.r6g.large" });
            rds::wait_until_cluster_available("orders-db-aurora", #{ timeout: "12h" });
        });
        step("promote-unfenced", || { rds::promote_cluster("orders-db-aurora"); sleep("1h"); });
        "#,
    );
    let (code, out, err) = env.godwit(&[
        "run",
        "unsafe.rhai",
        "--cluster",
        "orders-db",
        "--world",
        "sim:busy-source",
    ]);
    assert!(
        out.contains("■ succeeded"),
        "the run itself does not notice: {out}{err}"
    );
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains("simulation invariant") && err.contains("the runbook is unsafe"),
        "{err}"
    );
}

#[test]
fn a_bad_aws_world_setting_is_named_before_anything_runs() {
    let env = Env::new();
    env.write("ok.rhai", "step(\"a\", || 1);\n");
    env.write(
        "fleet.toml",
        "max_replica_lag_p99 = 5\n[aws]\nregion = \"eu-west-1\"\n\n[clusters.c1.aws]\nregoin = \"us-east-2\"\n",
    );
    let (code, _, err) = env.godwit(&[
        "run",
        "ok.rhai",
        "--cluster",
        "c1",
        "--world",
        "aws",
        "--config",
        "fleet.toml",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[clusters.c1.aws]") && err.contains("regoin") && err.contains("region"),
        "names the table, the key and the accepted keys: {err}"
    );
    env.write(
        "fleet.toml",
        "[aws]\nregion = \"eu-west-1\"\nendpoint_url = \"localhost:5000\"\n",
    );
    let (code, _, err) = env.godwit(&[
        "run",
        "ok.rhai",
        "--cluster",
        "c1",
        "--world",
        "aws",
        "--config",
        "fleet.toml",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("endpoint_url") && err.contains("https://"),
        "{err}"
    );
    assert_eq!(env.run_dirs(), 0, "nothing written");
}

/// Issue 18: a parameter that does not fit the runbook's schema is refused before anything
/// starts — exit 2, the parameter named with what was given and the fix, no run directory —
/// where a typo in `fence_validation` used to get as far as the source's reboot.
#[test]
fn a_bad_parameter_is_exit_2_with_the_fix_and_leaves_no_run() {
    let env = Env::new();
    let runbook = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let runbook = runbook.to_str().unwrap();
    for (set, want) in [
        (
            "fence_validation=partial",
            "fence_validation = \"partial\": not one of \"changes\", \"full\", \"off\"",
        ),
        (
            "validaton_window=2h",
            "validaton_window: not a parameter of this runbook; did you mean validation_window?",
        ),
        (
            "validation_window=90",
            "validation_window = 90: a duration needs a unit (ms, s, m, h, d); use e.g. --set validation_window=90s",
        ),
        (
            "target_cluster=orders-db",
            "target_cluster = \"orders-db\" is the source itself",
        ),
        (
            // Fewer one-minute datapoints than the keep-up verdict needs: it could never pass.
            "validation_window=3m",
            "validation_window = \"3m\" holds fewer than 5 datapoints of metric_period = 60 s",
        ),
    ] {
        let (code, out, err) = env.godwit(&[
            "run",
            runbook,
            "--cluster",
            "orders-db",
            "--world",
            "sim:busy-source",
            "--set",
            set,
        ]);
        assert_eq!(code, 2, "--set {set}: {out}{err}");
        assert!(
            err.contains(want) && err.contains("nothing was started"),
            "--set {set}: {err}"
        );
        assert_eq!(env.run_dirs(), 0, "--set {set}: a run was created");
    }
}

/// Issue 24, `godwit clone RUN` in the simulator: the migration's Aurora cluster cloned for its
/// team (a run of its own, on the clone's id), its endpoint printed, deleted when its time is
/// up; bad input refused before anything starts (exit 2), a clone run is not a migration.
#[test]
fn godwit_clone_gives_the_team_a_writable_clone_and_deletes_it_in_time() {
    let runbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let env = Env::new();
    let (code, out, err) = env.godwit(&[
        "run",
        runbook.to_str().unwrap(),
        "--cluster",
        "orders-db",
        "--world",
        "sim:busy-source",
        "--set",
        "validation_window=1h",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let before = env.run_ids();
    for (args, want) in [
        (
            vec!["clone", "last", "--for", "30d"],
            "keep_for = \"30d\": above the maximum 7d",
        ),
        (vec!["clone", "nosuch"], "no run 'nosuch'"),
    ] {
        let (code, out, err) = env.godwit(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(env.run_ids(), before, "{args:?} started a run");
    }
    let (code, out, err) = env.godwit(&["clone", "last", "--for", "1h"]);
    assert_eq!(code, 0, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains("clone orders-db-aurora-clone of orders-db-aurora is ready for its team")
            && text.contains("IAM sign-in")
            && text.contains("\"deleted\":true"),
        "{text}"
    );
    let clone_run = env
        .run_ids()
        .into_iter()
        .find(|id| !before.contains(id))
        .unwrap();
    assert!(
        clone_run.ends_with("-orders-db-aurora-clone"),
        "{clone_run}"
    );
    let (code, _, err) = env.godwit(&["clone", &clone_run]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is itself a clone"), "{err}");
    // The migrated cluster itself as the clone's id: refused before anything starts.
    let (code, out, err) = env.godwit(&["clone", "last", "--id", "orders-db-aurora"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("is the clone itself"), "{err}");
    // The name of a migration's own clone (owner_clone), which that run deletes on a rollback.
    let (code, out, err) = env.godwit(&["clone", "last", "--id", "orders-db-aurora-owner-clone"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("ends in -owner-clone"), "{err}");
}

/// `godwit rollback RUN` in the simulator, from the command line: `--check` changes nothing,
/// the rollback continues the cutover's world and succeeds, a second one finds it rolled back
/// already (exit 3), a rollback run is not a cutover to roll back (exit 2), and a cutover
/// without a rollback window is refused naming why, starting nothing (exit 2).
#[test]
fn godwit_rollback_rolls_a_simulated_cutover_back_once() {
    let runbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let rb = runbook.to_str().unwrap();
    let env = Env::new();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            rb,
            "--cluster",
            "orders-db",
            "--world",
            "sim:busy-source",
        ];
        args.extend_from_slice(extra);
        env.godwit(&args)
    };
    let (code, out, err) = run(&[]);
    assert_eq!(code, 0, "{out}{err}");
    let cutover = env.run_ids();
    let (code, out, err) = env.godwit(&["rollback", "last", "--check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("\"checked\":true") || err.contains("applying"),
        "{out}{err}"
    );
    let (code, out, err) = env.godwit(&["rollback", "last"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("rolled back to orders-db") || out.contains("rolled back to orders-db"),
        "{out}{err}"
    );
    let (code, out, err) = env.godwit(&["rollback", "last"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("rolled back already"),
        "{out}{err}"
    );
    let rollback_run = env
        .run_ids()
        .into_iter()
        .find(|id| !cutover.contains(id))
        .unwrap();
    let (code, _, err) = env.godwit(&["rollback", &rollback_run]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is itself a rollback"), "{err}");

    let other = Env::new();
    let (code, out, err) = other.godwit(&[
        "run",
        rb,
        "--cluster",
        "orders-db",
        "--world",
        "sim:busy-source",
        "--set",
        "reverse_replication=off",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let before = other.run_dirs();
    let (code, _, err) = other.godwit(&["rollback", "last"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no rollback window") && err.contains("reverse_replication=off"),
        "{err}"
    );
    assert_eq!(other.run_dirs(), before, "nothing was started");
}
