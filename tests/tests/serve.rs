//! `godwit serve` against a real PostgreSQL store and a real `godwit worker`: who may do what
//! (tokens, the proxy's headers, ownership), every endpoint's answers to bad input (nothing
//! written), the audit log, a start that a worker runs to `succeeded`, and the pages.
//!
//! Needs the PostgreSQL server binaries (`scripts/test.sh` provisions them).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use godwit_lab::pgproc::Scratch;
// A child stopped by SIGTERM when dropped (then SIGKILL).
use godwit_tests::harness::Stopping as Proc;
use serde_json::{Value, json};

const GODWIT: &str = env!("CARGO_BIN_EXE_godwit-toy");

/// Tokens of the test's auth file: alice owns `orders`, bob `payments`, root is a platform admin.
const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef";
const ROOT: &str = "root-token-0123456789abcdef";

/// Wait without the disallowed thread sleep (clippy.toml): a receive that times out.
fn pause(d: Duration) {
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}

fn sha(t: &str) -> String {
    godwit::serve::auth::token_hash(t)
}

struct Served {
    base: String,
    _serve: Proc,
    agent: ureq::Agent,
}

impl Served {
    /// (status, body as JSON or as text in a string).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let resp = match method {
            "GET" => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(body.unwrap_or("{}"))
            }
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// A fleet of two clusters owned by two teams, in the `idle-source` scenario (a migration of
/// minutes of virtual time), plus one whose preflight fails.
fn fleet_file(dir: &Path) -> std::path::PathBuf {
    let f = dir.join("fleet.toml");
    std::fs::write(
        &f,
        r#"name = "shop"
[params]
validation_window = "1h"
[[clusters]]
id = "orders-db"
owner = "orders"
world = "sim:idle-source"
[[clusters]]
id = "payments-db"
owner = "payments"
world = "sim:idle-source"
[[clusters]]
id = "legacy-db"
owner = "orders"
world = "sim:preflight-failures"
"#,
    )
    .unwrap();
    f
}

/// The server's own temporary directory (its TMPDIR), to check it leaves nothing there.
fn tmp_of(dir: &Path) -> std::path::PathBuf {
    let t = dir.join("tmp");
    std::fs::create_dir_all(&t).unwrap();
    t
}

fn serve(dir: &Path, url: &str) -> Served {
    let auth = dir.join("auth.toml");
    std::fs::write(
        &auth,
        format!(
            "admins = [\"platform\"]\n[proxy]\naddresses = [\"127.0.0.7\"]\n\
             [[tokens]]\nsha256 = \"{}\"\nuser = \"alice\"\nteams = [\"orders\"]\n\
             [[tokens]]\nsha256 = \"{}\"\nuser = \"bob\"\nteams = [\"payments\"]\n\
             [[tokens]]\nsha256 = \"{}\"\nuser = \"root\"\nteams = [\"platform\"]\n",
            sha(ALICE),
            sha(BOB),
            sha(ROOT)
        ),
    )
    .unwrap();
    let mut child = Command::new(GODWIT)
        .args(["serve", "--listen", "127.0.0.1:0", "--auth"])
        .arg(&auth)
        .arg("--fleet")
        .arg(fleet_file(dir))
        .args(["--world", "sim"])
        .env("GODWIT_STORE", url)
        .env("GODWIT_STATE_DIR", dir.join("serve-state"))
        .env("TMPDIR", tmp_of(dir))
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {line}"))
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    Served {
        base,
        _serve: Proc(child),
        agent,
    }
}

#[test]
fn owners_start_their_own_cluster_and_a_worker_runs_it_to_the_end() {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &url);

    // Nobody anonymous; a token says who.
    assert_eq!(s.call("GET", "/api/v1/me", None, None).0, 401);
    assert_eq!(s.call("GET", "/api/v1/me", Some("wrong"), None).0, 401);
    let (code, me) = s.call("GET", "/api/v1/me", Some(ALICE), None);
    assert_eq!(code, 200, "{me}");
    assert_eq!(
        (me["user"].as_str(), me["admin"].as_bool()),
        (Some("alice"), Some(false))
    );

    // The fleet, with who may act where.
    let (code, list) = s.call("GET", "/api/v1/clusters", Some(ALICE), None);
    assert_eq!(code, 200, "{list}");
    let may: Vec<(String, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap().to_string(),
                c["may_act"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        may,
        vec![
            ("orders-db".into(), true),
            ("payments-db".into(), false),
            ("legacy-db".into(), true)
        ]
    );

    // Bad input: 4xx naming the problem, nothing queued.
    let (code, e) = s.call(
        "POST",
        "/api/v1/clusters/nope-db/runs",
        Some(ALICE),
        Some("{}"),
    );
    assert_eq!(code, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("nope-db"), "{e}");
    let (code, e) = s.call(
        "POST",
        "/api/v1/clusters/orders-db/runs",
        Some(ALICE),
        Some("{\"params\": "),
    );
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().starts_with("body:"), "{e}");
    let (code, e) = s.call(
        "POST",
        "/api/v1/clusters/orders-db/runs",
        Some(ALICE),
        Some("{\"parms\": {}}"),
    );
    assert_eq!(code, 422, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("parms"),
        "the unknown field is named: {e}"
    );
    let (code, e) = s.call(
        "POST",
        "/api/v1/clusters/orders-db/runs",
        Some(ALICE),
        Some(&json!({ "params": { "validation_windw": "2h" } }).to_string()),
    );
    assert_eq!(code, 422, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("validation_windw"),
        "{e}"
    );
    let big = format!("{{\"params\": {{\"x\": \"{}\"}}}}", "a".repeat(100_000));
    assert_eq!(
        s.call(
            "POST",
            "/api/v1/clusters/orders-db/runs",
            Some(ALICE),
            Some(&big)
        )
        .0,
        413
    );
    // A blocked preflight refuses the start, with the fixes.
    let (code, e) = s.call(
        "POST",
        "/api/v1/clusters/legacy-db/runs",
        Some(ALICE),
        Some("{}"),
    );
    assert_eq!(code, 409, "{e}");
    assert!(e["error"].as_str().unwrap().contains("fix it first"), "{e}");
    // Not the owner: 403, nothing queued.
    let (code, e) = s.call(
        "POST",
        "/api/v1/clusters/orders-db/runs",
        Some(BOB),
        Some("{}"),
    );
    assert_eq!(code, 403, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("belongs to team orders"),
        "{e}"
    );
    let (_, list) = s.call("GET", "/api/v1/clusters", Some(ROOT), None);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["latest_run"].is_null()),
        "nothing queued: {list}"
    );

    // The owner starts it; a worker runs it to the end.
    let (code, started) = s.call(
        "POST",
        "/api/v1/clusters/orders-db/runs",
        Some(ALICE),
        Some("{}"),
    );
    assert_eq!(code, 201, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let _worker = Proc(
        Command::new(GODWIT)
            .args(["worker", "--jobs", "1"])
            .env("GODWIT_STORE", &url)
            .env("GODWIT_STATE_DIR", dir.path().join("worker-state"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    let page = loop {
        let (code, page) = s.call("GET", &format!("/api/v1/runs/{run_id}"), Some(BOB), None);
        if code == 200 && !page["outcome"].is_null() {
            break page;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run did not finish: {code} {page}"
        );
        pause(Duration::from_millis(500));
    };
    assert_eq!(page["outcome"]["outcome"], "succeeded", "{page}");
    // The fleet view lists it (one query over the store, not the journals).
    let (_, list) = s.call("GET", "/api/v1/clusters", Some(BOB), None);
    let orders = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == "orders-db")
        .unwrap();
    assert_eq!(orders["latest_run"]["run_id"], run_id.as_str(), "{orders}");
    assert_eq!(orders["latest_run"]["status"], "succeeded", "{orders}");
    assert_eq!(orders["latest_run"]["where"], "run-finished", "{orders}");
    assert_eq!(page["journal"]["verified"], true);
    assert!(!page["phases"].as_array().unwrap().is_empty());

    // Everyone reads the report; nobody acts on a finished run.
    let (code, html) = s.call(
        "GET",
        &format!("/api/v1/runs/{run_id}/report"),
        Some(BOB),
        None,
    );
    assert_eq!(code, 200);
    assert!(html.as_str().unwrap().contains("hash chain verified"));
    let (code, e) = s.call(
        "POST",
        &format!("/api/v1/runs/{run_id}/abort"),
        Some(BOB),
        Some("{}"),
    );
    assert_eq!(code, 403, "bob does not own orders-db: {e}");
    let (code, e) = s.call(
        "POST",
        &format!("/api/v1/runs/{run_id}/abort"),
        Some(ALICE),
        Some("{\"reason\": \"x\"}"),
    );
    assert_eq!(code, 409, "finished: {e}");

    let (code, e) = s.call(
        "POST",
        &format!("/api/v1/runs/{run_id}/approve"),
        Some(ALICE),
        Some("{}"),
    );
    assert_eq!(code, 409, "finished: {e}");
    let (code, e) = s.call(
        "POST",
        "/api/v1/runs/01NOPE-orders-db/abort",
        Some(ALICE),
        Some("{}"),
    );
    assert_eq!(code, 404, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("01NOPE-orders-db"),
        "{e}"
    );
    let (code, e) = s.call("GET", "/api/v1/runs/01NOPE-orders-db", Some(ALICE), None);
    assert_eq!(code, 404, "{e}");
    let (code, e) = s.call("GET", "/api/v1/clusters/nope-db/plan", Some(ALICE), None);
    assert_eq!(code, 404, "{e}");
    let (code, plan) = s.call("GET", "/api/v1/clusters/legacy-db/plan", Some(BOB), None);
    assert_eq!(code, 200, "{plan}");
    assert_eq!(
        plan["preflight"]["passed"], false,
        "everyone reads a plan: {plan}"
    );

    // Fleets: none registered; a wave approval is for admins, and names what is missing.
    let (code, f) = s.call("GET", "/api/v1/fleets", Some(ALICE), None);
    assert_eq!((code, f), (200, json!([])));
    let (code, e) = s.call("GET", "/api/v1/fleets/shop", Some(ALICE), None);
    assert_eq!(code, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("shop"), "{e}");
    let (code, e) = s.call(
        "POST",
        "/api/v1/fleets/shop/waves/canary/approve",
        Some(ALICE),
        Some("{}"),
    );
    assert_eq!(code, 403, "{e}");
    let (code, e) = s.call(
        "POST",
        "/api/v1/fleets/shop/waves/canary/approve",
        Some(ROOT),
        Some("{}"),
    );
    assert_eq!(code, 409, "{e}");

    // The audit log: admins only, every action with who took it, refusals included.
    assert_eq!(s.call("GET", "/api/v1/audit", Some(ALICE), None).0, 403);
    let (code, log) = s.call("GET", "/api/v1/audit", Some(ROOT), None);
    assert_eq!(code, 200, "{log}");
    let entries: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["identity"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["outcome"]
                    .as_str()
                    .unwrap()
                    .split(':')
                    .next()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert!(
        entries.contains(&("alice (orders)".into(), "start".into(), "done".into())),
        "{entries:?}"
    );
    assert!(
        entries.contains(&("bob (payments)".into(), "start".into(), "refused".into())),
        "{entries:?}"
    );
    assert!(
        entries.contains(&("bob (payments)".into(), "abort".into(), "refused".into())),
        "{entries:?}"
    );
    for who in ["alice (orders)", "root (platform)"] {
        assert!(
            entries.contains(&(who.into(), "approve-wave".into(), "refused".into())),
            "{who}: {entries:?}"
        );
    }

    // Pages: the fleet, a cluster's wizard (no start button for a non-owner), the run.
    let (code, fleet) = s.call("GET", "/?owner=orders", Some(BOB), None);
    assert_eq!(code, 200);
    let fleet = fleet.as_str().unwrap();
    assert!(
        fleet.contains("orders-db") && !fleet.contains("payments-db"),
        "filtered by owner"
    );
    let (code, wizard) = s.call("GET", "/clusters/payments-db", Some(ALICE), None);
    assert_eq!(code, 200);
    let wizard = wizard.as_str().unwrap();
    assert!(wizard.contains("id=\"preflight\"") && wizard.contains("write blackout"));
    assert!(
        wizard.contains("id=\"not-yours\"") && !wizard.contains("id=\"start\""),
        "no start button"
    );
    let (_, wizard) = s.call("GET", "/clusters/payments-db", Some(BOB), None);
    assert!(
        wizard.as_str().unwrap().contains("id=\"start\""),
        "the owner's start button"
    );
    // A form without its CSRF token is refused (and starts nothing).
    let (code, _) = s.call(
        "POST",
        "/clusters/payments-db/start",
        Some(BOB),
        Some("csrf=forged"),
    );
    assert_eq!(code, 403);
    let (code, run_page) = s.call("GET", &format!("/runs/{run_id}"), Some(BOB), None);
    assert_eq!(code, 200);
    assert!(
        run_page.as_str().unwrap().contains("EventSource"),
        "the run page follows live"
    );
}

/// A run a worker held (it stopped where a person must decide) goes back to the queue when its
/// owner resumes it or aborts it; nobody else may, and a run that is not held is not resumed.
#[test]
fn a_held_run_is_resumed_or_aborted_by_its_owner_through_the_queue() {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &url);
    let store = godwit_pgstore::PgStore::connect(&url, godwit_pgstore::Options::default()).unwrap();
    let state_of = |id: &str| {
        store
            .queue_rows()
            .unwrap()
            .into_iter()
            .find(|r| r.run_id == id)
            .map(|r| r.state)
            .unwrap()
    };
    // Queued, not held: nothing to resume.
    let (code, run) = s.call(
        "POST",
        "/api/v1/clusters/orders-db/runs",
        Some(ALICE),
        Some("{}"),
    );
    assert!(code < 300, "{code} {run}");
    let id = run["run_id"].as_str().unwrap().to_string();
    let resume = format!("/api/v1/runs/{id}/resume");
    let (code, e) = s.call("POST", &resume, Some(ALICE), Some("{}"));
    assert_eq!(code, 409, "{e}");
    assert!(e["error"].as_str().unwrap().contains("not held"), "{e}");
    // A worker takes it and holds it (as when its world cannot be built).
    let _worker = store.register_worker("test-worker").unwrap();
    let taken = store.take("test-worker").unwrap().expect("the queued run");
    assert_eq!(taken.job.run_id, id);
    assert!(
        store
            .settle(
                &id,
                "test-worker",
                taken.attempt,
                godwit_pgstore::Settle::Held,
                Some("refused"),
                Some("held by the test".into())
            )
            .unwrap()
    );
    assert_eq!(state_of(&id), "held");
    // Not the owner: refused, nothing changed.
    let (code, e) = s.call("POST", &resume, Some(BOB), Some("{}"));
    assert_eq!(code, 403, "{e}");
    assert_eq!(state_of(&id), "held");
    // The owner: back in the queue for any worker, once.
    let (code, r) = s.call("POST", &resume, Some(ALICE), Some("{}"));
    assert_eq!((code, r["resume"].as_str()), (200, Some("queued")), "{r}");
    assert_eq!(state_of(&id), "queued");
    // Held again, then aborted: it never began, so the abort ends it in the queue.
    let taken = store
        .take("test-worker")
        .unwrap()
        .expect("the requeued run");
    store
        .settle(
            &id,
            "test-worker",
            taken.attempt,
            godwit_pgstore::Settle::Held,
            Some("refused"),
            None,
        )
        .unwrap();
    let (code, r) = s.call(
        "POST",
        &format!("/api/v1/runs/{id}/abort"),
        Some(ALICE),
        Some(r#"{"reason": "not today"}"#),
    );
    assert_eq!((code, r["abort"].as_str()), (200, Some("done")), "{r}");
    assert_eq!(
        state_of(&id),
        "done",
        "it never began: nothing to roll back"
    );
    let (code, e) = s.call("POST", &resume, Some(ALICE), Some("{}"));
    assert_eq!(code, 409, "a run aborted is not resumed: {e}");
    let (code, audit) = s.call("GET", "/api/v1/audit", Some(ROOT), None);
    assert_eq!(code, 200);
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["target"] == id.as_str())
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["outcome"].as_str().unwrap().chars().take(7).collect(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("resume".to_string(), "refused".to_string()),
            ("abort".into(), "done".into()),
            ("resume".into(), "done".into()),
            ("resume".into(), "refused".into()),
            ("resume".into(), "refused".into()),
        ],
        "newest first: {audit}"
    );
}

#[test]
fn sigterm_ends_the_live_streams_and_the_server_exits_leaving_no_temporary_files() {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve(dir.path(), &url);
    // A plan and a start write the embedded runbooks to temporary directories the process keeps.
    let (code, plan) = s.call("GET", "/api/v1/clusters/orders-db/plan", Some(ALICE), None);
    assert_eq!(code, 200, "{plan}");
    let (code, run) = s.call(
        "POST",
        "/api/v1/clusters/orders-db/runs",
        Some(ALICE),
        Some("{}"),
    );
    assert!(code < 300, "{code} {run}");
    assert!(
        std::fs::read_dir(tmp_of(dir.path())).unwrap().count() > 0,
        "the start wrote its runbook elsewhere than TMPDIR: this test would prove nothing"
    );
    // A browser tab watching a run: its stream never ends by itself while the run is open.
    let url = format!("{}/api/v1/runs/no-such-run/events", s.base);
    let watcher = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let resp = agent
            .get(&url)
            .header("Authorization", format!("Bearer {ALICE}"))
            .call();
        resp.map(|mut r| r.body_mut().read_to_string().unwrap_or_default())
    });
    pause(Duration::from_millis(500));
    let status = s._serve.stop(Duration::from_secs(10));
    assert!(
        status.is_some_and(|st| st.success()),
        "godwit serve did not exit cleanly within 10 s of SIGTERM with a live stream open: {status:?}"
    );
    let body = watcher.join().unwrap().expect("the live stream answered");
    assert!(body.contains("event: changed"), "{body}");
    let left: Vec<_> = std::fs::read_dir(tmp_of(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "godwit serve left {left:?} in its TMPDIR");
}

#[test]
fn a_bad_auth_file_or_a_file_store_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, "[[tokens]]\nsha256 = \"short\"\nuser = \"a\"\n").unwrap();
    let o = Command::new(GODWIT)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--world",
            "sim",
            "--generated",
            "3",
            "--auth",
        ])
        .arg(&auth)
        .env("GODWIT_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tokens[0].sha256") && err.contains("--new-token"),
        "{err}"
    );
    std::fs::write(
        &auth,
        format!("[[tokens]]\nsha256 = \"{}\"\nuser = \"a\"\n", sha(ALICE)),
    )
    .unwrap();
    let o = Command::new(GODWIT)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--world",
            "sim",
            "--generated",
            "3",
            "--auth",
        ])
        .arg(&auth)
        .env("GODWIT_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--store postgres://"));
    let o = Command::new(GODWIT)
        .args(["serve", "--new-token", "carol:orders,payments"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("[[tokens]]") && out.contains("teams = [\"orders\", \"payments\"]"),
        "{out}"
    );
}

/// Where the browser test's screenshots go (CI keeps `target/test-artifacts`).
fn artifacts() -> std::path::PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/serve");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A real browser walks the wizard: headless Chromium through chromedriver (Debian's
/// `chromium` + `chromium-driver`). The owner signs in, opens the fleet and her cluster, reads
/// the plan, starts it and watches the run page turn to `succeeded` without reloading, with
/// its lag chart; another team's member sees no start button. Screenshots in
/// target/test-artifacts/serve/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_walks_the_wizard_from_the_plan_to_a_succeeded_run() {
    use fantoccini::{ClientBuilder, Locator};
    let driver_bin = which("chromedriver").unwrap_or_else(|| {
        panic!("chromedriver is missing: apt-get install -y chromium chromium-driver (scripts/test.sh does it when run as root)")
    });
    assert!(
        which("chromium").is_some(),
        "chromium is missing: apt-get install -y chromium chromium-driver"
    );
    let scratch = Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &url);
    let _worker = Proc(
        Command::new(GODWIT)
            .args(["worker", "--jobs", "1"])
            .env("GODWIT_STORE", &url)
            .env("GODWIT_STATE_DIR", dir.path().join("worker-state"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Proc(
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"] }),
    );
    let t0 = Instant::now();
    let browser = loop {
        let mut b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        match b
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if t0.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver on {port}: {e}"),
        }
    };
    let shots = artifacts();
    let shot = |name: &'static str| {
        let browser = browser.clone();
        let path = shots.join(name);
        async move {
            let png = browser.screenshot().await.unwrap();
            std::fs::write(&path, png).unwrap();
        }
    };
    // The text of the element with id `id` on the page shown.
    let text_of = |id: &'static str| {
        let browser = browser.clone();
        async move {
            browser
                .find(Locator::Id(id))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let base = s.base.clone();
    let sign_in = |token: &'static str| {
        let (browser, base) = (browser.clone(), base.clone());
        async move {
            browser.delete_all_cookies().await.unwrap();
            browser.goto(&format!("{base}/login")).await.unwrap();
            browser
                .find(Locator::Id("token"))
                .await
                .unwrap()
                .send_keys(token)
                .await
                .unwrap();
            browser
                .find(Locator::Id("sign-in"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap(); // Signed in when the fleet page (the redirect's target) is there.
            browser
                .wait()
                .at_most(Duration::from_secs(30))
                .for_element(Locator::Id("clusters"))
                .await
                .unwrap();
        }
    };

    // Alice (team orders): the fleet, her cluster's plan, start.
    sign_in(ALICE).await;
    let fleet = text_of("clusters").await;
    assert!(
        fleet.contains("orders-db") && fleet.contains("payments-db"),
        "{fleet}"
    );
    shot("1-fleet.png").await;
    browser
        .find(Locator::LinkText("orders-db"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let preflight = browser
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Id("preflight"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        preflight.contains("source-available") && !preflight.contains("FAIL"),
        "{preflight}"
    );
    let prediction = text_of("prediction").await;
    assert!(
        prediction.contains("write blackout") && prediction.contains("succeeded"),
        "{prediction}"
    );
    // The owner sees whether the Aurora class suits the source's peak (issue 24).
    assert!(
        prediction.contains("target size") && prediction.contains("fits — db.r6g.xlarge"),
        "{prediction}"
    );
    // And what the run proves before the flip: the audit and the query check, with database
    // access; shadow reads are opt-in.
    let assurance = text_of("assurance").await;
    assert!(
        assurance.contains("rows compared")
            && assurance.contains("run on both sides")
            && assurance.contains("shadow reads not run"),
        "{assurance}"
    );
    // Issue 25: whether the logical path could carry it instead.
    let logical = text_of("logical").await;
    assert!(logical.starts_with("Logical path: "), "{logical}");
    shot("2-wizard.png").await;
    browser
        .find(Locator::Css("#start button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The run page follows the run live (server-sent events; no reload) to its end.
    // The form's post plans the cluster before it redirects: wait for the navigation.
    let t0 = Instant::now();
    let run_url = loop {
        let url = browser.current_url().await.unwrap().to_string();
        if url.contains("/runs/") {
            break url;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "start never led to the run's page: {url}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let t0 = Instant::now();
    loop {
        // The live update replaces the body: an element read across it is stale, read again.
        let body = match browser.find(Locator::Css("body")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if body.contains("Run ")
            && body.contains("succeeded")
            && body.contains("hash chain verified")
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the page never showed succeeded:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        browser.current_url().await.unwrap().to_string(),
        run_url,
        "no navigation: live"
    );
    let chart = browser
        .find(Locator::Css("#lag-chart svg"))
        .await
        .unwrap()
        .html(false)
        .await
        .unwrap();
    assert!(chart.contains("slot lag"), "the lag chart");
    shot("3-run-succeeded.png").await;

    // Bob (team payments) reads orders-db's plan, but has no start button.
    sign_in(BOB).await;
    browser
        .goto(&format!("{base}/clusters/orders-db"))
        .await
        .unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("not-yours"))
        .await
        .expect("bob is told the cluster is not his");
    assert!(
        browser.find(Locator::Id("start")).await.is_err(),
        "no start button for bob"
    );
    shot("4-not-the-owner.png").await;
    browser.close().await.unwrap();
    println!("screenshots in {}", shots.display());
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}
