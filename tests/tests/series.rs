//! Issue 20, recorded series: `godwit cw export` reads a world's CloudWatch series into a file
//! (`godwit::series::export`, the command's own code), a scenario replays the file
//! (`[workload] recorded`), and the replayed world's CloudWatch reads the recording back; a
//! plan's prediction replays it instead of its fitted curve (`godwit plan --series`). The aws
//! world's export is in `moto.rs` (`cw_export_reads_what_put_metric_data_stored`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use godwit::series::{ExportRequest, export};
use godwit_engine::Cancel;
use godwit_stdlib::cw::recording::{RecordedMetric, Recording};
use godwit_stdlib::sim::scenario::Scenario;
use godwit_stdlib::world::World;

const TOY: &str = env!("CARGO_BIN_EXE_godwit-toy");
const HOUR: i64 = 3600;

fn godwit(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(TOY)
        .args(args)
        .current_dir(dir)
        .env("GODWIT_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn read(world: &World, hours: i64) -> Recording {
    export(
        world,
        &ExportRequest {
            cluster: "orders-db".into(),
            window_s: hours * HOUR,
            period: 60,
            region: None,
        },
        |_| {},
    )
    .unwrap_or_else(|f| panic!("{}", f.1))
}

fn metric<'r>(rec: &'r Recording, name: &str) -> &'r RecordedMetric {
    rec.source_metric(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", rec.missing))
}

#[test]
fn a_simulated_export_replayed_in_another_scenario_reads_back_the_recording() {
    // The recorded world: a busy source whose WAL jitters ±10 % minute to minute, run for a day.
    let mut sc = Scenario::load("busy-source").unwrap();
    sc.workload.jitter = 0.1;
    sc.cloudwatch.history = "25h".into();
    let recorded = World::sim(sc);
    recorded
        .clock
        .sleep(Duration::from_secs(24 * HOUR as u64), &Cancel::new());
    let rec = read(&recorded, 25);
    let wal = metric(&rec, "TransactionLogsGeneration");
    assert_eq!(wal.points.len(), 25 * 60, "25 h at 60 s");
    assert!(
        rec.missing.iter().any(|m| m.starts_with("WriteIOPS")),
        "the simulator publishes no WriteIOPS: {:?}",
        rec.missing
    );

    // The file, and a scenario beside it that replays it: another seed, another disk. It starts
    // where the recording ends (offset 25h), so its history is the recording and its run
    // replays it again from the start (past_end = loop).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("series")).unwrap();
    std::fs::write(dir.path().join("series/orders-db.json"), rec.to_json()).unwrap();
    assert_eq!(
        Recording::load(&dir.path().join("series/orders-db.json")).unwrap(),
        rec
    );
    let toml = dir.path().join("replayed.toml");
    std::fs::write(
        &toml,
        "name = \"replayed\"\nseed = 7\n[source]\nid = \"orders-db\"\nallocated_storage_gb = 900\n\
         [workload]\nrecorded = \"series/orders-db.json\"\noffset = \"25h\"\n\
         [cloudwatch]\nhistory = \"25h\"\n",
    )
    .unwrap();
    let replayed = World::sim(Scenario::load(toml.to_str().unwrap()).unwrap());
    replayed
        .clock
        .sleep(Duration::from_secs(24 * HOUR as u64), &Cancel::new());
    let back = read(&replayed, 49);

    // WAL: the history is the recording; the day after replays it from its first minute. The
    // only difference is the RDS heartbeat (8 KiB every 5 minutes): the replay takes its
    // average off every minute and its own lands in one minute of five.
    let got = metric(&back, "TransactionLogsGeneration");
    assert_eq!(got.points.len(), 49 * 60);
    let tolerance = 8192.0 / 60.0 + 1.0;
    for (i, (t, v)) in got.points.iter().enumerate() {
        let want = wal.points[i % wal.points.len()].1;
        assert!(
            (v - want).abs() <= tolerance,
            "minute {i} ({t}): {v} B/s replayed, {want} recorded"
        );
    }
    // Sessions: DatabaseConnections minute for minute.
    let conns = metric(&rec, "DatabaseConnections");
    let got = metric(&back, "DatabaseConnections");
    for (i, (_, v)) in got.points.iter().enumerate() {
        assert_eq!(*v, conns.points[i % conns.points.len()].1, "minute {i}");
    }
    // Free storage starts at the recorded value (on a disk of another size): the recording's
    // first minute, where the replay starts.
    let free = metric(&rec, "FreeStorageSpace");
    let got = metric(&back, "FreeStorageSpace");
    let start = got.points[25 * 60].1;
    assert!(
        (start - free.points[0].1).abs() < 64.0 * 1024.0 * 1024.0,
        "free storage at the start {start}, recorded {}",
        free.points[0].1
    );
}

#[test]
fn the_export_command_writes_the_file_and_a_bad_file_is_refused_naming_the_point() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = godwit(
        dir.path(),
        &[
            "cw",
            "export",
            "--cluster",
            "orders-db",
            "--world",
            "sim:busy-source",
            "--out",
            "busy.json",
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("wrote busy.json: ") && stdout.contains("not exported: WriteIOPS"),
        "{stdout}"
    );
    // The simulator's history before the start: two hours by default, read a day at a time.
    assert!(
        stderr.contains("TransactionLogsGeneration    2025-12-31T23:00:00Z → 2026-01-01T00:00:00Z: 60 datapoints"),
        "progress on stderr: {stderr}"
    );
    let (code, _, stderr) = godwit(
        dir.path(),
        &[
            "cw",
            "export",
            "--cluster",
            "orders-db",
            "--world",
            "sim",
            "--since",
            "20d",
            "--out",
            "x.json",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("15 days") && stderr.contains("--period 300"),
        "{stderr}"
    );
    let (code, _, stderr) = godwit(
        dir.path(),
        &[
            "cw",
            "export",
            "--cluster",
            "nope-db",
            "--world",
            "sim",
            "--out",
            "x.json",
        ],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("nope-db"), "{stderr}");

    // A file whose points went out of order: the scenario names the file, the point, the fix.
    let text = std::fs::read_to_string(dir.path().join("busy.json")).unwrap();
    let rec = Recording::parse("busy.json", &text).unwrap();
    let (t1, t2) = (
        rec.metrics[0].points[1].0.to_string(),
        rec.metrics[0].points[2].0.to_string(),
    );
    let swapped = text
        .replacen(&t1, "T1", 1)
        .replacen(&t2, &t1, 1)
        .replacen("T1", &t2, 1);
    std::fs::write(dir.path().join("busy.json"), swapped).unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "name = \"s\"\n[source]\n[workload]\nrecorded = \"busy.json\"\n",
    )
    .unwrap();
    let e = Scenario::load(dir.path().join("s.toml").to_str().unwrap()).unwrap_err();
    assert!(
        e.message.contains("busy.json")
            && e.message
                .contains("metrics[0] (TransactionLogsGeneration) point 2")
            && e.message.contains("oldest first"),
        "{e}"
    );
}

#[test]
fn the_prediction_replays_a_recorded_series_instead_of_the_fitted_curve() {
    let dir = tempfile::tempdir().unwrap();
    let runbook = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runbooks/rds-to-aurora.rhai"
    );
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            runbook,
            "--cluster",
            "orders-db",
            "--world",
            "sim:recorded-incident",
            "-o",
            "json",
        ];
        args.extend(extra);
        let (code, stdout, stderr) = godwit(dir.path(), &args);
        let v: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr} (exit {code})"));
        v
    };
    let (code, _, stderr) = godwit(
        dir.path(),
        &[
            "cw",
            "export",
            "--cluster",
            "orders-db",
            "--world",
            "sim:recorded-incident",
            "--since",
            "24h",
            "--out",
            "orders-db.json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let v = plan(&["--series", "orders-db.json"]);
    let assumptions: Vec<&str> = v["prediction"]["assumptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        assumptions[0].starts_with("WAL replayed from orders-db.json, 1440 points at 60 s")
            && assumptions[0].contains("loops"),
        "{assumptions:?}"
    );
    // A file of another cluster is refused, naming both.
    let (code, _, stderr) = godwit(
        dir.path(),
        &[
            "plan",
            runbook,
            "--cluster",
            "ledger-db",
            "--world",
            "sim:recorded-incident",
            "--series",
            "orders-db.json",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("of cluster orders-db, not ledger-db"),
        "{stderr}"
    );
}

#[test]
fn a_fleet_plan_replays_the_series_of_the_clusters_that_have_one() {
    use godwit_stdlib::sim::fleet::{GENERATED_FLEET_SEED, generated_fleet};
    let dir = tempfile::tempdir().unwrap();
    let fleet = generated_fleet(3, GENERATED_FLEET_SEED);
    let id = fleet[0].scenario.source.id.clone();
    // The recorded incident's day, as if exported from this cluster.
    let text = godwit_stdlib::sim::scenario::BUILTIN_SERIES[0]
        .1
        .replace("orders-db", &id);
    std::fs::create_dir(dir.path().join("series")).unwrap();
    std::fs::write(dir.path().join(format!("series/{id}.json")), text).unwrap();
    let (_, stdout, stderr) = godwit(
        dir.path(),
        &[
            "fleet",
            "plan",
            "--world",
            "sim",
            "--generated",
            "3",
            "--series",
            "series",
            "-o",
            "json",
        ],
    );
    let verdicts: Vec<serde_json::Value> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(verdicts.len(), 3);
    for v in &verdicts {
        let assumptions = v["predicted"]["assumptions"].to_string();
        let replayed = assumptions.contains("WAL replayed from series/");
        assert_eq!(
            replayed,
            v["cluster"] == id.as_str(),
            "{}: {assumptions}",
            v["cluster"]
        );
        assert_eq!(
            !replayed,
            assumptions.contains("raised-cosine"),
            "the fitted curve's assumption only without a recording: {assumptions}"
        );
    }
}
