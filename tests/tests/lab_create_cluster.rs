//! `rds::create_cluster` in the lab (the logical path's target): a standalone Aurora cluster
//! created empty on a fresh `initdb` of the requested major — the lab's own PostgreSQL 15 or
//! the newer major's binaries (`GODWIT_PG_NEWER_BIN`, PostgreSQL 16) — its writer added with
//! `rds::create_cluster_instance` once it is available, all through the primitives in a
//! script. Then, with SQL on the new server: it runs that major (the recorded binaries, also
//! after a reboot), takes writes, holds no application table or role, and has what a new
//! Aurora cluster has (`rds_iam` for `pg::copy_schema`, RDS's own `rdsadmin`, the master user).
//! The same request again returns the same cluster; an older major, or another version under
//! the same id, is refused. Everything it started is gone after `lab down`.
//!
//! Needs the PostgreSQL server binaries, the newer major and Envoy (`scripts/test.sh`
//! provisions them); a missing one fails with its install command, never skipped.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use godwit_engine::RunStatus;
use godwit_engine::transcript::Event;
use godwit_lab::pgproc::{self, PgBin};
use godwit_lab::{LabOptions, LabState, Supervisor};
use godwit_stdlib::world::World;
use godwit_tests::livepg::{run_script, runtime};

const GODWIT: &str = env!("CARGO_BIN_EXE_godwit-toy");

/// Run `script` (a runbook of steps) in `world`; the run's result.
fn run(world: &World, rt: &tokio::runtime::Runtime, script: &str) -> serde_json::Value {
    let (report, lines) = run_script(world, rt, script, Default::default());
    match report.status {
        RunStatus::Succeeded { result, .. } => result,
        other => panic!(
            "{other:?}\n{:#?}",
            lines
                .into_iter()
                .filter(|l| matches!(l.event, Event::StepFailed { .. } | Event::Print { .. }))
                .collect::<Vec<_>>()
        ),
    }
}

/// Create cluster `id` of `version` like the lab's source, its writer `<id>-1`, reboot the
/// writer; what each call returned. `other`: a version the lab lists that is not `version`.
fn create(
    world: &World,
    rt: &tokio::runtime::Runtime,
    id: &str,
    version: &str,
    other: &str,
) -> serde_json::Value {
    let script = r#"
let versions = step("versions", || rds::list_engine_versions("aurora-postgresql").map(|v| v.version));
let created = step("create", || rds::create_cluster("ID", "orders-db", #{ engine_version: "VERSION", iam_auth: true }));
// Its writer only once it is available (wait_until_cluster_available also waits for an
// available member, which an empty cluster has not).
let available = step("available", || {
    let c = rds::describe_cluster("ID");
    while c.status != "available" { sleep("1s"); c = rds::describe_cluster("ID"); }
    c
});
step("writer", || rds::create_cluster_instance("ID-1", "ID", #{ instance_class: "db.r6g.large" }));
let writer = step("writer-up", || rds::wait_until_instance_available("ID-1", #{ timeout: "5m" }));
step("cluster-up", || rds::wait_until_cluster_available("ID", #{ timeout: "5m" }));
let tables = step("tables", || pg::table_definitions("ID"));
step("reboot", || rds::reboot_instance("ID-1"));
step("rebooted", || rds::wait_until_instance_available("ID-1", #{ timeout: "5m" }));
let again = step("again", || rds::create_cluster("ID", "orders-db", #{ engine_version: "VERSION", iam_auth: true }));
let older = step("older", || {
    let r = #{};
    try { rds::create_cluster("ID-old", "orders-db", #{ engine_version: "14.9", iam_auth: true }); } catch (e) { r = e; }
    r
});
let taken = step("taken", || {
    let r = #{};
    try { rds::create_cluster("ID", "orders-db", #{ engine_version: "OTHER", iam_auth: true }); } catch (e) { r = e; }
    r
});
#{ versions: versions, created: created, available: available, writer: writer, tables: tables,
   again: again, older: older, taken: taken }
"#
    .replace("ID", id)
    .replace("OTHER", other)
    .replace("VERSION", version);
    run(world, rt, &script)
}

/// The first column of the first row of `sql` on the server at `port` (database `app`, as
/// the superuser, straight to the server), as text.
fn one(rt: &tokio::runtime::Runtime, port: u16, sql: &str) -> String {
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=app connect_timeout=10"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
        tokio::spawn(conn);
        let rows = c
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default()
    })
}

/// What the new cluster `id`'s writer holds and runs, checked with SQL on its server; the
/// writer's pid.
fn check_server(rt: &tokio::runtime::Runtime, dir: &std::path::Path, id: &str, bin: &PgBin) -> u32 {
    let st = LabState::load(dir).unwrap();
    let writer = st
        .serving(id)
        .unwrap_or_else(|| panic!("{id} has no writer"));
    let (port, pid) = (writer.port, writer.pid.expect("the writer runs"));
    let major = one(
        rt,
        port,
        "SELECT current_setting('server_version_num')::int / 10000",
    );
    assert_eq!(major, bin.major.to_string(), "{id} runs major {major}");
    // The very binary: the one recorded with the cluster (the lab's own for its major).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe,
        std::fs::canonicalize(bin.tool("postgres")).unwrap(),
        "{id}'s server"
    );
    assert_eq!(
        st.clusters[id].bin.as_ref().unwrap_or(&st.bin),
        bin,
        "recorded with the cluster, for whoever restarts it"
    );
    assert_eq!(one(rt, port, "SELECT pg_is_in_recovery()"), "f", "{id}");
    // Empty: no relation of the application's, no application role.
    let relations = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
    assert_eq!(one(rt, port, relations), "0", "{id} holds relations");
    assert_eq!(
        one(
            rt,
            port,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"
        ),
        "0",
        "{id} has the application's role before any schema copy"
    );
    // What a new Aurora cluster has: RDS's own superuser (the lab's RDS signs in as it),
    // rds_superuser, rds_iam (pg::copy_schema grants it) and the master user.
    assert_eq!(
        one(
            rt,
            port,
            "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles \
             WHERE rolname IN ('rdsadmin', 'rds_superuser', 'rds_iam', 'godwit_master')"
        ),
        "godwit_master,rds_iam,rds_superuser,rdsadmin",
        "{id}"
    );
    // Writable.
    assert_eq!(
        one(
            rt,
            port,
            "CREATE TABLE probe (x int); INSERT INTO probe VALUES (7); \
             SELECT sum(x) FROM probe; DROP TABLE probe"
        ),
        "7",
        "{id} takes writes"
    );
    pid
}

#[test]
fn a_created_cluster_is_empty_writable_and_of_the_requested_major_newer_or_the_labs_own() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut opts = LabOptions::new(tmp.path().join("lab"));
    opts.cdc = false;
    opts.seed_rows = 100;
    let sup = rt
        .block_on(Supervisor::up(opts))
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    let dir = sup.dir.clone();
    let world = godwit_lab::supervisor::world(&dir, rt.handle().clone());
    let own = LabState::load(&dir).unwrap().bin;
    let newer = PgBin::newer_major(&own).unwrap_or_else(|e| panic!("{e}"));
    let mut pids = Vec::new();
    for (id, bin, other) in [
        ("orders-aurora16", &newer, &own.version),
        ("orders-aurora15", &own, &newer.version),
    ] {
        let started = std::time::Instant::now();
        let r = create(&world, &rt, id, &bin.version, other);
        eprintln!(
            "{id}: created, its writer up and rebooted in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let versions = r["versions"].as_array().unwrap();
        assert!(
            versions.contains(&bin.version.clone().into())
                && versions.contains(&other.clone().into()),
            "both majors listed: {versions:?}"
        );
        let created = &r["created"];
        assert_eq!(created["engine_version"], bin.version.as_str(), "{r:#}");
        assert!(
            created["replication_source_identifier"].is_null(),
            "standalone: {r:#}"
        );
        assert_eq!(created["iam_auth"], true, "{r:#}");
        assert_eq!(r["available"]["status"], "available", "{r:#}");
        assert_eq!(r["writer"]["engine_version"], bin.version.as_str(), "{r:#}");
        assert_eq!(
            r["writer"]["security_groups"],
            serde_json::json!(["sg-lab-app"]),
            "the groups of the instance it replaces: {r:#}"
        );
        assert_eq!(
            r["tables"],
            serde_json::json!([]),
            "empty to godwit too: {r:#}"
        );
        assert_eq!(r["again"]["arn"], created["arn"], "a re-run: {r:#}");
        assert_eq!(
            r["again"]["members"],
            serde_json::json!([format!("{id}-1")]),
            "{r:#}"
        );
        assert_eq!(r["older"]["kind"], "Invalid", "an older major: {r:#}");
        assert_eq!(
            r["taken"]["kind"], "Conflict",
            "another version under its id: {r:#}"
        );
        pids.push(check_server(&rt, &dir, id, bin));
    }
    // Nothing the creations started runs unrecorded (their seeding servers are stopped).
    let st = LabState::load(&dir).unwrap();
    assert!(
        godwit_lab::supervisor::unrecorded_processes(&st).is_empty(),
        "{:?}",
        godwit_lab::supervisor::unrecorded_processes(&st)
    );
    drop(world);
    rt.block_on(sup.down());
    for pid in pids {
        assert!(!pgproc::alive(pid), "server {pid} outlived lab down");
    }
}

/// godwit killed (SIGKILL) inside `create_cluster`, with the new cluster's seeding server
/// spawned and recorded but not yet ready: the cluster stays `creating`, and `godwit resume`
/// starts it over — the orphaned server stopped, a fresh `initdb` of the newer major seeded —
/// and completes the run; the cluster is created once and nothing runs unrecorded.
#[test]
fn a_creation_killed_while_seeding_starts_over_on_resume_and_leaves_nothing_behind() {
    const ID: &str = "orders-aurora16";
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut opts = LabOptions::new(tmp.path().join("lab"));
    opts.cdc = false;
    opts.seed_rows = 100;
    let sup = rt
        .block_on(Supervisor::up(opts))
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    let dir = sup.dir.clone();
    let newer =
        PgBin::newer_major(&LabState::load(&dir).unwrap().bin).unwrap_or_else(|e| panic!("{e}"));
    let script = tmp.path().join("create.rhai");
    std::fs::write(
        &script,
        r#"
step("create", || rds::create_cluster("ID", "orders-db", #{ engine_version: "VERSION", iam_auth: true }));
step("writer", || rds::create_cluster_instance("ID-1", "ID", #{ instance_class: "db.r6g.large" }));
step("writer-up", || rds::wait_until_instance_available("ID-1", #{ timeout: "5m" }));
"#
        .replace("ID", ID)
        .replace("VERSION", &newer.version),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let godwit = |args: &[&str], crash_at: Option<&str>| {
        let mut c = Command::new(GODWIT);
        c.args(args)
            .env("GODWIT_STATE_DIR", &state)
            .env_remove("GODWIT_LAB_CRASH_AT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(point) = crash_at {
            c.env("GODWIT_LAB_CRASH_AT", point);
        }
        c.output().unwrap()
    };
    let world = format!("lab:{}", dir.display());
    let started = std::time::Instant::now();
    let killed = godwit(
        &[
            "run",
            &script.display().to_string(),
            "--cluster",
            "orders-db",
            "--world",
            &world,
        ],
        Some("create_cluster:seeding:recorded"),
    );
    assert_eq!(
        killed.status.signal(),
        Some(9),
        "killed at the crash point: {}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let st = LabState::load(&dir).unwrap();
    let cl = &st.clusters[ID];
    assert_eq!(cl.status, "creating");
    let orphan = cl.basebackup_pid.expect("the seeding server, recorded");
    assert!(
        pgproc::alive(orphan),
        "the seeding server outlives its starter"
    );

    let resumed = godwit(&["resume", "last"], None);
    assert!(
        resumed.status.success(),
        "resume: {}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    eprintln!(
        "killed while seeding, resumed to completion in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        !pgproc::alive(orphan),
        "the interrupted seeding server stopped"
    );
    let st = LabState::load(&dir).unwrap();
    assert_eq!(st.clusters[ID].status, "available");
    assert_eq!(st.clusters[ID].basebackup_pid, None);
    let created = st
        .events
        .iter()
        .filter(|e| e.source_id == ID && e.message == "DB cluster created")
        .count();
    assert_eq!(created, 1, "created once: {:?}", st.events);
    let pid = check_server(&rt, &dir, ID, &newer);
    assert!(
        godwit_lab::supervisor::unrecorded_processes(&st).is_empty(),
        "{:?}",
        godwit_lab::supervisor::unrecorded_processes(&st)
    );
    rt.block_on(sup.down());
    assert!(!pgproc::alive(pid), "server {pid} outlived lab down");
}
