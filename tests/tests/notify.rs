//! Notifications (issue 21) end to end: a fleet file's `[[notify]]` targets, a real PostgreSQL
//! store, `godwit fleet run` and a real `godwit worker` process, and local receivers.
//!
//! * webhook: a fleet of two simulated clusters in one wave with a canary and an approval
//!   after it, one cluster with an approval before its cutover. The receiver answers the
//!   first two POSTs with 503 (retried), a second target answers 404 (failed at once, never
//!   retried), a third is a closed port (retried, never blocks a run). The test acts on what
//!   it is told — it approves the cutover and the wave named in the notifications — and
//!   checks every kind arrived with what it promises: phases, a gate closed too long with its
//!   reasons, the approvals, the cutover's start and end with the measured write blackout,
//!   each run's end, the fleet's end.
//! * SNS: a topic in moto with an HTTP subscription to a receiver; a worker publishes a queued
//!   notification to it.
//!
//! Needs the PostgreSQL server binaries and moto (`scripts/test.sh` provisions them).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use godwit_lab::pgproc::Scratch;
// A child stopped by SIGTERM when dropped (then SIGKILL).
use godwit_tests::harness::Stopping as Proc;
use godwit_tests::moto::{ACCESS_KEY, Moto, SECRET_KEY};
use serde_json::Value;

const GODWIT: &str = env!("CARGO_BIN_EXE_godwit-toy");

/// What a receiver got: (path, the `X-Godwit-Delivery` header, the body), in arrival order.
type Got = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

#[derive(Clone)]
struct Receiver {
    got: Got,
    /// Answer this many POSTs to `/hook` with 503 first.
    fail_first: Arc<Mutex<u32>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let record = |path: &str| {
        let id = headers
            .get("x-godwit-delivery")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let v = serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
        r.got.lock().unwrap().push((path.to_string(), id, v));
    };
    {
        let mut left = r.fail_first.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            record("/hook (503)");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    record("/hook");
    StatusCode::NO_CONTENT
}

async fn gone(State(r): State<Receiver>, body: String) -> StatusCode {
    let v = serde_json::from_str(&body).unwrap_or(Value::Null);
    r.got.lock().unwrap().push(("/gone".into(), None, v));
    StatusCode::NOT_FOUND
}

async fn sns(State(r): State<Receiver>, body: String) -> StatusCode {
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    r.got.lock().unwrap().push(("/sns".into(), None, v));
    StatusCode::OK
}

/// A receiver on a loopback port of its own, served by `rt` until the test ends.
fn receiver(rt: &tokio::runtime::Runtime, fail_first: u32) -> (String, Receiver) {
    let r = Receiver {
        got: Arc::default(),
        fail_first: Arc::new(Mutex::new(fail_first)),
    };
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .route("/gone", post(gone))
        .route("/sns", post(sns))
        .with_state(r.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, r)
}

fn pause(d: Duration) {
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}

struct Env {
    dir: tempfile::TempDir,
    url: String,
}

impl Env {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(GODWIT);
        c.args(args)
            .current_dir(self.dir.path())
            .env("GODWIT_STATE_DIR", self.dir.path().join("state"))
            .env("GODWIT_STORE", &self.url)
            .env("TMPDIR", godwit_tests::harness::tmp_in(self.dir.path()))
            .env("USER", "tester")
            .env("NO_COLOR", "1");
        c
    }

    fn godwit(&self, args: &[&str]) -> String {
        let o = self.command(args).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "godwit {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into()
    }

    /// A worker, its output in `worker.log` (shown when a wait fails).
    fn worker(&self) -> Proc {
        let log = std::fs::File::create(self.dir.path().join("worker.log")).unwrap();
        Proc(
            self.command(&["worker", "--poll", "200ms", "--lease", "5s"])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }
}

/// Wait (≤ `within`) until `got` holds a body `pick` accepts; that body.
fn wait_for(
    got: &Got,
    within: Duration,
    what: &str,
    log: impl Fn() -> String,
    pick: impl Fn(&str, &Value) -> bool,
) -> Value {
    let until = Instant::now() + within;
    loop {
        if let Some((_, _, v)) = got.lock().unwrap().iter().find(|(p, _, v)| pick(p, v)) {
            return v.clone();
        }
        assert!(
            Instant::now() < until,
            "no {what} within {within:?}; got: {:#?}\nthe worker said:\n{}",
            got.lock().unwrap(),
            log()
        );
        pause(Duration::from_millis(100));
    }
}

#[test]
fn a_fleet_tells_its_receivers_what_happens_and_a_dead_receiver_blocks_nothing() {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        url: format!("postgres://postgres@127.0.0.1:{}/postgres", server.port),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (base, rcv) = receiver(&rt, 2);
    // The idle scenario for a second instance id (the built-in one is orders-db).
    let idle = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/idle-source.toml"
    ))
    .unwrap();
    let payments = env.dir.path().join("payments.toml");
    std::fs::write(&payments, idle.replace("\"orders-db\"", "\"payments-db\"")).unwrap();
    let fleet = env.dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            r#"name = "shop"
[params]
validation_window = "1h"
[[clusters]]
id = "orders-db"
owner = "orders"
world = "sim:idle-source"
params = {{ approve_cutover = true }}
[[clusters]]
id = "payments-db"
owner = "payments"
world = "sim:{payments}"
[[waves]]
name = "all"
clusters = ["orders-db", "payments-db"]
canaries = 1
approve_after_canaries = true
[[notify]]
webhook = "{base}/hook"
gate_closed_after = "10m"
[[notify]]
webhook = "{base}/gone"
events = ["finished"]
owners = ["payments"]
[[notify]]
webhook = "http://127.0.0.1:1/closed"
owners = ["payments"]
events = ["cutover-end"]
"#,
            payments = payments.display()
        ),
    )
    .unwrap();
    let _worker = env.worker();
    env.godwit(&[
        "fleet",
        "run",
        "--fleet",
        fleet.to_str().unwrap(),
        "--world",
        "sim",
        "--detach",
    ]);

    // The canary waits before its cutover; the notification says which run and how to approve.
    let wait = Duration::from_secs(120);
    let asked = wait_for(
        &rcv.got,
        wait,
        "cutover approval",
        || env.log(),
        |p, v| p == "/hook" && v["kind"] == "approval" && v["cluster"] == "orders-db",
    );
    let run_id = asked["run_id"].as_str().unwrap().to_string();
    let what = asked["summary"].as_str().unwrap();
    assert!(
        what.contains(&format!("godwit approve {run_id} --name cutover")),
        "{asked}"
    );
    env.godwit(&["approve", &run_id, "--name", "cutover"]);

    // Then the wave waits after its canary: the fleet's own notification names the command.
    let asked = wait_for(
        &rcv.got,
        wait,
        "wave approval",
        || env.log(),
        |p, v| p == "/hook" && v["kind"] == "approval" && v["cluster"].is_null(),
    );
    assert!(
        asked["summary"]
            .as_str()
            .unwrap()
            .contains("godwit fleet approve all --name shop"),
        "{asked}"
    );
    env.godwit(&["fleet", "approve", "all", "--name", "shop"]);
    wait_for(
        &rcv.got,
        wait,
        "the fleet's end",
        || env.log(),
        |p, v| p == "/hook" && v["kind"] == "finished" && v["cluster"].is_null(),
    );
    // Each run's end too (the runs' news and the fleet's are inserted by different threads).
    for cluster in ["orders-db", "payments-db"] {
        wait_for(
            &rcv.got,
            wait,
            "a run's end",
            || env.log(),
            |p, v| p == "/hook" && v["kind"] == "finished" && v["cluster"] == cluster,
        );
    }
    // And the store's record settled: the receiver saw a POST before the worker recorded it.
    let until = Instant::now() + wait;
    let rows: Vec<Value> = loop {
        let rows: Vec<Value> =
            serde_json::from_str(&env.godwit(&["worker", "--notifications", "-o", "json"]))
                .unwrap();
        let settled = rows
            .iter()
            .filter(|r| r["state"] == "pending")
            .all(|r| r["target"].as_str().unwrap().contains("127.0.0.1:1/"));
        if settled || Instant::now() > until {
            break rows;
        }
        pause(Duration::from_millis(200));
    };

    let got = rcv.got.lock().unwrap().clone();
    // Retried: the first two POSTs got 503 and came again; every delivery id arrived once
    // accepted, and the ids say how a receiver drops a duplicate.
    assert_eq!(got.iter().filter(|(p, ..)| p == "/hook (503)").count(), 2);
    let accepted: Vec<&(String, Option<String>, Value)> =
        got.iter().filter(|(p, ..)| p == "/hook").collect();
    let failed_ids: Vec<&Option<String>> = got
        .iter()
        .filter(|(p, ..)| p == "/hook (503)")
        .map(|(_, id, _)| id)
        .collect();
    for id in failed_ids {
        assert!(
            accepted.iter().any(|(_, a, _)| a == id),
            "delivery {id:?} answered 503 was never sent again"
        );
    }
    let mut by_id = BTreeMap::new();
    for (_, id, v) in &accepted {
        let id = id.clone().expect("every POST names its delivery");
        assert_eq!(v["id"].to_string(), id, "the body carries the delivery id");
        assert!(by_id.insert(id, v).is_none(), "a delivery accepted twice");
    }
    // Every body says what, when, where.
    for v in by_id.values() {
        assert!(v["summary"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
        let at = v["at"].as_str().unwrap_or_default();
        assert!(at.len() == 24 && at.ends_with('Z'), "RFC 3339 time: {v}");
        assert_eq!(v["fleet"], "shop", "{v}");
    }
    let of = |cluster: &str| -> Vec<&Value> {
        by_id
            .values()
            .copied()
            .filter(|v| v["cluster"] == cluster)
            .collect()
    };
    for cluster in ["orders-db", "payments-db"] {
        let mine = of(cluster);
        let kinds: Vec<&str> = mine.iter().map(|v| v["kind"].as_str().unwrap()).collect();
        for want in [
            "phase",
            "gate-closed",
            "cutover-start",
            "cutover-end",
            "finished",
        ] {
            assert!(kinds.contains(&want), "{cluster}: no {want} in {kinds:?}");
        }
        assert!(mine.iter().all(|v| v["owner"]
            == if cluster == "orders-db" {
                "orders"
            } else {
                "payments"
            }));
        let phases: Vec<&str> = mine
            .iter()
            .filter(|v| v["kind"] == "phase")
            .map(|v| v["detail"]["phase"].as_str().unwrap())
            .collect();
        assert!(
            phases.contains(&"preflight") && phases.contains(&"route switch"),
            "{cluster}: {phases:?}"
        );
        let gate = mine.iter().find(|v| v["kind"] == "gate-closed").unwrap();
        assert!(
            gate["detail"]["waited_ms"].as_i64().unwrap() >= 600_000
                && !gate["detail"]["why"].as_array().unwrap().is_empty(),
            "a gate closed past gate_closed_after, with its reasons: {gate}"
        );
        let end = mine.iter().find(|v| v["kind"] == "cutover-end").unwrap();
        let blackout = end["detail"]["blackout_ms"].as_i64().unwrap();
        assert!(blackout > 0, "{end}");
        let fin = mine.iter().find(|v| v["kind"] == "finished").unwrap();
        assert_eq!(fin["detail"]["outcome"], "succeeded", "{fin}");
        assert_eq!(
            fin["detail"]["blackout_ms"].as_i64(),
            Some(blackout),
            "{fin}"
        );
    }
    // Only orders-db asked for its cutover's approval; only payments-db's owner hears the
    // 404 target, and only of the end.
    assert!(of("payments-db").iter().all(|v| v["kind"] != "approval"));
    let gone: Vec<&Value> = got
        .iter()
        .filter(|(p, ..)| p == "/gone")
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(gone.len(), 1, "a 404 is not retried: {gone:?}");
    assert_eq!(gone[0]["cluster"], "payments-db");

    // The store's record: delivered, failed at once with the reason, still retrying. Targets
    // are shown without their path (a webhook's secret is often there).
    let host = base.trim_start_matches("http://");
    let of_host = |h: &str| -> Vec<&Value> {
        rows.iter()
            .filter(|r| r["target"] == format!("webhook http://{h}/…").as_str())
            .collect()
    };
    let mine = of_host(host);
    let refused: Vec<&&Value> = mine.iter().filter(|r| r["state"] == "failed").collect();
    assert!(
        refused.len() == 1
            && refused[0]["attempts"] == 1
            && refused[0]["cluster"] == "payments-db"
            && refused[0]["kind"] == "finished"
            && refused[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("HTTP 404"),
        "one 404, failed at its first attempt: {refused:#?}"
    );
    assert!(
        mine.iter()
            .filter(|r| r["state"] != "failed")
            .all(|r| r["state"] == "delivered"),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .all(|r| !r["target"].as_str().unwrap().contains("/hook")
                && !r["last_error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("/gone")),
        "no path shown: {rows:#?}"
    );
    let closed = of_host("127.0.0.1:1");
    assert!(
        closed.len() == 1
            && closed[0]["state"] == "pending"
            && closed[0]["attempts"].as_i64().unwrap() >= 1
            && closed[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1:1"),
        "a receiver that is down is retried and blocked nothing: {closed:#?}"
    );

    // The blackout told is the one the run's transcript shows (as `godwit show` measures it).
    let store =
        godwit_pgstore::PgStore::connect(&env.url, godwit_pgstore::Options::default()).unwrap();
    for cluster in ["orders-db", "payments-db"] {
        let end = by_id
            .values()
            .find(|v| v["cluster"] == cluster && v["kind"] == "cutover-end")
            .unwrap();
        let run = end["run_id"].as_str().unwrap();
        let lines: Vec<godwit_engine::transcript::Line> = store
            .transcript_lines(run)
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let godwit::demo::Blackout::Ended { from, to, .. } = godwit::demo::blackout(&lines) else {
            panic!("{cluster}: no blackout in its transcript");
        };
        assert_eq!(
            end["detail"]["blackout_ms"].as_i64(),
            Some(to - from),
            "{end}"
        );
    }
}

#[test]
fn a_worker_publishes_to_an_sns_topic() {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        url: format!("postgres://postgres@127.0.0.1:{}/postgres", server.port),
    };
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (base, rcv) = receiver(&rt, 0);
    // The topic and its HTTP subscription, through SNS's query API.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let call = |form: &str| -> String {
        let mut r = agent
            .post(&moto.url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            // moto routes by the credential scope's service (it checks no signature).
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20261205/us-east-1/sns/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .send(form.to_string())
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        assert_eq!(status, 200, "{form}: {text}");
        text
    };
    let created = call("Action=CreateTopic&Name=migrations&Version=2010-03-31");
    let arn = created
        .split("<TopicArn>")
        .nth(1)
        .and_then(|s| s.split("</TopicArn>").next())
        .unwrap_or_else(|| panic!("no TopicArn in {created}"))
        .to_string();
    let endpoint = format!("{base}/sns")
        .replace(':', "%3A")
        .replace('/', "%2F");
    call(&format!(
        "Action=Subscribe&TopicArn={}&Protocol=http&Endpoint={endpoint}&Version=2010-03-31",
        arn.replace(':', "%3A")
    ));

    // A notification as a run in the aws world queues it (the run's settings name the endpoint).
    let store = godwit_pgstore::PgStore::connect(&env.url, godwit_pgstore::Options::default())
        .expect("the store");
    let body = serde_json::json!({
        "kind": "cutover-end", "at": "2026-12-05T22:00:00.000Z", "fleet": "shop",
        "cluster": "orders-db", "owner": "orders", "run_id": "orders-db-1",
        "summary": "orders-db: cutover done: write blackout 1.2 s", "detail": { "blackout_ms": 1200 },
    });
    store
        .notify(vec![godwit_pgstore::Outgoing {
            target: godwit_pgstore::NotifyTarget {
                kind: "sns".into(),
                address: arn.clone(),
                events: vec![],
                gate_closed_after_ms: None,
                aws: Some(serde_json::json!({ "endpoint_url": moto.url })),
            },
            body: body.clone(),
        }])
        .unwrap();
    let _worker = Proc(
        env.command(&["worker", "--poll", "200ms"])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let got = wait_for(
        &rcv.got,
        Duration::from_secs(60),
        "the SNS delivery",
        String::new,
        |p, v| p == "/sns" && v["Type"] == "Notification",
    );
    assert_eq!(got["TopicArn"], arn.as_str(), "{got}");
    assert_eq!(got["Subject"], body["summary"], "{got}");
    let message: Value = serde_json::from_str(got["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["kind"], "cutover-end");
    assert_eq!(message["detail"]["blackout_ms"], 1200);
    assert!(message["id"].as_i64().is_some(), "{message}");
    // Recorded once the Publish returned (moto posts to the subscriber inside it).
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = store.notifications(10).unwrap();
        if rows[0].state == "delivered" {
            break;
        }
        assert!(Instant::now() < until, "{rows:?}");
        pause(Duration::from_millis(100));
    }
}
