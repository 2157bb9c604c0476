//! The lab world without database access (issue 17): what the runbook may still ask, what it
//! is refused, and the CloudWatch evidence it decides from instead — RDS's heartbeat and forced
//! segment switch making an idle source's slot lag saw-tooth by one segment, and
//! `DatabaseConnections` after a quarantine and a reboot.
//!
//! Needs the PostgreSQL server binaries and Envoy, like `lab.rs` (`scripts/test.sh` provisions
//! both). Every wait is bounded; each lab is stopped and removed at the end (also on panic).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use godwit_engine::{Call, ErrorKind, Host, SystemClock};
use godwit_lab::workload::{Kind, Workload};
use godwit_lab::{LabOptions, LabState, Supervisor};
use godwit_stdlib::cw::{MetricQuery, NAMESPACE};
use godwit_stdlib::ec2::Admit;
use godwit_stdlib::lag::Point;
use godwit_stdlib::world::Areas;

/// A lab with its own runtime, its world's areas and a host to call them through.
struct Lab {
    rt: tokio::runtime::Runtime,
    sup: Option<Supervisor>,
    areas: Areas,
    host: Host,
    st: LabState,
    _tmp: tempfile::TempDir,
}

impl Lab {
    fn up(configure: impl FnOnce(&mut LabOptions)) -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut opts = LabOptions::new(tmp.path().join("lab"));
        opts.seed_rows = 500;
        configure(&mut opts);
        let sup = rt
            .block_on(Supervisor::up(opts))
            .unwrap_or_else(|e| panic!("lab up: {e}"));
        let world = godwit_lab::supervisor::world(&sup.dir, rt.handle().clone());
        let areas = world.areas.clone().expect("the lab world has areas");
        let host = Host::detached(Arc::new(SystemClock), Some(rt.handle().clone()));
        let st = LabState::load(&sup.dir).unwrap();
        Lab {
            rt,
            sup: Some(sup),
            areas,
            host,
            st,
            _tmp: tmp,
        }
    }

    fn cx<'h>(&'h self, area: &'h str, op: &'h str) -> Call<'h> {
        self.host.context(area, op)
    }

    fn dir(&self) -> std::path::PathBuf {
        self.st.dir.clone()
    }

    /// `metric` of the source, one-second periods, `Maximum`, from `since` on.
    fn series(&self, metric: &str, since: i64) -> Vec<Point> {
        self.areas
            .cw
            .metric_series(
                &self.cx("cw", "metric_series"),
                &MetricQuery {
                    namespace: NAMESPACE.into(),
                    name: metric.into(),
                    dimensions: BTreeMap::from([(
                        "DBInstanceIdentifier".to_string(),
                        self.st.source.clone(),
                    )]),
                    statistic: "Maximum".into(),
                    period: 1,
                    since,
                    until: now_s() + 3600,
                },
            )
            .unwrap()
    }

    /// Sessions on the source as the server lists them, `(usename, application_name)`, asked
    /// over the Unix socket as RDS's own role (not counted anywhere).
    fn sessions(&self) -> Vec<(String, String)> {
        let inst = &self.st.instances[&self.st.source];
        self.rt.block_on(async {
            let (c, conn) = tokio_postgres::Config::new()
                .host_path(&inst.spec.socket_dir)
                .port(inst.port)
                .user("rdsadmin")
                .dbname("postgres")
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c.query(
                "SELECT coalesce(usename::text, ''), coalesce(application_name, '') \
                 FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                 AND backend_type IN ('client backend', 'walsender')",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
        })
    }

    /// Sleep `d` of wall time on the lab's runtime.
    fn pause(&self, d: Duration) {
        // Created inside the runtime: a `Sleep` made outside one panics.
        self.rt.block_on(async { tokio::time::sleep(d).await });
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(sup) = self.sup.take() {
            self.rt.block_on(sup.down());
        }
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Without database access the runbook learns so from `pg::access` and
/// `validate::available`, and every other `pg::`/`validate::` call is refused — `Invalid`,
/// not retryable, saying the world has no database access — without a connection to the
/// database. RDS's own work goes on: its areas' SQL (`rds::list_engine_versions` reads
/// `pg_available_extensions` as `rdsadmin`) and the sampler's CloudWatch series.
#[test]
fn a_lab_without_database_access_refuses_sql_and_keeps_its_cloudwatch_series() {
    let lab = Lab::up(|o| {
        o.db_access = false;
        o.cdc = false;
    });
    let src = lab.st.source.clone();
    let pg = &lab.areas.pg;
    let access = pg.access(&lab.cx("pg", "access"), &src).unwrap();
    eprintln!("pg::access: {access:?}");
    assert!(!access.available, "{access:?}");
    assert!(access.how.contains("db_access = false"), "{access:?}");
    assert_eq!(access.security_group, None);

    let cx = |op: &'static str| lab.cx("pg", op);
    let s = [src.clone()];
    let refused = [
        (
            "current_lsn",
            pg.current_lsn(&cx("current_lsn"), &src).err(),
        ),
        (
            "application_backends",
            pg.application_backends(&cx("application_backends"), &src)
                .err(),
        ),
        (
            "replication_connections",
            pg.replication_connections(&cx("replication_connections"), &src)
                .err(),
        ),
        (
            "replication_slots",
            pg.replication_slots(&cx("replication_slots"), &src).err(),
        ),
        (
            "last_checkpoint",
            pg.last_checkpoint(&cx("last_checkpoint"), &src).err(),
        ),
        ("settings", pg.settings(&cx("settings"), &src, &[]).err()),
        (
            "installed_extensions",
            pg.installed_extensions(&cx("installed_extensions"), &src)
                .err(),
        ),
        (
            "unlogged_tables",
            pg.unlogged_tables(&cx("unlogged_tables"), &src).err(),
        ),
        (
            "block_logins",
            pg.block_logins(&cx("block_logins"), &src, &s).err(),
        ),
        (
            "terminate_backends",
            pg.terminate_backends(&cx("terminate_backends"), &src, &[1])
                .err(),
        ),
        ("replay_lsn", pg.replay_lsn(&cx("replay_lsn"), &src).err()),
        ("sequences", pg.sequences(&cx("sequences"), &src).err()),
        (
            "table_hashes",
            pg.table_hashes(&cx("table_hashes"), &src).err(),
        ),
        (
            "unblock_logins",
            pg.unblock_logins(&cx("unblock_logins"), &src, &s).err(),
        ),
    ];
    for (op, e) in refused {
        let e = e.unwrap_or_else(|| panic!("pg::{op} answered without database access"));
        assert_eq!((e.area.as_str(), e.op.as_str()), ("pg", op), "{e}");
        assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
        assert!(!e.retryable, "{e}");
        assert!(
            e.message.contains("this world has none") && e.message.contains(&src),
            "{e}"
        );
    }
    eprintln!(
        "refused: {}",
        lab.areas
            .pg
            .current_lsn(&lab.cx("pg", "current_lsn"), &src)
            .unwrap_err()
    );
    let v = &lab.areas.validate;
    let available = v.available(&lab.cx("validate", "available"), &src).unwrap();
    assert!(!available.available, "{available:?}");
    let e = v
        .compare(
            &lab.cx("validate", "compare"),
            &src,
            "orders-db-aurora",
            &godwit_stdlib::validate::CompareOptions::default(),
        )
        .unwrap_err();
    assert_eq!((e.area.as_str(), e.kind), ("validate", ErrorKind::Invalid));
    assert!(!e.retryable);

    // No connection of godwit's reached the server: only RDS's own sessions are there.
    let sessions = lab.sessions();
    assert!(
        sessions.iter().all(|(user, _)| user == "rdsadmin"),
        "a session other than RDS's own: {sessions:?}"
    );

    // RDS's API still reads the database (as rdsadmin, over the Unix socket).
    let versions = lab
        .areas
        .rds
        .list_engine_versions(&lab.cx("rds", "list_engine_versions"), "aurora-postgresql")
        .unwrap();
    assert!(!versions.is_empty());
    // The sampler keeps producing CloudWatch: DatabaseConnections 0 (nothing but RDS's own
    // sessions), the slot lag, the storage.
    let since = now_s() - 60;
    for metric in [
        "DatabaseConnections",
        "OldestReplicationSlotLag",
        "FreeStorageSpace",
    ] {
        let points = lab.series(metric, since);
        assert!(points.len() >= 5, "{metric}: {points:?}");
        if metric == "DatabaseConnections" {
            assert!(points.iter().all(|p| p.v == 0.0), "{metric}: {points:?}");
        }
    }
}

/// RDS's heartbeat and `archive_timeout` make an idle source's `OldestReplicationSlotLag`
/// saw-tooth between 0 and one segment (the phenomenon the 0↔64 MB rule exists for):
/// sampled once a second with nobody writing, the lab's source reads both.
#[test]
fn an_idle_source_slot_lag_saw_tooths_between_0_and_one_segment() {
    let lab = Lab::up(|o| {
        o.db_access = false;
    });
    let segment = 64.0 * (1u64 << 20) as f64;
    let started = now_s();
    let key = godwit_lab::metrics::key(
        "DBInstanceIdentifier",
        &lab.st.source,
        "OldestReplicationSlotLag",
    );
    // archive_timeout 10 s: six switches in a minute; a tooth lasts about a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let (mut zero, mut tooth) = (None, None);
    while std::time::Instant::now() < deadline && (zero.is_none() || tooth.is_none()) {
        lab.pause(Duration::from_millis(500));
        for s in godwit_lab::metrics::read_samples(&lab.dir(), started, i64::MAX) {
            let Some(&v) = s.m.get(&key) else { continue };
            if v == 0.0 {
                zero.get_or_insert(s.t);
            } else if (v - segment).abs() <= segment * 0.05 {
                tooth.get_or_insert((s.t, v));
            }
        }
    }
    let values: Vec<(i64, f64)> = godwit_lab::metrics::read_samples(&lab.dir(), started, i64::MAX)
        .iter()
        .filter_map(|s| Some((s.t - started, *s.m.get(&key)?)))
        .collect();
    eprintln!("idle slot lag (s since start, bytes): {values:?}");
    assert!(zero.is_some(), "no sample of 0: {values:?}");
    assert!(tooth.is_some(), "no sample of one segment: {values:?}");
    // Every sample is 0 or at most one tooth (a segment plus the heartbeat's bytes).
    assert!(
        values.iter().all(|(_, v)| *v <= segment * 1.25),
        "{values:?}"
    );
}

/// After a deny-all quarantine and a reboot, with the application still trying through Envoy,
/// every `DatabaseConnections` datapoint whose period starts after the reboot is 0 — the
/// sampler, the heartbeat and the areas' SQL are RDS's own sessions, Envoy's retries are refused
/// at login — while before the fence it counted the application's clients. And the lab never
/// publishes a period before it has ended.
#[test]
fn after_the_quarantine_and_reboot_database_connections_is_0_and_no_period_is_early() {
    let lab = Lab::up(|o| {
        o.db_access = false;
        o.cdc = false;
    });
    let st = &lab.st;
    let src = st.source.clone();
    let port = st.instances[&src].port;
    let load = {
        let _enter = lab.rt.enter();
        Workload::start(
            st.route.listen_port,
            &st.app_role,
            &st.app_db,
            4,
            Duration::from_millis(5),
            Kind::Insert,
            st.seed_rows,
        )
    };
    lab.pause(Duration::from_secs(3));
    let before = lab.series("DatabaseConnections", now_s() - 2);
    eprintln!("DatabaseConnections under load: {before:?}");
    assert!(
        before.iter().any(|p| p.v >= 4.0),
        "the application's 4 clients are counted: {before:?}"
    );

    let deny = lab
        .areas
        .ec2
        .ensure_quarantine_group(
            &lab.cx("ec2", "ensure_quarantine_group"),
            &st.attributes.vpc_id,
            "lab-deny-all",
            &Admit {
                groups: Vec::new(),
                port,
            },
        )
        .unwrap()
        .id;
    lab.areas
        .rds
        .set_security_groups(
            &lab.cx("rds", "set_security_groups"),
            &src,
            std::slice::from_ref(&deny),
        )
        .unwrap();
    lab.areas
        .rds
        .reboot_instance(&lab.cx("rds", "reboot_instance"), &src, "fence-1")
        .unwrap();
    // The lab's reboot returns once the server is back: a period that starts after now starts
    // after the reboot completed.
    let rebooted = now_s() + 1;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && seen.len() < 8 {
        let points = lab.series("DatabaseConnections", rebooted);
        let answered = now_s();
        // Published only once ended: a period [t, t+1) is returned from t+1 on.
        if let Some(last) = points.last() {
            assert!(
                last.t < answered,
                "period {} returned at {answered}, before it ended",
                last.t
            );
        }
        seen = points;
        lab.pause(Duration::from_millis(250));
    }
    let logs = lab.rt.block_on(load.stop());
    // Acknowledged (epoch µs) after the reboot returned: none can be, the quarantine holds.
    let after_fence = logs
        .iter()
        .flat_map(|l| &l.acked)
        .filter(|(_, at)| *at >= rebooted * 1_000_000)
        .count();
    eprintln!(
        "DatabaseConnections after the reboot: {seen:?}; sessions now {:?}; commits acknowledged after the reboot {after_fence}",
        lab.sessions()
    );
    assert!(seen.len() >= 8, "a datapoint every second: {seen:?}");
    assert!(seen.iter().all(|p| p.v == 0.0), "{seen:?}");
    assert_eq!(
        after_fence, 0,
        "the quarantine let the application write again"
    );
}

/// The standard runbook on a lab that withholds database access, under the insert load through
/// Envoy (`unverified=accept`: preflight cannot verify extensions and unlogged tables without
/// SQL): it completes with no acknowledged commit missing on the target, the fence and the sync
/// gate decided by CloudWatch evidence, and no `pg::` call but `pg::access` in the transcript.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standard_runbook_cuts_over_credential_less_under_load_losing_nothing() {
    use godwit_engine::journal::file::FileStore;
    use godwit_engine::transcript::Event;
    use godwit_lab::cutover::{self, Cutover};

    let tmp = tempfile::tempdir().unwrap();
    let mut opts = LabOptions::new(tmp.path().join("lab"));
    opts.seed_rows = 2_000;
    opts.db_access = false;
    // The runbook refuses a CDC consumer it cannot see without SQL (docs/rds-to-aurora.md).
    opts.cdc = false;
    let sup = Supervisor::up(opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    let mut params = cutover::lab_params();
    params.insert("unverified".into(), "accept".into());
    params.insert("metric_period".into(), 1.into());
    let out = cutover::run(
        &sup,
        Cutover {
            runbook: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../runbooks/rds-to-aurora.rhai"),
            params,
            store: Arc::new(FileStore::new(tmp.path().join("runs"))),
            clients: 4,
            pace: Duration::from_millis(5),
            warmup: Duration::from_millis(500),
            workload: Kind::Insert,
            sinks: Vec::new(),
        },
    )
    .await
    .unwrap();
    let report = out.report.as_ref().unwrap();
    eprintln!(
        "credential-less lab cutover: {}",
        serde_json::to_string(&(&out.workload, &out.phases)).unwrap()
    );
    // Where the blackout went: the steps and gates from the fence to the switch.
    let t0 = out.lines.iter().find_map(|l| match &l.event {
        Event::StepStarted { name } if name == "fence" => Some(l.at),
        _ => None,
    });
    if let Some(t0) = t0 {
        for l in out.lines.iter().filter(|l| l.at >= t0) {
            let what = match &l.event {
                Event::StepStarted { name } => format!("step {name}"),
                Event::StepCompleted { name, .. } => format!("step {name} done"),
                Event::GateStarted { name, .. } => format!("gate {name}"),
                Event::GatePoll { name, poll, .. } => format!("  {name} poll {poll}"),
                Event::GatePassed { name, .. } => format!("gate {name} passed"),
                _ => continue,
            };
            eprintln!("  +{:>6} ms {what}", l.at - t0);
        }
    }
    assert!(out.succeeded, "{:?}", report.status);
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

    // The fence and the sync gate decided on CloudWatch evidence.
    let evidence = |gate: &str| {
        out.lines
            .iter()
            .find_map(|l| match &l.event {
                Event::GatePassed { name, evidence, .. } if name == gate => Some(evidence.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("gate {gate} passed"))
    };
    let fence = evidence("source-sessions-ended");
    assert!(
        fence.iter().any(|k| k == "cloudwatch-database-connections"),
        "{fence:?}"
    );
    let sync = evidence("replica-caught-up");
    assert!(sync.iter().any(|k| k == "cloudwatch-0-segment"), "{sync:?}");
    // No SQL of godwit's: pg::access is the only pg:: call, and nothing was validated.
    let sql: Vec<String> = out
        .lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::Primitive { area, op, .. }
                if (area == "pg" && op != "access")
                    || (area == "validate" && op != "available") =>
            {
                Some(format!("{area}::{op}"))
            }
            _ => None,
        })
        .collect();
    assert!(sql.is_empty(), "database calls without access: {sql:?}");
    assert!(
        out.lines.iter().any(|l| matches!(&l.event,
            Event::Primitive { area, op, .. } if area == "pg" && op == "access")),
        "the runbook asked pg::access"
    );
    sup.down().await;
}
