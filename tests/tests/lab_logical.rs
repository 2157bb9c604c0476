//! Issue 25, the logical runbook's lab acceptance: `runbooks/logical.rhai` on real PostgreSQL
//! servers and a real Envoy under the standard acceptance's write load (tests/tests/lab.rs),
//! from the lab's PostgreSQL 15 source into an Aurora cluster of the newer major the lab lists
//! (16.x, the `pgserver` wheel's binaries at `GODWIT_PG_NEWER_BIN`), created empty: the run
//! succeeds, no acknowledged commit is missing on the target, an insert there after the
//! cutover takes a new id (the sequences were set past the source's), the schema diff is empty,
//! the validation at the fence equal, the target runs 16; the write blackout the clients saw
//! is printed (the goal: at most 1 s in the lab; asserted under 5 s, for a shared CI machine).
//! Under inserts and under TPC-B, as the standard acceptance. And a source with a table without
//! a primary key is refused by the preflight (`replica-identity`) before anything is created.
//!
//! The 16 installation has only `plpgsql` and `vector`, and the lab lists for 16.x the
//! extensions that installation really has, so the lab source's `pg_stat_statements` (RDS
//! preloads it, the lab installs it in the application's database) is not supported there:
//! the preflight refuses with `extensions`, and the fix it names is what the cutover test
//! does first — `DROP EXTENSION pg_stat_statements` on the source (the library stays
//! preloaded; the query check then does not run, and its step says why).
//!
//! Needs the PostgreSQL server binaries, the newer major and Envoy (`scripts/test.sh`
//! provisions them); a missing one fails with its install command, never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use godwit_engine::RunStatus;
use godwit_engine::journal::file::FileStore;
use godwit_engine::transcript::{Event, Line};
use godwit_lab::cutover::{self, Cutover};
use godwit_lab::pgproc::PgBin;
use godwit_lab::workload::Kind;
use godwit_lab::{LabOptions, LabState, Supervisor};

fn runbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/logical.rhai")
}

async fn lab(dir: &Path) -> Supervisor {
    let mut opts = LabOptions::new(dir.join("lab"));
    opts.seed_rows = 2_000;
    // No CDC consumer: the lab's stand-in decodes with `test_decoding`, which the 16
    // installation (the pgserver wheel) lacks, so `restore-cdc` could not recreate its slot on
    // the target (`could not access file "test_decoding"`); Aurora 16 has the plugin. The CDC
    // phases run in the standard acceptance (tests/tests/lab.rs) and the simulator.
    opts.cdc = false;
    Supervisor::up(opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"))
}

/// The newer major's version as the lab lists it (`rds::list_engine_versions`: the binaries'
/// `postgres --version`, e.g. 16.x).
fn newer_version(dir: &Path) -> String {
    let own = LabState::load(dir).unwrap().bin;
    let newer = PgBin::newer_major(&own).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        newer.major > own.major,
        "{} → {}",
        own.version,
        newer.version
    );
    newer.version
}

/// The logical runbook's parameters fitted to a lab, as `cutover::lab_params` fits the
/// standard one: one-second metric periods (the lab samples every second), groups in force at
/// once, health polls 2 s apart; the target the newer major.
fn params(version: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::json!({
        "target_engine_version": version,
        "metric_period": 1,
        "parameter_group_settle": "0s",
        "health_every": "2s",
    })
    .as_object()
    .unwrap()
    .clone()
}

/// `sql` on the lab's server at `port` as the superuser (straight to it, from 127.0.0.1),
/// database `app`; the first column of the first row, as text.
async fn sql(port: u16, sql: &str) -> Result<Option<String>, String> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=app connect_timeout=10"),
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| error_text(&e))?;
    tokio::spawn(conn);
    let rows = c.simple_query(sql).await.map_err(|e| error_text(&e))?;
    Ok(rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    }))
}

fn completed(lines: &[Line], step: &str) -> serde_json::Value {
    lines
        .iter()
        .find_map(|l| match &l.event {
            Event::StepCompleted { name, result, .. } if name == step => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{step} completed"))
}

/// The blackout's parts on this path (no promotion): fence → sessions gone, fence LSN → the
/// target applied past it, sequences, the validation at the fence, the end of the forward
/// replication, the reverse path, the route switch; ms.
fn parts(lines: &[Line]) -> Vec<(String, i64)> {
    cutover::blackout_timeline(lines)
        .into_iter()
        .map(|(name, _, took)| (name, took))
        .collect()
}

/// What the orders writer saw: the ids it was given with when (epoch ms), and its errors by
/// text.
#[derive(Debug, Default)]
struct Orders {
    ids: Vec<(i64, i64)>,
    errors: BTreeMap<String, u64>,
}

/// An application inserting into `orders` through the route (Envoy at `port`) every 20 ms until
/// `stop`, reconnecting after any error: its ids come from the sequence of whichever database
/// serves the route, so after the cutover from the target's — set past the source's at the
/// fence, or its inserts collide with rows copied from the source (`duplicate key`).
async fn orders_writer(port: u16, stop: Arc<AtomicBool>) -> Orders {
    let mut seen = Orders::default();
    let mut client = None;
    while !stop.load(Ordering::SeqCst) {
        if client.is_none() {
            match tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user=app dbname=app connect_timeout=5"),
                tokio_postgres::NoTls,
            )
            .await
            {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    client = Some(c);
                }
                Err(e) => {
                    *seen.errors.entry(error_text(&e)).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        let c = client.as_ref().unwrap();
        match c
            .query_one(
                "INSERT INTO orders (customer, amount, note) VALUES (7, 1.00, 'live') RETURNING id",
                &[],
            )
            .await
        {
            Ok(row) => seen.ids.push((row.get(0), epoch_ms())),
            Err(e) => {
                *seen.errors.entry(error_text(&e)).or_default() += 1;
                client = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn error_text(e: &tokio_postgres::Error) -> String {
    godwit_stdlib::pg::live::error_text(e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_logical_runbook_moves_15_to_16_under_inserts_losing_nothing() {
    logical_cutover_under(Kind::Insert).await;
}

/// The same under TPC-B transactions (updates across tables, which logical replication
/// carries by key): nothing lost, no transaction half applied on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_logical_runbook_moves_15_to_16_under_updates_losing_nothing() {
    logical_cutover_under(Kind::Tpcb).await;
}

async fn logical_cutover_under(kind: Kind) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let sup = lab(tmp.path()).await;
    let version = newer_version(&sup.dir);
    let st = LabState::load(&sup.dir).unwrap();
    let source_port = st.instances[&st.source].port;
    // The fix the preflight names for `extensions` (the module's comment).
    sql(source_port, "DROP EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let orders = tokio::spawn(orders_writer(st.route.listen_port, stop.clone()));
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let opts = Cutover {
        runbook: runbook(),
        params: params(&version),
        store,
        clients: 4,
        pace: Duration::from_millis(5),
        warmup: Duration::from_millis(500),
        workload: kind,
        sinks: Vec::new(),
    };
    let out = cutover::run(&sup, opts).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let orders = orders.await.unwrap();
    let w = &out.workload;
    let lines = &out.lines;
    eprintln!(
        "lab logical cutover 15 → {version} under {kind:?}: write blackout {:.0} ms (goal ≤ 1000 ms), lost {:?} of {} acknowledged commits, {} failed attempts; blackout parts (ms) {:?}; phases {:?}",
        w.blackout_ms,
        w.lost,
        w.acked,
        w.failed_attempts,
        parts(lines),
        out.phases,
    );
    eprintln!("workload: {}", serde_json::to_string(w).unwrap());
    let report = out.report.as_ref().unwrap();
    assert!(
        out.succeeded,
        "{:?}\n{:#?}",
        report.status,
        lines
            .iter()
            .filter(|l| matches!(
                l.event,
                Event::StepFailed { .. } | Event::Print { .. } | Event::GateTimedOut { .. }
            ))
            .collect::<Vec<_>>()
    );

    // Zero acknowledged commits missing on the target, and writes after the cutover there.
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
    // The blackout: printed above; bounded generously here for a shared CI machine (the
    // goal, at most 1 s in the lab, is what the printed figure is read against).
    assert!(w.blackout_ms < 5_000.0, "write blackout {w:?}");

    // The schema step found no difference.
    let diff = completed(lines, "schema-diff");
    assert_eq!(
        diff["missing_or_different"],
        serde_json::json!([]),
        "{diff}"
    );
    assert_eq!(diff["extra"], serde_json::json!([]), "{diff}");
    assert!(diff["tables"].as_i64().unwrap() >= 6, "{diff}");

    // The exact validation at the fence: equal, every application table, and the sequence on
    // the target at or past the source's (set by `advance-sequences` just before).
    let validation = completed(lines, "validate-at-fence");
    assert_eq!(validation["equal"], true, "{validation}");
    let tables: Vec<&str> = validation["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["table"].as_str())
        .collect();
    for t in [
        "public.orders",
        "public.godwit_workload",
        "public.tpcb_accounts",
    ] {
        assert!(tables.contains(&t), "{t} not compared: {tables:?}");
    }
    let seq = &validation["sequences"][0];
    assert!(
        seq["name"] == "public.orders_id_seq" && seq["ok"] == true,
        "the sequence past the source's at the fence: {validation}"
    );

    // The target runs the newer major, and serves the route.
    let target = out.target_port.expect("the target serves");
    assert_ne!(target, source_port);
    let major = sql(
        target,
        "SELECT current_setting('server_version_num')::int / 10000",
    )
    .await
    .unwrap();
    assert_eq!(
        major.as_deref(),
        version.split('.').next(),
        "the target runs {version}'s major"
    );

    // Sequences (logical replication does not carry them): the orders writer inserted through
    // the route before, during and after the cutover without a collision, every id it was
    // given is on the target, and an insert there now takes an id past every row.
    eprintln!(
        "orders writer: {} inserts, ids {:?}..{:?}, errors {:?}",
        orders.ids.len(),
        orders.ids.first(),
        orders.ids.last(),
        orders.errors
    );
    assert!(
        !orders.errors.keys().any(|e| e.contains("duplicate key")),
        "an insert after the cutover collided: {:?}",
        orders.errors
    );
    let switched = out
        .steps
        .iter()
        .find(|(s, _)| s == "switch-route")
        .map(|(_, at)| *at)
        .expect("the route switched");
    let on_target: i64 = sql(
        target,
        &format!(
            "SELECT count(*) FROM orders WHERE id IN ({})",
            orders
                .ids
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(
        on_target,
        orders.ids.len() as i64,
        "orders ids on the target"
    );
    let after = orders.ids.iter().filter(|(_, at)| *at > switched).count();
    assert!(after > 0, "no order inserted after the switch: {orders:?}");
    let max_before: i64 = sql(target, "SELECT max(id) FROM orders")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let id: i64 = sql(
        target,
        "INSERT INTO orders (customer, amount, note) VALUES (1, 1.00, 'after the cutover') RETURNING id",
    )
    .await
    .unwrap_or_else(|e| panic!("an insert after the cutover: {e}"))
    .unwrap()
    .parse()
    .unwrap();
    assert!(id > max_before, "new id {id}, rows up to {max_before}");
    let sequences = completed(lines, "advance-sequences");
    eprintln!(
        "sequences advanced at the fence: {sequences}; the route switched at {switched}; an insert on the target now took id {id}"
    );
    sup.down().await;
    eprintln!("wall time {:.1} s", started.elapsed().as_secs_f64());
}

/// A table without a primary key (or replica identity) on the source: logical replication
/// cannot carry its updates and deletes, and the preflight refuses with `replica-identity`
/// naming it — with `pg_stat_statements` still installed also with `extensions` (16.x lacks
/// it) — before anything is created: no parameter group, no cluster, no publication or slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_without_a_key_is_refused_by_the_preflight_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = LabOptions::new(tmp.path().join("lab"));
    opts.seed_rows = 100;
    opts.cdc = false;
    let sup = Supervisor::up(opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    let version = newer_version(&sup.dir);
    let before = LabState::load(&sup.dir).unwrap();
    let source_port = before.instances[&before.source].port;
    sql(
        source_port,
        "SET ROLE app; CREATE TABLE audit_log (at timestamptz NOT NULL DEFAULT now(), what text); \
         INSERT INTO audit_log (what) VALUES ('a row')",
    )
    .await
    .unwrap();
    let store = Arc::new(FileStore::new(tmp.path().join("runs")));
    let (report, lines) = cutover::drive(&sup, store, runbook(), params(&version))
        .await
        .unwrap();
    let reason = match &report.status {
        RunStatus::RolledBack { reason, .. } => reason.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    eprintln!("refused: {reason}");
    assert!(
        reason.contains("preflight failed")
            && reason.contains("replica-identity")
            && reason.contains("public.audit_log"),
        "{reason}"
    );
    assert!(
        reason.contains("extensions") && reason.contains("pg_stat_statements"),
        "{reason}"
    );
    // The read-only preflight is the one step that ran.
    let ran: Vec<&str> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::StepStarted { name } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ran, ["preflight"], "steps started");
    let after = LabState::load(&sup.dir).unwrap();
    assert!(after.clusters.is_empty(), "{:?}", after.clusters.keys());
    assert_eq!(
        after.parameter_groups.keys().collect::<Vec<_>>(),
        before.parameter_groups.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        sql(
            source_port,
            "SELECT (SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'godwit%')"
        )
        .await
        .unwrap()
        .as_deref(),
        Some("0")
    );
    sup.down().await;
}
