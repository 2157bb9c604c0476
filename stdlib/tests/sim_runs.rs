//! Runbooks × scenarios through a real `Runner` on `World::sim`: the standard cutover keeps
//! every invariant; unsafe orders break one and fail the run with the report; faults surface
//! as the errors a runbook must handle.

use std::sync::Arc;

use godwit_engine::journal::memory::MemoryStore;
use godwit_engine::{RunStatus, StartRequest};
use godwit_stdlib::sim::Sim;
use godwit_stdlib::sim::scenario::Scenario;
use godwit_stdlib::sim::world::sim_world;

fn run_in(scenario: &str, patch: impl FnOnce(&mut Scenario), source: &str) -> (RunStatus, Sim) {
    let mut sc = Scenario::load(scenario).unwrap();
    patch(&mut sc);
    sc.validate().unwrap();
    let (world, sim) = sim_world(sc);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rb.rhai");
    std::fs::write(&path, source).unwrap();
    let runner = world.runner(Arc::new(MemoryStore::new()), rt.handle().clone());
    let report = runner
        .start(StartRequest {
            runbook: path,
            cluster: "orders-db".into(),
            params: serde_json::Map::new(),
            run_id: Some("r1".into()),
        })
        .unwrap();
    (report.status, sim)
}

fn reason(status: &RunStatus) -> String {
    match status {
        RunStatus::RolledBack { reason, .. } => reason.clone(),
        other => panic!("expected a failed run, got {other:?}"),
    }
}

/// The standard flow, condensed: replica, fence (hold, quarantine, reboot, prove), sync gate
/// on the 0↔64 MB rule, promote, release to Aurora.
const CUTOVER: &str = r#"
let src = step("describe", || rds::describe_instance("orders-db"));
step("create-replica", || {
    rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: src.instance_class })
});
step("wait-replica", || rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" }));
step("hold", || {
    route::switch_route("orders-db", "orders-db", #{ hold: true });
    route::wait_until_acked("orders-db", #{})
});
let me = step("access", || pg::access("orders-db"));
let q = step("quarantine", || ec2::ensure_quarantine_group(src.vpc_id, "godwit-quarantine",
    #{ admit: if me.security_group == () { [] } else { [me.security_group] }, port: src.port }));
step("strip-groups", || {
    rds::wait_until_instance_available("orders-db", #{});
    rds::set_security_groups("orders-db", [q.id])
});
step("reboot", || {
    rds::wait_until_instance_available("orders-db", #{});
    rds::reboot_instance("orders-db");
    rds::wait_until_instance_available("orders-db", #{ timeout: "15m", every: "10s" })
});
let fence = step("fence-time", || now());
step("no-backends", || pg::wait_until_no_application_backends("orders-db", #{}));
gate("caught-up", #{ every: "1m", timeout: "30m" }, || {
    let q = #{ dimensions: #{ DBInstanceIdentifier: "orders-db" }, since: fence - 1800 };
    q.name = "OldestReplicationSlotLag";
    let slot = cw::metric_series(q);
    let rq = #{ name: "RDSToAuroraPostgreSQLReplicaLag",
                dimensions: #{ DBClusterIdentifier: "orders-aurora" }, since: fence - 1800 };
    let replica = cw::metric_series(rq);
    let slots = pg::replication_slots("orders-db");
    lag::caught_up_after_fence(slot, replica, fence, slots, #{ min_datapoints: 1 })
});
step("promote", || {
    rds::promote_cluster("orders-aurora");
    rds::wait_until_cluster_promoted("orders-aurora", #{ timeout: "30m" })
});
step("release", || {
    route::switch_route("orders-db", "orders-aurora", #{ drain: true });
    route::wait_until_acked("orders-db", #{})
});
step("settle", || { sleep("2m"); route::active_connections("orders-db") })
"#;

#[test]
fn the_standard_cutover_keeps_every_invariant() {
    for scenario in ["idle-source", "busy-source"] {
        let (status, sim) = run_in(scenario, |_| {}, CUTOVER);
        let st = sim.lock();
        assert!(
            matches!(status, RunStatus::Succeeded { .. }),
            "{scenario}: {status:?}\nviolations: {:?}",
            st.violations
        );
        assert!(st.violations.is_empty(), "{:?}", st.violations);
        let on_aurora = st
            .sessions
            .iter()
            .filter(|s| s.application && s.db == "orders-aurora")
            .count() as u32;
        assert_eq!(
            on_aurora, st.sc.source.sessions,
            "{scenario}: clients reconnected to Aurora"
        );
        assert!(st.writable("orders-aurora"));
    }
}

#[test]
fn a_stale_logical_slot_keeps_the_sync_gate_closed() {
    let (status, _) = run_in("stale-logical-slot", |_| {}, CUTOVER);
    let why = reason(&status);
    assert!(
        why.contains("caught-up") && why.contains("debezium_orders"),
        "{why}"
    );
}

#[test]
fn promoting_without_the_fence_loses_writes_and_fails_the_run() {
    let rb = r#"
step("create", || {
    rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" })
});
step("promote", || {
    rds::promote_cluster("orders-aurora");
    rds::wait_until_cluster_promoted("orders-aurora", #{})
});
step("after", || rds::describe_cluster("orders-aurora"));
"#;
    let (status, sim) = run_in("busy-source", |_| {}, rb);
    let why = reason(&status);
    assert!(why.contains("invariant"), "{why}");
    let st = sim.lock();
    let names: Vec<&str> = st.violations.iter().map(|v| v.invariant.as_str()).collect();
    assert!(names.contains(&"no-write-after-fence"), "{names:?}");
}

#[test]
fn releasing_the_route_to_an_unpromoted_replica_is_reported() {
    let rb = r#"
step("create", || {
    rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" })
});
step("switch", || { route::switch_route("orders-db", "orders-aurora", #{}); sleep("10s"); });
step("after", || route::describe_route("orders-db"));
"#;
    let (status, sim) = run_in("idle-source", |_| {}, rb);
    assert!(reason(&status).contains("route-serves-writable"));
    assert_eq!(sim.lock().violations.len(), 1);
}

#[test]
fn a_hung_promotion_times_out_with_the_last_status() {
    let rb = r#"
step("create", || {
    rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" })
});
step("promote", || {
    rds::promote_cluster("orders-aurora");
    try {
        rds::wait_until_cluster_promoted("orders-aurora", #{ timeout: "45m" });
        throw "promoted?";
    } catch (e) {
        if e.kind != "Timeout" { throw e; }
    }
    rds::describe_cluster("orders-aurora").status
});
"#;
    let (status, _) = run_in("promote-hang", |sc| sc.source.sessions = 0, rb);
    match status {
        RunStatus::Succeeded { result } => assert_eq!(result, "promoting"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn faults_surface_as_the_errors_runbooks_handle() {
    use godwit_stdlib::sim::scenario::{Fault, FaultKind};
    let fault = |kind, at: &str, target: Option<&str>| Fault {
        kind,
        at: Some(at.into()),
        step: None,
        lasts: Some("1h".into()),
        target: target.map(String::from),
        value: None,
    };
    let create = r#"
step("create", || {
    rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" })
});
"#;
    let (s, _) = run_in(
        "idle-source",
        |sc| {
            sc.faults.push(fault(
                FaultKind::TerminalClusterState,
                "0s",
                Some("incompatible-parameters"),
            ))
        },
        create,
    );
    assert!(
        reason(&s).contains("terminal state incompatible-parameters"),
        "{}",
        reason(&s)
    );
    let (s, _) = run_in(
        "idle-source",
        |sc| sc.faults.push(fault(FaultKind::AwsThrottling, "0s", None)),
        create,
    );
    assert!(reason(&s).contains("Throttled"), "{}", reason(&s));
    let (s, _) = run_in(
        "idle-source",
        |sc| {
            sc.faults
                .push(fault(FaultKind::EncryptionMismatch, "0s", None))
        },
        create,
    );
    assert!(
        reason(&s).contains("inaccessible-encryption-credentials"),
        "{}",
        reason(&s)
    );
    let nack = r#"
step("hold", || { route::switch_route("orders-db", "orders-db", #{ hold: true }); route::wait_until_acked("orders-db", #{}) });
"#;
    let (s, _) = run_in(
        "busy-source",
        |sc| {
            sc.faults
                .push(fault(FaultKind::EnvoyNack, "0s", Some("envoy-b")))
        },
        nack,
    );
    assert!(reason(&s).contains("envoy-b NACKed"), "{}", reason(&s));
    let (s, _) = run_in(
        "busy-source",
        |sc| {
            sc.faults
                .push(fault(FaultKind::EnvoyNodeDisconnect, "0s", Some("envoy-b")))
        },
        nack,
    );
    // The scenario's nodes are the route's expected set: a disconnected one is absent, and the
    // wait fails naming it instead of succeeding without it.
    let why = reason(&s);
    assert!(
        why.contains("wait_until_acked") && why.contains("(absent: envoy-b)"),
        "{why}"
    );
}

#[test]
fn a_fault_bound_to_a_step_fires_when_that_step_runs() {
    let rb = r#"
let before = step("before", || pg::application_backends("orders-db").len());
let status = step("crash-here", || rds::describe_instance("orders-db").status);
let after = step("after", || {
    rds::wait_until_instance_available("orders-db", #{ every: "10s" });
    sleep("10s");
    pg::application_backends("orders-db").len()
});
#{ before: before, status: status, after: after }
"#;
    let (s, sim) = run_in(
        "busy-source",
        |sc| {
            sc.faults.push(godwit_stdlib::sim::scenario::Fault {
                kind: godwit_stdlib::sim::scenario::FaultKind::EngineCrash,
                at: None,
                step: Some("crash-here".into()),
                lasts: None,
                target: None,
                value: None,
            })
        },
        rb,
    );
    match s {
        RunStatus::Succeeded { result } => {
            assert_eq!(result["before"], 40);
            assert_eq!(
                result["status"], "rebooting",
                "the crash happened as the step began"
            );
            assert_eq!(result["after"], 40, "clients reconnected after the restart");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        sim.lock()
            .log
            .iter()
            .any(|(_, l)| l.contains("fault engine-crash fired"))
    );
}

#[test]
fn same_scenario_same_runbook_same_world() {
    let fingerprint = || {
        let (status, sim) = run_in("busy-source", |_| {}, CUTOVER);
        let st = sim.lock();
        format!(
            "{:?}\n{:?}\n{:?}\n{}",
            serde_json::to_string(&status).unwrap(),
            st.log,
            st.metrics.all(),
            st.lsn
        )
    };
    assert_eq!(fingerprint(), fingerprint());
}

mod crash {
    //! Crash anywhere, resume in the same (in-process) world: the cutover still ends with one
    //! replica, promoted, the route on it, and every invariant kept — the primitives' check-
    //! then-act idempotency at work.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Once};

    use godwit_engine::journal::memory::MemoryStore;
    use godwit_engine::transcript::{Event, Line, Sink};
    use godwit_engine::{Cancel, EngineError, Limits, RunStatus, Runner, StartRequest};
    use godwit_stdlib::sim::scenario::Scenario;
    use godwit_stdlib::sim::world::{sim_world, sim_world_persistent};

    const CRASH: &str = "injected crash";

    struct CrashAt {
        nth: usize,
        seen: AtomicUsize,
    }

    impl Sink for CrashAt {
        fn line(&self, line: &Line) {
            let counts = matches!(
                line.event,
                Event::Primitive { .. } | Event::StepCompleted { .. }
            );
            if counts && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
                panic!("{CRASH}");
            }
        }
    }

    fn quiet() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let msg = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_default();
                if !msg.contains(CRASH) {
                    default(info);
                }
            }));
        });
    }

    /// Run CUTOVER on busy-source, crashing at the `nth` primitive call or step completion
    /// (0: never), resuming until it ends. Returns the status, the crash count and the world.
    /// With `state`, every resume builds a fresh world from the persisted snapshot, as
    /// another process would.
    fn drive(nth: usize) -> (RunStatus, usize, godwit_stdlib::sim::Sim) {
        drive_in(nth, None)
    }

    fn drive_in(
        nth: usize,
        state: Option<&std::path::Path>,
    ) -> (RunStatus, usize, godwit_stdlib::sim::Sim) {
        quiet();
        let make = || match state {
            Some(p) => sim_world_persistent(Scenario::load("busy-source").unwrap(), p).unwrap(),
            None => sim_world(Scenario::load("busy-source").unwrap()),
        };
        let (world, sim) = make();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cutover.rhai");
        std::fs::write(&path, super::CUTOVER).unwrap();
        let store = Arc::new(MemoryStore::new());
        let runner = |world: &godwit_stdlib::world::World, sink: Option<Arc<dyn Sink>>| Runner {
            store: store.clone(),
            clock: world.clock.clone(),
            handle: rt.handle().clone(),
            limits: Limits::default(),
            cancel: Cancel::new(),
            sinks: sink.into_iter().collect(),
            plugins: world.plugins(),
            world: world.name.clone(),
        };
        let mut sim = sim;
        let crash: Arc<dyn Sink> = Arc::new(CrashAt {
            nth,
            seen: AtomicUsize::new(0),
        });
        let first = runner(&world, Some(crash));
        let mut crashes = 0;
        let mut outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            first.start(StartRequest {
                runbook: path.clone(),
                cluster: "orders-db".into(),
                params: serde_json::Map::new(),
                run_id: Some("r1".into()),
            })
        }));
        loop {
            match outcome {
                Ok(Ok(report)) => return (report.status, crashes, sim),
                Ok(Err(EngineError::AlreadyFinished { .. })) => {
                    return (
                        RunStatus::Succeeded {
                            result: serde_json::Value::Null,
                        },
                        crashes,
                        sim,
                    );
                }
                Ok(Err(e)) => panic!("crash at {nth}: resume failed: {e}"),
                Err(_) => {
                    crashes += 1;
                    let again = match state {
                        Some(_) => {
                            let (w, s) = make();
                            sim = s;
                            runner(&w, None)
                        }
                        None => runner(&world, None),
                    };
                    outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        again.resume("r1", false)
                    }));
                }
            }
        }
    }

    #[test]
    fn crash_anywhere_then_resume_ends_in_the_same_world() {
        let (status, crashes, sim) = drive(0);
        assert!(matches!(status, RunStatus::Succeeded { .. }) && crashes == 0);
        let events = sim.lock().log.len();
        drop(sim);
        // Count the crash points of the reference run, then crash at every one of them.
        let mut n = 1;
        loop {
            let (status, crashes, sim) = drive(n);
            let st = sim.lock();
            if crashes == 0 {
                assert!(n > 20, "too few crash points: {n}");
                break;
            }
            assert!(
                matches!(status, RunStatus::Succeeded { .. }),
                "crash at {n}: {status:?}, violations {:?}",
                st.violations
            );
            assert!(
                st.violations.is_empty(),
                "crash at {n}: {:?}",
                st.violations
            );
            assert_eq!(
                st.rds.clusters.len(),
                1,
                "crash at {n}: one replica cluster"
            );
            assert!(st.writable("orders-aurora"), "crash at {n}: promoted");
            let reboots = st
                .log
                .iter()
                .filter(|(_, l)| l.contains("rebooting"))
                .count();
            assert_eq!(reboots, 1, "crash at {n}: the source rebooted once");
            assert!(
                st.log.len() >= events - 5,
                "crash at {n}: the world played out"
            );
            n += 1;
        }
    }

    #[test]
    fn crash_then_resume_in_another_process_continues_in_the_persisted_world() {
        let dir = tempfile::tempdir().unwrap();
        for n in (1..56).step_by(3) {
            let path = dir.path().join(format!("sim-{n}.json"));
            let (status, crashes, sim) = drive_in(n, Some(&path));
            let st = sim.lock();
            assert!(crashes > 0, "crash at {n} happened");
            assert!(
                matches!(status, RunStatus::Succeeded { .. }),
                "crash at {n}: {status:?}, violations {:?}",
                st.violations
            );
            assert!(
                st.violations.is_empty(),
                "crash at {n}: {:?}",
                st.violations
            );
            assert_eq!(
                st.rds.clusters.len(),
                1,
                "crash at {n}: one replica cluster"
            );
            assert!(st.writable("orders-aurora"), "crash at {n}: promoted");
            let reboots = st
                .log
                .iter()
                .filter(|(_, l)| l.contains("rebooting"))
                .count();
            assert_eq!(reboots, 1, "crash at {n}: the source rebooted once");
        }
        // A snapshot of another scenario is refused, naming both.
        let path = dir.path().join("sim-1.json");
        let e = sim_world_persistent(Scenario::load("idle-source").unwrap(), &path).unwrap_err();
        assert!(
            e.contains("busy-source") && e.contains("idle-source"),
            "{e}"
        );
    }
}

#[test]
fn an_absent_envoy_node_stops_the_cutover_before_the_fence() {
    let (status, sim) = run_in("envoy-node-disconnect", |_| {}, CUTOVER);
    let why = reason(&status);
    assert!(why.contains("(absent: envoy-c)"), "{why}");
    let st = sim.lock();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    // Nothing was fenced: every client, envoy-c's included, still works against the source.
    assert!(st.writable("orders-db"));
    let on_source = st
        .sessions
        .iter()
        .filter(|s| s.application && s.db == "orders-db")
        .count();
    assert_eq!(on_source, 20);
}

/// A runbook that ignores absent nodes (only reads the route instead of waiting until every
/// expected node ACKed) is still safe in the simulator, though not available: the node that
/// never saw the switch keeps forwarding to the old target, which the fence keeps closed.
#[test]
fn a_disconnected_envoy_node_keeps_forwarding_to_the_old_target() {
    let careless = CUTOVER.replace(
        r#"route::wait_until_acked("orders-db", #{})"#,
        r#"route::describe_route("orders-db")"#,
    );
    let (status, sim) = run_in("envoy-node-disconnect", |_| {}, &careless);
    assert!(matches!(status, RunStatus::Succeeded { .. }), "{status:?}");
    let st = sim.lock();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let on = |db: &str| {
        st.sessions
            .iter()
            .filter(|s| s.application && s.db == db)
            .count()
    };
    // envoy-c (6 of 20 clients) never saw the switch: its clients still go to the source,
    // which the fence keeps closed — they fail to connect rather than write to the old primary.
    assert_eq!(on("orders-aurora"), 14);
    assert_eq!(on("orders-db"), 0);
    let per_node = st.clients_per_node();
    assert_eq!(per_node[2], (6, 0, Some("orders-db".to_string())));
}

#[test]
fn bad_arguments_name_the_key_the_allowed_ones_and_the_line() {
    let cases = [
        (
            r#"rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine: "15.4" })"#,
            "options.engine is not an option of rds::create_replica_cluster",
        ),
        (
            r#"cw::metric_series(#{ name: "DatabaseConnections", dimensions: #{ DBInstanceIdentifier: "orders-db" }, period: 90 })"#,
            "query.period is 90; CloudWatch offers 1, 5, 10, 30 or a multiple of 60",
        ),
        (
            r#"rds::wait_until_instance_available("orders-db", #{ timeout: "soon" })"#,
            "options.timeout is string",
        ),
        (
            r#"pg::terminate_backends("orders-db", ["12"])"#,
            "pids must be an array of integers",
        ),
        (
            r#"route::switch_route("orders-db", "orders-db", #{ hold: "yes" })"#,
            "options.hold is string",
        ),
    ];
    for (call, want) in cases {
        let rb = format!("let x = 1;\nstep(\"bad\", || {{\n    {call}\n}});\n");
        let (status, _) = run_in("idle-source", |_| {}, &rb);
        match &status {
            RunStatus::RolledBack { reason, report, .. } => {
                assert!(reason.contains(want), "{call}: {reason}");
                let at = report
                    .as_ref()
                    .and_then(|r| r.location.as_ref())
                    .map(|l| l.line);
                assert_eq!(at, Some(3), "{call}: the report quotes the runbook line");
            }
            other => panic!("{call}: {other:?}"),
        }
    }
}

/// Every built-in scenario under the standard cutover: how it must end, and why.
#[test]
fn every_builtin_scenario_plays_out_as_designed() {
    let expect: &[(&str, Option<&str>)] = &[
        // This cutover neither audits nor checks queries nor moves a readers' route: the
        // standard runbook's outcomes for these are in tests/tests/runbooks.rs.
        ("audit-divergence", None),
        ("audit-lagging-replica", None),
        // Steps retry Throttled errors by default (8 attempts, backoff to 5 min), outlasting the
        // 10-minute throttling window.
        ("aws-throttling", None),
        ("busy-source", None),
        ("cloudwatch-gap", None),
        // This cutover reads the source with SQL; a credential-less world refuses it
        // (the standard runbook's credential-less path: tests/tests/runbooks.rs).
        ("credential-less-busy", Some("needs database access")),
        ("credential-less-cdc", Some("needs database access")),
        (
            "credential-less-gap-across-fence",
            Some("needs database access"),
        ),
        ("credential-less-idle", Some("needs database access")),
        (
            "credential-less-late-datapoint",
            Some("needs database access"),
        ),
        ("credential-less-stale-slot", Some("needs database access")),
        // This cutover does not compare data; the standard runbook's validate-at-fence rolls
        // back on it (tests/tests/snapshots/rds-to-aurora__data-divergence.snap).
        ("data-divergence", None),
        (
            "encryption-mismatch",
            Some("inaccessible-encryption-credentials"),
        ),
        ("engine-crash", None), // bound to a step the cutover does not have
        ("envoy-nack", Some("envoy-b NACKed")),
        // envoy-c is expected and absent: the hold's wait fails before the fence.
        ("envoy-node-disconnect", Some("(absent: envoy-c)")),
        ("idle-source", None),
        // The logical path's scenarios: this physical cutover needs neither logical decoding
        // nor keys, and replays the source's DDL like any change.
        ("logical-ddl-during-copy", None),
        ("logical-no-primary-key", None),
        ("logical-ready", None),
        ("long-transaction-at-fence", None), // bound to a step the cutover does not have
        ("preflight-failures", Some("automated backups disabled")),
        (
            "promote-failure",
            Some("cluster orders-aurora promoted not reached"),
        ),
        (
            "promote-hang",
            Some("cluster orders-aurora promoted not reached"),
        ),
        ("query-error-on-target", None),
        // The recorded backfill outruns the replica (176 GiB behind): this cutover has no lag
        // gate before its fence, so its catch-up gate times out after it and it rolls back (the
        // standard runbook's validation window refuses to fence: tests/tests/runbooks.rs).
        (
            "recorded-incident",
            Some("gate 'caught-up' still closed after 30m"),
        ),
        ("replica-slow-at-peak", None),
        ("replica-stall", None),
        // Faults of the rollback's reverse stream: this cutover starts none.
        ("reverse-broken", None),
        ("reverse-lag", None),
        ("shadow-reads", None),
        ("shadow-reads-failure", None),
        ("stale-logical-slot", Some("debezium_orders")),
        ("stale-slot-at-preflight", Some("debezium_orders")),
        ("target-ddl", None), // the same: no reverse stream to break
        (
            "terminal-cluster-state",
            Some("terminal state incompatible-parameters"),
        ),
    ];
    let names: Vec<&str> = expect.iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        godwit_stdlib::sim::world::builtin_scenarios(),
        "one row per built-in"
    );
    for (scenario, failure) in expect {
        let (status, sim) = run_in(scenario, |_| {}, CUTOVER);
        let st = sim.lock();
        assert!(st.violations.is_empty(), "{scenario}: {:?}", st.violations);
        match (failure, &status) {
            (None, RunStatus::Succeeded { .. }) => {}
            (Some(why), RunStatus::RolledBack { reason, .. }) => {
                assert!(reason.contains(why), "{scenario}: {reason}");
            }
            _ => panic!("{scenario}: expected {failure:?}, got {status:?}"),
        }
    }
}

/// The simulator's CloudWatch data read by the `lag` analyses give the verdicts the scenarios
/// are built to produce: the simulator and the analysis agree on what the numbers mean.
#[test]
fn lag_analyses_read_the_simulated_metrics_as_intended() {
    let peak = |scenario: &str| {
        let rb = r#"
step("replica", || {
    rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
    rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" })
});
step("until-after-peak", || { while now() % 86400 < 16 * 3600 { sleep("30m"); } });
step("judge", || {
    let since = now() - 4 * 3600;
    let slot = cw::metric_series(#{ name: "OldestReplicationSlotLag",
        dimensions: #{ DBInstanceIdentifier: "orders-db" }, since: since });
    let replica = cw::metric_series(#{ name: "RDSToAuroraPostgreSQLReplicaLag",
        dimensions: #{ DBClusterIdentifier: "orders-aurora" }, since: since });
    let wal = cw::metric_series(#{ name: "TransactionLogsGeneration",
        dimensions: #{ DBInstanceIdentifier: "orders-db" }, since: since });
    lag::keeps_up_at_peak(slot, replica, wal, #{}).verdict
})
"#;
        match run_in(scenario, |_| {}, rb).0 {
            RunStatus::Succeeded { result } => result.as_str().unwrap().to_string(),
            other => panic!("{scenario}: {other:?}"),
        }
    };
    assert_eq!(peak("busy-source"), "keeps-up");
    assert_eq!(peak("replica-slow-at-peak"), "falling-behind");

    let classify = |scenario: &str| {
        let rb = r#"
step("wait", || sleep("3h"));
step("judge", || {
    let since = now() - 3600;
    let slot = cw::metric_series(#{ name: "OldestReplicationSlotLag",
        dimensions: #{ DBInstanceIdentifier: "orders-db" }, since: since });
    let replica = [];
    for p in slot { replica.push(#{ t: p.t, v: 0 }); }
    lag::classify(slot, replica, pg::replication_slots("orders-db"), #{}).verdict
})
"#;
        match run_in(scenario, |_| {}, rb).0 {
            RunStatus::Succeeded { result } => result.as_str().unwrap().to_string(),
            other => panic!("{scenario}: {other:?}"),
        }
    };
    assert_eq!(classify("idle-source"), "idle-oscillation");
    assert_eq!(classify("stale-logical-slot"), "stale-slot");
}

/// The CDC path of the flow: pause, record, cut over, recreate the slot on Aurora (which needs
/// rds.logical_replication=1 in the cluster group), resume there; the gap to backfill is known.
#[test]
fn cdc_consumers_move_to_aurora_with_a_known_gap() {
    let cdc_cutover = |cluster_params: &str| {
        format!(
            r#"
let groups = step("param-groups", || rds::create_parameter_groups(#{{
    cluster_group: "orders-aurora-cluster", instance_group: "orders-aurora-instance",
    family: "aurora-postgresql15", parameters: #{{}}, cluster_parameters: {cluster_params} }}));
step("settle", || sleep("5m"));
step("replica", || {{
    rds::create_replica_cluster("orders-aurora", "orders-db",
        #{{ engine_version: "15.4", parameter_group: groups.cluster_group }});
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{{ instance_class: "db.r6g.xlarge" }});
    rds::wait_until_cluster_available("orders-aurora", #{{ timeout: "12h" }})
}});
let at = step("pause-cdc", || {{ cdc::pause_consumer("orders-cdc"); cdc::record_positions() }});
step("fence", || {{
    route::switch_route("orders-db", "orders-db", #{{ hold: true }});
    route::wait_until_acked("orders-db", #{{}});
    pg::block_logins("orders-db", ["orders_app"]);
    pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
    pg::wait_until_no_application_backends("orders-db", #{{}});
    let fence = pg::current_lsn("orders-db").lsn_bytes;
    // Where the Aurora replica stands, read on the source (Aurora has no pg_last_wal_replay_lsn).
    let behind = || {{ let c = pg::replication_connections("orders-db"); c.is_empty() || c.some(|s| s.replay_lsn_bytes < fence) }};
    while behind.call() {{ sleep("5s"); }}
}});
step("promote", || {{ rds::promote_cluster("orders-aurora"); rds::wait_until_cluster_promoted("orders-aurora", #{{}}) }});
step("release", || {{ route::switch_route("orders-db", "orders-aurora", #{{ drain: true }}); route::wait_until_acked("orders-db", #{{}}) }});
let slots = step("cdc-slots", || cdc::create_equivalent_slots("orders-aurora", at.map(|p| p.slot)));
let c = step("resume-cdc", || cdc::resume_consumer("orders-cdc", #{{ db: "orders-aurora", slot: slots[0].slot_name }}));
#{{ recorded: at[0].confirmed_flush_lsn, consistent_point: slots[0].consistent_point, consumer: c }}
"#
        )
    };
    let (status, sim) = run_in(
        "busy-source",
        |_| {},
        &cdc_cutover(r#"#{ "rds.logical_replication": "1" }"#),
    );
    let RunStatus::Succeeded { result } = status else {
        panic!("{status:?}")
    };
    assert_eq!(result["consumer"]["db"], "orders-aurora");
    assert_eq!(result["consumer"]["state"], "running");
    assert_eq!(result["consumer"]["position"], result["consistent_point"]);
    assert!(sim.lock().violations.is_empty());

    let (status, _) = run_in("busy-source", |_| {}, &cdc_cutover("#{}"));
    match status {
        RunStatus::RolledBack { reason, .. } => {
            assert!(reason.contains("rds.logical_replication=1"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

/// The AWS rules the standard flow depends on (docs/aws.md, "The AWS rules the flow depends
/// on"), each shown to hold in the simulator: a runbook that would fail on AWS fails here.
mod aws_rules {
    use super::*;

    /// Run `source` as one step (world calls run only inside one) and expect it to succeed:
    /// the script's own asserts decide.
    fn succeeds(scenario: &str, source: &str) {
        let source = format!("step(\"rule\", || {{\n{source}\n}});");
        let (status, _) = run_in(scenario, |_| {}, &source);
        assert!(matches!(status, RunStatus::Succeeded { .. }), "{status:?}");
    }

    /// Rule 1: a group with no inbound rule admits no new connection — godwit's included;
    /// admitting godwit's group on the database port lets godwit in and nobody else.
    #[test]
    fn a_deny_all_quarantine_locks_godwit_out_after_the_reboot() {
        succeeds(
            "busy-source",
            r#"
let src = rds::describe_instance("orders-db");
let me = pg::access("orders-db");
assert(pg::application_backends("orders-db").len() > 0, "the application is connected");
let q = ec2::ensure_quarantine_group(src.vpc_id, "deny-all");
rds::set_security_groups("orders-db", [q.id]);
rds::wait_until_security_groups_active("orders-db", #{});
rds::reboot_instance("orders-db");
rds::wait_until_instance_available("orders-db", #{});
let e = #{};
try { pg::application_backends("orders-db"); } catch (err) { e = err; }
assert_eq(e.kind, "Timeout");
assert(e.message.contains(`admits godwit's ${me.security_group} on port ${src.port}`), e.message);
let q = ec2::ensure_quarantine_group(src.vpc_id, "deny-all",
    #{ admit: [me.security_group], port: src.port });
assert_eq(q.ingress, [`tcp/${src.port} from ${me.security_group}`]);
assert_eq(pg::application_backends("orders-db"), []);
"#,
        );
    }

    /// Rule 6: a security-group change is applied asynchronously: until the new groups are
    /// `active` the old ones still admit the application, so sessions ended before then come
    /// back; after `wait_until_security_groups_active` they cannot.
    #[test]
    fn a_quarantine_is_in_force_only_once_active() {
        succeeds(
            "busy-source",
            r#"
let src = rds::describe_instance("orders-db");
let me = pg::access("orders-db");
let q = ec2::ensure_quarantine_group(src.vpc_id, "godwit-quarantine",
    #{ admit: [me.security_group], port: src.port });
let i = rds::set_security_groups("orders-db", [q.id]);
assert_eq(i.security_groups_pending, [q.id]);
pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
sleep("5s");
assert(pg::application_backends("orders-db").len() > 0, "the old groups still admit the application");
let i = rds::wait_until_security_groups_active("orders-db", #{});
assert_eq(i.security_groups_pending, []);
pg::terminate_backends("orders-db", pg::application_backends("orders-db").map(|b| b.pid));
pg::wait_until_no_application_backends("orders-db", #{ timeout: "1m" });
sleep("1m");
assert_eq(pg::application_backends("orders-db"), []);
"#,
        );
    }

    /// Rule 3: Aurora refuses `pg_last_wal_replay_lsn()`; the replica's position is read on
    /// the source, in the source's own WAL.
    #[test]
    fn the_replicas_position_is_read_on_the_source() {
        succeeds(
            "busy-source",
            r#"
rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
let e = #{};
try { pg::replay_lsn("orders-aurora"); } catch (err) { e = err; }
assert_eq(e.kind, "Invalid");
sleep("1m");
let senders = pg::replication_connections("orders-db");
assert_eq(senders.len(), 1);
assert(senders[0].replay_lsn_bytes <= pg::current_lsn("orders-db").lsn_bytes, "in the source's WAL");
"#,
        );
    }

    /// Rule 4: `CreateDBCluster` leaves IAM database authentication off unless asked: godwit
    /// cannot log in to a target created without it.
    #[test]
    fn a_target_without_iam_authentication_refuses_godwit() {
        succeeds(
            "idle-source",
            r#"
rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4" });
rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.r6g.xlarge" });
rds::wait_until_cluster_available("orders-aurora", #{ timeout: "12h" });
let e = #{};
try { pg::table_hashes("orders-aurora"); } catch (err) { e = err; }
assert(e.message.contains("IAM database authentication is not enabled"), e.message);
"#,
        );
    }

    /// Rule 5: Aurora PostgreSQL orders no db.m* class; the standard runbook maps it.
    #[test]
    fn aurora_refuses_a_db_m_class() {
        succeeds(
            "idle-source",
            r#"
rds::create_replica_cluster("orders-aurora", "orders-db", #{ engine_version: "15.4", iam_auth: true });
let e = #{};
try {
    rds::create_cluster_instance("orders-aurora-1", "orders-aurora", #{ instance_class: "db.m6g.xlarge" });
} catch (err) { e = err; }
assert_eq(e.kind, "Invalid");
assert(e.message.contains("InvalidParameterCombination"), e.message);
let orderable = rds::list_orderable_instance_classes("aurora-postgresql", "15.4");
rds::create_cluster_instance("orders-aurora-1", "orders-aurora",
    #{ instance_class: rds::aurora_class_for("db.m6g.xlarge", orderable) });
"#,
        );
    }

    /// Rule 8: a new cluster parameter group is not used for five minutes.
    #[test]
    fn a_parameter_group_rests_five_minutes_before_a_cluster_uses_it() {
        succeeds(
            "idle-source",
            r#"
let g = rds::create_parameter_groups(#{ cluster_group: "orders-aurora-cluster",
    instance_group: "orders-aurora-instance", family: "aurora-postgresql15", parameters: #{} });
let create = || rds::create_replica_cluster("orders-aurora", "orders-db",
    #{ engine_version: "15.4", iam_auth: true, parameter_group: g.cluster_group });
let e = #{};
try { create.call(); } catch (err) { e = err; }
assert_eq(e.kind, "Conflict");
assert(e.message.contains("AWS asks for 300 s"), e.message);
sleep("5m");
create.call();
"#,
        );
    }

    /// Rule 9: a hot standby with a hot-standby parameter below its primary's stops: the
    /// writer ends `incompatible-parameters`, a terminal state the wait reports.
    #[test]
    fn a_replica_below_the_sources_hot_standby_settings_is_incompatible() {
        succeeds(
            "idle-source",
            r#"
let g = rds::create_parameter_groups(#{ cluster_group: "orders-aurora-cluster",
    instance_group: "orders-aurora-instance", family: "aurora-postgresql15",
    parameters: #{ max_connections: "10" } });
sleep("5m");
rds::create_replica_cluster("orders-aurora", "orders-db",
    #{ engine_version: "15.4", iam_auth: true, parameter_group: g.cluster_group });
rds::create_cluster_instance("orders-aurora-1", "orders-aurora",
    #{ instance_class: "db.r6g.xlarge", parameter_group: g.instance_group });
let e = #{};
try { rds::wait_until_instance_available("orders-aurora-1", #{ timeout: "12h" }); } catch (err) { e = err; }
assert_eq(e.kind, "Conflict");
assert(e.message.contains("incompatible-parameters"), e.message);
"#,
        );
    }
}
