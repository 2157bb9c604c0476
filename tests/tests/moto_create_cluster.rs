//! `rds::create_cluster` (the logical path's standalone Aurora target) in the aws world against
//! moto on loopback: what the primitive returns, what moto holds afterwards (read back through
//! the SDK, not through godwit) and what went over the wire. The aws world talks to moto through
//! a recording relay, so the test can show what `CreateDBCluster` carried — in particular that
//! no password ever left godwit.
//!
//! One moto serves the binary (tests take turns: a mutex, and `POST /moto-api/reset` before
//! each); the harness is `godwit_tests::moto` (launcher, seeded source `orders-db` on
//! `SOURCE_PORT` in its own VPC). The clock is virtual; every AWS call is real HTTP to moto.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::session::Session;
use godwit_engine::transcript::{Collector, Event, Sink};
use godwit_engine::{Clock, VirtualClock};
use godwit_stdlib::aws::{Aws, AwsSettings};
use godwit_stdlib::rds::MASTER_USERNAME;
use godwit_stdlib::world::World;
use godwit_tests::moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY, SOURCE_PORT};
use rhai::Dynamic;
use serde_json::{Value, json};

static MOTO: OnceLock<Moto> = OnceLock::new();
static RELAY: OnceLock<Relay> = OnceLock::new();
static TURN: Mutex<()> = Mutex::new(());

/// A plain HTTP relay in front of moto that keeps every request body (the RDS and EC2 query
/// protocol: `Action=…&Param=…`, form-encoded). One exchange per connection: the relay asks
/// moto to close and tells the SDK so (`Connection: close`), so no pooled connection is reused
/// behind its back.
struct Relay {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (upstream, kept) = (upstream.clone(), kept.clone());
                std::thread::spawn(move || relay_one(conn, &upstream, &kept));
            }
        });
        Relay { url, bodies }
    }

    /// The form parameters of every request for `action` so far, oldest first.
    fn requests(&self, action: &str) -> Vec<Vec<(String, String)>> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| form(b))
            .filter(|f| f.iter().any(|(k, v)| k == "Action" && v == action))
            .collect()
    }

    fn clear(&self) {
        self.bodies.lock().unwrap().clear();
    }
}

fn relay_one(client: TcpStream, upstream: &str, kept: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let len = head
        .iter()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    kept.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    let mut up = TcpStream::connect(upstream).expect("connect to moto");
    let mut out = String::new();
    for l in head
        .iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
    {
        out.push_str(l);
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes()).unwrap();
    up.write_all(&body).unwrap();
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer from moto");
    let mut reply: Vec<u8> = String::from_utf8_lossy(&answer[..split])
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|l| [l, "\r\n"])
        .collect::<String>()
        .into_bytes();
    reply.extend_from_slice(b"Connection: close\r\n");
    reply.extend_from_slice(&answer[split + 2..]);
    let mut client = client;
    let _ = client.write_all(&reply);
}

/// `a=1&b=x%2Fy` → `[("a", "1"), ("b", "x/y")]`.
fn form(body: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn param<'a>(f: &'a [(String, String)], key: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// One test's view: moto reset, SDK clients on it through the relay, a tokio runtime.
struct Env {
    _turn: MutexGuard<'static, ()>,
    moto: &'static Moto,
    relay: &'static Relay,
    aws: Arc<Aws>,
    rt: tokio::runtime::Runtime,
}

fn env() -> Env {
    env_with(json!({}))
}

/// [`env`] with more `[aws]` settings (`db_name`, …).
fn env_with(more: Value) -> Env {
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let moto = MOTO.get_or_init(Moto::start);
    let relay = RELAY.get_or_init(|| Relay::start(&moto.url));
    moto.reset();
    relay.clear();
    let mut table =
        json!({ "region": REGION, "endpoint_url": relay.url, "retry_backoff": "100ms" });
    for (k, v) in more.as_object().unwrap() {
        table[k] = v.clone();
    }
    let settings = AwsSettings::from_json(table, "test").unwrap();
    let creds = aws_sdk_rds::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
    let aws = Arc::new(Aws::connect(settings, Some(creds)).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    Env {
        _turn: turn,
        moto,
        relay,
        aws,
        rt,
    }
}

impl Env {
    /// A REPL-style session (no journal, mutations allowed) over the aws world, on a virtual
    /// clock, with its transcript.
    fn session(&self) -> (Session, Collector) {
        let mut world = World::aws(self.aws.clone()).unwrap();
        world.clock = Arc::new(VirtualClock::new(1_700_000_000_000)) as Arc<dyn Clock>;
        let collector = Collector::new();
        let mut runner = world.runner(Arc::new(MemoryStore::new()), self.rt.handle().clone());
        runner
            .sinks
            .push(Arc::new(collector.clone()) as Arc<dyn Sink>);
        let s = Session::new(&runner);
        s.set_read_only(false);
        (s, collector)
    }

    /// The source `orders-db` (PostgreSQL 15.4 on `SOURCE_PORT`, its own VPC, subnet group
    /// `orders-subnets`, application group). Returns the VPC id and the group id. The relay
    /// forgets the seeding (its CreateDBInstance carries the source's password): what it keeps
    /// from here on is godwit's.
    fn source(&self) -> (String, String) {
        let seeded = self.rt.block_on(godwit_tests::moto::seed_source(&self.aws));
        self.relay.clear();
        seeded
    }

    /// moto's own record of a cluster.
    fn cluster(&self, id: &str) -> Option<aws_sdk_rds::types::DbCluster> {
        self.rt.block_on(async {
            let out = self
                .aws
                .rds
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
                .ok()?;
            out.db_clusters().first().cloned()
        })
    }

    /// Another security group in `vpc`.
    fn group(&self, vpc: &str, name: &str) -> String {
        self.rt.block_on(async {
            self.aws
                .ec2
                .create_security_group()
                .group_name(name)
                .description(name)
                .vpc_id(vpc)
                .send()
                .await
                .unwrap()
                .group_id
                .unwrap()
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

/// How many attempts of AWS API `api` the transcript holds.
fn calls(c: &Collector, api: &str) -> usize {
    c.events()
        .into_iter()
        .filter(|e| matches!(e, Event::Primitive { area, op, .. } if area == "aws" && op == api))
        .count()
}

const CREATE: &str = r#"rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "16.1", iam_auth: true })"#;

#[test]
fn a_standalone_cluster_in_the_sources_network_whose_password_only_rds_knows() {
    let env = env();
    let (vpc, sg) = env.source();
    let (mut s, c) = env.session();

    let cl = eval(&mut s, CREATE);
    assert_eq!(cl["id"], "orders-aurora");
    assert_eq!(cl["engine"], "aurora-postgresql");
    // A newer major than the source's 15.4: a logical copy crosses majors.
    assert_eq!(cl["engine_version"], "16.1");
    // The create answer: moto, like RDS, reports a new cluster `creating`.
    assert_eq!(cl["status"], "creating", "{cl}");
    assert_eq!(
        cl["replication_source_identifier"],
        Value::Null,
        "standalone"
    );
    assert_eq!(cl["iam_auth"], true);
    assert_eq!(cl["vpc_id"], vpc.as_str(), "the source's VPC");
    assert_eq!(cl["security_groups"], json!([sg]), "the source's groups");
    assert_eq!(cl["port"], SOURCE_PORT, "the source's port, not 5432");
    assert_eq!(
        cl["storage_encrypted"], false,
        "as the (unencrypted) source"
    );

    // What moto holds, read through the SDK.
    let m = env.cluster("orders-aurora").expect("moto has the cluster");
    assert_eq!(m.engine(), Some("aurora-postgresql"));
    assert_eq!(m.engine_version(), Some("16.1"));
    assert_eq!(m.replication_source_identifier(), None);
    assert_eq!(m.db_subnet_group(), Some("orders-subnets"));
    let groups: Vec<_> = m
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(groups, [sg.as_str()]);
    assert_eq!(m.port(), Some(i32::from(SOURCE_PORT)));
    assert_eq!(m.iam_database_authentication_enabled(), Some(true));
    assert_eq!(m.master_username(), Some(MASTER_USERNAME));
    // RDS manages the password: the cluster names its Secrets Manager secret.
    let secret = m
        .master_user_secret()
        .expect("MasterUserSecret: RDS keeps the password in Secrets Manager");
    assert!(
        secret
            .secret_arn()
            .is_some_and(|a| a.starts_with("arn:aws:secretsmanager:")),
        "{secret:?}"
    );
    // moto reads `creating` once, then `available`, as it reports any new cluster.
    let now = eval(&mut s, r#"rds::describe_cluster("orders-aurora")"#);
    assert_eq!(now["status"], "available");
    // Its VPC as RDS derives it: from the subnet group the cluster was created in.
    assert_eq!(now["vpc_id"], vpc.as_str());

    // What went over the wire: one CreateDBCluster asking RDS to manage the password, and no
    // password at all.
    let sent = env.relay.requests("CreateDBCluster");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let p = &sent[0];
    assert_eq!(param(p, "ManageMasterUserPassword"), Some("true"), "{p:?}");
    assert_eq!(param(p, "MasterUsername"), Some(MASTER_USERNAME));
    assert_eq!(
        param(p, "MasterUserPassword"),
        None,
        "no password is sent: {p:?}"
    );
    assert_eq!(param(p, "ReplicationSourceIdentifier"), None);
    assert_eq!(param(p, "Engine"), Some("aurora-postgresql"));
    assert_eq!(param(p, "DBSubnetGroupName"), Some("orders-subnets"));
    assert_eq!(param(p, "EnableIAMDatabaseAuthentication"), Some("true"));
    assert_eq!(param(p, "StorageEncrypted"), Some("false"));
    assert_eq!(
        param(p, "DatabaseName"),
        None,
        "godwit opens `postgres` (no db_name), which every cluster has"
    );
    assert_eq!(
        param(p, "KmsKeyId"),
        None,
        "no key for an unencrypted cluster"
    );
    let every_key = env
        .relay
        .bodies
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| form(b))
        .map(|(k, _)| k)
        .collect::<Vec<_>>();
    assert!(
        !every_key.iter().any(|k| k == "MasterUserPassword"),
        "no request godwit sent carries a password: {every_key:?}"
    );

    // A re-run returns the same cluster and creates nothing.
    let again = eval(&mut s, CREATE);
    assert_eq!(again["arn"], cl["arn"]);
    assert_eq!(calls(&c, "rds.CreateDBCluster"), 1);
    // Another version under the same id is someone else's cluster: a Conflict, and moto's
    // cluster is left as it was (moto itself would replace it: it has no
    // DBClusterAlreadyExistsFault).
    let err = eval_err(
        &mut s,
        r#"rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "15.5" })"#,
    );
    assert!(err.contains("Conflict"), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(calls(&c, "rds.CreateDBCluster"), 1);
    assert_eq!(
        env.cluster("orders-aurora").unwrap().engine_version(),
        Some("16.1")
    );
}

/// godwit opens the `db_name` database on both sides: the cluster is created with it
/// (`DatabaseName`; without, an Aurora PostgreSQL cluster has only `postgres`, and the schema
/// copy would have nowhere to go).
#[test]
fn the_cluster_is_created_with_the_database_godwit_opens() {
    let env = env_with(json!({ "db_name": "orders" }));
    env.source();
    let (mut s, _) = env.session();
    eval(&mut s, CREATE);
    let sent = env.relay.requests("CreateDBCluster");
    assert_eq!(param(&sent[0], "DatabaseName"), Some("orders"), "{sent:?}");
    let m = env.cluster("orders-aurora").expect("moto has the cluster");
    assert_eq!(m.database_name(), Some("orders"));
}

/// On the cluster it created godwit has no login yet: `pg::copy_schema` signs in once as its
/// master user, whose password RDS keeps in Secrets Manager. The aws world's connector reads
/// the secret the cluster names (`GetSecretValue` on `MasterUserSecret`), waits while it is not
/// active, and offers no master sign-in for an instance. The password stays in the target (its
/// `Debug` redacts it).
#[test]
fn the_master_users_sign_in_comes_from_the_secret_rds_keeps() {
    use godwit_stdlib::pg::live::Connector;
    let dir = tempfile::tempdir().unwrap();
    let ca = godwit_tests::motopg::pki::Ca::new(dir.path()).unwrap();
    let env = env_with(json!({
        "db_user": "godwit", "security_group": "sg-0godwit", "ca_bundle": ca.bundle, "db_name": "orders"
    }));
    env.source();
    let (mut s, _) = env.session();
    eval(&mut s, CREATE);
    let iam = godwit_stdlib::aws::iam::IamConnector::new(env.aws.clone());
    let master = || {
        env.rt
            .block_on(iam.master_target("orders-aurora"))
            .expect("a cluster whose password RDS keeps offers its master user's sign-in")
    };
    // moto, like RDS, reports the new secret `creating` once.
    let t = match master() {
        Ok(t) => t,
        Err(e) => {
            assert_eq!(e.kind, godwit_engine::ErrorKind::Timeout, "{e:?}");
            assert!(e.retryable && e.message.contains("not active yet"), "{e:?}");
            master().unwrap_or_else(|e| panic!("{e:?}"))
        }
    };
    let cluster = env.cluster("orders-aurora").unwrap();
    // The secret's own username (moto writes `admin` into it, whatever the cluster's
    // MasterUsername) and password, to the writer endpoint, the database godwit opens, TLS.
    assert_eq!(t.config.get_user(), Some("admin"));
    assert_eq!(t.config.get_password(), Some(&b"P@55w0rd!"[..]));
    assert_eq!(t.config.get_dbname(), Some("orders"));
    assert!(
        matches!(t.config.get_hosts().first(),
            Some(tokio_postgres::config::Host::Tcp(h)) if Some(h.as_str()) == cluster.endpoint()),
        "{t:?}"
    );
    assert!(t.tls.is_some() && t.aurora, "{t:?}");
    assert!(!format!("{t:?}").contains("P@55w0rd"), "{t:?}");
    let read = env
        .relay
        .bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b.contains("\"SecretId\""))
        .count();
    assert!(read >= 1, "GetSecretValue went to Secrets Manager");
    // An instance has no such sign-in: godwit's login there is the operator's (docs/aws.md).
    assert!(env.rt.block_on(iam.master_target("orders-db")).is_none());
}

#[test]
fn requested_groups_and_encryption_override_the_sources() {
    let env = env();
    let (vpc, sg) = env.source();
    let other = env.group(&vpc, "orders-aurora-only");
    let (mut s, _c) = env.session();
    let cl = eval(
        &mut s,
        &format!(
            r#"rds::create_cluster("orders-aurora", "orders-db", #{{
                 engine_version: "15.5", security_groups: ["{other}"],
                 storage_encrypted: true, kms_key_id: "alias/orders" }})"#
        ),
    );
    assert_eq!(cl["engine_version"], "15.5", "the source's major works too");
    assert_eq!(cl["security_groups"], json!([other]));
    assert_eq!(cl["storage_encrypted"], true);
    assert_eq!(cl["iam_auth"], false, "off when not asked, as AWS");
    let m = env.cluster("orders-aurora").unwrap();
    let groups: Vec<_> = m
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(groups, [other.as_str()]);
    assert_ne!(other, sg);
    assert_eq!(m.storage_encrypted(), Some(true));
    assert_eq!(m.iam_database_authentication_enabled(), Some(false));
    let sent = env.relay.requests("CreateDBCluster");
    assert_eq!(sent.len(), 1);
    assert_eq!(param(&sent[0], "KmsKeyId"), Some("alias/orders"));
    assert_eq!(param(&sent[0], "StorageEncrypted"), Some("true"));
    assert_eq!(param(&sent[0], "MasterUserPassword"), None);
}

#[test]
fn refusals_come_before_anything_is_created() {
    let env = env();
    env.source();
    let (mut s, c) = env.session();

    // An older major than the source's 15.4.
    let err = eval_err(
        &mut s,
        r#"rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "14.9" })"#,
    );
    assert!(err.contains("Invalid"), "{err}");
    assert!(err.contains("the source's major or a newer one"), "{err}");
    // A version Aurora does not offer (moto would create it): the error lists those it does.
    let err = eval_err(
        &mut s,
        r#"rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "16.9" })"#,
    );
    assert!(err.contains("Invalid"), "{err}");
    assert!(err.contains("has no version 16.9"), "{err}");
    assert!(err.contains("15.4, 15.5, 16.1"), "{err}");
    // A `like` instance that does not exist.
    let err = eval_err(
        &mut s,
        r#"rds::create_cluster("orders-aurora", "no-such-db", #{ engine_version: "16.1" })"#,
    );
    assert!(err.contains("NotFound"), "{err}");
    assert!(err.contains("no-such-db"), "{err}");
    // A cluster parameter group that does not exist, or of another family (moto would accept
    // both).
    let err = eval_err(
        &mut s,
        r#"rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "16.1", parameter_group: "nope" })"#,
    );
    assert!(err.contains("NotFound"), "{err}");
    assert!(err.contains("cluster parameter group nope"), "{err}");
    env.rt.block_on(async {
        env.aws
            .rds
            .create_db_cluster_parameter_group()
            .db_cluster_parameter_group_name("orders-aurora15")
            .db_parameter_group_family("aurora-postgresql15")
            .description("orders")
            .send()
            .await
            .unwrap();
    });
    let err = eval_err(
        &mut s,
        r#"rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "16.1", parameter_group: "orders-aurora15" })"#,
    );
    assert!(err.contains("Invalid"), "{err}");
    assert!(err.contains("needs aurora-postgresql16"), "{err}");
    // The replica of the source under the id: not a standalone cluster, a Conflict.
    eval(
        &mut s,
        r#"rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" })"#,
    );
    let err = eval_err(
        &mut s,
        r#"rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" })"#,
    );
    assert!(err.contains("Conflict"), "{err}");
    assert!(err.contains("replicating from"), "{err}");

    // Only the replica was created.
    assert_eq!(calls(&c, "rds.CreateDBCluster"), 1);
    assert_eq!(env.relay.requests("CreateDBCluster").len(), 1);
    assert!(
        env.cluster("orders-aurora")
            .unwrap()
            .replication_source_identifier()
            .is_some()
    );
    // With the group of the right family, the same call goes through.
    env.rt.block_on(async {
        env.aws
            .rds
            .create_db_cluster_parameter_group()
            .db_cluster_parameter_group_name("orders-aurora16")
            .db_parameter_group_family("aurora-postgresql16")
            .description("orders")
            .send()
            .await
            .unwrap();
    });
    let cl = eval(
        &mut s,
        r#"rds::create_cluster("orders-logical", "orders-db", #{ engine_version: "16.1", parameter_group: "orders-aurora16" })"#,
    );
    assert_eq!(cl["parameter_group"], "orders-aurora16");
    let sent = env.relay.requests("CreateDBCluster");
    assert_eq!(
        param(&sent[1], "DBClusterParameterGroupName"),
        Some("orders-aurora16")
    );
}

#[test]
fn a_lost_answer_is_found_again_and_another_cluster_stays_a_conflict() {
    let env = env();
    env.source();
    let (mut s, c) = env.session();
    let cl = eval(&mut s, CREATE);

    // An earlier attempt created the cluster but its answer was lost, and the describe before
    // the create missed it: RDS answers DBClusterAlreadyExistsFault, and the cluster found is
    // the one asked for.
    env.moto
        .inject("DescribeDBClusters", 404, "DBClusterNotFoundFault", 1);
    env.moto
        .inject("CreateDBCluster", 400, "DBClusterAlreadyExistsFault", 1);
    let again = eval(&mut s, CREATE);
    assert_eq!(again["arn"], cl["arn"]);
    assert_eq!(env.moto.injected()["CreateDBCluster"], 1);

    // The same, under an id someone else's cluster holds: the fault stays a Conflict.
    env.moto
        .inject("DescribeDBClusters", 404, "DBClusterNotFoundFault", 1);
    env.moto
        .inject("CreateDBCluster", 400, "DBClusterAlreadyExistsFault", 1);
    let err = eval_err(
        &mut s,
        r#"rds::create_cluster("orders-aurora", "orders-db", #{ engine_version: "15.5" })"#,
    );
    assert!(err.contains("Conflict"), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(env.moto.injected()["CreateDBCluster"], 2);
    assert_eq!(calls(&c, "rds.CreateDBCluster"), 3);
    assert_eq!(
        env.cluster("orders-aurora").unwrap().engine_version(),
        Some("16.1")
    );
}
