//! Model tests: the sawtooth, the stale slot, sessions vs security groups and reboots,
//! determinism. Time is driven exactly as a run drives it: through `advance_to`.

use super::metrics::Statistic;
use super::scenario::Scenario;
use super::*;
use godwit_engine::{Call, Host};

const MIB: f64 = 1024.0 * 1024.0;

fn load(name: &str) -> SimState {
    SimState::new(Scenario::load(name).unwrap())
}

fn series(st: &SimState, metric: &str, dim: &str, id: &str, hours: i64) -> Vec<(i64, f64)> {
    let until = st.now / 1000;
    st.datapoints(
        &(metric.into(), dim.into(), id.into()),
        Statistic::Maximum,
        60,
        until - hours * 3600,
        until,
    )
    .into_iter()
    .map(|p| (p.t, p.v))
    .collect()
}

thread_local! {
    /// A host outside any run, for calling the simulator's areas directly.
    static HOST: &'static Host = Box::leak(Box::new(Host::detached(
        Arc::new(godwit_engine::SystemClock),
        None,
    )));
}

/// The call context a test passes to the simulator's area methods (no step: like the REPL).
fn cx() -> Call<'static> {
    HOST.with(|h| h.context("test", "test"))
}

#[test]
fn idle_source_sawtooths_with_period_5_min_and_amplitude_one_segment() {
    let mut st = load("idle-source");
    let t0 = st.now;
    st.advance_to(t0 + 2 * 3_600_000);
    let pts = series(
        &st,
        "OldestReplicationSlotLag",
        "DBInstanceIdentifier",
        "orders-db",
        2,
    );
    assert_eq!(pts.len(), 120, "one datapoint per minute for two hours");
    let peaks: Vec<i64> = pts.iter().filter(|p| p.1 > 0.0).map(|p| p.0).collect();
    assert!(peaks.len() >= 23, "a peak every 5 minutes: {peaks:?}");
    for w in peaks.windows(2) {
        assert_eq!(w[1] - w[0], 300, "period 5 min: {peaks:?}");
    }
    for p in pts.iter().filter(|p| p.1 > 0.0) {
        assert!(
            (p.1 - 64.0 * MIB).abs() <= 16_384.0,
            "amplitude one segment, got {} at {}",
            p.1,
            p.0
        );
    }
    let zeros = pts.iter().filter(|p| p.1 == 0.0).count();
    assert!(
        zeros >= 90,
        "between peaks the lag is exactly 0 ({zeros} zeros)"
    );
}

#[test]
fn a_stale_logical_slot_grows_one_segment_per_five_minutes() {
    let mut st = load("stale-logical-slot");
    let t0 = st.now;
    st.advance_to(t0 + 3 * 3_600_000);
    let pts = series(
        &st,
        "OldestReplicationSlotLag",
        "DBInstanceIdentifier",
        "orders-db",
        3,
    );
    // Before the fault: sawtooth; after it: ever higher.
    let after: Vec<&(i64, f64)> = pts.iter().filter(|p| p.0 >= t0 / 1000 + 600 + 60).collect();
    let first = after.first().unwrap();
    let last = after.last().unwrap();
    let minutes = (last.0 - first.0) as f64 / 60.0;
    let per_5_min = (last.1 - first.1) / minutes * 5.0;
    assert!(
        (per_5_min - 64.0 * MIB).abs() < 2.0 * MIB,
        "grows ~64 MiB per 5 min, got {:.1} MiB",
        per_5_min / MIB
    );
    for w in after.windows(2) {
        assert!(w[1].1 >= w[0].1, "never shrinks while stale");
    }
    let slot = &st.slots[0];
    assert!(!slot.active && slot.inactive_since == Some(t0 + 600_000));
}

#[test]
fn security_groups_alone_keep_sessions_reboot_ends_them() {
    use crate::ec2::Ec2;
    use crate::rds::Rds;
    // Through the primitives' own implementations, as a runbook drives them.
    let sim = Sim::new(Scenario::load("busy-source").unwrap());
    let conns = |sim: &Sim| {
        let st = sim.lock();
        st.sessions.iter().filter(|s| s.db == "orders-db").count()
    };
    let written = |sim: &Sim| sim.lock().source_app_bytes();
    assert_eq!(conns(&sim), 40);
    let q = sim
        .ensure_quarantine_group(&cx(), "vpc-0sim", "godwit-quarantine", &Default::default())
        .unwrap();
    sim.set_security_groups(&cx(), "orders-db", std::slice::from_ref(&q.id))
        .unwrap();
    let before = written(&sim);
    advance(&sim, 10 * 60_000);
    assert_eq!(
        conns(&sim),
        40,
        "security groups are stateful: sessions survive"
    );
    assert!(written(&sim) > before, "and keep writing");
    sim.reboot_instance(&cx(), "orders-db", "t1").unwrap();
    assert_eq!(conns(&sim), 0, "the reboot ends every session");
    advance(&sim, 10 * 60_000);
    assert_eq!(
        sim.describe_instance(&cx(), "orders-db").unwrap().status,
        "available"
    );
    assert_eq!(conns(&sim), 0, "quarantined: nobody reconnects");
    let fenced = written(&sim);
    advance(&sim, 10 * 60_000);
    assert_eq!(
        written(&sim),
        fenced,
        "no application write after the fence"
    );
    sim.set_security_groups(&cx(), "orders-db", &["sg-0app".into()])
        .unwrap();
    advance(&sim, 60_000);
    assert_eq!(conns(&sim), 40, "groups restored: clients come back");
}

fn fingerprint(name: &str) -> String {
    let mut st = load(name);
    let t0 = st.now;
    // Irregular advances, as gates and sleeps produce them.
    for i in 0..200 {
        let t = st.now;
        st.advance_to(t + 7_000 + i * 1_313);
    }
    st.advance_to(t0 + 6 * 3_600_000);
    format!(
        "{} {} {:?} {:?}",
        st.lsn,
        st.steps,
        st.metrics.all(),
        st.log
    )
}

#[test]
fn same_scenario_same_seed_same_world() {
    for name in scenario::builtin_names() {
        assert_eq!(
            fingerprint(name),
            fingerprint(name),
            "{name} is not deterministic"
        );
    }
}

#[test]
fn the_seed_changes_the_jitter() {
    let mut a = Scenario::load("busy-source").unwrap();
    let mut b = a.clone();
    a.seed = 1;
    b.seed = 2;
    let (mut a, mut b) = (SimState::new(a), SimState::new(b));
    let t = a.now + 3_600_000;
    a.advance_to(t);
    b.advance_to(t);
    assert_ne!(a.lsn, b.lsn);
}

#[test]
fn busy_source_generates_wal_at_the_workload_rate() {
    let mut st = load("busy-source");
    let t0 = st.now;
    // 14:00 is the peak: 12 MB/s ± 10 %.
    st.advance_to(t0 + 14 * 3_600_000 + 30 * 60_000);
    let pts = series(
        &st,
        "TransactionLogsGeneration",
        "DBInstanceIdentifier",
        "orders-db",
        1,
    );
    let last = pts.last().unwrap().1;
    assert!((10.5e6..13.5e6).contains(&last), "peak generation {last}");
    let night = series(
        &st,
        "TransactionLogsGeneration",
        "DBInstanceIdentifier",
        "orders-db",
        15,
    );
    let low = night.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    assert!(low < 2.5e6, "night generation near base, got {low}");
}

#[test]
fn cloudwatch_delay_hides_the_newest_minutes() {
    let mut sc = Scenario::load("idle-source").unwrap();
    sc.cloudwatch.delay = "3m".into();
    let mut st = SimState::new(sc);
    let t0 = st.now;
    st.advance_to(t0 + 3_600_000);
    let pts = series(
        &st,
        "OldestReplicationSlotLag",
        "DBInstanceIdentifier",
        "orders-db",
        1,
    );
    assert_eq!(pts.last().unwrap().0, (t0 + 3_600_000) / 1000 - 60 - 180);
}

#[test]
fn cloudwatch_gap_drops_datapoints() {
    let mut sc = Scenario::load("idle-source").unwrap();
    sc.faults.push(scenario::Fault {
        kind: FaultKind::CloudwatchGap,
        at: Some("10m".into()),
        step: None,
        lasts: Some("5m".into()),
        target: None,
        value: None,
    });
    sc.validate().unwrap();
    let mut st = SimState::new(sc);
    let t0 = st.now;
    st.advance_to(t0 + 3_600_000);
    let pts = series(
        &st,
        "OldestReplicationSlotLag",
        "DBInstanceIdentifier",
        "orders-db",
        1,
    );
    assert_eq!(pts.len(), 55);
    let missing: Vec<i64> = (0..60)
        .map(|m| t0 / 1000 + m * 60)
        .filter(|t| !pts.iter().any(|p| p.0 == *t))
        .collect();
    assert_eq!(missing.len(), 5);
    assert_eq!(missing[0], t0 / 1000 + 10 * 60);
}

#[test]
fn scenario_errors_name_the_file_the_key_and_the_expectation() {
    let base = "name = \"x\"\n[source]\nid = \"orders-db\"\n";
    let e = Scenario::from_toml("bad.toml", &format!("{base}colour = 1\n")).unwrap_err();
    assert_eq!(e.file, "bad.toml");
    assert!(
        e.message.contains("at `source.colour`") && e.message.contains("expected one of"),
        "{e}"
    );
    let e = Scenario::from_toml(
        "bad.toml",
        "name = \"x\"\n[source]\nid = \"orders-db\"\n[[faults]]\nkind = \"promote-hang\"\nstep = \"a\"\n[[faults]]\nkind = \"promote-explodes\"\nat = \"1h\"\n",
    )
    .unwrap_err();
    assert!(
        e.message.contains("at `faults[1].kind`") && e.message.contains("promote-hang"),
        "{e}"
    );
    let e = Scenario::from_toml("bad.toml", &format!("{base}sessions = \"many\"\n")).unwrap_err();
    assert!(
        e.message.contains("sessions") || e.message.contains("integer"),
        "{e}"
    );
    let e = Scenario::from_toml(
        "bad.toml",
        &format!("{base}[workload]\npeak_hour_utc = 25.0\n"),
    )
    .unwrap_err();
    assert!(e.message.contains("workload.peak_hour_utc"), "{e}");
    let e = Scenario::from_toml(
        "bad.toml",
        &format!(
            "{base}[[faults]]\nkind = \"stale-logical-slot\"\nat = \"1h\"\ntarget = \"nope\"\n"
        ),
    )
    .unwrap_err();
    assert!(e.message.contains("faults[0].target"), "{e}");
    let e = Scenario::from_toml(
        "bad.toml",
        &format!("{base}[[faults]]\nkind = \"promote-hang\"\n"),
    )
    .unwrap_err();
    assert!(e.message.contains("exactly one of `at`"), "{e}");
    let e = Scenario::from_toml(
        "bad.toml",
        &format!("{base}[wal]\narchive_timeout = \"soon\"\n"),
    )
    .unwrap_err();
    assert!(e.message.contains("wal.archive_timeout"), "{e}");
    let e = Scenario::load("no-such-scenario").unwrap_err();
    assert!(e.message.contains("idle-source"), "{e}");
}

#[test]
fn every_builtin_loads() {
    for name in scenario::builtin_names() {
        let sc = Scenario::load(name).unwrap();
        assert_eq!(sc.name, name);
    }
}

// ---- fault scenarios, driven through the area traits as the primitives drive them ---------

use crate::pg::Pg;
use crate::rds::{CreateClusterInstance, CreateParameterGroups, CreateReplicaCluster, Rds};

fn with_replica(name: &str) -> Sim {
    let sim = Sim::new(Scenario::load(name).unwrap());
    sim.create_replica_cluster(
        &cx(),
        &CreateReplicaCluster {
            cluster_id: "orders-aurora".into(),
            source_id: "orders-db".into(),
            engine_version: "15.4".into(),
            parameter_group: None,
            security_groups: None,
            kms_key_id: None,
            iam_auth: true,
        },
    )
    .unwrap();
    sim.create_cluster_instance(
        &cx(),
        &CreateClusterInstance {
            instance_id: "orders-aurora-1".into(),
            cluster_id: "orders-aurora".into(),
            instance_class: "db.r6g.xlarge".into(),
            parameter_group: None,
        },
    )
    .unwrap();
    sim
}

fn advance(sim: &Sim, ms: Millis) {
    let mut st = sim.lock();
    let t = st.now + ms;
    st.advance_to(t);
}

fn replica_lag_max(sim: &Sim, minutes: i64) -> f64 {
    series(
        &sim.lock(),
        "RDSToAuroraPostgreSQLReplicaLag",
        "DBClusterIdentifier",
        "orders-aurora",
        1,
    )
    .iter()
    .rev()
    .take(minutes as usize)
    .map(|p| p.1)
    .fold(0.0, f64::max)
}

#[test]
fn every_scenario_file_is_a_builtin_and_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let sc = Scenario::load(p.to_str().unwrap()).unwrap();
            assert_eq!(
                Some(sc.name.as_str()),
                p.file_stem().and_then(|s| s.to_str())
            );
            sc.name
        })
        .collect();
    files.sort();
    let mut builtins: Vec<String> = scenario::builtin_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    builtins.sort();
    assert_eq!(
        files, builtins,
        "tests/scenarios and the built-ins must agree"
    );
}

#[test]
fn a_stalled_replica_falls_behind_then_drains() {
    let sim = with_replica("replica-stall");
    advance(&sim, 3 * 3_600_000);
    assert!(replica_lag_max(&sim, 5) < 2.0, "caught up before the stall");
    advance(&sim, 15 * 60_000);
    let stalled = replica_lag_max(&sim, 1);
    assert!(
        (780.0..=960.0).contains(&stalled),
        "lag grows with wall time: {stalled}"
    );
    advance(&sim, 30 * 60_000);
    assert!(replica_lag_max(&sim, 1) < 2.0, "drained after the stall");
}

#[test]
fn a_replica_slower_than_the_peak_falls_behind_at_peak_only() {
    let sim = with_replica("replica-slow-at-peak");
    advance(&sim, 3 * 3_600_000); // 11:00: below the replay rate
    let morning = replica_lag_max(&sim, 30);
    advance(&sim, 3 * 3_600_000 + 30 * 60_000); // 14:30: peak 12 MB/s > 8 MB/s replay
    let peak = replica_lag_max(&sim, 30);
    assert!(
        morning < 5.0 && peak > 600.0,
        "morning {morning} s, peak {peak} s"
    );
    advance(&sim, 10 * 3_600_000); // past midnight: caught up again
    assert!(replica_lag_max(&sim, 30) < 5.0);
}

#[test]
fn preflight_failures_are_visible_through_the_primitives() {
    let sim = Sim::new(Scenario::load("preflight-failures").unwrap());
    let ext: Vec<String> = sim
        .installed_extensions(&cx(), "orders-db")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(ext.contains(&"pg_hint_plan".to_string()));
    let v = sim
        .list_engine_versions(&cx(), "aurora-postgresql")
        .unwrap();
    assert!(
        v.iter()
            .all(|v| !v.supported_extensions.contains(&"pg_hint_plan".into()))
    );
    let params: BTreeMap<String, String> = sim
        .describe_parameters(&cx(), "orders-pg15")
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.value))
        .collect();
    let made = sim
        .create_parameter_groups(
            &cx(),
            &CreateParameterGroups {
                cluster_group: "c".into(),
                instance_group: "i".into(),
                family: "aurora-postgresql15".into(),
                parameters: params,
                cluster_parameters: Default::default(),
            },
        )
        .unwrap();
    assert_eq!(made.unsupported, vec!["wal_compression".to_string()]);
    assert_eq!(
        sim.unlogged_tables(&cx(), "orders-db").unwrap(),
        vec![
            "public.audit_scratch".to_string(),
            "public.session_cache".into()
        ]
    );
    let e = sim
        .create_replica_cluster(
            &cx(),
            &CreateReplicaCluster {
                cluster_id: "orders-aurora".into(),
                source_id: "orders-db".into(),
                engine_version: "15.4".into(),
                parameter_group: None,
                security_groups: None,
                kms_key_id: None,
                iam_auth: true,
            },
        )
        .unwrap_err();
    assert!(e.message.contains("automated backups disabled"), "{e}");
}

#[test]
fn a_long_transaction_outlives_pg_terminate_backend_and_keeps_writing() {
    let sim = Sim::new(Scenario::load("long-transaction-at-fence").unwrap());
    sim.lock().enter_step("fence");
    sim.block_logins(&cx(), "orders-db", &["orders_app".into()])
        .unwrap();
    let pids: Vec<i64> = sim
        .application_backends(&cx(), "orders-db")
        .unwrap()
        .iter()
        .map(|b| b.pid)
        .collect();
    assert_eq!(
        sim.terminate_backends(&cx(), "orders-db", &pids)
            .unwrap()
            .len(),
        20
    );
    let lsn = sim.lock().lsn;
    advance(&sim, 60_000);
    let left = sim.application_backends(&cx(), "orders-db").unwrap();
    assert_eq!(left.len(), 1, "one backend is still in its transaction");
    assert_eq!(left[0].state, "idle in transaction");
    assert!(
        sim.lock().lsn > lsn,
        "and it still commits: terminate is not a fence"
    );
    advance(&sim, 4 * 60_000);
    assert!(
        sim.application_backends(&cx(), "orders-db")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn cloudwatch_gap_and_delay_faults() {
    let sim = Sim::new(Scenario::load("cloudwatch-gap").unwrap());
    let t0 = sim.lock().now;
    advance(&sim, 2 * 3_600_000 + 20 * 60_000);
    let st = sim.lock();
    let pts = series(
        &st,
        "OldestReplicationSlotLag",
        "DBInstanceIdentifier",
        "orders-db",
        3,
    );
    let newest = pts.last().unwrap().0;
    // 1 min scenario delay + 3 min fault delay, and the minute itself.
    assert_eq!(newest, (st.now / 1000) - 60 - 60 - 180);
    let gap: Vec<i64> = (120..135).map(|m| t0 / 1000 + m * 60).collect();
    assert!(
        pts.iter().all(|p| !gap.contains(&p.0)),
        "no datapoint in the gap"
    );
    assert!(pts.iter().any(|p| p.0 == t0 / 1000 + 119 * 60));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Events fall where they fall however time is chunked: an idle source's WAL position
        /// depends only on the time reached.
        #[test]
        fn idle_wal_does_not_depend_on_how_time_is_chunked(
            chunks in proptest::collection::vec(1i64..900_000, 1..40)
        ) {
            let mut a = load("idle-source");
            let mut b = load("idle-source");
            let t0 = a.now;
            for c in &chunks {
                let t = a.now + c;
                a.advance_to(t);
            }
            b.advance_to(a.now);
            prop_assert_eq!(a.lsn, b.lsn);
            prop_assert_eq!(a.slots[0].restart_lsn, b.slots[0].restart_lsn);
            prop_assert!(a.now > t0);
        }

        /// A busy world (writes, a catching-up replica, a CDC consumer) is the same however
        /// its time was chunked: polls every second or one jump give identical WAL, slots,
        /// replay and CloudWatch data.
        #[test]
        fn a_busy_world_does_not_depend_on_how_time_is_chunked(
            chunks in proptest::collection::vec(1i64..400_000, 1..60)
        ) {
            let run = |chunks: &[i64]| {
                let sim = with_replica("busy-source");
                let mut st = sim.lock();
                for c in chunks {
                    let t = st.now + c;
                    st.advance_to(t);
                }
                format!(
                    "{} {:?} {:?} {:?} {:?}",
                    st.lsn,
                    st.slots.iter().map(|s| (s.restart_lsn, s.confirmed_flush_lsn)).collect::<Vec<_>>(),
                    st.stream.as_ref().map(|s| s.replayed),
                    st.sessions.len(),
                    st.metrics.all()
                )
            };
            let total: i64 = chunks.iter().sum();
            prop_assert_eq!(run(&chunks), run(&[total]));
        }

        /// Positions are ordered for any seed and workload: slots and replay never pass the
        /// source, metrics are never negative.
        #[test]
        fn positions_stay_ordered(seed in 0u64..1000, base in 0.0f64..20e6, hours in 1i64..8) {
            let mut sc = Scenario::load("busy-source").unwrap();
            sc.seed = seed;
            sc.workload.base_write_bytes_per_second = base;
            sc.workload.peak_write_bytes_per_second = base * 2.0;
            let sim = Sim::new(sc);
            sim.create_replica_cluster(&cx(), &CreateReplicaCluster {
                cluster_id: "orders-aurora".into(),
                source_id: "orders-db".into(),
                engine_version: "15.4".into(),
                parameter_group: None,
                security_groups: None,
                kms_key_id: None,
                iam_auth: true,
            }).unwrap();
            let mut st = sim.lock();
            let mut last = st.lsn;
            for _ in 0..hours * 12 {
                let t = st.now + 300_000;
                st.advance_to(t);
                prop_assert!(st.lsn >= last);
                last = st.lsn;
                for s in &st.slots {
                    prop_assert!(s.restart_lsn <= st.lsn && s.confirmed_flush_lsn <= st.lsn);
                }
                if let Some(r) = &st.stream {
                    prop_assert!(r.replayed <= st.lsn);
                }
            }
            for (key, minutes) in st.metrics.all() {
                // Replica lag is -1 while replication is not running; nothing else is negative.
                let floor = if key.0.contains("ReplicaLag") { -1.0 } else { 0.0 };
                for m in minutes {
                    prop_assert!(m.min >= floor, "{:?} {:?}", key, m);
                }
            }
        }
    }
}

#[test]
fn table_hashes_match_after_catch_up_except_unlogged_tables() {
    let mut sc = Scenario::load("busy-source").unwrap();
    sc.source.unlogged_tables = vec!["public.session_cache".into()];
    let sim = Sim::new(sc);
    sim.create_replica_cluster(
        &cx(),
        &CreateReplicaCluster {
            cluster_id: "orders-aurora".into(),
            source_id: "orders-db".into(),
            engine_version: "15.4".into(),
            parameter_group: None,
            security_groups: None,
            kms_key_id: None,
            iam_auth: true,
        },
    )
    .unwrap();
    sim.create_cluster_instance(
        &cx(),
        &CreateClusterInstance {
            instance_id: "orders-aurora-1".into(),
            cluster_id: "orders-aurora".into(),
            instance_class: "db.r6g.xlarge".into(),
            parameter_group: None,
        },
    )
    .unwrap();
    advance(&sim, 4 * 3_600_000);
    let orders = |db: &str| {
        sim.table_hashes(&cx(), db)
            .unwrap()
            .into_iter()
            .find(|t| t.table == "public.orders")
            .unwrap()
    };
    assert_ne!(
        orders("orders-aurora"),
        orders("orders-db"),
        "replica lags a busy source"
    );
    sim.block_logins(&cx(), "orders-db", &["orders_app".into()])
        .unwrap();
    let pids: Vec<i64> = sim
        .application_backends(&cx(), "orders-db")
        .unwrap()
        .iter()
        .map(|b| b.pid)
        .collect();
    sim.terminate_backends(&cx(), "orders-db", &pids).unwrap();
    advance(&sim, 60_000);
    let (src, dst) = (
        sim.table_hashes(&cx(), "orders-db").unwrap(),
        sim.table_hashes(&cx(), "orders-aurora").unwrap(),
    );
    for (a, b) in src.iter().zip(&dst) {
        if a.table == "public.session_cache" {
            assert_ne!(a, b, "unlogged tables are not replicated");
            assert_eq!(b.rows, 0);
        } else {
            assert_eq!(a, b, "after the fence and catch-up, contents match");
        }
    }
}

#[test]
fn a_stale_slot_on_a_busy_source_fills_the_disk() {
    let mut sc = Scenario::load("busy-source").unwrap();
    sc.source.allocated_storage_gb = 400; // 300 GB of data: 100 GB for WAL
    sc.faults.push(scenario::Fault {
        kind: FaultKind::StaleLogicalSlot,
        at: Some("1h".into()),
        step: None,
        lasts: None,
        target: Some("debezium_orders".into()),
        value: None,
    });
    sc.validate().unwrap();
    let mut st = SimState::new(sc);
    let t0 = st.now;
    st.advance_to(t0 + 6 * 3_600_000);
    assert_eq!(st.rds.instances["orders-db"].status, "available");
    st.advance_to(t0 + 24 * 3_600_000);
    assert_eq!(st.rds.instances["orders-db"].status, "storage-full");
    let free = series(
        &st,
        "FreeStorageSpace",
        "DBInstanceIdentifier",
        "orders-db",
        24,
    );
    assert_eq!(free.last().unwrap().1, 0.0);
    assert!(
        free.windows(2).all(|w| w[1].1 <= w[0].1 + 1.0),
        "only falls"
    );
}

#[test]
fn replica_lag_reads_minus_one_until_replication_runs() {
    let sim = with_replica("busy-source");
    advance(&sim, 30 * 60_000);
    let st = sim.lock();
    let lag = series(
        &st,
        "RDSToAuroraPostgreSQLReplicaLag",
        "DBClusterIdentifier",
        "orders-aurora",
        1,
    );
    assert!(
        !lag.is_empty() && lag.iter().all(|p| p.1 == -1.0),
        "{lag:?}"
    );
}

/// The simulated account of the generated fleet: every member listed with its tags, in pages
/// AWS would serve, and only PostgreSQL — the MySQL carrying the fleet's tag is left out.
#[test]
fn the_generated_account_lists_its_fleet_with_tags_in_pages() {
    use crate::rds::{Rds, TagFilter, list_every_page};
    use crate::sim::fleet::{GENERATED_FLEET_TAG, generated_account, generated_fleet};
    let sc = generated_account(130, 7);
    sc.validate().unwrap();
    let sim = Sim::new(sc);
    let fleet = generated_fleet(130, 7);

    // Pages of 50: 132 PostgreSQL instances (130 members, scratch-db, warehouse-db) in three.
    let p1 = sim.list_instances(&cx(), "postgres", None, 50).unwrap();
    assert_eq!(p1.instances.len(), 50);
    let p2 = sim
        .list_instances(&cx(), "postgres", p1.marker.as_deref(), 50)
        .unwrap();
    let p3 = sim
        .list_instances(&cx(), "postgres", p2.marker.as_deref(), 50)
        .unwrap();
    assert_eq!((p2.instances.len(), p3.instances.len()), (50, 32));
    assert_eq!(p3.marker, None);

    let filter = TagFilter::new(
        "t",
        Some(GENERATED_FLEET_TAG.0.into()),
        Some(GENERATED_FLEET_TAG.1.into()),
    )
    .unwrap();
    let found = list_every_page(&cx(), &sim, "list_instances", &filter, 20).unwrap();
    let mut want: Vec<(String, String)> = fleet
        .iter()
        .map(|m| (m.scenario.source.id.clone(), m.owner.clone()))
        .collect();
    want.sort();
    let got: Vec<(String, String)> = found
        .iter()
        .map(|i| (i.id.clone(), i.tags["team"].clone()))
        .collect();
    assert_eq!(got, want, "every member, owner tag = its owner");
    let all = list_every_page(&cx(), &sim, "list_instances", &TagFilter::default(), 100).unwrap();
    assert!(
        all.iter()
            .any(|i| i.id == "scratch-db" && i.tags.is_empty())
    );
    assert!(
        !all.iter().any(|i| i.id == "legacy-mysql"),
        "PostgreSQL only"
    );
}

/// A recording of `hours` at 60 s ending at `end_ms`: WAL stepping between 1 and 5 MB/s every
/// 10 minutes, sessions between 10 and 30, free storage falling 1 GB an hour from 300 GB.
fn recording(end_ms: i64, hours: i64) -> crate::cw::recording::Recording {
    use crate::cw::recording::{FORMAT, RecordedMetric, Recording};
    let n = hours * 60;
    let first = end_ms - n * 60_000;
    let metric = |name: &str, stat: &str, f: &dyn Fn(i64) -> f64| RecordedMetric {
        name: name.into(),
        namespace: "AWS/RDS".into(),
        dimensions: BTreeMap::from([("DBInstanceIdentifier".into(), "orders-db".into())]),
        statistic: stat.into(),
        unit: String::new(),
        points: (0..n).map(|i| (first + i * 60_000, f(i))).collect(),
    };
    Recording {
        format: FORMAT.into(),
        cluster: "orders-db".into(),
        world: "test".into(),
        region: None,
        period: 60,
        since_ms: first,
        until_ms: end_ms,
        metrics: vec![
            metric("TransactionLogsGeneration", "Average", &|i| {
                if (i / 10) % 2 == 0 { 1e6 } else { 5e6 }
            }),
            metric("DatabaseConnections", "Maximum", &|i| {
                if (i / 15) % 2 == 0 { 10.0 } else { 30.0 }
            }),
            metric("FreeStorageSpace", "Minimum", &|i| {
                300e9 - i as f64 * 1e9 / 60.0
            }),
        ],
        missing: vec![],
    }
}

#[test]
fn a_recorded_series_is_the_worlds_workload_and_its_cloudwatch_reads_it_back() {
    let mut sc = Scenario::load("busy-source").unwrap();
    let start = sc.start_ms();
    let rec = recording(start, 3);
    sc.workload.recorded = Some("rec.json".into());
    sc.workload.recording = Some(Arc::new(rec.clone()));
    // The recording ends at the start: it is the history, and the run replays it again.
    sc.workload.offset = "3h".into();
    sc.cloudwatch.history = "3h".into();
    sc.validate().unwrap();
    let mut st = SimState::new(sc);
    assert!(
        st.log[0]
            .1
            .starts_with("WAL replayed from rec.json, 180 points at 60 s"),
        "{:?}",
        st.log[0]
    );
    assert!(
        st.log[0]
            .1
            .ends_with("past its end it loops from its start"),
        "{:?}",
        st.log[0]
    );
    // Free storage starts at the recording's value at the start (its first point: looped).
    assert!(
        (st.free_storage_bytes() - 300e9).abs() < 1e6,
        "{}",
        st.free_storage_bytes()
    );
    st.advance_to(start + 3 * 3_600_000);
    let read = |metric: &str, stat: Statistic| {
        st.datapoints(
            &(
                metric.into(),
                "DBInstanceIdentifier".into(),
                "orders-db".into(),
            ),
            stat,
            60,
            (start - 3 * 3_600_000) / 1000,
            (start + 3 * 3_600_000) / 1000,
        )
    };
    let wal = read("TransactionLogsGeneration", Statistic::Average);
    let conns = read("DatabaseConnections", Statistic::Maximum);
    assert_eq!(wal.len(), 360, "three hours of history, three replayed");
    let recorded = |m: usize, i: usize| rec.metrics[m].points[i % 180].1;
    for (i, p) in wal.iter().enumerate() {
        // The heartbeat (8 KiB every 5 minutes, ~27 B/s on average) lands in one minute of five.
        assert!(
            (p.v - recorded(0, i)).abs() <= 8192.0 / 60.0 + 1.0,
            "minute {i}: {} replayed, {} recorded",
            p.v,
            recorded(0, i)
        );
    }
    for (i, p) in conns.iter().enumerate() {
        assert_eq!(
            p.v,
            recorded(1, i),
            "minute {i}: sessions follow DatabaseConnections"
        );
    }
}

#[test]
fn past_its_end_a_held_recording_keeps_its_last_value() {
    let mut sc = Scenario::load("busy-source").unwrap();
    let start = sc.start_ms();
    sc.workload.recorded = Some("rec.json".into());
    sc.workload.recording = Some(Arc::new(recording(start + 3_600_000, 1)));
    sc.workload.past_end = crate::cw::recording::PastEnd::Hold;
    let mut st = SimState::new(sc);
    st.advance_to(start + 3 * 3_600_000);
    // Minute 59 of the recording: 5 MB/s ((59 / 10) % 2 == 1) and 30 sessions, held for ever.
    assert_eq!(
        st.write_rate(start + 2 * 3_600_000).round(),
        (5e6 - 8192.0 / 300.0f64).round()
    );
    assert_eq!(st.app_sessions_wanted(), 30);
}

// ---- logical replication: the rollback's reverse stream ------------------------------------

mod reverse {
    use super::*;
    use crate::pg::{Lsn, SubscribeTo, Subscription, TableHash};
    use crate::route::Router;
    use godwit_engine::ErrorKind;

    const SRC: &str = "orders-db";
    const DST: &str = "orders-aurora";
    const NAME: &str = "godwit_reverse";

    fn to() -> SubscribeTo {
        SubscribeTo {
            from: DST.into(),
            publication: NAME.into(),
            slot: NAME.into(),
            copy_data: false,
        }
    }

    /// busy-source with `faults`, an Aurora replica whose cluster parameter group turns
    /// logical replication on (`logical`), built and caught up: ~3 h 10 min in.
    fn replicating(faults: Vec<scenario::Fault>, logical: bool) -> Sim {
        replicating_with(|sc| sc.faults = faults, logical)
    }

    /// [`replicating`] with the scenario changed by `change`.
    fn replicating_with(change: impl FnOnce(&mut Scenario), logical: bool) -> Sim {
        let mut sc = Scenario::load("busy-source").unwrap();
        change(&mut sc);
        sc.validate().unwrap();
        let version = sc.source.engine_version.clone();
        let major = version.split('.').next().unwrap().to_string();
        let sim = Sim::new(sc);
        let logical_on: BTreeMap<String, String> = if logical {
            BTreeMap::from([("rds.logical_replication".into(), "1".into())])
        } else {
            BTreeMap::new()
        };
        sim.create_parameter_groups(
            &cx(),
            &CreateParameterGroups {
                cluster_group: "orders-aurora-cluster".into(),
                instance_group: "orders-aurora-instance".into(),
                family: format!("aurora-postgresql{major}"),
                parameters: BTreeMap::new(),
                cluster_parameters: logical_on,
            },
        )
        .unwrap();
        advance(&sim, 6 * 60_000);
        sim.create_replica_cluster(
            &cx(),
            &CreateReplicaCluster {
                cluster_id: DST.into(),
                source_id: SRC.into(),
                engine_version: version,
                parameter_group: Some("orders-aurora-cluster".into()),
                security_groups: None,
                kms_key_id: None,
                iam_auth: true,
            },
        )
        .unwrap();
        sim.create_cluster_instance(
            &cx(),
            &CreateClusterInstance {
                instance_id: "orders-aurora-1".into(),
                cluster_id: DST.into(),
                instance_class: "db.r6g.xlarge".into(),
                parameter_group: None,
            },
        )
        .unwrap();
        advance(&sim, 3 * 3_600_000);
        sim
    }

    /// Fence `db`: logins blocked, application backends terminated and gone.
    fn fence(sim: &Sim, db: &str) {
        sim.block_logins(&cx(), db, &["orders_app".into()]).unwrap();
        let pids: Vec<i64> = sim
            .application_backends(&cx(), db)
            .unwrap()
            .iter()
            .map(|b| b.pid)
            .collect();
        sim.terminate_backends(&cx(), db, &pids).unwrap();
        advance(sim, 1_000);
        assert!(sim.application_backends(&cx(), db).unwrap().is_empty());
    }

    /// Route the application to `db` and let it log in again.
    fn reroute(sim: &Sim, db: &str) {
        sim.switch_route(&cx(), SRC, db, false, true).unwrap();
        advance(sim, 1_000);
        sim.unblock_logins(&cx(), db, &["orders_app".into()])
            .unwrap();
        advance(sim, 10_000);
    }

    /// [`reroute`], and the application writes there.
    fn route_to(sim: &Sim, db: &str) {
        reroute(sim, db);
        assert!(
            !sim.application_backends(&cx(), db).unwrap().is_empty(),
            "the application writes on {db}"
        );
    }

    /// The cutover up to the reverse subscription: the source fenced, the replica promoted,
    /// publication and slot on it, the source subscribed (before any write reached the
    /// cluster), the application routed to the cluster. Returns the slot's start.
    fn cut_over(sim: &Sim) -> Lsn {
        fence(sim, SRC);
        advance(sim, 60_000);
        sim.promote_cluster(&cx(), DST).unwrap();
        advance(sim, 6 * 60_000);
        assert!(sim.lock().writable(DST), "promoted");
        let tables = sim.create_publication(&cx(), DST, NAME).unwrap();
        assert_eq!(tables, vec!["public.customers", "public.orders"]);
        let start = sim.create_logical_slot(&cx(), DST, NAME).unwrap();
        assert_eq!(start, sim.current_lsn(&cx(), DST).unwrap());
        let sub = sim.subscribe(&cx(), SRC, NAME, &to()).unwrap();
        assert_eq!(sub.worker_pid, None, "the launcher starts the worker later");
        route_to(sim, DST);
        start
    }

    fn sub(sim: &Sim) -> Subscription {
        let mut all = sim.subscriptions(&cx(), SRC).unwrap();
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    fn confirmed(sim: &Sim) -> u64 {
        let slots = sim.replication_slots(&cx(), DST).unwrap();
        let s = slots.iter().find(|s| s.slot_name == NAME).unwrap();
        crate::pg::parse_lsn(s.confirmed_flush_lsn.as_deref().unwrap()).unwrap()
    }

    fn slot_active(sim: &Sim) -> bool {
        let slots = sim.replication_slots(&cx(), DST).unwrap();
        slots.iter().find(|s| s.slot_name == NAME).unwrap().active
    }

    fn hashes(sim: &Sim, db: &str) -> Vec<TableHash> {
        sim.table_hashes(&cx(), db).unwrap()
    }

    fn seq(sim: &Sim, db: &str) -> i64 {
        sim.sequences(&cx(), db).unwrap()[0].last_value
    }

    /// Advance in 5 s polls until the slot confirms `lsn`; how long it took (ms), or `None`
    /// after `max_ms`.
    fn wait_confirmed(sim: &Sim, lsn: u64, max_ms: Millis) -> Option<Millis> {
        let mut waited = 0;
        while confirmed(sim) < lsn {
            if waited >= max_ms {
                return None;
            }
            advance(sim, 5_000);
            waited += 5_000;
        }
        Some(waited)
    }

    fn fault(
        kind: FaultKind,
        at: &str,
        lasts: Option<&str>,
        value: Option<f64>,
    ) -> scenario::Fault {
        scenario::Fault {
            kind,
            at: Some(at.into()),
            step: None,
            lasts: lasts.map(String::from),
            target: None,
            value,
        }
    }

    #[test]
    fn a_rollback_brings_the_clusters_writes_back_to_the_source_without_loss() {
        let sim = replicating(Vec::new(), true);
        let start = cut_over(&sim);
        let (src_rows, dst_rows) = (hashes(&sim, SRC)[1].rows, hashes(&sim, DST)[1].rows);
        let src_lsn = sim.current_lsn(&cx(), SRC).unwrap().lsn_bytes;
        let applied = sim.lock().reverse_applied_bytes();
        advance(&sim, 30 * 60_000);
        let applied = sim.lock().reverse_applied_bytes() - applied;
        let src_wal = sim.current_lsn(&cx(), SRC).unwrap().lsn_bytes - src_lsn;
        assert!(
            applied > 1_000_000_000 && src_wal as u64 >= applied,
            "what the source applies it writes to its WAL: {applied} applied, {src_wal} written"
        );
        // A persistent world keeps the subscription across processes.
        let json = serde_json::to_string(&*sim.lock()).unwrap();
        let restored: SimState = serde_json::from_str(&json).unwrap();
        assert_eq!(
            restored.logical.subscriptions,
            sim.lock().logical.subscriptions
        );
        // The cluster took writes, and they flow back with a lag of a step at most.
        let now_lsn = sim.current_lsn(&cx(), DST).unwrap().lsn_bytes;
        assert!(
            now_lsn as u64 > start.lsn_bytes as u64 + 1_000_000_000,
            "busy cluster"
        );
        let s = sub(&sim);
        assert!(s.worker_pid.is_some() && s.apply_errors == 0, "{s:?}");
        assert_eq!(
            s.received_lsn_bytes,
            Some(now_lsn),
            "received what was committed"
        );
        let behind = now_lsn - s.latest_end_lsn_bytes.unwrap();
        assert!(
            behind <= 10 * 3_000_000,
            "reported at most a step behind: {behind}"
        );
        assert_eq!(confirmed(&sim) as i64, s.latest_end_lsn_bytes.unwrap());
        assert!(slot_active(&sim));
        assert!(
            hashes(&sim, SRC)[1].rows > src_rows,
            "the source takes the cluster's rows"
        );
        assert!(hashes(&sim, DST)[1].rows > dst_rows);
        // A slot streamed from cannot be dropped.
        let e = sim.drop_replication_slot(&cx(), DST, NAME).unwrap_err();
        assert!(e.kind == ErrorKind::Conflict && e.retryable, "{e}");
        assert!(
            e.message
                .contains("subscription godwit_reverse on orders-db"),
            "{e}"
        );

        // Rollback: fence the cluster, wait until the source confirmed its last position.
        fence(&sim, DST);
        let end = sim.current_lsn(&cx(), DST).unwrap().lsn_bytes as u64;
        let waited = wait_confirmed(&sim, end, 60_000).expect("the source catches up");
        assert!(
            waited <= 10_000,
            "a healthy subscription is a step behind: {waited} ms"
        );
        assert_eq!(
            hashes(&sim, SRC),
            hashes(&sim, DST),
            "the source holds every write"
        );
        let target_seq = sim.sequences(&cx(), DST).unwrap();
        assert!(
            seq(&sim, SRC) < target_seq[0].last_value,
            "sequences are not replicated"
        );
        let after = sim.advance_sequences(&cx(), SRC, &target_seq).unwrap();
        assert_eq!(after, target_seq);
        assert_eq!(sim.sequences(&cx(), SRC).unwrap(), target_seq);
        assert!(sim.drop_subscription(&cx(), SRC, NAME).unwrap());
        assert!(!sim.drop_subscription(&cx(), SRC, NAME).unwrap(), "once");
        advance(&sim, 1_000);
        assert!(sim.subscriptions(&cx(), SRC).unwrap().is_empty());
        assert!(!slot_active(&sim), "the subscription's walsender left");
        assert!(sim.drop_replication_slot(&cx(), DST, NAME).unwrap());
        assert!(!sim.drop_replication_slot(&cx(), DST, NAME).unwrap());
        assert!(sim.drop_publication(&cx(), DST, NAME).unwrap());
        assert!(!sim.drop_publication(&cx(), DST, NAME).unwrap());

        // Back on the source: it takes writes again, its sequences continue past the
        // cluster's, and no invariant breaks.
        route_to(&sim, SRC);
        advance(&sim, 10 * 60_000);
        let v = sim.lock().violations.clone();
        assert!(v.is_empty(), "{v:?}");
        assert!(seq(&sim, SRC) > target_seq[0].last_value);
        assert!(hashes(&sim, SRC)[1].rows > hashes(&sim, DST)[1].rows);
    }

    #[test]
    fn routing_back_before_the_source_caught_up_or_advanced_its_sequences_is_caught() {
        // Dropped before it caught up: the cluster's last writes are lost.
        let sim = replicating(Vec::new(), true);
        cut_over(&sim);
        advance(&sim, 10 * 60_000);
        sim.drop_subscription(&cx(), SRC, NAME).unwrap();
        advance(&sim, 60_000);
        fence(&sim, DST);
        let sequences = sim.sequences(&cx(), DST).unwrap();
        sim.advance_sequences(&cx(), SRC, &sequences).unwrap();
        reroute(&sim, SRC);
        let v = sim.lock().violations.clone();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, "no-acknowledged-write-lost", "{v:?}");
        // Caught up, but the sequences were left behind: new rows reuse keys.
        let sim = replicating(Vec::new(), true);
        cut_over(&sim);
        advance(&sim, 10 * 60_000);
        fence(&sim, DST);
        let end = sim.current_lsn(&cx(), DST).unwrap().lsn_bytes as u64;
        wait_confirmed(&sim, end, 60_000).unwrap();
        reroute(&sim, SRC);
        let v = sim.lock().violations.clone();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, "no-sequence-reuse", "{v:?}");
        // Without any reverse stream, a write on the source after the fence stays lost.
        let sim = replicating(Vec::new(), true);
        fence(&sim, SRC);
        sim.promote_cluster(&cx(), DST).unwrap();
        advance(&sim, 6 * 60_000);
        sim.unblock_logins(&cx(), SRC, &["orders_app".into()])
            .unwrap();
        advance(&sim, 60_000);
        let v = sim.lock().violations.clone();
        assert_eq!(v[0].invariant, "no-write-after-fence", "{v:?}");
    }

    #[test]
    fn a_quarantined_source_reaches_the_cluster_only_through_the_path_opened_for_it() {
        use crate::ec2::{Admit, Ec2};
        use crate::rds::Rds;
        let sim = replicating(Vec::new(), true);
        // The standard fence: the quarantine admits godwit's group on the source's port, and
        // has no egress.
        let me = sim.access(&cx(), SRC).unwrap().security_group.unwrap();
        let admit = Admit {
            groups: vec![me],
            port: 5432,
        };
        let q = sim
            .ensure_quarantine_group(&cx(), "vpc-0sim", "godwit-quarantine", &admit)
            .unwrap();
        sim.set_security_groups(&cx(), SRC, std::slice::from_ref(&q.id))
            .unwrap();
        advance(&sim, 10 * 60_000);
        fence(&sim, SRC);
        sim.promote_cluster(&cx(), DST).unwrap();
        advance(&sim, 6 * 60_000);
        sim.create_publication(&cx(), DST, NAME).unwrap();
        sim.create_logical_slot(&cx(), DST, NAME).unwrap();
        let e = sim.subscribe(&cx(), SRC, NAME, &to()).unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::Timeout, false), "{e}");
        assert!(
            e.message
                .contains(&format!("orders-db's groups ({})", q.id))
                && e.message.contains("orders-aurora's groups (sg-0app)"),
            "{e}"
        );
        assert!(e.hint.contains("ec2::allow_connection"), "{e}");
        assert!(sim.subscriptions(&cx(), SRC).unwrap().is_empty());

        let cl = sim.describe_cluster(&cx(), DST).unwrap();
        let c = sim
            .allow_connection(&cx(), &q.id, &cl.security_groups[0], cl.port)
            .unwrap();
        assert_eq!(c.from.egress, [format!("tcp/{} to sg-0app", cl.port)]);
        assert!(
            c.to.ingress
                .contains(&format!("tcp/{} from {}", cl.port, q.id))
        );
        assert_eq!(
            sim.allow_connection(&cx(), &q.id, &cl.security_groups[0], cl.port)
                .unwrap(),
            c,
            "idempotent"
        );
        // A later run re-ensures the same quarantine: its reverse-path egress is godwit's own.
        assert_eq!(
            sim.ensure_quarantine_group(&cx(), "vpc-0sim", "godwit-quarantine", &admit)
                .unwrap(),
            c.from
        );
        let e = sim
            .allow_connection(&cx(), &q.id, "sg-0nope", cl.port)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        sim.subscribe(&cx(), SRC, NAME, &to()).unwrap();
        advance(&sim, 60_000);
        assert!(sub(&sim).worker_pid.is_some(), "{:?}", sub(&sim));
        assert_eq!(hashes(&sim, SRC), hashes(&sim, DST));
    }

    #[test]
    fn a_rollback_before_the_cluster_took_a_write_is_clean() {
        let sim = replicating(Vec::new(), true);
        fence(&sim, SRC);
        sim.promote_cluster(&cx(), DST).unwrap();
        advance(&sim, 6 * 60_000);
        sim.create_publication(&cx(), DST, NAME).unwrap();
        sim.create_logical_slot(&cx(), DST, NAME).unwrap();
        sim.subscribe(&cx(), SRC, NAME, &to()).unwrap();
        advance(&sim, 60_000);
        assert_eq!(hashes(&sim, SRC), hashes(&sim, DST));
        assert_eq!(
            sim.sequences(&cx(), SRC).unwrap(),
            sim.sequences(&cx(), DST).unwrap()
        );
        sim.drop_subscription(&cx(), SRC, NAME).unwrap();
        sim.unblock_logins(&cx(), SRC, &["orders_app".into()])
            .unwrap();
        advance(&sim, 10 * 60_000);
        let v = sim.lock().violations.clone();
        assert!(v.is_empty(), "{v:?}");
        assert!(!sim.application_backends(&cx(), SRC).unwrap().is_empty());
    }

    #[test]
    fn a_lagging_subscription_falls_behind_and_drains_at_its_rate() {
        // 500 kB/s of apply against ~2 MB/s of writes at night.
        let rate = 500_000.0;
        let sim = replicating(
            vec![fault(FaultKind::ReverseLag, "3h", None, Some(rate))],
            true,
        );
        cut_over(&sim);
        advance(&sim, 20 * 60_000);
        let s = sub(&sim);
        let backlog = s.received_lsn_bytes.unwrap() - s.latest_end_lsn_bytes.unwrap();
        assert!(
            backlog > 1_000_000_000,
            "20 min × 1.5 MB/s behind: {backlog}"
        );
        assert!(s.worker_pid.is_some() && s.apply_errors == 0);
        assert_ne!(hashes(&sim, SRC), hashes(&sim, DST));
        fence(&sim, DST);
        let end = sim.current_lsn(&cx(), DST).unwrap().lsn_bytes as u64;
        let left = end - confirmed(&sim);
        let expected = (left as f64 / rate * 1000.0) as Millis;
        let waited = wait_confirmed(&sim, end, 2 * expected).expect("it drains");
        assert!(
            waited >= expected - 10_000 && waited <= expected + 15_000,
            "drains {left} bytes at {rate} B/s: ~{expected} ms, took {waited} ms"
        );
        assert_eq!(hashes(&sim, SRC), hashes(&sim, DST));
    }

    #[test]
    fn a_broken_subscription_counts_errors_applies_nothing_and_needs_fresh_credentials() {
        // Subscribed at ~3h17m; broken from 3h20m for 10 min: its worker restarts after
        // the IAM token of its creation expired.
        let sim = replicating(
            vec![fault(FaultKind::ReverseBroken, "3h20m", Some("10m"), None)],
            true,
        );
        cut_over(&sim);
        let created = sim.lock().logical.subscriptions[0].token_at;
        let until = |t: Millis| {
            let now = sim.lock().now;
            advance(&sim, t - now);
        };
        let t0 = sim.lock().sc.start_ms();
        until(t0 + 3 * 3_600_000 + 20 * 60_000 + 30_000);
        let held = confirmed(&sim);
        let s = sub(&sim);
        assert_eq!(
            (s.worker_pid, s.received_lsn_bytes, s.latest_end_lsn_bytes),
            (None, None, None)
        );
        let e1 = s.apply_errors;
        assert!((6..=8).contains(&e1), "an error every 5 s: {e1}");
        assert!(!slot_active(&sim), "between restarts nobody reads the slot");
        let applied = sim.lock().reverse_applied_bytes();
        until(t0 + 3 * 3_600_000 + 25 * 60_000);
        let s = sub(&sim);
        assert!(s.apply_errors > e1 + 50, "{}", s.apply_errors);
        assert_eq!(confirmed(&sim), held, "no progress");
        assert_eq!(
            sim.lock().reverse_applied_bytes(),
            applied,
            "nothing applied"
        );
        // Past the token's 15 minutes, restarts cannot log in: no more apply errors.
        until(created + logical::IAM_TOKEN_MS + 60_000);
        let e2 = sub(&sim).apply_errors;
        advance(&sim, 60_000);
        assert_eq!(sub(&sim).apply_errors, e2, "no connection, no apply error");
        // The fault is over, but a new connection needs fresh credentials.
        until(t0 + 3 * 3_600_000 + 31 * 60_000);
        assert_eq!(sub(&sim).worker_pid, None);
        assert_eq!(confirmed(&sim), held);
        let e = sim
            .refresh_subscription(&cx(), SRC, NAME, "orders-db")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict, "another publisher: {e}");
        sim.refresh_subscription(&cx(), SRC, NAME, DST).unwrap();
        advance(&sim, 10_000);
        let s = sub(&sim);
        assert!(s.worker_pid.is_some(), "{s:?}");
        assert_eq!(s.apply_errors, e2, "errors are history");
        fence(&sim, DST);
        let end = sim.current_lsn(&cx(), DST).unwrap().lsn_bytes as u64;
        wait_confirmed(&sim, end, 5 * 60_000).expect("catches up once it runs");
        assert_eq!(hashes(&sim, SRC), hashes(&sim, DST));
    }

    #[test]
    fn a_ddl_on_the_cluster_breaks_the_subscription_from_its_next_change() {
        let mut ddl = fault(FaultKind::TargetDdl, "3h30m", None, None);
        ddl.target = Some(DST.into());
        let sim = replicating(vec![ddl], true);
        cut_over(&sim);
        assert_eq!(
            sim.table_definitions(&cx(), SRC).unwrap(),
            sim.table_definitions(&cx(), DST).unwrap(),
            "same shape before the DDL"
        );
        // Fresh credentials: the worker's restarts after the DDL still log in.
        let t0 = sim.lock().sc.start_ms();
        let now = sim.lock().now;
        advance(&sim, t0 + 3 * 3_600_000 + 29 * 60_000 - now);
        sim.refresh_subscription(&cx(), SRC, NAME, DST).unwrap();
        advance(&sim, 60_000);
        let at_ddl = sim.current_lsn(&cx(), DST).unwrap().lsn_bytes as u64;
        let (src, dst) = (
            sim.table_definitions(&cx(), SRC).unwrap(),
            sim.table_definitions(&cx(), DST).unwrap(),
        );
        let orders = |d: &[crate::pg::TableDefinition]| {
            d.iter()
                .find(|t| t.table == "public.orders")
                .unwrap()
                .columns
                .clone()
        };
        assert_eq!(orders(&src), logical::TABLE_COLUMNS);
        assert_eq!(
            orders(&dst),
            format!("{}, note text", logical::TABLE_COLUMNS)
        );
        assert_eq!(src[0], dst[0], "public.customers is untouched");
        advance(&sim, 5 * 60_000);
        let s = sub(&sim);
        assert_eq!(s.worker_pid, None);
        assert!(s.apply_errors >= 50, "{}", s.apply_errors);
        assert_eq!(
            confirmed(&sim),
            at_ddl,
            "applied everything before the DDL, nothing after"
        );
        fence(&sim, DST);
        let end = sim.current_lsn(&cx(), DST).unwrap().lsn_bytes as u64;
        assert_eq!(
            wait_confirmed(&sim, end, 5 * 60_000),
            None,
            "never catches up"
        );
        assert_ne!(hashes(&sim, SRC), hashes(&sim, DST));
    }

    #[test]
    fn the_primitives_refuse_what_postgresql_and_aws_refuse() {
        let sim = replicating(Vec::new(), true);
        // A replica still replicating: read-only, no logical slot.
        let e = sim.create_logical_slot(&cx(), DST, NAME).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
        assert!(e.message.contains("standby"), "{e}");
        let e = sim.create_publication(&cx(), DST, NAME).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
        fence(&sim, SRC);
        sim.promote_cluster(&cx(), DST).unwrap();
        advance(&sim, 6 * 60_000);
        // Nothing to subscribe to yet.
        let e = sim.subscribe(&cx(), SRC, NAME, &to()).unwrap_err();
        assert!(
            e.kind == ErrorKind::NotFound && e.message.contains("publication"),
            "{e}"
        );
        assert_eq!(
            sim.create_publication(&cx(), DST, NAME).unwrap(),
            sim.create_publication(&cx(), DST, NAME).unwrap(),
            "idempotent"
        );
        let e = sim.subscribe(&cx(), SRC, NAME, &to()).unwrap_err();
        assert!(
            e.kind == ErrorKind::NotFound && e.message.contains("slot"),
            "{e}"
        );
        let start = sim.create_logical_slot(&cx(), DST, NAME).unwrap();
        assert_eq!(
            sim.create_logical_slot(&cx(), DST, NAME).unwrap(),
            start,
            "idempotent"
        );
        let e = sim
            .subscribe(
                &cx(),
                SRC,
                NAME,
                &SubscribeTo {
                    copy_data: true,
                    ..to()
                },
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
        let e = sim
            .subscribe(
                &cx(),
                SRC,
                NAME,
                &SubscribeTo {
                    from: "nope".into(),
                    ..to()
                },
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        let e = sim.refresh_subscription(&cx(), SRC, NAME, DST).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        let first = sim.subscribe(&cx(), SRC, NAME, &to()).unwrap();
        route_to(&sim, DST);
        advance(&sim, 60_000);
        // An existing slot answers its position: where its subscriber confirmed by now.
        let now = sim.create_logical_slot(&cx(), DST, NAME).unwrap();
        assert_eq!(now, Lsn::at(confirmed(&sim)));
        assert!(
            now.lsn_bytes > start.lsn_bytes,
            "the source confirmed the cluster's writes"
        );
        let again = sim.subscribe(&cx(), SRC, NAME, &to()).unwrap();
        assert_eq!((again.name, again.slot_name), (first.name, first.slot_name));
        // Sequences: an unknown name sets nothing; a lower value lowers nothing.
        let before = sim.sequences(&cx(), SRC).unwrap();
        let mut bad = before.clone();
        bad[0].last_value += 1_000_000;
        bad.push(crate::pg::Sequence {
            name: "public.nope_seq".into(),
            last_value: 1,
        });
        let e = sim.advance_sequences(&cx(), SRC, &bad).unwrap_err();
        assert!(
            e.kind == ErrorKind::NotFound && e.message.contains("public.nope_seq"),
            "{e}"
        );
        assert_eq!(sim.sequences(&cx(), SRC).unwrap(), before, "nothing set");
        let mut low = before.clone();
        low[0].last_value = 1;
        assert_eq!(sim.advance_sequences(&cx(), SRC, &low).unwrap(), before);
        let e = sim
            .advance_sequences(&cx(), "orders-aurora-2", &low)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        // A cluster without rds.logical_replication=1 refuses logical slots, as AWS does.
        let sim = replicating(Vec::new(), false);
        fence(&sim, SRC);
        sim.promote_cluster(&cx(), DST).unwrap();
        advance(&sim, 6 * 60_000);
        let e = sim.create_logical_slot(&cx(), DST, NAME).unwrap_err();
        assert!(
            e.kind == ErrorKind::Conflict
                && !e.retryable
                && e.message.contains("rds.logical_replication=1"),
            "{e}"
        );
    }

    #[test]
    fn postgresql_14_counts_no_apply_errors() {
        let sim = replicating_with(
            |sc| {
                sc.source.engine_version = "14.9".into();
                sc.faults = vec![fault(FaultKind::ReverseBroken, "3h20m", None, None)];
            },
            true,
        );
        cut_over(&sim);
        advance(&sim, 10 * 60_000);
        let s = sub(&sim);
        assert_eq!(
            (s.worker_pid, s.apply_errors),
            (None, 0),
            "no pg_stat_subscription_stats"
        );
        assert!(
            sim.lock().logical.subscriptions[0].errors > 0,
            "it failed all the same"
        );
    }

    #[test]
    fn tables_without_a_primary_key_are_unreplicable_on_both_sides() {
        let sim = replicating_with(
            |sc| sc.source.no_primary_key = vec!["public.customers".into()],
            true,
        );
        for db in [SRC, DST] {
            assert_eq!(
                sim.unreplicable_tables(&cx(), db).unwrap(),
                vec![crate::pg::UnreplicableTable {
                    table: "public.customers".into(),
                    why: "no primary key".into(),
                }]
            );
        }
        let defs = sim.table_definitions(&cx(), SRC).unwrap();
        assert_eq!(defs, sim.table_definitions(&cx(), DST).unwrap());
        assert_eq!(
            defs.iter().map(|d| d.table.as_str()).collect::<Vec<_>>(),
            vec!["public.customers", "public.orders"]
        );
        let sim = replicating(Vec::new(), true);
        assert!(sim.unreplicable_tables(&cx(), SRC).unwrap().is_empty());
    }

    #[test]
    fn the_reverse_faults_and_tables_without_a_key_are_validated() {
        let base = "name = \"x\"\n[source]\nid = \"orders-db\"\n";
        let bad = |extra: &str| {
            Scenario::from_toml("bad.toml", &format!("{base}{extra}"))
                .unwrap_err()
                .message
        };
        let e = bad("[[faults]]\nkind = \"reverse-lag\"\nat = \"1h\"\n");
        assert!(
            e.contains("faults[0].value: reverse-lag needs the apply rate"),
            "{e}"
        );
        let e = bad("[[faults]]\nkind = \"reverse-lag\"\nat = \"1h\"\nvalue = 0.0\n");
        assert!(e.contains("faults[0].value"), "{e}");
        let e = bad("[[faults]]\nkind = \"target-ddl\"\nstep = \"rollback\"\nfor = \"5m\"\n");
        assert!(e.contains("faults[0].for: target-ddl is permanent"), "{e}");
        let e = bad("[[faults]]\nkind = \"target-ddl\"\nat = \"1h\"\ntarget = \"no such!\"\n");
        assert!(e.contains("faults[0].target"), "{e}");
        let e = bad("no_primary_key = [\"public.nope\"]\n");
        assert!(
            e.contains("source.no_primary_key[0]: \"public.nope\""),
            "{e}"
        );
        let e = bad("no_primary_key = \"public.orders\"\n");
        assert!(e.contains("source.no_primary_key"), "{e}");
        let ok = Scenario::from_toml(
            "ok.toml",
            &format!(
                "{base}no_primary_key = [\"public.orders\"]\n[[faults]]\nkind = \"reverse-broken\"\n\
                 step = \"rollback\"\nfor = \"2m\"\n[[faults]]\nkind = \"reverse-lag\"\nat = \"0s\"\n\
                 value = 1e6\n[[faults]]\nkind = \"target-ddl\"\nat = \"1h\"\n\
                 target = \"orders-aurora\"\n"
            ),
        )
        .unwrap();
        assert_eq!(
            ok.faults.iter().map(|f| f.kind).collect::<Vec<_>>(),
            vec![
                FaultKind::ReverseBroken,
                FaultKind::ReverseLag,
                FaultKind::TargetDdl
            ]
        );
    }
}

// ---- logical replication: the logical path's forward copy (inbound.rs) ---------------------

mod inbound {
    use super::*;
    use crate::pg::{SubscribeTo, SubscriptionTable};
    use crate::rds::CreateCluster;
    use crate::route::Router;
    use crate::validate::{CompareOptions, Validate};
    use godwit_engine::ErrorKind;

    const SRC: &str = "orders-db";
    const DST: &str = "orders-aurora";
    const NAME: &str = "godwit_logical";

    fn create(version: &str) -> CreateCluster {
        CreateCluster {
            cluster_id: DST.into(),
            like: SRC.into(),
            engine_version: version.into(),
            parameter_group: None,
            security_groups: None,
            storage_encrypted: None,
            kms_key_id: None,
            iam_auth: true,
            master_username: crate::rds::MASTER_USERNAME.into(),
        }
    }

    /// logical-ready changed by `change`, with an Aurora 16.2 cluster created empty and its
    /// writer available (~26 min in).
    fn created(change: impl FnOnce(&mut Scenario)) -> Sim {
        let mut sc = Scenario::load("logical-ready").unwrap();
        change(&mut sc);
        sc.validate().unwrap();
        let sim = Sim::new(sc);
        let c = sim.create_cluster(&cx(), &create("16.2")).unwrap();
        assert_eq!(
            (c.status.as_str(), c.replication_source_identifier),
            ("creating", None)
        );
        advance(&sim, 15 * 60_000 + 1_000);
        sim.create_cluster_instance(
            &cx(),
            &CreateClusterInstance {
                instance_id: "orders-aurora-1".into(),
                cluster_id: DST.into(),
                instance_class: "db.r6g.xlarge".into(),
                parameter_group: None,
            },
        )
        .unwrap();
        advance(&sim, 11 * 60_000);
        assert!(sim.lock().writable(DST), "an empty writable primary");
        sim
    }

    /// Schema copied, publication and slot on the source, the target subscribed with a copy.
    fn subscribed(sim: &Sim) {
        sim.copy_schema(&cx(), SRC, DST).unwrap();
        sim.create_publication(&cx(), SRC, NAME).unwrap();
        sim.create_logical_slot(&cx(), SRC, NAME).unwrap();
        let to = SubscribeTo {
            from: SRC.into(),
            publication: NAME.into(),
            slot: NAME.into(),
            copy_data: true,
        };
        sim.subscribe(&cx(), DST, NAME, &to).unwrap();
    }

    fn tables(sim: &Sim) -> Vec<SubscriptionTable> {
        sim.subscription_tables(&cx(), DST, NAME).unwrap()
    }

    fn states(sim: &Sim) -> Vec<String> {
        tables(sim).into_iter().map(|t| t.state).collect()
    }

    fn confirmed(sim: &Sim) -> u64 {
        let slots = sim.replication_slots(&cx(), SRC).unwrap();
        let s = slots.iter().find(|s| s.slot_name == NAME).unwrap();
        crate::pg::parse_lsn(s.confirmed_flush_lsn.as_deref().unwrap()).unwrap()
    }

    /// Advance in 30 s polls until every table is ready; how long it took (ms).
    fn wait_copied(sim: &Sim, max_ms: Millis) -> Millis {
        let mut waited = 0;
        while states(sim).iter().any(|s| s != "ready") {
            assert!(
                waited < max_ms,
                "still copying after {waited} ms: {:?}",
                tables(sim)
            );
            advance(sim, 30_000);
            waited += 30_000;
        }
        waited
    }

    fn fence(sim: &Sim) {
        sim.block_logins(&cx(), SRC, &["orders_app".into()])
            .unwrap();
        let pids: Vec<i64> = sim
            .application_backends(&cx(), SRC)
            .unwrap()
            .iter()
            .map(|b| b.pid)
            .collect();
        sim.terminate_backends(&cx(), SRC, &pids).unwrap();
        advance(sim, 1_000);
    }

    fn route_to_target(sim: &Sim) {
        sim.switch_route(&cx(), SRC, DST, false, true).unwrap();
        advance(sim, 1_000);
        sim.unblock_logins(&cx(), DST, &["orders_app".into()])
            .unwrap();
        advance(sim, 20_000);
    }

    fn violations(sim: &Sim) -> Vec<String> {
        sim.lock()
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.invariant, v.detail))
            .collect()
    }

    #[test]
    fn a_created_cluster_copies_every_table_then_streams_and_needs_its_sequences_set() {
        let sim = created(|_| {});
        // Empty: only its master user, so godwit cannot sign in before the roles are copied.
        let e = sim.table_definitions(&cx(), DST).unwrap_err();
        assert!(
            e.message.contains("does not exist") && e.hint.contains("pg::copy_schema"),
            "{e}"
        );
        // Idempotent for the same version; another version or an older major is refused.
        assert_eq!(sim.create_cluster(&cx(), &create("16.2")).unwrap().id, DST);
        assert_eq!(
            sim.create_cluster(&cx(), &create("15.6")).unwrap_err().kind,
            ErrorKind::Conflict
        );
        let mut older = create("14.9");
        older.cluster_id = "orders-old".into();
        assert_eq!(
            sim.create_cluster(&cx(), &older).unwrap_err().kind,
            ErrorKind::Invalid
        );

        subscribed(&sim);
        assert_eq!(
            sim.table_definitions(&cx(), DST).unwrap(),
            sim.table_definitions(&cx(), SRC).unwrap(),
            "the schema copied"
        );
        assert_eq!(
            sim.sequences(&cx(), DST).unwrap()[0].last_value,
            1,
            "no sequence values copied"
        );
        advance(&sim, 30_000);
        assert_eq!(
            states(&sim),
            ["copying", "init"],
            "one table at a time, in name order"
        );
        let report = sim
            .compare(&cx(), SRC, DST, &CompareOptions::default())
            .unwrap();
        assert!(!report.equal, "half copied: {}", report.summary);

        // The copy takes the tables' bytes at the scenario's rate.
        let total: i64 = sim
            .table_stats(&cx(), SRC)
            .unwrap()
            .iter()
            .map(|t| t.bytes)
            .sum();
        let rate = sim.lock().sc.logical.copy_bytes_per_second;
        let took = 30_000 + wait_copied(&sim, 4 * 3_600_000);
        let expected = (total as f64 / rate * 1000.0) as Millis;
        assert!(
            took >= expected && took <= expected + 90_000,
            "copied {total} bytes in {took} ms, expected about {expected} ms"
        );
        assert!(tables(&sim).iter().all(|t| t.error.is_none()));

        // Then the stream catches up; fenced, the target applies past the last commit.
        fence(&sim);
        let end = sim.current_lsn(&cx(), SRC).unwrap().lsn_bytes as u64;
        let mut waited = 0;
        while confirmed(&sim) < end {
            assert!(
                waited < 30 * 60_000,
                "not caught up: {} < {end}",
                confirmed(&sim)
            );
            advance(&sim, 10_000);
            waited += 10_000;
        }
        let report = sim
            .compare(&cx(), SRC, DST, &CompareOptions::default())
            .unwrap();
        assert!(report.tables.iter().all(|t| t.equal), "{}", report.summary);
        assert!(
            !report.equal && report.sequences.iter().all(|s| !s.ok),
            "sequences are not carried: {:?}",
            report.sequences
        );
        sim.advance_sequences(&cx(), DST, &sim.sequences(&cx(), SRC).unwrap())
            .unwrap();
        let report = sim
            .compare(&cx(), SRC, DST, &CompareOptions::default())
            .unwrap();
        assert!(report.equal, "{}", report.summary);

        // The cutover: subscription dropped, the application on the target; nothing lost.
        assert!(sim.drop_subscription(&cx(), DST, NAME).unwrap());
        route_to_target(&sim);
        assert!(
            sim.lock().app_bytes.get(DST).copied().unwrap_or(0) > 0,
            "the target takes writes"
        );
        assert_eq!(violations(&sim), Vec::<String>::new());
        let report = sim
            .compare(&cx(), SRC, DST, &CompareOptions::default())
            .unwrap();
        assert!(!report.equal, "the target moved on: {}", report.summary);
    }

    #[test]
    fn a_target_that_takes_writes_before_it_applied_the_source_loses_them() {
        let sim = created(|_| {});
        subscribed(&sim);
        wait_copied(&sim, 4 * 3_600_000);
        // The subscription ends while the source still writes for a minute.
        sim.drop_subscription(&cx(), DST, NAME).unwrap();
        advance(&sim, 60_000);
        fence(&sim);
        route_to_target(&sim);
        let v = violations(&sim);
        assert!(
            v.iter().any(|v| v.starts_with("no-acknowledged-write-lost")
                && v.contains("had not been applied")),
            "{v:?}"
        );
    }

    #[test]
    fn a_target_that_takes_writes_before_its_copy_finished_misses_rows() {
        let sim = created(|_| {});
        subscribed(&sim);
        advance(&sim, 60_000);
        // Dropped mid-copy: what it copied stays, the rest never arrives.
        sim.drop_subscription(&cx(), DST, NAME).unwrap();
        let report = sim
            .compare(&cx(), SRC, DST, &CompareOptions::default())
            .unwrap();
        assert!(report.tables.iter().all(|t| !t.equal), "{}", report.summary);
        fence(&sim);
        route_to_target(&sim);
        let v = violations(&sim);
        assert!(
            v.iter().any(|v| v
                .contains("its copy of public.customers, public.orders was not complete")
                || v.contains("its copy of public.orders, public.customers was not complete")),
            "{v:?}"
        );
    }

    #[test]
    fn a_ddl_on_the_source_fails_the_copy_of_its_table_and_the_stream_after_it() {
        // During the copy: at 27 min the first table (customers) copies, orders waits.
        let sim = created(|sc| {
            sc.faults = vec![scenario::Fault {
                kind: FaultKind::SourceDdl,
                at: Some("27m".into()),
                step: None,
                lasts: None,
                target: None,
                value: Some(1.0),
            }]
        });
        subscribed(&sim);
        advance(&sim, 5 * 60_000);
        let t = tables(&sim);
        assert_eq!(t[0].state, "ready");
        assert_eq!(t[1].table, "public.orders");
        assert!(
            t[1].state == "init"
                && t[1]
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("missing replicated column \"note\"")),
            "{t:?}"
        );
        let sub = sim.subscriptions(&cx(), DST).unwrap().remove(0);
        assert!(
            sub.apply_errors > 10,
            "each retry of the sync fails: {sub:?}"
        );
        assert!(
            sub.worker_pid.is_some(),
            "the apply worker runs on: {sub:?}"
        );
        assert_ne!(
            sim.table_definitions(&cx(), SRC).unwrap(),
            sim.table_definitions(&cx(), DST).unwrap(),
            "what the copy gate compares"
        );

        // After the copy: the stream stops at the DDL.
        let sim = created(|sc| {
            sc.faults = vec![scenario::Fault {
                kind: FaultKind::SourceDdl,
                at: Some("2h".into()),
                step: None,
                lasts: None,
                target: None,
                value: Some(1.0),
            }]
        });
        subscribed(&sim);
        wait_copied(&sim, 90 * 60_000);
        let now = sim.lock().now;
        let t0 = sim.lock().sc.start_ms();
        advance(&sim, t0 + 2 * 3_600_000 + 60_000 - now);
        let held = confirmed(&sim);
        advance(&sim, 10 * 60_000);
        assert_eq!(confirmed(&sim), held, "nothing applied past the DDL");
        assert!(held < sim.current_lsn(&cx(), SRC).unwrap().lsn_bytes as u64);
        let sub = sim.subscriptions(&cx(), DST).unwrap().remove(0);
        assert!(sub.apply_errors > 50, "{sub:?}");
    }

    #[test]
    fn a_table_sync_after_the_iam_token_expired_waits_for_fresh_credentials() {
        // customers (~1 min), orders (~26 min), then zeta: its sync starts after 15 minutes.
        let sim = created(|sc| {
            sc.source.tables.push(scenario::TableCfg {
                name: "public.zeta".into(),
                rows: 1_000_000,
            })
        });
        subscribed(&sim);
        advance(&sim, 40 * 60_000);
        let t = tables(&sim);
        assert_eq!(
            t.iter().map(|t| t.state.as_str()).collect::<Vec<_>>(),
            ["ready", "ready", "init"],
            "{t:?}"
        );
        assert!(
            sim.lock()
                .log
                .iter()
                .any(|(_, l)| l.contains("the sync of public.zeta cannot log in")),
            "said why"
        );
        sim.refresh_subscription(&cx(), DST, NAME, SRC).unwrap();
        advance(&sim, 30_000);
        assert_eq!(tables(&sim)[2].state, "copying");
    }
}
