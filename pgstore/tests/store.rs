//! The PostgreSQL store against a real server (started here, stopped when each test ends):
//! the journal's chain and verification, leases and fencing, cluster claims, the queue.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use godwit_engine::journal::{Entry, JournalError, JournalStore, JournalWriter, Outcome, Request};
use godwit_lab::pgproc::{Scratch, Server};
use godwit_pgstore::{Job, Options, PgStore, Settle};

/// A server of our own; stopped (by pid) when the `Scratch` drops, panics included.
fn server() -> (Scratch, Server, String) {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (see lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=5",
        server.port
    );
    (scratch, server, url)
}

fn connect(url: &str, lease: Duration) -> PgStore {
    PgStore::connect(
        url,
        Options {
            lease,
            op_timeout: Duration::from_secs(10),
        },
    )
    .unwrap()
}

/// Raw SQL beside the store (what an intruder, or a second worker's transaction, does).
fn sql(server: &Server, statements: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(
            &server.conninfo("postgres", "postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        let task = tokio::spawn(conn);
        client.batch_execute(statements).await.unwrap();
        drop(client);
        let _ = task.await;
    });
}

/// Wait without `thread::sleep` (banned: all waiting goes through clocks elsewhere).
fn pause(d: Duration) {
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}

fn step(name: &str) -> Entry {
    Entry::StepCompleted {
        name: name.into(),
        result: serde_json::json!({"n": 1.5}),
        at: 7,
    }
}

fn started(id: &str, cluster: &str) -> Entry {
    Entry::RunStarted {
        run_id: id.into(),
        runbook: godwit_engine::journal::RunbookInfo {
            name: "r".into(),
            version: "1".into(),
            path: "r.rhai".into(),
            hash: "h".into(),
            modules: vec![],
        },
        cluster: cluster.into(),
        world: "pure".into(),
        params: serde_json::json!({}),
        godwit_version: "0".into(),
        at: 1,
    }
}

#[test]
fn append_read_verify_round_trip_and_tampering_is_caught_as_for_files() {
    let (_scratch, server, url) = server();
    let store = connect(&url, Duration::from_secs(30));
    // The world's state follows the run: stored with the append after each change.
    let world = tempfile::tempdir().unwrap();
    let state = world.path().join("r1.json");
    store.follow_files("r1", vec![state.clone(), world.path().join("r1.now")]);
    let mut w = store.create("r1").unwrap();
    for n in ["a", "b", "c"] {
        std::fs::write(&state, format!("world after {n}")).unwrap();
        let seq = w.append(&step(n)).unwrap();
        w.transcript(&format!(r#"{{"seq":{seq},"event":"x"}}"#));
    }
    // Rewritten with the same length within one tick of the file system's clock (mtimes are
    // as coarse as a jiffy on many kernels): still a change, stored with the next append.
    let before = std::fs::metadata(&state).unwrap().modified().unwrap();
    std::fs::write(&state, "world after C").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&state)
        .unwrap()
        .set_modified(before)
        .unwrap();
    let seq = w.append(&step("C")).unwrap();
    w.transcript(&format!(r#"{{"seq":{seq},"event":"x"}}"#));
    assert_eq!(
        store.world_files("r1").unwrap(),
        vec![("r1.json".to_string(), b"world after C".to_vec())],
        "a same-length rewrite with the same mtime is stored"
    );
    std::fs::write(&state, "changed after the last append").unwrap();
    drop(w);
    assert_eq!(
        store.world_files("r1").unwrap(),
        vec![("r1.json".to_string(), b"world after C".to_vec())],
        "the store's copy matches the journal, not what happened after it"
    );
    assert!(matches!(
        store.create("r1"),
        Err(JournalError::Exists { .. })
    ));
    let (loaded, mut w) = store.open("r1").unwrap();
    assert_eq!(loaded.records.len(), 4);
    assert_eq!(loaded.records[3].entry, step("C"));
    assert_eq!(w.append(&step("d")).unwrap(), 4, "appends chain on");
    drop(w);
    assert_eq!(store.transcript_lines("r1").unwrap().len(), 4);
    // The same records, byte for byte, as the file store would have written: the chain
    // verifies with the engine's own check.
    let again = store.read("r1").unwrap();
    assert_eq!(again.records.len(), 5);
    assert_eq!(again.records[4].prev, again.records[3].hash);

    // An edited record.
    sql(
        &server,
        "UPDATE godwit.journal SET line = replace(line, '1.5', '2.5') WHERE run_id = 'r1' AND seq = 1",
    );
    let err = store.read("r1").unwrap_err().to_string();
    assert!(err.contains("damaged at record 1"), "{err}");
    assert!(err.contains("edited"), "{err}");
    assert!(
        store.open("r1").is_err(),
        "a damaged journal is not resumed"
    );
    sql(
        &server,
        "UPDATE godwit.journal SET line = replace(line, '2.5', '1.5') WHERE run_id = 'r1' AND seq = 1",
    );
    store.read("r1").unwrap();

    // A record removed from the middle.
    let mut w2 = store.create("r2").unwrap();
    for n in ["a", "b", "c"] {
        w2.append(&step(n)).unwrap();
    }
    drop(w2);
    sql(
        &server,
        "DELETE FROM godwit.journal WHERE run_id = 'r2' AND seq = 1",
    );
    let err = store.read("r2").unwrap_err().to_string();
    assert!(err.contains("record 1"), "{err}");

    // Records removed from the end: the run's head says more.
    sql(
        &server,
        "DELETE FROM godwit.journal WHERE run_id = 'r1' AND seq = 4",
    );
    let err = store.read("r1").unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    // Lists, requests, discard.
    assert_eq!(store.list().unwrap().len(), 2);
    let approve = Request::Approve {
        name: "cutover".into(),
        by: "ann".into(),
        at: 1,
    };
    store.request("r2", &approve).unwrap();
    assert_eq!(store.requests("r2").unwrap(), vec![approve.clone()]);
    assert!(matches!(
        store.request("nope", &approve),
        Err(JournalError::NotFound { .. })
    ));
    store.discard("r2").unwrap();
    assert_eq!(store.list().unwrap(), vec!["r1".to_string()]);
}

/// The SIGSTOP case: a writer whose heartbeat stops (its process paused) loses its lease at the
/// expiry; another takes the run over with a higher fencing token, and the paused writer's next
/// append — when it "wakes" — is refused, naming the new holder. Nothing it tried is in the
/// journal.
#[test]
fn a_writer_that_lost_its_lease_is_refused_at_its_next_append() {
    let (_scratch, _server, url) = server();
    let lease = Duration::from_millis(1500);
    let a_store = connect(&url, lease);
    let b_store = connect(&url, lease);

    let mut a = a_store.create_writer("run").unwrap();
    a.append(&step("a1")).unwrap();
    // A live heartbeat keeps the run: three lease periods later it is still A's.
    pause(lease * 3);
    let err = b_store.open("run").err().expect("A holds the lease");
    assert!(
        matches!(&err, JournalError::Locked { holder, .. } if holder.contains(a.holder())),
        "{err}"
    );

    a.pause_heartbeat(true); // SIGSTOP
    let t0 = Instant::now();
    let (loaded, mut b) = loop {
        match b_store.open_writer("run") {
            Ok(taken) => break taken,
            Err(JournalError::Locked { .. }) if t0.elapsed() < Duration::from_secs(10) => {
                pause(Duration::from_millis(100))
            }
            Err(e) => panic!("takeover: {e}"),
        }
    };
    let waited = t0.elapsed();
    assert!(
        waited <= lease + Duration::from_secs(1),
        "taken over {waited:?} after the heartbeat stopped (lease {lease:?})"
    );
    assert!(b.token() > a.token(), "{} > {}", b.token(), a.token());
    assert_eq!(loaded.records.len(), 1);
    b.append(&step("b1")).unwrap();

    // SIGCONT: A wakes and tries to continue.
    a.pause_heartbeat(false);
    let err = a.append(&step("a2")).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, JournalError::Locked { holder, .. } if holder.contains(b.holder())),
        "{msg}"
    );
    assert!(msg.contains("lost its lease"), "{msg}");
    // Not once, and not after its heartbeat runs again either.
    pause(lease);
    assert!(a.append(&step("a2")).is_err());
    a.transcript(r#"{"seq":9,"event":"stale"}"#);
    drop(a); // its release and transcript flush are fenced too
    assert!(b_store.holder("run").is_some_and(|h| h == b.holder()));

    b.append(&step("b2")).unwrap();
    drop(b);
    let names: Vec<String> = a_store
        .read("run")
        .unwrap()
        .records
        .iter()
        .map(|r| r.entry.label())
        .collect();
    assert_eq!(names, ["step 'a1'", "step 'b1'", "step 'b2'"]);
    assert!(
        a_store
            .transcript_lines("run")
            .unwrap()
            .iter()
            .all(|l| !l.contains("stale"))
    );
    // Released on drop: the next open does not wait for an expiry.
    let t1 = Instant::now();
    drop(a_store.open("run").unwrap());
    assert!(t1.elapsed() < Duration::from_secs(1));

    // Paused past the expiry with nobody taking over yet: refused all the same (an expired
    // lease is never revived by its old holder), and the run is free for the next open.
    let mut c = a_store.open_writer("run").unwrap().1;
    c.pause_heartbeat(true);
    pause(lease + Duration::from_millis(300));
    c.pause_heartbeat(false);
    let err = c.append(&step("c1")).unwrap_err().to_string();
    assert!(err.contains("expired before this append"), "{err}");
    pause(lease / 2); // its heartbeat does not bring the lease back either
    assert!(c.append(&step("c1")).is_err());
    let (loaded, _d) = b_store.open_writer("run").unwrap();
    assert_eq!(loaded.records.len(), 3);
}

#[test]
fn a_cluster_is_claimed_by_one_unfinished_run_across_processes() {
    let (_scratch, _server, url) = server();
    let store = connect(&url, Duration::from_secs(30));
    const N: usize = 6;
    let barrier = Arc::new(Barrier::new(N));
    // Separate stores: separate connections, as separate processes would have.
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let url = url.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let store = connect(&url, Duration::from_secs(30));
                let id = format!("r{i}");
                let writer = store.create(&id).unwrap();
                barrier.wait();
                let claimed = store.claim_cluster("orders-db", &id);
                (id, claimed, writer, store)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<&String> = results
        .iter()
        .filter(|r| r.1.is_ok())
        .map(|r| &r.0)
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let winner = winners[0].clone();
    for (_, claimed, _, _) in &results {
        if let Err(e) = claimed {
            assert!(
                matches!(e, JournalError::ClusterBusy { holder, .. } if *holder == winner),
                "{e}"
            );
        }
    }
    assert_eq!(
        store.cluster_holder("orders-db").unwrap().as_ref(),
        Some(&winner)
    );
    drop(results); // every writer gone: the winner never began, so its claim lapses

    let mut a = store.create("a").unwrap();
    store.claim_cluster("orders-db", "a").unwrap();
    a.append(&started("a", "orders-db")).unwrap();
    drop(a); // stopped, not finished: the claim stands with no process holding the run
    let _b = store.create("b").unwrap();
    let err = store.claim_cluster("orders-db", "b").unwrap_err();
    assert!(
        matches!(&err, JournalError::ClusterBusy { holder, .. } if holder == "a"),
        "{err}"
    );
    store.claim_cluster("orders-db", "a").unwrap(); // the holder again
    let (_, mut a) = store.open("a").unwrap();
    a.append(&Entry::RunFinished {
        outcome: Outcome::Succeeded,
        detail: serde_json::Value::Null,
        at: 2,
    })
    .unwrap();
    drop(a);
    // Finished without releasing (a crash right after run-finished): taken over.
    store.claim_cluster("orders-db", "b").unwrap();
    store.release_cluster("orders-db", "a").unwrap(); // not a's any more: kept
    assert_eq!(
        store.cluster_holder("orders-db").unwrap().as_deref(),
        Some("b")
    );
    store.release_cluster("orders-db", "b").unwrap();
    assert_eq!(store.cluster_holder("orders-db").unwrap(), None);
}

fn job(i: usize) -> Job {
    Job {
        run_id: format!("job{i:02}"),
        cluster: format!("db-{i}"),
        runbook: "rds-to-aurora".into(),
        world: "sim".into(),
        params: serde_json::Map::new(),
        settings: None,
        ..Default::default()
    }
}

#[test]
fn two_workers_take_every_job_once_skipping_rows_the_other_has_locked() {
    let (_scratch, server, url) = server();
    let store = connect(&url, Duration::from_secs(30));
    for i in 0..40 {
        store.enqueue(&job(i)).unwrap();
    }
    assert!(matches!(
        store.enqueue(&job(0)),
        Err(JournalError::Exists { .. })
    ));

    // SKIP LOCKED: with the oldest row locked by another transaction, a take returns the next
    // one at once instead of waiting for that transaction.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let locker = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(
            &server.conninfo("postgres", "postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("BEGIN; SELECT 1 FROM godwit.queue WHERE run_id = 'job00' FOR UPDATE")
            .await
            .unwrap();
        client
    });
    let _w0 = store.register_worker("w0").unwrap();
    let t0 = Instant::now();
    let first = store.take("w0").unwrap().unwrap();
    assert_eq!(first.job, job(1));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
    drop(locker);

    // Two workers racing over the rest: every job taken exactly once.
    let handles: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = connect(&url, Duration::from_secs(30));
                let _me = store.register_worker(w).unwrap();
                let mut got = Vec::new();
                while let Some(t) = store.take(w).unwrap() {
                    assert!(!t.began);
                    assert!(
                        store
                            .settle(
                                &t.job.run_id,
                                w,
                                t.attempt,
                                Settle::Done,
                                Some("succeeded"),
                                None
                            )
                            .unwrap()
                    );
                    got.push(t.job.run_id);
                }
                got
            })
        })
        .collect();
    let mut all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, all.len(), "a job was taken twice");
    assert_eq!(n, 39, "job01 stays with w0, which is alive");
    assert!(!all.contains(&"job01".to_string()));
    let rows = store.queue_rows().unwrap();
    assert_eq!(rows.iter().filter(|r| r.state == "done").count(), 39);
    assert_eq!(store.open_jobs().unwrap(), 1, "job01 running");
}

/// A worker that stops heartbeating (dead or paused) loses its runs to another worker once its
/// lease and the run's lease have both expired; the old take can no longer settle the row.
#[test]
fn a_dead_workers_run_is_taken_over_and_its_old_take_cannot_settle() {
    let (_scratch, _server, url) = server();
    let lease = Duration::from_millis(1500);
    let a_store = connect(&url, lease);
    let b_store = connect(&url, lease);
    a_store.enqueue(&job(1)).unwrap();
    let a = a_store.register_worker("worker-a").unwrap();
    let _b = b_store.register_worker("worker-b").unwrap();
    let taken = a_store.take("worker-a").unwrap().unwrap();
    let mut w = a_store.create_writer(&taken.job.run_id).unwrap();
    w.append(&started(&taken.job.run_id, "db-1")).unwrap();
    assert!(b_store.take("worker-b").unwrap().is_none(), "A is alive");

    a.pause_heartbeat(true);
    w.pause_heartbeat(true);
    let t0 = Instant::now();
    let retaken = loop {
        if let Some(t) = b_store.take("worker-b").unwrap() {
            break t;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never taken over");
        pause(Duration::from_millis(100));
    };
    assert!(t0.elapsed() >= lease - Duration::from_millis(200));
    assert_eq!(retaken.job, job(1));
    assert_eq!(retaken.attempt, 2);
    assert!(retaken.began, "the run began: B resumes it");
    let (_, mut bw) = b_store.open_writer(&retaken.job.run_id).unwrap();
    bw.append(&step("b")).unwrap();
    // A wakes: neither its journal writer nor its queue take count any more.
    assert!(matches!(
        w.append(&step("a")),
        Err(JournalError::Locked { .. })
    ));
    assert!(
        !a_store
            .settle(
                "job01",
                "worker-a",
                taken.attempt,
                Settle::Done,
                Some("succeeded"),
                None
            )
            .unwrap()
    );
    assert!(
        b_store
            .settle(
                "job01",
                "worker-b",
                retaken.attempt,
                Settle::Done,
                Some("succeeded"),
                None
            )
            .unwrap()
    );
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let (_scratch, server, url) = server();
    // Several processes connecting at once migrate once.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || connect(&url, Duration::from_secs(30)))
        })
        .collect();
    for h in handles {
        assert_eq!(
            h.join().unwrap().schema_versions().unwrap(),
            vec![1, 2, 3, 4, 5]
        );
    }
    sql(
        &server,
        "INSERT INTO godwit.schema_migrations (version, name) VALUES (99, 'from the future')",
    );
    let err = PgStore::connect(&url, Options::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("upgrade this godwit"), "{err}");
}

#[test]
fn an_unreachable_store_is_an_error_naming_it_without_the_password() {
    let port = godwit_lab::pgproc::free_port().unwrap();
    let url = format!("postgres://ann:s3cret@127.0.0.1:{port}/fleet");
    let t0 = Instant::now();
    let err = PgStore::connect(&url, Options::default())
        .unwrap_err()
        .to_string();
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert!(
        err.contains(&format!("postgres://ann@127.0.0.1:{port}/fleet")),
        "{err}"
    );
    assert!(err.contains("cannot reach"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

/// A queued run that someone holds (an operator resuming it by hand) is not taken: opening it
/// would only fail and hand the row back, over and over.
#[test]
fn a_run_held_by_someone_is_not_taken_from_the_queue() {
    let (_scratch, _server, url) = server();
    let store = connect(&url, Duration::from_secs(30));
    store.enqueue(&job(1)).unwrap();
    let held = store.create_writer("job01").unwrap();
    let _w = store.register_worker("w").unwrap();
    assert!(store.take("w").unwrap().is_none());
    drop(held);
    assert_eq!(store.take("w").unwrap().unwrap().job, job(1));
}

/// The writer tells on its own that its lease may be about to lapse — three quarters of it since
/// the last renewal the store confirmed — while nobody else may take the run yet: the Host
/// stops the run's world calls then, where the store's fence refuses only the next append.
#[test]
fn a_writer_whose_renewals_stop_says_so_before_anyone_may_take_the_run() {
    let (_scratch, _server, url) = server();
    let lease = Duration::from_millis(1500);
    let a_store = connect(&url, lease);
    let b_store = connect(&url, lease);
    let mut a = a_store.create_writer("run").unwrap();
    a.append(&step("a1")).unwrap();
    pause(lease * 2);
    assert!(a.lapsed().is_none(), "renewed all along");

    a.pause_heartbeat(true); // SIGSTOP, or the store cut off
    let t0 = Instant::now();
    let said = loop {
        if let Some(e) = a.lapsed() {
            break e;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never said so");
        pause(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    // The lease still holds: nobody can have taken the run over yet.
    let refused = b_store.open("run").err().expect("A's lease still holds");
    assert!(
        matches!(&refused, JournalError::Locked { holder, .. } if holder.contains(a.holder())),
        "{refused}"
    );
    assert!(
        took <= lease * 3 / 4 + Duration::from_millis(200),
        "said after {took:?}"
    );
    let msg = said.to_string();
    assert!(msg.contains("stops acting on the world"), "{msg}");
}
