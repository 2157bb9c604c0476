//! Issue 20, the fleet run end to end: the generated simulated fleet registered with `godwit
//! fleet run` on a real PostgreSQL store and driven by three `godwit worker` processes (the
//! real CLI, each with its own state directory — three machines), while this harness SIGKILLs
//! (and replaces) and SIGSTOPs past their lease (and continues) random workers throughout.
//!
//! It checks that every cluster's run ends as its scenario says (the planted flaws refused by
//! the preflight and rolled back, every other cluster migrated), that the simulator's audit
//! found nothing (a worker holds a run whose world broke an invariant — a side effect done
//! twice among them), that every journal verifies and was written by one holder at a time,
//! that a worker stopped past its lease is refused at its next append, and that the waves kept
//! their rules (canaries first, at most `max_in_flight` at once, one wave after the other). It
//! prints the takeover times it saw and the fleet's runs per second.
//!
//! `GODWIT_FLEET_CLUSTERS` sets the fleet's size (default 400, the issue's); the runs use a
//! one-hour validation window (`--set validation_window=1h`) so that 400 simulated migrations
//! fit in a debug build's test run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use godwit_lab::pgproc::{Scratch, Server};
use godwit_stdlib::sim::fleet::{GENERATED_FLEET_SEED, generated_fleet};
use serde_json::Value;

// godwit with a toy world besides the real ones (tests/src/bin); the sim world is the real one.
const GODWIT: &str = env!("CARGO_BIN_EXE_godwit-toy");

/// The lease of the workers here: takeovers within seconds (the default is 30 s).
const LEASE: &str = "3s";
const LEASE_MS: u64 = 3000;

struct Env {
    dir: tempfile::TempDir,
    url: String,
}

impl Env {
    /// A command on "machine" `state`: its own state directory, the shared store.
    fn command_on(&self, state: &str, args: &[&str]) -> Command {
        let mut c = Command::new(GODWIT);
        c.args(args)
            .current_dir(self.dir.path())
            .env("GODWIT_STATE_DIR", self.dir.path().join(state))
            .env("GODWIT_STORE", &self.url)
            .env("USER", "tester")
            .env("NO_COLOR", "1");
        c
    }

    fn godwit(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.command_on("operator", args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.godwit(args);
        assert_eq!(code, 0, "godwit {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// A worker process on machine `name`; its events carry `name` and the process's pid (a
    /// replacement on the same machine is another worker).
    fn worker(&self, name: &'static str, events: &mpsc::Sender<Event>) -> Worker {
        let mut child = self
            .command_on(
                name,
                &[
                    "worker", "-o", "json", "--jobs", "4", "--lease", LEASE, "--poll", "200ms",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let tx = events.clone();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(Event {
                        machine: name,
                        pid,
                        at: Instant::now(),
                        v,
                    });
                }
            }
        });
        Worker { child }
    }
}

#[derive(Debug)]
struct Event {
    machine: &'static str,
    pid: u32,
    at: Instant,
    v: Value,
}

/// A worker process, continued and killed (by pid) when the test ends, panics included.
struct Worker {
    child: Child,
}

impl Worker {
    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pause(d: Duration) {
    let (_tx, rx) = mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}

fn env() -> (Scratch, Server, Env) {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (lab/src/pgproc.rs)");
    // The store takes ~40,000 appends here: no fsync wait on this shared disk (the append
    // bench measures the fsync'd cost).
    let server = scratch
        .primary("store", &[("synchronous_commit", "off")])
        .expect("start a server");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let dir = tempfile::tempdir().unwrap();
    (scratch, server, Env { dir, url })
}

/// `(run_id, seq, token, written_by)` of every journal record, by raw SQL.
fn journal_rows(server: &Server) -> Vec<(String, i64, i64, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(
            &server.conninfo("postgres", "postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        client
            .query(
                "SELECT run_id, seq, token, written_by FROM godwit.journal ORDER BY run_id, seq",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    })
}

#[test]
fn a_fleet_in_waves_survives_workers_killed_and_stopped_at_random() {
    let n: usize = std::env::var("GODWIT_FLEET_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let (_scratch, server, env) = env();
    let n_arg = n.to_string();

    // Bad input first: refused before anything is registered.
    let (code, _, err) = env.godwit(&[
        "fleet",
        "run",
        "--world",
        "sim",
        "--generated",
        &n_arg,
        "--set",
        "validation_windw=1h",
        "--detach",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("validation_window"), "did you mean: {err}");
    let (code, _, err) = env.godwit(&["fleet", "status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no fleet"), "{err}");

    let (code, out, err) = env.godwit(&[
        "fleet",
        "run",
        "--world",
        "sim",
        "--generated",
        &n_arg,
        "--set",
        "validation_window=1h",
        "--detach",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{n} clusters")), "{out}");
    // The same fleet again is followed, not registered twice.
    let (code, out, err) = env.godwit(&[
        "fleet",
        "run",
        "--world",
        "sim",
        "--generated",
        &n_arg,
        "--set",
        "validation_window=1h",
        "--detach",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("already in"), "{out}");

    let (tx, rx) = mpsc::channel();
    let names = ["machine-0", "machine-1", "machine-2"];
    let mut workers: Vec<Worker> = names.iter().map(|m| env.worker(m, &tx)).collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |k: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % k
    };
    let t0 = Instant::now();
    let limit = Duration::from_secs(25 * 60);
    // (when, machine, what, the pid of the worker it hit)
    let mut actions: Vec<(Instant, usize, &str, u32)> = Vec::new();
    let mut operator = Vec::new();
    let mut next_chaos = t0 + Duration::from_secs(4);
    let final_status = loop {
        assert!(
            t0.elapsed() < limit,
            "the fleet did not finish within {limit:?}; actions: {actions:?}"
        );
        pause(Duration::from_millis(500));
        let st = env.json(&["fleet", "status", "-o", "json"]);
        match st["state"].as_str().unwrap() {
            "done" => break st,
            "stopped" => {
                // Too many planted flaws in one wave: the operator reads why and goes on.
                let why: Vec<String> = st["waves"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|w| w["state"] == "stopped")
                    .map(|w| format!("{}: {}", w["wave"], w["note"]))
                    .collect();
                operator.push(format!("resume after {why:?}"));
                let (code, _, err) = env.godwit(&["fleet", "resume"]);
                assert_eq!(code, 0, "{err}");
            }
            "running" => {
                for w in st["waves"].as_array().unwrap() {
                    if w["state"] == "awaiting-approval" {
                        let wave = w["wave"].as_str().unwrap();
                        operator.push(format!("approve {wave}"));
                        let (code, _, err) = env.godwit(&["fleet", "approve", wave]);
                        assert_eq!(code, 0, "{err}");
                    }
                }
            }
            other => panic!("fleet state {other}: {st}"),
        }
        if Instant::now() >= next_chaos {
            let i = rand(3) as usize;
            if rand(2) == 0 {
                let pid = workers[i].child.id();
                workers[i].signal(nix::sys::signal::Signal::SIGKILL);
                let _ = workers[i].child.wait();
                actions.push((Instant::now(), i, "SIGKILL", pid));
                workers[i] = env.worker(names[i], &tx);
            } else {
                workers[i].signal(nix::sys::signal::Signal::SIGSTOP);
                actions.push((Instant::now(), i, "SIGSTOP", workers[i].child.id()));
                pause(Duration::from_millis(LEASE_MS + 1200));
                workers[i].signal(nix::sys::signal::Signal::SIGCONT);
            }
            next_chaos = Instant::now() + Duration::from_millis(3000 + rand(4000));
        }
    };
    let wall = t0.elapsed();
    drop(workers);
    let events: Vec<Event> = rx.try_iter().collect();

    // Takeovers: after each SIGKILL/SIGSTOP of a worker process, the first resume by another
    // process (a replacement on the same machine included) of a run the stopped one had taken
    // and not finished. It waits for the lease, then for a free slot (`--jobs`) somewhere.
    let mut takeovers = Vec::new();
    for (at, i, what, victim) in &actions {
        let theirs: BTreeSet<&str> = events
            .iter()
            .filter(|e| e.pid == *victim && e.at < *at && e.v["event"] != "fleet")
            .filter_map(|e| e.v["run_id"].as_str())
            .collect();
        let finished: BTreeSet<&str> = events
            .iter()
            .filter(|e| e.at < *at && e.v["event"] == "finished")
            .filter_map(|e| e.v["run_id"].as_str())
            .collect();
        if let Some(e) = events.iter().find(|e| {
            e.at > *at
                && e.pid != *victim
                && e.v["event"] == "resume"
                && e.v["run_id"]
                    .as_str()
                    .is_some_and(|r| theirs.contains(r) && !finished.contains(r))
        }) {
            let took = e.at - *at;
            takeovers.push(format!(
                "{what} {}: {:.1} s (by {})",
                names[*i],
                took.as_secs_f64(),
                e.machine
            ));
            assert!(
                took < Duration::from_secs(30),
                "takeover after {what} of {} took {took:?} (goal: 30 s)",
                names[*i]
            );
        }
    }
    let refused = events.iter().filter(|e| e.v["status"] == "locked").count();
    // Takes of a run whose lapsed job still drove its world on that machine: put back until it
    // ended (the world's files never shared by two jobs).
    let deferred = events.iter().filter(|e| e.v["event"] == "deferred").count();
    println!(
        "fleet run: {n} clusters on 3 workers in {:.1} s wall = {:.2} runs/s; {} chaos actions \
         ({} SIGKILL, {} SIGSTOP past the lease); operator: {operator:?}",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        actions.len(),
        actions.iter().filter(|a| a.2 == "SIGKILL").count(),
        actions.iter().filter(|a| a.2 == "SIGSTOP").count(),
    );
    println!(
        "takeovers (lease {LEASE}): {}; {refused} runs refused to a stale worker at its append; \
         {deferred} takes deferred while a lapsed job of their run still held its world",
        takeovers.join(", ")
    );
    assert!(!takeovers.is_empty(), "no takeover seen: {actions:?}");
    if actions.iter().any(|a| a.2 == "SIGSTOP") {
        assert!(
            refused > 0,
            "a worker stopped past its lease mid-run must be refused at its next append"
        );
    }

    // Every cluster ended as its scenario says.
    let fleet = generated_fleet(n, GENERATED_FLEET_SEED);
    let flawed: BTreeMap<&str, &str> = fleet
        .iter()
        .filter_map(|m| m.flaw.map(|f| (m.scenario.source.id.as_str(), f.check())))
        .collect();
    let mut ended = 0;
    let mut run_ids = Vec::new();
    for w in final_status["waves"].as_array().unwrap() {
        assert_eq!(w["state"], "done", "{w}");
        for m in w["members"].as_array().unwrap() {
            let cluster = m["cluster"].as_str().unwrap();
            let want = if flawed.contains_key(cluster) {
                "rolled-back"
            } else {
                "succeeded"
            };
            assert_eq!(
                m["state"],
                want,
                "{cluster} (flaw {:?}): {m}",
                flawed.get(cluster)
            );
            if let Some(check) = flawed.get(cluster) {
                let note = m["note"].as_str().unwrap_or("");
                assert!(note.contains(check), "{cluster}: {note}");
            }
            run_ids.push(m["run_id"].as_str().unwrap().to_string());
            ended += 1;
        }
    }
    assert_eq!(ended, n);

    // Wave rules, from when each member was queued and ended (the store's clock).
    let waves = final_status["waves"].as_array().unwrap();
    let mut previous_end = 0;
    for w in waves {
        let k = w["max_in_flight"].as_i64().unwrap();
        let members: Vec<(i64, i64, bool)> = w["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["queued_at_ms"].as_i64().unwrap(),
                    m["ended_at_ms"].as_i64().unwrap(),
                    m["canary"].as_bool().unwrap(),
                )
            })
            .collect();
        let first = members.iter().map(|m| m.0).min().unwrap();
        assert!(
            first >= previous_end,
            "wave {} began before the previous ended",
            w["wave"]
        );
        previous_end = members.iter().map(|m| m.1).max().unwrap();
        let canaries_end = members.iter().filter(|m| m.2).map(|m| m.1).max();
        if let Some(end) = canaries_end {
            assert!(
                members.iter().filter(|m| !m.2).all(|m| m.0 >= end),
                "wave {}: a member queued before its canaries ended",
                w["wave"]
            );
        }
        for &(q, _, _) in &members {
            let overlapping = members.iter().filter(|m| m.0 <= q && m.1 > q).count() as i64;
            assert!(
                overlapping <= k,
                "wave {}: {overlapping} in flight > {k}",
                w["wave"]
            );
        }
    }

    // Every journal verifies, and was written by one holder at a time.
    for id in &run_ids {
        let v = env.json(&["verify", id, "-o", "json"]);
        assert_eq!(v["intact"], true, "{id}: {v}");
    }
    let mut by_run: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (run, _, token, by) in journal_rows(&server) {
        by_run.entry(run).or_default().push((token, by));
    }
    assert_eq!(by_run.len(), n, "one journal per cluster");
    for (run, rows) in &by_run {
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0), "{run}: {rows:?}");
        let mut stretches: Vec<&String> = rows.iter().map(|r| &r.1).collect();
        stretches.dedup();
        let distinct: BTreeSet<&&String> = stretches.iter().collect();
        assert_eq!(
            stretches.len(),
            distinct.len(),
            "{run}: two writers interleaved"
        );
    }
}

/// Fleet commands need the shared store, and everything else is checked first: an unreachable
/// store, a file store, a bad override — each a clear error (exit 2) before anything is queued.
#[test]
fn fleet_commands_refuse_bad_input_and_a_missing_store_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = |store: Option<&str>, args: &[&str]| {
        let mut c = Command::new(GODWIT);
        c.args(args)
            .current_dir(dir.path())
            .env("GODWIT_STATE_DIR", dir.path().join("state"))
            .env_remove("GODWIT_STORE");
        if let Some(s) = store {
            c.env("GODWIT_STORE", s);
        }
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, err) = run(
        None,
        &["fleet", "run", "--world", "sim", "--generated", "3"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("needs the shared store") && err.contains("--store"),
        "{err}"
    );
    for args in [
        &["fleet", "status"][..],
        &["fleet", "approve", "canary"][..],
        &["fleet", "pause"][..],
    ] {
        let (code, err) = run(None, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("needs the shared store"), "{args:?}: {err}");
    }
    let (code, err) = run(
        Some("postgres://godwit:secret@127.0.0.1:1/godwit?connect_timeout=2"),
        &["fleet", "run", "--world", "sim", "--generated", "3"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("127.0.0.1:1") && !err.contains("secret"),
        "{err}"
    );
    // The override is checked before the store is even looked at.
    let (code, err) = run(
        Some("postgres://godwit@127.0.0.1:1/godwit?connect_timeout=2"),
        &[
            "fleet",
            "run",
            "--world",
            "sim",
            "--generated",
            "3",
            "--set",
            "approve_cutover=maybe",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("approve_cutover") && !err.contains("127.0.0.1:1"),
        "{err}"
    );
    let (code, err) = run(None, &["fleet", "run", "--world", "sim", "--name", ""]);
    assert_eq!(code, 2, "{err}");
}

/// `fleet run` without `--detach` follows the fleet, printing what happens, and returns when a
/// wave waits for an approval; `fleet status --watch` follows it to its end after the approval.
#[test]
fn fleet_run_follows_the_fleet_until_it_needs_a_person() {
    let (_scratch, _server, env) = env();
    let (tx, _rx) = mpsc::channel();
    let _worker = env.worker("machine-0", &tx);
    let o = env
        .command_on(
            "operator",
            &[
                "fleet",
                "run",
                "--world",
                "sim",
                "--generated",
                "3",
                "--set",
                "validation_window=1h",
                "--poll",
                "200ms",
            ],
        )
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "3 clusters in 1 wave registered",
        "wave canary: started: canaries first — 2 canaries first",
        ": succeeded",
        "wave canary: waits for an approval",
        "awaiting-approval",
    ] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
    let (code, out, err) = env.godwit(&["fleet", "approve", "canary"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved by tester"), "{out}");
    let (code, out, err) = env.godwit(&["fleet", "status", "--watch"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("fleet generated: fleet done"), "{out}");
    assert!(out.contains("3 succeeded"), "{out}");
    let (code, _, err) = env.godwit(&["fleet", "approve", "canary"]);
    assert_eq!(code, 2);
    assert!(err.contains("is done, not waiting"), "{err}");
}
