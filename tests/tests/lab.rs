//! The lab world end to end: the standard runbook on real PostgreSQL servers and a real
//! Envoy, under continuous writes through Envoy — the cutover, a replica that dies during
//! validation, and godwit itself killed (SIGKILL) mid-cutover and resumed by a new process.
//!
//! Needs the PostgreSQL server binaries and Envoy; `scripts/test.sh` provisions both. A
//! missing one fails with its install command. Nothing here asserts on time: the measured
//! figures are printed (the cutover benchmark compares them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::journal::file::FileStore;
use godwit_engine::transcript::{Event, Line, Sink};
use godwit_lab::cutover::{self, Cutover};
use godwit_lab::pgproc::{self, Signal};
use godwit_lab::workload::{self, Kind, Workload};
use godwit_lab::{LabOptions, LabState, Supervisor};
use godwit_tests::harness::{pause, wait_transcript};

const GODWIT: &str = env!("CARGO_BIN_EXE_godwit-toy");

fn runbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai")
}

async fn lab(dir: &Path, cdc: bool) -> Supervisor {
    let mut opts = LabOptions::new(dir.join("lab"));
    opts.cdc = cdc;
    opts.seed_rows = 2_000;
    Supervisor::up(opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"))
}

fn cutover_opts(store: Arc<FileStore>, sinks: Vec<Arc<dyn Sink>>, workload: Kind) -> Cutover {
    Cutover {
        runbook: runbook(),
        params: cutover::lab_params(),
        store,
        clients: 4,
        pace: Duration::from_millis(5),
        warmup: Duration::from_millis(500),
        workload,
        sinks,
    }
}

/// The owner's clone of the replica, as its team uses it: wait (up to 3 minutes) until a
/// `…-clone` cluster serves, then write a row on it — a copy of a read-only standby that takes
/// writes is what `owner_clone` promises.
async fn write_to_the_owner_clone(lab_dir: PathBuf) -> Result<u16, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let port = loop {
        let st = LabState::load(&lab_dir).map_err(|e| e.to_string())?;
        let up = st
            .clusters
            .keys()
            .filter(|c| c.ends_with("-clone"))
            .find_map(|c| st.serving(c).filter(|i| i.status == "available"))
            .map(|i| i.port);
        if let Some(p) = up {
            break p;
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "no clone served within 3 minutes (clusters {:?})",
                st.clusters.keys().collect::<Vec<_>>()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    direct_write(port, "app").await?;
    Ok(port)
}

/// Connect straight to a server (not through Envoy) as `role` and insert one row.
async fn direct_write(port: u16, role: &str) -> Result<(), String> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={role} dbname=app connect_timeout=5"),
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| godwit_stdlib::pg::live::error_text(&e))?;
    tokio::spawn(conn);
    c.execute(
        "INSERT INTO godwit_workload (client, seq) VALUES (-1, $1)",
        &[&(std::process::id() as i64)],
    )
    .await
    .map(|_| ())
    .map_err(|e| godwit_stdlib::pg::live::error_text(&e))
}

/// Connect (through `port`) as the application and read one row.
async fn direct_read(port: u16) -> Result<(), String> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=app dbname=app connect_timeout=5"),
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| godwit_stdlib::pg::live::error_text(&e))?;
    tokio::spawn(conn);
    c.query_one("SELECT count(*) FROM orders", &[])
        .await
        .map(|_| ())
        .map_err(|e| godwit_stdlib::pg::live::error_text(&e))
}

fn index_of(lines: &[Line], f: impl Fn(&Event) -> bool) -> Option<usize> {
    lines.iter().position(|l| f(&l.event))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standard_runbook_cuts_over_under_load_losing_nothing() {
    cutover_under(Kind::Insert).await;
}

/// The same under TPC-B transactions (updates across tables, like applications): nothing lost,
/// and no transaction half applied on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standard_runbook_cuts_over_under_updates_losing_nothing() {
    cutover_under(Kind::Tpcb).await;
}

async fn cutover_under(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path(), true).await;
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let mut opts = cutover_opts(store, Vec::new(), kind);
    // Issue 24, the owner's clone inside the run (one workload is enough): a copy of the
    // standby replica on its own port during validation, writable, gone before the fence.
    let clone_probe = (kind == Kind::Insert).then(|| {
        opts.params.insert("owner_clone".into(), true.into());
        tokio::spawn(write_to_the_owner_clone(sup.dir.clone()))
    });
    let out = cutover::run(&sup, opts).await.unwrap();
    let report = out.report.as_ref().unwrap();
    eprintln!(
        "lab cutover: {}",
        serde_json::to_string(&(&out.workload, &out.phases)).unwrap()
    );
    assert!(out.succeeded, "{:?}", report.status);
    if let Some(probe) = clone_probe {
        let written = probe.await.unwrap();
        assert!(written.is_ok(), "the owner's clone: {written:?}");
        let at = |name: &str| out.steps.iter().position(|(s, _)| s == name);
        let (ready, deleted, fenced) = (
            at("owner-clone-ready"),
            at("delete-owner-clone"),
            at("fence"),
        );
        assert!(
            ready.is_some() && ready < deleted && deleted < fenced,
            "clone ready at {ready:?}, deleted at {deleted:?}, fence at {fenced:?}: {:?}",
            out.steps
        );
        let st = LabState::load(&sup.dir).unwrap();
        assert!(
            !st.clusters.keys().any(|c| c.ends_with("-clone")),
            "the owner's clone is left: {:?}",
            st.clusters.keys().collect::<Vec<_>>()
        );
    }

    // Zero acknowledged commits missing on the target, and writes after the cutover there.
    let w = &out.workload;
    assert!(w.acked > 500, "the load ran: {w:?}");
    assert_eq!(
        w.lost,
        Some(0),
        "acknowledged commits missing on the target: {w:?}"
    );
    assert!(
        w.acked_after_switch.unwrap_or(0) > 0,
        "no acknowledged write after the switch reached the target: {w:?}"
    );
    if kind == Kind::Tpcb {
        assert_eq!(
            w.inconsistent,
            Some(0),
            "balances disagree with the history: {w:?}"
        );
    }

    // The fence was proven before the final LSN was read: the gate saw no application backend
    // (its last pg::application_backends answer was empty) and passed before the LSN step.
    let lines = &out.lines;
    let gate_passed = index_of(
        lines,
        |e| matches!(e, Event::GatePassed { name, .. } if name == "source-sessions-ended"),
    )
    .expect("the sessions gate passed");
    let fence_lsn = index_of(
        lines,
        |e| matches!(e, Event::StepStarted { name } if name == "record-fence-lsn"),
    )
    .expect("the fence LSN was read");
    assert!(gate_passed < fence_lsn);
    let last_backends = lines[..fence_lsn]
        .iter()
        .rev()
        .find_map(|l| match &l.event {
            Event::Primitive {
                op,
                result,
                ok: true,
                ..
            } if op == "application_backends" => Some(result.clone()),
            _ => None,
        })
        .expect("application backends were listed before the fence LSN");
    assert_eq!(last_backends, serde_json::json!([]));

    // The exact validation at the fence ran on both databases and is in the journal.
    let validation = lines
        .iter()
        .find_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } if name == "validate-at-fence" => {
                Some(result.clone())
            }
            _ => None,
        })
        .expect("validate-at-fence ran");
    assert_eq!(validation["equal"], true, "{validation}");
    let tables: Vec<&str> = validation["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["table"].as_str())
        .collect();
    assert!(
        tables.contains(&"public.orders") && tables.contains(&"public.godwit_workload"),
        "{tables:?}"
    );
    // In two passes (docs/validate.md): the pre-pass before the hold, tracking the source's
    // changes by logical decoding; at the fence only what the clients changed since.
    let pre = lines
        .iter()
        .find_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } if name == "validate-before-fence" => {
                Some(result.clone())
            }
            _ => None,
        })
        .expect("validate-before-fence ran");
    assert_eq!(pre["equal"], true, "{pre}");
    assert_eq!(pre["tracking"][0]["how"], "logical-decoding", "{pre}");
    let fence_pass = &validation["fence_pass"];
    assert!(
        fence_pass["changed_keys"].as_i64().unwrap() > 0
            && fence_pass["rescanned_tables"] == serde_json::json!([]),
        "the clients wrote between the passes, and nothing needed a rescan: {validation}"
    );

    // The continuous audit ran in the validation gate, within its read cap, and found the
    // replica equal; the gate decided on its evidence and the keep-up metrics.
    let validate_gate = lines
        .iter()
        .find_map(|l| match &l.event {
            Event::GatePassed { name, evidence, .. } if name == "validate" => {
                Some(evidence.clone())
            }
            _ => None,
        })
        .expect("the validation gate passed");
    assert!(
        validate_gate.contains(&"sampled-audit".to_string()),
        "{validate_gate:?}"
    );
    let audit = lines
        .iter()
        .find_map(|l| match &l.event {
            Event::Print { message, .. } if message.starts_with("audit while replicating") => {
                Some(message.clone())
            }
            _ => None,
        })
        .expect("the audit's summary is printed");
    assert!(
        audit.contains("audit equal") && !audit.contains(" 0 rows compared"),
        "{audit}"
    );

    // Shadow reads: the readers' route went to the replica for the validation and the gate
    // decided on Envoy's counters for it; two readers read through it all along.
    assert!(
        validate_gate.contains(&"envoy-route-stats".to_string()),
        "{validate_gate:?}"
    );
    let shadow = lines
        .iter()
        .find_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } if name == "shadow-reads" => {
                Some(result.clone())
            }
            _ => None,
        })
        .expect("shadow-reads ran");
    assert_eq!(shadow["route"], "orders-db-read", "{shadow}");
    let reads = out.reads.as_ref().expect("the lab has a readers' route");
    assert!(reads.queries > 100 && reads.sessions > 5, "{reads:?}");
    eprintln!("readers: {reads:?}");

    // The query check ran the application's statements (pg_stat_statements, preloaded as on
    // RDS) on the replica and the source: TPC-B's read of the account works on both.
    let queries = lines
        .iter()
        .find_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } if name == "query-check" => {
                Some(result.clone())
            }
            _ => None,
        })
        .expect("query-check ran");
    assert!(
        queries["available"] == true && queries["compatible"] == true,
        "{queries}"
    );
    if kind == Kind::Tpcb {
        let read = queries["statements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["query"]
                    .as_str()
                    .is_some_and(|q| q.starts_with("SELECT abalance FROM tpcb_accounts"))
            })
            .unwrap_or_else(|| panic!("the account read was checked: {queries}"));
        assert_eq!(read["verdict"], "ok", "{read}");
        assert!(read["target_ms"].as_f64().is_some(), "{read}");
    }

    // The old primary refuses the application afterwards; the target takes its writes.
    let st = LabState::load(&sup.dir).unwrap();
    let source_port = st.instances[&st.source].port;
    let refused = direct_write(source_port, "app").await.unwrap_err();
    assert!(refused.contains("pg_hba.conf rejects"), "{refused}");
    direct_write(out.target_port.unwrap(), "app").await.unwrap();
    sup.down().await;
}

/// Kills the replica's server (SIGKILL) at the validation gate's second poll.
struct KillReplica {
    dir: PathBuf,
    done: std::sync::atomic::AtomicBool,
}

impl Sink for KillReplica {
    fn line(&self, line: &Line) {
        if let Event::GatePoll { name, poll, .. } = &line.event
            && name == "validate"
            && *poll >= 2
            && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let st = LabState::load(&self.dir).unwrap();
            let replica = st
                .instances
                .values()
                .find(|i| i.cluster.is_some())
                .expect("the writer instance exists during validation");
            pgproc::stop_pid(
                replica.pid.unwrap(),
                Signal::SIGKILL,
                Duration::from_secs(5),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_during_validation_aborts_and_leaves_the_source_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path(), false).await;
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let killer = Arc::new(KillReplica {
        dir: sup.dir.clone(),
        done: Default::default(),
    });
    let out = cutover::run(&sup, cutover_opts(store, vec![killer.clone()], Kind::Tpcb))
        .await
        .unwrap();
    assert!(
        killer.done.load(std::sync::atomic::Ordering::SeqCst),
        "{:?}",
        out.report.as_ref().map(|r| &r.status)
    );
    let status = &out.report.as_ref().unwrap().status;
    let reason = match status {
        godwit_engine::RunStatus::RolledBack { reason, .. } => reason.clone(),
        other => panic!("expected a rollback, got {other:?}"),
    };
    // The readers, moved to the replica by the shadow reads, fail first: the gate's shadow-read
    // check says so (before its keep-up check sees the writer `failed`).
    assert!(
        reason.contains("shadow reads fail on orders-db-aurora"),
        "{reason}"
    );
    // Rolled back: the replica cluster is gone (and its slot on the source), the source was
    // never fenced, and every acknowledged write is on it.
    let st = LabState::load(&sup.dir).unwrap();
    assert!(st.clusters.is_empty(), "{:?}", st.clusters);
    assert_eq!(out.workload.lost, Some(0));
    assert_eq!(out.workload.failed_attempts, 0, "{:?}", out.workload);
    let undone: Vec<&str> = out
        .lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::UndoCompleted { step } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        undone.contains(&"create-replica-cluster") && undone.contains(&"shadow-reads"),
        "{undone:?}"
    );
    // Writable through Envoy after the rollback, and the readers' route is back on the source
    // (the replica is dead: a read through it answers only from the source).
    direct_write(st.route.listen_port, "app").await.unwrap();
    direct_read(st.route.read_listen_port).await.unwrap();
    sup.down().await;
}

/// Issue 24: a row of a cold table differs on the replica — planted in its copy before its
/// server starts (godwit_lab::faults), as storage corruption would; a physical standby takes
/// no writes. Replication runs, lag is 0, every metric is healthy: the continuous audit of the
/// validation gate proves the row different and the run rolls back before quiescence (no
/// hold, no fence), the source writable, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_differing_on_the_replica_is_found_by_the_audit_before_quiescence() {
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path(), false).await;
    // orders.note of row 1777 is 'order 1777': a 1-byte varlena header (0x17: 11 bytes), the
    // text; 'order 17770' has another header, so the bytes are unique to that row.
    godwit_lab::faults::plant_divergence(
        &sup.dir,
        &godwit_lab::faults::Divergence {
            needle: b"\x17order 1777".to_vec(),
            replacement: b"\x17order 1X77".to_vec(),
        },
    )
    .unwrap();
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let out = cutover::run(&sup, cutover_opts(store, Vec::new(), Kind::Tpcb))
        .await
        .unwrap();
    assert!(
        !sup.dir
            .join(godwit_lab::faults::REPLICA_DIVERGENCE)
            .exists(),
        "the fault was applied"
    );
    let status = &out.report.as_ref().unwrap().status;
    let reason = match status {
        godwit_engine::RunStatus::RolledBack { reason, .. } => reason.clone(),
        other => panic!("expected a rollback, got {other:?}"),
    };
    assert!(
        reason.contains("the audit proved the replica")
            && reason.contains("public.orders: different [1777]"),
        "{reason}"
    );
    let started: Vec<&str> = out
        .lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::StepStarted { name } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        !started.contains(&"hold") && !started.contains(&"fence"),
        "rolled back before quiescence: {started:?}"
    );
    let st = LabState::load(&sup.dir).unwrap();
    assert!(st.clusters.is_empty(), "{:?}", st.clusters);
    assert_eq!(out.workload.lost, Some(0));
    assert_eq!(out.workload.failed_attempts, 0, "{:?}", out.workload);
    direct_write(st.route.listen_port, "app").await.unwrap();
    sup.down().await;
}

/// Keeps the source from restarting: an unknown setting in its `postgresql.auto.conf` from the
/// start of `reboot-source` until the rollback has released the held clients (and two seconds
/// more); records when the hold began, the rollback started and the clients were released.
struct StallSource {
    conf: PathBuf,
    data: PathBuf,
    in_fence_undo: std::sync::atomic::AtomicBool,
    /// Transcript times (ms): the hold published, the abort, the clients released.
    times: std::sync::Mutex<BTreeMap<&'static str, i64>>,
    /// Whether the source's server ran when the clients were released.
    source_ran_at_release: std::sync::Mutex<Option<bool>>,
    released: tokio::sync::Notify,
}

const BROKEN: &str = "godwit_test_keeps_the_source_down = on\n";

impl Sink for StallSource {
    fn line(&self, line: &Line) {
        use std::sync::atomic::Ordering::SeqCst;
        let mark = |k| {
            self.times.lock().unwrap().entry(k).or_insert(line.at);
        };
        match &line.event {
            Event::StepCompleted { name, .. } if name == "hold" => mark("hold"),
            Event::StepStarted { name } if name == "reboot-source" => {
                // Read at the restart only: the running server never sees it.
                let mut conf = std::fs::read_to_string(&self.conf).unwrap();
                conf.push_str(BROKEN);
                std::fs::write(&self.conf, conf).unwrap();
            }
            Event::AbortStarted { .. } => mark("abort"),
            Event::UndoStarted { step } if step == "fence" => {
                self.in_fence_undo.store(true, SeqCst)
            }
            Event::Primitive {
                area, op, ok: true, ..
            } if area == "route" && op == "switch_route" && self.in_fence_undo.load(SeqCst) => {
                let mut ran = self.source_ran_at_release.lock().unwrap();
                if ran.is_none() {
                    *ran = Some(pgproc::running_pid(&self.data).is_some());
                    mark("released");
                    self.released.notify_one();
                }
            }
            Event::UndoCompleted { step } if step == "fence" => {
                self.in_fence_undo.store(false, SeqCst)
            }
            _ => {}
        }
    }
}

/// A rollback under the hold whose source cannot restart: `reboot-source` fails (the restarted
/// server refuses its configuration), and the rollback's first undo releases the held clients
/// onto the source while it is still down — nothing waits on the source while clients are
/// held. The source comes back two seconds later (the supervisor keeps restarting it, as RDS
/// keeps a reboot going) and the rollback completes: nothing lost, writable through Envoy.
/// Prints the client-visible outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_whose_source_cannot_restart_releases_the_held_clients_first() {
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path(), true).await;
    let st = LabState::load(&sup.dir).unwrap();
    let data = st.instances[&st.source].spec.data.clone();
    let stall = Arc::new(StallSource {
        conf: data.join("postgresql.auto.conf"),
        data: data.clone(),
        in_fence_undo: Default::default(),
        times: Default::default(),
        source_ran_at_release: Default::default(),
        released: tokio::sync::Notify::new(),
    });
    // Once the clients are released (or after 2 minutes: then the assertions below fail), the
    // source stays down 2 s more, then may start again.
    let fixer = {
        let stall = stall.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(120), stall.released.notified()).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let conf = std::fs::read_to_string(&stall.conf).unwrap();
            std::fs::write(&stall.conf, conf.replace(BROKEN, "")).unwrap();
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        })
    };
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let mut opts = cutover_opts(store, vec![stall.clone()], Kind::Tpcb);
    opts.params.insert("fence_method".into(), "reboot".into());
    let out = cutover::run(&sup, opts).await.unwrap();
    let fixed_at = fixer.await.unwrap() as i64;
    let reason = match &out.report.as_ref().unwrap().status {
        godwit_engine::RunStatus::RolledBack { reason, .. } => reason.clone(),
        other => panic!("expected a rollback, got {other:?}"),
    };
    assert!(reason.contains("exited while starting"), "{reason}");
    let times = stall.times.lock().unwrap().clone();
    let released = *times
        .get("released")
        .expect("the rollback released the held clients");
    assert_eq!(
        *stall.source_ran_at_release.lock().unwrap(),
        Some(false),
        "the clients were released while the source was down"
    );
    assert!(
        released < fixed_at,
        "released before the source could restart"
    );
    let w = &out.workload;
    eprintln!(
        "rollback under the hold, source kept down: hold → released {} ms, abort → released {} ms, source kept from restarting until {} ms after the release; client-visible outage (longest gap between commits) {:.0} ms, failed attempts {}, lost {:?}",
        released - times["hold"],
        released - times["abort"],
        fixed_at - released,
        w.blackout_ms,
        w.failed_attempts,
        w.lost,
    );
    assert_eq!(w.lost, Some(0), "{w:?}");
    assert_eq!(w.inconsistent, Some(0), "{w:?}");
    let undone: Vec<&str> = out
        .lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::UndoCompleted { step } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    for step in ["fence", "hold", "create-replica-cluster"] {
        assert!(undone.contains(&step), "{undone:?}");
    }
    let st = LabState::load(&sup.dir).unwrap();
    assert_eq!(st.instances[&st.source].status, "available");
    direct_write(st.route.listen_port, "app").await.unwrap();
    sup.down().await;
}

/// The lab's `FreeStorageSpace` is the instance's allocation minus what its data directory
/// uses: 64 MiB written elsewhere on the host's disk leaves it as it was; 64 MiB written into
/// the source's data directory takes it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn free_storage_is_the_instance_allocation_minus_its_data_not_the_host_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = LabOptions::new(tmp.path().join("lab"));
    opts.cdc = false;
    opts.seed_rows = 100;
    opts.allocated_storage_gb = 1;
    // RDS's forced segment switch adds a 64 MiB WAL segment to the data directory every
    // 10 s (as it does on RDS, where FreeStorageSpace counts WAL too); this test measures a
    // file written beside the server's own files, so nothing else may write to them.
    opts.heartbeat = None;
    opts.archive_timeout = None;
    let sup = Supervisor::up(opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    let st = LabState::load(&sup.dir).unwrap();
    let data = st.instances[&st.source].spec.data.clone();
    let key = godwit_lab::metrics::key("DBInstanceIdentifier", &st.source, "FreeStorageSpace");
    // The first sample taken after `since` (epoch seconds).
    let sample_after = |since: i64| {
        let (dir, key) = (sup.dir.clone(), key.clone());
        async move {
            for _ in 0..100 {
                if let Some(v) = godwit_lab::metrics::read_samples(&dir, since, i64::MAX)
                    .iter()
                    .find_map(|s| s.m.get(&key).copied())
                {
                    return v;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no FreeStorageSpace sample after {since}");
        }
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    const MIB: f64 = (1 << 20) as f64;
    let before = sample_after(now() + 1).await;
    let allocated = (1u64 << 30) as f64;
    assert!(before > 0.0 && before < allocated, "{before}");
    let fill = vec![7u8; 64 << 20];
    std::fs::write(sup.dir.join("host-disk-filler"), &fill).unwrap();
    let host_filled = sample_after(now() + 1).await;
    std::fs::write(data.join("instance-disk-filler"), &fill).unwrap();
    let instance_filled = sample_after(now() + 1).await;
    let expected = allocated - pgproc::dir_bytes(&data) as f64;
    eprintln!(
        "FreeStorageSpace: {:.1} MiB of 1024; after 64 MiB on the host's disk {:.1} MiB; after 64 MiB in the data directory {:.1} MiB (allocation minus the directory now: {:.1} MiB)",
        before / MIB,
        host_filled / MIB,
        instance_filled / MIB,
        expected / MIB
    );
    // The server's own files change a little between samples (statistics, WAL): 8 MiB slack.
    assert!(
        (host_filled - before).abs() < 8.0 * MIB,
        "the host's disk counted"
    );
    assert!(
        (host_filled - instance_filled - 64.0 * MIB).abs() < 8.0 * MIB,
        "the instance's own files not counted"
    );
    assert!((instance_filled - expected).abs() < 8.0 * MIB);
    sup.down().await;
}

/// The `snapshot` runbook on real PostgreSQL: the frozen source's base backup is the snapshot,
/// a copy of it the restored cluster, whose writer starts on it as a primary; the route
/// switches to it. Nothing acknowledged before the freeze is missing on the target, writes
/// after the switch land there, the old source refuses the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_snapshot_runbook_migrates_on_real_postgresql_losing_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path(), false).await;
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let mut opts = cutover_opts(store, Vec::new(), Kind::Tpcb);
    opts.runbook = runbook().with_file_name("snapshot.rhai");
    // The lab's fit for this runbook: one-second datapoints, groups in force at once.
    opts.params = serde_json::json!({ "metric_period": 1, "parameter_group_settle": "0s" })
        .as_object()
        .unwrap()
        .clone();
    let out = cutover::run(&sup, opts).await.unwrap();
    let w = &out.workload;
    eprintln!(
        "lab snapshot migration: {}",
        serde_json::to_string(&(w, &out.steps)).unwrap()
    );
    assert!(out.succeeded, "{:?}", out.report.as_ref().unwrap().status);
    assert_eq!(w.lost, Some(0), "{w:?}");
    assert_eq!(w.inconsistent, Some(0), "{w:?}");
    assert!(w.acked_after_switch.unwrap_or(0) > 0, "{w:?}");
    let st = LabState::load(&sup.dir).unwrap();
    let target = &st.clusters["orders-db-aurora"];
    let snapshot = target
        .restored_from
        .clone()
        .expect("restored from a snapshot");
    assert_eq!(st.snapshots[&snapshot].status, "available");
    assert!(target.replication_source.is_none());
    assert_eq!(
        out.target_port,
        Some(st.serving(&target.id).unwrap().port),
        "the loss check ran on the restored cluster"
    );
    let refused = direct_write(st.instances[&st.source].port, "app")
        .await
        .unwrap_err();
    assert!(refused.contains("pg_hba.conf rejects"), "{refused}");
    sup.down().await;
}

/// The route area in the lab world reads the control plane's judgement of its expected nodes
/// through the management API: the lab's Envoy is expected and ACKed; a second expected node
/// that never comes is `absent`, `all_acked` is false, and `wait_until_acked` fails naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expected_envoy_that_never_connects_is_absent_and_the_ack_wait_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path(), false).await;
    let source = sup.state.source.clone();
    assert_eq!(sup.plane().expected_nodes(&source), ["lab-envoy-1"]);
    sup.plane()
        .set_expected_nodes(&source, &["lab-envoy-1".into(), "lab-envoy-2".into()])
        .unwrap();
    let rb = tmp.path().join("nodes.rhai");
    std::fs::write(
        &rb,
        r#"
step("describe", || route::describe_route(CLUSTER));
step("wait", #{ retry: #{ attempts: 1 } }, || route::wait_until_acked(CLUSTER, #{ timeout: "2s", every: "500ms" }));
"#,
    )
    .unwrap();
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let mut opts = cutover_opts(store, Vec::new(), Kind::Insert);
    opts.runbook = rb;
    opts.params = Default::default();
    opts.clients = 1;
    let out = cutover::run(&sup, opts).await.unwrap();
    let described = out
        .lines
        .iter()
        .find_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } if name == "describe" => Some(result.clone()),
            _ => None,
        })
        .expect("describe completed");
    assert_eq!(
        described["nodes"],
        serde_json::json!([
            { "node": "lab-envoy-1", "status": "ack", "unexpected": false },
            { "node": "lab-envoy-2", "status": "absent", "unexpected": false },
        ]),
        "{described}"
    );
    assert_eq!(described["all_acked"], false, "{described}");
    let reason = match &out.report.as_ref().unwrap().status {
        godwit_engine::RunStatus::RolledBack { reason, .. } => reason.clone(),
        other => panic!("expected the wait to fail, got {other:?}"),
    };
    assert!(
        reason.contains("wait_until_acked") && reason.contains("(absent: lab-envoy-2)"),
        "{reason}"
    );
    sup.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn godwit_killed_mid_cutover_resumes_to_completion_losing_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path(), true).await;
    let st = LabState::load(&sup.dir).unwrap();
    let state = tmp.path().join("state");
    let load = Workload::start(
        st.route.listen_port,
        &st.app_role,
        &st.app_db,
        4,
        Duration::from_millis(5),
        Kind::Tpcb,
        st.seed_rows,
    );
    let world = format!("lab:{}", sup.dir.display());
    let mut args: Vec<String> = vec![
        "run".into(),
        runbook().display().to_string(),
        "--cluster".into(),
        st.source.clone(),
        "--world".into(),
        world,
    ];
    for (k, v) in cutover::lab_params() {
        args.push("--set".into());
        args.push(format!(
            "{k}={}",
            v.as_str().map(str::to_string).unwrap_or(v.to_string())
        ));
    }
    let mut child = Command::new(GODWIT)
        .args(&args)
        .env("GODWIT_STATE_DIR", &state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it right after the source was fenced: sessions ended, nothing promoted (kills at
    // every instant inside each step: lab_crash.rs).
    let killed_at = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let seen = wait_transcript(
                &state,
                &[r#""event":"gate-passed","name":"source-sessions-ended""#],
                Duration::from_secs(180),
            );
            child.kill().unwrap();
            child.wait().unwrap();
            seen
        })
        .await
        .unwrap()
    };
    assert!(killed_at, "the run never fenced the source");
    let resumed = tokio::task::spawn_blocking(move || {
        Command::new(GODWIT)
            .args(["resume", "last"])
            .env("GODWIT_STATE_DIR", &state)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = load.stop().await;
    assert!(
        resumed.status.success(),
        "resume failed: {}\n{}",
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr)
    );
    let st = LabState::load(&sup.dir).unwrap();
    let target = st
        .clusters
        .values()
        .find(|c| c.replication_source.is_none())
        .expect("the cluster was promoted");
    let port = st.serving(&target.id).unwrap().port;
    let mut w = workload::report(Kind::Tpcb, &logs);
    workload::check_on(&mut w, &logs, port, &st.app_db, None)
        .await
        .unwrap();
    eprintln!("killed and resumed: {}", serde_json::to_string(&w).unwrap());
    assert_eq!(w.lost, Some(0), "{w:?}");
    assert_eq!(w.inconsistent, Some(0), "{w:?}");
    assert!(w.acked > 300, "{w:?}");

    // Issue 24: the owning team's throwaway clone of the migrated cluster (`godwit clone`): a
    // copy on its own port, writable, whose writes stay on it; deleted when its time is up,
    // its server stopped.
    let target_id = target.id.clone();
    let clone_id = format!("{target_id}-clone");
    let state = tmp.path().join("state");
    let mut child = Command::new(GODWIT)
        .args(["clone", "last", "--for", "1m"])
        .env("GODWIT_STATE_DIR", &state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let clone_port = loop {
        let st = LabState::load(&sup.dir).unwrap();
        let up = st
            .serving(&clone_id)
            .filter(|i| i.status == "available" && i.cluster.as_deref() == Some(clone_id.as_str()))
            .map(|i| i.port);
        if let Some(p) = up {
            break p;
        }
        // Ended, or out of time: what godwit said is the diagnosis.
        let ended = child.try_wait().unwrap().is_some();
        if ended || std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the clone never came up (clusters {:?}); godwit clone: {}\n{}",
                st.clusters.keys().collect::<Vec<_>>(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let marker = 424_242_i64;
    let connect = |port: u16| async move {
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=app dbname=app connect_timeout=5"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        c
    };
    let clone_db = connect(clone_port).await;
    clone_db
        .execute(
            "INSERT INTO godwit_workload (client, seq) VALUES (-2, $1)",
            &[&marker],
        )
        .await
        .expect("the clone takes writes");
    let target_db = connect(port).await;
    let on_target: i64 = target_db
        .query_one(
            "SELECT count(*) FROM godwit_workload WHERE client = -2 AND seq = $1",
            &[&marker],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        on_target, 0,
        "a write on the clone reached the migrated cluster"
    );
    drop((clone_db, target_db));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success()
            && text.contains("is ready for its team")
            && text.contains("delete-clone"),
        "godwit clone: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = LabState::load(&sup.dir).unwrap();
    assert!(
        !st.clusters.contains_key(&clone_id) && st.serving(&clone_id).is_none(),
        "the clone is deleted"
    );
    sup.down().await;
}

/// `lab up --workload 2`, `lab status`, `lab down`: the clients' figures while it runs and at
/// the end, nothing left running, the logs kept and the data gone; `--purge` removes the rest.
#[test]
fn lab_up_status_and_down_by_hand_leave_nothing_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mylab");
    let state = tmp.path().join("state");
    let up = Command::new(GODWIT)
        .args([
            "lab",
            "up",
            "--rows",
            "100",
            "--no-cdc",
            "--workload",
            "2",
            "--dir",
        ])
        .arg(&dir)
        .env("GODWIT_STATE_DIR", &state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = |json: bool| {
        let mut c = Command::new(GODWIT);
        c.args(["lab", "status", "--dir"]).arg(&dir);
        if json {
            c.arg("--json");
        }
        c.env("GODWIT_STATE_DIR", &state).output().unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let s = loop {
        let out = status(true);
        if out.status.success() {
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if s["envoy"]["running"] == true && s["workload"]["acked"].as_u64() > Some(0) {
                break s;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lab did not come up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pause(Duration::from_millis(100));
    };
    let servers = s["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["role"], "primary");
    let mut pids: Vec<u32> = vec![
        s["envoy"]["pid"].as_u64().unwrap() as u32,
        servers[0]["pid"].as_u64().unwrap() as u32,
    ];
    let human = String::from_utf8(status(false).stdout).unwrap();
    assert!(
        human.contains("orders-db")
            && human.contains("primary")
            && human.contains("── measured by 2 clients writing through Envoy ──"),
        "{human}"
    );
    assert_eq!(s["unrecorded"], serde_json::json!([]), "{s}");

    // The lab world is usable from another process while it is up.
    let check = Command::new(GODWIT)
        .args(["repl", "--world"])
        .arg(format!("lab:{}", dir.display()))
        .env("GODWIT_STATE_DIR", &state)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"rds::describe_instance(\"orders-db\").status\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("available"), "{text}");

    let down = Command::new(GODWIT)
        .args(["lab", "down", "--dir"])
        .arg(&dir)
        .env("GODWIT_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    pids.push(up.id());
    let out = up.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lab up exited {}", out.status);
    assert!(
        printed.contains("write blackout") && printed.contains("lost commits 0 of"),
        "the workload's figures at lab down: {printed}"
    );
    assert!(
        pids.iter().all(|p| !pgproc::alive(*p)),
        "left running: {pids:?}"
    );
    assert!(pgproc::lab_processes(&dir).is_empty());
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(said.contains("logs kept in"), "{said}");
    for kept in [
        "lab.json",
        "orders-db.log",
        "metrics.jsonl",
        "workload.json",
    ] {
        assert!(dir.join(kept).exists(), "{kept} kept");
    }
    assert!(!dir.join("orders-db").exists(), "the data is removed");
    let purge = Command::new(GODWIT)
        .args(["lab", "down", "--purge", "--dir"])
        .arg(&dir)
        .env("GODWIT_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(
        purge.status.success(),
        "{}",
        String::from_utf8_lossy(&purge.stderr)
    );
    assert!(
        !dir.exists(),
        "lab down --purge removes the lab's directory"
    );
}

#[test]
fn the_lab_world_without_a_lab_says_how_to_start_one_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let out = Command::new(GODWIT)
        .args(["run", "rds-to-aurora", "--cluster", "orders-db", "--world"])
        .arg(format!("lab:{}", tmp.path().join("nolab").display()))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("GODWIT_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no lab at") && err.contains("godwit lab up"),
        "{err}"
    );
    assert!(!state.join("runs").exists(), "nothing was written");
}

#[test]
fn demo_in_the_lab_prints_the_summary_and_what_the_clients_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(GODWIT)
        .args(["demo", "--world", "lab"])
        .env("GODWIT_STATE_DIR", tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "── summary (wall-clock time) ──",
        "outcome: succeeded",
        "── measured by 4 clients writing through Envoy ──",
        "write blackout",
        "failed client attempts",
        "lost commits 0 of",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let bad = Command::new(GODWIT)
        .args(["demo", "--world", "lab", "--scenario", "idle-source"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the lab has none"));
}

/// Security groups admit by client address, like AWS's, not by role (issue 15): godwit comes
/// from 127.0.0.2, Envoy's upstream connections from 127.0.0.3, direct clients from 127.0.0.1.
/// A deny-all quarantine locks godwit out too (a `Timeout` naming the groups: on AWS the
/// connection times out); a quarantine admitting godwit's group lets godwit in and refuses
/// the application's login, direct and through Envoy, whatever its role; RDS's own
/// monitoring (the sampler) keeps sampling; the application's group lets everyone in again.
#[test]
fn security_groups_admit_by_address_and_a_deny_all_quarantine_locks_godwit_out() {
    use godwit_engine::ErrorKind;
    use godwit_stdlib::ec2::Admit;
    let tmp = tempfile::tempdir().unwrap();
    let f = godwit_tests::contract::worlds::lab(tmp.path());
    let dir = tmp.path().join("lab");
    let st = LabState::load(&dir).unwrap();
    let port = st.instances[&st.source].port;
    let app_groups = st.instances[&st.source].security_groups.clone();
    let envoy = st.route.listen_port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A login and one statement (direct_write's row key is the process id: one row only).
    let write = |port: u16, role: &str| {
        rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user={role} dbname=app connect_timeout=5"),
                tokio_postgres::NoTls,
            )
            .await
            .map_err(|e| godwit_stdlib::pg::live::error_text(&e))?;
            tokio::spawn(conn);
            c.simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| godwit_stdlib::pg::live::error_text(&e))
        })
    };
    let quarantine = |name: &str, admit: Vec<String>| {
        f.areas
            .ec2
            .ensure_quarantine_group(
                &f.cx("ec2", "ensure_quarantine_group"),
                &f.vpc,
                name,
                &Admit {
                    groups: admit,
                    port,
                },
            )
            .unwrap()
            .id
    };
    let set = |groups: &[String]| {
        f.areas
            .rds
            .set_security_groups(&f.cx("rds", "set_security_groups"), &f.source, groups)
            .unwrap();
    };
    let backends = || {
        f.areas
            .pg
            .application_backends(&f.cx("pg", "application_backends"), &f.source)
    };
    // Before: the application's group admits every loopback client.
    write(port, "app").unwrap();
    write(envoy, "app").unwrap();

    // A quarantine admitting nobody: godwit, with no session open, cannot log in either.
    let deny = quarantine("lab-deny-all", Vec::new());
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 1;
    set(std::slice::from_ref(&deny));
    // The reload is a signal: the postmaster rereads pg_hba.conf a moment later.
    let locked = f.wait("godwit locked out", || backends().err());
    eprintln!("deny-all quarantine, godwit: {locked}");
    assert_eq!(locked.kind, ErrorKind::Timeout, "{locked}");
    assert!(locked.retryable, "{locked}");
    assert!(
        locked.message.contains(&deny) && locked.message.contains("sg-lab-godwit"),
        "names the quarantine and godwit's group: {locked}"
    );
    let refused = write(port, "postgres").unwrap_err();
    eprintln!("deny-all quarantine, a superuser from 127.0.0.1: {refused}");
    assert!(refused.contains("pg_hba.conf rejects"), "{refused}");

    // A quarantine admitting godwit's group: godwit in, the application out, whatever role.
    let admit = quarantine("lab-admit-godwit", vec!["sg-lab-godwit".into()]);
    set(std::slice::from_ref(&admit));
    let seen = f.wait("godwit admitted", || backends().ok());
    eprintln!("godwit-only quarantine, godwit: application_backends = {seen:?}");
    for (what, port, role, from) in [
        ("direct", port, "app", "127.0.0.1"),
        ("direct", port, "postgres", "127.0.0.1"),
        ("through Envoy", envoy, "app", "127.0.0.3"),
    ] {
        let refused = write(port, role).unwrap_err();
        eprintln!("godwit-only quarantine, {role} {what}: {refused}");
        assert!(
            refused.contains("pg_hba.conf rejects") && refused.contains(from),
            "{what} as {role}: {refused}"
        );
    }
    // RDS's own monitoring is not subject to the groups: the sampler still samples.
    let key = godwit_lab::metrics::key("DBInstanceIdentifier", &st.source, "DatabaseConnections");
    f.wait("a sample during the quarantine", || {
        godwit_lab::metrics::read_samples(&dir, since + 1, i64::MAX)
            .iter()
            .find_map(|s| s.m.get(&key).copied())
    });

    // The application's group again: everyone in.
    set(&app_groups);
    f.wait("the application admitted again", || {
        write(port, "app").ok().and(write(envoy, "app").ok())
    });
}
