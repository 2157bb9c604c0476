//! The standard runbook end to end in the aws world against moto with real PostgreSQL behind
//! it (`godwit_tests::motopg`), nothing scripted — `rds`/`ec2`/`cw` through the SDK on moto,
//! `pg`/`validate` through the aws world's own `IamConnector` (TLS verify-full, IAM tokens) to
//! real servers whose security groups, reboots and promotion are real, CloudWatch fed by the
//! servers' own samples, `route` through a godwit control plane and a real Envoy (connecting
//! upstream from an address of its own), an application writing through Envoy the whole time.
//!
//! Two runs, each on its own stage:
//!
//! - **with database access** (issue 15's acceptance): the quarantine's one ingress rule
//!   (godwit's group on the database port), IAM auth enabled on the target, both gates
//!   decided on SQL facts read on the source (no `pg::replay_lsn` on the target), the route on
//!   the target's port; no acknowledged commit lost.
//! - **credential-less** (issue 17's acceptance in the aws world): no `db_user` in the
//!   settings, `unverified=accept`; the run never tries to reach a database — no `pg::` call
//!   but `pg::access` and no `validate::` in its transcript, and neither the endpoints' doors
//!   nor the servers' connection logs saw godwit during the run (both witnesses are shown to
//!   see godwit's connection first); the fence and sync gates are journaled as decided by
//!   CloudWatch evidence, read from the five series the harness's feed publishes per second; a
//!   quarantine that admits no one; no acknowledged commit lost.
//!
//! A runbook whose quarantine drops godwit's own connections (the deny-all group before
//! issue 15) would poll for 5 minutes (15 s per connection attempt); the test stops such a run
//! at the first poll that proves the lockout and fails saying where and why.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use godwit_engine::journal::Entry;
use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::session::Session;
use godwit_engine::transcript::{Collector, Event, Line, Sink};
use godwit_lab::workload::{ClientLog, Kind, Workload};
use godwit_stdlib::aws::Aws;
use godwit_stdlib::pg::live::Connector;
use godwit_tests::motopg::{MotoPg, Options};
use godwit_xds::model::{Addr, RouteSpec};
use serde_json::{Value, json};

/// The longest a run may take here before the test stops it (the lab's cutover takes ~30 s;
/// the credential-less fence waits for CloudWatch periods that start after the reboot).
const BUDGET: Duration = Duration::from_secs(150);

/// Where Envoy connects to the databases from (its cluster's `upstream_bind`, as in the lab):
/// not godwit's `127.0.0.1`, so the doors tell the application's connections from godwit's,
/// and a quarantine that admits godwit's group does not admit Envoy.
const ENVOY_UPSTREAM: &str = "127.0.0.3";

/// Stops the run when it cannot succeed any more, and says why.
struct Watch {
    cancel: godwit_engine::Cancel,
    fenced: Mutex<bool>,
    stopped: Mutex<Option<String>>,
    /// The run has no database access: any `pg::` call but `pg::access`, or any `validate::`
    /// call, already fails the test — stop at once instead of polling for minutes.
    credential_less: bool,
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
            Event::Primitive { area, op, args, .. }
                if self.credential_less && is_database_call(area, op) =>
            {
                self.stop(format!(
                    "a credential-less run called {area}::{op}({})",
                    args["db"]
                ))
            }
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

/// Whether a primitive reaches a database: every `pg::` call but `pg::access` (which reports
/// the world's access without connecting), and every `validate::` call.
fn is_database_call(area: &str, op: &str) -> bool {
    (area == "pg" && op != "access") || area == "validate"
}

/// The stage a run plays on: moto with real servers (a mutation answers once its servers are
/// done: the runbook polls the new replica once a minute, and the first poll finds it), the
/// source `orders-db` available, a godwit control plane whose route `orders-db` leads to the
/// source through a real Envoy (upstream from [`ENVOY_UPSTREAM`]), an application writing
/// through Envoy, and CloudWatch holding the feed's first seconds.
struct Stage {
    h: MotoPg,
    rt: tokio::runtime::Runtime,
    plane: godwit_xds::ControlPlane,
    vpc: String,
    envoy: Option<godwit_xds::envoy::EnvoyProcess>,
    workload: Option<Workload>,
    _dir: tempfile::TempDir,
}

/// What a run left: its report, transcript and journal, and the application's commits.
struct Run {
    report: Result<godwit_engine::RunReport, godwit_engine::EngineError>,
    lines: Vec<Line>,
    journal: Vec<Entry>,
    logs: Vec<ClientLog>,
    stopped: Option<String>,
}

impl Stage {
    fn start() -> Stage {
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
        let mut stage = Stage {
            h,
            rt,
            plane,
            vpc: String::new(),
            envoy: None,
            workload: None,
            _dir: tempfile::tempdir().unwrap(),
        };
        let setup = stage.h.aws(stage.settings_credential_less(json!({})));
        let (vpc, _app_group) = stage
            .rt
            .block_on(godwit_tests::moto::seed_source_with(&setup, "127.0.0.0/8"));
        stage.vpc = vpc;
        wait_available(&stage.rt, &setup, "orders-db");

        let source = stage
            .rt
            .block_on(
                setup
                    .rds
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
        let mut route = RouteSpec::new(
            Addr::new("127.0.0.1", listen),
            Addr::new(source.address().unwrap(), source.port().unwrap() as u16),
        );
        route.upstream_bind = Some(ENVOY_UPSTREAM.into());
        stage
            .rt
            .block_on(stage.plane.publish("orders-db", route))
            .unwrap();
        let envoy_bin =
            godwit_lab::supervisor::envoy_binary(None).unwrap_or_else(|e| panic!("{e}"));
        let mut envoy = godwit_xds::envoy::EnvoyProcess::start(
            &envoy_bin,
            stage._dir.path(),
            "edge-1",
            stage.plane.local_addr(),
            std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        )
        .unwrap();
        stage
            .rt
            .block_on(envoy.wait_ready(Duration::from_secs(60)))
            .unwrap();
        stage.envoy = Some(envoy);
        stage.workload = Some({
            let _rt = stage.rt.enter();
            Workload::start(
                listen,
                "app",
                "app",
                2,
                Duration::from_millis(20),
                Kind::Insert,
                1000,
            )
        });
        // Preflight judges storage headroom from at least five datapoints (no data is no
        // evidence): let the harness's CloudWatch feed publish its first seconds.
        wait_for_datapoints(&stage.rt, &setup, "FreeStorageSpace", "orders-db", 6);
        stage
    }

    /// The route's control plane and no CDC, over `extra`.
    fn with_route(&self, extra: Value) -> Value {
        let mut s = json!({
            "envoy_control_plane": self.plane.api_addr().unwrap().to_string(),
            "cdc": "none",
        });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        s
    }

    /// Settings with database access (`db_user` godwit).
    fn settings(&self, extra: Value) -> godwit_stdlib::aws::AwsSettings {
        self.h.settings(self.with_route(extra))
    }

    /// Settings without database access.
    fn settings_credential_less(&self, extra: Value) -> godwit_stdlib::aws::AwsSettings {
        self.h.settings_credential_less(self.with_route(extra))
    }

    /// Run the standard runbook on `aws` with the lab's fit of a day's load into seconds
    /// (docs/lab.md) and `extra` parameters, then stop the application. A run that cannot
    /// succeed any more, or takes longer than [`BUDGET`], is stopped by its [`Watch`].
    fn run(&mut self, aws: Arc<Aws>, extra: &[(&str, Value)], credential_less: bool) -> Run {
        let world = self.h.world(aws);
        let collector = Collector::new();
        let store = Arc::new(MemoryStore::new());
        let mut runner = world.runner(store.clone(), self.rt.handle().clone());
        let watch = Arc::new(Watch {
            cancel: runner.cancel.clone(),
            fenced: Mutex::new(false),
            stopped: Mutex::new(None),
            credential_less,
        });
        runner
            .sinks
            .push(Arc::new(collector.clone()) as Arc<dyn Sink>);
        runner.sinks.push(watch.clone() as Arc<dyn Sink>);
        let timer = watch.clone();
        let budget = self.rt.spawn(async move {
            tokio::time::sleep(BUDGET).await;
            timer.stop(format!("the run took more than {BUDGET:?}"));
        });
        let mut params = serde_json::Map::new();
        for (k, v) in [
            ("validation_window", "10s"),
            ("validation_timeout", "2m"),
            ("health_every", "2s"),
            ("create_timeout", "5m"),
            // The harness's parameter groups are in force at once; on AWS the default waits
            // the five minutes AWS asks for.
            ("parameter_group_settle", "0s"),
        ] {
            params.insert(k.into(), v.into());
        }
        // The harness's feed publishes per second (docs/moto.md).
        params.insert("metric_period".into(), 1.into());
        for (k, v) in extra {
            params.insert(k.to_string(), v.clone());
        }
        let runbook =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/rds-to-aurora.rhai");
        let report = runner.start(godwit_engine::StartRequest {
            runbook,
            cluster: "orders-db".into(),
            params,
            run_id: None,
        });
        budget.abort();
        let logs = self
            .rt
            .block_on(self.workload.take().expect("one run per stage").stop());
        let journal = report
            .as_ref()
            .map(|r| store.entries(&r.run_id))
            .unwrap_or_default();
        drop(world);
        let stopped = watch.stopped.lock().unwrap().clone();
        Run {
            report,
            lines: collector.lines(),
            journal,
            logs,
            stopped,
        }
    }

    /// Every acknowledged commit is on the target (the route switched to it).
    fn assert_no_commit_lost(&self, run: &Run) -> godwit_lab::workload::Report {
        let mut r = godwit_lab::workload::report(Kind::Insert, &run.logs);
        let port = self.h.server_port("orders-db-aurora").unwrap();
        self.rt
            .block_on(godwit_lab::workload::check_on(
                &mut r, &run.logs, port, "app", None,
            ))
            .unwrap();
        assert_eq!(r.lost, Some(0), "{r:?}");
        r
    }

    /// The ingress permissions of the quarantine group, as `PROTO/FROM-TO from GROUPS, N CIDRs`.
    fn quarantine_rules(&self, aws: &Aws) -> Vec<String> {
        let quarantine = self.rt.block_on(async {
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
        quarantine
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
            .collect()
    }

    fn target(&self, aws: &Aws) -> aws_sdk_rds::types::DbCluster {
        self.rt
            .block_on(
                aws.rds
                    .describe_db_clusters()
                    .db_cluster_identifier("orders-db-aurora")
                    .send(),
            )
            .unwrap()
            .db_clusters()[0]
            .clone()
    }

    fn finish(mut self) {
        drop(self.envoy.take());
        self.rt.block_on(self.plane.shutdown());
    }
}

impl Run {
    /// Each completed step or passed gate, seconds into the run.
    fn completed(&self) -> Vec<String> {
        let t0 = self.lines.first().map(|l| l.at).unwrap_or(0);
        self.lines
            .iter()
            .filter_map(|l| match &l.event {
                Event::StepCompleted { name, .. } | Event::GatePassed { name, .. } => {
                    Some(format!("{name} +{:.1}s", (l.at - t0) as f64 / 1000.0))
                }
                _ => None,
            })
            .collect()
    }

    /// Panics with what happened unless the run succeeded.
    fn assert_succeeded(&self, h: &MotoPg) {
        if matches!(
            self.report.as_ref().map(|r| &r.status),
            Ok(godwit_engine::RunStatus::Succeeded { .. })
        ) {
            return;
        }
        let log = h.log();
        let dropped: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("dropped"))
            .take(3)
            .collect();
        let why: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| match &l.event {
                Event::GatePoll { name, why, .. } | Event::GateTimedOut { name, why, .. } => {
                    Some(format!("{name}: {}", why.join("; ")))
                }
                Event::StepFailed { name, error } => Some(format!("{name} failed: {error}")),
                Event::AbortStarted { reason } => Some(format!("abort: {reason}")),
                _ => None,
            })
            .collect();
        panic!(
            "the standard runbook did not complete through the aws world on real servers\n\
             stopped: {}\nstatus: {:?}\nsteps completed: {:?}\nlast gate polls and failures:\n  {}\n\
             the harness dropped (security groups):\n  {}",
            self.stopped.clone().unwrap_or_default(),
            self.report.as_ref().map(|r| &r.status),
            self.completed(),
            why[why.len().saturating_sub(8)..].join("\n  "),
            dropped.join("\n  "),
        );
    }

    fn primitives(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.lines.iter().filter_map(|l| match &l.event {
            Event::Primitive { area, op, args, .. } => Some((area.as_str(), op.as_str(), args)),
            _ => None,
        })
    }

    /// The journaled result of gate `name` (it passed).
    fn gate_result(&self, name: &str) -> &Value {
        self.journal
            .iter()
            .find_map(|e| match e {
                Entry::GatePassed {
                    name: n, result, ..
                } if n == name => Some(result),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no gate {name:?} passed in the journal"))
    }
}

/// The `evidence.kind` of each check in a gate's journaled result — one check
/// (`#{ pass, why, evidence }`), an array of checks, or a map of named checks, the shapes
/// `gate` accepts.
fn evidence_kinds(result: &Value) -> Vec<String> {
    let kind = |c: &Value| {
        c.get("evidence")
            .and_then(|e| e.get("kind"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match result {
        Value::Array(checks) => checks.iter().filter_map(kind).collect(),
        Value::Object(m) if m.contains_key("pass") => kind(result).into_iter().collect(),
        Value::Object(m) => m.values().filter_map(kind).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn the_standard_runbook_runs_end_to_end_through_the_aws_world_with_nothing_scripted() {
    let mut stage = Stage::start();
    // godwit's own security group, godwit's address in it: the quarantine admits it, and
    // the aws settings name it.
    let godwit_group = stage.rt.block_on(async {
        stage
            .h
            .aws(stage.settings_credential_less(json!({})))
            .ec2
            .create_security_group()
            .group_name("godwit")
            .description("godwit's own")
            .vpc_id(&stage.vpc)
            .send()
            .await
            .unwrap()
            .group_id
            .unwrap()
    });
    stage.h.place("127.0.0.1".parse().unwrap(), &godwit_group);
    let aws = stage
        .h
        .aws(stage.settings(json!({ "security_group": godwit_group })));
    let run = stage.run(aws.clone(), &[], false);
    eprintln!("completed: {:?}", run.completed());
    run.assert_succeeded(&stage.h);

    // The quarantine admits exactly godwit's group on the database port.
    assert_eq!(
        stage.quarantine_rules(&aws),
        [format!(
            "tcp/Some(5433)-Some(5433) from {:?}, 0 CIDRs",
            [&godwit_group]
        )],
        "one ingress rule: the database port from godwit's group"
    );
    // IAM auth on the target, as on the source.
    let target = stage.target(&aws);
    assert_eq!(target.iam_database_authentication_enabled(), Some(true));
    // With database access both gates decide on SQL facts read on the source.
    for (gate, kind) in [
        ("source-sessions-ended", "sql-pg-stat-activity"),
        ("replica-caught-up", "source-walsender"),
    ] {
        let journaled = evidence_kinds(run.gate_result(gate));
        assert_eq!(journaled, [kind], "{gate}: {}", run.gate_result(gate));
    }
    // The sync gate decided on the source: nothing asked the target for a WAL position.
    let on_target: Vec<&str> = run
        .primitives()
        .filter(|(area, op, args)| {
            *area == "pg" && *op == "replay_lsn" && args["db"] == "orders-db-aurora"
        })
        .map(|(_, op, _)| op)
        .collect();
    assert!(
        on_target.is_empty(),
        "pg::replay_lsn on the target: {on_target:?}"
    );
    // The route leads to the target's writer endpoint on the target's own port.
    let view = stage.plane.describe("orders-db").unwrap();
    assert_eq!(
        view.spec.endpoints[0].addr,
        Addr::new(target.endpoint().unwrap(), target.port().unwrap() as u16),
        "{view:?}"
    );
    // Every acknowledged commit is on the target; writes went on after the switch.
    let r = stage.assert_no_commit_lost(&run);
    eprintln!(
        "with database access on moto: blackout {:.0} ms, {} commits acknowledged, 0 lost",
        r.blackout_ms, r.acked
    );
    stage.finish();
}

/// Issue 17 in the aws world: with no `db_user` in the [aws] settings the standard runbook
/// migrates from AWS APIs and CloudWatch alone, and never tries to reach a database.
#[test]
fn the_standard_runbook_migrates_credential_less_without_ever_connecting_to_a_database() {
    let mut stage = Stage::start();
    let aws = stage.h.aws(stage.settings_credential_less(json!({})));
    let access = godwit_stdlib::aws::iam::IamConnector::new(aws.clone()).access("orders-db");
    assert!(!access.available, "{access:?}");

    // The witnesses see godwit when it does connect: its connection through the door (from
    // 127.0.0.1, user and application_name godwit), and the server's log of it.
    let mark = stage.h.server_log_mark();
    let before = stage.h.arrivals().len();
    witness_godwit_once(&stage);
    let godwit_arrivals: Vec<_> = stage.h.arrivals()[before..]
        .iter()
        .filter(|a| is_godwit(a))
        .cloned()
        .collect();
    assert!(
        !godwit_arrivals.is_empty(),
        "the doors did not see godwit's connection: {:?}",
        stage.h.arrivals()
    );
    let logged = stage.h.server_logs_since(&mark);
    assert!(
        logged["orders-db"].contains("connection authorized: user=godwit"),
        "the source's log did not record godwit's connection:\n{}",
        logged["orders-db"]
    );

    // The run, from here on nothing of godwit's may reach a database.
    let mark = stage.h.server_log_mark();
    let before = stage.h.arrivals().len();
    let run = stage.run(aws.clone(), &[("unverified", Value::from("accept"))], true);
    eprintln!("completed: {:?}", run.completed());
    run.assert_succeeded(&stage.h);

    // The transcript: no database call at all, and the runbook did ask about access.
    let calls: Vec<String> = run
        .primitives()
        .filter(|(area, op, _)| is_database_call(area, op))
        .map(|(area, op, args)| format!("{area}::{op}({})", args["db"]))
        .collect();
    assert!(
        calls.is_empty(),
        "database calls in a credential-less run: {calls:?}"
    );
    assert!(
        run.primitives()
            .any(|(area, op, _)| area == "pg" && op == "access"),
        "the runbook never asked pg::access"
    );
    // Every CloudWatch series the runbook read is one the harness's feed publishes per
    // second: each was read with period 1 and answered datapoints.
    let mut series: std::collections::BTreeMap<String, (Vec<i64>, usize)> = Default::default();
    for l in &run.lines {
        if let Event::Primitive {
            area,
            op,
            args,
            ok: true,
            result,
            ..
        } = &l.event
            && area == "cw"
            && op == "metric_series"
        {
            let e = series
                .entry(args["name"].as_str().unwrap_or("?").to_string())
                .or_default();
            e.0.push(args["period"].as_i64().unwrap_or(-1));
            e.1 = e.1.max(result.as_array().map_or(0, Vec::len));
        }
    }
    assert_eq!(
        series.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "DatabaseConnections",
            "FreeStorageSpace",
            "OldestReplicationSlotLag",
            "RDSToAuroraPostgreSQLReplicaLag",
            "TransactionLogsGeneration",
        ],
        "the series a credential-less run reads"
    );
    for (name, (periods, most)) in &series {
        assert!(
            periods.iter().all(|p| *p == 1),
            "{name} read with periods {periods:?}"
        );
        assert!(*most > 0, "{name}: never a datapoint");
    }
    // The doors: every connection during the run was Envoy's (the application's), none from
    // godwit's address or with its names — dropped attempts included.
    let arrivals = stage.h.arrivals()[before..].to_vec();
    let foreign: Vec<_> = arrivals
        .iter()
        .filter(|a| a.peer.to_string() != ENVOY_UPSTREAM || is_godwit(a))
        .collect();
    assert!(
        foreign.is_empty(),
        "connections to the databases during the credential-less run not from Envoy: {foreign:?}"
    );
    assert!(
        arrivals.iter().any(|a| a.user.as_deref() == Some("app")),
        "the doors saw no application connection during the run: the witness saw nothing"
    );
    // The servers: no connection of godwit's authorized (the application's are, on the
    // source before the fence and on the target after the switch).
    let logged = stage.h.server_logs_since(&mark);
    for (id, log) in &logged {
        let godwit: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("connection authorized")
                    && (l.contains("user=godwit") || l.contains("application_name=godwit "))
            })
            .collect();
        assert!(godwit.is_empty(), "{id} authorized godwit: {godwit:?}");
    }
    assert!(
        logged
            .values()
            .any(|l| l.contains("connection authorized: user=app")),
        "no server logged the application's connections during the run: {:?}",
        logged.keys().collect::<Vec<_>>()
    );

    // The journal: both gates decided by CloudWatch evidence, and the transcript says so.
    for (gate, kind) in [
        ("source-sessions-ended", "cloudwatch-database-connections"),
        ("replica-caught-up", "cloudwatch-0-segment"),
    ] {
        let journaled = evidence_kinds(run.gate_result(gate));
        assert!(
            journaled.iter().any(|k| k == kind),
            "{gate} journaled as decided by {journaled:?}, not {kind}: {}",
            run.gate_result(gate)
        );
        assert!(
            journaled.iter().all(|k| k.starts_with("cloudwatch-")),
            "{gate} decided by evidence other than CloudWatch's: {journaled:?}"
        );
        let shown = run.lines.iter().find_map(|l| match &l.event {
            Event::GatePassed { name, evidence, .. } if name == gate => Some(evidence),
            _ => None,
        });
        assert_eq!(shown, Some(&journaled), "{gate} in the transcript");
    }
    // The quarantine admits no one: godwit needs no way in.
    assert_eq!(stage.quarantine_rules(&aws), Vec::<String>::new());
    let r = stage.assert_no_commit_lost(&run);
    eprintln!(
        "credential-less on moto: blackout {:.0} ms, {} commits acknowledged, 0 lost",
        r.blackout_ms, r.acked
    );
    stage.finish();
}

/// godwit with database access reads the source once (`pg::current_lsn`), and its session
/// ends before this returns (it would count in `DatabaseConnections`, keeping the fence
/// closed).
fn witness_godwit_once(stage: &Stage) {
    let world = stage.h.world(stage.h.aws(stage.settings(json!({}))));
    let runner = world.runner(Arc::new(MemoryStore::new()), stage.rt.handle().clone());
    let mut s = Session::new(&runner);
    let lsn = s
        .eval(r#"pg::current_lsn("orders-db")"#, "<test>")
        .unwrap_or_else(|e| panic!("godwit with database access: {e:?}"));
    assert!(!lsn.is_unit(), "pg::current_lsn returned nothing");
    drop(s);
    drop(runner);
    drop(world);
    stage.rt.block_on(async {
        let c = stage.h.admin("orders-db", "postgres").await;
        for _ in 0..100 {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'godwit'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if n == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("godwit's session on orders-db outlived its world by 10 s");
    });
}

/// A connection of godwit's: from its address, or naming its user or application.
fn is_godwit(a: &godwit_tests::motopg::Arrival) -> bool {
    a.peer.to_string() == "127.0.0.1"
        || a.user.as_deref() == Some("godwit")
        || a.application_name.as_deref() == Some("godwit")
}

fn wait_available(rt: &tokio::runtime::Runtime, aws: &Aws, id: &str) {
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
fn wait_for_datapoints(rt: &tokio::runtime::Runtime, aws: &Aws, metric: &str, id: &str, n: usize) {
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
