//! `cdc::hooks` (the aws world's CDC backend) on a real PostgreSQL server: declared consumers
//! paused and resumed by shell commands, state and positions read from the slots, equivalent
//! slots created on another server.

use godwit_engine::{Host, SystemClock};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use godwit_lab::pgproc::Scratch;
use godwit_stdlib::cdc::Cdc;
use godwit_stdlib::cdc::hooks::{ConsumerHook, HookCdc};
use godwit_stdlib::pg::live::Pool;
use godwit_tests::livepg::{Ports, exec};

#[allow(clippy::disallowed_methods)] // waiting for a real process to connect
fn pause(d: Duration) {
    std::thread::sleep(d);
}

#[test]
fn declared_consumers_pause_resume_and_report_from_their_slots() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let scratch = Scratch::new().unwrap_or_else(|e| panic!("{e}"));
    let src = scratch.primary("src", &[]).unwrap();
    let dst = scratch.primary("dst", &[]).unwrap();
    rt.block_on(exec(
        &src,
        "SELECT pg_create_logical_replication_slot('orders_cdc', 'test_decoding'); CREATE TABLE t(i int); INSERT INTO t VALUES (1)",
    ));
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let envfile = dir.path().join("env");
    let recv = scratch.bin.tool("pg_recvlogical");
    let resume = format!(
        "env | grep ^GODWIT_CDC_ | sort > {env}; \
         {recv} -h 127.0.0.1 -p {port} -U postgres -d postgres -S \"$GODWIT_CDC_SLOT\" --start -f /dev/null -s 1 >/dev/null 2>&1 & \
         echo $! > {pid}",
        env = envfile.display(),
        recv = recv.display(),
        port = src.port,
        pid = pidfile.display()
    );
    let pause_cmd = format!(
        "p=$(cat {pid}); kill -INT $p; while kill -0 $p 2>/dev/null; do sleep 0.05; done",
        pid = pidfile.display()
    );
    let ports = Ports(HashMap::from([
        ("orders-db".to_string(), src.port),
        ("orders-aurora".to_string(), dst.port),
    ]));
    let cdc = HookCdc {
        consumers: vec![ConsumerHook {
            name: "debezium-orders".into(),
            slot: "orders_cdc".into(),
            db: "orders-db".into(),
            plugin: Some("test_decoding".into()),
            pause: pause_cmd,
            resume,
            timeout: Some("30s".into()),
        }],
        pool: Arc::new(Pool::new(Arc::new(ports), rt.handle().clone())),
    };
    let host = Host::detached(Arc::new(SystemClock), Some(rt.handle().clone()));
    let cx = host.context("cdc", "test");

    let listed = cdc.list_consumers(&cx).unwrap();
    assert_eq!(listed[0].state, "paused", "nobody reads the slot yet");
    let resumed = cdc
        .resume_consumer(&cx, "debezium-orders", "orders-db", "orders_cdc", None)
        .unwrap();
    assert_eq!(resumed.slot, "orders_cdc");
    let mut state = String::new();
    for _ in 0..250 {
        state = cdc.list_consumers(&cx).unwrap()[0].state.clone();
        if state == "running" {
            break;
        }
        pause(Duration::from_millis(20));
    }
    assert_eq!(
        state, "running",
        "the resume command started a reader on the slot"
    );
    let env = std::fs::read_to_string(&envfile).unwrap();
    assert!(
        env.contains("GODWIT_CDC_CONSUMER=debezium-orders")
            && env.contains("GODWIT_CDC_DB=orders-db")
            && env.contains("GODWIT_CDC_SLOT=orders_cdc"),
        "{env}"
    );
    let paused = cdc.pause_consumer(&cx, "debezium-orders").unwrap();
    assert_eq!(
        paused.state, "paused",
        "the pause command stopped the reader"
    );
    let pos = cdc.record_positions(&cx).unwrap();
    assert_eq!(pos[0].slot, "orders_cdc");
    assert!(pos[0].confirmed_flush_bytes > 0);

    // On the target: the equivalent slot, created once.
    let created = cdc
        .create_equivalent_slots(&cx, "orders-aurora", &["orders_cdc".to_string()])
        .unwrap();
    assert_eq!(created[0].plugin, "test_decoding");
    let again = cdc
        .create_equivalent_slots(&cx, "orders-aurora", &["orders_cdc".to_string()])
        .unwrap();
    assert_eq!(again[0].consistent_point, created[0].consistent_point);

    // A position is handed to the resume command; a failing command is an error with its output.
    let broken = HookCdc {
        consumers: vec![ConsumerHook {
            resume: format!(
                "env | grep ^GODWIT_CDC_POSITION > {}; echo connector refused >&2; exit 3",
                envfile.display()
            ),
            ..cdc.consumers[0].clone()
        }],
        pool: cdc.pool.clone(),
    };
    let e = broken
        .resume_consumer(
            &cx,
            "debezium-orders",
            "orders-aurora",
            "orders_cdc",
            Some(pos[0].confirmed_flush_bytes as u64),
        )
        .unwrap_err();
    assert!(
        e.message.contains("exit status: 3") && e.message.contains("connector refused"),
        "{e:?}"
    );
    assert!(e.retryable);
    let env = std::fs::read_to_string(&envfile).unwrap();
    assert!(env.starts_with("GODWIT_CDC_POSITION="), "{env}");
    let e = cdc.pause_consumer(&cx, "nobody").unwrap_err();
    assert!(e.hint.contains("debezium-orders"), "{e:?}");
}
