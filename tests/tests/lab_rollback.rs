//! The rollback window in the lab (runbooks/lib/reverse.rhai): the standard cutover under a
//! write load through Envoy starts reverse logical replication from the promoted target back to
//! the fenced source; clients then write to the target for a while; `godwit rollback RUN` (the
//! `rollback` runbook with what the run journaled) brings them back to the source — and every
//! commit acknowledged before, during and after both switches is on the source, and the
//! source's sequences are past every value the target handed out.
//!
//! Needs the PostgreSQL server binaries and Envoy (`scripts/test.sh` provisions both). Nothing
//! asserts on time: the two blackouts are printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::journal::file::FileStore;
use godwit_engine::plan::Plan;
use godwit_engine::transcript::Event;
use godwit_engine::{JournalStore, RunStatus};
use godwit_lab::cutover::{self, data_home};
use godwit_lab::workload::{self, Kind, Workload};
use godwit_lab::{LabOptions, LabState, Supervisor};
use godwit_tests::harness::wait_transcript;

fn runbooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks")
}

/// A superuser connection straight to the server on `port` (not through Envoy).
async fn direct(port: u16, db: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname={db} connect_timeout=10"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
    tokio::spawn(conn);
    c
}

/// A superuser connection to `id`'s server over its Unix socket (not governed by the lab's
/// security groups, like RDS's own sessions).
async fn on_socket(st: &LabState, id: &str) -> tokio_postgres::Client {
    let inst = st.serving(id).unwrap();
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(&inst.spec.socket_dir)
        .port(inst.port)
        .user("rdsadmin")
        .dbname(&st.app_db);
    let (c, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

fn step_end(lines: &[godwit_engine::transcript::Line], step: &str) -> Option<i64> {
    lines.iter().find_map(|l| match &l.event {
        Event::StepCompleted { name, .. } if name == step => Some(l.at),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_after_the_cutover_loses_no_write_and_moves_the_sequences_past_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = LabOptions::new(tmp.path().join("lab"));
    opts.cdc = true;
    opts.seed_rows = 2_000;
    let sup = Supervisor::up(opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    let st = LabState::load(&sup.dir).unwrap();
    let load = Workload::start(
        st.route.listen_port,
        &st.app_role,
        &st.app_db,
        4,
        Duration::from_millis(5),
        Kind::Tpcb,
        st.seed_rows,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The cutover, with the rollback window (reverse_replication=auto: the lab gives SQL).
    let store: Arc<FileStore> = Arc::new(FileStore::new(tmp.path().join("runs")));
    let run = |runbook: PathBuf, params| cutover::drive(&sup, store.clone(), runbook, params);
    let (report, lines) = run(runbooks().join("rds-to-aurora.rhai"), cutover::lab_params())
        .await
        .unwrap();
    assert!(
        matches!(report.status, RunStatus::Succeeded { .. }),
        "{:?}",
        report.status
    );
    assert!(
        step_end(&lines, "subscribe-source-to-target").unwrap()
            < step_end(&lines, "switch-route").unwrap(),
        "the reverse path starts before the route is released"
    );

    // The team's schema migrations on the target are frozen for the window (the lab's hook
    // keeps a freeze file, the reason inside).
    let freeze_file = sup
        .dir
        .join("schema-freeze")
        .join(format!("{}-aurora", st.source));
    let reason = std::fs::read_to_string(&freeze_file).unwrap_or_default();
    assert!(
        reason.contains("rollback window"),
        "{freeze_file:?}: {reason:?}"
    );

    // The clients write to the target for a while; one order takes a sequence value there.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = LabState::load(&sup.dir).unwrap();
    let target_port = data_home(&st).expect("a promoted target serves");
    let source_port = st.instances[&st.source].port;
    assert_ne!(target_port, source_port);
    // The fenced source reached the target through the path create-reverse-path opened: the
    // quarantine's one egress rule, and the target's group admitting the quarantine. The lab
    // checks security groups before a server connects to another as AWS's network would: the
    // other way round (the target's group to the quarantine, which admits only godwit) it
    // refuses, with a Timeout.
    {
        use godwit_stdlib::pg::live::Connector;
        let cluster = st.clusters.keys().next().unwrap().clone();
        let q = &st.instances[&st.source].security_groups;
        assert_eq!(q.len(), 1, "quarantined: {q:?}");
        let target_groups = &st.serving(&cluster).unwrap().security_groups;
        assert_eq!(
            st.security_groups[&q[0]].egress,
            [format!("tcp/{target_port} to {}", target_groups[0])]
        );
        let lab = godwit_lab::areas::LabConnector {
            dir: sup.dir.clone(),
        };
        lab.may_connect("subscribe", &st.source, &cluster).unwrap();
        let e = lab
            .may_connect("subscribe", &cluster, &st.source)
            .unwrap_err();
        assert_eq!(e.kind, godwit_engine::ErrorKind::Timeout, "{e:?}");
        assert!(e.message.contains("no ingress rule"), "{e:?}");
    }
    let on_target: i64 = direct(target_port, &st.app_db)
        .await
        .query_one(
            "INSERT INTO orders (customer, amount) VALUES (7, 1) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    // `godwit rollback RUN`: the window as the CLI reads it from the run's journal.
    let plan = Plan::from_records(&store.read(&report.run_id).unwrap().records);
    let w = godwit_stdlib::rollback_window::window(&report.run_id, &plan).unwrap();

    // `godwit rollback RUN --check`: the window is healthy, and checking changes nothing.
    let mut check = w.params.clone();
    check.insert("check_only".into(), true.into());
    let (c, checked) = run(w.runbook.clone(), check.clone()).await.unwrap();
    assert!(
        matches!(c.status, RunStatus::Succeeded { .. }),
        "{:?}",
        c.status
    );
    assert!(
        !checked.iter().any(|l| matches!(
            &l.event,
            Event::Primitive { op, .. } if op == "switch_route" || op == "block_logins"
        )),
        "a check holds no client and fences nothing"
    );

    // A DDL on the target during the window: logical replication does not carry it, so the
    // rollback refuses before it touches anything, saying what differs, and the clients stay
    // on the target.
    let target_sql = direct(target_port, &st.app_db).await;
    target_sql
        .batch_execute("ALTER TABLE orders ADD COLUMN coupon text")
        .await
        .unwrap();
    let (r, refused) = run(w.runbook.clone(), w.params.clone()).await.unwrap();
    let said = format!("{:?}", r.status);
    assert!(
        !matches!(r.status, RunStatus::Succeeded { .. })
            && said.contains("the schemas differ")
            && said.contains("coupon"),
        "{said}"
    );
    assert!(
        !refused.iter().any(|l| matches!(
            &l.event,
            Event::Primitive { op, .. } if op == "switch_route" || op == "block_logins"
        )),
        "the refusal held no client and fenced nothing"
    );
    target_sql
        .batch_execute("ALTER TABLE orders DROP COLUMN coupon")
        .await
        .unwrap();

    // A table created on the target during the window is not carried by the subscription
    // (PostgreSQL drops its rows silently), even once the source has it too: refused, naming it.
    target_sql
        .batch_execute("CREATE TABLE refunds (id bigint PRIMARY KEY, amount numeric)")
        .await
        .unwrap();
    // (The source is quarantined: RDS's own way in, the server's Unix socket.)
    let fenced_source = on_socket(&st, &st.source).await;
    fenced_source
        .batch_execute("CREATE TABLE refunds (id bigint PRIMARY KEY, amount numeric)")
        .await
        .unwrap();
    let (r, _) = run(w.runbook.clone(), check).await.unwrap();
    let said = format!("{:?}", r.status);
    assert!(
        said.contains("not carried by the subscription") && said.contains("public.refunds"),
        "{said}"
    );
    target_sql
        .batch_execute("DROP TABLE refunds")
        .await
        .unwrap();
    fenced_source
        .batch_execute("DROP TABLE refunds")
        .await
        .unwrap();
    assert_eq!(
        w.runbook.canonicalize().unwrap(),
        runbooks().join("rollback.rhai").canonicalize().unwrap()
    );
    // (the schemas agree again: the column was dropped on the target)
    let (rolled, back_lines) = run(w.runbook, w.params).await.unwrap();
    assert!(
        matches!(rolled.status, RunStatus::Succeeded { .. }),
        "{:?}",
        rolled.status
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let logs = load.stop().await;

    // Every acknowledged commit is on the source, balances agree with the history, and
    // commits acknowledged after the rollback are there too.
    let released = step_end(&back_lines, "release-to-source").unwrap();
    let mut w = workload::report(Kind::Tpcb, &logs);
    workload::check_on(&mut w, &logs, source_port, &st.app_db, Some(released))
        .await
        .unwrap();
    let forward_gap = cutover::longest_gap(
        &logs,
        lines.first().map_or(0, |l| l.at),
        step_end(&lines, "switch-route").unwrap() + 1_000,
    );
    let rollback_gap = cutover::longest_gap(&logs, back_lines[0].at, released + 1_000);
    eprintln!(
        "lab rollback: forward blackout {forward_gap} ms, rollback blackout {rollback_gap} ms; \
         acked {}, lost {:?}, inconsistent {:?}, acked after the rollback {:?}",
        w.acked, w.lost, w.inconsistent, w.acked_after_switch
    );
    // Where the rollback's time goes: its primitives, in order, with their duration.
    let parts: Vec<String> = back_lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::Primitive { area, op, ms, .. } => Some(format!("{area}::{op} {ms} ms")),
            _ => None,
        })
        .collect();
    eprintln!("rollback primitives: {}", parts.join(", "));
    assert!(w.acked > 500, "the load ran: {w:?}");
    assert_eq!(
        w.lost,
        Some(0),
        "acknowledged commits missing on the source: {w:?}"
    );
    assert_eq!(w.inconsistent, Some(0), "{w:?}");
    assert!(
        w.acked_after_switch.unwrap_or(0) > 0,
        "clients write to the source again: {w:?}"
    );

    // The order made on the target is on the source, and the next one there is past it.
    let src = direct(source_port, &st.app_db).await;
    let copied: i64 = src
        .query_one("SELECT count(*) FROM orders WHERE id = $1", &[&on_target])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        copied, 1,
        "the target's order {on_target} reached the source"
    );
    let next: i64 = src
        .query_one(
            "INSERT INTO orders (customer, amount) VALUES (8, 1) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        next > on_target,
        "sequence on the source {next} ≤ the target's {on_target}"
    );

    // The migrations run again.
    assert!(!freeze_file.exists(), "unfrozen after the rollback");
    // Nothing of the reverse path is left: no subscription on the source, no slot on the target.
    let subs: i64 = src
        .query_one("SELECT count(*) FROM pg_subscription", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(subs, 0);
    let slots: i64 = direct(target_port, &st.app_db)
        .await
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'godwit_reverse'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0);
    drop(sup);
}

const GODWIT: &str = env!("CARGO_BIN_EXE_godwit-toy");

/// `godwit rollback last` SIGKILLed inside its blackout — Aurora fenced and the clients held
/// (`at`: the primitive it is killed after) — and resumed by `godwit resume last`: the
/// rollback completes and nothing is lost.
async fn killed_mid_rollback_resumes(at: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = LabOptions::new(tmp.path().join("lab"));
    opts.seed_rows = 2_000;
    let sup = Supervisor::up(opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"));
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
        runbooks().join("rds-to-aurora.rhai").display().to_string(),
        "--cluster".into(),
        st.source.clone(),
        "--world".into(),
        format!("lab:{}", sup.dir.display()),
    ];
    for (k, v) in cutover::lab_params() {
        args.push("--set".into());
        args.push(format!(
            "{k}={}",
            v.as_str().map(str::to_string).unwrap_or(v.to_string())
        ));
    }
    let godwit = |args: Vec<String>| {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(GODWIT)
                .args(&args)
                .env("GODWIT_STATE_DIR", &state)
                .output()
                .unwrap()
        })
    };
    let forward = godwit(args).await.unwrap();
    assert!(
        forward.status.success(),
        "cutover failed: {}",
        String::from_utf8_lossy(&forward.stderr)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut child = std::process::Command::new(GODWIT)
        .args(["rollback", "last"])
        .env("GODWIT_STATE_DIR", &state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pat = format!(r#""op":"{at}""#);
    let seen = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let seen = wait_transcript(
                &state,
                &[r#""event":"primitive""#, &pat],
                Duration::from_secs(120),
            );
            child.kill().unwrap();
            child.wait().unwrap();
            seen
        })
        .await
        .unwrap()
    };
    assert!(seen, "the rollback never reached {at}");
    let resumed = godwit(vec!["resume".into(), "last".into()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = load.stop().await;
    assert!(
        resumed.status.success(),
        "resume failed: {}\n{}",
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr)
    );
    // Commits acknowledged after the resume went through the route: on the source only if it
    // serves the source again (a route left on the target would show them lost).
    let st = LabState::load(&sup.dir).unwrap();
    let mut w = workload::report(Kind::Tpcb, &logs);
    workload::check_on(
        &mut w,
        &logs,
        st.instances[&st.source].port,
        &st.app_db,
        None,
    )
    .await
    .unwrap();
    eprintln!(
        "killed after {at} and resumed: {}",
        serde_json::to_string(&w).unwrap()
    );
    assert_eq!(w.lost, Some(0), "{w:?}");
    assert_eq!(w.inconsistent, Some(0), "{w:?}");
    assert!(w.acked > 300, "{w:?}");
    sup.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_killed_with_the_target_fenced_resumes_losing_nothing() {
    killed_mid_rollback_resumes("block_logins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_killed_past_the_subscription_drop_resumes_losing_nothing() {
    killed_mid_rollback_resumes("drop_subscription").await;
}
