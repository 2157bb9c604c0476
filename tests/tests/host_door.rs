//! The Host is the only door: a step's timeout and the operator's Ctrl-C reach every world
//! call, whatever it waits on. A PostgreSQL server and a control plane that stop answering
//! (SIGSTOP, a listener that never replies) end the step at its timeout with a retryable
//! `Timeout`; an interrupt during a long `validate::compare` stops the run within a second,
//! resumable, with nothing journaled as failed.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::journal::{Entry, JournalStore};
use godwit_engine::transcript::{Collector, Event, Line, Sink};
use godwit_engine::{Call, Host, PrimitiveError, RunStatus, StartRequest, SystemClock};
use godwit_lab::pgproc::Server;
use godwit_stdlib::pg::live::{LivePg, Pool};
use godwit_stdlib::route::remote::{Endpoints, RemoteRouter};
use godwit_stdlib::sim::scenario::Scenario;
use godwit_stdlib::validate::live::LiveValidate;
use godwit_stdlib::world::World;
use godwit_tests::livepg::{Ports, exec, runtime, scratch};
use godwit_xds::model::Addr;
use godwit_xds::remote::RemotePlane;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The simulator's areas with `pg` and `validate` over real servers (`orders-db` and
/// `orders-aurora` both name `server`) and `route` over the control plane at `plane`, on the
/// system clock.
fn world(server: &Server, plane: std::net::SocketAddr, handle: tokio::runtime::Handle) -> World {
    let ports = Ports(HashMap::from([
        ("orders-db".to_string(), server.port),
        ("orders-aurora".to_string(), server.port),
    ]));
    let pool = Arc::new(Pool::new(Arc::new(ports), handle));
    let mut areas = World::sim(Scenario::load("busy-source").unwrap())
        .areas
        .expect("the sim world has areas");
    areas.pg = Arc::new(LivePg::new(pool.clone()));
    areas.validate = Arc::new(LiveValidate::new(pool));
    areas.route = Arc::new(RemoteRouter {
        plane: RemotePlane::new(plane),
        endpoints: Arc::new(Loopback),
    });
    World::new("door", Arc::new(SystemClock), areas)
}

struct Loopback;

impl Endpoints for Loopback {
    fn addr_of(&self, _cx: &Call<'_>, _op: &str, _db: &str) -> Result<Addr, PrimitiveError> {
        Ok(Addr::new("127.0.0.1", 5432))
    }
    fn db_of(&self, addr: &Addr) -> String {
        addr.to_string()
    }
}

/// Every process of `server` (the postmaster and its children), by /proc.
fn server_pids(server: &Server) -> Vec<i32> {
    let mut pids = vec![server.pid as i32];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(server.pid as i32) {
            pids.push(pid);
        }
    }
    pids
}

fn signal_all(pids: &[i32], sig: Signal) {
    for p in pids {
        let _ = kill(Pid::from_raw(*p), sig);
    }
}

/// Calls `f` once, when the step `name` completes (inside the run, between two steps).
struct AfterStep {
    name: &'static str,
    done: AtomicBool,
    f: Box<dyn Fn() + Send + Sync>,
}

impl Sink for AfterStep {
    fn line(&self, line: &Line) {
        if let Event::StepCompleted { name, .. } = &line.event
            && name == self.name
            && !self.done.swap(true, Ordering::SeqCst)
        {
            (self.f)();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// When the failed step was started and ended (from the journal).
fn step_window(store: &MemoryStore, run: &str, step: &str) -> (i64, i64) {
    let records = store.read(run).unwrap().records;
    let started = records.iter().find_map(|r| match &r.entry {
        Entry::StepStarted { name, at } if name == step => Some(*at),
        _ => None,
    });
    let failed = records.iter().find_map(|r| match &r.entry {
        Entry::StepFailed { name, at, .. } if name == step => Some(*at),
        _ => None,
    });
    (
        started.unwrap_or_else(|| panic!("{step} never started")),
        failed.unwrap_or_else(|| panic!("{step} did not fail")),
    )
}

#[test]
fn a_hung_postgresql_and_a_hung_control_plane_end_the_step_at_its_timeout() {
    let pg = scratch();
    let server = pg.primary("p", &[]).unwrap();
    let rt = runtime();
    // A control plane that accepts connections and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let world = world(&server, hung.local_addr().unwrap(), rt.handle().clone());
    let store = MemoryStore::new();
    let mut runner = world.runner(Arc::new(store.clone()), rt.handle().clone());
    // Stopped once `warm` completed: the postmaster and every child then (the backend of
    // godwit's pooled connection among them).
    let stopped = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s, srv) = (stopped.clone(), server.clone());
    runner.sinks.push(Arc::new(AfterStep {
        name: "warm",
        done: AtomicBool::new(false),
        f: Box::new(move || {
            let pids = server_pids(&srv);
            signal_all(&pids, Signal::SIGSTOP);
            *s.lock().unwrap() = pids;
        }),
    }));
    let dir = tempfile::tempdir().unwrap();
    let book = write(
        dir.path(),
        "door.rhai",
        r#"
step("warm", || pg::current_lsn("orders-db").lsn);
let r = #{};
try {
    step("hung-pg", #{ timeout: "2s", retry: #{ attempts: 1 } }, || pg::current_lsn("orders-db"));
} catch (e) { r.pg = e; }
try {
    step("hung-route", #{ timeout: "2s", retry: #{ attempts: 1 } }, || route::describe_route("orders-db"));
} catch (e) { r.route = e; }
r
"#,
    );
    let report = runner.start(StartRequest {
        runbook: book,
        cluster: "orders-db".into(),
        params: Default::default(),
        run_id: Some("door".into()),
    });
    let pids = stopped.lock().unwrap().clone();
    signal_all(&pids, Signal::SIGCONT);
    assert!(
        pids.len() > 1,
        "the server and its children were stopped: {pids:?}"
    );
    let report = report.unwrap();
    let RunStatus::Succeeded { result } = &report.status else {
        panic!("{:?}", report.status);
    };
    for (what, step) in [("pg", "hung-pg"), ("route", "hung-route")] {
        let e = &result[what];
        assert_eq!(e["kind"], "Timeout", "{what}: {e}");
        assert_eq!(e["retryable"], true, "{what}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains("timeout of 'hung"),
            "{what}: {e}"
        );
        let (started, failed) = step_window(&store, "door", step);
        let took = failed - started;
        println!("{step}: ended after {took} ms (step timeout 2 s)");
        assert!((1900..3500).contains(&took), "{step} took {took} ms");
    }
    drop(hung);
}

#[test]
fn statements_run_with_the_call_budget_as_statement_timeout() {
    let pg = scratch();
    let server = pg.primary("p", &[]).unwrap();
    let rt = runtime();
    let ports = Ports(HashMap::from([("orders-db".to_string(), server.port)]));
    let pool = Pool::new(Arc::new(ports), rt.handle().clone());
    let host = Host::detached(Arc::new(SystemClock), Some(rt.handle().clone()));
    let cx = host.context("pg", "test");
    let show = |budget_ms: u64| -> String {
        pool.run(&cx, "orders-db", Duration::from_secs(60), async {
            let c = pool
                .client("orders-db", None, "test", Duration::from_millis(budget_ms))
                .await?;
            let row = c.query_one("SHOW statement_timeout", &[]).await.unwrap();
            Ok(row.get::<_, String>(0))
        })
        .unwrap()
    };
    assert_eq!(show(1500), "1500ms", "set on connect");
    assert_eq!(show(2500), "2500ms", "changed for the next call");
    assert_eq!(show(2500), "2500ms");
    // Cut on the server side too: a statement past its budget is cancelled by PostgreSQL.
    let e = pool
        .run(&cx, "orders-db", Duration::from_secs(60), async {
            let c = pool
                .client("orders-db", None, "test", Duration::from_millis(300))
                .await?;
            c.batch_execute("SELECT pg_sleep(5)")
                .await
                .map_err(|e| godwit_stdlib::pg::live::sql_error("test", "orders-db", e))
        })
        .unwrap_err();
    assert!(
        e.message.contains("statement timeout"),
        "the server cancelled it: {e:?}"
    );
}

#[test]
fn ctrl_c_during_a_long_compare_stops_within_a_second_and_resumes() {
    let pg = scratch();
    let server = pg.primary("p", &[]).unwrap();
    let rt = runtime();
    rt.block_on(exec(
        &server,
        "CREATE TABLE events (id bigint PRIMARY KEY, kind int, payload text);
         INSERT INTO events SELECT g, g % 13, md5(g::text) FROM generate_series(1, 1500000) g;
         ANALYZE events;",
    ));
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let world = world(&server, hung.local_addr().unwrap(), rt.handle().clone());
    let store = MemoryStore::new();
    let mut runner = world.runner(Arc::new(store.clone()), rt.handle().clone());
    let collector = Collector::new();
    runner.sinks.push(Arc::new(collector.clone()));
    // The operator presses Ctrl-C 300 ms into the comparison.
    let cancel = runner.cancel.clone();
    let pressed = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let at = pressed.clone();
    runner.sinks.push(Arc::new(StepStarts {
        name: "compare",
        f: Box::new(move || {
            let (cancel, at) = (cancel.clone(), at.clone());
            std::thread::spawn(move || {
                #[allow(clippy::disallowed_methods)] // the operator's own real-time delay
                std::thread::sleep(Duration::from_millis(300));
                *at.lock().unwrap() = Some(Instant::now());
                cancel.cancel();
            });
        }),
    }));
    let dir = tempfile::tempdir().unwrap();
    let book = write(
        dir.path(),
        "compare.rhai",
        r#"
let r = step("compare", || validate::compare("orders-db", "orders-aurora", #{ concurrency: 1 }));
r.equal
"#,
    );
    let started = Instant::now();
    let report = runner
        .start(StartRequest {
            runbook: book,
            cluster: "orders-db".into(),
            params: Default::default(),
            run_id: Some("cmp".into()),
        })
        .unwrap();
    let ended = Instant::now();
    let pressed = pressed.lock().unwrap().expect("Ctrl-C was pressed");
    let stop = ended - pressed;
    println!(
        "compare interrupted {:?} after Ctrl-C ({:?} into the run)",
        stop,
        pressed - started
    );
    assert!(
        matches!(report.status, RunStatus::Interrupted),
        "{:?}",
        report.status
    );
    assert!(stop < Duration::from_secs(1), "stopped after {stop:?}");
    let records = store.read("cmp").unwrap().records;
    assert!(
        !records.iter().any(|r| matches!(
            &r.entry,
            Entry::StepFailed { .. } | Entry::AbortStarted { .. }
        )),
        "an interrupt is no failure and rolls nothing back"
    );

    // Resumed by a fresh runner: the comparison runs again and completes.
    let again = world.runner(Arc::new(store.clone()), rt.handle().clone());
    let report = again.resume("cmp", false).unwrap();
    let RunStatus::Succeeded { result } = &report.status else {
        panic!("{:?}", report.status);
    };
    assert_eq!(result, &serde_json::json!(true));
    drop(hung);
}

/// Calls `f` once, when the step `name` starts.
struct StepStarts {
    name: &'static str,
    f: Box<dyn Fn() + Send + Sync>,
}

impl Sink for StepStarts {
    fn line(&self, line: &Line) {
        if let Event::StepStarted { name } = &line.event
            && name == self.name
        {
            (self.f)();
        }
    }
}
