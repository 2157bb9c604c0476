//! Issue 20, the shared PostgreSQL store, end to end: `godwit worker` processes (the real CLI,
//! as separate processes) on a real PostgreSQL server take queued runs, and one that is
//! SIGSTOPped mid-run loses its runs to another worker and is refused when it wakes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use godwit_lab::pgproc::{Scratch, Server};
use serde_json::Value;

const GODWIT: &str = env!("CARGO_BIN_EXE_godwit-toy");

/// Eight wall-clock steps of 250 ms in the `pure` world: long enough to stop a worker in the
/// middle of a run, no world whose state two processes could share.
const SLOW: &str = r#"
for i in 0..8 {
    step("s" + i, || { sleep("250ms"); i });
}
"done"
"#;

struct Env {
    dir: tempfile::TempDir,
    url: String,
}

impl Env {
    fn command(&self, args: &[&str]) -> Command {
        self.command_on("state", args)
    }

    /// A command on "machine" `state`: its own state directory, the shared store.
    fn command_on(&self, state: &str, args: &[&str]) -> Command {
        let mut c = Command::new(GODWIT);
        c.args(args)
            .current_dir(self.dir.path())
            .env("GODWIT_STATE_DIR", self.dir.path().join(state))
            .env("GODWIT_STORE", &self.url)
            .env("GODWIT_TOY_WORLD", self.dir.path().join("world"))
            .env("USER", "tester");
        c
    }

    fn godwit(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.command(args).output().unwrap();
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

    /// `godwit run RUNBOOK --cluster CLUSTER --world WORLD --enqueue`: the queued run's id.
    fn enqueue(&self, runbook: &str, cluster: &str, world: &str) -> String {
        let v = self.json(&[
            "run",
            runbook,
            "--cluster",
            cluster,
            "--world",
            world,
            "--enqueue",
            "-o",
            "json",
        ]);
        v["run_id"].as_str().unwrap().to_string()
    }

    /// A worker whose JSON event lines arrive on `events` tagged with `name`.
    fn worker(&self, name: &'static str, args: &[&str], events: &mpsc::Sender<Event>) -> Worker {
        let mut child = self
            .command(&[&["worker", "-o", "json"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let tx = events.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(Event {
                        worker: name,
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
    worker: &'static str,
    at: Instant,
    v: Value,
}

/// A worker process, continued and killed if the test ends early.
struct Worker {
    child: Child,
}

impl Worker {
    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    fn wait(mut self, limit: Duration) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(t0.elapsed() < limit, "worker did not exit within {limit:?}");
            pause(Duration::from_millis(50));
        }
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
    let server = scratch.primary("store", &[]).expect("start a server");
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

fn next(rx: &mpsc::Receiver<Event>, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let t0 = Instant::now();
    loop {
        let left = Duration::from_secs(60).saturating_sub(t0.elapsed());
        match rx.recv_timeout(left) {
            Ok(e) if pred(&e) => return e,
            Ok(_) => {}
            Err(_) => panic!("no {what} within 60 s"),
        }
    }
}

#[test]
fn a_stopped_workers_runs_are_taken_over_and_it_is_refused_when_it_wakes() {
    let (_scratch, server, env) = env();
    let runbook: PathBuf = env.dir.path().join("slow.rhai");
    std::fs::write(&runbook, SLOW).unwrap();
    let runbook = runbook.to_str().unwrap();

    // Six slow runs and one simulated migration, queued.
    let mut queued = BTreeSet::new();
    for i in 0..6 {
        queued.insert(env.enqueue(runbook, &format!("db-{i}"), "pure"));
    }
    let standard = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let sim = env.enqueue(standard.to_str().unwrap(), "orders-db", "sim:busy-source");
    queued.insert(sim.clone());
    let (code, _, err) =
        env.godwit(&["run", runbook, "--cluster", "x", "--enqueue", "--store", ""]);
    assert_eq!(code, 2, "--enqueue without a shared store: {err}");
    assert!(err.contains("--store postgres://"), "{err}");

    let lease = "2s";
    let common = ["--lease", lease, "--poll", "100ms", "--exit-when-done"];
    let (tx, rx) = mpsc::channel();
    let a = env.worker("a", &[&["--jobs", "3"], &common[..]].concat(), &tx);
    // A takes three runs first; then B comes up with room for everything else.
    let mut a_runs = BTreeSet::new();
    while a_runs.len() < 3 {
        let e = next(&rx, "a start on worker a", |e| e.v["event"] == "start");
        assert_eq!(e.worker, "a");
        a_runs.insert(e.v["run_id"].as_str().unwrap().to_string());
    }
    let b = env.worker("b", &[&["--jobs", "8"], &common[..]].concat(), &tx);
    pause(Duration::from_millis(600)); // A is inside its runs' steps
    a.signal(nix::sys::signal::Signal::SIGSTOP);
    let stopped = Instant::now();

    // B finishes its own runs and takes A's over once A's heartbeat and leases expire.
    let mut events: Vec<Event> = Vec::new();
    let mut taken_over = BTreeMap::new();
    while taken_over.len() < a_runs.len() {
        let e = next(&rx, "takeover of a's runs", |_| true);
        if e.worker == "b" && e.v["event"] == "resume" {
            let id = e.v["run_id"].as_str().unwrap().to_string();
            assert!(a_runs.contains(&id), "B resumed {id}, which A never had");
            taken_over.insert(id, e.at.duration_since(stopped));
        }
        events.push(e);
    }
    for (id, t) in &taken_over {
        println!(
            "takeover of {id}: {:.2} s after SIGSTOP (lease {lease})",
            t.as_secs_f64()
        );
        assert!(*t < Duration::from_secs(8), "{id} taken over after {t:?}");
        assert!(
            *t >= Duration::from_millis(1500),
            "{id} taken over before the lease ran out"
        );
    }

    // SIGCONT: A wakes inside its runs and is refused at its next append, for every run.
    a.signal(nix::sys::signal::Signal::SIGCONT);
    let mut refused = BTreeSet::new();
    while refused.len() < a_runs.len() {
        let e = next(&rx, "A's refusals", |e| {
            e.worker == "a" && e.v["event"] == "finished"
        });
        assert_eq!(e.v["status"], "locked", "{}", e.v);
        assert_eq!(e.v["queue"], "not ours any more", "{}", e.v);
        refused.insert(e.v["run_id"].as_str().unwrap().to_string());
    }
    assert_eq!(refused, a_runs);
    assert_eq!(a.wait(Duration::from_secs(60)), 0);
    assert_eq!(b.wait(Duration::from_secs(60)), 0);

    // Every run finished as it should, each journal intact, written by one holder at a time.
    let runs = env.json(&["runs", "-o", "json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), queued.len());
    for r in runs {
        assert_eq!(r["status"], "succeeded", "{r}");
        let id = r["run_id"].as_str().unwrap();
        assert!(queued.contains(id));
        assert_eq!(env.json(&["verify", id, "-o", "json"])["intact"], true);
    }
    let queue = env.json(&["worker", "--status", "-o", "json"]);
    for row in queue.as_array().unwrap() {
        assert_eq!(row["state"], "done", "{row}");
        let again = a_runs.contains(row["run_id"].as_str().unwrap());
        assert_eq!(row["attempts"], if again { 2 } else { 1 }, "{row}");
    }
    let mut by_run: BTreeMap<String, Vec<(i64, i64, String)>> = BTreeMap::new();
    for (run, seq, token, by) in journal_rows(&server) {
        by_run.entry(run).or_default().push((seq, token, by));
    }
    for (run, rows) in &by_run {
        // Tokens never go down along the journal, and each holder wrote one stretch: no
        // record of the stopped worker after the takeover.
        let holders: Vec<&String> = rows.iter().map(|r| &r.2).collect();
        let mut stretches = holders.clone();
        stretches.dedup();
        let distinct: BTreeSet<&&String> = stretches.iter().collect();
        assert_eq!(stretches.len(), distinct.len(), "{run}: {holders:?}");
        assert!(rows.windows(2).all(|w| w[0].1 <= w[1].1), "{run}: {rows:?}");
        assert_eq!(
            stretches.len(),
            if a_runs.contains(run) { 2 } else { 1 },
            "{run}: {holders:?}"
        );
        // Each step completed once.
        let (_, out, _) = env.godwit(&["show", run, "-o", "json"]);
        let plan: Value = serde_json::from_str(&out).unwrap();
        let names: Vec<&str> = plan["flow"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        let unique: BTreeSet<&&str> = names.iter().collect();
        assert_eq!(names.len(), unique.len(), "{run}: {names:?}");
    }
    drop(events);
}

#[test]
fn an_unreachable_store_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let port = godwit_lab::pgproc::free_port().unwrap();
    let url = format!("postgres://ann:s3cret@127.0.0.1:{port}/fleet");
    let o = Command::new(GODWIT)
        .args(["runs", "--store", &url])
        .env("GODWIT_STATE_DIR", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}/fleet")), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    let o = Command::new(GODWIT)
        .args(["worker", "--store", "mysql://x"])
        .env("GODWIT_STATE_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("PostgreSQL URL"));
}

/// SIGTERM drains a worker: its runs stop at their next safe point, nothing rolled back, and go
/// back to the queue with their leases released, so another worker resumes them at once.
#[test]
fn a_drained_workers_runs_are_resumed_by_another_at_once() {
    let (_scratch, _server, env) = env();
    let runbook: PathBuf = env.dir.path().join("slow.rhai");
    std::fs::write(&runbook, SLOW).unwrap();
    for i in 0..2 {
        env.enqueue(runbook.to_str().unwrap(), &format!("db-{i}"), "pure");
    }
    let (tx, rx) = mpsc::channel();
    let common = ["--lease", "30s", "--poll", "100ms", "--exit-when-done"];
    let c = env.worker("c", &common, &tx);
    for _ in 0..2 {
        next(&rx, "a start", |e| e.v["event"] == "start");
    }
    pause(Duration::from_millis(400));
    c.signal(nix::sys::signal::Signal::SIGTERM);
    for _ in 0..2 {
        let e = next(&rx, "an interrupted run", |e| e.v["event"] == "finished");
        assert_eq!(e.v["status"], "interrupted", "{}", e.v);
        assert_eq!(e.v["queue"], "queued", "{}", e.v);
    }
    assert_eq!(c.wait(Duration::from_secs(30)), 0);
    for r in env.json(&["runs", "-o", "json"]).as_array().unwrap() {
        assert_eq!(r["status"], "stopped", "{r}");
    }
    // With a 30 s lease, only released leases let D in now.
    let t0 = Instant::now();
    let d = env.worker("d", &common, &tx);
    assert_eq!(d.wait(Duration::from_secs(60)), 0);
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    for r in env.json(&["runs", "-o", "json"]).as_array().unwrap() {
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    for row in env
        .json(&["worker", "--status", "-o", "json"])
        .as_array()
        .unwrap()
    {
        assert_eq!(row["state"], "done", "{row}");
        assert_eq!(row["attempts"], 2, "{row}");
    }
}

/// A simulated run interrupted on one machine is resumed on another that never saw it: its
/// world comes from the store (as of the journal's last record), and the simulator's audit —
/// every side effect once, every invariant held — passes there.
#[test]
fn a_simulated_run_continues_on_another_machine_in_the_world_it_left() {
    let (_scratch, _server, env) = env();
    let standard = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let mut first = env
        .command_on(
            "machine-1",
            &[
                "run",
                standard.to_str().unwrap(),
                "--cluster",
                "orders-db",
                "--world",
                "sim:busy-source",
                "--set",
                "approve_cutover=true",
                "-o",
                "json",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let id = loop {
        let runs = env.json(&["runs", "-o", "json"]);
        if let Some(r) = runs.as_array().unwrap().first()
            && r["where"]
                .as_str()
                .unwrap_or("")
                .contains("approve-cutover")
        {
            break r["run_id"].as_str().unwrap().to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never waited for approval"
        );
        pause(Duration::from_millis(100));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(7), "interrupted");
    assert!(!env.dir.path().join("machine-2").exists());

    // Machine 3: the console attached to the run sees its simulated world as the store has
    // it (a copy: the replica godwit built on machine 1 is there), though it never ran here.
    let mut console = env
        .command_on("machine-3", &["repl", "--attach", &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = console.stdin.take().unwrap();
        stdin
            .write_all(b"rds::describe_cluster(\"orders-db-aurora\").status\n")
            .unwrap();
    }
    let o = console.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("available") && !out.contains("NotFound"),
        "the run's replica, from the store's copy of its world: {out}{err}"
    );
    assert!(
        format!("{out}{err}").contains("a copy of run"),
        "{out}{err}"
    );

    // Machine 2: approve, then resume; its world files come from the store.
    let (code, _, err) = env.godwit(&["approve", &id]);
    assert_eq!(code, 0, "{err}");
    let o = env
        .command_on("machine-2", &["resume", &id, "-o", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{report} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(report["status"], "succeeded", "{report}");
    assert!(
        env.dir
            .path()
            .join(format!("machine-2/worlds/{id}.json"))
            .exists()
    );
    assert_eq!(env.json(&["verify", &id, "-o", "json"])["intact"], true);
}

/// Chaos, small: three workers over sixteen queued runs while workers are SIGKILLed (and
/// replaced) and SIGSTOPped past their lease (and continued). Every run succeeds, every journal
/// verifies, each was written by one holder at a time (no record of a holder after another
/// took over) and every step completed once.
#[test]
fn workers_killed_and_stopped_at_random_lose_no_run_and_never_share_a_journal() {
    let (_scratch, server, env) = env();
    let runbook: PathBuf = env.dir.path().join("slow.rhai");
    std::fs::write(&runbook, SLOW).unwrap();
    for i in 0..16 {
        env.enqueue(runbook.to_str().unwrap(), &format!("db-{i}"), "pure");
    }
    let (tx, rx) = mpsc::channel();
    let args = [
        "--jobs",
        "4",
        "--lease",
        "2s",
        "--poll",
        "100ms",
        "--exit-when-done",
    ];
    let names = ["w0", "w1", "w2"];
    let mut workers: Vec<Worker> = names.iter().map(|n| env.worker(n, &args, &tx)).collect();
    // A fixed-seed LCG: the same chaos every run, so a failure reproduces.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let t0 = Instant::now();
    let mut actions = Vec::new();
    for _ in 0..6 {
        pause(Duration::from_millis(800 + rand(800)));
        let i = rand(3) as usize;
        if rand(2) == 0 {
            workers[i].signal(nix::sys::signal::Signal::SIGKILL);
            let _ = workers[i].child.wait();
            workers[i] = env.worker(names[i], &args, &tx);
            actions.push(format!(
                "{:.1}s SIGKILL {} (replaced)",
                t0.elapsed().as_secs_f64(),
                names[i]
            ));
        } else {
            workers[i].signal(nix::sys::signal::Signal::SIGSTOP);
            pause(Duration::from_millis(2600));
            workers[i].signal(nix::sys::signal::Signal::SIGCONT);
            actions.push(format!(
                "{:.1}s SIGSTOP {} for 2.6 s",
                t0.elapsed().as_secs_f64(),
                names[i]
            ));
        }
    }
    for w in workers {
        assert_eq!(w.wait(Duration::from_secs(120)), 0);
    }
    let wall = t0.elapsed();
    let events: Vec<Event> = rx.try_iter().collect();
    let refused = events.iter().filter(|e| e.v["status"] == "locked").count();
    let resumes = events.iter().filter(|e| e.v["event"] == "resume").count();
    println!(
        "chaos: {} in {:.1} s wall; {resumes} takeovers or resumes, {refused} appends refused to stale workers",
        actions.join(", "),
        wall.as_secs_f64()
    );

    let runs = env.json(&["runs", "-o", "json"]);
    assert_eq!(runs.as_array().unwrap().len(), 16);
    for r in runs.as_array().unwrap() {
        assert_eq!(r["status"], "succeeded", "{r}");
        let id = r["run_id"].as_str().unwrap();
        assert_eq!(env.json(&["verify", id, "-o", "json"])["intact"], true);
        let plan = env.json(&["show", id, "-o", "json"]);
        let names: Vec<&str> = plan["flow"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert_eq!(names.len(), 8, "{id}: {names:?}");
        let unique: BTreeSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), 8, "{id}: {names:?}");
    }
    let mut by_run: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (run, _, token, by) in journal_rows(&server) {
        by_run.entry(run).or_default().push((token, by));
    }
    for (run, rows) in &by_run {
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0), "{run}: {rows:?}");
        let mut stretches: Vec<&String> = rows.iter().map(|r| &r.1).collect();
        stretches.dedup();
        let distinct: BTreeSet<&&String> = stretches.iter().collect();
        assert_eq!(stretches.len(), distinct.len(), "{run}: {rows:?}");
    }
}

/// The settings file names the store for every command when neither `--store` nor
/// `GODWIT_STORE` does; a broken one, or `GODWIT_SETTINGS` naming no file, is an error naming
/// it before anything runs; the flag wins over the file.
#[test]
fn the_settings_file_names_the_store_and_a_broken_one_is_refused() {
    let (_scratch, _server, env) = env();
    let settings = env.dir.path().join("settings.toml");
    std::fs::write(
        &settings,
        format!("[store]\nurl = \"{}\"\nlease = \"7s\"\n", env.url),
    )
    .unwrap();
    let godwit = |settings: &std::path::Path, args: &[&str]| {
        let o = env
            .command(args)
            .env_remove("GODWIT_STORE")
            .env("GODWIT_SETTINGS", settings)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, out, err) = godwit(&settings, &["worker", "--status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("the queue in postgres://postgres@127.0.0.1"),
        "{out}"
    );
    // The flag wins: a file store (the state directory) would refuse a worker.
    let (code, _, err) = godwit(
        &settings,
        &[
            "--store",
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
            "runs",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");

    let broken = env.dir.path().join("broken.toml");
    std::fs::write(&broken, "[store]\nurll = \"postgres://x@y/z\"\n").unwrap();
    let (code, _, err) = godwit(&broken, &["runs"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.toml") && err.contains("urll"), "{err}");
    let (code, _, err) = godwit(&env.dir.path().join("nothing.toml"), &["runs"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nothing.toml") && err.contains("GODWIT_SETTINGS"),
        "{err}"
    );
    // Commands that need no store do not read it.
    let (code, _, err) = godwit(&broken, &["worlds"]);
    assert_eq!(code, 0, "{err}");
}
