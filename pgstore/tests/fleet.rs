//! The wave rules of `godwit_pgstore::fleet` against a real server, driven by hand: the test
//! plays the workers (take, settle with an outcome) and checks what each advance queues —
//! canaries first and alone, at most `max_in_flight` at once, a failed canary or too many
//! failures stop the fleet, an approval, a resume that acknowledges failures, waves in order,
//! an abort that withdraws what no worker began — and that two advancing processes never queue
//! one member twice.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use godwit_lab::pgproc::{Scratch, Server};
use godwit_pgstore::{
    FleetAction, FleetDef, FleetStatus, Job, Options, PgStore, Registered, Settle, WaveDef,
};

fn server() -> (Scratch, Server, String) {
    let scratch = Scratch::new().expect("PostgreSQL server binaries (see lab/src/pgproc.rs)");
    let server = scratch.primary("store", &[]).expect("start a server");
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=5",
        server.port
    );
    (scratch, server, url)
}

fn connect(url: &str) -> PgStore {
    PgStore::connect(
        url,
        Options {
            lease: Duration::from_secs(30),
            op_timeout: Duration::from_secs(10),
        },
    )
    .unwrap()
}

fn job(cluster: &str) -> Job {
    Job {
        run_id: String::new(),
        cluster: cluster.into(),
        runbook: "rds-to-aurora".into(),
        world: "pure".into(),
        params: Default::default(),
        settings: None,
        ..Default::default()
    }
}

fn wave(name: &str, n: usize, canaries: u32, k: u32, f: u32, approve: bool) -> WaveDef {
    WaveDef {
        name: name.into(),
        canaries,
        max_in_flight: k,
        max_failures: f,
        approve_after_canaries: approve,
        members: (0..n).map(|i| job(&format!("{name}-db-{i}"))).collect(),
    }
}

/// Take every queued job as worker `w` (registered by the test: an unknown worker's rows look
/// dead and would be taken again): the clusters taken, with their take.
fn take_all(store: &PgStore, w: &str) -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    while let Some(t) = store.take(w).unwrap() {
        out.push((t.job.cluster, t.job.run_id, t.attempt));
    }
    out
}

fn finish(store: &PgStore, w: &str, taken: &[(String, String, i32)], outcome: &str) {
    for (_, run, attempt) in taken {
        let to = if outcome == "held" {
            Settle::Held
        } else {
            Settle::Done
        };
        assert!(
            store
                .settle(run, w, *attempt, to, Some(outcome), None)
                .unwrap()
        );
    }
}

fn status(store: &PgStore, name: &str) -> FleetStatus {
    store.fleet_status(name).unwrap().unwrap()
}

fn wave_state(st: &FleetStatus, wave: &str) -> String {
    st.waves
        .iter()
        .find(|w| w.wave == wave)
        .unwrap()
        .state
        .clone()
}

fn clusters(taken: &[(String, String, i32)]) -> Vec<&str> {
    taken.iter().map(|t| t.0.as_str()).collect()
}

#[test]
fn waves_go_canaries_first_at_most_k_at_once_and_stop_past_their_failures() {
    let (_scratch, _server, url) = server();
    let store = connect(&url);
    let _alive = store.register_worker("w").unwrap();
    let def = FleetDef {
        notify: Vec::new(),
        name: "payments".into(),
        origin: "test".into(),
        waves: vec![
            wave("canary", 4, 2, 1, 0, true),
            wave("main", 7, 0, 3, 1, false),
        ],
    };
    assert_eq!(store.register_fleet(&def).unwrap(), Registered::New);
    assert_eq!(
        store.register_fleet(&def).unwrap(),
        Registered::Existing {
            state: "running".into()
        }
    );
    let mut other = def.clone();
    other.waves[1].members.pop();
    let Registered::Differs(why) = store.register_fleet(&other).unwrap() else {
        panic!("another fleet of the same name")
    };
    assert!(why.contains("payments") && why.contains("member"), "{why}");

    // Canaries one at a time (max_in_flight 1), nothing else meanwhile.
    store.advance_fleets().unwrap();
    let t = take_all(&store, "w");
    assert_eq!(clusters(&t), ["canary-db-0"]);
    store.advance_fleets().unwrap();
    assert!(take_all(&store, "w").is_empty(), "still one in flight");
    finish(&store, "w", &t, "succeeded");
    store.advance_fleets().unwrap();
    let t = take_all(&store, "w");
    assert_eq!(clusters(&t), ["canary-db-1"]);
    finish(&store, "w", &t, "succeeded");
    store.advance_fleets().unwrap();
    assert_eq!(
        wave_state(&status(&store, "payments"), "canary"),
        "awaiting-approval"
    );
    assert!(take_all(&store, "w").is_empty(), "waits for the approval");
    assert_eq!(store.open_jobs().unwrap(), 0, "a waiting fleet is no work");
    let err = store.approve_wave("payments", "main", "op").unwrap_err();
    assert!(err.to_string().contains("pending"), "{err}");
    let err = store.approve_wave("payments", "canry", "op").unwrap_err();
    assert!(err.to_string().contains("its waves: canary, main"), "{err}");
    store.approve_wave("payments", "canary", "op").unwrap();

    // The rest of the canary wave (k = 1), then the main wave only once it is done.
    for i in 2..4 {
        store.advance_fleets().unwrap();
        let t = take_all(&store, "w");
        assert_eq!(clusters(&t), [format!("canary-db-{i}")]);
        finish(&store, "w", &t, "succeeded");
    }
    store.advance_fleets().unwrap();
    let st = status(&store, "payments");
    assert_eq!(wave_state(&st, "canary"), "done");
    let t = take_all(&store, "w");
    assert_eq!(
        clusters(&t),
        ["main-db-0", "main-db-1", "main-db-2"],
        "k = 3"
    );

    // One failure is allowed (max_failures 1), the second stops the wave and the fleet.
    finish(&store, "w", &t[..1], "rolled-back");
    store.advance_fleets().unwrap();
    let t2 = take_all(&store, "w");
    assert_eq!(clusters(&t2), ["main-db-3"], "back to 3 in flight");
    finish(&store, "w", &t[1..2], "held");
    let events = store.advance_fleets().unwrap();
    assert!(
        events.iter().any(|e| e.what == "stopped"
            && e.detail.as_deref().unwrap_or("").contains("main-db-0")
            && e.detail.as_deref().unwrap_or("").contains("main-db-1")),
        "{events:?}"
    );
    let st = status(&store, "payments");
    assert_eq!(
        (st.state.as_str(), wave_state(&st, "main").as_str()),
        ("stopped", "stopped")
    );
    assert!(
        take_all(&store, "w").is_empty(),
        "a stopped fleet queues nothing"
    );
    // Runs in flight go on to their end and are recorded.
    finish(&store, "w", &t[2..], "succeeded");
    finish(&store, "w", &t2, "succeeded");
    store.advance_fleets().unwrap();
    let st = status(&store, "payments");
    let main = st.waves.iter().find(|w| w.wave == "main").unwrap();
    assert_eq!(main.counts.get("succeeded"), Some(&2));

    // Pausing a stopped fleet is refused; resuming acknowledges the two failures.
    let err = store
        .fleet_action("payments", &FleetAction::Pause, "op")
        .unwrap_err();
    assert!(err.to_string().contains("is stopped"), "{err}");
    store
        .fleet_action("payments", &FleetAction::Resume, "op")
        .unwrap();
    // Paused with members still pending: nothing is queued until it is resumed.
    store
        .fleet_action("payments", &FleetAction::Pause, "op")
        .unwrap();
    store.advance_fleets().unwrap();
    assert!(
        take_all(&store, "w").is_empty(),
        "a paused fleet queues nothing"
    );
    assert_eq!(status(&store, "payments").state, "paused");
    let err = store
        .fleet_action("payments", &FleetAction::Pause, "op")
        .unwrap_err();
    assert!(err.to_string().contains("paused already"), "{err}");
    store
        .fleet_action("payments", &FleetAction::Resume, "op")
        .unwrap();
    store.advance_fleets().unwrap();
    let t = take_all(&store, "w");
    assert_eq!(clusters(&t), ["main-db-4", "main-db-5", "main-db-6"]);
    // A pause lets runs in flight finish; with nothing left to queue, the fleet is done.
    store
        .fleet_action("payments", &FleetAction::Pause, "op")
        .unwrap();
    finish(&store, "w", &t[..1], "succeeded");
    store.advance_fleets().unwrap();
    assert_eq!(status(&store, "payments").state, "paused");
    finish(&store, "w", &t[1..], "succeeded");
    store.advance_fleets().unwrap();
    let st = status(&store, "payments");
    assert_eq!(st.state, "done", "{st:?}");
    assert!(st.waves.iter().all(|w| w.state == "done"));
    let err = store
        .fleet_action("payments", &FleetAction::Resume, "op")
        .unwrap_err();
    assert!(err.to_string().contains("finished"), "{err}");
}

#[test]
fn a_failed_canary_stops_the_wave_before_the_rest() {
    let (_scratch, _server, url) = server();
    let store = connect(&url);
    let _alive = store.register_worker("w").unwrap();
    let hook = |events: &[&str]| godwit_pgstore::NotifyTarget {
        kind: "webhook".into(),
        address: "https://hooks.example.com/x".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        gate_closed_after_ms: None,
        aws: None,
    };
    let def = FleetDef {
        // One target for the stop, one that wants only approvals.
        notify: vec![hook(&["stopped"]), hook(&["approval"])],
        name: "f".into(),
        origin: "test".into(),
        // Even with room for failures: a canary is the test of the wave.
        waves: vec![wave("w1", 5, 2, 2, 3, false)],
    };
    store.register_fleet(&def).unwrap();
    store.advance_fleets().unwrap();
    let t = take_all(&store, "w");
    assert_eq!(clusters(&t), ["w1-db-0", "w1-db-1"], "both canaries, k = 2");
    finish(&store, "w", &t[..1], "rolled-back");
    store.advance_fleets().unwrap();
    let st = status(&store, "f");
    assert_eq!(st.state, "stopped");
    assert!(
        st.waves[0]
            .note
            .as_deref()
            .unwrap()
            .contains("1 canary failed: w1-db-0"),
        "{:?}",
        st.waves[0].note
    );
    assert!(take_all(&store, "w").is_empty());
    // The people of the fleet heard of the stop, once, with what to do.
    let told = store.notifications(10).unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        (told[0].kind.as_str(), told[0].cluster.as_deref()),
        ("stopped", None)
    );
    let summary = told[0].body["summary"].as_str().unwrap();
    assert!(
        summary.contains("wave w1 stopped") && summary.contains("godwit fleet resume --name f"),
        "{summary}"
    );
    assert!(
        told[0].body["at"].as_str().unwrap().ends_with('Z'),
        "{:?}",
        told[0].body
    );
    store.advance_fleets().unwrap();
    assert_eq!(store.notifications(10).unwrap().len(), 1, "told once");
}

#[test]
fn an_abort_withdraws_what_no_worker_began_and_asks_the_rest_to_roll_back() {
    let (_scratch, _server, url) = server();
    let store = connect(&url);
    let _alive = store.register_worker("w").unwrap();
    let def = FleetDef {
        notify: Vec::new(),
        name: "f".into(),
        origin: "test".into(),
        waves: vec![wave("w1", 6, 0, 3, 0, false)],
    };
    store.register_fleet(&def).unwrap();
    store.advance_fleets().unwrap();
    // One taken and begun (a run exists), two still queued.
    let taken = store.take("w").unwrap().unwrap();
    let mut writer = store.create_writer(&taken.job.run_id).unwrap();
    use godwit_engine::journal::{Entry, JournalStore, JournalWriter};
    writer
        .append(&Entry::RunStarted {
            run_id: taken.job.run_id.clone(),
            runbook: godwit_engine::journal::RunbookInfo {
                name: "r".into(),
                version: "1".into(),
                path: "r.rhai".into(),
                hash: "h".into(),
                modules: vec![],
            },
            cluster: taken.job.cluster.clone(),
            world: "pure".into(),
            params: serde_json::json!({}),
            godwit_version: "0".into(),
            at: 1,
        })
        .unwrap();
    let events = store
        .fleet_action(
            "f",
            &FleetAction::Abort {
                reason: "window closed".into(),
            },
            "op",
        )
        .unwrap();
    let summary = &events[0];
    assert_eq!(summary.what, "fleet-aborted");
    let d = summary.detail.as_deref().unwrap();
    assert!(
        d.starts_with("3 not started skipped; 1 runs in flight"),
        "{d}"
    );
    let st = status(&store, "f");
    let states: Vec<(&str, &str)> = st.waves[0]
        .members
        .iter()
        .map(|m| (m.cluster.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("w1-db-0", "queued"),
            ("w1-db-1", "aborted"),
            ("w1-db-2", "aborted"),
            ("w1-db-3", "skipped"),
            ("w1-db-4", "skipped"),
            ("w1-db-5", "skipped"),
        ]
    );
    assert!(
        store.take("w2").unwrap().is_none(),
        "withdrawn runs are not taken"
    );
    let requests = store.requests(&taken.job.run_id).unwrap();
    assert!(
        matches!(&requests[..], [godwit_engine::journal::Request::Abort { reason, by, .. }]
            if reason.contains("window closed") && by == "op"),
        "{requests:?}"
    );
    // The run in flight rolls back; the fleet records it and stays aborted.
    drop(writer);
    assert!(
        store
            .settle(
                &taken.job.run_id,
                "w",
                taken.attempt,
                Settle::Done,
                Some("rolled-back"),
                None
            )
            .unwrap()
    );
    store.advance_fleets().unwrap();
    let st = status(&store, "f");
    assert_eq!(st.state, "aborted");
    assert_eq!(st.waves[0].members[0].state, "rolled-back");
}

#[test]
fn concurrent_advances_never_queue_a_member_twice() {
    let (_scratch, _server, url) = server();
    let store = connect(&url);
    let _alive = store.register_worker("w").unwrap();
    let def = FleetDef {
        notify: Vec::new(),
        name: "f".into(),
        origin: "test".into(),
        waves: vec![wave("w1", 40, 0, 5, 40, false)],
    };
    store.register_fleet(&def).unwrap();
    let stores: Vec<PgStore> = (0..4).map(|_| connect(&url)).collect();
    let barrier = Arc::new(Barrier::new(4));
    let mut seen = BTreeSet::new();
    for _round in 0..8 {
        let handles: Vec<_> = stores
            .iter()
            .map(|s| {
                let (s, b) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    s.advance_fleets().unwrap()
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let rows = store.queue_rows().unwrap();
        let running: Vec<_> = rows.iter().filter(|r| r.state == "queued").collect();
        assert!(running.len() <= 5, "at most k queued: {}", running.len());
        let t = take_all(&store, "w");
        for (c, _, _) in &t {
            assert!(seen.insert(c.clone()), "{c} queued twice");
        }
        finish(&store, "w", &t, "succeeded");
    }
    assert_eq!(seen.len(), 40);
    store.advance_fleets().unwrap();
    assert_eq!(status(&store, "f").state, "done");
}
