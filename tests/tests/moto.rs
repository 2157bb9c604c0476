//! The aws world against moto on loopback: every primitive of `rds`, `ec2` and `cw` asserted on
//! what moto answers (read back through the SDK, not through godwit), the retry paths through
//! the launcher's fault injection, and the standard runbook as far as moto models it.
//!
//! One moto serves the whole binary (tests take turns: a mutex, and `POST /moto-api/reset`
//! before each). Its child process exits when this process does (the launcher watches its
//! stdin). The clock is virtual, so waits and backoffs cost no wall time; every AWS call is
//! real HTTP to moto. What moto cannot do is added by `tests/support/moto_launcher.py`
//! (docs/moto.md); what it cannot model at all (replication, PostgreSQL) is stubbed in the
//! runbook test, which says so.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use aws_sdk_cloudwatch::primitives::DateTime;
use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::session::Session;
use godwit_engine::transcript::{Collector, Event, Sink};
use godwit_engine::{Call, Clock, Runner, VirtualClock};
use godwit_stdlib::aws::world::AwsParts;
use godwit_stdlib::aws::{Aws, AwsSettings};
use godwit_stdlib::world::World;
use godwit_tests::moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};
use rhai::Dynamic;
use serde_json::{Value, json};

static MOTO: OnceLock<Moto> = OnceLock::new();
static TURN: Mutex<()> = Mutex::new(());

/// Start of the virtual clock: now, on a minute boundary (CloudWatch periods start there).
fn start_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now / 60) * 60 * 1000
}

/// One test's view: moto reset, SDK clients on it, a tokio runtime.
struct Env {
    _turn: MutexGuard<'static, ()>,
    moto: &'static Moto,
    aws: Arc<Aws>,
    rt: tokio::runtime::Runtime,
}

fn env_with(settings: Value) -> Env {
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let moto = MOTO.get_or_init(Moto::start);
    moto.reset();
    let mut s = json!({
        "region": REGION,
        "endpoint_url": moto.url,
        // Fast backoff: the clock is virtual, but keep the arithmetic small anyway.
        "retry_backoff": "100ms",
    });
    s.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    let settings = AwsSettings::from_json(s, "test").unwrap();
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
        aws,
        rt,
    }
}

fn env() -> Env {
    env_with(json!({}))
}

impl Env {
    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The aws world over this moto.
    fn world(&self) -> World {
        World::aws(self.aws.clone()).unwrap()
    }

    /// A runner over `world` (an aws world, maybe with areas swapped), on a virtual clock at
    /// [`start_ms`].
    fn runner_in(&self, mut world: World) -> (Runner, Collector, Arc<VirtualClock>) {
        let collector = Collector::new();
        let clock = Arc::new(VirtualClock::new(start_ms()));
        world.clock = clock.clone() as Arc<dyn Clock>;
        let mut runner = world.runner(Arc::new(MemoryStore::new()), self.rt.handle().clone());
        runner
            .sinks
            .push(Arc::new(collector.clone()) as Arc<dyn Sink>);
        (runner, collector, clock)
    }

    /// A runner over the aws world, on a virtual clock at [`start_ms`].
    fn runner(&self) -> (Runner, Collector, Arc<VirtualClock>) {
        self.runner_in(self.world())
    }

    /// A REPL-style session (no journal, mutations allowed) over the aws areas.
    fn session(&self) -> (Session, Collector) {
        let (runner, collector, _) = self.runner();
        let s = Session::new(&runner);
        s.set_read_only(false);
        (s, collector)
    }

    /// The source RDS for PostgreSQL instance `orders-db` in its own VPC, with an application
    /// security group and a custom parameter group. Returns the VPC id and the group id.
    fn source(&self) -> (String, String) {
        self.block(godwit_tests::moto::seed_source(&self.aws))
    }

    fn cluster(&self, id: &str) -> Option<aws_sdk_rds::types::DbCluster> {
        self.block(async {
            match self
                .aws
                .rds
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
            {
                Ok(o) => o.db_clusters().first().cloned(),
                Err(_) => None,
            }
        })
    }

    fn instance(&self, id: &str) -> Option<aws_sdk_rds::types::DbInstance> {
        self.block(async {
            match self
                .aws
                .rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
            {
                Ok(o) => o.db_instances().first().cloned(),
                Err(_) => None,
            }
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

/// The AWS API attempts in a transcript: (api, attempt, ok).
fn attempts(c: &Collector) -> Vec<(String, u64, bool)> {
    c.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Primitive {
                area, op, args, ok, ..
            } if area == "aws" => Some((op, args["attempt"].as_u64().unwrap_or(0), ok)),
            _ => None,
        })
        .collect()
}

fn calls(c: &Collector, api: &str) -> usize {
    attempts(c).iter().filter(|(a, _, _)| a == api).count()
}

#[test]
fn describe_and_create_replica_cluster_and_its_instance() {
    let env = env();
    let (vpc, sg) = env.source();
    let (mut s, c) = env.session();

    let src = eval(&mut s, r#"rds::describe_instance("orders-db")"#);
    assert_eq!(src["engine"], "postgres");
    assert_eq!(src["engine_version"], "15.4");
    assert_eq!(src["status"], "available");
    assert_eq!(src["backup_retention_days"], 7);
    assert_eq!(src["vpc_id"], vpc.as_str());
    assert_eq!(src["security_groups"], json!([sg]));
    assert_eq!(src["parameter_group"], "orders-pg15");
    let arn = src["arn"].as_str().unwrap().to_string();
    assert!(arn.starts_with("arn:aws:rds:eu-west-1:") && arn.ends_with(":db:orders-db"));

    let err = eval_err(&mut s, r#"rds::describe_cluster("orders-aurora")"#);
    assert!(err.contains("NotFound"), "{err}");

    let cl = eval(
        &mut s,
        r#"rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" })"#,
    );
    assert_eq!(cl["replication_source_identifier"], arn.as_str());
    assert_eq!(cl["engine"], "aurora-postgresql");
    assert_eq!(
        cl["security_groups"],
        json!([sg]),
        "the source's groups by default"
    );
    // moto's own record: the cluster replicates from the instance, in the source's subnets.
    let m = env.cluster("orders-aurora").unwrap();
    assert_eq!(m.replication_source_identifier(), Some(arn.as_str()));
    assert_eq!(m.db_subnet_group(), Some("orders-subnets"));
    let src = env.instance("orders-db").unwrap();
    assert_eq!(src.read_replica_db_cluster_identifiers(), ["orders-aurora"]);

    // Idempotent: the same step again returns the same cluster and creates nothing.
    let creates = calls(&c, "rds.CreateDBCluster");
    let again = eval(
        &mut s,
        r#"rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" })"#,
    );
    assert_eq!(again["arn"], cl["arn"]);
    assert_eq!(calls(&c, "rds.CreateDBCluster"), creates);
    // Another cluster for the same source: RDS allows one Aurora replica per source.
    let err = eval_err(
        &mut s,
        r#"rds::create_replica_cluster("orders-other", "orders-db", #{ engine_version: "15.4" })"#,
    );
    assert!(err.contains("already has an Aurora read replica"), "{err}");

    let i = eval(
        &mut s,
        r#"rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.large" })"#,
    );
    assert_eq!(i["cluster_id"], "orders-aurora");
    assert_eq!(i["engine"], "aurora-postgresql");
    let again = eval(
        &mut s,
        r#"rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.large" })"#,
    );
    assert_eq!(again["arn"], i["arn"]);
    assert_eq!(calls(&c, "rds.CreateDBInstance"), 1);
    let m = env.cluster("orders-aurora").unwrap();
    assert_eq!(
        m.db_cluster_members()[0].db_instance_identifier(),
        Some("orders-aurora-1")
    );

    // The launcher keeps a new replica `creating` for two reads: the wait polls through them.
    let done = eval(
        &mut s,
        r#"rds::wait_until_cluster_available("orders-aurora", #{ timeout: "2h", every: "1m" })"#,
    );
    assert_eq!(done["status"], "available");
    assert_eq!(done["members"], json!(["orders-aurora-1"]));
    assert!(calls(&c, "rds.DescribeDBClusters") >= 3);
}

#[test]
fn promotion_completes_only_when_the_source_identifier_is_gone() {
    let env = env();
    env.source();
    let (mut s, c) = env.session();
    eval(
        &mut s,
        r#"rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
           rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.large" });
           rds::wait_until_cluster_available("orders-aurora", #{ timeout: "2h" })"#,
    );
    let p = eval(&mut s, r#"rds::promote_cluster("orders-aurora")"#);
    assert!(p["replication_source_identifier"].is_string(), "{p}");
    // A second request while the first is under way is not an error (a re-run of the step).
    eval(&mut s, r#"rds::promote_cluster("orders-aurora")"#);
    let before = calls(&c, "rds.DescribeDBClusters");
    let first_poll = eval(&mut s, r#"rds::describe_cluster("orders-aurora")"#);
    assert!(
        first_poll["replication_source_identifier"].is_string(),
        "right after the request the cluster still replicates: {first_poll}"
    );
    let done = eval(
        &mut s,
        r#"rds::wait_until_cluster_promoted("orders-aurora", #{ timeout: "30m", every: "15s" })"#,
    );
    assert_eq!(done["status"], "available");
    assert_eq!(done["replication_source_identifier"], Value::Null);
    // moto (through the launcher) answered `available` with the source still set, then
    // `promoting`: a wait on status alone would have stopped at the first answer.
    assert!(
        calls(&c, "rds.DescribeDBClusters") - before >= 3,
        "the wait must poll past `available`+source and `promoting`"
    );
    assert_eq!(
        env.cluster("orders-aurora")
            .unwrap()
            .replication_source_identifier(),
        None
    );
    assert!(
        env.instance("orders-db")
            .unwrap()
            .read_replica_db_cluster_identifiers()
            .is_empty()
    );
    // Promoting a promoted cluster returns it.
    let again = eval(&mut s, r#"rds::promote_cluster("orders-aurora")"#);
    assert_eq!(again["replication_source_identifier"], Value::Null);
    assert_eq!(calls(&c, "rds.PromoteReadReplicaDBCluster"), 2);
}

#[test]
fn allow_connection_opens_egress_from_the_quarantine_and_ingress_to_the_other_group_once() {
    let env = env();
    let (vpc, _) = env.source();
    let aurora = env.block(async {
        env.aws
            .ec2
            .create_security_group()
            .group_name("orders-aurora")
            .description("the cluster's group")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string()
    });
    let (mut s, c) = env.session();
    let q = eval(
        &mut s,
        &format!(r#"ec2::ensure_quarantine_group("{vpc}", "godwit-quarantine")"#),
    );
    let qid = q["id"].as_str().unwrap().to_string();
    let opened = eval(
        &mut s,
        &format!(r#"ec2::allow_connection("{qid}", "{aurora}", 5433)"#),
    );
    assert_eq!(opened["from"]["id"], qid.as_str());
    assert_eq!(
        opened["from"]["egress"],
        json!([format!("tcp/5433 to {aurora}")]),
        "egress rules read `to`"
    );
    assert_eq!(opened["from"]["ingress"], json!([]));
    assert!(
        opened["to"]["ingress"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("tcp/5433 from {qid}"))),
        "{opened}"
    );
    assert_eq!(calls(&c, "ec2.AuthorizeSecurityGroupEgress"), 1);
    assert_eq!(calls(&c, "ec2.AuthorizeSecurityGroupIngress"), 1);
    // What EC2 holds, read through the SDK: one group pair each way, on one port.
    let groups = env.block(async {
        env.aws
            .ec2
            .describe_security_groups()
            .group_ids(&qid)
            .group_ids(&aurora)
            .send()
            .await
            .unwrap()
    });
    let by_id = |id: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| g.group_id() == Some(id))
            .unwrap()
            .clone()
    };
    let (mq, ma) = (by_id(&qid), by_id(&aurora));
    let pair = |p: &aws_sdk_ec2::types::IpPermission| {
        (
            p.ip_protocol().map(str::to_string),
            p.from_port(),
            p.to_port(),
            p.user_id_group_pairs()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        mq.ip_permissions_egress()
            .iter()
            .map(pair)
            .collect::<Vec<_>>(),
        [(
            Some("tcp".into()),
            Some(5433),
            Some(5433),
            vec![aurora.clone()]
        )]
    );
    assert!(mq.ip_permissions().is_empty());
    assert!(
        ma.ip_permissions().iter().map(pair).any(|p| p
            == (
                Some("tcp".into()),
                Some(5433),
                Some(5433),
                vec![qid.clone()]
            )),
        "{ma:?}"
    );

    // Again: nothing to add, no call; the same groups.
    let again = eval(
        &mut s,
        &format!(r#"ec2::allow_connection("{qid}", "{aurora}", 5433)"#),
    );
    assert_eq!(again, opened);
    assert_eq!(calls(&c, "ec2.AuthorizeSecurityGroupEgress"), 1);
    assert_eq!(calls(&c, "ec2.AuthorizeSecurityGroupIngress"), 1);
    // A resumed or later run re-ensures the quarantine: the reverse path's egress is godwit's.
    let q2 = eval(
        &mut s,
        &format!(r#"ec2::ensure_quarantine_group("{vpc}", "godwit-quarantine")"#),
    );
    assert_eq!(q2, opened["from"]);
    assert_eq!(
        calls(&c, "ec2.CreateSecurityGroup"),
        1,
        "the first ensure's only"
    );
    let err = eval_err(
        &mut s,
        &format!(r#"ec2::allow_connection("{qid}", "sg-0000000000nope", 5433)"#),
    );
    assert!(err.contains("InvalidGroup.NotFound"), "{err}");
}

#[test]
fn quarantine_security_groups_and_a_reboot_that_happens_once_per_step() {
    let env = env();
    let (vpc, sg) = env.source();
    let (mut s, c) = env.session();
    let groups = eval(
        &mut s,
        &format!(r#"ec2::describe_security_groups("{vpc}")"#),
    );
    let app = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == sg.as_str())
        .unwrap();
    assert_eq!(app["ingress"], json!(["tcp/5433 from 10.0.0.0/8"]));

    let q = eval(
        &mut s,
        &format!(r#"ec2::ensure_quarantine_group("{vpc}", "godwit-quarantine")"#),
    );
    assert_eq!(q["ingress"], json!([]));
    assert_eq!(
        q["egress"],
        json!([]),
        "EC2's default allow-all egress is revoked"
    );
    let qid = q["id"].as_str().unwrap().to_string();
    let again = eval(
        &mut s,
        &format!(r#"ec2::ensure_quarantine_group("{vpc}", "godwit-quarantine")"#),
    );
    assert_eq!(again["id"], qid.as_str());
    assert_eq!(calls(&c, "ec2.CreateSecurityGroup"), 1);
    let m = env.block(async {
        env.aws
            .ec2
            .describe_security_groups()
            .group_ids(&qid)
            .send()
            .await
            .unwrap()
    });
    let m = &m.security_groups()[0];
    assert!(m.ip_permissions().is_empty() && m.ip_permissions_egress().is_empty());
    // A group of that name with rules is someone else's: refused, not changed.
    let err = eval_err(
        &mut s,
        &format!(r#"ec2::ensure_quarantine_group("{vpc}", "orders-app")"#),
    );
    assert!(err.contains("rules a quarantine must not have"), "{err}");

    let i = eval(
        &mut s,
        &format!(r#"rds::set_security_groups("orders-db", ["{qid}"])"#),
    );
    assert_eq!(i["security_groups"], json!([qid]));
    let m = env.instance("orders-db").unwrap();
    let ids: Vec<_> = m
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(ids, [qid.as_str()]);
    let modifies = calls(&c, "rds.ModifyDBInstance");
    eval(
        &mut s,
        &format!(r#"rds::set_security_groups("orders-db", ["{qid}"])"#),
    );
    assert_eq!(
        calls(&c, "rds.ModifyDBInstance"),
        modifies,
        "already so: no call"
    );

    // Within one step the reboot's token is the same: a re-run (here: a second call) finds the
    // tag and does not reboot again. (Interactive reboots are distinct on purpose.)
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("reboot.rhai");
    std::fs::write(
        &book,
        r#"step("reboot-source", || { rds::reboot_instance("orders-db"); rds::reboot_instance("orders-db").id })"#,
    )
    .unwrap();
    let (runner, rc, _) = env.runner();
    let report = runner
        .start(godwit_engine::StartRequest {
            runbook: book,
            cluster: "orders-db".into(),
            params: serde_json::Map::new(),
            run_id: Some("r1".into()),
        })
        .unwrap();
    assert!(format!("{report:?}").contains("Succeeded"), "{report:?}");
    assert_eq!(calls(&rc, "rds.RebootDBInstance"), 1);
    assert_eq!(calls(&c, "rds.RebootDBInstance"), 0);
    let tags = env.block(async {
        env.aws
            .rds
            .list_tags_for_resource()
            .resource_name(m.db_instance_arn().unwrap())
            .send()
            .await
            .unwrap()
    });
    assert!(
        tags.tag_list()
            .iter()
            .any(|t| t.key() == Some(godwit_stdlib::rds::aws::REBOOT_TAG))
    );
}

/// Issue 24: the owning team's clone through the SDK — `RestoreDBClusterToPointInTime` with the
/// copy-on-write restore type, in the source cluster's groups and subnets, IAM sign-in, not a
/// replica; idempotent; a cluster without an instance is refused before AWS is asked.
#[test]
fn a_clone_is_a_copy_on_write_restore_in_the_source_clusters_groups() {
    let env = env();
    let (_vpc, sg) = env.source();
    let (mut s, c) = env.session();
    eval(
        &mut s,
        r#"rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });"#,
    );
    // No instance yet: Aurora cannot clone it, and godwit says so without calling AWS.
    let err = eval_err(
        &mut s,
        r#"rds::clone_cluster("orders-aurora-clone", "orders-aurora", #{ iam_auth: true })"#,
    );
    assert!(err.contains("has no DB instance"), "{err}");
    assert_eq!(calls(&c, "rds.RestoreDBClusterToPointInTime"), 0);
    eval(
        &mut s,
        r#"rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.large" });
           rds::wait_until_cluster_available("orders-aurora", #{ timeout: "2h" })"#,
    );
    let cl = eval(
        &mut s,
        r#"rds::clone_cluster("orders-aurora-clone", "orders-aurora", #{ iam_auth: true })"#,
    );
    assert_eq!(cl["id"], "orders-aurora-clone");
    // (moto copies the source cluster's ReplicationSourceIdentifier into the clone and ignores
    // the parameter group asked for; AWS documents neither way: docs/aws.md, "The owner's
    // clone". Not asserted here.)
    assert_eq!(cl["security_groups"], json!([sg]), "{cl}");
    let m = env.cluster("orders-aurora-clone").unwrap();
    assert_eq!(m.db_subnet_group(), Some("orders-subnets"));
    assert_eq!(m.iam_database_authentication_enabled(), Some(true));
    assert_eq!(calls(&c, "rds.RestoreDBClusterToPointInTime"), 1);
    let again = eval(
        &mut s,
        r#"rds::clone_cluster("orders-aurora-clone", "orders-aurora", #{ iam_auth: true })"#,
    );
    assert_eq!(again["id"], "orders-aurora-clone");
    assert_eq!(
        calls(&c, "rds.RestoreDBClusterToPointInTime"),
        1,
        "idempotent"
    );
    let err = eval_err(&mut s, r#"rds::clone_cluster("x-clone", "orders-db", #{})"#);
    assert!(
        err.contains("NotFound") || err.contains("not an Aurora cluster"),
        "{err}"
    );
}

#[test]
fn delete_the_replica_instance_then_the_cluster() {
    let env = env();
    env.source();
    let (mut s, _c) = env.session();
    eval(
        &mut s,
        r#"rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
           rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.large" });"#,
    );
    let err = eval_err(&mut s, r#"rds::delete_cluster("orders-aurora")"#);
    assert!(err.contains("still has instances"), "{err}");
    eval(&mut s, r#"rds::delete_instance("orders-aurora-1")"#);
    assert!(
        env.instance("orders-aurora-1").is_none(),
        "moto deletes at once"
    );
    eval(&mut s, r#"rds::delete_cluster("orders-aurora")"#);
    let r = eval(
        &mut s,
        r#"rds::wait_until_cluster_deleted("orders-aurora", #{ timeout: "1h" })"#,
    );
    assert_eq!(r["deleted"], true);
    assert!(env.cluster("orders-aurora").is_none());
    assert!(
        env.instance("orders-db")
            .unwrap()
            .read_replica_db_cluster_identifiers()
            .is_empty()
    );
    let err = eval_err(&mut s, r#"rds::delete_instance("orders-aurora-1")"#);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn parameter_groups_engine_versions_and_their_defaults() {
    let env = env();
    env.source();
    let (mut s, c) = env.session();
    let user = eval(
        &mut s,
        r#"rds::describe_parameters("orders-pg15").filter(|p| p.source == "user")"#,
    );
    assert_eq!(
        user,
        json!([
            { "name": "max_wal_size", "value": "4096", "source": "user" },
            { "name": "work_mem", "value": "8192", "source": "user" },
        ])
    );
    let defaults = eval(&mut s, r#"rds::describe_parameters("default.postgres15")"#);
    assert!(
        defaults
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "work_mem" && p["source"] == "engine-default")
    );

    let versions = eval(&mut s, r#"rds::list_engine_versions("aurora-postgresql")"#);
    let v154 = versions
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == "15.4")
        .unwrap();
    assert_eq!(v154["parameter_group_family"], "aurora-postgresql15");
    assert_eq!(
        (v154["major"].as_i64(), v154["minor"].as_i64()),
        (Some(15), Some(4))
    );
    assert!(
        v154["supported_extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("pg_stat_statements"))
    );

    let req = r#"rds::create_parameter_groups(#{
        cluster_group: "orders-aurora-cluster", instance_group: "orders-aurora-instance",
        family: "aurora-postgresql15",
        parameters: #{ work_mem: "8192", max_wal_size: "4096" },
        cluster_parameters: #{ "rds.logical_replication": "1" },
    })"#;
    let r = eval(&mut s, req);
    assert_eq!(r["applied"], json!(["rds.logical_replication", "work_mem"]));
    assert_eq!(r["unsupported"], json!(["max_wal_size"]));
    let cluster_params = eval(
        &mut s,
        r#"rds::describe_parameters("orders-aurora-cluster").filter(|p| p.source == "user")"#,
    );
    assert_eq!(
        cluster_params,
        json!([{ "name": "rds.logical_replication", "value": "1", "source": "user" }])
    );
    let instance_params = eval(
        &mut s,
        r#"rds::describe_parameters("orders-aurora-instance").filter(|p| p.source == "user")"#,
    );
    assert_eq!(
        instance_params,
        json!([{ "name": "work_mem", "value": "8192", "source": "user" }])
    );
    // Again (a step re-run): no new group, same answer.
    let creates = calls(&c, "rds.CreateDBClusterParameterGroup");
    assert_eq!(eval(&mut s, req), r);
    assert_eq!(calls(&c, "rds.CreateDBClusterParameterGroup"), creates);
    let err = eval_err(
        &mut s,
        r#"rds::create_parameter_groups(#{ cluster_group: "orders-pg15", instance_group: "orders-pg15",
            family: "aurora-postgresql15", parameters: #{}, cluster_parameters: #{} })"#,
    );
    assert!(err.contains("exists with family postgres15"), "{err}");
}

#[test]
fn metrics_put_through_the_sdk_come_back_as_a_series_with_gaps() {
    let env = env();
    let t0 = start_ms() / 1000 - 3600;
    // Minutes 0..10 with minute 5 missing: a gap must stay a gap, never a 0.
    env.block(async {
        let mut req = env.aws.cw.put_metric_data().namespace("AWS/RDS");
        for m in (0..10).filter(|m| *m != 5) {
            req = req.metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name("OldestReplicationSlotLag")
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("DBInstanceIdentifier")
                            .value("orders-db")
                            .build(),
                    )
                    .timestamp(DateTime::from_secs(t0 + m * 60 + 10))
                    .value((m * 1000) as f64)
                    .build(),
            );
        }
        req.send().await.unwrap();
    });
    let (mut s, _c) = env.session();
    let series = eval(
        &mut s,
        &format!(
            r#"cw::metric_series(#{{ name: "OldestReplicationSlotLag",
                dimensions: #{{ DBInstanceIdentifier: "orders-db" }},
                since: {t0}, "until": {} }})"#,
            t0 + 600
        ),
    );
    let want: Vec<Value> = (0..10)
        .filter(|m| *m != 5)
        .map(|m| json!({ "t": t0 + m * 60, "v": (m * 1000) as f64 }))
        .collect();
    assert_eq!(series, Value::Array(want));
    // A window that does not start on the minute: CloudWatch rounds StartTime down to the
    // minute (the launcher too), so periods start on the minute and the one holding `since`
    // starts before it — the aws world answers only periods that start inside the window.
    let unaligned = eval(
        &mut s,
        &format!(
            r#"cw::metric_series(#{{ name: "OldestReplicationSlotLag",
                dimensions: #{{ DBInstanceIdentifier: "orders-db" }},
                since: {}, "until": {} }})"#,
            t0 + 30,
            t0 + 240
        ),
    );
    assert_eq!(
        unaligned,
        json!([
            { "t": t0 + 60, "v": 1000.0 },
            { "t": t0 + 120, "v": 2000.0 },
            { "t": t0 + 180, "v": 3000.0 },
        ])
    );
    let other = eval(
        &mut s,
        &format!(
            r#"cw::metric_series(#{{ name: "OldestReplicationSlotLag",
                dimensions: #{{ DBInstanceIdentifier: "other-db" }}, since: {t0}, "until": {} }})"#,
            t0 + 600
        ),
    );
    assert_eq!(other, json!([]));
}

#[test]
fn throttling_is_retried_with_backoff_and_every_attempt_is_in_the_transcript() {
    let env = env();
    env.source();
    let (mut s, c) = env.session();
    env.moto.inject("DescribeDBInstances", 400, "Throttling", 2);
    let src = eval(&mut s, r#"rds::describe_instance("orders-db")"#);
    assert_eq!(src["id"], "orders-db");
    assert_eq!(env.moto.injected()["DescribeDBInstances"], 2);
    assert_eq!(
        attempts(&c),
        vec![
            ("rds.DescribeDBInstances".to_string(), 1, false),
            ("rds.DescribeDBInstances".to_string(), 2, false),
            ("rds.DescribeDBInstances".to_string(), 3, true),
        ]
    );
    let first = c
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Primitive {
                area,
                ok: false,
                result,
                ..
            } if area == "aws" => Some(result),
            _ => None,
        })
        .unwrap();
    assert_eq!(first["kind"], "Throttled");
    assert!(first["message"].as_str().unwrap().contains("Throttling"));

    // CloudWatch (CBOR) throttles with its own code.
    env.moto
        .inject("GetMetricData", 400, "ThrottlingException", 1);
    eval(
        &mut s,
        r#"cw::metric_series(#{ name: "DatabaseConnections", dimensions: #{ DBInstanceIdentifier: "orders-db" } })"#,
    );
    assert_eq!(env.moto.injected()["GetMetricData"], 1);
    assert_eq!(calls(&c, "cloudwatch.GetMetricData"), 2);
}

#[test]
fn server_errors_are_retried_until_the_attempts_run_out() {
    let env = env_with(json!({ "max_attempts": 3 }));
    env.source();
    let (mut s, c) = env.session();
    // EC2 answers 503 twice, then works.
    env.moto
        .inject("DescribeSecurityGroups", 503, "Unavailable", 2);
    eval(&mut s, r#"ec2::describe_security_groups("vpc-none")"#);
    assert_eq!(calls(&c, "ec2.DescribeSecurityGroups"), 3);
    // RDS answers 500 more often than the attempts allow (twice over): a retryable error
    // that says so.
    env.moto
        .inject("DescribeDBClusters", 500, "InternalFailure", 6);
    let err = eval_err(&mut s, r#"rds::describe_cluster("orders-aurora")"#);
    assert!(err.contains("after 3 attempts"), "{err}");
    assert!(err.contains("InternalFailure"), "{err}");
    assert_eq!(env.moto.injected()["DescribeDBClusters"], 3);
    let v = eval(
        &mut s,
        r#"let r = #{}; try { rds::describe_cluster("orders-aurora"); } catch (e) { r = e; } r"#,
    );
    assert_eq!(env.moto.injected()["DescribeDBClusters"], 6);
    assert_eq!(v["kind"], "Internal");
    assert_eq!(
        v["retryable"], true,
        "the engine's step retry may try again"
    );
    // A client error is not retried.
    env.moto
        .inject("DescribeDBInstances", 400, "InvalidParameterValue", 1);
    let before = calls(&c, "rds.DescribeDBInstances");
    let v = eval(
        &mut s,
        r#"let r = #{}; try { rds::describe_instance("orders-db"); } catch (e) { r = e; } r"#,
    );
    assert_eq!(v["kind"], "Invalid");
    assert_eq!(calls(&c, "rds.DescribeDBInstances") - before, 1);
}

#[test]
fn route_and_cdc_without_a_backend_fail_clearly_in_the_aws_world() {
    let env = env();
    let world = env.world();
    assert_eq!(world.name, "aws");
    let runner = world.runner(Arc::new(MemoryStore::new()), env.rt.handle().clone());
    let mut s = Session::new(&runner);
    let e = eval(
        &mut s,
        r#"let r = #{}; try { route::describe_route("orders-db"); } catch (e) { r = e; } r"#,
    );
    assert_eq!(e["kind"], "Invalid");
    assert_eq!(e["retryable"], false);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no envoy_control_plane is configured"),
        "{e}"
    );
    let e = eval(
        &mut s,
        r#"let r = #{}; try { cdc::list_consumers(); } catch (e) { r = e; } r"#,
    );
    assert!(
        e["message"].as_str().unwrap().contains("no CDC backend"),
        "{e}"
    );
    assert!(
        e["hint"].as_str().unwrap().contains("cdc = \"none\""),
        "{e}"
    );

    // Declared: no consumers to pause; an unreachable control plane is named, and retryable.
    drop(s);
    drop(runner);
    drop(env); // one moto, one test at a time: release this test's turn first
    let env2 = env_with(json!({ "envoy_control_plane": "127.0.0.1:9", "cdc": "none" }));
    let world = env2.world();
    let runner = world.runner(Arc::new(MemoryStore::new()), env2.rt.handle().clone());
    let mut s = Session::new(&runner);
    assert_eq!(eval(&mut s, "cdc::list_consumers()"), json!([]));
    let e = eval(
        &mut s,
        r#"let r = #{}; try { route::describe_route("orders-db"); } catch (e) { r = e; } r"#,
    );
    assert_eq!(e["retryable"], true, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("127.0.0.1:9"),
        "{e}"
    );
}

/// An IAM auth token is a presigned `rds-db:connect` URL for the user at the endpoint.
#[test]
fn iam_auth_tokens_are_presigned_connect_urls_for_the_db_user() {
    let env = env_with(json!({ "db_user": "godwit", "security_group": "sg-0godwit" }));
    let iam = godwit_stdlib::aws::iam::IamConnector::new(env.aws.clone());
    let host = "orders-db.abcdefghijkl.eu-west-1.rds.amazonaws.com";
    let token = env.block(iam.token(host, 5432, "godwit")).unwrap();
    assert!(
        token.starts_with(&format!("{host}:5432/?")),
        "host:port/?query, no scheme: {token}"
    );
    for part in [
        "Action=connect",
        "DBUser=godwit",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        &format!("X-Amz-Credential={ACCESS_KEY}%2F"),
        "%2Feu-west-1%2Frds-db%2Faws4_request",
        "X-Amz-Expires=900",
        "X-Amz-Signature=",
    ] {
        assert!(token.contains(part), "{part} missing from {token}");
    }
    assert!(!token.contains(SECRET_KEY));
}

/// Records every token the IAM connector hands out, so the test can look for them.
struct Recording {
    inner: godwit_stdlib::aws::iam::IamConnector,
    tokens: Arc<Mutex<Vec<String>>>,
}

impl godwit_stdlib::pg::live::Connector for Recording {
    fn access(&self, db: &str) -> godwit_stdlib::pg::Access {
        self.inner.access(db)
    }

    fn target<'a>(
        &'a self,
        db: &'a str,
    ) -> godwit_stdlib::pg::live::BoxFuture<
        'a,
        Result<godwit_stdlib::pg::live::Target, godwit_engine::PrimitiveError>,
    > {
        Box::pin(async move {
            let t = self.inner.target(db).await?;
            let pw = t.config.get_password().expect("an IAM token as password");
            self.tokens
                .lock()
                .unwrap()
                .push(String::from_utf8(pw.to_vec()).unwrap());
            Ok(t)
        })
    }
}

/// A throwaway CA certificate (the connector needs a bundle; no server presents it here).
fn test_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let (key, cert) = (dir.join("ca.key"), dir.join("ca.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=godwit test CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (install: apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cert
}

/// A run whose `pg` calls make IAM tokens (and fail to connect: moto's endpoints resolve
/// nowhere): no token appears in the transcript, the journal, the run's files or the report.
#[test]
fn iam_tokens_never_reach_a_transcript_journal_or_report() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca(dir.path());
    let env =
        env_with(json!({ "db_user": "godwit", "ca_bundle": ca, "security_group": "sg-0godwit" }));
    env.source();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let recording = Arc::new(Recording {
        inner: godwit_stdlib::aws::iam::IamConnector::new(env.aws.clone()),
        tokens: tokens.clone(),
    });
    let world = World::aws_with(
        env.aws.clone(),
        AwsParts {
            connector: recording,
            route: None,
        },
    )
    .unwrap();
    let (mut runner, collector, _) = env.runner_in(world);
    let state = dir.path().join("state");
    runner.store = Arc::new(godwit_engine::journal::file::FileStore::new(&state));
    let book = dir.path().join("pg.rhai");
    std::fs::write(
        &book,
        r#"step("read-lsn", #{ retry: #{ attempts: 3, backoff: "1s" } }, || pg::current_lsn("orders-db"))"#,
    )
    .unwrap();
    let report = runner.start(godwit_engine::StartRequest {
        runbook: book,
        cluster: "orders-db".into(),
        params: serde_json::Map::new(),
        run_id: Some("iam-run".into()),
    });
    let tokens = tokens.lock().unwrap().clone();
    assert!(
        tokens.len() >= 3,
        "each attempt made a fresh token: {}",
        tokens.len()
    );
    // Everything the run produced: its files, its transcript events, its report.
    let mut haystacks = vec![format!("{report:?}")];
    haystacks.extend(
        collector
            .lines()
            .iter()
            .map(|l| serde_json::to_string(l).unwrap()),
    );
    let mut files = 0;
    let mut stack = vec![state.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                haystacks.push(String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into());
            }
        }
    }
    assert!(files >= 2, "journal and transcript written");
    assert!(
        haystacks.iter().any(|h| h.contains("read-lsn")),
        "the haystacks are the run's"
    );
    for h in &haystacks {
        for t in &tokens {
            assert!(!h.contains(t.as_str()), "token leaked into: {h}");
        }
        assert!(
            !h.contains("X-Amz-Signature"),
            "token part leaked into: {h}"
        );
    }
}

/// What moto cannot be: PostgreSQL. A scripted source and caught-up replica for the standard
/// runbook — application sessions until the source's reboot (the fence), LSNs with the replica
/// already past the fence, 64 MiB segments as on RDS.
struct ScriptedPg {
    rebooted: Arc<std::sync::atomic::AtomicBool>,
    /// godwit's own security group (a real group in moto's VPC: the quarantine admits it).
    godwit_group: String,
}

impl godwit_stdlib::pg::Pg for ScriptedPg {
    fn access(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<godwit_stdlib::pg::Access, godwit_engine::PrimitiveError> {
        Ok(godwit_stdlib::pg::Access {
            available: true,
            how: "scripted (moto has no PostgreSQL)".into(),
            security_group: Some(self.godwit_group.clone()),
        })
    }
    /// The replica's walsender on the source, already past the fence (its slot appears once
    /// the replica exists, as on RDS).
    fn replication_connections(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::ReplicationConnection>, godwit_engine::PrimitiveError> {
        Ok(vec![godwit_stdlib::pg::ReplicationConnection {
            pid: 77,
            application_name: "aurora".into(),
            client_addr: None,
            state: "streaming".into(),
            slot_name: Some("rds_replica_slot".into()),
            sent_lsn_bytes: Some(0x500_0000),
            write_lsn_bytes: Some(0x500_0000),
            flush_lsn_bytes: Some(0x500_0000),
            replay_lsn_bytes: Some(0x500_0000),
            replay_lsn: Some("0/5000000".into()),
        }])
    }
    fn last_checkpoint(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<godwit_stdlib::pg::Checkpoint, godwit_engine::PrimitiveError> {
        Ok(godwit_stdlib::pg::Checkpoint {
            checkpoint_lsn: "0/4F00000".into(),
            checkpoint_lsn_bytes: 0x4F0_0000,
            redo_lsn_bytes: 0x4F0_0000,
            time: start_ms() / 1000,
            shutdown: self.rebooted.load(std::sync::atomic::Ordering::SeqCst),
        })
    }
    fn table_hashes(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::TableHash>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn installed_extensions(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::Extension>, godwit_engine::PrimitiveError> {
        Ok(vec![godwit_stdlib::pg::Extension {
            name: "plpgsql".into(),
            version: "1.0".into(),
        }])
    }
    fn settings(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        names: &[String],
    ) -> Result<Vec<godwit_stdlib::pg::Setting>, godwit_engine::PrimitiveError> {
        Ok([("wal_segment_size", "67108864"), ("wal_level", "logical")]
            .into_iter()
            .filter(|(n, _)| names.is_empty() || names.iter().any(|w| w == n))
            .map(|(n, v)| godwit_stdlib::pg::Setting {
                name: n.into(),
                setting: v.into(),
            })
            .collect())
    }
    fn table_stats(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::TableStats>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn unlogged_tables(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<String>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn replication_slots(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::SlotInfo>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn current_lsn(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<godwit_stdlib::pg::Lsn, godwit_engine::PrimitiveError> {
        Ok(godwit_stdlib::pg::Lsn {
            lsn: "0/5000000".into(),
            lsn_bytes: 0x500_0000,
        })
    }
    fn replay_lsn(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<godwit_stdlib::pg::Lsn, godwit_engine::PrimitiveError> {
        self.current_lsn(cx, db)
    }
    fn application_backends(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::Backend>, godwit_engine::PrimitiveError> {
        if self.rebooted.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        Ok(vec![godwit_stdlib::pg::Backend {
            pid: 4242,
            role: "orders_app".into(),
            state: "idle".into(),
            backend_start: start_ms() / 1000 - 600,
            xact_start: None,
            terminating: false,
        }])
    }
    fn block_logins(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, godwit_engine::PrimitiveError> {
        Ok(roles.to_vec())
    }
    fn unblock_logins(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        roles: &[String],
    ) -> Result<Vec<String>, godwit_engine::PrimitiveError> {
        Ok(roles.to_vec())
    }
    fn terminate_backends(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        pids: &[i64],
    ) -> Result<Vec<i64>, godwit_engine::PrimitiveError> {
        Ok(pids.to_vec())
    }
    fn sequences(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::Sequence>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn advance_sequences(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        to: &[godwit_stdlib::pg::Sequence],
    ) -> Result<Vec<godwit_stdlib::pg::Sequence>, godwit_engine::PrimitiveError> {
        Ok(to.to_vec())
    }
    fn settled_lsn(
        &self,
        cx: &Call<'_>,
        db: &str,
    ) -> Result<godwit_stdlib::pg::Lsn, godwit_engine::PrimitiveError> {
        self.current_lsn(cx, db)
    }
    fn login_roles(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<String>, godwit_engine::PrimitiveError> {
        Ok(vec!["orders_app".into()])
    }
    fn roles_without_iam(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<String>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn table_definitions(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::TableDefinition>, godwit_engine::PrimitiveError> {
        Ok(vec![godwit_stdlib::pg::TableDefinition {
            table: "public.orders".into(),
            columns: "id bigint, note text".into(),
        }])
    }
    fn unreplicable_tables(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::UnreplicableTable>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn large_objects(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::LargeObjects>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn create_publication(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        _name: &str,
    ) -> Result<Vec<String>, godwit_engine::PrimitiveError> {
        Ok(vec!["public.orders".into()])
    }
    fn drop_publication(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        _name: &str,
    ) -> Result<bool, godwit_engine::PrimitiveError> {
        Ok(true)
    }
    /// Aurora's new slot, past the source's last position.
    fn create_logical_slot(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        _name: &str,
    ) -> Result<godwit_stdlib::pg::Lsn, godwit_engine::PrimitiveError> {
        Ok(godwit_stdlib::pg::Lsn::at(0x600_0000))
    }
    fn drop_replication_slot(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        _name: &str,
    ) -> Result<bool, godwit_engine::PrimitiveError> {
        Ok(true)
    }
    fn subscribe(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        name: &str,
        to: &godwit_stdlib::pg::SubscribeTo,
    ) -> Result<godwit_stdlib::pg::Subscription, godwit_engine::PrimitiveError> {
        Ok(scripted_subscription(name, &to.publication, &to.slot))
    }
    fn refresh_subscription(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        name: &str,
        _from: &str,
    ) -> Result<godwit_stdlib::pg::Subscription, godwit_engine::PrimitiveError> {
        Ok(scripted_subscription(name, name, name))
    }
    fn subscriptions(
        &self,
        _cx: &Call<'_>,
        _db: &str,
    ) -> Result<Vec<godwit_stdlib::pg::Subscription>, godwit_engine::PrimitiveError> {
        Ok(Vec::new())
    }
    fn copy_schema(
        &self,
        _cx: &Call<'_>,
        from: &str,
        to: &str,
    ) -> Result<godwit_stdlib::pg::SchemaCopy, godwit_engine::PrimitiveError> {
        Ok(godwit_stdlib::pg::SchemaCopy {
            from: from.into(),
            to: to.into(),
            roles: vec!["orders_app".into()],
            tables: vec!["public.orders".into()],
            sequences: 0,
            how: "scripted".into(),
        })
    }
    fn subscription_tables(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        _name: &str,
    ) -> Result<Vec<godwit_stdlib::pg::SubscriptionTable>, godwit_engine::PrimitiveError> {
        Ok(vec![godwit_stdlib::pg::SubscriptionTable {
            table: "public.orders".into(),
            state: "ready".into(),
            copied_bytes: None,
            error: None,
        }])
    }
    fn drop_subscription(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        _name: &str,
    ) -> Result<bool, godwit_engine::PrimitiveError> {
        Ok(true)
    }
    fn set_subscription_commit(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        name: &str,
        mode: &str,
    ) -> Result<godwit_stdlib::pg::SubscriptionCommit, godwit_engine::PrimitiveError> {
        Ok(godwit_stdlib::pg::SubscriptionCommit {
            name: name.into(),
            before: "off".into(),
            after: mode.into(),
        })
    }

    fn drop_subscription_from(
        &self,
        _cx: &Call<'_>,
        _db: &str,
        _name: &str,
        _publisher: &str,
    ) -> Result<godwit_stdlib::pg::SubscriptionDropped, godwit_engine::PrimitiveError> {
        Ok(godwit_stdlib::pg::SubscriptionDropped {
            dropped: true,
            sync_slots_dropped: Vec::new(),
        })
    }
}

/// The reverse subscription as the scripted source reports it: streaming from the start.
fn scripted_subscription(
    name: &str,
    publication: &str,
    slot: &str,
) -> godwit_stdlib::pg::Subscription {
    godwit_stdlib::pg::Subscription {
        name: name.into(),
        publications: vec![publication.into()],
        slot_name: Some(slot.into()),
        enabled: true,
        worker_pid: Some(78),
        received_lsn_bytes: Some(0x600_0000),
        latest_end_lsn_bytes: Some(0x600_0000),
        apply_errors: 0,
    }
}

/// Marks the source rebooted once the runbook's `reboot-source` step completed.
struct RebootSeen(Arc<std::sync::atomic::AtomicBool>);

impl Sink for RebootSeen {
    fn line(&self, line: &godwit_engine::transcript::Line) {
        if let Event::StepCompleted { name, .. } = &line.event
            && name == "reboot-source"
        {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// `godwit cw export --world aws` against moto, as an operator runs it: the series
/// `PutMetricData` stored come back in the file, a metric nobody published is listed as missing,
/// and an instance without WAL datapoints is refused naming the metric and the window.
#[test]
fn cw_export_reads_what_put_metric_data_stored() {
    let env = env();
    env.source();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders-db.json");
    let export = |cluster: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_godwit-toy"))
            .args([
                "cw",
                "export",
                "--cluster",
                cluster,
                "--world",
                "aws",
                "--region",
                REGION,
            ])
            .args([
                "--endpoint-url",
                env.moto.url.as_str(),
                "--since",
                "2h",
                "--out",
            ])
            .arg(&out)
            .env("GODWIT_STATE_DIR", dir.path().join("state"))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // Nothing published yet: refused, naming the metric and the window.
    let (code, stdout, stderr) = export("orders-db");
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "no datapoints of TransactionLogsGeneration (DBInstanceIdentifier=orders-db)"
        ) && stderr.contains("between "),
        "{stderr}"
    );
    let (code, _, stderr) = export("nope-db");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nope-db"), "{stderr}");

    seed_healthy_metrics(&env);
    let (code, stdout, stderr) = export("orders-db");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("TransactionLogsGeneration") && stderr.contains("datapoints"),
        "progress: {stderr}"
    );
    let rec = godwit_stdlib::cw::recording::Recording::load(&out).unwrap();
    assert_eq!(
        (rec.cluster.as_str(), rec.world.as_str(), rec.period),
        ("orders-db", "aws", 60)
    );
    assert_eq!(rec.region.as_deref(), Some(REGION));
    let wal = rec.source_metric("TransactionLogsGeneration").unwrap();
    // The hour before the clock's start was published minute by minute; the export ends now.
    assert!(wal.points.len() >= 55, "{:?}", wal.points.len());
    assert!(
        wal.points
            .iter()
            .all(|p| p.1 == 2_097_152.0 && p.0 % 60_000 == 0)
    );
    let free = rec.source_metric("FreeStorageSpace").unwrap();
    assert!(free.points.iter().all(|p| p.1 == 80e9));
    assert!(
        rec.missing
            .iter()
            .any(|m| m.starts_with("WriteIOPS (DBInstanceIdentifier=orders-db): no datapoints")),
        "{:?}",
        rec.missing
    );
}

/// Two hours of healthy replication metrics around the virtual clock's start: slot lag
/// oscillating 0 ↔ one 64 MiB segment (an idle RDS source's heartbeat), replica lag 0, 2 MiB/s
/// of WAL, 80 GB free.
fn seed_healthy_metrics(env: &Env) {
    let t0 = start_ms() / 1000 - 3600;
    env.block(async {
        for chunk in (0..180).collect::<Vec<i64>>().chunks(20) {
            let mut req = env.aws.cw.put_metric_data().namespace("AWS/RDS");
            for m in chunk {
                let at = DateTime::from_secs(t0 + m * 60 + 5);
                let datum = |name: &str, dim: &str, id: &str, v: f64| {
                    aws_sdk_cloudwatch::types::MetricDatum::builder()
                        .metric_name(name)
                        .dimensions(
                            aws_sdk_cloudwatch::types::Dimension::builder()
                                .name(dim)
                                .value(id)
                                .build(),
                        )
                        .timestamp(at)
                        .value(v)
                        .build()
                };
                let seg = if m % 5 == 0 { 67_108_864.0 } else { 0.0 };
                req = req
                    .metric_data(datum(
                        "OldestReplicationSlotLag",
                        "DBInstanceIdentifier",
                        "orders-db",
                        seg,
                    ))
                    .metric_data(datum(
                        "TransactionLogsGeneration",
                        "DBInstanceIdentifier",
                        "orders-db",
                        2_097_152.0,
                    ))
                    .metric_data(datum(
                        "FreeStorageSpace",
                        "DBInstanceIdentifier",
                        "orders-db",
                        80e9,
                    ))
                    .metric_data(datum(
                        "RDSToAuroraPostgreSQLReplicaLag",
                        "DBClusterIdentifier",
                        "orders-db-aurora",
                        0.0,
                    ));
            }
            req.send().await.unwrap();
        }
    });
}

/// The standard runbook in the aws world against moto, as far as moto models it.
///
/// Real: every `rds`, `ec2` and `cw` call (moto through the launcher: the Aurora replica of an
/// instance, its writer, parameter groups, the quarantine group, the reboot, the promotion);
/// `route` (a godwit control plane with its management API, and a real Envoy as its node);
/// `cdc` declared `none`; `validate` skipped as it is without IAM database access.
/// Stubbed, because moto has no PostgreSQL and no replication: `pg` ([`ScriptedPg`]) — the
/// application's sessions that end with the reboot, and a replica already past the fence LSN.
#[test]
fn the_standard_runbook_runs_against_moto_as_far_as_moto_models_it() {
    use godwit_xds::model::{Addr, RouteSpec};
    let envoy_bin = godwit_xds::envoy::locate(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dal = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = godwit_xds::Config::new("127.0.0.1:0".parse().unwrap());
    config.api = Some("127.0.0.1:0".parse().unwrap());
    let plane = dal
        .block_on(godwit_xds::ControlPlane::start(config))
        .unwrap();
    let api = plane.api_addr().unwrap();
    let env = env_with(json!({ "envoy_control_plane": api.to_string(), "cdc": "none" }));
    let (vpc, _) = env.source();
    seed_healthy_metrics(&env);
    let godwit_group = env.block(async {
        env.aws
            .ec2
            .create_security_group()
            .group_name("godwit")
            .description("godwit's host")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string()
    });
    let source_endpoint = env
        .instance("orders-db")
        .unwrap()
        .endpoint()
        .and_then(|e| e.address())
        .unwrap()
        .to_string();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    dal.block_on(plane.publish(
        "orders-db",
        RouteSpec::new(
            Addr::new("127.0.0.1", listen.port()),
            Addr::new(&source_endpoint, godwit_tests::moto::SOURCE_PORT),
        ),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut envoy = godwit_xds::envoy::EnvoyProcess::start(
        &envoy_bin,
        dir.path(),
        "edge-1",
        plane.local_addr(),
        admin,
    )
    .unwrap();
    dal.block_on(envoy.wait_ready(std::time::Duration::from_secs(60)))
        .unwrap();

    let rebooted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pg = Arc::new(ScriptedPg {
        rebooted: rebooted.clone(),
        godwit_group: godwit_group.clone(),
    });
    let mut world = env.world();
    world.areas.as_mut().expect("the aws world has areas").pg = pg;
    let (mut runner, collector, _clock) = env.runner_in(world);
    runner.sinks.push(Arc::new(RebootSeen(rebooted)));
    let mut params = serde_json::Map::new();
    params.insert("validation_window".into(), "10m".into());
    params.insert("validation_timeout".into(), "2h".into());
    // The scripted source ends its sessions at the reboot (it has no backends to terminate):
    // the fence without SQL, as a credential-less run fences.
    params.insert("fence_method".into(), "reboot".into());
    let runbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let report = runner
        .start(godwit_engine::StartRequest {
            runbook,
            cluster: "orders-db".into(),
            params,
            run_id: None,
        })
        .unwrap();
    let steps: Vec<String> = collector
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StepCompleted { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert!(
        matches!(report.status, godwit_engine::RunStatus::Succeeded { .. }),
        "{:?}\nsteps: {steps:?}",
        report.status
    );
    for s in [
        "create-replica-cluster",
        "fence",
        "reboot-source",
        "validate-at-fence",
        "promote",
        "switch-route",
    ] {
        assert!(steps.iter().any(|x| x == s), "{s} missing from {steps:?}");
    }
    // moto's own answers: promoted, quarantined, rebooted once.
    let cl = env.cluster("orders-db-aurora").unwrap();
    assert_eq!(cl.replication_source_identifier(), None);
    assert_eq!(cl.status(), Some("available"));
    let src = env.instance("orders-db").unwrap();
    let groups: Vec<&str> = src
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(groups.len(), 1, "only the quarantine group: {groups:?}");
    // The quarantine admits godwit's group on the source's port and nothing else, sends
    // nothing (AWS: a group without inbound rules would lock godwit out too).
    let q = env.block(async {
        env.aws
            .ec2
            .describe_security_groups()
            .group_ids(groups[0])
            .send()
            .await
            .unwrap()
    });
    let q = &q.security_groups()[0];
    let ingress: Vec<(Option<i32>, Vec<&str>)> = q
        .ip_permissions()
        .iter()
        .map(|p| {
            (
                p.from_port(),
                p.user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        ingress,
        vec![(
            Some(i32::from(godwit_tests::moto::SOURCE_PORT)),
            vec![godwit_group.as_str()]
        )]
    );
    // It sends one thing: the reverse path, the source's subscription to Aurora's first group on
    // Aurora's port (ec2::allow_connection in create-reverse-path).
    let egress: Vec<_> = q
        .ip_permissions_egress()
        .iter()
        .map(|p| {
            (
                p.ip_protocol(),
                p.from_port(),
                p.to_port(),
                p.user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let aurora_group = cl.vpc_security_groups()[0].vpc_security_group_id().unwrap();
    assert_eq!(
        egress,
        vec![(Some("tcp"), cl.port(), cl.port(), vec![aurora_group])]
    );
    assert_eq!(calls(&collector, "rds.RebootDBInstance"), 1);
    // IAM database authentication on the target, copied from the source.
    assert_eq!(cl.iam_database_authentication_enabled(), Some(true));
    // The route: every Envoy node serves the Aurora writer endpoint; the source drains.
    let view = plane.describe("orders-db").unwrap();
    let writer = cl.endpoint().unwrap();
    assert_eq!(
        view.spec.endpoints[0].addr,
        Addr::new(writer, godwit_tests::moto::SOURCE_PORT),
        "{view:?}"
    );
    let validation = collector
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::StepCompleted { name, result, .. } if name == "validate-at-fence" => {
                Some(result)
            }
            _ => None,
        })
        .unwrap();
    assert!(
        validation["skipped"].as_str().unwrap().contains("db_user"),
        "{validation}"
    );
    drop(envoy);
    dal.block_on(plane.shutdown());
}

/// Create a bare RDS instance `id` of `engine` with `tags` in moto, through the SDK.
fn create_tagged_instance(env: &Env, id: &str, engine: &str, tags: &[(&str, &str)]) {
    env.block(async {
        env.aws
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine(engine)
            .db_instance_class("db.t3.medium")
            .allocated_storage(20)
            .master_username("admin_user")
            .master_user_password("not-used-by-godwit")
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(*k).value(*v).build())
                    .collect(),
            ))
            .send()
            .await
            .unwrap();
    });
}

/// Discovery reads every page of `DescribeDBInstances` (moto pages at MaxRecords, default 100)
/// and matches tags client-side: 130 tagged instances over two pages of 100 (seven of 20),
/// the owner tag read back as tagged, other engines and other fleets left out.
#[test]
fn list_instances_follows_every_page_and_filters_tags_client_side() {
    let env = env();
    let (_vpc, _sg) = env.source();
    for i in 0..130 {
        let team = if i % 2 == 0 { "payments" } else { "orders" };
        create_tagged_instance(
            &env,
            &format!("pay-{i:03}"),
            "postgres",
            &[("godwit:fleet", "payments"), ("team", team)],
        );
    }
    create_tagged_instance(
        &env,
        "search-001",
        "postgres",
        &[("godwit:fleet", "search")],
    );
    create_tagged_instance(
        &env,
        "legacy-mysql",
        "mysql",
        &[("godwit:fleet", "payments"), ("team", "platform")],
    );
    let (mut s, c) = env.session();

    let all = eval(&mut s, "rds::list_instances(#{})");
    let all = all.as_array().unwrap();
    // The source (untagged), 130 payments instances, search-001; never the MySQL.
    assert_eq!(all.len(), 132, "{all:?}");
    assert_eq!(calls(&c, "rds.DescribeDBInstances"), 2, "two pages of 100");
    assert!(all.iter().all(|i| i["engine"] == "postgres"));

    let pay = eval(
        &mut s,
        r#"rds::list_instances(#{ tag: "godwit:fleet", value: "payments", page_size: 20 })"#,
    );
    let pay = pay.as_array().unwrap();
    assert_eq!(pay.len(), 130);
    assert_eq!(
        calls(&c, "rds.DescribeDBInstances"),
        2 + 7,
        "seven pages of 20"
    );
    assert_eq!(pay[0]["id"], "pay-000");
    assert_eq!(pay[0]["tags"]["team"], "payments");
    assert_eq!(pay[1]["tags"]["team"], "orders");
    assert_eq!(pay[0]["instance_class"], "db.t3.medium");
    assert_eq!(pay[0]["allocated_storage_gb"], 20);

    let tagged = eval(&mut s, r#"rds::list_instances(#{ tag: "godwit:fleet" })"#);
    assert_eq!(tagged.as_array().unwrap().len(), 131);

    // AWS's MaxRecords range (moto accepts any): refused before a call, as in every world.
    let before = calls(&c, "rds.DescribeDBInstances");
    let err = eval_err(&mut s, "rds::list_instances(#{ page_size: 10 })");
    assert!(err.contains("MaxRecords must be 20..100"), "{err}");
    let err = eval_err(&mut s, r#"rds::list_instances(#{ tag: "" })"#);
    assert!(err.contains("the tag is empty"), "{err}");
    assert_eq!(calls(&c, "rds.DescribeDBInstances"), before);
}

/// `godwit fleet plan --world aws` against moto: the fleet file's cluster and the ones
/// discovered by tag (owner from the `team` tag), each planned in the aws world — one verdict
/// per cluster with its owner, and a prediction calibrated from what CloudWatch holds for it
/// (the WAL rate put through `PutMetricData`), or stating what it could not read.
#[test]
fn fleet_plan_plans_a_file_and_discovered_fleet_in_the_aws_world() {
    let env = env();
    env.source();
    seed_healthy_metrics(&env);
    create_tagged_instance(
        &env,
        "ledger-db",
        "postgres",
        &[("godwit:fleet", "payments"), ("team", "ledger")],
    );
    create_tagged_instance(&env, "search-db", "postgres", &[("godwit:fleet", "search")]);
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("payments.toml");
    std::fs::write(
        &fleet,
        "name = \"payments\"\n[[clusters]]\nid = \"orders-db\"\nowner = \"orders\"\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_godwit-toy"))
        .args(["fleet", "plan", "--fleet"])
        .arg(&fleet)
        .args(["--discover", "godwit:fleet=payments", "--owner-tag", "team"])
        .args(["--world", "aws", "--region", REGION, "--endpoint-url"])
        .arg(env.moto.url.as_str())
        .args(["-o", "json"])
        .env("GODWIT_STATE_DIR", dir.path().join("state"))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        matches!(o.status.code(), Some(0 | 10)),
        "{stdout}\n{stderr}"
    );
    let verdicts: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let mut owners: Vec<(String, String)> = verdicts
        .iter()
        .map(|v| {
            (
                v["cluster"].as_str().unwrap().to_string(),
                v["owner"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    owners.sort();
    assert_eq!(
        owners,
        vec![
            ("ledger-db".to_string(), "ledger".to_string()),
            ("orders-db".to_string(), "orders".to_string())
        ],
        "the file's cluster and the discovered one, not another fleet's"
    );
    let v = |id: &str| verdicts.iter().find(|v| v["cluster"] == id).unwrap();
    let orders = v("orders-db");
    assert_eq!(orders["plan"]["world"], "aws", "{orders}");
    let measured: Vec<&str> = orders["predicted"]["measured"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(
        measured
            .iter()
            .any(|m| m.starts_with("WAL 2.1 MB/s") && m.contains("TransactionLogsGeneration")),
        "the WAL rate put in CloudWatch calibrates the prediction: {measured:?}"
    );
    // Nothing published for ledger-db: its prediction says what it assumed instead.
    let ledger = v("ledger-db");
    assert!(
        ledger["predicted"]["assumptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("WAL: idle")),
        "{ledger}"
    );
}
