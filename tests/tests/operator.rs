//! Issue 18, operator safety: the `godwit` command driven as separate processes, as a user
//! would — interrupts at every kind of point, validation before anything exists, one run per
//! cluster, deliberate abort and approval, `resume --set`, and the conventions (`-o json`
//! everywhere, broken pipes, no state directory needed to look around).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOY: &str = env!("CARGO_BIN_EXE_godwit-toy");

fn standard_runbook() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runbooks/rds-to-aurora.rhai")
        .to_str()
        .unwrap()
        .to_string()
}

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
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(TOY);
        c.args(args)
            .current_dir(self.dir.path())
            .env("GODWIT_STATE_DIR", self.path("state"))
            .env("GODWIT_TOY_WORLD", self.path("world"))
            .env("USER", "tester")
            .env_remove("GODWIT_TOY_CRASH")
            .env_remove("GODWIT_TOY_SLOW_START");
        c
    }
    fn godwit(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.command(args).output().unwrap();
        out(o)
    }
    fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
    /// Run ids in the state directory (`.clusters` holds the cluster locks, not a run).
    fn run_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.path("state/runs"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn journal(&self, id: &str) -> String {
        std::fs::read_to_string(self.path(&format!("state/runs/{id}/journal.jsonl")))
            .unwrap_or_default()
    }
    fn transcript(&self, id: &str) -> String {
        std::fs::read_to_string(self.path(&format!("state/runs/{id}/transcript.jsonl")))
            .unwrap_or_default()
    }
    /// Wait (bounded) until the only run's journal contains `needle`; its id.
    fn wait_for_journal(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(id) = self.run_ids().first()
                && self.journal(id).contains(needle)
            {
                return id.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the journal never had {needle}"
            );
            pause(20);
        }
    }
}

fn out(o: Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// Waiting for another process, not inside a run: no run clock applies here.
fn pause(ms: u64) {
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(Duration::from_millis(ms));
}

fn signal(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

fn entries(journal: &str) -> Vec<Value> {
    journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["entry"].clone())
        .collect()
}

// ---- interrupts --------------------------------------------------------------------------

/// One step (with an undo), a wait for an approval, a gate, then an abort whose undo takes a
/// while: every kind of point an interrupt can land on, on the wall clock (world `pure`).
const POINTS: &str = r#"
step("a", #{ undo: |r| { sleep("700ms"); "undone" } }, || { sleep("700ms"); "a" });
step("approve", || wait_until_approved("go", #{ timeout: "1m" }));
gate("g", #{ every: "150ms", hold: 5, timeout: "1m" }, || #{ pass: true, why: "ok" });
abort("planned");
"#;

/// Issue 18: SIGINT or SIGTERM at start-up, inside a step, during a wait, between gate polls
/// or during an undo stops the run at the next safe point: exit 7, nothing journaled that
/// implies a failure (no step or gate failure, no abort but the runbook's own), and `resume`
/// continues to the runbook's own end, each undo completed once. Before, Ctrl-C inside a wait
/// failed the step and rolled the run back, SIGTERM killed the process (143), and Ctrl-C at
/// start-up said the runbook does not parse.
#[test]
fn an_interrupt_at_every_kind_of_point_stops_resumable_and_resume_finishes() {
    for (point, sig) in [
        ("start-up", "-INT"),
        ("start-up", "-TERM"),
        ("step", "-INT"),
        ("wait", "-TERM"),
        ("gate", "-INT"),
        ("undo", "-TERM"),
    ] {
        let env = Env::new();
        env.write("points.rhai", POINTS);
        if point == "start-up" {
            // The toy world takes 1.5 s to build: the signal lands in the middle of start-up.
            let child = env.spawn(
                &["run", "points.rhai", "--cluster", "c1", "--world", "toy"],
                &[("GODWIT_TOY_SLOW_START", "1500")],
            );
            pause(600);
            signal(&child, sig);
            let (code, _, err) = out(child.wait_with_output().unwrap());
            assert_eq!(code, 7, "{point} {sig}: {err}");
            assert!(err.contains("nothing was created"), "{point}: {err}");
            assert!(env.run_ids().is_empty(), "{point}: no run may exist");
            assert!(
                !env.path("state/worlds").exists()
                    || std::fs::read_dir(env.path("state/worlds")).unwrap().count() == 0,
                "{point}: the world's files are gone too"
            );
            continue;
        }
        let child = env.spawn(
            &["run", "points.rhai", "--cluster", "c1", "--world", "pure"],
            &[],
        );
        let needle = match point {
            "step" => r#""type":"step-started","name":"a""#,
            "wait" => r#""type":"step-started","name":"approve""#,
            "gate" => r#""type":"gate-started""#,
            _ => r#""type":"undo-started""#,
        };
        let id = env.wait_for_journal(if point == "gate" || point == "undo" {
            r#""type":"step-started","name":"approve""#
        } else {
            needle
        });
        if point == "gate" || point == "undo" {
            let (code, _, err) = env.godwit(&["approve", &id, "--name", "go"]);
            assert_eq!(code, 0, "{err}");
            env.wait_for_journal(needle);
        }
        pause(200);
        signal(&child, sig);
        let (code, _, err) = out(child.wait_with_output().unwrap());
        assert_eq!(code, 7, "{point} {sig}: {err}");
        assert!(
            err.contains(&format!("godwit resume {id}")),
            "{point}: {err}"
        );
        let journal = entries(&env.journal(&id));
        for e in &journal {
            let t = e["type"].as_str().unwrap();
            assert!(
                t != "step-failed" && t != "gate-failed" && t != "undo-failed",
                "{point}: an interrupt journaled a failure: {e}"
            );
            if t == "abort-started" {
                assert_eq!(e["reason"], "planned", "{point}: {e}");
            }
        }
        // Approved (again): whatever the point, the resumed run may pass the wait.
        env.godwit(&["approve", &id, "--name", "go"]);
        let (code, o, err) = env.godwit(&["resume", "last"]);
        assert_eq!(
            code, 3,
            "{point}: resume ends with the runbook's own abort: {o}{err}"
        );
        assert!(err.contains("planned") || o.contains("planned"), "{o}{err}");
        let undone = env
            .transcript(&id)
            .lines()
            .filter(|l| l.contains(r#""event":"undo-completed""#))
            .count();
        assert_eq!(undone, 1, "{point}: the undo completed once");
    }
}

/// Issue 18 (regression): `godwit run rds-to-aurora --cluster orders-db --world
/// sim:busy-source`, SIGINT half a second in, then `godwit resume last`: the run stops
/// resumable and the resume continues — it never rolls back, never deletes the replica. Before,
/// 3 of 4 tries rolled back at `wait-replica-available` and the resume deleted the replica.
#[test]
fn ctrl_c_during_a_simulated_wait_never_rolls_back_and_resume_continues() {
    let rb = standard_runbook();
    let mut interrupted = 0;
    for delay in [300, 400, 500, 600] {
        let env = Env::new();
        let child = env.spawn(
            &[
                "run",
                &rb,
                "--cluster",
                "orders-db",
                "--world",
                "sim:busy-source",
            ],
            &[],
        );
        pause(delay);
        signal(&child, "-INT");
        let (code, o, err) = out(child.wait_with_output().unwrap());
        if code == 0 {
            continue; // finished before the signal
        }
        assert_eq!(code, 7, "SIGINT after {delay} ms: {o}{err}");
        interrupted += 1;
        assert!(!o.contains("aborting"), "{o}");
        let (code, o, err) = env.godwit(&["resume", "last"]);
        if code != 0 && err.contains("no runs in") {
            // Interrupted before the run was created (a loaded machine starts slowly): nothing
            // to resume, and nothing was done.
            assert!(env.run_ids().is_empty(), "{err}");
            interrupted -= 1;
            continue;
        }
        assert_eq!(code, 0, "resume after {delay} ms: {o}{err}");
        assert!(!o.contains("↩ undid"), "nothing is undone: {o}");
        let id = env.run_ids().pop().unwrap();
        assert!(
            !entries(&env.journal(&id))
                .iter()
                .any(|e| e["type"] == "abort-started" || e["type"] == "step-failed"),
            "after {delay} ms"
        );
    }
    assert!(interrupted > 0, "no signal landed inside the run");
}

// ---- validation before anything exists ---------------------------------------------------

/// Issue 18, the acceptance's shell-level test: bad inputs of every kind — cluster ids RDS
/// refuses, unknown or mistyped parameters, wrong types, durations without units, values
/// outside an enumeration, the target equal to the source, bad config files, unknown worlds,
/// runbooks and scenarios, flags of another world — exit 2 naming the field, and the state
/// directory holds no run afterwards.
#[test]
fn bad_inputs_of_every_kind_exit_2_naming_the_field_and_leave_no_run() {
    let env = Env::new();
    let rb = standard_runbook();
    env.write("typo.toml", "validaton_window = \"2h\"\n");
    env.write("table.toml", "[vpc]\nid = 1\n");
    env.write(
        "cluster.toml",
        "[clusters.orders-db]\nfence_validation = \"partial\"\n",
    );
    fn run<'a>(rb: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run", rb];
        args.extend_from_slice(extra);
        args
    }
    let run = |extra: &[&'static str]| run(&rb, extra);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (run(&["--cluster", "_"]), "--cluster \"_\""),
        (run(&["--cluster", "."]), "--cluster \".\""),
        (run(&["--cluster", "1orders"]), "must start with a letter"),
        (run(&["--cluster", "orders--db"]), "two consecutive hyphens"),
        (
            run(&["--cluster", "Orders-DB"]),
            "lower case: use orders-db",
        ),
        (
            run(&[
                "--cluster",
                "orders-db",
                "--set",
                "fence_validation=partial",
            ]),
            "fence_validation = \"partial\"",
        ),
        (
            run(&["--cluster", "orders-db", "--set", "validation_window=90"]),
            "validation_window = 90: a duration needs a unit",
        ),
        (
            run(&["--cluster", "orders-db", "--set", "max_replica_lag_p99=ten"]),
            "max_replica_lag_p99",
        ),
        (
            run(&["--cluster", "orders-db", "--set", "validaton_window=2h"]),
            "did you mean validation_window",
        ),
        (
            run(&[
                "--cluster",
                "orders-db",
                "--set",
                "target_cluster=orders-db",
            ]),
            "is the source itself",
        ),
        (
            run(&[
                "--cluster",
                "orders-db",
                "--set",
                "target_cluster=Bad_Target",
            ]),
            "target_cluster",
        ),
        (
            run(&["--cluster", "orders-db", "--set", "novalue"]),
            "expected KEY=VALUE",
        ),
        (
            run(&["--cluster", "orders-db", "--config", "typo.toml"]),
            "did you mean validation_window",
        ),
        (
            run(&["--cluster", "orders-db", "--config", "table.toml"]),
            "`vpc` is a table",
        ),
        (
            run(&["--cluster", "orders-db", "--config", "cluster.toml"]),
            "fence_validation",
        ),
        (
            run(&["--cluster", "orders-db", "--config", "missing.toml"]),
            "missing.toml",
        ),
        (
            run(&["--cluster", "orders-db", "--world", "mars"]),
            "unknown world 'mars'",
        ),
        (
            run(&["--cluster", "orders-db", "--world", "sim:nope"]),
            "nope",
        ),
        (
            run(&["--cluster", "orders-db", "--region", "eu-west-1"]),
            "--region applies to the aws world",
        ),
        (
            vec!["run", "rds-to-aurorra", "--cluster", "orders-db"],
            "runbook 'rds-to-aurorra' not found",
        ),
        (vec!["resume", "nothing-here"], "no run 'nothing-here'"),
        (
            vec!["demo", "--scenario", "busy-sorce"],
            "did you mean busy-source",
        ),
        (
            vec![
                "plan",
                rb.as_str(),
                "--cluster",
                "orders-db",
                "--set",
                "fence_validation=partial",
            ],
            "fence_validation",
        ),
        (
            vec![
                "run",
                rb.as_str(),
                "--cluster",
                "orders-db",
                "--max-operations",
                "0",
            ],
            "--max-operations",
        ),
    ];
    for (args, field) in cases {
        let (code, o, err) = env.godwit(&args);
        assert_eq!(code, 2, "{args:?}: {o}{err}");
        assert!(err.contains(field), "{args:?} must name {field:?}: {err}");
        assert!(
            !err.contains("arrives with its issue"),
            "a stale message: {err}"
        );
        assert!(env.run_ids().is_empty(), "{args:?} left a run");
    }
    let worlds = std::fs::read_dir(env.path("state/worlds"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(worlds, 0, "nor a world's files");
}

/// Issue 18: `resume RUN --set accept_fork=true` — the recovery docs/rds-to-aurora.md
/// prescribes after promotion — was refused by the CLI (`unexpected argument '--set'`). Only
/// keys the runbook declares `on_resume` change; the change is journaled with the resume.
#[test]
fn resume_set_changes_only_on_resume_parameters_and_journals_them() {
    let env = Env::new();
    env.write(
        "p.rhai",
        r#"fn parameters(cluster) { #{
            accept_fork: #{ type: "bool", default_value: false, on_resume: true, doc: "fork?" },
            window: #{ type: "duration", default_value: "1h", doc: "window" },
        } }
        step("first", || 1);
        step("seen", || PARAMS);
        "#,
    );
    let o = env
        .command(&["run", "p.rhai", "--cluster", "c1", "--world", "toy"])
        .env("GODWIT_TOY_CRASH", "step-completed:1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(86));
    let (code, _, err) = env.godwit(&["resume", "last", "--set", "window=2h"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("window: fixed when the run started") && err.contains("accept_fork"),
        "{err}"
    );
    let (code, _, err) = env.godwit(&["resume", "last", "--set", "accept_fork=yes"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("accept_fork"), "{err}");
    let (code, o, err) = env.godwit(&["resume", "last", "--set", "accept_fork=true", "-o", "json"]);
    assert_eq!(code, 0, "{o}{err}");
    let v: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(v["status"], "succeeded");
    let (_, show, _) = env.godwit(&["show", "last", "-o", "json"]);
    let show: Value = serde_json::from_str(show.trim()).unwrap();
    assert_eq!(show["params"]["accept_fork"], true, "{show}");
    assert_eq!(show["params"]["window"], "1h");
    let id = env.run_ids().pop().unwrap();
    let resumed = entries(&env.journal(&id))
        .into_iter()
        .find(|e| e["type"] == "run-resumed" && !e["params"].is_null())
        .expect("the change is journaled");
    assert_eq!(
        resumed["params"],
        serde_json::json!({ "accept_fork": true })
    );
    assert_eq!(
        show["flow"][1]["result"]["accept_fork"], true,
        "the resumed run sees the new value"
    );
}

// ---- one run per cluster -------------------------------------------------------------------

/// Issue 18: two `godwit run … --cluster orders-db` at once shared (then tore down) one
/// replica. The cluster lock refuses the second with the holder's run id (exit 6) for the
/// first run's whole life — also while it is stopped, not only while a process drives it —
/// and lets go when it finishes.
#[test]
fn a_second_run_on_a_cluster_is_refused_with_the_holders_run_id_until_the_first_finishes() {
    let env = Env::new();
    env.write(
        "slow.rhai",
        "step(\"a\", || 1);\nstep(\"wait\", || wait_until_approved(\"go\", #{ timeout: \"1m\" }));\n",
    );
    let args = [
        "run",
        "slow.rhai",
        "--cluster",
        "orders-db",
        "--world",
        "pure",
    ];
    let child = env.spawn(&args, &[]);
    let first = env.wait_for_journal(r#""name":"wait""#);
    let (code, _, err) = env.godwit(&args);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains(&format!(
            "cluster orders-db is being migrated by run {first}"
        )),
        "{err}"
    );
    // Stopped, not finished: still held.
    signal(&child, "-INT");
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(7));
    let (code, _, err) = env.godwit(&args);
    assert_eq!(code, 6, "a stopped run still holds its cluster: {err}");
    env.write("ok.rhai", "step(\"a\", || 1);\n");
    let (code, _, err) =
        env.godwit(&["run", "ok.rhai", "--cluster", "other-db", "--world", "pure"]);
    assert_eq!(code, 0, "another cluster is free: {err}");
    // Finished (rolled back by `godwit abort`): free again.
    let (code, o, err) = env.godwit(&["abort", &first, "--reason", "made way"]);
    assert_eq!(code, 3, "{o}{err}");
    let child = env.spawn(&args, &[]);
    pause(300);
    signal(&child, "-INT");
    let (code, _, err) = out(child.wait_with_output().unwrap());
    assert_eq!(
        code, 7,
        "the cluster was free after the first run finished: {err}"
    );
}

// ---- abort and approve ---------------------------------------------------------------------

/// Issue 18: `godwit abort RUN` is the deliberate rollback. A stopped run is rolled back
/// right away (the undos of its completed steps, in reverse, journaled with who asked); a run
/// another process drives gets the request and rolls back at its next safe point — here while
/// it waits for an approval.
#[test]
fn abort_rolls_a_stopped_or_a_running_run_back_with_the_reason_journaled() {
    let env = Env::new();
    env.write(
        "r.rhai",
        r#"step("a", #{ undo: |r| toy::revert("a") }, || toy::apply("a"));
step("b", #{ undo: |r| toy::revert("b") }, || toy::apply("b"));
step("approve", || wait_until_approved("go", #{ timeout: "1m" }));
step("c", || toy::apply("c"));
"#,
    );
    // A stopped run.
    let o = env
        .command(&["run", "r.rhai", "--cluster", "c1", "--world", "toy"])
        .env("GODWIT_TOY_CRASH", "step-completed:2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(86));
    let (code, o, err) = env.godwit(&["abort", "last", "--reason", "window closed"]);
    assert_eq!(code, 3, "{o}{err}");
    assert!(
        o.find("↩ undid b").unwrap() < o.find("↩ undid a").unwrap(),
        "{o}"
    );
    let id = env.run_ids().pop().unwrap();
    let abort = entries(&env.journal(&id))
        .into_iter()
        .find(|e| e["type"] == "abort-started")
        .unwrap();
    let reason = abort["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("aborted by tester") && reason.ends_with(": window closed"),
        "{reason}"
    );
    let (code, _, err) = env.godwit(&["abort", "last"]);
    assert_eq!(code, 8, "a finished run is not aborted again: {err}");
    assert!(
        err.contains("already finished (rolled-back); nothing to abort"),
        "{err}"
    );

    // A running one, waiting for an approval in another process.
    let env = Env::new();
    env.write(
        "r.rhai",
        "step(\"a\", #{ undo: |r| \"undone\" }, || 1);\nstep(\"approve\", || wait_until_approved(\"go\", #{ timeout: \"1m\" }));\nstep(\"c\", || 3);\n",
    );
    let child = env.spawn(
        &["run", "r.rhai", "--cluster", "c1", "--world", "pure"],
        &[],
    );
    let id = env.wait_for_journal(r#""name":"approve""#);
    let (code, o, err) = env.godwit(&["abort", &id, "--reason", "declined", "-o", "json"]);
    assert_eq!(code, 0, "{o}{err}");
    let v: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(v["abort"], "requested");
    let (code, o, err) = out(child.wait_with_output().unwrap());
    assert_eq!(code, 3, "the running process rolled back: {o}{err}");
    assert!(o.contains("↩ undid a"), "{o}");
    assert!(
        !env.journal(&id).contains(r#""name":"c""#),
        "step c never ran"
    );
}

/// Issue 18: `--set approve_cutover=true` makes the standard runbook wait, after validation
/// and before the fence, for `godwit approve RUN`; the approval is journaled with who gave it.
#[test]
fn approve_cutover_waits_before_the_fence_for_godwit_approve() {
    let env = Env::new();
    let rb = standard_runbook();
    let child = env.spawn(
        &[
            "run",
            &rb,
            "--cluster",
            "orders-db",
            "--world",
            "sim:busy-source",
            "--set",
            "approve_cutover=true",
        ],
        &[],
    );
    let id = env.wait_for_journal(r#""name":"approve-cutover""#);
    pause(300);
    let journal = env.journal(&id);
    assert!(
        journal.contains(r#""name":"validate""#),
        "validation came first"
    );
    assert!(
        !journal.contains(r#""name":"fence""#),
        "nothing fenced while waiting"
    );
    let (code, o, err) = env.godwit(&["runs"]);
    assert_eq!(code, 0, "{err}");
    assert!(o.contains("running"), "{o}");
    let (code, o, err) = env.godwit(&["approve", "last"]);
    assert_eq!(code, 0, "{o}{err}");
    assert!(
        o.contains("approved cutover") && o.contains("tester"),
        "{o}"
    );
    let (code, o, err) = out(child.wait_with_output().unwrap());
    assert_eq!(code, 0, "{o}{err}");
    assert!(o.contains("cutover approved by tester"), "{o}");
    let approved = entries(&env.journal(&id))
        .into_iter()
        .find(|e| e["type"] == "step-completed" && e["name"] == "approve-cutover")
        .unwrap();
    assert!(
        approved["result"]["approved_by"]
            .as_str()
            .unwrap()
            .starts_with("tester"),
        "{approved}"
    );
    // Said in the words of what was asked (it was "nothing to resume" for all three).
    let (code, _, err) = env.godwit(&["approve", "last"]);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("already finished (succeeded); nothing to approve"),
        "{err}"
    );
}

// ---- plan ----------------------------------------------------------------------------------

/// Issue 18: `godwit plan RUNBOOK --cluster ID` runs the preflight in the cluster's world and
/// predicts the migration in the simulator, read-only: nothing in the state directory, exit 0
/// when it would go through, 10 when the preflight finds problems (listed with their fixes).
#[test]
fn plan_runs_preflight_and_a_prediction_and_changes_nothing() {
    let env = Env::new();
    let rb = standard_runbook();
    let (code, o, err) = env.godwit(&["plan", &rb, "--cluster", "payments-db", "-o", "json"]);
    assert_eq!(code, 0, "{o}{err}");
    let p: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(p["cluster"], "payments-db");
    assert_eq!(p["preflight"]["passed"], true, "{p}");
    assert!(
        p["preflight"]["stops_before"]
            .as_str()
            .unwrap()
            .contains("create-parameter-groups"),
        "{p}"
    );
    assert_eq!(p["prediction"]["outcome"], "succeeded", "{p}");
    assert!(env.run_ids().is_empty() && !env.path("state/worlds").exists());
    let (code, o, err) = env.godwit(&[
        "plan",
        &rb,
        "--cluster",
        "orders-db",
        "--world",
        "sim:preflight-failures",
    ]);
    assert_eq!(code, 10, "{o}{err}");
    assert!(
        o.contains("✗ backups-enabled") && o.contains("set the backup retention"),
        "{o}"
    );
    assert!(env.run_ids().is_empty());
}

// ---- conventions ---------------------------------------------------------------------------

/// Records what primitives say while they wait.
#[derive(Default)]
struct Waits(std::sync::Mutex<Vec<godwit_engine::transcript::Waiting>>);

impl godwit_engine::transcript::Sink for Waits {
    fn line(&self, _: &godwit_engine::transcript::Line) {}
    fn waiting(&self, w: &godwit_engine::transcript::Waiting) {
        self.0.lock().unwrap().push(w.clone());
    }
}

/// Issue 18: progress came only at gate polls; a step inside a `wait_until_*` (hours for a
/// replica to be created on AWS) said nothing. Every poll of a wait now reports its step, the
/// call, what it waits for and the time waited of its budget — here the standard runbook's
/// wait for the Aurora replica, in the simulator.
#[test]
fn a_wait_until_reports_each_poll_with_its_step_and_budget() {
    use std::sync::Arc;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = godwit_stdlib::world::World::sim_named("busy-source").unwrap();
    let store = godwit_engine::journal::memory::MemoryStore::new();
    let waits = Arc::new(Waits::default());
    let mut runner = world.runner(Arc::new(store), rt.handle().clone());
    runner.sinks.push(waits.clone());
    let report = runner
        .start(godwit_engine::StartRequest {
            runbook: standard_runbook().into(),
            cluster: "orders-db".into(),
            params: Default::default(),
            run_id: Some("run".into()),
        })
        .unwrap();
    assert!(
        matches!(report.status, godwit_engine::RunStatus::Succeeded { .. }),
        "{report:?}"
    );
    let waits = waits.0.lock().unwrap();
    let replica: Vec<_> = waits
        .iter()
        .filter(|w| w.call == "rds::wait_until_cluster_available")
        .collect();
    assert!(replica.len() > 2, "{waits:?}");
    for (i, w) in replica.iter().enumerate() {
        assert_eq!(w.unit.as_deref(), Some("wait-replica-available"), "{w:?}");
        assert_eq!(w.what, "cluster orders-db-aurora available");
        assert_eq!(w.polls, i as u64 + 1, "{w:?}");
        assert!(w.waited_ms < w.timeout_ms, "{w:?}");
    }
    assert!(
        replica.windows(2).all(|p| p[0].waited_ms < p[1].waited_ms),
        "{replica:?}"
    );
}

/// Issue 18: on a terminal, a wait shows a live line with the time elapsed and what it waits
/// for (indicatif on stderr) — here a `wait_until_approved`, which says how to approve; Ctrl-C
/// from the terminal then stops the run resumable (exit 7).
#[test]
fn a_terminal_shows_what_a_wait_waits_for_and_the_time_elapsed() {
    let env = Env::new();
    env.write(
        "w.rhai",
        "step(\"approve\", || wait_until_approved(\"go\", #{ timeout: \"5m\" }));\n",
    );
    let mut c = env.command(&["run", "w.rhai", "--cluster", "c1", "--world", "pure"]);
    c.env("TERM", "xterm").env_remove("NO_COLOR");
    let mut p = rexpect::session::spawn_command(c, Some(30_000)).unwrap();
    // Once, as a line, in full: what to do. (rexpect reads bytes as Latin-1, so the patterns
    // stay ASCII: `\S+` stands for the `·` separators.)
    p.exp_regex(r#"step approve \S+ core::wait_until_approved waits for approval of "go": `godwit approve \S+ --name go`"#)
        .unwrap();
    // Then the live line: the time elapsed (indicatif's `{elapsed}`, e.g. `2s`), and the
    // time waited of the wait's budget comes before anything a narrow terminal could cut.
    p.exp_regex(
        r"[0-9]+s step approve \S+ core::wait_until_approved \S+ waited \S+ of 5m \(poll [0-9]+\)",
    )
    .unwrap();
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
    match p.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, code) => assert_eq!(code, 7),
        other => panic!("unexpected end: {other:?}"),
    }
}

/// Issue 18: `godwit demo --list | head -1` panicked on the broken pipe (exit 101).
#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    let env = Env::new();
    let mut child = env
        .command(&["demo", "--list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader went away before the first line
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}

/// Issue 18: every command needed a state directory, even `godwit worlds` and `demo --list`.
#[test]
fn looking_around_needs_no_state_directory() {
    let env = Env::new();
    for args in [
        &["worlds"][..],
        &["demo", "--list"],
        &["completions", "bash"],
        &["--help"],
    ] {
        let o = env
            .command(args)
            .env_remove("GODWIT_STATE_DIR")
            .env_remove("XDG_STATE_HOME")
            .env_remove("HOME")
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Issue 18: `-o json` on every command that prints; each prints one JSON value.
#[test]
fn every_printing_command_speaks_json() {
    let env = Env::new();
    env.write("ok.rhai", "step(\"a\", || 1);\n");
    let (code, _, err) = env.godwit(&[
        "run",
        "ok.rhai",
        "--cluster",
        "c1",
        "--world",
        "toy",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let rb = standard_runbook();
    for args in [
        &["runs"][..],
        &["show", "last"],
        &["verify", "last"],
        &["worlds"],
        &["demo", "--list"],
        &["demo", "--scenario", "idle-source"],
        &["check", "ok.rhai", "--world", "toy"],
        &["plan", rb.as_str(), "--cluster", "orders-db"],
        &["run", "ok.rhai", "--cluster", "c2", "--world", "toy"],
    ] {
        let (code, o, err) = env.godwit(&[args, &["-o", "json"]].concat());
        assert_eq!(code, 0, "{args:?}: {err}");
        let lines: Vec<&str> = o.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one JSON value: {o}");
        serde_json::from_str::<Value>(lines[0]).unwrap_or_else(|e| panic!("{args:?}: {e}: {o}"));
    }
}

/// Issue 18: `last` and "newest first" were wrong for simulated runs (ids began with the
/// virtual start time, the same for every run): ids are ULIDs now, ordered by their wall-clock
/// start even within one second.
#[test]
fn last_is_the_newest_simulated_run() {
    let env = Env::new();
    env.write("ok.rhai", "step(\"a\", || 1);\n");
    let mut ids = Vec::new();
    for cluster in ["zz-db", "aa-db", "mm-db"] {
        let (code, o, err) = env.godwit(&[
            "run",
            "ok.rhai",
            "--cluster",
            cluster,
            "--world",
            "sim",
            "-o",
            "json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(o.trim()).unwrap();
        ids.push(v["run_id"].as_str().unwrap().to_string());
    }
    let (_, o, _) = env.godwit(&["runs", "-o", "json"]);
    let listed: Vec<String> = serde_json::from_str::<Value>(o.trim())
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids, "newest first");
    let (_, o, _) = env.godwit(&["show", "last", "-o", "json"]);
    let v: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(v["run_id"], ids[0].as_str());
}

/// Issue 18: status words disagreed (`stopped` in `runs`, `in-progress` in the REPL's
/// `:attach`; `rolling-back` for a rollback nobody drives). One vocabulary everywhere: a
/// stopped run is `stopped`, a stopped rollback `rollback-stopped`, in `runs`, `show` and the
/// REPL alike; a failed undo is `rollback-failed`.
#[test]
fn status_words_are_the_same_in_runs_show_and_the_repl() {
    let env = Env::new();
    env.write("ok.rhai", "step(\"a\", || 1);\nstep(\"b\", || 2);\n");
    let o = env
        .command(&["run", "ok.rhai", "--cluster", "c1", "--world", "toy"])
        .env("GODWIT_TOY_CRASH", "step-completed:1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(86));
    let (_, runs, _) = env.godwit(&["runs", "-o", "json"]);
    let (_, show, _) = env.godwit(&["show", "last", "-o", "json"]);
    let runs: Value = serde_json::from_str(runs.trim()).unwrap();
    let show: Value = serde_json::from_str(show.trim()).unwrap();
    assert_eq!(runs[0]["status"], "stopped");
    assert_eq!(show["status"], "stopped");
    let mut child = env
        .command(&["repl", "--attach", "last", "--world", "toy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"run.status\n")
        .unwrap();
    let (_, o, err) = out(child.wait_with_output().unwrap());
    assert!(
        o.contains("— stopped:") && o.contains("\nstopped"),
        "{o}{err}"
    );
    assert!(!o.contains("in-progress"), "{o}");

    // A rollback nobody drives was `rolling-back`, as if something were running it.
    let env = Env::new();
    env.write(
        "rb.rhai",
        "step(\"a\", #{ undo: |r| \"a\" }, || 1);\nstep(\"b\", #{ undo: |r| \"b\" }, || 2);\nabort(\"no\");\n",
    );
    let o = env
        .command(&["run", "rb.rhai", "--cluster", "c1", "--world", "toy"])
        .env("GODWIT_TOY_CRASH", "undo-completed:1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(86));
    let (_, runs, _) = env.godwit(&["runs", "-o", "json"]);
    let (_, show, _) = env.godwit(&["show", "last", "-o", "json"]);
    let runs: Value = serde_json::from_str(runs.trim()).unwrap();
    let show: Value = serde_json::from_str(show.trim()).unwrap();
    assert_eq!(runs[0]["status"], "rollback-stopped");
    assert_eq!(show["status"], "rollback-stopped");
    let mut child = env
        .command(&["repl", "--attach", "last", "--world", "toy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"run.status\n")
        .unwrap();
    let (_, o, err) = out(child.wait_with_output().unwrap());
    assert!(o.contains("\nrollback-stopped"), "{o}{err}");

    // An undo that failed, nobody driving: `rollback-failed`.
    let env = Env::new();
    env.write(
        "rb.rhai",
        "step(\"a\", #{ undo: |r| throw \"cannot\" }, || 1);\nabort(\"no\");\n",
    );
    let (code, _, err) = env.godwit(&["run", "rb.rhai", "--cluster", "c1", "--world", "toy"]);
    assert_eq!(code, 4, "{err}");
    let (_, runs, _) = env.godwit(&["runs", "-o", "json"]);
    let runs: Value = serde_json::from_str(runs.trim()).unwrap();
    assert_eq!(runs[0]["status"], "rollback-failed");
}

/// Issue 18: `godwit repl --attach RUN` on a simulated run works in a copy of the run's own
/// world — `describe_*` shows the run's resources — and never moves the run's world; a console
/// on another world says so.
#[test]
fn repl_attach_reads_a_copy_of_the_runs_simulated_world() {
    let env = Env::new();
    let rb = standard_runbook();
    let o = env
        .command(&[
            "run",
            &rb,
            "--cluster",
            "orders-db",
            "--world",
            "sim:busy-source",
        ])
        .env("GODWIT_TOY_CRASH", "step-completed:4")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(86));
    let id = env.run_ids().pop().unwrap();
    let state = env.path(&format!("state/worlds/{id}.json"));
    let before = std::fs::read(&state).unwrap();
    let mut child = env
        .command(&["repl", "--attach", "last"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"rds::describe_cluster(\"orders-db-aurora\").status\nsleep(\"1h\")\n")
        .unwrap();
    let (_, o, err) = out(child.wait_with_output().unwrap());
    assert!(err.contains("a copy of run"), "{err}");
    assert!(
        o.contains("creating") || o.contains("available"),
        "the run's replica is there: {o}{err}"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "the run's world did not move"
    );
    // Another world than the run's is said on attach.
    let mut child = env
        .command(&["repl", "--attach", "last", "--world", "pure"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"1\n").unwrap();
    let (_, _, err) = out(child.wait_with_output().unwrap());
    assert!(
        err.contains("ran in world 'sim:busy-source'; this console is on 'pure'"),
        "{err}"
    );
    let (code, o, err) = env.godwit(&["resume", "last"]);
    assert_eq!(code, 0, "{o}{err}");
}

/// Issue 18: the README states how many scenarios the simulator has; it must be the number
/// the binary has.
#[test]
fn the_readme_states_the_binarys_scenario_count() {
    let env = Env::new();
    let (code, o, _) = env.godwit(&["demo", "--list", "-o", "json"]);
    assert_eq!(code, 0);
    let n = serde_json::from_str::<Value>(o.trim())
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    assert!(
        readme.contains(&format!("{n} built-in scenarios")),
        "README.md must say \"{n} built-in scenarios\""
    );
}

/// Issue 18: the demo said "write blackout: none — the source was never fenced" for
/// promote-hang, promote-failure and data-divergence, where the source was fenced (for ~31 min
/// in promote-hang) until the rollback reopened it.
#[test]
fn the_demo_tells_the_blackout_of_a_run_that_rolled_back_after_the_fence() {
    let env = Env::new();
    for scenario in ["promote-hang", "promote-failure"] {
        let (code, o, err) = env.godwit(&["demo", "--scenario", scenario]);
        assert_eq!(code, 3, "{scenario}: {err}");
        assert!(
            o.contains("write blackout ≈") && o.contains("the rollback reopened the source"),
            "{scenario}: {o}"
        );
        assert!(!o.contains("never fenced"), "{scenario}: {o}");
        let (_, o, _) = env.godwit(&["demo", "--scenario", scenario, "-o", "json"]);
        let v: Value = serde_json::from_str(o.trim()).unwrap();
        let b = &v["write_blackout"];
        assert_eq!(b["state"], "ended", "{scenario}: {v}");
        assert!(b["to"].as_i64() > b["from"].as_i64(), "{scenario}: {b}");
        // Writes stopped when the sessions ended (the simulator gives godwit SQL access, so the
        // fence terminates them), not at the quarantine before it, which sessions outlive.
        assert_eq!(
            b["began"], "application sessions terminated",
            "{scenario}: {b}"
        );
    }
    let (_, o, _) = env.godwit(&["demo", "--scenario", "envoy-nack"]);
    assert!(
        o.contains("never fenced"),
        "the NACK comes before the fence: {o}"
    );
    // The audit in the validation window finds the seeded row before anyone is fenced, and
    // without it the pre-fence pass does (docs/validate.md).
    let (code, o, _) = env.godwit(&["demo", "--scenario", "data-divergence"]);
    assert_eq!(code, 3);
    assert!(
        o.contains("never fenced") && o.contains("the audit proved the replica"),
        "{o}"
    );
    let rb = standard_runbook();
    let (code, o, e) = env.godwit(&[
        "run",
        &rb,
        "--cluster",
        "orders-db",
        "--world",
        "sim:data-divergence",
        "--set",
        "audit_rows=0",
    ]);
    assert_eq!(code, 3, "{e}");
    let both = format!("{o}{e}");
    assert!(
        both.contains("validation before the fence: DIFFERENT") && !both.contains("step fence "),
        "{both}"
    );
}

/// Issue 18: `godwit check` passed a misspelled primitive, a bad step name and a bare `now()`,
/// which all failed only at run time (after earlier steps had run). It lints them, each at its
/// line with a suggestion, exit 10 — and script functions called with a count of arguments
/// none of their definitions takes; the shipped runbooks are clean.
#[test]
fn check_finds_a_misspelled_primitive_a_bad_step_name_and_a_bare_now() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("lib")).unwrap();
    env.write("lib/m.rhai", "fn pair(a, b) { [a, b] }\n");
    env.write(
        "lib/k.rhai",
        "fn pair(a, b) { a + b }\nfn sum() { pair(1, 2) }\n",
    );
    env.write(
        "lint.rhai",
        "step(\"Bad Name\", || rds::describe_instnace(\"x\"));\nlet t = now();\nfoo(1);\n\
         import \"lib/m\" as m;\nstep(\"pair\", || m::pair(1));\nfn one(x) { x }\none(1, 2);\n\
         fn has(c) { try { c.len() > 0 } catch (e) { false } }\nimport \"lib/k\" as k;\n",
    );
    let (code, _, err) = env.godwit(&["check", "lint.rhai", "--world", "sim"]);
    assert_eq!(code, 10, "{err}");
    for want in [
        "step name \"Bad Name\" is not kebab-case",
        "lint.rhai:1:6",
        "unknown function rds::describe_instnace",
        "did you mean rds::describe_instance?",
        "now touches the world",
        "lint.rhai:2:9",
        "unknown function foo",
        // A function of a module or of the file called with a count it does not take.
        "m::pair is called with 1 argument but is defined as m::pair(a, b)",
        "lint.rhai:5:20",
        "one is called with 2 arguments but is defined as one(x)",
        // Rhai discards a catch block's value: `has` returns () when it catches.
        "this value ends a catch block, and Rhai discards it",
        "lint.rhai:8:45",
        // Two modules define pair(a, b): k's own call may reach m's.
        "pair is defined in this module and, with as many parameters, in lib/m.rhai",
        "lib/k.rhai:2:12",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    let runbooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    for rb in [
        "rds-to-aurora",
        "cdc-heavy",
        "snapshot",
        "finalize",
        "logical",
        "rollback",
        "examples/tour",
    ] {
        let path = runbooks.join(format!("{rb}.rhai"));
        let (code, _, err) = env.godwit(&["check", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{rb}: {err}");
    }
}

/// Issue 18: a busy source's every hour was classified `idle-oscillation` while the validation
/// gate collected its window; the gate now judges the last hour with WAL generation in view.
#[test]
fn a_busy_sources_hours_are_never_called_idle() {
    let env = Env::new();
    let rb = standard_runbook();
    let (code, o, err) = env.godwit(&[
        "run",
        &rb,
        "--cluster",
        "orders-db",
        "--world",
        "sim:busy-source",
    ]);
    assert_eq!(code, 0, "{err}");
    let polls: Vec<&str> = o
        .lines()
        .filter(|l| l.contains("gate validate poll"))
        .collect();
    assert!(polls.len() > 20, "{o}");
    assert!(!o.contains("idle-oscillation"), "{o}");
    assert!(
        polls.iter().filter(|l| l.contains("keeps-up")).count() > 20,
        "{o}"
    );
}

/// Issue 18: preflight's `storage-headroom` passed on `no-data`. A check that has no evidence
/// fails, and says how to get some.
#[test]
fn preflight_storage_headroom_fails_without_data() {
    let env = Env::new();
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/lib");
    std::fs::create_dir_all(env.path("lib")).unwrap();
    for f in std::fs::read_dir(&lib).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), env.path("lib").join(f.file_name())).unwrap();
    }
    env.write(
        "headroom.rhai",
        "import \"lib/preflight\" as p;\n\
         let none = p::storage_check([], [], #{ period_seconds: 60 });\n\
         if none.pass { throw `passed on no data: ${none.why}`; }\n\
         none\n",
    );
    let (code, o, err) = env.godwit(&[
        "run",
        "headroom.rhai",
        "--cluster",
        "c1",
        "--world",
        "pure",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{o}{err}");
    let v: Value = serde_json::from_str(o.trim()).unwrap();
    assert!(
        v["result"]["why"].as_str().unwrap().contains("no-data")
            && v["result"]["fix"].as_str().unwrap().contains("CloudWatch"),
        "{v}"
    );
}

/// Issue 18 (CLI split notes): `resume` of a journal without run-started said "needs world ''";
/// `docs --check` drift exited 1, the code of an internal error.
#[test]
fn a_run_that_never_began_and_doc_drift_are_said_in_words_with_their_codes() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("state/runs/01JD3XK5QW8Z9F3M2N4P6R7T8V-c1")).unwrap();
    std::fs::write(
        env.path("state/runs/01JD3XK5QW8Z9F3M2N4P6R7T8V-c1/journal.jsonl"),
        "",
    )
    .unwrap();
    let (code, _, err) = env.godwit(&["resume", "last"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("has no run-started record: it never began"),
        "{err}"
    );
    assert!(!err.contains("world ''"), "{err}");
    let (code, _, err) = env.godwit(&["docs", "--check", "--out", "empty"]);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("out of date"), "{err}");
}

/// Issue 18: no colour in run output, and a hand-drawn progress line. Colour is there when
/// forced (`CLICOLOR_FORCE`), never on a pipe by default; nothing of a progress line reaches a
/// pipe, but what a wait waits for does, once, as a line.
#[test]
fn colour_and_progress_only_where_they_can_be_seen() {
    let env = Env::new();
    env.write(
        "ok.rhai",
        "step(\"a\", || 1);\n\
         step(\"w\", || { try { wait_until_approved(\"go\", #{ timeout: \"1s\" }) } catch (e) { e.kind } });\n\
         gate(\"g\", #{ every: \"10ms\", hold: 2, timeout: \"1m\" }, || #{ pass: true, why: \"ok\" });\n",
    );
    let args = ["run", "ok.rhai", "--cluster", "c1", "--world", "pure"];
    let o = env
        .command(&args)
        .env_remove("CLICOLOR_FORCE")
        .output()
        .unwrap();
    let (code, out_plain, err_plain) = out(o);
    assert_eq!(code, 0, "{err_plain}");
    assert!(
        !out_plain.contains('\u{1b}') && !err_plain.contains('\u{1b}'),
        "{out_plain}"
    );
    assert!(
        !err_plain.contains('\r'),
        "no progress line on a pipe: {err_plain:?}"
    );
    // What a wait waits for is a line of its own, so a log shows it too.
    assert!(
        out_plain.contains("step w · core::wait_until_approved waits for approval of \"go\""),
        "{out_plain}"
    );
    let o = env
        .command(&["run", "ok.rhai", "--cluster", "c2", "--world", "pure"])
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let (code, out_colour, _) = out(o);
    assert_eq!(code, 0);
    assert!(out_colour.contains("\u{1b}["), "{out_colour:?}");
}

/// Issue 17: `godwit demo --credential-less` runs the standard migration with no database
/// access; its summary names the evidence every gate decided on — CloudWatch for the fence and
/// the sync gate — and says that what only SQL can verify was accepted.
#[test]
fn the_credential_less_demo_names_the_evidence_of_every_gate() {
    let env = Env::new();
    let (code, o, err) = env.godwit(&["demo", "--credential-less"]);
    assert_eq!(code, 0, "{o}{err}");
    for want in [
        "credential-less: no database access",
        "source-sessions-ended (",
        "evidence cloudwatch-database-connections",
        "evidence cloudwatch-0-segment + cloudwatch-replica-lag",
        "evidence cloudwatch-keeps-up",
        "not verified, accepted with unverified=accept",
    ] {
        assert!(o.contains(want), "{want}: {o}");
    }
    assert!(
        !o.contains("sql-pg-stat-activity") && !o.contains("source-walsender"),
        "{o}"
    );
    // With database access the same gates say SQL.
    let (code, o, _) = env.godwit(&["demo"]);
    assert_eq!(code, 0);
    assert!(
        o.contains("evidence sql-pg-stat-activity") && o.contains("evidence source-walsender"),
        "{o}"
    );
    // The lab demo has no credential-less mode: refused with what to do instead.
    let (code, _, err) = env.godwit(&["demo", "--world", "lab", "--credential-less"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("docs/lab.md"), "{err}");
}
