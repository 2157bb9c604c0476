//! The three worlds the contract suite runs on, each built once per test run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use godwit_engine::{Clock, Host, SystemClock};
use godwit_stdlib::aws::{Aws, AwsSettings};
use godwit_stdlib::cw::{MetricQuery, NAMESPACE};
use godwit_stdlib::sim::scenario::Scenario;
use godwit_stdlib::world::World;
use serde_json::json;

use super::Fixture;
use crate::moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};

/// The simulator's scenario for the suite: an idle source (no application writes, so a caught
/// up replica holds exactly the source's rows) with a CDC consumer on a logical slot, a small
/// database (fast to copy), and CloudWatch publishing nothing from minute 10 to 15.
const SCENARIO: &str = r#"
name = "contract"
description = "the contract suite's world: idle source, one CDC consumer, a CloudWatch gap"
seed = 14

[source]
id = "orders-db"
sessions = 0
data_gb = 10.0

[[slots]]
name = "orders_cdc"
type = "logical"

[[cdc.consumers]]
name = "orders-cdc"
slot = "orders_cdc"

[[faults]]
kind = "cloudwatch-gap"
at = "10m"
for = "5m"
"#;

fn base(name: &'static str, areas: godwit_stdlib::world::Areas, host: Host) -> Fixture {
    Fixture {
        name,
        areas,
        host,
        source: "orders-db".into(),
        vpc: String::new(),
        target: "contract-aurora".into(),
        writer: "contract-aurora-1".into(),
        poll: Duration::from_millis(100),
        patience: Duration::from_secs(60),
        databases: true,
        app_role: String::new(),
        table: "public.orders".into(),
        consumer: None,
        route: true,
        snapshots: true,
        metric: Box::new(|| unreachable!("set by the world")),
        gap: None,
        keep: Vec::new(),
        seen: Mutex::new(Vec::new()),
    }
}

fn query(name: &str, id: &str, period: i64, since: i64, until: i64) -> MetricQuery {
    MetricQuery {
        namespace: NAMESPACE.into(),
        name: name.into(),
        dimensions: BTreeMap::from([("DBInstanceIdentifier".to_string(), id.to_string())]),
        statistic: "Maximum".into(),
        period,
        since,
        until,
    }
}

/// The simulator, on its virtual clock.
pub fn sim() -> Fixture {
    let scenario = Scenario::from_toml("contract", SCENARIO).expect("the contract scenario");
    let world = World::sim(scenario);
    let clock = world.clock.clone();
    let start = clock.now_ms() / 1000;
    let areas = world.areas.clone().expect("the sim has areas");
    let mut f = base("sim", areas, Host::detached(clock.clone(), None));
    f.vpc = "vpc-0sim".into();
    f.app_role = "orders_app".into();
    f.consumer = Some(("orders-cdc".into(), "orders_cdc".into()));
    // Virtual time: RDS takes its minutes, the polls cost nothing.
    f.poll = Duration::from_secs(30);
    f.patience = Duration::from_secs(6 * 3600);
    f.metric = Box::new(move || {
        let now = clock.now_ms() / 1000;
        query("OldestReplicationSlotLag", "orders-db", 60, now - 3600, now)
    });
    f.gap = Some((
        query(
            "OldestReplicationSlotLag",
            "orders-db",
            60,
            start,
            start + 1800,
        ),
        (start + 600, start + 900),
    ));
    f.keep.push(Box::new(world));
    f
}

/// A lab: real PostgreSQL servers and a real Envoy, its CDC consumer `pg_recvlogical`.
pub fn lab(dir: &Path) -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut opts = godwit_lab::LabOptions::new(dir.join("lab"));
    opts.seed_rows = 500;
    let sup = rt
        .block_on(godwit_lab::Supervisor::up(opts))
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    let st = godwit_lab::LabState::load(&sup.dir).unwrap();
    let world = godwit_lab::supervisor::world(&sup.dir, rt.handle().clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let start = clock.now_ms() / 1000;
    let host = Host::detached(clock.clone(), Some(rt.handle().clone()));
    let mut f = base("lab", world.areas.clone().expect("areas"), host);
    f.source = st.source.clone();
    f.vpc = st.attributes.vpc_id.clone();
    f.app_role = st.app_role.clone();
    let c = st.cdc.values().next().expect("the lab's CDC consumer");
    f.consumer = Some((c.name.clone(), c.slot.clone()));
    // The lab has no snapshots (lab/src/areas.rs): the snapshot runbook runs in the sim.
    f.snapshots = false;
    // The lab samples every second; a gap would need a server down for whole seconds on
    // demand, so the gap rule is checked in the sim and on moto (and by `cw::periods`).
    let source = st.source.clone();
    f.metric = Box::new(move || {
        let now = clock.now_ms() / 1000;
        query("DatabaseConnections", &source, 1, start, now + 1)
    });
    // Dropped in this order: the world's connections, the lab (servers, Envoy, control
    // plane), then the runtime they ran on.
    f.keep.push(Box::new(world));
    f.keep.push(Box::new(sup));
    f.keep.push(Box::new(rt));
    f
}

/// The aws world against moto, with a godwit control plane and a real Envoy for `route`.
///
/// moto has no PostgreSQL behind its endpoints, so `pg`, `validate` and `cdc` are not run here
/// (`databases: false`): issue "The standard runbook survives real AWS semantics" makes moto's
/// endpoints lab servers, and then they are.
pub fn aws_on_moto(dir: &Path) -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let moto = Moto::start();
    let mut config = godwit_xds::Config::new("127.0.0.1:0".parse().unwrap());
    config.api = Some("127.0.0.1:0".parse().unwrap());
    let plane = rt
        .block_on(godwit_xds::ControlPlane::start(config))
        .unwrap();
    let settings = AwsSettings::from_json(
        json!({
            "region": REGION,
            "endpoint_url": moto.url,
            "retry_backoff": "100ms",
            "envoy_control_plane": plane.api_addr().unwrap().to_string(),
            "cdc": "none",
        }),
        "contract",
    )
    .unwrap();
    let creds = aws_sdk_rds::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
    let aws = Arc::new(Aws::connect(settings, Some(creds)).unwrap());
    let (vpc, _) = rt.block_on(crate::moto::seed_source(&aws));

    // Ten minutes of slot lag an hour ago, minute 5 missing.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let t0 = (clock.now_ms() / 1000 / 60) * 60 - 3600;
    rt.block_on(crate::moto::put_minutes(
        &aws,
        "OldestReplicationSlotLag",
        "orders-db",
        t0,
        (0..10).filter(|m| *m != 5),
        |m| (m * 1000) as f64,
    ));

    // The route: the source's endpoint behind a listener, one Envoy node.
    let endpoint = rt
        .block_on(
            aws.rds
                .describe_db_instances()
                .db_instance_identifier("orders-db")
                .send(),
        )
        .unwrap()
        .db_instances()[0]
        .endpoint()
        .and_then(|e| e.address())
        .unwrap()
        .to_string();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    use godwit_xds::model::{Addr, RouteSpec};
    rt.block_on(plane.publish(
        "orders-db",
        RouteSpec::new(
            Addr::new("127.0.0.1", free().port()),
            Addr::new(&endpoint, 5432),
        ),
    ))
    .unwrap();
    let envoy_bin = godwit_lab::supervisor::envoy_binary(None).unwrap_or_else(|e| panic!("{e}"));
    let mut envoy = godwit_xds::envoy::EnvoyProcess::start(
        &envoy_bin,
        dir,
        "contract-envoy",
        plane.local_addr(),
        free(),
    )
    .unwrap();
    rt.block_on(envoy.wait_ready(Duration::from_secs(60)))
        .unwrap();

    let world = World::aws(aws).unwrap();
    let host = Host::detached(clock, Some(rt.handle().clone()));
    let mut f = base("aws", world.areas.clone().expect("areas"), host);
    f.vpc = vpc;
    f.databases = false;
    f.metric = Box::new(move || query("OldestReplicationSlotLag", "orders-db", 60, t0, t0 + 600));
    f.gap = Some((
        query("OldestReplicationSlotLag", "orders-db", 60, t0, t0 + 600),
        (t0 + 300, t0 + 360),
    ));
    f.keep.push(Box::new(world));
    f.keep.push(Box::new(envoy));
    // The plane's tasks end with the runtime, dropped last.
    f.keep.push(Box::new(plane));
    f.keep.push(Box::new(moto));
    f.keep.push(Box::new(rt));
    f
}
