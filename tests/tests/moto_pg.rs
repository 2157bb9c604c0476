//! The aws world against moto with real PostgreSQL behind moto's endpoints
//! (`godwit_tests::motopg`): godwit's own aws code — the SDK areas, `IamConnector` (TLS
//! verify-full against the harness CA, an IAM token as the password), `pg::live`,
//! `validate::live` — reaching lab servers that moto's mutations create, restart, quarantine,
//! promote and delete, with CloudWatch fed by the lab's sampler. Nothing is scripted.
//!
//! Each test starts its own harness (moto, servers) and stops every process it started when it
//! ends, also on panic; tests take turns (the servers share two cores).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::session::Session;
use godwit_stdlib::aws::Aws;
use godwit_stdlib::world::World;
use godwit_tests::moto::{ACCESS_KEY, REGION, SECRET_KEY};
use godwit_tests::motopg::{MotoPg, Options, sigv4};
use rhai::Dynamic;
use serde_json::{Value, json};

static TURN: Mutex<()> = Mutex::new(());

/// One test's harness, SDK clients on it, and a runtime for the runner and direct clients.
struct Env {
    h: MotoPg,
    aws: Arc<Aws>,
    rt: tokio::runtime::Runtime,
    _turn: MutexGuard<'static, ()>,
}

/// A harness with the source `orders-db` created through the SDK (its application group
/// admits loopback) and available.
fn env() -> Env {
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let h = MotoPg::start(Options::default());
    let aws = h.aws(h.settings(json!({})));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(godwit_tests::moto::seed_source_with(&aws, "127.0.0.0/8"));
    Env {
        h,
        aws,
        rt,
        _turn: turn,
    }
}

impl Env {
    /// A REPL-style session (mutations allowed) over the aws world on `aws`, real clock.
    fn session_on(&self, aws: Arc<Aws>) -> (Session, World) {
        let world = World::aws(aws).unwrap();
        let runner = world.runner(Arc::new(MemoryStore::new()), self.rt.handle().clone());
        let s = Session::new(&runner);
        s.set_read_only(false);
        (s, world)
    }

    fn session(&self) -> (Session, World) {
        self.session_on(self.aws.clone())
    }

    fn instance(&self, id: &str) -> aws_sdk_rds::types::DbInstance {
        self.rt
            .block_on(
                self.aws
                    .rds
                    .describe_db_instances()
                    .db_instance_identifier(id)
                    .send(),
            )
            .unwrap()
            .db_instances()[0]
            .clone()
    }

    fn cluster(&self, id: &str) -> Option<aws_sdk_rds::types::DbCluster> {
        self.rt
            .block_on(
                self.aws
                    .rds
                    .describe_db_clusters()
                    .db_cluster_identifier(id)
                    .send(),
            )
            .ok()
            .and_then(|o| o.db_clusters().first().cloned())
    }

    /// `HOST:PORT` of an instance's endpoint as moto reports it.
    fn endpoint(&self, id: &str) -> (String, u16) {
        let i = self.instance(id);
        let ep = i.endpoint().expect("an endpoint once available");
        (ep.address().unwrap().to_string(), ep.port().unwrap() as u16)
    }

    /// A direct superuser query on the server behind `db` (the test's own view).
    fn admin_one(&self, db: &str, sql: &str) -> String {
        self.rt.block_on(async {
            let c = self.h.admin(db, "app").await;
            let rows = c.simple_query(sql).await.unwrap();
            rows.iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or("").to_string())
                    }
                    _ => None,
                })
                .unwrap_or_default()
        })
    }
}

fn eval(s: &mut Session, code: &str) -> Value {
    match s.eval(code, "<test>") {
        Ok(v) => to_json(&v),
        Err(e) => panic!("{code}\nfailed: {e:?}"),
    }
}

fn eval_err(s: &mut Session, code: &str) -> String {
    match s.eval(code, "<test>") {
        Ok(v) => panic!("{code}\nshould fail, returned {v}"),
        Err(e) => format!("{e:?}"),
    }
}

fn to_json(v: &Dynamic) -> Value {
    rhai::serde::from_dynamic::<Value>(v).unwrap()
}

#[allow(clippy::disallowed_methods)] // waiting for real servers and the metric feed, outside a run
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The first `DatabaseConnections` datapoint of `orders-db` stamped at or after `from`, as
/// the harness's feed publishes it (waits at most 30 s). Every answer is checked against AWS:
/// the query reaches a minute past now, yet no one-second period may be readable before it
/// has ended (RDS publishes a period's datapoint after it).
fn connections_from(env: &Env, s: &mut Session, from: i64) -> f64 {
    for _ in 0..60 {
        let series = eval(
            s,
            &format!(
                r#"cw::metric_series(#{{ name: "DatabaseConnections",
                    dimensions: #{{ DBInstanceIdentifier: "orders-db" }},
                    since: {from}, "until": {}, period: 1 }})"#,
                now_s() + 60
            ),
        );
        let answered = now_s();
        let points = series.as_array().unwrap();
        if let Some(newest) = points.last() {
            assert!(
                newest["t"].as_i64().unwrap() < answered,
                "the period stamped {} was readable at {answered}, before it ended: the \
                 harness's CloudWatch is kinder than AWS",
                newest["t"]
            );
        }
        if let Some(first) = points.first() {
            return first["v"].as_f64().unwrap();
        }
        env.rt
            .block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    }
    panic!("no DatabaseConnections datapoint of orders-db stamped from {from} within 30 s");
}

/// rustls trusting only the harness CA (what `IamConnector` builds from `ca_bundle`).
fn tls_to(h: &MotoPg) -> tokio_postgres_rustls::MakeRustlsConnect {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(h.ca_bundle()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Log in at `host:port` as `user` with `password` (TLS when `tls`); the server's SQLSTATE
/// and message on refusal.
fn login(
    env: &Env,
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    tls: bool,
) -> Result<(), (String, String)> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(user)
        .password(password)
        .dbname("app")
        .connect_timeout(Duration::from_secs(5));
    let r = env.rt.block_on(async {
        if tls {
            config
                .ssl_mode(tokio_postgres::config::SslMode::Require)
                .connect(tls_to(&env.h))
                .await
                .map(|(c, conn)| {
                    tokio::spawn(conn);
                    c
                })
        } else {
            config
                .connect(tokio_postgres::NoTls)
                .await
                .map(|(c, conn)| {
                    tokio::spawn(conn);
                    c
                })
        }
    });
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.as_db_error() {
            Some(d) => (d.code().code().to_string(), d.message().to_string()),
            None => (String::new(), e.to_string()),
        }),
    }
}

/// The source is a real server: created by `CreateDBInstance` (moto reads `creating` until it
/// runs), its endpoint its own loopback address, reached by godwit's `pg` over verified TLS
/// with an IAM token; what `pg` answers is the server's own state; CloudWatch holds its
/// samples.
#[test]
fn the_source_is_a_real_server_reached_over_verified_tls_with_an_iam_token() {
    let env = env();
    assert_eq!(
        env.instance("orders-db").db_instance_status(),
        Some("creating"),
        "the server is still being made (initdb, roles, data)"
    );
    let (mut s, _w) = env.session();
    let i = eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-db", #{ timeout: "2m", every: "1s", min_every: "50ms" })"#,
    );
    assert_eq!(i["status"], "available");
    let (host, port) = env.endpoint("orders-db");
    assert!(host.starts_with("127.") && host != "127.0.0.1", "{host}");
    assert_eq!(
        port,
        godwit_tests::moto::SOURCE_PORT,
        "the port the source was created with"
    );

    let lsn = eval(&mut s, r#"pg::current_lsn("orders-db")"#);
    let server: i64 = env
        .admin_one(
            "orders-db",
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
        )
        .parse()
        .unwrap();
    assert!(
        lsn["lsn_bytes"].as_i64().unwrap() <= server && server > 0,
        "godwit read the real server's WAL position: {lsn} vs {server}"
    );
    assert!(
        env.h.log().contains("godwit signed in with IAM"),
        "{}",
        env.h.log()
    );

    // An application session through the same door (a password role: the server decides).
    let app = env.rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(
            &format!("host={host} port={port} user=app dbname=app connect_timeout=5"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        c
    });
    // A sample stamped from the next second on was taken with the session open.
    let app_from = now_s() + 1;
    let backends = eval(&mut s, r#"pg::application_backends("orders-db")"#);
    let roles: Vec<&str> = backends
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["app"],
        "the application's session, not godwit's nor the harness's (rdsadmin)"
    );

    // CloudWatch: the lab's sampler's series for this instance, per second. Its
    // DatabaseConnections counts client sessions but not RDS's own (rdsadmin: the sampler,
    // the harness), as AWS defines the metric: the application's session is one of them
    // while it is open (godwit's pooled session is the other), and one fewer once it ends.
    let with_app = connections_from(&env, &mut s, app_from);
    let app_ended = now_s();
    drop(app);
    // Its backend exits a moment after the client closes: a whole period later.
    let without_app = connections_from(&env, &mut s, app_ended + 2);
    assert!(
        with_app >= 1.0,
        "{with_app} with the application's session open"
    );
    assert_eq!(
        with_app - without_app,
        1.0,
        "DatabaseConnections {with_app} with the application's session, {without_app} after it"
    );

    // verify-full: a bundle without the harness CA refuses the server.
    let other_ca = tempfile::tempdir().unwrap();
    let other = godwit_tests::motopg::pki::Ca::new(other_ca.path()).unwrap();
    let (mut s2, _w2) = env.session_on(
        env.h
            .aws(env.h.settings(json!({ "ca_bundle": other.bundle }))),
    );
    let err = eval_err(&mut s2, r#"pg::current_lsn("orders-db")"#);
    assert!(err.contains("certificate"), "{err}");
}

/// A token is accepted only if valid for this login, as RDS checks it; every refusal is
/// PostgreSQL's own error: 28P01 (bad, expired, another endpoint's or user's token, IAM auth
/// disabled), 28000 (no TLS).
#[test]
fn a_token_not_valid_for_this_login_is_refused_with_postgresql_s_error() {
    let env = env();
    let (mut s, _w) = env.session();
    eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-db", #{ timeout: "2m", every: "1s", min_every: "50ms" })"#,
    );
    let (host, port) = env.endpoint("orders-db");
    let authority = format!("{host}:{port}");
    let token = |ep: &str, user: &str, at: i64, secret: &str| {
        sigv4::sign(ep, user, REGION, ACCESS_KEY, secret, at, 900)
    };
    assert_eq!(
        login(
            &env,
            &host,
            port,
            "godwit",
            &token(&authority, "godwit", now_s(), SECRET_KEY),
            true
        ),
        Ok(()),
        "a token made here like the SDK's is accepted"
    );
    let pam = Err((
        "28P01".to_string(),
        "PAM authentication failed for user \"godwit\"".to_string(),
    ));
    for (what, t, why) in [
        (
            "expired",
            token(&authority, "godwit", now_s() - 901, SECRET_KEY),
            "expired",
        ),
        (
            "another endpoint's",
            token("127.0.0.1:5432", "godwit", now_s(), SECRET_KEY),
            "presented at",
        ),
        (
            "another user's",
            token(&authority, "app", now_s(), SECRET_KEY),
            "user",
        ),
        (
            "signed with another key",
            token(&authority, "godwit", now_s(), "not-the-key"),
            "signature",
        ),
        ("not a token", "hunter2".to_string(), "presigned"),
    ] {
        let seen = env.h.log().len();
        assert_eq!(
            login(&env, &host, port, "godwit", &t, true),
            pam,
            "{what} token"
        );
        let log = env.h.log();
        assert!(
            log[seen..]
                .lines()
                .any(|l| l.contains("refused godwit") && l.contains(why)),
            "{what}: the harness says why: {}",
            &log[seen..]
        );
    }
    // Without TLS an IAM login has no pg_hba.conf line (RDS: hostssl only).
    let plain = login(
        &env,
        &host,
        port,
        "godwit",
        &token(&authority, "godwit", now_s(), SECRET_KEY),
        false,
    );
    assert_eq!(plain.as_ref().unwrap_err().0, "28000", "{plain:?}");

    // Through godwit: credentials RDS does not know give PostgreSQL's refusal, named.
    let wrong = env.h.aws(env.h.settings(json!({})));
    let creds =
        aws_sdk_rds::config::Credentials::new(ACCESS_KEY, "wrong-secret", None, None, "test");
    let wrong_aws = Arc::new(Aws::connect(wrong.settings.clone(), Some(creds)).unwrap());
    let (mut bad, _w2) = env.session_on(wrong_aws);
    let err = eval_err(&mut bad, r#"pg::current_lsn("orders-db")"#);
    assert!(
        err.contains("PAM authentication failed for user \\\"godwit\\\" (28P01)")
            || err.contains("PAM authentication failed for user \"godwit\" (28P01)"),
        "{err}"
    );

    // IAM auth turned off on the instance: the token is a password like any other.
    env.rt
        .block_on(
            env.aws
                .rds
                .modify_db_instance()
                .db_instance_identifier("orders-db")
                .enable_iam_database_authentication(false)
                .apply_immediately(true)
                .send(),
        )
        .unwrap();
    eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-db", #{ timeout: "1m", every: "1s", min_every: "20ms" })"#,
    );
    assert_eq!(
        login(
            &env,
            &host,
            port,
            "godwit",
            &token(&authority, "godwit", now_s(), SECRET_KEY),
            true
        ),
        Err((
            "28P01".to_string(),
            "password authentication failed for user \"godwit\"".to_string()
        ))
    );
}

/// `rds::reboot_instance` restarts the real server: moto reads `rebooting` until it is back,
/// every session ends, the postmaster is a new process, RDS's events record both halves.
#[test]
fn rebooting_the_instance_restarts_the_real_server() {
    let env = env();
    let (mut s, _w) = env.session();
    eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-db", #{ timeout: "2m", every: "1s", min_every: "50ms" })"#,
    );
    let (host, port) = env.endpoint("orders-db");
    let app = env.rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(
            &format!("host={host} port={port} user=app dbname=app connect_timeout=5"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        c
    });
    let pid = env.h.server_pid("orders-db").unwrap();
    let started = env.admin_one("orders-db", "SELECT pg_postmaster_start_time()::text");
    let r = eval(&mut s, r#"rds::reboot_instance("orders-db")"#);
    assert_eq!(r["status"], "rebooting", "{r}");
    eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-db", #{ timeout: "2m", every: "1s", min_every: "20ms" })"#,
    );
    assert!(
        env.rt.block_on(app.simple_query("SELECT 1")).is_err(),
        "the application's session ended with the reboot"
    );
    assert!(
        !godwit_lab::pgproc::alive(pid),
        "the old postmaster is gone"
    );
    assert_ne!(env.h.server_pid("orders-db"), Some(pid));
    assert_ne!(
        env.admin_one("orders-db", "SELECT pg_postmaster_start_time()::text"),
        started
    );
    let events: Vec<String> = eval(&mut s, r#"rds::describe_events("orders-db", #{})"#)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    let at = |m: &str| events.iter().rposition(|e| e == m);
    assert!(
        at("DB instance shutdown").is_some()
            && at("DB instance shutdown") < at("DB instance restarted"),
        "{events:?}"
    );
    // godwit's own connection came back through the door after the restart.
    eval(&mut s, r#"pg::current_lsn("orders-db")"#);
}

/// Security groups are enforced at the endpoint, statefully, as a VPC does: a quarantine
/// without ingress leaves established sessions alone and drops every new connection —
/// godwit's too (issue 15, item 1) — until a rule admits godwit's group.
#[test]
fn the_quarantine_drops_new_connections_and_keeps_established_ones() {
    let env = env();
    let (mut s, _w) = env.session();
    let src = eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-db", #{ timeout: "2m", every: "1s", min_every: "50ms" })"#,
    );
    let (host, port) = env.endpoint("orders-db");
    let connect = |from: &str| {
        let host = host.clone();
        let from: std::net::IpAddr = from.parse().unwrap();
        env.rt.block_on(async move {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind((from, 0).into()).unwrap();
            let stream = tokio::time::timeout(
                Duration::from_secs(3),
                sock.connect(format!("{host}:{port}").parse().unwrap()),
            )
            .await
            .map_err(|_| "TCP connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
            let mut config = tokio_postgres::Config::new();
            config.user("app").dbname("app");
            let (c, conn) = tokio::time::timeout(
                Duration::from_secs(3),
                config.connect_raw(stream, tokio_postgres::NoTls),
            )
            .await
            .map_err(|_| "no answer within 3 s".to_string())?
            .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Ok::<_, String>(c)
        })
    };
    let app = connect("127.0.0.2").expect("the application group admits loopback");
    let vpc = src["vpc_id"].as_str().unwrap().to_string();
    let q = eval(
        &mut s,
        &format!(r#"ec2::ensure_quarantine_group("{vpc}", "godwit-quarantine")"#),
    );
    let qid = q["id"].as_str().unwrap().to_string();
    eval(
        &mut s,
        &format!(r#"rds::set_security_groups("orders-db", ["{qid}"])"#),
    );
    eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-db", #{ timeout: "1m", every: "1s", min_every: "20ms" })"#,
    );
    assert_eq!(
        env.rt
            .block_on(app.simple_query("SELECT 1"))
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Ok(()),
        "an established session stays (security groups are stateful)"
    );
    assert_eq!(
        connect("127.0.0.2").err().as_deref(),
        Some("no answer within 3 s"),
        "a new connection is dropped, not refused"
    );
    assert_eq!(
        connect("127.0.0.1").err().as_deref(),
        Some("no answer within 3 s"),
        "godwit's address is locked out too"
    );
    assert!(
        env.h.log().contains("dropped: no ingress rule"),
        "{}",
        env.h.log()
    );

    // The rule issue 15 asks for: the database port from godwit's own group.
    let godwit_sg = env.rt.block_on(async {
        let g = env
            .aws
            .ec2
            .create_security_group()
            .group_name("godwit")
            .description("godwit")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id
            .unwrap();
        env.aws
            .ec2
            .authorize_security_group_ingress()
            .group_id(&qid)
            .ip_permissions(
                aws_sdk_ec2::types::IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(i32::from(godwit_tests::moto::SOURCE_PORT))
                    .to_port(i32::from(godwit_tests::moto::SOURCE_PORT))
                    .user_id_group_pairs(
                        aws_sdk_ec2::types::UserIdGroupPair::builder()
                            .group_id(&g)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        g
    });
    env.h.place("127.0.0.1".parse().unwrap(), &godwit_sg);
    // The rule reaches the door through the hook queue: wait for it.
    let mut admitted = Err(String::new());
    for _ in 0..50 {
        admitted = connect("127.0.0.1").map(|_| ());
        if admitted.is_ok() {
            break;
        }
    }
    assert_eq!(admitted, Ok(()), "godwit's group is admitted");
    assert!(connect("127.0.0.2").is_err(), "the application is not");
    eval(&mut s, r#"pg::current_lsn("orders-db")"#);
}

/// The Aurora replica is a real streaming replica: `create_replica_cluster` copies the source
/// (`pg_basebackup`), `create_cluster_instance` runs it, `wait_until_cluster_available`
/// returns once it serves; its data follows the source's, `validate::compare` finds them
/// equal, CloudWatch has its lag; `promote_cluster` takes it out of recovery; the deletes
/// stop it and remove its files.
#[test]
fn the_aurora_replica_is_a_real_replica_promoted_and_deleted_for_real() {
    let env = env();
    let (mut s, _w) = env.session();
    eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-db", #{ timeout: "2m", every: "1s", min_every: "50ms" })"#,
    );
    eval(
        &mut s,
        r#"rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
           rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.large" });"#,
    );
    assert_eq!(
        env.cluster("orders-aurora").unwrap().status(),
        Some("creating")
    );
    let c = eval(
        &mut s,
        r#"rds::wait_until_cluster_available("orders-aurora", #{ timeout: "5m", every: "1s", min_every: "50ms" })"#,
    );
    eval(
        &mut s,
        r#"rds::wait_until_instance_available("orders-aurora-1", #{ timeout: "5m", every: "1s", min_every: "50ms" })"#,
    );
    let endpoint = c["endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("127."), "{c}");
    assert_ne!(
        endpoint,
        env.endpoint("orders-db").0,
        "an endpoint of its own"
    );
    assert_eq!(
        env.admin_one("orders-aurora", "SELECT pg_is_in_recovery()"),
        "t"
    );

    // Aurora keeps IAM auth at the cluster, off unless asked for (issue 15, item 3).
    if !env
        .cluster("orders-aurora")
        .unwrap()
        .iam_database_authentication_enabled()
        .unwrap_or(false)
    {
        let err = eval_err(&mut s, r#"pg::table_hashes("orders-aurora")"#);
        assert!(err.contains("28P01"), "{err}");
        env.rt
            .block_on(
                env.aws
                    .rds
                    .modify_db_cluster()
                    .db_cluster_identifier("orders-aurora")
                    .enable_iam_database_authentication(true)
                    .apply_immediately(true)
                    .send(),
            )
            .unwrap();
        eval(
            &mut s,
            r#"rds::wait_until_cluster_available("orders-aurora", #{ timeout: "1m", every: "1s", min_every: "20ms" })"#,
        );
    }

    // New rows on the source reach the replica; both compare equal.
    env.admin_one(
        "orders-db",
        "INSERT INTO orders (customer, amount) SELECT g, g FROM generate_series(1, 500) g",
    );
    let at = eval(&mut s, r#"pg::current_lsn("orders-db")"#)["lsn_bytes"]
        .as_i64()
        .unwrap();
    // Aurora refuses pg_last_wal_replay_lsn(): the replica's position is read on the source.
    let err = eval_err(&mut s, r#"pg::replay_lsn("orders-aurora")"#);
    assert!(err.contains("not supported on Aurora"), "{err}");
    let mut replayed = 0;
    for _ in 0..100 {
        let senders = eval(&mut s, r#"pg::replication_connections("orders-db")"#);
        replayed = senders
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["replay_lsn_bytes"].as_i64())
            .min()
            .unwrap_or(0);
        if replayed >= at {
            break;
        }
        pause(Duration::from_millis(50));
    }
    assert!(
        replayed >= at,
        "the replica replays the source: {replayed} < {at}"
    );
    let cmp = eval(
        &mut s,
        r#"validate::compare("orders-db", "orders-aurora", #{ tables: ["public.orders"] })"#,
    );
    assert_eq!(cmp["equal"], true, "{cmp}");
    assert_eq!(
        env.admin_one("orders-aurora", "SELECT count(*) FROM orders"),
        "1500"
    );

    // CloudWatch: the replica's lag as the source's walsender reports it, per second.
    let t0 = now_s() - 120;
    let lag = (0..30)
        .find_map(|_| {
            let v = eval(
                &mut s,
                &format!(
                    r#"cw::metric_series(#{{ name: "RDSToAuroraPostgreSQLReplicaLag",
                        dimensions: #{{ DBClusterIdentifier: "orders-aurora" }}, since: {t0}, period: 1 }})"#
                ),
            );
            if v.as_array().is_some_and(|a| !a.is_empty()) {
                return Some(v);
            }
            pause(Duration::from_millis(500));
            None
        })
        .expect("the feed published the replica's lag");
    assert!(lag[0]["v"].as_f64().unwrap() >= 0.0, "{lag}");

    // Promotion: out of recovery for real, and only then complete in moto.
    eval(&mut s, r#"rds::promote_cluster("orders-aurora")"#);
    let p = eval(
        &mut s,
        r#"rds::wait_until_cluster_promoted("orders-aurora", #{ timeout: "2m", every: "1s", min_every: "20ms" })"#,
    );
    assert_eq!(p["replication_source_identifier"], Value::Null, "{p}");
    assert_eq!(
        env.admin_one("orders-aurora", "SELECT pg_is_in_recovery()"),
        "f"
    );
    eval(&mut s, r#"pg::current_lsn("orders-aurora")"#);

    // Deletes: the server stops, its files go, its endpoint closes.
    let pid = env.h.server_pid("orders-aurora").unwrap();
    eval(&mut s, r#"rds::delete_instance("orders-aurora-1")"#);
    eval(&mut s, r#"rds::delete_cluster("orders-aurora")"#);
    eval(
        &mut s,
        r#"rds::wait_until_cluster_deleted("orders-aurora", #{ timeout: "1m", every: "1s", min_every: "50ms" })"#,
    );
    let mut gone = false;
    for _ in 0..100 {
        gone = !godwit_lab::pgproc::alive(pid) && !env.h.harness.dir.join("orders-aurora").exists();
        if gone {
            break;
        }
        pause(Duration::from_millis(50));
    }
    assert!(gone, "the replica's server stopped and its data removed");
    assert!(
        std::net::TcpStream::connect((endpoint.as_str(), godwit_tests::moto::SOURCE_PORT)).is_err(),
        "its endpoint is closed"
    );
}
