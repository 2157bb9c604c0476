//! godwit killed with SIGKILL inside every mutating step of the standard runbook in the lab,
//! then resumed by a new process, again and again in one migration: the run completes, no
//! acknowledged commit is lost, every side effect happened once, and no process is left —
//! neither unrecorded while the lab runs nor any after `lab down`.
//!
//! Two kinds of instants, both inside steps (never only at journal boundaries):
//!
//! * **crash points** inside a lab operation, between two of its actions (`GODWIT_LAB_CRASH_AT`,
//!   `godwit_lab::pgproc::crash_point`): after the intent is recorded, with a server spawned
//!   but its pid not yet recorded, with its pid recorded while it starts, once it is ready but
//!   before the operation is marked done, with the old server signalled but still shutting
//!   down, with a copy (`pg_basebackup`) running, …;
//! * **after the n-th world call of a step**: the test watches the transcript and kills the
//!   process as soon as it sees the call (between two primitive calls of one step; the route
//!   steps, whose state lives in the control plane, are covered this way).
//!
//! Each run takes the k-th instant of every step's list, so one migration is killed about ten
//! times; there are as many runs as the longest list. Needs PostgreSQL and Envoy like the
//! other lab tests. Nothing here asserts on time.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use godwit_engine::transcript::{Event, Line};
use godwit_lab::pgproc;
use godwit_lab::workload::{self, Kind, Workload};
use godwit_lab::{LabOptions, LabState, Supervisor, cutover, supervisor};

const GODWIT: &str = env!("CARGO_BIN_EXE_godwit-toy");

/// Where one kill lands.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The lab operation's crash point (`<op>:<moment>`), inside `step`.
    Point(&'static str, &'static str),
    /// Right after the n-th primitive call of `step` (as the transcript shows it).
    AfterCall(&'static str, usize),
}

impl Kill {
    fn step(&self) -> &'static str {
        match self {
            Kill::Point(step, _) | Kill::AfterCall(step, _) => step,
        }
    }

    fn label(&self) -> String {
        match self {
            Kill::Point(step, p) => format!("{step} at {p}"),
            Kill::AfterCall(step, n) => format!("{step} after world call {n}"),
        }
    }
}

/// Every mutating step of the standard runbook (with `fence_method=reboot`) and the instants
/// it is killed at, in run order.
fn instants() -> Vec<Vec<Kill>> {
    use Kill::*;
    vec![
        vec![AfterCall("create-parameter-groups", 1)],
        vec![
            Point("create-replica-cluster", "create_replica_cluster:intent"),
            Point("create-replica-cluster", "create_replica_cluster:copying"),
            Point("create-replica-cluster", "create_replica_cluster:copied"),
        ],
        vec![
            Point("create-writer-instance", "create_cluster_instance:intent"),
            Point("create-writer-instance", "create_cluster_instance:spawned"),
            Point("create-writer-instance", "create_cluster_instance:recorded"),
            Point("create-writer-instance", "create_cluster_instance:ready"),
        ],
        vec![
            Point("pause-cdc-consumers", "pause_consumer:stopped"),
            AfterCall("pause-cdc-consumers", 2),
        ],
        // No kill polled inside the hold: its publish is ACKed in milliseconds now, and a kill
        // polled from the transcript landed in the fence or the reboot instead, whose own
        // points the next resume then never reached (a step boundary is covered by the
        // engine's crash-after-every-step tests).
        // Not a kill polled after the fence's last call either: the lab applies the groups at
        // once, and the kill landed inside reboot-source, whose own points the next resume then
        // never reached.
        vec![
            Point("fence", "set_security_groups:written"),
            Point("fence", "set_security_groups:reloaded"),
        ],
        vec![
            Point("reboot-source", "reboot_instance:intent"),
            Point("reboot-source", "reboot_instance:signalled"),
            Point("reboot-source", "reboot_instance:stopped"),
            Point("reboot-source", "reboot_instance:spawned"),
            Point("reboot-source", "reboot_instance:recorded"),
            Point("reboot-source", "reboot_instance:ready"),
        ],
        vec![
            Point("promote", "promote_cluster:intent"),
            Point("promote", "promote_cluster:requested"),
            AfterCall("promote", 1),
        ],
        vec![AfterCall("switch-route", 2), AfterCall("switch-route", 1)],
        // Points, not a kill polled from the transcript: the run ends a few milliseconds after
        // this step's first call, and a polled kill could come after the exit.
        vec![
            Point("restore-cdc", "resume_consumer:spawned"),
            Point("restore-cdc", "create_equivalent_slots:created"),
        ],
    ]
}

fn runbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai")
}

/// Watching another process's files happens in real time.
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn transcript(state: &Path) -> Vec<Line> {
    let mut lines = Vec::new();
    for run in std::fs::read_dir(state.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(run.path().join("transcript.jsonl")).unwrap_or_default();
        lines.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Line>(l).ok()),
        );
    }
    lines
}

/// Primitive calls made since `step` last started (or was re-run), if it is the latest.
fn calls_in(lines: &[Line], step: &str) -> Option<usize> {
    let start = lines.iter().rposition(|l| {
        matches!(&l.event, Event::StepStarted { name } | Event::StepRerun { name } if name == step)
    })?;
    Some(
        lines[start..]
            .iter()
            .filter(|l| matches!(l.event, Event::Primitive { .. }))
            .count(),
    )
}

/// Where the run stood when it died: the last step started and whether it completed.
fn landed(lines: &[Line]) -> String {
    let last_started = lines.iter().rev().find_map(|l| match &l.event {
        Event::StepStarted { name } | Event::StepRerun { name } => Some(name.clone()),
        _ => None,
    });
    let Some(step) = last_started else {
        return "before any step".into();
    };
    let completed = lines
        .iter()
        .rev()
        .any(|l| matches!(&l.event, Event::StepCompleted { name, .. } if *name == step));
    let calls = calls_in(lines, &step).unwrap_or(0);
    if completed {
        format!("after {step} completed")
    } else {
        format!("inside {step}, after {calls} world calls")
    }
}

/// The lab's servers as the kill left them: status, operation in flight, pid recorded and
/// running, and any unrecorded process.
fn lab_snapshot(dir: &Path) -> String {
    let st = LabState::load(dir).unwrap();
    let mut parts: Vec<String> = st
        .instances
        .values()
        .map(|i| {
            format!(
                "{} {}{}{}",
                i.id,
                i.status,
                i.op.as_ref()
                    .map(|o| format!(" op={}", serde_json::to_value(o).unwrap()["kind"]))
                    .unwrap_or_default(),
                match (i.pid, pgproc::running_pid(&i.spec.data)) {
                    (Some(p), Some(r)) if p == r => " (recorded pid runs)".to_string(),
                    (rec, run) => format!(" (recorded {rec:?}, running {run:?})"),
                }
            )
        })
        .collect();
    for c in st.clusters.values() {
        parts.push(format!("cluster {} {}", c.id, c.status));
    }
    let stray = supervisor::unrecorded_processes(&st);
    if !stray.is_empty() {
        parts.push(format!(
            "unrecorded: {:?}",
            stray.iter().map(|p| (&p.name, p.pid)).collect::<Vec<_>>()
        ));
    }
    parts.join("; ")
}

fn godwit(state: &Path, args: &[String], kill: Option<Kill>) -> Child {
    let mut c = Command::new(GODWIT);
    c.args(args)
        .env("GODWIT_STATE_DIR", state)
        .env_remove("GODWIT_LAB_CRASH_AT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(Kill::Point(_, point)) = kill {
        c.env("GODWIT_LAB_CRASH_AT", point);
    }
    c.spawn().unwrap()
}

/// Wait for `child`, killing it (SIGKILL) after the n-th world call of a step for an
/// `AfterCall`. Returns whether it died of SIGKILL, and its stderr otherwise.
fn wait_kill(state: &Path, mut child: Child, kill: Option<Kill>) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.signal() == Some(9), format!("{status}: {err}"));
        }
        if let Some(Kill::AfterCall(step, n)) = kill
            && calls_in(&transcript(state), step).is_some_and(|c| c >= n)
        {
            let _ = child.kill(); // SIGKILL
        }
        if Instant::now() >= deadline {
            // Where it was stuck, for the next person: the run's last lines and its stderr.
            let _ = child.kill();
            let lines = transcript(state);
            let tail: Vec<String> = lines
                .iter()
                .rev()
                .take(12)
                .rev()
                .map(|l| format!("{:?}", l.event).chars().take(300).collect())
                .collect();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "godwit neither finished nor reached {kill:?} in 5 minutes; it was {}; last \
                 transcript lines:\n{}\nstderr (last 2000 bytes): {}",
                landed(&lines),
                tail.join("\n"),
                err.chars()
                    .skip(err.chars().count().saturating_sub(2000))
                    .collect::<String>()
            );
        }
        pause(Duration::from_millis(1));
    }
}

fn count_events(st: &LabState, id: &str, message: &str) -> usize {
    st.events
        .iter()
        .filter(|e| e.source_id == id && e.message == message)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn godwit_killed_anywhere_in_every_mutating_lab_step_resumes_losing_nothing() {
    let instants = instants();
    let runs = instants.iter().map(Vec::len).max().unwrap();
    let mut covered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for run in 0..runs {
        let kills: Vec<Kill> = instants
            .iter()
            .filter_map(|s| s.get(run).copied())
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = LabOptions::new(tmp.path().join("lab"));
        opts.seed_rows = 2_000;
        let mut sup = Supervisor::up(opts)
            .await
            .unwrap_or_else(|e| panic!("lab up: {e}"));
        sup.keep_files();
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
        let mut args: Vec<String> = vec![
            "run".into(),
            runbook().display().to_string(),
            "--cluster".into(),
            st.source.clone(),
            "--world".into(),
            format!("lab:{}", sup.dir.display()),
        ];
        let mut params = cutover::lab_params();
        params.insert("validation_window".into(), "5s".into());
        params.insert("fence_method".into(), "reboot".into());
        for (k, v) in params {
            args.push("--set".into());
            args.push(format!(
                "{k}={}",
                v.as_str().map(str::to_string).unwrap_or(v.to_string())
            ));
        }
        let resume: Vec<String> = vec!["resume".into(), "last".into()];
        let mut first = true;
        for kill in &kills {
            let child = godwit(&state, if first { &args } else { &resume }, Some(*kill));
            first = false;
            let (killed, out) = {
                let state = state.clone();
                let kill = *kill;
                tokio::task::spawn_blocking(move || wait_kill(&state, child, Some(kill)))
                    .await
                    .unwrap()
            };
            assert!(
                killed,
                "run {run}: godwit was not killed at {} but exited {out}",
                kill.label()
            );
            let at = landed(&transcript(&state));
            let lab = lab_snapshot(&sup.dir);
            eprintln!("run {run}: killed {} — {at} — lab: {lab}", kill.label());
            if let Kill::Point(..) = kill {
                assert!(
                    at.starts_with(&format!("inside {}", kill.step())),
                    "{} landed {at}",
                    kill.label()
                );
            }
            covered
                .entry(kill.step().to_string())
                .or_default()
                .push(format!("{} ({at})", kill.label()));
        }
        let child = godwit(&state, &resume, None);
        let (killed, out) = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || wait_kill(&state, child, None))
                .await
                .unwrap()
        };
        assert!(
            !killed && out.starts_with("exit status: 0"),
            "run {run}: the last resume: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let logs = load.stop().await;

        // Nothing acknowledged lost, no transaction half applied, on the promoted target.
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
        eprintln!("run {run}: {}", serde_json::to_string(&w).unwrap());
        assert!(w.acked > 300, "the load ran: {w:?}");
        assert_eq!(w.lost, Some(0), "run {run}: {w:?}");
        assert_eq!(w.inconsistent, Some(0), "run {run}: {w:?}");

        // Each side effect once: one reboot of the source, one cluster and one writer created.
        let source = &st.instances[&st.source];
        assert_eq!(source.reboots.len(), 1, "{:?}", source.reboots);
        assert_eq!(count_events(&st, &st.source, "DB instance shutdown"), 1);
        assert_eq!(count_events(&st, &st.source, "DB instance restarted"), 1);
        assert_eq!(count_events(&st, &target.id, "DB cluster created"), 1);
        let writer = &target.members[0];
        assert_eq!(count_events(&st, writer, "DB instance created"), 1);
        assert!(st.pending_ops().is_empty(), "{:?}", st.pending_ops());

        // No process the lab does not know of; none at all after `lab down`.
        let stray = supervisor::unrecorded_processes(&st);
        assert!(
            stray.is_empty(),
            "run {run}: unrecorded processes: {stray:?}"
        );
        let running: Vec<u32> = pgproc::lab_processes(&sup.dir)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert!(!running.is_empty());
        let dir = sup.dir.clone();
        sup.down().await;
        let left = pgproc::lab_processes(&dir);
        assert!(left.is_empty(), "run {run}: left running: {left:?}");
        assert!(
            running.iter().all(|p| !pgproc::alive(*p)),
            "run {run}: left running: {running:?}"
        );
    }
    eprintln!("instants covered:");
    for (step, kills) in covered {
        eprintln!("  {step}:");
        for k in kills {
            eprintln!("    {k}");
        }
    }
}
