//! Issue 25, the logical path across majors on real servers: a PostgreSQL 15 source (Debian's)
//! replicated into a PostgreSQL 16 target (the pgserver wheel scripts/test.sh installs) with
//! godwit's own `pg` and `validate` primitives — publication and slot on the source, a
//! subscription on the target that copies the tables first, then streams while the
//! application writes (inserts and updates across two tables); every table's copy done, the
//! target applies past the
//! source's final position, the table definitions agree, the exact validation is equal across
//! the versions, and the sequences set past the source's make an insert on the target never
//! collide. The schema is copied by godwit's own `pg::copy_schema` (roles first, then the
//! target major's `pg_dump --schema-only` restored by its `psql`); a second test follows the
//! roles: a login role and a group with its membership and a table grant arrive without a
//! password, a second copy is a no-op, and a target with other tables is refused. A missing
//! server fails with the install command, never skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use godwit_engine::PrimitiveError;
use godwit_engine::RunStatus;
use godwit_engine::transcript::Event;
use godwit_lab::pgproc::{PgBin, Server};
use godwit_stdlib::pg::live::{BoxFuture, Connector, Target};
use godwit_stdlib::world::World;
use godwit_tests::harness::pause;
use godwit_tests::livepg::{
    Ports, exec, one, run_script, runtime, scratch, sql_world, sql_world_on,
};

const SCHEMA: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text, balance numeric(12,2) NOT NULL DEFAULT 0);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers(id),
                     amount numeric(12,2), placed timestamptz DEFAULT now(), note text);
INSERT INTO customers SELECT g, 'customer ' || g, 0 FROM generate_series(1, 2000) g;
INSERT INTO orders (customer, amount, note)
  SELECT 1 + g % 2000, (g % 997) / 10.0, md5(g::text) FROM generate_series(1, 50000) g;
";

/// The application: each transaction inserts an order and updates its customer's balance.
async fn application(port: u16, stop: Arc<AtomicBool>) -> u64 {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let customer = 1 + (n % 2000) as i32;
        c.batch_execute(&format!(
            "BEGIN;
             INSERT INTO orders (customer, amount, note) VALUES ({customer}, 12.50, 'live {n}');
             UPDATE customers SET balance = balance + 12.50 WHERE id = {customer};
             COMMIT;"
        ))
        .await
        .unwrap();
        n += 1;
    }
    n
}

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

#[test]
fn a_postgresql_15_source_replicates_logically_into_16_losing_nothing() {
    let old = scratch();
    let mut new = scratch();
    new.bin = PgBin::newer_major(&old.bin).unwrap_or_else(|e| panic!("{e}"));
    let source = old.primary("source", &[]).unwrap();
    let target = new.primary("target", &[]).unwrap();
    let rt = runtime();
    rt.block_on(exec(&source, SCHEMA));
    let version = |s: &Server| rt.block_on(one(s, "SHOW server_version_num")).unwrap();
    let (v_old, v_new) = (version(&source), version(&target));
    assert!(
        v_old.starts_with("15") && v_new.starts_with("16"),
        "{v_old} → {v_new}"
    );

    let world = sql_world(
        &[("orders-db", &source), ("orders-aurora", &target)],
        rt.handle().clone(),
    );
    let copied = run(
        &world,
        &rt,
        r#"step("schema", || pg::copy_schema("orders-db", "orders-aurora"))"#,
    );
    assert_eq!(
        copied["tables"],
        serde_json::json!(["public.customers", "public.orders"]),
        "{copied}"
    );
    assert_eq!(copied["sequences"], 1, "orders.id's: {copied}");
    assert!(
        copied["how"].as_str().unwrap().contains("pg_dump 16."),
        "the target's major dumps: {copied}"
    );

    // The application writes all along: the initial copy and the streaming run under load.
    let stop = Arc::new(AtomicBool::new(false));
    let app = rt.spawn(application(source.port, stop.clone()));
    let started = Instant::now();
    let subscribed = run(
        &world,
        &rt,
        r#"
let tables = step("publish", || pg::create_publication("orders-db", "godwit_logical"));
let slot = step("slot", || pg::create_logical_slot("orders-db", "godwit_logical"));
let sub = step("subscribe", || pg::subscribe("orders-aurora", "godwit_logical",
    #{ from: "orders-db", publication: "godwit_logical", slot: "godwit_logical", copy_data: true }));
#{ tables: tables, slot: slot, sub: sub }
"#,
    );
    assert_eq!(
        subscribed["tables"],
        serde_json::json!(["public.customers", "public.orders"]),
        "{subscribed}"
    );
    // Every table's initial copy done (`pg_subscription_rel` all `r`, ready): until then the
    // slot's confirmed position says nothing of the tables still copying or catching up.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let copying = rt
            .block_on(one(
                &target,
                "SELECT count(*)::text FROM pg_subscription_rel WHERE srsubstate <> 'r'",
            ))
            .unwrap();
        if copying == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{copying} table(s) still copying after 2 minutes"
        );
        pause(Duration::from_millis(100));
    }
    // Streaming under load for a while after the copy.
    pause(Duration::from_secs(2));
    // The fence, as the logical runbook will hold it: the application stops, then the
    // target must apply past the source's last position.
    stop.store(true, Ordering::SeqCst);
    let commits = rt.block_on(app).unwrap();
    let done = run(
        &world,
        &rt,
        r#"
let last = step("final-lsn", || pg::current_lsn("orders-db"));
let applied = step("applied", || pg::wait_until_slot_confirmed("orders-db", "godwit_logical",
    last.lsn_bytes, #{ timeout: "2m", every: "1s", min_every: "50ms" }));
let schemas = step("schemas", || #{ source: pg::table_definitions("orders-db"),
    target: pg::table_definitions("orders-aurora") });
// Logical replication does not carry sequences: set them past the source's first, then the
// exact validation (which compares sequences too) — the issue's order.
let seqs = step("sequences", || pg::advance_sequences("orders-aurora", pg::sequences("orders-db")));
let compared = step("validate", || validate::compare("orders-db", "orders-aurora", #{}));
// Collation under the same names on both majors (16 keeps it in pg_database only).
let coll = step("collation", || #{ source: pg::settings("orders-db", ["lc_collate", "lc_ctype"]),
    target: pg::settings("orders-aurora", ["lc_collate", "lc_ctype"]) });
#{ applied: applied, same_schema: schemas.source == schemas.target, equal: compared.equal, collation: coll,
   summary: compared.summary, sequences: seqs }
"#,
    );
    println!(
        "15 → 16: {commits} transactions during the copy and streaming ({:.1} s), {}",
        started.elapsed().as_secs_f64(),
        done["summary"]
    );
    assert!(commits > 50, "the application wrote: {commits}");
    assert_eq!(done["applied"]["behind_bytes"], 0, "{done}");
    assert_eq!(done["same_schema"], true, "{done}");
    assert_eq!(done["equal"], true, "{done}");
    for side in ["source", "target"] {
        let names: Vec<&str> = done["collation"][side]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["lc_collate", "lc_ctype"], "{side}: {done}");
    }
    // The target's sequence is past the source's: an insert there takes a new id.
    let id = |s: &Server| {
        rt.block_on(one(
            s,
            "INSERT INTO orders (customer, amount) VALUES (1, 1) RETURNING id::text",
        ))
        .unwrap()
        .parse::<i64>()
        .unwrap()
    };
    let on_target = id(&target);
    let source_last = rt
        .block_on(one(&source, "SELECT max(id)::text FROM orders"))
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert!(
        on_target > source_last,
        "an insert on the target took id {on_target}, the source's last is {source_last}: {done}"
    );
}

/// The source's roles on the target: a login role and a group, the membership between them, a
/// table granted to the group and a table owned by the login role — and no password.
const ROLES: &str = "
CREATE ROLE app_readers NOLOGIN;
CREATE ROLE app_user LOGIN PASSWORD 'never-copied' CONNECTION LIMIT 7;
GRANT app_readers TO app_user;
CREATE TABLE customers (id int PRIMARY KEY, name text);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers(id), note text);
ALTER TABLE orders OWNER TO app_user;
GRANT SELECT ON customers TO app_readers;
";

#[test]
fn copy_schema_brings_roles_and_grants_without_passwords_once_and_refuses_other_tables() {
    let old = scratch();
    let mut new = scratch();
    new.bin = PgBin::newer_major(&old.bin).unwrap_or_else(|e| panic!("{e}"));
    let source = old.primary("source", &[]).unwrap();
    let target = new.primary("target", &[]).unwrap();
    let rt = runtime();
    rt.block_on(exec(&source, ROLES));
    let world = sql_world(
        &[("orders-db", &source), ("orders-aurora", &target)],
        rt.handle().clone(),
    );
    let on = |s: &Server, sql: &str| rt.block_on(one(s, sql));
    let public_tables = "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'";

    // Bounded like every call: a pg_dump waiting for a lock the application holds is killed at
    // the step's timeout, and nothing of the schema reaches the target.
    let (locker, conn) = rt
        .block_on(tokio_postgres::connect(
            &source.conninfo("postgres", "postgres"),
            tokio_postgres::NoTls,
        ))
        .unwrap();
    rt.spawn(conn);
    rt.block_on(locker.batch_execute("BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"))
        .unwrap();
    let cut_at = Instant::now();
    let cut = run(
        &world,
        &rt,
        r#"
let r = #{};
try {
    step("copy", #{ timeout: "3s", retry: #{ attempts: 1 } }, || pg::copy_schema("orders-db", "orders-aurora"));
} catch (e) { r = e; }
r
"#,
    );
    let took = cut_at.elapsed();
    println!(
        "pg_dump behind a lock: cut after {:.2} s (step timeout 3 s)",
        took.as_secs_f64()
    );
    assert_eq!(cut["kind"], "Timeout", "{cut}");
    assert!(
        cut["message"].as_str().unwrap().contains("pg_dump 16"),
        "cut in pg_dump: {cut}"
    );
    assert!(took < Duration::from_secs(6), "{took:?}: {cut}");
    assert!(
        dump_processes().is_empty(),
        "pg_dump killed with the call: {:?}",
        dump_processes()
    );
    assert_eq!(
        on(&target, public_tables),
        Some("0".into()),
        "nothing restored"
    );
    rt.block_on(locker.batch_execute("COMMIT")).unwrap();
    drop(locker);

    let started = Instant::now();
    let out = run(
        &world,
        &rt,
        r#"
let first = step("copy", || pg::copy_schema("orders-db", "orders-aurora"));
let again = step("again", || pg::copy_schema("orders-db", "orders-aurora"));
let defs = step("defs", || #{ source: pg::table_definitions("orders-db"),
    target: pg::table_definitions("orders-aurora") });
#{ first: first, again: again, same_schema: defs.source == defs.target }
"#,
    );
    println!(
        "copy + no-op copy: {:.2} s; {}",
        started.elapsed().as_secs_f64(),
        out["first"]["how"]
    );
    let first = &out["first"];
    assert_eq!(first["roles"], serde_json::json!(["app_user"]), "{out}");
    assert_eq!(
        first["tables"],
        serde_json::json!(["public.customers", "public.orders"]),
        "{out}"
    );
    assert_eq!(first["sequences"], 1, "{out}");
    assert_eq!(out["same_schema"], true, "{out}");
    assert!(!out.to_string().contains("never-copied"), "{out}");

    // The login role with its attributes, and no password: IAM signs it in on Aurora.
    assert_eq!(
        on(
            &target,
            "SELECT rolcanlogin::text || ' ' || rolconnlimit FROM pg_roles WHERE rolname = 'app_user'"
        ),
        Some("true 7".into())
    );
    assert!(
        on(
            &source,
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'"
        )
        .is_some(),
        "the source's role has a password"
    );
    assert_eq!(
        on(
            &target,
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'"
        ),
        None,
        "no password on the target"
    );
    assert_eq!(
        on(
            &target,
            "SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'app_readers'"
        ),
        Some("false".into())
    );
    // The membership, and the grant it carries.
    assert_eq!(
        on(
            &target,
            "SELECT count(*)::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = 'app_readers' AND u.rolname = 'app_user'"
        ),
        Some("1".into())
    );
    let acl = on(
        &target,
        "SELECT array_to_string(relacl, ',') FROM pg_class WHERE oid = 'public.customers'::regclass",
    )
    .unwrap_or_default();
    assert!(acl.contains("app_readers=r/"), "{acl}");
    assert_eq!(
        on(
            &target,
            "SELECT has_table_privilege('app_user', 'public.customers', 'SELECT')::text || ' ' || \
             has_table_privilege('app_user', 'public.customers', 'INSERT')::text"
        ),
        Some("true false".into()),
        "SELECT through app_readers, nothing more"
    );
    assert_eq!(
        on(
            &target,
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'public.orders'::regclass"
        ),
        Some("app_user".into()),
        "ownership kept"
    );
    // The second call found the same tables and did nothing (a second restore would fail on
    // objects that exist).
    let again = &out["again"];
    assert_eq!(again["tables"], first["tables"], "{out}");
    assert!(
        again["how"].as_str().unwrap().starts_with("nothing to do"),
        "{out}"
    );

    // A target with other tables is refused, not retried, and left as it is.
    rt.block_on(exec(&target, "CREATE TABLE stray (id int)"));
    let refused = run(
        &world,
        &rt,
        r#"
let r = #{};
try { step("copy", || pg::copy_schema("orders-db", "orders-aurora")); } catch (e) { r = e; }
r
"#,
    );
    assert_eq!(refused["kind"], "Conflict", "{refused}");
    assert_eq!(refused["retryable"], false, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("public.stray"),
        "{refused}"
    );
    assert_eq!(on(&target, public_tables), Some("3".into()));
}

/// The target as a cluster godwit just created: godwit signs in as `godwit`, which is not there
/// yet; its master user is, and `master` (user, password) says whether the world offers its
/// sign-in (the aws world: RDS's secret in Secrets Manager).
struct NewCluster {
    ports: Ports,
    cluster: &'static str,
    master: Option<(&'static str, &'static str)>,
}

impl Connector for NewCluster {
    fn access(&self, db: &str) -> godwit_stdlib::pg::Access {
        self.ports.access(db)
    }

    fn target<'a>(&'a self, db: &'a str) -> BoxFuture<'a, Result<Target, PrimitiveError>> {
        Box::pin(async move {
            let mut t = self.ports.target(db).await?;
            if db == self.cluster {
                t.config.user("godwit");
            }
            Ok(t)
        })
    }

    fn master_target<'a>(
        &'a self,
        db: &'a str,
    ) -> BoxFuture<'a, Option<Result<Target, PrimitiveError>>> {
        Box::pin(async move {
            let (user, password) = self.master.filter(|_| db == self.cluster)?;
            Some(self.ports.target(db).await.map(|mut t| {
                t.config.user(user).password(password);
                t
            }))
        })
    }
}

/// What a new Aurora cluster has: RDS's roles, the master user (a member of rds_superuser,
/// CREATEROLE, owner of the database godwit opens), and nothing else.
const NEW_CLUSTER: &str = "
CREATE ROLE rds_iam NOLOGIN;
CREATE ROLE rds_superuser NOLOGIN;
GRANT pg_monitor, pg_signal_backend, pg_read_all_data TO rds_superuser;
CREATE ROLE godwit_master LOGIN CREATEROLE CREATEDB PASSWORD 'kept-by-rds' IN ROLE rds_superuser;
ALTER DATABASE postgres OWNER TO godwit_master;
";

/// A source whose objects belong to its application's roles (as on RDS, where the master user
/// that made them is a role like any other).
const OWNED: &str = "
CREATE ROLE app_owner NOLOGIN;
CREATE ROLE app_user LOGIN PASSWORD 'never-copied' IN ROLE app_owner;
CREATE SCHEMA shop AUTHORIZATION app_owner;
CREATE TABLE shop.orders (id bigserial PRIMARY KEY, note text);
ALTER TABLE shop.orders OWNER TO app_owner;
GRANT SELECT ON shop.orders TO app_user;
";

/// On a cluster godwit just created only the master user exists: `pg::copy_schema` signs in as
/// it once (where the world offers it), creates godwit's own login — no password, IAM,
/// CREATEROLE, rds_superuser, the database — then copies as godwit, which is no superuser:
/// the objects keep their owners because godwit joins the roles it created. Without the master
/// user's sign-in the refusal says what to create by hand, and nothing is created.
#[test]
fn copy_schema_creates_godwits_login_on_a_new_cluster_as_its_master_user() {
    let pg = scratch();
    let source = pg.primary("source", &[]).unwrap();
    let target = pg.primary("target", &[]).unwrap();
    let rt = runtime();
    rt.block_on(exec(&source, OWNED));
    rt.block_on(exec(&target, NEW_CLUSTER));
    let servers = [("orders-db", &source), ("orders-aurora", &target)];
    let world = |master| {
        sql_world_on(
            Arc::new(NewCluster {
                ports: Ports::of(&servers),
                cluster: "orders-aurora",
                master,
            }),
            rt.handle().clone(),
        )
    };
    let on = |s: &Server, sql: &str| rt.block_on(one(s, sql));
    let copy = r#"
let r = #{};
try { r = step("copy", #{ retry: #{ attempts: 1 } }, || pg::copy_schema("orders-db", "orders-aurora")); } catch (e) { r = e; }
r
"#;

    let refused = run(&world(None), &rt, copy);
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refused godwit's sign-in as \"godwit\"")
            && message.contains("does not sign in as the master user"),
        "{refused}"
    );
    assert!(
        refused["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("GRANT rds_iam"),
        "{refused}"
    );
    assert_eq!(
        on(
            &target,
            "SELECT count(*)::text FROM pg_roles WHERE rolname = 'godwit'"
        ),
        Some("0".into()),
        "nothing created"
    );

    let world = world(Some(("godwit_master", "kept-by-rds")));
    let first = run(&world, &rt, copy);
    let how = first["how"].as_str().unwrap_or_default();
    println!("{how}");
    assert!(
        how.contains("godwit's login godwit created on orders-aurora first, signed in once as its master user godwit_master"),
        "{first}"
    );
    assert_eq!(
        first["tables"],
        serde_json::json!(["shop.orders"]),
        "{first}"
    );
    assert!(
        !first.to_string().contains("kept-by-rds"),
        "no password in the result"
    );
    assert_eq!(
        on(
            &target,
            "SELECT rolcanlogin::text || ' ' || rolcreaterole::text || ' ' || rolsuper::text || ' ' \
             || (rolpassword IS NULL)::text FROM pg_authid WHERE rolname = 'godwit'"
        ),
        Some("true true false true".into()),
        "a login without a password, CREATEROLE, no superuser"
    );
    assert_eq!(
        on(
            &target,
            "SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m \
             JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member \
             WHERE u.rolname = 'godwit'"
        ),
        Some("app_owner,app_user,rds_iam,rds_superuser".into()),
        "signs in with IAM, rds_superuser, and joined the roles it created"
    );
    assert_eq!(
        on(
            &target,
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'shop.orders'::regclass"
        ),
        Some("app_owner".into()),
        "ownership kept by a copy that is no superuser's"
    );

    // Again: godwit signs in as itself, the master user is not needed.
    let again = run(&world, &rt, copy);
    assert!(
        again["how"]
            .as_str()
            .unwrap_or_default()
            .starts_with("nothing to do"),
        "{again}"
    );
}

/// A rollback during the initial copy drops the subscription detached from its slot; PostgreSQL
/// then drops the table syncs' own slots on the publisher only if the subscriber can still
/// reach it (on AWS the IAM token in its connection string lasts 15 minutes), and otherwise
/// leaves them holding the publisher's WAL. `pg::drop_subscription_from(db, name, publisher)`
/// drops them from godwit's side — here the slot of a copy still running — and leaves the main
/// slot to the caller.
#[test]
fn a_subscription_dropped_during_its_copy_leaves_no_table_sync_slot() {
    let pg = scratch();
    let source = pg.primary("source", &[]).unwrap();
    let target = pg.primary("target", &[]).unwrap();
    let rt = runtime();
    let table = "CREATE TABLE orders (id bigint PRIMARY KEY, note text);";
    rt.block_on(exec(&source, table));
    rt.block_on(exec(&target, table));
    // A slow target: each row the sync writes waits 50 ms (a trigger that fires under
    // replication too), so the copy is still running, its slot on the source, when dropped.
    rt.block_on(exec(
        &target,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION slow();
         ALTER TABLE orders ENABLE ALWAYS TRIGGER slow;",
    ));
    rt.block_on(exec(
        &source,
        "INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
         CREATE PUBLICATION p FOR ALL TABLES;",
    ));
    let world = sql_world(
        &[("orders-db", &source), ("orders-aurora", &target)],
        rt.handle().clone(),
    );
    run(
        &world,
        &rt,
        r#"
step("slot", || pg::create_logical_slot("orders-db", "s"));
step("subscribe", || pg::subscribe("orders-aurora", "s", #{ from: "orders-db", publication: "p", slot: "s", copy_data: true }))
"#,
    );
    let sync_slots =
        "SELECT count(*)::text FROM pg_replication_slots WHERE slot_name LIKE 'pg\\_%\\_sync\\_%'";
    let on = |s: &Server, sql: &str| rt.block_on(one(s, sql));
    let deadline = Instant::now() + Duration::from_secs(30);
    while on(&source, sync_slots) != Some("1".into()) {
        assert!(Instant::now() < deadline, "the table sync made its slot");
        pause(Duration::from_millis(100));
    }

    // The subscriber can no longer reach the publisher (on AWS: the IAM token in its
    // connection string expired), so PostgreSQL's own DROP SUBSCRIPTION leaves the sync's slot.
    rt.block_on(exec(
        &target,
        "ALTER SUBSCRIPTION s CONNECTION 'host=127.0.0.1 port=1 user=postgres connect_timeout=2'",
    ));
    let out = run(
        &world,
        &rt,
        r#"step("drop", || pg::drop_subscription_from("orders-aurora", "s", "orders-db"))"#,
    );
    assert_eq!(out["dropped"], true, "{out}");
    let gone = out["sync_slots_dropped"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        gone.len() == 1 && gone[0].as_str().unwrap().contains("_sync_"),
        "{out}"
    );
    assert_eq!(
        on(&source, sync_slots),
        Some("0".into()),
        "no table-sync slot left"
    );
    assert_eq!(
        on(
            &source,
            "SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = 's'"
        ),
        Some("1".into()),
        "the main slot is the caller's to drop"
    );
    assert_eq!(
        on(&target, "SELECT count(*)::text FROM pg_subscription"),
        Some("0".into())
    );
    // Again: nothing to drop.
    let again = run(
        &world,
        &rt,
        r#"step("drop", || pg::drop_subscription_from("orders-aurora", "s", "orders-db"))"#,
    );
    assert_eq!(again["dropped"], false, "{again}");
}

/// Processes running a schema copy's tool (their command line names the call's private dump
/// file), zombies aside.
fn dump_processes() -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("godwit-schema-"))
        .collect()
}

/// The fence LSN after asynchronous commits (`pg::settled_lsn`): past every one of them at
/// once, not after the WAL writer's next round — 10 s here; its default 200 ms cost the lab's
/// write blackout up to 208 ms when godwit waited for it.
#[test]
fn the_settled_lsn_is_past_asynchronous_commits_without_waiting_for_the_wal_writer() {
    let pg = scratch();
    let server = pg
        .primary(
            "p",
            &[("synchronous_commit", "off"), ("wal_writer_delay", "10s")],
        )
        .unwrap();
    let rt = runtime();
    let world = sql_world(&[("orders-db", &server)], rt.handle().clone());
    rt.block_on(exec(&server, "CREATE TABLE t (id int)"));
    // An acknowledged commit whose record is not written yet (the writer writes whole pages
    // early: another commit until one ends inside a page).
    let mut unwritten = None;
    for i in 0..50 {
        rt.block_on(exec(&server, &format!("INSERT INTO t VALUES ({i})")));
        let row = rt
            .block_on(one(
                &server,
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), pg_current_wal_lsn())::bigint \
                 || ' ' || pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint",
            ))
            .unwrap();
        let (gap, insert) = row.split_once(' ').unwrap();
        if gap.parse::<i64>().unwrap() > 0 {
            unwritten = Some(insert.parse::<i64>().unwrap());
            break;
        }
    }
    let insert = unwritten.expect("an asynchronous commit the WAL writer had not written yet");
    let started = Instant::now();
    let settled = run(
        &world,
        &rt,
        r#"step("settled", || pg::settled_lsn("orders-db"))"#,
    );
    let took = started.elapsed();
    let settled = settled["lsn_bytes"].as_i64().unwrap();
    assert!(
        settled >= insert,
        "the settled LSN {settled} lies before the acknowledged commit's end {insert}"
    );
    let written: i64 = rt
        .block_on(one(
            &server,
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint::text",
        ))
        .unwrap()
        .parse()
        .unwrap();
    assert!(written >= settled, "written {written} < settled {settled}");
    assert!(
        took < Duration::from_secs(5),
        "pg::settled_lsn took {took:?}: it waited for the WAL writer"
    );
}
