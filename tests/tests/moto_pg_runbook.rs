//! Issue 15's acceptance in the aws world: the standard runbook end to end against moto with
//! real PostgreSQL behind it (`godwit_tests::motopg`), nothing scripted — `rds`/`ec2`/`cw`
//! through the SDK on moto, `pg`/`validate` through the aws world's own `IamConnector` (TLS
//! verify-full, IAM tokens) to real servers whose security groups, reboots and promotion are
//! real, CloudWatch fed by the servers' own samples, `route` through a godwit control plane
//! and a real Envoy, an application writing through Envoy the whole time.
//!
//! It asserts what the acceptance names: the quarantine's one ingress rule (godwit's
//! group on the database port), IAM auth enabled on the target, the sync gate decided on the
//! source (no `pg::replay_lsn` on the target), the route on the target's port; and no
//! acknowledged commit lost.
//!
//! A runbook whose quarantine drops godwit's own connections (the deny-all group before
//! issue 15) would poll for 5 minutes (15 s per connection attempt); the test stops such a run
//! at the first poll that proves the lockout and fails saying where and why.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::transcript::{Collector, Event, Line, Sink};
use godwit_lab::workload::{Kind, Workload};
use godwit_tests::motopg::{MotoPg, Options};
use godwit_xds::model::{Addr, RouteSpec};
use serde_json::json;

/// The longest a run may take here before the test stops it (the lab's cutover takes ~30 s).
const BUDGET: Duration = Duration::from_secs(100);

/// Stops the run when it cannot succeed any more, and says why.
struct Watch {
    cancel: godwit_engine::Cancel,
    fenced: Mutex<bool>,
    stopped: Mutex<Option<String>>,
}

impl Watch {
    /// Stop the run (once), saying why.
    fn stop(&self, why: String) {
        let mut s = self.stopped.lock().unwrap();
        if s.is_none() {
            *s = Some(why);
            self.cancel.cancel();
        }
    }
}

impl Sink for Watch {
    fn line(&self, line: &Line) {
        match &line.event {
            Event::StepCompleted { name, .. } if name == "fence" => {
                *self.fenced.lock().unwrap() = true;
            }
            // After the fence, a connection of godwit's that times out (the quarantine drops
            // it) or a login refused does not heal by waiting: the gate would poll for its
            // whole timeout (5 minutes; 30 for the sync gate).
            Event::Primitive {
                area,
                op,
                args,
                ok: false,
                result,
                ..
            } if (area == "pg" || area == "validate") && *self.fenced.lock().unwrap() => {
                let message = result["message"].as_str().unwrap_or("");
                if result["kind"] == "Timeout" && message.contains("connecting to") {
                    self.stop(format!(
                        "godwit is locked out: {area}::{op}({}) after the fence: {message}",
                        args["db"]
                    ))
                } else if message.contains("(28P01)") || message.contains("(28000)") {
                    self.stop(format!(
                        "godwit's login is refused: {area}::{op}({}): {message}",
                        args["db"]
                    ))
                }
            }
            _ => {}
        }
    }
}

#[test]
fn the_standard_runbook_runs_end_to_end_through_the_aws_world_with_nothing_scripted() {
    // The runbook waits for the replica polling once a minute: its servers are made within
    // the creating calls (the lab's timing), so the first poll finds them.
    let h = MotoPg::start(Options {
        sync_hooks: true,
        ..Options::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = godwit_xds::Config::new("127.0.0.1:0".parse().unwrap());
    config.api = Some("127.0.0.1:0".parse().unwrap());
    let plane = rt
        .block_on(godwit_xds::ControlPlane::start(config))
        .unwrap();
    let settings = |extra: serde_json::Value| {
        let mut s = json!({
            "envoy_control_plane": plane.api_addr().unwrap().to_string(),
            "cdc": "none",
        });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        h.settings(s)
    };
    let setup = h.aws(settings(json!({})));
    let (vpc, _app_group) =
        rt.block_on(godwit_tests::moto::seed_source_with(&setup, "127.0.0.0/8"));
    wait_available(&rt, &setup, "orders-db");
    // godwit's own security group, godwit's address in it: the quarantine admits it, and
    // the aws settings name it.
    let godwit_group = rt.block_on(async {
        setup
            .ec2
            .create_security_group()
            .group_name("godwit")
            .description("godwit's own")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id
            .unwrap()
    });
    h.place("127.0.0.1".parse().unwrap(), &godwit_group);
    let aws = h.aws(settings(json!({ "security_group": godwit_group })));

    // The application reaches the source through Envoy. Envoy's upstream connections come
    // from 127.0.0.1 too (until Envoy binds an address of its own, they look like godwit's);
    // the hold keeps it from opening any while the source is fenced.
    let source = rt
        .block_on(
            aws.rds
                .describe_db_instances()
                .db_instance_identifier("orders-db")
                .send(),
        )
        .unwrap()
        .db_instances()[0]
        .endpoint()
        .unwrap()
        .clone();
    let listen = free_port();
    rt.block_on(plane.publish(
        "orders-db",
        RouteSpec::new(
            Addr::new("127.0.0.1", listen),
            Addr::new(source.address().unwrap(), source.port().unwrap() as u16),
        ),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let envoy_bin = godwit_lab::supervisor::envoy_binary(None).unwrap_or_else(|e| panic!("{e}"));
    let mut envoy = godwit_xds::envoy::EnvoyProcess::start(
        &envoy_bin,
        dir.path(),
        "edge-1",
        plane.local_addr(),
        std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
    )
    .unwrap();
    rt.block_on(envoy.wait_ready(Duration::from_secs(60)))
        .unwrap();
    let workload = {
        let _rt = rt.enter();
        Workload::start(
            listen,
            "app",
            "app",
            2,
            Duration::from_millis(20),
            Kind::Insert,
            1000,
        )
    };

    // Preflight judges storage headroom from at least five datapoints (no data is no
    // evidence): let the harness's CloudWatch feed publish its first seconds.
    wait_for_datapoints(&rt, &aws, "FreeStorageSpace", "orders-db", 6);
    let world = h.world(aws.clone());
    let collector = Collector::new();
    let mut runner = world.runner(Arc::new(MemoryStore::new()), rt.handle().clone());
    let watch = Arc::new(Watch {
        cancel: runner.cancel.clone(),
        fenced: Mutex::new(false),
        stopped: Mutex::new(None),
    });
    runner
        .sinks
        .push(Arc::new(collector.clone()) as Arc<dyn Sink>);
    runner.sinks.push(watch.clone() as Arc<dyn Sink>);
    let timer = watch.clone();
    rt.spawn(async move {
        tokio::time::sleep(BUDGET).await;
        timer.stop(format!("the run took more than {BUDGET:?}"));
    });
    let mut params = serde_json::Map::new();
    // The lab's fit of a day's load into seconds (docs/lab.md): the harness samples per second.
    for (k, v) in [
        ("validation_window", "10s"),
        ("validation_timeout", "2m"),
        ("health_every", "2s"),
        ("create_timeout", "5m"),
        // The harness's parameter groups are in force at once; on AWS the default waits the
        // five minutes AWS asks for.
        ("parameter_group_settle", "0s"),
    ] {
        params.insert(k.into(), v.into());
    }
    params.insert("metric_period".into(), 1.into());
    let runbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
    let report = runner.start(godwit_engine::StartRequest {
        runbook,
        cluster: "orders-db".into(),
        params,
        run_id: None,
    });
    let logs = rt.block_on(workload.stop());
    let events = collector.events();
    // Each completed step or passed gate, seconds into the run.
    let lines = collector.lines();
    let t0 = lines.first().map(|l| l.at).unwrap_or(0);
    let completed: Vec<String> = lines
        .iter()
        .filter_map(|l| match &l.event {
            Event::StepCompleted { name, .. } | Event::GatePassed { name, .. } => {
                Some(format!("{name} +{:.1}s", (l.at - t0) as f64 / 1000.0))
            }
            _ => None,
        })
        .collect();
    eprintln!("completed: {completed:?}");
    let succeeded = matches!(
        report.as_ref().map(|r| &r.status),
        Ok(godwit_engine::RunStatus::Succeeded { .. })
    );
    if !succeeded {
        let log = h.log();
        let dropped: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("dropped"))
            .take(3)
            .collect();
        let dropped = dropped.join("\n  ");
        panic!(
            "the standard runbook did not complete through the aws world on real servers\n\
             stopped: {}\nstatus: {:?}\nsteps completed: {completed:?}\n\
             the harness dropped (security groups):\n  {dropped}",
            watch.stopped.lock().unwrap().clone().unwrap_or_default(),
            report.map(|r| r.status),
        );
    }

    // The quarantine admits exactly godwit's group on the database port.
    let quarantine = rt.block_on(async {
        aws.ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values("godwit-quarantine")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .security_groups()[0]
            .clone()
    });
    // (from port, to port, source groups) of each ingress permission.
    let rules: Vec<String> = quarantine
        .ip_permissions()
        .iter()
        .map(|p| {
            let groups: Vec<&str> = p
                .user_id_group_pairs()
                .iter()
                .filter_map(|g| g.group_id())
                .collect();
            format!(
                "{}/{:?}-{:?} from {groups:?}, {} CIDRs",
                p.ip_protocol().unwrap_or("?"),
                p.from_port(),
                p.to_port(),
                p.ip_ranges().len()
            )
        })
        .collect();
    assert_eq!(
        rules,
        [format!(
            "tcp/Some(5433)-Some(5433) from {:?}, 0 CIDRs",
            [&godwit_group]
        )],
        "one ingress rule: the database port from godwit's group"
    );
    // IAM auth on the target, as on the source.
    let target = rt
        .block_on(
            aws.rds
                .describe_db_clusters()
                .db_cluster_identifier("orders-db-aurora")
                .send(),
        )
        .unwrap()
        .db_clusters()[0]
        .clone();
    assert_eq!(target.iam_database_authentication_enabled(), Some(true));
    // The sync gate decided on the source: nothing asked the target for a WAL position.
    let on_target: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Primitive { area, op, args, .. }
                if area == "pg" && op == "replay_lsn" && args["db"] == "orders-db-aurora" =>
            {
                Some(op.clone())
            }
            _ => None,
        })
        .collect();
    assert!(
        on_target.is_empty(),
        "pg::replay_lsn on the target: {on_target:?}"
    );
    // The route leads to the target's writer endpoint on the target's own port.
    let view = plane.describe("orders-db").unwrap();
    assert_eq!(
        view.spec.endpoints[0].addr,
        Addr::new(target.endpoint().unwrap(), target.port().unwrap() as u16),
        "{view:?}"
    );
    // Every acknowledged commit is on the target; writes went on after the switch.
    let mut r = godwit_lab::workload::report(Kind::Insert, &logs);
    let port = h.server_port("orders-db-aurora").unwrap();
    rt.block_on(godwit_lab::workload::check_on(
        &mut r, &logs, port, "app", None,
    ))
    .unwrap();
    assert_eq!(r.lost, Some(0), "{r:?}");

    drop(world);
    drop(envoy);
    rt.block_on(plane.shutdown());
}

fn wait_available(rt: &tokio::runtime::Runtime, aws: &godwit_stdlib::aws::Aws, id: &str) {
    for _ in 0..1200 {
        let status = rt
            .block_on(
                aws.rds
                    .describe_db_instances()
                    .db_instance_identifier(id)
                    .send(),
            )
            .ok()
            .and_then(|o| o.db_instances()[0].db_instance_status().map(String::from));
        if status.as_deref() == Some("available") {
            return;
        }
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    }
    panic!("{id} not available within 2 minutes");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait (at most 30 s) until moto's CloudWatch has `n` datapoints of `metric` for instance
/// `id` in the last ten minutes, as the harness's feed publishes them every second.
fn wait_for_datapoints(
    rt: &tokio::runtime::Runtime,
    aws: &godwit_stdlib::aws::Aws,
    metric: &str,
    id: &str,
    n: usize,
) {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
    let mut seen = 0;
    for _ in 0..60 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let query = MetricDataQuery::builder()
            .id("m")
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(godwit_stdlib::cw::NAMESPACE)
                            .metric_name(metric)
                            .dimensions(
                                Dimension::builder()
                                    .name("DBInstanceIdentifier")
                                    .value(id)
                                    .build(),
                            )
                            .build(),
                    )
                    .period(1)
                    .stat("Maximum")
                    .build(),
            )
            .build();
        let out = rt.block_on(
            aws.cw
                .get_metric_data()
                .metric_data_queries(query)
                .start_time(DateTime::from_secs(now - 600))
                .end_time(DateTime::from_secs(now + 60))
                .send(),
        );
        seen = out
            .ok()
            .map(|o| {
                o.metric_data_results()
                    .iter()
                    .map(|r| r.values().len())
                    .sum()
            })
            .unwrap_or(0);
        if seen >= n {
            return;
        }
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    }
    panic!("CloudWatch had {seen} {metric} datapoints of {id} after 30 s, not {n}");
}
